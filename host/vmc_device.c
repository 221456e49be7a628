// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The vmchannel device model.
 *
 * Host -> guest: bytes are read from a channel's client socket straight into
 * a guest receive buffer, and only as many as the guest's credit allows, so
 * nothing is buffered here and a guest that does not read makes the host
 * program's writes block.
 *
 * Guest -> host: DATA payloads are copied into the channel's bounded ring
 * (VMC_G2H_BUF_SIZE, the credit we grant) and written to the client as it
 * takes them; freed space goes back to the guest as credit.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "config_file.h"
#include "endpoint.h"
#include "log.h"
#include "vmc_device.h"

#define HDR_SIZE sizeof(struct vmchannel_hdr)

static void chan_pump(struct vmc_chan *ch);
static void chan_update_watch(struct vmc_chan *ch);
static void chan_retry(struct vmc_chan *ch, bool on);

static struct vmc_chan *chan_by_id(struct vmc_device *dev, uint32_t id)
{
	unsigned int i;

	for (i = 0; i < dev->nchans; i++)
		if (dev->chans[i]->id == id)
			return dev->chans[i];
	return NULL;
}

/* The credit the guest granted: payload bytes we may still send it. */
static uint32_t chan_guest_credit(const struct vmc_chan *ch)
{
	uint32_t in_flight = ch->tx_cnt - ch->peer_fwd_cnt;

	return in_flight > ch->peer_buf_alloc ? 0 : ch->peer_buf_alloc - in_flight;
}

/* What we can take from the guest: nothing while no client can receive it. */
static uint32_t chan_buf_alloc(const struct vmc_chan *ch)
{
	return ch->client_fd >= 0 && !ch->client_wr_closed ? VMC_G2H_BUF_SIZE : 0;
}

/* ---- configuration space ---- */

static void config_build(struct vmc_device *dev, struct vmchannel_config *cfg)
{
	unsigned int total = dev->nchans + vmc_fault_extra_entries(dev->faults);
	const struct vmc_chan *last = dev->nchans ? dev->chans[dev->nchans - 1] : NULL;

	memset(cfg, 0, sizeof(*cfg));
	if (dev->faults & (1u << VMC_FAULT_GENERATION_FLAP))
		dev->generation++;
	cfg->generation = htole32(dev->generation);
	cfg->num_channels = htole16((uint16_t)total);
	if (dev->faults & (1u << VMC_FAULT_COUNT_HUGE))
		cfg->num_channels = htole16(UINT16_MAX);
	cfg->select = htole16(dev->select);
	if (dev->select < dev->nchans) {
		const struct vmc_chan *ch = dev->chans[dev->select];

		cfg->id = htole32(ch->id);
		memcpy(cfg->name, ch->name, sizeof(cfg->name));
	} else if (dev->select < total) {
		vmc_fault_entry(dev->faults, dev->select - dev->nchans, last ? last->id : 0,
				last ? last->name : "", cfg);
	}
}

static bool vmc_get_config(void *opaque, uint32_t offset, uint8_t *buf, uint32_t size)
{
	struct vmchannel_config cfg;

	if (offset > sizeof(cfg) || size > sizeof(cfg) - offset) {
		log_warn("GET_CONFIG of %u bytes at %u is outside the configuration", size, offset);
		return false;
	}
	config_build(opaque, &cfg);
	memcpy(buf, (uint8_t *)&cfg + offset, size);
	return true;
}

static bool vmc_set_config(void *opaque, uint32_t offset, const uint8_t *buf, uint32_t size)
{
	struct vmc_device *dev = opaque;
	const uint32_t at = offsetof(struct vmchannel_config, select);
	uint16_t select;

	/*
	 * Only "select" is writable; other bytes are ignored, as specified.
	 * QEMU writes back the whole space with the guest's change in it.
	 */
	if (offset > at || size < sizeof(select) || at - offset > size - sizeof(select)) {
		log_debug("ignoring SET_CONFIG of %u bytes at %u", size, offset);
		return true;
	}
	memcpy(&select, buf + (at - offset), sizeof(select));
	dev->select = le16toh(select);
	return true;
}

/* ---- device -> guest (rxq) ---- */

static void hdr_fill(const struct vmc_chan *ch, struct vmchannel_hdr *hdr,
		     enum vmchannel_msg_type type, uint32_t len)
{
	memset(hdr, 0, sizeof(*hdr));
	hdr->channel_id = htole32(ch->id);
	hdr->type = htole16(type);
	hdr->len = htole32(len);
	hdr->buf_alloc = htole32(chan_buf_alloc(ch));
	hdr->fwd_cnt = htole32(ch->fwd_cnt);
}

/* Pops an rx buffer that can hold at least a header; NULL if none now. */
static bool rx_pop(struct vmc_device *dev, struct vq_elem *elem)
{
	struct vq *vq = vu_dev_queue(&dev->vu, VMCHANNEL_VQ_RX);

	while (vq && vq_pop(vq, &dev->vu.mem, elem) > 0) {
		if (elem->n_out == 0 && elem->in_len >= HDR_SIZE)
			return true;
		log_warn("rx: dropping a guest buffer of %zu bytes (%u readable parts)",
			 elem->in_len, elem->n_out);
		vq_push(vq, elem, 0);
	}
	return false;
}

static void rx_push(struct vmc_device *dev, struct vq_elem *elem, uint32_t len)
{
	vq_push(&dev->vu.vqs[VMCHANNEL_VQ_RX], elem, len);
}

/* Sends a message without payload; false when no rx buffer is available. */
static bool send_ctrl(struct vmc_chan *ch, enum vmchannel_msg_type type)
{
	struct vmchannel_hdr hdr;
	struct vq_elem elem;

	if (!rx_pop(ch->dev, &elem))
		return false;
	hdr_fill(ch, &hdr, type, 0);
	iov_from_buf(elem.in, elem.n_in, 0, &hdr, sizeof(hdr));
	rx_push(ch->dev, &elem, sizeof(hdr));
	if (type == VMCHANNEL_MSG_CREDIT || type == VMCHANNEL_MSG_OPEN)
		ch->fwd_reported = ch->fwd_cnt;
	return true;
}

/* Sends the next bad message of --fault; false when no rx buffer is available. */
static bool send_fault(struct vmc_chan *ch, unsigned int k)
{
	struct vmchannel_hdr hdr;
	struct vq_elem elem;
	uint32_t used;

	if (!rx_pop(ch->dev, &elem))
		return false;
	used = vmc_fault_rx_message(ch->dev->faults, k, ch->id, (uint32_t)elem.in_len, &hdr);
	iov_from_buf(elem.in, elem.n_in, 0, &hdr, sizeof(hdr));
	rx_push(ch->dev, &elem, used);
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

	if (!credit || !rx_pop(ch->dev, &elem))
		return false;
	room = elem.in_len - HDR_SIZE;
	if (room > credit)
		room = credit;
	if (room > VMCHANNEL_MAX_PAYLOAD)
		room = VMCHANNEL_MAX_PAYLOAD;
	if (!room) {
		/* A buffer with room for a header only: keep it for control. */
		vq_unpop(&ch->dev->vu.vqs[VMCHANNEL_VQ_RX]);
		return false;
	}
	n = readv(ch->client_fd, iov, (int)payload_iov(&elem, room, iov));
	if (n <= 0) {
		vq_unpop(&ch->dev->vu.vqs[VMCHANNEL_VQ_RX]);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return false;
		/* End of the host program's stream (or a reset: the same to us). */
		ch->client_rd_eof = true;
		ch->send_disconnect = true;
		return false;
	}
	hdr_fill(ch, &hdr, VMCHANNEL_MSG_DATA, (uint32_t)n);
	iov_from_buf(elem.in, elem.n_in, 0, &hdr, sizeof(hdr));
	rx_push(ch->dev, &elem, (uint32_t)(HDR_SIZE + n));
	ch->tx_cnt += (uint32_t)n;
	return true;
}

/* Sends the guest everything owed, in protocol order, as buffers allow. */
static void chan_pump(struct vmc_chan *ch)
{
	struct vq *rxq = vu_dev_queue(&ch->dev->vu, VMCHANNEL_VQ_RX);
	bool sent = false;

	if (!ch->guest_open || !rxq)
		goto out;
	if (ch->send_open_ack) {
		if (!send_ctrl(ch, VMCHANNEL_MSG_OPEN))
			goto out;
		ch->send_open_ack = false;
		sent = true;
	}
	while (ch->send_faults) {
		if (!send_fault(ch, vmc_fault_rx_messages(ch->dev->faults) - ch->send_faults))
			goto out;
		ch->send_faults--;
		sent = true;
	}
	if (ch->send_connect) {
		if (!send_ctrl(ch, VMCHANNEL_MSG_HOST_CONNECT))
			goto out;
		ch->send_connect = false;
		ch->connect_sent = true;
		sent = true;
	}
	while (ch->connect_sent && ch->client_fd >= 0 && !ch->client_rd_eof && pump_data(ch))
		sent = true;
	if (ch->send_disconnect) {
		if (!send_ctrl(ch, VMCHANNEL_MSG_HOST_DISCONNECT))
			goto out;
		ch->send_disconnect = false;
		ch->connect_sent = false;
		sent = true;
	}
	if (ch->send_credit) {
		if (!send_ctrl(ch, VMCHANNEL_MSG_CREDIT))
			goto out;
		ch->send_credit = false;
		sent = true;
	}
out:
	if (sent)
		vq_notify(rxq);
	chan_update_watch(ch);
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
	ch->client_saw_close = false;
	ch->connect_sent = false;
	ch->send_connect = false;
	/* Guest bytes for this client have nowhere to go: consumed. */
	ch->fwd_cnt += ch->buf_len;
	ch->buf_len = 0;
	ch->shutdown_pending = false;
	log_info("channel %s: host program disconnected", ch->name);
	/* A service that went away while the guest waits is called again. */
	if (ch->connects && ch->guest_open)
		chan_retry(ch, true);
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
	if (ch->guest_open && ch->fwd_cnt - ch->fwd_reported >= VMC_G2H_BUF_SIZE / 4)
		ch->send_credit = true;
}

/* The descriptor guest bytes are written to. */
static int chan_out_fd(const struct vmc_chan *ch)
{
	return ch->client_out_fd >= 0 ? ch->client_out_fd : ch->client_fd;
}

/* Ends the client's stream: shutdown for a socket, close for stdout. */
static void chan_end_client_stream(struct vmc_chan *ch)
{
	if (ch->client_out_fd >= 0) {
		loop_unwatch(&ch->client_out_watch);
		close(ch->client_out_fd);
		ch->client_out_fd = -1;
	} else {
		shutdown(ch->client_fd, SHUT_WR);
	}
}

/* Writes buffered guest bytes to the client; ends its stream if asked. */
static void chan_flush(struct vmc_chan *ch)
{
	while (ch->buf_len && ch->client_fd >= 0 && !ch->client_wr_closed) {
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
			ch->client_wr_closed = true;
			break;
		}
		ch->buf_head = (ch->buf_head + (uint32_t)n) % VMC_G2H_BUF_SIZE;
		ch->buf_len -= (uint32_t)n;
		ch->fwd_cnt += (uint32_t)n;
	}
	if (ch->client_wr_closed || ch->client_fd < 0) {
		ch->fwd_cnt += ch->buf_len;
		ch->buf_len = 0;
	}
	if (ch->shutdown_pending && !ch->buf_len) {
		if (ch->client_fd >= 0 && !ch->client_wr_closed)
			chan_end_client_stream(ch);
		ch->client_wr_closed = true;
		ch->shutdown_pending = false;
	}
	chan_credit_check(ch);
}

static void chan_update_watch(struct vmc_chan *ch)
{
	uint32_t events = 0;

	if (ch->client_fd < 0) {
		loop_set_events(&ch->listen_watch, EPOLLIN);
		return;
	}
	loop_set_events(&ch->listen_watch, 0);
	if (ch->client_hup)
		return;
	if (ch->guest_open && ch->connect_sent && !ch->client_rd_eof && chan_guest_credit(ch))
		events |= EPOLLIN;
	if (ch->client_out_fd >= 0) {
		loop_set_events(&ch->client_out_watch,
				ch->buf_len && !ch->client_wr_closed ? EPOLLOUT : 0);
	} else if (ch->buf_len && !ch->client_wr_closed) {
		events |= EPOLLOUT;
	}
	loop_set_events(&ch->client_watch, events);
}

static void chan_client_ready(void *opaque, uint32_t events)
{
	struct vmc_chan *ch = opaque;

	if (events & (EPOLLHUP | EPOLLERR)) {
		/* Fully closed: whatever it sent can still be read, without epoll. */
		loop_unwatch(&ch->client_watch);
		ch->client_hup = true;
		if (ch->client_out_fd < 0)
			ch->client_wr_closed = true;
	}
	chan_flush(ch);
	chan_pump(ch);
	/* Keep a closed client until the guest has had all it sent. */
	if (ch->client_hup && ch->client_rd_eof && !ch->send_disconnect)
		chan_close_client(ch);
	chan_update_watch(ch);
}

/* stdout of a stdio channel: room to write, or its reader went away. */
static void chan_client_out_ready(void *opaque, uint32_t events)
{
	struct vmc_chan *ch = opaque;

	if (events & (EPOLLHUP | EPOLLERR)) {
		loop_unwatch(&ch->client_out_watch);
		ch->client_wr_closed = true;
	}
	chan_flush(ch);
	chan_pump(ch);
	chan_update_watch(ch);
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
	if (ch->guest_open)
		ch->send_connect = true;
	chan_pump(ch);
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
}

/* ---- connecting endpoints: retried every second while the guest waits ---- */

static void chan_connect(struct vmc_chan *ch);

static void chan_retry_tick(void *opaque, uint32_t events)
{
	struct vmc_chan *ch = opaque;
	uint64_t ticks;

	(void)events;
	if (read(ch->retry_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_warn("channel %s: retry timer: %s", ch->name, strerror(errno));
	chan_connect(ch);
}

static void chan_retry(struct vmc_chan *ch, bool on)
{
	struct itimerspec every_second = { { 1, 0 }, { 1, 0 } }, off = { { 0, 0 }, { 0, 0 } };

	if (ch->retry_fd < 0) {
		if (!on)
			return;
		ch->retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (ch->retry_fd < 0 ||
		    loop_watch(&ch->retry_watch, ch->retry_fd, EPOLLIN, chan_retry_tick, ch) < 0) {
			log_error("channel %s: no retry timer: %s", ch->name, strerror(errno));
			if (ch->retry_fd >= 0)
				close(ch->retry_fd);
			ch->retry_fd = -1;
			return;
		}
	}
	timerfd_settime(ch->retry_fd, 0, on ? &every_second : &off, NULL);
}

/* While the guest has the channel open, keeps it connected to its service. */
static void chan_connect(struct vmc_chan *ch)
{
	int fd;

	if (!ch->connects || !ch->guest_open || ch->client_fd >= 0) {
		chan_retry(ch, false);
		return;
	}
	fd = endpoint_connect(ch->path);
	if (fd < 0) {
		log_debug("channel %s: connecting to %s: %s", ch->name, ch->path, strerror(errno));
		chan_retry(ch, true);
		return;
	}
	chan_retry(ch, false);
	chan_attach_client(ch, fd);
}

/* ---- guest -> device (txq) ---- */

static void guest_open(struct vmc_chan *ch)
{
	/* A client that saw the previous session end is finished. */
	if (ch->client_fd >= 0 && ch->client_saw_close)
		chan_close_client(ch);
	if (!ch->buf) {
		ch->buf = malloc(VMC_G2H_BUF_SIZE);
		if (!ch->buf) {
			log_error("channel %s: out of memory", ch->name);
			return;
		}
	}
	ch->guest_open = true;
	ch->buf_head = ch->buf_len = 0;
	ch->fwd_cnt = ch->fwd_reported = 0;
	ch->tx_cnt = 0;
	ch->send_open_ack = true;
	ch->send_faults = vmc_fault_rx_messages(ch->dev->faults);
	ch->send_connect = ch->client_fd >= 0;
	ch->connect_sent = false;
	ch->send_disconnect = false;
	ch->send_credit = false;
	ch->shutdown_pending = false;
	chan_connect(ch);
}

static void guest_close(struct vmc_chan *ch)
{
	if (!ch->guest_open)
		return;
	ch->guest_open = false;
	ch->send_open_ack = ch->send_connect = ch->send_disconnect = false;
	ch->send_faults = 0;
	ch->send_credit = false;
	ch->connect_sent = false;
	if (ch->client_fd >= 0) {
		ch->client_saw_close = true;
		ch->shutdown_pending = true;
	}
	chan_flush(ch);
	if (ch->client_fd >= 0 && ch->client_hup)
		chan_close_client(ch);
	chan_retry(ch, false);
}

static void guest_data(struct vmc_chan *ch, const struct vq_elem *elem, uint32_t len)
{
	uint32_t tail, first;

	if (!ch->guest_open || !ch->buf)
		return;
	if (!chan_buf_alloc(ch)) {
		/* No client to take it: consumed, so the guest never stalls. */
		ch->fwd_cnt += len;
		chan_credit_check(ch);
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

/* Validates and applies one txq message; every field comes from the guest. */
static void tx_message(struct vmc_device *dev, const struct vq_elem *elem)
{
	struct vmchannel_hdr hdr;
	struct vmc_chan *ch;
	uint32_t len;
	uint16_t type;

	if (elem->n_in || elem->out_len < HDR_SIZE) {
		log_warn("tx: malformed buffer (%zu bytes, %u writable parts)",
			 elem->out_len, elem->n_in);
		return;
	}
	iov_to_buf(elem->out, elem->n_out, 0, &hdr, sizeof(hdr));
	len = le32toh(hdr.len);
	type = le16toh(hdr.type);
	if (len != elem->out_len - HDR_SIZE || len > VMCHANNEL_MAX_PAYLOAD) {
		log_warn("tx: payload length %u in a %zu-byte buffer", len, elem->out_len);
		return;
	}
	ch = chan_by_id(dev, le32toh(hdr.channel_id));
	if (!ch) {
		log_warn("tx: message for unknown channel %u", le32toh(hdr.channel_id));
		return;
	}
	if (type == VMCHANNEL_MSG_OPEN)
		guest_open(ch);
	if (ch->guest_open) {
		ch->peer_buf_alloc = le32toh(hdr.buf_alloc);
		/* A lying device acts as if the guest had room for anything. */
		if (dev->faults & (1u << VMC_FAULT_RX_OVER_CREDIT))
			ch->peer_buf_alloc = INT32_MAX;
		ch->peer_fwd_cnt = le32toh(hdr.fwd_cnt);
	}
	switch (type) {
	case VMCHANNEL_MSG_DATA:
		guest_data(ch, elem, len);
		break;
	case VMCHANNEL_MSG_CLOSE:
		guest_close(ch);
		break;
	case VMCHANNEL_MSG_OPEN:
	case VMCHANNEL_MSG_CREDIT:
		break;
	default:
		log_warn("tx: channel %s: unexpected message type %u", ch->name, type);
		return;
	}
	if (len && type != VMCHANNEL_MSG_DATA)
		log_warn("tx: channel %s: payload on message type %u ignored", ch->name, type);
	chan_pump(ch);
}

static void process_tx(struct vmc_device *dev)
{
	struct vq *vq = vu_dev_queue(&dev->vu, VMCHANNEL_VQ_TX);
	struct vq_elem elem;
	bool used = false;

	while (vq && vq_pop(vq, &dev->vu.mem, &elem) > 0) {
		tx_message(dev, &elem);
		vq_push(vq, &elem, 0);
		used = true;
	}
	if (used)
		vq_notify(vq);
}

static void vmc_queue_kicked(void *opaque, unsigned int index)
{
	struct vmc_device *dev = opaque;
	unsigned int i;

	if (index == VMCHANNEL_VQ_TX) {
		process_tx(dev);
		return;
	}
	/* New receive buffers: every channel may have something to send. */
	for (i = 0; i < dev->nchans; i++)
		chan_pump(dev->chans[i]);
}

static void vmc_rings_stopped(void *opaque)
{
	struct vmc_device *dev = opaque;
	unsigned int i;

	/* The guest driver is gone or reset: its sessions ended. */
	for (i = 0; i < dev->nchans; i++)
		guest_close(dev->chans[i]);
}

const struct vu_device_ops vmc_device_ops = {
	.features = 1ULL << 32,		/* VIRTIO_F_VERSION_1 */
	.num_queues = VMCHANNEL_NUM_VQS,
	.get_config = vmc_get_config,
	.set_config = vmc_set_config,
	.queue_kicked = vmc_queue_kicked,
	.rings_stopped = vmc_rings_stopped,
};

static struct vmc_chan *chan_by_name(struct vmc_device *dev, const char *name)
{
	unsigned int i;

	for (i = 0; i < dev->nchans; i++)
		if (!strcmp(dev->chans[i]->name, name))
			return dev->chans[i];
	return NULL;
}

/* Closes the channel's endpoint; the memory goes once the loop is done with it. */
static void chan_destroy(struct vmc_chan *ch)
{
	guest_close(ch);
	if (ch->client_fd >= 0)
		chan_close_client(ch);
	if (ch->listen_fd >= 0) {
		loop_unwatch(&ch->listen_watch);
		close(ch->listen_fd);
		unlink(ch->path);
	}
	if (ch->retry_fd >= 0) {
		loop_unwatch(&ch->retry_watch);
		close(ch->retry_fd);
	}
	free(ch->buf);
	loop_defer_free(ch);
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

static int chan_create(struct vmc_device *dev, const char *spec)
{
	char name[VMCHANNEL_NAME_SIZE], connect_path[108];
	const char *why;
	struct vmc_chan *ch;

	if (channel_spec_parse(spec, name, connect_path, &why) < 0) {
		log_error("channel %s: %s", spec, why);
		return -EINVAL;
	}
	if (dev->nchans == VMCHANNEL_MAX_CHANNELS) {
		log_error("channel %s: the device has %u channels already", name, dev->nchans);
		return -ENOSPC;
	}
	if (chan_by_name(dev, name)) {
		log_error("channel %s exists already", name);
		return -EEXIST;
	}
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	ch->dev = dev;
	ch->id = dev->next_id++;
	ch->client_fd = -1;
	ch->client_out_fd = -1;
	ch->listen_fd = -1;
	ch->retry_fd = -1;
	ch->client_watch.fd = -1;
	ch->client_out_watch.fd = -1;
	ch->listen_watch.fd = -1;
	ch->retry_watch.fd = -1;
	snprintf(ch->name, sizeof(ch->name), "%s", name);
	if (!strcmp(connect_path, "-")) {
		if (chan_attach_stdio(ch) < 0) {
			free(ch);
			return -EINVAL;
		}
		dev->chans[dev->nchans++] = ch;
		return 0;
	}
	if (connect_path[0]) {
		ch->connects = true;
		snprintf(ch->path, sizeof(ch->path), "%s", connect_path);
		dev->chans[dev->nchans++] = ch;
		return 0;
	}
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
	dev->chans[dev->nchans++] = ch;
	return 0;
}

/* The table changed: a new generation, and the guest is told. */
static void table_changed(struct vmc_device *dev)
{
	dev->generation++;
	vu_dev_config_changed(&dev->vu);
}

int vmc_device_add_channel(struct vmc_device *dev, const char *spec)
{
	int err = chan_create(dev, spec);

	if (!err) {
		log_info("channel %s added", spec);
		table_changed(dev);
	}
	return err;
}

int vmc_device_remove_channel(struct vmc_device *dev, const char *name)
{
	struct vmc_chan *ch = chan_by_name(dev, name);
	unsigned int i;

	if (!ch)
		return -ENOENT;
	for (i = 0; dev->chans[i] != ch; i++)
		;
	memmove(&dev->chans[i], &dev->chans[i + 1],
		(dev->nchans - i - 1) * sizeof(dev->chans[0]));
	dev->nchans--;
	chan_destroy(ch);
	log_info("channel %s removed", name);
	table_changed(dev);
	return 0;
}

int vmc_device_init(struct vmc_device *dev, const char *dir, char **specs,
		    unsigned int n)
{
	unsigned int i;

	memset(dev, 0, sizeof(*dev));
	vu_dev_init(&dev->vu, &vmc_device_ops, dev);
	dev->generation = 1;
	dev->next_id = 1;
	dev->dir = dir;
	dev->chans = calloc(VMCHANNEL_MAX_CHANNELS, sizeof(*dev->chans));
	if (!dev->chans)
		return -1;
	for (i = 0; i < n; i++)
		if (chan_create(dev, specs[i]) < 0)
			return -1;
	return 0;
}

void vmc_device_fini(struct vmc_device *dev)
{
	unsigned int i;

	vu_dev_detach(&dev->vu);
	for (i = 0; i < dev->nchans; i++)
		chan_destroy(dev->chans[i]);
	free(dev->chans);
	dev->chans = NULL;
	dev->nchans = 0;
}
