// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "service.h"

#define LISTEN_FDS_START 3

void service_notify(const char *fmt, ...)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	socklen_t addr_len;
	char text[512];
	va_list ap;
	int fd, n;

	if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(addr.sun_path))
		return;
	memcpy(addr.sun_path, path, strlen(path));
	addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if (path[0] == '@')
		addr.sun_path[0] = '\0';	/* abstract namespace */
	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(text))
		return;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, text, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&addr,
			     addr_len) != n)
		log_warn("cannot notify the service manager: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
}

static long env_number(const char *name)
{
	const char *value = getenv(name);
	char *end;
	long v;

	if (!value)
		return -1;
	errno = 0;
	v = strtol(value, &end, 10);
	return errno || end == value || *end || v < 0 ? -1 : v;
}

int service_activated_fd(void)
{
	long pid = env_number("LISTEN_PID"), n = env_number("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	char copy[1024], *name, *save = NULL;
	int fd = -1, i;

	if (pid == getpid() && n > 0 && n < 64) {
		if (n == 1)
			fd = LISTEN_FDS_START;
		snprintf(copy, sizeof(copy), "%s", names ? names : "");
		for (i = 0, name = strtok_r(copy, ":", &save); name && i < n;
		     i++, name = strtok_r(NULL, ":", &save))
			if (!strcmp(name, "vhost-user"))
				fd = LISTEN_FDS_START + i;
		/* The others are not ours to keep open in what we run. */
		for (i = 0; i < n; i++)
			fcntl(LISTEN_FDS_START + i, F_SETFD, FD_CLOEXEC);
		if (fd < 0)
			log_error("socket activation: %ld sockets, none named vhost-user", n);
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return fd;
}
