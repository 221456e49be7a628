/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The soak's checked byte streams, shared by the host driver (vmc-soak.c) and
 * the guest agent (vmc-soak-guest.c).  Byte p of the stream with key k is a
 * function of (k, p) only, so a receiver that knows k can check every byte at
 * any position, and one that does not know where a stream resumes can find
 * its position by search.
 *
 * Keys: guest -> host stream of channel c, guest session s:
 *         soak_key(seed, 1, c, s)
 *       host -> guest stream of channel c, host connection n:
 *         soak_key(seed, 2, c, n); each such connection begins with a
 *         SOAK_HDR_SIZE header (magic, n) that is not part of the stream.
 */
#ifndef SOAK_STREAM_H
#define SOAK_STREAM_H

#include <stddef.h>
#include <stdint.h>

#define SOAK_MAGIC	0x534b4356u	/* "VCKS" little-endian */
#define SOAK_HDR_SIZE	8

static inline uint64_t soak_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static inline uint64_t soak_key(uint64_t seed, unsigned dir, unsigned chan, uint64_t n)
{
	return soak_mix(soak_mix(soak_mix(seed ^ dir) ^ chan) ^ n);
}

static inline uint8_t soak_byte(uint64_t key, uint64_t pos)
{
	return (uint8_t)(soak_mix(key ^ ((pos >> 3) * 0xd6e8feb86659fd93ull)) >> ((pos & 7) * 8));
}

/* Fills buf with bytes [pos, pos + len) of stream key. */
static inline void soak_fill(uint64_t key, uint64_t pos, uint8_t *buf, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint64_t w = soak_mix(key ^ (((pos + i) >> 3) * 0xd6e8feb86659fd93ull));
		unsigned b;

		for (b = (pos + i) & 7; b < 8 && i < len; b++, i++)
			buf[i] = (uint8_t)(w >> (b * 8));
	}
}

/* The first offset in buf that differs from stream key at pos, or len. */
static inline size_t soak_check(uint64_t key, uint64_t pos, const uint8_t *buf, size_t len)
{
	uint8_t tmp[4096];
	size_t done = 0, n, i;

	while (done < len) {
		n = len - done < sizeof(tmp) ? len - done : sizeof(tmp);
		soak_fill(key, pos + done, tmp, n);
		for (i = 0; i < n; i++)
			if (tmp[i] != buf[done + i])
				return done + i;
		done += n;
	}
	return len;
}

#endif
