// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmc-xfer: move a checked byte stream through a vmchannel, from either end.
 *
 * The same program runs on the host (TARGET is a channel's Unix socket) and in
 * the guest (TARGET is /dev/vmchannel/<name>).  Streams are a deterministic
 * pseudo-random sequence, so sender and receiver agree on content without
 * sharing a file, and every run prints "bytes=N fnv1a64=HEX" for comparison.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <linux/vm_sockets.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536

struct stream {
	uint64_t state;		/* xorshift64 state */
	uint64_t hash;		/* FNV-1a 64 of the bytes so far */
	uint64_t count;
};

static void stream_init(struct stream *s, uint64_t seed)
{
	s->state = seed ? seed : 0x9e3779b97f4a7c15ULL;
	s->hash = 0xcbf29ce484222325ULL;
	s->count = 0;
}

static void stream_fill(struct stream *s, unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		s->state ^= s->state << 13;
		s->state ^= s->state >> 7;
		s->state ^= s->state << 17;
		buf[i] = (unsigned char)s->state;
	}
}

static void stream_hash(struct stream *s, const unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		s->hash ^= buf[i];
		s->hash *= 0x100000001b3ULL;
	}
	s->count += len;
}

static void report(const char *what, const struct stream *s)
{
	printf("%sbytes=%" PRIu64 " fnv1a64=%016" PRIx64 "\n", what, s->count, s->hash);
	fflush(stdout);
}

static _Noreturn void die(const char *what)
{
	fprintf(stderr, "vmc-xfer: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits, with a deadline, for PATH (and its directory) to be created. */
static void wait_for_path(const char *path, double timeout)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	double deadline = now() + timeout;
	int fd;

	if (!slash) {
		strcpy(dir, ".");
	} else {
		size_t n = slash == path ? 1 : (size_t)(slash - path);

		if (n >= sizeof(dir)) {
			errno = ENAMETOOLONG;
			die(path);
		}
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	/* A directory that does not exist yet is waited for first. */
	if (access(dir, F_OK) != 0 && errno == ENOENT && strcmp(dir, "/") && strcmp(dir, "."))
		wait_for_path(dir, timeout);
	fd = inotify_init1(IN_CLOEXEC);
	if (fd < 0)
		die("inotify_init1");
	if (inotify_add_watch(fd, dir, IN_CREATE | IN_MOVED_TO) < 0)
		die(dir);
	while (access(path, F_OK) != 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char buf[4096];
		double left = deadline - now();

		if (left <= 0) {
			errno = ETIMEDOUT;
			die(path);
		}
		if (poll(&p, 1, (int)(left * 1000) + 1) > 0 && read(fd, buf, sizeof(buf)) < 0)
			die("inotify read");
	}
	close(fd);
}

static _Noreturn void usage(int status);

/* vsock-listen:PORT (in a guest): accepts one connection on PORT. */
static int vsock_accept(const char *port)
{
	struct sockaddr_vm addr = {
		.svm_family = AF_VSOCK,
		.svm_cid = VMADDR_CID_ANY,
		.svm_port = (unsigned int)strtoul(port, NULL, 10),
	};
	int lfd, fd;

	lfd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("vsock socket");
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 1) < 0)
		die("vsock listen");
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		die("vsock accept");
	close(lfd);
	return fd;
}

/*
 * hvsock:PATH:PORT (on the host): a guest's vsock PORT through the Unix socket
 * PATH of vhost-device-vsock ("CONNECT PORT\n", answered "OK ..."), retried
 * every 10 ms for @wait seconds while the guest is not listening yet.
 */
static int hvsock_connect(const char *spec, double wait)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	const char *colon = strrchr(spec, ':');
	const struct timespec retry = { .tv_nsec = 10000000 };
	double deadline = now() + wait;
	char req[32], reply[64];

	if (!colon || (size_t)(colon - spec) >= sizeof(addr.sun_path))
		usage(2);
	memcpy(addr.sun_path, spec, (size_t)(colon - spec));
	snprintf(req, sizeof(req), "CONNECT %s\n", colon + 1);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		size_t got = 0;

		if (fd < 0)
			die("socket");
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
		    write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
			/* The answer is one line; data follows it only once we send. */
			while (got < sizeof(reply) - 1 && read(fd, reply + got, 1) == 1 &&
			       reply[got] != '\n')
				got++;
			if (got >= 3 && !strncmp(reply, "OK ", 3))
				return fd;
		}
		close(fd);
		if (now() > deadline) {
			fprintf(stderr, "vmc-xfer: %s: guest port not listening\n", spec);
			exit(1);
		}
		nanosleep(&retry, NULL);
	}
}

static int open_target(const char *path, double wait)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (!strcmp(path, "-"))
		return STDIN_FILENO;
	if (!strncmp(path, "vsock-listen:", 13))
		return vsock_accept(path + 13);
	if (!strncmp(path, "hvsock:", 7))
		return hvsock_connect(path + 7, wait);
	if (wait > 0)
		wait_for_path(path, wait);
	if (stat(path, &st) < 0)
		die(path);
	if (!S_ISSOCK(st.st_mode)) {
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			die(path);
		return fd;
	}
	if (strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		die(path);
	}
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die(path);
	return fd;
}

/* Ends our sending direction: shutdown for a socket, nothing for a device. */
static void end_sending(int fd)
{
	if (shutdown(fd, SHUT_WR) < 0 && errno != ENOTSOCK)
		die("shutdown");
}

static void write_all(int fd, const unsigned char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("write");
		}
		buf += n;
		len -= (size_t)n;
	}
}

/*
 * Sends @bytes of stream @seed, then ends the sending direction, or with
 * @linger keeps the connection open until killed (a peer that drops what it
 * has not delivered when the sender leaves, like virtio-serial, needs that).
 */
static int do_send(int fd, uint64_t bytes, uint64_t seed, bool linger)
{
	static unsigned char buf[CHUNK];
	struct stream s;

	stream_init(&s, seed);
	while (s.count < bytes) {
		size_t n = bytes - s.count < CHUNK ? (size_t)(bytes - s.count) : CHUNK;

		stream_fill(&s, buf, n);
		stream_hash(&s, buf, n);
		write_all(fd, buf, n);
	}
	if (!linger)
		end_sending(fd);
	report("sent ", &s);
	while (linger)
		pause();
	return 0;
}

/* Reads to end of file, or until @bytes when it is not zero. */
/* --slow: a reader that takes 16 KiB at a time and pauses 200 us after each. */
#define SLOW_CHUNK 16384
static const struct timespec slow_pause = { .tv_nsec = 200000 };

static int do_recv(int fd, uint64_t bytes, uint64_t seed, bool verify, bool slow)
{
	static unsigned char buf[CHUNK], want[CHUNK];
	const size_t chunk = slow ? SLOW_CHUNK : CHUNK;
	struct stream got, expect;

	stream_init(&got, seed);
	stream_init(&expect, seed);
	while (!bytes || got.count < bytes) {
		size_t room = bytes && bytes - got.count < chunk ? (size_t)(bytes - got.count) : chunk;
		ssize_t n = read(fd, buf, room);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("read");
		}
		if (n == 0)
			break;
		if (verify) {
			stream_fill(&expect, want, (size_t)n);
			if (memcmp(buf, want, (size_t)n) != 0) {
				fprintf(stderr, "vmc-xfer: data differs within bytes %" PRIu64
					"..%" PRIu64 "\n", got.count, got.count + (uint64_t)n);
				return 1;
			}
		}
		stream_hash(&got, buf, (size_t)n);
		if (slow)
			nanosleep(&slow_pause, NULL);
	}
	report("received ", &got);
	if (bytes && got.count != bytes) {
		fprintf(stderr, "vmc-xfer: end of file after %" PRIu64 " of %" PRIu64 " bytes\n",
			got.count, bytes);
		return 1;
	}
	return 0;
}

/* Sends @bytes and reads them back concurrently (the far end echoes). */
static int do_echo_check(int fd, uint64_t bytes, uint64_t seed)
{
	static unsigned char out[CHUNK], in[CHUNK], want[CHUNK];
	struct stream tx, rx, expect;
	size_t out_len = 0, out_off = 0;

	stream_init(&tx, seed);
	stream_init(&rx, seed);
	stream_init(&expect, seed);
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		die("fcntl");
	while (rx.count < bytes) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (out_off == out_len && tx.count < bytes) {
			out_len = bytes - tx.count < CHUNK ? (size_t)(bytes - tx.count) : CHUNK;
			out_off = 0;
			stream_fill(&tx, out, out_len);
			stream_hash(&tx, out, out_len);
		}
		if (out_off < out_len)
			p.events |= POLLOUT;
		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (p.revents & POLLOUT) {
			n = write(fd, out + out_off, out_len - out_off);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				die("write");
			if (n > 0)
				out_off += (size_t)n;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(fd, in, sizeof(in));
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				die("read");
			if (n == 0) {
				fprintf(stderr, "vmc-xfer: end of file after %" PRIu64 " of %" PRIu64
					" echoed bytes\n", rx.count, bytes);
				return 1;
			}
			if (n > 0) {
				stream_fill(&expect, want, (size_t)n);
				if (memcmp(in, want, (size_t)n) != 0) {
					fprintf(stderr, "vmc-xfer: echo differs within bytes %" PRIu64
						"..%" PRIu64 "\n", rx.count, rx.count + (uint64_t)n);
					return 1;
				}
				stream_hash(&rx, in, (size_t)n);
			}
		}
	}
	report("sent ", &tx);
	report("received ", &rx);
	return tx.hash == rx.hash && tx.count == rx.count ? 0 : 1;
}

static _Noreturn void usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: vmc-xfer send --bytes N [--seed S] [--linger] [--wait SECS] TARGET\n"
		"       vmc-xfer recv [--bytes N] [--seed S] [--verify] [--slow] [--wait SECS] TARGET\n"
		"       vmc-xfer echo-check --bytes N [--seed S] [--wait SECS] TARGET\n"
		"       vmc-xfer wait --wait SECS PATH\n"
		"TARGET is a vmchannel device node, a channel's host Unix socket, - (stdin),\n"
		"vsock-listen:PORT (a guest accepting one vsock connection) or\n"
		"hvsock:PATH:PORT (the host reaching that port through vhost-device-vsock's\n"
		"Unix socket PATH, retried for --wait SECS).\n"
		"--slow reads 16 KiB at a time and pauses 200 us after each read; --linger\n"
		"keeps the connection open after sending, until killed.\n"
		"Prints bytes=N fnv1a64=HEX for each direction; exit 0 on success.\n");
	exit(status);
}

static uint64_t parse_size(const char *arg)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || end == arg)
		usage(2);
	switch (*end) {
	case 'K': v <<= 10; end++; break;
	case 'M': v <<= 20; end++; break;
	case 'G': v <<= 30; end++; break;
	}
	if (*end)
		usage(2);
	return v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bytes", required_argument, NULL, 'b' },
		{ "seed", required_argument, NULL, 's' },
		{ "wait", required_argument, NULL, 'w' },
		{ "verify", no_argument, NULL, 'v' },
		{ "slow", no_argument, NULL, 'S' },
		{ "linger", no_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	uint64_t bytes = 0, seed = 1;
	double wait = 0;
	bool verify = false, slow = false, linger = false;
	const char *mode;
	int opt, fd;

	if (argc < 2)
		usage(2);
	mode = argv[1];
	if (!strcmp(mode, "--help") || !strcmp(mode, "-h"))
		usage(0);
	optind = 2;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'b': bytes = parse_size(optarg); break;
		case 's': seed = parse_size(optarg); break;
		case 'w': wait = atof(optarg); break;
		case 'v': verify = true; break;
		case 'S': slow = true; break;
		case 'L': linger = true; break;
		case 'h': usage(0);
		default: usage(2);
		}
	}
	if (optind != argc - 1)
		usage(2);
	if (!strcmp(mode, "wait")) {
		wait_for_path(argv[optind], wait);
		return 0;
	}
	fd = open_target(argv[optind], wait);
	if (!strcmp(mode, "send") && bytes)
		return do_send(fd, bytes, seed, linger);
	if (!strcmp(mode, "recv"))
		return do_recv(fd, bytes, seed, verify, slow);
	if (!strcmp(mode, "echo-check") && bytes)
		return do_echo_check(fd, bytes, seed);
	usage(2);
}
