// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmc-hostile-frontend: the daemon under test: started with its own configuration, log and
 * frontend socket; whether it lives, how it stops, its CPU time and its log.
 */
#include "hostile.h"

bool write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	bool ok = f && fputs(text, f) >= 0;

	return f && !fclose(f) && ok;
}

/* A listening Unix socket at @path, made as a service manager would. */
static int unix_listen(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 4) < 0) {
		fail("listening on %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * The daemon's end of its frontend socket for --fd (-1 for --socket-path);
 * for a socketpair, our end goes to d->frontend_fd.
 */
static int frontend_socket_for(struct daemon *d, enum frontend_socket how)
{
	int sv[2];

	d->frontend_fd = -1;
	if (how == FRONTEND_PATH)
		return -1;
	if (how == FRONTEND_FD_LISTENING)
		return unix_listen(d->sock_path);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		fail("socketpair: %s", strerror(errno));
		return -1;
	}
	d->frontend_fd = sv[0];
	return sv[1];
}

bool daemon_start(struct daemon *d, const char *name, enum frontend_socket how)
{
	char notify[16], fd_arg[16];
	int pipefd[2], daemon_fd;
	pid_t test_pid;

	snprintf(d->sock_path, sizeof(d->sock_path), "%s/%s.vhost", work_dir, name);
	snprintf(d->ep_path, sizeof(d->ep_path), "%s/t.sock", work_dir);
	snprintf(d->log_path, sizeof(d->log_path), "%s/%s.log", work_dir, name);
	snprintf(d->config_path, sizeof(d->config_path), "%s/%s.conf", work_dir, name);
	/* Channel t from the file: reload-after-rename reads it again. */
	if (!write_file(d->config_path, "channel t group=root\n"))
		return fail("%s: %s", d->config_path, strerror(errno));
	daemon_fd = frontend_socket_for(d, how);
	if (how != FRONTEND_PATH && daemon_fd < 0)
		return false;
	if (pipe(pipefd) < 0)
		return fail("pipe: %s", strerror(errno));
	test_pid = getpid();
	d->pid = fork();
	if (d->pid == 0) {
		int log = open(d->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		char stream[64];
		struct stat st;

		/* Its log as systemd's journal stream: lines carry priorities. */
		if (fstat(log, &st) == 0) {
			snprintf(stream, sizeof(stream), "%llu:%llu",
				 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
			setenv("JOURNAL_STREAM", stream, 1);
		}
		close(pipefd[0]);
		/* No daemon outlives a killed test, even one killed before this. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != test_pid)
			_exit(127);
		dup2(log, STDERR_FILENO);
		snprintf(notify, sizeof(notify), "%d", pipefd[1]);
		snprintf(fd_arg, sizeof(fd_arg), "%d", daemon_fd);
		if (daemon_fd >= 0)
			fcntl(daemon_fd, F_SETFD, 0);	/* inherited, as from systemd */
		execl(daemon_path, daemon_path, daemon_fd < 0 ? "--socket-path" : "--fd",
		      daemon_fd < 0 ? d->sock_path : fd_arg, "--endpoint-dir",
		      work_dir, "--notify-fd", notify, "--log-level", "info",
		      "--config", d->config_path, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	if (daemon_fd >= 0)
		close(daemon_fd);
	if (d->pid < 0 || !wait_fd(pipefd[0], POLLIN, TIMEOUT_MS) ||
	    read(pipefd[0], notify, sizeof(notify)) <= 0) {
		close(pipefd[0]);
		return fail("%s did not become ready", daemon_path);
	}
	/* Settled once it closed the notify fd (fd-limit counts its descriptors). */
	if (!wait_fd(pipefd[0], POLLIN, TIMEOUT_MS) || read(pipefd[0], notify, sizeof(notify))) {
		close(pipefd[0]);
		return fail("%s kept its notify fd open", daemon_path);
	}
	close(pipefd[0]);
	return true;
}

/* Whether the daemon still runs; reaps it (and says how it died) if not. */
bool daemon_alive(struct daemon *d)
{
	int status;

	if (waitpid(d->pid, &status, WNOHANG) == 0)
		return true;
	if (WIFSIGNALED(status))
		return fail("vmchanneld died of signal %d", WTERMSIG(status));
	return fail("vmchanneld exited with status %d", WEXITSTATUS(status));
}

/* SIGTERM; true if it exits 0 within @ms. */
bool daemon_stop(struct daemon *d, int ms)
{
	int64_t deadline = now_ms() + ms;
	int status;

	kill(d->pid, SIGTERM);
	while (waitpid(d->pid, &status, WNOHANG) == 0) {
		if (now_ms() > deadline) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &status, 0);
			return fail("vmchanneld ignored SIGTERM for %d ms", ms);
		}
		poll(NULL, 0, 10);	/* a child's exit has no descriptor to wait on */
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return fail("vmchanneld ended with status %#x on SIGTERM", status);
	return true;
}

/* User plus system CPU time of @pid, in clock ticks. */
unsigned long long cpu_ticks(pid_t pid)
{
	unsigned long long utime, stime;
	char path[64], buf[1024], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	/* After "comm)": state and 11 more fields, then utime and stime. */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &utime, &stime) != 2)
		return 0;
	return utime + stime;
}

unsigned int log_lines(const struct daemon *d)
{
	unsigned int n = 0;
	FILE *f = fopen(d->log_path, "r");
	int c;

	while (f && (c = fgetc(f)) != EOF)
		n += c == '\n';
	if (f)
		fclose(f);
	return n;
}

/* Waits until the daemon's log has a line containing @text. */
bool log_wait(const struct daemon *d, const char *text)
{
	int64_t deadline = now_ms() + TIMEOUT_MS;
	char line[1024];
	FILE *f;

	while (now_ms() < deadline) {
		f = fopen(d->log_path, "r");
		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, text)) {
				fclose(f);
				return true;
			}
		if (f)
			fclose(f);
		poll(NULL, 0, 20);	/* a log file has no event to wait on */
	}
	return fail("vmchanneld never logged \"%s\"", text);
}

/* CPU ticks the daemon spends during @ms of waiting (nothing should wake it). */
unsigned long long idle_cost(const struct daemon *d, int ms)
{
	unsigned long long before = cpu_ticks(d->pid);

	poll(NULL, 0, ms);	/* measuring time spent: the one wait that is a sleep */
	return cpu_ticks(d->pid) - before;
}
