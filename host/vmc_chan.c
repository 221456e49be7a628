// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One channel: the lifecycle of chan_state.c carried out on the channel's
 * host endpoint and on rxq.
 *
 * Host -> guest: bytes are read from a channel's client socket straight into
 * a guest receive buffer, and only as many as the guest's credit allows, so
 * nothing is buffered here and a guest that does not read makes the host
 * program's writes block.
 *
 * Guest -> host: DATA payloads are copied into the channel's bounded ring
 * (VMC_G2H_BUF_SIZE, the credit we grant) and written to the client as it
 * takes them; freed space goes back to the guest as credit.  A session's
 * bytes outlive the session: after CLOSE they still go to the connection
 * that was serving it (DRAINING).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
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

#define HDR_SIZE sizeof(struct vmchannel_hdr)

static void chan_settle(struct vmc_chan *ch);
static void chan_connect(struct vmc_chan *ch);
static bool chan_waits_for_service(const struct vmc_chan *ch);

/* ---- credit ---- */

/* The credit the guest granted: payload bytes we may still send it. */
static uint32_t chan_guest_credit(const struct vmc_chan *ch)
{
	uint32_t in_flight = ch->tx_cnt - ch->peer_fwd_cnt;

	return in_flight > ch->peer_buf_alloc ? 0 : ch->peer_buf_alloc - in_flight;
}

/* The host program still takes guest bytes. */
static bool chan_host_takes(const struct vmc_chan *ch)
{
	return ch->client_fd >= 0 && !ch->client_wr_closed;
}

/* What we can take from the guest: only for a connection serving the session. */
static uint32_t chan_buf_alloc(const struct vmc_chan *ch)
{
	return ch->state == CHAN_LINKED && chan_host_takes(ch) && ch->buf ? VMC_G2H_BUF_SIZE : 0;
}

/*
 * Marks credit owed to the guest once a quarter of the buffer has been
 * consumed since the last report.  That is soon enough for a guest writing
 * steadily never to wait, and a guest that has used up its credit gets it
 * back as the buffer drains.  Not after every message: each credit message
 * costs the guest a receive buffer and an interrupt.
 */
static void chan_credit_check(struct vmc_chan *ch)
{
	if (chan_state_has_session(ch->state) &&
	    ch->fwd_cnt - ch->fwd_reported >= VMC_G2H_BUF_SIZE / 4)
		ch->owed |= VMC_OWE_CREDIT;
}

/*
 * Guest bytes of the session that will never reach a host program: counted
 * as consumed so the writer is not stalled, and the driver is told.
 */
static void chan_lose_guest_bytes(struct vmc_chan *ch, uint32_t len)
{
	ch->fwd_cnt += len;
	ch->data_lost = true;
	chan_credit_check(ch);
}

/* Drops the undelivered guest bytes; the session, if it still owns them, learns so. */
static void chan_discard_buffer(struct vmc_chan *ch)
{
	if (!ch->buf_len)
		return;
	if (ch->state == CHAN_LINKED)
		chan_lose_guest_bytes(ch, ch->buf_len);
	else
		log_info("channel %s: %u guest bytes of an ended session lost: the host program went away",
			 ch->name, ch->buf_len);
	ch->buf_head = ch->buf_len = 0;
}

/* ---- device -> guest (rxq) ---- */

static void hdr_fill(struct vmc_chan *ch, struct vmchannel_hdr *hdr,
		     enum vmchannel_msg_type type, uint32_t len)
{
	memset(hdr, 0, sizeof(*hdr));
	hdr->channel_id = htole32(ch->id);
	hdr->type = htole16(type);
	hdr->len = htole32(len);
	hdr->session = htole32(ch->session);
	hdr->buf_alloc = htole32(chan_buf_alloc(ch));
	hdr->fwd_cnt = htole32(ch->fwd_cnt);
	if (ch->data_lost &&
	    (type == VMCHANNEL_MSG_HOST_DISCONNECT || type == VMCHANNEL_MSG_CREDIT)) {
		hdr->flags = htole16(VMCHANNEL_F_DATA_LOST);
		ch->data_lost = false;
	}
	/* Every header carries fwd_cnt: no CREDIT is owed for it any more. */
	ch->fwd_reported = ch->fwd_cnt;
	ch->owed &= ~VMC_OWE_CREDIT;
}

/* Sends a message without payload; false when no rx buffer is available. */
static bool send_ctrl(struct vmc_chan *ch, enum vmchannel_msg_type type)
{
	struct vmchannel_hdr hdr;
	struct vq_elem elem;

	if (!vmc_rx_pop(ch->dev, &elem))
		return false;
	hdr_fill(ch, &hdr, type, 0);
	iov_from_buf(elem.in, elem.n_in, 0, &hdr, sizeof(hdr));
	vq_push(vmc_rxq(ch->dev), &elem, sizeof(hdr));
	return true;
}

/* Sends the next bad message of --fault; false when no rx buffer is available. */
static bool send_fault(struct vmc_chan *ch, unsigned int k)
{
	struct vmchannel_hdr hdr;
	struct vq_elem elem;
	uint32_t used;

	if (!vmc_rx_pop(ch->dev, &elem))
		return false;
	used = vmc_fault_rx_message(ch->dev->faults, k, ch->id, (uint32_t)elem.in_len, &hdr);
	iov_from_buf(elem.in, elem.n_in, 0, &hdr, sizeof(hdr));
	vq_push(vmc_rxq(ch->dev), &elem, used);
	return true;
}

/* Takes the bytes the writable part of @elem holds after the header. */
static unsigned int payload_iov(const struct vq_elem *elem, size_t max, struct iovec *iov)
{
	size_t skip = HDR_SIZE;
	unsigned int i, n = 0;

	for (i = 0; i < elem->n_in && max; i++) {
		size_t len = elem->in[i].iov_len;
		uint8_t *base = elem->in[i].iov_base;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		base += skip;
		len -= skip;
		skip = 0;
		if (len > max)
			len = max;
		iov[n].iov_base = base;
		iov[n++].iov_len = len;
		max -= len;
	}
	return n;
}

/* The host program's stream ended: HOST_DISCONNECT after its last byte. */
static void chan_host_stopped_sending(struct vmc_chan *ch)
{
	ch->client_rd_eof = true;
	if (ch->connect_sent)
		ch->owed |= VMC_OWE_DISCONNECT;
}

/*
 * Moves one read's worth of client bytes into a guest buffer.  Returns false
 * when nothing more can move now (no buffer, no bytes, end of stream).
 */
static bool pump_data(struct vmc_chan *ch)
{
	struct iovec iov[VQ_MAX_IOV];
	struct vmchannel_hdr hdr;
	struct vq_elem elem;
	uint32_t credit = chan_guest_credit(ch);
	size_t room;
	ssize_t n;

	if (!credit || !vmc_rx_pop(ch->dev, &elem))
		return false;
	room = elem.in_len - HDR_SIZE;
	if (room > credit)
		room = credit;
	if (room > VMCHANNEL_MAX_PAYLOAD)
		room = VMCHANNEL_MAX_PAYLOAD;
	if (!room) {
		/* A buffer with room for a header only: keep it for control. */
		vq_unpop(vmc_rxq(ch->dev));
		return false;
	}
	n = readv(ch->client_fd, iov, (int)payload_iov(&elem, room, iov));
	if (n <= 0) {
		vq_unpop(vmc_rxq(ch->dev));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return false;
		/* End of the host program's stream (or a reset: the same to us). */
		chan_host_stopped_sending(ch);
		return false;
	}
	hdr_fill(ch, &hdr, VMCHANNEL_MSG_DATA, (uint32_t)n);
	iov_from_buf(elem.in, elem.n_in, 0, &hdr, sizeof(hdr));
	vq_push(vmc_rxq(ch->dev), &elem, (uint32_t)(HDR_SIZE + n));
	ch->tx_cnt += (uint32_t)n;
	return true;
}

/* The driver holds fewer than VMCHANNEL_EOF_WINDOW of our ends of stream. */
static bool chan_eof_window_open(const struct vmc_chan *ch)
{
	return ch->disconnects_sent - ch->peer_eof_cnt < VMCHANNEL_EOF_WINDOW;
}

/* Sends what the session is owed, in protocol order; true if anything went. */
static bool chan_send_owed(struct vmc_chan *ch)
{
	bool sent = false;

	if (ch->owed & VMC_OWE_OPEN) {
		if (!send_ctrl(ch, VMCHANNEL_MSG_OPEN))
			return sent;
		ch->owed &= ~VMC_OWE_OPEN;
		sent = true;
	}
	while (ch->send_faults) {
		if (!send_fault(ch, vmc_fault_rx_messages(ch->dev->faults) - ch->send_faults))
			return sent;
		ch->send_faults--;
		sent = true;
	}
	/* A new host stream waits while the driver holds a window of ends. */
	if ((ch->owed & VMC_OWE_CONNECT) && chan_eof_window_open(ch)) {
		if (!send_ctrl(ch, VMCHANNEL_MSG_HOST_CONNECT))
			return sent;
		ch->owed &= ~VMC_OWE_CONNECT;
		ch->connect_sent = true;
		sent = true;
	}
	while (ch->state == CHAN_LINKED && ch->connect_sent && !ch->client_rd_eof &&
	       pump_data(ch))
		sent = true;
	if (ch->owed & VMC_OWE_DISCONNECT) {
		if (!send_ctrl(ch, VMCHANNEL_MSG_HOST_DISCONNECT))
			return sent;
		ch->owed &= ~VMC_OWE_DISCONNECT;
		ch->connect_sent = false;
		ch->disconnects_sent++;
		sent = true;
	}
	if ((ch->owed & VMC_OWE_CREDIT) || ch->data_lost) {
		if (!send_ctrl(ch, VMCHANNEL_MSG_CREDIT))
			return sent;
		ch->owed &= ~VMC_OWE_CREDIT;
		sent = true;
	}
	return sent;
}

void vmc_chan_pump(struct vmc_chan *ch)
{
	struct vq *rxq;

	/* A new session is connected to its service at once, later ones every second. */
	if (chan_waits_for_service(ch) && !ch->retrying)
		chan_connect(ch);
	rxq = vmc_rxq(ch->dev);
	if (rxq && chan_state_has_session(ch->state) && chan_send_owed(ch))
		vq_notify(rxq);
	chan_settle(ch);
}

/* ---- host endpoint ---- */

static void chan_close_client(struct vmc_chan *ch)
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
static void chan_end_client_stream(struct vmc_chan *ch)
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
}

/* The host program takes no more guest bytes (write error, hang-up). */
static void chan_host_stopped_taking(struct vmc_chan *ch)
{
	ch->client_wr_closed = true;
	chan_discard_buffer(ch);
}

/* Writes buffered guest bytes to the client as far as it takes them. */
static void chan_flush(struct vmc_chan *ch)
{
	while (ch->buf_len && chan_host_takes(ch)) {
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
			chan_host_stopped_taking(ch);
			break;
		}
		ch->buf_head = (ch->buf_head + (uint32_t)n) % VMC_G2H_BUF_SIZE;
		ch->buf_len -= (uint32_t)n;
		/* An ended session's bytes are no longer counted for anyone. */
		if (ch->state == CHAN_LINKED)
			ch->fwd_cnt += (uint32_t)n;
	}
	chan_credit_check(ch);
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
static bool chan_host_gone(const struct vmc_chan *ch)
{
	if (ch->client_fd < 0)
		return false;
	switch (ch->state) {
	case CHAN_HOST_WAITING:
		return ch->client_hup && chan_host_unread(ch) == 0;
	case CHAN_LINKED:
		return !chan_host_takes(ch) && ch->client_rd_eof &&
		       !(ch->owed & VMC_OWE_DISCONNECT);
	case CHAN_DRAINING:
	case CHAN_DRAINING_REOPENED:
		return !chan_host_takes(ch);
	case CHAN_FINISHED:
		return ch->client_hup;
	default:
		return false;
	}
}

/* Host bytes are read only for a session that has credit and a free rx buffer. */
static bool chan_wants_host_bytes(const struct vmc_chan *ch)
{
	return ch->state == CHAN_LINKED && ch->connect_sent && !ch->client_rd_eof &&
	       chan_guest_credit(ch) && vmc_rxq(ch->dev) && !ch->dev->rx_starved;
}

static void chan_update_watch(struct vmc_chan *ch)
{
	uint32_t events = 0;
	bool out = ch->buf_len && chan_host_takes(ch);

	if (ch->listen_fd >= 0)
		loop_set_events(&ch->listen_watch, ch->client_fd < 0 ? EPOLLIN : 0);
	if (ch->client_fd < 0 || ch->client_hup)
		return;
	if (chan_wants_host_bytes(ch))
		events |= EPOLLIN;
	if (ch->client_out_fd >= 0)
		loop_set_events(&ch->client_out_watch, out ? EPOLLOUT : 0);
	else if (out)
		events |= EPOLLOUT;
	loop_set_events(&ch->client_watch, events);
}

/* ---- the lifecycle ---- */

static void chan_new_session(struct vmc_chan *ch, uint32_t session)
{
	if (!ch->buf) {
		ch->buf = malloc(VMC_G2H_BUF_SIZE);
		if (!ch->buf)
			log_error("channel %s: out of memory: the session gets no credit", ch->name);
	}
	ch->session = session;
	ch->fwd_cnt = ch->fwd_reported = 0;
	ch->tx_cnt = ch->peer_buf_alloc = ch->peer_fwd_cnt = 0;
	ch->disconnects_sent = ch->peer_eof_cnt = 0;
	ch->connect_sent = false;
	ch->data_lost = false;
	ch->owed = VMC_OWE_OPEN;
	ch->send_faults = vmc_fault_rx_messages(ch->dev->faults);
}

static void chan_end_session(struct vmc_chan *ch)
{
	ch->session = 0;
	ch->owed = 0;
	ch->send_faults = 0;
	ch->connect_sent = false;
	ch->data_lost = false;
}

/* Applies @event; returns the actions taken (0 when it cannot happen now). */
static unsigned int chan_run(struct vmc_chan *ch, enum chan_event event, uint32_t session)
{
	struct chan_step step;

	if (!chan_step(ch->state, event, &step)) {
		log_debug("channel %s: %s ignored in %s", ch->name, chan_event_name(event),
			  chan_state_name(ch->state));
		return 0;
	}
	if (step.next != ch->state)
		log_debug("channel %s: %s: %s -> %s", ch->name, chan_event_name(event),
			  chan_state_name(ch->state), chan_state_name(step.next));
	if (step.actions & CHAN_ACT_END_SESSION)
		chan_end_session(ch);
	if (step.actions & CHAN_ACT_DISCARD_BUFFER)
		chan_discard_buffer(ch);
	if ((step.actions & CHAN_ACT_SEND_HOST_DISCONNECT) && ch->connect_sent)
		ch->owed |= VMC_OWE_DISCONNECT;
	if (step.actions & CHAN_ACT_END_STREAM)
		chan_end_client_stream(ch);
	if (step.actions & CHAN_ACT_CLOSE_CONNECTION)
		chan_close_client(ch);
	if (step.actions & CHAN_ACT_NEW_SESSION)
		chan_new_session(ch, session);
	if (step.actions & CHAN_ACT_SEND_HOST_CONNECT)
		ch->owed |= VMC_OWE_CONNECT;
	/* SEND_OPEN: owed by every new session (chan_new_session). */
	ch->state = step.next;
	return step.actions;
}

static void chan_free(struct vmc_chan *ch)
{
	struct vmc_chan **p;

	for (p = &ch->dev->removed; *p; p = &(*p)->next_removed)
		if (*p == ch) {
			*p = ch->next_removed;
			break;
		}
	if (ch->client_fd >= 0)
		chan_close_client(ch);
	if (ch->listen_fd >= 0) {
		loop_unwatch(&ch->listen_watch);
		close(ch->listen_fd);
		unlink(ch->path);
		ch->listen_fd = -1;
	}
	if (ch->timer_fd >= 0) {
		loop_unwatch(&ch->timer_watch);
		close(ch->timer_fd);
	}
	free(ch->buf);
	/* The loop may still hold an event naming one of its watches. */
	loop_defer_free(ch);
}

/* ---- connecting endpoints: retried every second while a session waits ---- */

static void chan_attach_client(struct vmc_chan *ch, int fd);

static void chan_timer_arm(struct vmc_chan *ch, time_t first, time_t every);

static void chan_connect(struct vmc_chan *ch)
{
	int fd = endpoint_connect(ch->path);

	if (fd < 0)
		log_debug("channel %s: connecting to %s: %s", ch->name, ch->path, strerror(errno));
	else
		chan_attach_client(ch, fd);
}

/* A session waits for its service: connect now. */
static bool chan_waits_for_service(const struct vmc_chan *ch)
{
	return ch->connects && !ch->removed && ch->state == CHAN_GUEST_WAITING &&
	       ch->client_fd < 0;
}

/*
 * Raises the events that follow from the channel's I/O (the host went away,
 * an ended session's bytes are out, a removed channel has nothing left) and
 * watches its sockets for what it can do next.  Last call of every entry
 * point: a removed channel may be freed here.
 */
static void chan_settle(struct vmc_chan *ch)
{
	for (;;) {
		bool draining = ch->state == CHAN_DRAINING || ch->state == CHAN_DRAINING_REOPENED;

		if (chan_host_gone(ch))
			chan_run(ch, CHAN_EV_HOST_GONE, 0);
		else if (draining && !ch->buf_len)
			chan_run(ch, CHAN_EV_DRAINED, 0);
		else if (ch->removed && (ch->state == CHAN_IDLE || ch->state == CHAN_FINISHED))
			chan_run(ch, CHAN_EV_REMOVED, 0);
		else
			break;
		if (ch->state == CHAN_GONE) {
			log_info("channel %s: removed channel finished", ch->name);
			chan_free(ch);
			return;
		}
	}
	/* A service that went away is called again after a second. */
	if (chan_waits_for_service(ch) != ch->retrying) {
		ch->retrying = !ch->retrying;
		chan_timer_arm(ch, ch->retrying, ch->retrying);
	}
	chan_update_watch(ch);
}

static void chan_timer_tick(void *opaque, uint32_t events)
{
	struct vmc_chan *ch = opaque;
	uint64_t ticks;

	(void)events;
	if (read(ch->timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_warn("channel %s: timer: %s", ch->name, strerror(errno));
	if (ch->removed) {
		log_warn("channel %s: removed, and its host program took no bytes for %d s: closing it",
			 ch->name, VMC_REMOVED_DRAIN_SECONDS);
		chan_host_stopped_taking(ch);
	} else if (chan_waits_for_service(ch)) {
		chan_connect(ch);
	}
	vmc_chan_pump(ch);
}

/* Starts the timer (@first seconds, then every @every), or stops it (0). */
static void chan_timer_arm(struct vmc_chan *ch, time_t first, time_t every)
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

/* ---- host endpoint events ---- */

static void chan_client_ready(void *opaque, uint32_t events)
{
	struct vmc_chan *ch = opaque;

	if (events & (EPOLLHUP | EPOLLERR)) {
		/* Fully closed: whatever it sent can still be read, without epoll. */
		loop_unwatch(&ch->client_watch);
		ch->client_hup = true;
		if (ch->client_out_fd < 0)
			chan_host_stopped_taking(ch);
	}
	chan_flush(ch);
	vmc_chan_pump(ch);
}

/* stdout of a stdio channel: room to write, or its reader went away. */
static void chan_client_out_ready(void *opaque, uint32_t events)
{
	struct vmc_chan *ch = opaque;

	if (events & (EPOLLHUP | EPOLLERR)) {
		loop_unwatch(&ch->client_out_watch);
		chan_host_stopped_taking(ch);
	}
	chan_flush(ch);
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
	chan_run(ch, CHAN_EV_HOST_CONNECTS, 0);
}

static void chan_accept(void *opaque, uint32_t events)
{
	struct vmc_chan *ch = opaque;
	int fd;

	(void)events;
	if (ch->client_fd >= 0)
		return;
	fd = endpoint_accept(ch->listen_fd);
	if (fd >= 0)
		chan_attach_client(ch, fd);
	vmc_chan_pump(ch);
}

/* ---- guest -> device (txq) ---- */

static void chan_take_data(struct vmc_chan *ch, const struct vq_elem *elem, uint32_t len)
{
	uint32_t tail, first;

	if (!chan_buf_alloc(ch)) {
		/* No host program to take it (any more): consumed, and the writer told. */
		chan_lose_guest_bytes(ch, len);
		return;
	}
	if (len > VMC_G2H_BUF_SIZE - ch->buf_len) {
		log_warn("channel %s: guest sent %u bytes beyond its credit; dropped",
			 ch->name, len);
		return;
	}
	tail = (ch->buf_head + ch->buf_len) % VMC_G2H_BUF_SIZE;
	first = VMC_G2H_BUF_SIZE - tail < len ? VMC_G2H_BUF_SIZE - tail : len;
	iov_to_buf(elem->out, elem->n_out, HDR_SIZE, ch->buf + tail, first);
	iov_to_buf(elem->out, elem->n_out, HDR_SIZE + first, ch->buf, len - first);
	ch->buf_len += len;
	chan_flush(ch);
}

/* Takes the credit fields of a message of the current session. */
static void chan_take_credit(struct vmc_chan *ch, const struct vmchannel_hdr *hdr)
{
	ch->peer_buf_alloc = le32toh(hdr->buf_alloc);
	/* A lying device acts as if the guest had room for anything. */
	if (ch->dev->faults & (1u << VMC_FAULT_RX_OVER_CREDIT))
		ch->peer_buf_alloc = INT32_MAX;
	ch->peer_fwd_cnt = le32toh(hdr->fwd_cnt);
	ch->peer_eof_cnt = le32toh(hdr->eof_cnt);
}

void vmc_chan_message(struct vmc_chan *ch, const struct vmchannel_hdr *hdr,
		      const struct vq_elem *elem, uint32_t len)
{
	uint32_t session = le32toh(hdr->session);
	uint16_t type = le16toh(hdr->type);
	bool current = chan_state_has_session(ch->state) && session == ch->session;

	if (type == VMCHANNEL_MSG_OPEN && session && !current) {
		chan_run(ch, CHAN_EV_OPEN, session);
	} else if (!current) {
		/* Of an earlier session (or none): it must not touch this one. */
		log_debug("channel %s: dropping message type %u of session %u (current %u)",
			  ch->name, type, session, ch->session);
		return;
	}
	chan_take_credit(ch, hdr);
	switch (type) {
	case VMCHANNEL_MSG_DATA:
		if (!len)
			log_warn("channel %s: DATA without payload ignored", ch->name);
		else if (chan_run(ch, CHAN_EV_DATA, 0) & CHAN_ACT_BUFFER_DATA)
			chan_take_data(ch, elem, len);
		else
			chan_lose_guest_bytes(ch, len);
		break;
	case VMCHANNEL_MSG_CLOSE:
		chan_run(ch, CHAN_EV_CLOSE, 0);
		break;
	case VMCHANNEL_MSG_OPEN:
	case VMCHANNEL_MSG_CREDIT:
		break;
	default:
		log_warn("tx: channel %s: unexpected message type %u", ch->name, type);
		break;
	}
	if (len && type != VMCHANNEL_MSG_DATA)
		log_warn("tx: channel %s: payload on message type %u ignored", ch->name, type);
	vmc_chan_pump(ch);
}

void vmc_chan_reset(struct vmc_chan *ch)
{
	chan_run(ch, CHAN_EV_RESET, 0);
	chan_settle(ch);
}

/* ---- creation and removal ---- */

void vmc_chan_remove(struct vmc_chan *ch)
{
	/* The name is free at once: a channel of that name may be added again. */
	if (ch->listen_fd >= 0) {
		loop_unwatch(&ch->listen_watch);
		close(ch->listen_fd);
		unlink(ch->path);
		ch->listen_fd = -1;
	}
	ch->removed = true;
	ch->next_removed = ch->dev->removed;
	ch->dev->removed = ch;
	chan_run(ch, CHAN_EV_REMOVED, 0);
	if (ch->state == CHAN_GONE) {
		chan_free(ch);
		return;
	}
	ch->retrying = false;
	chan_timer_arm(ch, VMC_REMOVED_DRAIN_SECONDS, 0);
	chan_flush(ch);
	chan_settle(ch);
}

void vmc_chan_destroy(struct vmc_chan *ch)
{
	chan_discard_buffer(ch);
	chan_free(ch);
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

int vmc_chan_create(struct vmc_device *dev, const char *name, const char *connect_path,
		    struct vmc_chan **out)
{
	struct vmc_chan *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return -ENOMEM;
	ch->dev = dev;
	ch->id = dev->next_id++;
	ch->state = CHAN_IDLE;
	ch->client_fd = -1;
	ch->client_out_fd = -1;
	ch->listen_fd = -1;
	ch->timer_fd = -1;
	ch->client_watch.fd = -1;
	ch->client_out_watch.fd = -1;
	ch->listen_watch.fd = -1;
	ch->timer_watch.fd = -1;
	snprintf(ch->name, sizeof(ch->name), "%s", name);
	if (!strcmp(connect_path, "-")) {
		if (chan_attach_stdio(ch) < 0) {
			free(ch);
			return -EINVAL;
		}
	} else if (connect_path[0]) {
		ch->connects = true;
		snprintf(ch->path, sizeof(ch->path), "%s", connect_path);
	} else {
		if (endpoint_path(ch->path, sizeof(ch->path), dev->dir, ch->name) < 0) {
			log_error("%s/%s.sock: path too long for a socket", dev->dir, ch->name);
			free(ch);
			return -ENAMETOOLONG;
		}
		ch->listen_fd = endpoint_listen(ch->path);
		if (ch->listen_fd < 0) {
			free(ch);
			return -EIO;
		}
		if (loop_watch(&ch->listen_watch, ch->listen_fd, EPOLLIN, chan_accept, ch) < 0) {
			close(ch->listen_fd);
			unlink(ch->path);
			free(ch);
			return -EIO;
		}
	}
	*out = ch;
	return 0;
}
