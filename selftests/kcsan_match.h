/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C side's one reader and matcher of KCSAN reports (the host's twin is
 * scripts/uringrace/races.py; tests/test_races.py holds the two to the same
 * answers on saved console logs).
 *
 * Reader: feed it kernel log lines one at a time (a /dev/kmsg record or a
 * console line; the record header or timestamp is skipped); it says when a
 * report is complete, with its title and accesses: type, size, marked or
 * plain, reordered, and the function and module of the access's top frame.
 *
 * Race signatures, written by the module's scenarios (debugfs "scenarios")
 * and by the expectation files (expect/<major.minor>.txt):
 *
 *   race  := side | side "/" side
 *   side  := funcs [":" type [":" attr ("," attr)*]]
 *   funcs := fn ("|" fn)*
 *   type  := read | write | read-write | any
 *   attr  := plain | marked | reordered | size=N
 *
 * Two sides match a report whose two accesses match them, in either order.
 * One side matches a report every access of which matches it (one access
 * for a race at unknown origin, two otherwise). Functions are compared
 * whole, never as substrings; attributes not given are not checked.
 */
#ifndef URINGRACE_KCSAN_MATCH_H
#define URINGRACE_KCSAN_MATCH_H

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KR_FN_LEN	128

struct kr_access {
	char fn[KR_FN_LEN];	/* top frame, "" until its line came */
	char module[32];	/* "[uringrace]" tag of that frame, without brackets */
	char type[24];		/* read, write, read-write, assert ... */
	unsigned int size;
	int marked;
	int reordered;
};

struct kr_report {
	char title[256];
	struct kr_access acc[2];
	int nr;
	int unknown_origin;
	unsigned long long ts_us;	/* of the title line, when it had one */
};

struct kr_reader {
	int in;			/* inside a report */
	int want_frame;		/* the last access has no top frame yet */
	struct kr_report r;
};

/* the message part of a /dev/kmsg record or a console line; its time in us */
static inline const char *kr_message(const char *line, unsigned long long *ts_us)
{
	const char *semi = strchr(line, ';');
	unsigned int pri;
	unsigned long long seq, us;

	*ts_us = 0;
	if (semi && sscanf(line, "%u,%llu,%llu", &pri, &seq, &us) == 3) {
		*ts_us = us;
		return semi + 1;
	}
	if (line[0] == '[') {
		unsigned long sec, usec;
		const char *close = strchr(line, ']');

		if (close && sscanf(line + 1, " %lu.%lu", &sec, &usec) == 2) {
			*ts_us = sec * 1000000ULL + usec;
			line = close + 1;
			if (*line == ' ')
				line++;
			/* CONFIG_PRINTK_CALLER: "[    T12] " */
			if (line[0] == '[' && (line[1] == 'T' || line[1] == 'C' || line[1] == ' ')) {
				close = strchr(line, ']');
				if (close)
					line = close + (close[1] == ' ' ? 2 : 1);
			}
		}
	}
	return line;
}

static inline int kr_parse_access(const char *m, struct kr_access *a, int *unknown)
{
	static const char *const types[] = {
		"read-write", "read", "write", "assert no accesses", "assert no writes",
	};
	const char *unk = "race at unknown origin, with ";
	const char *p = m, *of;
	unsigned int i;

	memset(a, 0, sizeof(*a));
	if (!strncmp(p, unk, strlen(unk))) {
		*unknown = 1;
		p += strlen(unk);
	}
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		size_t n = strlen(types[i]);

		if (!strncmp(p, types[i], n) && (p[n] == ' ')) {
			snprintf(a->type, sizeof(a->type), "%s", types[i]);
			p += n;
			break;
		}
	}
	if (!a->type[0] || !strstr(p, " bytes by ") || !strstr(p, " to 0x"))
		return 0;
	of = strstr(p, " of ");
	if (!of || sscanf(of, " of %u bytes by ", &a->size) != 1)
		return 0;
	a->marked = !!strstr(p, "(marked)") && strstr(p, "(marked)") < of;
	a->reordered = !!strstr(p, "(reordered)") && strstr(p, "(reordered)") < of;
	return 1;
}

/* " fn+0x1c/0x40 [mod]" -> fn, mod; 0 when the line is no frame */
static inline int kr_parse_frame(const char *m, struct kr_access *a)
{
	const char *p = m, *plus, *br;
	size_t n;

	if (*p != ' ')
		return 0;
	while (*p == ' ')
		p++;
	if (!(isalpha((unsigned char)*p) || *p == '_' || *p == '.'))
		return 0;
	plus = strstr(p, "+0x");
	if (!plus)
		return 0;
	n = plus - p;
	if (n >= sizeof(a->fn))
		n = sizeof(a->fn) - 1;
	memcpy(a->fn, p, n);
	a->fn[n] = 0;
	br = strchr(plus, '[');
	if (br && sscanf(br, "[%31[A-Za-z0-9_-]]", a->module) != 1)
		a->module[0] = 0;
	return 1;
}

/* Feed one line; 1 when it completed a report (then rd->r holds it). */
static inline int kr_feed(struct kr_reader *rd, const char *line)
{
	unsigned long long ts;
	const char *m = kr_message(line, &ts);
	const char *bug = strstr(m, "BUG: KCSAN: ");
	size_t len;

	if (bug) {
		memset(&rd->r, 0, sizeof(rd->r));
		rd->in = 1;
		rd->want_frame = 0;
		rd->r.ts_us = ts;
		snprintf(rd->r.title, sizeof(rd->r.title), "%s", bug + strlen("BUG: KCSAN: "));
		len = strlen(rd->r.title);
		while (len && (rd->r.title[len - 1] == '\n' || rd->r.title[len - 1] == '\r'))
			rd->r.title[--len] = 0;
		return 0;
	}
	if (!rd->in)
		return 0;
	if (!strncmp(m, "=================", 17)) {
		rd->in = 0;
		return 1;
	}
	if (rd->want_frame && kr_parse_frame(m, &rd->r.acc[rd->r.nr - 1])) {
		rd->want_frame = 0;
		return 0;
	}
	if (rd->r.nr < 2 && kr_parse_access(m, &rd->r.acc[rd->r.nr], &rd->r.unknown_origin)) {
		rd->r.nr++;
		rd->want_frame = 1;
	}
	return 0;
}

/* does function fn appear, whole, in the '|' list [s, e) */
static inline int kr_fn_in(const char *fn, const char *s, const char *e)
{
	size_t n = strlen(fn);

	while (s < e) {
		const char *bar = memchr(s, '|', e - s);
		const char *end = bar ? bar : e;

		if ((size_t)(end - s) == n && !strncmp(s, fn, n))
			return 1;
		s = end + 1;
	}
	return 0;
}

struct kr_side {
	const char *fs, *fe;	/* the '|' list of functions */
	char type[24];		/* read, write, read-write or any */
	int plain, marked, reordered;
	unsigned int size;	/* 0: any */
};

/* parse one side, the text [s, e); 0 or -EINVAL */
static inline int kr_side_parse(const char *s, const char *e, struct kr_side *sd)
{
	const char *c1 = memchr(s, ':', e - s), *c2 = NULL, *p;

	memset(sd, 0, sizeof(*sd));
	strcpy(sd->type, "any");
	sd->fs = s;
	sd->fe = c1 ? c1 : e;
	if (sd->fe == s)
		return -EINVAL;
	if (!c1)
		return 0;
	c2 = memchr(c1 + 1, ':', e - c1 - 1);
	snprintf(sd->type, sizeof(sd->type), "%.*s", (int)((c2 ? c2 : e) - c1 - 1), c1 + 1);
	if (strcmp(sd->type, "any") && strcmp(sd->type, "read") && strcmp(sd->type, "write") &&
	    strcmp(sd->type, "read-write"))
		return -EINVAL;
	for (p = c2 ? c2 + 1 : e; p < e;) {
		const char *comma = memchr(p, ',', e - p);
		const char *end = comma ? comma : e;
		int n = end - p;

		if (n == 5 && !strncmp(p, "plain", 5))
			sd->plain = 1;
		else if (n == 6 && !strncmp(p, "marked", 6))
			sd->marked = 1;
		else if (n == 9 && !strncmp(p, "reordered", 9))
			sd->reordered = 1;
		else if (n > 5 && !strncmp(p, "size=", 5) && sscanf(p + 5, "%u", &sd->size) == 1 &&
			 sd->size)
			;
		else
			return -EINVAL;
		p = end + 1;
	}
	return sd->plain && sd->marked ? -EINVAL : 0;
}

static inline int kr_side_match(const struct kr_access *a, const struct kr_side *sd)
{
	return kr_fn_in(a->fn, sd->fs, sd->fe) &&
	       (!strcmp(sd->type, "any") || !strcmp(sd->type, a->type)) &&
	       !(sd->plain && a->marked) && !(sd->marked && !a->marked) &&
	       !(sd->reordered && !a->reordered) && !(sd->size && sd->size != a->size);
}

/* parse a race into its one or two sides; their number, or -EINVAL */
static inline int kr_race_parse(const char *race, struct kr_side sd[2])
{
	const char *e = race + strlen(race), *slash = strchr(race, '/');

	if (!slash)
		return kr_side_parse(race, e, &sd[0]) ? -EINVAL : 1;
	if (strchr(slash + 1, '/') || kr_side_parse(race, slash, &sd[0]) ||
	    kr_side_parse(slash + 1, e, &sd[1]))
		return -EINVAL;
	return 2;
}

/* 1 match, 0 no match, -EINVAL for a signature that does not parse */
static inline int kr_match(const struct kr_report *r, const char *race)
{
	struct kr_side sd[2];
	int n = kr_race_parse(race, sd);

	if (n < 0)
		return n;
	if (r->nr < 1 || !r->acc[0].fn[0] || (r->nr == 2 && !r->acc[1].fn[0]))
		return 0;
	if (n == 1)
		return kr_side_match(&r->acc[0], &sd[0]) &&
		       (r->nr == 1 || kr_side_match(&r->acc[1], &sd[0]));
	if (r->nr != 2)
		return 0;
	return (kr_side_match(&r->acc[0], &sd[0]) && kr_side_match(&r->acc[1], &sd[1])) ||
	       (kr_side_match(&r->acc[1], &sd[0]) && kr_side_match(&r->acc[0], &sd[1]));
}

/* does any access's top frame lie in module mod */
static inline int kr_in_module(const struct kr_report *r, const char *mod)
{
	for (int i = 0; i < r->nr; i++)
		if (!strcmp(r->acc[i].module, mod))
			return 1;
	return 0;
}

/*
 * Split a line of the module's scenario list (debugfs uringrace/scenarios:
 * "id name anomaly race...") into its fields, in place; returns how many.
 */
static inline int kr_scenario_fields(char *line, char *field[], int max)
{
	char *save, *tok;
	int n = 0;

	for (tok = strtok_r(line, " \n", &save); tok && n < max; tok = strtok_r(NULL, " \n", &save))
		field[n++] = tok;
	return n;
}

/*
 * Read /dev/kmsg (fd, O_NONBLOCK) up to the record that holds text: 1 (and
 * its time in us) when found, 0 when the log ended first. Records the
 * kernel overwrote before it are skipped: they are not the caller's.
 */
static inline int kr_kmsg_find(int fd, const char *text, unsigned long long *ts_us)
{
	char rec[8192];

	for (;;) {
		ssize_t len = read(fd, rec, sizeof(rec) - 1);

		if (len < 0 && errno == EPIPE)
			continue;
		if (len <= 0)
			return 0;
		rec[len] = 0;
		if (strstr(rec, text)) {
			kr_message(rec, ts_us);
			return 1;
		}
	}
}

/*
 * Put /dev/kmsg (fd, O_NONBLOCK) at the oldest record the kernel still
 * holds; 1 when that is this boot's first record (sequence number 0), so
 * nothing of the boot has been overwritten yet, else 0.
 */
static inline int kr_kmsg_rewind(int fd)
{
	char rec[8192];
	unsigned long long seq = ~0ULL;
	ssize_t len;

	lseek(fd, 0, SEEK_SET);
	len = read(fd, rec, sizeof(rec) - 1);
	if (len > 0) {
		rec[len] = 0;
		if (sscanf(rec, "%*u,%llu,", &seq) != 1)
			seq = ~0ULL;
	}
	lseek(fd, 0, SEEK_SET);
	return seq == 0;
}

/*
 * Read what /dev/kmsg (fd, O_NONBLOCK) holds from its position on, handing
 * every complete report to fn. Returns how many records the kernel
 * overwrote before we read them (each one a report part that may be lost).
 */
static inline int kr_read_kmsg(int fd, struct kr_reader *rd,
			       void (*fn)(const struct kr_report *r, void *arg), void *arg)
{
	char rec[8192];
	int lost = 0;

	for (;;) {
		ssize_t len = read(fd, rec, sizeof(rec) - 1);

		if (len < 0 && errno == EPIPE) {
			lost++;
			continue;
		}
		if (len <= 0)
			break;
		rec[len] = 0;
		if (kr_feed(rd, rec))
			fn(&rd->r, arg);
	}
	return lost;
}

#endif /* URINGRACE_KCSAN_MATCH_H */
