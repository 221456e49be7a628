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
 * log in the work directory, announced as the journal's stream).  Exit
 * status: 0 when every case passed.  This file holds the case table and
 * main(); hostile.h says which file holds what else.
 */
#include "hostile.h"

const char *daemon_path;
char work_dir[] = "/tmp/vmc-hostile.XXXXXX";
char failure[512];

bool fail(const char *fmt, ...)
{
	va_list ap;

	if (failure[0])
		return false;		/* the first reason is the one that counts */
	va_start(ap, fmt);
	vsnprintf(failure, sizeof(failure), fmt, ap);
	va_end(ap);
	return false;
}

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for @events on @fd for up to @ms; true if they came. */
bool wait_fd(int fd, short events, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	return poll(&pfd, 1, ms) == 1;
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
	{ "shrinking-rx-buffers", case_shrinking_rx_buffers, FRONTEND_PATH },
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
