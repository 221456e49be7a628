// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmc-xfer: move a checked byte stream through a vmchannel, from either end.
 *
 * The same program runs on the host (TARGET is a channel's Unix socket) and in
 * the guest (TARGET is /dev/vmchannel/<name>).  Streams are a deterministic
 * pseudo-random sequence, so sender and receiver agree on content without
 * sharing a file, and every run prints "bytes=N hash=HEX" for comparison.
 */
#define _GNU_SOURCE
#include <endian.h>
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
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536

/* recv --delay MS: pause after each read; echo-check --progress; --stall. */
static unsigned int delay_ms;
static uint64_t progress_every;
static double stall_secs;
static bool sync_marks;		/* echo-check --sync: hold sending at each mark */

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * A stream is a deterministic pseudo-random byte sequence with a running hash
 * of the bytes seen.  Both work a 64-bit word at a time (one xorshift64 step
 * gives eight bytes, one multiply hashes eight): under TCG, per-byte loops
 * here were what bounded every benchmark figure.  Partial words are carried
 * over, so that neither depends on how a transfer is split into reads and
 * writes.  Words are little-endian, so that hosts and guests of any byte
 * order agree.
 */
struct stream {
	uint64_t state;		/* xorshift64 state */
	uint64_t gen_word;	/* the word being handed out */
	unsigned int gen_left;	/* its bytes not handed out yet */
	uint64_t hash;		/* hash of the complete words so far */
	uint64_t hash_word;	/* the bytes of an incomplete word */
	unsigned int hash_fill;	/* how many */
	uint64_t count;
};

static void stream_init(struct stream *s, uint64_t seed)
{
	memset(s, 0, sizeof(*s));
	s->state = seed ? seed : 0x9e3779b97f4a7c15ULL;
	s->hash = 0xcbf29ce484222325ULL;
}

static uint64_t stream_next_word(struct stream *s)
{
	s->state ^= s->state << 13;
	s->state ^= s->state >> 7;
	s->state ^= s->state << 17;
	return s->state;
}

static void stream_fill(struct stream *s, unsigned char *buf, size_t len)
{
	for (;;) {
		uint64_t state = s->state;	/* a local: buf may alias *s */

		for (; len && s->gen_left; len--, s->gen_left--)
			*buf++ = (unsigned char)(s->gen_word >> (8 * (8 - s->gen_left)));
		for (; len >= 8; len -= 8, buf += 8) {
			uint64_t w;

			state ^= state << 13;
			state ^= state >> 7;
			state ^= state << 17;
			w = htole64(state);
			memcpy(buf, &w, 8);
		}
		s->state = state;
		if (!len)
			return;
		s->gen_word = stream_next_word(s);
		s->gen_left = 8;
	}
}

static uint64_t hash_mix(uint64_t hash, uint64_t word)
{
	hash = (hash ^ word) * 0x100000001b3ULL;
	return hash ^ (hash >> 32);
}

static void stream_hash(struct stream *s, const unsigned char *buf, size_t len)
{
	s->count += len;
	for (; len && s->hash_fill; len--) {
		s->hash_word |= (uint64_t)*buf++ << (8 * s->hash_fill);
		if (++s->hash_fill == 8) {
			s->hash = hash_mix(s->hash, s->hash_word);
			s->hash_word = 0;
			s->hash_fill = 0;
		}
	}
	if (len >= 8) {
		uint64_t hash = s->hash;	/* a local: buf may alias *s */

		for (; len >= 8; len -= 8, buf += 8) {
			uint64_t w;

			memcpy(&w, buf, 8);
			hash = hash_mix(hash, le64toh(w));
		}
		s->hash = hash;
	}
	for (; len; len--)
		s->hash_word |= (uint64_t)*buf++ << (8 * s->hash_fill++);
}

/* The hash of everything so far: an incomplete word counts with its length. */
static uint64_t stream_digest(const struct stream *s)
{
	if (!s->hash_fill)
		return s->hash;
	return hash_mix(s->hash, s->hash_word ^ ((uint64_t)s->hash_fill << 56));
}

static void report(const char *what, const struct stream *s)
{
	printf("%sbytes=%" PRIu64 " hash=%016" PRIx64 "\n", what, s->count, stream_digest(s));
	fflush(stdout);
}

static _Noreturn void die(const char *what)
{
	fprintf(stderr, "vmc-xfer: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *xmalloc(size_t len)
{
	void *p = malloc(len);

	if (!p)
		die("malloc");
	return p;
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

	/*
	 * Not even an inotify instance for a path that is there: closing one
	 * waits for an RCU grace period (about 14 ms here), and recv waits for
	 * each of up to 256 sockets in turn.
	 */
	if (access(path, F_OK) == 0)
		return;
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

static void set_nonblocking(int fd)
{
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		die("fcntl");
}

/*
 * --stall (send and recv with one target): a blocked read() or write() is
 * interrupted by SIGALRM (a timer, no SA_RESTART), and the transfer fails
 * once nothing moved for stall_secs.  The timer is armed again at most once a
 * second, not after every call: a system call per read or write would cost the guest,
 * whose CPU bounds the benchmark.
 */
struct stall_watch {
	double moved;		/* when bytes last moved */
	double armed;		/* when the alarm was last armed */
};

static volatile sig_atomic_t alarm_rang;

static void on_alarm(int sig)
{
	(void)sig;
	alarm_rang = 1;
}

static void stall_alarm(struct stall_watch *w, double secs)
{
	struct itimerval it = { .it_value = { .tv_sec = (time_t)secs,
					      .tv_usec = (suseconds_t)((secs - (time_t)secs) * 1e6) + 1 } };

	if (setitimer(ITIMER_REAL, &it, NULL) < 0)
		die("setitimer");
	w->armed = now();
}

static void stall_watch_start(struct stall_watch *w)
{
	struct sigaction sa = { .sa_handler = on_alarm };

	w->moved = now();
	if (stall_secs <= 0)
		return;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0)
		die("sigaction");
	alarm_rang = 0;
	stall_alarm(w, stall_secs);
}

static void stall_watch_moved(struct stall_watch *w)
{
	w->moved = now();
	if (stall_secs > 0 && w->moved - w->armed >= 1)
		stall_alarm(w, stall_secs);
}

/* After EINTR: whether nothing moved for stall_secs (else the alarm goes on). */
static bool stall_watch_stalled(struct stall_watch *w)
{
	double idle;

	if (stall_secs <= 0 || !alarm_rang)
		return false;
	alarm_rang = 0;
	idle = now() - w->moved;
	if (idle >= stall_secs)
		return true;
	stall_alarm(w, stall_secs - idle);
	return false;
}

static void stall_watch_stop(void)
{
	struct itimerval off = { 0 };

	if (stall_secs > 0 && setitimer(ITIMER_REAL, &off, NULL) < 0)
		die("setitimer");
}

/* Writes all of @buf; with @watch (send --stall), fails on a stall. */
static void write_all_watched(int fd, const unsigned char *buf, size_t len,
			      struct stall_watch *watch)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno != EINTR)
				die("write");
			if (watch && stall_watch_stalled(watch)) {
				fprintf(stderr, "vmc-xfer: stalled: nothing went out for %g s\n",
					stall_secs);
				exit(1);
			}
			continue;
		}
		buf += n;
		len -= (size_t)n;
		/* Bytes went out at some time since the last call: counted as now. */
		if (watch)
			stall_watch_moved(watch);
	}
}

static void write_all(int fd, const unsigned char *buf, size_t len)
{
	write_all_watched(fd, buf, len, NULL);
}

/*
 * Sends @bytes of stream @seed, then ends the sending direction, or with
 * @linger keeps the connection open until killed (a peer that drops what it
 * has not delivered when the sender leaves, like virtio-serial, needs that)
 * or until the peer closes it: a run that failed and stopped its guest
 * leaves no sender behind.
 */
static int do_send(int fd, uint64_t bytes, uint64_t seed, size_t block, bool linger)
{
	unsigned char *buf = xmalloc(block);
	struct stall_watch watch;
	struct stream s;

	stream_init(&s, seed);
	stall_watch_start(&watch);
	while (s.count < bytes) {
		size_t n = bytes - s.count < block ? (size_t)(bytes - s.count) : block;

		stream_fill(&s, buf, n);
		stream_hash(&s, buf, n);
		write_all_watched(fd, buf, n, &watch);
	}
	stall_watch_stop();
	if (!linger)
		end_sending(fd);
	report("sent ", &s);
	while (linger) {
		ssize_t n = read(fd, buf, block);

		if (n == 0 || (n < 0 && errno != EINTR))
			break;
	}
	free(buf);
	return 0;
}

/*
 * Reads to end of file, or until @bytes when it is not zero, @block bytes at
 * most per read.  --slow: a reader that takes 16 KiB at a time and pauses
 * 200 us after each.
 */
#define SLOW_CHUNK 16384
static const struct timespec slow_pause = { .tv_nsec = 200000 };

static int do_recv(int fd, uint64_t bytes, uint64_t seed, size_t block, bool verify, bool slow,
		   bool timing)
{
	double first = 0, last = 0;
	struct stall_watch watch;
	const size_t chunk = slow ? SLOW_CHUNK : block;
	unsigned char *buf = xmalloc(chunk), *want = xmalloc(chunk);
	struct stream got, expect;

	stall_watch_start(&watch);
	stream_init(&got, seed);
	stream_init(&expect, seed);
	while (!bytes || got.count < bytes) {
		size_t room = bytes && bytes - got.count < chunk ? (size_t)(bytes - got.count) : chunk;
		ssize_t n = read(fd, buf, room);

		if (n < 0) {
			if (errno != EINTR)
				die("read");
			if (stall_watch_stalled(&watch)) {
				fprintf(stderr, "vmc-xfer: stalled: nothing came for %g s; received %"
					PRIu64 " of %" PRIu64 " bytes\n", stall_secs, got.count, bytes);
				return 1;
			}
			continue;
		}
		if (n == 0)
			break;
		last = now();
		if (!first)
			first = last;
		stall_watch_moved(&watch);
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
		if (delay_ms)
			sleep_ms(delay_ms);
	}
	stall_watch_stop();
	report("received ", &got);
	if (timing)
		printf("timing secs=%.6f mbps=%.2f\n", last - first,
		       last > first ? got.count / (last - first) / 1e6 : 0.0);
	free(buf);
	free(want);
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
	uint64_t marks = 0;
	bool held = false;
	int r;

	stream_init(&tx, seed);
	stream_init(&rx, seed);
	stream_init(&expect, seed);
	set_nonblocking(fd);
	while (rx.count < bytes) {
		struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN },
					 { .fd = STDIN_FILENO, .events = POLLIN } };
		struct pollfd *pp = pfd;
#define p (*pp)
		ssize_t n;

		if (held) {
			/* --sync: nothing more is sent until a line comes on stdin. */
			r = poll(pfd, 2, stall_secs > 0 ? (int)(stall_secs * 1000) : -1);
			if (r < 0 && errno != EINTR)
				die("poll");
			if (r == 0) {
				fprintf(stderr, "vmc-xfer: stalled: held at a mark, no line on stdin"
					" for %g s; sent %" PRIu64 ", echoed %" PRIu64 " of %" PRIu64
					" bytes\n", stall_secs, tx.count, rx.count, bytes);
				return 1;
			}
			if (r > 0 && pfd[1].revents) {
				char c;

				while ((n = read(STDIN_FILENO, &c, 1)) == 1 && c != '\n')
					;
				held = false;
			}
			if (r <= 0 || !(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			p.events = POLLIN;
			p.revents = pfd[0].revents;
			goto readable;
		}
		if (out_off == out_len && tx.count < bytes) {
			out_len = bytes - tx.count < CHUNK ? (size_t)(bytes - tx.count) : CHUNK;
			out_off = 0;
			stream_fill(&tx, out, out_len);
			stream_hash(&tx, out, out_len);
		}
		if (out_off < out_len)
			p.events |= POLLOUT;
		r = poll(&p, 1, stall_secs > 0 ? (int)(stall_secs * 1000) : -1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (r == 0) {
			fprintf(stderr, "vmc-xfer: stalled: nothing moved for %g s; sent %" PRIu64
				", echoed %" PRIu64 " of %" PRIu64 " bytes\n", stall_secs, tx.count,
				rx.count, bytes);
			return 1;
		}
		if (p.revents & POLLOUT) {
			n = write(fd, out + out_off, out_len - out_off);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				die("write");
			if (n > 0)
				out_off += (size_t)n;
		}
readable:
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
				if (progress_every && rx.count / progress_every > marks) {
					marks = rx.count / progress_every;
					printf("progress echoed=%" PRIu64 " sent=%" PRIu64 "\n",
					       rx.count, tx.count);
					fflush(stdout);
					held = sync_marks && tx.count < bytes;
				}
			}
		}
	}
#undef p
	report("sent ", &tx);
	report("received ", &rx);
	return stream_digest(&tx) == stream_digest(&rx) && tx.count == rx.count ? 0 : 1;
}

/*
 * Many channels at once (send or recv with several TARGETs): one lane per
 * target, stream seed + index, all driven from one epoll loop so that no
 * lane waits for another.
 */
struct lane {
	int fd;
	struct stream s;	/* what was sent, or received */
	struct stream expect;	/* recv --verify: what should arrive */
	double done_at;		/* recv: when the last byte arrived */
};

/*
 * One epoll set for all lanes (level-triggered, so a lane that is still ready
 * comes back after the others: round robin).  poll() would cost the guest a
 * scan of every lane per wakeup.
 */
static int lanes_epoll(struct lane *lanes, size_t n, uint32_t events)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		die("epoll_create1");
	for (size_t i = 0; i < n; i++) {
		struct epoll_event ev = { .events = events, .data.u64 = i };

		set_nonblocking(lanes[i].fd);
		if (epoll_ctl(ep, EPOLL_CTL_ADD, lanes[i].fd, &ev) < 0)
			die("epoll_ctl");
	}
	return ep;
}

/* --stall: no lane moving for that long fails the transfer. */
static size_t lanes_wait(int ep, struct epoll_event *ev, size_t n)
{
	int timeout = stall_secs > 0 ? (int)(stall_secs * 1000) : -1;
	int r;

	while ((r = epoll_wait(ep, ev, (int)n, timeout)) < 0)
		if (errno != EINTR)
			die("epoll_wait");
	if (!r) {
		fprintf(stderr, "vmc-xfer: stalled: no lane moved for %g s\n", stall_secs);
		exit(1);
	}
	return (size_t)r;
}

static void lane_finished(int ep, struct lane *l)
{
	if (epoll_ctl(ep, EPOLL_CTL_DEL, l->fd, NULL) < 0)
		die("epoll_ctl");
}

/*
 * Each ready lane gets at most one @block per turn, generated into one buffer
 * that all lanes share: a write that takes less rewinds the lane's stream to
 * just after what it took, and one that takes nothing ends the turn.
 * Per-lane buffers made the writer's working set grow with the lanes
 * (256 x 64 KiB to fault in and, under TCG, to refill the emulated TLB for):
 * a cost of this program that the many-channel figure charged to the
 * channels.
 */
static int do_send_many(struct lane *lanes, size_t n, uint64_t bytes, size_t block)
{
	struct epoll_event *ev = calloc(n, sizeof(*ev));
	unsigned char *buf = xmalloc(block);
	size_t active = n, i;
	int ep;

	if (!ev)
		die("calloc");
	ep = lanes_epoll(lanes, n, EPOLLOUT);
	while (active) {
		size_t ready = lanes_wait(ep, ev, n);

		for (size_t k = 0; k < ready; k++) {
			struct lane *l = &lanes[ev[k].data.u64];
			size_t len = bytes - l->s.count < block ? (size_t)(bytes - l->s.count) : block;
			struct stream before = l->s;
			ssize_t w;

			stream_fill(&l->s, buf, len);
			w = write(l->fd, buf, len);
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				die("write");
			if (w < 0) {
				/*
				 * vmchannel lanes share the device's txq, so
				 * the rest of this turn would most likely fail
				 * too, each after generating a block for
				 * nothing: wait for epoll instead.
				 */
				l->s = before;
				break;
			}
			if ((size_t)w < len) {
				l->s = before;
				stream_fill(&l->s, buf, (size_t)w);
			}
			stream_hash(&l->s, buf, (size_t)w);
			if (l->s.count == bytes) {
				lane_finished(ep, l);
				end_sending(l->fd);
				active--;
			}
		}
	}
	for (i = 0; i < n; i++) {
		printf("lane %zu ", i);
		report("sent ", &lanes[i].s);
	}
	close(ep);
	free(buf);
	free(ev);
	return 0;
}

/*
 * Receives @bytes on every lane and prints, besides each lane's checksum, one
 * line: "many lanes=N bytes=TOTAL secs=S aggregate_mbps=A slowest_mbps=LO
 * fastest_mbps=HI", each lane's rate counted from the first byte on any lane
 * to its own last byte.
 */
static int do_recv_many(struct lane *lanes, size_t n, uint64_t bytes, size_t block, bool verify)
{
	unsigned char *buf = xmalloc(block), *want = xmalloc(block);
	struct epoll_event *ev = calloc(n, sizeof(*ev));
	double start = 0, end = 0, slowest = 0, fastest = 0;
	size_t active = n, i;
	int ep;

	if (!ev)
		die("calloc");
	ep = lanes_epoll(lanes, n, EPOLLIN);
	while (active) {
		size_t ready = lanes_wait(ep, ev, n);

		for (size_t k = 0; k < ready; k++) {
			size_t li = ev[k].data.u64;
			struct lane *l = &lanes[li];
			uint64_t left = bytes - l->s.count;
			ssize_t r;

			r = read(l->fd, buf, left < block ? (size_t)left : block);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r < 0)
				die("read");
			if (r == 0) {
				fprintf(stderr, "vmc-xfer: lane %zu: end of file after %" PRIu64
					" of %" PRIu64 " bytes\n", li, l->s.count, bytes);
				return 1;
			}
			if (!start)
				start = now();
			if (verify) {
				stream_fill(&l->expect, want, (size_t)r);
				if (memcmp(buf, want, (size_t)r) != 0) {
					fprintf(stderr, "vmc-xfer: lane %zu: data differs within bytes %"
						PRIu64 "..%" PRIu64 "\n", li, l->s.count,
						l->s.count + (uint64_t)r);
					return 1;
				}
			}
			stream_hash(&l->s, buf, (size_t)r);
			if (l->s.count == bytes) {
				l->done_at = now();
				lane_finished(ep, l);
				active--;
			}
		}
	}
	for (i = 0; i < n; i++) {
		double mbps = bytes / (lanes[i].done_at - start) / 1e6;

		printf("lane %zu ", i);
		report("received ", &lanes[i].s);
		if (!i || mbps < slowest)
			slowest = mbps;
		if (!i || mbps > fastest)
			fastest = mbps;
		if (lanes[i].done_at > end)
			end = lanes[i].done_at;
	}
	printf("many lanes=%zu bytes=%" PRIu64 " secs=%.6f aggregate_mbps=%.1f slowest_mbps=%.1f"
	       " fastest_mbps=%.1f\n", n, bytes * n, end - start, bytes * n / (end - start) / 1e6,
	       slowest, fastest);
	close(ep);
	free(buf);
	free(want);
	free(ev);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The nearest-rank percentile @pct of the sorted @v[@n]. */
static double percentile(const double *v, size_t n, unsigned int pct)
{
	size_t rank = (n * pct + 99) / 100;

	return v[rank ? rank - 1 : 0];
}

static bool read_full(int fd, unsigned char *buf, size_t len)
{
	while (len) {
		ssize_t n = read(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read");
		if (n == 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

/*
 * Round trips: @count messages of @size bytes, each written whole and waited
 * for until the far end (vmc-xfer echo) has sent it back; checks every byte
 * and prints "rtt count=N size=S p50_us=.. p99_us=.. min_us=.. max_us=..".
 */
static int do_ping(int fd, unsigned long count, size_t size, uint64_t seed)
{
	unsigned char *out = xmalloc(size), *in = xmalloc(size);
	double *rtt = calloc(count, sizeof(*rtt));
	struct stream tx;

	if (!rtt)
		die("calloc");
	stream_init(&tx, seed);
	for (unsigned long i = 0; i < count; i++) {
		double t0;

		stream_fill(&tx, out, size);
		stream_hash(&tx, out, size);
		t0 = now();
		write_all(fd, out, size);
		if (!read_full(fd, in, size)) {
			fprintf(stderr, "vmc-xfer: end of file after %lu of %lu round trips\n",
				i, count);
			return 1;
		}
		rtt[i] = (now() - t0) * 1e6;
		if (memcmp(in, out, size) != 0) {
			fprintf(stderr, "vmc-xfer: round trip %lu came back different\n", i);
			return 1;
		}
	}
	end_sending(fd);
	qsort(rtt, count, sizeof(*rtt), cmp_double);
	printf("rtt count=%lu size=%zu p50_us=%.1f p99_us=%.1f min_us=%.1f max_us=%.1f\n",
	       count, size, percentile(rtt, count, 50), percentile(rtt, count, 99), rtt[0],
	       rtt[count - 1]);
	free(out);
	free(in);
	free(rtt);
	return 0;
}

/* Sends back what it reads, until @bytes (when not zero) or end of file. */
static int do_echo(int fd, uint64_t bytes, size_t block)
{
	unsigned char *buf = xmalloc(block);
	struct stream s;

	stream_init(&s, 1);
	while (!bytes || s.count < bytes) {
		size_t room = bytes && bytes - s.count < block ? (size_t)(bytes - s.count) : block;
		ssize_t n = read(fd, buf, room);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read");
		if (n == 0)
			break;
		write_all(fd, buf, (size_t)n);
		stream_hash(&s, buf, (size_t)n);
	}
	report("echoed ", &s);
	free(buf);
	return bytes && s.count != bytes;
}

/*
 * hold: a host program that connects and never reads.  Prints "connected",
 * waits for a line (or end of file) on stdin, prints "unread=N" (the bytes
 * queued in its socket that it never read) and exits: its close discards them.
 */
static int do_hold(int fd)
{
	int unread = 0;
	char c;

	printf("connected\n");
	fflush(stdout);
	while (read(STDIN_FILENO, &c, 1) == 1 && c != '\n')
		;
	if (ioctl(fd, FIONREAD, &unread) < 0)
		die("FIONREAD");
	printf("unread=%d\n", unread);
	fflush(stdout);
	return 0;
}

/*
 * Tagged records for several writers through one open file.  Record @seq of
 * writer @w is one write() of "R<w:2 hex><seq:6 hex><len:4 hex>:", then
 * len - 15 bytes of a stream seeded by (w, seq), then "\n": 32 to 4096 bytes
 * (within PIPE_BUF, so that a writer's record is never split by another's).
 */
#define REC_HDR 14
#define REC_MIN 32
#define REC_MAX 4096
#define REC_WRITERS_MAX 64

static uint64_t rec_seed(unsigned int w, unsigned int seq)
{
	return hash_mix(hash_mix(0x9e3779b97f4a7c15ULL, w + 1), seq + 1) | 1;
}

static size_t rec_len(unsigned int w, unsigned int seq)
{
	return REC_MIN + (size_t)(rec_seed(w, seq) % (REC_MAX - REC_MIN + 1));
}

static size_t rec_make(unsigned char *buf, unsigned int w, unsigned int seq)
{
	size_t len = rec_len(w, seq);
	struct stream s;
	char hdr[REC_HDR + 1];

	snprintf(hdr, sizeof(hdr), "R%02x%06x%04zx:", w & 0xff, seq & 0xffffff, len);
	memcpy(buf, hdr, REC_HDR);
	stream_init(&s, rec_seed(w, seq));
	stream_fill(&s, buf + REC_HDR, len - REC_HDR - 1);
	buf[len - 1] = '\n';
	return len;
}

struct rec_writer {
	int fd;
	unsigned int id, count;
	unsigned int short_writes;
	int error;
};

static void *rec_write_all(void *arg)
{
	struct rec_writer *wr = arg;
	unsigned char buf[REC_MAX];

	for (unsigned int seq = 0; seq < wr->count; seq++) {
		size_t len = rec_make(buf, wr->id, seq), off = 0;

		while (off < len) {
			ssize_t n = write(wr->fd, buf + off, len - off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				wr->error = errno;
				return NULL;
			}
			if ((size_t)n < len - off)
				wr->short_writes++;
			off += (size_t)n;
		}
	}
	return NULL;
}

/*
 * records: @procs processes (forked after one open(), so they share the open
 * file like a shell's >&3) of @threads threads each write @count records.
 * Prints "records writers=N count=R bytes=B" once all are written.
 */
static int do_records(int fd, unsigned int procs, unsigned int threads, unsigned int count)
{
	unsigned int nw = procs * threads, p, t;
	uint64_t total = 0;
	int status = 0;

	if (!nw || nw > REC_WRITERS_MAX || count > 0xffffff)
		usage(2);
	for (unsigned int w = 0; w < nw; w++)
		for (unsigned int seq = 0; seq < count; seq++)
			total += rec_len(w, seq);
	fflush(stdout);
	for (p = 0; p < procs; p++) {
		pid_t pid = p + 1 < procs ? fork() : 0;

		if (pid < 0)
			die("fork");
		if (pid > 0)
			continue;
		/* The last writer group runs in this process, the others in children. */
		struct rec_writer wr[REC_WRITERS_MAX];
		pthread_t tid[REC_WRITERS_MAX];
		int bad = 0;

		for (t = 0; t < threads; t++) {
			wr[t] = (struct rec_writer){ .fd = fd, .id = p * threads + t, .count = count };
			if (pthread_create(&tid[t], NULL, rec_write_all, &wr[t]) != 0)
				die("pthread_create");
		}
		for (t = 0; t < threads; t++) {
			pthread_join(tid[t], NULL);
			if (wr[t].error) {
				fprintf(stderr, "vmc-xfer: writer %u: write: %s\n", wr[t].id,
					strerror(wr[t].error));
				bad = 1;
			}
			if (wr[t].short_writes)
				fprintf(stderr, "vmc-xfer: writer %u: %u short writes\n", wr[t].id,
					wr[t].short_writes);
		}
		if (p + 1 < procs)
			_exit(bad);
		status |= bad;
	}
	for (p = 0; p + 1 < procs; p++) {
		int ws;

		if (wait(&ws) < 0)
			die("wait");
		if (!WIFEXITED(ws) || WEXITSTATUS(ws))
			status = 1;
	}
	printf("records writers=%u count=%u bytes=%" PRIu64 "\n", nw, count, total);
	return status;
}

/*
 * records-check: reads until end of file (with --block and --delay: slowly)
 * and checks the stream is made of whole records, each writer's in order,
 * every record of @writers x @count exactly once.  Prints
 * "records ok=K missing=M bytes=B" (and what went wrong on stderr).
 */
static int do_records_check(int fd, unsigned int writers, unsigned int count, size_t block)
{
	unsigned char *buf = xmalloc(block + REC_MAX), want[REC_MAX];
	unsigned int next[REC_WRITERS_MAX] = { 0 };
	uint64_t bytes = 0, expected = 0, ok = 0, garbled_at = UINT64_MAX;
	size_t have = 0;
	int bad = 0;

	if (!writers || writers > REC_WRITERS_MAX)
		usage(2);
	for (unsigned int w = 0; w < writers; w++)
		for (unsigned int seq = 0; seq < count; seq++)
			expected += rec_len(w, seq);
	for (;;) {
		ssize_t n = read(fd, buf + have, block);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read");
		if (n == 0)
			break;
		bytes += (uint64_t)n;
		if (delay_ms)
			sleep_ms(delay_ms);
		if (garbled_at != UINT64_MAX)
			continue;
		have += (size_t)n;
		/* Whole records from the front of buf. */
		size_t off = 0;

		while (have - off >= REC_HDR) {
			unsigned int w, seq, len;
			char hdr[REC_HDR + 1];

			memcpy(hdr, buf + off, REC_HDR);
			hdr[REC_HDR] = '\0';
			if (sscanf(hdr, "R%2x%6x%4x:", &w, &seq, &len) != 3 || hdr[REC_HDR - 1] != ':' ||
			    w >= writers || seq >= count || len != rec_len(w, seq)) {
				garbled_at = bytes - (uint64_t)(have - off);
				break;
			}
			if (have - off < len)
				break;
			rec_make(want, w, seq);
			if (memcmp(buf + off, want, len) != 0) {
				garbled_at = bytes - (uint64_t)(have - off);
				break;
			}
			if (seq != next[w]) {
				fprintf(stderr, "vmc-xfer: writer %u: record %u after %u (%s)\n", w, seq,
					next[w] ? next[w] - 1 : 0,
					seq < next[w] ? "duplicate or reordered" : "records lost");
				bad = 1;
			}
			if (seq >= next[w]) {
				ok += seq == next[w];
				next[w] = seq + 1;
			}
			off += len;
		}
		if (garbled_at != UINT64_MAX) {
			have = 0;
			continue;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
	}
	if (garbled_at != UINT64_MAX) {
		fprintf(stderr, "vmc-xfer: not a whole record at byte %" PRIu64
			" (bytes lost, or a write() split by another writer's)\n", garbled_at);
		bad = 1;
	} else if (have) {
		fprintf(stderr, "vmc-xfer: %zu bytes of an incomplete record at the end\n", have);
		bad = 1;
	}
	uint64_t missing = (uint64_t)writers * count - ok;

	printf("records ok=%" PRIu64 " missing=%" PRIu64 " bytes=%" PRIu64 " expected_bytes=%"
	       PRIu64 "\n", ok, missing, bytes, expected);
	free(buf);
	return bad || missing || bytes != expected;
}

static _Noreturn void usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: vmc-xfer send --bytes N [--seed S] [--block B] [--linger] [--stall SECS]\n"
		"                     [--wait SECS] TARGET...\n"
		"       vmc-xfer recv [--bytes N] [--seed S] [--block B] [--verify] [--slow] [--timing]\n"
		"                     [--stall SECS] [--wait SECS] TARGET...\n"
		"       vmc-xfer echo-check --bytes N [--seed S] [--wait SECS] TARGET\n"
		"       vmc-xfer ping --count N [--size B] [--seed S] [--wait SECS] TARGET\n"
		"       vmc-xfer echo [--bytes N] [--block B] [--wait SECS] TARGET\n"
		"       vmc-xfer wait --wait SECS PATH\n"
		"       vmc-xfer hold [--wait SECS] TARGET\n"
		"       vmc-xfer records --count R [--procs P] [--threads T] [--wait SECS] TARGET\n"
		"       vmc-xfer records-check --writers N --count R [--block B] [--delay MS]\n"
		"                     [--wait SECS] TARGET\n"
		"TARGET is a vmchannel device node, a channel's host Unix socket, - (stdin),\n"
		"vsock-listen:PORT (a guest accepting one vsock connection) or\n"
		"hvsock:PATH:PORT (the host reaching that port through vhost-device-vsock's\n"
		"Unix socket PATH, retried for --wait SECS).\n"
		"--block sets the size of each write and read (default 64K, at most 1M).\n"
		"send and recv with several TARGETs move N bytes on each at once (seed S+i on\n"
		"the i-th) and recv prints the aggregate rate and the slowest and fastest lane.\n"
		"ping sends N messages of B bytes (default 64) one at a time to a peer running\n"
		"echo and prints round-trip percentiles in microseconds.\n"
		"--timing adds \"timing secs=S mbps=R\", from the first byte read to the last.\n"
		"--slow reads 16 KiB at a time and pauses 200 us after each read; --delay MS\n"
		"pauses MS milliseconds after each read (recv, records-check).  --linger\n"
		"keeps the connection open after sending, until killed or the peer closes it.\n"
		"echo-check --progress N prints \"progress echoed=B\" each N bytes echoed;\n"
		"--sync stops sending at each progress mark until a line comes on stdin\n"
		"(still reading).  --stall SECS (send, recv, echo-check) fails when nothing\n"
		"moves for SECS seconds (send: within twice that, as a write() cut short by\n"
		"the timer counts as movement).\n"
		"hold connects, prints \"connected\", never reads, and on a line or end of\n"
		"file on stdin prints \"unread=N\" (bytes it left in its socket) and exits.\n"
		"records: P processes sharing one open file (forked after open), T threads\n"
		"each, write R tagged records each, one write() per record (32..4096\n"
		"bytes); records-check reads them and checks every record arrived whole,\n"
		"in its writer's order, exactly once, and the byte total.\n"
		"Prints bytes=N hash=HEX for each direction; exit 0 on success.\n");
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

#define MAX_TARGETS 1024
#define BLOCK_MAX (1U << 20)

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bytes", required_argument, NULL, 'b' },
		{ "seed", required_argument, NULL, 's' },
		{ "block", required_argument, NULL, 'B' },
		{ "count", required_argument, NULL, 'c' },
		{ "size", required_argument, NULL, 'z' },
		{ "wait", required_argument, NULL, 'w' },
		{ "verify", no_argument, NULL, 'v' },
		{ "slow", no_argument, NULL, 'S' },
		{ "linger", no_argument, NULL, 'L' },
		{ "timing", no_argument, NULL, 'T' },
		{ "delay", required_argument, NULL, 'd' },
		{ "progress", required_argument, NULL, 'p' },
		{ "stall", required_argument, NULL, 't' },
		{ "sync", no_argument, NULL, 'y' },
		{ "procs", required_argument, NULL, 'P' },
		{ "threads", required_argument, NULL, 'H' },
		{ "writers", required_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	uint64_t bytes = 0, seed = 1, block = CHUNK, count = 0, size = 64;
	uint64_t procs = 1, threads = 1, writers = 0;
	double wait = 0;
	bool verify = false, slow = false, linger = false, timing = false;
	struct lane *lanes;
	const char *mode;
	size_t ntargets;
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
		case 'B': block = parse_size(optarg); break;
		case 'c': count = parse_size(optarg); break;
		case 'z': size = parse_size(optarg); break;
		case 'w': wait = atof(optarg); break;
		case 'v': verify = true; break;
		case 'S': slow = true; break;
		case 'L': linger = true; break;
		case 'T': timing = true; break;
		case 'd': delay_ms = (unsigned int)parse_size(optarg); break;
		case 'p': progress_every = parse_size(optarg); break;
		case 't': stall_secs = atof(optarg); break;
		case 'y': sync_marks = true; break;
		case 'P': procs = parse_size(optarg); break;
		case 'H': threads = parse_size(optarg); break;
		case 'W': writers = parse_size(optarg); break;
		case 'h': usage(0);
		default: usage(2);
		}
	}
	ntargets = (size_t)(argc - optind);
	if (!ntargets || ntargets > MAX_TARGETS || !block || block > BLOCK_MAX ||
	    !size || size > BLOCK_MAX || count > 10000000)
		usage(2);
	if (ntargets > 1) {
		bool sending = !strcmp(mode, "send");

		if ((!sending && strcmp(mode, "recv")) || !bytes || linger || slow)
			usage(2);
		lanes = calloc(ntargets, sizeof(*lanes));
		if (!lanes)
			die("calloc");
		for (size_t i = 0; i < ntargets; i++) {
			lanes[i].fd = open_target(argv[optind + i], wait);
			stream_init(&lanes[i].s, seed + i);
			stream_init(&lanes[i].expect, seed + i);
		}
		if (sending)
			return do_send_many(lanes, ntargets, bytes, block);
		return do_recv_many(lanes, ntargets, bytes, block, verify);
	}
	if (!strcmp(mode, "wait")) {
		wait_for_path(argv[optind], wait);
		return 0;
	}
	fd = open_target(argv[optind], wait);
	if (!strcmp(mode, "send") && bytes)
		return do_send(fd, bytes, seed, block, linger);
	if (!strcmp(mode, "recv"))
		return do_recv(fd, bytes, seed, block, verify, slow, timing);
	if (!strcmp(mode, "echo-check") && bytes)
		return do_echo_check(fd, bytes, seed);
	if (!strcmp(mode, "ping") && count)
		return do_ping(fd, count, size, seed);
	if (!strcmp(mode, "echo"))
		return do_echo(fd, bytes, block);
	if (!strcmp(mode, "hold"))
		return do_hold(fd);
	if (!strcmp(mode, "records") && count && procs * threads <= REC_WRITERS_MAX)
		return do_records(fd, (unsigned int)procs, (unsigned int)threads, (unsigned int)count);
	if (!strcmp(mode, "records-check") && count && writers)
		return do_records_check(fd, (unsigned int)writers, (unsigned int)count, block);
	usage(2);
}
