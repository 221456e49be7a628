/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Kernel-internal types that driver/config.c uses, for its userspace build. */
#ifndef VMC_STUB_KERNEL_H
#define VMC_STUB_KERNEL_H

#include <linux/types.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;

#endif
