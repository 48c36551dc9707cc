// SPDX-License-Identifier: GPL-2.0
/*
 * Scenario iowq_flags (seed 004): io-wq's worker->flags.
 *
 * Mirrors io_uring/io-wq.c before commit "io_uring/io-wq: Use set_bit() and
 * test_bit() at worker->flags" (Debian 6.1 still has it): the worker changes
 * its flags with plain |= and &= in io_worker_handle_work() (through
 * __io_worker_busy()/__io_worker_idle()) while io_wq_activate_free_worker(),
 * called by whoever enqueues work, tests them from another CPU. The fix made
 * flags an unsigned long changed with set_bit()/clear_bit() and read with
 * test_bit().
 *
 * Threads: "worker" kthreads (each its own worker, as io_wq_worker() is) run
 * handle_work + the running/sleeping hooks; "enqueue" kthreads scan the
 * workers like io_wq_activate_free_worker(). As in 6.1, only a worker's own
 * task writes its flags (the scheduler hooks run on it), so no update can be
 * lost: the bug is the data race itself, and KCSAN, on the seed's pair (a
 * worker's plain write against the enqueue path's plain read, 4 bytes), is
 * the detector. There is no anomaly counter.
 */
#include <linux/bitops.h>
#include <linux/slab.h>

#include "ur_internal.h"

enum {
	UR_IO_WORKER_F_UP	= 0,	/* up and active */
	UR_IO_WORKER_F_RUNNING	= 1,	/* account as running */
	UR_IO_WORKER_F_FREE	= 2,	/* worker on free list */
};

struct ur_io_worker {
	/* buggy: as before the fix */
	unsigned int flags;
	/* fixed: as after it */
	unsigned long bflags;
	bool fixed;
};

struct ur_iowq;

struct ur_iowq_thread {
	struct ur_iowq *q;
	unsigned int idx;
	unsigned long activated;	/* enqueue: free workers found (WRITE_ONCE) */
};

struct ur_iowq {
	struct ur_run *run;
	unsigned int nr;
	struct ur_io_worker workers[URINGRACE_MAX_THREADS];
	struct ur_iowq_thread th[2 * URINGRACE_MAX_THREADS];
};

#define F(bit)	(1U << (bit))

/*
 * __io_worker_busy() + the work + __io_worker_idle(), as inlined into
 * io_worker_handle_work()
 */
static noinline void ur_io_worker_handle_work(struct ur_run *run, struct ur_io_worker *w)
{
	if (w->fixed) {
		clear_bit(UR_IO_WORKER_F_FREE, &w->bflags);
		atomic64_inc(&run->ops);
		set_bit(UR_IO_WORKER_F_FREE, &w->bflags);
	} else {
		w->flags &= ~F(UR_IO_WORKER_F_FREE);
		atomic64_inc(&run->ops);
		w->flags |= F(UR_IO_WORKER_F_FREE);
	}
}

/* io_wq_worker_running() / io_wq_worker_sleeping(): scheduler hooks */
static noinline void ur_io_wq_worker_running(struct ur_io_worker *w)
{
	if (w->fixed) {
		if (!test_bit(UR_IO_WORKER_F_UP, &w->bflags))
			return;
		if (test_bit(UR_IO_WORKER_F_RUNNING, &w->bflags))
			return;
		set_bit(UR_IO_WORKER_F_RUNNING, &w->bflags);
	} else {
		if (!(w->flags & F(UR_IO_WORKER_F_UP)))
			return;
		if (w->flags & F(UR_IO_WORKER_F_RUNNING))
			return;
		w->flags |= F(UR_IO_WORKER_F_RUNNING);
	}
}

static noinline void ur_io_wq_worker_sleeping(struct ur_io_worker *w)
{
	if (w->fixed) {
		if (!test_bit(UR_IO_WORKER_F_UP, &w->bflags))
			return;
		clear_bit(UR_IO_WORKER_F_RUNNING, &w->bflags);
	} else {
		if (!(w->flags & F(UR_IO_WORKER_F_UP)))
			return;
		w->flags &= ~F(UR_IO_WORKER_F_RUNNING);
	}
}

/* io_wq_activate_free_worker(): is this worker free to take the work? */
static noinline bool ur_io_wq_activate_free_worker(struct ur_io_worker *w)
{
	if (w->fixed)
		return test_bit(UR_IO_WORKER_F_FREE, &w->bflags);
	return w->flags & F(UR_IO_WORKER_F_FREE);
}

/* io_wq_worker(): handle work, go to sleep, wake up, again */
static int ur_io_wq_worker(void *arg)
{
	struct ur_iowq_thread *t = arg;
	struct ur_run *run = t->q->run;
	struct ur_io_worker *w = &t->q->workers[t->idx];

	while (!ur_should_stop(run)) {
		ur_io_worker_handle_work(run, w);
		ur_io_wq_worker_sleeping(w);
		ur_io_wq_worker_running(w);
		cond_resched();
	}
	return 0;
}

/*
 * io_wq_enqueue() -> io_wq_activate_free_worker() over every worker. The
 * answer is used, as the real code wakes the worker it finds: a read whose
 * value nobody uses is dead code, and the compiler drops it (the earlier
 * model's buggy read was gone from the object, so KCSAN never saw it).
 */
static int ur_io_wq_enqueue(void *arg)
{
	struct ur_iowq_thread *t = arg;
	struct ur_iowq *q = t->q;
	unsigned int i;

	while (!ur_should_stop(q->run)) {
		for (i = 0; i < q->nr; i++)
			if (ur_io_wq_activate_free_worker(&q->workers[i]))
				WRITE_ONCE(t->activated, t->activated + 1);
		cond_resched();
	}
	return 0;
}

static int ur_iowq_start(struct ur_run *run)
{
	struct ur_iowq *q = kzalloc(sizeof(*q), GFP_KERNEL);
	unsigned int i;
	int ret;

	if (!q)
		return -ENOMEM;
	run->priv = q;
	q->run = run;
	q->nr = run->cfg.threads;
	for (i = 0; i < q->nr; i++) {
		struct ur_io_worker *w = &q->workers[i];

		w->fixed = ur_fixed(run);
		w->flags = F(UR_IO_WORKER_F_UP) | F(UR_IO_WORKER_F_RUNNING) |
			   F(UR_IO_WORKER_F_FREE);
		w->bflags = w->flags;
		q->th[i] = (struct ur_iowq_thread){ .q = q, .idx = i };
		ret = ur_spawn(run, ur_io_wq_worker, &q->th[i], "worker");
		if (ret)
			return ret;
		q->th[q->nr + i] = (struct ur_iowq_thread){ .q = q, .idx = i };
		ret = ur_spawn(run, ur_io_wq_enqueue, &q->th[q->nr + i], "enqueue");
		if (ret)
			return ret;
	}
	return 0;
}

static void ur_iowq_cleanup(struct ur_run *run)
{
	kfree(run->priv);
}

/*
 * The seed's pair: a worker's plain write against the enqueue path's plain
 * read; and the same read alone, as KCSAN reports it when the value changed
 * under its watchpoint but the writer was not caught (race at unknown
 * origin: the worker is the only writer; seen once on arm64).
 */
static const char *const ur_iowq_races[] = {
	"ur_io_worker_handle_work|ur_io_wq_worker_running|ur_io_wq_worker_sleeping:write:plain,size=4/ur_io_wq_activate_free_worker:read:plain,size=4",
	"ur_io_wq_activate_free_worker:read:plain,size=4",
	NULL,
};

const struct ur_scenario ur_sc_IOWQ_FLAGS = {
	.races = ur_iowq_races,
	.start = ur_iowq_start,
	.cleanup = ur_iowq_cleanup,
};
