/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause */
/*
 * vmchannel: named byte channels between a virtual machine and its host.
 *
 * The device ABI shared by the guest driver (driver/), the host backend
 * (host/vmchanneld) and the tests.  docs/device-spec.md is the prose
 * specification of everything defined here; docs/design.md says why.
 *
 * Dual licensed like the older virtio headers so that any backend may use
 * these definitions.
 */
#ifndef _UAPI_LINUX_VMCHANNEL_H
#define _UAPI_LINUX_VMCHANNEL_H

#include <linux/ioctl.h>
#include <linux/types.h>

/*
 * Virtio device ID.  Stock QEMU (>= 10.2) can only instantiate IDs it has a
 * name for (virtio_id_to_name() asserts), and those are all reserved by the
 * virtio specification; so an unassigned ID such as 63 aborts QEMU.  37 is
 * reserved for a "dmabuf" device that was never specified and that no Linux
 * driver claims, so no other driver competes for the device.  It is below
 * 64, as modern virtio-pci requires (PCI device ID 0x1040 + 37 = 0x1065).
 * docs/design.md has the whole argument.
 */
#define VIRTIO_ID_VMCHANNEL		37

/* Virtqueues: one shared pair for every channel of the device. */
#define VMCHANNEL_VQ_RX			0	/* device -> driver */
#define VMCHANNEL_VQ_TX			1	/* driver -> device */
#define VMCHANNEL_NUM_VQS		2

/* Channel names: a NUL-terminated string in a fixed 64-byte field. */
#define VMCHANNEL_NAME_SIZE		64
#define VMCHANNEL_NAME_MAX		(VMCHANNEL_NAME_SIZE - 1)

/* A device describes at most this many channels at once. */
#define VMCHANNEL_MAX_CHANNELS		1024

/* Largest payload of one message, in bytes. */
#define VMCHANNEL_MAX_PAYLOAD		65536

/*
 * Device configuration space (80 bytes; QEMU's vhost-user frontend accepts at
 * most 256).  The channel table is read through a window: the driver writes
 * an index to @select and reads the entry at that index from @id, @flags and
 * @name.  The device increments @generation whenever the table changes and
 * then raises the configuration change interrupt; a driver re-reads the
 * table until it sees the same @generation before and after.
 */
struct vmchannel_config {
	__le32 generation;	/* read-only: table version */
	__le16 num_channels;	/* read-only: entries in the table */
	__le16 select;		/* read-write: entry shown in the window */
	/* The window: the entry at index @select, all zero if out of range. */
	__le32 id;		/* read-only: channel id, never 0 */
	__le32 flags;		/* read-only: reserved, zero */
	__u8 name[VMCHANNEL_NAME_SIZE];	/* read-only: NUL-terminated */
};

/* Message types (struct vmchannel_hdr.type). */
enum vmchannel_msg_type {
	VMCHANNEL_MSG_DATA		= 1,	/* both: @len payload bytes */
	VMCHANNEL_MSG_CREDIT		= 2,	/* both: credit update only */
	VMCHANNEL_MSG_OPEN		= 3,	/* driver: session starts; device: ack */
	VMCHANNEL_MSG_CLOSE		= 4,	/* driver: session ends */
	VMCHANNEL_MSG_HOST_CONNECT	= 5,	/* device: host end connected */
	VMCHANNEL_MSG_HOST_DISCONNECT	= 6,	/* device: host end stopped sending */
	VMCHANNEL_MSG_RESET		= 7,	/* channel 0; driver: new driver; device: ack */
	VMCHANNEL_MSG_SUSPEND		= 8,	/* channel 0; driver: quiesce; device: ack */
	VMCHANNEL_MSG_RESUME		= 9,	/* channel 0; driver: rings are back */
};

/* Device-level messages (RESET, SUSPEND, RESUME) carry this channel id. */
#define VMCHANNEL_DEVICE_CHANNEL	0

/*
 * struct vmchannel_hdr.flags.  DATA_LOST, device -> driver on HOST_DISCONNECT
 * or CREDIT: the device discarded guest bytes of this session because the
 * host program that was to receive them went away.  docs/device-spec.md.
 */
#define VMCHANNEL_F_DATA_LOST		(1U << 0)

/*
 * Every message on either virtqueue starts with this header; a DATA message
 * carries @len payload bytes right after it, in the same buffer.
 *
 * @session numbers the driver's sessions of a channel (never 0); every
 * message of a channel carries the session it belongs to, and a side drops
 * what carries another one.  Device-level messages carry 0.
 *
 * Credit (per channel, per direction): the receiver advertises @buf_alloc,
 * the bytes it can hold for the channel, and @fwd_cnt, the payload bytes it
 * has consumed in the session (modulo 2^32).  A sender that has sent tx_cnt
 * payload bytes may send at most buf_alloc - (tx_cnt - fwd_cnt) more.
 *
 * @eof_cnt (driver -> device): the ends of stream (HOST_DISCONNECT) that
 * guest readers have consumed in the session.  The device keeps at most
 * VMCHANNEL_EOF_WINDOW of them unconsumed.
 */
struct vmchannel_hdr {
	__le32 channel_id;
	__le16 type;		/* enum vmchannel_msg_type */
	__le16 flags;		/* VMCHANNEL_F_* */
	__le32 len;		/* payload bytes following the header */
	__le32 session;		/* session of the channel, 0 for the device */
	__le32 buf_alloc;	/* sender's receive buffer for this channel */
	__le32 fwd_cnt;		/* bytes the sender has consumed */
	__le32 eof_cnt;		/* driver: ends of stream consumed */
	__le32 reserved;	/* zero */
};

/* Ends of stream the device may have sent and the driver not yet consumed. */
#define VMCHANNEL_EOF_WINDOW		4

/*
 * ioctls on /dev/vmchannel/<name> (besides FIONREAD).  0xBA is free in
 * Documentation/userspace-api/ioctl/ioctl-number.rst.
 */
#define VMCHANNEL_IOC_MAGIC		0xBA

/* The channel's host side, as VMCHANNEL_IOC_GET_STATE reports it. */
struct vmchannel_state {
	__u32 flags;		/* VMCHANNEL_STATE_* */
	__u32 connections;	/* host connections seen since the first open */
};

#define VMCHANNEL_STATE_HOST_CONNECTED	(1U << 0)	/* a host program is connected */
#define VMCHANNEL_STATE_REMOVED		(1U << 1)	/* the channel is gone */

/* Reads the state. */
#define VMCHANNEL_IOC_GET_STATE	_IOR(VMCHANNEL_IOC_MAGIC, 0x01, struct vmchannel_state)
/* Sleeps until a host program is connected (O_NONBLOCK: EAGAIN instead). */
#define VMCHANNEL_IOC_WAIT_HOST	_IO(VMCHANNEL_IOC_MAGIC, 0x02)

/* Why vmchannel_name_check() rejected a name. */
enum vmchannel_name_error {
	VMCHANNEL_NAME_OK = 0,
	VMCHANNEL_NAME_EMPTY,		/* first byte is NUL */
	VMCHANNEL_NAME_UNTERMINATED,	/* no NUL in the field */
	VMCHANNEL_NAME_BAD_CHAR,	/* byte outside [A-Za-z0-9._:+-] */
	VMCHANNEL_NAME_DOT,		/* "." or ".." */
	VMCHANNEL_NAME_TRAILING,	/* non-zero bytes after the NUL */
};

/*
 * Validate a name field as read from the configuration space.  The one rule
 * shared by the driver (which turns names into /dev/vmchannel/<name>) and
 * vmchanneld (which turns them into <dir>/<name>.sock): a name is 1 to 63
 * bytes from [A-Za-z0-9._:+-], NUL-terminated and NUL-padded, and is neither
 * "." nor "..".  '/' can therefore never reach a path; '@' is left free for
 * the driver's "<name>@<device>" form of names that clash across devices.
 */
static __inline__ enum vmchannel_name_error
vmchannel_name_check(const __u8 field[VMCHANNEL_NAME_SIZE])
{
	unsigned int len, i;

	for (len = 0; len < VMCHANNEL_NAME_SIZE && field[len]; len++) {
		__u8 c = field[len];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == ':' || c == '+' || c == '-'))
			return VMCHANNEL_NAME_BAD_CHAR;
	}
	if (len == 0)
		return VMCHANNEL_NAME_EMPTY;
	if (len == VMCHANNEL_NAME_SIZE)
		return VMCHANNEL_NAME_UNTERMINATED;
	for (i = len; i < VMCHANNEL_NAME_SIZE; i++)
		if (field[i])
			return VMCHANNEL_NAME_TRAILING;
	if (field[0] == '.' && (len == 1 || (len == 2 && field[1] == '.')))
		return VMCHANNEL_NAME_DOT;
	return VMCHANNEL_NAME_OK;
}

#endif /* _UAPI_LINUX_VMCHANNEL_H */
