// SPDX-License-Identifier: GPL-2.0
/*
 * Scenario cq_tail (seed 002): CQEs written, then the CQ tail published.
 *
 * Mirrors io_uring's completion side: io_fill_cqe_*() writes the CQE with
 * plain stores and __io_commit_cqring() / io_commit_cqring() publishes the
 * tail with smp_store_release(), which the application pairs with
 * smp_load_acquire() of the tail (liburing's io_uring_peek_cqe()). The buggy
 * variant publishes with WRITE_ONCE() and reads with READ_ONCE(): the CQE
 * stores may become visible after the tail, and the reader sees a stale CQE.
 *
 * Completions are also posted the way io-wq workers and the SQPOLL thread
 * post them: from a kthread that adopted the application's mm
 * (kthread_use_mm()) and writes the ring through its user address
 * (MODE_USER_MM). MODE_USER posts through the kernel mapping of the same ring.
 * ops counts posted CQEs. Each CQE carries its sequence number at both
 * ends; a reader that does not find the one it expects counts a stale CQE.
 */
#include <linux/kthread.h>
#include <linux/sched/mm.h>
#include <linux/uaccess.h>

#include "ur_internal.h"

/* io_fill_cqe + io_commit_cqring, as one loop (one function scope) */
static int ur_io_cqring_fill_event(void *arg)
{
	struct ur_run *run = arg;
	struct uringrace_ring_hdr *r = run->ring;
	struct uringrace_entry *cqes = ur_entries(r);
	const u32 mask = run->cfg.entries - 1;
	const bool fixed = ur_fixed(run);
	u32 tail = 0;

	while (!ur_should_stop(run)) {
		struct uringrace_entry *cqe;
		u64 seq;

		/* pairs with the reader's release of head: slot free to reuse */
		if (tail - smp_load_acquire(&r->head) >= run->cfg.entries) {
			cond_resched();
			continue;
		}
		cqe = &cqes[tail & mask];
		seq = (u64)tail + 1;
		cqe->seq = seq;
		cqe->data[0] = seq;
		cqe->seq_end = seq;
		tail++;
		if (fixed)
			/* pairs with the reader's acquire of tail */
			smp_store_release(&r->tail, tail);
		else
			WRITE_ONCE(r->tail, tail);
		atomic64_inc(&run->ops);
	}
	return 0;
}

/*
 * The same, from a kthread working in the application's mm on its user
 * mapping, as io-wq workers do: the stores are user stores (put_user()).
 */
static int ur_io_wq_post_cqe(void *arg)
{
	struct ur_run *run = arg;
	struct uringrace_ring_hdr __user *r = run->uring;
	struct uringrace_entry __user *cqes = (struct uringrace_entry __user *)(r + 1);
	const u32 mask = run->cfg.entries - 1;
	const bool fixed = ur_fixed(run);
	u32 tail = 0, head;

	/* only an mm that still has users: its owner may be exiting (as
	 * io_uring's SQPOLL thread does: mmget_not_zero(), then use it)
	 */
	if (!mmget_not_zero(run->mm))
		return 0;
	kthread_use_mm(run->mm);
	while (!ur_should_stop(run)) {
		struct uringrace_entry __user *cqe;
		u64 seq;

		if (get_user(head, &r->head))
			break;
		smp_rmb();	/* acquire for the head load above */
		if (tail - head >= run->cfg.entries) {
			cond_resched();
			continue;
		}
		cqe = &cqes[tail & mask];
		seq = (u64)tail + 1;
		if (put_user(seq, &cqe->seq) || put_user(seq, &cqe->data[0]) ||
		    put_user(seq, &cqe->seq_end))
			break;
		tail++;
		if (fixed)
			smp_wmb();	/* release: CQE before the tail */
		if (put_user(tail, &r->tail))
			break;
		atomic64_inc(&run->ops);
	}
	kthread_unuse_mm(run->mm);
	mmput(run->mm);
	return 0;
}

/* the application: io_uring_peek_cqe() + io_uring_cqe_seen() */
static int ur_cq_app_reap(void *arg)
{
	struct ur_run *run = arg;
	struct uringrace_ring_hdr *r = run->ring;
	struct uringrace_entry *cqes = ur_entries(r);
	const u32 mask = run->cfg.entries - 1;
	const bool fixed = ur_fixed(run);
	u32 head = 0;

	while (!ur_should_stop(run)) {
		/* fixed: pairs with the poster's release of tail */
		u32 tail = fixed ? smp_load_acquire(&r->tail) : READ_ONCE(r->tail);

		if (tail == head) {
			cond_resched();
			continue;
		}
		while (head != tail) {
			const struct uringrace_entry *cqe = &cqes[head & mask];
			u64 want = (u64)head + 1;

			if (cqe->seq != want || cqe->data[0] != want || cqe->seq_end != want)
				ur_anomaly(run, URINGRACE_AN_STALE_CQE);
			head++;
		}
		/* pairs with the poster's acquire of head */
		smp_store_release(&r->head, head);
	}
	return 0;
}

static int ur_cq_tail_start(struct ur_run *run)
{
	int ret = ur_ring_setup(run);

	if (ret)
		return ret;
	switch (run->cfg.mode) {
	case URINGRACE_MODE_KTHREAD:
		ret = ur_spawn(run, ur_io_cqring_fill_event, run, "post");
		return ret ? ret : ur_spawn(run, ur_cq_app_reap, run, "app");
	case URINGRACE_MODE_USER:
		return ur_spawn(run, ur_io_cqring_fill_event, run, "post");
	default:
		if (!run->uring)
			return -EINVAL;	/* the ring must be mapped first */
		return ur_spawn(run, ur_io_wq_post_cqe, run, "post-mm");
	}
}

/* the CQE store, moved past the tail publish, against the reap */
static const char *const ur_cq_tail_races[] = {
	"ur_io_cqring_fill_event:write:plain,reordered,size=8/ur_cq_app_reap:read:plain,size=8",
	NULL,
};

const struct ur_scenario ur_sc_CQ_TAIL = {
	.races = ur_cq_tail_races,
	.start = ur_cq_tail_start,
};
