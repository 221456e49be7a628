/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shared declarations of the CUnit unit-test runner: every test_*.c file
 * provides one register_*_tests() function that adds its suites.
 */
#ifndef VMC_TEST_H
#define VMC_TEST_H

#include <CUnit/CUnit.h>
#include <stdlib.h>

/* A fatal assertion that static analysers understand, too. */
#define VMC_ASSERT_FATAL(cond)			\
	do {					\
		int ok_ = !!(cond);		\
		CU_ASSERT_FATAL(ok_);		\
		if (!ok_)			\
			abort();		\
	} while (0)

/* Adds a suite or exits: a runner without its suites must not pass. */
CU_pSuite vmc_add_suite(const char *name);
void vmc_add_test(CU_pSuite suite, const char *name, CU_TestFunc fn);

void register_uapi_tests(void);
void register_config_tests(void);
void register_host_tests(void);
void register_chan_state_tests(void);
void register_device_tests(void);
void register_config_file_tests(void);
void register_sandbox_tests(void);
void register_service_tests(void);

#endif /* VMC_TEST_H */
