// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmchanneld's layers without QEMU: the vhost-user transport over a
 * socketpair, split rings in fake guest memory (a memfd), and the device
 * model's configuration window.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "endpoint.h"
#include "event_loop.h"
#include "guest_mem.h"
#include "log.h"
#include "vhost_user.h"
#include "virtqueue.h"
#include "vmc_device.h"
#include "vmc_test.h"

/* ---- fake guest memory: 1 MiB at guest physical 0, frontend VA FAKE_UADDR ---- */

#define FAKE_SIZE (1 << 20)
#define FAKE_UADDR 0x7f0000000000ULL
#define DESC_GPA 0x0000
#define AVAIL_GPA 0x1000
#define USED_GPA 0x2000
#define QSIZE 8

static struct guest_mem mem;
static struct vq vq;
static uint8_t *ram;

static void fake_ram_setup(void)
{
	struct guest_region_desc d = { .gpa = 0, .size = FAKE_SIZE, .uaddr = FAKE_UADDR };
	int fd = memfd_create("fake-guest", MFD_CLOEXEC);

	VMC_ASSERT_FATAL(fd >= 0 && ftruncate(fd, FAKE_SIZE) == 0);
	memset(&mem, 0, sizeof(mem));
	VMC_ASSERT_FATAL(guest_mem_fault_fd() >= 0 && guest_mem_set(&mem, &d, &fd, 1) == 0);
	ram = mem.regions[0].hva;
	memset(ram, 0, FAKE_SIZE);
	vq_init(&vq);
	vq.num = QSIZE;
	vq.desc_uaddr = FAKE_UADDR + DESC_GPA;
	vq.avail_uaddr = FAKE_UADDR + AVAIL_GPA;
	vq.used_uaddr = FAKE_UADDR + USED_GPA;
	VMC_ASSERT_FATAL(vq_map(&vq, &mem));
	vq.started = vq.enabled = true;
}

static void fake_ram_teardown(void)
{
	guest_mem_clear(&mem);
}

static void set_desc(unsigned int i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct vring_desc *d = (struct vring_desc *)(ram + DESC_GPA) + i;

	d->addr = htole64(addr);
	d->len = htole32(len);
	d->flags = htole16(flags);
	d->next = htole16(next);
}

/* Makes @head available at avail index @idx - 1 and publishes @idx. */
static void make_avail(uint16_t idx, uint16_t head)
{
	struct vring_avail *a = (struct vring_avail *)(ram + AVAIL_GPA);

	a->ring[(uint16_t)(idx - 1) % QSIZE] = htole16(head);
	a->idx = htole16(idx);
}

/*
 * The device never writes where a started ring lies: a used ring laid over a
 * ring's parts is refused when the ring starts, and so is a writable buffer on
 * a ring (our writes would move the avail index: the fuzzer found a daemon
 * that popped for ever that way).
 */
static void test_vq_refuses_writes_on_rings(void)
{
	struct vq rings[2];
	struct vq_elem elem;

	fake_ram_setup();
	vq.used_uaddr = vq.avail_uaddr;
	VMC_ASSERT_FATAL(vq_map(&vq, &mem));
	CU_ASSERT_TRUE(vq_used_hits_ring(&vq));
	vq.used_uaddr = FAKE_UADDR + DESC_GPA + 0x40;	/* inside the descriptor table */
	VMC_ASSERT_FATAL(vq_map(&vq, &mem));
	CU_ASSERT_TRUE(vq_used_hits_ring(&vq));
	vq.used_uaddr = FAKE_UADDR + USED_GPA;
	VMC_ASSERT_FATAL(vq_map(&vq, &mem));
	CU_ASSERT_FALSE(vq_used_hits_ring(&vq));
	/* Another started ring's used ring over this one's avail ring. */
	rings[0] = vq;
	rings[1] = vq;
	rings[0].rings = rings[1].rings = rings;
	rings[0].nrings = rings[1].nrings = 2;
	rings[1].used_uaddr = vq.avail_uaddr;
	VMC_ASSERT_FATAL(vq_map(&rings[1], &mem));
	rings[1].started = false;
	CU_ASSERT_FALSE(vq_used_hits_ring(&rings[0]));	/* stopped: its addresses may be stale */
	rings[1].started = true;
	CU_ASSERT_TRUE(vq_used_hits_ring(&rings[0]));
	set_desc(0, AVAIL_GPA, 16, VRING_DESC_F_WRITE, 0);
	make_avail(1, 0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &mem, &elem), -1);
	CU_ASSERT_TRUE(vq.broken);
	fake_ram_teardown();
	/* Read from there, it is only odd: the device does not write it. */
	fake_ram_setup();
	set_desc(0, AVAIL_GPA, 16, 0, 0);
	make_avail(1, 0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &mem, &elem), 1);
	fake_ram_teardown();
}

static void test_vq_pops_chain(void)
{
	struct vq_elem elem;

	fake_ram_setup();
	set_desc(0, 0x10000, 24, VRING_DESC_F_NEXT, 1);
	set_desc(1, 0x20000, 100, VRING_DESC_F_WRITE, 0);
	make_avail(1, 0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &mem, &elem), 1);
	CU_ASSERT_EQUAL(elem.head, 0);
	CU_ASSERT_EQUAL(elem.out_len, 24);
	CU_ASSERT_EQUAL(elem.in_len, 100);
	CU_ASSERT_PTR_EQUAL(elem.out[0].iov_base, ram + 0x10000);
	CU_ASSERT_EQUAL(vq_pop(&vq, &mem, &elem), 0);
	vq_push(&vq, &elem, 7);
	CU_ASSERT_EQUAL(le16toh(((struct vring_used *)(ram + USED_GPA))->idx), 1);
	fake_ram_teardown();
}

static void test_vq_wraps_avail_index(void)
{
	struct vq_elem elem;

	fake_ram_setup();
	set_desc(3, 0x10000, 16, 0, 0);
	vq.last_avail_idx = 65535;
	make_avail(0, 3);	/* entry 65535, published as index 0 */
	CU_ASSERT_EQUAL(vq_pop(&vq, &mem, &elem), 1);
	CU_ASSERT_EQUAL(elem.head, 3);
	CU_ASSERT_EQUAL(vq.last_avail_idx, 0);
	CU_ASSERT_FALSE(vq.broken);
	fake_ram_teardown();
}

/* avail_event, at the end of the used ring (the device writes it). */
static uint16_t avail_event(void)
{
	uint16_t v;

	memcpy(&v, &((struct vring_used *)(ram + USED_GPA))->ring[QSIZE], sizeof(v));
	return le16toh(v);
}

/*
 * Kicks are asked for at the next chain when the ring is found empty, except
 * while the device polls: then vq_pop() leaves avail_event behind, and asking
 * again reports a chain added meanwhile (it came without a kick).
 */
static void test_vq_kicks_off_while_polled(void)
{
	struct vring_used *used;
	struct vq_elem elem;

	fake_ram_setup();
	vq_start(&vq, true);
	set_desc(0, 0x10000, 16, 0, 0);
	make_avail(1, 0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &mem, &elem), 1);
	CU_ASSERT_EQUAL(vq_pop(&vq, &mem, &elem), 0);
	CU_ASSERT_EQUAL(avail_event(), 1);
	CU_ASSERT_FALSE(vq_want_kicks(&vq, false));
	make_avail(2, 0);
	CU_ASSERT_TRUE(vq_has_avail(&vq));
	CU_ASSERT_EQUAL(vq_pop(&vq, &mem, &elem), 1);
	CU_ASSERT_EQUAL(vq_pop(&vq, &mem, &elem), 0);
	CU_ASSERT_FALSE(vq_has_avail(&vq));
	CU_ASSERT_EQUAL(avail_event(), 1);	/* the guest passed it: no kick */
	make_avail(3, 0);
	CU_ASSERT_TRUE(vq_want_kicks(&vq, true));
	CU_ASSERT_EQUAL(avail_event(), 2);
	CU_ASSERT_EQUAL(vq_pop(&vq, &mem, &elem), 1);
	CU_ASSERT_FALSE(vq_want_kicks(&vq, true));
	CU_ASSERT_EQUAL(avail_event(), 3);
	fake_ram_teardown();

	/* Without EVENT_IDX: the used ring's flag, whatever it held before. */
	fake_ram_setup();
	vq_start(&vq, false);
	used = (struct vring_used *)(ram + USED_GPA);
	CU_ASSERT_FALSE(vq_want_kicks(&vq, false));
	CU_ASSERT_EQUAL(le16toh(used->flags), VRING_USED_F_NO_NOTIFY);
	CU_ASSERT_FALSE(vq_want_kicks(&vq, true));
	CU_ASSERT_EQUAL(used->flags, 0);
	used->flags = htole16(VRING_USED_F_NO_NOTIFY);	/* left by a process before */
	vq_start(&vq, false);
	CU_ASSERT_FALSE(vq_want_kicks(&vq, true));
	CU_ASSERT_EQUAL(used->flags, 0);
	/* A stopped ring is not looked at. */
	make_avail(1, 0);
	vq.started = false;
	CU_ASSERT_FALSE(vq_has_avail(&vq));
	CU_ASSERT_FALSE(vq_want_kicks(&vq, true));
	fake_ram_teardown();
}

static void expect_broken(const char *what)
{
	struct vq_elem elem;

	CU_ASSERT_EQUAL(vq_pop(&vq, &mem, &elem), -1);
	CU_ASSERT_TRUE(vq.broken);
	if (!vq.broken)
		fprintf(stderr, "ring accepted: %s\n", what);
	/* A broken ring stays stopped. */
	CU_ASSERT_EQUAL(vq_pop(&vq, &mem, &elem), 0);
}

static void test_vq_rejects_loop(void)
{
	fake_ram_setup();
	set_desc(0, 0x10000, 8, VRING_DESC_F_NEXT, 1);
	set_desc(1, 0x10000, 8, VRING_DESC_F_NEXT, 0);
	make_avail(1, 0);
	expect_broken("descriptor loop");
	fake_ram_teardown();
}

static void test_vq_rejects_outside_memory(void)
{
	fake_ram_setup();
	set_desc(0, FAKE_SIZE - 4, 8, 0, 0);	/* runs past the end */
	make_avail(1, 0);
	expect_broken("buffer past the end of guest memory");
	fake_ram_teardown();

	fake_ram_setup();
	set_desc(0, 0xffffffffffff0000ULL, 0x20000, 0, 0);	/* wraps 2^64 */
	make_avail(1, 0);
	expect_broken("address wrapping around");
	fake_ram_teardown();
}

static void test_vq_rejects_bad_indices(void)
{
	fake_ram_setup();
	make_avail(QSIZE + 1, 0);	/* more available than the ring holds */
	expect_broken("avail index jump");
	fake_ram_teardown();

	fake_ram_setup();
	make_avail(1, QSIZE);		/* head out of range */
	expect_broken("head >= ring size");
	fake_ram_teardown();

	fake_ram_setup();
	set_desc(0, 0x10000, 8, VRING_DESC_F_NEXT, QSIZE + 5);
	make_avail(1, 0);
	expect_broken("next out of range");
	fake_ram_teardown();
}

static void test_vq_rejects_bad_direction_and_indirect(void)
{
	fake_ram_setup();
	set_desc(0, 0x10000, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(1, 0x20000, 8, 0, 0);
	make_avail(1, 0);
	expect_broken("readable after writable");
	fake_ram_teardown();

	fake_ram_setup();
	set_desc(0, 0x10000, 16, VRING_DESC_F_INDIRECT, 0);
	make_avail(1, 0);
	expect_broken("indirect without negotiation");
	fake_ram_teardown();
}

/* ---- guest memory ---- */

static int memfd_of(size_t size)
{
	int fd = memfd_create("unit-guest", MFD_CLOEXEC);

	VMC_ASSERT_FATAL(fd >= 0 && ftruncate(fd, (off_t)size) == 0);
	return fd;
}

/* A frontend's memory table is checked before anything is mapped or used. */
static void test_mem_rejects_bad_regions(void)
{
	static struct guest_mem m;
	struct guest_region_desc d = { .gpa = 0x1000, .size = 0x10000, .uaddr = 0x7f0000000000ULL };
	int fd;

	VMC_ASSERT_FATAL(guest_mem_fault_fd() >= 0);
	/* Larger than its file: a later access would be SIGBUS. */
	fd = memfd_of(0x8000);
	CU_ASSERT_EQUAL(guest_mem_set(&m, &d, &fd, 1), -EINVAL);
	d.size = 0;
	fd = memfd_of(0x10000);
	CU_ASSERT_EQUAL(guest_mem_set(&m, &d, &fd, 1), -EINVAL);
	d.size = 0x10000;
	d.gpa = UINT64_MAX - 0x100;			/* wraps */
	fd = memfd_of(0x10000);
	CU_ASSERT_EQUAL(guest_mem_set(&m, &d, &fd, 1), -EINVAL);
	d.gpa = 0x1000;
	d.mmap_offset = UINT64_MAX - 0x10;		/* offset + size wraps */
	fd = memfd_of(0x10000);
	CU_ASSERT_EQUAL(guest_mem_set(&m, &d, &fd, 1), -EINVAL);
	CU_ASSERT_EQUAL(m.nregions, 0);
}

static void test_mem_translates_within_regions(void)
{
	static struct guest_mem m;
	struct guest_region_desc d = { .gpa = 0x1000, .size = 0x10000, .uaddr = 0x7f0000000000ULL };
	int fd = memfd_of(0x10000);
	uint64_t len;

	VMC_ASSERT_FATAL(guest_mem_fault_fd() >= 0 && guest_mem_set(&m, &d, &fd, 1) == 0);
	len = 0x100;
	CU_ASSERT_PTR_EQUAL(guest_mem_gpa(&m, 0x1000, &len), m.regions[0].hva);
	len = 0x100;
	CU_ASSERT_PTR_NULL(guest_mem_gpa(&m, 0xfff, &len));		/* below */
	len = 0x100;
	CU_ASSERT_PTR_NULL(guest_mem_gpa(&m, 0x11000, &len));		/* just past */
	len = 0x100;
	CU_ASSERT_PTR_NOT_NULL(guest_mem_gpa(&m, 0x10f80, &len));	/* straddles the end */
	CU_ASSERT_EQUAL(len, 0x80);
	CU_ASSERT_PTR_NULL(guest_mem_uaddr(&m, 0x7f0000000000ULL + 0xff00, 0x200));
	CU_ASSERT_PTR_NOT_NULL(guest_mem_uaddr(&m, 0x7f0000000000ULL, 0x10000));
	guest_mem_clear(&m);
}

/*
 * In a child: maps @fd (@size bytes) as guest memory, then runs @hit on the
 * mapping.  Returns the child's exit status: 0 when the guard took the hit
 * as a guest fault (faulted set, fault eventfd readable, zeros read),
 * 1 when it did not, 128 + SIGBUS when the guard ended the process.
 */
static int guarded_child(int fd, size_t size, void (*hit)(int fd, volatile uint8_t *p))
{
	struct guest_region_desc d = { .gpa = 0, .size = size, .uaddr = FAKE_UADDR };
	int status;
	pid_t pid = fork();

	VMC_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		static struct guest_mem m;
		int keep = dup(fd), fault_fd = guest_mem_fault_fd();
		uint64_t n;

		if (keep < 0 || fault_fd < 0 || guest_mem_set(&m, &d, &fd, 1) != 0)
			_exit(2);
		hit(keep, m.regions[0].hva);
		_exit(m.faulted && read(fault_fd, &n, sizeof(n)) == sizeof(n) &&
		      m.regions[0].hva[size - 1] == 0 ? 0 : 1);
	}
	close(fd);
	VMC_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

static void shrink_and_read_last_page(int fd, volatile uint8_t *p)
{
	struct stat st;

	if (fstat(fd, &st) != 0 || ftruncate(fd, 0) != 0)
		_exit(2);
	(void)p[st.st_size - 1];
}

/* A frontend that shrinks the file under its memory is dropped, not fatal. */
static void test_mem_guard_takes_shrunk_file_as_fault(void)
{
	CU_ASSERT_EQUAL(guarded_child(memfd_of(0x4000), 0x4000, shrink_and_read_last_page), 0);
}

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static bool write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	bool ok = f && fprintf(f, "%ld\n", v) > 0;

	return f && fclose(f) == 0 && ok;
}

/*
 * The same on hugetlbfs, where the zero page must be a huge page.  It needs
 * a huge page pool: as root (make check) the test adds two pages to
 * vm.nr_hugepages for its run and puts the old value back; elsewhere it says
 * that it checked nothing.
 */
static void test_mem_guard_takes_shrunk_hugetlb_as_fault(void)
{
	const size_t huge = 2 << 20;
	bool grown = false;
	int fd, lock;
	long pool;
	void *probe = MAP_FAILED;

	if (geteuid() != 0) {
		fprintf(stderr, "\n  (not root: no huge page pool, hugetlbfs guard not tested) ");
		return;
	}
	/* Two runs at once (two checkouts) must not undo each other's pages. */
	lock = open("/run/lock/vmchannel-unit-hugepages", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	VMC_ASSERT_FATAL(lock >= 0 && flock(lock, LOCK_EX) == 0);
	pool = read_long(NR_HUGEPAGES);
	VMC_ASSERT_FATAL(pool >= 0);
	grown = write_long(NR_HUGEPAGES, pool + 2);
	fd = memfd_create("fake-guest-huge", MFD_CLOEXEC | MFD_HUGETLB);
	if (fd >= 0 && ftruncate(fd, (off_t)huge) == 0)
		probe = mmap(NULL, huge, PROT_READ, MAP_SHARED, fd, 0);
	CU_ASSERT(probe != MAP_FAILED);	/* false: the kernel found no huge page */
	if (probe != MAP_FAILED) {
		munmap(probe, huge);
		CU_ASSERT_EQUAL(guarded_child(fd, huge, shrink_and_read_last_page), 0);
	} else if (fd >= 0) {
		close(fd);
	}
	if (grown)
		CU_ASSERT(write_long(NR_HUGEPAGES, pool));
	close(lock);
}

/* A SIGBUS that names a guest address but comes from a process (kill -BUS). */
static void queue_sigbus_at(int fd, volatile uint8_t *p)
{
	siginfo_t si = { .si_signo = SIGBUS, .si_code = SI_QUEUE };

	(void)fd;
	si.si_addr = (void *)p;
	syscall(SYS_rt_sigqueueinfo, getpid(), SIGBUS, &si);
}

static void test_mem_guard_ignores_sent_sigbus(void)
{
	CU_ASSERT_EQUAL(guarded_child(memfd_of(0x4000), 0x4000, queue_sigbus_at), 128 + SIGBUS);
}

/* ---- log rate limiting ---- */

/* Runs @fn with stderr going to a memfd; returns the number of lines written. */
static unsigned int stderr_lines_of(void (*fn)(void))
{
	int saved = dup(STDERR_FILENO), out = memfd_create("stderr", MFD_CLOEXEC);
	unsigned int lines = 0;
	char buf[4096];
	ssize_t n;
	off_t off = 0;

	VMC_ASSERT_FATAL(saved >= 0 && out >= 0 && dup2(out, STDERR_FILENO) >= 0);
	fn();
	VMC_ASSERT_FATAL(dup2(saved, STDERR_FILENO) >= 0);
	while ((n = pread(out, buf, sizeof(buf), off)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
		off += n;
	}
	close(saved);
	close(out);
	return lines;
}

/*
 * Two message kinds whose format strings lie 512 bytes apart: they hashed
 * to one slot of the old table and, alternating, reset each other's budget.
 */
static char colliding_formats[512 + 32];

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void log_two_kinds_alternating(void)
{
	unsigned int i;

	for (i = 0; i < 5 * LOG_BURST; i++) {
		log_warn(colliding_formats, i);
		log_warn(colliding_formats + 512, i);
	}
}
#pragma GCC diagnostic pop

static void test_log_rate_limits_each_kind(void)
{
	strcpy(colliding_formats, "first kind %u");
	strcpy(colliding_formats + 512, "second kind %u");
	CU_ASSERT_EQUAL(stderr_lines_of(log_two_kinds_alternating), 2 * LOG_BURST);
}

/* ---- host endpoints ---- */

static void test_endpoint_never_follows_links(void)
{
	char dir[] = "/tmp/vmc-unit.XXXXXX", path[64], target[64];
	struct stat st;
	int fd;

	VMC_ASSERT_FATAL(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/c.sock", dir);
	snprintf(target, sizeof(target), "%s/target", dir);
	/* A symlink, even to nothing, and a regular file are left alone. */
	VMC_ASSERT_FATAL(symlink(target, path) == 0);
	CU_ASSERT_EQUAL(endpoint_listen(path), -1);
	CU_ASSERT_NOT_EQUAL(access(target, F_OK), 0);
	unlink(path);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	VMC_ASSERT_FATAL(fd >= 0);
	close(fd);
	CU_ASSERT_EQUAL(endpoint_listen(path), -1);
	unlink(path);
	/* A fresh socket is 0600; a stale one is replaced. */
	fd = endpoint_listen(path);
	CU_ASSERT_TRUE(fd >= 0);
	CU_ASSERT_EQUAL(lstat(path, &st), 0);
	CU_ASSERT_TRUE(S_ISSOCK(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
	close(fd);
	fd = endpoint_listen(path);
	CU_ASSERT_TRUE(fd >= 0);
	close(fd);
	unlink(path);
	rmdir(dir);
}

/* ---- vhost-user transport ---- */

static void send_raw(int fd, uint32_t request, uint32_t flags, uint32_t size)
{
	uint32_t hdr[3] = { request, flags, size };

	CU_ASSERT_EQUAL(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
}

static void test_vu_rejects_malformed(void)
{
	static struct vu_msg msg;
	int sv[2];

	VMC_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	send_raw(sv[1], VU_GET_FEATURES, VU_FLAG_VERSION, VU_MAX_PAYLOAD + 1);
	CU_ASSERT_EQUAL(vu_recv(sv[0], &msg), -1);
	send_raw(sv[1], VU_GET_FEATURES, 0x2, 0);	/* unknown version */
	CU_ASSERT_EQUAL(vu_recv(sv[0], &msg), -1);
	send_raw(sv[1], VU_SET_FEATURES, VU_FLAG_VERSION, 8);	/* payload missing */
	close(sv[1]);
	CU_ASSERT_EQUAL(vu_recv(sv[0], &msg), -1);
	CU_ASSERT_EQUAL(vu_recv(sv[0], &msg), 0);	/* then end of file */
	close(sv[0]);
}

static void test_vu_round_trip(void)
{
	static struct vu_msg msg, got;
	int sv[2];

	VMC_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	memset(&msg, 0, sizeof(msg));
	msg.request = VU_SET_FEATURES;
	msg.size = sizeof(uint64_t);
	msg.payload.u64 = 0x123456789ULL;
	CU_ASSERT_TRUE(vu_send(sv[1], &msg));
	CU_ASSERT_EQUAL(vu_recv(sv[0], &got), 1);
	CU_ASSERT_EQUAL(got.request, VU_SET_FEATURES);
	CU_ASSERT_EQUAL(got.size, 8);
	CU_ASSERT_EQUAL(got.payload.u64, 0x123456789ULL);
	CU_ASSERT_EQUAL(got.nfds, 0);
	close(sv[0]);
	close(sv[1]);
}

/* The backend channel carries the config-change notification (config IRQ). */
static void test_vu_config_change_message(void)
{
	static struct vu_dev dev;
	static struct vu_msg got;
	int sv[2];

	VMC_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	vu_dev_init(&dev, &vmc_device_ops, NULL);
	dev.backend_fd = sv[0];
	/* The frontend's device runs (held while not: test_device.c). */
	dev.vqs[0].started = dev.vqs[0].enabled = true;
	dev.vqs[1].started = dev.vqs[1].enabled = true;
	/* Not negotiated: nothing may be sent. */
	vu_dev_config_changed(&dev);
	dev.protocol_features = 1ULL << VU_PROTOCOL_F_BACKEND_REQ;
	vu_dev_config_changed(&dev);
	close(sv[0]);
	CU_ASSERT_EQUAL(vu_recv(sv[1], &got), 1);
	CU_ASSERT_EQUAL(got.request, VU_BACKEND_CONFIG_CHANGE_MSG);
	CU_ASSERT_EQUAL(got.size, 0);
	CU_ASSERT_EQUAL(vu_recv(sv[1], &got), 0);	/* exactly one message */
	close(sv[1]);
}

/* ---- the event loop ---- */

static unsigned int loop_calls[2];

/* A pipe's read end is readable: count it. */
static void count_call(void *opaque, uint32_t events)
{
	unsigned int *calls = opaque;

	(void)events;
	(*calls)++;
}

/* The same, and the first call stops the loop. */
static void count_and_stop(void *opaque, uint32_t events)
{
	unsigned int *calls = opaque;

	count_call(opaque, events);
	if (*calls == 1)
		loop_stop();
}

/*
 * loop_stop() ends loop_run() and the batch it was called in; the loop then
 * dispatches again (vmchanneld serves on after SIGTERM while host programs
 * take what they are owed).  It dispatched nothing once stopped: that
 * delivery spun without writing a byte.
 */
static void test_loop_dispatches_after_stop(void)
{
	struct watch w[2] = { { .fd = -1 }, { .fd = -1 } };
	int p[2][2], i;

	VMC_ASSERT_FATAL(loop_init() == 0);
	for (i = 0; i < 2; i++) {
		VMC_ASSERT_FATAL(pipe(p[i]) == 0);
		loop_calls[i] = 0;
		VMC_ASSERT_FATAL(loop_watch(&w[i], p[i][0], EPOLLIN, i ? count_call : count_and_stop,
					    &loop_calls[i]) == 0);
	}
	VMC_ASSERT_FATAL(write(p[0][1], "x", 1) == 1);
	CU_ASSERT_EQUAL(loop_run(), 0);
	CU_ASSERT_EQUAL(loop_calls[0], 1);
	/* Level-triggered: the unread byte keeps both readable. */
	VMC_ASSERT_FATAL(write(p[1][1], "x", 1) == 1);
	CU_ASSERT_EQUAL(loop_dispatch(1000), 2);
	CU_ASSERT_EQUAL(loop_calls[0], 2);
	CU_ASSERT_EQUAL(loop_calls[1], 1);
	for (i = 0; i < 2; i++) {
		loop_unwatch(&w[i]);
		close(p[i][0]);
		close(p[i][1]);
	}
	loop_fini();
}

/*
 * Adaptive polling's window: it grows while batches come within the maximum
 * of each other, never past it, keeps what covered the wait, and falls to
 * nothing once they come further apart (a quiet vmchanneld never polls).
 */
static void test_loop_poll_window_adapts(void)
{
	int64_t window = 0;
	int i;

	CU_ASSERT_EQUAL(loop_poll_window(0, 0, 200), 0);	/* already there */
	for (i = 0; i < 10; i++)
		window = loop_poll_window(window, 150, 200);
	CU_ASSERT_EQUAL(window, 200);
	CU_ASSERT_EQUAL(loop_poll_window(window, 150, 200), 200);
	CU_ASSERT_EQUAL(loop_poll_window(16, 10, 200), 16);
	CU_ASSERT_EQUAL(loop_poll_window(16, 17, 200), 32);
	CU_ASSERT_EQUAL(loop_poll_window(128, 190, 200), 200);
	CU_ASSERT_EQUAL(loop_poll_window(0, 2, 3), 3);	/* a maximum below the first window */
	CU_ASSERT_EQUAL(loop_poll_window(200, 201, 200), 100);
	for (i = 0; i < 10 && window; i++)
		window = loop_poll_window(window, 5000, 200);
	CU_ASSERT_EQUAL(window, 0);
	CU_ASSERT_EQUAL(loop_poll_window(0, 5000, 200), 0);
}

static int poll_pipe[2];

/* What write_bytes() writes into poll_pipe: @count bytes, @gap_ns apart. */
struct byte_writer {
	long gap_ns;
	int count;
};

static void *write_bytes(void *arg)
{
	const struct byte_writer *bw = arg;
	struct timespec gap = { .tv_sec = bw->gap_ns / 1000000000, .tv_nsec = bw->gap_ns % 1000000000 };
	int i;

	for (i = 0; i < bw->count; i++) {
		nanosleep(&gap, NULL);
		if (write(poll_pipe[1], "x", 1) != 1)
			break;
	}
	return NULL;
}

/* Takes every byte the pipe holds (edge-triggered: the next comes as an edge). */
static void take_bytes(void *opaque, uint32_t events)
{
	unsigned int *bytes = opaque;
	char buf[256];
	ssize_t n;

	(void)events;
	while ((n = read(poll_pipe[0], buf, sizeof(buf))) > 0)
		*bytes += (unsigned int)n;
}

/*
 * Runs the loop until @bw has written all its bytes, each wait ending with
 * the next byte: the pipe is edge-triggered, so a byte that polling found
 * and dropped would not come again, and the wait would time out.
 */
static void dispatch_bytes(struct byte_writer *bw)
{
	struct watch w = { .fd = -1 };
	unsigned int bytes = 0;
	pthread_t writer;

	VMC_ASSERT_FATAL(pipe2(poll_pipe, O_NONBLOCK) == 0);
	VMC_ASSERT_FATAL(loop_watch(&w, poll_pipe[0], EPOLLIN | EPOLLET, take_bytes, &bytes) == 0);
	VMC_ASSERT_FATAL(pthread_create(&writer, NULL, write_bytes, bw) == 0);
	while (bytes < (unsigned int)bw->count)
		VMC_ASSERT_FATAL(loop_dispatch(10000) > 0);
	pthread_join(writer, NULL);
	CU_ASSERT_EQUAL(bytes, bw->count);
	loop_unwatch(&w);
	close(poll_pipe[0]);
	close(poll_pipe[1]);
}

static int64_t elapsed_us(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000000 + (t1.tv_nsec - t0->tv_nsec) / 1000;
}

/* With polling on, events that come while the loop polls or sleeps are all dispatched. */
static void test_loop_polls_without_losing_events(void)
{
	struct byte_writer bw = { .gap_ns = 50000, .count = 200 };

	VMC_ASSERT_FATAL(loop_init() == 0);
	loop_set_poll(10000);
	dispatch_bytes(&bw);
	/* Bytes 50 us apart: the loop polls for them. */
	CU_ASSERT(loop_poll_window_now() > 0);
	loop_fini();
}

/*
 * Polling counts against a wait's timeout: with a window of 32 ms or more
 * (grown by bytes 30 ms apart, up to 50 ms), a 2 ms wait for nothing still
 * ends after about 2 ms, not 34 or more (the bound leaves a busy host 28 ms
 * of slack), and not before.
 */
static void test_loop_poll_keeps_timeouts(void)
{
	struct byte_writer bw = { .gap_ns = 30000000, .count = 20 };
	struct timespec t0;
	int64_t waited;

	VMC_ASSERT_FATAL(loop_init() == 0);
	loop_set_poll(50000);
	dispatch_bytes(&bw);
	CU_ASSERT(loop_poll_window_now() >= 32768);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CU_ASSERT_EQUAL(loop_dispatch(2), 0);
	waited = elapsed_us(&t0);
	CU_ASSERT(waited >= 2000 && waited < 30000);
	loop_fini();
}

/*
 * A fake guest ring for the loop's poller: the guest side adds items and
 * kicks (writes the eventfd) only while kicks are wanted, as a virtio driver
 * with EVENT_IDX does; the loop takes them on the kick or by polling.
 */
struct fake_ring {
	atomic_uint added, taken;
	atomic_bool want_kicks;
	unsigned int ready_while_kicks_wanted;
	unsigned int kicks;
	int kick_fd;
	long gap_ns;		/* guest thread: between items */
	unsigned int count;
};

static bool fake_ready(void *opaque)
{
	struct fake_ring *r = opaque;

	/* Looked at only while polling, with kicks off. */
	r->ready_while_kicks_wanted += atomic_load(&r->want_kicks);
	return atomic_load(&r->added) != atomic_load(&r->taken);
}

static bool fake_kicks(void *opaque, bool on)
{
	struct fake_ring *r = opaque;

	atomic_store(&r->want_kicks, on);
	return on && atomic_load(&r->added) != atomic_load(&r->taken);
}

static void fake_run(void *opaque)
{
	struct fake_ring *r = opaque;

	atomic_store(&r->taken, atomic_load(&r->added));
}

static void fake_kicked(void *opaque, uint32_t events)
{
	struct fake_ring *r = opaque;
	uint64_t v;

	(void)events;
	if (read(r->kick_fd, &v, sizeof(v)) == sizeof(v))
		fake_run(r);
}

static void *fake_guest(void *arg)
{
	struct fake_ring *r = arg;
	struct timespec gap = { .tv_nsec = r->gap_ns };
	unsigned int i;

	for (i = 0; i < r->count; i++) {
		nanosleep(&gap, NULL);
		atomic_fetch_add(&r->added, 1);
		/* Seq-cst: the add is seen before the request is read, as with a ring. */
		if (atomic_load(&r->want_kicks)) {
			r->kicks++;
			if (eventfd_write(r->kick_fd, 1) < 0)
				break;
		}
	}
	return NULL;
}

/*
 * While the loop polls, items come without kicks and are all taken; before
 * it sleeps it asks for kicks again, so none waits for a kick that never
 * comes (each dispatch would then time out).
 */
static void test_loop_polls_a_ring_without_kicks(void)
{
	struct fake_ring r = { .gap_ns = 20000, .count = 2000 };
	struct loop_poller poller = { fake_ready, fake_kicks, fake_run, &r };
	struct watch w = { .fd = -1 };
	pthread_t guest;

	atomic_init(&r.added, 0);
	atomic_init(&r.taken, 0);
	atomic_init(&r.want_kicks, true);
	VMC_ASSERT_FATAL(loop_init() == 0);
	r.kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	VMC_ASSERT_FATAL(r.kick_fd >= 0);
	VMC_ASSERT_FATAL(loop_watch(&w, r.kick_fd, EPOLLIN, fake_kicked, &r) == 0);
	loop_set_poll(10000);
	loop_set_poller(&poller);
	VMC_ASSERT_FATAL(pthread_create(&guest, NULL, fake_guest, &r) == 0);
	while (atomic_load(&r.taken) < r.count)
		if (loop_dispatch(10000) <= 0)
			break;
	pthread_join(guest, NULL);
	CU_ASSERT_EQUAL(atomic_load(&r.taken), r.count);
	CU_ASSERT_EQUAL(r.ready_while_kicks_wanted, 0);
	/* Items 20 us apart: polling took some of them without a kick (all but those after a sleep). */
	CU_ASSERT(r.kicks < r.count);
	/* Nothing coming: the loop sleeps, with kicks asked for. */
	CU_ASSERT_EQUAL(loop_dispatch(30), 0);
	CU_ASSERT_TRUE(atomic_load(&r.want_kicks));
	/* An item added without a kick is found before sleeping, not after the timeout. */
	atomic_store(&r.want_kicks, false);
	atomic_fetch_add(&r.added, 1);
	loop_set_poll(0);
	CU_ASSERT_EQUAL(loop_dispatch(10000), 1);
	CU_ASSERT_EQUAL(atomic_load(&r.taken), atomic_load(&r.added));
	/* A poller removed is left asking for kicks. */
	atomic_store(&r.want_kicks, false);
	loop_set_poller(NULL);
	CU_ASSERT_TRUE(atomic_load(&r.want_kicks));
	loop_unwatch(&w);
	close(r.kick_fd);
	loop_fini();
}

static bool always(void *opaque)
{
	(void)opaque;
	return true;
}

static bool always_kicked(void *opaque, bool on)
{
	(void)opaque;
	return on;
}

/* The poller's work: counted as count_call() counts a descriptor's events. */
static void count_run(void *opaque)
{
	count_call(opaque, 0);
}

/*
 * A guest that keeps the polled ring busy does not starve the descriptors
 * (signals, the control socket, host programs), nor does a descriptor that
 * is always ready starve the ring: both are served in every batch, whether
 * the loop polls, does not (--poll-us 0), or sleeps after a bulk batch.
 */
static void test_loop_serves_ring_and_descriptors(void)
{
	unsigned int runs = 0, events = 0, i, mode;
	struct loop_poller poller = { always, always_kicked, count_run, &runs };
	struct watch w = { .fd = -1 };
	int fd;

	for (mode = 0; mode < 3; mode++) {
		VMC_ASSERT_FATAL(loop_init() == 0);
		fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);	/* readable, never read */
		VMC_ASSERT_FATAL(fd >= 0);
		VMC_ASSERT_FATAL(loop_watch(&w, fd, EPOLLIN, count_call, &events) == 0);
		loop_set_poll(mode == 1 ? 0 : 1000);
		loop_set_poller(&poller);
		runs = events = 0;
		for (i = 0; i < 10; i++) {
			if (mode == 2)
				loop_sleep_next();
			CU_ASSERT_EQUAL(loop_dispatch(1000), 2);
		}
		CU_ASSERT_EQUAL(runs, 10);
		CU_ASSERT_EQUAL(events, 10);
		loop_unwatch(&w);
		close(fd);
		loop_fini();
	}
}

/* ---- device model: the configuration window ---- */

static void test_config_window(void)
{
	char dir[] = "/tmp/vmc-unit.XXXXXX";
	char *names[] = { "hello", "clipboard" };
	struct vmc_device *dev = calloc(1, sizeof(*dev));
	struct vmchannel_config cfg;
	char path[128];
	uint16_t select;

	VMC_ASSERT_FATAL(dev && mkdtemp(dir));
	VMC_ASSERT_FATAL(loop_init() == 0);
	VMC_ASSERT_FATAL(vmc_device_init(dev, dir, names, 2) == 0);

	CU_ASSERT_TRUE(vmc_device_ops.get_config(dev, 0, (uint8_t *)&cfg, sizeof(cfg)));
	CU_ASSERT_EQUAL(le16toh(cfg.num_channels), 2);
	CU_ASSERT_EQUAL(le32toh(cfg.id), 1);
	CU_ASSERT_STRING_EQUAL((char *)cfg.name, "hello");

	/* QEMU writes the whole space back with the guest's select in it. */
	cfg.select = htole16(1);
	CU_ASSERT_TRUE(vmc_device_ops.set_config(dev, 0, (uint8_t *)&cfg, sizeof(cfg)));
	CU_ASSERT_TRUE(vmc_device_ops.get_config(dev, 0, (uint8_t *)&cfg, sizeof(cfg)));
	CU_ASSERT_EQUAL(le32toh(cfg.id), 2);
	CU_ASSERT_STRING_EQUAL((char *)cfg.name, "clipboard");

	/* A write of select alone works too; out of range shows zeros. */
	select = htole16(7);
	CU_ASSERT_TRUE(vmc_device_ops.set_config(dev, 6, (uint8_t *)&select, 2));
	CU_ASSERT_TRUE(vmc_device_ops.get_config(dev, 0, (uint8_t *)&cfg, sizeof(cfg)));
	CU_ASSERT_EQUAL(cfg.id, 0);
	CU_ASSERT_EQUAL(cfg.name[0], 0);

	/* Read-only fields cannot be written. */
	cfg.num_channels = htole16(99);
	cfg.select = 0;
	CU_ASSERT_TRUE(vmc_device_ops.set_config(dev, 0, (uint8_t *)&cfg, sizeof(cfg)));
	CU_ASSERT_TRUE(vmc_device_ops.get_config(dev, 0, (uint8_t *)&cfg, sizeof(cfg)));
	CU_ASSERT_EQUAL(le16toh(cfg.num_channels), 2);

	/* Reads outside the space are refused, including offset overflow. */
	CU_ASSERT_FALSE(vmc_device_ops.get_config(dev, 70, (uint8_t *)&cfg, 20));
	CU_ASSERT_FALSE(vmc_device_ops.get_config(dev, 0xfffffff0u, (uint8_t *)&cfg, 32));

	/* The endpoints exist while the device does, and go with it. */
	snprintf(path, sizeof(path), "%s", dev->chans[0]->path);
	CU_ASSERT_EQUAL(access(path, F_OK), 0);
	vmc_device_fini(dev);
	CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
	loop_fini();
	rmdir(dir);
	free(dev);
}

/* Channels come and go at run time; the table and the sockets follow. */
static void test_add_remove_channel(void)
{
	char dir[] = "/tmp/vmc-unit.XXXXXX";
	char *names[] = { "a" };
	struct vmc_device *dev = calloc(1, sizeof(*dev));
	struct vmchannel_config cfg;
	char path[128];
	uint32_t gen;

	VMC_ASSERT_FATAL(dev && mkdtemp(dir));
	VMC_ASSERT_FATAL(loop_init() == 0);
	VMC_ASSERT_FATAL(vmc_device_init(dev, dir, names, 1) == 0);
	CU_ASSERT_TRUE(vmc_device_ops.get_config(dev, 0, (uint8_t *)&cfg, sizeof(cfg)));
	gen = le32toh(cfg.generation);

	CU_ASSERT_EQUAL(vmc_device_add_channel(dev, "b"), 0);
	CU_ASSERT_EQUAL(vmc_device_add_channel(dev, "b"), -EEXIST);
	CU_ASSERT_EQUAL(vmc_device_remove_channel(dev, "zz"), -ENOENT);
	cfg.select = htole16(1);
	CU_ASSERT_TRUE(vmc_device_ops.set_config(dev, 0, (uint8_t *)&cfg, sizeof(cfg)));
	CU_ASSERT_TRUE(vmc_device_ops.get_config(dev, 0, (uint8_t *)&cfg, sizeof(cfg)));
	CU_ASSERT_NOT_EQUAL(le32toh(cfg.generation), gen);
	CU_ASSERT_EQUAL(le16toh(cfg.num_channels), 2);
	CU_ASSERT_STRING_EQUAL((char *)cfg.name, "b");
	CU_ASSERT_EQUAL(le32toh(cfg.id), 2);
	snprintf(path, sizeof(path), "%s/b.sock", dir);
	CU_ASSERT_EQUAL(access(path, F_OK), 0);

	/* Removing "a" moves "b" to entry 0; ids are never reused. */
	gen = le32toh(cfg.generation);
	CU_ASSERT_EQUAL(vmc_device_remove_channel(dev, "a"), 0);
	CU_ASSERT_EQUAL(vmc_device_add_channel(dev, "a"), 0);
	cfg.select = 0;
	CU_ASSERT_TRUE(vmc_device_ops.set_config(dev, 0, (uint8_t *)&cfg, sizeof(cfg)));
	CU_ASSERT_TRUE(vmc_device_ops.get_config(dev, 0, (uint8_t *)&cfg, sizeof(cfg)));
	CU_ASSERT_NOT_EQUAL(le32toh(cfg.generation), gen);
	CU_ASSERT_STRING_EQUAL((char *)cfg.name, "b");
	cfg.select = htole16(1);
	CU_ASSERT_TRUE(vmc_device_ops.set_config(dev, 0, (uint8_t *)&cfg, sizeof(cfg)));
	CU_ASSERT_TRUE(vmc_device_ops.get_config(dev, 0, (uint8_t *)&cfg, sizeof(cfg)));
	CU_ASSERT_STRING_EQUAL((char *)cfg.name, "a");
	CU_ASSERT_EQUAL(le32toh(cfg.id), 3);

	CU_ASSERT_EQUAL(vmc_device_remove_channel(dev, "b"), 0);
	CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
	vmc_device_fini(dev);
	loop_fini();
	rmdir(dir);
	free(dev);
}

void register_host_tests(void)
{
	CU_pSuite s = vmc_add_suite("host virtqueue");

	vmc_add_test(s, "pops a readable+writable chain", test_vq_pops_chain);
	vmc_add_test(s, "no device write on a ring", test_vq_refuses_writes_on_rings);
	vmc_add_test(s, "avail index wraps at 65535", test_vq_wraps_avail_index);
	vmc_add_test(s, "no kicks asked for while the device polls", test_vq_kicks_off_while_polled);
	vmc_add_test(s, "descriptor loop stops the ring", test_vq_rejects_loop);
	vmc_add_test(s, "addresses outside guest memory", test_vq_rejects_outside_memory);
	vmc_add_test(s, "bad ring indices", test_vq_rejects_bad_indices);
	vmc_add_test(s, "direction and indirect", test_vq_rejects_bad_direction_and_indirect);

	s = vmc_add_suite("host guest memory and endpoints");
	vmc_add_test(s, "bad memory regions refused", test_mem_rejects_bad_regions);
	vmc_add_test(s, "translation stays inside regions", test_mem_translates_within_regions);
	vmc_add_test(s, "guard: a shrunk file is a guest fault", test_mem_guard_takes_shrunk_file_as_fault);
	vmc_add_test(s, "guard: a shrunk hugetlbfs file too",
		     test_mem_guard_takes_shrunk_hugetlb_as_fault);
	vmc_add_test(s, "guard: a SIGBUS sent by a process is not", test_mem_guard_ignores_sent_sigbus);
	vmc_add_test(s, "log: each kind has its own budget", test_log_rate_limits_each_kind);
	vmc_add_test(s, "endpoint sockets never follow links", test_endpoint_never_follows_links);
	vmc_add_test(s, "the loop dispatches again after loop_stop()", test_loop_dispatches_after_stop);
	vmc_add_test(s, "the polling window adapts to the gaps", test_loop_poll_window_adapts);
	vmc_add_test(s, "polling loses no event", test_loop_polls_without_losing_events);
	vmc_add_test(s, "polling counts against the timeout", test_loop_poll_keeps_timeouts);
	vmc_add_test(s, "a polled ring's items taken without kicks, none lost",
		     test_loop_polls_a_ring_without_kicks);
	vmc_add_test(s, "a busy polled ring and busy descriptors are both served",
		     test_loop_serves_ring_and_descriptors);

	s = vmc_add_suite("host vhost-user transport");
	vmc_add_test(s, "malformed messages rejected", test_vu_rejects_malformed);
	vmc_add_test(s, "message round trip", test_vu_round_trip);
	vmc_add_test(s, "config change on the backend channel", test_vu_config_change_message);

	s = vmc_add_suite("host device model");
	vmc_add_test(s, "configuration window", test_config_window);
	vmc_add_test(s, "channels added and removed at run time", test_add_remove_channel);
}
