// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "guest_mem.h"
#include "log.h"

/*
 * The SIGBUS guard.  A frontend may shrink a file it shared after we mapped
 * it (a memfd without F_SEAL_SHRINK, a file in /dev/shm); touching a page
 * beyond the new end raises SIGBUS.  The handler puts a zero page in its
 * place, so the faulting access completes harmlessly, marks the guest_mem
 * as faulted and wakes the owner through an eventfd: the owner then drops
 * the frontend.  The zero page has the region's page size (a huge page on
 * hugetlbfs, where a smaller mapping cannot replace part of one).  A SIGBUS
 * anywhere else, or one sent by a process (kill -BUS: si_code <= 0, its
 * si_addr meaningless), is not ours: it ends the process as the default
 * action would.
 */
#define GUARDED_MAX 16

static struct guest_mem *guarded[GUARDED_MAX];
static int fault_fd = -1;

/* The guarded region holding @addr, and its owner in *owner; NULL if none. */
static const struct guest_region *guarded_region(uintptr_t addr, struct guest_mem **owner)
{
	unsigned int i, r;

	for (i = 0; i < GUARDED_MAX; i++) {
		struct guest_mem *mem = guarded[i];

		for (r = 0; mem && r < mem->nregions; r++) {
			uintptr_t start = (uintptr_t)mem->regions[r].map;

			if (addr >= start && addr - start < mem->regions[r].map_size) {
				*owner = mem;
				return &mem->regions[r];
			}
		}
	}
	return NULL;
}

/* Replaces the region's page holding @addr by a zero page of the same size. */
static bool zero_page_at(const struct guest_region *r, uintptr_t addr)
{
	uintptr_t start = (uintptr_t)r->map;
	uintptr_t end = start + r->map_size;
	uintptr_t page = addr & ~(r->page_size - 1);
	size_t len;

	/* A huge page mapping's length is whole huge pages, its start aligned. */
	end = (end + r->page_size - 1) & ~(r->page_size - 1);
	if (page < start)
		page = start;
	len = (size_t)((page + r->page_size > end ? end : page + r->page_size) - page);
	return mmap((void *)page, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED;
}

static void sigbus_handler(int sig, siginfo_t *si, void *ctx)
{
	struct guest_mem *mem = NULL;
	const struct guest_region *region = si->si_code > 0 ?
		guarded_region((uintptr_t)si->si_addr, &mem) : NULL;

	static const char foreign[] = "vmchanneld: error: SIGBUS not raised by guest memory\n";

	(void)ctx;
	if (!region || !zero_page_at(region, (uintptr_t)si->si_addr)) {
		/* Not ours: a bug.  Exit as the signal would (the sandbox forbids sigaction). */
		if (write(STDERR_FILENO, foreign, sizeof(foreign) - 1) < 0) {
			/* Nothing more to do. */
		}
		_exit(128 + sig);
	}
	guest_mem_fault(mem);
}

/* Async-signal-safe: the handler calls it too. */
void guest_mem_fault(struct guest_mem *mem)
{
	uint64_t one = 1;

	mem->faulted = 1;
	if (write(fault_fd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow in practice; the flag is set anyway. */
	}
}

static int guard_install(void)
{
	struct sigaction sa = { .sa_sigaction = sigbus_handler, .sa_flags = SA_SIGINFO };

	if (fault_fd >= 0)
		return 0;
	fault_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fault_fd < 0 || sigaction(SIGBUS, &sa, NULL) < 0) {
		log_error("cannot guard guest memory against SIGBUS: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int guest_mem_fault_fd(void)
{
	return guard_install() < 0 ? -1 : fault_fd;
}

static void guard(struct guest_mem *mem, bool on)
{
	unsigned int i;

	for (i = 0; i < GUARDED_MAX; i++)
		if (guarded[i] == (on ? NULL : mem)) {
			guarded[i] = on ? mem : NULL;
			return;
		}
	if (on)
		log_warn("more than %d guest memories: a SIGBUS on this one is fatal", GUARDED_MAX);
}

static void unmap_all(struct guest_mem *mem)
{
	unsigned int i;

	for (i = 0; i < mem->nregions; i++) {
		munmap(mem->regions[i].map, mem->regions[i].map_size);
		close(mem->regions[i].fd);
	}
	mem->nregions = 0;
	mem->faulted = 0;
}

void guest_mem_clear(struct guest_mem *mem)
{
	guard(mem, false);
	unmap_all(mem);
}

/*
 * Refuses a file too short for the mapping; says when it may shrink later.
 * Sets *page_size to the size of the file's pages: on hugetlbfs the huge
 * page size (its st_blksize), elsewhere the system's.
 */
static int check_file(int fd, unsigned int i, uint64_t map_size, size_t *page_size)
{
	struct statfs fs;
	struct stat st;
	int seals;

	if (fstat(fd, &st) < 0 || (S_ISREG(st.st_mode) && (uint64_t)st.st_size < map_size)) {
		log_error("memory region %u: %" PRIu64 " bytes, more than its file holds",
			  i, map_size);
		return -EINVAL;
	}
	*page_size = (size_t)sysconf(_SC_PAGESIZE);
	if (fstatfs(fd, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC &&
	    st.st_blksize > 0 && !(st.st_blksize & (st.st_blksize - 1)))
		*page_size = (size_t)st.st_blksize;
	seals = fcntl(fd, F_GET_SEALS);
	if (S_ISREG(st.st_mode) && (seals < 0 || !(seals & F_SEAL_SHRINK)))
		log_info("memory region %u: the file may shrink (not sealed against it): "
			 "a fault on it drops the frontend", i);
	return 0;
}

static int map_region(struct guest_region *r, const struct guest_region_desc *d,
		      int fd, unsigned int i)
{
	uint64_t map_size = d->size + d->mmap_offset;
	int err;

	if (!d->size || map_size < d->size || d->gpa + d->size < d->gpa ||
	    d->uaddr + d->size < d->uaddr || map_size > SIZE_MAX) {
		log_error("memory region %u: bad size or address", i);
		return -EINVAL;
	}
	err = check_file(fd, i, map_size, &r->page_size);
	if (err)
		return err;
	r->map = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r->map == MAP_FAILED) {
		err = -errno;
		log_error("memory region %u: mmap: %s", i, strerror(errno));
		return err;
	}
	r->map_size = map_size;
	r->hva = (uint8_t *)r->map + d->mmap_offset;
	r->gpa = d->gpa;
	r->size = d->size;
	r->uaddr = d->uaddr;
	r->mmap_offset = d->mmap_offset;
	r->fd = fd;
	return 0;
}

/*
 * The new table is mapped whole before the old one goes: on any failure the
 * old mappings (and the rings pointing into them) stay valid.  The files stay
 * open with their mappings: an upgrade hands them to the new binary, which
 * cannot inherit a mapping across exec.
 */
int guest_mem_set(struct guest_mem *mem, const struct guest_region_desc *desc,
		  const int *fds, unsigned int n)
{
	struct guest_mem fresh = { 0 };
	unsigned int i;
	int err = n > GUEST_MEM_MAX_REGIONS ? -EINVAL : 0;

	/* Installed at start only: the sandbox forbids what it takes. */
	if (!err && fault_fd < 0) {
		log_error("guest memory not guarded against SIGBUS: memory table refused");
		err = -EIO;
	}
	for (i = 0; i < n && !err; i++) {
		err = map_region(&fresh.regions[i], &desc[i], fds[i], i);
		if (!err)
			fresh.nregions = i + 1;
	}
	if (err) {
		/* The regions mapped close their files; the others are closed here. */
		for (i = fresh.nregions; i < n; i++)
			close(fds[i]);
		unmap_all(&fresh);
		return err;
	}
	guest_mem_clear(mem);
	*mem = fresh;
	guard(mem, true);
	return 0;
}

void *guest_mem_gpa(const struct guest_mem *mem, uint64_t gpa, uint64_t *len)
{
	unsigned int i;

	for (i = 0; i < mem->nregions; i++) {
		const struct guest_region *r = &mem->regions[i];
		uint64_t off = gpa - r->gpa;

		if (gpa < r->gpa || off >= r->size)
			continue;
		if (*len > r->size - off)
			*len = r->size - off;
		return r->hva + off;
	}
	return NULL;
}

void *guest_mem_uaddr(const struct guest_mem *mem, uint64_t uaddr, uint64_t len)
{
	unsigned int i;

	for (i = 0; i < mem->nregions; i++) {
		const struct guest_region *r = &mem->regions[i];
		uint64_t off = uaddr - r->uaddr;

		if (uaddr >= r->uaddr && off < r->size && len <= r->size - off)
			return r->hva + off;
	}
	return NULL;
}
