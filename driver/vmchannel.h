/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmchannel driver: private types shared by its files.
 *
 * main.c       virtio glue: probe, remove, configuration changes
 * config.c     validation of the channel table read from the device
 * channel.c    channel lifetime: character device nodes, table sync
 * fops.c       the file operations of /dev/vmchannel/<name>
 * transport.c  messages on the virtqueues, credit accounting
 * sysfs.c      attributes under /sys/class/vmchannel/<node>/
 *
 * Lock order: vmc_dev.table_lock -> vmc_minor_lock -> vmc_channel.open_lock ->
 * vmc_channel.lock -> vmc_dev.tx_lock / vmc_dev.rx_lock.
 */
#ifndef VMCHANNEL_PRIV_H
#define VMCHANNEL_PRIV_H

#include <linux/device.h>
#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/virtio.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
#include <linux/vmchannel.h>

#include "compat.h"

/* Bytes a channel can hold from the host: allocated while the node is open. */
#define VMC_RX_RING_SIZE	(128 * 1024)
/* Receive buffers posted on rxq: one message each. */
#define VMC_RX_BUF_SIZE		(16 * 1024)
#define VMC_RX_BUFS		64
/* Largest message the driver sends: header and payload in one buffer. */
#define VMC_TX_BUF_SIZE		(16 * 1024)
/* Free txq buffers kept for reuse (see transport.c). */
#define VMC_TX_POOL		32
/* How long a message that must be sent waits for room on txq. */
#define VMC_TX_TIMEOUT		(10 * HZ)
/* End-of-stream marks a channel remembers before the reader consumes them. */
#define VMC_MAX_EOF_MARKS	4

/**
 * struct vmc_dev - one vmchannel virtio device
 * @vdev: the virtio device
 * @rx_vq: device -> driver messages
 * @tx_vq: driver -> device messages
 * @rx_lock: serialises calls on @rx_vq
 * @tx_lock: serialises calls on @tx_vq and protects @broken
 * @broken: the device is being removed; no virtqueue calls any more
 * @tx_wait: senders waiting for room on @tx_vq
 * @rx_work: drains @rx_vq
 * @config_work: re-reads the channel table after a configuration change
 * @table_lock: serialises configuration space access and changes of @channels
 * @channels: id -> struct vmc_channel; entries hold a channel reference
 * @removing: set under @table_lock when remove starts; no new channels
 * @kref: held by probe and by every channel
 */
struct vmc_dev {
	struct virtio_device *vdev;
	struct virtqueue *rx_vq;
	struct virtqueue *tx_vq;
	spinlock_t rx_lock; /* serialises rx_vq */
	spinlock_t tx_lock; /* serialises tx_vq, protects broken and the tx pool */
	bool broken;
	void *tx_pool;		/* free txq buffers, linked through their first word */
	unsigned int tx_pooled;	/* how many */
	wait_queue_head_t tx_wait;
	struct work_struct rx_work;
	struct work_struct config_work;
	struct mutex table_lock; /* config space and changes of channels */
	struct xarray channels;
	bool removing;
	struct kref kref;
};

/**
 * struct vmc_channel - one named channel, /dev/vmchannel/<name>
 * @kref: held by the device's table, by each open file and by rx processing
 * @vmc: the device; valid for the channel's whole life (it holds a reference)
 * @id: channel id from the device
 * @name: validated name from the configuration space
 * @minor: minor number of the node
 * @node: the class device behind the node; NULL once removed
 * @open_lock: serialises open and release (session start and end)
 * @readers: open files with read access (0 or 1)
 * @writers: open files with write access (0 or 1)
 * @read_lock: serialises readers' copies out of @ring
 * @lock: protects every field below it
 * @removed: the device withdrew the channel or went away
 * @session: an OPEN was sent and no CLOSE yet
 * @acked: the device acknowledged the current session's OPEN
 * @host_connected: a host endpoint is connected (last HOST_* message)
 * @connections: HOST_CONNECT messages in the session
 * @ring: received bytes, VMC_RX_RING_SIZE, present during a session
 * @rx_cnt: bytes received in the session (mod 2^32); ring write position
 * @fwd_cnt: bytes consumed by readers in the session; ring read position
 * @fwd_reported: @fwd_cnt as last told to the device
 * @eof: stream positions of end-of-stream marks not yet read, oldest first
 * @n_eof: entries in @eof
 * @rx_bytes: bytes received from the host since the channel appeared
 * @tx_bytes: bytes sent to the host since the channel appeared
 * @tx_cnt: payload bytes sent in the session
 * @peer_buf_alloc: the device's receive buffer for this channel
 * @peer_fwd_cnt: bytes the device has consumed of what we sent
 * @wait: readers, writers and pollers
 * @fasync: files that asked for SIGIO (fasync_helper() locks it)
 */
struct vmc_channel {
	struct kref kref;
	struct vmc_dev *vmc;
	u32 id;
	char name[VMCHANNEL_NAME_SIZE];
	int minor;
	struct device *node;

	struct mutex open_lock; /* session start and end */
	unsigned int readers;
	unsigned int writers;
	struct mutex read_lock; /* one copy out of the ring at a time */

	spinlock_t lock; /* everything below */
	bool removed;
	bool session;
	bool acked;
	bool host_connected;
	u32 connections;
	u8 *ring;
	u32 rx_cnt;
	u32 fwd_cnt;
	u32 fwd_reported;
	u32 eof[VMC_MAX_EOF_MARKS];
	unsigned int n_eof;
	u64 rx_bytes;
	u64 tx_bytes;
	u32 tx_cnt;
	u32 peer_buf_alloc;
	u32 peer_fwd_cnt;
	wait_queue_head_t wait;
	struct fasync_struct *fasync;
};

/* main.c */
void vmc_dev_put(struct vmc_dev *vmc);

/* channel.c */
int vmc_chrdev_init(void);
void vmc_chrdev_exit(void);
void vmc_channels_sync(struct vmc_dev *vmc);
void vmc_channels_remove_all(struct vmc_dev *vmc);
struct vmc_channel *vmc_channel_get_by_minor(unsigned int minor);
struct vmc_channel *vmc_channel_get_by_id(struct vmc_dev *vmc, u32 id);
void vmc_channel_put(struct vmc_channel *ch);
void vmc_channel_state_changed(struct vmc_channel *ch, bool connected);

/* sysfs.c */
extern const struct attribute_group *vmc_channel_groups[];

/* fops.c */
extern const struct file_operations vmc_fops;

/* transport.c */
int vmc_rx_fill(struct vmc_dev *vmc);
void vmc_rx_work(struct work_struct *work);
void vmc_rx_done(struct virtqueue *vq);
void vmc_tx_done(struct virtqueue *vq);
void vmc_vqs_drain(struct vmc_dev *vmc);
/* How vmc_send() waits for room on txq. */
enum vmc_send_wait {
	VMC_SEND_NONBLOCK,	/* -EAGAIN when full */
	VMC_SEND_INTERRUPTIBLE,	/* a signal interrupts the wait */
	VMC_SEND_RELIABLE,	/* must reach the device: ignores signals, bounded */
};

int vmc_send(struct vmc_channel *ch, enum vmchannel_msg_type type,
	     const char __user *data, u32 len, enum vmc_send_wait wait);
u32 vmc_tx_credit(const struct vmc_channel *ch);
bool vmc_tx_has_room(struct vmc_dev *vmc);

#endif /* VMCHANNEL_PRIV_H */
