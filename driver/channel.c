// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Channel lifetime: the character device region, the "vmchannel" class whose
 * devnode puts every node under /dev/vmchannel/, and the creation and removal
 * of channels as the device's table changes.
 *
 * One cdev covers the whole minor range; open() finds the channel by minor.
 * Channels are reference counted because open files outlive their removal.
 */
#include <linux/bits.h>
#include <linux/cdev.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

#include "config.h"
#include "vmchannel.h"

#define VMC_MINORS	BIT(16)

static dev_t vmc_devt;
static struct cdev vmc_cdev;
static struct class *vmc_class;
static DEFINE_IDR(vmc_minors);
static DEFINE_MUTEX(vmc_minor_lock); /* protects vmc_minors and node names */

static char *vmc_devnode(vmc_class_dev *dev, umode_t *mode)
{
	return kasprintf(GFP_KERNEL, "vmchannel/%s", dev_name(dev));
}

int vmc_chrdev_init(void)
{
	int err;

	err = alloc_chrdev_region(&vmc_devt, 0, VMC_MINORS, "vmchannel");
	if (err)
		return err;
	cdev_init(&vmc_cdev, &vmc_fops);
	vmc_cdev.owner = THIS_MODULE;
	err = cdev_add(&vmc_cdev, vmc_devt, VMC_MINORS);
	if (err)
		goto err_unregister_region;
	vmc_class = vmc_class_create("vmchannel");
	if (IS_ERR(vmc_class)) {
		err = PTR_ERR(vmc_class);
		goto err_cdev_del;
	}
	vmc_class->devnode = vmc_devnode;
	return 0;

err_cdev_del:
	cdev_del(&vmc_cdev);
err_unregister_region:
	unregister_chrdev_region(vmc_devt, VMC_MINORS);
	return err;
}

void vmc_chrdev_exit(void)
{
	class_destroy(vmc_class);
	cdev_del(&vmc_cdev);
	unregister_chrdev_region(vmc_devt, VMC_MINORS);
	idr_destroy(&vmc_minors);
}

static void vmc_channel_release(struct kref *kref)
{
	struct vmc_channel *ch = container_of(kref, struct vmc_channel, kref);

	/* The last close handed back what was queued. */
	WARN_ON_ONCE(!list_empty(&ch->rx_queue));
	vmc_dev_put(ch->vmc);
	kfree(ch);
}

void vmc_channel_put(struct vmc_channel *ch)
{
	kref_put(&ch->kref, vmc_channel_release);
}

struct vmc_channel *vmc_channel_get_by_minor(unsigned int minor)
{
	struct vmc_channel *ch;

	mutex_lock(&vmc_minor_lock);
	ch = idr_find(&vmc_minors, minor);
	if (ch)
		kref_get(&ch->kref);
	mutex_unlock(&vmc_minor_lock);
	return ch;
}

struct vmc_channel *vmc_channel_get_by_id(struct vmc_dev *vmc, u32 id)
{
	struct vmc_channel *ch;
	unsigned long flags;

	/* Called by rxq's interrupt too: the table's lock is irq-safe. */
	xa_lock_irqsave(&vmc->channels, flags);
	ch = xa_load(&vmc->channels, id);
	if (ch)
		kref_get(&ch->kref);
	xa_unlock_irqrestore(&vmc->channels, flags);
	return ch;
}

/*
 * Tells udev the host end came or went: KOBJ_CHANGE on the node, carrying
 * VMCHANNEL_HOST_CONNECTED=0|1.
 */
static void vmc_uevent_send(struct vmc_channel *ch, bool connected)
{
	char *envp[2];

	envp[0] = connected ? "VMCHANNEL_HOST_CONNECTED=1" : "VMCHANNEL_HOST_CONNECTED=0";
	envp[1] = NULL;
	/* Under the minor lock the node cannot be destroyed meanwhile. */
	mutex_lock(&vmc_minor_lock);
	if (ch->node)
		kobject_uevent_env(&ch->node->kobj, KOBJ_CHANGE, envp);
	mutex_unlock(&vmc_minor_lock);
}

/*
 * Sends the host_connected flips recorded since the last run (state.c
 * queues it at most every VMC_UEVENT_INTERVAL): a device that flaps costs
 * udev at most two uevents per interval, and each says a state the channel
 * really had, the current one last.
 */
void vmc_uevent_work(struct work_struct *work)
{
	struct vmc_channel *ch = container_of(to_delayed_work(work), struct vmc_channel,
					      uevent_work);
	unsigned int pending;
	bool connected;

	spin_lock_irq(&ch->lock);
	pending = ch->uevent_pending;
	ch->uevent_pending = 0;
	connected = ch->host_connected;
	ch->uevent_sent = jiffies;
	spin_unlock_irq(&ch->lock);
	/* Flips both ways since the last run: the one away from now first. */
	if (pending == (BIT(0) | BIT(1)))
		vmc_uevent_send(ch, !connected);
	if (pending)
		vmc_uevent_send(ch, connected);
}

/* True when another device's channel already owns @name as its node name. */
static bool vmc_node_name_taken(const char *name)
{
	struct vmc_channel *other;
	int minor;

	lockdep_assert_held(&vmc_minor_lock);
	idr_for_each_entry(&vmc_minors, other, minor)
		if (other->node && !strcmp(dev_name(other->node), name))
			return true;
	return false;
}

static int vmc_channel_add(struct vmc_dev *vmc, u32 id, const u8 *name)
{
	struct device *parent = &vmc->vdev->dev;
	struct vmc_channel *ch;
	struct device *node;
	int err;

	ch = kzalloc(sizeof(*ch), GFP_KERNEL);
	if (!ch)
		return -ENOMEM;
	kref_init(&ch->kref);
	ch->vmc = vmc;
	ch->id = id;
	strscpy(ch->name, name, sizeof(ch->name));
	mutex_init(&ch->open_lock);
	mutex_init(&ch->read_lock);
	mutex_init(&ch->write_lock);
	INIT_DELAYED_WORK(&ch->uevent_work, vmc_uevent_work);
	spin_lock_init(&ch->lock);
	INIT_LIST_HEAD(&ch->rx_queue);
	ch->state = VMC_CH_CLOSED;
	ch->uevent_sent = jiffies - VMC_UEVENT_INTERVAL;
	init_waitqueue_head(&ch->rd_wait);
	init_waitqueue_head(&ch->wr_wait);

	err = xa_insert_irq(&vmc->channels, id, ch, GFP_KERNEL);
	if (err)
		goto err_free;
	kref_get(&vmc->kref);

	mutex_lock(&vmc_minor_lock);
	ch->minor = idr_alloc(&vmc_minors, ch, 0, VMC_MINORS, GFP_KERNEL);
	if (ch->minor < 0) {
		err = ch->minor;
		goto err_unlock;
	}
	/* '@' is not allowed in names, so the fallback never hides a real one. */
	if (vmc_node_name_taken(ch->name))
		node = device_create_with_groups(vmc_class, parent, vmc_devt + ch->minor,
						 ch, vmc_channel_groups, "%s@%s",
						 ch->name, dev_name(parent));
	else
		node = device_create_with_groups(vmc_class, parent, vmc_devt + ch->minor,
						 ch, vmc_channel_groups, "%s", ch->name);
	if (IS_ERR(node)) {
		err = PTR_ERR(node);
		goto err_remove_minor;
	}
	ch->node = node;
	mutex_unlock(&vmc_minor_lock);
	dev_dbg(parent, "channel %u: /dev/vmchannel/%s\n", id, dev_name(node));
	return 0;

err_remove_minor:
	idr_remove(&vmc_minors, ch->minor);
err_unlock:
	mutex_unlock(&vmc_minor_lock);
	xa_erase_irq(&vmc->channels, id);
	/* The channel reference on vmc is dropped by the release below. */
	vmc_channel_put(ch);
	return err;
err_free:
	kfree(ch);
	return err;
}

/* Withdraws a channel: no new opens, every waiter wakes and sees -ENODEV. */
static void vmc_channel_remove(struct vmc_dev *vmc, struct vmc_channel *ch)
{
	unsigned int actions;

	lockdep_assert_held(&vmc->table_lock);
	xa_erase_irq(&vmc->channels, ch->id);

	mutex_lock(&vmc_minor_lock);
	idr_remove(&vmc_minors, ch->minor);
	device_destroy(vmc_class, vmc_devt + ch->minor);
	ch->node = NULL;
	mutex_unlock(&vmc_minor_lock);

	spin_lock_irq(&ch->lock);
	actions = vmc_chan_step(ch, VMC_CH_EV_REMOVE, NULL, NULL);
	spin_unlock_irq(&ch->lock);
	/*
	 * The channel left the table: its open session's CLOSE must reach the
	 * device, which holds the channel's DATA until then.  The owed work no
	 * longer sees the channel, so wait for room here (bounded).  When the
	 * whole device goes, its RESET ends every session instead.
	 */
	if ((actions & VMC_ACT_SEND) && !vmc->removing)
		vmc_send(ch, VMCHANNEL_MSG_CLOSE, VMC_SEND_RELIABLE);
	/* REMOVED: nothing queues the uevent work again. */
	cancel_delayed_work_sync(&ch->uevent_work);
	wake_up_all(&ch->rd_wait);
	wake_up_all(&ch->wr_wait);
	kill_fasync(&ch->fasync, SIGIO, POLL_HUP);
	vmc_channel_put(ch);
}

/*
 * Reads the whole table through the window.  Return: 0, -EAGAIN if it
 * changed meanwhile, -ERANGE if the device offers too many entries, -ENOMEM.
 */
static int vmc_table_read(struct vmc_dev *vmc, struct vmc_table_entry **table,
			  unsigned int *count)
{
	struct virtio_device *vdev = vmc->vdev;
	struct vmc_table_entry *t;
	u32 gen_before, gen_after;
	u16 n, i;

	virtio_cread_le(vdev, struct vmchannel_config, generation, &gen_before);
	virtio_cread_le(vdev, struct vmchannel_config, num_channels, &n);
	if (n > VMCHANNEL_MAX_CHANNELS) {
		dev_err(&vdev->dev, "device offers %u channels, more than %u: ignored\n",
			n, VMCHANNEL_MAX_CHANNELS);
		return -ERANGE;
	}
	t = kvcalloc(n ? n : 1, sizeof(*t), GFP_KERNEL);
	if (!t)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		virtio_cwrite_le(vdev, struct vmchannel_config, select, &i);
		virtio_cread_le(vdev, struct vmchannel_config, id, &t[i].id);
		virtio_cread_le(vdev, struct vmchannel_config, flags, &t[i].flags);
		virtio_cread_bytes(vdev, offsetof(struct vmchannel_config, name),
				   t[i].name, sizeof(t[i].name));
	}
	virtio_cread_le(vdev, struct vmchannel_config, generation, &gen_after);
	if (gen_before != gen_after) {
		kvfree(t);
		return -EAGAIN;
	}
	*table = t;
	*count = n;
	return 0;
}

/* Leaves the printable prefix of an untrusted name for a log line. */
static void vmc_name_for_log(const u8 *name, char *out, size_t size)
{
	size_t i;

	for (i = 0; i + 1 < size && i < VMCHANNEL_NAME_SIZE && name[i]; i++)
		out[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
	out[i] = '\0';
}

/*
 * Brings the channels in line with the device's table: creates those that
 * appeared and removes those that vanished.  A bad entry is skipped with one
 * log line and creates nothing; the rest of the table still works.
 */
void vmc_channels_sync(struct vmc_dev *vmc)
{
	struct device *dev = &vmc->vdev->dev;
	struct vmc_table_entry *table = NULL;
	enum vmchannel_name_error name_err = VMCHANNEL_NAME_OK;
	enum vmc_entry_verdict verdict;
	struct vmc_channel *ch;
	unsigned int count = 0, i, tries;
	unsigned long id;
	char shown[VMCHANNEL_NAME_SIZE];
	bool present;
	int err = -EAGAIN;

	mutex_lock(&vmc->table_lock);
	if (vmc->removing)
		goto out_unlock;
	for (tries = 0; tries < 8 && err == -EAGAIN; tries++)
		err = vmc_table_read(vmc, &table, &count);
	/* A table beyond the limit is ignored: the channels we have stay. */
	if (err == -ERANGE)
		goto out_unlock;
	if (err) {
		dev_err(dev, "channel table unreadable or changing constantly\n");
		goto out_unlock;
	}

	xa_for_each(&vmc->channels, id, ch) {
		present = false;
		for (i = 0; i < count; i++)
			if (table[i].id == id &&
			    vmc_table_check(table, count, i, &name_err) == VMC_ENTRY_OK)
				present = true;
		if (!present)
			vmc_channel_remove(vmc, ch);
	}

	for (i = 0; i < count; i++) {
		verdict = vmc_table_check(table, count, i, &name_err);
		if (verdict != VMC_ENTRY_OK) {
			vmc_name_for_log(table[i].name, shown, sizeof(shown));
			dev_warn(dev, "ignoring channel entry %u (id %u, name \"%s\"): %s%s%s\n",
				 i, table[i].id, shown, vmc_entry_verdict_str(verdict),
				 verdict == VMC_ENTRY_BAD_NAME ? ": " : "",
				 verdict == VMC_ENTRY_BAD_NAME ?
				 vmc_name_error_str(name_err) : "");
			continue;
		}
		if (xa_load(&vmc->channels, table[i].id))
			continue;
		if (vmc_channel_add(vmc, table[i].id, table[i].name))
			dev_err(dev, "cannot create channel %s\n", table[i].name);
	}
	kvfree(table);
out_unlock:
	mutex_unlock(&vmc->table_lock);
}

/* After a restore: each open channel reports its credit again (VMC_CH_EV_RESUME). */
void vmc_channels_resume(struct vmc_dev *vmc)
{
	struct vmc_channel *ch;
	unsigned int actions;
	unsigned long id;

	/* table_lock: no channel leaves the table meanwhile. */
	mutex_lock(&vmc->table_lock);
	xa_for_each(&vmc->channels, id, ch) {
		spin_lock_irq(&ch->lock);
		actions = vmc_chan_step(ch, VMC_CH_EV_RESUME, NULL, NULL);
		spin_unlock_irq(&ch->lock);
		vmc_chan_act(ch, actions, NULL);
	}
	mutex_unlock(&vmc->table_lock);
}

void vmc_channels_remove_all(struct vmc_dev *vmc)
{
	struct vmc_channel *ch;
	unsigned long id;

	mutex_lock(&vmc->table_lock);
	vmc->removing = true;
	xa_for_each(&vmc->channels, id, ch)
		vmc_channel_remove(vmc, ch);
	mutex_unlock(&vmc->table_lock);
}
