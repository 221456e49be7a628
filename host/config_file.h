/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmchanneld's configuration file (vmchanneld --config FILE, see
 * vmchanneld(8)): one setting per line, "#" starts a comment.
 *
 *   endpoint-dir DIR        like --endpoint-dir
 *   control-socket PATH     like --control-socket
 *   channel NAME            like --channel (repeatable)
 *
 * SIGHUP reads the file again and applies its channel lines.
 */
#ifndef VMC_CONFIG_FILE_H
#define VMC_CONFIG_FILE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <linux/vmchannel.h>

struct vmc_config {
	char endpoint_dir[PATH_MAX];		/* "" when not set */
	char control_socket[PATH_MAX];		/* "" when not set */
	char channels[VMCHANNEL_MAX_CHANNELS][VMCHANNEL_NAME_SIZE];
	unsigned int nchannels;
};

/* The one channel-name rule (vmchannel_name_check()) for a C string. */
bool channel_name_valid(const char *name);

/*
 * Reads @path into @cfg.  On error returns -1 and leaves a one-line reason,
 * "FILE:LINE: why", in @err.
 */
int config_load(const char *path, struct vmc_config *cfg, char *err, size_t errlen);

/* True if @cfg lists channel @name. */
bool config_has_channel(const struct vmc_config *cfg, const char *name);

#endif /* VMC_CONFIG_FILE_H */
