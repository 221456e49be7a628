// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The upgrade sandbox's argument checks, in a build without sanitizers:
 * the ASan runtime needs clone, kill and prlimit64 without any check, so
 * the unit tests' own sandbox (test_sandbox.c) cannot show them.
 *
 *   sandbox_probe ACTION ENDPOINT_DIR
 *
 * enters the sandbox as vmchanneld does with upgrades on, then tries
 * ACTION; exits 0 when the system call was allowed, dies of SIGSYS when
 * the sandbox forbids it, exits 2 on a setup error.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"

/* clone(@flags) as fork(): 0 when a child was made (and reaped). */
static int clone_child(unsigned long flags)
{
	long pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);

	if (pid == 0)
		_exit(0);
	return pid > 0 && waitpid((pid_t)pid, NULL, 0) == pid ? 0 : 2;
}

int main(int argc, char **argv)
{
	struct sandbox_paths paths = { .exe_path = "/bin/true", .upgrades = true };
	pid_t self = getpid(), other;
	struct rlimit limit;

	if (argc != 3)
		return 2;
	paths.endpoint_dir = argv[2];
	/*
	 * Another process of this user, which no sandboxed call may reach; it
	 * dies with the probe, and holds none of the test's pipes meanwhile.
	 * A probe that died before the death signal was set (the sandbox
	 * kills it at once) left it paused for ever: it checks its parent.
	 */
	other = fork();
	if (other == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != self)
			_exit(0);
		close(STDOUT_FILENO);
		close(STDERR_FILENO);
		pause();
		_exit(0);
	}
	if (other < 0 || sandbox_enter(&paths) < 0)
		return 2;
	if (!strcmp(argv[1], "clone"))
		return clone_child(0);
	if (!strcmp(argv[1], "clone-newuser"))
		return clone_child(CLONE_NEWUSER);
	if (!strcmp(argv[1], "clone-newnet"))
		return clone_child(CLONE_NEWNET);
	if (!strcmp(argv[1], "prlimit-self"))
		return syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &limit) ? 2 : 0;
	if (!strcmp(argv[1], "prlimit-other"))
		return syscall(SYS_prlimit64, other, RLIMIT_NOFILE, NULL, &limit) ? 2 : 0;
	if (!strcmp(argv[1], "kill-other"))
		return syscall(SYS_kill, other, SIGKILL) ? 2 : 0;
	return 2;
}
