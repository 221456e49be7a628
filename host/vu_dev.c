// SPDX-License-Identifier: GPL-2.0-or-later
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ring.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "vu_dev.h"

#define VU_PROTOCOL_FEATURES ((1ULL << VU_PROTOCOL_F_MQ) |		\
			      (1ULL << VU_PROTOCOL_F_REPLY_ACK) |	\
			      (1ULL << VU_PROTOCOL_F_BACKEND_REQ) |	\
			      (1ULL << VU_PROTOCOL_F_CONFIG))

void vu_dev_init(struct vu_dev *dev, const struct vu_device_ops *ops, void *opaque)
{
	unsigned int i;

	memset(dev, 0, sizeof(*dev));
	dev->sock = -1;
	dev->sock_watch.fd = -1;
	dev->fault_watch.fd = -1;
	dev->backend_fd = -1;
	dev->ops = ops;
	dev->opaque = opaque;
	/* The SIGBUS guard, installed now: the sandbox forbids it later. */
	guest_mem_fault_fd();
	for (i = 0; i < VU_DEV_MAX_QUEUES; i++) {
		vq_init(&dev->vqs[i]);
		dev->vqs[i].rings = dev->vqs;
		dev->vqs[i].nrings = ops->num_queues;
		dev->kicks[i].dev = dev;
		dev->kicks[i].index = i;
		dev->kicks[i].watch.fd = -1;
	}
}

struct vq *vu_dev_queue(struct vu_dev *dev, unsigned int index)
{
	if (index >= dev->ops->num_queues || !vq_ready(&dev->vqs[index]))
		return NULL;
	return &dev->vqs[index];
}

static void vu_stop_queue(struct vu_dev *dev, unsigned int index)
{
	loop_unwatch(&dev->kicks[index].watch);
	vq_reset(&dev->vqs[index]);
}

static void vu_reset_rings(struct vu_dev *dev)
{
	unsigned int i;

	for (i = 0; i < VU_DEV_MAX_QUEUES; i++)
		vu_stop_queue(dev, i);
	dev->ops->device_reset(dev->opaque);
}

void vu_dev_detach(struct vu_dev *dev)
{
	vu_reset_rings(dev);
	guest_mem_clear(&dev->mem);
	loop_unwatch(&dev->sock_watch);
	if (dev->fault_watch.fd >= 0) {
		loop_unwatch(&dev->fault_watch);
		close(dev->fault_watch.fd);
		dev->fault_watch.fd = -1;
	}
	if (dev->sock >= 0)
		close(dev->sock);
	if (dev->backend_fd >= 0)
		close(dev->backend_fd);
	dev->sock = -1;
	dev->backend_fd = -1;
	/* A new frontend reads the configuration when it starts the device. */
	dev->config_change_held = false;
	dev->features = 0;
	dev->protocol_features = 0;
}

/* Ends the frontend's connection: it went away, broke the protocol or our memory. */
static void vu_drop_frontend(struct vu_dev *dev)
{
	vu_dev_detach(dev);
	if (dev->disconnected)
		dev->disconnected(dev);
}

static void vu_sock_ready(void *opaque, uint32_t events)
{
	struct vu_dev *dev = opaque;
	struct vu_msg msg;
	int ret;

	(void)events;
	ret = vu_recv(dev->sock, &msg);
	if (ret > 0 && vu_dev_handle(dev, &msg))
		return;
	if (ret == 0)
		log_info("frontend disconnected");
	else
		log_warn("dropping the frontend connection");
	vu_drop_frontend(dev);
}

/* The SIGBUS guard caught a fault on guest memory: some file shrank. */
static void vu_mem_faulted(void *opaque, uint32_t events)
{
	struct vu_dev *dev = opaque;
	eventfd_t count;

	(void)events;
	if (eventfd_read(dev->fault_watch.fd, &count) < 0 && errno != EAGAIN)
		return;
	if (!dev->mem.faulted)
		return;
	log_error("guest memory faulted (SIGBUS: the frontend shrank a memory file): "
		  "dropping the frontend");
	vu_drop_frontend(dev);
}

int vu_dev_attach(struct vu_dev *dev, int sock)
{
	int fd;

	/* On failure the caller closes @sock: it must not stay ours too. */
	if (loop_watch(&dev->sock_watch, sock, EPOLLIN, vu_sock_ready, dev) < 0)
		return -1;
	dev->sock = sock;
	/* Its own descriptor: every device watches the one eventfd of the guard. */
	fd = guest_mem_fault_fd() >= 0 ? fcntl(guest_mem_fault_fd(), F_DUPFD_CLOEXEC, 0) : -1;
	if (fd >= 0 && loop_watch(&dev->fault_watch, fd, EPOLLIN, vu_mem_faulted, dev) < 0)
		close(fd);
	return 0;
}

static void vu_kick_ready(void *opaque, uint32_t events)
{
	struct vu_kick *kick = opaque;
	struct vu_dev *dev = kick->dev;
	eventfd_t value;
	ssize_t n;

	(void)events;
	n = read(kick->watch.fd, &value, sizeof(value));
	if (n < 0 && errno == EAGAIN) {
		/* Nothing new; the ring may still have work (a spurious wakeup). */
	} else if (n != (ssize_t)sizeof(value)) {
		/* Not an eventfd (a hung-up socket, a pipe): it would wake us for ever. */
		log_error("queue %u: the kick descriptor is not an eventfd that works (%s): "
			  "no longer watched", kick->index, n < 0 ? strerror(errno) : "end of file");
		loop_unwatch(&kick->watch);
		return;
	}
	dev->ops->queue_kicked(dev->opaque, kick->index);
}

bool vu_dev_resume_queue(struct vu_dev *dev, unsigned int index)
{
	struct vq *vq = &dev->vqs[index];

	return !vq->started || vq->kick_fd < 0 ||
	       loop_watch(&dev->kicks[index].watch, vq->kick_fd, EPOLLIN, vu_kick_ready,
			  &dev->kicks[index]) == 0;
}

/* A queue index from a request; the low byte of a u64 or of a vring state. */
static struct vq *vu_queue_arg(struct vu_dev *dev, uint32_t index)
{
	if (index >= dev->ops->num_queues) {
		log_error("request for queue %u, the device has %u", index,
			  dev->ops->num_queues);
		return NULL;
	}
	return &dev->vqs[index];
}

/*
 * The frontend's device runs: every ring started (its kick set) and enabled,
 * none stopped by GET_VRING_BASE.  QEMU starts its vhost device only once
 * the guest driver is ready (DRIVER_OK) and stops it on every VM stop.
 */
static bool vu_dev_running(const struct vu_dev *dev)
{
	unsigned int i;

	for (i = 0; i < dev->ops->num_queues; i++)
		if (!dev->vqs[i].started || !dev->vqs[i].enabled)
			return false;
	return true;
}

static void vu_send_config_change(struct vu_dev *dev)
{
	struct vu_msg msg = { .request = VU_BACKEND_CONFIG_CHANGE_MSG };

	dev->config_change_held = false;
	vu_send(dev->backend_fd, &msg);
}

/* A ring runs again: the device as a whole may, with a config change held. */
static void vu_rings_started(struct vu_dev *dev)
{
	dev->ops->rings_started(dev->opaque);
	if (dev->config_change_held && dev->backend_fd >= 0 && vu_dev_running(dev)) {
		log_info("the rings run again: sending the configuration change held while they were stopped");
		vu_send_config_change(dev);
	}
}

static bool vu_start_queue(struct vu_dev *dev, unsigned int index)
{
	struct vq *vq = &dev->vqs[index];

	if (!vq->num || !vq_map(vq, &dev->mem)) {
		log_error("queue %u started without a mapped ring", index);
		return false;
	}
	if (loop_watch(&dev->kicks[index].watch, vq->kick_fd, EPOLLIN, vu_kick_ready,
		       &dev->kicks[index]) < 0)
		return false;
	vq_start(vq, dev->features & (1ULL << VIRTIO_RING_F_EVENT_IDX));
	if (!(dev->features & (1ULL << VU_F_PROTOCOL_FEATURES)))
		vq->enabled = true;
	if (vq_ready(vq))
		vu_rings_started(dev);
	return true;
}

static bool vu_set_mem_table(struct vu_dev *dev, struct vu_msg *msg)
{
	struct guest_region_desc desc[GUEST_MEM_MAX_REGIONS];
	const struct vu_mem_table *t = &msg->payload.mem;
	unsigned int i;
	int fds[VU_MAX_FDS];
	bool ok = true;

	if (msg->size < 8 || t->nregions > VU_MAX_FDS ||
	    msg->size != 8 + t->nregions * sizeof(struct vu_mem_region) ||
	    msg->nfds != t->nregions) {
		log_error("SET_MEM_TABLE: %u regions, %u fds, %u bytes", t->nregions,
			  msg->nfds, msg->size);
		return false;
	}
	for (i = 0; i < t->nregions; i++) {
		desc[i].gpa = t->regions[i].gpa;
		desc[i].size = t->regions[i].size;
		desc[i].uaddr = t->regions[i].uaddr;
		desc[i].mmap_offset = t->regions[i].mmap_offset;
		fds[i] = msg->fds[i];
	}
	msg->nfds = 0;		/* guest_mem_set() consumes them */
	if (guest_mem_set(&dev->mem, desc, fds, t->nregions) < 0)
		return false;
	/*
	 * Rings live in guest memory: map every one again from the new table
	 * (the old is gone); one that no longer fits stops, the others go on.
	 */
	for (i = 0; i < VU_DEV_MAX_QUEUES; i++)
		if (dev->vqs[i].desc && !vq_map(&dev->vqs[i], &dev->mem))
			ok = false;
	return ok;
}

/* SET_VRING_KICK, _CALL, _ERR: a queue index and an eventfd (or none). */
static bool vu_set_vring_fd(struct vu_dev *dev, struct vu_msg *msg, int **slot,
			    unsigned int *index)
{
	uint64_t arg = msg->payload.u64;
	bool nofd = arg & VU_VRING_NOFD;
	int fd = nofd ? -1 : msg->fds[0];
	struct vq *vq;

	if (msg->size != sizeof(uint64_t) || msg->nfds != (nofd ? 0u : 1u))
		return false;
	*index = arg & VU_VRING_IDX_MASK;
	vq = vu_queue_arg(dev, *index);
	if (!vq)
		return false;
	/*
	 * Never block on the frontend's descriptors: a kick read finds nothing,
	 * a call write meets a full pipe.  Both are eventfds in QEMU, which sets
	 * them non-blocking anyway.
	 */
	if (fd >= 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		log_error("queue %u: %s: %s", *index, vu_request_name(msg->request),
			  strerror(errno));
		return false;
	}
	*slot = msg->request == VU_SET_VRING_KICK ? &vq->kick_fd : &vq->call_fd;
	/* Out of epoll before it is closed: a closed fd cannot be removed. */
	if (msg->request == VU_SET_VRING_KICK)
		loop_unwatch(&dev->kicks[*index].watch);
	if (**slot >= 0)
		close(**slot);
	**slot = fd;
	msg->nfds = 0;
	return true;
}

/*
 * SET_VRING_NUM.  The ring's addresses were checked for its old size; a new
 * size is checked against guest memory again, and a running ring cannot be
 * resized (QEMU sets the size before it starts a ring).
 */
static bool vu_set_vring_num(struct vu_dev *dev, struct vq *vq, unsigned int index,
			     unsigned int num)
{
	unsigned int old = vq->num;

	if (!num || num > VQ_MAX_SIZE || (num & (num - 1))) {
		log_error("queue %u: size %u is not a power of two <= %u", index, num,
			  VQ_MAX_SIZE);
		return false;
	}
	if (vq->started) {
		log_error("queue %u: resizing a started ring (%u to %u)", index, old, num);
		return false;
	}
	vq->num = num;
	if (vq->desc && !vq_map(vq, &dev->mem)) {
		log_error("queue %u: a ring of %u entries does not fit in guest memory", index, num);
		vq->num = old;
		vq_map(vq, &dev->mem);
		return false;
	}
	return true;
}

static bool vu_reply_u64(struct vu_dev *dev, struct vu_msg *msg, uint64_t value)
{
	msg->flags = VU_FLAG_REPLY;
	msg->size = sizeof(uint64_t);
	msg->payload.u64 = value;
	return vu_send(dev->sock, msg);
}

/* Handles a request; *replied is set when it sent its own reply. */
static bool vu_dispatch(struct vu_dev *dev, struct vu_msg *msg, bool *replied)
{
	struct vu_vring_state *state = &msg->payload.state;
	struct vu_config *cfg = &msg->payload.config;
	struct vq *vq;
	unsigned int index;
	int *slot;

	*replied = false;
	switch (msg->request) {
	case VU_GET_FEATURES:
		*replied = true;
		return vu_reply_u64(dev, msg, dev->ops->features |
				    (1ULL << VU_F_PROTOCOL_FEATURES));
	case VU_SET_FEATURES:
		if (msg->size != sizeof(uint64_t))
			return false;
		dev->features = msg->payload.u64;
		return true;
	case VU_GET_PROTOCOL_FEATURES:
		*replied = true;
		return vu_reply_u64(dev, msg, VU_PROTOCOL_FEATURES);
	case VU_SET_PROTOCOL_FEATURES:
		if (msg->size != sizeof(uint64_t))
			return false;
		dev->protocol_features = msg->payload.u64 & VU_PROTOCOL_FEATURES;
		return true;
	case VU_GET_QUEUE_NUM:
		*replied = true;
		return vu_reply_u64(dev, msg, dev->ops->num_queues);
	case VU_SET_OWNER:
		return true;
	case VU_RESET_OWNER:
		vu_reset_rings(dev);
		return true;
	case VU_SET_MEM_TABLE:
		return vu_set_mem_table(dev, msg);
	case VU_SET_VRING_NUM:
		if (msg->size != sizeof(*state) || !(vq = vu_queue_arg(dev, state->index)))
			return false;
		return vu_set_vring_num(dev, vq, state->index, state->num);
	case VU_SET_VRING_ADDR:
		if (msg->size != sizeof(struct vu_vring_addr) ||
		    !(vq = vu_queue_arg(dev, msg->payload.addr.index)))
			return false;
		vq->desc_uaddr = msg->payload.addr.desc;
		vq->avail_uaddr = msg->payload.addr.avail;
		vq->used_uaddr = msg->payload.addr.used;
		if (!vq->num || !vq_map(vq, &dev->mem)) {
			log_error("queue %u: ring addresses outside guest memory", msg->payload.addr.index);
			return false;
		}
		return true;
	case VU_SET_VRING_BASE:
		if (msg->size != sizeof(*state) || !(vq = vu_queue_arg(dev, state->index)) ||
		    state->num > 0xffff)
			return false;
		vq->last_avail_idx = (uint16_t)state->num;
		return true;
	case VU_GET_VRING_BASE:
		if (msg->size != sizeof(*state) || !(vq = vu_queue_arg(dev, state->index)))
			return false;
		index = state->index;
		state->num = vq->last_avail_idx;
		loop_unwatch(&dev->kicks[index].watch);
		/*
		 * The ring may go to a backend that does not poll: it is left
		 * asking for kicks.  What came without one is popped when the
		 * ring starts again, as every backend does.
		 */
		vq_want_kicks(vq, true);
		vq->started = false;
		dev->ops->rings_stopped(dev->opaque);
		*replied = true;
		msg->flags = VU_FLAG_REPLY;
		return vu_send(dev->sock, msg);
	case VU_SET_VRING_KICK:
		if (!vu_set_vring_fd(dev, msg, &slot, &index))
			return false;
		return *slot < 0 || vu_start_queue(dev, index);
	case VU_SET_VRING_CALL:
		return vu_set_vring_fd(dev, msg, &slot, &index);
	case VU_SET_VRING_ERR:
		/* Nothing to report on it: accept and close. */
		return msg->size == sizeof(uint64_t);
	case VU_SET_VRING_ENABLE:
		if (msg->size != sizeof(*state) || !(vq = vu_queue_arg(dev, state->index)))
			return false;
		vq->enabled = state->num != 0;
		if (vq_ready(vq))
			vu_rings_started(dev);
		return true;
	case VU_SET_BACKEND_REQ_FD:
		if (msg->nfds != 1)
			return false;
		if (dev->backend_fd >= 0)
			close(dev->backend_fd);
		dev->backend_fd = msg->fds[0];
		msg->nfds = 0;
		return true;
	case VU_GET_CONFIG:
		if (msg->size < 12 || cfg->size > sizeof(cfg->region) || msg->size != 12 + cfg->size ||
		    !dev->ops->get_config(dev->opaque, cfg->offset, cfg->region, cfg->size))
			return false;
		*replied = true;
		msg->flags = VU_FLAG_REPLY;
		return vu_send(dev->sock, msg);
	case VU_SET_CONFIG:
		return msg->size >= 12 && cfg->size <= sizeof(cfg->region) &&
		       msg->size == 12 + cfg->size &&
		       dev->ops->set_config(dev->opaque, cfg->offset, cfg->region, cfg->size);
	default:
		log_warn("unsupported request %u (%s)", msg->request,
			 vu_request_name(msg->request));
		return !(msg->flags & VU_FLAG_NEED_REPLY) ? true : false;
	}
}

bool vu_dev_handle(struct vu_dev *dev, struct vu_msg *msg)
{
	bool replied, ok;

	log_debug("request %s, %u bytes, %u fds", vu_request_name(msg->request),
		  msg->size, msg->nfds);
	ok = vu_dispatch(dev, msg, &replied);
	vu_close_fds(msg);
	if (!ok)
		log_error("request %s failed", vu_request_name(msg->request));
	if (!replied && (msg->flags & VU_FLAG_NEED_REPLY) &&
	    (dev->protocol_features & (1ULL << VU_PROTOCOL_F_REPLY_ACK))) {
		/* REPLY_ACK: 0 for success; a failure is reported, not fatal. */
		return vu_reply_u64(dev, msg, ok ? 0 : 1);
	}
	return ok || replied;
}

/*
 * QEMU (checked up to 11.1.3) dereferences a NULL pointer on a
 * VHOST_USER_BACKEND_CONFIG_CHANGE_MSG while its vhost device is stopped:
 * hw/virtio/vhost-user.c backend_read() calls
 * vhost_user_backend_handle_config_change(dev), which calls
 * dev->config_ops->vhost_dev_config_notifier(dev); for
 * vhost-user-test-device-pci that is vub_config_notifier() in
 * hw/virtio/vhost-user-base.c, virtio_notify_config(dev->vdev), and
 * virtio_notify_config() reads vdev->status first.  dev->vdev is NULL
 * whenever the vhost device is not started: vhost_dev_init() sets it so, and
 * vhost_dev_stop() sets "hdev->vdev = NULL" on every VM stop (QMP stop,
 * savevm, migration), device reset, and before the driver sets DRIVER_OK.
 * (The host-notifier handler next to it checks "vdev == NULL"; this one
 * does not.)  So the message waits until the frontend has started every
 * ring again, which QEMU does after setting dev->vdev in vhost_dev_start();
 * the guest reads the configuration then.
 */
void vu_dev_config_changed(struct vu_dev *dev)
{
	if (dev->backend_fd < 0 ||
	    !(dev->protocol_features & (1ULL << VU_PROTOCOL_F_BACKEND_REQ)))
		return;
	if (!vu_dev_running(dev)) {
		if (!dev->config_change_held)
			log_info("configuration change held until the rings run again (QEMU's device is stopped)");
		dev->config_change_held = true;
		return;
	}
	vu_send_config_change(dev);
}
