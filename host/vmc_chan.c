// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One channel's lifecycle: the transitions of chan_state.c carried out, the
 * driver's messages for the channel taken in, and the events that follow
 * from the channel's I/O raised.  A session's bytes outlive the session:
 * after CLOSE they still go to the connection that was serving it.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "vmc_chan.h"

#define HDR_SIZE sizeof(struct vmchannel_hdr)

/* Drops the undelivered guest bytes; the session, if it still owns them, learns so. */
void vmc_chan_discard_buffer(struct vmc_chan *ch)
{
	if (!ch->buf_len)
		return;
	if (ch->state == CHAN_LINKED)
		vmc_chan_lose_guest_bytes(ch, ch->buf_len);
	else
		log_info("channel %s: %u guest bytes of an ended session lost: the host program went away",
			 ch->name, ch->buf_len);
	ch->buf_head = ch->buf_len = 0;
}

void vmc_chan_pump(struct vmc_chan *ch)
{
	/* A new session is connected to its service at once, later ones every second. */
	if (vmc_chan_waits_for_service(ch) && !ch->retrying)
		vmc_chan_connect(ch);
	/* The driver forgets a removed channel: nothing more is sent for it. */
	if (vmc_rxq(ch->dev) && !ch->removed && chan_state_has_session(ch->state))
		vmc_chan_send_owed(ch);
	vmc_chan_settle(ch);
}

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
unsigned int vmc_chan_event(struct vmc_chan *ch, enum chan_event event, uint32_t session)
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
		vmc_chan_discard_buffer(ch);
	if ((step.actions & CHAN_ACT_SEND_HOST_DISCONNECT) && ch->connect_sent)
		ch->owed |= VMC_OWE_DISCONNECT;
	if (step.actions & CHAN_ACT_END_STREAM)
		vmc_chan_end_host_stream(ch);
	if (step.actions & CHAN_ACT_CLOSE_CONNECTION)
		vmc_chan_close_client(ch);
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
	vmc_device_forget(ch);
	if (ch->client_fd >= 0)
		vmc_chan_close_client(ch);
	vmc_chan_close_endpoint(ch);
	if (ch->timer_fd >= 0) {
		loop_unwatch(&ch->timer_watch);
		close(ch->timer_fd);
	}
	free(ch->buf);
	/* The loop may still hold an event naming one of its watches. */
	loop_defer_free(ch);
}

/*
 * Raises the events that follow from the channel's I/O (the host went away,
 * an ended session's bytes are out, a removed channel has nothing left) and
 * watches its sockets for what it can do next.  Last call of every entry
 * point: a removed channel may be freed here.
 */
void vmc_chan_settle(struct vmc_chan *ch)
{
	if (ch->state == CHAN_GONE) {
		chan_free(ch);
		return;
	}
	for (;;) {
		bool draining = ch->state == CHAN_DRAINING || ch->state == CHAN_DRAINING_REOPENED;
		enum chan_state before = ch->state;

		if (vmc_chan_host_gone(ch))
			vmc_chan_event(ch, CHAN_EV_HOST_GONE, 0);
		else if (draining && !ch->buf_len)
			vmc_chan_event(ch, CHAN_EV_DRAINED, 0);
		else if (ch->removed && (ch->state == CHAN_IDLE || ch->state == CHAN_FINISHED))
			vmc_chan_event(ch, CHAN_EV_REMOVED, 0);
		else
			break;
		/* Each of these events leaves its state; one that did not would loop. */
		if (ch->state == before)
			break;
		if (ch->state == CHAN_GONE) {
			log_info("channel %s: removed channel finished", ch->name);
			chan_free(ch);
			return;
		}
	}
	/* A service that went away is called again after a second. */
	if (vmc_chan_waits_for_service(ch) != ch->retrying) {
		ch->retrying = !ch->retrying;
		vmc_chan_timer_arm(ch, ch->retrying, ch->retrying);
	}
	vmc_chan_update_watch(ch);
}

/*
 * Takes a DATA payload: written to the host program straight from guest
 * memory while nothing is buffered (order), only what it did not take is
 * copied into the channel's buffer.  A short one is copied and written with
 * the others txq holds, after them (VMC_G2H_GATHER_MAX).
 */
static void chan_take_data(struct vmc_chan *ch, const struct vq_elem *elem, uint32_t len)
{
	struct iovec iov[VQ_MAX_IOV];
	uint32_t tail, first, taken = 0;

	if (!vmc_chan_buf_alloc(ch)) {
		/* No host program to take it (any more): consumed, and the writer told. */
		vmc_chan_lose_guest_bytes(ch, len);
		return;
	}
	if (len > VMC_G2H_BUF_SIZE - ch->buf_len) {
		log_warn("channel %s: guest sent %u bytes beyond its credit; dropped",
			 ch->name, len);
		ch->stats.over_credit_bytes += len;
		return;
	}
	/* Gathered bytes go first; a long payload goes straight if they all went. */
	if (len >= VMC_G2H_GATHER_MAX) {
		vmc_chan_flush_now(ch);
		if (!ch->buf_len)
			taken = (uint32_t)vmc_chan_write_direct(ch, iov,
					iov_slice(elem->out, elem->n_out, HDR_SIZE, len, iov));
	}
	if (taken == len)
		return;
	len -= taken;
	tail = (ch->buf_head + ch->buf_len) % VMC_G2H_BUF_SIZE;
	first = VMC_G2H_BUF_SIZE - tail < len ? VMC_G2H_BUF_SIZE - tail : len;
	if (!ch->dev->vu.mem.faulted) {
		iov_to_buf(elem->out, elem->n_out, HDR_SIZE + taken, ch->buf + tail, first);
		iov_to_buf(elem->out, elem->n_out, HDR_SIZE + taken + first, ch->buf,
			   len - first);
	}
	/* Guest memory that faulted reads as zeros: those are not the guest's bytes. */
	if (ch->dev->vu.mem.faulted) {
		vmc_chan_lose_guest_bytes(ch, len);
		return;
	}
	ch->buf_len += len;
	ch->stats.buffer_full += ch->buf_len == VMC_G2H_BUF_SIZE;
	/* After a short write the socket is full; an error is handled there. */
	if (!taken)
		vmc_chan_flush_later(ch);
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

	if (type == VMCHANNEL_MSG_OPEN && session && !current && !ch->removed) {
		vmc_chan_event(ch, CHAN_EV_OPEN, session);
	} else if (!current) {
		/* Of an earlier session (or none): it must not touch this one. */
		log_debug("channel %s: dropping message type %u of session %u (current %u)",
			  ch->name, type, session, ch->session);
		ch->stats.stale_messages++;
		return;
	}
	ch->stats.messages_from_guest++;
	chan_take_credit(ch, hdr);
	switch (type) {
	case VMCHANNEL_MSG_DATA:
		ch->stats.bytes_from_guest += len;
		ch->stats.guest_errors += !len;
		if (!len)
			log_warn("channel %s: DATA without payload ignored", ch->name);
		else if (vmc_chan_event(ch, CHAN_EV_DATA, 0) & CHAN_ACT_BUFFER_DATA)
			chan_take_data(ch, elem, len);
		else
			vmc_chan_lose_guest_bytes(ch, len);
		break;
	case VMCHANNEL_MSG_CLOSE:
		vmc_chan_event(ch, CHAN_EV_CLOSE, 0);
		break;
	case VMCHANNEL_MSG_OPEN:
	case VMCHANNEL_MSG_CREDIT:
		break;
	default:
		log_warn("tx: channel %s: unexpected message type %u", ch->name, type);
		ch->stats.guest_errors++;
		break;
	}
	ch->stats.guest_errors += len && type != VMCHANNEL_MSG_DATA;
	if (len && type != VMCHANNEL_MSG_DATA)
		log_warn("tx: channel %s: payload on message type %u ignored", ch->name, type);
	vmc_chan_pump(ch);
}

void vmc_chan_reset(struct vmc_chan *ch)
{
	vmc_chan_event(ch, CHAN_EV_RESET, 0);
	vmc_chan_settle(ch);
}

/*
 * The channel leaves the table.  An open session goes on until the driver's
 * CLOSE of it, which the driver sends when it sees the table change: DATA it
 * queued before that still reaches the host program (a VM stopped when the
 * channel is removed learns of it only when it runs again).  Past
 * VMC_REMOVED_DRAIN_SECONDS the session ends anyway (vmc_chan_removed_timeout).
 */
void vmc_chan_remove(struct vmc_chan *ch)
{
	vmc_chan_close_endpoint(ch);
	ch->removed = true;
	ch->next_removed = ch->dev->removed;
	ch->dev->removed = ch;
	if (!chan_state_has_session(ch->state))
		vmc_chan_event(ch, CHAN_EV_REMOVED, 0);
	if (ch->state == CHAN_GONE) {
		chan_free(ch);
		return;
	}
	ch->retrying = false;
	vmc_chan_timer_arm(ch, VMC_REMOVED_DRAIN_SECONDS, 0);
	vmc_chan_flush(ch);
	vmc_chan_settle(ch);
}

/* A removed channel's time is up: its session ends, its host program is given up. */
void vmc_chan_removed_timeout(struct vmc_chan *ch)
{
	if (chan_state_has_session(ch->state)) {
		log_warn("channel %s: removed, and the driver did not close its session within %d s",
			 ch->name, VMC_REMOVED_DRAIN_SECONDS);
		vmc_chan_event(ch, CHAN_EV_REMOVED, 0);
	}
}

void vmc_chan_destroy(struct vmc_chan *ch)
{
	vmc_chan_discard_buffer(ch);
	chan_free(ch);
}

struct vmc_chan *vmc_chan_new(struct vmc_device *dev)
{
	struct vmc_chan *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return NULL;
	ch->dev = dev;
	ch->state = CHAN_IDLE;
	ch->client_fd = -1;
	ch->client_out_fd = -1;
	ch->listen_fd = -1;
	ch->timer_fd = -1;
	ch->client_watch.fd = -1;
	ch->client_out_watch.fd = -1;
	ch->listen_watch.fd = -1;
	ch->timer_watch.fd = -1;
	return ch;
}

int vmc_chan_create(struct vmc_device *dev, const char *name, const char *connect_path,
		    struct vmc_chan **out)
{
	struct vmc_chan *ch = vmc_chan_new(dev);
	int err;

	if (!ch)
		return -ENOMEM;
	ch->id = dev->next_id++;
	snprintf(ch->name, sizeof(ch->name), "%s", name);
	err = vmc_chan_open_endpoint(ch, connect_path);
	if (err) {
		free(ch);
		return err;
	}
	*out = ch;
	return 0;
}
