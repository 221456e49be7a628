/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unix sockets: the channels' host endpoints (listening at <dir>/<name>.sock,
 * or connecting to a host service), and the vhost-user socket QEMU connects to.
 */
#ifndef VMC_ENDPOINT_H
#define VMC_ENDPOINT_H

#include <stddef.h>
#include <sys/types.h>

#include "event_loop.h"

/*
 * Who may connect to a socket endpoint_listen() makes: its mode, and its
 * owner and group ((uid_t)-1, (gid_t)-1: as created).
 */
struct endpoint_access {
	mode_t mode;
	uid_t uid;
	gid_t gid;
};

/* For every socket (--user, --socket-group); mode 0600 and as created unless set. */
extern struct endpoint_access endpoint_default_access;
/* Per-socket exceptions (a channel's mode and group): may change @access for @path. */
extern void (*endpoint_access_for)(const char *path, struct endpoint_access *access);

/*
 * Creates a non-blocking listening socket at @path with the access above.  A stale
 * socket at @path is replaced; anything else there (a file, a symlink) is an
 * error, so the daemon never follows a link it did not create.
 */
int endpoint_listen(const char *path);
/*
 * Accepts a connection on the listening socket @listener watches, as a
 * non-blocking descriptor; -1 if none is waiting, or at the open-file limit,
 * where the waiting connection is closed instead (it would keep the
 * listening socket readable and the loop spinning), or, without a
 * descriptor in reserve to do that, @listener is paused for a second.
 */
int endpoint_accept(struct watch *listener);
/* Raises the soft open-file limit to the hard one (the channels need many). */
void endpoint_raise_fd_limit(void);
/* Builds "<dir>/<name>.sock"; -1 if it does not fit a socket address. */
int endpoint_path(char *buf, size_t size, const char *dir, const char *name);

/* Connects to the listening socket @path, non-blocking; -1 with errno set. */
int endpoint_connect(const char *path);

#endif /* VMC_ENDPOINT_H */
