/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The state one vmchanneld hands to the next across exec (vmchannelctl
 * upgrade, see upgrade.h): the device as the guest and the frontend left it
 * (features, memory table, every ring's position, the channel table, every
 * channel's lifecycle state, counters and buffered guest bytes) and the file
 * descriptors that go with it.
 *
 * The format, little-endian throughout:
 *   header     "VMCHSTAT", u32 version (UPGRADE_STATE_VERSION), u32 0,
 *              u64 length of what follows
 *   fd table   u32 count, then each descriptor's number (exec keeps numbers)
 *   body       the daemon, the device, the rings, the channels, the order of
 *              channels waiting for rx buffers; a descriptor is named by its
 *              index in the table (u32, UPGRADE_NO_FD for none)
 * A binary reads its own version and those whose states it can serve on:
 * version 1 is the same format from a daemon whose buffer for guest bytes
 * was 256 KiB (credit granted for it fits ours).  A binary that finds a
 * newer version refuses it, and the running daemon serves on: version 2's
 * 1 MiB buffer (credit the guest may be holding) would not fit a version-1
 * binary's.  Everything is validated as untrusted
 * input: a truncated or longer state, an unknown version, an index out of the
 * table or a descriptor named twice, a ring size, a channel id, name, state
 * or buffer length out of range are all refused, with the reason.
 */
#ifndef VMC_UPGRADE_STATE_H
#define VMC_UPGRADE_STATE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config_file.h"
#include "endpoint.h"
#include "vmc_device.h"

#define UPGRADE_STATE_VERSION 2
/* The oldest version this binary reads (see above). */
#define UPGRADE_STATE_OLDEST 1
#define UPGRADE_NO_FD UINT32_MAX

/* What main() holds besides the device. */
struct upgrade_daemon {
	char exe_path[PATH_MAX];	/* the binary running (in a state: to run it) */
	bool sandboxed;			/* the sandbox is on, and stays on across exec */
	struct endpoint_access access;	/* endpoint_default_access */
	int frontend_listen_fd;		/* -1 with --fd of a connection */
	int control_listen_fd, control_client_fd;	/* -1 if none */
	char endpoint_dir[PATH_MAX];	/* as set up at start */
	char control_path[PATH_MAX];	/* "" without a control socket */
	/*
	 * The configuration file as last applied (the base of SIGHUP's
	 * changes); saved from and restored into the caller's, if not NULL.
	 */
	struct vmc_config *file_config;
};

/* A state made by upgrade_state_save(): free with upgrade_state_free(). */
struct upgrade_state {
	uint8_t *data;
	size_t len;
	int *fds;		/* the fd table: what must survive exec */
	unsigned int nfds;
};

/* Serializes @dev and @daemon; -1 when out of memory. */
int upgrade_state_save(const struct vmc_device *dev, const struct upgrade_daemon *daemon,
		       struct upgrade_state *state);
void upgrade_state_free(struct upgrade_state *state);

/*
 * Validates @len bytes of state.  With @apply, also restores them: @dev
 * must be fresh from vmc_device_setup(), the descriptors of the table open;
 * the device, its rings and channels take them over (watched, mapped) and
 * @daemon is filled.  Without, nothing is touched (the check a new binary
 * runs before the old one execs it).  Returns 0, or -1 with *@why set;
 * after a failed apply the device is half made and the process must exit.
 */
int upgrade_state_load(struct vmc_device *dev, struct upgrade_daemon *daemon,
		       const uint8_t *data, size_t len, bool apply, const char **why);

#endif /* VMC_UPGRADE_STATE_H */
