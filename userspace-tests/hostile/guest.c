// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmc-hostile-frontend: the guest's side: memory (a memfd), split rings in it, vmchannel messages on
 * txq and rxq, and the round trip that proves a daemon still works.
 */
#include "hostile.h"

bool guest_mem_new(struct guest *g, bool sealed)
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

void guest_free(struct guest *g)
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
	if (!le16toh(c.num_channels) || strcmp((char *)c.name, "t"))
		return fail("the configuration shows %u channels, the first \"%.63s\"",
			    le16toh(c.num_channels), c.name);
	g->channel_id = le32toh(c.id);
	return true;
}

/* A running device: memory, both rings, the channel id. */
bool guest_up(struct guest *g, const struct daemon *d, bool sealed)
{
	return guest_mem_new(g, sealed) && vu_handshake(g, d) &&
	       mem_table(g->sock, g->memfd, RAM_SIZE) == 0 &&
	       ring_start(g, VMCHANNEL_VQ_RX, RING_NUM) && ring_start(g, VMCHANNEL_VQ_TX, RING_NUM) &&
	       read_channel_id(g);
}

void kick(struct ring *r)
{
	eventfd_write(r->kick, 1);
}

/* Makes descriptor @i (of @len bytes at @gpa, @flags) available. */
void ring_post(struct ring *r, uint16_t i, uint64_t gpa, uint32_t len, uint16_t flags,
	       uint16_t next)
{
	r->desc[i].addr = htole64(gpa);
	r->desc[i].len = htole32(len);
	r->desc[i].flags = htole16(flags);
	r->desc[i].next = htole16(next);
}

void ring_publish(struct ring *r, uint16_t head)
{
	r->avail->ring[r->avail_idx % r->num] = htole16(head);
	r->avail_idx++;
	__atomic_store_n(&r->avail->idx, htole16(r->avail_idx), __ATOMIC_RELEASE);
}

uint16_t used_idx(const struct ring *r)
{
	return le16toh(__atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE));
}

/* Waits until the device used everything posted on @r. */
bool ring_drained(struct ring *r)
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
uint64_t buf_gpa(unsigned int q, unsigned int k)
{
	return BUFS_GPA + (q * RING_NUM + k) * BUF_SIZE;
}

/* Sends one txq message; slots are reused once the device used them. */
bool tx_send(struct guest *g, uint16_t type, uint32_t session, const void *data,
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
void rx_post(struct guest *g, unsigned int n)
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
bool rx_expect_data(struct guest *g, const char *want)
{
	struct ring *r = &g->rings[VMCHANNEL_VQ_RX];
	int64_t deadline = now_ms() + TIMEOUT_MS;
	eventfd_t v;

	for (;;) {
		while (r->used_seen != used_idx(r)) {
			struct vring_used_elem *u = &r->used->ring[r->used_seen++ % r->num];
			/* Where we put that buffer (the id is the daemon's word: bounded). */
			uint64_t gpa = le64toh(r->desc[le32toh(u->id) % r->num].addr);
			const uint8_t *buf = g->ram + gpa;
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
bool round_trip(const struct daemon *d)
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
bool dropped(int sock)
{
	char c;

	if (!wait_fd(sock, POLLIN, TIMEOUT_MS) || read(sock, &c, 1) > 0)
		return fail("the daemon kept the connection");
	return true;
}
