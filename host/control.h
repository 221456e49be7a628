/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control socket: adds and removes channels while the guest runs.
 * One command per line, one answer line each:
 *   add NAME      -> "ok" | "error: ..."
 *   remove NAME   -> "ok" | "error: ..."
 *   list          -> "ok NAME NAME ..."
 *   stats NAME    -> "ok name=NAME state=S KEY=N ..." (chan_stats.h)
 */
#ifndef VMC_CONTROL_H
#define VMC_CONTROL_H

#include "vmc_device.h"

int control_init(const char *path, struct vmc_device *dev);
void control_fini(void);

#endif /* VMC_CONTROL_H */
