// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmc-hostile-frontend: the vhost-user frontend's side of the protocol: messages with fds,
 * REPLY_ACK requests, the handshake.
 */
#include "hostile.h"

/* A connection to the Unix socket @path (the daemon's vhost-user or a channel's). */
int unix_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fail("connecting to %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

bool send_msg(int sock, uint32_t request, uint32_t flags, const void *payload,
	      uint32_t size, const int *fds, unsigned int nfds)
{
	struct vu_msg msg = { .request = request, .flags = flags | VU_FLAG_VERSION, .size = size };
	char control[CMSG_SPACE(VU_MAX_FDS * sizeof(int))] = { 0 };
	struct iovec iov[2] = {
		{ .iov_base = &msg, .iov_len = VU_HDR_SIZE },
		{ .iov_base = &msg.payload, .iov_len = size },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	struct cmsghdr *cmsg;

	memcpy(&msg.payload, payload, size);
	if (nfds) {
		mh.msg_control = control;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cmsg = CMSG_FIRSTHDR(&mh);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));
	}
	if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)(VU_HDR_SIZE + size))
		return fail("sending request %u: %s", request, strerror(errno));
	return true;
}

static bool recv_all(int sock, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n;

		if (!wait_fd(sock, POLLIN, TIMEOUT_MS))
			return fail("no reply within %d ms", TIMEOUT_MS);
		n = read(sock, (uint8_t *)buf + got, len - got);
		if (n <= 0)
			return fail("the daemon closed the connection");
		got += (size_t)n;
	}
	return true;
}

/* Reads a reply's header and payload; false if the daemon closed or timed out. */
bool recv_reply(int sock, struct vu_msg *msg)
{
	return recv_all(sock, msg, VU_HDR_SIZE) &&
	       (msg->size <= VU_MAX_PAYLOAD || fail("a reply of %u bytes", msg->size)) &&
	       recv_all(sock, &msg->payload, msg->size);
}

/* A request with REPLY_ACK: its status (0 success), or -1 if no reply. */
int request(int sock, uint32_t req, const void *payload, uint32_t size,
	    const int *fds, unsigned int nfds)
{
	struct vu_msg reply;

	if (!send_msg(sock, req, VU_FLAG_NEED_REPLY, payload, size, fds, nfds) ||
	    !recv_reply(sock, &reply))
		return -1;
	if (reply.request != req || reply.size != sizeof(uint64_t))
		return fail("request %u: odd reply %u of %u bytes", req, reply.request,
			    reply.size), -1;
	return reply.payload.u64 ? 1 : 0;
}

static bool request_ok(int sock, uint32_t req, const void *payload, uint32_t size,
		       const int *fds, unsigned int nfds)
{
	int r = request(sock, req, payload, size, fds, nfds);

	if (r > 0)
		return fail("request %u refused", req);
	return r == 0;
}

static bool get_u64(int sock, uint32_t req, uint64_t *value)
{
	struct vu_msg reply;

	if (!send_msg(sock, req, 0, NULL, 0, NULL, 0) || !recv_reply(sock, &reply))
		return false;
	*value = reply.payload.u64;
	return true;
}

/* The daemon answers a request that has a reply of its own. */
bool answers(int sock)
{
	uint64_t queues = 0;

	if (!get_u64(sock, VU_GET_QUEUE_NUM, &queues))
		return false;
	return queues == VMCHANNEL_NUM_VQS || fail("GET_QUEUE_NUM answered %llu",
						   (unsigned long long)queues);
}

bool vring_state(int sock, uint32_t req, unsigned int index, unsigned int num)
{
	struct vu_vring_state s = { .index = index, .num = num };

	return request_ok(sock, req, &s, sizeof(s), NULL, 0);
}

int vring_fd_request(int sock, uint32_t req, unsigned int index, int fd)
{
	uint64_t arg = index | (fd < 0 ? VU_VRING_NOFD : 0);

	return request(sock, req, &arg, sizeof(arg), &fd, fd < 0 ? 0 : 1);
}

int mem_table(int sock, int fd, uint64_t size)
{
	struct vu_mem_table t = {
		.nregions = 1,
		.regions[0] = { .gpa = 0, .size = size, .uaddr = RAM_UADDR },
	};

	return request(sock, VU_SET_MEM_TABLE, &t, 8 + sizeof(t.regions[0]), &fd, 1);
}

bool set_vring_addr(int sock, unsigned int q, uint64_t desc, uint64_t avail,
		    uint64_t used)
{
	struct vu_vring_addr a = {
		.index = q, .desc = RAM_UADDR + desc, .avail = RAM_UADDR + avail,
		.used = RAM_UADDR + used,
	};

	return request_ok(sock, VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

bool vu_handshake(struct guest *g, const struct daemon *d)
{
	uint64_t features, protocol;

	if (d->frontend_fd >= 0) {
		g->sock = d->frontend_fd;	/* a socketpair's one connection */
		((struct daemon *)d)->frontend_fd = -1;
	} else {
		g->sock = unix_connect(d->sock_path);
	}
	if (g->sock < 0 || !get_u64(g->sock, VU_GET_FEATURES, &features))
		return false;
	features &= (1ULL << 32) | (1ULL << VU_F_PROTOCOL_FEATURES);
	if (!send_msg(g->sock, VU_SET_FEATURES, 0, &features, sizeof(features), NULL, 0) ||
	    !get_u64(g->sock, VU_GET_PROTOCOL_FEATURES, &protocol))
		return false;
	if (!(protocol & (1ULL << VU_PROTOCOL_F_REPLY_ACK)))
		return fail("no REPLY_ACK offered");
	protocol &= (1ULL << VU_PROTOCOL_F_REPLY_ACK) | (1ULL << VU_PROTOCOL_F_CONFIG);
	return send_msg(g->sock, VU_SET_PROTOCOL_FEATURES, 0, &protocol, sizeof(protocol),
			NULL, 0) &&
	       request_ok(g->sock, VU_SET_OWNER, NULL, 0, NULL, 0);
}
