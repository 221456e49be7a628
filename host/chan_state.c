// SPDX-License-Identifier: GPL-2.0-or-later
#include <stddef.h>

#include "chan_state.h"

#define A(x) CHAN_ACT_##x

struct chan_row {
	bool valid;
	enum chan_state next;
	unsigned int actions;
};

#define ROW(ev, to, acts) [CHAN_EV_##ev] = { true, CHAN_##to, (acts) }

/*
 * docs/device-spec.md, "The device's channel state machine", one entry per
 * row; an OPEN in a state with a session is composed in chan_step().  A
 * removed channel that still holds bytes drains as after a CLOSE and is
 * gone once its connection is.
 */
static const struct chan_row table[CHAN_STATE_COUNT][CHAN_EV_COUNT] = {
	[CHAN_IDLE] = {
		ROW(HOST_CONNECTS, HOST_WAITING, 0),
		ROW(OPEN, GUEST_WAITING, A(NEW_SESSION) | A(SEND_OPEN)),
		ROW(RESET, IDLE, 0),
		ROW(REMOVED, GONE, 0),
	},
	[CHAN_HOST_WAITING] = {
		ROW(OPEN, LINKED, A(NEW_SESSION) | A(SEND_OPEN) | A(SEND_HOST_CONNECT)),
		ROW(HOST_GONE, IDLE, A(CLOSE_CONNECTION)),
		ROW(RESET, HOST_WAITING, 0),
		ROW(REMOVED, GONE, A(CLOSE_CONNECTION)),
	},
	[CHAN_GUEST_WAITING] = {
		ROW(HOST_CONNECTS, LINKED, A(SEND_HOST_CONNECT)),
		ROW(DATA, GUEST_WAITING, A(DISCARD_DATA)),
		ROW(CLOSE, IDLE, A(END_SESSION)),
		ROW(RESET, IDLE, A(END_SESSION)),
		ROW(REMOVED, GONE, A(END_SESSION)),
	},
	[CHAN_LINKED] = {
		ROW(DATA, LINKED, A(BUFFER_DATA)),
		ROW(HOST_GONE, GUEST_WAITING,
		    A(DISCARD_BUFFER) | A(SEND_HOST_DISCONNECT) | A(CLOSE_CONNECTION)),
		ROW(CLOSE, DRAINING, A(END_SESSION)),
		ROW(RESET, DRAINING, A(END_SESSION)),
		ROW(REMOVED, DRAINING, A(END_SESSION)),
	},
	[CHAN_DRAINING] = {
		ROW(DRAINED, FINISHED, A(END_STREAM)),
		ROW(OPEN, DRAINING_REOPENED, A(NEW_SESSION) | A(SEND_OPEN)),
		ROW(HOST_GONE, IDLE, A(DISCARD_BUFFER) | A(CLOSE_CONNECTION)),
		ROW(RESET, DRAINING, 0),
		ROW(REMOVED, DRAINING, 0),
	},
	[CHAN_DRAINING_REOPENED] = {
		ROW(DRAINED, GUEST_WAITING, A(END_STREAM) | A(CLOSE_CONNECTION)),
		ROW(HOST_GONE, GUEST_WAITING, A(DISCARD_BUFFER) | A(CLOSE_CONNECTION)),
		/* Sent without credit (buf_alloc is 0): as in GUEST_WAITING. */
		ROW(DATA, DRAINING_REOPENED, A(DISCARD_DATA)),
		ROW(CLOSE, DRAINING, A(END_SESSION)),
		ROW(RESET, DRAINING, A(END_SESSION)),
		ROW(REMOVED, DRAINING, A(END_SESSION)),
	},
	[CHAN_FINISHED] = {
		ROW(OPEN, GUEST_WAITING, A(CLOSE_CONNECTION) | A(NEW_SESSION) | A(SEND_OPEN)),
		ROW(HOST_GONE, IDLE, A(CLOSE_CONNECTION)),
		ROW(RESET, FINISHED, 0),
		ROW(REMOVED, GONE, A(CLOSE_CONNECTION)),
	},
};

bool chan_state_has_session(enum chan_state state)
{
	return state == CHAN_GUEST_WAITING || state == CHAN_LINKED ||
	       state == CHAN_DRAINING_REOPENED;
}

bool chan_step(enum chan_state state, enum chan_event event, struct chan_step *step)
{
	const struct chan_row *row;
	struct chan_step closed;

	if (state >= CHAN_STATE_COUNT || event >= CHAN_EV_COUNT)
		return false;
	if (event == CHAN_EV_OPEN && chan_state_has_session(state)) {
		/* A new session ends the current one first. */
		if (!chan_step(state, CHAN_EV_CLOSE, &closed) ||
		    !chan_step(closed.next, CHAN_EV_OPEN, step))
			return false;
		step->actions |= closed.actions;
		return true;
	}
	row = &table[state][event];
	if (!row->valid)
		return false;
	step->next = row->next;
	step->actions = row->actions;
	return true;
}

const char *chan_state_name(enum chan_state state)
{
	static const char *const names[CHAN_STATE_COUNT] = {
		"IDLE", "HOST_WAITING", "GUEST_WAITING", "LINKED", "DRAINING",
		"DRAINING_REOPENED", "FINISHED", "GONE",
	};

	return state < CHAN_STATE_COUNT ? names[state] : "?";
}

const char *chan_event_name(enum chan_event event)
{
	static const char *const names[CHAN_EV_COUNT] = {
		"host connects", "host gone", "OPEN", "CLOSE", "DATA", "drained",
		"RESET", "removed",
	};

	return event < CHAN_EV_COUNT ? names[event] : "?";
}
