/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Validation of the channel table read from the configuration space.  Pure
 * functions with no virtio calls, so the unit tests build them in userspace.
 */
#ifndef VMCHANNEL_CONFIG_H
#define VMCHANNEL_CONFIG_H

#include <linux/types.h>
#include <linux/vmchannel.h>

/**
 * struct vmc_table_entry - one entry as read through the configuration window
 * @id: channel id
 * @flags: reserved
 * @name: name field, unvalidated
 */
struct vmc_table_entry {
	u32 id;
	u32 flags;
	u8 name[VMCHANNEL_NAME_SIZE];
};

/* Why an entry is not used. */
enum vmc_entry_verdict {
	VMC_ENTRY_OK = 0,
	VMC_ENTRY_ID_ZERO,
	VMC_ENTRY_BAD_NAME,
	VMC_ENTRY_DUP_ID,
	VMC_ENTRY_DUP_NAME,
	VMC_ENTRY_FLAGS,
};

enum vmc_entry_verdict vmc_table_check(const struct vmc_table_entry *table,
				       unsigned int count, unsigned int index,
				       enum vmchannel_name_error *name_error);
const char *vmc_entry_verdict_str(enum vmc_entry_verdict verdict);
const char *vmc_name_error_str(enum vmchannel_name_error error);

#endif /* VMCHANNEL_CONFIG_H */
