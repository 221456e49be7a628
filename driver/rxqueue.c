// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A channel's received bytes, held until a reader takes them: one copy, from
 * the rxq buffer the device wrote straight to user space (as virtio-vsock's
 * rx queue of packets does).
 *
 * A DATA payload longer than VMC_RX_COPY_MAX keeps its rxq buffer in the
 * channel's queue, and transport.c posts another in its place.  A short one
 * is copied into the room left in the channel's last buffer, or into a copy
 * buffer allocated for it, and its rxq buffer goes back to rxq at once:
 * small messages never hold 64 KiB each.  A channel keeps at most
 * VMC_RX_KEEP_MAX rxq buffers; beyond, payloads are copied too, so a reader
 * that stopped with its window full holds a bounded amount of memory.
 * Copy buffers are allocated for short payloads, but the last one stays,
 * emptied, for the next short payload until the session ends or a kept rxq
 * buffer follows it: an idle open channel that once received a short payload
 * holds VMC_RX_COPY_ALLOC bytes, one that never did holds nothing.
 *
 * vmc_channel.lock protects the queue.  Bytes the rx path adds go after
 * vmc_rx_buf.len, so the reader (one at a time, read_lock) copies out of a
 * buffer without the lock; only the reader and the end of the session
 * (which no read() can overlap) take buffers out of the queue.
 */
#include <linux/list.h>
#include <linux/minmax.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "vmchannel.h"

static struct vmc_rx_buf *vmc_rxq_last(struct vmc_channel *ch)
{
	return list_empty(&ch->rx_queue) ? NULL :
	       list_last_entry(&ch->rx_queue, struct vmc_rx_buf, node);
}

/* A copy buffer; under ch->lock, so it must not sleep. */
static struct vmc_rx_buf *vmc_rxq_copy_alloc(void)
{
	struct vmc_rx_buf *buf;

	buf = kmalloc(VMC_RX_COPY_ALLOC, GFP_ATOMIC | __GFP_NOWARN);
	if (!buf)
		return NULL;
	buf->len = 0;
	buf->off = 0;
	buf->size = VMC_RX_COPY_ALLOC - sizeof(*buf);
	buf->rxq = false;
	buf->data = (u8 *)(buf + 1);
	return buf;
}

/*
 * Copies @len bytes into the room after the last buffer's bytes and into
 * new copy buffers.  Return: false if memory ran out (nothing was added).
 */
static bool vmc_rxq_copy(struct vmc_channel *ch, const u8 *data, u32 len)
{
	struct vmc_rx_buf *last = vmc_rxq_last(ch), *buf, *tmp;
	u32 room = last ? last->size - last->len : 0;
	LIST_HEAD(added);
	u32 n;

	/* Allocate first: all of the payload is added, or none. */
	while (room < len) {
		buf = vmc_rxq_copy_alloc();
		if (!buf) {
			list_for_each_entry_safe(buf, tmp, &added, node)
				kfree(buf);
			return false;
		}
		list_add_tail(&buf->node, &added);
		room += buf->size;
	}
	if (last) {
		n = min(len, last->size - last->len);
		memcpy(last->data + last->len, data, n);
		last->len += n;
		data += n;
		len -= n;
	}
	list_for_each_entry(buf, &added, node) {
		n = min(len, buf->size);
		memcpy(buf->data, data, n);
		buf->len = n;
		data += n;
		len -= n;
	}
	list_splice_tail(&added, &ch->rx_queue);
	return true;
}

/**
 * vmc_rxq_add() - queue a DATA payload the device wrote into an rxq buffer
 * @ch: the channel; its lock is held
 * @buf: the rxq buffer
 * @len: payload bytes in it, within the channel's credit
 *
 * Return: true if the channel keeps @buf, false if its bytes were copied
 * and @buf may go back to rxq.
 */
bool vmc_rxq_add(struct vmc_channel *ch, struct vmc_rx_buf *buf, u32 len)
{
	struct vmc_rx_buf *last = vmc_rxq_last(ch);
	bool keep = len > VMC_RX_COPY_MAX && ch->rx_kept < VMC_RX_KEEP_MAX;

	lockdep_assert_held(&ch->lock);
	/* Without memory for a copy, the buffer is kept after all. */
	if (!keep && vmc_rxq_copy(ch, buf->data, len))
		return false;
	/* An emptied copy buffer before it would hold nothing up. */
	if (last && last->off == last->len && !last->rxq) {
		list_del(&last->node);
		kfree(last);
	}
	buf->len = len;
	buf->off = 0;
	list_add_tail(&buf->node, &ch->rx_queue);
	ch->rx_kept++;
	return true;
}

/*
 * Takes a consumed buffer out of the queue, onto @done; the last copy buffer
 * stays, emptied, for the next short payload.  Caller holds ch->lock.
 */
static void vmc_rxq_consumed(struct vmc_channel *ch, struct vmc_rx_buf *buf,
			     struct list_head *done)
{
	if (!buf->rxq && list_is_last(&buf->node, &ch->rx_queue)) {
		buf->len = 0;
		buf->off = 0;
		return;
	}
	list_move_tail(&buf->node, done);
	ch->rx_kept -= buf->rxq;
}

/**
 * vmc_rxq_read() - copy queued bytes to user space
 * @ch: the channel; the caller holds read_lock, not ch->lock
 * @ubuf: where to
 * @n: bytes to copy, no more than are readable
 *
 * Consumed buffers leave the queue (rxq buffers go back to rxq); fwd_cnt is
 * the caller's to move.
 *
 * Return: the bytes copied, or -EFAULT if none could be.
 */
ssize_t vmc_rxq_read(struct vmc_channel *ch, char __user *ubuf, u32 n)
{
	struct vmc_rx_buf *buf;
	LIST_HEAD(done);
	u32 copied = 0, chunk;
	const u8 *from;
	bool fault = false;

	while (copied < n && !fault) {
		spin_lock_irq(&ch->lock);
		buf = list_first_entry_or_null(&ch->rx_queue, struct vmc_rx_buf, node);
		if (WARN_ON_ONCE(!buf)) {
			spin_unlock_irq(&ch->lock);
			break;
		}
		from = buf->data + buf->off;
		chunk = min(buf->len - buf->off, n - copied);
		spin_unlock_irq(&ch->lock);
		/* Only an emptied copy buffer, the last, can be empty. */
		if (WARN_ON_ONCE(!chunk))
			break;
		if (copy_to_user(ubuf + copied, from, chunk)) {
			fault = true;
			chunk = 0;
		}
		spin_lock_irq(&ch->lock);
		buf->off += chunk;
		copied += chunk;
		if (buf->off == buf->len)
			vmc_rxq_consumed(ch, buf, &done);
		spin_unlock_irq(&ch->lock);
	}
	vmc_rxq_free(ch->vmc, &done);
	return copied || !fault ? copied : -EFAULT;
}

/* Frees copy buffers and gives rxq buffers back; no lock held. */
void vmc_rxq_free(struct vmc_dev *vmc, struct list_head *bufs)
{
	struct vmc_rx_buf *buf, *tmp;

	list_for_each_entry_safe(buf, tmp, bufs, node) {
		list_del(&buf->node);
		if (buf->rxq)
			vmc_rx_buf_put(vmc, buf);
		else
			kfree(buf);
	}
}
