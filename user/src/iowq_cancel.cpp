// uringrace: the work an io-wq worker is starting, cancelled as it starts.
//
// A cancel that finds its request running in an io-wq worker marks it
// (IO_WQ_WORK_CANCEL, an atomic OR of work->flags under the worker's lock)
// and the worker, which read the flags without that lock as it started the
// work (io_wq_submit_work), fails it instead of running it. A mark that
// lands mid-work has no reader left; only a work assigned and not yet
// started gives the cancel's write a lockless reader to race. iowq_exit's
// cancels, one per life, almost never land there: a cancel takes pending
// work first and stops, and the worker is mostly inside a long read.
//
// Here the works are NOPs, forced into io-wq (IOSQE_ASYNC) and run by the
// ring's one bound worker (IORING_REGISTER_IOWQ_MAX_WORKERS), so a work is
// mostly its start. This thread, pinned to CPU 0, queues a batch of them and,
// once the first has completed, cancels by its user_data the oldest one not
// yet completed, again and again: the one the worker (on CPU 1) is running
// or has just taken. A cancel that finds
// it running completes with -EALREADY (counted: running). Each NOP must
// complete once, with 0 or -ECANCELED (bad_cqe), within the watchdog
// (lost_cqe); each cancel with 0, -EALREADY or -ENOENT (bad_cqe).
//
// What this cannot do (measured, x86-64 TCG, 30 s): make KCSAN see the
// cancel's mark made plain (iowq-cancel-plain). 8 325 cancels met their NOP
// running, 532 before the worker read the flags, and no report in two runs.
// Only the cancel's write can be watched (KCSAN never watches an atomic
// read), and it is made under the worker's lock: a worker not yet past its
// second assignment of the work waits on that lock out the watch, so only a
// worker between that unlock and its next read, a few microseconds of a
// cycle of a hundred, is caught. Feeding the worker without a pause (36 096
// cancels, 1 583 running in 30 s) or pipe reads that arm a poll (every cancel
// found its read pending or polled) did worse.
#include <cerrno>
#include <chrono>
#include <vector>

#include "raw_uring.hpp"
#include "workloads.hpp"

namespace uringrace {

Result run_iowq_cancel(const Options& o) {
    Result r = base(o, "raw");
    if (!two_cpus(r, "the canceller on one, the io-wq worker on the other"))
        return r;
    RawRing ring;
    if (!ring_ready(r, ring.init(o.entries), "io_uring_setup", ring.what()))
        return r;
    unsigned limits[2] = {1, 0};
    if (int e = ring.register_op(IORING_REGISTER_IOWQ_MAX_WORKERS, limits, 2); e < 0) {
        ring_ready(r, e, "IORING_REGISTER_IOWQ_MAX_WORKERS", "");
        return r;
    }
    if (!pin_or_error(r, 0))
        return r;
    // a NOP's user_data: its number, from 1; a cancel's: its target's, with
    // the top bit set
    constexpr uint64_t kCancel = 1ull << 63;
    const unsigned batch = o.entries / 2; // the other half for the cancels
    uint64_t base_id = 0, nops = 0, done = 0, cancelled = 0, bad = 0, lost = 0;
    uint64_t cancels = 0, running = 0, found = 0;
    std::vector<bool> finished(batch);
    // a cancel's completion: how it found its NOP, or none
    auto cancel_done = [&](const io_uring_cqe& c) {
        running += c.res == -EALREADY;
        found += c.res == 0;
        bad += c.res != 0 && c.res != -EALREADY && c.res != -ENOENT;
    };
    using clock = std::chrono::steady_clock;
    const auto limit = std::chrono::milliseconds(o.watchdog_ms);
    Budget budget(o);
    auto t0 = clock::now();
    while (!budget.over(nops) && !g_interrupted.load(std::memory_order_relaxed)) {
        for (unsigned i = 0; i < batch; i++) {
            io_uring_sqe* sqe = ring.get_sqe();
            sqe->opcode = IORING_OP_NOP;
            sqe->flags = IOSQE_ASYNC;
            sqe->user_data = base_id + i + 1;
            finished[i] = false;
        }
        if (int e = ring.submit_and_wait(0); e < 0) {
            r.counts["errors"] = 1;
            r.skipped = skip_reason(e, "io_uring_enter");
            break;
        }
        unsigned left = batch, oldest = 0;
        auto progress = clock::now();
        while (left && clock::now() - progress < limit) {
            unsigned got = ring.reap(o.entries, [&](const io_uring_cqe& c) {
                if (c.user_data & kCancel) {
                    cancel_done(c);
                    return;
                }
                const uint64_t i = c.user_data - base_id - 1;
                if (c.user_data <= base_id || i >= batch || finished[i]) {
                    bad++;
                    return;
                }
                finished[i] = true;
                left--;
                done += c.res == 0;
                cancelled += c.res == -ECANCELED;
                bad += c.res != 0 && c.res != -ECANCELED;
            });
            if (got)
                progress = clock::now();
            while (oldest < batch && finished[oldest])
                oldest++;
            if (oldest == batch)
                break;
            // once one has completed the worker is taking the rest, and a
            // cancel finds the oldest left running (a cancel before the first
            // would find it pending)
            if (!oldest) {
                ring.enter(0, 0, IORING_ENTER_GETEVENTS);
                continue;
            }
            // the oldest NOP still out: the worker's current work, or next
            io_uring_sqe* sqe = ring.get_sqe();
            if (!sqe) {
                ring.enter(0, 0, IORING_ENTER_GETEVENTS);
                continue;
            }
            sqe->opcode = IORING_OP_ASYNC_CANCEL;
            sqe->addr = base_id + oldest + 1;
            sqe->user_data = kCancel | (base_id + oldest + 1);
            ring.submit_and_wait(0); // runs the cancel now, in this task
            cancels++;
        }
        // the cancels' own completions still out
        ring.enter(0, 0, IORING_ENTER_GETEVENTS);
        ring.reap(o.entries, [&](const io_uring_cqe& c) {
            if (c.user_data & kCancel)
                cancel_done(c);
            else
                bad += !left; // a NOP completed twice (a late one is lost_cqe's)
        });
        nops += batch - left;
        base_id += batch;
        if (left) {
            lost += left; // the watchdog ran out: no more batches on this ring
            break;
        }
    }
    r.seconds = since(t0);
    r.ops = nops;
    r.anomalies["bad_cqe"] = bad;
    r.anomalies["lost_cqe"] = lost;
    r.counts["done"] = done;
    r.counts["cancelled"] = cancelled;
    r.counts["cancels"] = cancels;
    r.counts["running"] = running;
    r.counts["found_pending"] = found;
    if (!r.counts.count("errors") && !running)
        r.counts["errors"] = 1; // no cancel met a running work: missing work
    return r;
}

} // namespace uringrace
