/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The vmchannel device model (docs/device-spec.md): the configuration window
 * over the channel table, the messages on rxq and txq, per-channel credit and
 * sessions, and the bridge from each channel to its host endpoint.
 */
#ifndef VMC_DEVICE_H
#define VMC_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/vmchannel.h>

#include "event_loop.h"
#include "fault_injection.h"
#include "vu_dev.h"

/* Bytes the device holds per channel from the guest (its buf_alloc). */
#define VMC_G2H_BUF_SIZE (256 * 1024)

struct vmc_device;

struct vmc_chan {
	struct vmc_device *dev;
	uint32_t id;
	char name[VMCHANNEL_NAME_SIZE];
	char path[108];			/* where we listen, or connect to */
	bool connects;			/* connect to @path when the guest opens */

	/* Host endpoint. */
	int listen_fd;			/* -1 when @connects */
	int retry_fd;			/* timerfd: connect again, -1 until needed */
	struct watch retry_watch;
	struct watch listen_watch;
	int client_fd;			/* -1: no host program connected */
	struct watch client_watch;
	int client_out_fd;		/* where guest bytes go if not client_fd (stdout), or -1 */
	struct watch client_out_watch;
	bool client_rd_eof;		/* the host program sends no more */
	bool client_wr_closed;		/* the host program takes no more */
	bool client_hup;		/* peer fully gone; read without epoll */
	bool client_saw_close;		/* a guest session ended on this client */

	/* Guest session. */
	bool guest_open;
	bool send_open_ack;		/* messages owed to the guest, in order */
	unsigned int send_faults;	/* --fault messages still to send */
	bool send_connect;
	bool connect_sent;
	bool send_disconnect;
	bool send_credit;
	bool shutdown_pending;		/* guest closed: end the client's stream */

	/* Guest -> host: a ring of guest bytes not yet written to the client. */
	uint8_t *buf;
	uint32_t buf_head, buf_len;
	uint32_t fwd_cnt;		/* bytes consumed (written or discarded) */
	uint32_t fwd_reported;

	/* Host -> guest credit. */
	uint32_t tx_cnt;
	uint32_t peer_buf_alloc;
	uint32_t peer_fwd_cnt;
};

struct vmc_device {
	struct vu_dev vu;
	const char *dir;		/* where endpoints go */
	struct vmc_chan **chans;	/* VMCHANNEL_MAX_CHANNELS slots, in table order */
	unsigned int nchans;
	uint32_t generation;
	uint16_t select;
	uint32_t next_id;
	vmc_faults faults;		/* test-only hostile behaviour */
	bool stdio_taken;		/* a channel uses stdin and stdout */
};

/* Sets up the device with channels from @specs and their endpoints in @dir. */
int vmc_device_init(struct vmc_device *dev, const char *dir, char **specs,
		    unsigned int n);
/* Closes every endpoint and removes its socket. */
void vmc_device_fini(struct vmc_device *dev);
/*
 * Adds a channel at run time from a spec, "NAME" or "NAME=connect:PATH"
 * (endpoint_spec_parse()), or removes one by name; the guest gets a
 * configuration-change interrupt.
 */
int vmc_device_add_channel(struct vmc_device *dev, const char *spec);
int vmc_device_remove_channel(struct vmc_device *dev, const char *name);

extern const struct vu_device_ops vmc_device_ops;

#endif /* VMC_DEVICE_H */
