/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One channel of the device: its lifecycle (chan_state.h) carried out on its
 * host endpoint and on rxq.  Internal to the device model: vmc_device.c owns
 * the table and calls these.
 */
#ifndef VMC_CHAN_H
#define VMC_CHAN_H

#include "vmc_device.h"

/* Creates channel @name, listening in the device's directory or connecting to @connect_path ("-": stdio). */
int vmc_chan_create(struct vmc_device *dev, const char *name, const char *connect_path,
		    struct vmc_chan **out);
/* Closes everything at once (the daemon exits). */
void vmc_chan_destroy(struct vmc_chan *ch);
/* The channel left the table: its bytes still go out, then it is freed. */
void vmc_chan_remove(struct vmc_chan *ch);
/* A txq message of the channel, its header and length already validated. */
void vmc_chan_message(struct vmc_chan *ch, const struct vmchannel_hdr *hdr,
		      const struct vq_elem *elem, uint32_t len);
/* Driver RESET: the session ends; what it was owed is forgotten. */
void vmc_chan_reset(struct vmc_chan *ch);
/* Sends what the channel owes the driver as rxq buffers allow; rewatches its sockets. */
void vmc_chan_pump(struct vmc_chan *ch);

/* rxq as channels may use it now: NULL while stopped, suspended or a device reply waits. */
struct vq *vmc_rxq(struct vmc_device *dev);
/* Pops an rx buffer that holds at least a header; false (and starved) if none. */
bool vmc_rx_pop(struct vmc_device *dev, struct vq_elem *elem);

/* The configuration window (vmc_config.c). */
bool vmc_get_config(void *opaque, uint32_t offset, uint8_t *buf, uint32_t size);
bool vmc_set_config(void *opaque, uint32_t offset, const uint8_t *buf, uint32_t size);

#endif /* VMC_CHAN_H */
