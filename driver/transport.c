// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Messages on the two shared virtqueues and the per-channel credit.
 *
 * rxq carries one message per buffer from the device.  Because the device
 * may only send a channel what that channel's credit allows, every message
 * can be consumed at once: the rx work never waits for a reader, so a
 * stalled reader holds up only its own channel.
 *
 * txq carries one message per VMC_TX_BUF_SIZE buffer.  Senders take used
 * buffers back themselves before adding one, so txq raises no interrupt
 * unless it is full and a sender sleeps on vmc_dev.tx_wait for room.  Used
 * buffers go to a small pool rather than to the allocator: kernels built with
 * init_on_alloc (Debian's are) zero every allocation, and zeroing a fresh
 * 16 KiB buffer per message took a fifth of a sending guest's CPU.  At most a
 * ring of used buffers waits for the next send.
 */
#include <linux/minmax.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "vmchannel.h"

/* A buffer the device fills: room for the largest message we accept. */
static int vmc_rx_add(struct vmc_dev *vmc, void *buf)
{
	struct scatterlist sg;

	sg_init_one(&sg, buf, VMC_RX_BUF_SIZE);
	return virtqueue_add_inbuf(vmc->rx_vq, &sg, 1, buf, GFP_KERNEL);
}

/* Posts receive buffers until the ring is full; called at probe. */
int vmc_rx_fill(struct vmc_dev *vmc)
{
	unsigned int i;
	void *buf;
	int err;

	for (i = 0; i < VMC_RX_BUFS; i++) {
		buf = kmalloc(VMC_RX_BUF_SIZE, GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
		spin_lock_irq(&vmc->rx_lock);
		err = vmc_rx_add(vmc, buf);
		spin_unlock_irq(&vmc->rx_lock);
		if (err) {
			kfree(buf);
			/* A smaller ring than VMC_RX_BUFS is simply full. */
			return err == -ENOSPC ? 0 : err;
		}
	}
	return 0;
}

/* The credit the device granted us: payload bytes we may still send. */
u32 vmc_tx_credit(const struct vmc_channel *ch)
{
	u32 in_flight = ch->tx_cnt - ch->peer_fwd_cnt;

	/* A device that reports more consumed than sent gets no extra credit. */
	if (in_flight > ch->peer_buf_alloc)
		return 0;
	return ch->peer_buf_alloc - in_flight;
}

static u32 vmc_rx_free(const struct vmc_channel *ch)
{
	return VMC_RX_RING_SIZE - (ch->rx_cnt - ch->fwd_cnt);
}

/* Copies a DATA payload into the channel's ring; caller holds ch->lock. */
static void vmc_rx_data(struct vmc_channel *ch, const u8 *data, u32 len)
{
	u32 pos = ch->rx_cnt % VMC_RX_RING_SIZE;
	u32 first = min(len, VMC_RX_RING_SIZE - pos);

	if (len > vmc_rx_free(ch)) {
		dev_warn_ratelimited(&ch->vmc->vdev->dev,
				     "channel %s: device sent %u bytes beyond its credit: dropped\n",
				     ch->name, len);
		return;
	}
	memcpy(ch->ring + pos, data, first);
	memcpy(ch->ring, data + first, len - first);
	ch->rx_cnt += len;
	ch->rx_bytes += len;
}

static void vmc_rx_eof(struct vmc_channel *ch)
{
	/* A mark at the position of the previous one adds nothing. */
	if (ch->n_eof && ch->eof[ch->n_eof - 1] == ch->rx_cnt)
		return;
	if (ch->n_eof == VMC_MAX_EOF_MARKS) {
		dev_warn_ratelimited(&ch->vmc->vdev->dev,
				     "channel %s: too many host sessions unread; merging\n",
				     ch->name);
		return;
	}
	ch->eof[ch->n_eof++] = ch->rx_cnt;
}

/* Applies one validated message to its channel. */
static void vmc_rx_message(struct vmc_channel *ch, const struct vmchannel_hdr *hdr,
			   const u8 *payload, u32 len)
{
	u16 type = le16_to_cpu(hdr->type);
	bool was_connected, connected;
	unsigned long flags;

	spin_lock_irqsave(&ch->lock, flags);
	was_connected = ch->host_connected;
	if (type == VMCHANNEL_MSG_OPEN && ch->session && !ch->acked)
		ch->acked = true;
	/* Anything before the device's OPEN belongs to an earlier session. */
	if (!ch->session || !ch->acked || ch->removed)
		goto out_unlock;

	ch->peer_buf_alloc = le32_to_cpu(hdr->buf_alloc);
	ch->peer_fwd_cnt = le32_to_cpu(hdr->fwd_cnt);
	switch (type) {
	case VMCHANNEL_MSG_DATA:
		vmc_rx_data(ch, payload, len);
		break;
	case VMCHANNEL_MSG_HOST_CONNECT:
		if (!ch->host_connected)
			ch->connections++;
		ch->host_connected = true;
		break;
	case VMCHANNEL_MSG_HOST_DISCONNECT:
		ch->host_connected = false;
		vmc_rx_eof(ch);
		break;
	default:
		break;
	}
out_unlock:
	connected = ch->host_connected;
	spin_unlock_irqrestore(&ch->lock, flags);
	wake_up_interruptible_all(&ch->wait);
	kill_fasync(&ch->fasync, SIGIO, POLL_IN);
	if (connected != was_connected)
		vmc_channel_state_changed(ch, connected);
}

/* Validates a used rx buffer; every field comes from the untrusted device. */
static void vmc_rx_buffer(struct vmc_dev *vmc, const u8 *buf, unsigned int used)
{
	const struct vmchannel_hdr *hdr = (const void *)buf;
	struct device *dev = &vmc->vdev->dev;
	struct vmc_channel *ch;
	bool is_data;
	u32 len;
	u16 type;

	if (used < sizeof(*hdr) || used > VMC_RX_BUF_SIZE) {
		dev_warn_ratelimited(dev, "rx: used length %u out of range\n", used);
		return;
	}
	len = le32_to_cpu(hdr->len);
	type = le16_to_cpu(hdr->type);
	if (len != used - sizeof(*hdr) || len > VMCHANNEL_MAX_PAYLOAD) {
		dev_warn_ratelimited(dev, "rx: payload length %u, used %u\n", len, used);
		return;
	}
	/* Only DATA has a payload, and it is never empty. */
	is_data = type == VMCHANNEL_MSG_DATA;
	if (type < VMCHANNEL_MSG_DATA || type > VMCHANNEL_MSG_HOST_DISCONNECT ||
	    type == VMCHANNEL_MSG_CLOSE || is_data != !!len) {
		dev_warn_ratelimited(dev, "rx: bad message type %u (length %u)\n", type, len);
		return;
	}
	ch = vmc_channel_get_by_id(vmc, le32_to_cpu(hdr->channel_id));
	if (!ch) {
		/* Also seen, rarely, for a channel removed with messages in flight. */
		dev_warn_ratelimited(dev, "rx: message for unknown channel %u: dropped\n",
				     le32_to_cpu(hdr->channel_id));
		return;
	}
	vmc_rx_message(ch, hdr, buf + sizeof(*hdr), len);
	vmc_channel_put(ch);
}

void vmc_rx_work(struct work_struct *work)
{
	struct vmc_dev *vmc = container_of(work, struct vmc_dev, rx_work);
	unsigned int used;
	bool posted = false;
	void *buf;

	for (;;) {
		spin_lock_irq(&vmc->rx_lock);
		buf = vmc->broken ? NULL : virtqueue_get_buf(vmc->rx_vq, &used);
		spin_unlock_irq(&vmc->rx_lock);
		if (!buf)
			break;
		vmc_rx_buffer(vmc, buf, used);
		spin_lock_irq(&vmc->rx_lock);
		if (vmc->broken || vmc_rx_add(vmc, buf))
			kfree(buf);
		else
			posted = true;
		spin_unlock_irq(&vmc->rx_lock);
	}
	if (posted) {
		spin_lock_irq(&vmc->rx_lock);
		if (!vmc->broken)
			virtqueue_kick(vmc->rx_vq);
		spin_unlock_irq(&vmc->rx_lock);
	}
}

void vmc_rx_done(struct virtqueue *vq)
{
	struct vmc_dev *vmc = vq->vdev->priv;

	schedule_work(&vmc->rx_work);
}

/* Takes a buffer out of the tx pool, NULL if empty; caller holds tx_lock. */
static void *vmc_tx_pool_pop(struct vmc_dev *vmc)
{
	void *buf = vmc->tx_pool;

	if (buf) {
		vmc->tx_pool = *(void **)buf;
		vmc->tx_pooled--;
	}
	return buf;
}

/* A txq buffer from the pool, or a new one. */
static void *vmc_tx_buf_get(struct vmc_dev *vmc)
{
	void *buf;

	spin_lock_irq(&vmc->tx_lock);
	buf = vmc_tx_pool_pop(vmc);
	spin_unlock_irq(&vmc->tx_lock);
	return buf ?: kmalloc(VMC_TX_BUF_SIZE, GFP_KERNEL);
}

/* Returns a txq buffer to the pool; caller holds tx_lock. */
static void vmc_tx_buf_put(struct vmc_dev *vmc, void *buf)
{
	/* Once broken, vmc_vqs_drain() has emptied the pool for good. */
	if (vmc->broken || vmc->tx_pooled >= VMC_TX_POOL) {
		kfree(buf);
		return;
	}
	*(void **)buf = vmc->tx_pool;
	vmc->tx_pool = buf;
	vmc->tx_pooled++;
}

/* Takes back every buffer the device has used; caller holds tx_lock. */
static void vmc_tx_reclaim(struct vmc_dev *vmc)
{
	unsigned int len;
	void *buf;

	while ((buf = virtqueue_get_buf(vmc->tx_vq, &len)))
		vmc_tx_buf_put(vmc, buf);
}

/*
 * txq's interrupt: wanted only while a sender waits for room (see
 * vmc_tx_try_add()), so it turns itself off again.
 */
void vmc_tx_done(struct virtqueue *vq)
{
	struct vmc_dev *vmc = vq->vdev->priv;
	unsigned long flags;

	spin_lock_irqsave(&vmc->tx_lock, flags);
	virtqueue_disable_cb(vq);
	vmc_tx_reclaim(vmc);
	spin_unlock_irqrestore(&vmc->tx_lock, flags);
	wake_up_interruptible_all(&vmc->tx_wait);
}

/*
 * Whether txq has room for a one-buffer message; caller holds tx_lock.  Used
 * buffers are taken back here, by the next sender or poller, rather than on
 * an interrupt per message: under emulation each interrupt costs several
 * exits.  Only a full ring enables the interrupt, so that vmc_tx_done() wakes
 * vmc_dev.tx_wait, where senders and pollers wait for room.
 */
static bool vmc_tx_room(struct vmc_dev *vmc)
{
	vmc_tx_reclaim(vmc);
	if (vmc->tx_vq->num_free)
		return true;
	/* Enable the interrupt, then look again in case it came too early. */
	if (virtqueue_enable_cb(vmc->tx_vq))
		return false;
	vmc_tx_reclaim(vmc);
	return vmc->tx_vq->num_free;
}

/* Whether a message could be added to txq now (a broken device says yes). */
bool vmc_tx_has_room(struct vmc_dev *vmc)
{
	bool room;

	spin_lock_irq(&vmc->tx_lock);
	room = vmc->broken || vmc_tx_room(vmc);
	spin_unlock_irq(&vmc->tx_lock);
	return room;
}

/* Adds a message to txq; false when the ring is full. */
static bool vmc_tx_try_add(struct vmc_dev *vmc, void *msg, size_t size, int *err)
{
	struct scatterlist sg;
	bool added = false;

	sg_init_one(&sg, msg, size);
	spin_lock_irq(&vmc->tx_lock);
	if (vmc->broken)
		*err = -ENODEV;
	else if (vmc_tx_room(vmc))
		added = !virtqueue_add_outbuf(vmc->tx_vq, &sg, 1, msg, GFP_ATOMIC);
	if (added) {
		virtqueue_kick(vmc->tx_vq);
		*err = 0;
	}
	spin_unlock_irq(&vmc->tx_lock);
	return added || *err;
}

/**
 * vmc_send() - send one message for a channel
 * @ch: the channel
 * @type: message type
 * @data: payload for DATA, NULL otherwise
 * @len: payload length, at most VMC_TX_BUF_SIZE minus the header
 * @wait: how to wait for room on txq
 *
 * The header carries the channel's current receive credit, so every message
 * also serves as a credit update.  For DATA the caller has checked the
 * device's credit and accounts the bytes once this returns 0.
 *
 * Return: 0, -EAGAIN, -ENODEV, -ENOMEM, -EFAULT, -ERESTARTSYS or -ETIMEDOUT.
 */
int vmc_send(struct vmc_channel *ch, enum vmchannel_msg_type type,
	     const char __user *data, u32 len, enum vmc_send_wait wait)
{
	struct vmc_dev *vmc = ch->vmc;
	struct vmchannel_hdr *hdr;
	u32 fwd_cnt;
	int err = 0;

	if (WARN_ON_ONCE(len > VMC_TX_BUF_SIZE - sizeof(*hdr)))
		return -EINVAL;
	hdr = vmc_tx_buf_get(vmc);
	if (!hdr)
		return -ENOMEM;
	if (len && copy_from_user(hdr + 1, data, len)) {
		err = -EFAULT;
		goto err_put;
	}
	hdr->channel_id = cpu_to_le32(ch->id);
	hdr->type = cpu_to_le16(type);
	hdr->flags = 0;
	hdr->len = cpu_to_le32(len);
	hdr->reserved = 0;

	spin_lock_irq(&ch->lock);
	hdr->buf_alloc = cpu_to_le32(ch->ring ? VMC_RX_RING_SIZE : 0);
	fwd_cnt = ch->fwd_cnt;
	spin_unlock_irq(&ch->lock);
	hdr->fwd_cnt = cpu_to_le32(fwd_cnt);

	switch (wait) {
	case VMC_SEND_NONBLOCK:
		if (!vmc_tx_try_add(vmc, hdr, sizeof(*hdr) + len, &err))
			err = -EAGAIN;
		break;
	case VMC_SEND_INTERRUPTIBLE:
		if (wait_event_interruptible(vmc->tx_wait,
					     vmc_tx_try_add(vmc, hdr, sizeof(*hdr) + len, &err)))
			err = -ERESTARTSYS;
		break;
	case VMC_SEND_RELIABLE:
		/* The device drains txq continuously; only a dead one stalls it. */
		if (!wait_event_timeout(vmc->tx_wait,
					vmc_tx_try_add(vmc, hdr, sizeof(*hdr) + len, &err),
					VMC_TX_TIMEOUT))
			err = -ETIMEDOUT;
		break;
	}
	if (err)
		goto err_put;
	spin_lock_irq(&ch->lock);
	ch->fwd_reported = fwd_cnt;
	spin_unlock_irq(&ch->lock);
	return 0;

err_put:
	spin_lock_irq(&vmc->tx_lock);
	vmc_tx_buf_put(vmc, hdr);
	spin_unlock_irq(&vmc->tx_lock);
	return err;
}

/* Frees every buffer on the rings and in the tx pool; the device has been reset. */
void vmc_vqs_drain(struct vmc_dev *vmc)
{
	void *buf;

	spin_lock_irq(&vmc->rx_lock);
	while ((buf = virtqueue_detach_unused_buf(vmc->rx_vq)))
		kfree(buf);
	spin_unlock_irq(&vmc->rx_lock);
	spin_lock_irq(&vmc->tx_lock);
	while ((buf = virtqueue_detach_unused_buf(vmc->tx_vq)))
		kfree(buf);
	while ((buf = vmc_tx_pool_pop(vmc)))
		kfree(buf);
	spin_unlock_irq(&vmc->tx_lock);
}
