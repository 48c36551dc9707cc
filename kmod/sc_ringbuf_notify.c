// SPDX-License-Identifier: GPL-2.0
/*
 * Scenario ringbuf_notify (seed 003): BPF ring buffer notifications.
 *
 * Mirrors the producer of kernel/bpf/ringbuf.c (6.1 and 6.12 alike) and the
 * consumer of libbpf's ringbuf_process_ring() (tools/lib/bpf/ringbuf.c)
 * waiting edge-triggered, as aya and the 2026 libbpf EPOLLET change do.
 *
 * Producer, record by record:
 *   __bpf_ringbuf_reserve(): the record's header is busy; producer_pos is
 *     advanced with smp_store_release() (our ring's tail);
 *   the program fills the record;
 *   bpf_ringbuf_commit(): xchg() on the header clears busy (a full
 *     barrier), then cons_pos = smp_load_acquire(&consumer_pos), and a
 *     notification when cons_pos equals the record's start.
 * The producer always has its xchg(): no kernel ever lacked it.
 *
 * Consumer (libbpf): read producer_pos (acquire); for each record read its
 * header (acquire), stop at a busy one, consume, smp_store_release() of
 * consumer_pos (our ring's head); re-read producer_pos; nothing new: wait
 * for a notification.
 *
 *   buggy: libbpf's consumer, release store then acquire load: store
 *          buffering lets it read a stale producer_pos while the producer
 *          reads a stale consumer_pos; no notification, consumer asleep.
 *   fixed: a full barrier between the consumer's store and its load (the
 *          seq_cst store the thread asks for).
 *
 * Detector: the consumer's watchdog. The producer notes, record by record
 * (ring header: decided), that it has decided whether to notify; a consumer
 * that waited watchdog_ms with no notification while the record at its
 * position was committed and decided counts a lost notification (then goes
 * on, as a level-triggered poll would).
 */
#include <linux/delay.h>
#include <linux/random.h>

#include "ur_internal.h"

/* __bpf_ringbuf_reserve() + bpf_ringbuf_commit(), one record after another */
static int ur_bpf_ringbuf_commit(void *arg)
{
	struct ur_run *run = arg;
	struct uringrace_ring_hdr *r = run->ring;
	struct uringrace_entry *recs = ur_entries(r);
	const u32 mask = run->cfg.entries - 1;
	u32 prod = 0;

	while (!ur_should_stop(run)) {
		struct uringrace_entry *rec;
		u32 cons;

		/* ring full: pairs with the consumer's release of head */
		if (prod - smp_load_acquire(&r->head) >= run->cfg.entries) {
			cond_resched();
			continue;
		}
		rec = &recs[prod & mask];
		/* reserve: header busy, then producer_pos */
		WRITE_ONCE(rec->seq_end, 0);
		/* pairs with the consumer's acquire of tail */
		smp_store_release(&r->tail, prod + 1);
		rec->seq = (u64)prod + 1;
		/* commit: clear busy; xchg() is a full barrier, as in the kernel */
		xchg(&rec->seq_end, (u64)prod + 1);
		/* pairs with the consumer's release of head */
		cons = smp_load_acquire(&r->head);
		/* the kernel's rule: the consumer is at this record's start */
		if (cons == prod) {
			WRITE_ONCE(r->notifications, READ_ONCE(r->notifications) + 1);
			wake_up(&run->wq);
		}
		prod++;
		/* pairs with the consumer watchdog's acquire of decided */
		smp_store_release(&r->decided, prod);
		atomic64_inc(&run->ops);
		/* records in bursts, so the consumer is sometimes one behind and
		 * sometimes caught up and heading for sleep when one arrives
		 */
		if (!(get_random_u32() & 3))
			ndelay(get_random_u32_below(4000));
	}
	return 0;
}

/* libbpf's ringbuf_process_ring() and an edge-triggered wait */
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
		u32 seen = READ_ONCE(r->notifications);
		bool got;

		do {
			/* pairs with the producer's release of tail */
			u32 prod = smp_load_acquire(&r->tail);

			got = false;
			while (cons != prod) {
				const struct uringrace_entry *rec = &recs[cons & mask];
				/* pairs with the producer's xchg() of the header */
				u64 len = smp_load_acquire(&rec->seq_end);

				if (!len)
					goto wait;	/* busy: not committed yet */
				if (len != (u64)cons + 1 || rec->seq != (u64)cons + 1)
					ur_anomaly(run, URINGRACE_AN_TORN_SQE);
				cons++;
				got = true;
				/* pairs with the producer's acquire of head */
				smp_store_release(&r->head, cons);
				if (fixed)
					smp_mb();	/* pairs with the commit's xchg() */
			}
		} while (got);
wait:
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
