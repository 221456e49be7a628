// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmchannel: named byte channels between a virtual machine and its host,
 * one character device per channel under /dev/vmchannel/.
 *
 * The device: docs/device-spec.md.  This file is the virtio glue only:
 * probe, remove, suspend and resume as events of the device's state machine.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/wait.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>

#include "vmchannel.h"

static void vmc_dev_release(struct kref *kref)
{
	struct vmc_dev *vmc = container_of(kref, struct vmc_dev, kref);

	/* A failed restore may have pooled buffers that channels gave back or sent. */
	vmc_pools_free(vmc);
	kfree(vmc);
}

void vmc_dev_put(struct vmc_dev *vmc)
{
	kref_put(&vmc->kref, vmc_dev_release);
}

static void vmc_config_work(struct work_struct *work)
{
	struct vmc_dev *vmc = container_of(work, struct vmc_dev, config_work);

	vmc_channels_sync(vmc);
}

static void vmc_config_changed(struct virtio_device *vdev)
{
	struct vmc_dev *vmc = vdev->priv;

	schedule_work(&vmc->config_work);
}

static int vmc_init_vqs(struct vmc_dev *vmc)
{
	struct virtqueue_info vqs_info[VMCHANNEL_NUM_VQS] = {
		[VMCHANNEL_VQ_RX] = { .name = "rx", .callback = vmc_rx_done },
		[VMCHANNEL_VQ_TX] = { .name = "tx", .callback = vmc_tx_done },
	};
	struct virtqueue *vqs[VMCHANNEL_NUM_VQS];
	int err;

	err = vmc_find_vqs(vmc->vdev, VMCHANNEL_NUM_VQS, vqs, vqs_info);
	if (err)
		return err;
	vmc->rx_vq = vqs[VMCHANNEL_VQ_RX];
	vmc->tx_vq = vqs[VMCHANNEL_VQ_TX];
	/* Senders take used tx buffers back themselves (transport.c). */
	virtqueue_disable_cb(vmc->tx_vq);
	return 0;
}

/* Resets the device and frees the rings, if any; nothing may use them now. */
static void vmc_del_vqs(struct vmc_dev *vmc)
{
	virtio_reset_device(vmc->vdev);
	/* The rx work may arm the retry: it goes first. */
	cancel_work_sync(&vmc->rx_work);
	/*
	 * A reader polling rxq (readwait.c) uses the rings and vdev until its
	 * poll ends; it queues no work once the state is not live.  (At
	 * freeze and restore, tasks are frozen: no reader polls.)
	 */
	vmc_rx_wait_idle(vmc);
	cancel_delayed_work_sync(&vmc->rx_retry_work);
	/* The state lets no new kick start: those under way end first. */
	vmc_notify_wait(vmc);
	if (!vmc->rx_vq)
		return;
	vmc_vqs_drain(vmc);
	vmc->vdev->config->del_vqs(vmc->vdev);
	vmc->rx_vq = NULL;
	vmc->tx_vq = NULL;
}

/*
 * Sets the rings up and tells the device: RESET at probe (every earlier
 * session is over), RESUME after a suspend (every session continues).  The
 * message goes first, before any channel's.
 */
static int vmc_start_device(struct vmc_dev *vmc, enum vmchannel_msg_type type)
{
	int err;

	err = vmc_init_vqs(vmc);
	if (err)
		return err;
	err = vmc_rx_fill(vmc);
	if (err)
		goto err_del_vqs;
	virtio_device_ready(vmc->vdev);
	err = vmc_send_dev(vmc, type);
	if (err)
		goto err_del_vqs;
	vmc_rx_kick(vmc);
	return 0;

err_del_vqs:
	vmc_del_vqs(vmc);
	return err;
}

static int vmc_probe(struct virtio_device *vdev)
{
	struct vmc_dev *vmc;
	int err;

	if (!vdev->config->get) {
		dev_err(&vdev->dev, "device has no configuration space\n");
		return -EINVAL;
	}
	/*
	 * The device is modern only (docs/device-spec.md): its configuration
	 * is little-endian, a legacy device's the guest's.  A legacy transport,
	 * e.g. QEMU's virtio-mmio without force-legacy=false, cannot offer it.
	 */
	if (!virtio_has_feature(vdev, VIRTIO_F_VERSION_1)) {
		dev_err(&vdev->dev, "device does not offer VIRTIO_F_VERSION_1 (legacy transport?): not used\n");
		return -ENODEV;
	}
	vmc = kzalloc(sizeof(*vmc), GFP_KERNEL);
	if (!vmc)
		return -ENOMEM;
	vmc->vdev = vdev;
	vdev->priv = vmc;
	kref_init(&vmc->kref);
	spin_lock_init(&vmc->rx_lock);
	spin_lock_init(&vmc->tx_lock);
	/* Until the device acknowledges our RESET, rxq holds nothing of ours. */
	vmc->state = VMC_DEV_RESETTING;
	init_waitqueue_head(&vmc->state_wait);
	init_waitqueue_head(&vmc->tx_wait);
	INIT_WORK(&vmc->rx_work, vmc_rx_work);
	INIT_DELAYED_WORK(&vmc->rx_retry_work, vmc_rx_retry_work);
	INIT_WORK(&vmc->config_work, vmc_config_work);
	INIT_DELAYED_WORK(&vmc->owed_work, vmc_owed_work);
	mutex_init(&vmc->table_lock);
	xa_init_flags(&vmc->channels, XA_FLAGS_LOCK_IRQ);
	INIT_LIST_HEAD(&vmc->rx_pool);

	/* Ready before the nodes exist: an open sends OPEN at once. */
	err = vmc_start_device(vmc, VMCHANNEL_MSG_RESET);
	if (err) {
		vmc_dev_put(vmc);
		return err;
	}
	vmc_channels_sync(vmc);
	return 0;
}

static void vmc_remove(struct virtio_device *vdev)
{
	struct vmc_dev *vmc = vdev->priv;

	/* No new channels, then every node goes and every waiter wakes. */
	vmc_channels_remove_all(vmc);
	/*
	 * Best effort: RESET ends every session at the device, so that it
	 * drains what the host ends still have, before the device is reset.
	 */
	if (vmc_dev_step(vmc, VMC_DEV_EV_RESET) &&
	    !vmc_send_dev(vmc, VMCHANNEL_MSG_RESET))
		wait_event_timeout(vmc->state_wait,
				   vmc_dev_state(vmc) != VMC_DEV_RESETTING, HZ);
	vmc_dev_step(vmc, VMC_DEV_EV_REMOVE);
	vmc_del_vqs(vmc);
	/* After the reset no configuration interrupt can queue it again. */
	cancel_work_sync(&vmc->config_work);
	cancel_delayed_work_sync(&vmc->owed_work);
	/* Channels still open keep vmc until their last close. */
	vmc_dev_put(vmc);
}

#ifdef CONFIG_PM_SLEEP
/*
 * Suspend and hibernation reset the device.  Sessions, open files and
 * counters stay: the device keeps its side of every session while the
 * driver is away (docs/device-spec.md, "Device-level messages").
 */
static int vmc_freeze(struct virtio_device *vdev)
{
	struct vmc_dev *vmc = vdev->priv;

	cancel_work_sync(&vmc->config_work);
	/* rxq is ours only once a pending RESET is acknowledged. */
	wait_event_timeout(vmc->state_wait,
			   vmc_dev_state(vmc) != VMC_DEV_RESETTING, VMC_ACK_TIMEOUT);
	/* Senders wait from here; SUSPEND is the last message we send. */
	vmc_dev_step(vmc, VMC_DEV_EV_FREEZE);
	if (vmc_send_dev(vmc, VMCHANNEL_MSG_SUSPEND) ||
	    !wait_event_timeout(vmc->state_wait,
				vmc_dev_state(vmc) == VMC_DEV_SUSPENDED, VMC_ACK_TIMEOUT))
		dev_warn(&vdev->dev, "no SUSPEND acknowledgment: messages in flight may be lost\n");
	/* Nothing may use the rings now, acknowledged or not. */
	vmc_dev_step(vmc, VMC_DEV_EV_SUSPEND_ACK);
	vmc_del_vqs(vmc);
	return 0;
}

static int vmc_restore(struct virtio_device *vdev)
{
	struct vmc_dev *vmc = vdev->priv;
	int err;

	/* RESUME goes first; senders wait until the step to RUNNING. */
	err = vmc_start_device(vmc, VMCHANNEL_MSG_RESUME);
	if (err) {
		/* As if unplugged: every waiter wakes and sees ENODEV. */
		vmc_dev_step(vmc, VMC_DEV_EV_REMOVE);
		vmc_channels_remove_all(vmc);
		return err;
	}
	vmc_dev_step(vmc, VMC_DEV_EV_RESTORE);
	/*
	 * The device may have used rxq since RESUME: its interrupt saw
	 * SUSPENDED and took nothing, and with EVENT_IDX no interrupt comes
	 * again until the driver takes those buffers: the rx work does.
	 */
	schedule_work(&vmc->rx_work);
	vmc_channels_resume(vmc);
	mod_delayed_work(system_wq, &vmc->owed_work, 0);
	/* The host may have changed the table meanwhile. */
	schedule_work(&vmc->config_work);
	return 0;
}
#endif

static const struct virtio_device_id vmc_id_table[] = {
	{ VIRTIO_ID_VMCHANNEL, VIRTIO_DEV_ANY_ID },
	{ 0 },
};
MODULE_DEVICE_TABLE(virtio, vmc_id_table);

static struct virtio_driver vmc_driver = {
	.driver.name = KBUILD_MODNAME,
	.driver.owner = THIS_MODULE,
	.id_table = vmc_id_table,
	.probe = vmc_probe,
	.remove = vmc_remove,
	.config_changed = vmc_config_changed,
#ifdef CONFIG_PM_SLEEP
	.freeze = vmc_freeze,
	.restore = vmc_restore,
#endif
};

static int __init vmc_init(void)
{
	int err;

	err = vmc_chrdev_init();
	if (err)
		return err;
	err = register_virtio_driver(&vmc_driver);
	if (err)
		vmc_chrdev_exit();
	return err;
}

static void __exit vmc_exit(void)
{
	unregister_virtio_driver(&vmc_driver);
	vmc_chrdev_exit();
}

module_init(vmc_init);
module_exit(vmc_exit);

MODULE_DESCRIPTION("vmchannel: named host-guest channels as character devices");
MODULE_LICENSE("GPL");
MODULE_VERSION(VMCHANNEL_VERSION);
