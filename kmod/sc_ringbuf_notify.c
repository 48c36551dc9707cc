// SPDX-License-Identifier: GPL-2.0
/*
 * Scenario ringbuf_notify (seed 003): BPF ring buffer notifications.
 *
 * Mirrors kernel/bpf/ringbuf.c (bpf_ringbuf_commit()) and the consumer in
 * libbpf (ringbuf_process_ring() + epoll, edge-triggered). The producer
 * publishes a record, then reads the consumer position: if the consumer had
 * consumed everything before this record, it may be about to sleep, so
 * notify. The consumer publishes its position, then reads the producer
 * position: nothing new, so wait for a notification. Store buffering: with
 * release/acquire only, both loads can return the old values; the producer
 * does not notify, the consumer sleeps with a record pending.
 *
 *   buggy: smp_store_release() then smp_load_acquire() on both sides;
 *   fixed: a full barrier between each side's store and load (smp_mb(); the
 *          real commit's xchg() on the record header is one).
 *
 * Detector: the consumer's watchdog. The producer notes, record by record
 * (ring header: decided, notifications),
 * that it has decided whether to notify; a consumer that waited watchdog_ms
 * with no notification while the producer had already decided "no" for the
 * first record it has not consumed counts a lost notification (then goes
 * on, as a level-triggered poll would).
 */
#include <linux/delay.h>
#include <linux/random.h>

#include "ur_internal.h"

/* bpf_ringbuf_commit(): publish the record, maybe notify */
static int ur_bpf_ringbuf_commit(void *arg)
{
	struct ur_run *run = arg;
	struct uringrace_ring_hdr *r = run->ring;
	struct uringrace_entry *recs = ur_entries(r);
	const u32 mask = run->cfg.entries - 1;
	const bool fixed = ur_fixed(run);
	u32 prod = 0;

	while (!ur_should_stop(run)) {
		struct uringrace_entry *rec;
		u32 cons;

		/* pairs with the consumer's release of head */
		if (prod - smp_load_acquire(&r->head) >= run->cfg.entries) {
			cond_resched();
			continue;
		}
		/* let the consumer catch up and head for sleep, then race it */
		if (smp_load_acquire(&r->head) != prod) {
			cond_resched();
			continue;
		}
		ndelay(get_random_u32_below(2000));
		rec = &recs[prod & mask];
		rec->seq = (u64)prod + 1;
		rec->seq_end = (u64)prod + 1;
		/* pairs with the consumer's acquire of tail */
		smp_store_release(&r->tail, ++prod);
		/* fixed: full barrier, tail store before head load (SB) */
		if (fixed)
			smp_mb();	/* pairs with the other side's full barrier */
		/* pairs with the consumer's release of head */
		cons = smp_load_acquire(&r->head);
		if (cons == prod - 1) {
			WRITE_ONCE(r->notifications, READ_ONCE(r->notifications) + 1);
			wake_up(&run->wq);
		}
		/* pairs with the consumer watchdog's acquire of decided */
		smp_store_release(&r->decided, prod);
		atomic64_inc(&run->ops);
	}
	return 0;
}

/* the consumer: drain, publish position, re-check, wait (edge-triggered) */
static int ur_ringbuf_consume(void *arg)
{
	struct ur_run *run = arg;
	struct uringrace_ring_hdr *r = run->ring;
	struct uringrace_entry *recs = ur_entries(r);
	const u32 mask = run->cfg.entries - 1;
	const bool fixed = ur_fixed(run);
	const long tmo = msecs_to_jiffies(run->cfg.watchdog_ms);
	u32 cons = 0;

	while (!ur_should_stop(run)) {
		/* pairs with the producer's release of tail */
		u32 prod = smp_load_acquire(&r->tail);
		u32 seen;

		while (cons != prod) {
			const struct uringrace_entry *rec = &recs[cons & mask];

			if (rec->seq != (u64)cons + 1 || rec->seq_end != (u64)cons + 1)
				ur_anomaly(run, URINGRACE_AN_TORN_SQE);
			cons++;
		}
		seen = READ_ONCE(r->notifications);
		/* pairs with the producer's acquire of head */
		smp_store_release(&r->head, cons);
		/* fixed: full barrier, head store before tail load (SB) */
		if (fixed)
			smp_mb();	/* pairs with the other side's full barrier */
		/* pairs with the producer's release of tail */
		if (smp_load_acquire(&r->tail) != cons)
			continue;
		if (wait_event_interruptible_timeout(run->wq,
						     READ_ONCE(r->notifications) != seen ||
						     ur_should_stop(run), tmo) > 0)
			continue;
		/* no notification in watchdog_ms: was one owed? (acquires pair
		 * with the producer's releases of tail and decided)
		 */
		if (smp_load_acquire(&r->tail) != cons &&
		    /* acquire: pairs with the producer's release */
		    (s32)(smp_load_acquire(&r->decided) - (cons + 1)) >= 0 &&
		    READ_ONCE(r->notifications) == seen)
			ur_anomaly(run, URINGRACE_AN_LOST_NOTIFY);
	}
	return 0;
}

static int ur_ringbuf_start(struct ur_run *run)
{
	return ur_start_pair(run, ur_bpf_ringbuf_commit, "producer", ur_ringbuf_consume,
			     "consumer", run);
}

/* every access is marked: KCSAN is not this scenario's detector */
static const char *const ur_ringbuf_races[] = {
	"ur_bpf_ringbuf_commit|ur_ringbuf_consume:any",
	NULL,
};

const struct ur_scenario ur_sc_RINGBUF_NOTIFY = {
	.races = ur_ringbuf_races,
	.start = ur_ringbuf_start,
};
