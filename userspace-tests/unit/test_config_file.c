// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmchanneld's configuration file (host/config_file.c): what it accepts,
 * and that every bad line is refused with its file and line number.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_file.h"
#include "vmc_test.h"

static struct vmc_config cfg;
static char err[PATH_MAX + 128];

/* Writes @text to a temporary file and loads it; returns config_load()'s result. */
static int load_text(const char *text)
{
	char path[] = "/tmp/vmc-config.XXXXXX";
	int fd = mkstemp(path), ret;

	VMC_ASSERT_FATAL(fd >= 0);
	VMC_ASSERT_FATAL(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	err[0] = '\0';
	ret = config_load(path, &cfg, err, sizeof(err));
	unlink(path);
	return ret;
}

static void test_config_accepts(void)
{
	mode_t mode;
	gid_t gid;

	CU_ASSERT_EQUAL(load_text("# vm1\n\n  endpoint-dir   /run/vm1  # sockets\n"
				  "control-socket /run/vm1/control\n"
				  "channel clipboard\n\tchannel agent.v2\n"
				  "channel svc  connect:/run/svc.sock\n"), 0);
	CU_ASSERT_STRING_EQUAL(cfg.endpoint_dir, "/run/vm1");
	CU_ASSERT_STRING_EQUAL(cfg.control_socket, "/run/vm1/control");
	CU_ASSERT_EQUAL(cfg.nchannels, 3);
	CU_ASSERT_STRING_EQUAL(cfg.channels[0], "clipboard");
	CU_ASSERT_STRING_EQUAL(cfg.channels[1], "agent.v2");
	CU_ASSERT_STRING_EQUAL(cfg.channels[2], "svc=connect:/run/svc.sock");
	CU_ASSERT_TRUE(config_has_channel(&cfg, "agent.v2"));
	CU_ASSERT_FALSE(config_has_channel(&cfg, "agent"));
	CU_ASSERT_TRUE(config_has_channel(&cfg, "svc=connect:/run/svc.sock"));
	CU_ASSERT_FALSE(config_has_channel(&cfg, "svc"));
	/* A socket's mode and group, in any order around the endpoint. */
	CU_ASSERT_EQUAL(load_text("channel a mode=0660\nchannel b group=0 connect:/s mode=600\n"
				  "channel c\n"), 0);
	CU_ASSERT_STRING_EQUAL(cfg.channels[1], "b=connect:/s");
	CU_ASSERT_TRUE(config_channel_access(&cfg, "a", &mode, &gid));
	CU_ASSERT_TRUE(mode == 0660 && gid == (gid_t)-1);
	CU_ASSERT_TRUE(config_channel_access(&cfg, "b", &mode, &gid));
	CU_ASSERT_TRUE(mode == 0600 && gid == 0);
	CU_ASSERT_FALSE(config_channel_access(&cfg, "c", &mode, &gid));
	CU_ASSERT_FALSE(config_channel_access(&cfg, "d", &mode, &gid));
	CU_ASSERT_EQUAL(load_text(""), 0);
	CU_ASSERT_EQUAL(cfg.nchannels, 0);
	CU_ASSERT_STRING_EQUAL(cfg.endpoint_dir, "");
}

/* Each bad line: refused, and the message names its line. */
static void test_config_refuses(void)
{
	static const struct { const char *text, *line_and_why; } bad[] = {
		{ "channel a\nchanel b\n", ":2: unknown setting" },
		{ "channel a/b\n", ":1: invalid channel name" },
		{ "channel ..\n", ":1: invalid channel name" },
		{ "channel\n", ":1: invalid channel name" },
		{ "channel a mode=0999\n", ":1: mode must be octal" },
		{ "channel a mode=0444\n", ":1: mode must be octal" },
		{ "channel a group=no-such-group-here\n", ":1: no such group" },
		{ "channel a connect:/x stdio\n", ":1: one endpoint a channel" },
		{ "channel two words\n", ":1: endpoint must be connect:PATH or stdio" },
		{ "channel a connect:\n", ":1: endpoint must be connect:PATH or stdio" },
		{ "channel a\nchannel a connect:/run/a.sock\n", ":2: channel listed twice" },
		{ "channel a\nchannel a\n", ":2: channel listed twice" },
		{ "endpoint-dir\n", ":1: needs a path" },
	};
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_EQUAL(load_text(bad[i].text), -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].line_and_why));
	}
	CU_ASSERT_EQUAL(config_load("/nonexistent/vmc.conf", &cfg, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file"));
}

/* Channel specs as --channel takes them. */
static void test_channel_spec(void)
{
	char name[VMCHANNEL_NAME_SIZE], path[108], long_path[200];
	const char *why = NULL;

	CU_ASSERT_EQUAL(channel_spec_parse("clipboard", name, path, &why), 0);
	CU_ASSERT_STRING_EQUAL(name, "clipboard");
	CU_ASSERT_STRING_EQUAL(path, "");
	CU_ASSERT_EQUAL(channel_spec_parse("log=connect:/run/log.sock", name, path, &why), 0);
	CU_ASSERT_STRING_EQUAL(name, "log");
	CU_ASSERT_STRING_EQUAL(path, "/run/log.sock");
	CU_ASSERT_EQUAL(channel_spec_parse("log=stdio", name, path, &why), 0);
	CU_ASSERT_STRING_EQUAL(path, "-");
	CU_ASSERT_EQUAL(channel_spec_parse("log=tcp:1", name, path, &why), -1);
	CU_ASSERT_EQUAL(channel_spec_parse("a/b", name, path, &why), -1);
	CU_ASSERT_EQUAL(channel_spec_parse("=connect:/x", name, path, &why), -1);
	memset(long_path, 'p', sizeof(long_path));
	memcpy(long_path, "x=connect:/", 11);
	long_path[sizeof(long_path) - 1] = '\0';
	CU_ASSERT_EQUAL(channel_spec_parse(long_path, name, path, &why), -1);
	CU_ASSERT_STRING_EQUAL(why, "socket path too long");
}

static void test_config_limits(void)
{
	size_t size = (VMCHANNEL_MAX_CHANNELS + 1) * 16 + PATH_MAX + 200;
	char *text = malloc(size);
	size_t used = 0;
	unsigned int i;

	VMC_ASSERT_FATAL(text);
	for (i = 0; i < VMCHANNEL_MAX_CHANNELS; i++)
		used += (size_t)snprintf(text + used, size - used, "channel c%u\n", i);
	CU_ASSERT_EQUAL(load_text(text), 0);
	CU_ASSERT_EQUAL(cfg.nchannels, VMCHANNEL_MAX_CHANNELS);
	snprintf(text + used, size - used, "channel one-too-many\n");
	CU_ASSERT_EQUAL(load_text(text), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "too many channels"));
	/* A path longer than PATH_MAX; a line too long to read: refused, not split. */
	memcpy(text, "endpoint-dir /", 14);
	memset(text + 14, 'x', PATH_MAX + 20);
	strcpy(text + 14 + PATH_MAX + 20, "\n");
	CU_ASSERT_EQUAL(load_text(text), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":1: path too long"));
	memset(text + 14, 'x', PATH_MAX + 100);
	strcpy(text + 14 + PATH_MAX + 100, "\n");
	CU_ASSERT_EQUAL(load_text(text), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":1: line too long"));
	free(text);
}

void register_config_file_tests(void)
{
	CU_pSuite s = vmc_add_suite("host configuration file");

	vmc_add_test(s, "settings, comments, blanks", test_config_accepts);
	vmc_add_test(s, "bad lines refused with their line number", test_config_refuses);
	vmc_add_test(s, "1024 channels, no more; long lines", test_config_limits);
	vmc_add_test(s, "channel specs NAME[=connect:PATH]", test_channel_spec);
}
