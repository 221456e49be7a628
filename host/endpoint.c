// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "endpoint.h"
#include "log.h"

int endpoint_path(char *buf, size_t size, const char *dir, const char *name)
{
	struct sockaddr_un addr;
	int n = snprintf(buf, size, "%s/%s.sock", dir, name);

	/* One byte spare for endpoint_listen()'s temporary name. */
	if (n < 0 || (size_t)n >= size || (size_t)n + 1 >= sizeof(addr.sun_path))
		return -1;
	return 0;
}

/* Fails unless @path is absent or a socket (which it removes). */
static int remove_old_socket(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		log_error("%s exists and is not a socket; not replacing it", path);
		return -1;
	}
	unlink(path);
	return 0;
}

struct endpoint_access endpoint_default_access = { 0600, (uid_t)-1, (gid_t)-1 };
void (*endpoint_access_for)(const char *path, struct endpoint_access *access);

/* Gives the socket bound at @tmp (to be renamed to @path) its owner, group and mode. */
static int set_access(const char *tmp, const char *path)
{
	struct endpoint_access access = endpoint_default_access;

	if (endpoint_access_for)
		endpoint_access_for(path, &access);
	/* Made with our ids: no chown (which a service's filter may forbid) to them. */
	if (access.uid == geteuid())
		access.uid = (uid_t)-1;
	if (access.gid == getegid())
		access.gid = (gid_t)-1;
	if ((access.uid != (uid_t)-1 || access.gid != (gid_t)-1) &&
	    lchown(tmp, access.uid, access.gid) < 0)
		return -1;
	return access.mode == 0600 ? 0 : chmod(tmp, access.mode);
}

/*
 * One descriptor held in reserve for accept() at the open-file limit: a
 * listening socket with a connection waiting stays readable, and one that
 * cannot be accepted would wake the loop for ever.  The reserve is freed,
 * the connection accepted and closed at once (its client sees the end), and
 * the reserve taken again.  It is a copy of stderr, which lives as long as
 * the daemon: fcntl() is all it takes, which the sandbox allows.  It is
 * taken with the first listening socket, before any limit is near; should
 * it be missing at the limit, the listening socket is not watched for a
 * second instead.
 */
static int reserve_fd = -1;

static void take_reserve(void)
{
	if (reserve_fd < 0)
		reserve_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
}

/*
 * The socket is bound under PATH~ and renamed to PATH once it listens: a
 * client that sees PATH appear (inotify) can connect at once, never meeting
 * a bound socket that refuses connections because listen() has not run yet.
 */
int endpoint_listen(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	mode_t old_umask;
	int fd, err;

	take_reserve();
	if (strlen(path) + 1 >= sizeof(addr.sun_path)) {
		log_error("%s: path too long for a socket", path);
		return -1;
	}
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s~", path);
	if (remove_old_socket(path) < 0 || remove_old_socket(addr.sun_path) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("socket: %s", strerror(errno));
		return -1;
	}
	/* Created 0600 from the start: no window with a wider mode or another group. */
	old_umask = umask(0177);
	err = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old_umask);
	if (err < 0 || set_access(addr.sun_path, path) < 0 || listen(fd, 8) < 0 ||
	    rename(addr.sun_path, path) < 0) {
		log_error("%s: %s", path, strerror(errno));
		if (err == 0)
			unlink(addr.sun_path);
		close(fd);
		return -1;
	}
	return fd;
}

int endpoint_accept(struct watch *listener)
{
	int fd, err;

	take_reserve();
	fd = accept4(listener->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0 || errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
		return fd;
	err = errno;
	if ((err == EMFILE || err == ENFILE) && reserve_fd >= 0) {
		close(reserve_fd);
		reserve_fd = -1;
		fd = accept4(listener->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			close(fd);
		take_reserve();
		log_warn("accept: %s: a connection was refused", strerror(err));
	} else if (err == EMFILE || err == ENFILE) {
		loop_pause(listener, 1000);
		log_warn("accept: %s: no descriptor in reserve; not accepting for a second",
			 strerror(err));
	} else {
		log_warn("accept: %s", strerror(err));
	}
	errno = err;
	return -1;
}

/* 1024 channels hold a listening socket and a connection each, and more. */
void endpoint_raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("cannot raise the open-file limit: %s", strerror(errno));
}

int endpoint_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}
