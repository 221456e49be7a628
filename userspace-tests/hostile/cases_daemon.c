// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmc-hostile-frontend: cases of the daemon's own resources: configuration reloads, the
 * descriptor limit.
 */
#include "hostile.h"

/* Replaces the daemon's configuration file by rename and sends SIGHUP. */
static bool reconfigure(const struct daemon *d, const char *text)
{
	char tmp[110];

	snprintf(tmp, sizeof(tmp), "%s.new", d->config_path);
	if (!write_file(tmp, text) || rename(tmp, d->config_path) < 0)
		return fail("replacing %s: %s", d->config_path, strerror(errno));
	return kill(d->pid, SIGHUP) == 0;
}

/*
 * SIGHUP after an editor saved the configuration file as editors do (a new
 * file renamed over the old): the sandboxed daemon reads it, the group name
 * in it resolves (the sandbox cannot read /etc/group), and the channel it
 * adds gets the mode the new file gives it, not the default (0600).
 */
bool case_reload_after_rename(struct daemon *d)
{
	char path[128];
	struct stat st;

	if (!reconfigure(d, "channel t mode=0660 group=root\nchannel added mode=0640\n") ||
	    !log_wait(d, "reloaded "))
		return false;
	snprintf(path, sizeof(path), "%s/added.sock", work_dir);
	if (stat(path, &st) < 0)
		return fail("%s: %s", path, strerror(errno));
	if ((st.st_mode & 07777) != 0640)
		return fail("the added channel's socket has mode %04o, not 0640",
			    (unsigned int)(st.st_mode & 07777));
	return round_trip(d);
}

/*
 * A channel a reload could not add (a file is in its socket's place) is
 * added by the next reload once the obstacle is gone.
 */
bool case_reload_retries_failed_add(struct daemon *d)
{
	char blocker[128];
	bool ok;

	snprintf(blocker, sizeof(blocker), "%s/late.sock", work_dir);
	ok = write_file(blocker, "not a socket\n") &&
	     reconfigure(d, "channel t group=root\nchannel late\n") &&
	     log_wait(d, "cannot add channel late");
	unlink(blocker);
	return ok && reconfigure(d, "channel t group=root\nchannel late\n# again\n") &&
	       log_wait(d, "channel late added");
}

/* The lowest descriptor number @pid does not use: its next open gets it. */
static int lowest_free_fd(pid_t pid)
{
	char path[64];
	int fd;

	for (fd = 0;; fd++) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
		if (access(path, F_OK) < 0)
			return fd;
	}
}

/*
 * At the open-file limit, a connection waiting on a listening socket must
 * not make the daemon spin (the socket stays readable).  The soft limit is
 * lowered to the daemon's next free descriptor, then restored.  With its
 * descriptor in reserve the daemon closes the connection (@refused); where
 * the free descriptor is below the reserve (fresh daemon: the notify fd's
 * number), the reserve cannot be taken again and the listening socket is
 * paused instead: the connection is served once the limit is back.
 */
static bool at_fd_limit(const struct daemon *d, bool refused)
{
	struct rlimit old, low;
	bool ok = prlimit(d->pid, RLIMIT_NOFILE, NULL, &old) == 0;
	int host = -1;

	low.rlim_cur = (rlim_t)lowest_free_fd(d->pid);
	low.rlim_max = old.rlim_max;
	ok = ok && prlimit(d->pid, RLIMIT_NOFILE, &low, NULL) == 0;
	host = ok ? unix_connect(d->ep_path) : -1;
	ok = ok && host >= 0 && log_wait(d, "Too many open files");
	if (ok && idle_cost(d, 300) > 3)
		ok = fail("a connection it cannot accept keeps the daemon busy");
	ok = ok && (!refused || dropped(host));
	if (prlimit(d->pid, RLIMIT_NOFILE, &old, NULL) < 0)
		ok = fail("restoring the limit: %s", strerror(errno));
	ok = ok && (refused || log_wait(d, "host program connected"));
	if (host >= 0)
		close(host);
	return ok && (refused || log_wait(d, "host connection closed"));
}

bool case_fd_limit(struct daemon *d)
{
	struct guest g = { 0 };
	bool ok = at_fd_limit(d, false) && guest_up(&g, d, true) && at_fd_limit(d, true);

	guest_free(&g);
	return ok && round_trip(d);
}
