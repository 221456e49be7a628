/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A hostile device, for tests only: "vmchanneld-test --fault CASE" makes the
 * device offer what a buggy or malicious host could, so that the end-to-end
 * tests can check that the guest driver refuses each case cleanly.  Only
 * the test build (-DVMC_FAULT_INJECTION, host/vmchanneld-test) has it; in
 * vmchanneld the hooks below are empty and dev->faults stays 0.
 */
#ifndef VMC_FAULT_INJECTION_H
#define VMC_FAULT_INJECTION_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/vmchannel.h>

enum vmc_fault {
	/* Each adds one bad entry after the real channels of the table. */
	VMC_FAULT_NAME_EMPTY,
	VMC_FAULT_NAME_UNTERMINATED,
	VMC_FAULT_NAME_DOT,
	VMC_FAULT_NAME_DOTDOT,
	VMC_FAULT_NAME_SLASH,
	VMC_FAULT_NAME_NONPRINT,
	VMC_FAULT_NAME_TRAILING,
	VMC_FAULT_ID_ZERO,
	VMC_FAULT_FLAGS,
	VMC_FAULT_DUP_ID,		/* the id of the last real channel */
	VMC_FAULT_DUP_NAME,		/* the name of the last real channel */
	VMC_FAULT_ENTRY_LAST = VMC_FAULT_DUP_NAME,
	/* The table as a whole. */
	VMC_FAULT_COUNT_HUGE,		/* num_channels 65535 */
	VMC_FAULT_GENERATION_FLAP,	/* a new generation on every read */
	/* Each sends one bad rxq message when the guest opens a channel. */
	VMC_FAULT_RX_USED_LEN,		/* used length beyond the posted buffer */
	VMC_FAULT_RX_SHORT,		/* used length shorter than a header */
	VMC_FAULT_RX_PAYLOAD_LEN,	/* header length disagrees with used length */
	VMC_FAULT_RX_TYPE,		/* unknown message type */
	VMC_FAULT_RX_CHANNEL,		/* a channel id the table does not have */
	VMC_FAULT_RX_EMPTY_DATA,	/* DATA without payload */
	/* The data path. */
	VMC_FAULT_RX_OVER_CREDIT,	/* host bytes sent ignoring the guest's credit */
	VMC_FAULT_COUNT_OF_CASES
};

/* A set of enum vmc_fault cases, one bit each. */
typedef uint32_t vmc_faults;

#ifdef VMC_FAULT_INJECTION
/* The test build, vmchanneld-test: the cases exist. */

/* The case called @name, or -1. */
int vmc_fault_parse(const char *name);
/* Every case name, separated by ", ", for --help. */
const char *vmc_fault_names(void);

/* Table entries @faults adds after the real ones. */
unsigned int vmc_fault_extra_entries(vmc_faults faults);
/*
 * Fills the configuration window for extra entry @k; @last_id and @last_name
 * are those of the last real channel (for the duplicate cases).
 */
void vmc_fault_entry(vmc_faults faults, unsigned int k, uint32_t last_id,
		     const char *last_name, struct vmchannel_config *cfg);

/* Bad rxq messages to send when a guest opens a channel. */
unsigned int vmc_fault_rx_messages(vmc_faults faults);
/*
 * Builds bad message @k for channel @channel_id in @hdr; returns the used
 * length to report, which may exceed @posted, the buffer's real size.
 */
uint32_t vmc_fault_rx_message(vmc_faults faults, unsigned int k, uint32_t channel_id,
			      uint32_t posted, struct vmchannel_hdr *hdr);

#else
/* The production build: no case can be chosen, the hooks are empty. */

static inline unsigned int vmc_fault_extra_entries(vmc_faults faults)
{
	(void)faults;
	return 0;
}

static inline void vmc_fault_entry(vmc_faults faults, unsigned int k, uint32_t last_id,
				   const char *last_name, struct vmchannel_config *cfg)
{
	(void)faults, (void)k, (void)last_id, (void)last_name, (void)cfg;
}

static inline unsigned int vmc_fault_rx_messages(vmc_faults faults)
{
	(void)faults;
	return 0;
}

static inline uint32_t vmc_fault_rx_message(vmc_faults faults, unsigned int k,
					    uint32_t channel_id, uint32_t posted,
					    struct vmchannel_hdr *hdr)
{
	(void)faults, (void)k, (void)channel_id, (void)posted, (void)hdr;
	return 0;
}
#endif /* VMC_FAULT_INJECTION */

#endif /* VMC_FAULT_INJECTION_H */
