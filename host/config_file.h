/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmchanneld's configuration file (vmchanneld --config FILE, see
 * vmchanneld(8)): one setting per line, "#" starts a comment.
 *
 *   endpoint-dir DIR        like --endpoint-dir
 *   control-socket PATH     like --control-socket
 *   channel NAME [connect:PATH|stdio] [mode=OCTAL] [group=GROUP]
 *                           like --channel NAME[=connect:PATH] (repeatable);
 *                           mode and group of its socket (default 0600 and
 *                           --socket-group's)
 *
 * SIGHUP reads the file again and applies its channel lines.
 */
#ifndef VMC_CONFIG_FILE_H
#define VMC_CONFIG_FILE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <linux/vmchannel.h>

/* Room for a channel spec "NAME=connect:PATH": longest name and socket path. */
#define CHANNEL_SPEC_MAX 192

struct vmc_config {
	char endpoint_dir[PATH_MAX];		/* "" when not set */
	char control_socket[PATH_MAX];		/* "" when not set */
	char channels[VMCHANNEL_MAX_CHANNELS][CHANNEL_SPEC_MAX];	/* specs */
	struct {
		mode_t mode;		/* of the channel's socket; 0: the default */
		gid_t gid;		/* (gid_t)-1: the default */
	} access[VMCHANNEL_MAX_CHANNELS];	/* of channels[i] */
	unsigned int nchannels;
};

/* The one channel-name rule (vmchannel_name_check()) for a C string. */
bool channel_name_valid(const char *name);

/*
 * Splits a channel spec, "NAME" (listen at <dir>/NAME.sock),
 * "NAME=connect:PATH" (connect to the host service at PATH) or "NAME=stdio"
 * (stdin and stdout), into @name (VMCHANNEL_NAME_SIZE bytes) and
 * @connect_path (108 bytes: "" to listen, "-" for stdio).
 * Returns 0, or -1 with a reason in @why.
 */
int channel_spec_parse(const char *spec, char *name, char *connect_path, const char **why);

/*
 * Reads @path into @cfg.  On error returns -1 and leaves a one-line reason,
 * "FILE:LINE: why", in @err.
 */
int config_load(const char *path, struct vmc_config *cfg, char *err, size_t errlen);

/*
 * From now on config_load() resolves only group names it resolved before
 * (others must be numbers): called before entering the sandbox.
 */
void config_groups_freeze(void);
/*
 * The group names resolved so far, by index (NULL past the last), and one
 * more: an upgrade hands them to the new binary, inside the sandbox.
 */
#define CONFIG_KNOWN_GROUPS 64
#define CONFIG_GROUP_NAME_SIZE 33
const char *config_group_known(unsigned int i, gid_t *gid);
bool config_group_remember(const char *name, gid_t gid);

/*
 * The mode and group the file gives channel @name's socket; false if it gives
 * none.
 */
bool config_channel_access(const struct vmc_config *cfg, const char *name, mode_t *mode,
			   gid_t *gid);

/* True if @cfg lists the channel spec @spec, endpoint included. */
bool config_has_channel(const struct vmc_config *cfg, const char *name);

#endif /* VMC_CONFIG_FILE_H */
