/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmchanneld's sandbox, entered once setup is done (sockets listening,
 * configuration read): privileges dropped (--user/--group), no new
 * privileges, Landlock limiting the filesystem to what the daemon still
 * touches, and a seccomp allowlist.  See vmchanneld(8), SANDBOX.
 */
#ifndef VMC_SANDBOX_H
#define VMC_SANDBOX_H

#include <stdbool.h>
#include <sys/types.h>

struct sandbox_paths {
	const char *endpoint_dir;	/* channel sockets made and removed at run time */
	const char *config_path;	/* read again on SIGHUP, or NULL */
	const char *socket_paths[2];	/* vhost-user and control sockets, removed at exit; or NULL */
	const char *exe_path;		/* the binary: upgrades run binaries beside it */
	bool upgrades;			/* allow what vmchannelctl upgrade needs (upgrade.h) */
};

/* Resolves a user or group name (or number) for --user/--group; -1 if unknown. */
int sandbox_lookup_user(const char *name, uid_t *uid, gid_t *gid);
int sandbox_lookup_group(const char *name, gid_t *gid);

/*
 * Becomes @uid/@gid with the @nkeep supplementary groups @keep only (the
 * groups sockets are given later: lchown needs membership); both
 * (uid_t)-1: stays as is.  Returns 0 or -1 with a logged reason.
 */
int sandbox_drop_privileges(uid_t uid, gid_t gid, const gid_t *keep, size_t nkeep);

/*
 * Enters the sandbox: no new privileges, Landlock (skipped with a log line
 * where the kernel has none), then the seccomp filter.  A system call outside
 * the allowlist kills the daemon with SIGSYS after the log line
 * "sandbox: forbidden system call NAME (NR): exiting".  Returns 0 or -1.
 */
int sandbox_enter(const struct sandbox_paths *paths);

/*
 * In a binary an upgrade started: the sandbox of the first binary holds (a
 * process cannot leave it, and stacking one more per upgrade would run into
 * Landlock's 16 layers); only the log line for a forbidden call, which exec
 * reset, is set up again.
 */
void sandbox_inherited(void);

#endif /* VMC_SANDBOX_H */
