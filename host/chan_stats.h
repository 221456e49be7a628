/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Per-channel statistics (vmchannelctl stats): counters kept in each channel
 * for the channel's whole life, over every session and host connection.
 * The list below is the one place a counter is named; the control socket's
 * answer and the man pages use these names.
 */
#ifndef VMC_CHAN_STATS_H
#define VMC_CHAN_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vmc_chan;

/* X(name): one uint64_t counter each, in the order they are reported. */
#define VMC_CHAN_COUNTERS(X)							\
	X(bytes_from_guest)	/* DATA payload the guest sent, taken or not */	\
	X(bytes_to_host)	/* written to the host program */		\
	X(bytes_to_guest)	/* read from the host program, sent as DATA */	\
	X(messages_from_guest)	/* txq messages of the current session */	\
	X(messages_to_guest)	/* rxq messages of the channel */		\
	X(credit_stalls)	/* the guest's receive buffer filled: host bytes wait */ \
	X(buffer_full)		/* our buffer for the host program filled: the guest waits */ \
	X(lost_bytes)		/* guest bytes no host program took (F_DATA_LOST) */ \
	X(over_credit_bytes)	/* guest bytes beyond the credit we granted: dropped */ \
	X(stale_messages)	/* messages of an ended session: dropped */	\
	X(guest_errors)		/* malformed channel messages from the guest */	\
	X(host_errors)		/* read or write errors on the host connection */ \
	X(host_connections)	/* host programs accepted or connected to */

struct vmc_chan_stats {
#define VMC_CHAN_COUNTER_FIELD(name) uint64_t name;
	VMC_CHAN_COUNTERS(VMC_CHAN_COUNTER_FIELD)
#undef VMC_CHAN_COUNTER_FIELD
	bool stalled;		/* in a credit stall now: counted once each */
};

/* The guest's credit for host bytes is @credit now: counts the start of a stall. */
void vmc_chan_stats_credit(struct vmc_chan_stats *st, uint32_t credit);

/*
 * Writes channel @ch's statistics as "name=N state=S host_connected=0|1
 * buffered_bytes=N COUNTER=N...", one line without newline, into @buf.
 * Returns the length, or -1 if @size is too small.
 */
int vmc_chan_stats_format(const struct vmc_chan *ch, char *buf, size_t size);

#endif /* VMC_CHAN_STATS_H */
