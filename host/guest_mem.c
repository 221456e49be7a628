// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest_mem.h"
#include "log.h"

void guest_mem_clear(struct guest_mem *mem)
{
	unsigned int i;

	for (i = 0; i < mem->nregions; i++)
		munmap(mem->regions[i].map, mem->regions[i].map_size);
	mem->nregions = 0;
}

int guest_mem_set(struct guest_mem *mem, const struct guest_region_desc *desc,
		  const int *fds, unsigned int n)
{
	unsigned int i;
	int err = 0;

	guest_mem_clear(mem);
	if (n > GUEST_MEM_MAX_REGIONS)
		err = -EINVAL;
	for (i = 0; i < n && !err; i++) {
		const struct guest_region_desc *d = &desc[i];
		struct guest_region *r = &mem->regions[i];
		struct stat st;
		uint64_t map_size = d->size + d->mmap_offset;

		if (!d->size || map_size < d->size || d->gpa + d->size < d->gpa ||
		    d->uaddr + d->size < d->uaddr || map_size > SIZE_MAX) {
			log_error("memory region %u: bad size or address", i);
			err = -EINVAL;
			break;
		}
		/* Touching a mapping beyond the end of its file would be SIGBUS. */
		if (fstat(fds[i], &st) < 0 || (S_ISREG(st.st_mode) && (uint64_t)st.st_size < map_size)) {
			log_error("memory region %u: %" PRIu64 " bytes, more than its file holds",
				  i, map_size);
			err = -EINVAL;
			break;
		}
		r->map = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);
		if (r->map == MAP_FAILED) {
			log_error("memory region %u: mmap: %s", i, strerror(errno));
			err = -errno;
			break;
		}
		r->map_size = map_size;
		r->hva = (uint8_t *)r->map + d->mmap_offset;
		r->gpa = d->gpa;
		r->size = d->size;
		r->uaddr = d->uaddr;
		mem->nregions = i + 1;
	}
	for (i = 0; i < n; i++)
		close(fds[i]);
	if (err)
		guest_mem_clear(mem);
	return err;
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
