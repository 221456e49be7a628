// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The file operations of /dev/vmchannel/<name>.
 *
 * The first open starts a session (OPEN to the device, a receive window for
 * the channel); the last close ends it (CLOSE, unread bytes are freed):
 * events of the channel's state machine (state.c).  One file may read and one may write at
 * a time, so "exec 3<>node" and "cat node > node" work while two agents
 * cannot interleave unnoticed; threads sharing that file take turns.
 */
#include <linux/fs.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <asm/ioctls.h>

#include "vmchannel.h"

/* Runs one step of the channel's state machine and what it asks for. */
static unsigned int vmc_chan_event(struct vmc_channel *ch, enum vmc_chan_event ev)
{
	unsigned int actions;
	LIST_HEAD(freed);

	spin_lock_irq(&ch->lock);
	actions = vmc_chan_step(ch, ev, NULL, &freed);
	spin_unlock_irq(&ch->lock);
	vmc_chan_act(ch, actions, &freed);
	return actions;
}

static int vmc_open(struct inode *inode, struct file *file)
{
	bool reading = file->f_mode & FMODE_READ;
	bool writing = file->f_mode & FMODE_WRITE;
	struct vmc_channel *ch;
	int err;

	ch = vmc_channel_get_by_minor(iminor(inode));
	if (!ch)
		return -ENXIO;

	mutex_lock(&ch->open_lock);
	if ((reading && ch->readers) || (writing && ch->writers)) {
		err = -EBUSY;
		goto err_unlock;
	}
	/* Any open file, O_ACCMODE 3 (ioctls only) too, belongs to the session. */
	/* Nothing is allocated: received bytes stay in rxq buffers (rxqueue.c). */
	if (!ch->files && !(vmc_chan_event(ch, VMC_CH_EV_OPEN) & VMC_ACT_SEND)) {
		/* Not CLOSED, with no file: the channel is gone. */
		err = -ENXIO;
		goto err_unlock;
	}
	ch->files++;
	ch->readers += reading;
	ch->writers += writing;
	mutex_unlock(&ch->open_lock);

	file->private_data = ch;
	return nonseekable_open(inode, file);

err_unlock:
	mutex_unlock(&ch->open_lock);
	vmc_channel_put(ch);
	return err;
}

static int vmc_release(struct inode *inode, struct file *file)
{
	struct vmc_channel *ch = file->private_data;

	mutex_lock(&ch->open_lock);
	ch->readers -= !!(file->f_mode & FMODE_READ);
	ch->writers -= !!(file->f_mode & FMODE_WRITE);
	/* CLOSE is queued, or owed and retried: the host must see end of stream. */
	if (!--ch->files)
		vmc_chan_event(ch, VMC_CH_EV_CLOSE);
	mutex_unlock(&ch->open_lock);
	vmc_channel_put(ch);
	return 0;
}

/* Credit, a loss to report or removal: a write would not block. */
static bool vmc_write_ready(struct vmc_channel *ch)
{
	bool ready;

	spin_lock_irq(&ch->lock);
	ready = ch->state == VMC_CH_REMOVED || ch->data_lost || vmc_tx_credit(ch);
	spin_unlock_irq(&ch->lock);
	return ready;
}

/*
 * Waits for readable bytes.  Returns how many may be copied (> 0), or 0 for
 * an end-of-stream mark, which it consumes, or a negative errno.
 */
static ssize_t vmc_read_wait(struct vmc_channel *ch, bool nonblock)
{
	unsigned int actions;
	bool removed;
	u32 avail;

	for (;;) {
		spin_lock_irq(&ch->lock);
		avail = vmc_readable(ch);
		if (avail) {
			spin_unlock_irq(&ch->lock);
			return avail;
		}
		if (ch->n_eof) {
			actions = vmc_chan_step(ch, VMC_CH_EV_EOF_READ, NULL, NULL);
			spin_unlock_irq(&ch->lock);
			vmc_chan_act(ch, actions, NULL);
			return 0;
		}
		removed = ch->state == VMC_CH_REMOVED;
		spin_unlock_irq(&ch->lock);
		if (removed)
			return -ENODEV;
		if (nonblock)
			return -EAGAIN;
		if (vmc_read_sleep(ch))
			return -ERESTARTSYS;
	}
}

static ssize_t vmc_read(struct file *file, char __user *buf, size_t count,
			loff_t *ppos)
{
	struct vmc_channel *ch = file->private_data;
	unsigned int actions;
	ssize_t ret;

	if (!count)
		return 0;
	if (mutex_lock_interruptible(&ch->read_lock))
		return -ERESTARTSYS;
	ret = vmc_read_wait(ch, file->f_flags & O_NONBLOCK);
	if (ret <= 0)
		goto out_unlock;

	/* Straight from the buffers the device wrote, without the spinlock. */
	ret = vmc_rxq_read(ch, buf, min_t(size_t, count, ret));
	if (ret <= 0)
		goto out_unlock;

	spin_lock_irq(&ch->lock);
	ch->fwd_cnt += ret;
	actions = vmc_chan_step(ch, VMC_CH_EV_READ, NULL, NULL);
	spin_unlock_irq(&ch->lock);
	vmc_chan_act(ch, actions, NULL);
out_unlock:
	mutex_unlock(&ch->read_lock);
	return ret;
}

/* A loss the device reported, to be returned once: true if there was one. */
static bool vmc_take_lost(struct vmc_channel *ch)
{
	bool lost;

	spin_lock_irq(&ch->lock);
	lost = ch->data_lost;
	ch->data_lost = false;
	spin_unlock_irq(&ch->lock);
	return lost;
}

/*
 * One writer at a time (write_lock): the credit it sees is its own to spend.
 * The device is kicked once for all the messages of a write(), or before it
 * waits.
 * A loss the device reported fails the next write() once with ECONNRESET,
 * before it writes anything; a write() under way when it is reported
 * returns what it wrote so far.
 */
static ssize_t vmc_write(struct file *file, const char __user *buf,
			 size_t count, loff_t *ppos)
{
	struct vmc_channel *ch = file->private_data;
	bool nonblock = file->f_flags & O_NONBLOCK;
	bool removed, lost;
	size_t done = 0;
	u32 credit, n;
	int ret = 0;

	if (!count)
		return 0;
	if (nonblock) {
		if (!mutex_trylock(&ch->write_lock))
			return -EAGAIN;
	} else if (mutex_lock_interruptible(&ch->write_lock)) {
		return -ERESTARTSYS;
	}
	while (done < count) {
		spin_lock_irq(&ch->lock);
		removed = ch->state == VMC_CH_REMOVED;
		lost = ch->data_lost;
		credit = vmc_tx_credit(ch);
		spin_unlock_irq(&ch->lock);
		if (removed) {
			ret = -ENODEV;
			break;
		}
		if (lost) {
			if (!done && vmc_take_lost(ch))
				ret = -ECONNRESET;
			break;
		}
		if (!credit) {
			if (nonblock) {
				ret = -EAGAIN;
				break;
			}
			/* The device must see what we queued to give credit back. */
			vmc_tx_kick(ch->vmc);
			if (wait_event_interruptible(ch->wr_wait, vmc_write_ready(ch))) {
				ret = -ERESTARTSYS;
				break;
			}
			continue;
		}
		n = min3(count - done, (size_t)credit, (size_t)VMCHANNEL_MAX_PAYLOAD);
		ret = vmc_send_data(ch, buf + done, n,
				    nonblock ? VMC_SEND_NONBLOCK : VMC_SEND_INTERRUPTIBLE,
				    done + n == count);
		if (ret < 0)
			break;
		/* 0: the device took its credit back meanwhile; wait again. */
		done += ret;
	}
	/* One kick for every message of the write(): here if it was cut short. */
	vmc_tx_kick(ch->vmc);
	mutex_unlock(&ch->write_lock);
	return done ? done : ret;
}

static __poll_t vmc_poll(struct file *file, poll_table *wait)
{
	struct vmc_channel *ch = file->private_data;
	__poll_t mask = 0;
	bool writable;

	poll_wait(file, &ch->rd_wait, wait);
	poll_wait(file, &ch->wr_wait, wait);
	/* Room on the shared txq comes back on vmc_dev.tx_wait. */
	poll_wait(file, &ch->vmc->tx_wait, wait);
	spin_lock_irq(&ch->lock);
	if (ch->rx_cnt != ch->fwd_cnt || ch->n_eof)
		mask |= EPOLLIN | EPOLLRDNORM;
	writable = vmc_tx_credit(ch);
	/* The write would not block: it returns ECONNRESET. */
	if (ch->data_lost && ch->state != VMC_CH_REMOVED)
		mask |= EPOLLOUT | EPOLLWRNORM;
	if (ch->state == VMC_CH_REMOVED)
		mask |= EPOLLHUP | EPOLLERR;
	spin_unlock_irq(&ch->lock);
	/* Writable: a write would not block, so txq must have room too. */
	if (writable && vmc_tx_has_room(ch->vmc))
		mask |= EPOLLOUT | EPOLLWRNORM;
	return mask;
}

static int vmc_fasync(int fd, struct file *file, int on)
{
	struct vmc_channel *ch = file->private_data;

	return fasync_helper(fd, file, on, &ch->fasync);
}

/* FIONREAD: the bytes a read would return now (up to an end of stream). */
static int vmc_ioctl_fionread(struct vmc_channel *ch, int __user *arg)
{
	u32 avail;

	spin_lock_irq(&ch->lock);
	avail = vmc_readable(ch);
	spin_unlock_irq(&ch->lock);
	return put_user((int)avail, arg);
}

static int vmc_ioctl_get_state(struct vmc_channel *ch, struct vmchannel_state __user *arg)
{
	struct vmchannel_state state = {};

	spin_lock_irq(&ch->lock);
	if (ch->host_connected)
		state.flags |= VMCHANNEL_STATE_HOST_CONNECTED;
	if (ch->state == VMC_CH_REMOVED)
		state.flags |= VMCHANNEL_STATE_REMOVED;
	state.connections = ch->connections;
	spin_unlock_irq(&ch->lock);
	return copy_to_user(arg, &state, sizeof(state)) ? -EFAULT : 0;
}

static bool vmc_host_ready(struct vmc_channel *ch)
{
	bool ready;

	spin_lock_irq(&ch->lock);
	ready = ch->state == VMC_CH_REMOVED || ch->host_connected;
	spin_unlock_irq(&ch->lock);
	return ready;
}

/* Sleeps until a host program is connected: agents need not spin. */
static int vmc_ioctl_wait_host(struct vmc_channel *ch, bool nonblock)
{
	if (!vmc_host_ready(ch)) {
		if (nonblock)
			return -EAGAIN;
		if (wait_event_interruptible(ch->rd_wait, vmc_host_ready(ch)))
			return -ERESTARTSYS;
	}
	return READ_ONCE(ch->state) == VMC_CH_REMOVED ? -ENODEV : 0;
}

static long vmc_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct vmc_channel *ch = file->private_data;
	void __user *argp = (void __user *)arg;

	switch (cmd) {
	case FIONREAD:
		return vmc_ioctl_fionread(ch, argp);
	case VMCHANNEL_IOC_GET_STATE:
		return vmc_ioctl_get_state(ch, argp);
	case VMCHANNEL_IOC_WAIT_HOST:
		return vmc_ioctl_wait_host(ch, file->f_flags & O_NONBLOCK);
	}
	return -ENOTTY;
}

const struct file_operations vmc_fops = {
	.owner = THIS_MODULE,
	.open = vmc_open,
	.release = vmc_release,
	.read = vmc_read,
	.write = vmc_write,
	.poll = vmc_poll,
	.fasync = vmc_fasync,
	.unlocked_ioctl = vmc_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};
