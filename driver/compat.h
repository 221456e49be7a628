/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Differences between the kernels vmchannel supports (Debian's 6.1, 6.12 and
 * unstable's newest, 7.2 today).
 * The only file that may test LINUX_VERSION_CODE; the rest of the driver
 * calls these helpers and keeps upstream spelling.
 */
#ifndef VMCHANNEL_COMPAT_H
#define VMCHANNEL_COMPAT_H

#include <linux/device.h>
#include <linux/version.h>
#include <linux/virtio_config.h>

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 1, 0)
#error "vmchannel requires Linux 6.1 or later"
#endif

/* 6.2 made the device argument of class devnode callbacks const. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
#define vmc_class_dev const struct device
#else
#define vmc_class_dev struct device
#endif

/* 6.4 dropped the owner argument of class_create(). */
static inline struct class *vmc_class_create(const char *name)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	return class_create(name);
#else
	return class_create(THIS_MODULE, name);
#endif
}

/*
 * 6.11 replaced the parallel callback and name arrays of virtio_find_vqs() by
 * virtqueue_info, which the driver uses; older kernels get the arrays.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
static inline int vmc_find_vqs(struct virtio_device *vdev, unsigned int nvqs,
			       struct virtqueue *vqs[],
			       struct virtqueue_info vqs_info[])
{
	return virtio_find_vqs(vdev, nvqs, vqs, vqs_info, NULL);
}
#else
struct virtqueue_info {
	const char *name;
	vq_callback_t *callback;
	bool ctx;
};

static inline int vmc_find_vqs(struct virtio_device *vdev, unsigned int nvqs,
			       struct virtqueue *vqs[],
			       struct virtqueue_info vqs_info[])
{
	vq_callback_t *callbacks[2];
	const char *names[2];
	unsigned int i;

	if (nvqs > ARRAY_SIZE(callbacks))
		return -EINVAL;
	for (i = 0; i < nvqs; i++) {
		callbacks[i] = vqs_info[i].callback;
		names[i] = vqs_info[i].name;
	}
	return virtio_find_vqs(vdev, nvqs, vqs, callbacks, names, NULL);
}
#endif

#endif /* VMCHANNEL_COMPAT_H */
