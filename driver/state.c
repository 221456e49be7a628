// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The driver's state machines, as tabled in docs/device-spec.md ("The
 * driver's channel state machine"): vmc_chan_step() for a channel and
 * vmc_dev_step() for the device.  A step changes the state and the counters
 * under the lock and returns what its caller must do once the lock is
 * dropped (send, wake, free); nothing here sleeps.
 */
#include <linux/fs.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/string.h>

#include "vmchannel.h"

/* The credit the device granted us: payload bytes we may still send. */
u32 vmc_tx_credit(const struct vmc_channel *ch)
{
	u32 in_flight = ch->tx_cnt - ch->peer_fwd_cnt;

	lockdep_assert_held(&ch->lock);
	if (ch->state != VMC_CH_OPEN)
		return 0;
	/* A device that reports more consumed than sent gets no extra credit. */
	if (in_flight > ch->peer_buf_alloc)
		return 0;
	return ch->peer_buf_alloc - in_flight;
}

/* Bytes a read may take now: up to the next end-of-stream mark. */
u32 vmc_readable(const struct vmc_channel *ch)
{
	lockdep_assert_held(&ch->lock);
	return (ch->n_eof ? ch->eof[0] : ch->rx_cnt) - ch->fwd_cnt;
}

static u32 vmc_rx_free(const struct vmc_channel *ch)
{
	return VMC_RX_WINDOW - (ch->rx_cnt - ch->fwd_cnt);
}

/*
 * Records a host_connected flip for vmc_uevent_work().  Queued under
 * ch->lock, so that once the channel is REMOVED nothing queues it again.
 */
static void vmc_chan_host(struct vmc_channel *ch, bool connected)
{
	unsigned long next = ch->uevent_sent + VMC_UEVENT_INTERVAL;

	if (ch->host_connected == connected)
		return;
	ch->host_connected = connected;
	ch->uevent_pending |= connected ? BIT(1) : BIT(0);
	/* A pending work keeps its time: flips in between are coalesced. */
	schedule_delayed_work(&ch->uevent_work,
			      time_after(next, jiffies) ? next - jiffies : 0);
}

/*
 * DATA within the channel's credit is queued for readers; beyond, it is
 * dropped.  Return: VMC_ACT_RX_KEPT if the queue keeps the buffer.
 */
static unsigned int vmc_chan_data(struct vmc_channel *ch, const struct vmc_rx_msg *msg)
{
	u32 len = le32_to_cpu(msg->hdr.len);	/* validated by the rx path */
	bool kept;

	if (len > vmc_rx_free(ch)) {
		dev_warn_ratelimited(&ch->vmc->vdev->dev,
				     "channel %s: device sent %u bytes beyond its credit: dropped\n",
				     ch->name, len);
		return 0;
	}
	kept = vmc_rxq_add(ch, msg->buf, len);
	ch->rx_cnt += len;
	ch->rx_bytes += len;
	return kept ? VMC_ACT_RX_KEPT : 0;
}

/* HOST_DISCONNECT: one end-of-stream mark each, none merged, none dropped. */
static void vmc_chan_eof(struct vmc_channel *ch)
{
	if (ch->n_eof == VMCHANNEL_EOF_WINDOW) {
		dev_warn_ratelimited(&ch->vmc->vdev->dev,
				     "channel %s: device sent more than %u ends of stream unconsumed: dropped\n",
				     ch->name, VMCHANNEL_EOF_WINDOW);
		return;
	}
	ch->eof[ch->n_eof++] = ch->rx_cnt;
}

/*
 * A message of the current session while OPEN.  Only waiters that can now
 * proceed are woken: readers for bytes, marks and host state, writers for
 * more credit or a loss to report.
 */
static unsigned int vmc_chan_rx_open(struct vmc_channel *ch, const struct vmc_rx_msg *msg)
{
	const struct vmchannel_hdr *hdr = &msg->hdr;
	u16 flags = le16_to_cpu(hdr->flags);
	u32 credit = vmc_tx_credit(ch);
	bool lost = ch->data_lost;
	unsigned int actions;

	ch->peer_buf_alloc = le32_to_cpu(hdr->buf_alloc);
	ch->peer_fwd_cnt = le32_to_cpu(hdr->fwd_cnt);
	switch (le16_to_cpu(hdr->type)) {
	case VMCHANNEL_MSG_DATA:
		actions = VMC_ACT_WAKE_RD | vmc_chan_data(ch, msg);
		break;
	case VMCHANNEL_MSG_CREDIT:
		if (flags & VMCHANNEL_F_DATA_LOST)
			ch->data_lost = true;
		actions = 0;
		break;
	case VMCHANNEL_MSG_HOST_CONNECT:
		if (!ch->host_connected)
			ch->connections++;
		vmc_chan_host(ch, true);
		actions = VMC_ACT_WAKE_RD;
		break;
	case VMCHANNEL_MSG_HOST_DISCONNECT:
		if (flags & VMCHANNEL_F_DATA_LOST)
			ch->data_lost = true;
		vmc_chan_eof(ch);
		vmc_chan_host(ch, false);
		actions = VMC_ACT_WAKE_RD;
		break;
	default:
		/* A second OPEN of the session: nothing to do. */
		actions = 0;
		break;
	}
	if (vmc_tx_credit(ch) > credit || ch->data_lost != lost)
		actions |= VMC_ACT_WAKE_WR;
	return actions;
}

/*
 * The driver reports consumed bytes once a quarter of the window, and only
 * then (every message it sends carries them too): a device without credit
 * has the whole window in flight, and reading it crosses a quarter.
 */
static bool vmc_chan_credit_due(const struct vmc_channel *ch)
{
	return ch->fwd_cnt - ch->fwd_reported >= VMC_RX_WINDOW / 4;
}

/**
 * vmc_chan_step() - the channel's transition function
 * @ch: the channel; its lock is held
 * @ev: what happened
 * @msg: for VMC_CH_EV_RX, the validated message: its header as copied
 *	out of the rxq buffer (never the buffer's, which the device may rewrite)
 * @freed: for VMC_CH_EV_CLOSE, receives the buffers of unread bytes
 *
 * Return: VMC_ACT_* bits for vmc_chan_act().
 */
unsigned int vmc_chan_step(struct vmc_channel *ch, enum vmc_chan_event ev,
			   const struct vmc_rx_msg *msg, struct list_head *freed)
{
	lockdep_assert_held(&ch->lock);

	switch (ev) {
	case VMC_CH_EV_OPEN:
		if (ch->state != VMC_CH_CLOSED)
			return 0;
		ch->session = ch->session + 1 ?: 1;
		ch->receiving = true;
		ch->rx_cnt = 0;
		ch->fwd_cnt = 0;
		ch->fwd_reported = 0;
		ch->eof_cnt = 0;
		ch->n_eof = 0;
		ch->tx_cnt = 0;
		ch->peer_buf_alloc = 0;
		ch->peer_fwd_cnt = 0;
		ch->connections = 0;
		ch->data_lost = false;
		/* OPEN(s + 1) ends session s at the device: no CLOSE owed. */
		ch->owed = VMC_OWE_OPEN;
		ch->state = VMC_CH_OPENING;
		return VMC_ACT_SEND;

	case VMC_CH_EV_CLOSE:
		list_splice_init(&ch->rx_queue, freed);
		ch->rx_kept = 0;
		ch->receiving = false;
		ch->n_eof = 0;
		ch->rx_cnt = ch->fwd_cnt;
		if (ch->state == VMC_CH_REMOVED)
			return VMC_ACT_FREE_RX;
		ch->state = VMC_CH_CLOSED;
		ch->owed = VMC_OWE_CLOSE;
		vmc_chan_host(ch, false);
		return VMC_ACT_FREE_RX | VMC_ACT_SEND;

	case VMC_CH_EV_RX:
		if ((ch->state != VMC_CH_OPENING && ch->state != VMC_CH_OPEN) ||
		    le32_to_cpu(msg->hdr.session) != ch->session)
			return 0;
		if (ch->state == VMC_CH_OPEN)
			return vmc_chan_rx_open(ch, msg);
		/* OPENING: only the acknowledgment of our OPEN counts. */
		if (le16_to_cpu(msg->hdr.type) != VMCHANNEL_MSG_OPEN)
			return 0;
		ch->peer_buf_alloc = le32_to_cpu(msg->hdr.buf_alloc);
		ch->peer_fwd_cnt = le32_to_cpu(msg->hdr.fwd_cnt);
		ch->state = VMC_CH_OPEN;
		return VMC_ACT_WAKE;

	case VMC_CH_EV_READ:
		if (ch->state != VMC_CH_OPEN || !vmc_chan_credit_due(ch))
			return 0;
		ch->owed |= VMC_OWE_CREDIT;
		return VMC_ACT_SEND;

	case VMC_CH_EV_EOF_READ:
		if (!ch->n_eof)
			return 0;
		ch->n_eof--;
		memmove(ch->eof, ch->eof + 1, ch->n_eof * sizeof(ch->eof[0]));
		ch->eof_cnt++;
		if (ch->state != VMC_CH_OPEN)
			return 0;
		ch->owed |= VMC_OWE_CREDIT;
		return VMC_ACT_SEND;

	case VMC_CH_EV_RESUME:
		/*
		 * A freeze whose SUSPEND was not acknowledged drops the
		 * messages txq still held, and with them the credit they
		 * carried: the device may wait for it with the whole window
		 * in flight.  The current count goes again.
		 */
		if (ch->state != VMC_CH_OPEN)
			return 0;
		ch->owed |= VMC_OWE_CREDIT;
		return VMC_ACT_SEND;

	case VMC_CH_EV_REMOVE:
		if (ch->state == VMC_CH_REMOVED)
			return 0;
		/*
		 * A session still open ends here.  Its CLOSE tells the device
		 * that no DATA of the session follows, so the device takes the
		 * DATA already on txq before it lets the channel go.  The
		 * queue stays: buffered bytes can still be read.
		 */
		if (ch->state == VMC_CH_OPENING || ch->state == VMC_CH_OPEN)
			ch->owed = VMC_OWE_CLOSE;
		else
			ch->owed &= VMC_OWE_CLOSE;
		ch->state = VMC_CH_REMOVED;
		return VMC_ACT_WAKE | (ch->owed ? VMC_ACT_SEND : 0);
	}
	return 0;
}

/* Carries out what vmc_chan_step() asked for; ch->lock is not held. */
void vmc_chan_act(struct vmc_channel *ch, unsigned int actions, struct list_head *freed)
{
	if (actions & VMC_ACT_FREE_RX)
		vmc_rxq_free(ch->vmc, freed);
	if (actions & VMC_ACT_SEND)
		vmc_send_owed(ch);
	if (actions & VMC_ACT_WAKE_RD) {
		wake_up_interruptible_poll(&ch->rd_wait, EPOLLIN | EPOLLRDNORM);
		kill_fasync(&ch->fasync, SIGIO, POLL_IN);
	}
	if (actions & VMC_ACT_WAKE_WR) {
		wake_up_interruptible_poll(&ch->wr_wait, EPOLLOUT | EPOLLWRNORM);
		kill_fasync(&ch->fasync, SIGIO, POLL_OUT);
	}
}

/**
 * vmc_dev_step() - the device's transition function
 * @vmc: the device
 * @ev: what happened
 *
 * Takes rx_lock and tx_lock: every reader of the state holds one of them.
 * Wakes senders and whoever waits for an acknowledgment.
 *
 * Return: whether the state changed.
 */
bool vmc_dev_step(struct vmc_dev *vmc, enum vmc_dev_event ev)
{
	enum vmc_dev_state old, next;
	unsigned long flags;

	spin_lock_irqsave(&vmc->rx_lock, flags);
	spin_lock(&vmc->tx_lock);
	old = vmc->state;
	next = old;
	switch (ev) {
	case VMC_DEV_EV_RESET:
		if (old != VMC_DEV_GONE)
			next = VMC_DEV_RESETTING;
		break;
	case VMC_DEV_EV_RESET_ACK:
		if (old == VMC_DEV_RESETTING)
			next = VMC_DEV_RUNNING;
		break;
	case VMC_DEV_EV_FREEZE:
		/* RESETTING: the ack did not come; the rings must stop anyway. */
		if (old == VMC_DEV_RUNNING || old == VMC_DEV_RESETTING)
			next = VMC_DEV_SUSPENDING;
		break;
	case VMC_DEV_EV_SUSPEND_ACK:
		if (old == VMC_DEV_SUSPENDING)
			next = VMC_DEV_SUSPENDED;
		break;
	case VMC_DEV_EV_RESTORE:
		if (old == VMC_DEV_SUSPENDED)
			next = VMC_DEV_RUNNING;
		break;
	case VMC_DEV_EV_REMOVE:
		next = VMC_DEV_GONE;
		break;
	}
	WRITE_ONCE(vmc->state, next);
	spin_unlock(&vmc->tx_lock);
	spin_unlock_irqrestore(&vmc->rx_lock, flags);

	if (next == old)
		return false;
	wake_up_all(&vmc->state_wait);
	wake_up_all(&vmc->tx_wait);
	return true;
}
