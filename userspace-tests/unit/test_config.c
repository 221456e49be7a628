// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * driver/config.c, built in userspace: which channel-table entries become
 * channels when the device is hostile or confused.
 */
#include <string.h>

#include "stubs/kernel.h"
#include "config.h"
#include "vmc_test.h"

static void entry(struct vmc_table_entry *e, u32 id, const char *name)
{
	memset(e, 0, sizeof(*e));
	e->id = id;
	memcpy(e->name, name, strnlen(name, sizeof(e->name)));
}

static enum vmc_entry_verdict verdict(const struct vmc_table_entry *t, unsigned int n,
				      unsigned int i)
{
	enum vmchannel_name_error err = VMCHANNEL_NAME_OK;

	return vmc_table_check(t, n, i, &err);
}

static void test_valid_table(void)
{
	struct vmc_table_entry t[3];

	entry(&t[0], 1, "hello");
	entry(&t[1], 2, "clipboard");
	entry(&t[2], 700, "org.qemu.guest_agent.0");
	CU_ASSERT_EQUAL(verdict(t, 3, 0), VMC_ENTRY_OK);
	CU_ASSERT_EQUAL(verdict(t, 3, 1), VMC_ENTRY_OK);
	CU_ASSERT_EQUAL(verdict(t, 3, 2), VMC_ENTRY_OK);
}

static void test_id_zero(void)
{
	struct vmc_table_entry t[1];

	entry(&t[0], 0, "hello");
	CU_ASSERT_EQUAL(verdict(t, 1, 0), VMC_ENTRY_ID_ZERO);
}

static void test_duplicates_refuse_both(void)
{
	struct vmc_table_entry t[4];

	entry(&t[0], 1, "a");
	entry(&t[1], 1, "b");
	entry(&t[2], 3, "same");
	entry(&t[3], 4, "same");
	CU_ASSERT_EQUAL(verdict(t, 4, 0), VMC_ENTRY_DUP_ID);
	CU_ASSERT_EQUAL(verdict(t, 4, 1), VMC_ENTRY_DUP_ID);
	CU_ASSERT_EQUAL(verdict(t, 4, 2), VMC_ENTRY_DUP_NAME);
	CU_ASSERT_EQUAL(verdict(t, 4, 3), VMC_ENTRY_DUP_NAME);
}

static void test_bad_names_reported(void)
{
	static const struct {
		const char *name;
		enum vmchannel_name_error why;
	} cases[] = {
		{ "", VMCHANNEL_NAME_EMPTY },
		{ ".", VMCHANNEL_NAME_DOT },
		{ "..", VMCHANNEL_NAME_DOT },
		{ "a/b", VMCHANNEL_NAME_BAD_CHAR },
		{ "bell\a", VMCHANNEL_NAME_BAD_CHAR },
	};
	struct vmc_table_entry t[1];
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum vmchannel_name_error err = VMCHANNEL_NAME_OK;

		entry(&t[0], 5, cases[i].name);
		CU_ASSERT_EQUAL(vmc_table_check(t, 1, 0, &err), VMC_ENTRY_BAD_NAME);
		CU_ASSERT_EQUAL(err, cases[i].why);
		CU_ASSERT_STRING_NOT_EQUAL(vmc_name_error_str(err), "unknown");
	}
}

static void test_unterminated_and_trailing(void)
{
	enum vmchannel_name_error err = VMCHANNEL_NAME_OK;
	struct vmc_table_entry t[1];

	entry(&t[0], 5, "");
	memset(t[0].name, 'z', sizeof(t[0].name));
	CU_ASSERT_EQUAL(vmc_table_check(t, 1, 0, &err), VMC_ENTRY_BAD_NAME);
	CU_ASSERT_EQUAL(err, VMCHANNEL_NAME_UNTERMINATED);

	entry(&t[0], 5, "ok");
	t[0].name[40] = 'x';
	CU_ASSERT_EQUAL(vmc_table_check(t, 1, 0, &err), VMC_ENTRY_BAD_NAME);
	CU_ASSERT_EQUAL(err, VMCHANNEL_NAME_TRAILING);
}

static void test_reserved_flags(void)
{
	struct vmc_table_entry t[1];

	entry(&t[0], 9, "flags");
	t[0].flags = 1;
	CU_ASSERT_EQUAL(verdict(t, 1, 0), VMC_ENTRY_FLAGS);
}

/* A bad entry never hides the good ones around it. */
static void test_bad_entry_isolated(void)
{
	struct vmc_table_entry t[3];

	entry(&t[0], 1, "good1");
	entry(&t[1], 2, "../etc");
	entry(&t[2], 3, "good2");
	CU_ASSERT_EQUAL(verdict(t, 3, 0), VMC_ENTRY_OK);
	CU_ASSERT_EQUAL(verdict(t, 3, 1), VMC_ENTRY_BAD_NAME);
	CU_ASSERT_EQUAL(verdict(t, 3, 2), VMC_ENTRY_OK);
}

void register_config_tests(void)
{
	CU_pSuite s = vmc_add_suite("driver channel table");

	vmc_add_test(s, "valid table accepted", test_valid_table);
	vmc_add_test(s, "id 0 refused", test_id_zero);
	vmc_add_test(s, "duplicate ids and names refuse both", test_duplicates_refuse_both);
	vmc_add_test(s, "bad names refused with the reason", test_bad_names_reported);
	vmc_add_test(s, "unterminated and trailing bytes", test_unterminated_and_trailing);
	vmc_add_test(s, "reserved flags refused", test_reserved_flags);
	vmc_add_test(s, "bad entry does not hide good ones", test_bad_entry_isolated);
}
