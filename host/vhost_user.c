// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event_loop.h"
#include "log.h"
#include "vhost_user.h"

void vu_close_fds(struct vu_msg *msg)
{
	unsigned int i;

	for (i = 0; i < msg->nfds; i++)
		if (msg->fds[i] >= 0)
			close(msg->fds[i]);
	msg->nfds = 0;
}

/*
 * Waits until @fd is readable or @deadline (a loop_now_ms() time) passes.  No
 * read blocks: a frontend that stops in the middle of a message
 * holds the daemon (and SIGTERM) for at most VU_MSG_TIMEOUT_MS.
 */
static bool wait_readable(int fd, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int64_t left;
	int n;

	do {
		left = deadline - loop_now_ms();
		if (left <= 0)
			return false;
		n = poll(&pfd, 1, (int)left);
	} while (n < 0 && errno == EINTR);
	return n > 0;
}

/* The rest of a message: false on end of file, error or the deadline. */
static bool read_rest(int fd, void *buf, size_t len, int64_t deadline)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, MSG_DONTWAIT);

		if (n < 0 && errno == EAGAIN && wait_readable(fd, deadline))
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

int vu_recv(int fd, struct vu_msg *msg)
{
	char control[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
	struct iovec iov = { .iov_base = msg, .iov_len = VU_HDR_SIZE };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control, .msg_controllen = sizeof(control),
	};
	int64_t deadline = loop_now_ms() + VU_MSG_TIMEOUT_MS;
	struct cmsghdr *cmsg;
	ssize_t n;

	msg->nfds = 0;
	for (;;) {
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n >= 0 || (errno != EINTR && errno != EAGAIN))
			break;
		if (errno == EAGAIN && !wait_readable(fd, deadline)) {
			log_error("vhost-user: no request within %d ms", VU_MSG_TIMEOUT_MS);
			return -1;
		}
	}
	if (n == 0)
		return 0;
	if (n < 0) {
		log_error("vhost-user: recvmsg: %s", strerror(errno));
		return -1;
	}
	for (cmsg = CMSG_FIRSTHDR(&mh); cmsg; cmsg = CMSG_NXTHDR(&mh, cmsg)) {
		size_t bytes;

		if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		bytes = cmsg->cmsg_len - CMSG_LEN(0);
		msg->nfds = bytes / sizeof(int);
		memcpy(msg->fds, CMSG_DATA(cmsg), msg->nfds * sizeof(int));
	}
	if (mh.msg_flags & MSG_CTRUNC) {
		log_error("vhost-user: too many file descriptors in a message");
		goto err;
	}
	if (n < VU_HDR_SIZE &&
	    !read_rest(fd, (uint8_t *)msg + n, VU_HDR_SIZE - (size_t)n, deadline)) {
		log_error("vhost-user: truncated header (%zd bytes)", n);
		goto err;
	}
	if ((msg->flags & 0x3) != VU_FLAG_VERSION) {
		log_error("vhost-user: unsupported version in flags %#x", msg->flags);
		goto err;
	}
	if (msg->size > VU_MAX_PAYLOAD) {
		log_error("vhost-user: %s payload of %u bytes is too large",
			  vu_request_name(msg->request), msg->size);
		goto err;
	}
	if (msg->size && !read_rest(fd, &msg->payload, msg->size, deadline)) {
		log_error("vhost-user: %s truncated: not %u payload bytes within %d ms",
			  vu_request_name(msg->request), msg->size, VU_MSG_TIMEOUT_MS);
		goto err;
	}
	return 1;
err:
	vu_close_fds(msg);
	return -1;
}

bool vu_send(int fd, struct vu_msg *msg)
{
	struct iovec iov[2] = {
		{ .iov_base = msg, .iov_len = VU_HDR_SIZE },
		{ .iov_base = &msg->payload, .iov_len = msg->size },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	size_t len = VU_HDR_SIZE + msg->size;
	ssize_t n;

	msg->flags = (msg->flags & ~0x3u) | VU_FLAG_VERSION;
	do {
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	/*
	 * Messages are small and a frontend reads each reply before its next
	 * request: a socket buffer too full to take one whole is a peer that
	 * stopped reading, dropped rather than waited for.
	 */
	if (n != (ssize_t)len) {
		log_error("vhost-user: cannot send %s: %s", vu_request_name(msg->request),
			  n < 0 ? strerror(errno) : "short write");
		return false;
	}
	return true;
}

const char *vu_request_name(uint32_t request)
{
	static const char *const names[] = {
		[VU_GET_FEATURES] = "GET_FEATURES",
		[VU_SET_FEATURES] = "SET_FEATURES",
		[VU_SET_OWNER] = "SET_OWNER",
		[VU_RESET_OWNER] = "RESET_OWNER",
		[VU_SET_MEM_TABLE] = "SET_MEM_TABLE",
		[VU_SET_LOG_BASE] = "SET_LOG_BASE",
		[VU_SET_LOG_FD] = "SET_LOG_FD",
		[VU_SET_VRING_NUM] = "SET_VRING_NUM",
		[VU_SET_VRING_ADDR] = "SET_VRING_ADDR",
		[VU_SET_VRING_BASE] = "SET_VRING_BASE",
		[VU_GET_VRING_BASE] = "GET_VRING_BASE",
		[VU_SET_VRING_KICK] = "SET_VRING_KICK",
		[VU_SET_VRING_CALL] = "SET_VRING_CALL",
		[VU_SET_VRING_ERR] = "SET_VRING_ERR",
		[VU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
		[VU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
		[VU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
		[VU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
		[VU_SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD",
		[VU_GET_CONFIG] = "GET_CONFIG",
		[VU_SET_CONFIG] = "SET_CONFIG",
		[VU_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
	};

	if (request < sizeof(names) / sizeof(names[0]) && names[request])
		return names[request];
	return "unknown request";
}
