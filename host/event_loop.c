// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event_loop.h"
#include "log.h"

#define MAX_EVENTS 32

static int epoll_fd = -1;
static bool stopping;
/*
 * Objects freed while a batch of events is being dispatched: a later event of
 * the batch may still name one of their watches, so they go after the batch.
 * The list grows with what one batch frees (a reload may remove every
 * channel), so it holds at most one entry per object that exists.
 */
static bool dispatching;
static void **deferred;
static size_t ndeferred, deferred_size;
static void (*batch_end_fn)(void *opaque);
static void *batch_end_opaque;
static struct watch *paused;	/* loop_pause(): a list through next_paused */
/*
 * Adaptive polling (loop_set_poll()): how long the loop now looks for events
 * before it sleeps, and the most it ever will, in microseconds.
 */
static int64_t poll_us, poll_max_us;
static bool sleep_next;		/* loop_sleep_next(): the next wait does not poll */
static const struct loop_poller *poller;

#define POLL_FIRST_US 4		/* the window a loop that did not poll starts with */

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t loop_now_ms(void)
{
	return now_us() / 1000;
}

void loop_set_poll(unsigned int max_us)
{
	poll_max_us = max_us;
	poll_us = 0;
}

void loop_sleep_next(void)
{
	sleep_next = true;
}

/*
 * The window follows how long the loop waited for its last batch, after
 * QEMU's adaptive polling (with its poll-shrink at 2): a wait the window
 * covered leaves it; a wait up to the maximum doubles it, so that polling
 * would have caught it; a longer wait halves it, so that a single late event
 * does not undo a conversation's window, and a loop gone quiet stops polling
 * after a few waits (about twice the maximum in all).
 */
int64_t loop_poll_window(int64_t window_us, int64_t waited_us, int64_t max_us)
{
	if (waited_us <= window_us)
		return window_us;
	if (waited_us > max_us)
		return window_us / 2;
	if (!window_us)
		return POLL_FIRST_US < max_us ? POLL_FIRST_US : max_us;
	return window_us * 2 < max_us ? window_us * 2 : max_us;
}

void loop_set_poller(const struct loop_poller *p)
{
	/* The poller going away may have been told to expect no kicks. */
	if (poller && !p)
		poller->kicks(poller->opaque, true);
	poller = p;
}

static bool poller_ready(void)
{
	return poller && poller->ready(poller->opaque);
}

/*
 * epoll_wait(), after looking for events without sleeping for the window:
 * a peer that answers within it finds the loop awake, not on a CPU that has
 * to be woken (tens of microseconds on a virtual host, more than the rest of
 * a round trip's work here).  Between looks the loop yields its CPU to
 * whatever else is ready on it (the guest's vCPU, QEMU).  While it polls the
 * guest need not kick (an exit of its vCPU and a system call each): the
 * poller's ring is looked at instead.  Sets *@polled when the poller has
 * work, beside the descriptors that are ready.
 */
static int wait_events(struct epoll_event *evs, int timeout_ms, bool *polled)
{
	int64_t start = now_us(), limit = 0, left_us, timeout_us = (int64_t)timeout_ms * 1000;
	int n = 0;

	*polled = false;
	/*
	 * Polling counts against the timeout.  After loop_sleep_next() it is
	 * skipped, but the window still follows the gaps, ready for the next
	 * conversation.
	 */
	if (poll_max_us && timeout_ms && !sleep_next)
		limit = timeout_ms > 0 && timeout_us < poll_us ? timeout_us : poll_us;
	sleep_next = false;
	if (limit && poller)
		poller->kicks(poller->opaque, false);
	while (limit) {
		n = epoll_wait(epoll_fd, evs, MAX_EVENTS, 0);
		/* Asked even with descriptors ready: steady traffic on them must not starve the ring. */
		*polled = poller_ready();
		if (n || *polled || now_us() - start >= limit)
			break;
		sched_yield();
	}
	if (!n && !*polled) {
		/*
		 * Kicks again before sleeping, and what came before they were
		 * asked for; then the descriptors are still looked at, without
		 * sleeping, so that a guest that keeps txq busy does not starve them.
		 */
		if (poller && poller->kicks(poller->opaque, true)) {
			*polled = true;
			timeout_ms = 0;
		} else if (timeout_ms > 0) {
			left_us = timeout_us - (now_us() - start);
			timeout_ms = left_us > 0 ? (int)((left_us + 999) / 1000) : 0;
		}
		n = epoll_wait(epoll_fd, evs, MAX_EVENTS, timeout_ms);
	}
	if (n >= 0 && poll_max_us)
		poll_us = loop_poll_window(poll_us, now_us() - start, poll_max_us);
	return n;
}

int64_t loop_poll_window_now(void)
{
	return poll_us;
}

static void free_deferred(void)
{
	while (ndeferred)
		free(deferred[--ndeferred]);
}

void loop_defer_free(void *ptr)
{
	void **grown;

	if (!dispatching) {
		free(ptr);
		return;
	}
	if (ndeferred == deferred_size) {
		grown = realloc(deferred, (deferred_size ? deferred_size * 2 : 64) * sizeof(*grown));
		if (!grown) {
			/* Leaking is better than a use after free. */
			log_warn("out of memory: leaking %p", ptr);
			return;
		}
		deferred = grown;
		deferred_size = deferred_size ? deferred_size * 2 : 64;
	}
	deferred[ndeferred++] = ptr;
}

void loop_on_batch_end(void (*fn)(void *opaque), void *opaque)
{
	batch_end_fn = fn;
	batch_end_opaque = opaque;
}

int loop_init(void)
{
	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	return epoll_fd < 0 ? -1 : 0;
}

void loop_fini(void)
{
	free_deferred();
	free(deferred);
	deferred = NULL;
	deferred_size = 0;
	batch_end_fn = NULL;
	paused = NULL;
	poll_us = 0;
	poll_max_us = 0;
	sleep_next = false;
	poller = NULL;
	if (epoll_fd >= 0)
		close(epoll_fd);
	epoll_fd = -1;
}

static void unpause(struct watch *w)
{
	struct watch **p;

	for (p = &paused; *p; p = &(*p)->next_paused)
		if (*p == w) {
			*p = w->next_paused;
			break;
		}
	w->resume_ms = 0;
}

int loop_watch(struct watch *w, int fd, uint32_t events, watch_fn *fn, void *opaque)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (w->resume_ms)
		unpause(w);
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

	if (w->resume_ms) {
		w->paused_events = events;
		return;
	}
	if (w->fd < 0 || w->events == events)
		return;
	if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		log_error("epoll_ctl mod fd %d: %s", w->fd, strerror(errno));
	else
		w->events = events;
}

void loop_pause(struct watch *w, int ms)
{
	if (w->fd < 0 || w->resume_ms)
		return;
	w->paused_events = w->events;
	loop_set_events(w, 0);
	w->resume_ms = loop_now_ms() + ms;
	w->next_paused = paused;
	paused = w;
}

/* Ends the pauses that are over; returns the milliseconds to the next end, or -1. */
static int resume_paused(void)
{
	int64_t now = loop_now_ms(), next = -1;
	struct watch *w, *after;

	for (w = paused; w; w = after) {
		after = w->next_paused;
		if (w->resume_ms <= now) {
			unpause(w);
			loop_set_events(w, w->paused_events);
		} else if (next < 0 || w->resume_ms - now < next) {
			next = w->resume_ms - now;
		}
	}
	return (int)next;
}

void loop_unwatch(struct watch *w)
{
	if (w->resume_ms)
		unpause(w);
	if (w->fd < 0)
		return;
	epoll_ctl(epoll_fd, EPOLL_CTL_DEL, w->fd, NULL);
	w->fd = -1;
}

int loop_dispatch(int timeout_ms)
{
	struct epoll_event evs[MAX_EVENTS];
	int i, n, resume = resume_paused();
	bool polled;

	if (resume >= 0 && (timeout_ms < 0 || resume < timeout_ms))
		timeout_ms = resume;
	n = wait_events(evs, timeout_ms, &polled);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		log_error("epoll_wait: %s", strerror(errno));
		return -1;
	}
	dispatching = true;
	for (i = 0; i < n && !stopping; i++) {
		struct watch *w = evs[i].data.ptr;

		/* An earlier callback of this batch may have unwatched it. */
		if (w->fd >= 0)
			w->fn(w->opaque, evs[i].events);
	}
	if (polled && !stopping)
		poller->run(poller->opaque);
	if (batch_end_fn)
		batch_end_fn(batch_end_opaque);
	dispatching = false;
	free_deferred();
	return n + polled;
}

int loop_run(void)
{
	stopping = false;
	while (!stopping)
		if (loop_dispatch(-1) < 0)
			return -1;
	/* Callers may dispatch on to finish work (vmchanneld delivering before exit). */
	stopping = false;
	return 0;
}

void loop_stop(void)
{
	stopping = true;
}
