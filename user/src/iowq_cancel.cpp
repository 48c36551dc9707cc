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
// mostly its start. This thread, pinned to CPU 0, keeps half the SQ of them
// out and, with each submission, cancels by its user_data the oldest one
// not yet completed: the one the worker (on CPU 1) is running or has just
// taken. A cancel that finds
// it running completes with -EALREADY (counted: running). Each NOP must
// complete once, with 0 or -ECANCELED (bad_cqe), within the watchdog
// (lost_cqe); each cancel with 0, -EALREADY or -ENOENT (bad_cqe).
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
    // NOPs out at once, the rest of the SQ for the cancel: the worker never
    // runs dry (an idle worker's wake-up costs milliseconds under TCG)
    const unsigned window = o.entries / 2;
    std::vector<bool> finished(window); // NOP id's slot: id % window
    uint64_t next = 1, oldest = 1;      // NOPs [oldest, next) are out
    uint64_t done = 0, cancelled = 0, bad = 0, cancels = 0, running = 0, found = 0;
    auto take = [&](const io_uring_cqe& c) {
        if (c.user_data & kCancel) {
            running += c.res == -EALREADY;
            found += c.res == 0;
            bad += c.res != 0 && c.res != -EALREADY && c.res != -ENOENT;
            return;
        }
        if (c.user_data < oldest || c.user_data >= next || finished[c.user_data % window]) {
            bad++; // never sent, or back twice
            return;
        }
        finished[c.user_data % window] = true;
        done += c.res == 0;
        cancelled += c.res == -ECANCELED;
        bad += c.res != 0 && c.res != -ECANCELED;
    };
    using clock = std::chrono::steady_clock;
    const auto limit = std::chrono::milliseconds(o.watchdog_ms);
    Budget budget(o);
    auto t0 = clock::now(), progress = t0;
    bool feeding = true;
    while (oldest < next || feeding) {
        feeding =
            feeding && !budget.over(oldest - 1) && !g_interrupted.load(std::memory_order_relaxed);
        if (ring.reap(o.entries, take))
            progress = clock::now();
        else if (clock::now() - progress > limit)
            break; // what is still out is lost
        while (oldest < next && finished[oldest % window])
            finished[oldest++ % window] = false;
        for (; feeding && next - oldest < window; next++) {
            io_uring_sqe* sqe = ring.get_sqe();
            sqe->opcode = IORING_OP_NOP;
            sqe->flags = IOSQE_ASYNC;
            sqe->user_data = next;
        }
        // once one has completed the worker is taking the rest: the oldest
        // out is the one it runs (or has just taken, or has just finished)
        if (oldest > 1 && oldest < next) {
            io_uring_sqe* sqe = ring.get_sqe();
            sqe->opcode = IORING_OP_ASYNC_CANCEL;
            sqe->addr = oldest;
            sqe->user_data = kCancel | oldest;
            cancels++;
        }
        // queues the NOPs and runs the cancel now, in this task
        if (int e = ring.submit_and_wait(0); e < 0) {
            r.counts["errors"] = 1;
            r.skipped = skip_reason(e, "io_uring_enter");
            break;
        }
    }
    r.seconds = since(t0);
    r.ops = oldest - 1;
    r.anomalies["bad_cqe"] = bad;
    r.anomalies["lost_cqe"] = next - oldest;
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
