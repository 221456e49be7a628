// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmc-soak: the host side of the randomized lifecycle soak (docs/testing.md).
 *
 * Drives both ends of several vmchannel channels at random, from a seed: the
 * guest end through the agent vmc-soak-guest (commands over a virtio-serial
 * port), the host end directly (Unix sockets of vmchanneld), plus VM pauses
 * (QMP stop/cont), channel removal and addition (control socket, or the
 * configuration file and SIGHUP) and plain reloads.  Every byte is checked
 * against the model of docs/device-spec.md and docs/guest-api.md:
 *
 *   guest -> host  each host connection carries a contiguous piece of one
 *                  guest session's stream; a gap between two connections of
 *                  a session needs a host disconnect before it and an
 *                  ECONNRESET to the writer (once) after it; a connection
 *                  the device ends (guest close, channel removed) carries
 *                  every byte the session's writer was told it accepted.
 *   host -> guest  each host connection is delivered whole and in order,
 *                  then exactly one end of file (checked by the agent byte
 *                  by byte; here: the end of file comes after every byte the
 *                  host wrote, and only after the host closed).
 *   stalls         every guest command answers within its deadline plus
 *                  --stall seconds of VM run time; a guest writer with a
 *                  connected, reading host program makes progress within
 *                  --stall seconds.
 *   guest kernel   no warning in the forwarded kernel log (lockdep, KASAN,
 *                  BUG, WARNING, sleeping in atomic, hung task, kmemleak).
 *   vmchanneld     stays alive.
 *
 * A failure prints the reason, the seed and the event log's tail.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "soak-stream.h"

#define MAX_CHANS	8
#define SESS_RING	8	/* guest sessions remembered per channel */
#define CONN_RING	64	/* host connections remembered per channel */
#define IO_MAX		(256 * 1024)
#define LOG_TAIL	400

enum ev {
	EV_G_OPEN, EV_G_CLOSE, EV_G_REOPEN, EV_G_WRITE, EV_G_READ, EV_G_NB,
	EV_H_CONNECT, EV_H_DISCONNECT, EV_H_WRITE, EV_H_FAST, EV_H_SLOW, EV_H_STALL,
	EV_VM_STOP, EV_CH_REMOVE, EV_CH_ADD, EV_SIGHUP, EV_COUNT
};
static const char *ev_name[EV_COUNT] = {
	"guest-open", "guest-close", "guest-reopen", "guest-write", "guest-read", "guest-nonblock",
	"host-connect", "host-disconnect", "host-write", "host-reader-fast", "host-reader-slow",
	"host-reader-stall", "vm-stop-cont", "channel-remove", "channel-add", "sighup-reload",
};
static unsigned ev_weight[EV_COUNT] = {
	6, 3, 2, 18, 18, 2, 6, 4, 12, 4, 3, 2, 1, 1, 2, 1,
};
static unsigned long ev_count[EV_COUNT];

/* A guest session of a channel, as the host sees it. */
struct gsess {
	uint64_t no;		/* the agent's session number, 0: unused */
	uint64_t accepted;	/* bytes write() accepted */
	uint64_t pending;	/* bytes of a write not yet answered */
	uint64_t last_end;	/* end of the last host connection's piece */
	bool closed;		/* close answered */
	bool removed;		/* the channel was removed during the session */
	unsigned host_discs;	/* host-initiated disconnects during the session */
	bool reset_unmatched;	/* an ECONNRESET no gap has been matched to yet */
	bool need_reset;	/* a gap was seen and not yet reported */
	double need_since;
	bool end_known;		/* a connection the device ended: its end */
	uint64_t dev_end;
	double opened_at;
};

/* A host connection to a channel. */
struct hconn {
	uint32_t no;		/* 0: unused */
	int fd;
	double connected_at;
	/* host -> guest */
	uint64_t written;	/* stream bytes written (after the header) */
	unsigned hdr_sent;
	bool host_closed;
	bool eof_seen_by_guest;
	/* guest -> host */
	struct gsess *sess;	/* the session its bytes belong to, once known */
	uint64_t pos;
	uint8_t idbuf[64];
	size_t idlen;
	bool dev_eof;		/* the device ended it */
	bool hup;		/* poll said POLLHUP */
};

struct chan {
	unsigned idx;
	char name[16];
	bool config;		/* in the configuration file (else control socket) */
	bool present;
	double changed_at;	/* last removal or addition */
	/* guest side */
	bool open;
	bool nb;
	bool reopen;
	unsigned long cmd_id;	/* outstanding command, 0: none */
	char cmd_op[8];
	uint64_t cmd_len;
	double cmd_sent;
	double cmd_deadline;	/* run time by which it must be answered */
	struct gsess sess[SESS_RING];
	struct gsess *cur;
	uint32_t last_rconn;	/* host connection the guest reads now */
	/* host side */
	struct hconn conns[CONN_RING];
	struct hconn *conn;	/* the connected one */
	uint32_t next_conn;
	int reader;		/* 0 fast, 1 slow, 2 stalled */
	double next_slow_read;
	uint64_t budget;	/* host -> guest bytes still to write */
	double blocked_since;	/* guest writer without progress */
};

static struct chan chans[MAX_CHANS];
static unsigned nchans = 4;
static uint64_t seed = 1, rng_state;
static double duration = 120, stall_bound = 30, boot_timeout = 600;
static const char *ep_dir, *ctl_path, *qmp_path, *config_path, *log_path;
static pid_t daemon_pid;
static int ctl_fd = -1, qmp_fd = -1;
static FILE *log_file;
static char *tail[LOG_TAIL];
static unsigned tail_next;
static double t0, stopped_total, stopped_at = -1, cont_at;
static unsigned long next_id = 1;
static bool finished;
static char ctl_buf[65536];
static size_t ctl_len;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9 - t0;
}

/* Time the VM has run: stall bounds do not count pauses. */
static double run_time(void)
{
	double t = now();

	return t - stopped_total - (stopped_at >= 0 ? t - stopped_at : 0);
}

static uint64_t rnd(void)
{
	return soak_mix(rng_state++);
}

static uint64_t rnd_range(uint64_t lo, uint64_t hi)
{
	return lo + rnd() % (hi - lo + 1);
}

/* Sizes spread over orders of magnitude: 1 byte to max. */
static uint64_t rnd_size(uint64_t max)
{
	unsigned bits = (unsigned)rnd_range(0, 63 - (unsigned)__builtin_clzll(max));
	uint64_t v = rnd_range(1ull << bits, (2ull << bits) - 1);

	return v > max ? max : v;
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	char line[700];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "%9.3f ", now());
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (log_file) {
		fprintf(log_file, "%s\n", line);
		fflush(log_file);
	}
	free(tail[tail_next % LOG_TAIL]);
	tail[tail_next++ % LOG_TAIL] = strdup(line);
}

static void print_counts(FILE *out)
{
	unsigned i;

	fprintf(out, "vmc-soak: events:");
	for (i = 0; i < EV_COUNT; i++)
		fprintf(out, " %s=%lu", ev_name[i], ev_count[i]);
	fprintf(out, "\n");
}

static void cont_vm(void);

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	char msg[700];
	va_list ap;
	unsigned i, start;

	static int failing;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (failing++) {	/* failed again while reporting (e.g. resuming the VM) */
		fprintf(stderr, "vmc-soak: also: %s\n", msg);
		exit(1);
	}
	logf_("FAIL %s", msg);
	start = tail_next > LOG_TAIL ? tail_next - LOG_TAIL : 0;
	fprintf(stderr, "vmc-soak: event log (last %u of %u lines%s%s):\n", tail_next - start,
		tail_next, log_path ? ", all in " : "", log_path ? log_path : "");
	for (i = start; i < tail_next; i++)
		fprintf(stderr, "  %s\n", tail[i % LOG_TAIL]);
	print_counts(stderr);
	fprintf(stderr, "vmc-soak: FAILED after %.1f s: %s\n", now(), msg);
	fprintf(stderr, "vmc-soak: reproduce with seed %" PRIu64 "\n", seed);
	if (stopped_at >= 0)
		cont_vm();
	exit(1);
}

/* --- the guest agent ----------------------------------------------------- */

static void ctl_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ctl_send(const char *fmt, ...)
{
	char line[300];
	va_list ap;
	size_t len, off = 0;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	len = strlen(line);
	line[len++] = '\n';
	while (off < len) {
		ssize_t n = write(ctl_fd, line + off, len - off);

		if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
			struct pollfd p = { ctl_fd, POLLOUT, 0 };

			poll(&p, 1, 100);
			continue;
		}
		if (n < 0)
			fail("agent control port: %s", strerror(errno));
		off += (size_t)n;
	}
}

static void guest_cmd(struct chan *c, const char *op, uint64_t len, unsigned ms)
{
	unsigned long id = next_id++;

	c->cmd_id = id;
	snprintf(c->cmd_op, sizeof(c->cmd_op), "%s", op);
	c->cmd_len = len;
	c->cmd_sent = now();
	c->cmd_deadline = run_time() + ms / 1000.0 + stall_bound;
	if (!strcmp(op, "open"))
		ctl_send("%lu open %u %u", id, c->idx, c->nb);
	else if (!strcmp(op, "close"))
		ctl_send("%lu close %u", id, c->idx);
	else if (!strcmp(op, "nb"))
		ctl_send("%lu nb %u %u", id, c->idx, c->nb);
	else
		ctl_send("%lu %s %u %" PRIu64 " %u", id, op, c->idx, len, ms);
	logf_("%s: guest %s%s len=%" PRIu64 " deadline=%ums (cmd %lu)", c->name, op,
	      c->nb ? " nonblock" : "", len, ms, id);
}

static struct chan *chan_of_cmd(unsigned long id)
{
	unsigned i;

	for (i = 0; i < nchans; i++)
		if (chans[i].cmd_id == id)
			return &chans[i];
	return NULL;
}

static struct hconn *conn_no(struct chan *c, uint32_t no)
{
	struct hconn *h = &c->conns[no % CONN_RING];

	return no && h->no == no ? h : NULL;
}

/* Errors a channel may give because it was removed since the session began. */
static bool removal_error(struct chan *c, int e)
{
	bool removed = !c->present || (c->cur && c->cur->removed) ||
		       now() - c->changed_at < stall_bound;

	return removed && (e == ENODEV || e == ENXIO || e == ENOENT);
}

static void session_final_check(struct chan *c, struct gsess *s)
{
	if (!s->closed || !s->end_known || s->pending)
		return;
	logf_("%s: guest session %" PRIu64 " over: write() accepted %" PRIu64 ", its last host "
	      "connection ended at %" PRIu64 "%s", c->name, s->no, s->accepted, s->dev_end,
	      s->host_discs ? " (host disconnects during it)" : "");
	if (s->dev_end != s->accepted && !s->host_discs)
		fail("%s: guest session %" PRIu64 " ended with %" PRIu64
		     " bytes accepted by write(), its host connection got %" PRIu64
		     " before end of file, and no host disconnect explains it",
		     c->name, s->no, s->accepted, s->dev_end);
	s->end_known = false;
}

static void on_write_reply(struct chan *c, uint64_t acc, int e)
{
	struct gsess *s = c->cur;

	s->pending = 0;
	s->accepted += acc;
	if (e == ECONNRESET) {
		if (!s->host_discs)
			fail("%s: write() failed with ECONNRESET but no host connection of session %"
			     PRIu64 " went away", c->name, s->no);
		/* Several losses before a write are reported once, as on a socket. */
		if (s->need_reset)
			s->need_reset = false;
		else
			s->reset_unmatched = true;
	} else if (e && e != EAGAIN && e != EINTR && !removal_error(c, e)) {
		fail("%s: write() failed: %s", c->name, strerror(e));
	} else if (e == EAGAIN && !c->nb) {
		fail("%s: blocking write() failed with EAGAIN", c->name);
	}
	if (s->need_reset && c->cmd_sent > s->need_since + 1 && e != ECONNRESET && acc)
		fail("%s: bytes of session %" PRIu64 " were lost (seen at %.3f s) but write() "
		     "issued at %.3f s succeeded without ECONNRESET", c->name, s->no, s->need_since,
		     c->cmd_sent);
	/* Progress of a writer that should be able to write. */
	if (acc)
		c->blocked_since = 0;
	else if (!c->blocked_since)
		c->blocked_since = run_time();
	session_final_check(c, s);
}

static void on_read_reply(struct chan *c, long ret, int e, uint32_t conn, uint64_t off, bool nohdr)
{
	struct hconn *h;

	if (ret < 0) {
		if ((e == EAGAIN && c->nb) || e == EINTR || removal_error(c, e))
			return;
		fail("%s: read() failed: %s", c->name, strerror(e));
	}
	if (nohdr)
		fail("%s: end of file before any byte of a host connection (none was empty)", c->name);
	if (!conn)
		return;		/* the read ended inside a connection's header */
	h = conn_no(c, conn);
	if (conn < c->last_rconn)
		fail("%s: host connection %u's bytes after connection %u's", c->name, conn, c->last_rconn);
	c->last_rconn = conn;
	if (!h) {
		logf_("%s: guest read bytes of forgotten host connection %u", c->name, conn);
		return;
	}
	if (off > h->written)
		fail("%s: the guest read %" PRIu64 " bytes of host connection %u, which wrote %" PRIu64,
		     c->name, off, conn, h->written);
	if (ret == 0) {
		if (!h->host_closed)
			fail("%s: end of file for host connection %u, still open (offset %" PRIu64 ")",
			     c->name, conn, off);
		if (off != h->written)
			fail("%s: end of file after %" PRIu64 " bytes of host connection %u, which wrote %"
			     PRIu64 " before closing", c->name, off, conn, h->written);
		if (h->eof_seen_by_guest)
			fail("%s: two ends of file for host connection %u", c->name, conn);
		h->eof_seen_by_guest = true;
		logf_("%s: guest read end of file of host connection %u after %" PRIu64 " bytes",
		      c->name, conn, off);
	}
}

static void kernel_log(const char *msg)
{
	/* What lockdep, KASAN, UBSAN, kmemleak, the hung task and lockup
	 * detectors, DEBUG_ATOMIC_SLEEP, DEBUG_LIST, WARN and BUG print. */
	static const char *const bad[] = {
		"BUG:", "WARNING:", "UBSAN:", "DEBUG_LOCKS_WARN_ON", "INFO: task",
		"blocked for more than", "soft lockup", "hard LOCKUP", "suspected memory leak",
		"unreferenced object", "Oops", "general protection", "Call Trace:",
		"rcu: INFO:", "self-detected stall", "list_add corruption", "list_del corruption",
		"refcount_t:", "Kernel panic", "kernel BUG", "stack-protector", "double fault",
	};
	size_t i;

	logf_("guest kernel: %s", msg);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (strstr(msg, bad[i]))
			fail("guest kernel log: %s", msg);
}

static void on_ctl_line(char *line)
{
	unsigned long id;
	char word[16];
	struct chan *c;
	int n = 0;

	if (!strncmp(line, "K ", 2)) {
		kernel_log(line + 2);
		return;
	}
	if (sscanf(line, "%lu %15s %n", &id, word, &n) < 2)
		fail("agent said '%s'", line);
	if (!strcmp(word, "bad"))
		fail("agent: %s", line + n);
	if (!strcmp(word, "hello"))
		return;
	if (!strcmp(word, "finished")) {
		finished = true;
		logf_("agent: %s", line);
		return;
	}
	c = chan_of_cmd(id);
	if (!c)
		fail("agent answered unknown command %lu: '%s'", id, line);
	logf_("%s: guest answer: %s", c->name, line);
	c->cmd_id = 0;
	if (!strcmp(c->cmd_op, "open")) {
		uint64_t no;
		int e;

		if (!strcmp(word, "ok") && sscanf(line + n, "%" SCNu64, &no) == 1) {
			struct gsess *s = &c->sess[no % SESS_RING];

			memset(s, 0, sizeof(*s));
			s->no = no;
			s->opened_at = now();
			c->cur = s;
			c->open = true;
			c->last_rconn = 0;
			c->blocked_since = 0;
		} else if (sscanf(line + n, "%d", &e) == 1) {
			if (!removal_error(c, e))
				fail("%s: open() failed: %s", c->name, strerror(e));
		}
	} else if (!strcmp(c->cmd_op, "close")) {
		c->open = false;
		if (c->cur) {
			c->cur->closed = true;
			session_final_check(c, c->cur);
		}
		if (c->reopen) {
			c->reopen = false;
			guest_cmd(c, "open", 0, 0);
		}
	} else if (!strcmp(c->cmd_op, "nb")) {
		if (strcmp(word, "ok"))
			fail("%s: fcntl(O_NONBLOCK) failed: %s", c->name, line + n);
	} else if (!strcmp(c->cmd_op, "w")) {
		uint64_t acc;
		int e;

		if (sscanf(line + n, "%" SCNu64 " %d", &acc, &e) != 2)
			fail("agent: bad answer '%s'", line);
		if (acc > c->cmd_len)
			fail("%s: write() of %" PRIu64 " returned %" PRIu64, c->name, c->cmd_len, acc);
		on_write_reply(c, acc, e);
	} else if (!strcmp(c->cmd_op, "r")) {
		long ret;
		int e;
		unsigned conn;
		uint64_t off;

		if (sscanf(line + n, "%ld %d %u %" SCNu64, &ret, &e, &conn, &off) != 4)
			fail("agent: bad answer '%s'", line);
		on_read_reply(c, ret, e, conn, off, strstr(line + n, "nohdr") != NULL);
	}
}

static void ctl_read(void)
{
	ssize_t n = read(ctl_fd, ctl_buf + ctl_len, sizeof(ctl_buf) - 1 - ctl_len);
	char *nl;

	if (n == 0)
		fail("the agent's control port closed (guest gone?)");
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		fail("agent control port: %s", strerror(errno));
	}
	ctl_len += (size_t)n;
	ctl_buf[ctl_len] = 0;
	while ((nl = strchr(ctl_buf, '\n'))) {
		*nl = 0;
		on_ctl_line(ctl_buf);
		ctl_len -= (size_t)(nl + 1 - ctl_buf);
		memmove(ctl_buf, nl + 1, ctl_len + 1);
	}
	if (ctl_len >= sizeof(ctl_buf) - 1)
		fail("agent sent a line longer than %zu bytes", sizeof(ctl_buf));
}

/* --- host connections ---------------------------------------------------- */

static int unix_connect(const char *path, bool nonblock)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(a.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(a.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/*
 * A connection that ended with fewer bytes than it takes to place them: a
 * few bytes match some position of almost any long stream, so a search would
 * place them wrongly (seed 20261201: one byte of the current session taken
 * for a late byte of the previous one, hiding the disconnect that explained a
 * loss).  Only a continuation of a session where its last connection ended is
 * certain enough, newest session first; otherwise the bytes stay unplaced and
 * the connection counts as one that went away from the current session.
 */
static void identify_short(struct chan *c, struct hconn *h)
{
	struct gsess *best = NULL;
	unsigned k;

	for (k = 0; k < SESS_RING; k++) {
		struct gsess *s = &c->sess[k];

		if (!s->no || (best && best->no > s->no) ||
		    s->last_end + h->idlen > s->accepted + s->pending ||
		    soak_check(soak_key(seed, 1, c->idx, s->no), s->last_end, h->idbuf,
			       h->idlen) != h->idlen)
			continue;
		best = s;
	}
	if (!best) {
		logf_("%s: host connection %u: %zu bytes too few to place; not checked", c->name,
		      h->no, h->idlen);
		return;
	}
	h->sess = best;
	h->pos = best->last_end + h->idlen;
	best->last_end = h->pos;
	logf_("%s: host connection %u carries %zu bytes of guest session %" PRIu64 " from byte %"
	      PRIu64, c->name, h->no, h->idlen, best->no, h->pos - h->idlen);
}

/* The guest sessions a connection's bytes may belong to, newest last. */
static void identify(struct chan *c, struct hconn *h, bool at_eof)
{
	unsigned k;

	if (h->idlen < sizeof(h->idbuf) && !at_eof)
		return;
	if (h->idlen < sizeof(h->idbuf)) {
		identify_short(c, h);
		return;
	}
	for (k = 0; k < SESS_RING; k++) {
		struct gsess *s = &c->sess[k];
		uint64_t key, p, hi;

		if (!s->no || s->opened_at > h->connected_at + 3600)
			continue;
		key = soak_key(seed, 1, c->idx, s->no);
		hi = s->accepted + s->pending;
		for (p = s->last_end; p + h->idlen <= hi; p++) {
			if (soak_check(key, p, h->idbuf, h->idlen) != h->idlen)
				continue;
			h->sess = s;
			h->pos = p + h->idlen;
			logf_("%s: host connection %u carries guest session %" PRIu64 " from byte %" PRIu64,
			      c->name, h->no, s->no, p);
			if (p > s->last_end) {
				logf_("%s: %" PRIu64 " bytes of session %" PRIu64 " lost before it", c->name,
				      p - s->last_end, s->no);
				if (!s->host_discs)
					fail("%s: bytes %" PRIu64 "..%" PRIu64 " of guest session %" PRIu64
					     " never reached a host connection, and none went away",
					     c->name, s->last_end, p, s->no);
				/*
				 * The gap shows only when a later connection
				 * starts past it; the writer may have been told
				 * long before (the connection that lost the bytes
				 * is known to have gone, not when).
				 */
				if (s->reset_unmatched) {
					s->reset_unmatched = false;
				} else {
					s->need_reset = true;
					s->need_since = now();
				}
			}
			s->last_end = h->pos;
			return;
		}
	}
	fail("%s: host connection %u received %zu bytes that are no position of a recent guest "
	     "session's stream", c->name, h->no, h->idlen);
}

static void conn_received(struct chan *c, struct hconn *h, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (!h->sess) {
			size_t take = sizeof(h->idbuf) - h->idlen;

			if (take > n)
				take = n;
			memcpy(h->idbuf + h->idlen, p, take);
			h->idlen += take;
			p += take;
			n -= take;
			identify(c, h, false);
			continue;
		}
		struct gsess *s = h->sess;
		uint64_t key = soak_key(seed, 1, c->idx, s->no);
		size_t ok = soak_check(key, h->pos, p, n);

		if (ok < n)
			fail("%s: host connection %u: byte %" PRIu64 " of guest session %" PRIu64
			     " is %02x, expected %02x (lost, duplicated or reordered bytes)", c->name,
			     h->no, h->pos + ok, s->no, p[ok], soak_byte(key, h->pos + ok));
		if (h->pos + n > s->accepted + s->pending)
			fail("%s: host connection %u got byte %" PRIu64 " of guest session %" PRIu64
			     ", which wrote %" PRIu64, c->name, h->no, h->pos + n, s->no,
			     s->accepted + s->pending);
		h->pos += n;
		s->last_end = h->pos;
		c->blocked_since = 0;
		n = 0;
	}
}

static void conn_forget(struct chan *c, struct hconn *h)
{
	close(h->fd);
	h->fd = -1;
	if (c->conn == h)
		c->conn = NULL;
}

/* Reads what the host program may read now; returns false at end of file. */
static bool conn_read(struct chan *c, struct hconn *h, size_t max)
{
	static uint8_t buf[65536];
	ssize_t n;

	if (max > sizeof(buf))
		max = sizeof(buf);
	n = read(h->fd, buf, max);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return true;
		if (errno == ECONNRESET)
			n = 0;
		else
			fail("%s: read from host connection %u: %s", c->name, h->no, strerror(errno));
	}
	if (n == 0 && h->host_closed) {
		/* Our own shutdown(SHUT_RD), not the device's end: what came
		 * is all this connection gets. */
		if (h->idlen && !h->sess)
			identify(c, h, true);
		return false;
	}
	if (n == 0) {
		if (h->idlen && !h->sess)
			identify(c, h, true);
		logf_("%s: host connection %u: end of file after %s", c->name, h->no,
		      h->sess ? "its session's bytes" : "no guest byte");
		h->dev_eof = true;
		if (h->sess) {
			struct gsess *s = h->sess;

			if (!s->closed && c->cur == s && c->present && !s->removed &&
			    now() - c->changed_at > stall_bound && !(c->cmd_id && !strcmp(c->cmd_op, "close")))
				fail("%s: host connection %u got end of file while guest session %" PRIu64
				     " is open", c->name, h->no, s->no);
			s->end_known = true;
			s->dev_end = h->pos;
			session_final_check(c, s);
		}
		return false;
	}
	conn_received(c, h, buf, (size_t)n);
	return true;
}

static void host_disconnect(struct chan *c)
{
	struct hconn *h = c->conn;

	/* Take what is already in our socket: the device wrote it successfully. */
	shutdown(h->fd, SHUT_RDWR);
	h->host_closed = true;
	while (conn_read(c, h, 65536))
		;
	if (c->open && c->cur && h->sess != NULL && h->sess != c->cur)
		; /* an old session's connection */
	else if (c->open && c->cur)
		c->cur->host_discs++;
	/* A session still draining into it loses bytes too. */
	if (h->sess && h->sess != c->cur)
		h->sess->host_discs++;
	logf_("%s: host connection %u closed by the host (wrote %" PRIu64 ", read %s %" PRIu64 ")",
	      c->name, h->no, h->written, h->sess ? "up to" : "", h->sess ? h->pos : 0);
	conn_forget(c, h);
}

static void conn_write(struct chan *c, struct hconn *h)
{
	static uint8_t buf[65536];
	size_t n;
	ssize_t w;

	if (h->hdr_sent < SOAK_HDR_SIZE) {
		uint32_t hdr[2] = { SOAK_MAGIC, h->no };

		w = write(h->fd, (uint8_t *)hdr + h->hdr_sent, SOAK_HDR_SIZE - h->hdr_sent);
		if (w > 0)
			h->hdr_sent += (unsigned)w;
		if (w < 0 && errno != EAGAIN)
			goto err;
		return;
	}
	n = c->budget < sizeof(buf) ? c->budget : sizeof(buf);
	if (!n)
		return;
	soak_fill(soak_key(seed, 2, c->idx, h->no), h->written, buf, n);
	w = write(h->fd, buf, n);
	if (w > 0) {
		h->written += (uint64_t)w;
		c->budget -= (uint64_t)w;
		return;
	}
	if (w < 0 && errno == EAGAIN)
		return;
err:
	/* The device closed the connection (guest reopened, channel removed). */
	logf_("%s: host connection %u: write: %s", c->name, h->no, strerror(errno));
	c->budget = 0;
}

static void host_connect(struct chan *c)
{
	char path[300];
	struct hconn *h;
	int fd;

	snprintf(path, sizeof(path), "%s/%s.sock", ep_dir, c->name);
	fd = unix_connect(path, true);
	if (fd < 0) {
		logf_("%s: host connect: %s", c->name, strerror(errno));
		if (c->present && now() - c->changed_at > stall_bound && errno != EAGAIN)
			fail("%s: cannot connect to %s: %s", c->name, path, strerror(errno));
		return;
	}
	h = &c->conns[++c->next_conn % CONN_RING];
	if (h->no && h->fd >= 0)
		close(h->fd);
	memset(h, 0, sizeof(*h));
	h->no = c->next_conn;
	h->fd = fd;
	h->connected_at = now();
	c->conn = h;
	conn_write(c, h);
	logf_("%s: host connection %u opened", c->name, h->no);
}

/* --- VM and vmchanneld --------------------------------------------------- */

static void qmp_cmd(const char *cmd)
{
	char buf[4096];
	size_t len = 0;
	double deadline = now() + 30;

	if (write(qmp_fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
		fail("QMP write: %s", strerror(errno));
	for (;;) {
		struct pollfd p = { qmp_fd, POLLIN, 0 };
		ssize_t n;
		char *nl;

		if (now() > deadline)
			fail("QMP: no answer to %s", cmd);
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(qmp_fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			fail("QMP: %s", n ? strerror(errno) : "closed");
		len += (size_t)n;
		buf[len] = 0;
		while ((nl = strchr(buf, '\n'))) {
			*nl = 0;
			if (strstr(buf, "\"error\""))
				fail("QMP %s: %s", cmd, buf);
			if (strstr(buf, "\"return\""))
				return;
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len + 1);
		}
		if (len >= sizeof(buf) - 1)
			len = 0;
	}
}

static void qmp_open(void)
{
	qmp_fd = unix_connect(qmp_path, false);
	if (qmp_fd < 0)
		fail("QMP %s: %s", qmp_path, strerror(errno));
	qmp_cmd("{\"execute\":\"qmp_capabilities\"}\n");
}

static void cont_vm(void)
{
	qmp_cmd("{\"execute\":\"cont\"}\n");
	stopped_total += now() - stopped_at;
	stopped_at = -1;
	logf_("vm: cont");
}

static void write_config(void)
{
	char tmp[4200];
	FILE *f;
	unsigned i;

	snprintf(tmp, sizeof(tmp), "%s.tmp", config_path);
	f = fopen(tmp, "w");
	if (!f)
		fail("%s: %s", tmp, strerror(errno));
	fprintf(f, "# written by vmc-soak\n");
	for (i = 0; i < nchans; i++)
		if (chans[i].config && chans[i].present)
			fprintf(f, "channel %s\n", chans[i].name);
	if (fclose(f) || rename(tmp, config_path))
		fail("%s: %s", config_path, strerror(errno));
}

static void control(const char *verb, struct chan *c)
{
	char path[300], line[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/control", ep_dir);
	fd = unix_connect(path, false);
	if (fd < 0)
		fail("control socket %s: %s", path, strerror(errno));
	snprintf(line, sizeof(line), "%s %s\n", verb, c->name);
	if (write(fd, line, strlen(line)) < 0)
		fail("control socket: %s", strerror(errno));
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	line[n > 0 ? n : 0] = 0;
	line[strcspn(line, "\n")] = 0;
	logf_("%s: control %s: %s", c->name, verb, line);
	if (strcmp(line, "ok"))
		fail("%s: control socket refused '%s %s': %s", c->name, verb, c->name, line);
}

static void set_present(struct chan *c, bool present)
{
	unsigned k;

	c->present = present;
	c->changed_at = now();
	if (!present) {
		for (k = 0; k < SESS_RING; k++)
			if (c->sess[k].no && !c->sess[k].closed)
				c->sess[k].removed = true;
	}
}

/* --- events --------------------------------------------------------------- */

static unsigned deadline_ms(void)
{
	return (unsigned)rnd_size(4000);
}

/* Runs one random event; false if it does not apply now. */
static bool event(enum ev e, struct chan *c)
{
	switch (e) {
	case EV_G_OPEN:
		if (c->open || c->cmd_id)
			return false;
		c->nb = rnd() % 3 == 0;
		guest_cmd(c, "open", 0, 0);
		return true;
	case EV_G_CLOSE:
	case EV_G_REOPEN:
		if (!c->open || c->cmd_id)
			return false;
		c->reopen = e == EV_G_REOPEN;
		guest_cmd(c, "close", 0, 0);
		return true;
	case EV_G_WRITE: {
		uint64_t len = rnd_size(IO_MAX);

		if (!c->open || c->cmd_id)
			return false;
		c->cur->pending = len;
		guest_cmd(c, "w", len, deadline_ms());
		return true;
	}
	case EV_G_READ:
		if (!c->open || c->cmd_id)
			return false;
		guest_cmd(c, "r", rnd_size(IO_MAX), deadline_ms());
		return true;
	case EV_G_NB:
		if (!c->open || c->cmd_id)
			return false;
		c->nb = !c->nb;
		guest_cmd(c, "nb", 0, 0);
		return true;
	case EV_H_CONNECT:
		if (c->conn || !c->present)
			return false;
		host_connect(c);
		return true;
	case EV_H_DISCONNECT:
		if (!c->conn)
			return false;
		host_disconnect(c);
		return true;
	case EV_H_WRITE:
		if (!c->conn)
			return false;
		c->budget += rnd_size(IO_MAX);
		logf_("%s: host write budget now %" PRIu64, c->name, c->budget);
		return true;
	case EV_H_FAST:
	case EV_H_SLOW:
	case EV_H_STALL:
		c->reader = e - EV_H_FAST;
		c->blocked_since = 0;
		logf_("%s: host reader %s", c->name, ev_name[e] + 12);
		return true;
	case EV_VM_STOP:
		if (stopped_at >= 0)
			return false;
		qmp_cmd("{\"execute\":\"stop\"}\n");
		stopped_at = now();
		cont_at = stopped_at + (double)rnd_range(50, 3000) / 1000;
		logf_("vm: stop until %.3f", cont_at);
		return true;
	case EV_CH_REMOVE:
		if (!c->present)
			return false;
		set_present(c, false);
		if (c->config) {
			write_config();
			kill(daemon_pid, SIGHUP);
			logf_("%s: removed from the configuration, SIGHUP", c->name);
		} else {
			control("remove", c);
		}
		return true;
	case EV_CH_ADD:
		if (c->present)
			return false;
		set_present(c, true);
		if (c->config) {
			write_config();
			kill(daemon_pid, SIGHUP);
			logf_("%s: added to the configuration, SIGHUP", c->name);
		} else {
			control("add", c);
		}
		return true;
	case EV_SIGHUP:
		write_config();
		kill(daemon_pid, SIGHUP);
		logf_("vmchanneld: SIGHUP, configuration unchanged");
		return true;
	case EV_COUNT:
		break;
	}
	return false;
}

static enum ev pick_event(void)
{
	unsigned total = 0, i, r;

	for (i = 0; i < EV_COUNT; i++)
		total += ev_weight[i];
	r = (unsigned)(rnd() % total);
	for (i = 0; i < EV_COUNT; i++) {
		if (r < ev_weight[i])
			return (enum ev)i;
		r -= ev_weight[i];
	}
	return EV_G_WRITE;
}

static void checks(void)
{
	double rt = run_time();
	unsigned i;

	if (daemon_pid && kill(daemon_pid, 0) < 0 && errno == ESRCH)
		fail("vmchanneld (pid %d) is gone", (int)daemon_pid);
	for (i = 0; i < nchans; i++) {
		struct chan *c = &chans[i];
		struct hconn *h = c->conn;

		if (c->cmd_id && stopped_at < 0 && rt > c->cmd_deadline)
			fail("%s: the guest's %s (command %lu, sent at %.3f s) has not returned "
			     "%.0f s past its deadline", c->name, c->cmd_op, c->cmd_id, c->cmd_sent,
			     stall_bound);
		/* A writer with a linked, reading host program must progress. */
		if (c->blocked_since && c->open && h && c->reader == 0 && c->present &&
		    now() - c->changed_at > stall_bound && (!h->sess || h->sess == c->cur) &&
		    h->connected_at < now() - 2 && stopped_at < 0 &&
		    rt - c->blocked_since > stall_bound)
			fail("%s: the guest writer made no progress for %.0f s with host connection %u "
			     "reading", c->name, rt - c->blocked_since, h->no);
		if (c->blocked_since && (!h || c->reader || !c->open || (h->sess && h->sess != c->cur)))
			c->blocked_since = run_time();
	}
}

static void loop_once(int timeout_ms)
{
	struct pollfd p[1 + MAX_CHANS];
	struct hconn *who[1 + MAX_CHANS];
	unsigned n = 0, i;
	double t = now();

	p[n].fd = ctl_fd;
	p[n].events = POLLIN;
	who[n++] = NULL;
	for (i = 0; i < nchans; i++) {
		struct chan *c = &chans[i];
		struct hconn *h = c->conn;

		if (!h || (h->hup && c->reader == 2 && !c->budget))
			continue;	/* a stalled reader does not look */
		p[n].fd = h->fd;
		p[n].events = 0;
		if (c->reader == 0 || (c->reader == 1 && t >= c->next_slow_read))
			p[n].events |= POLLIN;
		if (c->budget || h->hdr_sent < SOAK_HDR_SIZE)
			p[n].events |= POLLOUT;
		who[n++] = h;
	}
	if (poll(p, n, timeout_ms) < 0 && errno != EINTR)
		fail("poll: %s", strerror(errno));
	if (p[0].revents)
		ctl_read();
	for (i = 1; i < n; i++) {
		struct hconn *h = who[i];
		struct chan *c = NULL;
		unsigned k;

		for (k = 0; k < nchans; k++)
			if (chans[k].conn == h)
				c = &chans[k];
		if (!c || !p[i].revents)
			continue;
		if (p[i].revents & POLLOUT)
			conn_write(c, h);
		if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
			if (c->reader == 2 && !(p[i].revents & POLLIN)) {
				h->hup = true;
				continue;
			}
			if (c->reader == 1)
				c->next_slow_read = t + 0.02;
			if (!conn_read(c, h, c->reader == 1 ? 4096 : 65536)) {
				h->host_closed = true;
				conn_forget(c, h);
			}
		}
	}
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: vmc-soak --endpoint-dir DIR --agent PATH --qmp PATH --config FILE\n"
		"                --daemon-pid PID [--seed N] [--duration SECS] [--channels N]\n"
		"                [--stall SECS] [--log FILE]\n"
		"\n"
		"The host side of the randomized lifecycle soak (userspace-tests/soak/run\n"
		"starts the guest and calls this).  Channels s0..s<N-1>: the first half are\n"
		"in vmchanneld's configuration FILE (removed and added by rewriting it and\n"
		"SIGHUP), the rest come from the command line (removed and added through\n"
		"DIR/control).  The guest agent listens on the virtio-serial port whose\n"
		"QEMU socket is --agent PATH.\n"
		"\n"
		"  --seed N         random events from seed N (default 1)\n"
		"  --duration SECS  events for SECS seconds (default 120)\n"
		"  --channels N     1 to %d (default 4)\n"
		"  --stall SECS     the stall bound (default 30)\n"
		"  --boot-timeout SECS  wait this long for the agent (default 600)\n"
		"  --log FILE       the whole event log\n"
		"  --without LIST   never these event kinds (comma-separated names as in\n"
		"                   the counts at the end, e.g. vm-stop-cont,channel-remove)\n"
		"\n"
		"Exit status: 0 passed, 1 a check failed (the reason, the seed and the event\n"
		"log's tail on stderr), 2 bad usage.\n", MAX_CHANS);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "channels", required_argument, NULL, 'n' },
		{ "stall", required_argument, NULL, 'S' },
		{ "boot-timeout", required_argument, NULL, 'B' },
		{ "endpoint-dir", required_argument, NULL, 'e' },
		{ "agent", required_argument, NULL, 'a' },
		{ "qmp", required_argument, NULL, 'q' },
		{ "config", required_argument, NULL, 'c' },
		{ "daemon-pid", required_argument, NULL, 'p' },
		{ "log", required_argument, NULL, 'l' },
		{ "without", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	double next_event, end;
	unsigned i;
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'd': duration = atof(optarg); break;
		case 'n': nchans = (unsigned)atoi(optarg); break;
		case 'S': stall_bound = atof(optarg); break;
		case 'B': boot_timeout = atof(optarg); break;
		case 'e': ep_dir = optarg; break;
		case 'a': ctl_path = optarg; break;
		case 'q': qmp_path = optarg; break;
		case 'c': config_path = optarg; break;
		case 'p': daemon_pid = (pid_t)atoi(optarg); break;
		case 'l': log_path = optarg; break;
		case 'w': {
			char *list = strdup(optarg), *save = NULL, *tok;

			for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				for (i = 0; i < EV_COUNT && strcmp(tok, ev_name[i]); i++)
					;
				if (i == EV_COUNT) {
					fprintf(stderr, "vmc-soak: --without: no event kind '%s'\n", tok);
					return 2;
				}
				ev_weight[i] = 0;
			}
			free(list);
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !ep_dir || !ctl_path || !qmp_path || !config_path || !daemon_pid ||
	    nchans < 1 || nchans > MAX_CHANS || duration < 0 || stall_bound <= 0) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	t0 = 0;
	t0 = now();
	rng_state = soak_mix(seed);
	if (log_path) {
		log_file = fopen(log_path, "w");
		if (!log_file) {
			fprintf(stderr, "vmc-soak: %s: %s\n", log_path, strerror(errno));
			return 2;
		}
	}
	for (i = 0; i < nchans; i++) {
		struct chan *c = &chans[i];

		c->idx = i;
		snprintf(c->name, sizeof(c->name), "s%u", i);
		c->config = i < (nchans + 1) / 2;
		c->present = true;
		c->changed_at = -1e9;
		for (o = 0; o < CONN_RING; o++)
			c->conns[o].fd = -1;
	}
	logf_("seed %" PRIu64 ", %u channels, %.0f s, stall bound %.0f s", seed, nchans, duration,
	      stall_bound);
	/* The agent: QEMU's socket for the port, then its hello. */
	while ((ctl_fd = unix_connect(ctl_path, false)) < 0) {
		if (now() > boot_timeout)
			fail("agent port %s: %s", ctl_path, strerror(errno));
		usleep(200000);
	}
	fcntl(ctl_fd, F_SETFL, O_NONBLOCK);
	for (;;) {
		struct pollfd p = { ctl_fd, POLLIN, 0 };

		if (now() > boot_timeout)
			fail("no hello from the guest agent within %.0f s", boot_timeout);
		if (poll(&p, 1, 500) > 0) {
			ssize_t n = read(ctl_fd, ctl_buf + ctl_len, sizeof(ctl_buf) - 1 - ctl_len);

			if (n > 0) {
				ctl_len += (size_t)n;
				ctl_buf[ctl_len] = 0;
				if (strstr(ctl_buf, "hello"))
					break;
			} else if (n == 0) {
				usleep(100000);
			}
		}
	}
	{
		char *nl;

		/* Kernel log lines that came before the hello. */
		while ((nl = strchr(ctl_buf, '\n'))) {
			*nl = 0;
			on_ctl_line(ctl_buf);
			ctl_len -= (size_t)(nl + 1 - ctl_buf);
			memmove(ctl_buf, nl + 1, ctl_len + 1);
		}
	}
	logf_("agent ready after %.1f s", now());
	fprintf(stderr, "vmc-soak: guest ready after %.1f s; seed %" PRIu64 ", %.0f s of events\n",
		now(), seed, duration);
	qmp_open();
	t0 += 0;
	end = now() + duration;
	next_event = now();
	while (now() < end) {
		loop_once(10);
		checks();
		if (stopped_at >= 0 && now() >= cont_at)
			cont_vm();
		if (now() >= next_event) {
			unsigned tries;

			/* Picks until one applies (a busy channel takes no guest event). */
			for (tries = 0; tries < 16; tries++) {
				enum ev e = pick_event();
				struct chan *c = &chans[rnd() % nchans];

				if (event(e, c)) {
					ev_count[e]++;
					break;
				}
			}
			/* Random pauses between events: mostly short, sometimes long. */
			next_event = now() + (rnd() % 8 ? (double)rnd_range(0, 50) : (double)rnd_range(50, 1500)) / 1000;
		}
	}
	/* Wind down: VM running, commands answered, then the agent quits. */
	logf_("duration reached: finishing");
	if (stopped_at >= 0)
		cont_vm();
	for (i = 0; i < nchans; i++)
		chans[i].reader = 0;
	for (;;) {
		bool busy = false;

		for (i = 0; i < nchans; i++)
			busy |= chans[i].cmd_id != 0;
		if (!busy)
			break;
		loop_once(10);
		checks();
	}
	/* A last kmemleak scan in the guest (slow under TCG with KASAN). */
	ctl_send("0 finish");
	{
		double deadline = now() + 600;

		while (!finished) {
			if (now() > deadline)
				fail("the guest's final kmemleak scan did not end within 600 s");
			loop_once(100);
		}
	}
	ctl_send("0 quit");
	logf_("passed");
	print_counts(stdout);
	printf("vmc-soak: passed, seed %" PRIu64 ", %.0f s\n", seed, duration);
	return 0;
}
