/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Split virtqueues in guest memory: popping descriptor chains into iovecs,
 * returning them as used, notifying the guest.  Everything the guest wrote
 * (indices, descriptors, addresses, lengths) is validated here.
 */
#ifndef VMC_VIRTQUEUE_H
#define VMC_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "guest_mem.h"

#define VQ_MAX_SIZE 32768
#define VQ_MAX_IOV 64
/*
 * The longest descriptor chain walked: more cannot fill the two iovec arrays
 * unless some descriptors are empty, and empty ones cost work for nothing.
 */
#define VQ_MAX_CHAIN (2 * VQ_MAX_IOV)

struct vring_desc;
struct vring_avail;
struct vring_used;

struct vq {
	unsigned int num;		/* ring size, 0 until set */
	uint64_t desc_uaddr, avail_uaddr, used_uaddr;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	size_t desc_size, avail_size, used_size;	/* bytes of each part vq_map() mapped */
	uint16_t last_avail_idx;	/* next entry of avail->ring to pop */
	uint16_t used_idx;		/* our copy of used->idx */
	uint16_t signalled_used;	/* used_idx when the guest was last signalled */
	bool signalled_used_valid;	/* ... since the ring started */
	bool unsignalled;		/* used entries the guest was not signalled for */
	bool event_idx;			/* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool kicks_off;			/* vq_want_kicks(false): the device looks itself */
	int kick_fd, call_fd;
	bool enabled;			/* SET_VRING_ENABLE */
	bool started;			/* kick fd received, not stopped since */
	bool broken;			/* the guest violated the ring protocol */
	/*
	 * Every ring of the device, this one included (vq_init(): this one only):
	 * the device never writes where a started ring lies, or its own writes
	 * could move an avail index or rewrite descriptors under it.
	 */
	const struct vq *rings;
	unsigned int nrings;
};

/* One descriptor chain: device-readable (out) then device-writable (in). */
struct vq_elem {
	uint16_t head;
	unsigned int n_out, n_in;
	size_t out_len, in_len;
	struct iovec out[VQ_MAX_IOV];
	struct iovec in[VQ_MAX_IOV];
};

void vq_init(struct vq *vq);
/* Closes the eventfds and forgets the ring. */
void vq_reset(struct vq *vq);
/* The bytes of the ring's three parts for its size, as vq_map() maps them. */
void vq_ring_sizes(const struct vq *vq, size_t *desc, size_t *avail, size_t *used);
/* Maps the ring from the addresses and size set earlier; false if unmapped. */
bool vq_map(struct vq *vq, const struct guest_mem *mem);
/* The ring runs from the guest's used index on; @event_idx: VIRTIO_RING_F_EVENT_IDX. */
void vq_start(struct vq *vq, bool event_idx);
bool vq_ready(const struct vq *vq);
/* Whether the running ring holds chains not popped yet. */
bool vq_has_avail(const struct vq *vq);
/*
 * Whether the guest is to kick after adding a chain (as it must be before the
 * device sleeps); false while the device polls the ring, saving the guest an
 * exit per chain.  Asking for kicks again returns vq_has_avail(): a chain
 * added before the guest could see the request came without one.
 */
bool vq_want_kicks(struct vq *vq, bool on);
/*
 * Whether the mapped ring's used ring, which the device writes, lies on a
 * part of itself or of another started ring of the device.  vq_start() checks
 * it (a ring that fails is broken); a stopped ring's addresses may be stale
 * while the frontend sets it up again, so they do not count.
 */
bool vq_used_hits_ring(const struct vq *vq);
/*
 * 1: popped into @elem; 0: ring empty; -1: broken ring (vq->broken set).
 * With EVENT_IDX an empty ring asks the guest for a kick on its next buffer
 * (avail_event); otherwise the guest does not kick while buffers wait.
 */
int vq_pop(struct vq *vq, const struct guest_mem *mem, struct vq_elem *elem);
/* Gives back the chain popped last, for a later pop. */
void vq_unpop(struct vq *vq);
/* Returns a chain as used; the guest is signalled by the next vq_notify(). */
void vq_push(struct vq *vq, const struct vq_elem *elem, uint32_t len);
/* What vq_notify() did. */
enum vq_signal {
	VQ_NOTHING_NEW,		/* no entry pushed since the last call */
	VQ_SIGNALLED,		/* the guest was signalled (or had a signal pending) */
	VQ_NOT_WANTED,		/* it asked for none: it takes them already (polls) */
};

/*
 * Signals the guest for the entries pushed since the last signal, unless it
 * asked not to be (VRING_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX).
 * Called once per batch of work, not per entry: each signal is an interrupt.
 */
enum vq_signal vq_notify(struct vq *vq);

/* Copies between a flat buffer and an iovec array, from byte @offset on. */
size_t iov_from_buf(const struct iovec *iov, unsigned int n, size_t offset,
		    const void *buf, size_t len);
size_t iov_to_buf(const struct iovec *iov, unsigned int n, size_t offset,
		  void *buf, size_t len);
/* Points @dst at up to @max bytes of @src from byte @offset on; returns the count of @dst. */
unsigned int iov_slice(const struct iovec *src, unsigned int n, size_t offset, size_t max,
		       struct iovec *dst);

#endif /* VMC_VIRTQUEUE_H */
