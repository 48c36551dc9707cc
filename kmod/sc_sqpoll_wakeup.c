// SPDX-License-Identifier: GPL-2.0
/*
 * Scenario sqpoll_wakeup (seed 000): the SQPOLL thread's NEED_WAKEUP flag.
 *
 * Mirrors io_sq_thread()'s way to sleep in io_uring/sqpoll.c and the
 * application's side in liburing (sq_ring_needs_enter()). A store-buffering
 * pattern: the SQ thread stores NEED_WAKEUP then loads the SQ tail; the
 * application stores the tail then loads the flags. Each needs a full
 * barrier between its store and its load, or both can read the old value:
 * the thread sleeps with work queued and nobody wakes it.
 *
 *   buggy: the flag set with a WRITE_ONCE() store and no barrier before the
 *          tail load (kernels before the 2022 fix; a locked RMW would be a
 *          full barrier on x86 and hide the bug), and no fence between the
 *          application's tail store and flags load;
 *   fixed: atomic_or() + smp_mb__after_atomic() (sqpoll.c today) and
 *          smp_mb() on the application's side (io_uring_smp_mb()).
 *
 * Detector: the application's watchdog. After deciding not to wake the
 * thread it waits watchdog_ms for the head to reach its tail; if by then the
 * SQ thread is asleep (it says so before schedule()) with the entry still
 * queued, that is a lost wake-up: count it, then wake the thread as
 * IORING_ENTER_SQ_WAKEUP would. KCSAN cannot see this: every access here is
 * marked; store buffering of marked accesses is outside its model.
 */
#include <linux/delay.h>
#include <linux/random.h>
#include <linux/sched.h>
#include <linux/slab.h>

#include "ur_internal.h"

struct ur_sqpoll {
	struct ur_run *run;
	int asleep;		/* SQ thread between prepare_to_wait and wake */
};

static void ur_sq_set_wakeup(struct uringrace_ring_hdr *r, bool fixed)
{
	if (fixed) {
		atomic_or(URINGRACE_RING_NEED_WAKEUP, (atomic_t *)&r->flags);
		/* the store of the flag must not pass the load of the tail */
		smp_mb__after_atomic();
	} else {
		WRITE_ONCE(r->flags, READ_ONCE(r->flags) | URINGRACE_RING_NEED_WAKEUP);
	}
}

static void ur_sq_clear_wakeup(struct uringrace_ring_hdr *r, bool fixed)
{
	if (fixed)
		atomic_andnot(URINGRACE_RING_NEED_WAKEUP, (atomic_t *)&r->flags);
	else
		WRITE_ONCE(r->flags, READ_ONCE(r->flags) & ~URINGRACE_RING_NEED_WAKEUP);
}

/* io_sq_thread(): run the queue; when empty, set NEED_WAKEUP and sleep */
static int ur_io_sq_thread_wait(void *arg)
{
	struct ur_sqpoll *sq = arg;
	struct ur_run *run = sq->run;
	struct uringrace_ring_hdr *r = run->ring;
	const bool fixed = ur_fixed(run);
	u32 head = 0;
	DEFINE_WAIT(wait);

	while (!ur_should_stop(run)) {
		/* pairs with the application's release of tail */
		u32 tail = smp_load_acquire(&r->tail);

		if (tail != head) {
			atomic64_add(tail - head, &run->ops);
			head = tail;
			/* pairs with the application's acquire of head */
			smp_store_release(&r->head, head);
			continue;
		}
		prepare_to_wait(&run->wq, &wait, TASK_INTERRUPTIBLE);
		ur_sq_set_wakeup(r, fixed);
		/* io_sqring_entries() */
		if (smp_load_acquire(&r->tail) == head && !ur_should_stop(run)) {
			WRITE_ONCE(sq->asleep, 1);
			schedule();
			WRITE_ONCE(sq->asleep, 0);
		}
		finish_wait(&run->wq, &wait);
		ur_sq_clear_wakeup(r, fixed);
	}
	return 0;
}

/* the application: io_uring_submit() on an SQPOLL ring, plus a watchdog */
static int ur_sq_app_submit_wakeup(void *arg)
{
	struct ur_sqpoll *sq = arg;
	struct ur_run *run = sq->run;
	struct uringrace_ring_hdr *r = run->ring;
	const bool fixed = ur_fixed(run);
	const u64 limit = (u64)run->cfg.watchdog_ms * NSEC_PER_MSEC;
	u32 tail = 0;

	while (!ur_should_stop(run)) {
		bool woke = false;
		u64 since;

		/* land the submission near the moment the SQ thread sleeps */
		ndelay(get_random_u32_below(2000));
		/* pairs with the SQ thread's acquire of tail */
		smp_store_release(&r->tail, ++tail);
		/* io_uring_smp_mb(): tail store before flags load (SB) */
		if (fixed)
			smp_mb();	/* pairs with the other side's full barrier */
		if (READ_ONCE(r->flags) & URINGRACE_RING_NEED_WAKEUP) {
			wake_up(&run->wq);
			woke = true;
		}
		since = ktime_get_ns();
		/* pairs with the SQ thread's release of head */
		while (smp_load_acquire(&r->head) != tail && !ur_should_stop(run)) {
			if (ktime_get_ns() - since < limit) {
				cond_resched();
				continue;
			}
			/* acquire pairs with the SQ thread's release of head */
			if (!woke && READ_ONCE(sq->asleep) &&
			    smp_load_acquire(&r->head) != tail) /* release of head */
				ur_anomaly(run, URINGRACE_AN_LOST_WAKEUP);
			wake_up(&run->wq);	/* IORING_ENTER_SQ_WAKEUP */
			woke = true;
			since = ktime_get_ns();
		}
	}
	/* the SQ thread may be asleep past the deadline: let it see the end */
	wake_up(&run->wq);
	return 0;
}

static int ur_sqpoll_start(struct ur_run *run)
{
	struct ur_sqpoll *sq = kzalloc(sizeof(*sq), GFP_KERNEL);

	if (!sq)
		return -ENOMEM;
	sq->run = run;
	run->priv = sq;
	return ur_start_pair(run, ur_io_sq_thread_wait, "sqthread",
			     ur_sq_app_submit_wakeup, "app", sq);
}

static void ur_sqpoll_cleanup(struct ur_run *run)
{
	kfree(run->priv);
}

/* every access is marked: KCSAN is not this scenario's detector */
static const char *const ur_sqpoll_races[] = {
	"ur_io_sq_thread_wait|ur_sq_app_submit_wakeup:any",
	NULL,
};

const struct ur_scenario ur_sc_SQPOLL_WAKEUP = {
	.races = ur_sqpoll_races,
	.start = ur_sqpoll_start,
	.cleanup = ur_sqpoll_cleanup,
};
