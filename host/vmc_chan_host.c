// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A channel's host endpoint: the socket it listens on or connects from, the
 * connected host program, guest bytes written to it from the channel's
 * bounded ring (VMC_G2H_BUF_SIZE, the credit we grant), and what the
 * lifecycle needs to know of it (gone, drained).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "endpoint.h"
#include "log.h"
#include "vmc_chan.h"

/* The host program still takes guest bytes. */
bool vmc_chan_host_takes(const struct vmc_chan *ch)
{
	return ch->client_fd >= 0 && !ch->client_wr_closed;
}

void vmc_chan_close_client(struct vmc_chan *ch)
{
	loop_unwatch(&ch->client_watch);
	close(ch->client_fd);
	ch->client_fd = -1;
	if (ch->client_out_fd >= 0) {
		loop_unwatch(&ch->client_out_watch);
		close(ch->client_out_fd);
		ch->client_out_fd = -1;
	}
	ch->client_rd_eof = false;
	ch->client_drained = false;
	ch->client_wr_closed = false;
	ch->client_hup = false;
	/* The connection it would have announced is gone. */
	ch->owed &= ~VMC_OWE_CONNECT;
	log_info("channel %s: host connection closed", ch->name);
}

/* The descriptor guest bytes are written to. */
static int chan_out_fd(const struct vmc_chan *ch)
{
	return ch->client_out_fd >= 0 ? ch->client_out_fd : ch->client_fd;
}

/* Ends the client's stream: shutdown for a socket, close for stdout. */
void vmc_chan_end_host_stream(struct vmc_chan *ch)
{
	if (ch->client_fd < 0 || ch->client_wr_closed)
		return;
	if (ch->client_out_fd >= 0) {
		loop_unwatch(&ch->client_out_watch);
		close(ch->client_out_fd);
		ch->client_out_fd = -1;
	} else {
		shutdown(ch->client_fd, SHUT_WR);
	}
	/* Nothing is written after the end, least of all to stdin. */
	ch->client_wr_closed = true;
}

/* The host program takes no more guest bytes (write error, hang-up). */
static void host_stopped_taking(struct vmc_chan *ch)
{
	ch->client_wr_closed = true;
	vmc_chan_discard_buffer(ch);
}

/* The host program took @n guest bytes: consumed, and counted for the session. */
static void host_took(struct vmc_chan *ch, size_t n)
{
	ch->stats.bytes_to_host += (uint64_t)n;
	ch->dev->bytes_to_hosts += (uint64_t)n;
	/* An ended session's bytes are no longer counted for anyone. */
	if (ch->state == CHAN_LINKED)
		ch->fwd_cnt += (uint32_t)n;
	vmc_chan_credit_check(ch);
}

size_t vmc_chan_write_direct(struct vmc_chan *ch, const struct iovec *iov, unsigned int n)
{
	/* Non-blocking descriptors; SIGPIPE is ignored. */
	ssize_t written = vmc_chan_host_takes(ch) ? writev(chan_out_fd(ch), iov, (int)n) : -1;

	/* The guest's buffer, not the host program, failed: its memory file shrank. */
	if (written < 0 && errno == EFAULT)
		guest_mem_fault(&ch->dev->vu.mem);
	if (written <= 0)
		return 0;
	host_took(ch, (size_t)written);
	return (size_t)written;
}

/* Writes buffered guest bytes to the client as far as it takes them. */
void vmc_chan_flush(struct vmc_chan *ch)
{
	while (ch->buf_len && vmc_chan_host_takes(ch)) {
		uint32_t first = VMC_G2H_BUF_SIZE - ch->buf_head;
		struct iovec iov[2] = {
			{ ch->buf + ch->buf_head, first < ch->buf_len ? first : ch->buf_len },
			{ ch->buf, first < ch->buf_len ? ch->buf_len - first : 0 },
		};
		/* Non-blocking descriptors; SIGPIPE is ignored. */
		ssize_t n = writev(chan_out_fd(ch), iov, 2);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			log_info("channel %s: host program stopped reading: %s", ch->name,
				 strerror(errno));
			ch->stats.host_errors++;
			host_stopped_taking(ch);
			break;
		}
		ch->buf_head = (ch->buf_head + (uint32_t)n) % VMC_G2H_BUF_SIZE;
		ch->buf_len -= (uint32_t)n;
		host_took(ch, (size_t)n);
	}
	vmc_chan_credit_check(ch);
}

/* Bytes the host program sent that we have not read yet. */
static int chan_host_unread(const struct vmc_chan *ch)
{
	int unread = 0;

	if (ioctl(ch->client_fd, FIONREAD, &unread) < 0)
		return 0;
	return unread;
}

/*
 * The connection can neither give nor take anything more for the guest, as
 * the state sees it; a host program that stopped sending but still reads
 * is not gone, nor one whose bytes still wait to be read.
 */
bool vmc_chan_host_gone(const struct vmc_chan *ch)
{
	if (ch->client_fd < 0)
		return false;
	switch (ch->state) {
	case CHAN_HOST_WAITING:
		return ch->client_hup && chan_host_unread(ch) == 0;
	case CHAN_LINKED:
		return !vmc_chan_host_takes(ch) && ch->client_rd_eof &&
		       !(ch->owed & VMC_OWE_DISCONNECT);
	case CHAN_DRAINING:
	case CHAN_DRAINING_REOPENED:
		return !vmc_chan_host_takes(ch);
	case CHAN_FINISHED:
		return ch->client_hup;
	default:
		return false;
	}
}

/* Host bytes are read only for a session that has credit. */
static bool chan_wants_host_bytes(const struct vmc_chan *ch)
{
	return ch->state == CHAN_LINKED && !ch->removed && ch->connect_sent && !ch->client_rd_eof &&
	       vmc_chan_guest_credit(ch);
}

/*
 * Watches the sockets for what the channel can do next.  A channel waiting
 * for rxq (no buffer, or the rings stopped) is not woken by its host
 * program's bytes, which it could not send (a busy loop): it is served when
 * buffers come.  One whose host bytes meet an empty rxq waits from then on.
 */
void vmc_chan_update_watch(struct vmc_chan *ch)
{
	uint32_t events = 0;
	bool out = ch->buf_len && vmc_chan_host_takes(ch);
	bool wants = chan_wants_host_bytes(ch);

	if (ch->removed)
		vmc_ready_del(ch);
	else if (!vmc_rxq(ch->dev) && (wants || vmc_chan_owes_driver(ch)))
		vmc_ready_add(ch);
	if (ch->listen_fd >= 0)
		loop_set_events(&ch->listen_watch, ch->client_fd < 0 ? EPOLLIN : 0);
	if (ch->client_fd < 0 || ch->client_hup)
		return;
	if (wants && !ch->ready && vmc_rxq(ch->dev))
		events |= EPOLLIN;
	else
		ch->client_drained = false;	/* unwatched: bytes may come unreported */
	if (ch->client_out_fd >= 0)
		loop_set_events(&ch->client_out_watch, out ? EPOLLOUT : 0);
	else if (out)
		events |= EPOLLOUT;
	loop_set_events(&ch->client_watch, events);
}

/* Fully closed: whatever it sent can still be read, without epoll. */
static void chan_client_hung_up(struct vmc_chan *ch)
{
	loop_unwatch(&ch->client_watch);
	ch->client_hup = true;
	if (ch->client_out_fd < 0)
		host_stopped_taking(ch);
}

/*
 * Learns now, not on the loop's next round, whether the host program has
 * hung up already, so that no session is offered credit for a connection
 * that can no longer take a byte.  A connection accepted from the backlog
 * may have been closed long before (the host program connected, wrote and
 * left while an earlier one was served), and epoll reports that only after
 * the OPEN or HOST_CONNECT we are about to send: the guest would write on
 * that credit and its bytes would be discarded as lost (F_DATA_LOST), a
 * loss in a session no host program of which went away.
 */
void vmc_chan_host_check(struct vmc_chan *ch)
{
	struct pollfd pfd = { .fd = ch->client_fd };

	if (ch->client_fd < 0 || ch->client_hup)
		return;
	if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR)))
		chan_client_hung_up(ch);
}

static void chan_client_ready(void *opaque, uint32_t events)
{
	struct vmc_chan *ch = opaque;

	if (events & (EPOLLHUP | EPOLLERR))
		chan_client_hung_up(ch);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		ch->client_drained = false;
	vmc_chan_flush(ch);
	vmc_chan_pump(ch);
}

/* stdout of a stdio channel: room to write, or its reader went away. */
static void chan_client_out_ready(void *opaque, uint32_t events)
{
	struct vmc_chan *ch = opaque;

	if (events & (EPOLLHUP | EPOLLERR)) {
		loop_unwatch(&ch->client_out_watch);
		host_stopped_taking(ch);
	}
	vmc_chan_flush(ch);
	vmc_chan_pump(ch);
}

static void chan_attach_client(struct vmc_chan *ch, int fd)
{
	ch->client_fd = fd;
	if (loop_watch(&ch->client_watch, fd, 0, chan_client_ready, ch) < 0) {
		close(fd);
		ch->client_fd = -1;
		return;
	}
	log_info("channel %s: host program connected", ch->name);
	ch->stats.host_connections++;
	vmc_chan_host_check(ch);
	vmc_chan_event(ch, CHAN_EV_HOST_CONNECTS, 0);
}

void vmc_chan_connect(struct vmc_chan *ch)
{
	int fd = endpoint_connect(ch->path);

	if (fd < 0)
		log_debug("channel %s: connecting to %s: %s", ch->name, ch->path, strerror(errno));
	else
		chan_attach_client(ch, fd);
}

/* A session waits for its service: connect now. */
bool vmc_chan_waits_for_service(const struct vmc_chan *ch)
{
	return ch->connects && !ch->removed && ch->state == CHAN_GUEST_WAITING &&
	       ch->client_fd < 0;
}

static void chan_timer_tick(void *opaque, uint32_t events)
{
	struct vmc_chan *ch = opaque;
	uint64_t ticks;

	(void)events;
	if (read(ch->timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_warn("channel %s: timer: %s", ch->name, strerror(errno));
	if (ch->removed) {
		vmc_chan_removed_timeout(ch);
		log_warn("channel %s: removed, and its host program did not take its last bytes within %d s: closing it",
			 ch->name, VMC_REMOVED_DRAIN_SECONDS);
		host_stopped_taking(ch);
	} else if (vmc_chan_waits_for_service(ch)) {
		vmc_chan_connect(ch);
	}
	vmc_chan_pump(ch);
}

/* Starts the timer (@first seconds, then every @every), or stops it (0). */
void vmc_chan_timer_arm(struct vmc_chan *ch, time_t first, time_t every)
{
	struct itimerspec its = { { every, 0 }, { first, 0 } };

	if (ch->timer_fd < 0) {
		if (!first)
			return;
		ch->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (ch->timer_fd < 0 ||
		    loop_watch(&ch->timer_watch, ch->timer_fd, EPOLLIN, chan_timer_tick, ch) < 0) {
			log_error("channel %s: no timer: %s", ch->name, strerror(errno));
			if (ch->timer_fd >= 0)
				close(ch->timer_fd);
			ch->timer_fd = -1;
			return;
		}
	}
	timerfd_settime(ch->timer_fd, 0, &its, NULL);
}

static void chan_accept(void *opaque, uint32_t events)
{
	struct vmc_chan *ch = opaque;
	int fd;

	(void)events;
	if (ch->client_fd >= 0)
		return;
	fd = endpoint_accept(&ch->listen_watch);
	if (fd >= 0)
		chan_attach_client(ch, fd);
	vmc_chan_pump(ch);
}

/*
 * The host end of a stdio channel: stdin (host -> guest) and stdout (guest ->
 * host), for debugging from a terminal or a pipeline; one session only.
 */
static int chan_attach_stdio(struct vmc_chan *ch)
{
	struct stat st;
	int fd;

	if (ch->dev->stdio_taken) {
		log_error("channel %s: only one channel can use stdio", ch->name);
		return -1;
	}
	for (fd = 0; fd <= 1; fd++) {
		/* epoll takes pipes, sockets and terminals, not regular files. */
		if (fstat(fd, &st) < 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
			log_error("channel %s: %s must be a pipe, socket or terminal", ch->name,
				  fd ? "stdout" : "stdin");
			return -1;
		}
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
			return -1;
	}
	ch->dev->stdio_taken = true;
	ch->client_out_fd = STDOUT_FILENO;
	if (loop_watch(&ch->client_out_watch, STDOUT_FILENO, 0, chan_client_out_ready, ch) < 0)
		return -1;
	chan_attach_client(ch, STDIN_FILENO);
	return ch->client_fd >= 0 ? 0 : -1;
}

/*
 * Sets up the host end named by @connect_path: "-" stdio, a path to connect
 * to, or "" to listen at <dir>/<name>.sock.
 */
int vmc_chan_open_endpoint(struct vmc_chan *ch, const char *connect_path)
{
	struct vmc_device *dev = ch->dev;

	if (!strcmp(connect_path, "-"))
		return chan_attach_stdio(ch) < 0 ? -EINVAL : 0;
	if (connect_path[0]) {
		ch->connects = true;
		snprintf(ch->path, sizeof(ch->path), "%s", connect_path);
		return 0;
	}
	if (endpoint_path(ch->path, sizeof(ch->path), dev->dir, ch->name) < 0) {
		log_error("%s/%s.sock: path too long for a socket", dev->dir, ch->name);
		return -ENAMETOOLONG;
	}
	ch->listen_fd = endpoint_listen(ch->path);
	if (ch->listen_fd < 0)
		return -EIO;
	if (loop_watch(&ch->listen_watch, ch->listen_fd, EPOLLIN, chan_accept, ch) < 0) {
		close(ch->listen_fd);
		unlink(ch->path);
		ch->listen_fd = -1;
		return -EIO;
	}
	return 0;
}

int vmc_chan_resume(struct vmc_chan *ch)
{
	if (ch->listen_fd >= 0 &&
	    loop_watch(&ch->listen_watch, ch->listen_fd, 0, chan_accept, ch) < 0)
		return -1;
	/* A connection that hung up is read without epoll (chan_client_hung_up). */
	if (ch->client_fd >= 0 && !ch->client_hup &&
	    loop_watch(&ch->client_watch, ch->client_fd, 0, chan_client_ready, ch) < 0)
		return -1;
	if (ch->client_out_fd >= 0 &&
	    loop_watch(&ch->client_out_watch, ch->client_out_fd, 0, chan_client_out_ready, ch) < 0)
		return -1;
	if (ch->removed)
		vmc_chan_timer_arm(ch, VMC_REMOVED_DRAIN_SECONDS, 0);
	/* The interest, and the connect retries, follow from the state as always. */
	vmc_chan_settle(ch);
	return 0;
}

/* Stops listening: the name is free at once for a channel added again. */
void vmc_chan_close_endpoint(struct vmc_chan *ch)
{
	if (ch->listen_fd < 0)
		return;
	loop_unwatch(&ch->listen_watch);
	close(ch->listen_fd);
	unlink(ch->path);
	ch->listen_fd = -1;
}
