// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The ABI in include/uapi/linux/vmchannel.h against docs/device-spec.md:
 * sizes and offsets of the wire structures, and the channel-name rule.
 */
#include <stddef.h>
#include <string.h>
#include <linux/vmchannel.h>

#include "vmc_test.h"

/* Layout: every offset below is quoted in docs/device-spec.md. */
_Static_assert(sizeof(struct vmchannel_config) == 80, "config size");
_Static_assert(offsetof(struct vmchannel_config, generation) == 0, "generation");
_Static_assert(offsetof(struct vmchannel_config, num_channels) == 4, "num_channels");
_Static_assert(offsetof(struct vmchannel_config, select) == 6, "select");
_Static_assert(offsetof(struct vmchannel_config, id) == 8, "id");
_Static_assert(offsetof(struct vmchannel_config, flags) == 12, "flags");
_Static_assert(offsetof(struct vmchannel_config, name) == 16, "name");
_Static_assert(sizeof(struct vmchannel_hdr) == 32, "header size");
_Static_assert(offsetof(struct vmchannel_hdr, channel_id) == 0, "channel_id");
_Static_assert(offsetof(struct vmchannel_hdr, type) == 4, "type");
_Static_assert(offsetof(struct vmchannel_hdr, flags) == 6, "hdr flags");
_Static_assert(offsetof(struct vmchannel_hdr, len) == 8, "len");
_Static_assert(offsetof(struct vmchannel_hdr, session) == 12, "session");
_Static_assert(offsetof(struct vmchannel_hdr, buf_alloc) == 16, "buf_alloc");
_Static_assert(offsetof(struct vmchannel_hdr, fwd_cnt) == 20, "fwd_cnt");
_Static_assert(offsetof(struct vmchannel_hdr, eof_cnt) == 24, "eof_cnt");
_Static_assert(offsetof(struct vmchannel_hdr, reserved) == 28, "reserved");

static void test_config_fits_vhost_user_limit(void)
{
	/* QEMU's vhost-user frontend refuses config spaces over 256 bytes. */
	CU_ASSERT(sizeof(struct vmchannel_config) <= 256);
	/* The window must be able to show every channel of a full table. */
	CU_ASSERT(VMCHANNEL_MAX_CHANNELS >= 256);
	CU_ASSERT(VMCHANNEL_MAX_CHANNELS - 1 <= 0xffff);
}

static void test_device_id_fits_modern_pci(void)
{
	/* Modern virtio-pci device IDs are 0x1040 + id, at most 0x107f. */
	CU_ASSERT(VIRTIO_ID_VMCHANNEL > 0);
	CU_ASSERT(VIRTIO_ID_VMCHANNEL < 64);
	/* QEMU 11.1 names IDs 1-45 only; anything else aborts it. */
	CU_ASSERT(VIRTIO_ID_VMCHANNEL <= 45);
}

static void test_payload_fits_length_fields(void)
{
	CU_ASSERT(VMCHANNEL_MAX_PAYLOAD > 0);
	CU_ASSERT((unsigned long long)VMCHANNEL_MAX_PAYLOAD <= 0xffffffffULL);
	CU_ASSERT_EQUAL(VMCHANNEL_NUM_VQS, 2);
	CU_ASSERT_NOT_EQUAL(VMCHANNEL_VQ_RX, VMCHANNEL_VQ_TX);
}

/* Fills a name field the way a device would: text, then NUL padding. */
static enum vmchannel_name_error check(const char *text)
{
	__u8 field[VMCHANNEL_NAME_SIZE];

	memset(field, 0, sizeof(field));
	memcpy(field, text, strnlen(text, sizeof(field)));
	return vmchannel_name_check(field);
}

static void test_name_accepts_valid(void)
{
	char longest[VMCHANNEL_NAME_MAX + 1];

	CU_ASSERT_EQUAL(check("hello"), VMCHANNEL_NAME_OK);
	CU_ASSERT_EQUAL(check("org.qemu.guest_agent.0"), VMCHANNEL_NAME_OK);
	CU_ASSERT_EQUAL(check("a:b+c-d"), VMCHANNEL_NAME_OK);
	CU_ASSERT_EQUAL(check("..."), VMCHANNEL_NAME_OK);
	memset(longest, 'x', VMCHANNEL_NAME_MAX);
	longest[VMCHANNEL_NAME_MAX] = '\0';
	CU_ASSERT_EQUAL(check(longest), VMCHANNEL_NAME_OK);
}

static void test_name_rejects_paths_and_dots(void)
{
	CU_ASSERT_EQUAL(check(""), VMCHANNEL_NAME_EMPTY);
	CU_ASSERT_EQUAL(check("."), VMCHANNEL_NAME_DOT);
	CU_ASSERT_EQUAL(check(".."), VMCHANNEL_NAME_DOT);
	CU_ASSERT_EQUAL(check("a/b"), VMCHANNEL_NAME_BAD_CHAR);
	CU_ASSERT_EQUAL(check("../x"), VMCHANNEL_NAME_BAD_CHAR);
	CU_ASSERT_EQUAL(check("name@virtio0"), VMCHANNEL_NAME_BAD_CHAR);
	CU_ASSERT_EQUAL(check("sp ace"), VMCHANNEL_NAME_BAD_CHAR);
	CU_ASSERT_EQUAL(check("tab\t"), VMCHANNEL_NAME_BAD_CHAR);
	CU_ASSERT_EQUAL(check("\x7f"), VMCHANNEL_NAME_BAD_CHAR);
	CU_ASSERT_EQUAL(check("\xc3\xa9"), VMCHANNEL_NAME_BAD_CHAR);
}

static void test_name_rejects_bad_termination(void)
{
	__u8 field[VMCHANNEL_NAME_SIZE];

	memset(field, 'a', sizeof(field));
	CU_ASSERT_EQUAL(vmchannel_name_check(field), VMCHANNEL_NAME_UNTERMINATED);

	memset(field, 0, sizeof(field));
	memcpy(field, "ok", 2);
	field[VMCHANNEL_NAME_SIZE - 1] = 'x';
	CU_ASSERT_EQUAL(vmchannel_name_check(field), VMCHANNEL_NAME_TRAILING);

	memset(field, 0, sizeof(field));
	field[1] = 'x';
	CU_ASSERT_EQUAL(vmchannel_name_check(field), VMCHANNEL_NAME_EMPTY);
}

void register_uapi_tests(void)
{
	CU_pSuite s = vmc_add_suite("uapi");

	vmc_add_test(s, "config fits the vhost-user limit", test_config_fits_vhost_user_limit);
	vmc_add_test(s, "device id fits modern virtio-pci", test_device_id_fits_modern_pci);
	vmc_add_test(s, "payload and queue constants", test_payload_fits_length_fields);
	vmc_add_test(s, "name: valid names accepted", test_name_accepts_valid);
	vmc_add_test(s, "name: paths, dots, bad bytes rejected", test_name_rejects_paths_and_dots);
	vmc_add_test(s, "name: bad termination rejected", test_name_rejects_bad_termination);
}
