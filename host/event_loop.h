/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A single-threaded epoll loop.  The only code that knows about epoll: the
 * other layers register a callback per file descriptor.
 */
#ifndef VMC_EVENT_LOOP_H
#define VMC_EVENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

typedef void watch_fn(void *opaque, uint32_t events);

struct watch {
	int fd;
	uint32_t events;	/* EPOLLIN / EPOLLOUT interest now */
	watch_fn *fn;
	void *opaque;
	/* While paused (loop_pause()): when it ends, and the interest then. */
	int64_t resume_ms;
	uint32_t paused_events;
	struct watch *next_paused;
};

int loop_init(void);
void loop_fini(void);
/* Starts watching @w->fd for @events; @w must stay valid until unwatched. */
int loop_watch(struct watch *w, int fd, uint32_t events, watch_fn *fn, void *opaque);
/* Changes the interest of a watched descriptor; no system call if unchanged. */
void loop_set_events(struct watch *w, uint32_t events);
void loop_unwatch(struct watch *w);
/*
 * Stops watching @w for @ms milliseconds (a descriptor that stays ready but
 * cannot be served now); loop_set_events() meanwhile sets the interest it
 * gets back.
 */
void loop_pause(struct watch *w, int ms);
/*
 * Frees @ptr once the events already fetched have been dispatched: an object
 * holding a watch may go away while the current batch still names it.
 */
void loop_defer_free(void *ptr);
/*
 * Calls @fn(@opaque) after every batch of events (also an empty one): work
 * done once a batch rather than once an event, such as signalling the guest.
 * One function at a time; NULL removes it.
 */
void loop_on_batch_end(void (*fn)(void *opaque), void *opaque);
/*
 * Work the loop finds without an event: a guest adding buffers to a ring in
 * shared memory, which it announces with a kick (an eventfd) only when asked
 * to.  While the loop polls it looks at ready() between looks at its
 * descriptors, having told the poller with kicks(@opaque, false) that it
 * needs no kick meanwhile; before it sleeps, kicks(@opaque, true) asks for
 * them again and says whether work came before the request could be seen
 * (the loop then does not sleep).  Found either way, run() does the work,
 * inside the batch.  One poller at a time; NULL removes it.
 */
struct loop_poller {
	bool (*ready)(void *opaque);
	bool (*kicks)(void *opaque, bool on);
	void (*run)(void *opaque);
	void *opaque;
};
void loop_set_poller(const struct loop_poller *poller);
/*
 * Waits up to @timeout_ms (-1: for ever) and runs the callbacks of one batch
 * of events; returns how many there were (the poller's work counting as
 * one), or -1 on an epoll failure.  The unit tests step the loop with it.
 */
int loop_dispatch(int timeout_ms);
/*
 * Adaptive polling: before it sleeps, the loop looks for events for up to
 * @max_us microseconds while they come that close together (0: never); the
 * time spent polling counts against loop_dispatch()'s timeout.
 */
void loop_set_poll(unsigned int max_us);
/*
 * The next wait sleeps without polling: for a batch of events that moved so
 * much that polling would only cost CPU time.
 */
void loop_sleep_next(void);
/*
 * The polling window after a wait of @waited_us for a batch, from @window_us,
 * at most @max_us: the rule loop_set_poll() follows.  And the window now.
 * Both for the unit tests.
 */
int64_t loop_poll_window(int64_t window_us, int64_t waited_us, int64_t max_us);
int64_t loop_poll_window_now(void);
/* CLOCK_MONOTONIC in milliseconds: the clock of loop_pause() and deadlines. */
int64_t loop_now_ms(void);
/*
 * Runs until loop_stop(), which also ends the current batch; returns 0, or -1
 * on an epoll failure.  loop_dispatch() works again after it returns.
 */
int loop_run(void);
void loop_stop(void);

#endif /* VMC_EVENT_LOOP_H */
