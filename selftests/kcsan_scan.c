// SPDX-License-Identifier: GPL-2.0
/*
 * Description: not a test of its own: the shell selftests' way to read KCSAN
 * reports. It reads the kernel log (/dev/kmsg, or a saved console log),
 * from the line that holds the marker on, and prints one line per report:
 *
 *   <verdict> <id> <title>
 *
 * verdict and id from the first line of the expectation file whose race
 * signature matches the report on its accesses (kcsan_match.h), else
 * "unlisted -"; "report -" with no file. Exit 0; 1 when a forbidden race
 * was reported; 2 usage or a bad file; 3 when the kernel overwrote records
 * before they were read (without --since: any record of this boot), or the
 * marker never came (a report may be lost).
 *
 * --check-reader shows those loss checks fire: it writes twice the log
 * buffer behind an open reader (debug level: never on the console) and
 * exits 0 only when the reader counted the loss and the boot's first
 * record is reported gone; 4 (skip) when writes to /dev/kmsg are rate
 * limited. It wipes the log: only the last test may run it.
 *
 * With --module M --scenarios FILE (the module's debugfs list: "id name
 * anomaly race..." per line), every report with an access in module M that
 * matches none of those races is "control" (a race in the module's own
 * code, or one a scenario does not own) and makes the exit 1.
 *
 *   kcsan_scan [--expect FILE] [--module M --scenarios FILE] [--since MARKER]
 *              [--log FILE]
 *   kcsan_scan --check-reader
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>

#include "kcsan_match.h"

#define MAX_ENTRIES	64
#define MAX_RACES	8

struct entry {
	char verdict[16];
	char id[64];
	char *races[MAX_RACES];
	int nr;
};

static struct entry entries[MAX_ENTRIES];
static int nr_entries, have_expect, forbidden;
static const char *module;
static char *own[MAX_ENTRIES * MAX_RACES];	/* the scenarios' races */
static int nr_own;

/* the module's scenario list: "id name anomaly race..." per line */
static int load_scenarios(const char *path)
{
	char line[4096], *field[3 + MAX_RACES];
	FILE *f = fopen(path, "r");

	if (!f) {
		fprintf(stderr, "kcsan_scan: cannot read %s\n", path);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		int n = kr_scenario_fields(line, field, 3 + MAX_RACES);

		for (int i = 3; i < n && nr_own < MAX_ENTRIES * MAX_RACES; i++)
			own[nr_own++] = strdup(field[i]);
	}
	fclose(f);
	if (!nr_own) {
		fprintf(stderr, "kcsan_scan: no race signature in %s\n", path);
		return -1;
	}
	return 0;
}

/*
 * "<expected|forbidden> <id> <race>..." or "storm <name> <clean|anomaly>"
 * per line, '#' starts a comment
 */
static int load_expect(const char *path)
{
	char line[4096];
	FILE *f = fopen(path, "r");
	int n = 0;

	if (!f) {
		fprintf(stderr, "kcsan_scan: cannot read %s\n", path);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		struct entry *e = &entries[nr_entries];
		char *hash = strchr(line, '#'), *tok, *save;
		struct kr_side sd[2];

		n++;
		if (hash)
			*hash = 0;
		tok = strtok_r(line, " \t\n", &save);
		if (!tok)
			continue;
		if (!strcmp(tok, "storm")) {
			/* a storm's verdict in this tree: real_uring.sh's, not ours */
			if (!strtok_r(NULL, " \t\n", &save))
				goto bad;
			tok = strtok_r(NULL, " \t\n", &save);
			if (!tok || (strcmp(tok, "clean") && strcmp(tok, "anomaly")) ||
			    strtok_r(NULL, " \t\n", &save))
				goto bad;
			continue;
		}
		if (nr_entries == MAX_ENTRIES || (strcmp(tok, "expected") && strcmp(tok, "forbidden")))
			goto bad;
		snprintf(e->verdict, sizeof(e->verdict), "%s", tok);
		tok = strtok_r(NULL, " \t\n", &save);
		if (!tok)
			goto bad;
		snprintf(e->id, sizeof(e->id), "%s", tok);
		while ((tok = strtok_r(NULL, " \t\n", &save)) && e->nr < MAX_RACES) {
			/* a signature that does not parse is refused here, not ignored */
			if (kr_race_parse(tok, sd) < 0)
				goto bad;
			e->races[e->nr++] = strdup(tok);
		}
		if (!e->nr)
			goto bad;
		nr_entries++;
	}
	fclose(f);
	return 0;
bad:
	fprintf(stderr,
		"kcsan_scan: %s:%d: want '<expected|forbidden> <id> <race>...' or 'storm <name> <clean|anomaly>'\n",
		path, n);
	fclose(f);
	return -1;
}

static void one(const struct kr_report *r, void *arg)
{
	const char *verdict = have_expect ? "unlisted" : "report", *id = "-";

	for (int i = 0; i < nr_entries && !strcmp(id, "-"); i++)
		for (int j = 0; j < entries[i].nr; j++)
			if (kr_match(r, entries[i].races[j]) > 0) {
				verdict = entries[i].verdict;
				id = entries[i].id;
				break;
			}
	if (module && kr_in_module(r, module)) {
		for (int i = 0; i < nr_own; i++)
			if (kr_match(r, own[i]) > 0)
				return;
		verdict = "control";
	}
	forbidden |= !strcmp(verdict, "forbidden") || !strcmp(verdict, "control");
	printf("%s %s %s\n", verdict, id, r->title);
}

static void ignore(const struct kr_report *r, void *arg)
{
}

static int check_reader(void)
{
	char mode[16] = "", rec[400];
	struct kr_reader rd = { 0 };
	int size = klogctl(10, NULL, 0);	/* SYSLOG_ACTION_SIZE_BUFFER */
	int r, w, kept, lost, wiped, len;
	FILE *f = fopen("/proc/sys/kernel/printk_devkmsg", "r");

	if (f) {
		if (!fgets(mode, sizeof(mode), f))
			mode[0] = 0;
		fclose(f);
	}
	if (strncmp(mode, "on", 2)) {
		printf("# printk_devkmsg is not 'on': writes to /dev/kmsg are rate limited\n");
		return 4;
	}
	r = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	w = open("/dev/kmsg", O_WRONLY);
	if (r < 0 || w < 0 || size <= 0) {
		perror("kcsan_scan: /dev/kmsg or the log buffer size");
		return 2;
	}
	lseek(r, 0, SEEK_END);
	len = snprintf(rec, sizeof(rec), "<7>uringrace: log reader check %0*d\n", 300, 0);
	if (write(w, rec, len) != len)
		return 2;
	kept = kr_read_kmsg(r, &rd, ignore, NULL);
	for (int i = 0; i < 2 * size / len + 16; i++)
		if (write(w, rec, len) != len)
			return 2;
	lost = kr_read_kmsg(r, &rd, ignore, NULL);
	wiped = !kr_kmsg_rewind(r);
	printf("# %d KiB log buffer: a reader that kept up lost %d record(s); after %d KiB written behind it, %d loss(es) counted; boot's first record %s\n",
	       size / 1024, kept, 2 * size / 1024, lost, wiped ? "reported gone" : "NOT reported gone");
	close(w);
	close(r);
	return !kept && lost && wiped ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *expect = NULL, *since = NULL, *log = NULL, *scenarios = NULL;
	struct kr_reader rd = { 0 };
	int on, lost = 0;

	if (argc == 2 && !strcmp(argv[1], "--check-reader"))
		return check_reader();
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && !strcmp(argv[i], "--expect"))
			expect = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--since"))
			since = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--log"))
			log = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--module"))
			module = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--scenarios"))
			scenarios = argv[++i];
		else {
			fprintf(stderr, "usage: kcsan_scan [--expect FILE] [--module M --scenarios FILE] [--since MARKER] [--log FILE]\n");
			return 2;
		}
	}
	if (!module != !scenarios) {
		fprintf(stderr, "kcsan_scan: --module and --scenarios go together\n");
		return 2;
	}
	if (scenarios && load_scenarios(scenarios))
		return 2;
	if (expect) {
		if (load_expect(expect))
			return 2;
		have_expect = 1;
	}
	on = !since;
	if (log) {
		char line[4096];
		FILE *f = fopen(log, "r");

		if (!f) {
			fprintf(stderr, "kcsan_scan: cannot read %s\n", log);
			return 2;
		}
		while (fgets(line, sizeof(line), f)) {
			if (!on) {
				on = !!strstr(line, since);
				continue;
			}
			if (kr_feed(&rd, line))
				one(&rd.r, NULL);
		}
		fclose(f);
	} else {
		unsigned long long ts;
		int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);

		if (fd < 0) {
			perror("kcsan_scan: /dev/kmsg");
			return 2;
		}
		/* the whole boot's log, or from the marker record on */
		if (on && !kr_kmsg_rewind(fd)) {
			printf("# the kernel log no longer holds this boot's first record: reports may be lost\n");
			close(fd);
			return 3;
		}
		if (!on)
			on = kr_kmsg_find(fd, since, &ts);
		if (on)
			lost = kr_read_kmsg(fd, &rd, one, NULL);
		close(fd);
	}
	if (!on) {
		printf("# marker '%s' not in the kernel log: its reports cannot be charged\n", since);
		return 3;
	}
	if (lost) {
		printf("# %d kernel log records overwritten before they were read\n", lost);
		return 3;
	}
	return forbidden ? 1 : 0;
}
