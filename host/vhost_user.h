/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-user wire format and transport (QEMU docs/interop/vhost-user.rst):
 * receiving a request with its file descriptors, validating its size, and
 * sending replies and backend-initiated messages.
 */
#ifndef VMC_VHOST_USER_H
#define VMC_VHOST_USER_H

#include <stdbool.h>
#include <stdint.h>

enum vu_request {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_LOG_BASE = 6,
	VU_SET_LOG_FD = 7,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_SET_BACKEND_REQ_FD = 21,
	VU_GET_CONFIG = 24,
	VU_SET_CONFIG = 25,
	VU_GET_MAX_MEM_SLOTS = 36,
};

/* Backend-initiated requests, sent on the backend channel. */
#define VU_BACKEND_CONFIG_CHANGE_MSG	2

#define VU_F_PROTOCOL_FEATURES		30	/* virtio feature bit */
#define VU_PROTOCOL_F_MQ		0
#define VU_PROTOCOL_F_REPLY_ACK		3
#define VU_PROTOCOL_F_BACKEND_REQ	5
#define VU_PROTOCOL_F_CONFIG		9

#define VU_FLAG_VERSION		0x1
#define VU_FLAG_REPLY		0x4
#define VU_FLAG_NEED_REPLY	0x8

#define VU_MAX_FDS		8
#define VU_MAX_PAYLOAD		4096
#define VU_VRING_IDX_MASK	0xff
#define VU_VRING_NOFD		0x100

struct vu_vring_state {
	uint32_t index;
	uint32_t num;
};

struct vu_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc;
	uint64_t used;
	uint64_t avail;
	uint64_t log;
};

struct vu_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;
	uint64_t mmap_offset;
};

struct vu_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct vu_mem_region regions[VU_MAX_FDS];
};

struct vu_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t region[256];
};

struct vu_msg {
	uint32_t request;
	uint32_t flags;
	uint32_t size;			/* payload bytes */
	union {
		uint64_t u64;
		struct vu_vring_state state;
		struct vu_vring_addr addr;
		struct vu_mem_table mem;
		struct vu_config config;
		uint8_t bytes[VU_MAX_PAYLOAD];
	} payload;
	int fds[VU_MAX_FDS];
	unsigned int nfds;
};

#define VU_HDR_SIZE 12
/* The longest a request may take to arrive once it began (or epoll said so). */
#define VU_MSG_TIMEOUT_MS 1000

/*
 * Reads one request from the socket @fd, waiting at most VU_MSG_TIMEOUT_MS
 * for all of it.  Returns 1 with @msg filled, 0 when the peer closed the
 * connection, -1 on a malformed, truncated or late message or an error (the
 * connection must go).
 */
int vu_recv(int fd, struct vu_msg *msg);
/* Sends @msg (a reply when VU_FLAG_REPLY is set) without blocking; false on failure. */
bool vu_send(int fd, struct vu_msg *msg);
/* Closes the descriptors a request carried that its handler did not take. */
void vu_close_fds(struct vu_msg *msg);
const char *vu_request_name(uint32_t request);

#endif /* VMC_VHOST_USER_H */
