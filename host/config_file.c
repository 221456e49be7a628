// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Parsing of vmchanneld's configuration file; the format is in
 * config_file.h and vmchanneld(8).  Every line is checked before any is
 * used, so a bad file changes nothing.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "config_file.h"

bool channel_name_valid(const char *name)
{
	__u8 field[VMCHANNEL_NAME_SIZE] = { 0 };
	size_t len = strlen(name);

	if (len >= VMCHANNEL_NAME_SIZE)
		return false;
	memcpy(field, name, len);
	return vmchannel_name_check(field) == VMCHANNEL_NAME_OK;
}

int channel_spec_parse(const char *spec, char *name, char *connect_path, const char **why)
{
	struct sockaddr_un addr;
	const char *eq = strchr(spec, '=');
	size_t len = eq ? (size_t)(eq - spec) : strlen(spec);

	connect_path[0] = '\0';
	if (len >= VMCHANNEL_NAME_SIZE) {
		*why = "channel name longer than 63 bytes";
		return -1;
	}
	memcpy(name, spec, len);
	name[len] = '\0';
	if (!channel_name_valid(name)) {
		*why = "invalid channel name: use 1-63 bytes of [A-Za-z0-9._:+-], not . or ..";
		return -1;
	}
	if (!eq)
		return 0;
	if (!strcmp(eq + 1, "stdio")) {
		strcpy(connect_path, "-");
		return 0;
	}
	if (strncmp(eq + 1, "connect:", 8) || !eq[9]) {
		*why = "endpoint must be connect:PATH or stdio";
		return -1;
	}
	if (strlen(eq + 9) >= sizeof(addr.sun_path)) {
		*why = "socket path too long";
		return -1;
	}
	strcpy(connect_path, eq + 9);
	return 0;
}

bool config_has_channel(const struct vmc_config *cfg, const char *name)
{
	unsigned int i;

	for (i = 0; i < cfg->nchannels; i++)
		if (!strcmp(cfg->channels[i], name))
			return true;
	return false;
}

/* Strips a comment and surrounding blanks; returns the first word, or NULL. */
static char *split_line(char *line, char **value)
{
	char *key, *end;

	line[strcspn(line, "#\n")] = '\0';
	key = line + strspn(line, " \t");
	if (!*key)
		return NULL;
	end = key + strcspn(key, " \t");
	*value = end + strspn(end, " \t");
	*end = '\0';
	end = *value + strlen(*value);
	while (end > *value && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return key;
}

/* Copies a path value; false (with a reason) if empty or too long. */
static bool set_path(char *dst, const char *value, const char **why)
{
	if (!*value || strlen(value) >= PATH_MAX) {
		*why = *value ? "path too long" : "needs a path";
		return false;
	}
	strcpy(dst, value);
	return true;
}

/*
 * Group names resolved so far.  Inside the sandbox /etc/group cannot be read
 * (Landlock), so once config_groups_freeze() is called a reload knows the
 * names resolved before it only.
 */
static struct {
	char name[CONFIG_GROUP_NAME_SIZE];
	gid_t gid;
} known_groups[CONFIG_KNOWN_GROUPS];
static unsigned int nknown_groups;
static bool groups_frozen;

void config_groups_freeze(void)
{
	groups_frozen = true;
}

const char *config_group_known(unsigned int i, gid_t *gid)
{
	if (i >= nknown_groups)
		return NULL;
	*gid = known_groups[i].gid;
	return known_groups[i].name;
}

bool config_group_remember(const char *name, gid_t gid)
{
	if (nknown_groups == CONFIG_KNOWN_GROUPS || strlen(name) >= sizeof(known_groups[0].name))
		return false;
	strcpy(known_groups[nknown_groups].name, name);
	known_groups[nknown_groups++].gid = gid;
	return true;
}

static bool group_lookup(const char *name, gid_t *gid)
{
	struct group *gr;
	unsigned int i;

	for (i = 0; i < nknown_groups; i++)
		if (!strcmp(known_groups[i].name, name)) {
			*gid = known_groups[i].gid;
			return true;
		}
	gr = groups_frozen ? NULL : getgrnam(name);
	if (!gr)
		return false;
	*gid = gr->gr_gid;
	config_group_remember(name, gr->gr_gid);
	return true;
}

/* "mode=0660" or "group=kvm" (a name or a number); false if the word is neither. */
static bool parse_access(const char *word, mode_t *mode, gid_t *gid, const char **why)
{
	unsigned long v;
	char *end;

	if (!strncmp(word, "mode=", 5)) {
		errno = 0;
		v = strtoul(word + 5, &end, 8);
		if (errno || end == word + 5 || *end || v > 0777 || !(v & 0200))
			*why = "mode must be octal, at most 0777, with the owner's write bit";
		*mode = (mode_t)v;
		return true;
	}
	if (strncmp(word, "group=", 6))
		return false;
	if (group_lookup(word + 6, gid))
		return true;
	errno = 0;
	v = strtoul(word + 6, &end, 10);
	if (!errno && end != word + 6 && !*end && v < (gid_t)-1)
		*gid = (gid_t)v;
	else if (groups_frozen)
		*why = "group name not known at start (the sandbox cannot read the group "
		       "database): give its number, or restart";
	else
		*why = "no such group";
	return true;
}

/*
 * "channel NAME [connect:PATH|stdio] [mode=OCTAL] [group=GROUP]": stored as
 * the spec "NAME[=connect:PATH]" and its access.
 */
static void add_channel(struct vmc_config *cfg, char *value, const char **why)
{
	char spec[CHANNEL_SPEC_MAX], name[VMCHANNEL_NAME_SIZE], connect_path[108];
	char *word, *endpoint = "", *save = NULL;
	mode_t mode = 0;
	gid_t gid = (gid_t)-1;
	unsigned int i;

	value = strtok_r(value, " \t", &save);
	if (!value)
		value = "";	/* refused below as an invalid name */
	while ((word = strtok_r(NULL, " \t", &save)) && !*why) {
		if (parse_access(word, &mode, &gid, why))
			continue;
		if (*endpoint)
			*why = "one endpoint a channel; then mode=OCTAL, group=GROUP";
		endpoint = word;
	}
	if (*why)
		return;
	if (strlen(value) >= VMCHANNEL_NAME_SIZE || strlen(endpoint) >= sizeof(spec) - VMCHANNEL_NAME_SIZE) {
		*why = "channel name or endpoint too long";
		return;
	}
	snprintf(spec, sizeof(spec), "%s%s%s", value, *endpoint ? "=" : "", endpoint);
	if (channel_spec_parse(spec, name, connect_path, why) < 0)
		return;
	for (i = 0; i < cfg->nchannels; i++) {
		char other[VMCHANNEL_NAME_SIZE], other_path[108];
		const char *ignored;

		/* Stored specs were parsed once already: this cannot fail. */
		channel_spec_parse(cfg->channels[i], other, other_path, &ignored);
		if (!strcmp(other, name)) {
			*why = "channel listed twice";
			return;
		}
	}
	if (cfg->nchannels == VMCHANNEL_MAX_CHANNELS) {
		*why = "too many channels";
		return;
	}
	cfg->access[cfg->nchannels].mode = mode;
	cfg->access[cfg->nchannels].gid = gid;
	strcpy(cfg->channels[cfg->nchannels++], spec);
}

bool config_channel_access(const struct vmc_config *cfg, const char *name, mode_t *mode,
			   gid_t *gid)
{
	char other[VMCHANNEL_NAME_SIZE], path[108];
	const char *ignored;
	unsigned int i;

	for (i = 0; i < cfg->nchannels; i++) {
		channel_spec_parse(cfg->channels[i], other, path, &ignored);
		if (!strcmp(other, name)) {
			*mode = cfg->access[i].mode;
			*gid = cfg->access[i].gid;
			return cfg->access[i].mode || cfg->access[i].gid != (gid_t)-1;
		}
	}
	return false;
}

int config_load(const char *path, struct vmc_config *cfg, char *err, size_t errlen)
{
	char line[PATH_MAX + 64], *key, *value;
	const char *why = NULL;
	unsigned int lineno = 0;
	FILE *f = fopen(path, "re");

	memset(cfg, 0, sizeof(*cfg));
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (!why && fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			why = "line too long";
			break;
		}
		key = split_line(line, &value);
		if (!key)
			continue;
		if (!strcmp(key, "endpoint-dir")) {
			set_path(cfg->endpoint_dir, value, &why);
		} else if (!strcmp(key, "control-socket")) {
			set_path(cfg->control_socket, value, &why);
		} else if (!strcmp(key, "channel")) {
			add_channel(cfg, value, &why);
		} else {
			why = "unknown setting (endpoint-dir, control-socket, channel)";
		}
	}
	if (!why && ferror(f))
		why = strerror(errno);
	fclose(f);
	if (why) {
		snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
		return -1;
	}
	return 0;
}
