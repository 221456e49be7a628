/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmchannelctl upgrade: the running vmchanneld replaces itself by a new
 * binary, same PID, without the guest or the host programs noticing more
 * than a pause.  See vmchanneld(8), UPGRADE.
 *
 * 1. The state (upgrade_state.h) is written to a memfd.
 * 2. The new binary checks it first, in a child: the same command line, the
 *    state's descriptor in $VMCHANNELD_UPGRADE_STATE and a pipe's in
 *    $VMCHANNELD_UPGRADE_CHECK; when it can restore that state, it writes an
 *    acknowledgement into the pipe (magic, state version, length and
 *    checksum of the state it read: upgrade_acknowledge()) and exits 0.
 *    A missing or broken binary, one that does not acknowledge this state
 *    (any program that merely exits 0), crashes or takes longer than
 *    UPGRADE_CHECK_TIMEOUT_MS fails the upgrade here, and the running daemon
 *    carries on as before.
 * 3. The descriptors of the state's fd table lose close-on-exec (only
 *    they), and the process execs the new binary with the state's descriptor
 *    in $VMCHANNELD_UPGRADE_STATE: it restores the state instead of setting
 *    up, answers the control client that asked, and serves on.
 * No chain is in flight meanwhile: the loop runs one callback at a time and
 * every callback pushes (or unpops) each chain it popped before it returns,
 * so the rings' indices in the state are the whole truth.
 */
#ifndef VMC_UPGRADE_H
#define VMC_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upgrade_state.h"

#define UPGRADE_CHECK_TIMEOUT_MS 30000

/* What an upgrade hands over: main()'s @argv, @dev and @daemon (kept current). */
void upgrade_setup(char **argv, struct vmc_device *dev, struct upgrade_daemon *daemon);
/*
 * Replaces the process by the binary at @path (absolute) with the state.
 * Returns only when it failed (the daemon goes on), with the reason in @why.
 */
void upgrade_run(const char *path, char *why, size_t size);

/*
 * In a binary just started: reads the state a previous one passed, if any.
 * Returns 0 when none was passed, 1 with *@data (malloc'd) and *@len, and
 * *@check_only set for the check of step 2; -1 with a logged reason.
 */
int upgrade_take_state(uint8_t **data, size_t *len, bool *check_only);
/*
 * In the check of step 2, once the state (@data, @len) proved restorable:
 * tells the running daemon so.  0, or -1 with a logged reason.
 */
int upgrade_acknowledge(const uint8_t *data, size_t len);

#endif /* VMC_UPGRADE_H */
