// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The file operations of /dev/vmchannel/<name>.
 *
 * The first open starts a session (OPEN to the device, a receive ring for the
 * channel); the last close ends it (CLOSE, the ring is freed).  One file may
 * read and one may write at a time, so "exec 3<>node" and "cat node > node"
 * work while two agents cannot interleave unnoticed.
 */
#include <linux/fs.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <asm/ioctls.h>

#include "vmchannel.h"

/* Largest payload per DATA message: header and payload share one buffer. */
#define VMC_TX_CHUNK	(VMC_TX_BUF_SIZE - sizeof(struct vmchannel_hdr))

static void vmc_session_start(struct vmc_channel *ch, u8 *ring)
{
	spin_lock_irq(&ch->lock);
	ch->ring = ring;
	ch->session = true;
	ch->acked = false;
	ch->host_connected = false;
	ch->connections = 0;
	ch->rx_cnt = 0;
	ch->fwd_cnt = 0;
	ch->fwd_reported = 0;
	ch->n_eof = 0;
	ch->tx_cnt = 0;
	ch->peer_buf_alloc = 0;
	ch->peer_fwd_cnt = 0;
	spin_unlock_irq(&ch->lock);
}

static void vmc_session_end(struct vmc_channel *ch)
{
	u8 *ring;

	spin_lock_irq(&ch->lock);
	ring = ch->ring;
	ch->ring = NULL;
	ch->session = false;
	spin_unlock_irq(&ch->lock);
	kvfree(ring);
}

static int vmc_open(struct inode *inode, struct file *file)
{
	bool reading = file->f_mode & FMODE_READ;
	bool writing = file->f_mode & FMODE_WRITE;
	struct vmc_channel *ch;
	u8 *ring;
	int err;

	ch = vmc_channel_get_by_minor(iminor(inode));
	if (!ch)
		return -ENXIO;

	mutex_lock(&ch->open_lock);
	if ((reading && ch->readers) || (writing && ch->writers)) {
		err = -EBUSY;
		goto err_unlock;
	}
	if (!ch->readers && !ch->writers) {
		ring = kvmalloc(VMC_RX_RING_SIZE, GFP_KERNEL);
		if (!ring) {
			err = -ENOMEM;
			goto err_unlock;
		}
		vmc_session_start(ch, ring);
		err = vmc_send(ch, VMCHANNEL_MSG_OPEN, NULL, 0, VMC_SEND_INTERRUPTIBLE);
		if (err) {
			vmc_session_end(ch);
			goto err_unlock;
		}
	}
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
	int err;

	mutex_lock(&ch->open_lock);
	ch->readers -= !!(file->f_mode & FMODE_READ);
	ch->writers -= !!(file->f_mode & FMODE_WRITE);
	if (!ch->readers && !ch->writers) {
		/* The host must see end of stream even when we were killed. */
		err = vmc_send(ch, VMCHANNEL_MSG_CLOSE, NULL, 0, VMC_SEND_RELIABLE);
		if (err && err != -ENODEV)
			dev_warn(&ch->vmc->vdev->dev, "channel %s: cannot send CLOSE: %d\n",
				 ch->name, err);
		vmc_session_end(ch);
	}
	mutex_unlock(&ch->open_lock);
	vmc_channel_put(ch);
	return 0;
}

/* Bytes a read may take now: up to the next end-of-stream mark. */
static u32 vmc_readable(const struct vmc_channel *ch)
{
	lockdep_assert_held(&ch->lock);
	return (ch->n_eof ? ch->eof[0] : ch->rx_cnt) - ch->fwd_cnt;
}

/* Data, an end-of-stream mark or removal: a read would not block. */
static bool vmc_read_ready(struct vmc_channel *ch)
{
	bool ready;

	spin_lock_irq(&ch->lock);
	ready = ch->removed || ch->rx_cnt != ch->fwd_cnt || ch->n_eof;
	spin_unlock_irq(&ch->lock);
	return ready;
}

/* Credit from the device or removal: a write would not block. */
static bool vmc_write_ready(struct vmc_channel *ch)
{
	bool ready;

	spin_lock_irq(&ch->lock);
	ready = ch->removed || (ch->acked && vmc_tx_credit(ch));
	spin_unlock_irq(&ch->lock);
	return ready;
}

/*
 * Waits for readable bytes.  Returns how many may be copied (> 0), or 0 for
 * an end-of-stream mark, which it consumes, or a negative errno.
 */
static ssize_t vmc_read_wait(struct vmc_channel *ch, bool nonblock)
{
	u32 avail;

	for (;;) {
		spin_lock_irq(&ch->lock);
		avail = vmc_readable(ch);
		if (avail) {
			spin_unlock_irq(&ch->lock);
			return avail;
		}
		if (ch->n_eof) {
			ch->n_eof--;
			memmove(ch->eof, ch->eof + 1, ch->n_eof * sizeof(ch->eof[0]));
			spin_unlock_irq(&ch->lock);
			return 0;
		}
		spin_unlock_irq(&ch->lock);
		if (READ_ONCE(ch->removed))
			return -ENODEV;
		if (nonblock)
			return -EAGAIN;
		if (wait_event_interruptible(ch->wait, vmc_read_ready(ch)))
			return -ERESTARTSYS;
	}
}

static ssize_t vmc_read(struct file *file, char __user *buf, size_t count,
			loff_t *ppos)
{
	struct vmc_channel *ch = file->private_data;
	u32 pos, first, n;
	bool report;
	ssize_t ret;

	if (!count)
		return 0;
	if (mutex_lock_interruptible(&ch->read_lock))
		return -ERESTARTSYS;
	ret = vmc_read_wait(ch, file->f_flags & O_NONBLOCK);
	if (ret <= 0)
		goto out_unlock;

	/*
	 * Only this reader consumes, and the rx work only writes past rx_cnt,
	 * so the bytes can be copied without holding the spinlock.
	 */
	n = min_t(size_t, count, ret);
	pos = READ_ONCE(ch->fwd_cnt) % VMC_RX_RING_SIZE;
	first = min(n, VMC_RX_RING_SIZE - pos);
	if (copy_to_user(buf, ch->ring + pos, first) ||
	    copy_to_user(buf + first, ch->ring, n - first)) {
		ret = -EFAULT;
		goto out_unlock;
	}

	spin_lock_irq(&ch->lock);
	ch->fwd_cnt += n;
	/* Report often enough that the device never waits on stale credit. */
	report = ch->fwd_cnt - ch->fwd_reported >= VMC_RX_RING_SIZE / 4 ||
		 (ch->fwd_cnt == ch->rx_cnt && ch->fwd_cnt != ch->fwd_reported);
	spin_unlock_irq(&ch->lock);
	if (report)
		vmc_send(ch, VMCHANNEL_MSG_CREDIT, NULL, 0, VMC_SEND_RELIABLE);
	ret = n;
out_unlock:
	mutex_unlock(&ch->read_lock);
	return ret;
}

static ssize_t vmc_write(struct file *file, const char __user *buf,
			 size_t count, loff_t *ppos)
{
	struct vmc_channel *ch = file->private_data;
	bool nonblock = file->f_flags & O_NONBLOCK;
	size_t done = 0;
	u32 credit, n;
	int err = 0;

	while (done < count) {
		spin_lock_irq(&ch->lock);
		credit = ch->acked && !ch->removed ? vmc_tx_credit(ch) : 0;
		spin_unlock_irq(&ch->lock);
		if (READ_ONCE(ch->removed)) {
			err = -ENODEV;
			break;
		}
		if (!credit) {
			if (nonblock) {
				err = -EAGAIN;
				break;
			}
			if (wait_event_interruptible(ch->wait, vmc_write_ready(ch))) {
				err = -ERESTARTSYS;
				break;
			}
			continue;
		}
		n = min3(count - done, (size_t)credit, VMC_TX_CHUNK);
		err = vmc_send(ch, VMCHANNEL_MSG_DATA, buf + done, n,
			       nonblock ? VMC_SEND_NONBLOCK : VMC_SEND_INTERRUPTIBLE);
		if (err)
			break;
		spin_lock_irq(&ch->lock);
		ch->tx_cnt += n;
		ch->tx_bytes += n;
		spin_unlock_irq(&ch->lock);
		done += n;
	}
	return done ? done : err;
}

static __poll_t vmc_poll(struct file *file, poll_table *wait)
{
	struct vmc_channel *ch = file->private_data;
	__poll_t mask = 0;
	bool writable;

	poll_wait(file, &ch->wait, wait);
	/* Room on the shared txq comes back on vmc_dev.tx_wait. */
	poll_wait(file, &ch->vmc->tx_wait, wait);
	spin_lock_irq(&ch->lock);
	if (ch->rx_cnt != ch->fwd_cnt || ch->n_eof)
		mask |= EPOLLIN | EPOLLRDNORM;
	writable = !ch->removed && ch->acked && vmc_tx_credit(ch);
	if (ch->removed)
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
	if (ch->removed)
		state.flags |= VMCHANNEL_STATE_REMOVED;
	state.connections = ch->connections;
	spin_unlock_irq(&ch->lock);
	return copy_to_user(arg, &state, sizeof(state)) ? -EFAULT : 0;
}

static bool vmc_host_ready(struct vmc_channel *ch)
{
	bool ready;

	spin_lock_irq(&ch->lock);
	ready = ch->removed || ch->host_connected;
	spin_unlock_irq(&ch->lock);
	return ready;
}

/* Sleeps until a host program is connected: agents need not spin. */
static int vmc_ioctl_wait_host(struct vmc_channel *ch, bool nonblock)
{
	if (!vmc_host_ready(ch)) {
		if (nonblock)
			return -EAGAIN;
		if (wait_event_interruptible(ch->wait, vmc_host_ready(ch)))
			return -ERESTARTSYS;
	}
	return READ_ONCE(ch->removed) ? -ENODEV : 0;
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
