/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The device's channel lifecycle, as the table "The device's channel state
 * machine" in docs/device-spec.md states it: one state per channel and one
 * transition function.  Pure: it decides, vmc_device.c carries out the
 * actions on sockets and virtqueues, and the unit tests drive it row by row.
 */
#ifndef VMC_CHAN_STATE_H
#define VMC_CHAN_STATE_H

#include <stdbool.h>

enum chan_state {
	CHAN_IDLE,		/* no session, no host connection */
	CHAN_HOST_WAITING,	/* host connected, its bytes wait in its socket */
	CHAN_GUEST_WAITING,	/* session open, no host connection: buf_alloc 0 */
	CHAN_LINKED,		/* session and connection: bytes flow both ways */
	CHAN_DRAINING,		/* session ended: its bytes go out, then end of stream */
	CHAN_DRAINING_REOPENED,	/* as DRAINING, with a new session waiting (buf_alloc 0) */
	CHAN_FINISHED,		/* end of stream sent: closed at the next OPEN */
	CHAN_GONE,		/* removed and nothing left to deliver: freed */
	CHAN_STATE_COUNT
};

enum chan_event {
	CHAN_EV_HOST_CONNECTS,	/* a host program connected (accepted or connected to) */
	CHAN_EV_HOST_GONE,	/* the connection can neither take nor give more */
	CHAN_EV_OPEN,		/* driver OPEN of a session other than the current one */
	CHAN_EV_CLOSE,		/* driver CLOSE of the current session */
	CHAN_EV_DATA,		/* driver DATA of the current session */
	CHAN_EV_DRAINED,	/* the buffer of an ended session is written out */
	CHAN_EV_RESET,		/* driver RESET: every session ends */
	CHAN_EV_REMOVED,	/* the channel left the table */
	CHAN_EV_COUNT
};

/* What a transition asks of the device, carried out in this order. */
enum chan_action {
	CHAN_ACT_END_SESSION		= 1u << 0,	/* forget the session and what it is owed */
	CHAN_ACT_DISCARD_BUFFER		= 1u << 1,	/* undelivered guest bytes dropped */
	CHAN_ACT_END_STREAM		= 1u << 2,	/* end of stream to the host program */
	CHAN_ACT_CLOSE_CONNECTION	= 1u << 3,
	CHAN_ACT_NEW_SESSION		= 1u << 4,	/* remember the session; counters 0 */
	CHAN_ACT_SEND_OPEN		= 1u << 5,	/* acknowledge the OPEN */
	CHAN_ACT_SEND_HOST_CONNECT	= 1u << 6,
	CHAN_ACT_SEND_HOST_DISCONNECT	= 1u << 7,	/* after the host's last byte */
	CHAN_ACT_BUFFER_DATA		= 1u << 8,	/* for the host, credit as it drains */
	CHAN_ACT_DISCARD_DATA		= 1u << 9,	/* consumed, F_DATA_LOST owed */
};

struct chan_step {
	enum chan_state next;
	unsigned int actions;	/* enum chan_action bits */
};

/*
 * The step @event causes in @state; false when the event cannot happen there
 * (the caller ignores it).  An OPEN in a state with a session is that
 * session's CLOSE followed by the OPEN, actions joined.
 */
bool chan_step(enum chan_state state, enum chan_event event, struct chan_step *step);
/* A driver session is open in @state: channel messages are sent and taken. */
bool chan_state_has_session(enum chan_state state);
const char *chan_state_name(enum chan_state state);
const char *chan_event_name(enum chan_event event);

#endif /* VMC_CHAN_STATE_H */
