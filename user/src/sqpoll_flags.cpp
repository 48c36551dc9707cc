// uringrace: the SQ thread's NEED_WAKEUP beside CQ_OVERFLOW in one sq_flags.
//
// io_sq_thread sets IORING_SQ_NEED_WAKEUP in each of its rings' sq_flags
// before it sleeps and clears it when woken, both with atomic RMWs, because
// other contexts change other bits of the same word at any time: whoever
// posts a completion into a full CQ sets IORING_SQ_CQ_OVERFLOW, and the task
// that flushes the overflow list clears it.
//
// Here the SQPOLL ring's SQ thread is pinned to CPU 0 and given nothing to do
// but an occasional NOP, so it keeps going to sleep (idle --idle-ms) and
// being woken. We run on CPU 1 and, without a pause, overflow its CQ: a
// second, ordinary ring sends a burst of IORING_OP_MSG_RING messages to it,
// which io_uring posts from our context (an atomic_or of CQ_OVERFLOW once
// the CQ is full), then we reap and flush the rest (io_uring_enter with
// GETEVENTS: an atomic_andnot when the list empties). We flush only when
// sq_flags says CQ_OVERFLOW, as an application may.
//
// Counted as anomalies: a burst's message that never comes back (lost_cqe),
// one that comes back only after an unconditional flush because the flag
// was clear with the list full (overflow_flag_lost), the flag set after a
// burst drained with nothing left to post (overflow_flag_stale), a NOP not
// back within the watchdog after its wake-up, the SQ thread asleep a
// watchdog after its last NOP with NEED_WAKEUP clear (wakeup_flag_lost: a
// flush's or a post's RMW put back an old bit), and a CQE that is not ours.
#include <algorithm>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "raw_uring.hpp"
#include "workloads.hpp"

namespace uringrace {

namespace {

constexpr uint64_t kNop = 1ull << 62; // a NOP's user_data; a message's is its burst slot + 1

} // namespace

Result run_sqpoll_flags(const Options& o) {
    Result r = base(o, "raw");
    if (!two_cpus(r, "the SQ thread on one, the application on the other"))
        return r;
    RawRing ring, sender;
    if (!ring_ready(r, ring.init(o.entries, IORING_SETUP_SQPOLL, o.idle_ms, 0, o.entries),
                    "io_uring_setup(SQPOLL|SQ_AFF|CQSIZE)", ring.what()))
        return r;
    // a burst: the CQ's size and two more, all in one submission
    const unsigned burst = o.entries + 2;
    if (!ring_ready(r, sender.init(burst), "io_uring_setup", sender.what()))
        return r;
    if (!pin_or_error(r, 1))
        return r;
    using clock = std::chrono::steady_clock;
    const auto limit = std::chrono::milliseconds(o.watchdog_ms);
    uint64_t bursts = 0, bad = 0, lost = 0, flag_lost = 0, stale = 0, flushes = 0, nops = 0,
             nop_lost = 0, msg_errors = 0, wakeup_flag_lost = 0;
    bool nop_out = false;
    clock::time_point nop_at{}, nop_back = clock::now();
    std::vector<uint8_t> seen(burst);
    std::mt19937_64 rng(o.seed);
    // how many of this burst's messages have come back
    auto arrived = [&] { return unsigned(std::count(seen.begin(), seen.end(), 1)); };
    auto take = [&](const io_uring_cqe& c) {
        if (c.user_data == kNop && nop_out && c.res == 0) {
            nop_out = false;
            nop_back = clock::now();
            nops++;
        } else if (c.user_data >= 1 && c.user_data <= burst && !seen[c.user_data - 1] &&
                   c.res == int(c.user_data)) {
            seen[c.user_data - 1] = 1;
        } else {
            bad++;
        }
    };
    // keep the SQ thread cycling: once it has said it sleeps, one NOP and a
    // wake-up. It clears NEED_WAKEUP as it runs, tens of us later; the
    // flush that follows (an atomic_andnot of CQ_OVERFLOW) comes after a
    // random spin up to --aim-after-ns, so that it falls around the clear.
    // (Flag writes that all come later, as a burst's after the wake-up, never
    // met it: x86-64 6.12, 30 s, 3 726 clears.)
    auto send_nop = [&] {
        io_uring_sqe* sqe = ring.get_sqe();
        if (!sqe)
            return;
        sqe->opcode = IORING_OP_NOP;
        sqe->user_data = kNop;
        ring.flush();
        ring.enter(0, 0, IORING_ENTER_SQ_WAKEUP);
        nop_out = true;
        nop_at = clock::now();
        const int64_t until = now_ns() + int64_t(rng() % (uint64_t(o.aim_after_ns) + 1));
        while (now_ns() < until)
            ;
    };
    auto maybe_wake = [&] {
        if (!nop_out && ring.sq_needs_wakeup(Fence::on)) {
            send_nop();
        } else if (nop_out && clock::now() - nop_at > limit) {
            nop_lost++; // woken, yet the NOP was not run: wake it again
            ring.enter(0, 0, IORING_ENTER_SQ_WAKEUP);
            nop_at = clock::now();
        } else if (!nop_out && clock::now() - nop_back > limit) {
            // idle a whole watchdog after its last NOP, the thread has set
            // NEED_WAKEUP and slept long ago: asleep without the flag, it
            // would never be woken by an application that trusts it
            wakeup_flag_lost += sq_thread_asleep() && !ring.sq_needs_wakeup(Fence::on);
            send_nop();
        }
    };
    Budget budget(o);
    auto t0 = clock::now();
    while (!budget.over(r.ops) && !g_interrupted.load(std::memory_order_relaxed)) {
        std::fill(seen.begin(), seen.end(), 0);
        for (unsigned i = 0; i < burst; i++) {
            io_uring_sqe* sqe = sender.get_sqe();
            sqe->opcode = IORING_OP_MSG_RING;
            sqe->fd = ring.fd();
            sqe->addr = IORING_MSG_DATA;
            sqe->len = i + 1; // the message's res
            sqe->off = i + 1; // its user_data
        }
        if (int e = sender.submit_and_wait(burst); e < 0) {
            r.counts["errors"] = 1;
            r.skipped = "io_uring_enter(MSG_RING burst) failed";
            break;
        }
        sender.reap(burst, [&](const io_uring_cqe& c) { msg_errors += c.res != 0; });
        unsigned got = 0;
        auto since_progress = clock::now();
        while (got < burst) {
            unsigned before = got;
            // wake the thread before reaping: 6.1's io_uring_enter flushes
            // the overflow list before it wakes the SQ thread, and with the
            // CQ still full that flush moves nothing and leaves the flag, so
            // the flush that empties the list is the aimed one below
            if (ring.sq_flag(IORING_SQ_CQ_OVERFLOW))
                maybe_wake();
            ring.reap(2 * burst, take);
            got = arrived();
            if (got == burst)
                break;
            if (ring.sq_flag(IORING_SQ_CQ_OVERFLOW)) {
                ring.enter(0, 0, IORING_ENTER_GETEVENTS);
                flushes++;
            } else if (got == before && clock::now() - since_progress > limit) {
                // the CQ is drained and the flag says nothing overflowed,
                // yet messages are missing: flush anyway
                ring.enter(0, 0, IORING_ENTER_GETEVENTS);
                ring.reap(2 * burst, take);
                unsigned now = arrived();
                flag_lost += now > got;
                lost += burst - now;
                got = now;
                break;
            }
            if (got > before)
                since_progress = clock::now();
        }
        r.ops += got;
        bursts++;
        // drained, and nothing of ours left to post: the list is empty
        if (!nop_out && ring.cq_ready() == 0)
            stale += ring.sq_flag(IORING_SQ_CQ_OVERFLOW);
        if (got < burst)
            break; // a lost message leaves the ring's accounting behind
    }
    // the last NOP: wake the thread until it has run it
    for (auto t = clock::now(); nop_out && clock::now() - t < 4 * limit;) {
        ring.enter(0, 0, IORING_ENTER_SQ_WAKEUP);
        ring.reap(2 * burst, take);
    }
    r.seconds = since(t0);
    r.anomalies["bad_cqe"] = bad;
    r.anomalies["lost_cqe"] = lost + nop_out;
    r.anomalies["overflow_flag_lost"] = flag_lost;
    r.anomalies["overflow_flag_stale"] = stale;
    r.anomalies["nop_lost"] = nop_lost;
    r.anomalies["wakeup_flag_lost"] = wakeup_flag_lost;
    r.counts["bursts"] = bursts;
    r.counts["flushes"] = flushes;
    r.counts["nops"] = nops;
    if (msg_errors)
        r.counts["errors"] = msg_errors; // a message refused: not the storm asked for
    if (bursts && (!flushes || !nops)) {
        // no overflow flushed or the SQ thread never woken: missing work,
        // never a pass
        r.counts["errors"] = 1;
    }
    return r;
}

} // namespace uringrace
