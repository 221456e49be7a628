// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmc-hostile-frontend: a misbehaving guest costs the daemon little CPU and few log lines.
 */
#include "hostile.h"

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

bool case_guest_cost(struct daemon *d)
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
