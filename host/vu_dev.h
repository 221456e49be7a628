/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The vhost-user back-end state of one device: negotiated features, guest
 * memory, the virtqueues, and the handlers of the frontend's requests.  The
 * device model behind it is reached only through struct vu_device_ops.
 */
#ifndef VMC_VU_DEV_H
#define VMC_VU_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include "event_loop.h"
#include "guest_mem.h"
#include "vhost_user.h"
#include "virtqueue.h"

#define VU_DEV_MAX_QUEUES 2

struct vu_dev;

/* The kick eventfd of one queue, as the event loop sees it. */
struct vu_kick {
	struct vu_dev *dev;
	unsigned int index;
	struct watch watch;
};

struct vu_device_ops {
	uint64_t features;		/* device feature bits offered */
	unsigned int num_queues;
	/* Copies @size bytes of configuration space from @offset; false if out of range. */
	bool (*get_config)(void *opaque, uint32_t offset, uint8_t *buf, uint32_t size);
	bool (*set_config)(void *opaque, uint32_t offset, const uint8_t *buf, uint32_t size);
	/* The guest kicked queue @index. */
	void (*queue_kicked)(void *opaque, unsigned int index);
	/*
	 * A ring stopped (GET_VRING_BASE: QEMU does so on every VM stop) or
	 * runs again (started or enabled): a pause, not the driver's end.
	 */
	void (*rings_stopped)(void *opaque);
	void (*rings_started)(void *opaque);
	/* The frontend went away or reset the device (RESET_OWNER): the driver is gone. */
	void (*device_reset)(void *opaque);
};

struct vu_dev {
	int sock;			/* frontend connection, -1 if none */
	struct watch sock_watch;
	struct watch fault_watch;	/* a dup of guest_mem_fault_fd() */
	int backend_fd;			/* backend request channel, -1 if none */
	bool config_change_held;	/* a config change to announce once the rings run */
	uint64_t features;
	uint64_t protocol_features;
	struct guest_mem mem;
	struct vq vqs[VU_DEV_MAX_QUEUES];
	struct vu_kick kicks[VU_DEV_MAX_QUEUES];
	const struct vu_device_ops *ops;
	void *opaque;
	void (*disconnected)(struct vu_dev *dev);	/* the frontend went away */
};

void vu_dev_init(struct vu_dev *dev, const struct vu_device_ops *ops, void *opaque);
/* Serves a newly accepted frontend connection. */
int vu_dev_attach(struct vu_dev *dev, int sock);
/* An upgrade's restore: a started ring's kick watched again; false on failure. */
bool vu_dev_resume_queue(struct vu_dev *dev, unsigned int index);
/* Drops the frontend connection and everything it set up. */
void vu_dev_detach(struct vu_dev *dev);
/* Handles one request from the frontend; false when the connection must go. */
bool vu_dev_handle(struct vu_dev *dev, struct vu_msg *msg);
/*
 * Tells the frontend the configuration space changed (config interrupt); held
 * while the rings are stopped (QEMU crashes on it then) and sent when they run.
 */
void vu_dev_config_changed(struct vu_dev *dev);
/* The ring @index when it may be used, else NULL. */
struct vq *vu_dev_queue(struct vu_dev *dev, unsigned int index);

#endif /* VMC_VU_DEV_H */
