// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config_file.h"
#include "control.h"
#include "endpoint.h"
#include "event_loop.h"
#include "log.h"

#define LINE_MAX_LEN 256

static struct {
	const char *path;
	struct vmc_device *dev;
	int listen_fd;
	struct watch listen_watch;
	int client_fd;
	struct watch client_watch;
	char line[LINE_MAX_LEN];
	size_t len;
	size_t after;		/* bytes read past the command being executed */
} ctl = { .listen_fd = -1, .client_fd = -1 };

static void reply(const char *text)
{
	size_t len = strlen(text);

	/* Answers are short; a client that does not read them is dropped. */
	if (send(ctl.client_fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)len)
		log_warn("control: cannot answer");
}

/* "ok" and every channel name, on one line: room for a full table. */
#define LIST_MAX_LEN (4 + VMCHANNEL_MAX_CHANNELS * VMCHANNEL_NAME_SIZE)

static void list_channels(void)
{
	static char answer[LIST_MAX_LEN];
	size_t used = (size_t)snprintf(answer, sizeof(answer), "ok");
	unsigned int i;

	/* Names are at most 63 bytes, so a space and a name always fit. */
	for (i = 0; i < ctl.dev->nchans; i++)
		used += (size_t)snprintf(answer + used, sizeof(answer) - used, " %s",
					 ctl.dev->chans[i]->name);
	snprintf(answer + used, sizeof(answer) - used, "\n");
	reply(answer);
}

/* "ok" and the channel's counters (vmc_chan_stats_format()). */
static void channel_stats(const char *name)
{
	char answer[1024];
	unsigned int i;
	int n;

	for (i = 0; i < ctl.dev->nchans; i++) {
		if (strcmp(ctl.dev->chans[i]->name, name))
			continue;
		memcpy(answer, "ok ", 3);
		n = vmc_chan_stats_format(ctl.dev->chans[i], answer + 3, sizeof(answer) - 4);
		if (n < 0) {
			reply("error: statistics too long\n");
			return;
		}
		strcpy(answer + 3 + n, "\n");
		reply(answer);
		return;
	}
	reply("error: no such channel\n");
}

void (*control_upgrade)(const char *path, char *why, size_t size);

/* upgrade [PATH]: answered by the new binary, or here when it failed. */
static void upgrade(const char *path)
{
	char why[PATH_MAX + 128], answer[PATH_MAX + 160];
	struct ucred peer;
	socklen_t len = sizeof(peer);

	if (!control_upgrade) {
		reply("error: upgrades are off (vmchanneld --no-upgrade)\n");
		return;
	}
	/*
	 * The socket's group (QEMU's user, say) adds and removes channels; only
	 * root or the daemon's own user may choose the program that replaces it.
	 */
	if (getsockopt(ctl.client_fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0 ||
	    (peer.uid != 0 && peer.uid != geteuid())) {
		reply("error: upgrade: only root or the daemon's user may upgrade it\n");
		return;
	}
	/* What was read after it would be lost in the exec, unanswered. */
	if (ctl.after) {
		reply("error: upgrade: send no command after it before its answer\n");
		return;
	}
	control_upgrade(path, why, sizeof(why));
	log_error("upgrade failed: %s; serving on", why);
	snprintf(answer, sizeof(answer), "error: upgrade failed: %s\n", why);
	reply(answer);
}

static void execute(char *line)
{
	char answer[LINE_MAX_LEN * 2];
	char *arg = strchr(line, ' ');
	int err;

	if (arg)
		*arg++ = '\0';
	if (!strcmp(line, "list") && !arg) {
		list_channels();
		return;
	}
	if (!strcmp(line, "stats") && arg) {
		channel_stats(arg);
		return;
	}
	if (!strcmp(line, "upgrade")) {
		upgrade(arg);
		return;
	}
	if ((strcmp(line, "add") && strcmp(line, "remove")) || !arg) {
		reply("error: commands are add NAME, remove NAME, list, stats NAME, upgrade [PATH]\n");
		return;
	}
	if (!channel_name_valid(arg)) {
		reply("error: invalid channel name\n");
		return;
	}
	err = !strcmp(line, "add") ? vmc_device_add_channel(ctl.dev, arg) :
				     vmc_device_remove_channel(ctl.dev, arg);
	if (err) {
		snprintf(answer, sizeof(answer), "error: %s\n", strerror(-err));
		reply(answer);
		return;
	}
	reply("ok\n");
}

static void client_close(void)
{
	loop_unwatch(&ctl.client_watch);
	close(ctl.client_fd);
	ctl.client_fd = -1;
	ctl.len = 0;
	loop_set_events(&ctl.listen_watch, EPOLLIN);
}

static void client_ready(void *opaque, uint32_t events)
{
	ssize_t n;
	char *nl;

	(void)opaque;
	(void)events;
	n = read(ctl.client_fd, ctl.line + ctl.len, sizeof(ctl.line) - 1 - ctl.len);
	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		client_close();
		return;
	}
	ctl.len += (size_t)n;
	ctl.line[ctl.len] = '\0';
	while ((nl = strchr(ctl.line, '\n'))) {
		*nl = '\0';
		ctl.after = ctl.len - (size_t)(nl + 1 - ctl.line);
		execute(ctl.line);
		ctl.len -= (size_t)(nl + 1 - ctl.line);
		memmove(ctl.line, nl + 1, ctl.len + 1);
	}
	if (ctl.len == sizeof(ctl.line) - 1) {
		reply("error: line too long\n");
		client_close();
	}
}

static void accept_ready(void *opaque, uint32_t events)
{
	int fd;

	(void)opaque;
	(void)events;
	fd = endpoint_accept(&ctl.listen_watch);
	if (fd < 0)
		return;
	ctl.client_fd = fd;
	if (loop_watch(&ctl.client_watch, fd, EPOLLIN, client_ready, NULL) < 0) {
		close(fd);
		ctl.client_fd = -1;
		return;
	}
	/* One controller at a time; others wait in the backlog. */
	loop_set_events(&ctl.listen_watch, 0);
}

void control_fds(int *listen_fd, int *client_fd)
{
	*listen_fd = ctl.listen_fd;
	*client_fd = ctl.client_fd;
}

int control_resume(const char *path, struct vmc_device *dev, int listen_fd, int client_fd,
		   const char *answer)
{
	ctl.path = path;
	ctl.dev = dev;
	if (listen_fd < 0)
		return 0;
	ctl.listen_fd = listen_fd;
	if (loop_watch(&ctl.listen_watch, listen_fd, client_fd < 0 ? EPOLLIN : 0, accept_ready,
		       NULL) < 0)
		return -1;
	if (client_fd < 0)
		return 0;
	ctl.client_fd = client_fd;
	if (loop_watch(&ctl.client_watch, client_fd, EPOLLIN, client_ready, NULL) < 0)
		return -1;
	reply(answer);
	return 0;
}

int control_init(const char *path, struct vmc_device *dev)
{
	ctl.path = path;
	ctl.dev = dev;
	ctl.listen_fd = endpoint_listen(path);
	if (ctl.listen_fd < 0)
		return -1;
	return loop_watch(&ctl.listen_watch, ctl.listen_fd, EPOLLIN, accept_ready, NULL);
}

void control_fini(void)
{
	if (ctl.client_fd >= 0)
		client_close();
	if (ctl.listen_fd >= 0) {
		loop_unwatch(&ctl.listen_watch);
		close(ctl.listen_fd);
		unlink(ctl.path);
		ctl.listen_fd = -1;
	}
}
