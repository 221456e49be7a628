// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmchanneld: serves the vmchannel device to QEMU as a vhost-user back-end
 * and bridges every channel to a Unix socket on the host.  See vmchanneld(8).
 *
 * Follows QEMU's conventions for vhost-user back-end programs: no
 * daemonizing, --socket-path/--fd/--print-capabilities, clean exit on SIGTERM.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config_file.h"
#include "control.h"
#include "endpoint.h"
#include "event_loop.h"
#include "log.h"
#include "sandbox.h"
#include "service.h"
#include "upgrade.h"
#include "vmc_device.h"

#define EXIT_USAGE 2
/*
 * Leaving (SIGTERM, SIGINT, or the frontend of --fd gone), guest bytes still
 * held for host programs that read are written first: their writers were told
 * the bytes went (write() returned), as a pipe's reader still gets what a
 * writer that exited wrote.  For at most STOP_DELIVER_MS, and no longer than
 * STOP_STALL_MS while host programs take nothing; a second signal exits at once.
 */
#define STOP_DELIVER_MS 10000
#define STOP_STALL_MS 1000
/*
 * The event loop's adaptive polling (loop_set_poll()), --poll-us: long enough
 * for a guest under TCG to answer a message (round trips of 100-200 us), so
 * that a conversation finds vmchanneld awake; spent only while events come
 * that close together.
 */
#define POLL_DEFAULT_US 200
#define POLL_MAX_US 10000

static struct vmc_device device;
static int frontend_listen_fd = -1;
static struct watch frontend_watch = { .fd = -1 };
static struct watch signal_watch = { .fd = -1 };
static const char *config_path;
static struct vmc_config file_config;	/* as last loaded from config_path */
/* Where channel sockets take mode and group: file_config, or a reload's new file as it adds. */
static const struct vmc_config *access_config = &file_config;
static struct upgrade_daemon daemon_state = {
	.frontend_listen_fd = -1, .control_listen_fd = -1, .control_client_fd = -1,
};
static uint8_t *upgrade_data;	/* the state a previous binary handed over, if any */
static size_t upgrade_len;
static bool delivering;		/* leaving: writing what host programs are owed */
static bool exit_now;		/* a second signal while delivering */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: vmchanneld --socket-path PATH [--endpoint-dir DIR] --channel NAME...\n"
		"       vmchanneld --socket-path PATH --print-qemu-args [--transport pci|mmio]\n"
		"                  [--memory SIZE|none] [--id ID]\n"
		"       vmchanneld --print-capabilities\n"
		"\n"
		"Serve the vmchannel virtio device to QEMU (>= 10.2) over vhost-user and\n"
		"bridge every channel to the Unix socket DIR/NAME.sock.\n"
		"\n"
		"  --socket-path PATH    listen for QEMU's vhost-user connection at PATH\n"
		"  --fd FD               use the socket FD instead: listening, or already\n"
		"                        connected to QEMU (then exit when it disconnects);\n"
		"                        socket activation passes it as well\n"
		"  --endpoint-dir DIR    where the channel sockets go (default: .)\n"
		"  --channel NAME[=connect:PATH]\n"
		"                        serve channel NAME (repeatable): 1-63 bytes of\n"
		"                        [A-Za-z0-9._:+-], not \".\" or \"..\"; its host end\n"
		"                        listens at DIR/NAME.sock, or connects to the\n"
		"                        service listening at PATH while the guest has it open\n"
		"  --config FILE         settings and channels from FILE (see vmchanneld(8));\n"
		"                        SIGHUP reads its channels again\n"
		"  --control-socket PATH add/remove channels at run time through PATH\n"
		"                        (lines: add NAME, remove NAME, list)\n"
		"  --notify-fd FD        write READY=1 to FD once listening, then close it\n"
		"  --sandbox MODE        on (default: seccomp, Landlock, no new privileges,\n"
		"                        once set up) or none (for debugging)\n"
		"  --no-upgrade          refuse vmchannelctl upgrade, and keep the sandbox\n"
		"                        from allowing what it needs (exec)\n"
		"  --socket-group GROUP  sockets are group GROUP's, mode 0660 (default: 0600)\n"
		"  --user USER, --group GROUP\n"
		"                        started as root: become USER (and its group, or\n"
		"                        GROUP) once the sockets listen\n"
		"  --print-qemu-args     print the QEMU options that attach the device\n"
		"  --transport pci|mmio  its virtio transport for --print-qemu-args:\n"
		"                        pci (default) or mmio (machines without PCI,\n"
		"                        e.g. microvm; QEMU >= 10.2)\n"
		"  --memory SIZE|none    guest memory for --print-qemu-args (default 1G);\n"
		"                        none: the device only (a second device)\n"
		"  --id ID               QEMU id of the chardev and device (default vmchannel0)\n"
		"  --print-capabilities  print the back-end capabilities (JSON)\n"
		"  --poll-us N           while events come within N microseconds of each\n"
		"                        other, look for the next one that long before\n"
		"                        sleeping: lower latency for CPU time (default %d,\n"
		"                        0 never polls, at most %d)\n"
		"  --log-level LEVEL     error, warning (default), info or debug\n"
		"  -v, --verbose         more log output (twice for debug)\n"
#ifdef VMC_FAULT_INJECTION
		"  --fault CASE          behave as a hostile device (repeatable);\n"
		"                        CASE is one of: %s\n"
#endif
		"  --help, --version\n",
		POLL_DEFAULT_US, POLL_MAX_US
#ifdef VMC_FAULT_INJECTION
		, vmc_fault_names()
#endif
		);
	fprintf(out,
		"\n"
		"On SIGTERM or SIGINT, guest bytes held for host programs are written first\n"
		"(up to %d s, %d s without progress; a second signal exits at once).\n"
		"Exit status: 0 clean exit, 1 runtime error, 2 bad command line.\n",
		STOP_DELIVER_MS / 1000, STOP_STALL_MS / 1000);
#ifdef VMC_FAULT_INJECTION
	fprintf(out, "\nThis is vmchanneld-test, a build for tests only: never install it.\n");
#endif
}

/*
 * @memory NULL: the device only, for a guest that has shared memory already.
 * @mmio: QEMU's virtio-mmio device rather than the PCI one.  QEMU's
 * virtio-mmio transports default to the legacy interface (version 1), which
 * carries feature bits 0-31 only: no VIRTIO_F_VERSION_1, without which the
 * driver does not take the device, so the modern interface is asked for.
 */
static void print_qemu_args(const char *socket_path, const char *id, const char *memory,
			    bool mmio)
{
	printf("-chardev socket,id=%s,path=%s "
	       "-device vhost-user-test-device%s,chardev=%s,id=%s,virtio-id=%d,"
	       "num_vqs=%d,config_size=%zu",
	       id, socket_path, mmio ? "" : "-pci", id, id, VIRTIO_ID_VMCHANNEL,
	       VMCHANNEL_NUM_VQS, sizeof(struct vmchannel_config));
	if (mmio)
		printf(" -global virtio-mmio.force-legacy=false");
	if (memory)
		printf(" -object memory-backend-memfd,id=vmchannel-mem,size=%s,share=on "
		       "-machine memory-backend=vmchannel-mem -m %s", memory, memory);
	printf("\n");
}

static void frontend_disconnected(struct vu_dev *vu)
{
	(void)vu;
	if (frontend_listen_fd < 0) {
		/* --fd was the connection itself: nothing to accept another from. */
		if (!delivering) {
			log_info("frontend disconnected: exiting");
			loop_stop();
		}
		return;
	}
	loop_set_events(&frontend_watch, EPOLLIN);
}

/* --fd: a listening socket (systemd, libvirt for virtiofsd) or a connected one (a socketpair). */
static bool fd_listens(int fd)
{
	socklen_t len = sizeof(int);
	int listening = 0;

	return !getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) && listening;
}

static void frontend_accept(void *opaque, uint32_t events)
{
	int fd;

	(void)opaque;
	(void)events;
	fd = endpoint_accept(&frontend_watch);
	if (fd < 0)
		return;
	log_info("frontend connected");
	if (vu_dev_attach(&device.vu, fd) < 0) {
		close(fd);
		return;
	}
	/* One frontend at a time; the next waits in the backlog. */
	loop_set_events(&frontend_watch, 0);
}

/*
 * SIGHUP: reads the configuration file again and adds and removes channels
 * to match its channel lines (channels given with --channel stay).  A bad
 * file changes nothing.
 */
static void reload_config(void)
{
	static struct vmc_config fresh;
	char err[PATH_MAX + 128];
	unsigned int i, kept;

	if (!config_path) {
		log_warn("SIGHUP without --config: nothing to reload");
		return;
	}
	if (config_load(config_path, &fresh, err, sizeof(err)) < 0) {
		log_error("reload: %s; nothing changed", err);
		return;
	}
	if (strcmp(fresh.endpoint_dir, file_config.endpoint_dir) ||
	    strcmp(fresh.control_socket, file_config.control_socket))
		log_warn("reload: endpoint-dir and control-socket take effect on restart");
	for (i = 0; i < file_config.nchannels; i++) {
		char name[VMCHANNEL_NAME_SIZE], path[108];
		const char *why;

		if (config_has_channel(&fresh, file_config.channels[i]))
			continue;
		channel_spec_parse(file_config.channels[i], name, path, &why);
		if (vmc_device_remove_channel(&device, name) < 0)
			log_error("reload: cannot remove channel %s", name);
	}
	/*
	 * A channel that could not be added is not recorded: the next reload
	 * tries again.  Those added take their access from the new file.
	 */
	access_config = &fresh;
	for (i = 0, kept = 0; i < fresh.nchannels; i++) {
		if (!config_has_channel(&file_config, fresh.channels[i]) &&
		    vmc_device_add_channel(&device, fresh.channels[i]) < 0) {
			log_error("reload: cannot add channel %s", fresh.channels[i]);
			continue;
		}
		if (kept != i) {
			strcpy(fresh.channels[kept], fresh.channels[i]);
			fresh.access[kept] = fresh.access[i];
		}
		kept++;
	}
	access_config = &file_config;
	memcpy(file_config.channels, fresh.channels, sizeof(fresh.channels));
	memcpy(file_config.access, fresh.access, sizeof(fresh.access));
	file_config.nchannels = kept;
	log_info("reloaded %s: %u channels from the file", config_path, fresh.nchannels);
}

/*
 * The groups sockets are given after privileges are dropped (--socket-group,
 * the file's group= at start), other than @gid: kept as supplementary groups.
 * Returns how many are in @groups.
 */
#define MAX_KEPT_GROUPS 64
static size_t socket_groups(gid_t gid, gid_t *groups, size_t max)
{
	size_t n = 0, i, k;

	for (i = 0; i <= file_config.nchannels && n < max; i++) {
		gid_t g = i < file_config.nchannels ? file_config.access[i].gid :
			  endpoint_default_access.gid;

		for (k = 0; k < n && groups[k] != g; k++)
			;
		if (g != (gid_t)-1 && g != gid && k == n)
			groups[n++] = g;
	}
	return n;
}

/* A channel socket's mode and group from the configuration file. */
static void channel_access(const char *path, struct endpoint_access *access)
{
	const char *base = strrchr(path, '/');
	char name[VMCHANNEL_NAME_SIZE];
	size_t len;
	mode_t mode;
	gid_t gid;

	base = base ? base + 1 : path;
	len = strlen(base);
	if (len < 5 || len - 5 >= sizeof(name) || strcmp(base + len - 5, ".sock"))
		return;
	memcpy(name, base, len - 5);
	name[len - 5] = '\0';
	if (!config_channel_access(access_config, name, &mode, &gid))
		return;
	if (mode)
		access->mode = mode;
	if (gid != (gid_t)-1)
		access->gid = gid;
}

static void signal_ready(void *opaque, uint32_t events)
{
	struct signalfd_siginfo si;

	(void)opaque;
	(void)events;
	if (read(signal_watch.fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGHUP) {
		reload_config();
		return;
	}
	if (delivering) {
		log_info("signal %u again: exiting now", si.ssi_signo);
		exit_now = true;
		return;
	}
	log_info("signal %u: exiting", si.ssi_signo);
	loop_stop();
}

/*
 * Serves on while host programs take the guest bytes held for them
 * (STOP_DELIVER_MS).  Neither a new frontend nor a control command (an
 * upgrade would serve on) is taken meanwhile; progress is bytes written, as
 * a running guest may refill what is written.
 */
static void deliver_before_exit(void)
{
	int64_t start = loop_now_ms(), progress = start, now;
	uint64_t held, written = device.bytes_to_hosts;

	delivering = true;
	control_fini();
	loop_unwatch(&frontend_watch);
	/* What the batch that stopped the loop left (a kick after the signal). */
	if (loop_dispatch(0) < 0)
		return;
	held = vmc_device_undelivered(&device);
	if (!held)
		return;
	log_info("writing the %llu guest bytes held for host programs before exiting "
		 "(at most %d s; a second signal exits now)", (unsigned long long)held,
		 STOP_DELIVER_MS / 1000);
	while (held && !exit_now) {
		now = loop_now_ms();
		if (now - start >= STOP_DELIVER_MS || now - progress >= STOP_STALL_MS)
			break;
		if (loop_dispatch(100) < 0)
			break;
		held = vmc_device_undelivered(&device);
		if (device.bytes_to_hosts != written) {
			written = device.bytes_to_hosts;
			progress = loop_now_ms();
		}
	}
	if (held)
		log_warn("exiting with %llu guest bytes that host programs did not take",
			 (unsigned long long)held);
}

static int setup_signals(void)
{
	sigset_t set;
	int fd;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	fd = signalfd(-1, &set, SFD_CLOEXEC);
	if (fd < 0)
		return -1;
	return loop_watch(&signal_watch, fd, EPOLLIN, signal_ready, NULL);
}

/* A decimal number from 0 to @max, or -1. */
static int parse_bounded(const char *arg, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || *end || end == arg || v < 0 || v > max)
		return -1;
	return (int)v;
}

/* Rejects bad channel specs or repeated names with one clear line. */
static bool check_specs(char **specs, unsigned int n)
{
	char name[VMCHANNEL_NAME_SIZE], other[VMCHANNEL_NAME_SIZE], path[108];
	const char *why;
	unsigned int i, j;

	for (i = 0; i < n; i++) {
		if (channel_spec_parse(specs[i], name, path, &why) < 0) {
			fprintf(stderr, "vmchanneld: channel '%s': %s\n", specs[i], why);
			return false;
		}
		for (j = 0; j < i; j++) {
			channel_spec_parse(specs[j], other, path, &why);
			if (!strcmp(name, other)) {
				fprintf(stderr, "vmchanneld: channel '%s' given twice\n", name);
				return false;
			}
		}
	}
	return true;
}

/* "upgrade [PATH]": PATH, or the binary running now. */
static void upgrade(const char *path, char *why, size_t size)
{
	static char running[PATH_MAX];

	/* The state names the binary that will run it; this one, if that fails. */
	memcpy(running, daemon_state.exe_path, sizeof(running));
	if (path)
		snprintf(daemon_state.exe_path, sizeof(daemon_state.exe_path), "%s", path);
	daemon_state.access = endpoint_default_access;
	upgrade_run(daemon_state.exe_path, why, size);
	memcpy(daemon_state.exe_path, running, sizeof(running));
}

/*
 * The binary that runs now, the default of the next upgrade: the path it was
 * started from, so that after a package upgrade replaced the file, "upgrade"
 * runs the new version.
 */
static void find_own_path(void)
{
	ssize_t n = readlink("/proc/self/exe", daemon_state.exe_path,
			     sizeof(daemon_state.exe_path) - 1);

	daemon_state.exe_path[n > 0 ? n : 0] = '\0';
}

/*
 * Instead of setting up: takes over the device, the descriptors and the
 * sandbox of the binary that ran before (upgrade.h).
 */
static int restore(void)
{
	char answer[PATH_MAX + 64];
	const char *why, *dir = daemon_state.endpoint_dir;

	if (loop_init() < 0 || setup_signals() < 0 || vmc_device_setup(&device, dir) < 0) {
		log_error("upgrade: event loop setup failed: %s", strerror(errno));
		return -1;
	}
	device.vu.disconnected = frontend_disconnected;
	daemon_state.file_config = config_path ? &file_config : NULL;
	if (upgrade_state_load(&device, &daemon_state, upgrade_data, upgrade_len, true, &why) < 0) {
		log_error("upgrade: cannot restore the state: %s", why);
		return -1;
	}
	free(upgrade_data);
	upgrade_data = NULL;
	endpoint_default_access = daemon_state.access;
	endpoint_access_for = channel_access;
	frontend_listen_fd = daemon_state.frontend_listen_fd;
	/* One frontend at a time: the socket is watched while none is connected. */
	if (frontend_listen_fd >= 0 &&
	    loop_watch(&frontend_watch, frontend_listen_fd, device.vu.sock < 0 ? EPOLLIN : 0,
		       frontend_accept, NULL) < 0)
		return -1;
	snprintf(answer, sizeof(answer), "ok upgraded to %s (vmchanneld %s)\n",
		 daemon_state.exe_path, VMCHANNEL_VERSION);
	if (control_resume(daemon_state.control_path[0] ? daemon_state.control_path : NULL,
			   &device, daemon_state.control_listen_fd,
			   daemon_state.control_client_fd, answer) < 0)
		return -1;
	if (daemon_state.sandboxed) {
		config_groups_freeze();
		sandbox_inherited();
	}
	log_info("upgrade: vmchanneld %s serving %u channels in %s%s", VMCHANNEL_VERSION,
		 device.nchans, dir, daemon_state.sandboxed ? ", sandboxed" : "");
	service_notify("READY=1\nSTATUS=serving %u channels in %s%s (upgraded)", device.nchans,
		       dir, daemon_state.sandboxed ? ", sandboxed" : "");
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_SOCKET = 256, OPT_FD, OPT_DIR, OPT_CHANNEL, OPT_CONTROL, OPT_NOTIFY, OPT_QEMU,
	       OPT_MEMORY, OPT_ID, OPT_CONFIG, OPT_CAPS, OPT_FAULT, OPT_LOG_LEVEL, OPT_HELP,
	       OPT_VERSION, OPT_SANDBOX, OPT_USER, OPT_GROUP, OPT_SOCKET_GROUP, OPT_TRANSPORT,
	       OPT_NO_UPGRADE, OPT_POLL };
	static const struct option opts[] = {
		{ "socket-path", required_argument, NULL, OPT_SOCKET },
		{ "fd", required_argument, NULL, OPT_FD },
		{ "endpoint-dir", required_argument, NULL, OPT_DIR },
		{ "channel", required_argument, NULL, OPT_CHANNEL },
		{ "control-socket", required_argument, NULL, OPT_CONTROL },
		{ "notify-fd", required_argument, NULL, OPT_NOTIFY },
		{ "print-qemu-args", no_argument, NULL, OPT_QEMU },
		{ "memory", required_argument, NULL, OPT_MEMORY },
		{ "transport", required_argument, NULL, OPT_TRANSPORT },
		{ "id", required_argument, NULL, OPT_ID },
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "print-capabilities", no_argument, NULL, OPT_CAPS },
#ifdef VMC_FAULT_INJECTION
		{ "fault", required_argument, NULL, OPT_FAULT },
#endif
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "poll-us", required_argument, NULL, OPT_POLL },
		{ "sandbox", required_argument, NULL, OPT_SANDBOX },
		{ "user", required_argument, NULL, OPT_USER },
		{ "group", required_argument, NULL, OPT_GROUP },
		{ "socket-group", required_argument, NULL, OPT_SOCKET_GROUP },
		{ "no-upgrade", no_argument, NULL, OPT_NO_UPGRADE },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 }
	};
	const char *socket_path = NULL, *dir = NULL, *memory = "1G", *control_path = NULL;
	const char *qemu_id = "vmchannel0", *user = NULL, *group = NULL, *socket_group = NULL;
	/* Freed on every way out: the ASan build's leak check runs on --help too. */
	char **names = calloc((size_t)argc + VMCHANNEL_MAX_CHANNELS, sizeof(*names));
	char err[PATH_MAX + 128];
	unsigned int nnames = 0;
	int listen_fd = -1, notify_fd = -1, opt, status = 1, poll_us = POLL_DEFAULT_US;
	bool qemu_args = false, sandbox = true, mmio = false, check_only = false, upgrades = true;
	int restoring;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1, keep_groups[MAX_KEPT_GROUPS];
	vmc_faults faults = 0;

	if (!names)
		return 1;
	while ((opt = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_SOCKET: socket_path = optarg; break;
		case OPT_DIR: dir = optarg; break;
		case OPT_CHANNEL: names[nnames++] = optarg; break;
		case OPT_CONTROL: control_path = optarg; break;
		case OPT_MEMORY: memory = optarg; break;
		case OPT_TRANSPORT:
			if (strcmp(optarg, "pci") && strcmp(optarg, "mmio")) {
				fprintf(stderr, "vmchanneld: --transport is pci or mmio, not '%s'\n",
					optarg);
				status = EXIT_USAGE;
				goto out;
			}
			mmio = !strcmp(optarg, "mmio");
			break;
		case OPT_ID: qemu_id = optarg; break;
		case OPT_CONFIG: config_path = optarg; break;
		case OPT_QEMU: qemu_args = true; break;
		case OPT_SANDBOX:
			if (strcmp(optarg, "on") && strcmp(optarg, "none")) {
				fprintf(stderr, "vmchanneld: --sandbox is on or none\n");
				status = EXIT_USAGE;
				goto out;
			}
			sandbox = !strcmp(optarg, "on");
			break;
		case OPT_USER: user = optarg; break;
		case OPT_GROUP: group = optarg; break;
		case OPT_SOCKET_GROUP: socket_group = optarg; break;
		case OPT_NO_UPGRADE: upgrades = false; break;
#ifdef VMC_FAULT_INJECTION
		case OPT_FAULT:
			if (vmc_fault_parse(optarg) < 0) {
				fprintf(stderr, "vmchanneld: unknown fault '%s'; one of: %s\n",
					optarg, vmc_fault_names());
				status = EXIT_USAGE;
				goto out;
			}
			faults |= 1u << vmc_fault_parse(optarg);
			break;
#endif
		case OPT_LOG_LEVEL:
			if (log_level_parse(optarg) < 0) {
				fprintf(stderr, "vmchanneld: unknown log level '%s'; one of: "
					"error, warning, info, debug\n", optarg);
				status = EXIT_USAGE;
				goto out;
			}
			log_threshold = log_level_parse(optarg);
			break;
		case 'v':
			if (log_threshold < LOG_DEBUG)
				log_threshold++;
			break;
		case OPT_FD:
		case OPT_NOTIFY: {
			int fd = parse_bounded(optarg, 1 << 20);

			if (fd < 0) {
				fprintf(stderr, "vmchanneld: bad file descriptor '%s'\n", optarg);
				status = EXIT_USAGE;
				goto out;
			}
			*(opt == OPT_FD ? &listen_fd : &notify_fd) = fd;
			break;
		}
		case OPT_POLL:
			poll_us = parse_bounded(optarg, POLL_MAX_US);
			if (poll_us < 0) {
				fprintf(stderr, "vmchanneld: --poll-us takes 0 to %d, not '%s'\n",
					POLL_MAX_US, optarg);
				status = EXIT_USAGE;
				goto out;
			}
			break;
		case OPT_CAPS:
			printf("{\n  \"type\": \"vmchannel\",\n  \"features\": []\n}\n");
			status = 0;
			goto out;
		case OPT_HELP:
			usage(stdout);
			status = 0;
			goto out;
		case OPT_VERSION:
			printf("vmchanneld %s\n", VMCHANNEL_VERSION);
			status = 0;
			goto out;
		default:
			usage(stderr);
			status = EXIT_USAGE;
			goto out;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "vmchanneld: unexpected argument '%s'\n", argv[optind]);
		status = EXIT_USAGE;
		goto out;
	}
	if (qemu_args) {
		if (!socket_path) {
			fprintf(stderr, "vmchanneld: --print-qemu-args needs --socket-path\n");
			status = EXIT_USAGE;
			goto out;
		}
		print_qemu_args(socket_path, qemu_id, strcmp(memory, "none") ? memory : NULL, mmio);
		status = 0;
		goto out;
	}
	loop_set_poll((unsigned int)poll_us);
	restoring = upgrade_take_state(&upgrade_data, &upgrade_len, &check_only);
	if (restoring < 0)
		goto out;
	if (restoring && check_only) {
		const char *why;

		status = upgrade_state_load(&device, &daemon_state, upgrade_data, upgrade_len,
					    false, &why);
		if (status)
			log_error("upgrade: refusing the state: %s", why);
		else
			status = upgrade_acknowledge(upgrade_data, upgrade_len) ? 1 : 0;
		goto out;
	}
	/* Everything set up at start (the file's settings too) comes from the state. */
	if (restoring) {
		control_upgrade = upgrade;
		upgrade_setup(argv, &device, &daemon_state);
		if (restore() < 0)
			_exit(1);	/* nothing of what was handed over is undone */
		device.faults = faults;
		listen_fd = frontend_listen_fd;
		goto serve;
	}
	if (config_path) {
		if (config_load(config_path, &file_config, err, sizeof(err)) < 0) {
			fprintf(stderr, "vmchanneld: %s\n", err);
			status = EXIT_USAGE;
			goto out;
		}
		/* Flags win over the file. */
		if (!dir && file_config.endpoint_dir[0])
			dir = file_config.endpoint_dir;
		if (!control_path && file_config.control_socket[0])
			control_path = file_config.control_socket;
		for (unsigned int i = 0; i < file_config.nchannels; i++)
			names[nnames++] = file_config.channels[i];
	}
	if (user && sandbox_lookup_user(user, &uid, &gid) < 0) {
		fprintf(stderr, "vmchanneld: no such user '%s'\n", user);
		status = EXIT_USAGE;
		goto out;
	}
	if (group && sandbox_lookup_group(group, &gid) < 0) {
		fprintf(stderr, "vmchanneld: no such group '%s'\n", group);
		status = EXIT_USAGE;
		goto out;
	}
	if (socket_group && sandbox_lookup_group(socket_group, &endpoint_default_access.gid) < 0) {
		fprintf(stderr, "vmchanneld: no such group '%s'\n", socket_group);
		status = EXIT_USAGE;
		goto out;
	}
	/* The sockets made as root belong to the user the daemon becomes. */
	endpoint_default_access.uid = uid;
	if (endpoint_default_access.gid == (gid_t)-1)
		endpoint_default_access.gid = gid;
	if (socket_group)
		endpoint_default_access.mode = 0660;
	endpoint_access_for = channel_access;
	if (!dir)
		dir = ".";
	if (listen_fd < 0 && !socket_path)
		listen_fd = service_activated_fd();
	if (!socket_path == (listen_fd < 0)) {
		fprintf(stderr, "vmchanneld: give exactly one of --socket-path and --fd\n");
		status = EXIT_USAGE;
		goto out;
	}
	if ((!nnames && !control_path) || nnames > VMCHANNEL_MAX_CHANNELS) {
		fprintf(stderr, "vmchanneld: give 1 to %d --channel options (or a control socket)\n",
			VMCHANNEL_MAX_CHANNELS);
		status = EXIT_USAGE;
		goto out;
	}
	if (!check_specs(names, nnames)) {
		status = EXIT_USAGE;
		goto out;
	}

	find_own_path();
	/* The sandbox's rules for upgrades name the binary's directory. */
	if (upgrades && daemon_state.exe_path[0] != '/') {
		log_warn("upgrade: the binary's path is unknown (/proc/self/exe): upgrades off");
		upgrades = false;
	}
	if (upgrades)
		control_upgrade = upgrade;
	upgrade_setup(argv, &device, &daemon_state);
	snprintf(daemon_state.endpoint_dir, sizeof(daemon_state.endpoint_dir), "%s", dir);
	snprintf(daemon_state.control_path, sizeof(daemon_state.control_path), "%s",
		 control_path ? control_path : "");
	daemon_state.file_config = config_path ? &file_config : NULL;
	endpoint_raise_fd_limit();
	if (loop_init() < 0 || setup_signals() < 0) {
		log_error("event loop setup failed: %s", strerror(errno));
		return 1;
	}
	if (listen_fd < 0)
		listen_fd = endpoint_listen(socket_path);
	if (listen_fd < 0)
		goto out;
	if (vmc_device_init(&device, dir, names, nnames) < 0)
		goto out_device;
	device.vu.disconnected = frontend_disconnected;
	if (!fd_listens(listen_fd)) {
		log_info("frontend connected (--fd)");
		if (vu_dev_attach(&device.vu, listen_fd) < 0)
			goto out_device;
		listen_fd = -1;
	}
	frontend_listen_fd = listen_fd;
	daemon_state.frontend_listen_fd = listen_fd;
	daemon_state.sandboxed = sandbox;
	device.faults = faults;
	if (faults)
		log_warn("fault injection on: this device is hostile on purpose");
	if (listen_fd >= 0 && loop_watch(&frontend_watch, listen_fd, EPOLLIN, frontend_accept, NULL) < 0)
		goto out_device;
	if (control_path && control_init(control_path, &device) < 0)
		goto out_device;
	if (sandbox_drop_privileges(uid, gid, keep_groups,
				    socket_groups(gid, keep_groups, MAX_KEPT_GROUPS)) < 0)
		goto out_device;
	if (sandbox)
		config_groups_freeze();
	if (sandbox && sandbox_enter(&(struct sandbox_paths){
			.endpoint_dir = dir, .config_path = config_path,
			.exe_path = daemon_state.exe_path, .upgrades = upgrades,
			.socket_paths = { socket_path, control_path } }) < 0)
		goto out_device;
	if (notify_fd >= 0) {
		if (write(notify_fd, "READY=1\n", 8) != 8)
			log_warn("cannot write to the notify fd: %s", strerror(errno));
		close(notify_fd);
	}
	log_info("serving %u channels in %s", nnames, dir);
	service_notify("READY=1\nSTATUS=serving %u channels in %s%s", nnames, dir,
		       sandbox ? ", sandboxed" : "");
serve:
	status = loop_run() < 0 ? 1 : 0;
	service_notify("STOPPING=1");
	if (!status)
		deliver_before_exit();
out_device:
	control_fini();
	vmc_device_fini(&device);
	if (listen_fd >= 0)
		close(listen_fd);
	if (socket_path)
		unlink(socket_path);
out:
	loop_fini();
	free(names);
	free(upgrade_data);
	return status;
}
