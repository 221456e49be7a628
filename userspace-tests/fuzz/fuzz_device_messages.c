// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: a hostile guest driver and host programs against the
 * device model.  Every txq message is guest input and every lifecycle event
 * may come in any order: vmchanneld may ignore what it gets, never crash,
 * overrun a buffer or leak.
 *
 * Input: a list of steps, each one opcode byte and its arguments:
 *   0 LEN(2, little-endian) BYTES  a txq message (header and payload, LEN
 *                                  bytes, 32 to 32 + 65536)
 *   1 N                             post N % 16 rx buffers and kick rxq
 *   2 C                             a host program connects to channel C % 2
 *   3 C                             the host program of channel C % 2 closes
 *   4 C LEN                         it writes LEN bytes
 *   5                               the rings stop (a VM pause)
 *   6                               the rings run again
 *   7 C                             channel C % 2 is removed
 * then the event loop runs; unknown opcodes end the input.
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

#define RAM_SIZE	(1u << 20)
#define RXQ_SIZE	16u
#define TXQ_SIZE	4u
#define RX_RING_GPA	0x0000u		/* desc, avail at +0x1000, used at +0x2000 */
#define TX_RING_GPA	0x4000u
#define RX_BUF_GPA	0x10000u
#define RX_BUF_SIZE	0x1000u
#define TX_BUF_GPA	0x80000u
#define HDR_SIZE	sizeof(struct vmchannel_hdr)
#define MAX_STEPS	256

static char *names[] = { "a", "b" };
static char dir[] = "/tmp/vmc-fuzz.XXXXXX";
static struct vmc_device *dev;
static uint8_t *ram;
static uint16_t rx_posted, tx_posted;
static int hosts[2];

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

static void ring_start(unsigned int index, uint64_t ring_gpa, unsigned int num)
{
	struct vq *vq = &dev->vu.vqs[index];

	vq->num = num;
	vq->desc_uaddr = ring_gpa;
	vq->avail_uaddr = ring_gpa + 0x1000;
	vq->used_uaddr = ring_gpa + 0x2000;
	if (!vq_map(vq, &dev->vu.mem))
		abort();
	/* EVENT_IDX, as QEMU negotiates it: used_event is the fuzzer's too. */
	vq_start(vq, true);
	vq->enabled = true;
}

static void device_start(void)
{
	struct guest_region_desc d = { .gpa = 0, .size = RAM_SIZE, .uaddr = 0 };
	int fd = memfd_create("fuzz-guest", MFD_CLOEXEC);

	dev = calloc(1, sizeof(*dev));
	if (!dev || fd < 0 || ftruncate(fd, RAM_SIZE) < 0 || loop_init() < 0 ||
	    vmc_device_init(dev, dir, names, 2) < 0 ||
	    guest_mem_set(&dev->vu.mem, &d, &fd, 1) < 0)
		abort();
	ram = dev->vu.mem.regions[0].hva;
	ring_start(VMCHANNEL_VQ_RX, RX_RING_GPA, RXQ_SIZE);
	ring_start(VMCHANNEL_VQ_TX, TX_RING_GPA, TXQ_SIZE);
	rx_posted = tx_posted = 0;
	hosts[0] = hosts[1] = -1;
}

static void device_stop(void)
{
	unsigned int i;

	for (i = 0; i < 2; i++)
		if (hosts[i] >= 0)
			close(hosts[i]);
	vmc_device_fini(dev);
	loop_fini();
	free(dev);
}

static void publish(uint64_t ring_gpa, unsigned int num, uint16_t *posted, uint16_t head,
		    uint64_t addr, uint32_t len, uint16_t flags)
{
	struct vring_desc *desc = (struct vring_desc *)(ram + ring_gpa) + head;
	struct vring_avail *avail = (struct vring_avail *)(ram + ring_gpa + 0x1000);

	desc->addr = htole64(addr);
	desc->len = htole32(len);
	desc->flags = htole16(flags);
	desc->next = 0;
	avail->ring[*posted % num] = htole16(head);
	++*posted;
	avail->idx = htole16(*posted);
}

static void host_connect(unsigned int c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (hosts[c] >= 0)
		return;
	hosts[c] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s.sock", dir, names[c]);
	if (hosts[c] >= 0 && connect(hosts[c], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(hosts[c]);
		hosts[c] = -1;
	}
}

static void rings_running(bool on)
{
	dev->vu.vqs[VMCHANNEL_VQ_RX].started = on;
	dev->vu.vqs[VMCHANNEL_VQ_TX].started = on;
	if (on)
		vmc_device_ops.rings_started(dev);
	else
		vmc_device_ops.rings_stopped(dev);
}

/* Runs one step; returns the bytes it used, 0 to stop. */
static size_t step(const uint8_t *p, size_t left)
{
	static uint8_t junk[65536];
	unsigned int i, len;

	switch (p[0]) {
	case 0:
		if (left < 3)
			return 0;
		len = p[1] | p[2] << 8;
		if (len < HDR_SIZE || len > left - 3)
			return 0;
		memcpy(ram + TX_BUF_GPA, p + 3, len);
		publish(TX_RING_GPA, TXQ_SIZE, &tx_posted, tx_posted % TXQ_SIZE, TX_BUF_GPA,
			len, 0);
		vmc_device_ops.queue_kicked(dev, VMCHANNEL_VQ_TX);
		return 3 + len;
	case 1:
		if (left < 2)
			return 0;
		for (i = 0; i < p[1] % 16u; i++) {
			uint16_t head = rx_posted % RXQ_SIZE;

			publish(RX_RING_GPA, RXQ_SIZE, &rx_posted, head,
				RX_BUF_GPA + head * RX_BUF_SIZE, RX_BUF_SIZE, VRING_DESC_F_WRITE);
		}
		vmc_device_ops.queue_kicked(dev, VMCHANNEL_VQ_RX);
		return 2;
	case 2:
	case 3:
	case 7:
		if (left < 2)
			return 0;
		if (p[0] == 2) {
			host_connect(p[1] % 2u);
		} else if (p[0] == 3 && hosts[p[1] % 2u] >= 0) {
			close(hosts[p[1] % 2u]);
			hosts[p[1] % 2u] = -1;
		} else if (p[0] == 7) {
			vmc_device_remove_channel(dev, names[p[1] % 2u]);
		}
		return 2;
	case 4:
		if (left < 3)
			return 0;
		if (hosts[p[1] % 2u] >= 0 && write(hosts[p[1] % 2u], junk, p[2] * 256u) < 0)
			return 3;
		return 3;
	case 5:
	case 6:
		rings_running(p[0] == 6);
		return 1;
	default:
		return 0;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t used, at = 0;
	unsigned int steps;

	device_start();
	for (steps = 0; steps < MAX_STEPS && at < size; steps++) {
		used = step(data + at, size - at);
		if (!used)
			break;
		at += used;
		while (loop_dispatch(0) > 0)
			;
	}
	device_stop();
	return 0;
}
