/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest memory as the frontend shares it (SET_MEM_TABLE): a few regions of
 * guest physical memory, each mapped from a file descriptor.  Every guest
 * address is translated here, with bounds and overflow checks.
 */
#ifndef VMC_GUEST_MEM_H
#define VMC_GUEST_MEM_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 8

struct guest_region {
	uint64_t gpa;		/* guest physical address of the start */
	uint64_t size;
	uint64_t uaddr;		/* the frontend's virtual address of the start */
	uint8_t *hva;		/* our mapping of the start */
	void *map;		/* mmap() result, covering mmap_offset too */
	size_t map_size;
	size_t page_size;	/* of the file: a huge page on hugetlbfs */
	uint64_t mmap_offset;	/* where in the file the region starts */
	int fd;			/* the file, kept for an upgrade (upgrade.c) */
};

struct guest_mem {
	/* Set by the SIGBUS guard: a mapped file shrank; the mapping is void. */
	volatile sig_atomic_t faulted;
	unsigned int nregions;
	struct guest_region regions[GUEST_MEM_MAX_REGIONS];
};

struct guest_region_desc {
	uint64_t gpa, size, uaddr, mmap_offset;
};

/*
 * Maps @n regions from @fds (consumed: kept with the regions, closed on
 * failure) in place of the
 * current ones; on failure the current ones stay.  Fails (-EIO) unless
 * guest_mem_fault_fd() installed the guard before.  The memory is guarded:
 * a SIGBUS on it (its file shrank) sets @mem->faulted and makes
 * guest_mem_fault_fd() readable instead of killing the process.
 */
int guest_mem_set(struct guest_mem *mem, const struct guest_region_desc *desc,
		  const int *fds, unsigned int n);
void guest_mem_clear(struct guest_mem *mem);
/*
 * An eventfd, readable after a guarded SIGBUS; -1 if none.  The first call
 * installs the guard (sigaction, eventfd): make it before the sandbox,
 * which forbids both (vu_dev_init() does).
 */
int guest_mem_fault_fd(void);
/*
 * Marks @mem faulted as the guard does, for a fault a system call met on it
 * (EFAULT: no signal): the owner drops the frontend.
 */
void guest_mem_fault(struct guest_mem *mem);

/*
 * Translates [gpa, gpa + *len) to our address space.  Returns NULL when gpa
 * is not mapped; otherwise shortens *len to what is contiguous in one region.
 */
void *guest_mem_gpa(const struct guest_mem *mem, uint64_t gpa, uint64_t *len);
/* The same for the frontend's virtual addresses (vring addresses). */
void *guest_mem_uaddr(const struct guest_mem *mem, uint64_t uaddr, uint64_t len);

#endif /* VMC_GUEST_MEM_H */
