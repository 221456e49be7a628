// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmchanneld's sandbox (host/sandbox.c), entered in a child process: what
 * the daemon does after setup still works, a forbidden system call kills it
 * with a log line naming the call, and (where the kernel has Landlock) no
 * file is made outside the endpoint directory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/landlock.h>

#include "endpoint.h"
#include "sandbox.h"
#include "vmc_test.h"

/* What a sandboxed child does; its exit status is the test's verdict. */
enum child_action { CHILD_WORKS, CHILD_FORBIDDEN, CHILD_OUTSIDE, CHILD_EXEC, CHILD_EXEC_LIBRARY };

/* The exit status of CHILD_EXEC_LIBRARY when Landlock refused the exec. */
#define EXEC_REFUSED 17

/* The path of the C library loaded, an executable file in a library directory. */
static int find_libc(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	if (!strstr(info->dlpi_name, "/libc.so."))
		return 0;
	snprintf(data, PATH_MAX, "%s", info->dlpi_name);
	return 1;
}

static char endpoint_dir[64], outside_dir[64], child_log[4096];

/*
 * Runs @action in a sandboxed child, with what upgrades need if @upgrades
 * (as if the binary were /bin/true); returns its wait status, its stderr in
 * child_log.
 */
static int run_sandboxed_with(enum child_action action, bool upgrades)
{
	const struct sandbox_paths paths = { .endpoint_dir = endpoint_dir,
					     .exe_path = "/bin/true", .upgrades = upgrades };
	char *const argv[] = { "true", NULL };
	char path[PATH_MAX];
	int pipefd[2], status, fd;
	ssize_t n, got = 0;
	pid_t pid;

	VMC_ASSERT_FATAL(pipe(pipefd) == 0);
	pid = fork();
	VMC_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		dup2(pipefd[1], STDERR_FILENO);
		if (sandbox_enter(&paths) < 0)
			_exit(10);
		switch (action) {
		case CHILD_WORKS:
			/* A channel added at run time, then removed. */
			snprintf(path, sizeof(path), "%s/late.sock", endpoint_dir);
			fd = endpoint_listen(path);
			if (fd < 0 || unlink(path) < 0 || close(fd) < 0)
				_exit(11);
			_exit(0);
		case CHILD_FORBIDDEN:
			/* Unix sockets only: an Internet socket is a forbidden call. */
			socket(AF_INET, SOCK_STREAM, 0);
			_exit(12);
		case CHILD_OUTSIDE:
			snprintf(path, sizeof(path), "%s/file", outside_dir);
			fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
			_exit(fd < 0 && errno == EACCES ? 0 : 13);
		case CHILD_EXEC:
			/* What an upgrade does: a binary beside ours runs, in the sandbox. */
			execve("/bin/true", argv, environ);
			_exit(15);
		case CHILD_EXEC_LIBRARY:
			/* libc.so.6 runs (it prints its version): libraries are read only. */
			if (!dl_iterate_phdr(find_libc, path))
				_exit(16);
			execve(path, argv, environ);
			_exit(errno == EACCES ? EXEC_REFUSED : 16);
		}
		_exit(14);
	}
	close(pipefd[1]);
	while ((n = read(pipefd[0], child_log + got, sizeof(child_log) - 1 - (size_t)got)) > 0)
		got += n;
	child_log[got] = '\0';
	close(pipefd[0]);
	VMC_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
	return status;
}

static int run_sandboxed(enum child_action action)
{
	return run_sandboxed_with(action, false);
}

static bool landlock_available(void)
{
	return syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) > 0;
}

static int sandbox_setup(void)
{
	snprintf(endpoint_dir, sizeof(endpoint_dir), "/tmp/vmc-sandbox-ep.XXXXXX");
	snprintf(outside_dir, sizeof(outside_dir), "/tmp/vmc-sandbox-out.XXXXXX");
	return mkdtemp(endpoint_dir) && mkdtemp(outside_dir) ? 0 : -1;
}

static int sandbox_teardown(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/file", outside_dir);
	unlink(path);
	rmdir(outside_dir);
	return rmdir(endpoint_dir);
}

/* Sockets come and go in the endpoint directory under the sandbox. */
static void test_sandbox_allows_channels(void)
{
	int status = run_sandboxed(CHILD_WORKS);

	CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CU_ASSERT_PTR_NULL(strstr(child_log, "error"));
}

/* A forbidden call: SIGSYS, after a line that names it. */
static void test_sandbox_forbidden_call_kills(void)
{
	int status = run_sandboxed(CHILD_FORBIDDEN);
	char want[128];

	snprintf(want, sizeof(want),
		 "vmchanneld: error: sandbox: forbidden system call socket (%d): exiting\n",
		 SYS_socket);
	CU_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS);
	CU_ASSERT_PTR_NOT_NULL(strstr(child_log, want));
}

/*
 * Upgrades (vmchannelctl upgrade) exec a binary from the running one's
 * directory: allowed, and the binary runs in the inherited sandbox; with
 * --no-upgrade, execve is a forbidden call.
 */
static void test_sandbox_upgrade_exec(void)
{
	char want[128];
	int status;

	status = run_sandboxed_with(CHILD_EXEC, true);
	CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CU_ASSERT_PTR_NULL(strstr(child_log, "error"));
	/* Outside the binary's directory nothing runs, not even in a library's. */
	if (landlock_available()) {
		status = run_sandboxed_with(CHILD_EXEC_LIBRARY, true);
		CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == EXEC_REFUSED);
	}
	status = run_sandboxed(CHILD_EXEC);
	snprintf(want, sizeof(want),
		 "vmchanneld: error: sandbox: forbidden system call execve (%d): exiting\n",
		 SYS_execve);
	CU_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS);
	CU_ASSERT_PTR_NOT_NULL(strstr(child_log, want));
}

/* Runs ./sandbox_probe @action (see there); its wait status. */
static int probe(const char *action)
{
	char *const argv[] = { "./sandbox_probe", (char *)action, endpoint_dir, NULL };
	int status = -1;
	pid_t pid = fork();

	VMC_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		execve(argv[0], argv, environ);
		_exit(3);
	}
	VMC_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
	return status;
}

static bool allowed(int status)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static bool forbidden(int status)
{
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS;
}

/*
 * What upgrades add to the sandbox reaches no other process: a child but no
 * namespace, this process's resource limits only, no kill() at all (the
 * checker is killed through its pidfd).  In a build without sanitizers.
 */
static void test_sandbox_upgrade_arguments(void)
{
	CU_ASSERT_TRUE(allowed(probe("clone")));
	CU_ASSERT_TRUE(forbidden(probe("clone-newuser")));
	CU_ASSERT_TRUE(forbidden(probe("clone-newnet")));
	CU_ASSERT_TRUE(allowed(probe("prlimit-self")));
	CU_ASSERT_TRUE(forbidden(probe("prlimit-other")));
	CU_ASSERT_TRUE(forbidden(probe("kill-other")));
}

/* Landlock: no file is made outside the endpoint directory. */
static void test_sandbox_landlock(void)
{
	int status;

	if (!landlock_available()) {
		printf("(no Landlock in this kernel: not checked) ");
		return;
	}
	status = run_sandboxed(CHILD_OUTSIDE);
	CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * --user with --socket-group (or a group= in the file): after the drop the
 * daemon still gives sockets made at run time that group (lchown needs
 * membership).  Needs root to drop privileges.
 */
static void test_drop_privileges_keeps_socket_groups(void)
{
	const gid_t socket_group = 4242, user = 65534;
	char path[128];
	int status, fd;
	pid_t pid;

	if (geteuid()) {
		printf("(not root: not checked) ");
		return;
	}
	snprintf(path, sizeof(path), "%s/owned", outside_dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	VMC_ASSERT_FATAL(fd >= 0 && fchown(fd, user, user) == 0);
	close(fd);
	VMC_ASSERT_FATAL(chmod(outside_dir, 0711) == 0);
	pid = fork();
	VMC_ASSERT_FATAL(pid >= 0);
	if (pid == 0)
		_exit(sandbox_drop_privileges(user, user, &socket_group, 1) < 0 ? 1 :
		      lchown(path, (uid_t)-1, socket_group) < 0 ? 2 : 0);
	VMC_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
	CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	unlink(path);
	chmod(outside_dir, 0700);
}

void register_sandbox_tests(void)
{
	CU_pSuite s = CU_add_suite("host sandbox", sandbox_setup, sandbox_teardown);

	if (!s) {
		fprintf(stderr, "cannot add suite host sandbox: %s\n", CU_get_error_msg());
		exit(EXIT_FAILURE);
	}
	vmc_add_test(s, "channels made and removed inside the sandbox",
		     test_sandbox_allows_channels);
	vmc_add_test(s, "a forbidden system call kills, with a log line",
		     test_sandbox_forbidden_call_kills);
	vmc_add_test(s, "upgrades may exec beside the binary; --no-upgrade: not at all",
		     test_sandbox_upgrade_exec);
	vmc_add_test(s, "upgrades: no namespace, no other process's limits or signals",
		     test_sandbox_upgrade_arguments);
	vmc_add_test(s, "Landlock: nothing made outside the endpoint directory",
		     test_sandbox_landlock);
	vmc_add_test(s, "dropping privileges keeps the socket groups",
		     test_drop_privileges_keeps_socket_groups);
}
