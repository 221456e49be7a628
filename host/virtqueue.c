// SPDX-License-Identifier: GPL-2.0-or-later
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "virtqueue.h"

void vq_init(struct vq *vq)
{
	memset(vq, 0, sizeof(*vq));
	vq->kick_fd = -1;
	vq->call_fd = -1;
	vq->rings = vq;
	vq->nrings = 1;
}

void vq_reset(struct vq *vq)
{
	const struct vq *rings = vq->rings;
	unsigned int nrings = vq->nrings;

	if (vq->kick_fd >= 0)
		close(vq->kick_fd);
	if (vq->call_fd >= 0)
		close(vq->call_fd);
	vq_init(vq);
	vq->rings = rings;
	vq->nrings = nrings;
}

void vq_ring_sizes(const struct vq *vq, size_t *desc, size_t *avail, size_t *used)
{
	size_t num = vq->num;

	/* Each ring ends in an event index (used_event, avail_event), as the split layout has. */
	*desc = num * sizeof(struct vring_desc);
	*avail = sizeof(struct vring_avail) + (num + 1) * sizeof(__virtio16);
	*used = sizeof(struct vring_used) + num * sizeof(struct vring_used_elem) +
		sizeof(__virtio16);
}

static bool ranges_overlap(uintptr_t a, size_t alen, const void *b, size_t blen)
{
	return b && a < (uintptr_t)b + blen && (uintptr_t)b < a + alen;
}

/* Whether [p, p + len) overlaps a part of @r's ring. */
static bool ring_overlaps(const struct vq *r, uintptr_t p, size_t len)
{
	return ranges_overlap(p, len, r->desc, r->desc_size) ||
	       ranges_overlap(p, len, r->avail, r->avail_size) ||
	       ranges_overlap(p, len, r->used, r->used_size);
}

/* Whether the device writing [p, p + len) could change one of its rings. */
static bool vq_write_hits_ring(const struct vq *vq, const void *p, size_t len)
{
	unsigned int i;

	for (i = 0; i < vq->nrings; i++)
		if ((&vq->rings[i] == vq || vq->rings[i].started) &&
		    ring_overlaps(&vq->rings[i], (uintptr_t)p, len))
			return true;
	return false;
}

bool vq_used_hits_ring(const struct vq *vq)
{
	uintptr_t used = (uintptr_t)vq->used;
	unsigned int i;

	if (ranges_overlap(used, vq->used_size, vq->desc, vq->desc_size) ||
	    ranges_overlap(used, vq->used_size, vq->avail, vq->avail_size))
		return true;
	for (i = 0; i < vq->nrings; i++) {
		const struct vq *r = &vq->rings[i];

		if (r != vq && r->started && (ring_overlaps(r, used, vq->used_size) ||
					      ring_overlaps(vq, (uintptr_t)r->used, r->used_size)))
			return true;
	}
	return false;
}

bool vq_map(struct vq *vq, const struct guest_mem *mem)
{
	vq_ring_sizes(vq, &vq->desc_size, &vq->avail_size, &vq->used_size);
	vq->desc = guest_mem_uaddr(mem, vq->desc_uaddr, vq->desc_size);
	vq->avail = guest_mem_uaddr(mem, vq->avail_uaddr, vq->avail_size);
	vq->used = guest_mem_uaddr(mem, vq->used_uaddr, vq->used_size);
	/* The alignments the virtio spec requires (2.7.10.1): fields are read in place. */
	if (!vq->desc || !vq->avail || !vq->used || (uintptr_t)vq->desc % 16 ||
	    (uintptr_t)vq->avail % 2 || (uintptr_t)vq->used % 4) {
		vq->desc = NULL;
		vq->avail = NULL;
		vq->used = NULL;
		return false;
	}
	return true;
}

static int vq_fail(struct vq *vq, const char *why, unsigned int value)
{
	log_error("virtqueue: %s (%u); ring stopped", why, value);
	vq->broken = true;
	return -1;
}

void vq_start(struct vq *vq, bool event_idx)
{
	vq->used_idx = le16toh(vq->used->idx);
	vq->event_idx = event_idx;
	vq->signalled_used_valid = false;
	vq->kicks_off = false;
	vq->started = true;
	if (vq_used_hits_ring(vq))
		vq_fail(vq, "used ring on a ring", 0);
}

bool vq_ready(const struct vq *vq)
{
	return vq->started && vq->enabled && vq->desc && !vq->broken;
}


/*
 * Adds the guest buffer [addr, addr + len) to @iov, split at region ends.  A
 * buffer the device writes (@writable) must not lie on a ring.
 */
static int vq_map_desc(struct vq *vq, const struct guest_mem *mem, uint64_t addr,
		       uint32_t len, bool writable, struct iovec *iov, unsigned int *n,
		       size_t *total)
{
	while (len) {
		uint64_t chunk = len;
		void *hva = guest_mem_gpa(mem, addr, &chunk);

		if (!hva)
			return vq_fail(vq, "descriptor address outside guest memory",
				       (unsigned int)(addr >> 12));
		if (writable && vq_write_hits_ring(vq, hva, chunk))
			return vq_fail(vq, "writable buffer on a ring", (unsigned int)(addr >> 12));
		if (*n == VQ_MAX_IOV)
			return vq_fail(vq, "descriptor chain too fragmented", *n);
		iov[*n].iov_base = hva;
		iov[*n].iov_len = chunk;
		(*n)++;
		*total += chunk;
		addr += chunk;
		len -= chunk;
	}
	return 0;
}

/* The guest's avail index, the ring's entries up to it visible. */
static uint16_t vq_avail_idx(const struct vq *vq)
{
	return le16toh(__atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE));
}

/*
 * Asks for a kick at the next chain: with EVENT_IDX the guest kicks only when
 * it makes avail->idx pass avail_event, without it unless used->flags has
 * VRING_USED_F_NO_NOTIFY.  Then looks at the index again, for the guest may
 * have added a chain before it could see the request.
 */
static uint16_t vq_ask_for_kick(struct vq *vq)
{
	__virtio16 *avail_event = (__virtio16 *)&vq->used->ring[vq->num];

	if (vq->event_idx)
		__atomic_store_n(avail_event, htole16(vq->last_avail_idx), __ATOMIC_RELAXED);
	else
		__atomic_store_n(&vq->used->flags, 0, __ATOMIC_RELAXED);
	/* The store must be visible before we read the index (the guest does the reverse). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return vq_avail_idx(vq);
}

/*
 * The ring looks empty: the next chain is to be kicked, unless the device
 * polls.  Without EVENT_IDX kicks stay on until vq_want_kicks(false).
 */
static uint16_t vq_avail_idx_when_empty(struct vq *vq)
{
	if (!vq->event_idx || vq->kicks_off)
		return vq->last_avail_idx;
	return vq_ask_for_kick(vq);
}

bool vq_has_avail(const struct vq *vq)
{
	return vq_ready(vq) && vq_avail_idx(vq) != vq->last_avail_idx;
}

/*
 * On, the request is written every time: the ring may come from a process
 * that had kicks off when it ended.  Off, EVENT_IDX needs no write:
 * avail_event stays where the guest has passed it, and vq_pop() no longer
 * moves it.
 */
bool vq_want_kicks(struct vq *vq, bool on)
{
	if (!vq_ready(vq))
		return false;
	if (on) {
		vq->kicks_off = false;
		return vq_ask_for_kick(vq) != vq->last_avail_idx;
	}
	if (!vq->kicks_off && !vq->event_idx)
		__atomic_store_n(&vq->used->flags, htole16(VRING_USED_F_NO_NOTIFY), __ATOMIC_RELAXED);
	vq->kicks_off = true;
	return false;
}

int vq_pop(struct vq *vq, const struct guest_mem *mem, struct vq_elem *elem)
{
	uint16_t avail_idx, head, i, flags;
	unsigned int count;

	if (!vq_ready(vq))
		return 0;
	avail_idx = vq_avail_idx(vq);
	if (avail_idx == vq->last_avail_idx)
		avail_idx = vq_avail_idx_when_empty(vq);
	if (avail_idx == vq->last_avail_idx)
		return 0;
	if ((uint16_t)(avail_idx - vq->last_avail_idx) > vq->num)
		return vq_fail(vq, "avail index moved beyond the ring size", avail_idx);

	head = le16toh(vq->avail->ring[vq->last_avail_idx % vq->num]);
	if (head >= vq->num)
		return vq_fail(vq, "available head out of range", head);
	elem->head = head;
	elem->n_out = elem->n_in = 0;
	elem->out_len = elem->in_len = 0;

	for (i = head, count = 0;; count++) {
		const struct vring_desc *d = &vq->desc[i];
		int err;

		if (count >= vq->num)
			return vq_fail(vq, "descriptor chain loops", head);
		if (count >= VQ_MAX_CHAIN)
			return vq_fail(vq, "descriptor chain too long", head);
		flags = le16toh(d->flags);
		if (flags & VRING_DESC_F_INDIRECT)
			return vq_fail(vq, "indirect descriptor (not negotiated)", i);
		if (flags & VRING_DESC_F_WRITE) {
			err = vq_map_desc(vq, mem, le64toh(d->addr), le32toh(d->len), true,
					  elem->in, &elem->n_in, &elem->in_len);
		} else {
			if (elem->n_in)
				return vq_fail(vq, "readable descriptor after a writable one", i);
			err = vq_map_desc(vq, mem, le64toh(d->addr), le32toh(d->len), false,
					  elem->out, &elem->n_out, &elem->out_len);
		}
		if (err)
			return -1;
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		i = le16toh(d->next);
		if (i >= vq->num)
			return vq_fail(vq, "next descriptor out of range", i);
	}
	vq->last_avail_idx++;
	return 1;
}

void vq_unpop(struct vq *vq)
{
	vq->last_avail_idx--;
}

void vq_push(struct vq *vq, const struct vq_elem *elem, uint32_t len)
{
	struct vring_used_elem *u = &vq->used->ring[vq->used_idx % vq->num];

	u->id = htole32(elem->head);
	u->len = htole32(len);
	vq->used_idx++;
	/* The entry must be visible before the index that publishes it. */
	__atomic_store_n(&vq->used->idx, htole16(vq->used_idx), __ATOMIC_RELEASE);
	vq->unsignalled = true;
}

/* Whether the guest wants a signal for the entries up to used_idx (virtio 1.x 2.7.10). */
static bool vq_guest_wants_signal(struct vq *vq)
{
	uint16_t old = vq->signalled_used, used_event;
	bool valid = vq->signalled_used_valid;

	if (!vq->event_idx)
		return !(le16toh(vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	used_event = le16toh(__atomic_load_n(&vq->avail->ring[vq->num], __ATOMIC_RELAXED));
	vq->signalled_used = vq->used_idx;
	vq->signalled_used_valid = true;
	return !valid || vring_need_event(used_event, vq->used_idx, old);
}

enum vq_signal vq_notify(struct vq *vq)
{
	if (!vq->unsignalled || vq->call_fd < 0 || !vq->avail)
		return VQ_NOTHING_NEW;
	vq->unsignalled = false;
	/* Order the used index store before reading the guest's flags or used_event. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq_guest_wants_signal(vq))
		return VQ_NOT_WANTED;
	/* EAGAIN: the counter (or a pipe) is full, the guest has a signal pending. */
	if (eventfd_write(vq->call_fd, 1) < 0 && errno != EAGAIN)
		log_warn("virtqueue: cannot signal the guest: %s", strerror(errno));
	return VQ_SIGNALLED;
}

/* Copies between @buf and the iovec bytes from @offset on, either way. */
static size_t iov_copy(const struct iovec *iov, unsigned int n, size_t offset,
		       uint8_t *buf, size_t len, bool to_iov)
{
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < n && done < len; i++) {
		uint8_t *base = iov[i].iov_base;
		size_t chunk;

		if (offset >= iov[i].iov_len) {
			offset -= iov[i].iov_len;
			continue;
		}
		chunk = iov[i].iov_len - offset;
		if (chunk > len - done)
			chunk = len - done;
		if (to_iov)
			memcpy(base + offset, buf + done, chunk);
		else
			memcpy(buf + done, base + offset, chunk);
		done += chunk;
		offset = 0;
	}
	return done;
}

size_t iov_from_buf(const struct iovec *iov, unsigned int n, size_t offset,
		    const void *buf, size_t len)
{
	return iov_copy(iov, n, offset, (uint8_t *)buf, len, true);
}

size_t iov_to_buf(const struct iovec *iov, unsigned int n, size_t offset,
		  void *buf, size_t len)
{
	return iov_copy(iov, n, offset, buf, len, false);
}

unsigned int iov_slice(const struct iovec *src, unsigned int n, size_t offset, size_t max,
		       struct iovec *dst)
{
	unsigned int i, count = 0;

	for (i = 0; i < n && max; i++) {
		size_t len = src[i].iov_len;

		if (offset >= len) {
			offset -= len;
			continue;
		}
		len -= offset;
		if (len > max)
			len = max;
		dst[count].iov_base = (uint8_t *)src[i].iov_base + offset;
		dst[count++].iov_len = len;
		max -= len;
		offset = 0;
	}
	return count;
}
