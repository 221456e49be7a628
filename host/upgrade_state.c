// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The upgrade state of upgrade_state.h: written field by field, read back
 * the same way with every value checked before it is used.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "config_file.h"
#include "log.h"
#include "endpoint.h"
#include "upgrade_state.h"
#include "vmc_chan.h"

static const char magic[8] = "VMCHSTAT";
#define HEADER_SIZE (sizeof(magic) + 4 + 4 + 8)
/* More descriptors than a full table of channels can hold is not a state we made. */
#define MAX_FDS (4 * VMCHANNEL_MAX_CHANNELS + 64)

/* ---- writing ---- */

struct writer {
	uint8_t *data;
	size_t len, size;
	int *fds;
	unsigned int nfds;
	bool failed;
};

static void put(struct writer *w, const void *src, size_t len)
{
	if (w->failed)
		return;
	if (w->size - w->len < len) {
		size_t size = w->size ? w->size : 4096;
		uint8_t *grown;

		while (size - w->len < len)
			size *= 2;
		grown = realloc(w->data, size);
		if (!grown) {
			w->failed = true;
			return;
		}
		w->data = grown;
		w->size = size;
	}
	memcpy(w->data + w->len, src, len);
	w->len += len;
}

static void put_u8(struct writer *w, uint8_t v) { put(w, &v, 1); }
static void put_u16(struct writer *w, uint16_t v) { v = htole16(v); put(w, &v, 2); }
static void put_u32(struct writer *w, uint32_t v) { v = htole32(v); put(w, &v, 4); }
static void put_u64(struct writer *w, uint64_t v) { v = htole64(v); put(w, &v, 8); }

static void put_str(struct writer *w, const char *s)
{
	put_u16(w, (uint16_t)strlen(s));
	put(w, s, strlen(s));
}

/* A descriptor: its index in the fd table, which it joins. */
static void put_fd(struct writer *w, int fd)
{
	int *grown;

	if (fd < 0 || w->failed) {
		put_u32(w, UPGRADE_NO_FD);
		return;
	}
	grown = realloc(w->fds, (w->nfds + 1) * sizeof(*grown));
	if (!grown) {
		w->failed = true;
		return;
	}
	w->fds = grown;
	w->fds[w->nfds] = fd;
	put_u32(w, w->nfds++);
}

/* Booleans as the bits of one byte, first argument lowest. */
static uint8_t bits(bool b0, bool b1, bool b2, bool b3, bool b4, bool b5, bool b6, bool b7)
{
	return (uint8_t)(b0 | b1 << 1 | b2 << 2 | b3 << 3 | b4 << 4 | b5 << 5 | b6 << 6 | b7 << 7);
}

static void save_config(struct writer *w, const struct vmc_config *cfg)
{
	const char *group;
	unsigned int i;
	gid_t gid;

	for (i = 0; config_group_known(i, &gid); i++)
		;
	put_u32(w, i);
	for (i = 0; (group = config_group_known(i, &gid)); i++) {
		put_str(w, group);
		put_u32(w, gid);
	}
	put_u8(w, cfg != NULL);
	if (!cfg)
		return;
	put_str(w, cfg->endpoint_dir);
	put_str(w, cfg->control_socket);
	put_u32(w, cfg->nchannels);
	for (i = 0; i < cfg->nchannels; i++) {
		put_str(w, cfg->channels[i]);
		put_u32(w, cfg->access[i].mode);
		put_u32(w, cfg->access[i].gid);
	}
}

static void save_vu(struct writer *w, const struct vu_dev *vu)
{
	unsigned int i;

	put_fd(w, vu->sock);
	put_fd(w, vu->backend_fd);
	put_u64(w, vu->features);
	put_u64(w, vu->protocol_features);
	put_u8(w, vu->config_change_held);
	put_u32(w, vu->mem.nregions);
	for (i = 0; i < vu->mem.nregions; i++) {
		const struct guest_region *r = &vu->mem.regions[i];

		put_u64(w, r->gpa);
		put_u64(w, r->size);
		put_u64(w, r->uaddr);
		put_u64(w, r->mmap_offset);
		put_fd(w, r->fd);
	}
	put_u32(w, VU_DEV_MAX_QUEUES);
	for (i = 0; i < VU_DEV_MAX_QUEUES; i++) {
		const struct vq *vq = &vu->vqs[i];

		put_u32(w, vq->num);
		put_u64(w, vq->desc_uaddr);
		put_u64(w, vq->avail_uaddr);
		put_u64(w, vq->used_uaddr);
		put_u16(w, vq->last_avail_idx);
		put_u16(w, vq->used_idx);
		put_u16(w, vq->signalled_used);
		put_u8(w, bits(vq->desc, vq->signalled_used_valid, vq->unsignalled, vq->event_idx,
			       vq->enabled, vq->started, vq->broken, false));
		put_fd(w, vq->kick_fd);
		put_fd(w, vq->call_fd);
	}
}

static void save_chan(struct writer *w, const struct vmc_chan *ch)
{
	uint32_t first = VMC_G2H_BUF_SIZE - ch->buf_head;

	put_u32(w, ch->id);
	put_str(w, ch->name);
	put_str(w, ch->path);
	put_u8(w, bits(ch->connects, ch->removed, ch->client_rd_eof, ch->client_wr_closed,
		       ch->client_hup, ch->connect_sent, ch->data_lost, false));
	put_u8(w, (uint8_t)ch->state);
	put_fd(w, ch->listen_fd);
	put_fd(w, ch->client_fd);
	put_fd(w, ch->client_out_fd);
	put_u32(w, ch->session);
	put_u32(w, ch->owed);
	put_u32(w, ch->disconnects_sent);
	put_u32(w, ch->peer_eof_cnt);
	put_u32(w, ch->fwd_cnt);
	put_u32(w, ch->fwd_reported);
	put_u32(w, ch->tx_cnt);
	put_u32(w, ch->peer_buf_alloc);
	put_u32(w, ch->peer_fwd_cnt);
#define PUT_COUNTER(name) + 1
	put_u32(w, 0 VMC_CHAN_COUNTERS(PUT_COUNTER));
#undef PUT_COUNTER
#define PUT_COUNTER(name) put_u64(w, ch->stats.name);
	VMC_CHAN_COUNTERS(PUT_COUNTER)
#undef PUT_COUNTER
	put_u8(w, ch->stats.stalled);
	/* The ring of guest bytes, oldest first. */
	put_u32(w, ch->buf_len);
	if (ch->buf_len) {
		put(w, ch->buf + ch->buf_head, first < ch->buf_len ? first : ch->buf_len);
		if (first < ch->buf_len)
			put(w, ch->buf, ch->buf_len - first);
	}
}

int upgrade_state_save(const struct vmc_device *dev, const struct upgrade_daemon *daemon,
		       struct upgrade_state *state)
{
	struct writer w = { 0 }, out = { 0 };
	const struct vmc_chan *ch;
	unsigned int i, nremoved = 0;

	put_str(&w, daemon->exe_path);
	put_u8(&w, daemon->sandboxed);
	put_u32(&w, daemon->access.mode);
	put_u32(&w, daemon->access.uid);
	put_u32(&w, daemon->access.gid);
	put_fd(&w, daemon->frontend_listen_fd);
	put_fd(&w, daemon->control_listen_fd);
	put_fd(&w, daemon->control_client_fd);
	put_str(&w, daemon->endpoint_dir);
	put_str(&w, daemon->control_path);
	save_config(&w, daemon->file_config);

	put_u32(&w, dev->generation);
	put_u16(&w, dev->select);
	put_u32(&w, dev->next_id);
	put_u8(&w, bits(dev->rx_starved, dev->rx_suspended, dev->owe_reset, dev->owe_suspend,
			false, false, false, false));
	save_vu(&w, &dev->vu);

	for (ch = dev->removed; ch; ch = ch->next_removed)
		nremoved++;
	put_u32(&w, dev->nchans);
	put_u32(&w, nremoved);
	for (i = 0; i < dev->nchans; i++)
		save_chan(&w, dev->chans[i]);
	for (ch = dev->removed; ch; ch = ch->next_removed)
		save_chan(&w, ch);
	put_u32(&w, dev->nready);
	TAILQ_FOREACH(ch, &dev->ready, ready_link)
		put_u32(&w, ch->id);

	put(&out, magic, sizeof(magic));
	put_u32(&out, UPGRADE_STATE_VERSION);
	put_u32(&out, 0);
	put_u64(&out, 4 + 4 * (uint64_t)w.nfds + w.len);
	put_u32(&out, w.nfds);
	for (i = 0; i < w.nfds; i++)
		put_u32(&out, (uint32_t)w.fds[i]);
	put(&out, w.data, w.len);
	free(w.data);
	if (w.failed || out.failed) {
		free(w.fds);
		free(out.data);
		return -1;
	}
	state->data = out.data;
	state->len = out.len;
	state->fds = w.fds;
	state->nfds = w.nfds;
	return 0;
}

void upgrade_state_free(struct upgrade_state *state)
{
	free(state->data);
	free(state->fds);
	memset(state, 0, sizeof(*state));
}

/* ---- reading ---- */

/* The configuration file's channels as applied: specs as config_load() takes them. */
static struct vmc_config loaded_config;

struct reader {
	const uint8_t *p;
	size_t left;
	const char *why;	/* the first fault found; then every read yields 0 */
	bool apply;
	const char *endpoint_dir;	/* where listening channels' sockets are */
	unsigned int nfds;
	int fds[MAX_FDS];
	bool claimed[MAX_FDS];
};

static bool fail(struct reader *r, const char *why)
{
	if (!r->why)
		r->why = why;
	return false;
}

static bool get(struct reader *r, void *dst, size_t len)
{
	if (r->why || r->left < len) {
		fail(r, "truncated");
		memset(dst, 0, len);
		return false;
	}
	memcpy(dst, r->p, len);
	r->p += len;
	r->left -= len;
	return true;
}

static uint8_t get_u8(struct reader *r) { uint8_t v; get(r, &v, 1); return v; }
static uint16_t get_u16(struct reader *r) { uint16_t v; get(r, &v, 2); return le16toh(v); }
static uint32_t get_u32(struct reader *r) { uint32_t v; get(r, &v, 4); return le32toh(v); }
static uint64_t get_u64(struct reader *r) { uint64_t v; get(r, &v, 8); return le64toh(v); }

/* A string of fewer than @size bytes, no NUL inside. */
static void get_str(struct reader *r, char *dst, size_t size)
{
	uint16_t len = get_u16(r);

	dst[0] = '\0';
	if (len >= size)
		fail(r, "string too long");
	else if (get(r, dst, len))
		dst[len] = '\0';
	if (!r->why && strlen(dst) != len)
		fail(r, "NUL inside a string");
}

/* A descriptor from the table, each at most once; -1 for none. */
static int get_fd(struct reader *r)
{
	uint32_t index = get_u32(r);

	if (r->why || index == UPGRADE_NO_FD)
		return -1;
	if (index >= r->nfds)
		return fail(r, "descriptor index beyond the fd table"), -1;
	if (r->claimed[index])
		return fail(r, "descriptor named twice"), -1;
	r->claimed[index] = true;
	return r->fds[index];
}

static bool bit(uint8_t byte, unsigned int n)
{
	return byte >> n & 1;
}

/* The group names the previous binary resolved: this one cannot read /etc/group. */
static void load_groups(struct reader *r)
{
	unsigned int i, n = get_u32(r);
	char name[CONFIG_GROUP_NAME_SIZE];
	gid_t gid;

	if (n > CONFIG_KNOWN_GROUPS)
		fail(r, "too many group names");
	for (i = 0; i < n && !r->why; i++) {
		get_str(r, name, sizeof(name));
		gid = (gid_t)get_u32(r);
		if (!r->why && r->apply)
			config_group_remember(name, gid);
	}
}

static void load_config(struct reader *r, struct vmc_config *cfg)
{
	char name[VMCHANNEL_NAME_SIZE], path[108];
	const char *bad;
	unsigned int i;

	memset(cfg, 0, sizeof(*cfg));
	load_groups(r);
	if (!get_u8(r))
		return;
	get_str(r, cfg->endpoint_dir, sizeof(cfg->endpoint_dir));
	get_str(r, cfg->control_socket, sizeof(cfg->control_socket));
	cfg->nchannels = get_u32(r);
	if (cfg->nchannels > VMCHANNEL_MAX_CHANNELS)
		cfg->nchannels = 0, fail(r, "too many channels in the configuration");
	for (i = 0; i < cfg->nchannels && !r->why; i++) {
		get_str(r, cfg->channels[i], sizeof(cfg->channels[i]));
		cfg->access[i].mode = (mode_t)get_u32(r);
		cfg->access[i].gid = (gid_t)get_u32(r);
		if (!r->why && (channel_spec_parse(cfg->channels[i], name, path, &bad) < 0 ||
				cfg->access[i].mode & ~0777u))
			fail(r, "bad channel in the configuration");
	}
}

/* Whether @len bytes at @uaddr lie in one region of the memory table. */
static bool in_table(const struct guest_region_desc *desc, unsigned int n, uint64_t uaddr,
		     uint64_t len)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (uaddr >= desc[i].uaddr && uaddr - desc[i].uaddr <= desc[i].size &&
		    len <= desc[i].size - (uaddr - desc[i].uaddr))
			return true;
	return false;
}

/* The ring's parts inside the memory table: checked before anything is mapped. */
static bool ring_in_table(const struct vq *ring, const struct guest_region_desc *desc,
			  unsigned int n)
{
	size_t desc_len, avail_len, used_len;

	vq_ring_sizes(ring, &desc_len, &avail_len, &used_len);
	return in_table(desc, n, ring->desc_uaddr, desc_len) &&
	       in_table(desc, n, ring->avail_uaddr, avail_len) &&
	       in_table(desc, n, ring->used_uaddr, used_len);
}

static void load_vu(struct reader *r, struct vu_dev *vu)
{
	struct guest_region_desc desc[GUEST_MEM_MAX_REGIONS];
	int fds[GUEST_MEM_MAX_REGIONS], sock, backend;
	uint64_t features, protocol_features;
	unsigned int i, n;
	bool held;

	sock = get_fd(r);
	backend = get_fd(r);
	features = get_u64(r);
	protocol_features = get_u64(r);
	held = get_u8(r);
	n = get_u32(r);
	if (n > GUEST_MEM_MAX_REGIONS)
		n = 0, fail(r, "too many memory regions");
	for (i = 0; i < n; i++) {
		desc[i].gpa = get_u64(r);
		desc[i].size = get_u64(r);
		desc[i].uaddr = get_u64(r);
		desc[i].mmap_offset = get_u64(r);
		fds[i] = get_fd(r);
		if (!r->why && fds[i] < 0)
			fail(r, "memory region without a file");
	}
	if (r->apply && !r->why) {
		vu->backend_fd = backend;
		vu->features = features;
		vu->protocol_features = protocol_features;
		vu->config_change_held = held;
		if (n && guest_mem_set(&vu->mem, desc, fds, n) < 0)
			fail(r, "the memory table cannot be mapped again");
		if (sock >= 0 && vu_dev_attach(vu, sock) < 0)
			fail(r, "the frontend connection cannot be watched");
	}
	if (get_u32(r) != VU_DEV_MAX_QUEUES)
		fail(r, "wrong number of queues");
	for (i = 0; i < VU_DEV_MAX_QUEUES && !r->why; i++) {
		struct vq *vq = &vu->vqs[i], ring;
		uint8_t flags;

		vq_init(&ring);
		ring.num = get_u32(r);
		ring.desc_uaddr = get_u64(r);
		ring.avail_uaddr = get_u64(r);
		ring.used_uaddr = get_u64(r);
		ring.last_avail_idx = get_u16(r);
		ring.used_idx = get_u16(r);
		ring.signalled_used = get_u16(r);
		flags = get_u8(r);
		ring.signalled_used_valid = bit(flags, 1);
		ring.unsignalled = bit(flags, 2);
		ring.event_idx = bit(flags, 3);
		ring.enabled = bit(flags, 4);
		ring.started = bit(flags, 5);
		ring.broken = bit(flags, 6);
		ring.kick_fd = get_fd(r);
		ring.call_fd = get_fd(r);
		if (ring.num > VQ_MAX_SIZE || (ring.num & (ring.num - 1)) || (bit(flags, 0) && !ring.num))
			fail(r, "bad ring size");
		if (flags & 0x80)
			fail(r, "bad ring flags");
		if (!r->why && bit(flags, 0) && !ring_in_table(&ring, desc, n))
			fail(r, "a ring is outside guest memory");
		/* Every chain popped is used (or given back) before an upgrade. */
		if (!r->why && ring.started && !ring.broken && ring.last_avail_idx != ring.used_idx)
			fail(r, "a chain in flight");
		if (!r->apply || r->why)
			continue;
		ring.rings = vq->rings;		/* the device's, set when it was made */
		ring.nrings = vq->nrings;
		*vq = ring;
		if (bit(flags, 0) && !vq_map(vq, &vu->mem))
			fail(r, "a ring is outside guest memory");
		else if (!vu_dev_resume_queue(vu, i))
			fail(r, "a ring's kick cannot be watched");
	}
}

/* Skips @len bytes (a buffer not restored). */
static void skip(struct reader *r, size_t len)
{
	if (r->why || r->left < len) {
		fail(r, "truncated");
		return;
	}
	r->p += len;
	r->left -= len;
}

/*
 * Whether a listening channel's path is the one its name gives: it is
 * unlinked at removal, so it must not name any other file.
 */
static bool is_endpoint_path(const struct reader *r, const struct vmc_chan *ch)
{
	char want[sizeof(ch->path)];

	return endpoint_path(want, sizeof(want), r->endpoint_dir, ch->name) == 0 &&
	       !strcmp(want, ch->path);
}

/* One channel, into @dev's table or its removed list (a scratch device when checking). */
static void load_chan(struct reader *r, struct vmc_device *dev, bool removed)
{
	struct vmc_chan *ch = vmc_chan_new(dev);
	uint32_t counters;
	uint8_t flags, state;

	if (!ch) {
		fail(r, "out of memory");
		return;
	}
	ch->id = get_u32(r);
	get_str(r, ch->name, sizeof(ch->name));
	get_str(r, ch->path, sizeof(ch->path));
	flags = get_u8(r);
	ch->connects = bit(flags, 0);
	ch->removed = bit(flags, 1);
	ch->client_rd_eof = bit(flags, 2);
	ch->client_wr_closed = bit(flags, 3);
	ch->client_hup = bit(flags, 4);
	ch->connect_sent = bit(flags, 5);
	ch->data_lost = bit(flags, 6);
	state = get_u8(r);
	ch->listen_fd = get_fd(r);
	ch->client_fd = get_fd(r);
	ch->client_out_fd = get_fd(r);
	ch->session = get_u32(r);
	ch->owed = get_u32(r);
	ch->disconnects_sent = get_u32(r);
	ch->peer_eof_cnt = get_u32(r);
	ch->fwd_cnt = get_u32(r);
	ch->fwd_reported = get_u32(r);
	ch->tx_cnt = get_u32(r);
	ch->peer_buf_alloc = get_u32(r);
	ch->peer_fwd_cnt = get_u32(r);
	counters = get_u32(r);
#define COUNT(name) + 1
	if (counters != 0 VMC_CHAN_COUNTERS(COUNT))
		fail(r, "another set of channel counters");
#undef COUNT
#define GET_COUNTER(name) ch->stats.name = get_u64(r);
	VMC_CHAN_COUNTERS(GET_COUNTER)
#undef GET_COUNTER
	ch->stats.stalled = get_u8(r);
	ch->buf_len = get_u32(r);
	if (r->why)
		;
	else if (!ch->id || ch->id >= dev->next_id)
		fail(r, "channel id out of range");
	else if (!channel_name_valid(ch->name))
		fail(r, "bad channel name");
	else if (state >= CHAN_STATE_COUNT || state == CHAN_GONE)
		fail(r, "bad channel state");
	else if ((flags & 0x80) || ch->removed != removed)
		fail(r, "bad channel flags");
	else if (ch->owed & ~(unsigned int)(VMC_OWE_OPEN | VMC_OWE_CONNECT | VMC_OWE_DISCONNECT |
					    VMC_OWE_CREDIT))
		fail(r, "bad owed messages");
	else if (ch->buf_len > VMC_G2H_BUF_SIZE || ch->buf_len > r->left)
		fail(r, "bad buffer length");
	else if (ch->client_out_fd >= 0 && ch->client_fd < 0)
		fail(r, "an output without a connection");
	else if (!ch->connects && ch->path[0] && !is_endpoint_path(r, ch))
		fail(r, "a channel's socket is not <endpoint dir>/<name>.sock");
	ch->state = (enum chan_state)state;
	/* A session's channel has its buffer, as chan_new_session() gives it. */
	if (!r->why && r->apply && (ch->buf_len || chan_state_has_session(ch->state))) {
		ch->buf = malloc(VMC_G2H_BUF_SIZE);
		if (!ch->buf)
			fail(r, "out of memory");
	}
	if (ch->buf)
		get(r, ch->buf, ch->buf_len);
	else
		skip(r, ch->buf_len);
	if (r->why || vmc_device_adopt(dev, ch) < 0) {
		fail(r, "channel id or name repeated");
		free(ch->buf);
		free(ch);
	}
}

/* The channels a check put in its scratch device. */
static void free_scratch(struct vmc_device *dev)
{
	struct vmc_chan *ch;
	unsigned int i;

	for (i = 0; i < dev->nchans; i++)
		free(dev->chans[i]);
	while ((ch = dev->removed)) {
		dev->removed = ch->next_removed;
		free(ch);
	}
	free(dev->chans);
}

int upgrade_state_load(struct vmc_device *dev, struct upgrade_daemon *daemon,
		       const uint8_t *data, size_t len, bool apply, const char **why)
{
	static struct reader r;
	struct upgrade_daemon d = { 0 };
	struct vmc_device scratch;
	char head[sizeof(magic)];
	unsigned int i, n, nremoved;
	uint32_t version;
	uint64_t body;
	uint8_t flags;

	memset(&r, 0, sizeof(r));
	r.p = data;
	r.left = len;
	r.apply = apply;
	get(&r, head, sizeof(head));
	if (!r.why && memcmp(head, magic, sizeof(magic)))
		fail(&r, "not a vmchanneld state");
	version = get_u32(&r);
	if (!r.why && (version < UPGRADE_STATE_OLDEST || version > UPGRADE_STATE_VERSION))
		fail(&r, "a state version this binary does not read");
	if (get_u32(&r))
		fail(&r, "unknown header flags");
	body = get_u64(&r);
	if (!r.why && body != r.left)
		fail(&r, body > r.left ? "truncated" : "bytes after the state");
	r.nfds = get_u32(&r);
	if (r.nfds > MAX_FDS)
		r.nfds = 0, fail(&r, "fd table too long");
	for (i = 0; i < r.nfds && !r.why; i++) {
		uint32_t fd = get_u32(&r), k;

		r.fds[i] = (int)fd;
		if (fd > INT32_MAX || (apply && fcntl((int)fd, F_GETFD) < 0))
			fail(&r, "a descriptor of the fd table is not open");
		for (k = 0; k < i; k++)
			if (r.fds[k] == (int)fd)
				fail(&r, "a descriptor listed twice in the fd table");
	}

	get_str(&r, d.exe_path, sizeof(d.exe_path));
	if (!r.why && d.exe_path[0] != '/')
		fail(&r, "the binary's path is not absolute");
	d.sandboxed = get_u8(&r);
	d.access.mode = (mode_t)get_u32(&r);
	d.access.uid = (uid_t)get_u32(&r);
	d.access.gid = (gid_t)get_u32(&r);
	if (d.access.mode & ~0777u)
		fail(&r, "bad socket mode");
	d.frontend_listen_fd = get_fd(&r);
	d.control_listen_fd = get_fd(&r);
	d.control_client_fd = get_fd(&r);
	get_str(&r, d.endpoint_dir, sizeof(d.endpoint_dir));
	get_str(&r, d.control_path, sizeof(d.control_path));
	if (!r.why && !d.endpoint_dir[0])
		fail(&r, "no endpoint directory");
	r.endpoint_dir = d.endpoint_dir;
	load_config(&r, &loaded_config);

	/* Checked without a device: a scratch one takes the values and channels. */
	if (!apply) {
		memset(&scratch, 0, sizeof(scratch));
		TAILQ_INIT(&scratch.ready);
		TAILQ_INIT(&scratch.flush);
		scratch.chans = calloc(VMCHANNEL_MAX_CHANNELS, sizeof(*scratch.chans));
		if (!scratch.chans)
			fail(&r, "out of memory");
		dev = &scratch;
	}
	dev->generation = get_u32(&r);
	dev->select = get_u16(&r);
	dev->next_id = get_u32(&r);
	/* The next channel added takes next_id: never 0, never past the last. */
	if (!dev->next_id || dev->next_id == UINT32_MAX)
		fail(&r, "next channel id out of range");
	flags = get_u8(&r);
	if (flags & 0xf0)
		fail(&r, "bad device flags");
	dev->rx_starved = bit(flags, 0);
	dev->rx_suspended = bit(flags, 1);
	dev->owe_reset = bit(flags, 2);
	dev->owe_suspend = bit(flags, 3);
	load_vu(&r, &dev->vu);

	n = get_u32(&r);
	nremoved = get_u32(&r);
	if (n > VMCHANNEL_MAX_CHANNELS || nremoved > VMCHANNEL_MAX_CHANNELS)
		fail(&r, "too many channels");
	for (i = 0; i < n + nremoved && !r.why; i++)
		load_chan(&r, dev, i >= n);
	n = get_u32(&r);
	if (n > VMCHANNEL_MAX_CHANNELS)
		fail(&r, "too many waiting channels");
	for (i = 0; i < n && !r.why; i++)
		if (vmc_device_ready_restore(dev, get_u32(&r)) < 0)
			fail(&r, "a waiting channel that is not in the table");
	if (!r.why && r.left)
		fail(&r, "bytes after the state");
	for (i = 0; i < r.nfds && !r.why; i++)
		if (!r.claimed[i])
			fail(&r, "a descriptor of the fd table is not used");
	if (!apply)
		free_scratch(dev);
	else if (!r.why && vmc_device_resume(dev) < 0)
		fail(&r, "a channel's descriptors cannot be watched");
	if (r.why) {
		*why = r.why;
		return -1;
	}
	if (apply) {
		/*
		 * The exec cleared close-on-exec on these: set it back, so that
		 * the next upgrade's checker gets the state and its pipe only.
		 */
		for (i = 0; i < r.nfds; i++)
			fcntl(r.fds[i], F_SETFD, FD_CLOEXEC);
		d.file_config = daemon->file_config;
		if (d.file_config)
			*d.file_config = loaded_config;
		*daemon = d;
	}
	return 0;
}
