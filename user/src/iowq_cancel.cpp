// uringrace: a read io-wq has just taken, cancelled as it starts.
//
// A cancel that finds its request running in an io-wq worker marks it
// (IO_WQ_WORK_CANCEL, an atomic OR of work->flags under the worker's lock,
// __io_wq_worker_cancel). A pipe read forced into io-wq (IOSQE_ASYNC) finds
// no data, arms a poll, puts itself in the ring's cancel hash and then reads
// the flags without that lock (io_arm_poll_handler): a cancel that marked it
// before that read fails it there, one that came later finds it in the hash.
// The mark is the only side KCSAN can watch (it never watches an atomic
// read), so the mark made plain (iowq-cancel-plain) shows only when a watched
// mark lands between the worker taking the read and that read: tens of
// microseconds under TCG.
//
// One read at a time on a pipe with nothing in it, run by the ring's one
// io-wq worker pinned to CPU 1 (IORING_REGISTER_IOWQ_MAX_WORKERS and
// IOWQ_AFF); this thread, on CPU 0, submits it, waits a delay and cancels it
// by user_data. A cancel that meets the read pending or armed completes 0
// (found); one that meets it in the worker before the poll is armed
// completes -ENOENT (running: io-wq says it is running, the poll is not in
// the hash yet). The delay is aimed: three in four are drawn near delays
// that met the read running, the rest anywhere up to 1 ms. Every read must
// complete -ECANCELED (else bad_cqe); one still out a watchdog after its
// cancel completed lost its mark (cancel_lost; a byte written to the pipe
// frees it).
//
// The earlier design, batches of NOPs whose oldest was cancelled over and
// over (measured, x86-64 TCG, 30 s): 8 325 cancels met their NOP running and
// KCSAN saw nothing in two runs. A NOP's only lockless reads of its flags
// come a few microseconds after the worker's second assignment of it under
// the same lock, so a watched mark almost never overlapped them.
#include <sched.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <random>
#include <vector>

#include "raw_uring.hpp"
#include "workloads.hpp"

namespace uringrace {

Result run_iowq_cancel(const Options& o) {
    Result r = base(o, "raw");
    if (!two_cpus(r, "the canceller on one, the io-wq worker on the other"))
        return r;
    if (!pin_or_error(r, 0))
        return r;
    RawRing ring;
    if (!ring_ready(r, ring.init(8), "io_uring_setup", ring.what()))
        return r;
    // the io-wq exists once something went through it; then its one worker
    // (pipe reads are unbound work) goes to CPU 1
    io_uring_sqe* nop = ring.get_sqe();
    nop->opcode = IORING_OP_NOP;
    nop->flags = IOSQE_ASYNC;
    if (int e = ring.submit_and_wait(1); e < 0 || ring.reap(1, [](const io_uring_cqe&) {}) != 1) {
        ring_ready(r, e < 0 ? e : -EIO, "io_uring_enter", "(a NOP through io-wq)");
        return r;
    }
    unsigned limits[2] = {1, 1};
    cpu_set_t worker_cpu = only_cpu(1);
    if (int e = ring.register_op(IORING_REGISTER_IOWQ_MAX_WORKERS, limits, 2); e < 0) {
        ring_ready(r, e, "IORING_REGISTER_IOWQ_MAX_WORKERS", "");
        return r;
    }
    if (int e = ring.register_op(IORING_REGISTER_IOWQ_AFF, &worker_cpu, sizeof(worker_cpu));
        e < 0) {
        ring_ready(r, e, "IORING_REGISTER_IOWQ_AFF", "");
        return r;
    }
    int p[2];
    if (pipe(p) < 0) {
        setup_failed(r, "pipe");
        return r;
    }
    constexpr uint64_t kCancel = 1ull << 63; // a cancel's user_data: its read's, this bit set
    constexpr int64_t kSweepNs = 1000000;
    constexpr int64_t kJitterNs = 10000;
    std::mt19937_64 rng(o.seed);
    std::vector<int64_t> hits; // delays that met the read running, the last 16
    uint64_t reads = 0, running = 0, found = 0, cancelled = 0, bad = 0, lost = 0;
    char byte;
    const auto limit = std::chrono::milliseconds(o.watchdog_ms);
    Budget budget(o);
    auto t0 = std::chrono::steady_clock::now();
    while (!budget.over(reads) && !g_interrupted.load(std::memory_order_relaxed)) {
        int64_t delay;
        if (!hits.empty() && rng() % 4) {
            delay = hits[rng() % hits.size()] + int64_t(rng() % (2 * kJitterNs)) - kJitterNs;
            delay = std::max<int64_t>(delay, 0);
        } else {
            delay = int64_t(rng() % kSweepNs);
        }
        const uint64_t id = ++reads;
        io_uring_sqe* sqe = ring.get_sqe();
        sqe->opcode = IORING_OP_READ;
        sqe->flags = IOSQE_ASYNC;
        sqe->fd = p[0];
        sqe->addr = reinterpret_cast<uint64_t>(&byte);
        sqe->len = 1;
        sqe->user_data = id;
        const int64_t t = now_ns();
        if (int e = ring.submit_and_wait(0); e < 0) {
            ring_ready(r, e, "io_uring_enter", "(the read)");
            break;
        }
        while (now_ns() - t < delay)
            ;
        sqe = ring.get_sqe();
        sqe->opcode = IORING_OP_ASYNC_CANCEL;
        sqe->addr = id;
        sqe->user_data = kCancel | id;
        if (int e = ring.submit_and_wait(0); e < 0) { // runs the cancel now, in this task
            ring_ready(r, e, "io_uring_enter", "(the cancel)");
            break;
        }
        bool read_in = false, cancel_in = false, freed = false;
        int read_res = 0, cancel_res = 0;
        auto since_cancel = std::chrono::steady_clock::now();
        while (!(read_in && cancel_in)) {
            ring.reap(4, [&](const io_uring_cqe& c) {
                if (c.user_data == (kCancel | id)) {
                    cancel_in = true;
                    cancel_res = c.res;
                } else if (c.user_data == id) {
                    read_in = true;
                    read_res = c.res;
                } else {
                    bad++;
                }
            });
            if (read_in && cancel_in)
                break;
            if (std::chrono::steady_clock::now() - since_cancel > limit) {
                if (!cancel_in || freed)
                    break; // the cancel itself, or the freed read, never came back
                if (write(p[1], "x", 1) != 1)
                    break;
                freed = true;
                lost++;
                since_cancel = std::chrono::steady_clock::now();
            }
            ring.enter(0, 0, IORING_ENTER_GETEVENTS); // runs this task's completions
        }
        if (!(read_in && cancel_in)) {
            lost++;
            r.counts["errors"] = 1;
            r.skipped = "a read or its cancel never completed: no more on this ring";
            break;
        }
        if (cancel_res == -ENOENT || cancel_res == -EALREADY) {
            running++;
            hits.push_back(delay);
            if (hits.size() > 16)
                hits.erase(hits.begin());
        } else if (cancel_res == 0) {
            found++;
        } else {
            bad++;
        }
        if (read_res == -ECANCELED) {
            cancelled++;
            int left = 0; // a byte written for a read that was cancelled after all
            if (freed && ioctl(p[0], FIONREAD, &left) == 0 && left > 0 && read(p[0], &byte, 1) != 1)
                bad++;
        } else if (!(freed && read_res == 1)) {
            bad++;
        }
    }
    close(p[0]);
    close(p[1]);
    r.seconds = since(t0);
    r.ops = reads;
    r.anomalies["bad_cqe"] = bad;
    r.anomalies["cancel_lost"] = lost;
    r.counts["cancelled"] = cancelled;
    r.counts["running"] = running;
    r.counts["found"] = found;
    if (!r.counts.count("errors") && !running)
        r.counts["errors"] = 1; // no cancel met a running read: missing work
    return r;
}

} // namespace uringrace
