// SPDX-License-Identifier: GPL-2.0
/*
 * Description: every uringrace scenario, buggy and fixed, held to the verdict
 * verdicts.txt gives for this arch and accelerator. A buggy variant must be
 * detected (a KCSAN report naming the scenario's functions, or an anomaly
 * count above zero) within its time; a fixed one must stay clean (no such
 * report, zero anomalies) for as long, while doing work. KCSAN reports are
 * counted twice, by the module's console tracepoint probe and by reading
 * /dev/kmsg here, and both counts must agree on the verdict.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <linux/uringrace.h>

#include "kselftest_harness.h"
#include "module_path.h"

#define MAX_FUNCS	8
static const char *const an_names[URINGRACE_AN_MAX] = {
	"lost_update", "torn_sqe", "stale_cqe", "lost_wakeup", "lost_notify",
};

struct scenario_info {
	unsigned int id;
	char funcs[MAX_FUNCS][64];
	int nr_funcs;
};

struct verdict {
	char expect[32];
	char detector[16];
	int seconds;
};

static const char *guest_arch(void)
{
	static struct utsname u;

	uname(&u);
	return strcmp(u.machine, "aarch64") ? u.machine : "arm64";
}

/* the accelerator the host booted us with (uringrace.accel=), else "?" */
static const char *guest_accel(void)
{
	static char accel[16] = "?";
	char buf[1024], *p;
	FILE *f = fopen("/proc/cmdline", "r");

	if (f && fgets(buf, sizeof(buf), f)) {
		p = strstr(buf, "uringrace.accel=");
		if (p)
			sscanf(p + strlen("uringrace.accel="), "%15[a-z0-9]", accel);
	}
	if (f)
		fclose(f);
	return accel;
}

static int match(const char *pat, const char *val)
{
	return !strcmp(pat, "*") || !strcmp(pat, val);
}

static int find_verdict(const char *sc, const char *var, const char *mode,
			struct verdict *v)
{
	const char *path = getenv("URINGRACE_VERDICTS");
	char line[256], s[32], va[16], mo[16], ar[16], ac[16];
	FILE *f = fopen(path ? path : "verdicts.txt", "r");
	int found = 0;

	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || sscanf(line, "%31s %15s %15s %15s %15s %31s %15s %d",
					     s, va, mo, ar, ac, v->expect, v->detector,
					     &v->seconds) != 8)
			continue;
		found = !strcmp(s, sc) && !strcmp(va, var) && !strcmp(mo, mode) &&
			match(ar, guest_arch()) && match(ac, guest_accel());
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

static int find_scenario(const char *name, struct scenario_info *si)
{
	char line[512], nm[32], *tok, *save;
	FILE *f = fopen("/sys/kernel/debug/uringrace/scenarios", "r");
	int found = 0;

	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%u %31s", &si->id, nm) != 2 || strcmp(nm, name))
			continue;
		found = 1;
		si->nr_funcs = 0;
		strtok_r(line, " \n", &save);
		strtok_r(NULL, " \n", &save);
		while ((tok = strtok_r(NULL, " \n", &save)) && si->nr_funcs < MAX_FUNCS)
			snprintf(si->funcs[si->nr_funcs++], 64, "%s", tok);
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

/* KCSAN report titles in /dev/kmsg since fd was opened that name si's functions */
static int kmsg_matches(int fd, const struct scenario_info *si, int *all)
{
	char rec[8192];
	int n = 0;

	for (;;) {
		ssize_t len = read(fd, rec, sizeof(rec) - 1);
		char *msg;

		if (len < 0 && errno == EPIPE)
			continue;	/* overwritten records: keep reading */
		if (len <= 0)
			break;
		rec[len] = 0;
		msg = strchr(rec, ';');
		if (!msg || strncmp(msg + 1, "BUG: KCSAN: ", 12))
			continue;
		(*all)++;
		for (int i = 0; i < si->nr_funcs; i++) {
			if (strstr(msg, si->funcs[i])) {
				n++;
				break;
			}
		}
	}
	return n;
}

static void kmsg_marker(const char *name, const char *var)
{
	int fd = open("/dev/kmsg", O_WRONLY);
	char rec[256];
	int len = snprintf(rec, sizeof(rec), "uringrace: subtest-start %s_%s\n", name, var);

	/* one write() is one record; dprintf() is refused by /dev/kmsg */
	if (fd >= 0) {
		if (write(fd, rec, len) != len)
			perror("kmsg marker");
		close(fd);
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

FIXTURE(scenario) {
	int fd;
	int kmsg;
	int probe;
};

FIXTURE_VARIANT(scenario) {
	const char *name;
	const char *variant;
	const char *mode;
};

#define SCENARIO_VARIANTS(sc) \
	FIXTURE_VARIANT_ADD(scenario, sc##_buggy) { \
		.name = #sc, .variant = "buggy", .mode = "kthread" }; \
	FIXTURE_VARIANT_ADD(scenario, sc##_fixed) { \
		.name = #sc, .variant = "fixed", .mode = "kthread" }

SCENARIO_VARIANTS(iowq_flags);
SCENARIO_VARIANTS(sq_head);
SCENARIO_VARIANTS(cq_tail);
SCENARIO_VARIANTS(sqpoll_wakeup);
SCENARIO_VARIANTS(ringbuf_notify);

FIXTURE_SETUP(scenario)
{
	struct uringrace_version v = { .size = sizeof(v) };

	if (access(URINGRACE_DEV, F_OK)) {
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "insmod %s", ur_module_path());
		ASSERT_EQ(0, system(cmd));
	}
	self->fd = open(URINGRACE_DEV, O_RDWR);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_VERSION, &v));
	self->probe = !!(v.flags & URINGRACE_VF_KCSAN_PROBE);
	self->kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, self->kmsg);
	lseek(self->kmsg, 0, SEEK_END);
	/* the host charges the KCSAN reports that follow to this case */
	kmsg_marker(variant->name, variant->variant);
}

FIXTURE_TEARDOWN(scenario)
{
	close(self->kmsg);
	close(self->fd);
}

TEST_F_TIMEOUT(scenario, verdict, 120)
{
	struct uringrace_config cfg = { .size = sizeof(cfg) };
	struct uringrace_stats st = { .size = sizeof(st) };
	struct scenario_info si;
	struct verdict vd;
	int kcsan_det, kmsg_n = 0, kmsg_all = 0, detected;
	unsigned long long an = 0;
	double t0, first = 0;

	const char *only = getenv("URINGRACE_ONLY");	/* name_variant: run just that */
	char me[64];

	snprintf(me, sizeof(me), "%s_%s", variant->name, variant->variant);
	if (only && strcmp(only, me))
		SKIP(return, "URINGRACE_ONLY=%s", only);
	ASSERT_EQ(0, find_scenario(variant->name, &si)) TH_LOG("no scenario %s", variant->name);
	ASSERT_EQ(0, find_verdict(variant->name, variant->variant, variant->mode, &vd))
		TH_LOG("no verdict for %s %s %s on %s/%s", variant->name, variant->variant,
		       variant->mode, guest_arch(), guest_accel());
	kcsan_det = !strcmp(vd.detector, "kcsan");
	if (kcsan_det && access("/sys/kernel/debug/kcsan", F_OK))
		SKIP(return, "kernel without KCSAN");

	cfg.scenario = si.id;
	cfg.variant = strcmp(variant->variant, "fixed") ? URINGRACE_VAR_BUGGY
							 : URINGRACE_VAR_FIXED;
	cfg.mode = URINGRACE_MODE_KTHREAD;
	cfg.threads = 1;
	cfg.duration_ms = vd.seconds * 1000;
	cfg.entries = 8;
	cfg.watchdog_ms = 0;
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_CONFIGURE, &cfg));
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_START, 0));
	t0 = now_s();
	do {
		usleep(100 * 1000);
		ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_STATS, &st));
		kmsg_n += kmsg_matches(self->kmsg, &si, &kmsg_all);
		an = 0;
		for (int i = 0; i < URINGRACE_AN_MAX; i++)
			an += st.anomalies[i];
		detected = kcsan_det ? (self->probe ? st.kcsan_matched > 0 : kmsg_n > 0) : an > 0;
		if (detected && !first)
			first = now_s() - t0;
		/* a run that outlives its duration has a thread stuck */
		ASSERT_LT(now_s() - t0, vd.seconds + 15.0)
			TH_LOG("still running %.0f s after its %d s", now_s() - t0, vd.seconds);
		/* a buggy run may end at its first detection; a clean one runs out */
	} while (st.running && !(detected && !strcmp(vd.expect, "detected")));
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_STOP, 0));
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_STATS, &st));
	kmsg_n += kmsg_matches(self->kmsg, &si, &kmsg_all);
	/* the module's own clock is finer than our 100 ms polling */
	if (kcsan_det && self->probe && st.first_kcsan_ns)
		first = st.first_kcsan_ns / 1e9;
	else if (!kcsan_det && st.first_anomaly_ns)
		first = st.first_anomaly_ns / 1e9;

	TH_LOG("%s %s on %s/%s: %llu ops in %.1f s; anomalies %s=%llu %s=%llu %s=%llu %s=%llu %s=%llu; KCSAN: probe %llu matched of %llu, kmsg %d matched of %d; first detection %s%.2f s",
	       variant->name, variant->variant, guest_arch(), guest_accel(),
	       (unsigned long long)st.ops, st.elapsed_ns / 1e9,
	       an_names[0], (unsigned long long)st.anomalies[0],
	       an_names[1], (unsigned long long)st.anomalies[1],
	       an_names[2], (unsigned long long)st.anomalies[2],
	       an_names[3], (unsigned long long)st.anomalies[3],
	       an_names[4], (unsigned long long)st.anomalies[4],
	       (unsigned long long)st.kcsan_matched, (unsigned long long)st.kcsan_reports,
	       kmsg_n, kmsg_all, first ? "" : "none ", first);

	/* a run that did no work proves nothing either way */
	ASSERT_LT(0ULL, (unsigned long long)st.ops);
	if (!strcmp(vd.expect, "detected")) {
		if (kcsan_det) {
			EXPECT_LT(0, kmsg_n) TH_LOG("no KCSAN report in /dev/kmsg");
			if (self->probe)
				EXPECT_LT(0ULL, (unsigned long long)st.kcsan_matched) TH_LOG("probe saw no report");
		} else {
			EXPECT_LT(0ULL, an);
		}
	} else if (!strcmp(vd.expect, "clean")) {
		EXPECT_EQ(0, kmsg_n);
		EXPECT_EQ(0ULL, (unsigned long long)st.kcsan_matched);
		EXPECT_EQ(0ULL, an);
	} else {
		SKIP(return, "%s under %s: %llu anomalies in %llu ops (%.1f per million)",
		     vd.expect, guest_accel(), an, (unsigned long long)st.ops,
		     1e6 * an / (double)st.ops);
	}
}

TEST_HARNESS_MAIN
