// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmchannel: named byte channels between a virtual machine and its host,
 * one character device per channel under /dev/vmchannel/.
 *
 * The device: docs/device-spec.md.  This file is the virtio glue only.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>

#include "vmchannel.h"

static void vmc_dev_release(struct kref *kref)
{
	kfree(container_of(kref, struct vmc_dev, kref));
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
	vq_callback_t *callbacks[VMCHANNEL_NUM_VQS] = {
		[VMCHANNEL_VQ_RX] = vmc_rx_done,
		[VMCHANNEL_VQ_TX] = vmc_tx_done,
	};
	static const char * const names[VMCHANNEL_NUM_VQS] = {
		[VMCHANNEL_VQ_RX] = "rx",
		[VMCHANNEL_VQ_TX] = "tx",
	};
	struct virtqueue *vqs[VMCHANNEL_NUM_VQS];
	int err;

	err = vmc_find_vqs(vmc->vdev, VMCHANNEL_NUM_VQS, vqs, callbacks, names);
	if (err)
		return err;
	vmc->rx_vq = vqs[VMCHANNEL_VQ_RX];
	vmc->tx_vq = vqs[VMCHANNEL_VQ_TX];
	/* Senders take used tx buffers back themselves (transport.c). */
	virtqueue_disable_cb(vmc->tx_vq);
	return 0;
}

/* Stops all virtqueue traffic and frees what is left on the rings. */
static void vmc_stop_device(struct vmc_dev *vmc)
{
	spin_lock_irq(&vmc->rx_lock);
	vmc->broken = true;
	spin_unlock_irq(&vmc->rx_lock);
	spin_lock_irq(&vmc->tx_lock);
	vmc->broken = true;
	spin_unlock_irq(&vmc->tx_lock);
	wake_up_interruptible_all(&vmc->tx_wait);

	virtio_reset_device(vmc->vdev);
	cancel_work_sync(&vmc->rx_work);
	vmc_vqs_drain(vmc);
	vmc->vdev->config->del_vqs(vmc->vdev);
}

static int vmc_probe(struct virtio_device *vdev)
{
	struct vmc_dev *vmc;
	int err;

	if (!vdev->config->get) {
		dev_err(&vdev->dev, "device has no configuration space\n");
		return -EINVAL;
	}
	vmc = kzalloc(sizeof(*vmc), GFP_KERNEL);
	if (!vmc)
		return -ENOMEM;
	vmc->vdev = vdev;
	vdev->priv = vmc;
	kref_init(&vmc->kref);
	spin_lock_init(&vmc->rx_lock);
	spin_lock_init(&vmc->tx_lock);
	init_waitqueue_head(&vmc->tx_wait);
	INIT_WORK(&vmc->rx_work, vmc_rx_work);
	INIT_WORK(&vmc->config_work, vmc_config_work);
	mutex_init(&vmc->table_lock);
	xa_init(&vmc->channels);

	err = vmc_init_vqs(vmc);
	if (err)
		goto err_free;
	err = vmc_rx_fill(vmc);
	if (err)
		goto err_del_vqs;

	/* Ready before the nodes exist: an open sends OPEN at once. */
	virtio_device_ready(vdev);
	virtqueue_kick(vmc->rx_vq);
	vmc_channels_sync(vmc);
	return 0;

err_del_vqs:
	virtio_reset_device(vdev);
	vmc_vqs_drain(vmc);
	vdev->config->del_vqs(vdev);
err_free:
	vmc_dev_put(vmc);
	return err;
}

static void vmc_remove(struct virtio_device *vdev)
{
	struct vmc_dev *vmc = vdev->priv;

	/* No new channels, then every node goes and every waiter wakes. */
	vmc_channels_remove_all(vmc);
	vmc_stop_device(vmc);
	/* After the reset no configuration interrupt can queue it again. */
	cancel_work_sync(&vmc->config_work);
	/* Channels still open keep vmc until their last close. */
	vmc_dev_put(vmc);
}

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
