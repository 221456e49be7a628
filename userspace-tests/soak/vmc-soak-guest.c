// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmc-soak-guest: the soak's agent in the guest.  Executes the commands the
 * host driver (vmc-soak) sends over a virtio-serial port and answers each
 * with one line; forwards the kernel log (/dev/kmsg) over the same port.
 *
 * One worker thread per channel runs that channel's commands one at a time
 * (the host sends a channel's next command only after the answer).  A
 * blocking read or write has a deadline: past it the worker gets SIGUSR1
 * (no SA_RESTART) until the call returns, so it ends with EINTR or a short
 * count, and the worker is free again.
 *
 * Commands ("ID OP CHAN ARGS", one per line) and answers ("ID RESULT..."):
 *   ID open C NB       -> ID ok SESSION | ID err ERRNO
 *   ID close C         -> ID ok | ID err ERRNO
 *   ID nb C 0|1        -> ID ok | ID err ERRNO
 *   ID w C LEN MS      -> ID w ACCEPTED ERRNO      (the session's next bytes)
 *   ID r C LEN MS      -> ID r RET ERRNO CONN OFFSET  (RET 0: end of file of
 *                         connection CONN after OFFSET bytes)
 *                      or ID bad TEXT (bytes that are not the stream)
 *   0 finish           -> a kmemleak scan, its report as K lines, then "0 finished"
 *   0 quit             -> exits
 * Unsolicited: "K TEXT" (a kernel log record).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "soak-stream.h"

#define MAX_CHANS	16
#define MAX_IO		(1 << 20)

struct chan {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char cmd[512];		/* command not yet taken by the worker, or "" */
	int busy;		/* running a command */
	int64_t deadline_ms;	/* 0: none */
	int fd;
	uint64_t session;	/* sessions opened so far */
	uint64_t wpos;		/* guest -> host position in the session */
	/* host -> guest parsing */
	int have_hdr;
	uint8_t hdr[SOAK_HDR_SIZE];
	unsigned hdr_len;
	uint32_t conn;
	uint64_t rpos;
	uint8_t *buf;
};

static struct chan chans[MAX_CHANS];
static unsigned nchans = 4;
static uint64_t seed = 1;
static const char *prefix = "/dev/vmchannel/s";
static int ctl_fd = -1;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reply(const char *fmt, ...)
{
	char line[600];
	va_list ap;
	size_t len, off = 0;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	len = strlen(line);
	line[len++] = '\n';
	pthread_mutex_lock(&out_lock);
	while (off < len) {
		ssize_t n = write(ctl_fd, line + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "vmc-soak-guest: write to control port: %s\n", strerror(errno));
			exit(1);
		}
		off += (size_t)n;
	}
	pthread_mutex_unlock(&out_lock);
}

static void on_sigusr1(int sig)
{
	(void)sig;
}

/* Checks bytes read from channel c; returns 0 or -1 after replying "bad". */
static int check_read(struct chan *c, unsigned long id, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (!c->have_hdr) {
			size_t take = SOAK_HDR_SIZE - c->hdr_len;
			uint32_t magic;

			if (take > n)
				take = n;
			memcpy(c->hdr + c->hdr_len, p, take);
			c->hdr_len += take;
			p += take;
			n -= take;
			if (c->hdr_len < SOAK_HDR_SIZE)
				return 0;
			memcpy(&magic, c->hdr, 4);
			memcpy(&c->conn, c->hdr + 4, 4);
			if (magic != SOAK_MAGIC) {
				reply("%lu bad connection header %02x%02x%02x%02x%02x%02x%02x%02x after connection %u's end",
				      id, c->hdr[0], c->hdr[1], c->hdr[2], c->hdr[3], c->hdr[4],
				      c->hdr[5], c->hdr[6], c->hdr[7], c->conn);
				return -1;
			}
			c->have_hdr = 1;
			c->rpos = 0;
			continue;
		}
		size_t ok = soak_check(soak_key(seed, 2, (unsigned)(c - chans), c->conn), c->rpos, p, n);

		if (ok < n) {
			reply("%lu bad host connection %u: byte %" PRIu64 " is %02x, expected %02x",
			      id, c->conn, c->rpos + ok, p[ok],
			      soak_byte(soak_key(seed, 2, (unsigned)(c - chans), c->conn), c->rpos + ok));
			return -1;
		}
		c->rpos += n;
		n = 0;
	}
	return 0;
}

static void run(struct chan *c, const char *cmd)
{
	unsigned long id, len = 0, ms = 0;
	unsigned ch;
	char op[16];
	int nb, n;
	ssize_t r;

	n = sscanf(cmd, "%lu %15s %u %lu %lu", &id, op, &ch, &len, &ms);
	if (!strcmp(op, "open")) {
		char path[128];

		snprintf(path, sizeof(path), "%s%u", prefix, ch);
		if (c->fd >= 0) {
			reply("%lu err %d", id, EALREADY);
			return;
		}
		nb = n >= 4 && len;
		c->fd = open(path, O_RDWR | O_CLOEXEC | (nb ? O_NONBLOCK : 0));
		if (c->fd < 0) {
			reply("%lu err %d", id, errno);
			return;
		}
		c->session++;
		c->wpos = 0;
		c->have_hdr = 0;
		c->hdr_len = 0;
		reply("%lu ok %" PRIu64, id, c->session);
	} else if (!strcmp(op, "close")) {
		int e = c->fd >= 0 && close(c->fd) ? errno : 0;

		c->fd = -1;
		reply("%lu ok %d", id, e);
	} else if (!strcmp(op, "nb")) {
		int fl = fcntl(c->fd, F_GETFL);

		if (fl < 0 || fcntl(c->fd, F_SETFL, len ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0)
			reply("%lu err %d", id, errno);
		else
			reply("%lu ok", id);
	} else if (!strcmp(op, "w") && n == 5) {
		if (len > MAX_IO)
			len = MAX_IO;
		soak_fill(soak_key(seed, 1, ch, c->session), c->wpos, c->buf, len);
		pthread_mutex_lock(&c->lock);
		c->deadline_ms = now_ms() + (int64_t)ms;
		pthread_mutex_unlock(&c->lock);
		r = write(c->fd, c->buf, len);
		int e = r < 0 ? errno : 0;

		pthread_mutex_lock(&c->lock);
		c->deadline_ms = 0;
		pthread_mutex_unlock(&c->lock);
		if (r > 0)
			c->wpos += (uint64_t)r;
		reply("%lu w %zd %d", id, r < 0 ? (ssize_t)0 : r, e);
	} else if (!strcmp(op, "r") && n == 5) {
		if (len > MAX_IO)
			len = MAX_IO;
		pthread_mutex_lock(&c->lock);
		c->deadline_ms = now_ms() + (int64_t)ms;
		pthread_mutex_unlock(&c->lock);
		r = read(c->fd, c->buf, len);
		int e = r < 0 ? errno : 0;

		pthread_mutex_lock(&c->lock);
		c->deadline_ms = 0;
		pthread_mutex_unlock(&c->lock);
		if (r > 0) {
			if (check_read(c, id, c->buf, (size_t)r) < 0)
				return;
			/* CONN 0: in the middle of a connection's header. */
			reply("%lu r %zd 0 %u %" PRIu64, id, r, c->have_hdr ? c->conn : 0u,
			      c->have_hdr ? c->rpos : 0);
		} else if (r == 0) {
			if (!c->have_hdr && c->hdr_len) {
				reply("%lu bad end of file inside a connection header (%u bytes)", id, c->hdr_len);
				return;
			}
			reply("%lu r 0 0 %u %" PRIu64 "%s", id, c->have_hdr ? c->conn : 0u,
			      c->have_hdr ? c->rpos : 0, c->have_hdr ? "" : " nohdr");
			c->have_hdr = 0;
			c->hdr_len = 0;
		} else {
			reply("%lu r -1 %d 0 0", id, e);
		}
	} else {
		reply("%lu bad unknown command '%s'", id, cmd);
	}
}

static void *worker(void *arg)
{
	struct chan *c = arg;
	char cmd[512];

	for (;;) {
		pthread_mutex_lock(&c->lock);
		while (!c->cmd[0])
			pthread_cond_wait(&c->cond, &c->lock);
		/* Taken at once: the host may send the next command as soon as
		 * this one's answer is out, before run() returns. */
		snprintf(cmd, sizeof(cmd), "%s", c->cmd);
		c->cmd[0] = 0;
		c->busy = 1;
		pthread_mutex_unlock(&c->lock);
		run(c, cmd);
		pthread_mutex_lock(&c->lock);
		c->busy = 0;
		pthread_mutex_unlock(&c->lock);
	}
	return NULL;
}

static int find_port(const char *name, char *dev, size_t size)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *e;
	int found = 0;

	if (!d)
		return 0;
	while (!found && (e = readdir(d))) {
		char path[300], buf[128] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f)) {
			buf[strcspn(buf, "\n")] = 0;
			if (!strcmp(buf, name)) {
				snprintf(dev, size, "/dev/%s", e->d_name);
				found = 1;
			}
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

/* A kmemleak scan now (if the kernel has kmemleak): its report as K lines. */
static void kmemleak_scan(void)
{
	const char *path = "/sys/kernel/debug/kmemleak";
	char buf[4096];
	FILE *f;
	int fd;

	mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	fd = open(path, O_WRONLY);
	if (fd < 0) {
		reply("0 finished no kmemleak (%s)", strerror(errno));
		return;
	}
	if (write(fd, "scan", 4) != 4)
		reply("K kmemleak scan failed: %s", strerror(errno));
	close(fd);
	f = fopen(path, "r");
	while (f && fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = 0;
		reply("K %.500s", buf);
	}
	if (f)
		fclose(f);
	reply("0 finished");
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: vmc-soak-guest [--seed N] [--channels N] [--prefix PATH] [--port NAME]\n"
		"\n"
		"The soak's guest agent: runs the commands of vmc-soak arriving on the\n"
		"virtio-serial port NAME (default soak.ctl) against PATH<k> (default\n"
		"/dev/vmchannel/s<k>), k < N (default 4), and forwards /dev/kmsg.\n");
}

int main(int argc, char **argv)
{
	const char *port = "soak.ctl";
	char dev[300], line[512];
	size_t line_len = 0;
	struct sigaction sa = { .sa_handler = on_sigusr1 };
	int kmsg, i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			seed = strtoull(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--channels") && i + 1 < argc) {
			nchans = (unsigned)strtoul(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--prefix") && i + 1 < argc) {
			prefix = argv[++i];
		} else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			port = argv[++i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (nchans < 1 || nchans > MAX_CHANS) {
		fprintf(stderr, "vmc-soak-guest: --channels takes 1 to %d\n", MAX_CHANS);
		return 2;
	}
	sigaction(SIGUSR1, &sa, NULL);	/* no SA_RESTART: blocked calls end */
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < 100 && !find_port(port, dev, sizeof(dev)); i++)
		usleep(100000);
	if (i == 100) {
		fprintf(stderr, "vmc-soak-guest: no virtio-serial port named %s\n", port);
		return 1;
	}
	ctl_fd = open(dev, O_RDWR | O_CLOEXEC);
	if (ctl_fd < 0) {
		fprintf(stderr, "vmc-soak-guest: %s: %s\n", dev, strerror(errno));
		return 1;
	}
	kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg < 0)
		fprintf(stderr, "vmc-soak-guest: /dev/kmsg: %s (kernel log not forwarded)\n", strerror(errno));
	for (i = 0; i < (int)nchans; i++) {
		struct chan *c = &chans[i];

		c->fd = -1;
		c->buf = malloc(MAX_IO);
		if (!c->buf) {
			fprintf(stderr, "vmc-soak-guest: out of memory\n");
			return 1;
		}
		pthread_mutex_init(&c->lock, NULL);
		pthread_cond_init(&c->cond, NULL);
		if (pthread_create(&c->thread, NULL, worker, c)) {
			fprintf(stderr, "vmc-soak-guest: pthread_create failed\n");
			return 1;
		}
	}
	reply("0 hello %u", nchans);
	for (;;) {
		struct pollfd pfd[2] = { { ctl_fd, POLLIN, 0 }, { kmsg, POLLIN, 0 } };
		int64_t now;

		if (poll(pfd, kmsg >= 0 ? 2 : 1, 20) < 0 && errno != EINTR)
			return 1;
		now = now_ms();
		for (i = 0; i < (int)nchans; i++) {
			struct chan *c = &chans[i];

			pthread_mutex_lock(&c->lock);
			if (c->busy && c->deadline_ms && now >= c->deadline_ms)
				pthread_kill(c->thread, SIGUSR1);
			pthread_mutex_unlock(&c->lock);
		}
		if (kmsg >= 0 && (pfd[1].revents & POLLIN)) {
			char rec[1024];
			ssize_t n;

			while ((n = read(kmsg, rec, sizeof(rec) - 1)) > 0 || (n < 0 && errno == EPIPE)) {
				char *msg;

				if (n <= 0)
					continue;
				rec[n] = 0;
				rec[strcspn(rec, "\n")] = 0;
				msg = strchr(rec, ';');
				reply("K %.500s", msg ? msg + 1 : rec);
				printf("kmsg: %s\n", msg ? msg + 1 : rec);
				fflush(stdout);
			}
		}
		if (pfd[0].revents & (POLLIN | POLLHUP)) {
			ssize_t n = read(ctl_fd, line + line_len, sizeof(line) - 1 - line_len);
			char *nl;

			if (n <= 0) {
				if (n < 0 && (errno == EINTR || errno == EAGAIN))
					continue;
				/* The host side is not connected yet or went away. */
				usleep(50000);
				continue;
			}
			line_len += (size_t)n;
			line[line_len] = 0;
			while ((nl = strchr(line, '\n'))) {
				unsigned long id;
				unsigned ch;
				char op[16];

				*nl = 0;
				if (sscanf(line, "%lu %15s %u", &id, op, &ch) >= 2 && !strcmp(op, "quit"))
					return 0;
				if (sscanf(line, "%lu %15s %u", &id, op, &ch) >= 2 && !strcmp(op, "finish")) {
					kmemleak_scan();
					goto next;
				}
				if (sscanf(line, "%lu %15s %u", &id, op, &ch) == 3 && ch < nchans) {
					struct chan *c = &chans[ch];

					pthread_mutex_lock(&c->lock);
					if (c->cmd[0]) {
						pthread_mutex_unlock(&c->lock);
						reply("%lu bad channel %u busy", id, ch);
					} else {
						snprintf(c->cmd, sizeof(c->cmd), "%s", line);
						pthread_cond_signal(&c->cond);
						pthread_mutex_unlock(&c->lock);
					}
				} else {
					reply("%lu bad unparsable command '%s'", id, line);
				}
next:
				line_len -= (size_t)(nl + 1 - line);
				memmove(line, nl + 1, line_len);
				line[line_len] = 0;
			}
			if (line_len >= sizeof(line) - 1)
				line_len = 0;
		}
	}
}
