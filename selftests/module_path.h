/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where the selftest programs load uringrace.ko from: URINGRACE_KO when set;
 * else the copy an installed collection carries (run_kselftest.sh runs the
 * tests in the collection's directory); else where the uringrace guest has it.
 */
#ifndef URINGRACE_SELFTESTS_MODULE_PATH_H
#define URINGRACE_SELFTESTS_MODULE_PATH_H

#include <stdlib.h>
#include <unistd.h>

static inline const char *ur_module_path(void)
{
	const char *p = getenv("URINGRACE_KO");

	if (p)
		return p;
	if (!access("./uringrace.ko", R_OK))
		return "./uringrace.ko";
	return "/lib/modules/uringrace.ko";
}

#endif
