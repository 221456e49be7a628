// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * How a blocked read() waits for bytes: it busy-polls rxq for a while, with
 * rxq's interrupt off, then sleeps.
 *
 * Under emulation most of a short message's trip is its interrupt: the
 * device's eventfd write, the emulator's main loop woken to raise the line
 * (TCG has no irqfd), the vCPU woken from halt, the ISR read and the EOI.
 * A reader that looks at rxq itself sees the message as the device writes
 * it, and the device signals nothing meanwhile.  This is what
 * net.core.busy_read does for sockets and KVM's halt polling for vCPUs: CPU
 * time spent for latency, only where it pays.
 *
 * The window is the channel's own and follows how long its reads waited, as
 * vmchanneld's polling does (QEMU's adaptive polling): a wait the window
 * covered leaves it; a longer wait up to poll_us doubles it, so that polling
 * would have covered it; a wait past poll_us halves it.  A reader whose
 * bytes come seldom spends about twice poll_us polling in all and then
 * sleeps at once; one in a conversation polls through each reply.  Polling
 * stops for a signal, and lets another task that wants the CPU run first.
 */
#include <linux/minmax.h>
#include <linux/moduleparam.h>
#include <linux/preempt.h>
#include <linux/sched.h>
#include <linux/sched/clock.h>
#include <linux/sched/signal.h>
#include <linux/wait.h>

#include "vmchannel.h"

static unsigned int poll_us = 200;
module_param(poll_us, uint, 0644);
MODULE_PARM_DESC(poll_us,
		 "Longest busy poll of a blocked read() in microseconds, 0 to never poll (default 200)");

/* The most poll_us may ask for: a bound on what one read() spins. */
#define VMC_POLL_MAX_NS		(10 * NSEC_PER_MSEC)
/* The window a channel that did not poll starts with. */
#define VMC_POLL_FIRST_NS	(4 * NSEC_PER_USEC)

/* Data, an end-of-stream mark or removal: a read would not block. */
static bool vmc_read_ready(struct vmc_channel *ch)
{
	bool ready;

	spin_lock_irq(&ch->lock);
	ready = ch->state == VMC_CH_REMOVED || ch->rx_cnt != ch->fwd_cnt || ch->n_eof;
	spin_unlock_irq(&ch->lock);
	return ready;
}

/* The next window after a wait of @waited ns (above). */
static u32 vmc_poll_window(u32 window, u64 waited, u32 max)
{
	if (waited <= window)
		return window;
	if (waited > max)
		return window / 2;
	if (!window)
		return min_t(u32, VMC_POLL_FIRST_NS, max);
	return min(window * 2, max);
}

/*
 * Looks at rxq until the channel is readable or @window ns have passed.
 * Not preemptible while it looks, as napi_busy_loop() is not: a reader
 * switched out with rxq's interrupt off, or in the middle of taking
 * messages, would hold up every channel of the device until it ran again.
 * Another task that wants the CPU gets it (with the interrupt back on), and
 * the poll goes on after it within the window: the rx work it may have
 * queued itself, for one, must not end the poll.
 */
static bool vmc_read_poll(struct vmc_channel *ch, u64 start, u32 window)
{
	struct vmc_dev *vmc = ch->vmc;
	bool ready = false;

	do {
		preempt_disable();
		vmc_rx_busy_begin(vmc);
		do {
			vmc_rx_busy_poll(vmc);
			ready = vmc_read_ready(ch);
			if (ready)
				break;
			cpu_relax();
		} while (!need_resched() && !signal_pending(current) &&
			 local_clock() - start < window);
		/* Takes what came after the last look: the device raised no interrupt. */
		vmc_rx_busy_end(vmc);
		preempt_enable();
		ready = ready || vmc_read_ready(ch);
		if (ready || signal_pending(current))
			break;
		cond_resched();
	} while (local_clock() - start < window);
	return ready;
}

/**
 * vmc_read_sleep() - wait until a read would not block
 * @ch: the channel; the caller holds read_lock
 *
 * Return: 0, or -ERESTARTSYS for a signal.
 */
int vmc_read_sleep(struct vmc_channel *ch)
{
	u32 max = min_t(u64, (u64)READ_ONCE(poll_us) * NSEC_PER_USEC, VMC_POLL_MAX_NS);
	u32 window = min(ch->read_poll_ns, max);
	u64 start = local_clock();

	lockdep_assert_held(&ch->read_lock);
	if (!window || !vmc_read_poll(ch, start, window)) {
		if (wait_event_interruptible(ch->rd_wait, vmc_read_ready(ch)))
			return -ERESTARTSYS;
	}
	ch->read_poll_ns = vmc_poll_window(window, local_clock() - start, max);
	return 0;
}
