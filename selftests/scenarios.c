// SPDX-License-Identifier: GPL-2.0
/*
 * Description: every uringrace scenario, buggy and fixed, held to the verdict
 * verdicts.txt gives for this arch and accelerator. A buggy variant must be
 * detected (a KCSAN report whose accesses match one of the scenario's race
 * signatures, or an anomaly count above zero) within its time; a fixed one
 * must stay clean (no such report, zero anomalies) for as long, while doing
 * work. Reports are read from /dev/kmsg and matched by kcsan_match.h; the
 * module's console probe counts every report during the run, and the log
 * must hold at least as many (else a report may have been lost: fail).
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
#include "kcsan_match.h"
#include "module_path.h"

#define MAX_RACES	8
static const char *const an_names[URINGRACE_AN_MAX] = {
#define URINGRACE_ANOMALY(ID, name, ...) [URINGRACE_AN_##ID] = #name,
#include <linux/uringrace_list.h>
};

struct scenario_info {
	unsigned int id;
	int anomaly;		/* the counter the scenario's own detector raises */
	char races[MAX_RACES][256];
	int nr_races;
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

/* the scenario's id and race signatures, as the module lists them */
static int find_scenario(const char *name, struct scenario_info *si)
{
	char line[2048], *field[3 + MAX_RACES];
	FILE *f = fopen("/sys/kernel/debug/uringrace/scenarios", "r");
	int found = 0, n;

	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof(line), f)) {
		n = kr_scenario_fields(line, field, 3 + MAX_RACES);
		if (n < 3 || strcmp(field[1], name))
			continue;
		found = 1;
		si->id = strtoul(field[0], NULL, 10);
		si->anomaly = strcmp(field[2], "none") ? -2 : -1;	/* -1: no counter */
		for (int i = 0; i < URINGRACE_AN_MAX; i++)
			if (!strcmp(field[2], an_names[i]))
				si->anomaly = i;
		si->nr_races = 0;
		for (int i = 3; i < n; i++)
			snprintf(si->races[si->nr_races++], 256, "%s", field[i]);
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

struct tally {
	const struct scenario_info *si;
	int matched;		/* reports of the scenario's race */
	int all;		/* every report */
	int in_module;		/* reports with an access in uringrace.ko */
	int bad_sig;		/* a signature that did not parse */
	unsigned long long first_us;	/* kernel time of the first match */
};

static void count_report(const struct kr_report *r, void *arg)
{
	struct tally *t = arg;

	t->all++;
	t->in_module += kr_in_module(r, "uringrace");
	for (int i = 0; i < t->si->nr_races; i++) {
		int m = kr_match(r, t->si->races[i]);

		t->bad_sig |= m < 0;
		if (m > 0) {
			if (!t->matched++)
				t->first_us = r->ts_us;
			break;
		}
	}
}

/* write the per-case marker; return its kernel time (us) as kmsg reads it back */
static unsigned long long kmsg_marker(int kmsg, const char *name, const char *var)
{
	int fd = open("/dev/kmsg", O_WRONLY);
	char mark[128];
	unsigned long long ts = 0;
	int len = snprintf(mark, sizeof(mark), "uringrace: subtest-start %s_%s\n", name, var);

	/*
	 * one write() is one record; dprintf() is refused by /dev/kmsg; and
	 * the newline ends the record: without it the kernel keeps it open for
	 * a continuation and readers do not see it yet
	 */
	if (fd >= 0) {
		if (write(fd, mark, len) != len)
			perror("kmsg marker");
		close(fd);
	}
	mark[len - 1] = 0;
	return kr_kmsg_find(kmsg, mark, &ts) ? ts : 0;
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
	unsigned long long mark_us;	/* kernel time of this case's marker */
	struct kr_reader rd;
};

FIXTURE_VARIANT(scenario) {
	const char *name;
	const char *variant;
	const char *mode;
};

/* every scenario of the list, buggy and fixed, with a kthread application */
#define URINGRACE_SCENARIO(ID, sc, ...)					\
	FIXTURE_VARIANT_ADD(scenario, sc##_buggy) {			\
		.name = #sc, .variant = "buggy", .mode = "kthread" };	\
	FIXTURE_VARIANT_ADD(scenario, sc##_fixed) {			\
		.name = #sc, .variant = "fixed", .mode = "kthread" };
#include <linux/uringrace_list.h>

FIXTURE_SETUP(scenario)
{
	struct uringrace_version v = { .size = sizeof(v) };

	const char *only = getenv("URINGRACE_ONLY");
	char me[64];

	self->fd = -1;
	self->kmsg = -1;
	snprintf(me, sizeof(me), "%s_%s", variant->name, variant->variant);
	if (only && strcmp(only, me))
		return;	/* the test skips it: no marker, no module */
	UR_NEED_MODULE();
	self->fd = open(URINGRACE_DEV, O_RDWR);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_VERSION, &v));
	self->probe = !!(v.flags & URINGRACE_VF_KCSAN_PROBE);
	self->kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, self->kmsg);
	lseek(self->kmsg, 0, SEEK_END);
	memset(&self->rd, 0, sizeof(self->rd));
	/* the host charges the KCSAN reports that follow to this case */
	self->mark_us = kmsg_marker(self->kmsg, variant->name, variant->variant);
	ASSERT_NE(0ULL, self->mark_us) TH_LOG("own marker not read back from /dev/kmsg");
}

FIXTURE_TEARDOWN(scenario)
{
	if (self->kmsg >= 0)
		close(self->kmsg);
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F_TIMEOUT(scenario, verdict, 120)
{
	struct uringrace_config cfg = { .size = sizeof(cfg) };
	struct uringrace_stats st = { .size = sizeof(st) };
	struct scenario_info si;
	struct verdict vd;
	struct tally t = { .si = &si };
	int kcsan_det, detected, lost = 0;
	unsigned long long an = 0, own = 0;
	double t0, first = 0;

	const char *only = getenv("URINGRACE_ONLY");	/* name_variant: run just that */
	char me[64];

	snprintf(me, sizeof(me), "%s_%s", variant->name, variant->variant);
	if (only && strcmp(only, me))
		SKIP(return, "URINGRACE_ONLY=%s", only);
	ASSERT_EQ(0, find_scenario(variant->name, &si)) TH_LOG("no scenario %s", variant->name);
	ASSERT_LE(-1, si.anomaly) TH_LOG("the module names an anomaly kind this test does not know");
	ASSERT_EQ(0, find_verdict(variant->name, variant->variant, variant->mode, &vd))
		TH_LOG("no verdict for %s %s %s on %s/%s", variant->name, variant->variant,
		       variant->mode, guest_arch(), guest_accel());
	/* a bench may run each case shorter (or longer) than its verdict row */
	if (getenv("URINGRACE_SECONDS"))
		vd.seconds = atoi(getenv("URINGRACE_SECONDS"));
	ASSERT_LT(0, vd.seconds) TH_LOG("URINGRACE_SECONDS must be a positive number");
	kcsan_det = !strcmp(vd.detector, "kcsan");
	ASSERT_TRUE(kcsan_det || si.anomaly >= 0)
		TH_LOG("%s has no anomaly counter: its verdicts need detector kcsan", variant->name);
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
		lost += kr_read_kmsg(self->kmsg, &self->rd, count_report, &t);
		an = 0;
		for (int i = 0; i < URINGRACE_AN_MAX; i++)
			an += st.anomalies[i];
		/* detected: the scenario's own anomaly, never another kind */
		own = si.anomaly >= 0 ? st.anomalies[si.anomaly] : 0;
		detected = kcsan_det ? t.matched > 0 : own > 0;
		if (detected && !first)
			first = now_s() - t0;
		/* a run that outlives its duration has a thread stuck */
		ASSERT_LT(now_s() - t0, vd.seconds + 15.0)
			TH_LOG("still running %.0f s after its %d s", now_s() - t0, vd.seconds);
		/* a buggy run may end at its first detection; a clean one runs out */
	} while (st.running && !(detected && !strcmp(vd.expect, "detected")));
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_STOP, 0));
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_STATS, &st));
	lost += kr_read_kmsg(self->kmsg, &self->rd, count_report, &t);
	an = 0;
	for (int i = 0; i < URINGRACE_AN_MAX; i++)
		an += st.anomalies[i];
	own = si.anomaly >= 0 ? st.anomalies[si.anomaly] : 0;
	/* the kernel's clocks are finer than our 100 ms polling */
	if (kcsan_det && t.matched && t.first_us > self->mark_us)
		first = (t.first_us - self->mark_us) / 1e6;
	else if (!kcsan_det && st.first_anomaly_ns)
		first = st.first_anomaly_ns / 1e9;

	{
		char ans[256] = "", js[256] = "", fs[32] = "null";
		size_t off = 0, joff = 0;

		if (first)
			snprintf(fs, sizeof(fs), "%.3f", first);
		for (int i = 0; i < URINGRACE_AN_MAX; i++) {
			off += snprintf(ans + off, sizeof(ans) - off, "%s%s=%llu", i ? " " : "",
					an_names[i], (unsigned long long)st.anomalies[i]);
			joff += snprintf(js + joff, sizeof(js) - joff, "%s\"%s\":%llu", i ? "," : "",
					 an_names[i], (unsigned long long)st.anomalies[i]);
		}
		TH_LOG("%s %s on %s/%s: %llu ops in %.1f s; anomalies %s; KCSAN: %d matched, %d in the module, %d in all in the log, probe counted %llu; first detection %s%.2f s",
		       variant->name, variant->variant, guest_arch(), guest_accel(),
		       (unsigned long long)st.ops, st.elapsed_ns / 1e9, ans, t.matched,
		       t.in_module, t.all,
		       (unsigned long long)st.kcsan_reports, first ? "" : "none ", first);
		/* the same on the results channel, for the host (results.py) */
		printf("# uringrace-result {\"label\":\"%s\",\"workload\":\"%s\",\"variant\":\"%s\",\"mode\":\"%s\",\"platform\":\"%s/%s\",\"detector\":\"%s\",\"expect\":\"%s\",\"ops\":%llu,\"seconds\":%.3f,\"anomaly_total\":%llu,\"anomalies\":{%s},\"kcsan_matched\":%d,\"kcsan_in_module\":%d,\"kcsan_all\":%d,\"kcsan_probe\":%llu,\"lost_records\":%d,\"first_s\":%s}\n",
		       me, variant->name, variant->variant, variant->mode, guest_arch(),
		       guest_accel(), vd.detector, vd.expect, (unsigned long long)st.ops,
		       st.elapsed_ns / 1e9, an, js, t.matched, t.in_module, t.all,
		       (unsigned long long)st.kcsan_reports, lost, fs);
		fflush(stdout);
	}

	/* a run that did no work proves nothing either way */
	ASSERT_LT(0ULL, (unsigned long long)st.ops);
	ASSERT_EQ(0, t.bad_sig) TH_LOG("a race signature of %s does not parse", variant->name);
	/* a report the log lost could have been the one that decides */
	ASSERT_EQ(0, lost) TH_LOG("%d kernel log records overwritten before they were read", lost);
	if (self->probe) {
		ASSERT_LE((int)st.kcsan_reports, t.all)
			TH_LOG("the module saw %llu reports, the log gave %d: reports lost",
			       (unsigned long long)st.kcsan_reports, t.all);
	}
	if (!strcmp(vd.expect, "detected")) {
		if (kcsan_det) {
			EXPECT_LT(0, t.matched) TH_LOG("no KCSAN report of the seed's race");
		} else {
			EXPECT_LT(0ULL, own) TH_LOG("no %s anomaly", an_names[si.anomaly]);
		}
	} else if (!strcmp(vd.expect, "clean")) {
		/* clean: no report in the module's code at all, the race or another */
		EXPECT_EQ(0, t.matched);
		EXPECT_EQ(0, t.in_module);
		EXPECT_EQ(0ULL, an);
	} else {
		SKIP(return, "%s under %s: %llu anomalies in %llu ops (%.1f per million)",
		     vd.expect, guest_accel(), an, (unsigned long long)st.ops,
		     1e6 * an / (double)st.ops);
	}
}

TEST_HARNESS_MAIN
