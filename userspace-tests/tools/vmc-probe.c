// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmc-probe: checks of the guest API of /dev/vmchannel/<name> that a shell
 * cannot express (signals, ioctls, poll bits).  Runs in the guest.  Each probe
 * prints what it observed, one fact per line, for the end-to-end test to
 * compare; it says "ready" on --ready PATH when the host may act.
 *
 *   vmc-probe async --ready PATH NODE      SIGIO and FIONREAD
 *   vmc-probe host-wait --ready PATH NODE  connection state, VMCHANNEL_IOC_WAIT_HOST,
 *                                          O_NONBLOCK before the host connects
 *   vmc-probe signals --ready PATH NODE    signals interrupt blocking calls
 *   vmc-probe removal --ready PATH NODE    a poller woken by the channel's removal
 *   vmc-probe uevents --ready PATH NODE    the uevents of a host connect and disconnect
 *   vmc-probe agent --ready PATH NODE      a virtio-serial style agent (qemu-ga's
 *                                          loop): echoes two host clients in turn
 *   vmc-probe loss --ready PATH NODE       a host client leaves with guest bytes
 *                                          undelivered: ECONNRESET once, then on
 *   vmc-probe eofs --count N [--settle K] --ready PATH NODE
 *                                          one end of file per host connection
 *
 * Every blocking step is bounded by --wait SECS (default 60) through alarm().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/vmchannel.h>

static const char *ready_path;
static unsigned int wait_secs = 60;

static _Noreturn void die(const char *what)
{
	fprintf(stderr, "vmc-probe: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Tells the host test it may act now. */
static void say_ready(void)
{
	int fd;

	if (!ready_path)
		return;
	fd = open(ready_path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "ready\n", 6) != 6)
		die(ready_path);
	close(fd);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* SIGALRM interrupts system calls (no SA_RESTART) and does nothing else. */
static void catch_alarm(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0)
		die("sigaction");
}

static short poll_now(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };

	if (poll(&p, 1, 0) < 0)
		die("poll");
	return p.revents;
}

static void print_state(const char *when, int fd)
{
	struct vmchannel_state st;

	if (ioctl(fd, VMCHANNEL_IOC_GET_STATE, &st) < 0)
		die("VMCHANNEL_IOC_GET_STATE");
	printf("%s: connected=%d removed=%d connections=%u pollout=%d\n", when,
	       !!(st.flags & VMCHANNEL_STATE_HOST_CONNECTED),
	       !!(st.flags & VMCHANNEL_STATE_REMOVED), st.connections,
	       !!(poll_now(fd) & POLLOUT));
}

/* SIGIO arrives when host bytes do; FIONREAD then counts them. */
static int probe_async(int fd)
{
	struct timespec left = { .tv_sec = wait_secs };
	sigset_t set;
	int avail = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGIO);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 || fcntl(fd, F_SETOWN, getpid()) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC) < 0)
		die("arming SIGIO");
	say_ready();
	while (!avail) {
		if (sigtimedwait(&set, NULL, &left) < 0)
			die("waiting for SIGIO");
		if (ioctl(fd, FIONREAD, &avail) < 0)
			die("FIONREAD");
	}
	printf("sigio fionread=%d\n", avail);
	return 0;
}

/* Before and after a host program connects; waiting blocks, never spins. */
static int probe_host_wait(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	print_state("before", fd);
	if (fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		die("O_NONBLOCK");
	printf("nonblocking wait: %s\n",
	       ioctl(fd, VMCHANNEL_IOC_WAIT_HOST) < 0 ? strerror(errno) : "returned");
	printf("nonblocking read: %s\n", read(fd, &flags, 1) < 0 ? strerror(errno) : "returned");
	printf("nonblocking write: %s\n", write(fd, "x", 1) < 0 ? strerror(errno) : "returned");
	if (fcntl(fd, F_SETFL, flags) < 0)
		die("~O_NONBLOCK");
	say_ready();
	alarm(wait_secs);
	if (ioctl(fd, VMCHANNEL_IOC_WAIT_HOST) < 0)
		die("VMCHANNEL_IOC_WAIT_HOST");
	alarm(0);
	print_state("after", fd);
	return 0;
}

/*
 * A signal interrupts a blocked read and a blocked write with EINTR and
 * nothing consumed or sent; the stream then goes on intact.
 */
static int probe_signals(int fd)
{
	char buf[64];
	ssize_t n;
	size_t got = 0;

	catch_alarm();
	alarm(1);
	n = read(fd, buf, sizeof(buf));
	printf("blocked read: %s\n", n < 0 ? strerror(errno) : "returned");
	alarm(1);
	n = write(fd, "lost", 4);
	printf("blocked write: %s\n", n < 0 ? strerror(errno) : "returned");
	say_ready();
	alarm(wait_secs);
	while (got < 5) {
		n = read(fd, buf + got, 5 - got);
		if (n <= 0)
			die("read after the signals");
		got += (size_t)n;
	}
	printf("then read: %.5s\n", buf);
	if (write(fd, "after", 5) != 5)
		die("write after the signals");
	return 0;
}

/* Sleeps in poll until the host removes the channel, then tries everything. */
static int probe_removal(int fd, const char *node)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct stat st;
	char c;

	say_ready();
	alarm(wait_secs);
	if (poll(&p, 1, -1) < 0)
		die("poll");
	alarm(0);
	printf("poll:%s%s%s\n", p.revents & POLLIN ? " POLLIN" : "",
	       p.revents & POLLHUP ? " POLLHUP" : "", p.revents & POLLERR ? " POLLERR" : "");
	printf("read: %s\n", read(fd, &c, 1) < 0 ? strerror(errno) : "returned");
	printf("write: %s\n", write(fd, "x", 1) < 0 ? strerror(errno) : "returned");
	printf("wait for host: %s\n",
	       ioctl(fd, VMCHANNEL_IOC_WAIT_HOST) < 0 ? strerror(errno) : "returned");
	print_state("state", fd);
	printf("node: %s\n", stat(node, &st) < 0 ? strerror(errno) : "still there");
	return 0;
}

/* The value of @key in a uevent message of @len bytes, or NULL. */
static const char *uevent_value(const char *msg, size_t len, const char *key)
{
	size_t klen = strlen(key);
	const char *p;

	for (p = msg; p < msg + len; p += strlen(p) + 1)
		if (!strncmp(p, key, klen) && p[klen] == '=')
			return p + klen + 1;
	return NULL;
}

/*
 * Prints the kernel's uevents for NODE's class device until two arrived: a
 * host program connecting and leaving must each send one ("change") that
 * udev rules can match, saying the new state.
 */
static int probe_uevents(const char *node)
{
	struct sockaddr_nl addr = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	const char *name = strrchr(node, '/') ? strrchr(node, '/') + 1 : node;
	const char *action, *devname, *state;
	char buf[8192];
	int nl, seen = 0;

	nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
	if (nl < 0 || bind(nl, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("uevent socket");
	say_ready();
	alarm(wait_secs);
	while (seen < 2) {
		ssize_t n = recv(nl, buf, sizeof(buf) - 1, 0);

		if (n < 0)
			die("recv uevent");
		buf[n] = '\0';
		action = uevent_value(buf, (size_t)n, "ACTION");
		devname = uevent_value(buf, (size_t)n, "DEVNAME");
		state = uevent_value(buf, (size_t)n, "VMCHANNEL_HOST_CONNECTED");
		if (!action || !devname || strncmp(devname, "vmchannel/", 10) ||
		    strcmp(devname + 10, name))
			continue;
		printf("%s VMCHANNEL_HOST_CONNECTED=%s\n", action, state ? state : "(none)");
		seen++;
	}
	close(nl);
	return 0;
}

/* Writes all of @buf to a non-blocking @fd, sleeping in poll for room. */
static void write_all_nonblock(int fd, const char *buf, size_t len)
{
	while (len) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno != EAGAIN)
			die("write");
		if (n < 0) {
			if (poll(&p, 1, -1) < 0)
				die("poll for POLLOUT");
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
}

/*
 * The loop of a virtio-serial agent such as qemu-ga: O_NONBLOCK, poll for
 * POLLIN|POLLHUP, read; end of file means "the host client left".  Counts the
 * wake-ups that found nothing to do: with virtio-serial they never stop while
 * no host client is connected.
 */
static int probe_agent(int fd)
{
	unsigned int clients = 0, empty = 0;
	char buf[4096];
	ssize_t n;

	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		die("O_NONBLOCK");
	say_ready();
	alarm(wait_secs);
	while (clients < 2) {
		struct pollfd p = { .fd = fd, .events = POLLIN | POLLHUP };

		if (poll(&p, 1, -1) < 0)
			die("poll");
		n = read(fd, buf, sizeof(buf));
		if (n > 0)
			write_all_nonblock(fd, buf, (size_t)n);
		else if (n == 0)
			clients++;
		else if (errno == EAGAIN)
			empty++;
		else
			die("read");
	}
	printf("served %u clients, %u empty wake-ups\n", clients, empty);
	return 0;
}

/*
 * loss: a host client connects and never reads; the guest writes up to 1 MiB
 * (until writes stall: more than the host's socket can hold), says ready, and
 * the host client disconnects.  The guest then reads the end of file of that
 * connection and writes again: the first write must fail with ECONNRESET (the
 * device discarded bytes that write() had accepted), the next one not (once),
 * and a write to the next host connection must get through.
 */
#define LOSS_BYTES (1U << 20)

static int probe_loss(int fd)
{
	static char buf[65536];
	size_t wrote = 0;
	ssize_t n;
	int flags = fcntl(fd, F_GETFL);

	catch_alarm();
	memset(buf, 'x', sizeof(buf));
	say_ready();
	alarm(wait_secs);
	if (ioctl(fd, VMCHANNEL_IOC_WAIT_HOST) < 0)
		die("VMCHANNEL_IOC_WAIT_HOST");
	alarm(0);
	if (fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		die("O_NONBLOCK");
	while (wrote < LOSS_BYTES) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		size_t len = LOSS_BYTES - wrote < sizeof(buf) ? LOSS_BYTES - wrote : sizeof(buf);

		n = write(fd, buf, len);
		if (n > 0) {
			wrote += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN)
			die("write while the host reads nothing");
		/* No credit: wait a little for more; a second without any is a stall. */
		if (poll(&p, 1, 1000) < 0)
			die("poll");
		if (!(p.revents & POLLOUT))
			break;
	}
	printf("wrote=%zu\n", wrote);
	if (fcntl(fd, F_SETFL, flags) < 0)
		die("~O_NONBLOCK");
	say_ready();
	alarm(wait_secs);
	n = read(fd, buf, sizeof(buf));
	alarm(0);
	if (n == 0)
		printf("read: end of file\n");
	else if (n < 0)
		printf("read: %s\n", strerror(errno));
	else
		printf("read: %zd bytes\n", n);
	/* Bounded: where the loss goes unreported, this write may block. */
	alarm(10);
	n = write(fd, "x", 1);
	alarm(0);
	printf("write after the loss: %s\n", n < 0 ? strerror(errno) : "accepted");
	if (fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		die("O_NONBLOCK");
	n = write(fd, "x", 1);
	printf("write again: %s\n", n < 0 ? strerror(errno) : "accepted");
	if (fcntl(fd, F_SETFL, flags) < 0)
		die("~O_NONBLOCK");
	say_ready();
	alarm(wait_secs);
	n = write(fd, "after\n", 6);
	alarm(0);
	printf("write to the next connection: %s\n",
	       n == 6 ? "ok" : n < 0 ? strerror(errno) : "short");
	return 0;
}

/*
 * eofs: the guest does not read while host programs connect and leave in
 * turn; it waits (GET_STATE, bounded) until @settle connections have come
 * and gone, then reads, printing the bytes as they come and "<eof>" for each
 * end of file, until @count ends of file (or --wait runs out: "timed out").
 */
static int probe_eofs(int fd, unsigned int count, unsigned int settle)
{
	const struct timespec tick = { .tv_nsec = 20000000 };
	struct vmchannel_state st;
	unsigned int eofs = 0, ticks = 0;
	char buf[4096];

	catch_alarm();
	say_ready();
	for (;;) {
		if (ioctl(fd, VMCHANNEL_IOC_GET_STATE, &st) < 0)
			die("VMCHANNEL_IOC_GET_STATE");
		if (st.connections >= settle && !(st.flags & VMCHANNEL_STATE_HOST_CONNECTED))
			break;
		if (++ticks > wait_secs * 50) {
			printf("timed out waiting for %u host connections (saw %u)\n", settle,
			       st.connections);
			return 1;
		}
		nanosleep(&tick, NULL);
	}
	alarm(wait_secs);
	while (eofs < count) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR) {
			printf("\ntimed out after %u ends of file\n", eofs);
			return 1;
		}
		if (n < 0)
			die("read");
		if (n == 0) {
			printf("<eof>\n");
			eofs++;
			continue;
		}
		fwrite(buf, 1, (size_t)n, stdout);
		fflush(stdout);
	}
	return 0;
}

static _Noreturn void usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: vmc-probe async|host-wait|signals|removal|uevents|agent|loss [--ready PATH]\n"
		"                 [--wait SECS] NODE\n"
		"       vmc-probe eofs --count N [--settle K] [--ready PATH] [--wait SECS] NODE\n");
	exit(status);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ready", required_argument, NULL, 'r' },
		{ "wait", required_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'c' },
		{ "settle", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	unsigned int count = 0, settle = 0;
	const char *mode;
	int opt, fd, status;

	if (argc < 2)
		usage(2);
	mode = argv[1];
	optind = 2;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'r': ready_path = optarg; break;
		case 'w': wait_secs = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'c': count = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 's': settle = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'h': usage(0);
		default: usage(2);
		}
	}
	if (optind != argc - 1)
		usage(2);
	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = open(argv[optind], O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die(argv[optind]);
	if (!strcmp(mode, "async"))
		status = probe_async(fd);
	else if (!strcmp(mode, "host-wait"))
		status = probe_host_wait(fd);
	else if (!strcmp(mode, "signals"))
		status = probe_signals(fd);
	else if (!strcmp(mode, "uevents"))
		status = probe_uevents(argv[optind]);
	else if (!strcmp(mode, "agent"))
		status = probe_agent(fd);
	else if (!strcmp(mode, "removal"))
		status = probe_removal(fd, argv[optind]);
	else if (!strcmp(mode, "loss"))
		status = probe_loss(fd);
	else if (!strcmp(mode, "eofs") && count)
		status = probe_eofs(fd, count, settle);
	else
		usage(2);
	close(fd);
	return status;
}
