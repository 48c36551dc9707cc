/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the selftest programs share: where they load uringrace.ko from, the
 * must-run rule, the module's threads and meminfo. uringrace.ko comes from
 * URINGRACE_KO when set; else the copy an installed collection carries
 * (run_kselftest.sh runs the tests in the collection's directory); else
 * where the uringrace guest has it.
 */
#ifndef URINGRACE_SELFTESTS_MODULE_PATH_H
#define URINGRACE_SELFTESTS_MODULE_PATH_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/uringrace.h>

static inline const char *ur_module_path(void)
{
	const char *p = getenv("URINGRACE_KO");

	if (p)
		return p;
	if (!access("./uringrace.ko", R_OK))
		return "./uringrace.ko";
	return "/lib/modules/uringrace.ko";
}

/*
 * uringrace's own guest runs set URINGRACE_MUST_RUN=1: there the module and
 * the driver are always packed, so a prerequisite that is absent is a
 * failure; in a lab's collection it is a kselftest SKIP with its reason.
 */
static inline int ur_must_run(void)
{
	const char *p = getenv("URINGRACE_MUST_RUN");

	return p && strcmp(p, "0");
}

/* 0: loaded (now or before); 1: no module file to load; -1: insmod failed */
static inline int ur_load_module(void)
{
	const char *p = ur_module_path();
	char cmd[512];

	if (!access(URINGRACE_DEV, F_OK))
		return 0;
	if (access(p, R_OK))
		return 1;
	snprintf(cmd, sizeof(cmd), "insmod %s", p);
	return system(cmd) ? -1 : 0;
}

/* in a test or fixture setup: the module, or a SKIP where it may be absent */
#define UR_NEED_MODULE() do {							\
	int __r = ur_load_module();						\
										\
	if (__r == 1 && !ur_must_run())						\
		SKIP(return, "no %s (install the collection with KO=)",		\
		     ur_module_path());						\
	ASSERT_EQ(0, __r) TH_LOG("cannot load %s", ur_module_path());		\
} while (0)

/* number of kthreads named ur/... (the module's scenario threads) */
static inline int ur_threads(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d))) {
		char path[300], comm[64] = "";
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strncmp(comm, "ur/", 3))
			n++;
		fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

/* a /proc/meminfo figure in kB (VmallocUsed, Slab), -1 when absent */
static inline long meminfo_kb(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			sscanf(line + strlen(key), ": %ld", &v);
	if (f)
		fclose(f);
	return v;
}

#endif
