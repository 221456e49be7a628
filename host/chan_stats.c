// SPDX-License-Identifier: GPL-2.0-or-later
#include <inttypes.h>
#include <stdio.h>

#include "chan_stats.h"
#include "vmc_device.h"

void vmc_chan_stats_credit(struct vmc_chan_stats *st, uint32_t credit)
{
	if (!credit && !st->stalled)
		st->credit_stalls++;
	st->stalled = !credit;
}

int vmc_chan_stats_format(const struct vmc_chan *ch, char *buf, size_t size)
{
	const struct vmc_chan_stats *st = &ch->stats;
	size_t used;
	int n;

	n = snprintf(buf, size, "name=%s state=%s host_connected=%d buffered_bytes=%" PRIu32,
		     ch->name, chan_state_name(ch->state), ch->client_fd >= 0, ch->buf_len);
	if (n < 0 || (size_t)n >= size)
		return -1;
	used = (size_t)n;
#define VMC_CHAN_COUNTER_PRINT(counter)						\
	n = snprintf(buf + used, size - used, " " #counter "=%" PRIu64, st->counter); \
	if (n < 0 || (size_t)n >= size - used)					\
		return -1;							\
	used += (size_t)n;
	VMC_CHAN_COUNTERS(VMC_CHAN_COUNTER_PRINT)
#undef VMC_CHAN_COUNTER_PRINT
	return (int)used;
}
