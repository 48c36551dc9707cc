// uringrace: several rings on one SQPOLL thread, joining and leaving it.
//
// A ring set up with IORING_SETUP_SQPOLL | IORING_SETUP_ATTACH_WQ naming an
// SQPOLL ring of the same process joins that ring's SQ thread (its
// io_sq_data) instead of starting one. Joining and closing both park the
// thread: io_sq_thread_park() counts itself in park_pending, sets
// IO_SQ_THREAD_SHOULD_PARK in sqd->state, then takes sqd->lock, which the
// SQ thread lets go of when it sees the bit; io_sq_thread_unpark() clears
// the bit and sets it again for a parker still pending. The SQ thread reads
// sqd->state without the lock on every pass over its rings
// (io_sqd_events_pending), while several parkers set and clear the bit.
//
// IORING_REGISTER_IOWQ_AFF on an SQPOLL ring parks the thread too (to set
// the affinity of its io-wq), at the cost of one syscall, not a ring's set-up.
//
// The anchor ring (set up first, kept to the end) holds the SQ thread, and
// thread 0 keeps NOPs flowing through it so that the thread runs its loop.
// Each other thread, over and over: sets up a ring attached to the anchor,
// submits a batch of NOPs through it, waits for them, sets the io-wq
// affinity through the anchor kParks times (every CPU: nothing changes but
// the parking), and closes the ring. Every NOP must come back once, with
// its user_data and res 0 (bad_cqe), within a second (lost_cqe: the SQ
// thread never ran it).
#include <atomic>
#include <chrono>
#include <sched.h>
#include <thread>
#include <vector>

#include "raw_uring.hpp"
#include "workloads.hpp"

namespace uringrace {

namespace {

// Submit n NOPs (user_data 1..n) on an SQPOLL ring and wait for them, at
// most limit: the count that came back; a CQE that is not one of them, or
// comes twice, counted in bad. A NOP with no free SQ slot is not sent and
// so not back: only SQEs the SQ thread never consumed (lost ones) hold the
// ring's slots between batches.
unsigned nops_through(RawRing& ring, unsigned n, std::chrono::milliseconds limit,
                      std::atomic<uint64_t>& bad) {
    for (unsigned i = 0; i < n; i++) {
        io_uring_sqe* sqe = ring.get_sqe();
        if (!sqe) {
            n = i;
            break;
        }
        sqe->opcode = IORING_OP_NOP;
        sqe->user_data = i + 1;
    }
    ring.flush();
    std::vector<bool> seen(n + 1);
    unsigned got = 0;
    auto t0 = std::chrono::steady_clock::now();
    while (got < n && std::chrono::steady_clock::now() - t0 < limit) {
        // not this storm's question (sqpoll and sqpoll_aim ask it): a
        // sleeping SQ thread with SQEs queued is woken
        if (ring.sq_unconsumed() && ring.sq_needs_wakeup(Fence::on))
            ring.enter(0, 0, IORING_ENTER_SQ_WAKEUP);
        ring.wait(1, 10000000);
        got += ring.reap(n - got, [&](const io_uring_cqe& c) {
            if (c.res != 0 || c.user_data == 0 || c.user_data > n || seen[c.user_data])
                bad.fetch_add(1, std::memory_order_relaxed);
            else
                seen[c.user_data] = true;
        });
    }
    return got;
}

} // namespace

Result run_sqpoll_share(const Options& o) {
    Result r = base(o, "raw");
    RawRing anchor;
    if (!ring_ready(r, anchor.init(o.entries, IORING_SETUP_SQPOLL, o.idle_ms),
                    "io_uring_setup(SQPOLL)", anchor.what()))
        return r;
    const unsigned batch = std::min(8u, o.entries);
    constexpr unsigned kParks = 8;
    cpu_set_t every;
    CPU_ZERO(&every);
    for (unsigned c = 0; c < CPU_SETSIZE && c < std::thread::hardware_concurrency(); c++)
        CPU_SET(c, &every);
    std::atomic<uint64_t> ops{0}, bad{0}, lost{0}, rings{0}, parks{0};
    std::atomic<int> err{0};
    const unsigned joiners = std::max(1u, o.threads);
    std::atomic<unsigned> left{joiners};
    Budget budget(o);
    auto t0 = std::chrono::steady_clock::now();
    run_threads(joiners + 1, o.pin, [&](unsigned t) {
        auto one_batch = [&](RawRing& ring) {
            unsigned got = nops_through(ring, batch, std::chrono::seconds(1), bad);
            lost.fetch_add(batch - got, std::memory_order_relaxed);
            ops.fetch_add(got, std::memory_order_relaxed);
        };
        if (t == 0) { // the anchor's feeder, until the joiners are done
            while (left.load(std::memory_order_acquire))
                one_batch(anchor);
            return;
        }
        while (!budget.over(ops.load(std::memory_order_relaxed)) && !err.load()) {
            RawRing ring;
            if (int e = ring.init(o.entries, IORING_SETUP_SQPOLL, o.idle_ms, -1, 0, anchor.fd());
                e) {
                err.store(e);
                break;
            }
            one_batch(ring);
            rings.fetch_add(1, std::memory_order_relaxed);
            for (unsigned i = 0; i < kParks && !err.load(); i++) {
                int e = anchor.register_op(IORING_REGISTER_IOWQ_AFF, &every, sizeof(every));
                if (e < 0)
                    err.store(e);
                else
                    parks.fetch_add(1, std::memory_order_relaxed);
            }
        } // each ring closed here: the SQ thread parked again
        left.fetch_sub(1, std::memory_order_release);
    });
    r.seconds = since(t0);
    r.ops = ops.load();
    r.anomalies["bad_cqe"] = bad.load();
    r.anomalies["lost_cqe"] = lost.load();
    r.counts["rings"] = rings.load();
    r.counts["parks"] = parks.load();
    if (!err.load() && !rings.load())
        r.counts["errors"] = 1; // no ring joined the thread: missing work, never a pass
    settle_setup_error(r, err.load(), "io_uring_setup(SQPOLL|ATTACH_WQ)");
    return r;
}

} // namespace uringrace
