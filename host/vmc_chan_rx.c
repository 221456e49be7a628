// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A channel's messages to the driver: what a session is owed, in protocol
 * order, and host bytes read straight into guest receive buffers, only as
 * many as the guest's credit allows, so nothing is buffered here and a guest
 * that does not read makes the host program's writes block.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "vmc_chan.h"

#define HDR_SIZE sizeof(struct vmchannel_hdr)

/* The credit the guest granted: payload bytes we may still send it. */
uint32_t vmc_chan_guest_credit(const struct vmc_chan *ch)
{
	uint32_t in_flight = ch->tx_cnt - ch->peer_fwd_cnt;

	return in_flight > ch->peer_buf_alloc ? 0 : ch->peer_buf_alloc - in_flight;
}

/* What we can take from the guest: only for a connection serving the session. */
uint32_t vmc_chan_buf_alloc(const struct vmc_chan *ch)
{
	return ch->state == CHAN_LINKED && vmc_chan_host_takes(ch) && ch->buf ? VMC_G2H_BUF_SIZE : 0;
}

/*
 * Marks credit owed to the guest once a quarter of the buffer has been
 * consumed since the last report.  That is soon enough for a guest writing
 * steadily never to wait, and a guest that has used up its credit gets it
 * back as the buffer drains.  Not after every message: each credit message
 * costs the guest a receive buffer and an interrupt.
 */
void vmc_chan_credit_check(struct vmc_chan *ch)
{
	if (chan_state_has_session(ch->state) &&
	    ch->fwd_cnt - ch->fwd_reported >= VMC_G2H_BUF_SIZE / 4)
		ch->owed |= VMC_OWE_CREDIT;
}

/*
 * Guest bytes of the session that will never reach a host program: counted
 * as consumed so the writer is not stalled, and the driver is told.
 */
void vmc_chan_lose_guest_bytes(struct vmc_chan *ch, uint32_t len)
{
	ch->fwd_cnt += len;
	ch->stats.lost_bytes += len;
	ch->data_lost = true;
	vmc_chan_credit_check(ch);
}

static void hdr_fill(struct vmc_chan *ch, struct vmchannel_hdr *hdr,
		     enum vmchannel_msg_type type, uint32_t len)
{
	ch->stats.messages_to_guest++;
	memset(hdr, 0, sizeof(*hdr));
	hdr->channel_id = htole32(ch->id);
	hdr->type = htole16(type);
	hdr->len = htole32(len);
	hdr->session = htole32(ch->session);
	hdr->buf_alloc = htole32(vmc_chan_buf_alloc(ch));
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

/* Pops an rx buffer; without one the channel waits for the next. */
static bool chan_rx_pop(struct vmc_chan *ch, struct vq_elem *elem)
{
	if (vmc_rx_pop(ch->dev, elem))
		return true;
	vmc_ready_add(ch);
	return false;
}

/* Sends a message without payload; false when no rx buffer is available. */
static bool send_ctrl(struct vmc_chan *ch, enum vmchannel_msg_type type)
{
	struct vmchannel_hdr hdr;
	struct vq_elem elem;

	if (!chan_rx_pop(ch, &elem))
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

	if (!chan_rx_pop(ch, &elem))
		return false;
	used = vmc_fault_rx_message(ch->dev->faults, k, ch->id, (uint32_t)elem.in_len, &hdr);
	iov_from_buf(elem.in, elem.n_in, 0, &hdr, sizeof(hdr));
	vq_push(vmc_rxq(ch->dev), &elem, used);
	return true;
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
	uint32_t credit = vmc_chan_guest_credit(ch);
	size_t room;
	ssize_t n;

	vmc_chan_stats_credit(&ch->stats, credit);
	/* Level-triggered epoll reports bytes that come later (vmc_chan_update_watch). */
	if (ch->client_drained && !ch->client_hup)
		return false;
	if (!credit || !chan_rx_pop(ch, &elem))
		return false;
	room = elem.in_len - HDR_SIZE;
	if (room > credit)
		room = credit;
	if (room > VMCHANNEL_MAX_PAYLOAD)
		room = VMCHANNEL_MAX_PAYLOAD;
	if (!room) {
		/*
		 * A buffer with room for a header only would stop every channel
		 * behind it: it carries a CREDIT, always a valid message.
		 */
		hdr_fill(ch, &hdr, VMCHANNEL_MSG_CREDIT, 0);
		iov_from_buf(elem.in, elem.n_in, 0, &hdr, sizeof(hdr));
		vq_push(vmc_rxq(ch->dev), &elem, sizeof(hdr));
		return true;
	}
	n = readv(ch->client_fd, iov, (int)iov_slice(elem.in, elem.n_in, HDR_SIZE, room, iov));
	if (n <= 0) {
		vq_unpop(vmc_rxq(ch->dev));
		if (n < 0 && errno == EAGAIN)
			ch->client_drained = true;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return false;
		/* The guest's buffer failed (its memory file shrank), not the host program. */
		if (n < 0 && errno == EFAULT) {
			guest_mem_fault(&ch->dev->vu.mem);
			return false;
		}
		/* End of the host program's stream (or a reset: the same to us). */
		ch->stats.host_errors += n < 0;
		chan_host_stopped_sending(ch);
		return false;
	}
	/* A stream socket or pipe fills what it can: a short read emptied it. */
	if ((size_t)n < room)
		ch->client_drained = true;
	hdr_fill(ch, &hdr, VMCHANNEL_MSG_DATA, (uint32_t)n);
	iov_from_buf(elem.in, elem.n_in, 0, &hdr, sizeof(hdr));
	vq_push(vmc_rxq(ch->dev), &elem, (uint32_t)(HDR_SIZE + n));
	ch->tx_cnt += (uint32_t)n;
	ch->stats.bytes_to_guest += (uint64_t)n;
	ch->dev->bytes_to_guest += (uint64_t)n;
	return true;
}

/* The driver holds fewer than VMCHANNEL_EOF_WINDOW of our ends of stream. */
static bool chan_eof_window_open(const struct vmc_chan *ch)
{
	return ch->disconnects_sent - ch->peer_eof_cnt < VMCHANNEL_EOF_WINDOW;
}

/* The session is owed messages (not counting host bytes). */
bool vmc_chan_owes_driver(const struct vmc_chan *ch)
{
	return chan_state_has_session(ch->state) && (ch->owed || ch->send_faults || ch->data_lost);
}

/* Sends what the session is owed, in protocol order, as rx buffers allow. */
void vmc_chan_send_owed(struct vmc_chan *ch)
{
	/* These carry our credit for the connection: it must still be there. */
	if (ch->owed & (VMC_OWE_OPEN | VMC_OWE_CONNECT))
		vmc_chan_host_check(ch);
	if (ch->owed & VMC_OWE_OPEN) {
		if (!send_ctrl(ch, VMCHANNEL_MSG_OPEN))
			return;
		ch->owed &= ~VMC_OWE_OPEN;
	}
	while (ch->send_faults) {
		if (!send_fault(ch, vmc_fault_rx_messages(ch->dev->faults) - ch->send_faults))
			return;
		ch->send_faults--;
	}
	/* A new host stream waits while the driver holds a window of ends. */
	if ((ch->owed & VMC_OWE_CONNECT) && chan_eof_window_open(ch)) {
		if (!send_ctrl(ch, VMCHANNEL_MSG_HOST_CONNECT))
			return;
		ch->owed &= ~VMC_OWE_CONNECT;
		ch->connect_sent = true;
	}
	while (ch->state == CHAN_LINKED && ch->connect_sent && !ch->client_rd_eof &&
	       pump_data(ch))
		;
	if (ch->owed & VMC_OWE_DISCONNECT) {
		if (!send_ctrl(ch, VMCHANNEL_MSG_HOST_DISCONNECT))
			return;
		ch->owed &= ~VMC_OWE_DISCONNECT;
		ch->connect_sent = false;
		ch->disconnects_sent++;
	}
	if ((ch->owed & VMC_OWE_CREDIT) || ch->data_lost) {
		if (!send_ctrl(ch, VMCHANNEL_MSG_CREDIT))
			return;
		ch->owed &= ~VMC_OWE_CREDIT;
	}
}
