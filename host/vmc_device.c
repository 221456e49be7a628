// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The vmchannel device model: the channel table, txq validation and
 * dispatch, the device-level messages (RESET, SUSPEND, RESUME), and which
 * channel is served when rxq has buffers.
 */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_file.h"
#include "log.h"
#include "vmc_chan.h"

#define HDR_SIZE sizeof(struct vmchannel_hdr)

static struct vmc_chan **id_bucket(struct vmc_device *dev, uint32_t id)
{
	return &dev->by_id[id % VMC_ID_BUCKETS];
}

/* The channel with @id, in the table or removed; NULL if none. */
static struct vmc_chan *chan_by_id(struct vmc_device *dev, uint32_t id)
{
	struct vmc_chan *ch;

	for (ch = *id_bucket(dev, id); ch; ch = ch->next_by_id)
		if (ch->id == id)
			return ch;
	return NULL;
}

static struct vmc_chan *chan_by_name(struct vmc_device *dev, const char *name)
{
	unsigned int i;

	for (i = 0; i < dev->nchans; i++)
		if (!strcmp(dev->chans[i]->name, name))
			return dev->chans[i];
	return NULL;
}

/* Driver RESET (or the frontend gone): removed channels' sessions end too. */
static void reset_removed(struct vmc_device *dev)
{
	struct vmc_chan *ch, *next;

	/* vmc_chan_reset() may free the channel, never another one. */
	for (ch = dev->removed; ch; ch = next) {
		next = ch->next_removed;
		if (chan_state_has_session(ch->state))
			vmc_chan_reset(ch);
	}
}

/* Takes a channel off the flush list; false if it was not on it. */
static bool flush_del(struct vmc_chan *ch)
{
	if (!ch->flush_pending)
		return false;
	ch->flush_pending = false;
	TAILQ_REMOVE(&ch->dev->flush, ch, flush_link);
	return true;
}

void vmc_device_forget(struct vmc_chan *ch)
{
	struct vmc_chan **p;

	vmc_ready_del(ch);
	flush_del(ch);
	for (p = id_bucket(ch->dev, ch->id); *p; p = &(*p)->next_by_id)
		if (*p == ch) {
			*p = ch->next_by_id;
			break;
		}
}

/* ---- rxq ---- */

void vmc_ready_add(struct vmc_chan *ch)
{
	if (ch->ready)
		return;
	TAILQ_INSERT_TAIL(&ch->dev->ready, ch, ready_link);
	ch->dev->nready++;
	ch->ready = true;
}

void vmc_ready_del(struct vmc_chan *ch)
{
	if (!ch->ready)
		return;
	TAILQ_REMOVE(&ch->dev->ready, ch, ready_link);
	ch->dev->nready--;
	ch->ready = false;
}

/* rxq whatever is owed on it: NULL while the rings are stopped or SUSPEND holds. */
static struct vq *device_rxq(struct vmc_device *dev)
{
	return dev->rx_suspended ? NULL : vu_dev_queue(&dev->vu, VMCHANNEL_VQ_RX);
}

struct vq *vmc_rxq(struct vmc_device *dev)
{
	/* A device-level reply goes before any channel message. */
	return dev->owe_reset || dev->owe_suspend ? NULL : device_rxq(dev);
}

bool vmc_rx_pop(struct vmc_device *dev, struct vq_elem *elem)
{
	struct vq *vq = device_rxq(dev);

	while (vq && vq_pop(vq, &dev->vu.mem, elem) > 0) {
		if (elem->n_out == 0 && elem->in_len >= HDR_SIZE)
			return true;
		log_warn("rx: dropping a guest buffer of %zu bytes (%u readable parts)",
			 elem->in_len, elem->n_out);
		vq_push(vq, elem, 0);
	}
	/* Until the guest kicks rxq with new buffers, no host socket is read. */
	dev->rx_starved = true;
	return false;
}

/* Sends a device-level message (channel 0, session 0); false without a buffer. */
static bool send_device_message(struct vmc_device *dev, enum vmchannel_msg_type type)
{
	struct vmchannel_hdr hdr = {
		.channel_id = htole32(VMCHANNEL_DEVICE_CHANNEL),
		.type = htole16(type),
	};
	struct vq_elem elem;

	if (!vmc_rx_pop(dev, &elem))
		return false;
	iov_from_buf(elem.in, elem.n_in, 0, &hdr, sizeof(hdr));
	vq_push(device_rxq(dev), &elem, sizeof(hdr));
	return true;
}

/* Sends the owed device-level replies; SUSPEND's is the last use of rxq until RESUME. */
static void device_send_owed(struct vmc_device *dev)
{
	if (dev->owe_reset && send_device_message(dev, VMCHANNEL_MSG_RESET))
		dev->owe_reset = false;
	if (!dev->owe_reset && dev->owe_suspend && send_device_message(dev, VMCHANNEL_MSG_SUSPEND)) {
		dev->owe_suspend = false;
		dev->rx_suspended = true;
	}
}

/*
 * Serves the channels waiting for rxq, each up to its credit, in the order
 * they came to wait.  One that was served and has more goes to the back;
 * one that got no buffer when they ran out stays in front, so no channel is
 * favoured by its place in the table.  Channels not waiting are not visited:
 * their sockets stay watched as they are.
 */
static void device_pump(struct vmc_device *dev)
{
	unsigned int n;
	struct vmc_chan *ch;
	struct vq *rxq;

	device_send_owed(dev);
	rxq = vmc_rxq(dev);
	/* At most one visit each: a channel waits again only when rxq runs dry. */
	for (n = dev->nready; rxq && n && !dev->rx_starved; n--) {
		uint16_t used_before = rxq->used_idx;

		ch = TAILQ_FIRST(&dev->ready);
		vmc_ready_del(ch);
		vmc_chan_pump(ch);
		if (ch->ready && rxq->used_idx == used_before) {
			TAILQ_REMOVE(&dev->ready, ch, ready_link);
			TAILQ_INSERT_HEAD(&dev->ready, ch, ready_link);
		}
	}
}

/* ---- txq ---- */

static void device_message(struct vmc_device *dev, uint16_t type)
{
	unsigned int i;

	switch (type) {
	case VMCHANNEL_MSG_RESET:
		/* A new driver: every session ends, and nothing owed to the old one follows. */
		log_info("driver reset: every session ends");
		for (i = 0; i < dev->nchans; i++)
			vmc_chan_reset(dev->chans[i]);
		reset_removed(dev);
		dev->owe_reset = true;
		dev->owe_suspend = false;
		dev->rx_suspended = false;
		break;
	case VMCHANNEL_MSG_SUSPEND:
		dev->owe_suspend = true;
		break;
	case VMCHANNEL_MSG_RESUME:
		dev->rx_suspended = false;
		dev->rx_starved = false;
		break;
	default:
		log_warn("tx: unexpected device-level message type %u", type);
		return;
	}
	device_pump(dev);
}

/* Validates and applies one txq message; every field comes from the guest. */
static void tx_message(struct vmc_device *dev, const struct vq_elem *elem)
{
	struct vmchannel_hdr hdr;
	struct vmc_chan *ch;
	uint32_t len, id;

	if (elem->n_in || elem->out_len < HDR_SIZE) {
		log_warn("tx: malformed buffer (%zu bytes, %u writable parts)",
			 elem->out_len, elem->n_in);
		return;
	}
	iov_to_buf(elem->out, elem->n_out, 0, &hdr, sizeof(hdr));
	/* Read from memory that faulted: zeros, not the guest's message. */
	if (dev->vu.mem.faulted)
		return;
	len = le32toh(hdr.len);
	id = le32toh(hdr.channel_id);
	if (len != elem->out_len - HDR_SIZE || len > VMCHANNEL_MAX_PAYLOAD) {
		log_warn("tx: payload length %u in a %zu-byte buffer", len, elem->out_len);
		return;
	}
	if (id == VMCHANNEL_DEVICE_CHANNEL) {
		device_message(dev, le16toh(hdr.type));
		return;
	}
	ch = chan_by_id(dev, id);
	/* A removed channel takes only its open session's messages. */
	if (ch && ch->removed && !chan_state_has_session(ch->state))
		ch = NULL;
	if (!ch) {
		log_warn("tx: message for unknown channel %u", id);
		return;
	}
	vmc_chan_message(ch, &hdr, elem, len);
}

void vmc_chan_flush_later(struct vmc_chan *ch)
{
	if (ch->flush_pending)
		return;
	ch->flush_pending = true;
	TAILQ_INSERT_TAIL(&ch->dev->flush, ch, flush_link);
}

void vmc_chan_flush_now(struct vmc_chan *ch)
{
	if (flush_del(ch))
		vmc_chan_flush(ch);
}

static void process_tx(struct vmc_device *dev)
{
	struct vq *vq = vu_dev_queue(&dev->vu, VMCHANNEL_VQ_TX);
	struct vmc_chan *ch;
	struct vq_elem elem;

	while (vq && vq_pop(vq, &dev->vu.mem, &elem) > 0) {
		tx_message(dev, &elem);
		vq_push(vq, &elem, 0);
	}
	/* One write per channel of the short payloads gathered (may free it). */
	while ((ch = TAILQ_FIRST(&dev->flush))) {
		vmc_chan_flush_now(ch);
		vmc_chan_pump(ch);
	}
}

void vmc_device_signal_guest(struct vmc_device *dev)
{
	switch (vq_notify(&dev->vu.vqs[VMCHANNEL_VQ_RX])) {
	case VQ_NOTHING_NEW:
		break;
	case VQ_SIGNALLED:
		dev->guest_polls_rx = false;
		break;
	case VQ_NOT_WANTED:
		dev->guest_polls_rx = true;
		break;
	}
	vq_notify(&dev->vu.vqs[VMCHANNEL_VQ_TX]);
}

/*
 * A batch that moved this many bytes to host programs or to the guest belongs
 * to a bulk transfer: the guest's CPU bounds it, so polling for the next event
 * would not speed it up, but it tripled vmchanneld's CPU time per GiB.
 */
#define BULK_BATCH_BYTES (32 * 1024)

/*
 * After each batch of events: one interrupt per queue tells of all it used.
 * The loop sleeps at once after a bulk batch, and while the guest takes
 * rxq's messages without an interrupt: its reader polls rxq (the driver's
 * readwait.c), and two pollers (the guest's vCPU, vmchanneld) on a host with
 * two CPUs left the host program that answers without one.  The guest's
 * answers then come with a kick.
 */
static void batch_end(void *opaque)
{
	struct vmc_device *dev = opaque;
	uint64_t moved = dev->bytes_to_hosts + dev->bytes_to_guest;

	vmc_device_signal_guest(dev);
	if (dev->guest_polls_rx || moved - dev->moved_at_batch_end >= BULK_BATCH_BYTES)
		loop_sleep_next();
	dev->moved_at_batch_end = moved;
}

/*
 * While the loop polls, vmchanneld looks at txq itself and the guest's
 * writes need no kick: under TCG each is an exit of the vCPU thread and an
 * eventfd write, a large part of a short write's cost.
 */
static bool txq_ready(void *opaque)
{
	struct vmc_device *dev = opaque;

	return vq_has_avail(&dev->vu.vqs[VMCHANNEL_VQ_TX]);
}

static bool txq_kicks(void *opaque, bool on)
{
	struct vmc_device *dev = opaque;

	return vq_want_kicks(&dev->vu.vqs[VMCHANNEL_VQ_TX], on);
}

static void txq_run(void *opaque)
{
	process_tx(opaque);
}

void vmc_device_ask_for_kicks(struct vmc_device *dev)
{
	while (txq_kicks(dev, true))
		process_tx(dev);
}

/* ---- vhost-user events ---- */

static void vmc_queue_kicked(void *opaque, unsigned int index)
{
	struct vmc_device *dev = opaque;

	if (index == VMCHANNEL_VQ_TX) {
		process_tx(dev);
		return;
	}
	/* New receive buffers: the channels waiting for them are served. */
	dev->rx_starved = false;
	device_pump(dev);
}

/* A VM pause (or migration) stops the rings: every session waits, nothing ends. */
static void vmc_rings_stopped(void *opaque)
{
	struct vmc_device *dev = opaque;
	unsigned int i;

	/* What was used before the stop is announced now, while the call fd is there. */
	vmc_device_signal_guest(dev);
	/*
	 * No host socket is read while stopped: the socket watches change, and
	 * channels with something to send wait for the rings to run again.
	 */
	for (i = 0; i < dev->nchans; i++)
		vmc_chan_pump(dev->chans[i]);
}

static void vmc_rings_started(void *opaque)
{
	struct vmc_device *dev = opaque;

	process_tx(dev);
	dev->rx_starved = false;
	device_pump(dev);
}

/* The frontend went away or reset the device: its driver's sessions are over. */
static void vmc_device_reset(void *opaque)
{
	struct vmc_device *dev = opaque;
	unsigned int i;

	for (i = 0; i < dev->nchans; i++)
		vmc_chan_reset(dev->chans[i]);
	reset_removed(dev);
	dev->owe_reset = dev->owe_suspend = dev->rx_suspended = false;
}

const struct vu_device_ops vmc_device_ops = {
	/* VIRTIO_F_VERSION_1; EVENT_IDX: the guest kicks and is interrupted only when needed. */
	.features = (1ULL << 32) | (1ULL << VIRTIO_RING_F_EVENT_IDX),
	.num_queues = VMCHANNEL_NUM_VQS,
	.get_config = vmc_get_config,
	.set_config = vmc_set_config,
	.queue_kicked = vmc_queue_kicked,
	.rings_stopped = vmc_rings_stopped,
	.rings_started = vmc_rings_started,
	.device_reset = vmc_device_reset,
};

/* ---- the table ---- */

static int chan_create(struct vmc_device *dev, const char *spec)
{
	char name[VMCHANNEL_NAME_SIZE], connect_path[108];
	const char *why;
	struct vmc_chan *ch;
	int err;

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
	err = vmc_chan_create(dev, name, connect_path, &ch);
	if (err)
		return err;
	dev->chans[dev->nchans++] = ch;
	ch->next_by_id = *id_bucket(dev, ch->id);
	*id_bucket(dev, ch->id) = ch;
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
	log_info("channel %s removed", name);
	vmc_chan_remove(ch);
	table_changed(dev);
	return 0;
}

int vmc_device_setup(struct vmc_device *dev, const char *dir)
{
	memset(dev, 0, sizeof(*dev));
	vu_dev_init(&dev->vu, &vmc_device_ops, dev);
	dev->generation = 1;
	dev->next_id = 1;
	dev->dir = dir;
	TAILQ_INIT(&dev->ready);
	TAILQ_INIT(&dev->flush);
	loop_on_batch_end(batch_end, dev);
	dev->txq_poller = (struct loop_poller){ txq_ready, txq_kicks, txq_run, dev };
	loop_set_poller(&dev->txq_poller);
	dev->chans = calloc(VMCHANNEL_MAX_CHANNELS, sizeof(*dev->chans));
	return dev->chans ? 0 : -1;
}

int vmc_device_init(struct vmc_device *dev, const char *dir, char **specs,
		    unsigned int n)
{
	unsigned int i;

	if (vmc_device_setup(dev, dir) < 0)
		return -1;
	for (i = 0; i < n; i++)
		if (chan_create(dev, specs[i]) < 0)
			return -1;
	return 0;
}

int vmc_device_adopt(struct vmc_device *dev, struct vmc_chan *ch)
{
	if (chan_by_id(dev, ch->id) || (!ch->removed && chan_by_name(dev, ch->name)) ||
	    (!ch->removed && dev->nchans == VMCHANNEL_MAX_CHANNELS))
		return -1;
	if (ch->removed) {
		/* Appended: the list keeps the order it was saved in. */
		struct vmc_chan **p = &dev->removed;

		while (*p)
			p = &(*p)->next_removed;
		*p = ch;
	} else {
		dev->chans[dev->nchans++] = ch;
	}
	dev->stdio_taken |= ch->client_out_fd == STDOUT_FILENO;
	ch->next_by_id = *id_bucket(dev, ch->id);
	*id_bucket(dev, ch->id) = ch;
	return 0;
}

int vmc_device_ready_restore(struct vmc_device *dev, uint32_t id)
{
	struct vmc_chan *ch = chan_by_id(dev, id);

	if (!ch || ch->removed || ch->ready)
		return -1;
	vmc_ready_add(ch);
	return 0;
}

int vmc_device_resume(struct vmc_device *dev)
{
	struct vmc_chan *ch, *next;
	unsigned int i;

	for (i = 0; i < dev->nchans; i++)
		if (vmc_chan_resume(dev->chans[i]) < 0)
			return -1;
	for (ch = dev->removed; ch; ch = next) {
		next = ch->next_removed;
		if (vmc_chan_resume(ch) < 0)
			return -1;
	}
	return 0;
}

uint64_t vmc_device_undelivered(const struct vmc_device *dev)
{
	const struct vmc_chan *ch;
	uint64_t held = 0;
	unsigned int i;

	for (i = 0; i < dev->nchans; i++)
		if (vmc_chan_host_takes(dev->chans[i]))
			held += dev->chans[i]->buf_len;
	for (ch = dev->removed; ch; ch = ch->next_removed)
		if (vmc_chan_host_takes(ch))
			held += ch->buf_len;
	return held;
}

void vmc_device_fini(struct vmc_device *dev)
{
	unsigned int i;

	loop_on_batch_end(NULL, NULL);
	loop_set_poller(NULL);
	vu_dev_detach(&dev->vu);
	for (i = 0; i < dev->nchans; i++)
		vmc_chan_destroy(dev->chans[i]);
	while (dev->removed)
		vmc_chan_destroy(dev->removed);
	free(dev->chans);
	dev->chans = NULL;
	dev->nchans = 0;
}
