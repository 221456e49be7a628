// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The exec of upgrade.h: the state into a memfd, the new binary's check in
 * a child, then the exec itself; and the new binary's side, reading the
 * state back.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "upgrade.h"

#define STATE_ENV "VMCHANNELD_UPGRADE_STATE"
#define CHECK_ENV "VMCHANNELD_UPGRADE_CHECK"
#define MAX_ENV 512
#define ACK_MAGIC "VMCHACK1"

/*
 * What a checker writes into its pipe once it could restore the state: the
 * daemon takes over only on this, never on an exit status alone (any program
 * exits 0).  All fields in the host's byte order.
 */
struct upgrade_ack {
	char magic[8];		/* ACK_MAGIC */
	uint32_t version;	/* UPGRADE_STATE_VERSION of the checker */
	uint32_t zero;
	uint64_t len;		/* of the state it read */
	uint64_t checksum;	/* state_checksum() of it */
};

extern char **environ;

static struct {
	int check_fd;		/* in a checker: where its acknowledgement goes */
	char **argv;
	struct vmc_device *dev;
	struct upgrade_daemon *daemon;
} up;

/* FNV-1a: the checker proves it read these very bytes. */
static uint64_t state_checksum(const uint8_t *data, size_t len)
{
	uint64_t hash = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < len; i++)
		hash = (hash ^ data[i]) * 0x100000001b3ULL;
	return hash;
}

static struct upgrade_ack make_ack(const uint8_t *data, size_t len)
{
	struct upgrade_ack ack = { .version = UPGRADE_STATE_VERSION, .len = len,
				   .checksum = state_checksum(data, len) };

	memcpy(ack.magic, ACK_MAGIC, sizeof(ack.magic));
	return ack;
}

void upgrade_setup(char **argv, struct vmc_device *dev, struct upgrade_daemon *daemon)
{
	up.argv = argv;
	up.dev = dev;
	up.daemon = daemon;
}

/* The environment of the new binary: ours, with the state's descriptor. */
static char **make_env(char *state_var, char *check_var)
{
	static char *env[MAX_ENV];
	size_t n = 0, i;

	for (i = 0; environ[i] && n < MAX_ENV - 3; i++)
		if (strncmp(environ[i], "VMCHANNELD_UPGRADE_", 19))
			env[n++] = environ[i];
	env[n++] = state_var;
	if (check_var)
		env[n++] = check_var;
	env[n] = NULL;
	return env;
}

/* A memfd holding the state; -1 on failure. */
static int write_state(const struct upgrade_state *state)
{
	size_t done = 0;
	int fd = memfd_create("vmchanneld-state", MFD_CLOEXEC);

	while (fd >= 0 && done < state->len) {
		ssize_t n = write(fd, state->data + done, state->len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	return fd;
}

/* Milliseconds left until @end (CLOCK_MONOTONIC), 0 if past. */
static int ms_until(const struct timespec *end)
{
	struct timespec now;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (end->tv_sec - now.tv_sec) * 1000 + (end->tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? (int)ms : 0;
}

/* Waits until @fd is readable or @end; false at the deadline. */
static bool wait_readable(int fd, const struct timespec *end)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int left;

	while ((left = ms_until(end)) > 0) {
		if (poll(&pfd, 1, left) > 0)
			return true;
	}
	return false;
}

/*
 * Reads what the checker wrote into @fd until it closes the pipe or @end:
 * its acknowledgement, or the errno of a failed exec.  Returns the byte
 * count, -1 at the deadline.
 */
static ssize_t read_check_answer(int fd, void *buf, size_t size, const struct timespec *end)
{
	size_t done = 0;

	while (done < size) {
		ssize_t n;

		if (!wait_readable(fd, end))
			return -1;
		n = read(fd, (char *)buf + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/*
 * The checker as a child whose pidfd is in *@pidfd: the sandbox lets the
 * daemon signal (SIGKILL) only what it holds a pidfd of, that is its own
 * children, where kill() would reach any process of its user.  fork() with
 * a pidfd: the child goes on on a copy of the stack.
 */
static pid_t fork_with_pidfd(int *pidfd)
{
	return (pid_t)syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, NULL, pidfd, NULL, 0);
}

/*
 * Step 2: the new binary, in a child, checks the state and acknowledges it
 * (struct upgrade_ack) into a pipe whose descriptor it finds in CHECK_ENV.
 * A child that cannot exec writes the error number into the pipe instead.
 * The deadline holds for the answer and the exit both: a checker still
 * running then is killed through its pidfd.
 */
static int check_new_binary(const char *path, char *state_var, const struct upgrade_state *state,
			    char *why, size_t size)
{
	static char check_var[64];
	struct upgrade_ack ack, want = make_ack(state->data, state->len);
	int pipefd[2], status = 0, exec_errno = 0, pidfd = -1;
	struct timespec end;
	ssize_t got;
	char **env;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		snprintf(why, size, "pipe: %s", strerror(errno));
		return -1;
	}
	snprintf(check_var, sizeof(check_var), CHECK_ENV "=%d", pipefd[1]);
	env = make_env(state_var, check_var);
	pid = fork_with_pidfd(&pidfd);
	if (pid < 0) {
		snprintf(why, size, "fork: %s", strerror(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		return -1;
	}
	if (pid == 0) {
		fcntl(pipefd[1], F_SETFD, 0);
		execve(path, up.argv, env);
		exec_errno = errno;
		if (write(pipefd[1], &exec_errno, sizeof(exec_errno)) < 0)
			_exit(126);
		_exit(127);
	}
	close(pipefd[1]);
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += UPGRADE_CHECK_TIMEOUT_MS / 1000;
	got = read_check_answer(pipefd[0], &ack, sizeof(ack), &end);
	close(pipefd[0]);
	/* A pidfd is readable once its process exited. */
	if (got < 0 || !wait_readable(pidfd, &end)) {
		got = -1;
		syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	}
	close(pidfd);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (got < 0) {
		snprintf(why, size, "%s did not check the state within %d s", path,
			 UPGRADE_CHECK_TIMEOUT_MS / 1000);
		return -1;
	}
	if (got == sizeof(exec_errno) && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		memcpy(&exec_errno, &ack, sizeof(exec_errno));
		snprintf(why, size, "cannot run %s: %s%s", path, strerror(exec_errno),
			 exec_errno == EACCES ? " (the sandbox runs binaries beside the first one only)" :
			 "");
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		if (got == sizeof(ack) && !memcmp(&ack, &want, sizeof(ack)))
			return 0;
		snprintf(why, size, "%s exited without acknowledging the state (not a vmchanneld "
			 "that reads state version %u?)", path, UPGRADE_STATE_VERSION);
	} else if (WIFEXITED(status)) {
		snprintf(why, size, "%s refused the state (exit status %d)", path,
			 WEXITSTATUS(status));
	} else {
		snprintf(why, size, "%s died of signal %d checking the state%s", path,
			 WTERMSIG(status), WTERMSIG(status) == SIGSYS ?
			 " (a system call the sandbox forbids)" : "");
	}
	return -1;
}

static void set_cloexec(const struct upgrade_state *state, bool on)
{
	unsigned int i;

	for (i = 0; i < state->nfds; i++)
		fcntl(state->fds[i], F_SETFD, on ? FD_CLOEXEC : 0);
}

void upgrade_run(const char *path, char *why, size_t size)
{
	static char state_var[64];
	struct upgrade_state state;
	struct stat st;
	int fd;

	if (path[0] != '/') {
		snprintf(why, size, "the new binary's path must be absolute");
		return;
	}
	if (stat(path, &st) < 0) {
		snprintf(why, size, "%s: %s", path, strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, size, "%s: not a regular file", path);
		return;
	}
	if (up.dev->vu.mem.faulted) {
		snprintf(why, size, "guest memory faulted: the frontend is being dropped");
		return;
	}
	vmc_device_ask_for_kicks(up.dev);
	/*
	 * What this batch of events used is signalled at its end, which the
	 * exec skips, and the new binary signals only after its first event.
	 */
	vmc_device_signal_guest(up.dev);
	control_fds(&up.daemon->control_listen_fd, &up.daemon->control_client_fd);
	if (upgrade_state_save(up.dev, up.daemon, &state) < 0) {
		snprintf(why, size, "out of memory for the state");
		return;
	}
	fd = write_state(&state);
	if (fd < 0) {
		snprintf(why, size, "cannot write the state: %s", strerror(errno));
		upgrade_state_free(&state);
		return;
	}
	snprintf(state_var, sizeof(state_var), STATE_ENV "=%d", fd);
	fcntl(fd, F_SETFD, 0);
	log_info("upgrade: %zu bytes of state, %u descriptors; %s checks them", state.len,
		 state.nfds, path);
	if (check_new_binary(path, state_var, &state, why, size) == 0) {
		log_info("upgrade: %s takes over", path);
		set_cloexec(&state, false);
		fflush(NULL);
		execve(path, up.argv, make_env(state_var, NULL));
		snprintf(why, size, "exec %s: %s", path, strerror(errno));
		set_cloexec(&state, true);
	}
	close(fd);
	upgrade_state_free(&state);
}

int upgrade_take_state(uint8_t **data, size_t *len, bool *check_only)
{
	const char *var = getenv(STATE_ENV), *check_var = getenv(CHECK_ENV);
	struct stat st;
	size_t done = 0;
	char *end;
	long fd;

	if (!var)
		return 0;
	*check_only = check_var != NULL;
	up.check_fd = check_var ? atoi(check_var) : -1;
	errno = 0;
	fd = strtol(var, &end, 10);
	unsetenv(STATE_ENV);
	unsetenv(CHECK_ENV);
	if (errno || *end || end == var || fd < 0 || fd > INT32_MAX ||
	    fstat((int)fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
		log_error("upgrade: " STATE_ENV "=%s is not a state", var);
		return -1;
	}
	*len = (size_t)st.st_size;
	*data = malloc(*len);
	if (!*data) {
		log_error("upgrade: no memory for %zu bytes of state", *len);
		return -1;
	}
	while (done < *len) {
		ssize_t n = pread((int)fd, *data + done, *len - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("upgrade: reading the state: %s", n ? strerror(errno) : "too short");
			free(*data);
			return -1;
		}
		done += (size_t)n;
	}
	close((int)fd);
	return 1;
}

int upgrade_acknowledge(const uint8_t *data, size_t len)
{
	struct upgrade_ack ack = make_ack(data, len);

	if (write(up.check_fd, &ack, sizeof(ack)) != sizeof(ack)) {
		log_error("upgrade: cannot acknowledge the state: %s", strerror(errno));
		return -1;
	}
	return 0;
}
