// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Messages on the two shared virtqueues and the per-channel credit.
 *
 * rxq carries one message per buffer from the device, each with room for
 * VMCHANNEL_MAX_PAYLOAD; a channel keeps a long DATA payload's buffer until
 * it is read (rxqueue.c) and another is posted in its place, from a pool
 * (or, by the rx work, the allocator).  Messages are taken in rxq's
 * interrupt (vmc_rx_poll()).  Because the device may only send a channel
 * what that channel's credit allows, every message can be consumed at once:
 * the receive path never waits for a reader, so a stalled reader holds up
 * only its own channel.
 *
 * txq carries one message per chain: the header, then a DATA payload of up
 * to VMCHANNEL_MAX_PAYLOAD in its own page-sized or 64 KiB buffer.  Senders
 * take used buffers back themselves before adding one, so txq raises no
 * interrupt unless it is full and a sender sleeps on vmc_dev.tx_wait for
 * room.  Used buffers go to a small pool rather than to the allocator:
 * kernels built with init_on_alloc (Debian's are) zero every allocation, and
 * zeroing a fresh buffer per message took a fifth of a sending guest's CPU.
 * A write() kicks the device once for all its DATA, with its last message
 * (or vmc_tx_kick()); every kick is prepared under the vq's lock and
 * notified once it is dropped.
 *
 * Only writers wait for txq.  OPEN, CLOSE and CREDIT are owed by the channel
 * (vmc_channel.owed) and sent without waiting; what finds txq full is sent
 * by vmc_owed_work() once there is room.  The session, credit and
 * end-of-stream fields of a header are filled in as it is added to txq.
 */
#include <linux/minmax.h>
#include <linux/sched.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "vmchannel.h"

/* Whether the virtqueues exist and may be used in @state (see main.c). */
static bool vmc_rx_live(enum vmc_dev_state state)
{
	return state != VMC_DEV_SUSPENDED && state != VMC_DEV_GONE;
}

/* A snapshot of the device's state; a change wakes vmc_dev.state_wait. */
enum vmc_dev_state vmc_dev_state(struct vmc_dev *vmc)
{
	return READ_ONCE(vmc->state);
}

/*
 * Kicks are split: virtqueue_kick_prepare() under the vq's lock, and the
 * notification itself, an MMIO write and so an exit to the emulator, after
 * the locks are dropped with interrupts on.  The reference in
 * vmc_dev.notifying keeps the vq alive meanwhile: vmc_del_vqs() waits for
 * it once the state no longer lets anyone take one.
 */
static struct virtqueue *vmc_kick_prepare(struct vmc_dev *vmc, struct virtqueue *vq)
{
	if (!virtqueue_kick_prepare(vq))
		return NULL;
	atomic_inc(&vmc->notifying);
	return vq;
}

/* Notifies @vq if vmc_kick_prepare() said so. */
static void vmc_notify(struct vmc_dev *vmc, struct virtqueue *vq)
{
	if (!vq)
		return;
	virtqueue_notify(vq);
	if (atomic_dec_and_test(&vmc->notifying))
		wake_up_all(&vmc->state_wait);
}

/* Waits for the kicks under way; no new one may start (see vmc_del_vqs()). */
void vmc_notify_wait(struct vmc_dev *vmc)
{
	wait_event(vmc->state_wait, !atomic_read(&vmc->notifying));
}

static bool vmc_rx_idle(struct vmc_dev *vmc)
{
	bool idle;

	spin_lock_irq(&vmc->rx_lock);
	idle = !vmc->rx_polling;
	spin_unlock_irq(&vmc->rx_lock);
	return idle;
}

/*
 * Waits for the end of a poll of rxq under way (a busy-polling reader's: the
 * device's reset waited for the interrupt's, the rx work is cancelled);
 * once the state is not live no new one starts.
 */
void vmc_rx_wait_idle(struct vmc_dev *vmc)
{
	wait_event(vmc->state_wait, vmc_rx_idle(vmc));
}

/* Tells the device about the buffers posted on rxq, while the rings exist. */
void vmc_rx_kick(struct vmc_dev *vmc)
{
	struct virtqueue *vq = NULL;

	spin_lock_irq(&vmc->rx_lock);
	if (vmc_rx_live(vmc->state))
		vq = vmc_kick_prepare(vmc, vmc->rx_vq);
	spin_unlock_irq(&vmc->rx_lock);
	vmc_notify(vmc, vq);
}

static void vmc_rx_buf_free(struct vmc_rx_buf *buf)
{
	free_pages((unsigned long)buf->data, get_order(buf->size));
	kfree(buf);
}

/*
 * A new rxq buffer: room for VMCHANNEL_MAX_PAYLOAD (VMC_RX_SIZE), or a page
 * when 64 KiB cannot be had at once (the device fills what the buffer holds).
 */
static struct vmc_rx_buf *vmc_rx_buf_alloc(void)
{
	struct vmc_rx_buf *buf;
	unsigned int order = VMC_RX_ORDER;

	buf = kmalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return NULL;
	buf->data = (u8 *)__get_free_pages(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN, order);
	if (!buf->data) {
		order = 0;
		buf->data = (u8 *)__get_free_page(GFP_KERNEL);
	}
	if (!buf->data) {
		kfree(buf);
		return NULL;
	}
	buf->size = PAGE_SIZE << order;
	buf->rxq = true;
	return buf;
}

/* Posts a buffer the device fills: header, then payload; caller holds rx_lock. */
static int vmc_rx_post(struct vmc_dev *vmc, struct vmc_rx_buf *buf)
{
	struct scatterlist sg[2];
	int err;

	sg_init_table(sg, 2);
	sg_set_buf(&sg[0], &buf->hdr, sizeof(buf->hdr));
	sg_set_buf(&sg[1], buf->data, buf->size);
	err = virtqueue_add_inbuf(vmc->rx_vq, sg, 2, buf, GFP_ATOMIC);
	if (!err)
		vmc->rx_posted++;
	return err;
}

/*
 * A free rxq buffer goes to rxq while it lacks buffers, else to the pool
 * (kernels with init_on_alloc zero every new 64 KiB), else to the allocator;
 * caller holds rx_lock.  A page-sized fallback always goes to the allocator,
 * so that the rx work allocates a full one in its place: reused, it would
 * keep rxq short of room long after memory defragmented.
 * Return: whether it was posted (rxq needs a kick).
 */
static bool vmc_rx_buf_put_locked(struct vmc_dev *vmc, struct vmc_rx_buf *buf)
{
	if (buf->size < VMC_RX_SIZE) {
		vmc_rx_buf_free(buf);
		return false;
	}
	if (vmc_rx_live(vmc->state) && vmc->rx_posted < VMC_RX_BUFS && !vmc_rx_post(vmc, buf))
		return true;
	/* Once gone, vmc_vqs_drain() has emptied the pool for good. */
	if (vmc->state != VMC_DEV_GONE && vmc->rx_pooled < VMC_RX_POOL) {
		list_add(&buf->node, &vmc->rx_pool);
		vmc->rx_pooled++;
		return false;
	}
	vmc_rx_buf_free(buf);
	return false;
}

/*
 * A buffer a reader emptied.  The rx work keeps rxq full from the pool, so
 * this normally pools it; it posts (and kicks) only when the rx work could
 * not allocate, and has the rx work allocate if it freed a fallback that
 * rxq lacks and has room for (a small ring fills before VMC_RX_BUFS).
 */
void vmc_rx_buf_put(struct vmc_dev *vmc, struct vmc_rx_buf *buf)
{
	struct virtqueue *vq = NULL;
	unsigned long flags;

	spin_lock_irqsave(&vmc->rx_lock, flags);
	if (vmc_rx_buf_put_locked(vmc, buf))
		vq = vmc_kick_prepare(vmc, vmc->rx_vq);
	else if (vmc_rx_live(vmc->state) && vmc->rx_posted < VMC_RX_BUFS &&
		 vmc->rx_vq->num_free >= 2)
		schedule_work(&vmc->rx_work);
	spin_unlock_irqrestore(&vmc->rx_lock, flags);
	vmc_notify(vmc, vq);
}

/* A buffer out of the pool, NULL if empty; caller holds rx_lock. */
static struct vmc_rx_buf *vmc_rx_pool_pop(struct vmc_dev *vmc)
{
	struct vmc_rx_buf *buf;

	buf = list_first_entry_or_null(&vmc->rx_pool, struct vmc_rx_buf, node);
	if (buf) {
		list_del(&buf->node);
		vmc->rx_pooled--;
	}
	return buf;
}

/*
 * Memory ran out while rxq lacks buffers: vmc_rx_retry_work() tries again
 * in a while.  Channels may keep every posted buffer, and then no message
 * comes to run the rx work again.
 */
static void vmc_rx_retry(struct vmc_dev *vmc)
{
	spin_lock_irq(&vmc->rx_lock);
	if (vmc_rx_live(vmc->state) && vmc->rx_posted < VMC_RX_BUFS)
		schedule_delayed_work(&vmc->rx_retry_work, VMC_RX_RETRY);
	spin_unlock_irq(&vmc->rx_lock);
}

/*
 * Tops rxq up from the pool alone, as the interrupt handler can; caller
 * holds rx_lock.  Return: whether anything was posted.
 */
static bool vmc_rx_refill_pooled(struct vmc_dev *vmc)
{
	struct vmc_rx_buf *buf;
	bool posted = false;

	while (vmc->rx_posted < VMC_RX_BUFS && (buf = vmc_rx_pool_pop(vmc))) {
		if (vmc_rx_post(vmc, buf)) {
			vmc_rx_buf_put_locked(vmc, buf);
			break;
		}
		posted = true;
	}
	return posted;
}

/*
 * Tops rxq up to VMC_RX_BUFS, from the pool first, then from the allocator
 * while the ring has room for a buffer (a small ring fills before
 * VMC_RX_BUFS: a buffer it cannot take is not allocated).  @starting: probe
 * or restore, where the rings exist before the state says so.  Return:
 * whether anything was posted.
 */
static bool vmc_rx_refill(struct vmc_dev *vmc, bool starting)
{
	struct vmc_rx_buf *buf;
	bool posted = false;

	for (;;) {
		spin_lock_irq(&vmc->rx_lock);
		if (!starting && !vmc_rx_live(vmc->state))
			goto out_unlock;
		posted |= vmc_rx_refill_pooled(vmc);
		if (vmc->rx_posted >= VMC_RX_BUFS || vmc->rx_vq->num_free < 2)
			goto out_unlock;
		spin_unlock_irq(&vmc->rx_lock);
		buf = vmc_rx_buf_alloc();
		if (!buf) {
			vmc_rx_retry(vmc);
			return posted;
		}
		spin_lock_irq(&vmc->rx_lock);
		if (vmc_rx_post(vmc, buf)) {
			vmc_rx_buf_put_locked(vmc, buf);
			goto out_unlock;
		}
		posted = true;
		spin_unlock_irq(&vmc->rx_lock);
	}
out_unlock:
	spin_unlock_irq(&vmc->rx_lock);
	return posted;
}

/*
 * Tops rxq up again after an allocation failed; it re-arms itself while
 * memory stays short.  It never queues the rx work, so that vmc_del_vqs()
 * can cancel the rx work, then this.
 */
void vmc_rx_retry_work(struct work_struct *work)
{
	struct vmc_dev *vmc = container_of(to_delayed_work(work), struct vmc_dev,
					   rx_retry_work);

	if (vmc_rx_refill(vmc, false))
		vmc_rx_kick(vmc);
}

/* Posts receive buffers until rxq is full; called at probe and restore. */
int vmc_rx_fill(struct vmc_dev *vmc)
{
	return vmc_rx_refill(vmc, true) ? 0 : -ENOMEM;
}

/* The device's RESET or SUSPEND: the acknowledgment of ours. */
static void vmc_rx_device(struct vmc_dev *vmc, u16 type)
{
	enum vmc_dev_event ev = type == VMCHANNEL_MSG_RESET ?
				VMC_DEV_EV_RESET_ACK : VMC_DEV_EV_SUSPEND_ACK;

	if (!vmc_dev_step(vmc, ev))
		dev_warn_ratelimited(&vmc->vdev->dev, "rx: unexpected %s from the device: dropped\n",
				     type == VMCHANNEL_MSG_RESET ? "RESET" : "SUSPEND");
}

/*
 * Validates a used rx buffer; every field comes from the untrusted device,
 * which may still write the header: it is read once, and only that copy is
 * validated and used.  Return: whether a channel keeps the buffer (rxqueue.c).
 */
static bool vmc_rx_buffer(struct vmc_dev *vmc, enum vmc_dev_state state,
			  struct vmc_rx_buf *buf, unsigned int used)
{
	struct vmc_rx_msg msg = { .buf = buf };
	const struct vmchannel_hdr *hdr = &msg.hdr;
	struct device *dev = &vmc->vdev->dev;
	struct vmc_channel *ch;
	unsigned int actions;
	unsigned long flags;
	bool is_data, is_dev;
	u32 len, id;
	u16 type;

	memcpy(&msg.hdr, &buf->hdr, sizeof(msg.hdr));
	/* The copy is what counts: the compiler may not read buf->hdr again. */
	barrier();
	if (used < sizeof(*hdr) || used - sizeof(*hdr) > buf->size) {
		dev_warn_ratelimited(dev, "rx: used length %u out of range\n", used);
		return false;
	}
	len = le32_to_cpu(hdr->len);
	type = le16_to_cpu(hdr->type);
	id = le32_to_cpu(hdr->channel_id);
	if (len != used - sizeof(*hdr) || len > VMCHANNEL_MAX_PAYLOAD) {
		dev_warn_ratelimited(dev, "rx: payload length %u, used %u\n", len, used);
		return false;
	}
	/* Only DATA has a payload, and it is never empty. */
	is_data = type == VMCHANNEL_MSG_DATA;
	if (type < VMCHANNEL_MSG_DATA || type > VMCHANNEL_MSG_SUSPEND ||
	    type == VMCHANNEL_MSG_CLOSE || is_data != !!len) {
		dev_warn_ratelimited(dev, "rx: bad message type %u (length %u)\n", type, len);
		return false;
	}
	/* Device-level messages, and only they, carry channel 0. */
	is_dev = type == VMCHANNEL_MSG_RESET || type == VMCHANNEL_MSG_SUSPEND;
	if (is_dev != !id) {
		dev_warn_ratelimited(dev, "rx: message type %u on channel %u: dropped\n",
				     type, id);
		return false;
	}
	if (is_dev) {
		vmc_rx_device(vmc, type);
		return false;
	}
	/* Until the device acknowledges our RESET, rxq holds an earlier driver's. */
	if (state == VMC_DEV_RESETTING)
		return false;
	ch = vmc_channel_get_by_id(vmc, id);
	if (!ch) {
		/* Also seen, rarely, for a channel removed with messages in flight. */
		dev_warn_ratelimited(dev, "rx: message for unknown channel %u: dropped\n", id);
		return false;
	}
	spin_lock_irqsave(&ch->lock, flags);
	actions = vmc_chan_step(ch, VMC_CH_EV_RX, &msg, NULL);
	spin_unlock_irqrestore(&ch->lock, flags);
	/* A received message never makes the channel send (this may be an interrupt). */
	if (WARN_ON_ONCE(actions & VMC_ACT_SEND))
		actions &= ~VMC_ACT_SEND;
	vmc_chan_act(ch, actions, NULL);
	vmc_channel_put(ch);
	return actions & VMC_ACT_RX_KEPT;
}

/* What vmc_rx_poll() leaves to the rx work. */
#define VMC_RX_LEFT_MESSAGES	BIT(0)	/* the budget is spent: messages remain */
#define VMC_RX_LEFT_BUFFERS	BIT(1)	/* rxq has room only the allocator can fill */

/**
 * vmc_rx_poll() - take messages off rxq, at most VMC_RX_BUDGET
 * @vmc: the device
 * @from_work: called by the rx work, which does what is left itself
 *
 * Called by rxq's interrupt, the rx work and busy-polling readers.  One caller at a time
 * (vmc_dev.rx_polling) takes messages, in the order the device used them:
 * another that finds it busy leaves the rest to it.  rxq's interrupt stays
 * off meanwhile, and is turned on again only once rxq looks empty and no
 * reader busy-polls it, so that the device raises no interrupt for what a
 * poller would take anyway.
 * Used buffers go back to rxq at once, from the pool.  Nothing here sleeps.
 * What is left for the rx work is queued here, under rx_lock and only while
 * the rings are live, so that vmc_del_vqs() cancels the last of it; a poll
 * that ends once they are not wakes vmc_rx_wait_idle().
 *
 * Return: VMC_RX_LEFT_* bits, what the rx work must do.
 */
static unsigned int vmc_rx_poll(struct vmc_dev *vmc, bool from_work)
{
	struct virtqueue *kick = NULL;
	enum vmc_dev_state state;
	struct vmc_rx_buf *buf;
	unsigned int used, n = 0, left = 0;
	unsigned long flags;
	bool posted = false, kept;

	spin_lock_irqsave(&vmc->rx_lock, flags);
	if (vmc->rx_polling || !vmc_rx_live(vmc->state)) {
		spin_unlock_irqrestore(&vmc->rx_lock, flags);
		return 0;
	}
	vmc->rx_polling = true;
	virtqueue_disable_cb(vmc->rx_vq);
	/* A message may end the rings (the device's SUSPEND): look each time. */
	while (vmc_rx_live(state = vmc->state)) {
		if (n == VMC_RX_BUDGET) {
			left |= VMC_RX_LEFT_MESSAGES;
			break;
		}
		buf = virtqueue_get_buf(vmc->rx_vq, &used);
		if (!buf) {
			/*
			 * A busy-polling reader will look again; else
			 * re-armed with none used meanwhile: done.
			 */
			if (vmc->rx_busy || virtqueue_enable_cb(vmc->rx_vq))
				break;
			virtqueue_disable_cb(vmc->rx_vq);
			continue;
		}
		n++;
		vmc->rx_posted--;
		spin_unlock_irqrestore(&vmc->rx_lock, flags);
		kept = vmc_rx_buffer(vmc, state, buf, used);
		spin_lock_irqsave(&vmc->rx_lock, flags);
		if (!kept)
			posted |= vmc_rx_buf_put_locked(vmc, buf);
	}
	vmc->rx_polling = false;
	if (vmc_rx_live(vmc->state)) {
		posted |= vmc_rx_refill_pooled(vmc);
		/* Ring room (a small ring fills before VMC_RX_BUFS) the pool did not fill. */
		if (vmc->rx_posted < VMC_RX_BUFS && vmc->rx_vq->num_free >= 2)
			left |= VMC_RX_LEFT_BUFFERS;
		if (posted)
			kick = vmc_kick_prepare(vmc, vmc->rx_vq);
		if (left && !from_work)
			schedule_work(&vmc->rx_work);
	} else {
		wake_up_all(&vmc->state_wait);
	}
	spin_unlock_irqrestore(&vmc->rx_lock, flags);
	vmc_notify(vmc, kick);
	return left;
}

/*
 * Takes the messages rxq's interrupt left (budget spent) and allocates the
 * buffers rxq lacks; an allocation that fails is retried by
 * vmc_rx_retry_work(), not here.
 */
void vmc_rx_work(struct work_struct *work)
{
	struct vmc_dev *vmc = container_of(work, struct vmc_dev, rx_work);
	unsigned int left;

	left = vmc_rx_poll(vmc, true);
	if (vmc_rx_refill(vmc, false))
		vmc_rx_kick(vmc);
	/* Budget spent: let other work run, then continue. */
	if (left & VMC_RX_LEFT_MESSAGES)
		schedule_work(&vmc->rx_work);
}

/*
 * Readers busy-polling rxq (readwait.c) keep its interrupt off from the first
 * vmc_rx_busy_begin() to the last vmc_rx_busy_end(): what the device would
 * signal (an eventfd write in vmchanneld; under TCG a wakeup of QEMU's main
 * loop, an interrupt, the vCPU woken from halt) they look for anyway.
 */
void vmc_rx_busy_begin(struct vmc_dev *vmc)
{
	spin_lock_irq(&vmc->rx_lock);
	if (!vmc->rx_busy++ && vmc_rx_live(vmc->state))
		virtqueue_disable_cb(vmc->rx_vq);
	spin_unlock_irq(&vmc->rx_lock);
}

/* A busy-polling reader's look at rxq: takes its messages, as the interrupt would. */
void vmc_rx_busy_poll(struct vmc_dev *vmc)
{
	vmc_rx_poll(vmc, false);
}

/*
 * The last busy poller turns rxq's interrupt back on, and takes what came
 * after its last look (the device raised no interrupt for it); a poll under
 * way elsewhere (vmc_dev.rx_polling) turns it on itself once rxq is empty.
 */
void vmc_rx_busy_end(struct vmc_dev *vmc)
{
	bool pending = false;

	spin_lock_irq(&vmc->rx_lock);
	if (!--vmc->rx_busy && !vmc->rx_polling && vmc_rx_live(vmc->state))
		pending = !virtqueue_enable_cb(vmc->rx_vq);
	spin_unlock_irq(&vmc->rx_lock);
	if (pending)
		vmc_rx_busy_poll(vmc);
}

/*
 * rxq's interrupt: messages are taken here, as virtio_console does, rather
 * than in a work item, which cost every message a context switch (in a
 * round trip, twice the device's latency under emulation).
 */
void vmc_rx_done(struct virtqueue *vq)
{
	struct vmc_dev *vmc = vq->vdev->priv;

	vmc_rx_poll(vmc, false);
}

/*
 * A txq message: the header here, a DATA payload in @payload, two
 * descriptors.  A payload of VMCHANNEL_MAX_PAYLOAD takes 64 KiB and no more.
 */
struct vmc_tx_buf {
	struct vmchannel_hdr hdr;
	struct vmc_tx_buf *next;	/* in vmc_dev.tx_pool */
	enum vmc_tx_size size;
	void *payload;
};

static unsigned int vmc_tx_order(enum vmc_tx_size size)
{
	return size == VMC_TX_BIG ? VMC_TX_BIG_ORDER : 0;
}

static u32 vmc_tx_capacity(const struct vmc_tx_buf *buf)
{
	return PAGE_SIZE << vmc_tx_order(buf->size);
}

static void vmc_tx_buf_free(struct vmc_tx_buf *buf)
{
	free_pages((unsigned long)buf->payload, vmc_tx_order(buf->size));
	kfree(buf);
}

static struct vmc_tx_buf *vmc_tx_buf_alloc(enum vmc_tx_size size)
{
	/* A big buffer is only faster: never reclaim or warn for one. */
	gfp_t gfp = size == VMC_TX_BIG ? GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN :
		    GFP_KERNEL;
	struct vmc_tx_buf *buf;

	buf = kmalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return NULL;
	buf->size = size;
	buf->payload = (void *)__get_free_pages(gfp, vmc_tx_order(size));
	if (!buf->payload) {
		kfree(buf);
		return NULL;
	}
	return buf;
}

/* Takes a buffer out of the tx pool, NULL if empty; caller holds tx_lock. */
static struct vmc_tx_buf *vmc_tx_pool_pop(struct vmc_dev *vmc, enum vmc_tx_size size)
{
	struct vmc_tx_buf *buf = vmc->tx_pool[size];

	if (buf) {
		vmc->tx_pool[size] = buf->next;
		vmc->tx_pooled[size]--;
	}
	return buf;
}

/*
 * A txq buffer for @len payload bytes from the pool, or a new one; a short
 * one (fewer bytes sent) when no big one can be had.
 */
static struct vmc_tx_buf *vmc_tx_buf_get(struct vmc_dev *vmc, u32 len)
{
	enum vmc_tx_size size = len > PAGE_SIZE ? VMC_TX_BIG : VMC_TX_SMALL;
	struct vmc_tx_buf *buf;

	for (;;) {
		spin_lock_irq(&vmc->tx_lock);
		buf = vmc_tx_pool_pop(vmc, size);
		spin_unlock_irq(&vmc->tx_lock);
		buf = buf ?: vmc_tx_buf_alloc(size);
		if (buf || size == VMC_TX_SMALL)
			return buf;
		size = VMC_TX_SMALL;
	}
}

/* Returns a txq buffer to the pool; caller holds tx_lock. */
static void vmc_tx_buf_put(struct vmc_dev *vmc, struct vmc_tx_buf *buf)
{
	static const unsigned int pool_max[VMC_TX_SIZES] = {
		[VMC_TX_SMALL] = VMC_TX_POOL_SMALL,
		[VMC_TX_BIG] = VMC_TX_POOL_BIG,
	};

	/* Once gone, vmc_vqs_drain() has emptied the pool for good. */
	if (vmc->state == VMC_DEV_GONE || vmc->tx_pooled[buf->size] >= pool_max[buf->size]) {
		vmc_tx_buf_free(buf);
		return;
	}
	buf->next = vmc->tx_pool[buf->size];
	vmc->tx_pool[buf->size] = buf;
	vmc->tx_pooled[buf->size]++;
}

/* Takes back every buffer the device has used; caller holds tx_lock. */
static void vmc_tx_reclaim(struct vmc_dev *vmc)
{
	struct vmc_tx_buf *buf;
	unsigned int len;

	while ((buf = virtqueue_get_buf(vmc->tx_vq, &len)))
		vmc_tx_buf_put(vmc, buf);
}

/*
 * txq's interrupt: wanted only while a sender waits for room (see
 * vmc_tx_room()), so it turns itself off again.  A message a channel owes
 * is retried at once.
 */
void vmc_tx_done(struct virtqueue *vq)
{
	struct vmc_dev *vmc = vq->vdev->priv;
	unsigned long flags;

	spin_lock_irqsave(&vmc->tx_lock, flags);
	virtqueue_disable_cb(vq);
	if (vmc_rx_live(vmc->state))
		vmc_tx_reclaim(vmc);
	spin_unlock_irqrestore(&vmc->tx_lock, flags);
	wake_up_all(&vmc->tx_wait);
	if (delayed_work_pending(&vmc->owed_work))
		mod_delayed_work(system_wq, &vmc->owed_work, 0);
}

/*
 * Whether txq has room for a message (two descriptors); caller holds
 * tx_lock.  Used buffers are taken back here, by the next sender or poller,
 * rather than on an interrupt per message: under emulation each interrupt
 * costs several exits.  Only a full ring enables the interrupt, so that
 * vmc_tx_done() wakes vmc_dev.tx_wait, where senders and pollers wait for
 * room.  It comes once the device has used three quarters of what txq holds,
 * not at its next buffer: with many channels busy, each freed slot woke every
 * poller to compete for it.
 */
static bool vmc_tx_room(struct vmc_dev *vmc)
{
	vmc_tx_reclaim(vmc);
	if (vmc->tx_vq->num_free >= 2)
		return true;
	/* Enable the interrupt, then look again in case it came too early. */
	if (virtqueue_enable_cb_delayed(vmc->tx_vq))
		return false;
	vmc_tx_reclaim(vmc);
	return vmc->tx_vq->num_free >= 2;
}

/* Whether a channel message could be added to txq now (a gone device says yes). */
bool vmc_tx_has_room(struct vmc_dev *vmc)
{
	bool room;

	spin_lock_irq(&vmc->tx_lock);
	switch (vmc->state) {
	case VMC_DEV_GONE:
		room = true;
		break;
	case VMC_DEV_RESETTING:
	case VMC_DEV_RUNNING:
		room = vmc_tx_room(vmc);
		break;
	default:
		room = false;
		break;
	}
	spin_unlock_irq(&vmc->tx_lock);
	return room;
}

/*
 * The kick of what was added to txq since the last one; caller holds
 * tx_lock, in a state with rings (any but GONE for a device-level message,
 * RESETTING or RUNNING for a channel's).
 */
static struct virtqueue *vmc_tx_kick_prepare(struct vmc_dev *vmc)
{
	if (!vmc->tx_unkicked)
		return NULL;
	WRITE_ONCE(vmc->tx_unkicked, 0);
	return vmc_kick_prepare(vmc, vmc->tx_vq);
}

/*
 * Tells the device about the DATA a writer queued (see vmc_send_data()).
 * Without the lock when nothing is unkicked: whoever reset the count kicked
 * what this writer queued before, or the rings were reset and it was dropped
 * (vmc_vqs_drain()).
 */
void vmc_tx_kick(struct vmc_dev *vmc)
{
	struct virtqueue *vq = NULL;

	if (!READ_ONCE(vmc->tx_unkicked))
		return;

	spin_lock_irq(&vmc->tx_lock);
	if (vmc_rx_live(vmc->state))
		vq = vmc_tx_kick_prepare(vmc);
	spin_unlock_irq(&vmc->tx_lock);
	vmc_notify(vmc, vq);
}

/**
 * struct vmc_tx_req - one message on its way to txq
 * @buf: the message
 * @len: payload bytes in the buffer (DATA may send fewer)
 * @queued: the buffer is on txq and belongs to it
 * @kick_added: DATA: prepare the kick as it is added (the write()'s last)
 * @kick: the vq to notify once the locks are dropped (vmc_kick_prepare())
 * @ret: DATA: payload bytes queued; otherwise 0; or a negative errno
 */
struct vmc_tx_req {
	struct vmc_tx_buf *buf;
	u32 len;
	bool queued;
	bool kick_added;
	struct virtqueue *kick;
	int ret;
};

static const unsigned int vmc_owe_bit[] = {
	[VMCHANNEL_MSG_OPEN] = VMC_OWE_OPEN,
	[VMCHANNEL_MSG_CLOSE] = VMC_OWE_CLOSE,
	[VMCHANNEL_MSG_CREDIT] = VMC_OWE_CREDIT,
};

/*
 * Whether a channel message is still to be sent in the channel's state;
 * caller holds ch->lock.  OPEN, CLOSE and CREDIT go only while owed, so that
 * the sender and the owed work never send one twice.
 */
static bool vmc_tx_wanted(const struct vmc_channel *ch, u16 type)
{
	switch (type) {
	case VMCHANNEL_MSG_DATA:
		return ch->state == VMC_CH_OPEN;
	case VMCHANNEL_MSG_OPEN:
		return ch->state == VMC_CH_OPENING && (ch->owed & VMC_OWE_OPEN);
	case VMCHANNEL_MSG_CLOSE:
		return (ch->state == VMC_CH_CLOSED || ch->state == VMC_CH_REMOVED) &&
		       (ch->owed & VMC_OWE_CLOSE);
	case VMCHANNEL_MSG_CREDIT:
		return ch->state == VMC_CH_OPEN && (ch->owed & VMC_OWE_CREDIT);
	}
	return false;
}

/*
 * Adds req to txq; caller holds tx_lock and has checked for room.  DATA is
 * kicked once per write(), with its last message (@req->kick_added) or by
 * vmc_tx_kick(); anything else at once.
 */
static void vmc_tx_add(struct vmc_dev *vmc, struct vmc_tx_req *req)
{
	struct vmc_tx_buf *buf = req->buf;
	struct scatterlist sg[2];
	int err;

	sg_init_table(sg, req->len ? 2 : 1);
	sg_set_buf(&sg[0], &buf->hdr, sizeof(buf->hdr));
	if (req->len)
		sg_set_buf(&sg[1], buf->payload, req->len);
	err = virtqueue_add_outbuf(vmc->tx_vq, sg, req->len ? 2 : 1, buf, GFP_ATOMIC);
	if (err) {
		req->ret = err;
		return;
	}
	req->queued = true;
	WRITE_ONCE(vmc->tx_unkicked, vmc->tx_unkicked + 1);
	if (req->kick_added || le16_to_cpu(buf->hdr.type) != VMCHANNEL_MSG_DATA)
		req->kick = vmc_tx_kick_prepare(vmc);
}

/*
 * Puts a channel message on txq if the states allow it and there is room.
 * The fields the device must see current (session, receive credit, ends of
 * stream consumed) and the DATA credit are taken under ch->lock together
 * with the add, so that txq carries them in the order they changed.  A full
 * txq is kicked before its sender waits: it may hold DATA not kicked yet.
 *
 * Return: false to wait for room or for the device to run; true when done
 * (@req->queued, or @req->ret says why not).
 */
static bool vmc_tx_try_chan(struct vmc_channel *ch, struct vmc_tx_req *req)
{
	struct vmchannel_hdr *hdr = &req->buf->hdr;
	u16 type = le16_to_cpu(hdr->type);
	struct vmc_dev *vmc = ch->vmc;
	bool done = true;

	spin_lock_irq(&ch->lock);
	spin_lock(&vmc->tx_lock);
	/* A removed channel still owes the CLOSE of its last session. */
	if (vmc->state == VMC_DEV_GONE ||
	    (ch->state == VMC_CH_REMOVED && type != VMCHANNEL_MSG_CLOSE)) {
		req->ret = -ENODEV;
		goto out_unlock;
	}
	if (!vmc_tx_wanted(ch, type))
		goto out_unlock;
	if (type == VMCHANNEL_MSG_DATA) {
		/* The device may have taken credit back since the caller looked. */
		req->len = min(req->len, vmc_tx_credit(ch));
		if (!req->len)
			goto out_unlock;
	}
	if (vmc->state != VMC_DEV_RESETTING && vmc->state != VMC_DEV_RUNNING) {
		done = false;
		goto out_unlock;
	}
	if (!vmc_tx_room(vmc)) {
		req->kick = vmc_tx_kick_prepare(vmc);
		done = false;
		goto out_unlock;
	}
	hdr->len = cpu_to_le32(req->len);
	hdr->session = cpu_to_le32(ch->session);
	hdr->buf_alloc = cpu_to_le32(ch->receiving ? VMC_RX_WINDOW : 0);
	hdr->fwd_cnt = cpu_to_le32(ch->fwd_cnt);
	hdr->eof_cnt = cpu_to_le32(ch->eof_cnt);
	vmc_tx_add(vmc, req);
	if (!req->queued)
		goto out_unlock;
	/* Every message of the session carries the credit: none is owed now. */
	ch->fwd_reported = ch->fwd_cnt;
	ch->owed &= ~(vmc_owe_bit[type] | VMC_OWE_CREDIT);
	if (type == VMCHANNEL_MSG_DATA) {
		ch->tx_cnt += req->len;
		ch->tx_bytes += req->len;
		req->ret = req->len;
	}
out_unlock:
	spin_unlock(&vmc->tx_lock);
	spin_unlock_irq(&ch->lock);
	vmc_notify(vmc, req->kick);
	req->kick = NULL;
	return done;
}

/* Puts a device-level message on txq; any state but GONE (see main.c). */
static bool vmc_tx_try_dev(struct vmc_dev *vmc, struct vmc_tx_req *req)
{
	bool done = true;

	spin_lock_irq(&vmc->tx_lock);
	if (vmc->state == VMC_DEV_GONE)
		req->ret = -ENODEV;
	else if (vmc_tx_room(vmc))
		vmc_tx_add(vmc, req);
	else
		done = false;
	if (!done)
		req->kick = vmc_tx_kick_prepare(vmc);
	spin_unlock_irq(&vmc->tx_lock);
	vmc_notify(vmc, req->kick);
	req->kick = NULL;
	return done;
}

static bool vmc_tx_try(struct vmc_dev *vmc, struct vmc_channel *ch,
		       struct vmc_tx_req *req)
{
	return ch ? vmc_tx_try_chan(ch, req) : vmc_tx_try_dev(vmc, req);
}

/* Waits as @wait says for vmc_tx_try(); the wakers use wake_up_all(). */
static int vmc_tx_wait(struct vmc_dev *vmc, struct vmc_channel *ch,
		       struct vmc_tx_req *req, enum vmc_send_wait wait)
{
	switch (wait) {
	case VMC_SEND_NONBLOCK:
		if (!vmc_tx_try(vmc, ch, req))
			return -EAGAIN;
		break;
	case VMC_SEND_INTERRUPTIBLE:
		if (wait_event_interruptible(vmc->tx_wait, vmc_tx_try(vmc, ch, req)))
			return -ERESTARTSYS;
		break;
	case VMC_SEND_RELIABLE:
		/* The device drains txq continuously; only a dead one stalls it. */
		if (!wait_event_timeout(vmc->tx_wait, vmc_tx_try(vmc, ch, req),
					VMC_TX_TIMEOUT))
			return -ETIMEDOUT;
		break;
	}
	return req->ret;
}

static int vmc_tx_send(struct vmc_dev *vmc, struct vmc_channel *ch, u16 type,
		       const char __user *data, u32 len, enum vmc_send_wait wait,
		       bool kick_added)
{
	struct vmc_tx_req req = { .kick_added = kick_added };
	int ret;

	if (WARN_ON_ONCE(len > VMCHANNEL_MAX_PAYLOAD))
		return -EINVAL;
	/*
	 * A full txq fails a non-blocking send before the copy: with many
	 * channels busy, most non-blocking writes met a full txq, and copying
	 * their payloads for nothing took most of the guest's time.
	 */
	if (wait == VMC_SEND_NONBLOCK && len && !vmc_tx_has_room(vmc))
		return -EAGAIN;
	req.buf = vmc_tx_buf_get(vmc, len);
	if (!req.buf)
		return -ENOMEM;
	req.len = min(len, vmc_tx_capacity(req.buf));
	if (req.len && copy_from_user(req.buf->payload, data, req.len)) {
		ret = -EFAULT;
		goto out_put;
	}
	memset(&req.buf->hdr, 0, sizeof(req.buf->hdr));
	req.buf->hdr.channel_id = cpu_to_le32(ch ? ch->id : VMCHANNEL_DEVICE_CHANNEL);
	req.buf->hdr.type = cpu_to_le16(type);
	ret = vmc_tx_wait(vmc, ch, &req, wait);
	if (req.queued)
		return ret;
out_put:
	spin_lock_irq(&vmc->tx_lock);
	vmc_tx_buf_put(vmc, req.buf);
	spin_unlock_irq(&vmc->tx_lock);
	return ret;
}

/**
 * vmc_send() - send a message a channel owes (OPEN, CLOSE, CREDIT)
 * @ch: the channel
 * @type: the message
 * @wait: how to wait for room on txq
 *
 * The header carries the channel's current receive credit, as every
 * message's does, so every message also serves as a credit update.
 *
 * Return: 0 (also when the message is no longer owed), or -EAGAIN, -ENODEV,
 * -ENOMEM, -ERESTARTSYS, -ETIMEDOUT.
 */
int vmc_send(struct vmc_channel *ch, enum vmchannel_msg_type type,
	     enum vmc_send_wait wait)
{
	return vmc_tx_send(ch->vmc, ch, type, NULL, 0, wait, false);
}

/**
 * vmc_send_data() - send one DATA message of a channel's session
 * @ch: the channel
 * @data: the payload
 * @len: payload length, at most VMCHANNEL_MAX_PAYLOAD
 * @wait: how to wait for room on txq
 * @last: the message ends the caller's write(): the device is kicked with it
 *
 * The payload is limited to the device's credit at the moment it is queued
 * and accounted then, and may be shorter than @len when memory for a big
 * buffer is short.  The device learns about DATA with the write()'s last
 * message, at the caller's vmc_tx_kick() (a write() cut short, or one about
 * to wait for credit), when txq fills, or with any later message that kicks.
 *
 * Return: the payload bytes queued (0: the credit is gone, or the session
 * ended), or -EAGAIN, -ENODEV, -ENOMEM, -EFAULT, -ERESTARTSYS.
 */
int vmc_send_data(struct vmc_channel *ch, const char __user *data, u32 len,
		  enum vmc_send_wait wait, bool last)
{
	return vmc_tx_send(ch->vmc, ch, VMCHANNEL_MSG_DATA, data, len, wait, last);
}

/* Sends a device-level message (RESET, SUSPEND, RESUME); see main.c. */
int vmc_send_dev(struct vmc_dev *vmc, enum vmchannel_msg_type type)
{
	return vmc_tx_send(vmc, NULL, type, NULL, 0, VMC_SEND_RELIABLE, false);
}

/*
 * Sends what a channel owes the device without waiting; what cannot go now
 * (txq full, no memory) is retried by vmc_owed_work(), at once when txq
 * has room again, else after VMC_OWED_RETRY.
 */
void vmc_send_owed(struct vmc_channel *ch)
{
	static const u16 order[] = {
		VMCHANNEL_MSG_OPEN, VMCHANNEL_MSG_CLOSE, VMCHANNEL_MSG_CREDIT,
	};
	struct vmc_dev *vmc = ch->vmc;
	enum vmc_dev_state state;
	unsigned int owed, i;
	int err;

	spin_lock_irq(&ch->lock);
	owed = ch->owed;
	spin_unlock_irq(&ch->lock);
	for (i = 0; i < ARRAY_SIZE(order); i++) {
		if (!(owed & vmc_owe_bit[order[i]]))
			continue;
		err = vmc_send(ch, order[i], VMC_SEND_NONBLOCK);
		if (err != -EAGAIN && err != -ENOMEM)
			continue;
		/* restore() runs the work again once the device is back. */
		state = vmc_dev_state(vmc);
		if (state == VMC_DEV_RESETTING || state == VMC_DEV_RUNNING)
			schedule_delayed_work(&vmc->owed_work, VMC_OWED_RETRY);
		return;
	}
}

/* Retries the messages channels owe (vmc_channel.owed). */
void vmc_owed_work(struct work_struct *work)
{
	struct vmc_dev *vmc = container_of(to_delayed_work(work), struct vmc_dev,
					   owed_work);
	struct vmc_channel *ch;
	unsigned long id = 0;

	for (;;) {
		xa_lock_irq(&vmc->channels);
		ch = xa_find(&vmc->channels, &id, ULONG_MAX, XA_PRESENT);
		if (ch)
			kref_get(&ch->kref);
		xa_unlock_irq(&vmc->channels);
		if (!ch)
			break;
		if (READ_ONCE(ch->owed))
			vmc_send_owed(ch);
		vmc_channel_put(ch);
		id++;
	}
}

/*
 * Frees the rx and tx pools.  Called by vmc_vqs_drain() and again when vmc
 * is released: between a failed restore's drain and REMOVE, a channel may
 * still give back an rxq buffer or send (and take back) a txq buffer.
 */
void vmc_pools_free(struct vmc_dev *vmc)
{
	struct vmc_tx_buf *tx_buf;
	struct vmc_rx_buf *rx_buf;
	enum vmc_tx_size size;

	spin_lock_irq(&vmc->rx_lock);
	while ((rx_buf = vmc_rx_pool_pop(vmc)))
		vmc_rx_buf_free(rx_buf);
	spin_unlock_irq(&vmc->rx_lock);
	spin_lock_irq(&vmc->tx_lock);
	for (size = 0; size < VMC_TX_SIZES; size++)
		while ((tx_buf = vmc_tx_pool_pop(vmc, size)))
			vmc_tx_buf_free(tx_buf);
	spin_unlock_irq(&vmc->tx_lock);
}

/* Frees every buffer on the rings and in the pools; the device has been reset. */
void vmc_vqs_drain(struct vmc_dev *vmc)
{
	struct vmc_tx_buf *tx_buf;
	struct vmc_rx_buf *rx_buf;

	spin_lock_irq(&vmc->rx_lock);
	while ((rx_buf = virtqueue_detach_unused_buf(vmc->rx_vq)))
		vmc_rx_buf_free(rx_buf);
	vmc->rx_posted = 0;
	spin_unlock_irq(&vmc->rx_lock);
	spin_lock_irq(&vmc->tx_lock);
	while ((tx_buf = virtqueue_detach_unused_buf(vmc->tx_vq)))
		vmc_tx_buf_free(tx_buf);
	WRITE_ONCE(vmc->tx_unkicked, 0);
	spin_unlock_irq(&vmc->tx_lock);
	vmc_pools_free(vmc);
}
