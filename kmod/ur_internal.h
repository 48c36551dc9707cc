/* SPDX-License-Identifier: GPL-2.0 */
/*
 * uringrace: what the control code (main.c) and the scenarios share.
 */
#ifndef _URINGRACE_INTERNAL_H
#define _URINGRACE_INTERNAL_H

#include <linux/atomic.h>
#include <linux/kthread.h>
#include <linux/ktime.h>
#include <linux/mm_types.h>
#include <linux/wait.h>

#include <uapi/linux/uringrace.h>

struct ur_run;

/* two roles of up to URINGRACE_MAX_THREADS each, plus helpers */
#define UR_MAX_RUN_THREADS	(2 * URINGRACE_MAX_THREADS + 2)

/*
 * A scenario's kernel side. Its name, id and modes come from the list
 * (include/uapi/linux/uringrace_list.h); its file, sc_<name>.c, defines
 * ur_sc_<ID> with what only it knows.
 */
struct ur_scenario {
	/*
	 * The seed's race as KCSAN reports it, one signature per accepted
	 * pair of accesses, NULL-terminated; the grammar and the one matcher
	 * are in selftests/kcsan_match.h. Shown in debugfs for the tests.
	 */
	const char *const *races;
	/* allocate state and spawn threads with ur_spawn(); 0 or -errno */
	int (*start)(struct ur_run *run);
	/* free what start allocated; threads are already stopped */
	void (*cleanup)(struct ur_run *run);
};

struct ur_run {
	struct uringrace_config cfg;
	const struct ur_scenario *sc;
	struct task_struct *threads[UR_MAX_RUN_THREADS];
	unsigned int nr_threads;
	u64 start_ns;
	u64 end_ns;			/* start + duration */
	unsigned long end_jiffies;	/* the same, for ur_should_stop() */
	int stopping;			/* READ_ONCE/WRITE_ONCE */
	atomic64_t ops;
	atomic64_t anomalies[URINGRACE_AN_MAX];
	atomic64_t first_anomaly_ns;
	atomic64_t kcsan_reports;
	atomic_t workers_live;		/* threads still inside their work loop */
	wait_queue_head_t wq;		/* scenario use: sleeps and wake-ups */
	struct uringrace_ring_hdr *ring;/* MODE_USER: the mmap'ed ring */
	struct mm_struct *mm;		/* MODE_USER_MM: the mm to work in */
	void __user *uring;		/* MODE_USER_MM: the ring's user address */
	bool own_ring;			/* MODE_KTHREAD: ring allocated by us */
	void *priv;			/* scenario state */
};

/* The ring a scenario works on: the mmap'ed one, or one of its own. */
int ur_ring_setup(struct ur_run *run);
int ur_start_pair(struct ur_run *run, int (*kernel_fn)(void *), const char *kernel_role,
		  int (*app_fn)(void *), const char *app_role, void *arg);

static inline struct uringrace_entry *ur_entries(struct uringrace_ring_hdr *r)
{
	return (struct uringrace_entry *)(r + 1);
}

int ur_spawn(struct ur_run *run, int (*fn)(void *), void *arg, const char *role);
bool ur_should_stop(struct ur_run *run);
void ur_park(struct ur_run *run);
void ur_anomaly(struct ur_run *run, enum uringrace_anomaly kind);

static inline bool ur_fixed(const struct ur_run *run)
{
	return run->cfg.variant == URINGRACE_VAR_FIXED;
}

/* kmod/sc_<name>.c defines ur_sc_<ID> (ur_sc_CQ_TAIL for cq_tail) */
extern const struct ur_scenario
#define URINGRACE_SCENARIO(ID, ...) ur_sc_##ID,
#include <uapi/linux/uringrace_list.h>
	ur_sc_NONE;	/* never defined: ends the list */

#endif /* _URINGRACE_INTERNAL_H */
