// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmc-hostile-frontend: cases where the frontend misbehaves: rings resized, memory tables
 * failed or shrunk, bad fds, truncated messages, long chains, --fd sockets.
 */
#include "hostile.h"

/*
 * A started ring must not grow past what was checked: size 1 with the used
 * ring at the very end of memory, then 32768.
 */
bool case_ring_resize(struct daemon *d)
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
bool case_failed_mem_table(struct daemon *d)
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

/*
 * Descriptors that are not eventfds, or replaced ones: a kick socket whose
 * peer hung up, a call pipe that is full, an old kick fd still signalled
 * after its replacement (a blocking eventfd).
 */
bool case_bad_fds(struct daemon *d)
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
bool case_truncated(struct daemon *d)
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

/*
 * Posts @n receive buffers, each across a page boundary: its header in the
 * last bytes of slot k's page, its payload in slot k + 1's page.
 */
static void rx_post_across_pages(struct guest *g, unsigned int n)
{
	struct ring *r = &g->rings[VMCHANNEL_VQ_RX];

	while (n--) {
		uint16_t slot = r->avail_idx % r->num;

		ring_post(r, slot, buf_gpa(VMCHANNEL_VQ_RX, slot + 1) - HDR_SIZE, BUF_SIZE,
			  VRING_DESC_F_WRITE, 0);
		ring_publish(r, slot);
	}
	kick(r);
}

/*
 * Host bytes bound for an rx buffer whose payload the frontend cut off (its
 * header still in memory): the daemon reads from the host socket straight
 * into guest memory, and that readv() fails with EFAULT, not SIGBUS.  It
 * must take that as the guest's fault and drop the frontend, not as the host
 * program's end of stream, which would tell the guest the host closed.
 */
bool case_shrinking_rx_buffers(struct daemon *d)
{
	struct guest g = { 0 };
	bool ok = guest_up(&g, d, false);
	uint16_t next;
	int host = -1;

	rx_post_across_pages(&g, 16);
	ok = ok && tx_send(&g, VMCHANNEL_MSG_OPEN, 9, NULL, 0);
	kick(&g.rings[VMCHANNEL_VQ_TX]);
	host = ok ? unix_connect(d->ep_path) : -1;
	ok = ok && host >= 0 && write(host, "ping", 4) == 4 && rx_expect_data(&g, "ping");
	/* The next buffer's payload page, and everything after it, goes. */
	next = used_idx(&g.rings[VMCHANNEL_VQ_RX]) % RING_NUM;
	if (ok && ftruncate(g.memfd, (off_t)buf_gpa(VMCHANNEL_VQ_RX, next + 1)) < 0)
		ok = fail("ftruncate: %s", strerror(errno));
	ok = ok && write(host, "lost", 4) == 4;
	ok = ok && dropped(g.sock) && log_wait(d, "guest memory faulted");
	if (host >= 0)
		close(host);
	guest_free(&g);
	return ok && round_trip(d);
}

/* The frontend shrinks guest memory under the daemon: SIGBUS must not kill it. */
bool case_shrinking_memory(struct daemon *d)
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

/* A chain of 4096 descriptors, all but the last empty: refused, not walked. */
bool case_long_chain(struct daemon *d)
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

/* --fd with a listening socket: frontends connect in turn, as with --socket-path. */
bool case_fd_listening(struct daemon *d)
{
	return round_trip(d) && round_trip(d);
}

/* --fd with a connected socket: it serves that frontend, then exits 0 when it leaves. */
bool case_fd_connected(struct daemon *d)
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
