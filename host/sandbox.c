// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The sandbox of sandbox.h.  Like virtiofsd's: everything that needs a path
 * or a privilege is done before, the daemon then lives on the descriptors it
 * holds plus the few paths it still needs: the endpoint directory (channels
 * added at run time, removed ones unlinked), the configuration file (SIGHUP)
 * and the directories of the sockets it removes at exit.
 *
 * A forbidden system call traps (SCMP_ACT_TRAP) rather than killing at once
 * (SCMP_ACT_KILL_PROCESS): the SIGSYS handler writes one log line naming the
 * call, then the daemon dies of SIGSYS as KILL_PROCESS would have done it.
 * KILL_PROCESS would leave only an audit record, which most hosts do not show
 * to an operator reading the daemon's log.
 */
#include <errno.h>
#include <grp.h>
#include <link.h>
#include <libgen.h>
#include <limits.h>
#include <linux/landlock.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"

/* ---- users and groups ---- */

static bool parse_id(const char *s, unsigned long *id)
{
	char *end;

	errno = 0;
	*id = strtoul(s, &end, 10);
	return !errno && *s && !*end && *id < UINT32_MAX;
}

int sandbox_lookup_user(const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam(name);
	unsigned long id;

	if (pw) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
		return 0;
	}
	if (!parse_id(name, &id))
		return -1;
	*uid = (uid_t)id;
	*gid = (gid_t)id;
	return 0;
}

int sandbox_lookup_group(const char *name, gid_t *gid)
{
	struct group *gr = getgrnam(name);
	unsigned long id;

	if (gr) {
		*gid = gr->gr_gid;
		return 0;
	}
	if (!parse_id(name, &id))
		return -1;
	*gid = (gid_t)id;
	return 0;
}

int sandbox_drop_privileges(uid_t uid, gid_t gid, const gid_t *keep, size_t nkeep)
{
	if (gid != (gid_t)-1 && (setgroups(nkeep, keep) < 0 || setresgid(gid, gid, gid) < 0)) {
		log_error("sandbox: cannot become group %u: %s", (unsigned int)gid, strerror(errno));
		return -1;
	}
	if (uid != (uid_t)-1 && setresuid(uid, uid, uid) < 0) {
		log_error("sandbox: cannot become user %u: %s", (unsigned int)uid, strerror(errno));
		return -1;
	}
	/* Root must really be gone: a saved id would let it come back. */
	if (uid != (uid_t)-1 && uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		log_error("sandbox: root privileges could be regained");
		return -1;
	}
	return 0;
}

/* ---- Landlock ---- */

/* Rights newer than the build's <linux/landlock.h> (Debian 12: Linux 6.1). */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#define LL_NET_BIND_TCP (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)

/* struct landlock_ruleset_attr as of ABI 4; the kernel is given the size its ABI knows. */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
};

#define LL_FS_ABI1 ((LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1)	/* rights 0..12 */

static int ll_add_path(int ruleset, const char *path, uint64_t rights)
{
	struct landlock_path_beneath_attr rule = { .allowed_access = rights };
	int err;

	rule.parent_fd = open(path, O_PATH | O_CLOEXEC);
	if (rule.parent_fd < 0) {
		log_error("sandbox: %s: %s", path, strerror(errno));
		return -1;
	}
	err = (int)syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
	if (err < 0)
		log_error("sandbox: Landlock rule for %s: %s", path, strerror(errno));
	close(rule.parent_fd);
	return err;
}

/* @path's directory gets @rights (a socket there is removed at exit, ...). */
static int ll_add_parent(int ruleset, const char *path, uint64_t rights)
{
	char copy[PATH_MAX];

	if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
		return -1;
	return ll_add_path(ruleset, dirname(copy), rights);
}

/* The program's ELF interpreter (its PT_INTERP), which an exec runs too. */
static int interpreter_rule(int ruleset, const struct dl_phdr_info *info)
{
	unsigned int i;

	for (i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_INTERP)
			return ll_add_path(ruleset,
					   (const char *)(info->dlpi_addr +
							  info->dlpi_phdr[i].p_vaddr),
					   LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE);
	return 0;	/* static: none */
}

/*
 * For each object loaded (dl_iterate_phdr): the program's interpreter may
 * run, the libraries' directories be read (mapped, not executed).
 */
static int library_rule(struct dl_phdr_info *info, size_t size, void *data)
{
	int ruleset = *(int *)data, err = 0;

	(void)size;
	/* The program itself has no name here, the vDSO no path. */
	if (!info->dlpi_name[0])
		err = interpreter_rule(ruleset, info);
	else if (info->dlpi_name[0] == '/')
		err = ll_add_parent(ruleset, info->dlpi_name, LANDLOCK_ACCESS_FS_READ_FILE);
	if (err < 0)
		*(int *)data = -1;
	return 0;
}

/*
 * What an upgrade needs (upgrade.h): to run a binary in the directory of
 * the one running (the package's new version replaces it there) and its
 * interpreter, which reads the libraries loaded now and its cache.  Nothing
 * else can be executed or read.  Without the binary's absolute path, no
 * upgrade: its directory would be the working directory's.
 */
static int upgrade_rules(int ruleset, const char *exe_path)
{
	int err, data = ruleset;

	if (exe_path[0] != '/') {
		log_error("sandbox: upgrades need the binary's absolute path, not '%s'", exe_path);
		return -1;
	}
	err = ll_add_parent(ruleset, exe_path,
			    LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE);

	dl_iterate_phdr(library_rule, &data);
	if (data < 0)
		err = -1;
	if (!access("/etc/ld.so.cache", R_OK))
		err |= ll_add_path(ruleset, "/etc/ld.so.cache", LANDLOCK_ACCESS_FS_READ_FILE);
	return err;
}

/* Returns the Landlock ABI applied, 0 if the kernel has none, -1 on error. */
static int landlock_enter(const struct sandbox_paths *paths)
{
	struct ll_ruleset_attr attr = { 0 };
	const uint64_t in_dir = LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_REMOVE_FILE;
	size_t attr_size = sizeof(attr.handled_access_fs);
	unsigned int i;
	int abi, ruleset, err = 0;

	abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 0) {
		if (errno != ENOSYS && errno != EOPNOTSUPP) {
			log_error("sandbox: Landlock: %s", strerror(errno));
			return -1;
		}
		log_warn("sandbox: the kernel has no Landlock (%s): filesystem not restricted",
			 strerror(errno));
		return 0;
	}
	attr.handled_access_fs = LL_FS_ABI1;
	if (abi >= 2)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 4) {
		attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
		attr_size = sizeof(attr);
	}
	if (abi >= 5)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (ruleset < 0) {
		log_error("sandbox: Landlock ruleset: %s", strerror(errno));
		return -1;
	}
	err |= ll_add_path(ruleset, paths->endpoint_dir, in_dir);
	/*
	 * Its directory, not the file: an editor saves a new file and renames
	 * it over the old one, and a rule on a file holds for its inode.
	 */
	if (paths->config_path)
		err |= ll_add_parent(ruleset, paths->config_path, LANDLOCK_ACCESS_FS_READ_FILE);
	for (i = 0; i < sizeof(paths->socket_paths) / sizeof(paths->socket_paths[0]); i++)
		if (paths->socket_paths[i])
			err |= ll_add_parent(ruleset, paths->socket_paths[i],
					     LANDLOCK_ACCESS_FS_REMOVE_FILE);
	if (paths->upgrades)
		err |= upgrade_rules(ruleset, paths->exe_path);
#ifdef __SANITIZE_ADDRESS__
	/* The sanitizers read /proc/self and the binaries for their reports. */
	err |= ll_add_path(ruleset, "/", LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR);
#endif
	if (!err && syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
		log_error("sandbox: Landlock: %s", strerror(errno));
		err = -1;
	}
	close(ruleset);
	return err ? -1 : abi;
}

/* ---- seccomp ---- */

/* What the event loop, the device and the endpoints call once set up. */
static const int allowed_syscalls[] = {
	SCMP_SYS(read), SCMP_SYS(readv), SCMP_SYS(write), SCMP_SYS(writev),
	SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(recvfrom), SCMP_SYS(sendto),
	SCMP_SYS(accept4), SCMP_SYS(accept), SCMP_SYS(connect), SCMP_SYS(bind),
	SCMP_SYS(listen), SCMP_SYS(shutdown), SCMP_SYS(getsockopt), SCMP_SYS(close),
	SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
	SCMP_SYS(poll), SCMP_SYS(ppoll),
	SCMP_SYS(sched_yield),	/* between the event loop's polls */
	/* Guest memory (SET_MEM_TABLE) and the allocator. */
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(brk),
	SCMP_SYS(fstat), SCMP_SYS(fstatfs), SCMP_SYS(newfstatat), SCMP_SYS(statx), SCMP_SYS(lstat), SCMP_SYS(stat),
	SCMP_SYS(fcntl),
	SCMP_SYS(timerfd_create), SCMP_SYS(timerfd_settime), SCMP_SYS(timerfd_gettime),
	/* Channels added and removed at run time, the file read on SIGHUP. */
	SCMP_SYS(openat), SCMP_SYS(open), SCMP_SYS(lseek), SCMP_SYS(unlink), SCMP_SYS(unlinkat),
	SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(renameat2), SCMP_SYS(umask),
	SCMP_SYS(chmod), SCMP_SYS(fchmodat), SCMP_SYS(chown), SCMP_SYS(lchown),
	SCMP_SYS(fchownat),
	SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(getrandom), SCMP_SYS(futex),
	SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask), SCMP_SYS(restart_syscall),
	SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(exit), SCMP_SYS(exit_group),
	SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
#ifdef __SANITIZE_ADDRESS__
	/*
	 * The ASan/UBSan build (tests only): LeakSanitizer stops the world at
	 * exit from a thread that traces the others, and reports read /proc.
	 */
	SCMP_SYS(clone), SCMP_SYS(clone3), SCMP_SYS(wait4), SCMP_SYS(ptrace), SCMP_SYS(prctl),
	SCMP_SYS(sigaltstack), SCMP_SYS(rt_sigaction),
	SCMP_SYS(getdents), SCMP_SYS(getdents64), SCMP_SYS(readlink), SCMP_SYS(readlinkat), SCMP_SYS(nanosleep),
	SCMP_SYS(clock_nanosleep), SCMP_SYS(getrlimit), SCMP_SYS(prlimit64), SCMP_SYS(pipe2),
	SCMP_SYS(dup), SCMP_SYS(dup2), SCMP_SYS(dup3), SCMP_SYS(mprotect), SCMP_SYS(kill),
	SCMP_SYS(sched_getaffinity), SCMP_SYS(getppid), SCMP_SYS(set_robust_list),
	SCMP_SYS(rseq), SCMP_SYS(uname),
#endif
};

/*
 * An upgrade (upgrade.h), unless --no-upgrade: the state in a memfd, the new
 * binary checked in a child, then exec.  The new binary lives in this
 * filter: its dynamic loader's calls, and what it sets up before it serves
 * (event loop, signalfd, handlers).  clone, prlimit64 and
 * pidfd_send_signal come with argument checks (seccomp_enter()).
 */
static const int upgrade_syscalls[] = {
	SCMP_SYS(memfd_create), SCMP_SYS(pipe2), SCMP_SYS(wait4),
	SCMP_SYS(execve), SCMP_SYS(pread64), SCMP_SYS(arch_prctl), SCMP_SYS(access),
	SCMP_SYS(faccessat), SCMP_SYS(mprotect), SCMP_SYS(set_tid_address),
	SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(readlink),
	SCMP_SYS(epoll_create1), SCMP_SYS(signalfd4), SCMP_SYS(eventfd2), SCMP_SYS(rt_sigaction),
};

/* Namespaces a clone could make: none may. */
#define CLONE_NEW_ANY (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | \
		       CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

/*
 * A child (the checker) but no namespace; resource limits of this process
 * only (the loader reads its own); SIGKILL only through a pidfd, which only
 * the checker's clone gives: no other process can be signalled.
 */
static int upgrade_rules_seccomp(scmp_filter_ctx ctx)
{
	unsigned int i;
	int err = 0;

	for (i = 0; i < sizeof(upgrade_syscalls) / sizeof(upgrade_syscalls[0]); i++)
		err |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, upgrade_syscalls[i], 0);
	err |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEW_ANY, 0));
	err |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 1,
				SCMP_A0(SCMP_CMP_EQ, 0));
	err |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(pidfd_send_signal), 1,
				SCMP_A1(SCMP_CMP_EQ, SIGKILL));
	return err;
}

/* Names of system calls by number, resolved before the filter is loaded. */
#define NAMED_SYSCALLS 512
static char syscall_names[NAMED_SYSCALLS][24];

static void name_syscalls(void)
{
	unsigned int nr;

	for (nr = 0; nr < NAMED_SYSCALLS; nr++) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, (int)nr);

		if (name)
			snprintf(syscall_names[nr], sizeof(syscall_names[nr]), "%s", name);
		free(name);
	}
}

/* Appends @s to @line at *@len (async-signal-safe). */
static void append(char *line, size_t size, size_t *len, const char *s)
{
	while (*s && *len + 1 < size)
		line[(*len)++] = *s++;
}

static void sigsys_handler(int sig, siginfo_t *info, void *context)
{
	char line[128], num[16];
	unsigned int nr = (unsigned int)info->si_syscall, i = sizeof(num);
	size_t len = 0;

	(void)context;
	num[--i] = '\0';
	do
		num[--i] = (char)('0' + nr % 10);
	while ((nr /= 10) && i);
	nr = (unsigned int)info->si_syscall;
	append(line, sizeof(line), &len, "vmchanneld: error: sandbox: forbidden system call ");
	append(line, sizeof(line), &len, nr < NAMED_SYSCALLS && syscall_names[nr][0] ?
					 syscall_names[nr] : "?");
	append(line, sizeof(line), &len, " (");
	append(line, sizeof(line), &len, num + i);
	append(line, sizeof(line), &len, "): exiting\n");
	if (write(STDERR_FILENO, line, len) < 0)
		(void)0;	/* nowhere else to say it */
	/* SA_RESETHAND: SIGSYS is fatal now, as SCMP_ACT_KILL_PROCESS would be. */
	syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
}

/* The log line of a forbidden call: names resolved, the handler set. */
static int sigsys_report(void)
{
	struct sigaction sa = { .sa_sigaction = sigsys_handler,
				.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER };

	name_syscalls();
	return sigaction(SIGSYS, &sa, NULL);
}

void sandbox_inherited(void)
{
	if (sigsys_report() < 0)
		log_warn("sandbox: no log line for a forbidden system call: %s", strerror(errno));
	log_info("sandbox: on, as the binary before the upgrade set it up");
}

static int seccomp_enter(bool upgrades)
{
	scmp_filter_ctx ctx;
	unsigned int i;
	int err = 0;

	if (sigsys_report() < 0)
		return -1;
	ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx)
		return -1;
	for (i = 0; i < sizeof(allowed_syscalls) / sizeof(allowed_syscalls[0]); i++)
		err |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed_syscalls[i], 0);
	/* Unix sockets only, FIONREAD only, signals to ourselves only. */
	err |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
	err |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				SCMP_A1(SCMP_CMP_EQ, FIONREAD));
	err |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
	if (upgrades)
		err |= upgrade_rules_seccomp(ctx);
	if (!err)
		err = seccomp_load(ctx);
	seccomp_release(ctx);
	if (err)
		log_error("sandbox: seccomp: %s", strerror(-err));
	return err ? -1 : 0;
}

int sandbox_enter(const struct sandbox_paths *paths)
{
	int abi;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		log_error("sandbox: no_new_privs: %s", strerror(errno));
		return -1;
	}
	abi = landlock_enter(paths);
	if (abi < 0 || seccomp_enter(paths->upgrades) < 0)
		return -1;
	if (abi)
		log_info("sandbox: on (seccomp, no new privileges, Landlock ABI %d)", abi);
	else
		log_info("sandbox: on (seccomp, no new privileges; no Landlock)");
	return 0;
}
