// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Validation of the channel table read from the configuration space.
 *
 * The device is not trusted: an entry is used only if its id is not 0, its
 * name passes vmchannel_name_check(), its reserved flags are zero, and no
 * other entry has the same id or name.  Both entries of a clash are refused,
 * because nothing says which one the device meant.
 */
#include <linux/string.h>

#include "config.h"

/**
 * vmc_table_check() - decide whether one table entry may become a channel
 * @table: every entry read in one consistent pass
 * @count: entries in @table
 * @index: the entry to check
 * @name_error: set to the name rule's verdict when the result is
 *	VMC_ENTRY_BAD_NAME
 *
 * Return: VMC_ENTRY_OK, or why the entry must be ignored.
 */
enum vmc_entry_verdict vmc_table_check(const struct vmc_table_entry *table,
				       unsigned int count, unsigned int index,
				       enum vmchannel_name_error *name_error)
{
	const struct vmc_table_entry *e = &table[index];
	unsigned int i;

	if (!e->id)
		return VMC_ENTRY_ID_ZERO;
	*name_error = vmchannel_name_check(e->name);
	if (*name_error != VMCHANNEL_NAME_OK)
		return VMC_ENTRY_BAD_NAME;
	if (e->flags)
		return VMC_ENTRY_FLAGS;
	for (i = 0; i < count; i++) {
		if (i == index)
			continue;
		if (table[i].id == e->id)
			return VMC_ENTRY_DUP_ID;
		/* Valid names are NUL-padded: equal fields are equal names. */
		if (!memcmp(table[i].name, e->name, sizeof(e->name)))
			return VMC_ENTRY_DUP_NAME;
	}
	return VMC_ENTRY_OK;
}

const char *vmc_entry_verdict_str(enum vmc_entry_verdict verdict)
{
	switch (verdict) {
	case VMC_ENTRY_OK:
		return "valid";
	case VMC_ENTRY_ID_ZERO:
		return "channel id 0";
	case VMC_ENTRY_BAD_NAME:
		return "invalid name";
	case VMC_ENTRY_DUP_ID:
		return "duplicate channel id";
	case VMC_ENTRY_DUP_NAME:
		return "duplicate name";
	case VMC_ENTRY_FLAGS:
		return "reserved flags set";
	}
	return "unknown";
}

const char *vmc_name_error_str(enum vmchannel_name_error error)
{
	switch (error) {
	case VMCHANNEL_NAME_OK:
		return "valid";
	case VMCHANNEL_NAME_EMPTY:
		return "empty";
	case VMCHANNEL_NAME_UNTERMINATED:
		return "not NUL-terminated";
	case VMCHANNEL_NAME_BAD_CHAR:
		return "byte outside [A-Za-z0-9._:+-]";
	case VMCHANNEL_NAME_DOT:
		return "\".\" or \"..\"";
	case VMCHANNEL_NAME_TRAILING:
		return "bytes after the NUL";
	}
	return "unknown";
}
