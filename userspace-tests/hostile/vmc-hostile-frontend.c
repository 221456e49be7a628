// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmc-hostile-frontend: plays a hostile vhost-user frontend (and, owning the
 * rings, a hostile guest) against a real vmchanneld, with real memfds and
 * eventfds, and checks after each attack that the daemon is alive and still
 * serves a well-behaved frontend correctly: a byte round trip through the
 * rings and a host socket.  No guest is booted.
 *
 *   vmc-hostile-frontend --daemon PATH [CASE...]    (no CASE: all of them)
 *
 * Each case starts its own vmchanneld (channel "t", --log-level info, its
 * log in the work directory, announced as the journal's stream).  Exit status: 0 when every case passed.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ring.h>
#include <linux/vmchannel.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vhost_user.h"

#define TIMEOUT_MS	5000
#define RAM_SIZE	(4u << 20)
#define RAM_UADDR	0x7f0000000000ULL
#define RING_NUM	256
#define BUF_SIZE	4096
/* Guest physical layout: each ring's parts, then the buffers. */
#define DESC_GPA(q)	(0x00000u + (q) * 0x10000u)
#define AVAIL_GPA(q)	(0x08000u + (q) * 0x10000u)
#define USED_GPA(q)	(0x0c000u + (q) * 0x10000u)
#define BUFS_GPA	0x40000u
#define HDR_SIZE	sizeof(struct vmchannel_hdr)

static const char *daemon_path;
static char work_dir[] = "/tmp/vmc-hostile.XXXXXX";
static char failure[512];

/* How the daemon gets its vhost-user frontend. */
enum frontend_socket {
	FRONTEND_PATH,		/* --socket-path: it listens itself */
	FRONTEND_FD_LISTENING,	/* --fd: a listening socket made for it (systemd, libvirt) */
	FRONTEND_FD_CONNECTED,	/* --fd: one end of a socketpair, the only connection */
};

struct daemon {
	pid_t pid;
	char sock_path[100], ep_path[100], log_path[100], config_path[100];
	int frontend_fd;	/* FRONTEND_FD_CONNECTED: our end until a handshake takes it */
};

/* A guest's view of one split ring, in our RAM. */
struct ring {
	unsigned int num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx, used_seen;
	int kick, call;
};

struct guest {
	int memfd;
	uint8_t *ram;
	struct ring rings[VMCHANNEL_NUM_VQS];
	uint32_t channel_id;
	int sock;			/* the vhost-user connection */
};

static bool fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool fail(const char *fmt, ...)
{
	va_list ap;

	if (failure[0])
		return false;		/* the first reason is the one that counts */
	va_start(ap, fmt);
	vsnprintf(failure, sizeof(failure), fmt, ap);
	va_end(ap);
	return false;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for @events on @fd for up to @ms; true if they came. */
static bool wait_fd(int fd, short events, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	return poll(&pfd, 1, ms) == 1;
}

/* ---- the daemon ---- */

static bool write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	bool ok = f && fputs(text, f) >= 0;

	return f && !fclose(f) && ok;
}

/* A listening Unix socket at @path, made as a service manager would. */
static int unix_listen(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 4) < 0) {
		fail("listening on %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * The daemon's end of its frontend socket for --fd (-1 for --socket-path);
 * for a socketpair, our end goes to d->frontend_fd.
 */
static int frontend_socket_for(struct daemon *d, enum frontend_socket how)
{
	int sv[2];

	d->frontend_fd = -1;
	if (how == FRONTEND_PATH)
		return -1;
	if (how == FRONTEND_FD_LISTENING)
		return unix_listen(d->sock_path);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		fail("socketpair: %s", strerror(errno));
		return -1;
	}
	d->frontend_fd = sv[0];
	return sv[1];
}

static bool daemon_start(struct daemon *d, const char *name, enum frontend_socket how)
{
	char notify[16], fd_arg[16];
	int pipefd[2], daemon_fd;

	snprintf(d->sock_path, sizeof(d->sock_path), "%s/%s.vhost", work_dir, name);
	snprintf(d->ep_path, sizeof(d->ep_path), "%s/t.sock", work_dir);
	snprintf(d->log_path, sizeof(d->log_path), "%s/%s.log", work_dir, name);
	snprintf(d->config_path, sizeof(d->config_path), "%s/%s.conf", work_dir, name);
	/* Channel t from the file: reload-after-rename reads it again. */
	if (!write_file(d->config_path, "channel t group=root\n"))
		return fail("%s: %s", d->config_path, strerror(errno));
	daemon_fd = frontend_socket_for(d, how);
	if (how != FRONTEND_PATH && daemon_fd < 0)
		return false;
	if (pipe(pipefd) < 0)
		return fail("pipe: %s", strerror(errno));
	d->pid = fork();
	if (d->pid == 0) {
		int log = open(d->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		char stream[64];
		struct stat st;

		/* Its log as systemd's journal stream: lines carry priorities. */
		if (fstat(log, &st) == 0) {
			snprintf(stream, sizeof(stream), "%llu:%llu",
				 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
			setenv("JOURNAL_STREAM", stream, 1);
		}
		close(pipefd[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* no daemon outlives a killed test */
		dup2(log, STDERR_FILENO);
		snprintf(notify, sizeof(notify), "%d", pipefd[1]);
		snprintf(fd_arg, sizeof(fd_arg), "%d", daemon_fd);
		if (daemon_fd >= 0)
			fcntl(daemon_fd, F_SETFD, 0);	/* inherited, as from systemd */
		execl(daemon_path, daemon_path, daemon_fd < 0 ? "--socket-path" : "--fd",
		      daemon_fd < 0 ? d->sock_path : fd_arg, "--endpoint-dir",
		      work_dir, "--notify-fd", notify, "--log-level", "info",
		      "--config", d->config_path, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	if (daemon_fd >= 0)
		close(daemon_fd);
	if (d->pid < 0 || !wait_fd(pipefd[0], POLLIN, TIMEOUT_MS) ||
	    read(pipefd[0], notify, sizeof(notify)) <= 0) {
		close(pipefd[0]);
		return fail("%s did not become ready", daemon_path);
	}
	/* Settled once it closed the notify fd (fd-limit counts its descriptors). */
	if (!wait_fd(pipefd[0], POLLIN, TIMEOUT_MS) || read(pipefd[0], notify, sizeof(notify))) {
		close(pipefd[0]);
		return fail("%s kept its notify fd open", daemon_path);
	}
	close(pipefd[0]);
	return true;
}

/* Whether the daemon still runs; reaps it (and says how it died) if not. */
static bool daemon_alive(struct daemon *d)
{
	int status;

	if (waitpid(d->pid, &status, WNOHANG) == 0)
		return true;
	if (WIFSIGNALED(status))
		return fail("vmchanneld died of signal %d", WTERMSIG(status));
	return fail("vmchanneld exited with status %d", WEXITSTATUS(status));
}

/* SIGTERM; true if it exits 0 within @ms. */
static bool daemon_stop(struct daemon *d, int ms)
{
	int64_t deadline = now_ms() + ms;
	int status;

	kill(d->pid, SIGTERM);
	while (waitpid(d->pid, &status, WNOHANG) == 0) {
		if (now_ms() > deadline) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &status, 0);
			return fail("vmchanneld ignored SIGTERM for %d ms", ms);
		}
		poll(NULL, 0, 10);	/* a child's exit has no descriptor to wait on */
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return fail("vmchanneld ended with status %#x on SIGTERM", status);
	return true;
}

/* User plus system CPU time of @pid, in clock ticks. */
static unsigned long long cpu_ticks(pid_t pid)
{
	unsigned long long utime, stime;
	char path[64], buf[1024], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	/* After "comm)": state and 11 more fields, then utime and stime. */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &utime, &stime) != 2)
		return 0;
	return utime + stime;
}

static unsigned int log_lines(const struct daemon *d)
{
	unsigned int n = 0;
	FILE *f = fopen(d->log_path, "r");
	int c;

	while (f && (c = fgetc(f)) != EOF)
		n += c == '\n';
	if (f)
		fclose(f);
	return n;
}

/* Waits until the daemon's log has a line containing @text. */
static bool log_wait(const struct daemon *d, const char *text)
{
	int64_t deadline = now_ms() + TIMEOUT_MS;
	char line[1024];
	FILE *f;

	while (now_ms() < deadline) {
		f = fopen(d->log_path, "r");
		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, text)) {
				fclose(f);
				return true;
			}
		if (f)
			fclose(f);
		poll(NULL, 0, 20);	/* a log file has no event to wait on */
	}
	return fail("vmchanneld never logged \"%s\"", text);
}

/* ---- vhost-user ---- */

/* A connection to the Unix socket @path (the daemon's vhost-user or a channel's). */
static int unix_connect(const char *path)
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

static bool send_msg(int sock, uint32_t request, uint32_t flags, const void *payload,
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
static bool recv_reply(int sock, struct vu_msg *msg)
{
	return recv_all(sock, msg, VU_HDR_SIZE) &&
	       (msg->size <= VU_MAX_PAYLOAD || fail("a reply of %u bytes", msg->size)) &&
	       recv_all(sock, &msg->payload, msg->size);
}

/* A request with REPLY_ACK: its status (0 success), or -1 if no reply. */
static int request(int sock, uint32_t req, const void *payload, uint32_t size,
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
static bool answers(int sock)
{
	uint64_t queues = 0;

	if (!get_u64(sock, VU_GET_QUEUE_NUM, &queues))
		return false;
	return queues == VMCHANNEL_NUM_VQS || fail("GET_QUEUE_NUM answered %llu",
						   (unsigned long long)queues);
}

static bool vring_state(int sock, uint32_t req, unsigned int index, unsigned int num)
{
	struct vu_vring_state s = { .index = index, .num = num };

	return request_ok(sock, req, &s, sizeof(s), NULL, 0);
}

static int vring_fd_request(int sock, uint32_t req, unsigned int index, int fd)
{
	uint64_t arg = index | (fd < 0 ? VU_VRING_NOFD : 0);

	return request(sock, req, &arg, sizeof(arg), &fd, fd < 0 ? 0 : 1);
}

/* ---- guest memory and rings ---- */

static bool guest_mem_new(struct guest *g, bool sealed)
{
	memset(g, 0, sizeof(*g));
	g->sock = -1;
	g->memfd = memfd_create("vmc-hostile-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (g->memfd < 0 || ftruncate(g->memfd, RAM_SIZE) < 0)
		return fail("memfd: %s", strerror(errno));
	if (sealed && fcntl(g->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		return fail("sealing: %s", strerror(errno));
	g->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g->memfd, 0);
	if (g->ram == MAP_FAILED)
		return fail("mmap: %s", strerror(errno));
	return true;
}

static void guest_free(struct guest *g)
{
	unsigned int q;

	if (g->sock >= 0)
		close(g->sock);
	for (q = 0; q < VMCHANNEL_NUM_VQS; q++) {
		if (g->rings[q].kick > 0)
			close(g->rings[q].kick);
		if (g->rings[q].call > 0)
			close(g->rings[q].call);
	}
	if (g->ram && g->ram != MAP_FAILED)
		munmap(g->ram, RAM_SIZE);
	if (g->memfd > 0)
		close(g->memfd);
	memset(g, 0, sizeof(*g));
}

static int mem_table(int sock, int fd, uint64_t size)
{
	struct vu_mem_table t = {
		.nregions = 1,
		.regions[0] = { .gpa = 0, .size = size, .uaddr = RAM_UADDR },
	};

	return request(sock, VU_SET_MEM_TABLE, &t, 8 + sizeof(t.regions[0]), &fd, 1);
}

static bool set_vring_addr(int sock, unsigned int q, uint64_t desc, uint64_t avail,
			   uint64_t used)
{
	struct vu_vring_addr a = {
		.index = q, .desc = RAM_UADDR + desc, .avail = RAM_UADDR + avail,
		.used = RAM_UADDR + used,
	};

	return request_ok(sock, VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

static bool vu_handshake(struct guest *g, const struct daemon *d)
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

/* Sets ring @q up at its place in RAM and starts it. */
static bool ring_start(struct guest *g, unsigned int q, unsigned int num)
{
	struct ring *r = &g->rings[q];

	r->num = num;
	r->desc = (struct vring_desc *)(g->ram + DESC_GPA(q));
	r->avail = (struct vring_avail *)(g->ram + AVAIL_GPA(q));
	r->used = (struct vring_used *)(g->ram + USED_GPA(q));
	r->avail_idx = r->used_seen = 0;
	if (!r->kick)
		r->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!r->call)
		r->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return vring_state(g->sock, VU_SET_VRING_NUM, q, num) &&
	       vring_state(g->sock, VU_SET_VRING_BASE, q, 0) &&
	       set_vring_addr(g->sock, q, DESC_GPA(q), AVAIL_GPA(q), USED_GPA(q)) &&
	       vring_fd_request(g->sock, VU_SET_VRING_CALL, q, r->call) == 0 &&
	       vring_fd_request(g->sock, VU_SET_VRING_KICK, q, r->kick) == 0 &&
	       vring_state(g->sock, VU_SET_VRING_ENABLE, q, 1);
}

static bool read_channel_id(struct guest *g)
{
	struct vu_config cfg = { .offset = 0, .size = sizeof(struct vmchannel_config) };
	struct vmchannel_config c;
	struct vu_msg reply;

	if (!send_msg(g->sock, VU_GET_CONFIG, 0, &cfg, 12 + cfg.size, NULL, 0) ||
	    !recv_reply(g->sock, &reply))
		return false;
	memcpy(&c, reply.payload.config.region, sizeof(c));
	if (le16toh(c.num_channels) != 1 || strcmp((char *)c.name, "t"))
		return fail("the configuration shows %u channels, the first \"%.63s\"",
			    le16toh(c.num_channels), c.name);
	g->channel_id = le32toh(c.id);
	return true;
}

/* A running device: memory, both rings, the channel id. */
static bool guest_up(struct guest *g, const struct daemon *d, bool sealed)
{
	return guest_mem_new(g, sealed) && vu_handshake(g, d) &&
	       mem_table(g->sock, g->memfd, RAM_SIZE) == 0 &&
	       ring_start(g, VMCHANNEL_VQ_RX, RING_NUM) && ring_start(g, VMCHANNEL_VQ_TX, RING_NUM) &&
	       read_channel_id(g);
}

static void kick(struct ring *r)
{
	eventfd_write(r->kick, 1);
}

/* Makes descriptor @i (of @len bytes at @gpa, @flags) available. */
static void ring_post(struct ring *r, uint16_t i, uint64_t gpa, uint32_t len, uint16_t flags,
		      uint16_t next)
{
	r->desc[i].addr = htole64(gpa);
	r->desc[i].len = htole32(len);
	r->desc[i].flags = htole16(flags);
	r->desc[i].next = htole16(next);
}

static void ring_publish(struct ring *r, uint16_t head)
{
	r->avail->ring[r->avail_idx % r->num] = htole16(head);
	r->avail_idx++;
	__atomic_store_n(&r->avail->idx, htole16(r->avail_idx), __ATOMIC_RELEASE);
}

static uint16_t used_idx(const struct ring *r)
{
	return le16toh(__atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE));
}

/* Waits until the device used everything posted on @r. */
static bool ring_drained(struct ring *r)
{
	int64_t deadline = now_ms() + TIMEOUT_MS;
	eventfd_t v;

	while (used_idx(r) != r->avail_idx) {
		if (!wait_fd(r->call, POLLIN, (int)(deadline - now_ms())))
			return fail("the device did not use %u buffers", r->avail_idx - used_idx(r));
		eventfd_read(r->call, &v);
	}
	return true;
}

/* Buffer slot @k of ring @q in RAM. */
static uint64_t buf_gpa(unsigned int q, unsigned int k)
{
	return BUFS_GPA + (q * RING_NUM + k) * BUF_SIZE;
}

/* Sends one txq message; slots are reused once the device used them. */
static bool tx_send(struct guest *g, uint16_t type, uint32_t session, const void *data,
		    uint32_t len)
{
	struct ring *r = &g->rings[VMCHANNEL_VQ_TX];
	uint16_t slot = r->num ? r->avail_idx % r->num : 0;
	struct vmchannel_hdr hdr = {
		.channel_id = htole32(g->channel_id), .type = htole16(type),
		.len = htole32(len), .session = htole32(session), .buf_alloc = htole32(65536),
	};

	if (!r->num)
		return fail("txq is not set up");
	if ((uint16_t)(r->avail_idx - used_idx(r)) == r->num && !ring_drained(r))
		return false;
	memcpy(g->ram + buf_gpa(VMCHANNEL_VQ_TX, slot), &hdr, sizeof(hdr));
	memcpy(g->ram + buf_gpa(VMCHANNEL_VQ_TX, slot) + HDR_SIZE, data, len);
	ring_post(r, slot, buf_gpa(VMCHANNEL_VQ_TX, slot), HDR_SIZE + len, 0, 0);
	ring_publish(r, slot);
	return true;
}

/* Posts @n receive buffers. */
static void rx_post(struct guest *g, unsigned int n)
{
	struct ring *r = &g->rings[VMCHANNEL_VQ_RX];

	while (r->num && n--) {
		uint16_t slot = r->avail_idx % r->num;

		ring_post(r, slot, buf_gpa(VMCHANNEL_VQ_RX, slot), BUF_SIZE, VRING_DESC_F_WRITE, 0);
		ring_publish(r, slot);
	}
	kick(r);
}

/* Waits for a DATA message on rxq carrying @want. */
static bool rx_expect_data(struct guest *g, const char *want)
{
	struct ring *r = &g->rings[VMCHANNEL_VQ_RX];
	int64_t deadline = now_ms() + TIMEOUT_MS;
	eventfd_t v;

	for (;;) {
		while (r->used_seen != used_idx(r)) {
			struct vring_used_elem *u = &r->used->ring[r->used_seen++ % r->num];
			const uint8_t *buf = g->ram + buf_gpa(VMCHANNEL_VQ_RX, le32toh(u->id));
			struct vmchannel_hdr hdr;

			memcpy(&hdr, buf, sizeof(hdr));
			if (le16toh(hdr.type) == VMCHANNEL_MSG_DATA &&
			    le32toh(hdr.len) == strlen(want) &&
			    !memcmp(buf + HDR_SIZE, want, strlen(want)))
				return true;
		}
		if (!wait_fd(r->call, POLLIN, (int)(deadline - now_ms())))
			return fail("no DATA \"%s\" on rxq", want);
		eventfd_read(r->call, &v);
	}
}

/*
 * The proof that the daemon still works: a fresh frontend sets the device up
 * and moves bytes both ways between the rings and channel t's host socket.
 */
static bool round_trip(const struct daemon *d)
{
	static uint32_t session;
	struct guest g = { 0 };
	char buf[8] = { 0 };
	bool ok;
	int host;

	if (!daemon_alive((struct daemon *)d) || !guest_up(&g, d, true)) {
		guest_free(&g);
		return false;
	}
	rx_post(&g, 16);
	ok = tx_send(&g, VMCHANNEL_MSG_OPEN, ++session, NULL, 0);
	kick(&g.rings[VMCHANNEL_VQ_TX]);
	host = ok ? unix_connect(d->ep_path) : -1;
	ok = host >= 0 && write(host, "ping", 4) == 4 && rx_expect_data(&g, "ping") &&
	     tx_send(&g, VMCHANNEL_MSG_DATA, session, "pong", 4);
	kick(&g.rings[VMCHANNEL_VQ_TX]);
	if (ok && (!wait_fd(host, POLLIN, TIMEOUT_MS) || read(host, buf, 4) != 4 ||
		   memcmp(buf, "pong", 4)))
		ok = fail("the host end got \"%s\", not \"pong\"", buf);
	if (host >= 0)
		close(host);
	guest_free(&g);
	return ok;
}

/* Waits until the daemon closes @sock (it dropped the frontend). */
static bool dropped(int sock)
{
	char c;

	if (!wait_fd(sock, POLLIN, TIMEOUT_MS) || read(sock, &c, 1) > 0)
		return fail("the daemon kept the connection");
	return true;
}

/* ---- the cases ---- */

/*
 * A started ring must not grow past what was checked: size 1 with the used
 * ring at the very end of memory, then 32768.
 */
static bool case_ring_resize(struct daemon *d)
{
	struct guest g = { 0 };
	struct ring *r;
	bool ok;

	ok = guest_mem_new(&g, true) && vu_handshake(&g, d) &&
	     mem_table(g.sock, g.memfd, RAM_SIZE) == 0 &&
	     vring_state(g.sock, VU_SET_VRING_NUM, VMCHANNEL_VQ_TX, 1);
	r = &g.rings[VMCHANNEL_VQ_TX];
	r->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	/* A used ring of one entry and its avail_event (14 bytes) ends memory. */
	ok = ok && set_vring_addr(g.sock, VMCHANNEL_VQ_TX, 0, 0x1000, RAM_SIZE - 16) &&
	     vring_fd_request(g.sock, VU_SET_VRING_KICK, VMCHANNEL_VQ_TX, r->kick) == 0;
	if (ok) {
		struct vu_vring_state s = { .index = VMCHANNEL_VQ_TX, .num = 32768 };

		if (request(g.sock, VU_SET_VRING_NUM, &s, sizeof(s), NULL, 0) != 1)
			ok = fail("SET_VRING_NUM 32768 on a started ring was accepted");
	}
	/* And resizing a stopped ring beyond memory is refused too. */
	if (ok) {
		struct vu_vring_state s = { .index = VMCHANNEL_VQ_TX, .num = 0 };
		struct vu_msg reply;

		ok = send_msg(g.sock, VU_GET_VRING_BASE, 0, &s, sizeof(s), NULL, 0) &&
		     recv_reply(g.sock, &reply);
		s.num = 32768;
		if (ok && request(g.sock, VU_SET_VRING_NUM, &s, sizeof(s), NULL, 0) != 1)
			ok = fail("SET_VRING_NUM 32768 beyond guest memory was accepted");
	}
	guest_free(&g);
	return ok && round_trip(d);
}

/* A failed SET_MEM_TABLE keeps the old table, and the rings keep working. */
static bool case_failed_mem_table(struct daemon *d)
{
	struct guest g = { 0 };
	int small = memfd_create("small", MFD_CLOEXEC), pipefd[2] = { -1, -1 };
	bool ok = small >= 0 && ftruncate(small, 4096) == 0 && pipe(pipefd) == 0;
	char buf[8] = { 0 };
	int host = -1;

	ok = ok && guest_up(&g, d, true);
	if (ok)
		rx_post(&g, 16);
	ok = ok && tx_send(&g, VMCHANNEL_MSG_OPEN, 7, NULL, 0);
	kick(&g.rings[VMCHANNEL_VQ_TX]);
	ok = ok && ring_drained(&g.rings[VMCHANNEL_VQ_TX]);
	/* Region larger than its file, then a pipe: both refused. */
	if (ok && mem_table(g.sock, small, RAM_SIZE) != 1)
		ok = fail("a memory table larger than its file was accepted");
	if (ok && mem_table(g.sock, pipefd[0], RAM_SIZE) != 1)
		ok = fail("a pipe as guest memory was accepted");
	/* The old table still holds: the rings move bytes. */
	host = ok ? unix_connect(d->ep_path) : -1;
	ok = ok && host >= 0 && write(host, "ping", 4) == 4 && rx_expect_data(&g, "ping") &&
	     tx_send(&g, VMCHANNEL_MSG_DATA, 7, "pong", 4);
	kick(&g.rings[VMCHANNEL_VQ_TX]);
	if (ok && (!wait_fd(host, POLLIN, TIMEOUT_MS) || read(host, buf, 4) != 4))
		ok = fail("no bytes after a failed SET_MEM_TABLE");
	if (host >= 0)
		close(host);
	close(small);
	close(pipefd[0]);
	close(pipefd[1]);
	guest_free(&g);
	return ok && round_trip(d);
}

/* CPU ticks the daemon spends during @ms of waiting (nothing should wake it). */
static unsigned long long idle_cost(const struct daemon *d, int ms)
{
	unsigned long long before = cpu_ticks(d->pid);

	poll(NULL, 0, ms);	/* measuring time spent: the one wait that is a sleep */
	return cpu_ticks(d->pid) - before;
}

/*
 * Descriptors that are not eventfds, or replaced ones: a kick socket whose
 * peer hung up, a call pipe that is full, an old kick fd still signalled
 * after its replacement (a blocking eventfd).
 */
static bool case_bad_fds(struct daemon *d)
{
	struct guest g = { 0 };
	int sv[2] = { -1, -1 }, pipefd[2] = { -1, -1 }, old_kick, blocking;
	struct ring *tx;
	char fill[4096] = { 0 };
	bool ok = guest_up(&g, d, true);

	tx = &g.rings[VMCHANNEL_VQ_TX];
	/* The old kick stays open here; the daemon gets a blocking eventfd. */
	old_kick = tx->kick;
	blocking = eventfd(0, EFD_CLOEXEC);
	ok = ok && vring_fd_request(g.sock, VU_SET_VRING_KICK, VMCHANNEL_VQ_TX, blocking) == 0;
	eventfd_write(old_kick, 1);
	ok = ok && answers(g.sock);
	if (ok && idle_cost(d, 300) > 3)
		ok = fail("the replaced kick fd keeps the daemon busy");
	/* A call pipe that is full: the daemon must not block writing it. */
	ok = ok && pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) == 0;
	while (ok && write(pipefd[1], fill, sizeof(fill)) > 0)
		;
	/* Full, and blocking again: the daemon must make it non-blocking itself. */
	ok = ok && fcntl(pipefd[1], F_SETFL, 0) == 0;
	ok = ok && vring_fd_request(g.sock, VU_SET_VRING_CALL, VMCHANNEL_VQ_TX, pipefd[1]) == 0;
	tx->kick = blocking;
	ok = ok && tx_send(&g, VMCHANNEL_MSG_OPEN, 3, NULL, 0);
	kick(tx);
	ok = ok && answers(g.sock) && vring_state(g.sock, VU_SET_VRING_ENABLE, VMCHANNEL_VQ_TX, 1);
	/* A kick socket whose peer hung up: readable for ever, no eventfd. */
	ok = ok && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0;
	close(sv[1]);
	ok = ok && vring_fd_request(g.sock, VU_SET_VRING_KICK, VMCHANNEL_VQ_RX, sv[0]) >= 0;
	if (ok && idle_cost(d, 300) > 3)
		ok = fail("a hung-up kick socket keeps the daemon busy");
	/* Memory that is not a file: refused. */
	if (ok && mem_table(g.sock, pipefd[0], RAM_SIZE) != 1)
		ok = fail("a pipe as guest memory was accepted");
	close(old_kick);
	close(sv[0]);
	close(pipefd[0]);
	close(pipefd[1]);
	guest_free(&g);
	return ok && round_trip(d);
}

/* A header, then nothing: dropped after the message timeout, even at SIGTERM. */
static bool case_truncated(struct daemon *d)
{
	int sock = unix_connect(d->sock_path);
	bool ok = sock >= 0;

	/* A SET_FEATURES header announcing 8 bytes, without them. */
	if (ok) {
		struct vu_msg hdr = { .request = VU_SET_FEATURES, .flags = VU_FLAG_VERSION,
				      .size = 8 };

		ok = write(sock, &hdr, VU_HDR_SIZE) == VU_HDR_SIZE && dropped(sock);
	}
	if (sock >= 0)
		close(sock);
	ok = ok && round_trip(d);
	/* Half a header, then SIGTERM: the daemon still exits, and cleanly. */
	sock = ok ? unix_connect(d->sock_path) : -1;
	ok = ok && sock >= 0 && write(sock, "\x01\0\0\0\x01", 5) == 5;
	ok = ok && daemon_stop(d, 3000);
	if (sock >= 0)
		close(sock);
	d->pid = 0;
	return ok;
}

/*
 * The guest sends DATA whose payload the frontend then cuts off its memory
 * file: writev() from it fails with EFAULT, a copy raises SIGBUS and reads
 * zeros.  The frontend is dropped; the host program must get none of
 * those zeros as data, only the end of the stream.
 */
static bool shrunk_data_not_delivered(const struct daemon *d)
{
	static const char payload[64] = "guest bytes that the frontend cut off";
	struct guest g = { 0 };
	bool ok = guest_up(&g, d, false);
	char got[256];
	ssize_t n = 0;
	size_t total = 0;
	int host = -1;

	rx_post(&g, 16);
	ok = ok && tx_send(&g, VMCHANNEL_MSG_OPEN, 7, NULL, 0);
	kick(&g.rings[VMCHANNEL_VQ_TX]);
	host = ok ? unix_connect(d->ep_path) : -1;
	ok = ok && host >= 0 && write(host, "ping", 4) == 4 && rx_expect_data(&g, "ping");
	/*
	 * Its header ends the last page kept (an rxq slot never posted), its
	 * payload starts the first page cut off: txq buffers.  Written while
	 * there, cut off before the kick.
	 */
	if (ok) {
		struct ring *r = &g.rings[VMCHANNEL_VQ_TX];
		uint64_t cut = buf_gpa(VMCHANNEL_VQ_TX, 0);
		struct vmchannel_hdr hdr = {
			.channel_id = htole32(g.channel_id), .type = htole16(VMCHANNEL_MSG_DATA),
			.len = htole32(sizeof(payload)), .session = htole32(7),
			.buf_alloc = htole32(65536),
		};

		memcpy(g.ram + cut - HDR_SIZE, &hdr, sizeof(hdr));
		memcpy(g.ram + cut, payload, sizeof(payload));
		ring_post(r, r->avail_idx % r->num, cut - HDR_SIZE, HDR_SIZE + sizeof(payload),
			  0, 0);
		if (ftruncate(g.memfd, (off_t)cut) < 0)
			ok = fail("ftruncate: %s", strerror(errno));
		ring_publish(r, r->avail_idx % r->num);
	}
	kick(&g.rings[VMCHANNEL_VQ_TX]);
	ok = ok && dropped(g.sock) && log_wait(d, "guest memory faulted");
	/* The frontend's end ends the host connection: read to its end. */
	while (ok && wait_fd(host, POLLIN, TIMEOUT_MS) && (n = read(host, got, sizeof(got))) > 0)
		total += (size_t)n;
	if (ok && n != 0)
		ok = fail("the host connection did not end");
	if (ok && total)
		ok = fail("the host program got %zu bytes of a faulted guest buffer", total);
	if (host >= 0)
		close(host);
	guest_free(&g);
	return ok;
}

/* The frontend shrinks guest memory under the daemon: SIGBUS must not kill it. */
static bool case_shrinking_memory(struct daemon *d)
{
	struct guest g = { 0 };
	bool ok = guest_up(&g, d, false);

	ok = ok && tx_send(&g, VMCHANNEL_MSG_OPEN, 5, NULL, 0);
	if (ok && ftruncate(g.memfd, 0) < 0)
		ok = fail("ftruncate: %s", strerror(errno));
	kick(&g.rings[VMCHANNEL_VQ_TX]);
	ok = ok && dropped(g.sock) && log_wait(d, "guest memory faulted");
	guest_free(&g);
	return ok && round_trip(d) && shrunk_data_not_delivered(d) && round_trip(d);
}

/* Replaces the daemon's configuration file by rename and sends SIGHUP. */
static bool reconfigure(const struct daemon *d, const char *text)
{
	char tmp[110];

	snprintf(tmp, sizeof(tmp), "%s.new", d->config_path);
	if (!write_file(tmp, text) || rename(tmp, d->config_path) < 0)
		return fail("replacing %s: %s", d->config_path, strerror(errno));
	return kill(d->pid, SIGHUP) == 0;
}

/*
 * SIGHUP after an editor saved the configuration file as editors do (a new
 * file renamed over the old): the sandboxed daemon reads it, and the group
 * name in it resolves (the sandbox cannot read /etc/group).
 */
static bool case_reload_after_rename(struct daemon *d)
{
	return reconfigure(d, "channel t mode=0660 group=root\n") &&
	       log_wait(d, "reloaded ") && round_trip(d);
}

/*
 * A channel a reload could not add (a file is in its socket's place) is
 * added by the next reload once the obstacle is gone.
 */
static bool case_reload_retries_failed_add(struct daemon *d)
{
	char blocker[128];
	bool ok;

	snprintf(blocker, sizeof(blocker), "%s/late.sock", work_dir);
	ok = write_file(blocker, "not a socket\n") &&
	     reconfigure(d, "channel t group=root\nchannel late\n") &&
	     log_wait(d, "cannot add channel late");
	unlink(blocker);
	return ok && reconfigure(d, "channel t group=root\nchannel late\n# again\n") &&
	       log_wait(d, "channel late added");
}

/* The lowest descriptor number @pid does not use: its next open gets it. */
static int lowest_free_fd(pid_t pid)
{
	char path[64];
	int fd;

	for (fd = 0;; fd++) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
		if (access(path, F_OK) < 0)
			return fd;
	}
}

/*
 * At the open-file limit, a connection waiting on a listening socket must
 * not make the daemon spin (the socket stays readable).  The soft limit is
 * lowered to the daemon's next free descriptor, then restored.  With its
 * descriptor in reserve the daemon closes the connection (@refused); where
 * the free descriptor is below the reserve (fresh daemon: the notify fd's
 * number), the reserve cannot be taken again and the listening socket is
 * paused instead: the connection is served once the limit is back.
 */
static bool at_fd_limit(const struct daemon *d, bool refused)
{
	struct rlimit old, low;
	bool ok = prlimit(d->pid, RLIMIT_NOFILE, NULL, &old) == 0;
	int host = -1;

	low.rlim_cur = (rlim_t)lowest_free_fd(d->pid);
	low.rlim_max = old.rlim_max;
	ok = ok && prlimit(d->pid, RLIMIT_NOFILE, &low, NULL) == 0;
	host = ok ? unix_connect(d->ep_path) : -1;
	ok = ok && host >= 0 && log_wait(d, "Too many open files");
	if (ok && idle_cost(d, 300) > 3)
		ok = fail("a connection it cannot accept keeps the daemon busy");
	ok = ok && (!refused || dropped(host));
	if (prlimit(d->pid, RLIMIT_NOFILE, &old, NULL) < 0)
		ok = fail("restoring the limit: %s", strerror(errno));
	ok = ok && (refused || log_wait(d, "host program connected"));
	if (host >= 0)
		close(host);
	return ok && (refused || log_wait(d, "host connection closed"));
}

static bool case_fd_limit(struct daemon *d)
{
	struct guest g = { 0 };
	bool ok = at_fd_limit(d, false) && guest_up(&g, d, true) && at_fd_limit(d, true);

	guest_free(&g);
	return ok && round_trip(d);
}

/* A chain of 4096 descriptors, all but the last empty: refused, not walked. */
static bool case_long_chain(struct daemon *d)
{
	struct guest g = { 0 };
	struct ring *r = &g.rings[VMCHANNEL_VQ_TX];
	unsigned int i, n = 4096;
	bool ok = guest_up(&g, d, true);

	/* txq again, 4096 entries: its descriptors fill 64 KiB from 0. */
	/* Stopped first (GET_VRING_BASE): only a stopped ring may be resized. */
	if (ok) {
		struct vu_vring_state s = { .index = VMCHANNEL_VQ_TX };
		struct vu_msg reply;

		ok = send_msg(g.sock, VU_GET_VRING_BASE, 0, &s, sizeof(s), NULL, 0) &&
		     recv_reply(g.sock, &reply);
	}
	if (ok) {
		r->desc = (struct vring_desc *)(g.ram + 0x300000);
		for (i = 0; i < n; i++)
			ring_post(r, (uint16_t)i, 0, 0, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
		ring_post(r, (uint16_t)(n - 1), BUFS_GPA, HDR_SIZE, 0, 0);
		r->num = n;
		r->avail_idx = 0;
	}
	ok = ok && vring_state(g.sock, VU_SET_VRING_NUM, VMCHANNEL_VQ_TX, n) &&
	     vring_state(g.sock, VU_SET_VRING_BASE, VMCHANNEL_VQ_TX, 0) &&
	     set_vring_addr(g.sock, VMCHANNEL_VQ_TX, 0x300000, AVAIL_GPA(VMCHANNEL_VQ_TX),
			    0x380000) &&
	     vring_fd_request(g.sock, VU_SET_VRING_KICK, VMCHANNEL_VQ_TX, r->kick) == 0;
	r->used = (struct vring_used *)(g.ram + 0x380000);
	if (ok) {
		ring_publish(r, 0);
		kick(r);
		ok = log_wait(d, "descriptor chain too long");
	}
	if (ok && used_idx(r) != 0)
		ok = fail("a chain of %u descriptors was used", n);
	guest_free(&g);
	return ok && round_trip(d);
}

/*
 * Item 2 of issue 13: a misbehaving guest costs the daemon little.  For
 * GUEST_SECONDS each: no rx buffer while the host end sends; opens and
 * closes 1000 times a second; malformed buffers 1000 times a second.  In
 * each, the daemon's CPU time (from /proc) must stay under MAX_CPU_PERCENT
 * of the time and its log under MAX_LOG_LINES lines.
 */
#define GUEST_SECONDS	2
#define MAX_CPU_PERCENT	5
#define MAX_LOG_LINES	60

/* Runs @step (a batch of 10 bad things) every 10 ms for GUEST_SECONDS. */
static bool paced(struct guest *g, bool (*step)(struct guest *g, unsigned int round))
{
	int64_t end = now_ms() + GUEST_SECONDS * 1000, next = now_ms();
	unsigned int round = 0;

	while (now_ms() < end) {
		if (!step(g, round++))
			return false;
		kick(&g->rings[VMCHANNEL_VQ_TX]);
		next += 10;
		if (next > now_ms())
			poll(NULL, 0, (int)(next - now_ms()));	/* the pace is the point */
	}
	return ring_drained(&g->rings[VMCHANNEL_VQ_TX]);
}

static bool flap_opens(struct guest *g, unsigned int round)
{
	unsigned int i;

	for (i = 0; i < 10; i += 2)
		if (!tx_send(g, VMCHANNEL_MSG_OPEN, 100 + round * 10 + i, NULL, 0) ||
		    !tx_send(g, VMCHANNEL_MSG_CLOSE, 100 + round * 10 + i, NULL, 0))
			return false;
	return true;
}

static bool malformed(struct guest *g, unsigned int round)
{
	struct ring *r = &g->rings[VMCHANNEL_VQ_TX];
	unsigned int i;

	(void)round;
	for (i = 0; i < 10; i++) {
		uint16_t slot = r->avail_idx % r->num;

		if ((uint16_t)(r->avail_idx - used_idx(r)) == r->num && !ring_drained(r))
			return false;
		/* A writable buffer on txq: malformed. */
		ring_post(r, slot, buf_gpa(VMCHANNEL_VQ_TX, slot), 8, VRING_DESC_F_WRITE, 0);
		ring_publish(r, slot);
	}
	return true;
}

struct cost {
	const char *what;
	unsigned long long ticks;
	unsigned int lines;
	int64_t start;
};

static void cost_begin(struct cost *c, const struct daemon *d, const char *what)
{
	c->what = what;
	c->ticks = cpu_ticks(d->pid);
	c->lines = log_lines(d);
	c->start = now_ms();
}

static bool cost_end(const struct cost *c, const struct daemon *d)
{
	double seconds = (double)(now_ms() - c->start) / 1000.0;
	double percent = 100.0 * (double)(cpu_ticks(d->pid) - c->ticks) /
			 (double)sysconf(_SC_CLK_TCK) / seconds;
	unsigned int lines = log_lines(d) - c->lines;

	printf("  %s: vmchanneld used %.1f %% CPU and logged %u lines in %.1f s\n", c->what,
	       percent, lines, seconds);
	if (percent >= MAX_CPU_PERCENT)
		return fail("%s: the daemon used %.1f %% CPU (limit %d %%)", c->what, percent,
			    MAX_CPU_PERCENT);
	if (lines > MAX_LOG_LINES)
		return fail("%s: the daemon logged %u lines (limit %d)", c->what, lines,
			    MAX_LOG_LINES);
	return true;
}

/* Every line of the log has a syslog priority prefix, as the journal wants. */
static bool log_has_priorities(const struct daemon *d)
{
	FILE *f = fopen(d->log_path, "r");
	char line[1024];
	bool ok = f != NULL;

	while (ok && fgets(line, sizeof(line), f))
		if (line[0] != '<' || line[1] < '0' || line[1] > '7' || line[2] != '>')
			ok = fail("a log line without a journal priority: %s", line);
	if (f)
		fclose(f);
	return ok;
}

static bool case_guest_cost(struct daemon *d)
{
	char fill[65536] = { 0 };
	struct guest g = { 0 };
	struct cost c;
	bool ok = guest_up(&g, d, true);
	int host = -1;
	int64_t end;

	/* No rx buffer at all while the host end writes as fast as it can. */
	ok = ok && tx_send(&g, VMCHANNEL_MSG_OPEN, 1, NULL, 0);
	kick(&g.rings[VMCHANNEL_VQ_TX]);
	host = ok ? unix_connect(d->ep_path) : -1;
	ok = ok && host >= 0 && fcntl(host, F_SETFL, O_NONBLOCK) == 0;
	cost_begin(&c, d, "no rx buffers, the host end sending");
	for (end = now_ms() + GUEST_SECONDS * 1000; ok && now_ms() < end;)
		if (write(host, fill, sizeof(fill)) < 0)
			wait_fd(host, POLLOUT, (int)(end - now_ms()));
	ok = ok && cost_end(&c, d);
	cost_begin(&c, d, "1000 opens and closes a second");
	ok = ok && paced(&g, flap_opens) && cost_end(&c, d);
	cost_begin(&c, d, "1000 malformed buffers a second");
	ok = ok && paced(&g, malformed) && cost_end(&c, d);
	if (host >= 0)
		close(host);
	guest_free(&g);
	return ok && log_has_priorities(d) && round_trip(d);
}

/* --fd with a listening socket: frontends connect in turn, as with --socket-path. */
static bool case_fd_listening(struct daemon *d)
{
	return round_trip(d) && round_trip(d);
}

/* --fd with a connected socket: it serves that frontend, then exits 0 when it leaves. */
static bool case_fd_connected(struct daemon *d)
{
	int64_t deadline = now_ms() + TIMEOUT_MS;
	int status;

	if (!round_trip(d))		/* closes the connection when done */
		return false;
	while (waitpid(d->pid, &status, WNOHANG) == 0) {
		if (now_ms() > deadline)
			return fail("vmchanneld still runs after its only frontend left");
		poll(NULL, 0, 10);	/* a child's exit has no descriptor to wait on */
	}
	d->pid = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return fail("vmchanneld ended with status %#x after its frontend left", status);
	return log_wait(d, "frontend disconnected: exiting");
}

static const struct {
	const char *name;
	bool (*run)(struct daemon *d);
	enum frontend_socket frontend;
} cases[] = {
	{ "ring-resize", case_ring_resize, FRONTEND_PATH },
	{ "failed-mem-table", case_failed_mem_table, FRONTEND_PATH },
	{ "bad-fds", case_bad_fds, FRONTEND_PATH },
	{ "truncated", case_truncated, FRONTEND_PATH },
	{ "shrinking-memory", case_shrinking_memory, FRONTEND_PATH },
	{ "long-chain", case_long_chain, FRONTEND_PATH },
	{ "fd-limit", case_fd_limit, FRONTEND_PATH },
	{ "guest-cost", case_guest_cost, FRONTEND_PATH },
	{ "reload-after-rename", case_reload_after_rename, FRONTEND_PATH },
	{ "reload-retries-failed-add", case_reload_retries_failed_add, FRONTEND_PATH },
	{ "fd-listening", case_fd_listening, FRONTEND_FD_LISTENING },
	{ "fd-connected", case_fd_connected, FRONTEND_FD_CONNECTED },
};

static bool run_case(unsigned int k)
{
	struct daemon d = { 0 };
	bool ok;

	failure[0] = 0;
	ok = daemon_start(&d, cases[k].name, cases[k].frontend) && cases[k].run(&d);
	if (d.frontend_fd >= 0)
		close(d.frontend_fd);
	if (d.pid > 0)
		ok = daemon_stop(&d, TIMEOUT_MS) && ok;
	if (cases[k].frontend == FRONTEND_FD_LISTENING)
		unlink(d.sock_path);	/* ours: it did not make it */
	printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", cases[k].name, ok ? "" : ": ",
	       ok ? "" : failure);
	if (!ok)
		printf("  daemon log: %s/%s.log\n", work_dir, cases[k].name);
	return ok;
}

int main(int argc, char **argv)
{
	unsigned int k, failed = 0, ran = 0;
	int i;

	if (argc < 3 || strcmp(argv[1], "--daemon")) {
		fprintf(stderr, "usage: %s --daemon PATH [CASE...]\ncases:", argv[0]);
		for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
			fprintf(stderr, " %s", cases[k].name);
		fprintf(stderr, "\n");
		return 2;
	}
	daemon_path = argv[2];
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!mkdtemp(work_dir)) {
		perror("mkdtemp");
		return 1;
	}
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		bool wanted = argc == 3;

		for (i = 3; i < argc; i++)
			wanted |= !strcmp(argv[i], cases[k].name);
		if (wanted) {
			ran++;
			failed += !run_case(k);
		}
	}
	printf("hostile frontend: %u passed, %u failed\n", ran - failed, failed);
	/* The logs stay only for a failure (the daemons removed their sockets). */
	for (k = 0; !failed && k < sizeof(cases) / sizeof(cases[0]); k++) {
		char path[128];

		snprintf(path, sizeof(path), "%s/%s.log", work_dir, cases[k].name);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%s.conf", work_dir, cases[k].name);
		unlink(path);
	}
	if (!failed)
		rmdir(work_dir);
	return failed || !ran ? 1 : 0;
}
