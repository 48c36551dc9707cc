// SPDX-License-Identifier: GPL-2.0
/*
 * Description: the proof of the pipeline. Real io_uring NOPs through liburing
 * in the guest: every submission completes once, with its own user_data, from
 * one thread and from several at once (each on its own ring).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <liburing.h>

#include "kselftest_harness.h"
#include "module_path.h"

#define NOP_ROUNDS	2000
#define NOP_BATCH	16

/* Submit NOP_ROUNDS batches of NOPs; return 0 or a negative errno. */
static int nop_rounds(struct io_uring *ring, unsigned long long *done)
{
	for (int r = 0; r < NOP_ROUNDS; r++) {
		unsigned long long seen = 0;
		struct io_uring_cqe *cqe;
		int ret;

		for (int i = 0; i < NOP_BATCH; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

			if (!sqe)
				return -EBUSY;
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, 1ULL << i);
		}
		ret = io_uring_submit_and_wait(ring, NOP_BATCH);
		if (ret != NOP_BATCH)
			return ret < 0 ? ret : -EIO;
		for (int i = 0; i < NOP_BATCH; i++) {
			ret = io_uring_peek_cqe(ring, &cqe);
			if (ret)
				return ret;
			if (cqe->res != 0)
				return -EPROTO;
			if (seen & cqe->user_data)
				return -EEXIST;	/* a completion came twice */
			seen |= cqe->user_data;
			io_uring_cqe_seen(ring, cqe);
		}
		if (seen != (1ULL << NOP_BATCH) - 1)
			return -ENOENT;		/* a completion went missing */
		*done += NOP_BATCH;
	}
	return 0;
}

static int ring_or_skip(struct io_uring *ring)
{
	return io_uring_queue_init(2 * NOP_BATCH, ring, 0);
}

TEST(single_thread)
{
	struct io_uring ring;
	unsigned long long done = 0;
	int ret = ring_or_skip(&ring);

	if ((ret == -ENOSYS || ret == -EPERM) && !ur_must_run())
		SKIP(return, "io_uring not available: %s", strerror(-ret));
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, nop_rounds(&ring, &done));
	EXPECT_EQ((unsigned long long)NOP_ROUNDS * NOP_BATCH, done);
	io_uring_queue_exit(&ring);
}

struct worker {
	pthread_t tid;
	unsigned long long done;
	int ret;
};

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	struct io_uring ring;

	w->ret = ring_or_skip(&ring);
	if (w->ret)
		return NULL;
	w->ret = nop_rounds(&ring, &w->done);
	io_uring_queue_exit(&ring);
	return NULL;
}

TEST(four_threads)
{
	struct worker w[4] = {};

	for (int i = 0; i < 4; i++)
		ASSERT_EQ(0, pthread_create(&w[i].tid, NULL, worker_fn, &w[i]));
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(0, pthread_join(w[i].tid, NULL));
		if ((w[i].ret == -ENOSYS || w[i].ret == -EPERM) && !ur_must_run())
			SKIP(return, "io_uring not available");
		EXPECT_EQ(0, w[i].ret);
		EXPECT_EQ((unsigned long long)NOP_ROUNDS * NOP_BATCH, w[i].done);
	}
}

TEST_HARNESS_MAIN
