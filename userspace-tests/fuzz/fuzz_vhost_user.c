// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: the vhost-user requests a frontend sends, as raw bytes on
 * the socket, through vu_recv() and vu_dev_handle() into the vmchannel device.
 * A hostile frontend may make vmchanneld drop the connection, never crash it.
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event_loop.h"
#include "log.h"
#include "vmc_device.h"

static struct vmc_device device;
static struct vu_msg msg;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char dir[] = "/tmp/vmc-fuzz.XXXXXX";
	static char *names[] = { "hello", "clipboard" };

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	log_threshold = LOG_SILENT;	/* most inputs are errors, logged for nothing */
	if (!mkdtemp(dir) || loop_init() < 0 || vmc_device_init(&device, dir, names, 2) < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];

	/* The socket buffer must take the whole input at once. */
	if (size > 65536 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	if (write(sv[1], data, size) != (ssize_t)size)
		abort();
	close(sv[1]);
	device.vu.sock = sv[0];
	while (vu_recv(sv[0], &msg) > 0 && vu_dev_handle(&device.vu, &msg))
		;
	/* What a frontend disconnect does: rings stopped, memory unmapped. */
	vu_dev_detach(&device.vu);
	return 0;
}
