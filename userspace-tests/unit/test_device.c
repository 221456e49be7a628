// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmchanneld's device model driven as a guest driver would drive it: rxq and
 * txq as split rings in fake guest memory, host programs as real Unix
 * sockets, the event loop stepped by hand.  Each test is one lifecycle path
 * of docs/device-spec.md that an earlier vmchanneld got wrong.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control.h"
#include "event_loop.h"
#include "upgrade.h"
#include "upgrade_state.h"
#include "vmc_device.h"
#include "vmc_test.h"

#define RAM_SIZE (8u << 20)
#define RXQ_SIZE 64u
#define TXQ_SIZE 16u
#define RX_RING_GPA 0x0000u		/* desc, avail at +0x1000, used at +0x2000 */
#define TX_RING_GPA 0x4000u
#define RX_BUF_GPA 0x100000u
#define RX_BUF_SIZE (32u + 4096u)
#define RX_BUF_STRIDE 0x2000u
#define TX_BUF_GPA 0x300000u
#define TX_BUF_STRIDE 0x11000u		/* a header and the largest payload */
#define HDR_SIZE sizeof(struct vmchannel_hdr)

/* One fake guest: its memory, its rings' indices, the device it drives. */
static struct {
	struct vmc_device *dev;
	char dir[32];
	uint8_t *ram;
	uint16_t rx_posted, rx_seen, tx_posted;
} g;

static void *gpa(uint64_t addr)
{
	return g.ram + addr;
}

static void ring_setup(unsigned int index, uint64_t ring_gpa, unsigned int num)
{
	struct vq *vq = &g.dev->vu.vqs[index];

	vq->num = num;
	vq->desc_uaddr = ring_gpa;
	vq->avail_uaddr = ring_gpa + 0x1000;
	vq->used_uaddr = ring_gpa + 0x2000;
	VMC_ASSERT_FATAL(vq_map(vq, &g.dev->vu.mem));
	vq->started = vq->enabled = true;
}

/* A device with channels @names, rings running, nothing posted yet. */
static void guest_start(char **names, unsigned int n)
{
	struct guest_region_desc d = { .gpa = 0, .size = RAM_SIZE, .uaddr = 0 };
	int fd = memfd_create("unit-guest", MFD_CLOEXEC);

	memset(&g, 0, sizeof(g));
	snprintf(g.dir, sizeof(g.dir), "/tmp/vmc-unit.XXXXXX");
	g.dev = calloc(1, sizeof(*g.dev));
	VMC_ASSERT_FATAL(g.dev && mkdtemp(g.dir));
	VMC_ASSERT_FATAL(loop_init() == 0);
	VMC_ASSERT_FATAL(vmc_device_init(g.dev, g.dir, names, n) == 0);
	VMC_ASSERT_FATAL(fd >= 0 && ftruncate(fd, RAM_SIZE) == 0);
	VMC_ASSERT_FATAL(guest_mem_set(&g.dev->vu.mem, &d, &fd, 1) == 0);
	g.ram = g.dev->vu.mem.regions[0].hva;
	ring_setup(VMCHANNEL_VQ_RX, RX_RING_GPA, RXQ_SIZE);
	ring_setup(VMCHANNEL_VQ_TX, TX_RING_GPA, TXQ_SIZE);
}

static void guest_stop(void)
{
	char path[64];
	unsigned int i;

	vmc_device_fini(g.dev);
	loop_fini();
	for (i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%c.sock", g.dir, 'a' + i);
		unlink(path);
	}
	rmdir(g.dir);
	free(g.dev);
}

static void set_desc(uint64_t ring_gpa, unsigned int i, uint64_t addr, uint32_t len,
		     uint16_t flags)
{
	struct vring_desc *desc = (struct vring_desc *)gpa(ring_gpa) + i;

	desc->addr = htole64(addr);
	desc->len = htole32(len);
	desc->flags = htole16(flags);
	desc->next = 0;
}

static void publish(uint64_t ring_gpa, unsigned int num, uint16_t *posted, uint16_t head)
{
	struct vring_avail *avail = gpa(ring_gpa + 0x1000);

	avail->ring[*posted % num] = htole16(head);
	++*posted;
	__atomic_store_n(&avail->idx, htole16(*posted), __ATOMIC_RELEASE);
}

/* Posts @n receive buffers of @size bytes and kicks rxq. */
static void guest_post_rx_sized(unsigned int n, uint32_t size)
{
	while (n--) {
		unsigned int slot = g.rx_posted % RXQ_SIZE;

		set_desc(RX_RING_GPA, slot, RX_BUF_GPA + slot * RX_BUF_STRIDE, size,
			 VRING_DESC_F_WRITE);
		publish(RX_RING_GPA, RXQ_SIZE, &g.rx_posted, (uint16_t)slot);
	}
	vmc_device_ops.queue_kicked(g.dev, VMCHANNEL_VQ_RX);
}

static void guest_post_rx(unsigned int n)
{
	guest_post_rx_sized(n, RX_BUF_SIZE);
}

struct msg {
	uint32_t channel_id, session, buf_alloc, fwd_cnt, eof_cnt;
	uint16_t type, flags;
	const void *data;
	uint32_t len;
};

/* Sends one message on txq and kicks it; the device completes it at once. */
/* Puts a message on txq without kicking: several then go in one batch. */
static void guest_queue(const struct msg *m)
{
	unsigned int slot = g.tx_posted % TXQ_SIZE;
	uint64_t addr = TX_BUF_GPA + slot * TX_BUF_STRIDE;
	struct vmchannel_hdr hdr = {
		.channel_id = htole32(m->channel_id),
		.type = htole16(m->type),
		.len = htole32(m->len),
		.session = htole32(m->session),
		.buf_alloc = htole32(m->buf_alloc),
		.fwd_cnt = htole32(m->fwd_cnt),
		.eof_cnt = htole32(m->eof_cnt),
	};

	memcpy(gpa(addr), &hdr, sizeof(hdr));
	if (m->len)
		memcpy(gpa(addr + HDR_SIZE), m->data, m->len);
	set_desc(TX_RING_GPA, slot, addr, (uint32_t)HDR_SIZE + m->len, 0);
	publish(TX_RING_GPA, TXQ_SIZE, &g.tx_posted, (uint16_t)slot);
}

static void guest_kick_tx(void)
{
	vmc_device_ops.queue_kicked(g.dev, VMCHANNEL_VQ_TX);
}

static void guest_send(const struct msg *m)
{
	guest_queue(m);
	guest_kick_tx();
}

static void guest_ctrl(uint32_t id, uint16_t type, uint32_t session)
{
	struct msg m = { .channel_id = id, .type = type, .session = session,
			 .buf_alloc = 1 << 20 };

	guest_send(&m);
}

static void guest_data(uint32_t id, uint32_t session, const void *data, uint32_t len)
{
	struct msg m = { .channel_id = id, .type = VMCHANNEL_MSG_DATA, .session = session,
			 .buf_alloc = 1 << 20, .data = data, .len = len };

	guest_send(&m);
}

/* Takes the next message the device put on rxq; false if there is none. */
static bool guest_recv(struct vmchannel_hdr *hdr, void *payload, size_t size)
{
	struct vring_used *used = gpa(RX_RING_GPA + 0x2000);
	struct vring_used_elem *e;
	uint32_t len;

	if (le16toh(__atomic_load_n(&used->idx, __ATOMIC_ACQUIRE)) == g.rx_seen)
		return false;
	e = &used->ring[g.rx_seen++ % RXQ_SIZE];
	len = le32toh(e->len);
	VMC_ASSERT_FATAL(len >= HDR_SIZE && len <= RX_BUF_SIZE);
	memcpy(hdr, gpa(RX_BUF_GPA + le32toh(e->id) * RX_BUF_STRIDE), HDR_SIZE);
	CU_ASSERT_EQUAL(le32toh(hdr->len), len - HDR_SIZE);
	if (payload)
		memcpy(payload, gpa(RX_BUF_GPA + le32toh(e->id) * RX_BUF_STRIDE + HDR_SIZE),
		       len - HDR_SIZE < size ? len - HDR_SIZE : size);
	return true;
}

/* The next message must be @type of @session; returns its header. */
static struct vmchannel_hdr expect(uint16_t type, uint32_t session)
{
	struct vmchannel_hdr hdr = { 0 };
	bool got = guest_recv(&hdr, NULL, 0);

	CU_ASSERT_TRUE(got);
	CU_ASSERT_EQUAL(le16toh(hdr.type), type);
	CU_ASSERT_EQUAL(le32toh(hdr.session), session);
	if (!got || le16toh(hdr.type) != type || le32toh(hdr.session) != session)
		fprintf(stderr, "\nexpected type %u session %u, got %s type %u session %u\n",
			type, session, got ? "" : "nothing:", le16toh(hdr.type),
			le32toh(hdr.session));
	return hdr;
}

/* The next message must be DATA of session 1; returns its length. */
static uint32_t guest_recv_data(void *payload, size_t size)
{
	struct vmchannel_hdr hdr = { 0 };

	CU_ASSERT_TRUE(guest_recv(&hdr, payload, size));
	CU_ASSERT_EQUAL(le16toh(hdr.type), VMCHANNEL_MSG_DATA);
	CU_ASSERT_EQUAL(le32toh(hdr.session), 1);
	return le32toh(hdr.len);
}

static void expect_nothing(void)
{
	struct vmchannel_hdr hdr;
	bool got = guest_recv(&hdr, NULL, 0);

	CU_ASSERT_FALSE(got);
	if (got)
		fprintf(stderr, "\nunexpected message type %u session %u\n",
			le16toh(hdr.type), le32toh(hdr.session));
}

/* Forgets every message the device has sent so far. */
static void drain_rx(void)
{
	struct vmchannel_hdr hdr;

	while (guest_recv(&hdr, NULL, 0))
		;
}

/* Runs the event loop until it has nothing more to do. */
static void settle(void)
{
	int rounds = 0;

	while (loop_dispatch(rounds < 2 ? 20 : 0) > 0 && rounds++ < 1000)
		;
}

/* A host program connecting to channel @name's socket. */
static int host_connect(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s.sock", g.dir, name);
	VMC_ASSERT_FATAL(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	settle();
	return fd;
}

/* Reads what the host program can have now, up to @size; returns the count, -1 at end of stream. */
static ssize_t host_read_all(int fd, uint8_t *buf, size_t size)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, buf + got, size - got);

		if (n > 0) {
			got += (size_t)n;
			if (got == size)
				return (ssize_t)got;
			continue;
		}
		if (n == 0)
			return got ? (ssize_t)got : -1;
		if (errno != EAGAIN)
			return got ? (ssize_t)got : -1;
		/* Let the device write more, if it has more. */
		if (loop_dispatch(50) <= 0)
			return (ssize_t)got;
	}
}

/* Makes the daemon's side of channel 0's connection hold little, so bytes stay buffered. */
static void shrink_daemon_socket(struct vmc_chan *ch)
{
	int small = 4096;

	VMC_ASSERT_FATAL(ch->client_fd >= 0);
	setsockopt(ch->client_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
}

static uint8_t pattern[65536];

static void fill_pattern(void)
{
	size_t i;

	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7 + i / 251);
}

/* RESET, a host program on "a", and session @session of channel 1 open and linked. */
static int linked_channel(uint32_t session)
{
	int host;

	guest_post_rx(16);
	guest_ctrl(0, VMCHANNEL_MSG_RESET, 0);
	expect(VMCHANNEL_MSG_RESET, 0);
	host = host_connect("a");
	guest_ctrl(1, VMCHANNEL_MSG_OPEN, session);
	expect(VMCHANNEL_MSG_OPEN, session);
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_HOST_CONNECT, session).buf_alloc),
			VMC_G2H_BUF_SIZE);
	return host;
}

/*
 * A linked session of channel "a" (the first of @names) whose host program
 * reads slowly: of 64 KiB of guest bytes, most wait in the channel's buffer.
 */
static int linked_with_buffered_bytes(char **names, unsigned int n, struct vmc_chan **ch)
{
	int host;

	fill_pattern();
	guest_start(names, n);
	host = linked_channel(1);
	*ch = g.dev->chans[0];
	shrink_daemon_socket(*ch);
	guest_data(1, 1, pattern, 65536);
	return host;
}

/*
 * readv() of the daemon (linked with --wrap=readv): how often it read the
 * host program's socket @readv_counted_fd.
 */
ssize_t __real_readv(int fd, const struct iovec *iov, int iovcnt);
ssize_t __wrap_readv(int fd, const struct iovec *iov, int iovcnt);
static int readv_counted_fd = -1;
static unsigned int readv_count;

ssize_t __wrap_readv(int fd, const struct iovec *iov, int iovcnt)
{
	if (fd == readv_counted_fd)
		readv_count++;
	return __real_readv(fd, iov, iovcnt);
}

/*
 * epoll_wait() of the daemon (linked with --wrap=epoll_wait): how often it
 * looked for events without sleeping, as its polling does.
 */
int __real_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout);
int __wrap_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout);
static unsigned int polling_waits;

int __wrap_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
	if (!timeout)
		polling_waits++;
	return __real_epoll_wait(epfd, evs, max, timeout);
}

/* Waits of an idle loop (nothing to do for 2 ms) that polled. */
static unsigned int idle_polling_waits(void)
{
	polling_waits = 0;
	CU_ASSERT_EQUAL(loop_dispatch(2), 0);
	return polling_waits;
}

/* ---- the tests ---- */

/* Every channel message carries the session; messages of other sessions are dropped. */
static void test_sessions(void)
{
	char *names[] = { "a" };
	uint8_t buf[64];
	int host;

	guest_start(names, 1);
	host = linked_channel(7);
	/* Data of an earlier session never reaches the host program. */
	guest_data(1, 6, "stale", 5);
	guest_data(1, 7, "fresh", 5);
	CU_ASSERT_EQUAL(host_read_all(host, buf, sizeof(buf)), 5);
	CU_ASSERT_EQUAL(memcmp(buf, "fresh", 5), 0);
	/* A CLOSE of another session does not end this one. */
	guest_ctrl(1, VMCHANNEL_MSG_CLOSE, 6);
	CU_ASSERT_EQUAL(g.dev->chans[0]->state, CHAN_LINKED);
	/* Host bytes go out in session 7. */
	CU_ASSERT_EQUAL(write(host, "hi", 2), 2);
	settle();
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_DATA, 7).len), 2);
	close(host);
	guest_stop();
}

/* RESET ends every session and is answered before anything else. */
static void test_reset(void)
{
	char *names[] = { "a" };
	uint8_t buf[64];
	int host;

	guest_start(names, 1);
	host = linked_channel(1);
	guest_data(1, 1, "bye", 3);
	guest_ctrl(0, VMCHANNEL_MSG_RESET, 0);
	expect(VMCHANNEL_MSG_RESET, 0);
	expect_nothing();
	/* The ended session's bytes are delivered, then end of stream. */
	CU_ASSERT_EQUAL(host_read_all(host, buf, sizeof(buf)), 3);
	CU_ASSERT_EQUAL(host_read_all(host, buf, sizeof(buf)), -1);
	/* The new driver's session 1 is a new session. */
	guest_ctrl(1, VMCHANNEL_MSG_OPEN, 1);
	expect(VMCHANNEL_MSG_OPEN, 1);
	close(host);
	guest_stop();
}

/* SUSPEND: acknowledged, then rxq unused until RESUME; sessions survive. */
static void test_suspend_resume(void)
{
	char *names[] = { "a" };
	int host;

	guest_start(names, 1);
	host = linked_channel(1);
	guest_ctrl(0, VMCHANNEL_MSG_SUSPEND, 0);
	expect(VMCHANNEL_MSG_SUSPEND, 0);
	CU_ASSERT_EQUAL(write(host, "zz", 2), 2);
	settle();
	guest_post_rx(4);
	expect_nothing();
	guest_ctrl(0, VMCHANNEL_MSG_RESUME, 0);
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_DATA, 1).len), 2);
	close(host);
	guest_stop();
}

/* A host program that wrote and left before the guest opened: its bytes, then its end. */
static void test_host_bytes_wait_for_open(void)
{
	char *names[] = { "a" };
	uint8_t buf[64];
	int host;

	guest_start(names, 1);
	guest_post_rx(8);
	guest_ctrl(0, VMCHANNEL_MSG_RESET, 0);
	expect(VMCHANNEL_MSG_RESET, 0);
	host = host_connect("a");
	CU_ASSERT_EQUAL(write(host, "early", 5), 5);
	close(host);
	settle();
	CU_ASSERT_EQUAL(g.dev->chans[0]->state, CHAN_HOST_WAITING);
	guest_ctrl(1, VMCHANNEL_MSG_OPEN, 1);
	expect(VMCHANNEL_MSG_OPEN, 1);
	expect(VMCHANNEL_MSG_HOST_CONNECT, 1);
	CU_ASSERT_EQUAL(guest_recv_data(buf, sizeof(buf)), 5);
	CU_ASSERT_EQUAL(memcmp(buf, "early", 5), 0);
	CU_ASSERT_FALSE(le16toh(expect(VMCHANNEL_MSG_HOST_DISCONNECT, 1).flags) &
			VMCHANNEL_F_DATA_LOST);
	CU_ASSERT_EQUAL(g.dev->chans[0]->state, CHAN_GUEST_WAITING);
	guest_stop();
}

/* A VM pause stops the rings; sessions, connections and bytes survive it. */
static void test_pause_keeps_sessions(void)
{
	char *names[] = { "a" };
	struct vmc_chan *ch;
	uint8_t buf[64];
	int host;

	guest_start(names, 1);
	host = linked_channel(1);
	ch = g.dev->chans[0];
	/* What vu_dev does on GET_VRING_BASE for each ring. */
	g.dev->vu.vqs[VMCHANNEL_VQ_RX].started = false;
	vmc_device_ops.rings_stopped(g.dev);
	g.dev->vu.vqs[VMCHANNEL_VQ_TX].started = false;
	vmc_device_ops.rings_stopped(g.dev);
	CU_ASSERT_EQUAL(write(host, "during", 6), 6);
	settle();
	/* Not read while stopped: no busy loop on a readable socket. */
	CU_ASSERT_FALSE(ch->client_watch.events & EPOLLIN);
	g.dev->vu.vqs[VMCHANNEL_VQ_RX].started = true;
	g.dev->vu.vqs[VMCHANNEL_VQ_TX].started = true;
	vmc_device_ops.rings_started(g.dev);
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_DATA, 1).len), 6);
	guest_data(1, 1, "after", 5);
	CU_ASSERT_EQUAL(host_read_all(host, buf, sizeof(buf)), 5);
	CU_ASSERT_EQUAL(ch->state, CHAN_LINKED);
	close(host);
	guest_stop();
}

/* Without a free rx buffer a readable host socket is not watched (was 100% CPU). */
static void test_no_rx_buffer_no_busy_loop(void)
{
	char *names[] = { "a" };
	struct vmc_chan *ch;
	int host, unread = 0;

	fill_pattern();
	guest_start(names, 1);
	host = linked_channel(1);
	ch = g.dev->chans[0];
	/* More than the 13 buffers left can carry. */
	CU_ASSERT_EQUAL(write(host, pattern, 65536), 65536);
	settle();
	CU_ASSERT_TRUE(ioctl(ch->client_fd, FIONREAD, &unread) == 0 && unread > 0);
	CU_ASSERT_FALSE(ch->client_watch.events & EPOLLIN);
	drain_rx();
	/* A buffer that holds a header only takes a CREDIT, and blocks nothing. */
	guest_post_rx_sized(1, HDR_SIZE);
	expect(VMCHANNEL_MSG_CREDIT, 1);
	settle();
	CU_ASSERT_FALSE(ch->client_watch.events & EPOLLIN);
	guest_post_rx(1);
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_DATA, 1).len), 4096);
	close(host);
	guest_stop();
}

/*
 * cat f > x; echo tail > x with a slow reader: the first session's bytes all
 * reach the first connection, then end of stream; the second session's go
 * to the next connection.
 */
static void test_reopen_drains_first_session(void)
{
	char *names[] = { "a" };
	static uint8_t got[VMC_G2H_BUF_SIZE];
	struct vmchannel_hdr hdr;
	uint32_t sent = 0, off = 0;
	ssize_t n;
	int host, next;

	fill_pattern();
	guest_start(names, 1);
	host = linked_channel(1);
	shrink_daemon_socket(g.dev->chans[0]);
	while (sent < VMC_G2H_BUF_SIZE) {
		guest_data(1, 1, pattern, 16384);
		sent += 16384;
	}
	CU_ASSERT_NOT_EQUAL(g.dev->chans[0]->buf_len, 0);
	drain_rx();
	guest_ctrl(1, VMCHANNEL_MSG_CLOSE, 1);
	guest_ctrl(1, VMCHANNEL_MSG_OPEN, 2);
	hdr = expect(VMCHANNEL_MSG_OPEN, 2);
	CU_ASSERT_EQUAL(le32toh(hdr.buf_alloc), 0);
	CU_ASSERT_EQUAL(g.dev->chans[0]->state, CHAN_DRAINING_REOPENED);
	expect_nothing();
	while ((n = host_read_all(host, got + off, sizeof(got) - off)) > 0)
		off += (uint32_t)n;
	CU_ASSERT_EQUAL(off, sent);
	CU_ASSERT_EQUAL(memcmp(got, pattern, 16384), 0);
	CU_ASSERT_EQUAL(memcmp(got + sent - 16384, pattern, 16384), 0);
	CU_ASSERT_EQUAL(g.dev->chans[0]->state, CHAN_GUEST_WAITING);
	/* The next host program serves session 2. */
	next = host_connect("a");
	hdr = expect(VMCHANNEL_MSG_HOST_CONNECT, 2);
	CU_ASSERT_EQUAL(le32toh(hdr.buf_alloc), VMC_G2H_BUF_SIZE);
	guest_data(1, 2, "tail\n", 5);
	CU_ASSERT_EQUAL(host_read_all(next, got, sizeof(got)), 5);
	close(host);
	close(next);
	guest_stop();
}

/*
 * One txq batch of short and long payloads, then CLOSE: short ones are
 * gathered and written after the batch, yet the host program gets every
 * byte in the guest's order, then end of stream (the drain ends only once
 * the gathered bytes are out).  @small_socket: the daemon's socket holds 4
 * KiB, so the gathered bytes go out in parts, as the host program reads.
 */
static void gathered_payloads_keep_order(bool small_socket)
{
	char *names[] = { "a" };
	static uint8_t got[2 * 8192 + 8];
	struct msg m = { .channel_id = 1, .type = VMCHANNEL_MSG_DATA, .session = 1,
			 .buf_alloc = 1 << 20 };
	static const char *const shorts[] = { "ab", "cd", "ef", "gh" };
	uint8_t after[16];
	uint32_t off = 0;
	ssize_t n;
	int host, i;

	fill_pattern();
	guest_start(names, 1);
	host = linked_channel(1);
	if (small_socket)
		shrink_daemon_socket(g.dev->chans[0]);
	for (i = 0; i < 4; i++) {
		m.data = shorts[i];
		m.len = 2;
		guest_queue(&m);
		if (i == 1 || i == 2) {
			m.data = pattern + (i - 1) * 8192;
			m.len = 8192;
			guest_queue(&m);
		}
	}
	m.type = VMCHANNEL_MSG_CLOSE;
	m.len = 0;
	guest_queue(&m);
	guest_kick_tx();
	while (off < sizeof(got) && (n = host_read_all(host, got + off, sizeof(got) - off)) > 0)
		off += (uint32_t)n;
	CU_ASSERT_EQUAL(off, sizeof(got));
	CU_ASSERT_EQUAL(memcmp(got, "abcd", 4), 0);
	CU_ASSERT_EQUAL(memcmp(got + 4, pattern, 8192), 0);
	CU_ASSERT_EQUAL(memcmp(got + 8196, "ef", 2), 0);
	CU_ASSERT_EQUAL(memcmp(got + 8198, pattern + 8192, 8192), 0);
	CU_ASSERT_EQUAL(memcmp(got + 16390, "gh", 2), 0);
	/* Nothing more: the end of the session. */
	CU_ASSERT_EQUAL(host_read_all(host, after, sizeof(after)), -1);
	CU_ASSERT_EQUAL(g.dev->chans[0]->state, CHAN_FINISHED);
	close(host);
	guest_stop();
}

static void test_gathered_payloads_keep_order(void)
{
	gathered_payloads_keep_order(false);
}

static void test_gathered_payloads_small_socket(void)
{
	gathered_payloads_keep_order(true);
}

/* A host program that leaves with guest bytes undelivered: the driver learns so. */
static void test_host_leaves_data_lost(void)
{
	char *names[] = { "a" };
	struct vmchannel_hdr hdr;
	int host;

	fill_pattern();
	guest_start(names, 1);
	host = linked_channel(1);
	shrink_daemon_socket(g.dev->chans[0]);
	guest_data(1, 1, pattern, 65536);
	CU_ASSERT_NOT_EQUAL(g.dev->chans[0]->buf_len, 0);
	close(host);
	settle();
	hdr = expect(VMCHANNEL_MSG_HOST_DISCONNECT, 1);
	CU_ASSERT_TRUE(le16toh(hdr.flags) & VMCHANNEL_F_DATA_LOST);
	CU_ASSERT_EQUAL(le32toh(hdr.fwd_cnt), 65536);
	CU_ASSERT_EQUAL(le32toh(hdr.buf_alloc), 0);
	CU_ASSERT_EQUAL(g.dev->chans[0]->state, CHAN_GUEST_WAITING);
	/* Told once. */
	guest_data(1, 1, "x", 1);
	hdr = expect(VMCHANNEL_MSG_CREDIT, 1);
	CU_ASSERT_TRUE(le16toh(hdr.flags) & VMCHANNEL_F_DATA_LOST);
	CU_ASSERT_EQUAL(le32toh(hdr.fwd_cnt), 65537);
	guest_ctrl(1, VMCHANNEL_MSG_CREDIT, 1);
	expect_nothing();
	guest_stop();
}

/* DATA sent on old credit when no host program can take it: consumed, and told. */
static void test_data_without_host_lost(void)
{
	char *names[] = { "a" };
	struct vmchannel_hdr hdr;

	guest_start(names, 1);
	guest_post_rx(8);
	guest_ctrl(0, VMCHANNEL_MSG_RESET, 0);
	expect(VMCHANNEL_MSG_RESET, 0);
	guest_ctrl(1, VMCHANNEL_MSG_OPEN, 1);
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_OPEN, 1).buf_alloc), 0);
	guest_data(1, 1, "lost", 4);
	hdr = expect(VMCHANNEL_MSG_CREDIT, 1);
	CU_ASSERT_TRUE(le16toh(hdr.flags) & VMCHANNEL_F_DATA_LOST);
	CU_ASSERT_EQUAL(le32toh(hdr.fwd_cnt), 4);
	guest_stop();
}

/* Connects to channel @name's socket and returns at once: the daemon has not accepted yet. */
static int host_connect_queued(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s.sock", g.dir, name);
	VMC_ASSERT_FATAL(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	return fd;
}

/*
 * A host program that connected, wrote and left while an earlier one was
 * served is accepted from the backlog already gone: the session gets no
 * credit for it (soak seed 2: the guest wrote on that credit, its bytes were
 * discarded and write() failed with ECONNRESET though no host connection of
 * the session went away).  Its bytes and its end of stream still reach the
 * guest, and the next host program gets the session's bytes.
 */
static void test_gone_before_accept_no_credit(void)
{
	char *names[] = { "a" };
	struct vmchannel_hdr hdr;
	uint8_t buf[64];
	int first, left, next;

	guest_start(names, 1);
	first = linked_channel(1);
	left = host_connect_queued("a");
	CU_ASSERT_EQUAL(write(left, "gone", 4), 4);
	close(left);
	/* The first one leaves: the one in the backlog is taken next. */
	close(first);
	settle();
	CU_ASSERT_FALSE(le16toh(expect(VMCHANNEL_MSG_HOST_DISCONNECT, 1).flags) &
			VMCHANNEL_F_DATA_LOST);
	hdr = expect(VMCHANNEL_MSG_HOST_CONNECT, 1);
	CU_ASSERT_EQUAL(le32toh(hdr.buf_alloc), 0);
	CU_ASSERT_EQUAL(guest_recv_data(buf, sizeof(buf)), 4);
	CU_ASSERT_EQUAL(memcmp(buf, "gone", 4), 0);
	hdr = expect(VMCHANNEL_MSG_HOST_DISCONNECT, 1);
	CU_ASSERT_FALSE(le16toh(hdr.flags) & VMCHANNEL_F_DATA_LOST);
	CU_ASSERT_EQUAL(le32toh(hdr.buf_alloc), 0);
	expect_nothing();
	CU_ASSERT_EQUAL(g.dev->chans[0]->state, CHAN_GUEST_WAITING);
	/* Accepted with no session (HOST_WAITING), gone just before the OPEN. */
	guest_ctrl(1, VMCHANNEL_MSG_CLOSE, 1);
	left = host_connect_queued("a");
	CU_ASSERT_EQUAL(loop_dispatch(20), 1);
	CU_ASSERT_EQUAL(g.dev->chans[0]->state, CHAN_HOST_WAITING);
	close(left);
	guest_ctrl(1, VMCHANNEL_MSG_OPEN, 2);
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_OPEN, 2).buf_alloc), 0);
	settle();
	drain_rx();
	/* A host program that stays gets the session's bytes. */
	next = host_connect("a");
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_HOST_CONNECT, 2).buf_alloc),
			VMC_G2H_BUF_SIZE);
	guest_data(1, 2, "kept", 4);
	CU_ASSERT_EQUAL(host_read_all(next, buf, sizeof(buf)), 4);
	expect_nothing();
	close(next);
	guest_stop();
}

/* The backend channel's next message, its request; 0 if none is waiting. */
static uint32_t backend_request(int fd)
{
	uint32_t hdr[3] = { 0 };

	if (recv(fd, hdr, sizeof(hdr), MSG_DONTWAIT) != (ssize_t)sizeof(hdr))
		return 0;
	return hdr[0];
}

/* The frontend stops the rings (GET_VRING_BASE, as on a VM stop) or starts them (SET_VRING_KICK). */
static void frontend_rings(int reply_fd, bool start)
{
	unsigned int i;

	for (i = 0; i < VMCHANNEL_NUM_VQS; i++) {
		struct vu_msg msg = { .flags = VU_FLAG_VERSION };
		uint8_t reply[64];

		if (start) {
			msg.request = VU_SET_VRING_KICK;
			msg.size = sizeof(uint64_t);
			msg.payload.u64 = i;
			msg.fds[0] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
			msg.nfds = 1;
			VMC_ASSERT_FATAL(msg.fds[0] >= 0);
		} else {
			msg.request = VU_GET_VRING_BASE;
			msg.size = sizeof(msg.payload.state);
			msg.payload.state.index = i;
		}
		CU_ASSERT_TRUE(vu_dev_handle(&g.dev->vu, &msg));
		if (!start)
			CU_ASSERT_TRUE(recv(reply_fd, reply, sizeof(reply), MSG_DONTWAIT) > 0);
	}
}

/*
 * A channel added or removed while the VM is stopped: the config-change
 * message waits until the rings run again (QEMU dereferences NULL on it
 * while its vhost device is stopped: exit 139 on vmchannelctl add after QMP
 * stop), then goes out once.
 */
static void test_config_change_held_while_stopped(void)
{
	char *names[] = { "a" };
	int backend[2], frontend[2];

	guest_start(names, 1);
	VMC_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, backend) == 0);
	VMC_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, frontend) == 0);
	g.dev->vu.backend_fd = backend[0];
	g.dev->vu.sock = frontend[0];
	g.dev->vu.protocol_features = 1ULL << VU_PROTOCOL_F_BACKEND_REQ;
	/* Rings running: told at once. */
	CU_ASSERT_EQUAL(vmc_device_add_channel(g.dev, "b"), 0);
	CU_ASSERT_EQUAL(backend_request(backend[1]), VU_BACKEND_CONFIG_CHANGE_MSG);
	frontend_rings(frontend[1], false);
	CU_ASSERT_EQUAL(vmc_device_add_channel(g.dev, "c"), 0);
	CU_ASSERT_EQUAL(vmc_device_remove_channel(g.dev, "b"), 0);
	CU_ASSERT_EQUAL(backend_request(backend[1]), 0);
	CU_ASSERT_EQUAL(g.dev->nchans, 2);
	/* Once both rings run again, one message for both changes. */
	frontend_rings(frontend[1], true);
	CU_ASSERT_EQUAL(backend_request(backend[1]), VU_BACKEND_CONFIG_CHANGE_MSG);
	CU_ASSERT_EQUAL(backend_request(backend[1]), 0);
	/* Only once: a later start owes nothing. */
	frontend_rings(frontend[1], false);
	frontend_rings(frontend[1], true);
	CU_ASSERT_EQUAL(backend_request(backend[1]), 0);
	close(backend[1]);
	close(frontend[1]);
	guest_stop();
}

/*
 * A ring the frontend stops (GET_VRING_BASE, a VM stop) may start again with
 * a backend that does not poll: stopped while vmchanneld polled it (no kicks
 * asked for), txq is left asking for the next one, with EVENT_IDX
 * (avail_event at what was taken) and without (no VRING_USED_F_NO_NOTIFY).
 */
static void test_stopped_ring_asks_for_kicks(void)
{
	char *names[] = { "a" };
	struct vring_used *tx_used = gpa(TX_RING_GPA + 0x2000);
	struct vq *txq;
	int frontend[2], event_idx;

	guest_start(names, 1);
	VMC_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, frontend) == 0);
	g.dev->vu.sock = frontend[0];
	txq = &g.dev->vu.vqs[VMCHANNEL_VQ_TX];
	for (event_idx = 0; event_idx < 2; event_idx++) {
		vq_start(txq, event_idx);
		*(uint16_t *)&tx_used->ring[TXQ_SIZE] = htole16(0xfff0);	/* passed long ago */
		vq_want_kicks(txq, false);
		CU_ASSERT_EQUAL(le16toh(tx_used->flags), event_idx ? 0 : VRING_USED_F_NO_NOTIFY);
		frontend_rings(frontend[1], false);
		CU_ASSERT_EQUAL(tx_used->flags, 0);
		if (event_idx)
			CU_ASSERT_EQUAL(le16toh(*(uint16_t *)&tx_used->ring[TXQ_SIZE]),
					txq->last_avail_idx);
		frontend_rings(frontend[1], true);
	}
	close(frontend[1]);
	guest_stop();
}

/*
 * A removed channel leaves the table at once, but its host program gets every
 * byte: those it holds, and DATA the driver queued before it saw the table
 * change (a stopped VM sees it only after cont: soak seed 20261201 lost 184
 * bytes written during the pause in which the channel was removed), until the
 * driver's CLOSE of the session; nothing more is sent for the channel.
 */
static void test_remove_drains(void)
{
	char *names[] = { "a" };
	static uint8_t got[132 * 1024];
	uint32_t off = 0;
	ssize_t n;
	int host;

	fill_pattern();
	guest_start(names, 1);
	host = linked_channel(1);
	shrink_daemon_socket(g.dev->chans[0]);
	guest_data(1, 1, pattern, 65536);
	guest_data(1, 1, pattern, 65536);
	CU_ASSERT_NOT_EQUAL(g.dev->chans[0]->buf_len, 0);
	drain_rx();
	CU_ASSERT_EQUAL(vmc_device_remove_channel(g.dev, "a"), 0);
	CU_ASSERT_EQUAL(g.dev->nchans, 0);
	CU_ASSERT_PTR_NOT_NULL(g.dev->removed);
	guest_data(1, 1, "late", 4);
	while ((n = host_read_all(host, got + off, sizeof(got) - off)) > 0)
		off += (uint32_t)n;
	CU_ASSERT_EQUAL(off, 131072 + 4);
	CU_ASSERT_EQUAL(memcmp(got + 65536, pattern, 65536), 0);
	CU_ASSERT_EQUAL(memcmp(got + 131072, "late", 4), 0);
	/* Another session of the removed channel is not started. */
	guest_ctrl(1, VMCHANNEL_MSG_OPEN, 2);
	expect_nothing();
	CU_ASSERT_PTR_NOT_NULL(g.dev->removed);
	/* The driver's CLOSE: end of stream, and the channel is gone. */
	guest_ctrl(1, VMCHANNEL_MSG_CLOSE, 1);
	CU_ASSERT_EQUAL(host_read_all(host, got, sizeof(got)), -1);
	settle();
	CU_ASSERT_PTR_NULL(g.dev->removed);
	close(host);
	guest_stop();
}

/* A removed channel whose session the driver never closes: RESET ends it. */
static void test_remove_then_reset(void)
{
	char *names[] = { "a" };
	int host;

	guest_start(names, 1);
	host = linked_channel(1);
	CU_ASSERT_EQUAL(vmc_device_remove_channel(g.dev, "a"), 0);
	CU_ASSERT_PTR_NOT_NULL(g.dev->removed);
	guest_ctrl(0, VMCHANNEL_MSG_RESET, 0);
	expect(VMCHANNEL_MSG_RESET, 0);
	CU_ASSERT_EQUAL(host_read_all(host, (uint8_t[8]){ 0 }, 8), -1);
	settle();
	CU_ASSERT_PTR_NULL(g.dev->removed);
	close(host);
	guest_stop();
}

/* No new host stream while VMCHANNEL_EOF_WINDOW ends of stream are unconsumed. */
static void test_eof_window(void)
{
	char *names[] = { "a" };
	struct msg credit = { .channel_id = 1, .type = VMCHANNEL_MSG_CREDIT, .session = 1,
			      .buf_alloc = 1 << 20, .eof_cnt = 1 };
	int i, host;

	guest_start(names, 1);
	guest_post_rx(32);
	guest_ctrl(0, VMCHANNEL_MSG_RESET, 0);
	expect(VMCHANNEL_MSG_RESET, 0);
	guest_ctrl(1, VMCHANNEL_MSG_OPEN, 1);
	expect(VMCHANNEL_MSG_OPEN, 1);
	for (i = 0; i < VMCHANNEL_EOF_WINDOW; i++) {
		host = host_connect("a");
		expect(VMCHANNEL_MSG_HOST_CONNECT, 1);
		close(host);
		settle();
		expect(VMCHANNEL_MSG_HOST_DISCONNECT, 1);
	}
	host = host_connect("a");
	CU_ASSERT_EQUAL(write(host, "5th", 3), 3);
	settle();
	expect_nothing();
	/* The driver consumed one end of stream: the next stream may start. */
	guest_send(&credit);
	expect(VMCHANNEL_MSG_HOST_CONNECT, 1);
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_DATA, 1).len), 3);
	close(host);
	guest_stop();
}

/* Channels share rxq in turns: the first in the table is not always served first. */
static void test_fair_rx(void)
{
	char *names[] = { "a", "b" };
	struct vmchannel_hdr hdr;
	unsigned int served[3] = { 0 }, i;
	int ha, hb;

	fill_pattern();
	guest_start(names, 2);
	guest_post_rx(8);
	guest_ctrl(0, VMCHANNEL_MSG_RESET, 0);
	expect(VMCHANNEL_MSG_RESET, 0);
	ha = host_connect("a");
	hb = host_connect("b");
	guest_ctrl(1, VMCHANNEL_MSG_OPEN, 1);
	guest_ctrl(2, VMCHANNEL_MSG_OPEN, 1);
	drain_rx();
	/* Both have plenty to send; the guest posts one buffer at a time. */
	CU_ASSERT_EQUAL(write(ha, pattern, 32768), 32768);
	CU_ASSERT_EQUAL(write(hb, pattern, 32768), 32768);
	/* Use the buffers left, then hand out one per kick. */
	settle();
	drain_rx();
	for (i = 0; i < 6; i++) {
		guest_post_rx(1);
		if (guest_recv(&hdr, NULL, 0) && le32toh(hdr.channel_id) <= 2)
			served[le32toh(hdr.channel_id)]++;
	}
	CU_ASSERT_EQUAL(served[1], 3);
	CU_ASSERT_EQUAL(served[2], 3);
	close(ha);
	close(hb);
	guest_stop();
}

/* vmchannelctl stats: known bytes each way, a stale message, a loss, in the counters. */
static void test_stats_count(void)
{
	char *names[] = { "a" };
	struct vmc_chan_stats *st;
	char line[1024];
	uint8_t buf[64];
	int host;

	guest_start(names, 1);
	st = &g.dev->chans[0]->stats;
	host = linked_channel(7);
	guest_data(1, 6, "stale", 5);
	guest_data(1, 7, "hello", 5);
	guest_data(1, 7, "world!", 6);
	CU_ASSERT_EQUAL(host_read_all(host, buf, sizeof(buf)), 11);
	CU_ASSERT_EQUAL(write(host, "abc", 3), 3);
	settle();
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_DATA, 7).len), 3);
	close(host);
	settle();
	expect(VMCHANNEL_MSG_HOST_DISCONNECT, 7);
	/* No host program now: these bytes are lost, and the driver told. */
	guest_data(1, 7, "gone", 4);
	expect(VMCHANNEL_MSG_CREDIT, 7);
	CU_ASSERT_EQUAL(st->bytes_from_guest, 15);
	CU_ASSERT_EQUAL(st->bytes_to_host, 11);
	CU_ASSERT_EQUAL(st->bytes_to_guest, 3);
	CU_ASSERT_EQUAL(st->lost_bytes, 4);
	CU_ASSERT_EQUAL(st->stale_messages, 1);
	/* OPEN, three DATA; OPEN, HOST_CONNECT, DATA, HOST_DISCONNECT, CREDIT. */
	CU_ASSERT_EQUAL(st->messages_from_guest, 4);
	CU_ASSERT_EQUAL(st->messages_to_guest, 5);
	CU_ASSERT_EQUAL(st->host_connections, 1);
	CU_ASSERT_EQUAL(st->guest_errors, 0);
	CU_ASSERT_TRUE(vmc_chan_stats_format(g.dev->chans[0], line, sizeof(line)) > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(line, "name=a state=GUEST_WAITING host_connected=0 "
				     "buffered_bytes=0 bytes_from_guest=15 bytes_to_host=11 "
				     "bytes_to_guest=3 "));
	CU_ASSERT_EQUAL(vmc_chan_stats_format(g.dev->chans[0], line, 40), -1);
	guest_stop();
}

/* The guest's receive buffer full: one stall per time credit runs out. */
static void test_stats_credit_stall(void)
{
	struct vmc_chan_stats st = { 0 };

	vmc_chan_stats_credit(&st, 100);
	vmc_chan_stats_credit(&st, 0);
	vmc_chan_stats_credit(&st, 0);
	CU_ASSERT_EQUAL(st.credit_stalls, 1);
	vmc_chan_stats_credit(&st, 5);
	vmc_chan_stats_credit(&st, 0);
	CU_ASSERT_EQUAL(st.credit_stalls, 2);
}

/* ---- the data path ---- */

/* Gives rxq a call eventfd; returns the test's end, whose value counts the signals. */
static int rx_call_counter(void)
{
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	VMC_ASSERT_FATAL(efd >= 0);
	g.dev->vu.vqs[VMCHANNEL_VQ_RX].call_fd = dup(efd);
	return efd;
}

/* Signals of the guest's rxq interrupt since the last look. */
static unsigned int rx_calls(int efd)
{
	eventfd_t n = 0;

	return eventfd_read(efd, &n) == 0 ? (unsigned int)n : 0;
}

/* A device with channels @names, each with a host program (@host) and session 1 open. */
static void linked_channels(char **names, unsigned int n, int *host)
{
	unsigned int i;

	guest_start(names, n);
	guest_post_rx(16);
	guest_ctrl(0, VMCHANNEL_MSG_RESET, 0);
	for (i = 0; i < n; i++) {
		host[i] = host_connect(names[i]);
		guest_ctrl(i + 1, VMCHANNEL_MSG_OPEN, 1);
	}
	settle();
	drain_rx();
}

/* Several channels served in one batch of events: one interrupt, not one per channel. */
static void test_one_call_per_batch(void)
{
	char *names[] = { "a", "b", "c" };
	int host[3], efd;
	unsigned int i;

	linked_channels(names, 3, host);
	efd = rx_call_counter();
	for (i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(write(host[i], "abc", 3), 3);
	/* The three sockets are ready before the loop looks: one batch. */
	CU_ASSERT_EQUAL(loop_dispatch(100), 3);
	for (i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_DATA, 1).len), 3);
	CU_ASSERT_EQUAL(rx_calls(efd), 1);
	for (i = 0; i < 3; i++)
		close(host[i]);
	close(efd);
	guest_stop();
}

/*
 * VIRTIO_RING_F_EVENT_IDX: the guest is interrupted only when the used index
 * passes its used_event, and asked to kick only when a ring it ran dry gets
 * a buffer again (avail_event).
 */
static void test_event_idx(void)
{
	char *names[] = { "a" };
	struct vring_avail *rx_avail = gpa(RX_RING_GPA + 0x1000);
	struct vring_used *rx_used = gpa(RX_RING_GPA + 0x2000);
	struct vring_used *tx_used = gpa(TX_RING_GPA + 0x2000);
	struct vq *rxq;
	unsigned int i;
	int host, efd;

	guest_start(names, 1);
	rxq = &g.dev->vu.vqs[VMCHANNEL_VQ_RX];
	vq_start(rxq, true);
	vq_start(&g.dev->vu.vqs[VMCHANNEL_VQ_TX], true);
	host = linked_channel(1);
	efd = rx_call_counter();
	settle();
	/* The first signal after the start is never suppressed. */
	CU_ASSERT_EQUAL(rx_calls(efd), 1);
	drain_rx();
	/* Interrupt me once the fourth message from now is used. */
	rx_avail->ring[RXQ_SIZE] = htole16((uint16_t)(g.rx_seen + 3));
	for (i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(write(host, "x", 1), 1);
		CU_ASSERT_EQUAL(loop_dispatch(100), 1);
		CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_DATA, 1).len), 1);
		CU_ASSERT_EQUAL(rx_calls(efd), i == 3 ? 1u : 0u);
	}
	/* txq ran dry: the next message must be kicked. */
	CU_ASSERT_EQUAL(le16toh(*(uint16_t *)&tx_used->ring[TXQ_SIZE]), g.tx_posted);
	/* rxq too, once its buffers are used up. */
	CU_ASSERT_NOT_EQUAL(le16toh(*(uint16_t *)&rx_used->ring[RXQ_SIZE]), g.rx_posted);
	CU_ASSERT_EQUAL(write(host, pattern, 65536), 65536);
	settle();
	CU_ASSERT_EQUAL(rxq->last_avail_idx, g.rx_posted);
	CU_ASSERT_EQUAL(le16toh(*(uint16_t *)&rx_used->ring[RXQ_SIZE]), g.rx_posted);
	close(host);
	close(efd);
	guest_stop();
}

/*
 * A guest whose reader polls rxq (VRING_AVAIL_F_NO_INTERRUPT: the driver's
 * busy poll) gets no interrupt, and vmchanneld notes it and does not poll
 * beside it (its next wait sleeps); once the guest asks for interrupts
 * again, the next message interrupts and vmchanneld polls again.
 */
static void test_guest_polling_rx(void)
{
	char *names[] = { "a" };
	struct vring_avail *rx_avail = gpa(RX_RING_GPA + 0x1000);
	int host, efd;

	guest_start(names, 1);
	host = linked_channel(1);
	efd = rx_call_counter();
	settle();
	drain_rx();
	rx_calls(efd);
	/* A window to poll for: the idle wait below (2 ms) opens it. */
	loop_set_poll(1000000);
	idle_polling_waits();
	CU_ASSERT(loop_poll_window_now() > 0);
	rx_avail->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
	CU_ASSERT_EQUAL(write(host, "x", 1), 1);
	CU_ASSERT_EQUAL(loop_dispatch(100), 1);
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_DATA, 1).len), 1);
	CU_ASSERT_EQUAL(rx_calls(efd), 0);
	CU_ASSERT(g.dev->guest_polls_rx);
	CU_ASSERT_EQUAL(idle_polling_waits(), 0);
	/* A batch with nothing for rxq changes nothing. */
	vmc_device_signal_guest(g.dev);
	CU_ASSERT(g.dev->guest_polls_rx);
	rx_avail->flags = 0;
	CU_ASSERT_EQUAL(write(host, "y", 1), 1);
	CU_ASSERT_EQUAL(loop_dispatch(100), 1);
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_DATA, 1).len), 1);
	CU_ASSERT_EQUAL(rx_calls(efd), 1);
	CU_ASSERT(!g.dev->guest_polls_rx);
	CU_ASSERT(idle_polling_waits() > 0);
	loop_set_poll(0);
	close(host);
	close(efd);
	guest_stop();
}

/*
 * The host program's socket is read when epoll says it is readable, not each
 * time the guest's messages pump the channel: in a bulk guest -> host
 * transfer that was a failed readv() per message.  A short read emptied it.
 */
static void test_drained_socket_not_reread(void)
{
	char *names[] = { "a" };
	uint8_t got[64];
	struct vmc_chan *ch;
	unsigned int i;
	int host;

	guest_start(names, 1);
	host = linked_channel(1);
	ch = g.dev->chans[0];
	readv_counted_fd = ch->client_fd;
	CU_ASSERT_EQUAL(write(host, "x", 1), 1);
	settle();
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_DATA, 1).len), 1);
	CU_ASSERT_EQUAL(readv_count, 1);
	for (i = 0; i < 8; i++) {
		guest_data(1, 1, "0123456789", 10);
		settle();
		CU_ASSERT_EQUAL(host_read_all(host, got, 10), 10);
	}
	CU_ASSERT_EQUAL(readv_count, 1);
	/* Bytes that come later are read as before. */
	CU_ASSERT_EQUAL(write(host, "yz", 2), 2);
	settle();
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_DATA, 1).len), 2);
	CU_ASSERT_EQUAL(readv_count, 2);
	readv_counted_fd = -1;
	readv_count = 0;
	close(host);
	guest_stop();
}

/*
 * Guest bytes go to the host program straight from guest memory while
 * nothing is buffered; only what the socket did not take is copied into the
 * channel's buffer, and bytes that come later wait behind it.
 */
static void test_direct_write_partial(void)
{
	char *names[] = { "a" };
	static uint8_t got[65536 + 1000 + 10];
	struct vmc_chan *ch;
	uint32_t off = 0;
	ssize_t n;
	int host;

	host = linked_with_buffered_bytes(names, 1, &ch);
	/* Part written from guest memory, the rest copied to the start of the buffer. */
	CU_ASSERT_TRUE(ch->buf_len > 0 && ch->buf_len < 65536);
	CU_ASSERT_EQUAL(ch->buf_head, 0);
	CU_ASSERT_EQUAL(ch->fwd_cnt, 65536 - ch->buf_len);
	/* Behind the buffered bytes, not before them. */
	guest_data(1, 1, pattern + 7, 1000);
	while (off < 65536 + 1000 && (n = host_read_all(host, got + off, 65536 + 1000 - off)) > 0)
		off += (uint32_t)n;
	CU_ASSERT_EQUAL(off, 65536 + 1000);
	CU_ASSERT_EQUAL(memcmp(got, pattern, 65536), 0);
	CU_ASSERT_EQUAL(memcmp(got + 65536, pattern + 7, 1000), 0);
	CU_ASSERT_EQUAL(ch->buf_len, 0);
	/* Nothing buffered: all of it written at once. */
	guest_data(1, 1, "0123456789", 10);
	CU_ASSERT_EQUAL(ch->buf_len, 0);
	CU_ASSERT_EQUAL(ch->fwd_cnt, 65536 + 1000 + 10);
	CU_ASSERT_EQUAL(host_read_all(host, got, 10), 10);
	CU_ASSERT_EQUAL(memcmp(got, "0123456789", 10), 0);
	close(host);
	guest_stop();
}

/*
 * Only channels with something to send wait for rxq, and they are served in
 * turns, one buffer each, whatever their place in the table.
 */
static void test_ready_list_turns(void)
{
	char *names[] = { "a", "b", "c", "d" };
	unsigned int served[5] = { 0 }, i, last = 0;
	struct vmchannel_hdr hdr;
	int host[4];

	fill_pattern();
	linked_channels(names, 4, host);
	/* c stays idle; the others have more than the buffers left carry. */
	for (i = 0; i < 4; i++)
		if (i != 2)
			CU_ASSERT_EQUAL(write(host[i], pattern, 65536), 65536);
	settle();
	drain_rx();
	CU_ASSERT_EQUAL(g.dev->nready, 3);
	CU_ASSERT_FALSE(g.dev->chans[2]->ready);
	for (i = 0; i < 12; i++) {
		guest_post_rx(1);
		CU_ASSERT_TRUE(guest_recv(&hdr, NULL, 0));
		CU_ASSERT_EQUAL(le16toh(hdr.type), VMCHANNEL_MSG_DATA);
		/* Never the same channel twice in a row. */
		CU_ASSERT_NOT_EQUAL(le32toh(hdr.channel_id), last);
		last = le32toh(hdr.channel_id);
		if (last <= 4)
			served[last]++;
	}
	CU_ASSERT_EQUAL(served[1], 4);
	CU_ASSERT_EQUAL(served[2], 4);
	CU_ASSERT_EQUAL(served[3], 0);
	CU_ASSERT_EQUAL(served[4], 4);
	for (i = 0; i < 4; i++)
		close(host[i]);
	guest_stop();
}

/*
 * A waiting channel that got no buffer because the one before it took the
 * last stays first: a ran out of credit on the last buffer without asking
 * for another, so b met the empty ring, and c must not overtake it.
 */
static void test_ready_list_keeps_place(void)
{
	char *names[] = { "a", "b", "c" };
	struct msg open_a = { .channel_id = 1, .type = VMCHANNEL_MSG_OPEN, .session = 1,
			      .buf_alloc = 2 * (RX_BUF_SIZE - HDR_SIZE) };
	int host[3];
	unsigned int i;

	fill_pattern();
	guest_start(names, 3);
	/* The RESET, OPEN and HOST_CONNECT replies; one buffer more once they are out. */
	guest_post_rx(7);
	guest_ctrl(0, VMCHANNEL_MSG_RESET, 0);
	for (i = 0; i < 3; i++) {
		host[i] = host_connect(names[i]);
		if (i)
			guest_ctrl(i + 1, VMCHANNEL_MSG_OPEN, 1);
		else
			guest_send(&open_a);
	}
	guest_post_rx(1);
	settle();
	drain_rx();
	/* a fills the spare buffer; then a, b and c wait, a with credit for one buffer. */
	for (i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(write(host[i], pattern, 65536), 65536);
		settle();
	}
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_DATA, 1).channel_id), 1);
	CU_ASSERT_EQUAL(g.dev->nready, 3);
	for (i = 1; i <= 3; i++) {
		guest_post_rx(1);
		CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_DATA, 1).channel_id), i);
	}
	for (i = 0; i < 3; i++)
		close(host[i]);
	guest_stop();
}

/*
 * Channel ids the device never gave, or gave to a channel since removed, are
 * unknown wherever they fall in the lookup; ids are never reused, so they
 * pass VMC_ID_BUCKETS and share buckets with older channels.
 */
static void test_lookup_by_id(void)
{
	char *names[] = { "a", "b" };
	const uint32_t unknown[] = { 3, VMC_ID_BUCKETS, VMC_ID_BUCKETS + 1, VMCHANNEL_MAX_CHANNELS + 2,
				     0x7fffffff, 0xffffffff };
	uint32_t shared = VMC_ID_BUCKETS + 1;
	unsigned int i;
	int host;

	guest_start(names, 2);
	host = linked_channel(1);
	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		guest_ctrl(unknown[i], VMCHANNEL_MSG_OPEN, 5);
		guest_data(unknown[i], 1, "lost", 4);
	}
	expect_nothing();
	CU_ASSERT_EQUAL(host_read_all(host, (uint8_t[8]){ 0 }, 8), 0);
	/* A channel added after 1024 others shares channel 1's bucket. */
	g.dev->next_id = shared;
	CU_ASSERT_EQUAL(vmc_device_add_channel(g.dev, "c"), 0);
	CU_ASSERT_EQUAL(g.dev->chans[2]->id, shared);
	guest_ctrl(shared, VMCHANNEL_MSG_OPEN, 7);
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_OPEN, 7).channel_id), shared);
	guest_data(1, 1, "one", 3);
	CU_ASSERT_EQUAL(host_read_all(host, (uint8_t[8]){ 0 }, 3), 3);
	guest_ctrl(2, VMCHANNEL_MSG_OPEN, 9);
	CU_ASSERT_EQUAL(le32toh(expect(VMCHANNEL_MSG_OPEN, 9).channel_id), 2);
	/* Removed without a session, and gone from the lookup. */
	guest_ctrl(shared, VMCHANNEL_MSG_CLOSE, 7);
	drain_rx();
	CU_ASSERT_EQUAL(vmc_device_remove_channel(g.dev, "c"), 0);
	settle();
	guest_ctrl(shared, VMCHANNEL_MSG_OPEN, 8);
	expect_nothing();
	guest_data(1, 1, "two", 3);
	CU_ASSERT_EQUAL(host_read_all(host, (uint8_t[8]){ 0 }, 3), 3);
	close(host);
	guest_stop();
}


/* ---- the upgrade state ---- */

static struct vmc_config test_config = {
	.channels = { "a" }, .access = { { 0640, 9 } }, .nchannels = 1,
};

static const struct upgrade_daemon test_daemon = {
	.exe_path = "/usr/sbin/vmchanneld", .sandboxed = true,
	.access = { 0660, (uid_t)-1, 7 },
	.frontend_listen_fd = -1, .control_listen_fd = -1, .control_client_fd = -1,
	.endpoint_dir = "/run/vmchannel/vm1", .file_config = &test_config,
};

/* test_daemon, with the endpoint directory the device's channels are in. */
static const struct upgrade_daemon *test_daemon_here(void)
{
	static struct upgrade_daemon daemon;

	daemon = test_daemon;
	snprintf(daemon.endpoint_dir, sizeof(daemon.endpoint_dir), "%s", g.dir);
	return &daemon;
}

/*
 * What exec does to the old process, without closing a descriptor: its
 * epoll instance, heap and mappings gone.
 */
static void forget_device(struct vmc_device *dev)
{
	unsigned int i;

	loop_fini();
	for (i = 0; i < dev->nchans; i++) {
		free(dev->chans[i]->buf);
		free(dev->chans[i]);
	}
	free(dev->chans);
	for (i = 0; i < dev->vu.mem.nregions; i++)
		munmap(dev->vu.mem.regions[i].map, dev->vu.mem.regions[i].map_size);
	/* The SIGBUS guard's table must not keep the old memory. */
	dev->vu.mem.nregions = 0;
	guest_mem_clear(&dev->vu.mem);
	free(dev);
}

/*
 * A linked session with guest bytes buffered for a slow host program, saved,
 * checked, and restored into a new device after a simulated exec: every
 * field the guest and the host program see is the same, the buffered bytes
 * then reach the host program in order, and the session goes on.
 */
static void test_upgrade_round_trip(void)
{
	char *names[] = { "a", "b" };
	static uint8_t got[65536 + 16];
	static struct vmc_config restored_config;
	struct upgrade_daemon restored = { .file_config = &restored_config };
	struct upgrade_state state;
	struct vmc_device *dev;
	struct vmc_chan *ch, old;
	struct vq rx_before;
	const char *why = NULL;
	uint32_t off = 0;
	unsigned int i;
	ssize_t n;
	int host;

	host = linked_with_buffered_bytes(names, 2, &ch);
	VMC_ASSERT_FATAL(ch->buf_len > 0 && ch->buf_len < 65536);
	old = *ch;
	rx_before = g.dev->vu.vqs[VMCHANNEL_VQ_RX];

	VMC_ASSERT_FATAL(upgrade_state_save(g.dev, test_daemon_here(), &state) == 0);
	/* The guest memory, the channel sockets and the connection, no more. */
	CU_ASSERT_EQUAL(state.nfds, 4);
	CU_ASSERT_EQUAL(upgrade_state_load(NULL, NULL, state.data, state.len, false, &why), 0);

	forget_device(g.dev);
	/* What upgrade_run() does before the exec: the table loses close-on-exec. */
	for (i = 0; i < state.nfds; i++)
		fcntl(state.fds[i], F_SETFD, 0);
	dev = calloc(1, sizeof(*dev));
	VMC_ASSERT_FATAL(dev && loop_init() == 0 && vmc_device_setup(dev, g.dir) == 0);
	CU_ASSERT_EQUAL(upgrade_state_load(dev, &restored, state.data, state.len, true, &why), 0);
	/* None stays inheritable for the next upgrade's checker. */
	for (i = 0; i < state.nfds; i++)
		CU_ASSERT_EQUAL(fcntl(state.fds[i], F_GETFD), FD_CLOEXEC);
	upgrade_state_free(&state);
	g.dev = dev;
	VMC_ASSERT_FATAL(dev->nchans == 2 && dev->vu.mem.nregions == 1);
	g.ram = dev->vu.mem.regions[0].hva;
	CU_ASSERT_STRING_EQUAL(restored.exe_path, test_daemon.exe_path);
	CU_ASSERT_EQUAL(restored.access.gid, 7);
	CU_ASSERT_TRUE(restored.sandboxed);
	CU_ASSERT_STRING_EQUAL(restored.endpoint_dir, g.dir);
	CU_ASSERT_PTR_EQUAL(restored.file_config, &restored_config);
	CU_ASSERT_EQUAL(restored_config.nchannels, 1);
	CU_ASSERT_STRING_EQUAL(restored_config.channels[0], "a");
	CU_ASSERT_EQUAL(restored_config.access[0].mode, 0640);
	CU_ASSERT_EQUAL(restored_config.access[0].gid, 9);

	ch = dev->chans[0];
	CU_ASSERT_STRING_EQUAL(ch->name, "a");
	CU_ASSERT_STRING_EQUAL(dev->chans[1]->name, "b");
	CU_ASSERT_EQUAL(ch->id, old.id);
	CU_ASSERT_EQUAL(ch->state, CHAN_LINKED);
	CU_ASSERT_EQUAL(ch->session, 1);
	CU_ASSERT_EQUAL(ch->client_fd, old.client_fd);
	CU_ASSERT_EQUAL(ch->listen_fd, old.listen_fd);
	CU_ASSERT_EQUAL(ch->buf_len, old.buf_len);
	CU_ASSERT_EQUAL(ch->fwd_cnt, old.fwd_cnt);
	CU_ASSERT_EQUAL(ch->fwd_reported, old.fwd_reported);
	CU_ASSERT_EQUAL(ch->connect_sent, old.connect_sent);
	CU_ASSERT_EQUAL(ch->stats.bytes_from_guest, 65536);
	CU_ASSERT_EQUAL(ch->stats.host_connections, 1);
	CU_ASSERT_EQUAL(dev->vu.vqs[VMCHANNEL_VQ_RX].last_avail_idx, rx_before.last_avail_idx);
	CU_ASSERT_EQUAL(dev->vu.vqs[VMCHANNEL_VQ_RX].used_idx, rx_before.used_idx);
	CU_ASSERT_EQUAL(dev->vu.vqs[VMCHANNEL_VQ_RX].num, rx_before.num);
	CU_ASSERT_TRUE(vq_ready(&dev->vu.vqs[VMCHANNEL_VQ_TX]));

	/* The buffered bytes, then new ones, in order. */
	guest_data(1, 1, "0123456789", 10);
	while (off < 65536 + 10 && (n = host_read_all(host, got + off, 65536 + 10 - off)) > 0)
		off += (uint32_t)n;
	CU_ASSERT_EQUAL(off, 65536 + 10);
	CU_ASSERT_EQUAL(memcmp(got, pattern, 65536), 0);
	CU_ASSERT_EQUAL(memcmp(got + 65536, "0123456789", 10), 0);
	/* And host bytes to the guest. */
	drain_rx();
	CU_ASSERT_EQUAL(write(host, "back", 4), 4);
	settle();
	CU_ASSERT_EQUAL(guest_recv_data(got, sizeof(got)), 4);
	CU_ASSERT_EQUAL(memcmp(got, "back", 4), 0);
	close(host);
	guest_stop();
}

/* Loads @state changed by @patch at @offset (a u32); returns the refusal, or NULL. */
static const char *load_patched(const struct upgrade_state *state, size_t offset, uint32_t patch)
{
	static uint8_t copy[1 << 16];
	const char *why = NULL;

	VMC_ASSERT_FATAL(state->len <= sizeof(copy) && offset + 4 <= state->len);
	memcpy(copy, state->data, state->len);
	memcpy(copy + offset, &patch, 4);
	return upgrade_state_load(NULL, NULL, copy, state->len, false, &why) ? why : NULL;
}

/* A state saved after @mutate changed the device; returns the refusal, or NULL. */
static const char *load_mutated(void (*mutate)(struct vmc_device *dev, bool undo))
{
	struct upgrade_state state;
	const char *why = NULL;
	int err;

	mutate(g.dev, false);
	VMC_ASSERT_FATAL(upgrade_state_save(g.dev, test_daemon_here(), &state) == 0);
	mutate(g.dev, true);
	err = upgrade_state_load(NULL, NULL, state.data, state.len, false, &why);
	upgrade_state_free(&state);
	return err ? why : NULL;
}

static void id_beyond_next(struct vmc_device *dev, bool undo)
{
	dev->chans[1]->id = undo ? 2 : dev->next_id;
}

static void id_twice(struct vmc_device *dev, bool undo)
{
	dev->chans[1]->id = undo ? 2 : 1;
}

static void bad_state(struct vmc_device *dev, bool undo)
{
	dev->chans[1]->state = undo ? CHAN_IDLE : CHAN_GONE;
}

static void bad_ring_size(struct vmc_device *dev, bool undo)
{
	dev->vu.vqs[VMCHANNEL_VQ_TX].num = undo ? TXQ_SIZE : 3;
}

static void next_id_at_end(struct vmc_device *dev, bool undo)
{
	static uint32_t saved;

	if (!undo)
		saved = dev->next_id;
	dev->next_id = undo ? saved : UINT32_MAX;
}

/* A chain popped and neither used nor given back. */
static void chain_in_flight(struct vmc_device *dev, bool undo)
{
	dev->vu.vqs[VMCHANNEL_VQ_RX].last_avail_idx += undo ? -1 : 1;
}

/* The used ring just past the end of guest memory. */
static void ring_outside_memory(struct vmc_device *dev, bool undo)
{
	static uint64_t saved;
	struct vq *vq = &dev->vu.vqs[VMCHANNEL_VQ_TX];

	if (!undo)
		saved = vq->used_uaddr;
	vq->used_uaddr = undo ? saved : RAM_SIZE - 8;
}

/* A listening channel's socket path naming another file (unlinked at removal). */
static void path_elsewhere(struct vmc_device *dev, bool undo)
{
	static char saved[sizeof(dev->chans[1]->path)];

	if (!undo)
		memcpy(saved, dev->chans[1]->path, sizeof(saved));
	else
		memcpy(dev->chans[1]->path, saved, sizeof(saved));
	if (!undo)
		strcpy(dev->chans[1]->path, "/etc/passwd");
}

static void bad_name(struct vmc_device *dev, bool undo)
{
	strcpy(dev->chans[1]->name, undo ? "b" : "../b");
}

static int shared_fd;

static void fd_twice(struct vmc_device *dev, bool undo)
{
	if (!undo)
		shared_fd = dev->chans[1]->listen_fd;
	dev->chans[1]->listen_fd = undo ? shared_fd : dev->chans[0]->listen_fd;
}

/* Truncated, longer, another version or format, values out of range: all refused. */
/*
 * Runs upgrade_run(@path) in a child, as the exec would replace the test
 * process: returns the child's exit status, 3 when upgrade_run() returned,
 * with its reason in @why.
 */
static int upgrade_in_child(const char *path, char *why, size_t size)
{
	char *argv[] = { (char *)path, NULL };
	int pipefd[2], status = -1;
	ssize_t n;
	pid_t pid;

	VMC_ASSERT_FATAL(pipe(pipefd) == 0);
	pid = fork();
	VMC_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct upgrade_daemon daemon = *test_daemon_here();

		upgrade_setup(argv, g.dev, &daemon);
		upgrade_run(path, why, size);
		n = write(pipefd[1], why, strlen(why));
		_exit(n > 0 ? 3 : 4);
	}
	close(pipefd[1]);
	n = read(pipefd[0], why, size - 1);
	close(pipefd[0]);
	why[n > 0 ? n : 0] = '\0';
	VMC_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
	return status;
}

/* /bin/true "checks" any state: exit 0 alone must not let it replace the daemon. */
static void test_upgrade_needs_ack(void)
{
	char *names[] = { "a" }, why[512] = "";
	int status;

	guest_start(names, 1);
	status = upgrade_in_child("/bin/true", why, sizeof(why));
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "/bin/true exited without acknowledging the state"));
	guest_stop();
}

/* A path that is not there or not a file: the reason says which. */
static void test_upgrade_path_errors(void)
{
	char *names[] = { "a" }, why[512] = "";

	guest_start(names, 1);
	upgrade_in_child("/nonexistent/vmchanneld", why, sizeof(why));
	CU_ASSERT_STRING_EQUAL(why, "/nonexistent/vmchanneld: No such file or directory");
	upgrade_in_child(g.dir, why, sizeof(why));
	CU_ASSERT_PTR_NOT_NULL(strstr(why, ": not a regular file"));
	guest_stop();
}

/*
 * A queue used in the batch that runs the upgrade is signalled before the
 * state is saved: the batch's end, which would signal it, never comes.
 */
static void test_upgrade_signals_guest_first(void)
{
	char *names[] = { "a" }, why[512] = "";
	int efd;

	guest_start(names, 1);
	efd = rx_call_counter();
	g.dev->vu.vqs[VMCHANNEL_VQ_RX].unsignalled = true;
	upgrade_in_child("/bin/true", why, sizeof(why));
	CU_ASSERT_EQUAL(rx_calls(efd), 1);
	close(efd);
	guest_stop();
}

static bool fake_upgrade_ran;

static void fake_upgrade(const char *path, char *why, size_t size)
{
	(void)path;
	fake_upgrade_ran = true;
	snprintf(why, size, "fake");
}

/* Sends @command on the control socket at @path; the first answer read. */
static void ask(const char *path, const char *command, char *answer, size_t size)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	ssize_t n = -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
	    write(fd, command, strlen(command)) == (ssize_t)strlen(command))
		n = read(fd, answer, size - 1);
	answer[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

/* Serves the control socket until child @pid exits (10 s at most); its status. */
static int serve_until_exit(pid_t pid)
{
	int status = -1, rounds;

	for (rounds = 0; rounds < 100 && waitpid(pid, &status, WNOHANG) == 0; rounds++)
		loop_dispatch(100);
	if (rounds == 100) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	return status;
}

/*
 * A child, as @uid, sends @command on the control socket at @path while
 * the test serves it: true when the first answer read starts with @want.
 */
static bool child_asks(const char *path, uid_t uid, const char *command, const char *want)
{
	char answer[256];
	int status;
	pid_t pid = fork();

	VMC_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		if (uid && (setresgid(uid, uid, uid) || setresuid(uid, uid, uid)))
			_exit(2);
		ask(path, command, answer, sizeof(answer));
		_exit(strncmp(answer, want, strlen(want)) ? 1 : 0);
	}
	status = serve_until_exit(pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A control socket at @path (in g.dir, open to everyone) whose upgrades are fake_upgrade(). */
static void control_with_fake_upgrade(char *path, size_t size)
{
	char *names[] = { "a" };

	guest_start(names, 1);
	snprintf(path, size, "%s/control", g.dir);
	VMC_ASSERT_FATAL(control_init(path, g.dev) == 0);
	VMC_ASSERT_FATAL(chmod(g.dir, 0711) == 0 && chmod(path, 0666) == 0);
	control_upgrade = fake_upgrade;
	fake_upgrade_ran = false;
}

static void control_stop(void)
{
	control_upgrade = NULL;
	control_fini();
	guest_stop();
}

/*
 * The control socket's group may add and remove channels, not choose the
 * program that replaces the daemon: "upgrade" from another user (nobody)
 * is refused before anything runs; from root it goes ahead.
 */
static void test_upgrade_only_root_or_own_user(void)
{
	char path[64];

	control_with_fake_upgrade(path, sizeof(path));
	CU_ASSERT(child_asks(path, 65534, "upgrade /x\n",
			     "error: upgrade: only root or the daemon's user may upgrade it\n"));
	CU_ASSERT_FALSE(fake_upgrade_ran);
	CU_ASSERT(child_asks(path, 0, "upgrade /x\n", "error: upgrade failed: fake\n"));
	CU_ASSERT_TRUE(fake_upgrade_ran);
	control_stop();
}

/*
 * A command read with "upgrade" would vanish in the exec unanswered: the
 * upgrade is refused instead, and the command runs.
 */
static void test_upgrade_last_command(void)
{
	char path[64];

	control_with_fake_upgrade(path, sizeof(path));
	CU_ASSERT(child_asks(path, 0, "upgrade /x\nlist\n",
			     "error: upgrade: send no command after it before its answer\n"));
	CU_ASSERT_FALSE(fake_upgrade_ran);
	control_stop();
}

static void test_upgrade_rejects(void)
{
	char *names[] = { "a", "b" };
	static uint8_t longer[1 << 16];
	struct upgrade_state state;
	const char *why = NULL;
	size_t len;

	guest_start(names, 2);
	VMC_ASSERT_FATAL(upgrade_state_save(g.dev, test_daemon_here(), &state) == 0);
	CU_ASSERT_EQUAL(upgrade_state_load(NULL, NULL, state.data, state.len, false, &why), 0);
	for (len = 0; len < state.len; len++)
		if (upgrade_state_load(NULL, NULL, state.data, len, false, &why) == 0)
			break;
	CU_ASSERT_EQUAL(len, state.len);
	VMC_ASSERT_FATAL(state.len < sizeof(longer));
	/*
	 * Cut in the body with a header that says so (the body's length, a
	 * u64 at 16): every field's reader meets the end, not the header; in a
	 * buffer of just that length, so that ASan sees a read past it.
	 */
	for (len = 24; len < state.len; len++) {
		uint64_t body = htole64(len - 24);
		uint8_t *cut = malloc(len);
		int err;

		VMC_ASSERT_FATAL(cut);
		memcpy(cut, state.data, len);
		memcpy(cut + 16, &body, sizeof(body));
		err = upgrade_state_load(NULL, NULL, cut, len, false, &why);
		free(cut);
		if (!err)
			break;
	}
	CU_ASSERT_EQUAL(len, state.len);
	memcpy(longer, state.data, state.len);
	CU_ASSERT_NOT_EQUAL(upgrade_state_load(NULL, NULL, longer, state.len + 1, false, &why), 0);
	CU_ASSERT_STRING_EQUAL(why, "bytes after the state");

	CU_ASSERT_STRING_EQUAL(load_patched(&state, 0, 0x434d5657), "not a vmchanneld state");
	CU_ASSERT_STRING_EQUAL(load_patched(&state, 8, htole32(UPGRADE_STATE_VERSION + 1)),
			       "a state version this binary does not read");
	CU_ASSERT_STRING_EQUAL(load_patched(&state, 8, htole32(UPGRADE_STATE_OLDEST - 1)),
			       "a state version this binary does not read");
	/* Version 1, a daemon with the 256 KiB buffer, hands over to this one. */
	CU_ASSERT_PTR_NULL(load_patched(&state, 8, htole32(1)));
	/* The fd table's length (at 24) beyond what follows it. */
	CU_ASSERT_PTR_NOT_NULL(load_patched(&state, 24, htole32(1000)));
	/* The first descriptor named (the frontend's, after the path and access). */
	CU_ASSERT_STRING_EQUAL(load_patched(&state, 28 + 4 * state.nfds + 2 +
					    strlen(test_daemon.exe_path) + 13, htole32(state.nfds)),
			       "descriptor index beyond the fd table");
	/* The frontend's (none) names the table's first, which its owner names later. */
	CU_ASSERT_STRING_EQUAL(load_patched(&state, 28 + 4 * state.nfds + 2 +
					    strlen(test_daemon.exe_path) + 13, htole32(0)),
			       "descriptor named twice");
	upgrade_state_free(&state);

	CU_ASSERT_STRING_EQUAL(load_mutated(id_beyond_next), "channel id out of range");
	CU_ASSERT_STRING_EQUAL(load_mutated(id_twice), "channel id or name repeated");
	CU_ASSERT_STRING_EQUAL(load_mutated(bad_state), "bad channel state");
	CU_ASSERT_STRING_EQUAL(load_mutated(bad_ring_size), "bad ring size");
	CU_ASSERT_STRING_EQUAL(load_mutated(bad_name), "bad channel name");
	/* Checked before the exec too, not only when the state is applied. */
	CU_ASSERT_STRING_EQUAL(load_mutated(next_id_at_end), "next channel id out of range");
	CU_ASSERT_STRING_EQUAL(load_mutated(chain_in_flight), "a chain in flight");
	CU_ASSERT_STRING_EQUAL(load_mutated(ring_outside_memory), "a ring is outside guest memory");
	CU_ASSERT_STRING_EQUAL(load_mutated(path_elsewhere),
			       "a channel's socket is not <endpoint dir>/<name>.sock");
	CU_ASSERT_STRING_EQUAL(load_mutated(fd_twice), "a descriptor listed twice in the fd table");
	guest_stop();
}

void register_device_tests(void)
{
	CU_pSuite s = vmc_add_suite("host device lifecycle");

	vmc_add_test(s, "sessions in every message, stale ones dropped", test_sessions);
	vmc_add_test(s, "RESET ends sessions, answered first", test_reset);
	vmc_add_test(s, "gathered short payloads keep the guest's order", test_gathered_payloads_keep_order);
	vmc_add_test(s, "... and when the host program's socket is full",
		     test_gathered_payloads_small_socket);
	vmc_add_test(s, "SUSPEND and RESUME", test_suspend_resume);
	vmc_add_test(s, "host bytes wait for the guest's OPEN", test_host_bytes_wait_for_open);
	vmc_add_test(s, "VM pause keeps sessions and bytes", test_pause_keeps_sessions);
	vmc_add_test(s, "no rx buffer: host socket not watched", test_no_rx_buffer_no_busy_loop);
	vmc_add_test(s, "re-open drains the first session", test_reopen_drains_first_session);
	vmc_add_test(s, "host leaves with bytes: DATA_LOST", test_host_leaves_data_lost);
	vmc_add_test(s, "DATA without a host: DATA_LOST", test_data_without_host_lost);
	vmc_add_test(s, "host gone before accept: no credit", test_gone_before_accept_no_credit);
	vmc_add_test(s, "config change held while the rings are stopped",
		     test_config_change_held_while_stopped);
	vmc_add_test(s, "a ring stopped while polled is left asking for kicks",
		     test_stopped_ring_asks_for_kicks);
	vmc_add_test(s, "removed channel drains", test_remove_drains);
	vmc_add_test(s, "removed channel: RESET ends its session", test_remove_then_reset);
	vmc_add_test(s, "end-of-stream window", test_eof_window);
	vmc_add_test(s, "channels served in turns", test_fair_rx);
	vmc_add_test(s, "statistics count bytes, messages and losses", test_stats_count);
	vmc_add_test(s, "statistics count credit stalls once each", test_stats_credit_stall);

	s = vmc_add_suite("host data path");
	vmc_add_test(s, "one interrupt per batch of events", test_one_call_per_batch);
	vmc_add_test(s, "EVENT_IDX: used_event and avail_event", test_event_idx);
	vmc_add_test(s, "a guest polling rxq: no interrupt, no polling beside it", test_guest_polling_rx);
	vmc_add_test(s, "a drained host socket is read again only when epoll says so",
		     test_drained_socket_not_reread);
	vmc_add_test(s, "guest bytes written from guest memory, the rest buffered",
		     test_direct_write_partial);
	vmc_add_test(s, "ready list: only waiting channels, in turns", test_ready_list_turns);
	vmc_add_test(s, "ready list: a channel that got nothing keeps its place",
		     test_ready_list_keeps_place);
	vmc_add_test(s, "lookup of unknown and shared-bucket ids", test_lookup_by_id);

	vmc_add_test(s, "upgrade: a program that exits 0 without acknowledging does not take over",
		     test_upgrade_needs_ack);
	vmc_add_test(s, "upgrade: a missing path or a directory is refused with its reason",
		     test_upgrade_path_errors);
	vmc_add_test(s, "upgrade: the guest is signalled for what it was owed before the exec",
		     test_upgrade_signals_guest_first);
	vmc_add_test(s, "upgrade: only root or the daemon's own user may ask for it",
		     test_upgrade_only_root_or_own_user);
	vmc_add_test(s, "upgrade: a command pipelined after it is answered, not lost",
		     test_upgrade_last_command);

	s = vmc_add_suite("host upgrade state");
	vmc_add_test(s, "saved, checked, restored after exec: the session goes on",
		     test_upgrade_round_trip);
	vmc_add_test(s, "truncated, longer, other versions, out of range: refused",
		     test_upgrade_rejects);
}
