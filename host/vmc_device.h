/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The vmchannel device model (docs/device-spec.md): the channel table, the
 * device-level messages (RESET, SUSPEND, RESUME) and the dispatch of txq
 * messages to channels.  Each channel's lifecycle and its bridge to a host
 * endpoint are in vmc_chan.c; the configuration window in vmc_config.c.
 */
#ifndef VMC_DEVICE_H
#define VMC_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <linux/vmchannel.h>

#include "chan_state.h"
#include "chan_stats.h"
#include "event_loop.h"
#include "fault_injection.h"
#include "vu_dev.h"

/* Bytes the device holds per channel from the guest (its buf_alloc). */
#define VMC_G2H_BUF_SIZE (1024 * 1024)
/*
 * Shorter DATA payloads are copied into the channel's buffer and written to
 * the host program once for all that txq held (vmc_chan_flush_later()), not
 * one system call each: 64-byte writes left the guest idle half the time,
 * waiting for txq room while vmchanneld wrote them one by one, and 4 KiB
 * writes a quarter of it.  Copying 32 KiB here costs less than a system call.
 */
#define VMC_G2H_GATHER_MAX 32768
/* How long a removed channel's host program has to take its last bytes. */
#define VMC_REMOVED_DRAIN_SECONDS 30
/*
 * Buckets of the channel lookup by id.  Ids are never reused (device-spec),
 * so they grow past VMCHANNEL_MAX_CHANNELS as channels come and go; at most
 * that many are in the table, and consecutive ids fall in distinct buckets.
 */
#define VMC_ID_BUCKETS 1024

struct vmc_device;

/* Messages a channel owes the driver, sent in this order as buffers allow. */
enum vmc_owed {
	VMC_OWE_OPEN		= 1u << 0,	/* then the --fault messages, if any */
	VMC_OWE_CONNECT		= 1u << 1,
	VMC_OWE_DISCONNECT	= 1u << 2,
	VMC_OWE_CREDIT		= 1u << 3,
};

struct vmc_chan {
	struct vmc_device *dev;
	uint32_t id;
	char name[VMCHANNEL_NAME_SIZE];
	char path[108];			/* where we listen, or connect to */
	bool connects;			/* connect to @path while a session waits */
	enum chan_state state;
	bool removed;			/* left the table: freed once nothing is left to deliver */
	struct vmc_chan *next_removed;	/* in vmc_device.removed */
	struct vmc_chan *next_by_id;	/* in its vmc_device.by_id bucket */
	bool ready;			/* in vmc_device.ready */
	TAILQ_ENTRY(vmc_chan) ready_link;
	bool flush_pending;		/* in vmc_device.flush */
	TAILQ_ENTRY(vmc_chan) flush_link;

	/* Host endpoint. */
	int listen_fd;			/* -1 when @connects or removed */
	struct watch listen_watch;
	int timer_fd;			/* connect retries, or a removed channel's deadline */
	struct watch timer_watch;
	bool retrying;			/* @timer_fd ticks every second for connect retries */
	int client_fd;			/* -1: no host program connected */
	struct watch client_watch;
	int client_out_fd;		/* where guest bytes go if not client_fd (stdout), or -1 */
	struct watch client_out_watch;
	bool client_rd_eof;		/* the host program sends no more */
	bool client_wr_closed;		/* the host program takes no more */
	bool client_hup;		/* peer fully gone; read without epoll */
	/*
	 * Our last read of client_fd emptied it and epoll, watching it for
	 * bytes ever since, has not reported it readable: reading again would
	 * only cost a system call (one per guest message, as each one pumps
	 * the channel).  Cleared whenever the socket goes unwatched.
	 */
	bool client_drained;

	/* Guest session. */
	uint32_t session;		/* the driver's number, 0 while none */
	unsigned int owed;		/* enum vmc_owed bits */
	unsigned int send_faults;	/* --fault messages still to send */
	bool connect_sent;		/* host bytes may flow: HOST_CONNECT went out */
	bool data_lost;			/* F_DATA_LOST for the next HOST_DISCONNECT or CREDIT */
	uint32_t disconnects_sent;	/* HOST_DISCONNECTs of the session */
	uint32_t peer_eof_cnt;		/* ... the driver has consumed */

	/* Guest -> host: a ring of guest bytes not yet written to the client. */
	uint8_t *buf;
	uint32_t buf_head, buf_len;
	uint32_t fwd_cnt;		/* bytes consumed (written or discarded) */
	uint32_t fwd_reported;

	/* Host -> guest credit. */
	uint32_t tx_cnt;
	uint32_t peer_buf_alloc;
	uint32_t peer_fwd_cnt;

	struct vmc_chan_stats stats;	/* vmchannelctl stats */
};

struct vmc_device {
	struct vu_dev vu;
	const char *dir;		/* where endpoints go */
	struct vmc_chan **chans;	/* VMCHANNEL_MAX_CHANNELS slots, in table order */
	unsigned int nchans;
	struct vmc_chan *removed;	/* channels out of the table, still draining */
	struct vmc_chan *by_id[VMC_ID_BUCKETS];	/* table and removed channels, by id */
	/*
	 * Channels in the table with messages or host bytes for the driver that
	 * found no rx buffer (or rxq stopped), in the order they are served
	 * when buffers come: only these are visited on an rxq kick.
	 */
	TAILQ_HEAD(vmc_ready_list, vmc_chan) ready;
	unsigned int nready;
	/* Channels with short payloads gathered while txq is processed: written after it. */
	TAILQ_HEAD(vmc_flush_list, vmc_chan) flush;
	bool rx_starved;		/* rxq ran out of buffers: wait for a kick */
	bool rx_suspended;		/* SUSPEND acknowledged: rxq unused until RESUME */
	bool owe_reset;			/* device-level replies owed, sent before all else */
	bool owe_suspend;
	uint32_t generation;
	uint16_t select;
	uint32_t next_id;
	vmc_faults faults;		/* test-only hostile behaviour */
	bool stdio_taken;		/* a channel uses stdin and stdout */
	uint64_t bytes_to_hosts;	/* guest bytes written to host programs, all channels */
	uint64_t bytes_to_guest;	/* host bytes sent to the guest, all channels */
	uint64_t moved_at_batch_end;	/* both, at the end of the last batch of events */
	bool guest_polls_rx;		/* the guest took the last rx messages without an interrupt */
	struct loop_poller txq_poller;	/* the loop looks at txq while it polls */
};

/*
 * Leaves txq asking the guest for kicks, having taken what it added without
 * one: before the rings go to another binary (an upgrade), which may not poll.
 */
void vmc_device_ask_for_kicks(struct vmc_device *dev);
/* Sets up the device with channels from @specs and their endpoints in @dir. */
int vmc_device_init(struct vmc_device *dev, const char *dir, char **specs,
		    unsigned int n);
/* The device without channels (vmc_device_init() and an upgrade's restore). */
int vmc_device_setup(struct vmc_device *dev, const char *dir);
/*
 * An upgrade's restore (upgrade_state.c): a channel made by vmc_chan_new()
 * joins the table (or the removed list); -1 if its id or name is taken.
 * Then the order of channels waiting for rx buffers, and at last every
 * channel's descriptors watched again.
 */
int vmc_device_adopt(struct vmc_device *dev, struct vmc_chan *ch);
int vmc_device_ready_restore(struct vmc_device *dev, uint32_t id);
int vmc_device_resume(struct vmc_device *dev);
/* Closes every endpoint and removes its socket. */
void vmc_device_fini(struct vmc_device *dev);
/* Guest bytes held for host programs that still take them (table and removed channels). */
uint64_t vmc_device_undelivered(const struct vmc_device *dev);
/*
 * Interrupts the guest for what its queues used since the last one, and
 * notes whether the guest takes rxq's messages without one (guest_polls_rx).
 */
void vmc_device_signal_guest(struct vmc_device *dev);
/*
 * Adds a channel at run time from a spec, "NAME" or "NAME=connect:PATH"
 * (endpoint_spec_parse()), or removes one by name; the guest gets a
 * configuration-change interrupt.  A removed channel's host program still
 * gets the bytes the device holds for it, then end of stream.
 */
int vmc_device_add_channel(struct vmc_device *dev, const char *spec);
int vmc_device_remove_channel(struct vmc_device *dev, const char *name);

extern const struct vu_device_ops vmc_device_ops;

#endif /* VMC_DEVICE_H */
