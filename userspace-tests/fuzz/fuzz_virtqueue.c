// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: a split virtqueue in fake guest memory whose descriptor
 * table, avail ring and buffers are the fuzz input.  vq_pop() must refuse
 * loops, out-of-range addresses, bad indices, wrong directions and indirect
 * tables, and never touch memory outside the guest's.
 *
 * Input: byte 0 picks the ring size (1 << (b % 9), 1 to 256); the rest is
 * copied over guest memory from address 0: descriptors at 0x0000, the avail
 * ring at 0x1000, the used ring at 0x2000, buffers anywhere in the 64 KiB.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest_mem.h"
#include "log.h"
#include "virtqueue.h"

#define RAM_SIZE	0x10000
#define RAM_UADDR	0x7f0000000000ULL
#define AVAIL_GPA	0x1000
#define USED_GPA	0x2000
#define MAX_POPS	1024

static struct guest_mem mem;
static uint8_t *ram;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct guest_region_desc d = { .gpa = 0, .size = RAM_SIZE, .uaddr = RAM_UADDR };
	int fd = memfd_create("fuzz-guest", MFD_CLOEXEC);

	(void)argc;
	(void)argv;
	log_threshold = LOG_SILENT;
	if (fd < 0 || ftruncate(fd, RAM_SIZE) < 0 || guest_mem_fault_fd() < 0 ||
	    guest_mem_set(&mem, &d, &fd, 1) < 0)
		abort();
	ram = mem.regions[0].hva;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t copy[RAM_SIZE];
	struct vq_elem elem;
	struct vq vq;
	unsigned int pops;

	if (!size || size > RAM_SIZE + 1)
		return -1;
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data + 1, size - 1);
	vq_init(&vq);
	vq.num = 1u << (data[0] % 9);
	vq.desc_uaddr = RAM_UADDR;
	vq.avail_uaddr = RAM_UADDR + AVAIL_GPA;
	vq.used_uaddr = RAM_UADDR + USED_GPA;
	if (!vq_map(&vq, &mem))
		return 0;
	vq.started = vq.enabled = true;
	for (pops = 0; pops < MAX_POPS && vq_pop(&vq, &mem, &elem) > 0; pops++) {
		/* Touch every byte the chain maps, as the device model would. */
		iov_to_buf(elem.out, elem.n_out, 0, copy, sizeof(copy));
		iov_from_buf(elem.in, elem.n_in, 0, copy, elem.in_len < sizeof(copy) ?
			     elem.in_len : sizeof(copy));
		vq_push(&vq, &elem, (uint32_t)elem.in_len);
	}
	return 0;
}
