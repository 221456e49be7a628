// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: guest memory made by the fuzzer, rings and all, under the
 * whole device model.  Descriptor tables, chains (looping, indirect, empty,
 * out of memory), avail and used indices and the buffers are the input; the
 * device pops txq, fills rxq with a host program's bytes and device
 * messages, and must refuse what is bad without crashing, reading or writing
 * outside guest memory, or leaking.
 *
 * Input: byte 0 and 1 pick the rxq and txq sizes (1 << (b % 7), 1 to 64),
 * bytes 2-5 the rings' last_avail_idx (little-endian), byte 6 how many
 * 256-byte blocks a host program writes to channel "a" and byte 7 how many
 * kicks of each queue follow; the rest is copied over guest memory from
 * address 0: rxq descriptors at 0x000, avail 0x400, used 0x500; txq at
 * 0x800, 0xc00, 0xd00; buffers anywhere in the 64 KiB (the seeds' from
 * 0x1000, to stay within the fuzz step's -max_len).
 */
#include <endian.h>
#include <linux/virtio_ring.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "event_loop.h"
#include "log.h"
#include "vmc_device.h"

#define RAM_SIZE	0x10000u
#define RING_GPA(q)	((q) * 0x800u)
#define PARAMS		8
#define MAX_KICKS	8

static char *names[] = { "a", "b" };
static char dir[] = "/tmp/vmc-fuzz-rings.XXXXXX";

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	log_threshold = LOG_SILENT;
	if (!mkdtemp(dir))
		abort();
	return 0;
}

/* What vu_start_queue() does once the frontend set a ring up. */
static void ring_start(struct vmc_device *dev, unsigned int q, unsigned int num,
		       uint16_t last_avail)
{
	struct vq *vq = &dev->vu.vqs[q];

	vq->num = num;
	vq->desc_uaddr = RING_GPA(q);
	vq->avail_uaddr = RING_GPA(q) + 0x400;
	vq->used_uaddr = RING_GPA(q) + 0x500;
	if (!vq_map(vq, &dev->vu.mem))
		abort();
	vq->last_avail_idx = last_avail;
	vq_start(vq, false);
	vq->enabled = true;
}

static int host_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/a.sock", dir);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void run_loop(void)
{
	while (loop_dispatch(0) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_region_desc d = { .gpa = 0, .size = RAM_SIZE, .uaddr = 0 };
	static uint8_t junk[256 * 255];
	struct vmc_device *dev;
	unsigned int i, kicks;
	int fd, host;

	if (size < PARAMS || size > PARAMS + RAM_SIZE)
		return -1;
	fd = memfd_create("fuzz-rings", MFD_CLOEXEC);
	dev = calloc(1, sizeof(*dev));
	if (!dev || fd < 0 || ftruncate(fd, RAM_SIZE) < 0 || loop_init() < 0 ||
	    vmc_device_init(dev, dir, names, 2) < 0 ||
	    guest_mem_set(&dev->vu.mem, &d, &fd, 1) < 0)
		abort();
	memcpy(dev->vu.mem.regions[0].hva, data + PARAMS, size - PARAMS);
	ring_start(dev, VMCHANNEL_VQ_RX, 1u << (data[0] % 7), (uint16_t)(data[2] | data[3] << 8));
	ring_start(dev, VMCHANNEL_VQ_TX, 1u << (data[1] % 7), (uint16_t)(data[4] | data[5] << 8));
	host = host_connect();
	if (host >= 0 && write(host, junk, data[6] * 256u) < 0) {
		/* A full socket buffer: the bytes that went in are enough. */
	}
	vmc_device_ops.rings_started(dev);
	run_loop();
	kicks = data[7] % MAX_KICKS;
	for (i = 0; i < kicks; i++) {
		vmc_device_ops.queue_kicked(dev, VMCHANNEL_VQ_TX);
		vmc_device_ops.queue_kicked(dev, VMCHANNEL_VQ_RX);
		run_loop();
	}
	if (host >= 0)
		close(host);
	run_loop();
	vmc_device_fini(dev);
	loop_fini();
	free(dev);
	return 0;
}
