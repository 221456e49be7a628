// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmchanneld under a service manager (host/service.c): which socket it takes
 * from socket activation ($LISTEN_PID, $LISTEN_FDS, $LISTEN_FDNAMES, the
 * descriptors from 3 on) and what it sends to $NOTIFY_SOCKET.  Activation is
 * tried in a child process, which can put descriptors at 3, 4, 5 and set
 * its own environment without disturbing the runner.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "service.h"
#include "vmc_test.h"

#define ACTIVATION_FDS 3	/* the child puts sockets at 3, 4 and 5 */

/* What the activation environment of one case says. */
struct activation {
	const char *pid;	/* $LISTEN_PID; NULL: the child's own PID */
	const char *fds;	/* $LISTEN_FDS */
	const char *names;	/* $LISTEN_FDNAMES, or NULL for none */
};

/* Child exit statuses other than the chosen descriptor's number + 100. */
enum { CHILD_NONE = 99, CHILD_SETUP = 1, CHILD_ENV_LEFT = 2, CHILD_INHERITABLE = 3 };

static void __attribute__((noreturn)) child(const struct activation *a)
{
	char pid[24];
	int fd, i, sv[2];

	for (i = 0; i < ACTIVATION_FDS; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || dup2(sv[0], 3 + i) < 0)
			_exit(CHILD_SETUP);
		if (sv[0] != 3 + i)
			close(sv[0]);
		close(sv[1]);
	}
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (setenv("LISTEN_PID", a->pid ? a->pid : pid, 1) < 0 ||
	    setenv("LISTEN_FDS", a->fds, 1) < 0 ||
	    (a->names && setenv("LISTEN_FDNAMES", a->names, 1) < 0))
		_exit(CHILD_SETUP);
	fd = service_activated_fd();
	if (getenv("LISTEN_PID") || getenv("LISTEN_FDS") || getenv("LISTEN_FDNAMES"))
		_exit(CHILD_ENV_LEFT);
	/* Passed sockets it did not take must not leak into what it runs. */
	if (!a->pid && strtol(a->fds, NULL, 10) == ACTIVATION_FDS)
		for (i = 0; i < ACTIVATION_FDS; i++)
			if (!(fcntl(3 + i, F_GETFD) & FD_CLOEXEC))
				_exit(CHILD_INHERITABLE);
	_exit(fd < 0 ? CHILD_NONE : 100 + fd);
}

/* The child's verdict: 100 + the descriptor taken, CHILD_NONE, or a failure. */
static int activated(const struct activation *a)
{
	int status;
	pid_t pid = fork();

	VMC_ASSERT_FATAL(pid >= 0);
	if (pid == 0)
		child(a);
	VMC_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
	VMC_ASSERT_FATAL(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_activation_takes_the_named_socket(void)
{
	const struct activation a = { .fds = "3", .names = "control:vhost-user:extra" };

	CU_ASSERT_EQUAL(activated(&a), 100 + 4);
}

static void test_activation_takes_a_single_unnamed_socket(void)
{
	const struct activation a = { .fds = "1" };

	CU_ASSERT_EQUAL(activated(&a), 100 + 3);
}

static void test_activation_refuses_ambiguous_sockets(void)
{
	const struct activation unnamed = { .fds = "3" };
	const struct activation misnamed = { .fds = "3", .names = "a:b:c" };
	const struct activation beyond = { .fds = "3", .names = "a:b:c:vhost-user" };

	CU_ASSERT_EQUAL(activated(&unnamed), CHILD_NONE);
	CU_ASSERT_EQUAL(activated(&misnamed), CHILD_NONE);
	CU_ASSERT_EQUAL(activated(&beyond), CHILD_NONE);	/* a name past $LISTEN_FDS */
}

static void test_activation_ignores_other_processes_and_garbage(void)
{
	const struct activation cases[] = {
		{ .pid = "1", .fds = "1" },		/* for another process */
		{ .pid = "x", .fds = "1" },
		{ .fds = "1x" },
		{ .fds = "-1" },
		{ .fds = "0" },
		{ .fds = "64" },			/* more than it accepts */
		{ .fds = "99999999999999999999" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CU_ASSERT_EQUAL(activated(&cases[i]), CHILD_NONE);
}

/* Binds a datagram socket at @path ('@': abstract) and sets $NOTIFY_SOCKET to it. */
static int notify_listener(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	VMC_ASSERT_FATAL(fd >= 0);
	memcpy(addr.sun_path, path, strlen(path));
	if (path[0] == '@')
		addr.sun_path[0] = '\0';
	VMC_ASSERT_FATAL(bind(fd, (struct sockaddr *)&addr, len) == 0);
	VMC_ASSERT_FATAL(setenv("NOTIFY_SOCKET", path, 1) == 0);
	return fd;
}

static void expect_notification(int fd, const char *want)
{
	char got[600];
	ssize_t n = recv(fd, got, sizeof(got) - 1, MSG_DONTWAIT);

	CU_ASSERT_EQUAL_FATAL(n, (ssize_t)strlen(want));
	got[n] = '\0';
	CU_ASSERT_STRING_EQUAL(got, want);
}

static void test_notify_path_and_abstract_sockets(void)
{
	char path[64], abstract[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/vmc-unit-notify-%d", (int)getpid());
	unlink(path);
	fd = notify_listener(path);
	service_notify("READY=1\nSTATUS=serving %d channels", 3);
	expect_notification(fd, "READY=1\nSTATUS=serving 3 channels");
	close(fd);
	unlink(path);

	snprintf(abstract, sizeof(abstract), "@vmc-unit-notify-%d", (int)getpid());
	fd = notify_listener(abstract);
	service_notify("STOPPING=1");
	expect_notification(fd, "STOPPING=1");
	close(fd);
	unsetenv("NOTIFY_SOCKET");
}

static void test_notify_drops_what_it_cannot_send_whole(void)
{
	char abstract[64], status[600];
	int fd;

	snprintf(abstract, sizeof(abstract), "@vmc-unit-notify-long-%d", (int)getpid());
	fd = notify_listener(abstract);
	/* Longer than a notification may be: nothing rather than a cut STATUS=. */
	memset(status, 'x', sizeof(status) - 1);
	status[sizeof(status) - 1] = '\0';
	service_notify("STATUS=%s", status);
	CU_ASSERT_EQUAL(recv(fd, status, sizeof(status), MSG_DONTWAIT), -1);
	/* A relative $NOTIFY_SOCKET is not a protocol socket: nothing is sent. */
	VMC_ASSERT_FATAL(setenv("NOTIFY_SOCKET", "relative", 1) == 0);
	service_notify("READY=1");
	close(fd);
	unsetenv("NOTIFY_SOCKET");
}

void register_service_tests(void)
{
	CU_pSuite s = vmc_add_suite("service");

	vmc_add_test(s, "activation takes the socket named vhost-user",
		     test_activation_takes_the_named_socket);
	vmc_add_test(s, "activation takes a single unnamed socket",
		     test_activation_takes_a_single_unnamed_socket);
	vmc_add_test(s, "activation refuses several sockets none named vhost-user",
		     test_activation_refuses_ambiguous_sockets);
	vmc_add_test(s, "activation ignores another process's or garbled variables",
		     test_activation_ignores_other_processes_and_garbage);
	vmc_add_test(s, "notifications reach path and abstract sockets",
		     test_notify_path_and_abstract_sockets);
	vmc_add_test(s, "a notification too long is not sent cut",
		     test_notify_drops_what_it_cannot_send_whole);
}
