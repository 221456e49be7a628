// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: the state a vmchanneld upgrade hands to the next binary
 * (host/upgrade_state.h), checked as a new binary checks it before it is
 * exec'd.  The state crosses a trust boundary only in so far as a binary of
 * another version or a damaged memfd may hand it over; it is parsed as
 * untrusted input all the same: any bytes may be refused, never crash,
 * overrun or leak.  The seed is a state of two channels, one with a session,
 * a host connection and buffered guest bytes.
 */
#include <stddef.h>
#include <stdint.h>

#include "upgrade_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why;

	upgrade_state_load(NULL, NULL, data, size, false, &why);
	return 0;
}
