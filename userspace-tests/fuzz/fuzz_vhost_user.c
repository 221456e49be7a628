// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: the vhost-user requests a frontend sends, through
 * vu_recv() and vu_dev_handle() into the vmchannel device, with the file
 * descriptors QEMU would pass: memory tables get memfds holding guest memory
 * from the input, so rings are mapped and kicked and the device model runs
 * on them.  A hostile frontend may make vmchanneld drop the connection,
 * never crash it.
 *
 * Input: 2 bytes (little-endian) L, then L bytes (at most 64 KiB) of guest
 * memory, copied to the start of a 64 KiB memfd; then requests as on the
 * wire (12-byte header, payload).  Each is sent with descriptors:
 * SET_MEM_TABLE one dup of the memfd per region it names (at most 8),
 * SET_VRING_KICK/CALL/ERR an eventfd unless the request says "no fd",
 * SET_BACKEND_REQ_FD a socket.  After each request every kick eventfd is
 * signalled and the event loop runs.
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event_loop.h"
#include "log.h"
#include "vmc_device.h"

#define MEM_SIZE	0x10000u
#define MAX_KICKS	32

static struct vmc_device device;
static struct vu_msg msg;
static int kicks[MAX_KICKS];
static unsigned int nkicks;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char dir[] = "/tmp/vmc-fuzz.XXXXXX";
	static char *names[] = { "hello", "clipboard" };

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	log_threshold = LOG_SILENT;	/* most inputs are errors, logged for nothing */
	if (!mkdtemp(dir) || loop_init() < 0 || vmc_device_init(&device, dir, names, 2) < 0)
		abort();
	return 0;
}

/* Fills @fds with the descriptors request @req (payload @p, @len bytes) carries; how many. */
static unsigned int request_fds(uint32_t req, const uint8_t *p, uint32_t len, int memfd,
				int *fds)
{
	uint32_t nregions;
	uint64_t arg;
	unsigned int i;
	int sv[2];

	switch (req) {
	case VU_SET_MEM_TABLE:
		if (len < sizeof(nregions))
			return 0;
		memcpy(&nregions, p, sizeof(nregions));
		for (i = 0; i < nregions && i < VU_MAX_FDS; i++)
			fds[i] = dup(memfd);
		return i;
	case VU_SET_VRING_KICK:
	case VU_SET_VRING_CALL:
	case VU_SET_VRING_ERR:
		if (len >= sizeof(arg)) {
			memcpy(&arg, p, sizeof(arg));
			if (arg & VU_VRING_NOFD)
				return 0;
		}
		fds[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (req == VU_SET_VRING_KICK && nkicks < MAX_KICKS)
			kicks[nkicks++] = dup(fds[0]);
		return 1;
	case VU_SET_BACKEND_REQ_FD:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			abort();
		close(sv[1]);
		fds[0] = sv[0];
		return 1;
	default:
		return 0;
	}
}

/* Sends request @p (header and up to @left bytes of payload); returns its size. */
static size_t send_request(int sock, const uint8_t *p, size_t left, int memfd)
{
	char control[CMSG_SPACE(VU_MAX_FDS * sizeof(int))] = { 0 };
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cmsg;
	uint32_t req, len;
	int fds[VU_MAX_FDS];
	unsigned int n, i;

	memcpy(&req, p, sizeof(req));
	memcpy(&len, p + 8, sizeof(len));
	if (len > left - VU_HDR_SIZE)
		len = (uint32_t)(left - VU_HDR_SIZE);
	iov.iov_base = (void *)p;
	iov.iov_len = VU_HDR_SIZE + len;
	n = request_fds(req, p + VU_HDR_SIZE, len, memfd, fds);
	if (n) {
		mh.msg_control = control;
		mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
		cmsg = CMSG_FIRSTHDR(&mh);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(cmsg), fds, n * sizeof(int));
	}
	if (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
		abort();
	for (i = 0; i < n; i++)
		close(fds[i]);
	return VU_HDR_SIZE + len;
}

static void drain(int sock)
{
	static uint8_t replies[65536];

	while (recv(sock, replies, sizeof(replies), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t mem_len, at;
	unsigned int i;
	uint8_t *mem;
	int sv[2], memfd;

	if (size < 2)
		return -1;
	mem_len = data[0] | (size_t)data[1] << 8;
	if (mem_len > size - 2 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	memfd = memfd_create("fuzz-guest", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, MEM_SIZE) < 0)
		abort();
	mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (mem == MAP_FAILED)
		abort();
	memcpy(mem, data + 2, mem_len);
	munmap(mem, MEM_SIZE);
	device.vu.sock = sv[0];
	nkicks = 0;
	for (at = 2 + mem_len; size - at >= VU_HDR_SIZE && device.vu.sock >= 0;) {
		at += send_request(sv[1], data + at, size - at, memfd);
		/* The input's end is the frontend's: a truncated request meets EOF, not the timeout. */
		if (size - at < VU_HDR_SIZE)
			shutdown(sv[1], SHUT_WR);
		if (vu_recv(sv[0], &msg) <= 0 || !vu_dev_handle(&device.vu, &msg))
			break;
		drain(sv[1]);
		for (i = 0; i < nkicks; i++)
			eventfd_write(kicks[i], 1);
		while (loop_dispatch(0) > 0)
			;
	}
	/* What a frontend disconnect does: rings stopped, memory unmapped. */
	vu_dev_detach(&device.vu);
	for (i = 0; i < nkicks; i++)
		close(kicks[i]);
	close(sv[1]);
	close(memfd);
	return 0;
}
