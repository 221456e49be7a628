/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One channel of the device, internal to the device model.  vmc_device.c
 * owns the table and calls the first group; a channel's work is split by
 * job: its lifecycle (vmc_chan.c, the transitions of chan_state.c carried
 * out), its messages to the driver (vmc_chan_rx.c) and its host endpoint
 * (vmc_chan_host.c).
 */
#ifndef VMC_CHAN_H
#define VMC_CHAN_H

#include <time.h>

#include "vmc_device.h"

/* ---- for the device (vmc_device.c) ---- */

/* Creates channel @name, listening in the device's directory or connecting to @connect_path ("-": stdio). */
int vmc_chan_create(struct vmc_device *dev, const char *name, const char *connect_path,
		    struct vmc_chan **out);
/* A channel with nothing open, not in the table yet (an upgrade's restore). */
struct vmc_chan *vmc_chan_new(struct vmc_device *dev);
/*
 * A restored channel's descriptors watched again, its timer armed (a removed
 * channel's deadline starts again); -1 if they cannot be.
 */
int vmc_chan_resume(struct vmc_chan *ch);
/* Closes everything at once (the daemon exits). */
void vmc_chan_destroy(struct vmc_chan *ch);
/* The channel left the table: its bytes still go out, then it is freed. */
void vmc_chan_remove(struct vmc_chan *ch);
/* A txq message of the channel, its header and length already validated. */
void vmc_chan_message(struct vmc_chan *ch, const struct vmchannel_hdr *hdr,
		      const struct vq_elem *elem, uint32_t len);
/* Driver RESET: the session ends; what it was owed is forgotten. */
void vmc_chan_reset(struct vmc_chan *ch);
/*
 * Sends what the channel owes the driver as rxq buffers allow, raises what
 * follows and rewatches its sockets.  A removed channel may be freed.
 */
void vmc_chan_pump(struct vmc_chan *ch);

/* The channel is freed: out of the lookup and the ready list. */
void vmc_device_forget(struct vmc_chan *ch);
/* The channel has something for the driver and waits for rxq: served when it can be. */
void vmc_ready_add(struct vmc_chan *ch);
void vmc_ready_del(struct vmc_chan *ch);
/* Writes the channel's buffer once txq's messages are taken (vmc_device.flush). */
void vmc_chan_flush_later(struct vmc_chan *ch);
/* Writes it now if it was to be written later. */
void vmc_chan_flush_now(struct vmc_chan *ch);
/* rxq as channels may use it now: NULL while stopped, suspended or a device reply waits. */
struct vq *vmc_rxq(struct vmc_device *dev);
/* Pops an rx buffer that holds at least a header; false (and starved) if none. */
bool vmc_rx_pop(struct vmc_device *dev, struct vq_elem *elem);

/* The configuration window (vmc_config.c). */
bool vmc_get_config(void *opaque, uint32_t offset, uint8_t *buf, uint32_t size);
bool vmc_set_config(void *opaque, uint32_t offset, const uint8_t *buf, uint32_t size);

/* ---- the lifecycle (vmc_chan.c) ---- */

/* Applies @event (@session for OPEN); returns the actions taken, 0 if it cannot happen now. */
unsigned int vmc_chan_event(struct vmc_chan *ch, enum chan_event event, uint32_t session);
/* Raises the events that follow from the channel's I/O; may free a removed channel. */
void vmc_chan_settle(struct vmc_chan *ch);
/* A removed channel's time is up: an open session ends (its host program is given up next). */
void vmc_chan_removed_timeout(struct vmc_chan *ch);
/* Drops the undelivered guest bytes; the session, if it still owns them, learns so. */
void vmc_chan_discard_buffer(struct vmc_chan *ch);

/* ---- messages to the driver (vmc_chan_rx.c) ---- */

/* The credit the guest granted: payload bytes we may still send it. */
uint32_t vmc_chan_guest_credit(const struct vmc_chan *ch);
/* The credit we grant: only for a connection serving the session. */
uint32_t vmc_chan_buf_alloc(const struct vmc_chan *ch);
/* Owes a CREDIT once a quarter of the buffer was consumed since the last report. */
void vmc_chan_credit_check(struct vmc_chan *ch);
/* Guest bytes of the session that no host program will get: consumed, the driver told. */
void vmc_chan_lose_guest_bytes(struct vmc_chan *ch, uint32_t len);
/* Sends what the session is owed, in protocol order, as rx buffers allow. */
void vmc_chan_send_owed(struct vmc_chan *ch);
/* The session is owed messages (not counting host bytes). */
bool vmc_chan_owes_driver(const struct vmc_chan *ch);

/* ---- the host endpoint (vmc_chan_host.c) ---- */

int vmc_chan_open_endpoint(struct vmc_chan *ch, const char *connect_path);
void vmc_chan_close_endpoint(struct vmc_chan *ch);
/* The host program still takes guest bytes. */
bool vmc_chan_host_takes(const struct vmc_chan *ch);
/* Notices at once a host program that has hung up (before credit is offered for it). */
void vmc_chan_host_check(struct vmc_chan *ch);
/* The connection can neither give nor take more, as the state sees it. */
bool vmc_chan_host_gone(const struct vmc_chan *ch);
void vmc_chan_close_client(struct vmc_chan *ch);
/* End of stream to the host program: shutdown for a socket, close for stdout. */
void vmc_chan_end_host_stream(struct vmc_chan *ch);
/* Writes buffered guest bytes to the host program as far as it takes them. */
void vmc_chan_flush(struct vmc_chan *ch);
/*
 * Writes guest bytes straight from guest memory while nothing is buffered;
 * returns how many the host program took (0 on EAGAIN or an error, which
 * vmc_chan_flush() meets again and handles).
 */
size_t vmc_chan_write_direct(struct vmc_chan *ch, const struct iovec *iov, unsigned int n);
void vmc_chan_update_watch(struct vmc_chan *ch);
/* A session waits for the service the channel connects to. */
bool vmc_chan_waits_for_service(const struct vmc_chan *ch);
void vmc_chan_connect(struct vmc_chan *ch);
/* Starts the channel's timer (@first seconds, then every @every), or stops it (0). */
void vmc_chan_timer_arm(struct vmc_chan *ch, time_t first, time_t every);

#endif /* VMC_CHAN_H */
