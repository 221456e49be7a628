// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Parsing of vmchanneld's configuration file; the format is in
 * config_file.h and vmchanneld(8).  Every line is checked before any is
 * used, so a bad file changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

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
			if (!channel_name_valid(value))
				why = "invalid channel name (1-63 bytes of [A-Za-z0-9._:+-], not . or ..)";
			else if (config_has_channel(cfg, value))
				why = "channel listed twice";
			else if (cfg->nchannels == VMCHANNEL_MAX_CHANNELS)
				why = "too many channels";
			else
				strcpy(cfg->channels[cfg->nchannels++], value);
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
