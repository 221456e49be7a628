// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The hostile device behind "vmchanneld-test --fault CASE" (tests only).
 *
 * Every case is a pure function of the case set and the index of the bad
 * entry or message, so the device model only asks "how many" and "which".
 */
#include <endian.h>
#include <string.h>

#include "fault_injection.h"

static const char *const fault_names[VMC_FAULT_COUNT_OF_CASES] = {
	[VMC_FAULT_NAME_EMPTY] = "name-empty",
	[VMC_FAULT_NAME_UNTERMINATED] = "name-unterminated",
	[VMC_FAULT_NAME_DOT] = "name-dot",
	[VMC_FAULT_NAME_DOTDOT] = "name-dotdot",
	[VMC_FAULT_NAME_SLASH] = "name-slash",
	[VMC_FAULT_NAME_NONPRINT] = "name-nonprint",
	[VMC_FAULT_NAME_TRAILING] = "name-trailing",
	[VMC_FAULT_ID_ZERO] = "id-zero",
	[VMC_FAULT_FLAGS] = "flags",
	[VMC_FAULT_DUP_ID] = "dup-id",
	[VMC_FAULT_DUP_NAME] = "dup-name",
	[VMC_FAULT_COUNT_HUGE] = "count-huge",
	[VMC_FAULT_GENERATION_FLAP] = "generation-flap",
	[VMC_FAULT_RX_USED_LEN] = "rx-used-len",
	[VMC_FAULT_RX_SHORT] = "rx-short",
	[VMC_FAULT_RX_PAYLOAD_LEN] = "rx-payload-len",
	[VMC_FAULT_RX_TYPE] = "rx-type",
	[VMC_FAULT_RX_CHANNEL] = "rx-channel",
	[VMC_FAULT_RX_EMPTY_DATA] = "rx-empty-data",
	[VMC_FAULT_RX_OVER_CREDIT] = "rx-over-credit",
};

/* Ids of hostile entries start here, far from the ones vmchanneld assigns. */
#define FAULT_ID_BASE 0x7f000000u

int vmc_fault_parse(const char *name)
{
	int i;

	for (i = 0; i < VMC_FAULT_COUNT_OF_CASES; i++)
		if (!strcmp(name, fault_names[i]))
			return i;
	return -1;
}

const char *vmc_fault_names(void)
{
	static char list[512];
	int i;

	if (!list[0])
		for (i = 0; i < VMC_FAULT_COUNT_OF_CASES; i++) {
			if (i)
				strcat(list, ", ");
			strcat(list, fault_names[i]);
		}
	return list;
}

/* The @k-th case present in @faults among cases [first, last]. */
static int nth_case(vmc_faults faults, unsigned int k, int first, int last)
{
	int i;

	for (i = first; i <= last; i++)
		if ((faults & (1u << i)) && k-- == 0)
			return i;
	return -1;
}

static unsigned int count_cases(vmc_faults faults, int first, int last)
{
	unsigned int n = 0;
	int i;

	for (i = first; i <= last; i++)
		n += !!(faults & (1u << i));
	return n;
}

unsigned int vmc_fault_extra_entries(vmc_faults faults)
{
	return count_cases(faults, 0, VMC_FAULT_ENTRY_LAST);
}

void vmc_fault_entry(vmc_faults faults, unsigned int k, uint32_t last_id,
		     const char *last_name, struct vmchannel_config *cfg)
{
	int which = nth_case(faults, k, 0, VMC_FAULT_ENTRY_LAST);
	uint32_t id = FAULT_ID_BASE + (uint32_t)which;
	char *name = (char *)cfg->name;

	memset(cfg->name, 0, sizeof(cfg->name));
	cfg->flags = 0;
	switch (which) {
	case VMC_FAULT_NAME_EMPTY:
		break;
	case VMC_FAULT_NAME_UNTERMINATED:
		memset(cfg->name, 'x', sizeof(cfg->name));
		break;
	case VMC_FAULT_NAME_DOT:
		strcpy(name, ".");
		break;
	case VMC_FAULT_NAME_DOTDOT:
		strcpy(name, "..");
		break;
	case VMC_FAULT_NAME_SLASH:
		strcpy(name, "../../etc/passwd");
		break;
	case VMC_FAULT_NAME_NONPRINT:
		strcpy(name, "bell\a");
		break;
	case VMC_FAULT_NAME_TRAILING:
		strcpy(name, "hidden");
		strcpy(name + 8, "tail");
		break;
	case VMC_FAULT_ID_ZERO:
		strcpy(name, "id-zero");
		id = 0;
		break;
	case VMC_FAULT_FLAGS:
		strcpy(name, "flags");
		cfg->flags = htole32(1);
		break;
	case VMC_FAULT_DUP_ID:
		strcpy(name, "dup-id");
		id = last_id;
		break;
	case VMC_FAULT_DUP_NAME:
		memcpy(cfg->name, last_name, strnlen(last_name, sizeof(cfg->name) - 1));
		break;
	}
	cfg->id = htole32(id);
}

unsigned int vmc_fault_rx_messages(vmc_faults faults)
{
	return count_cases(faults, VMC_FAULT_RX_USED_LEN, VMC_FAULT_RX_EMPTY_DATA);
}

uint32_t vmc_fault_rx_message(vmc_faults faults, unsigned int k, uint32_t channel_id,
			      uint32_t posted, struct vmchannel_hdr *hdr)
{
	int which = nth_case(faults, k, VMC_FAULT_RX_USED_LEN, VMC_FAULT_RX_EMPTY_DATA);
	uint32_t used = sizeof(*hdr);

	memset(hdr, 0, sizeof(*hdr));
	hdr->channel_id = htole32(channel_id);
	hdr->type = htole16(VMCHANNEL_MSG_CREDIT);
	switch (which) {
	case VMC_FAULT_RX_USED_LEN:
		hdr->type = htole16(VMCHANNEL_MSG_DATA);
		used = posted + 4096;
		hdr->len = htole32(used - sizeof(*hdr));
		break;
	case VMC_FAULT_RX_SHORT:
		used = sizeof(*hdr) - 1;
		break;
	case VMC_FAULT_RX_PAYLOAD_LEN:
		hdr->type = htole16(VMCHANNEL_MSG_DATA);
		hdr->len = htole32(1000);
		break;
	case VMC_FAULT_RX_TYPE:
		hdr->type = htole16(0x7777);
		break;
	case VMC_FAULT_RX_CHANNEL:
		hdr->channel_id = htole32(FAULT_ID_BASE);
		break;
	case VMC_FAULT_RX_EMPTY_DATA:
		hdr->type = htole16(VMCHANNEL_MSG_DATA);
		break;
	}
	return used;
}
