// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * sysfs attributes of /sys/class/vmchannel/<node>/ and the uevent that tells
 * udev the host end connected or disconnected.  docs/ABI/sysfs-class-vmchannel
 * describes each attribute.
 */
#include <linux/device.h>
#include <linux/kobject.h>
#include <linux/sysfs.h>

#include "vmchannel.h"

static struct vmc_channel *vmc_attr_channel(struct device *dev)
{
	return dev_get_drvdata(dev);
}

static ssize_t name_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", vmc_attr_channel(dev)->name);
}
static DEVICE_ATTR_RO(name);

static ssize_t id_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", vmc_attr_channel(dev)->id);
}
static DEVICE_ATTR_RO(id);

static ssize_t host_connected_show(struct device *dev, struct device_attribute *attr,
				   char *buf)
{
	struct vmc_channel *ch = vmc_attr_channel(dev);
	bool connected;

	spin_lock_irq(&ch->lock);
	connected = ch->host_connected;
	spin_unlock_irq(&ch->lock);
	return sysfs_emit(buf, "%d\n", connected);
}
static DEVICE_ATTR_RO(host_connected);

static ssize_t rx_bytes_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct vmc_channel *ch = vmc_attr_channel(dev);
	u64 bytes;

	spin_lock_irq(&ch->lock);
	bytes = ch->rx_bytes;
	spin_unlock_irq(&ch->lock);
	return sysfs_emit(buf, "%llu\n", bytes);
}
static DEVICE_ATTR_RO(rx_bytes);

static ssize_t tx_bytes_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct vmc_channel *ch = vmc_attr_channel(dev);
	u64 bytes;

	spin_lock_irq(&ch->lock);
	bytes = ch->tx_bytes;
	spin_unlock_irq(&ch->lock);
	return sysfs_emit(buf, "%llu\n", bytes);
}
static DEVICE_ATTR_RO(tx_bytes);

static struct attribute *vmc_channel_attrs[] = {
	&dev_attr_name.attr,
	&dev_attr_id.attr,
	&dev_attr_host_connected.attr,
	&dev_attr_rx_bytes.attr,
	&dev_attr_tx_bytes.attr,
	NULL,
};

static const struct attribute_group vmc_channel_group = {
	.attrs = vmc_channel_attrs,
};

const struct attribute_group *vmc_channel_groups[] = {
	&vmc_channel_group,
	NULL,
};
