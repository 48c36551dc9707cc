// SPDX-License-Identifier: GPL-2.0
/*
 * Scenario sq_head (seed 001): publishing the SQ head after reading SQEs.
 *
 * Mirrors the 2019 io_uring SQ path: io_sq_thread() -> io_submit_sqes() ->
 * io_get_sqe() reads each SQE with plain loads, then io_commit_sqring()
 * published the new head with WRITE_ONCE() followed by smp_wmb(). smp_wmb()
 * orders stores only: the SQE loads may be satisfied after the head store, so
 * the application, which reuses a slot as soon as it sees the head move, can
 * overwrite an SQE still being read. The fix: smp_store_release(&head).
 *
 * KCSAN's weak-memory model keeps a plain access "in flight" only until a
 * barrier that orders it or the end of its function: so, as in the real
 * code, the whole consume loop (get, read, commit) is one function.
 *
 * Mode KTHREAD: a kthread plays the application (ur_sq_app_submit()): it
 * waits for a free slot with smp_load_acquire(&head), fills the SQE with plain
 * stores and publishes the tail with smp_store_release(), reusing each slot
 * the moment the head frees it. Mode USER: user space does that on the
 * mmap'ed ring. Each SQE carries its sequence number at both ends; a consumer
 * that sees them differ, or not the one it expects, counts a torn SQE.
 */
#include "ur_internal.h"

/* io_sq_thread() with io_submit_sqes() and io_commit_sqring() inlined */
static int ur_io_sq_thread(void *arg)
{
	struct ur_run *run = arg;
	struct uringrace_ring_hdr *r = run->ring;
	struct uringrace_entry *sqes = ur_entries(r);
	const u32 mask = run->cfg.entries - 1;
	const bool fixed = ur_fixed(run);
	u32 cached_head = 0;

	while (!ur_should_stop(run)) {
		/* pairs with the application's release of tail */
		u32 tail = smp_load_acquire(&r->tail);
		u32 nr = tail - cached_head;

		if (!nr || nr > run->cfg.entries) {
			cond_resched();
			continue;
		}
		while (nr--) {
			const struct uringrace_entry *sqe = &sqes[cached_head & mask];
			u64 want = (u64)cached_head + 1;
			u64 seq, sum, seq_end;

			seq = sqe->seq;
			sum = sqe->data[0] + sqe->data[1] + sqe->data[2];
			seq_end = sqe->seq_end;
			if (seq != want || seq_end != want || sum != 3 * want)
				ur_anomaly(run, URINGRACE_AN_TORN_SQE);
			cached_head++;
			atomic64_inc(&run->ops);
		}
		/* io_commit_sqring() */
		if (fixed) {
			/* orders the SQE loads above before the head store */
			smp_store_release(&r->head, cached_head);
		} else {
			WRITE_ONCE(r->head, cached_head);
			/* the 2019 code: orders stores only, not the SQE loads */
			smp_wmb();
		}
	}
	return 0;
}

/* the application: io_uring_get_sqe() + prep + io_uring_submit() */
static int ur_sq_app_submit(void *arg)
{
	struct ur_run *run = arg;
	struct uringrace_ring_hdr *r = run->ring;
	struct uringrace_entry *sqes = ur_entries(r);
	const u32 mask = run->cfg.entries - 1;
	u32 tail = 0;

	while (!ur_should_stop(run)) {
		struct uringrace_entry *sqe;
		u64 seq;

		/* pairs with the SQ thread's head publish: slot free */
		if (tail - smp_load_acquire(&r->head) >= run->cfg.entries) {
			cond_resched();
			continue;
		}
		sqe = &sqes[tail & mask];
		seq = (u64)tail + 1;
		sqe->seq = seq;
		sqe->data[0] = seq;
		sqe->data[1] = seq;
		sqe->data[2] = seq;
		sqe->seq_end = seq;
		/* pairs with the SQ thread's acquire of tail */
		smp_store_release(&r->tail, ++tail);
	}
	return 0;
}

static int ur_sq_head_start(struct ur_run *run)
{
	return ur_start_pair(run, ur_io_sq_thread, "sqthread", ur_sq_app_submit, "app", run);
}

/* the SQE read, moved past the head publish, against the refill */
static const char *const ur_sq_head_races[] = {
	"ur_io_sq_thread:read:plain,reordered,size=8/ur_sq_app_submit:write:plain,size=8",
	NULL,
};

const struct ur_scenario ur_sc_SQ_HEAD = {
	.races = ur_sq_head_races,
	.start = ur_sq_head_start,
};
