// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmchannelctl: adds, removes and lists the channels of a running vmchanneld,
 * shows their statistics and upgrades it, through its control socket (vmchanneld
 * --control-socket).  See vmchannelctl(1).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define EXIT_USAGE 2
/* An answer is one line: "ok ..." or "error: ...", at most a full channel list. */
#define ANSWER_MAX (1 << 17)

static void usage(FILE *out)
{
	fprintf(out,
		"usage: vmchannelctl --control-socket PATH add NAME\n"
		"       vmchannelctl --control-socket PATH remove NAME\n"
		"       vmchannelctl --control-socket PATH list\n"
		"       vmchannelctl --control-socket PATH [--json] stats [NAME]\n"
		"       vmchannelctl --control-socket PATH upgrade [BINARY]\n"
		"\n"
		"Add or remove a channel of a running vmchanneld (the guest sees it appear\n"
		"or disappear at once), list its channels, one per line, or show the\n"
		"counters of one channel or of all, one line of KEY=VALUE per channel.\n"
		"upgrade: vmchanneld hands its state to BINARY (default: the path it was\n"
		"started from) and runs it in its place, same PID, the VM and the host\n"
		"programs connected; if BINARY fails its check, the old one serves on.\n"
		"\n"
		"  -c, --control-socket PATH  vmchanneld's --control-socket\n"
		"  --json                     stats as one JSON object\n"
		"  --help, --version\n"
		"\n"
		"Exit status: 0 done, 1 refused or unreachable, 2 bad command line.\n");
}

static int connect_control(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "vmchannelctl: %s: path too long\n", path);
		return -1;
	}
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fprintf(stderr, "vmchannelctl: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Sends one command line and reads the one-line answer into @answer. */
static int ask(int fd, const char *command, char *answer, size_t size)
{
	size_t len = strlen(command), got = 0;
	ssize_t n;

	if (send(fd, command, len, MSG_NOSIGNAL) != (ssize_t)len || send(fd, "\n", 1, MSG_NOSIGNAL) != 1)
		return -1;
	while (got + 1 < size && (!got || answer[got - 1] != '\n')) {
		n = read(fd, answer + got, size - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	answer[got] = '\0';
	if (!got || answer[got - 1] != '\n')
		return -1;
	answer[got - 1] = '\0';
	return 0;
}

/* "ok ..." is success; anything else is printed as the error it is. */
static bool answer_ok(const char *answer)
{
	return !strncmp(answer, "ok", 2) && (!answer[2] || answer[2] == ' ');
}

/* Prints "KEY=VALUE ..." as a JSON object: all-digit values as numbers. */
static void print_json_object(char *pairs)
{
	const char *sep = "";
	char *pair, *value;

	printf("{");
	for (pair = strtok(pairs, " "); pair; pair = strtok(NULL, " ")) {
		value = strchr(pair, '=');
		if (!value)
			continue;
		*value++ = '\0';
		/* Keys, channel names and states hold no quote or backslash. */
		if (*value && strspn(value, "0123456789") == strlen(value))
			printf("%s\"%s\": %s", sep, pair, value);
		else
			printf("%s\"%s\": \"%s\"", sep, pair, value);
		sep = ", ";
	}
	printf("}");
}

/*
 * stats [NAME]: one channel, or every channel "list" names (one that goes
 * away in between is left out).
 */
static int show_stats(int fd, const char *name, bool json, char *answer, size_t size)
{
	static char names[1 << 17], command[128];
	const char *sep = "";
	char *next, *save = NULL;

	if (name) {
		snprintf(names, sizeof(names), "%s", name);
	} else {
		if (ask(fd, "list", answer, size) < 0) {
			snprintf(answer, size, "no answer");
			return -1;
		}
		if (!answer_ok(answer))
			return -1;
		snprintf(names, sizeof(names), "%s", answer + 2);
	}
	if (json)
		printf("{\"channels\": [");
	for (next = strtok_r(names, " ", &save); next; next = strtok_r(NULL, " ", &save)) {
		snprintf(command, sizeof(command), "stats %s", next);
		if (ask(fd, command, answer, size) < 0) {
			snprintf(answer, size, "no answer");
			return -1;
		}
		if (!answer_ok(answer)) {
			if (!name)
				continue;
			return -1;
		}
		if (json) {
			printf("%s", sep);
			print_json_object(answer + 3);
			sep = ", ";
		} else {
			printf("%s\n", answer + 3);
		}
	}
	if (json)
		printf("]}\n");
	return 0;
}

/*
 * Sends @command on a connection of its own; 0 with the answer in @answer
 * when it is "ok ...", else 1 with the error printed.
 */
static int run_command(const char *path, const char *command, char *answer, size_t size)
{
	int fd = connect_control(path);

	if (fd < 0)
		return 1;
	if (ask(fd, command, answer, size) < 0) {
		fprintf(stderr, "vmchannelctl: no answer from %s\n", path);
		close(fd);
		return 1;
	}
	close(fd);
	if (!answer_ok(answer)) {
		fprintf(stderr, "vmchannelctl: %s\n", answer);
		return 1;
	}
	return 0;
}

/*
 * upgrade [BINARY]: the answer comes from the new binary (or the old one's
 * error).  BINARY is made absolute here: vmchanneld has its own directory.
 */
static int upgrade(const char *path, const char *binary, char *answer, size_t size)
{
	static char command[PATH_MAX + 16];
	char *resolved = NULL;
	int status;

	if (binary) {
		resolved = realpath(binary, NULL);
		if (!resolved) {
			fprintf(stderr, "vmchannelctl: %s: %s\n", binary, strerror(errno));
			return 1;
		}
		if (strpbrk(resolved, "\n") || strlen(resolved) >= PATH_MAX) {
			fprintf(stderr, "vmchannelctl: %s: unusable path\n", binary);
			free(resolved);
			return EXIT_USAGE;
		}
	}
	snprintf(command, sizeof(command), "upgrade%s%s", resolved ? " " : "",
		 resolved ? resolved : "");
	free(resolved);
	status = run_command(path, command, answer, size);
	if (!status)
		printf("%s\n", answer + 3);
	return status;
}

int main(int argc, char **argv)
{
	enum { OPT_HELP = 256, OPT_VERSION, OPT_JSON };
	static const struct option opts[] = {
		{ "control-socket", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 }
	};
	static char command[512], answer[ANSWER_MAX];
	const char *path = NULL;
	char *name;
	bool json = false;
	int opt, fd;

	while ((opt = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case OPT_HELP: usage(stdout); return 0;
		case OPT_VERSION: printf("vmchannelctl %s\n", VMCHANNEL_VERSION); return 0;
		case OPT_JSON: json = true; break;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (!path) {
		fprintf(stderr, "vmchannelctl: give --control-socket PATH\n");
		return EXIT_USAGE;
	}
	if (optind < argc && !strcmp(argv[optind], "list") && argc - optind == 1) {
		snprintf(command, sizeof(command), "list");
	} else if (optind < argc && !strcmp(argv[optind], "stats") && argc - optind <= 2) {
		command[0] = '\0';
	} else if (optind < argc && (!strcmp(argv[optind], "add") || !strcmp(argv[optind], "remove")) &&
		   argc - optind == 2) {
		snprintf(command, sizeof(command), "%s %s", argv[optind], argv[optind + 1]);
	} else if (optind < argc && !strcmp(argv[optind], "upgrade") && argc - optind <= 2 &&
		   !json) {
		return upgrade(path, argv[optind + 1], answer, sizeof(answer));
	} else {
		usage(stderr);
		return EXIT_USAGE;
	}
	/* vmchanneld checks the name; a line break would split the command. */
	name = argv[optind + 1];
	if (name && (strlen(name) > 200 || strpbrk(name, " \n"))) {
		fprintf(stderr, "vmchannelctl: invalid channel name '%s'\n", name);
		return EXIT_USAGE;
	}

	if (json && command[0]) {
		fprintf(stderr, "vmchannelctl: --json is for stats\n");
		return EXIT_USAGE;
	}
	if (!command[0]) {
		fd = connect_control(path);
		if (fd < 0)
			return 1;
		/* stats: what was printed stays printed; an error ends it. */
		opt = show_stats(fd, argv[optind + 1], json, answer, sizeof(answer));
		close(fd);
		if (opt < 0)
			fprintf(stderr, "vmchannelctl: %s\n", answer);
		return opt < 0 ? 1 : 0;
	}
	opt = run_command(path, command, answer, sizeof(answer));
	if (opt)
		return opt;
	/* "ok a b c": one name per line. */
	for (name = strtok(answer + 2, " "); name; name = strtok(NULL, " "))
		printf("%s\n", name);
	return 0;
}
