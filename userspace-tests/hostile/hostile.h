/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmc-hostile-frontend's shared declarations.  The program plays a hostile
 * vhost-user frontend and guest against a real vmchanneld; its files, by job:
 * vmc-hostile-frontend.c (the case table and main), daemon.c (the daemon under
 * test), frontend.c (vhost-user messages), guest.c (guest memory and rings),
 * cases_*.c (the attacks).
 */
#ifndef VMC_HOSTILE_H
#define VMC_HOSTILE_H

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ring.h>
#include <linux/vmchannel.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vhost_user.h"

#define TIMEOUT_MS	5000
#define RAM_SIZE	(4u << 20)
#define RAM_UADDR	0x7f0000000000ULL
#define RING_NUM	256
#define BUF_SIZE	4096
/* Guest physical layout: each ring's parts, then the buffers. */
#define DESC_GPA(q)	(0x00000u + (q) * 0x10000u)
#define AVAIL_GPA(q)	(0x08000u + (q) * 0x10000u)
#define USED_GPA(q)	(0x0c000u + (q) * 0x10000u)
#define BUFS_GPA	0x40000u
#define HDR_SIZE	sizeof(struct vmchannel_hdr)

/* How the daemon gets its vhost-user frontend. */
enum frontend_socket {
	FRONTEND_PATH,		/* --socket-path: it listens itself */
	FRONTEND_FD_LISTENING,	/* --fd: a listening socket made for it (systemd, libvirt) */
	FRONTEND_FD_CONNECTED,	/* --fd: one end of a socketpair, the only connection */
};

struct daemon {
	pid_t pid;
	char sock_path[100], ep_path[100], log_path[100], config_path[100];
	int frontend_fd;	/* FRONTEND_FD_CONNECTED: our end until a handshake takes it */
};

/* A guest's view of one split ring, in our RAM. */
struct ring {
	unsigned int num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx, used_seen;
	int kick, call;
};

struct guest {
	int memfd;
	uint8_t *ram;
	struct ring rings[VMCHANNEL_NUM_VQS];
	uint32_t channel_id;
	int sock;			/* the vhost-user connection */
};

/* The harness's state, set by main(): the daemon binary, the work directory, the failure. */
extern const char *daemon_path;
extern char work_dir[];
extern char failure[512];

/* the harness (vmc-hostile-frontend.c): the first failure's reason, time */
bool fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int64_t now_ms(void);
bool wait_fd(int fd, short events, int ms);

/* the daemon under test (daemon.c) */
bool write_file(const char *path, const char *text);
bool daemon_start(struct daemon *d, const char *name, enum frontend_socket how);
bool daemon_alive(struct daemon *d);
bool daemon_stop(struct daemon *d, int ms);
unsigned long long cpu_ticks(pid_t pid);
unsigned int log_lines(const struct daemon *d);
bool log_wait(const struct daemon *d, const char *text);
unsigned long long idle_cost(const struct daemon *d, int ms);

/* the vhost-user frontend side of the protocol (frontend.c) */
int unix_connect(const char *path);
bool send_msg(int sock, uint32_t request, uint32_t flags, const void *payload,
	      uint32_t size, const int *fds, unsigned int nfds);
bool recv_reply(int sock, struct vu_msg *msg);
int request(int sock, uint32_t req, const void *payload, uint32_t size,
	    const int *fds, unsigned int nfds);
bool answers(int sock);
bool vring_state(int sock, uint32_t req, unsigned int index, unsigned int num);
int vring_fd_request(int sock, uint32_t req, unsigned int index, int fd);
int mem_table(int sock, int fd, uint64_t size);
bool set_vring_addr(int sock, unsigned int q, uint64_t desc, uint64_t avail,
		    uint64_t used);
bool vu_handshake(struct guest *g, const struct daemon *d);

/* the guest: memory, rings, messages (guest.c) */
bool guest_mem_new(struct guest *g, bool sealed);
void guest_free(struct guest *g);
bool guest_up(struct guest *g, const struct daemon *d, bool sealed);
void kick(struct ring *r);
void ring_post(struct ring *r, uint16_t i, uint64_t gpa, uint32_t len, uint16_t flags,
	       uint16_t next);
void ring_publish(struct ring *r, uint16_t head);
uint16_t used_idx(const struct ring *r);
bool ring_drained(struct ring *r);
uint64_t buf_gpa(unsigned int q, unsigned int k);
bool tx_send(struct guest *g, uint16_t type, uint32_t session, const void *data,
	     uint32_t len);
void rx_post(struct guest *g, unsigned int n);
bool rx_expect_data(struct guest *g, const char *want);
bool round_trip(const struct daemon *d);
bool dropped(int sock);

/* the cases (cases_*.c): each gets a started daemon, attacks it, proves it alive */
bool case_ring_resize(struct daemon *d);
bool case_failed_mem_table(struct daemon *d);
bool case_bad_fds(struct daemon *d);
bool case_truncated(struct daemon *d);
bool case_shrinking_memory(struct daemon *d);
bool case_shrinking_rx_buffers(struct daemon *d);
bool case_long_chain(struct daemon *d);
bool case_fd_listening(struct daemon *d);
bool case_fd_connected(struct daemon *d);
bool case_reload_after_rename(struct daemon *d);
bool case_reload_retries_failed_add(struct daemon *d);
bool case_fd_limit(struct daemon *d);
bool case_guest_cost(struct daemon *d);

#endif /* VMC_HOSTILE_H */
