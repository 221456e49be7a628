/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmchannel driver: private types shared by its files.
 *
 * main.c       virtio glue: probe, remove, configuration changes
 * config.c     validation of the channel table read from the device
 * channel.c    channel lifetime: character device nodes, table sync
 * fops.c       the file operations of /dev/vmchannel/<name>
 * readwait.c   how a blocked read() waits: busy-polls rxq, then sleeps
 * state.c      the channel and device state machines of docs/device-spec.md
 * transport.c  messages on the virtqueues, credit accounting
 * rxqueue.c    a channel's received bytes, held in rxq buffers until read
 * sysfs.c      attributes under /sys/class/vmchannel/<node>/
 *
 * Lock order: vmc_dev.table_lock -> vmc_minor_lock -> vmc_channel.open_lock ->
 * vmc_channel.read_lock / vmc_channel.write_lock -> vmc_channel.lock ->
 * vmc_dev.rx_lock -> vmc_dev.tx_lock.
 */
#ifndef VMCHANNEL_PRIV_H
#define VMCHANNEL_PRIV_H

#include <linux/atomic.h>
#include <linux/bits.h>
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

/* Bytes a channel can hold from the host (buf_alloc) while the node is open. */
#define VMC_RX_WINDOW		(512 * 1024)
/*
 * Receive buffers posted on rxq: one message each, the header in
 * struct vmc_rx_buf and up to VMCHANNEL_MAX_PAYLOAD in VMC_RX_ORDER pages.
 */
#define VMC_RX_ORDER		get_order(VMCHANNEL_MAX_PAYLOAD)
#define VMC_RX_SIZE		(PAGE_SIZE << VMC_RX_ORDER)
#define VMC_RX_BUFS		32
/* Free receive buffers kept for reuse (see transport.c). */
#define VMC_RX_POOL		16
/* When rxq lacks buffers and memory ran out, the next try (transport.c). */
#define VMC_RX_RETRY		(HZ / 10)
/*
 * rxqueue.c: payloads up to this are copied, longer ones keep their rxq
 * buffer while a channel holds fewer than VMC_RX_KEEP_MAX of them; copies go
 * to the channel's last buffer or to VMC_RX_COPY_ALLOC bytes allocated for it.
 */
#define VMC_RX_COPY_MAX		2048
#define VMC_RX_KEEP_MAX		8
#define VMC_RX_COPY_ALLOC	(16 * 1024)
/*
 * Messages rxq's interrupt (or the rx work) takes at a time: what is copied
 * with interrupts off (short payloads, and those past VMC_RX_KEEP_MAX) stays
 * bounded.
 */
#define VMC_RX_BUDGET		16
/*
 * txq payload buffers (transport.c): a page for control messages and short
 * DATA, VMC_TX_BIG_ORDER pages (VMCHANNEL_MAX_PAYLOAD) for the rest.
 */
#define VMC_TX_BIG_ORDER	get_order(VMCHANNEL_MAX_PAYLOAD)
/* Free txq buffers of each size kept for reuse (see transport.c). */
#define VMC_TX_POOL_SMALL	32
#define VMC_TX_POOL_BIG		8
/* How long a device-level message waits for room on txq. */
#define VMC_TX_TIMEOUT		(10 * HZ)
/* How long remove and freeze wait for the device's RESET or SUSPEND. */
#define VMC_ACK_TIMEOUT		(5 * HZ)
/* Retry interval for owed messages while txq stays full or memory is short. */
#define VMC_OWED_RETRY		(HZ / 10)
/* At most two host_connected uevents per channel in this interval. */
#define VMC_UEVENT_INTERVAL	(HZ / 4)

/*
 * Device states (docs/device-spec.md, "The driver's channel state machine").
 * vmc_dev_step() is the only place that changes them.
 */
enum vmc_dev_state {
	VMC_DEV_RESETTING,	/* RESET sent, not acknowledged: rxq is dropped */
	VMC_DEV_RUNNING,
	VMC_DEV_SUSPENDING,	/* SUSPEND sent: senders wait */
	VMC_DEV_SUSPENDED,	/* acknowledged (or timed out): rings are reset */
	VMC_DEV_GONE,		/* removed: no virtqueue calls any more */
};

enum vmc_dev_event {
	VMC_DEV_EV_RESET,	/* the driver sends RESET (probe, remove) */
	VMC_DEV_EV_RESET_ACK,	/* the device's RESET */
	VMC_DEV_EV_FREEZE,	/* the driver sends SUSPEND */
	VMC_DEV_EV_SUSPEND_ACK,	/* the device's SUSPEND, or the wait for it ended */
	VMC_DEV_EV_RESTORE,	/* rings set up again, RESUME queued */
	VMC_DEV_EV_REMOVE,	/* the device is about to be reset for good */
};

/* Channel states; vmc_chan_step() is the only place that changes them. */
enum vmc_chan_state {
	VMC_CH_CLOSED,		/* no open file, nothing received */
	VMC_CH_OPENING,		/* OPEN(session) sent, not acknowledged */
	VMC_CH_OPEN,		/* acknowledged: data and credit flow */
	VMC_CH_REMOVED,		/* left the table or the device went away (final) */
};

enum vmc_chan_event {
	VMC_CH_EV_OPEN,		/* first open() */
	VMC_CH_EV_CLOSE,	/* last close(): received bytes are handed back */
	VMC_CH_EV_RX,		/* a validated message of the device for the channel */
	VMC_CH_EV_READ,		/* a reader consumed bytes (fwd_cnt already moved) */
	VMC_CH_EV_EOF_READ,	/* a reader consumed an end-of-stream mark */
	VMC_CH_EV_REMOVE,	/* the channel left the table or the device went away */
	VMC_CH_EV_RESUME,	/* the device is back after a freeze */
};

/* What the caller of vmc_chan_step() does once it dropped vmc_channel.lock. */
#define VMC_ACT_WAKE_RD		BIT(0)	/* wake readers, host waiters; SIGIO POLL_IN */
#define VMC_ACT_WAKE_WR		BIT(4)	/* wake writers; SIGIO POLL_OUT */
#define VMC_ACT_WAKE		(VMC_ACT_WAKE_RD | VMC_ACT_WAKE_WR)
#define VMC_ACT_SEND		BIT(1)	/* send what vmc_channel.owed holds */
#define VMC_ACT_FREE_RX		BIT(2)	/* free the buffers the step handed back */
#define VMC_ACT_RX_KEPT		BIT(3)	/* the channel keeps the message's buffer */

/* Messages a channel owes the device (vmc_channel.owed). */
#define VMC_OWE_OPEN		BIT(0)
#define VMC_OWE_CLOSE		BIT(1)
#define VMC_OWE_CREDIT		BIT(2)

/* The payload buffer sizes of txq messages. */
enum vmc_tx_size {
	VMC_TX_SMALL,		/* one page */
	VMC_TX_BIG,		/* VMCHANNEL_MAX_PAYLOAD */
	VMC_TX_SIZES,
};

struct vmc_tx_buf;

/**
 * struct vmc_rx_buf - received bytes: an rxq buffer, or a copy
 * @node: in vmc_channel.rx_queue, or in vmc_dev.rx_pool
 * @len: payload bytes at @data
 * @off: of which readers have consumed
 * @size: room at @data
 * @rxq: an rxq buffer (VMC_RX_ORDER pages at @data), else a copy
 * @data: the payload
 * @hdr: rxq buffers: the message's header, written by the device, which
 *	may write it again at any time: read once, into struct vmc_rx_msg
 */
struct vmc_rx_buf {
	struct list_head node;
	u32 len;
	u32 off;
	u32 size;
	bool rxq;
	u8 *data;
	struct vmchannel_hdr hdr;
};

/**
 * struct vmc_rx_msg - a message taken off rxq, as validated
 * @hdr: its header, copied once out of @buf before it was validated
 * @buf: the rxq buffer; a DATA payload of @hdr.len bytes at its data
 */
struct vmc_rx_msg {
	struct vmchannel_hdr hdr;
	struct vmc_rx_buf *buf;
};

/**
 * struct vmc_dev - one vmchannel virtio device
 * @vdev: the virtio device
 * @rx_vq: device -> driver messages
 * @tx_vq: driver -> device messages
 * @rx_lock: serialises calls on @rx_vq
 * @tx_lock: serialises calls on @tx_vq and protects the tx pool
 * @state: enum vmc_dev_state
 * @state_wait: remove and freeze waiting for the device's acknowledgment
 * @tx_pool: free txq buffers by size (enum vmc_tx_size)
 * @tx_pooled: how many of each
 * @tx_unkicked: buffers added to @tx_vq since its last kick; written under
 *	@tx_lock, read without it by vmc_tx_kick()
 * @rx_posted: buffers on @rx_vq
 * @rx_polling: rxq's interrupt, the rx work or a reader is taking messages (vmc_rx_poll())
 * @rx_busy: readers busy-polling rxq (readwait.c); its interrupt is off while > 0
 * @rx_pool: free receive buffers (struct vmc_rx_buf.node)
 * @rx_pooled: how many
 * @notifying: kicks under way outside the locks; vmc_del_vqs() waits for 0
 * @tx_wait: senders and pollers waiting for room on @tx_vq or for RUNNING
 * @rx_work: takes what rxq's interrupt left (budget spent), allocates rxq buffers
 * @rx_retry_work: tops @rx_vq up again after memory ran out
 * @config_work: re-reads the channel table after a configuration change
 * @owed_work: sends the messages channels owe (vmc_channel.owed)
 * @table_lock: serialises configuration space access and changes of @channels
 * @channels: id -> struct vmc_channel; entries hold a channel reference
 * @removing: set under @table_lock when remove starts; no new channels
 * @kref: held by probe and by every channel
 */
struct vmc_dev {
	struct virtio_device *vdev;
	struct virtqueue *rx_vq;
	struct virtqueue *tx_vq;
	spinlock_t rx_lock; /* rx_vq, rx_posted, rx_polling, rx_busy, rx pool; state with tx_lock */
	spinlock_t tx_lock; /* serialises tx_vq, the tx pool; with rx_lock, state */
	/* Written holding rx_lock then tx_lock, read holding either. */
	enum vmc_dev_state state;
	wait_queue_head_t state_wait;
	struct vmc_tx_buf *tx_pool[VMC_TX_SIZES];
	unsigned int tx_pooled[VMC_TX_SIZES];
	unsigned int tx_unkicked;
	unsigned int rx_posted;
	bool rx_polling;
	unsigned int rx_busy;
	struct list_head rx_pool;
	unsigned int rx_pooled;
	atomic_t notifying;
	wait_queue_head_t tx_wait;
	struct work_struct rx_work;
	struct delayed_work rx_retry_work;
	struct work_struct config_work;
	struct delayed_work owed_work;
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
 * @files: open files (any access mode); the session lasts while > 0
 * @readers: open files with read access (0 or 1)
 * @writers: open files with write access (0 or 1)
 * @read_lock: serialises readers' copies out of @rx_queue; protects @read_poll_ns
 * @read_poll_ns: how long a blocked read() now busy-polls rxq (readwait.c)
 * @write_lock: serialises writers, so that credit is spent once
 * @uevent_work: sends host_connected uevents, throttled (channel.c)
 * @lock: protects every field below it
 * @state: enum vmc_chan_state
 * @session: number of the current (or last) session, never 0 once opened
 * @owed: VMC_OWE_* messages still to be sent
 * @uevent_pending: BIT(0): a flip to disconnected, BIT(1): to connected
 * @uevent_sent: jiffies of the last uevent
 * @host_connected: a host endpoint is connected (last HOST_* message)
 * @data_lost: the device discarded bytes we sent; next write() reports it
 * @connections: HOST_CONNECT messages in the session
 * @receiving: the session's receive window is open (from OPEN to CLOSE)
 * @rx_queue: received bytes not yet read (struct vmc_rx_buf), oldest first
 * @rx_kept: rxq buffers in @rx_queue
 * @rx_cnt: bytes received in the session (mod 2^32)
 * @fwd_cnt: bytes consumed by readers in the session
 * @fwd_reported: @fwd_cnt as last put on txq
 * @eof_cnt: end-of-stream marks consumed by readers in the session
 * @eof: stream positions of end-of-stream marks not yet read, oldest first
 * @n_eof: entries in @eof
 * @rx_bytes: bytes received from the host since the channel appeared
 * @tx_bytes: bytes sent to the host since the channel appeared
 * @tx_cnt: payload bytes sent in the session
 * @peer_buf_alloc: the device's receive buffer for this channel
 * @peer_fwd_cnt: bytes the device has consumed of what we sent
 * @rd_wait: readers, pollers and VMCHANNEL_IOC_WAIT_HOST: bytes, marks, host state
 * @wr_wait: writers and pollers: credit, a loss to report
 * @fasync: files that asked for SIGIO (fasync_helper() locks it)
 */
struct vmc_channel {
	struct kref kref;
	struct vmc_dev *vmc;
	u32 id;
	char name[VMCHANNEL_NAME_SIZE];
	int minor;
	struct device *node;

	struct mutex open_lock; /* session start and end; files, readers, writers */
	unsigned int files;
	unsigned int readers;
	unsigned int writers;
	struct mutex read_lock; /* one copy out of rx_queue at a time; read_poll_ns */
	u32 read_poll_ns;
	struct mutex write_lock; /* one writer spends the credit at a time */
	struct delayed_work uevent_work;

	spinlock_t lock; /* everything below */
	enum vmc_chan_state state;
	u32 session;
	unsigned int owed;
	unsigned int uevent_pending;
	unsigned long uevent_sent;
	bool host_connected;
	bool data_lost;
	u32 connections;
	bool receiving;
	struct list_head rx_queue;
	unsigned int rx_kept;
	u32 rx_cnt;
	u32 fwd_cnt;
	u32 fwd_reported;
	u32 eof_cnt;
	u32 eof[VMCHANNEL_EOF_WINDOW];
	unsigned int n_eof;
	u64 rx_bytes;
	u64 tx_bytes;
	u32 tx_cnt;
	u32 peer_buf_alloc;
	u32 peer_fwd_cnt;
	wait_queue_head_t rd_wait;
	wait_queue_head_t wr_wait;
	struct fasync_struct *fasync;
};

/* main.c */
void vmc_dev_put(struct vmc_dev *vmc);

/* channel.c */
int vmc_chrdev_init(void);
void vmc_chrdev_exit(void);
void vmc_channels_sync(struct vmc_dev *vmc);
void vmc_channels_remove_all(struct vmc_dev *vmc);
void vmc_channels_resume(struct vmc_dev *vmc);
struct vmc_channel *vmc_channel_get_by_minor(unsigned int minor);
struct vmc_channel *vmc_channel_get_by_id(struct vmc_dev *vmc, u32 id);
void vmc_channel_put(struct vmc_channel *ch);
void vmc_uevent_work(struct work_struct *work);

/* sysfs.c */
extern const struct attribute_group *vmc_channel_groups[];

/* fops.c */
extern const struct file_operations vmc_fops;

/* readwait.c */
int vmc_read_sleep(struct vmc_channel *ch);

/* state.c */
unsigned int vmc_chan_step(struct vmc_channel *ch, enum vmc_chan_event ev,
			   const struct vmc_rx_msg *msg, struct list_head *freed);
void vmc_chan_act(struct vmc_channel *ch, unsigned int actions, struct list_head *freed);
bool vmc_dev_step(struct vmc_dev *vmc, enum vmc_dev_event ev);
u32 vmc_tx_credit(const struct vmc_channel *ch);
u32 vmc_readable(const struct vmc_channel *ch);

/* rxqueue.c */
bool vmc_rxq_add(struct vmc_channel *ch, struct vmc_rx_buf *buf, u32 len);
ssize_t vmc_rxq_read(struct vmc_channel *ch, char __user *ubuf, u32 n);
void vmc_rxq_free(struct vmc_dev *vmc, struct list_head *bufs);

/* transport.c */
void vmc_rx_buf_put(struct vmc_dev *vmc, struct vmc_rx_buf *buf);
int vmc_rx_fill(struct vmc_dev *vmc);
void vmc_pools_free(struct vmc_dev *vmc);
void vmc_rx_work(struct work_struct *work);
void vmc_rx_retry_work(struct work_struct *work);
void vmc_rx_done(struct virtqueue *vq);
void vmc_rx_busy_begin(struct vmc_dev *vmc);
void vmc_rx_busy_poll(struct vmc_dev *vmc);
void vmc_rx_busy_end(struct vmc_dev *vmc);
void vmc_tx_done(struct virtqueue *vq);
void vmc_vqs_drain(struct vmc_dev *vmc);
void vmc_notify_wait(struct vmc_dev *vmc);
void vmc_rx_wait_idle(struct vmc_dev *vmc);
void vmc_rx_kick(struct vmc_dev *vmc);
void vmc_tx_kick(struct vmc_dev *vmc);
void vmc_owed_work(struct work_struct *work);
void vmc_send_owed(struct vmc_channel *ch);
/* How vmc_send() and vmc_send_data() wait for room on txq. */
enum vmc_send_wait {
	VMC_SEND_NONBLOCK,	/* -EAGAIN when full */
	VMC_SEND_INTERRUPTIBLE,	/* a signal interrupts the wait */
	VMC_SEND_RELIABLE,	/* device-level: ignores signals, bounded */
};

int vmc_send(struct vmc_channel *ch, enum vmchannel_msg_type type,
	     enum vmc_send_wait wait);
int vmc_send_data(struct vmc_channel *ch, const char __user *data, u32 len,
		  enum vmc_send_wait wait, bool last);
int vmc_send_dev(struct vmc_dev *vmc, enum vmchannel_msg_type type);
bool vmc_tx_has_room(struct vmc_dev *vmc);
enum vmc_dev_state vmc_dev_state(struct vmc_dev *vmc);

#endif /* VMCHANNEL_PRIV_H */
