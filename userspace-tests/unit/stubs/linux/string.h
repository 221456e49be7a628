/* SPDX-License-Identifier: GPL-2.0-or-later */
/* <linux/string.h> for driver/config.c's userspace build: the libc one. */
#include <string.h>
