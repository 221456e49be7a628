// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "event_loop.h"
#include "log.h"

static int epoll_fd = -1;
static bool stopping;

int loop_init(void)
{
	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	return epoll_fd < 0 ? -1 : 0;
}

void loop_fini(void)
{
	if (epoll_fd >= 0)
		close(epoll_fd);
	epoll_fd = -1;
}

int loop_watch(struct watch *w, int fd, uint32_t events, watch_fn *fn, void *opaque)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	w->fd = fd;
	w->events = events;
	w->fn = fn;
	w->opaque = opaque;
	if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		log_error("epoll_ctl add fd %d: %s", fd, strerror(errno));
		w->fd = -1;
		return -1;
	}
	return 0;
}

void loop_set_events(struct watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (w->fd < 0 || w->events == events)
		return;
	if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		log_error("epoll_ctl mod fd %d: %s", w->fd, strerror(errno));
	else
		w->events = events;
}

void loop_unwatch(struct watch *w)
{
	if (w->fd < 0)
		return;
	epoll_ctl(epoll_fd, EPOLL_CTL_DEL, w->fd, NULL);
	w->fd = -1;
}

int loop_run(void)
{
	struct epoll_event evs[32];
	int i, n;

	stopping = false;
	while (!stopping) {
		n = epoll_wait(epoll_fd, evs, 32, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %s", strerror(errno));
			return -1;
		}
		for (i = 0; i < n && !stopping; i++) {
			struct watch *w = evs[i].data.ptr;

			/* An earlier callback of this batch may have unwatched it. */
			if (w->fd >= 0)
				w->fn(w->opaque, evs[i].events);
		}
	}
	return 0;
}

void loop_stop(void)
{
	stopping = true;
}
