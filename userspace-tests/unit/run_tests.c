// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * CUnit runner for every unit-test suite.  The exit status is the number of
 * failures, so make and CI see a red run.
 */
#include <CUnit/Basic.h>
#include <stdio.h>

#include "vmc_test.h"

CU_pSuite vmc_add_suite(const char *name)
{
	CU_pSuite suite = CU_add_suite(name, NULL, NULL);

	if (!suite) {
		fprintf(stderr, "cannot add suite %s: %s\n", name, CU_get_error_msg());
		exit(EXIT_FAILURE);
	}
	return suite;
}

void vmc_add_test(CU_pSuite suite, const char *name, CU_TestFunc fn)
{
	if (!CU_add_test(suite, name, fn)) {
		fprintf(stderr, "cannot add test %s: %s\n", name, CU_get_error_msg());
		exit(EXIT_FAILURE);
	}
}

int main(void)
{
	unsigned int failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return EXIT_FAILURE;

	register_uapi_tests();
	register_config_tests();
	register_host_tests();
	register_chan_state_tests();
	register_device_tests();
	register_config_file_tests();
	register_sandbox_tests();
	register_service_tests();

	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_tests_failed() + CU_get_number_of_suites_failed();
	printf("unit: %u tests run, %u failed\n",
	       CU_get_number_of_tests_run(), CU_get_number_of_tests_failed());
	CU_cleanup_registry();
	return failures > 255 ? 255 : (int)failures;
}
