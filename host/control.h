/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control socket: adds and removes channels while the guest runs.
 * One command per line, one answer line each:
 *   add NAME      -> "ok" | "error: ..."
 *   remove NAME   -> "ok" | "error: ..."
 *   list          -> "ok NAME NAME ..."
 *   stats NAME    -> "ok name=NAME state=S KEY=N ..." (chan_stats.h)
 *   upgrade [PATH] -> "ok upgraded to PATH (vmchanneld VERSION)", from the
 *                    new binary | "error: upgrade failed: ..." (upgrade.h) |
 *                    "error: upgrade: ..." (not root or the daemon's user;
 *                    more commands read with it)
 */
#ifndef VMC_CONTROL_H
#define VMC_CONTROL_H

#include <stddef.h>

#include "vmc_device.h"

int control_init(const char *path, struct vmc_device *dev);
/* The listening socket and the client being served (-1 if none), for an upgrade. */
void control_fds(int *listen_fd, int *client_fd);
/* Takes them back in the new binary, and gives the client @answer. */
int control_resume(const char *path, struct vmc_device *dev, int listen_fd, int client_fd,
		   const char *answer);
/*
 * Runs "upgrade [PATH]" (upgrade_run(): PATH NULL for the running binary's);
 * returns only on failure, with the reason.  NULL: off (--no-upgrade).
 */
extern void (*control_upgrade)(const char *path, char *why, size_t size);
void control_fini(void);

#endif /* VMC_CONTROL_H */
