// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmchanneld's channel state machine against docs/device-spec.md, "The
 * device's channel state machine": every row of the table, and every event
 * the table does not list for a state is refused.
 */
#include <stdio.h>

#include "chan_state.h"
#include "vmc_test.h"

#define S(x) CHAN_##x
#define E(x) CHAN_EV_##x
#define A(x) CHAN_ACT_##x

struct spec_row {
	enum chan_state state;
	enum chan_event event;
	unsigned int actions;
	enum chan_state next;
};

/* The spec's rows, in its order; "any" rows are spelled out per state. */
static const struct spec_row spec[] = {
	{ S(IDLE), E(HOST_CONNECTS), 0, S(HOST_WAITING) },
	{ S(IDLE), E(OPEN), A(NEW_SESSION) | A(SEND_OPEN), S(GUEST_WAITING) },
	{ S(HOST_WAITING), E(OPEN), A(NEW_SESSION) | A(SEND_OPEN) | A(SEND_HOST_CONNECT),
	  S(LINKED) },
	{ S(HOST_WAITING), E(HOST_GONE), A(CLOSE_CONNECTION), S(IDLE) },
	{ S(GUEST_WAITING), E(HOST_CONNECTS), A(SEND_HOST_CONNECT), S(LINKED) },
	{ S(GUEST_WAITING), E(DATA), A(DISCARD_DATA), S(GUEST_WAITING) },
	{ S(GUEST_WAITING), E(CLOSE), A(END_SESSION), S(IDLE) },
	{ S(LINKED), E(DATA), A(BUFFER_DATA), S(LINKED) },
	{ S(LINKED), E(HOST_GONE),
	  A(DISCARD_BUFFER) | A(SEND_HOST_DISCONNECT) | A(CLOSE_CONNECTION), S(GUEST_WAITING) },
	{ S(LINKED), E(CLOSE), A(END_SESSION), S(DRAINING) },
	{ S(DRAINING), E(DRAINED), A(END_STREAM), S(FINISHED) },
	{ S(DRAINING), E(OPEN), A(NEW_SESSION) | A(SEND_OPEN), S(DRAINING_REOPENED) },
	{ S(DRAINING), E(HOST_GONE), A(DISCARD_BUFFER) | A(CLOSE_CONNECTION), S(IDLE) },
	{ S(FINISHED), E(HOST_GONE), A(CLOSE_CONNECTION), S(IDLE) },
	{ S(DRAINING_REOPENED), E(DRAINED), A(END_STREAM) | A(CLOSE_CONNECTION),
	  S(GUEST_WAITING) },
	{ S(DRAINING_REOPENED), E(HOST_GONE), A(DISCARD_BUFFER) | A(CLOSE_CONNECTION),
	  S(GUEST_WAITING) },
	{ S(DRAINING_REOPENED), E(DATA), A(DISCARD_DATA), S(DRAINING_REOPENED) },
	{ S(DRAINING_REOPENED), E(CLOSE), A(END_SESSION), S(DRAINING) },
	{ S(FINISHED), E(OPEN), A(CLOSE_CONNECTION) | A(NEW_SESSION) | A(SEND_OPEN),
	  S(GUEST_WAITING) },
	/* Any with a session: OPEN(s') is CLOSE(s) then OPEN(s'). */
	{ S(GUEST_WAITING), E(OPEN), A(END_SESSION) | A(NEW_SESSION) | A(SEND_OPEN),
	  S(GUEST_WAITING) },
	{ S(LINKED), E(OPEN), A(END_SESSION) | A(NEW_SESSION) | A(SEND_OPEN),
	  S(DRAINING_REOPENED) },
	{ S(DRAINING_REOPENED), E(OPEN), A(END_SESSION) | A(NEW_SESSION) | A(SEND_OPEN),
	  S(DRAINING_REOPENED) },
	/* Any: RESET ends every session as CLOSE. */
	{ S(IDLE), E(RESET), 0, S(IDLE) },
	{ S(HOST_WAITING), E(RESET), 0, S(HOST_WAITING) },
	{ S(GUEST_WAITING), E(RESET), A(END_SESSION), S(IDLE) },
	{ S(LINKED), E(RESET), A(END_SESSION), S(DRAINING) },
	{ S(DRAINING), E(RESET), 0, S(DRAINING) },
	{ S(DRAINING_REOPENED), E(RESET), A(END_SESSION), S(DRAINING) },
	{ S(FINISHED), E(RESET), 0, S(FINISHED) },
	/* Any: removed by the host; DRAINING as CLOSE would, then gone. */
	{ S(IDLE), E(REMOVED), 0, S(GONE) },
	{ S(HOST_WAITING), E(REMOVED), A(CLOSE_CONNECTION), S(GONE) },
	{ S(GUEST_WAITING), E(REMOVED), A(END_SESSION), S(GONE) },
	{ S(LINKED), E(REMOVED), A(END_SESSION), S(DRAINING) },
	{ S(DRAINING), E(REMOVED), 0, S(DRAINING) },
	{ S(DRAINING_REOPENED), E(REMOVED), A(END_SESSION), S(DRAINING) },
	{ S(FINISHED), E(REMOVED), A(CLOSE_CONNECTION), S(GONE) },
};

static const struct spec_row *spec_find(enum chan_state state, enum chan_event event)
{
	size_t i;

	for (i = 0; i < sizeof(spec) / sizeof(spec[0]); i++)
		if (spec[i].state == state && spec[i].event == event)
			return &spec[i];
	return NULL;
}

/* Every (state, event): the spec's row, or refused when it has none. */
static void test_every_row_of_the_spec(void)
{
	unsigned int state, event;

	for (state = 0; state < CHAN_STATE_COUNT; state++) {
		for (event = 0; event < CHAN_EV_COUNT; event++) {
			const struct spec_row *row = spec_find(state, event);
			struct chan_step step = { CHAN_STATE_COUNT, ~0u };
			bool ok = chan_step(state, event, &step);
			bool match = row ? ok && step.next == row->next &&
					   step.actions == row->actions : !ok;

			CU_ASSERT_TRUE(match);
			if (!match)
				fprintf(stderr, "\n%s + %s: got %s %s actions %#x, spec %s actions %#x\n",
					chan_state_name(state), chan_event_name(event),
					ok ? "->" : "refused", ok ? chan_state_name(step.next) : "",
					ok ? step.actions : 0,
					row ? chan_state_name(row->next) : "refused",
					row ? row->actions : 0);
		}
	}
}

/* Sessions are open exactly where the spec's "guest session" column says so. */
static void test_session_column(void)
{
	CU_ASSERT_FALSE(chan_state_has_session(CHAN_IDLE));
	CU_ASSERT_FALSE(chan_state_has_session(CHAN_HOST_WAITING));
	CU_ASSERT_TRUE(chan_state_has_session(CHAN_GUEST_WAITING));
	CU_ASSERT_TRUE(chan_state_has_session(CHAN_LINKED));
	CU_ASSERT_FALSE(chan_state_has_session(CHAN_DRAINING));
	CU_ASSERT_TRUE(chan_state_has_session(CHAN_DRAINING_REOPENED));
	CU_ASSERT_FALSE(chan_state_has_session(CHAN_FINISHED));
	CU_ASSERT_FALSE(chan_state_has_session(CHAN_GONE));
}

/* Out-of-range inputs are refused, not looked up. */
static void test_out_of_range(void)
{
	struct chan_step step;

	CU_ASSERT_FALSE(chan_step(CHAN_STATE_COUNT, CHAN_EV_OPEN, &step));
	CU_ASSERT_FALSE(chan_step(CHAN_IDLE, CHAN_EV_COUNT, &step));
	CU_ASSERT_STRING_EQUAL(chan_state_name(CHAN_STATE_COUNT), "?");
}

void register_chan_state_tests(void)
{
	CU_pSuite s = vmc_add_suite("host channel state machine");

	vmc_add_test(s, "every row of the device-spec table", test_every_row_of_the_spec);
	vmc_add_test(s, "states with a session", test_session_column);
	vmc_add_test(s, "out-of-range states and events", test_out_of_range);
}
