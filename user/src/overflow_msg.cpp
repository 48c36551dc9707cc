// uringrace: one CQ overflowed from one CPU while both CPUs flush it.
//
// io_uring marks a non-empty overflow list twice: IORING_SQ_CQ_OVERFLOW in
// sq_flags for user space, and IO_CHECK_CQ_OVERFLOW_BIT in ctx->check_cq for
// itself. The kernel's bit is set and cleared under the completion lock, but
// io_uring_enter(GETEVENTS) tests it first without any lock (and flushes if
// it is set), and while it is set a new completion goes to the list rather
// than the CQ, which keeps completions in order.
//
// Storms that flush only after they saw CQ_OVERFLOW test the bit after its
// set, never during it (sqpoll_flags: 0 reports for the plain set in 30 s).
// Here the test does not wait for the flag: a thread on CPU 1 floods the
// target ring's small CQ with MSG_RING messages (posted from its own context:
// the set) and, between bursts, enters the target ring with GETEVENTS (a
// lockless test from CPU 1, a flush and the clear). This task, on CPU 0,
// reaps and enters the same way whenever the CQ is empty. So the bit is set,
// tested and cleared from both CPUs at once, the whole run.
//
// Each message carries a sequence number; they must arrive in order (an
// out-of-order or repeated one: out_of_order), with the res they were sent
// with (bad_cqe), and none may be missing a watchdog after the last burst
// (lost_cqe).
//
// overflow_drop is the same flood with failslab armed for the sender thread
// alone (CONFIG_FAILSLAB: task filter, its make-it-fail, only allocations
// that cannot sleep): one overflow entry in two cannot be allocated, so the
// kernel drops the message, counts it (cq_off.overflow), sets its
// IO_CHECK_CQ_DROPPED_BIT in the same check_cq word the flushes test without
// a lock, and fails the MSG_RING with -EOVERFLOW. Every message is then
// either received or refused so: what is neither is lost (lost_cqe), the
// kernel's count must move by the refusals (drop_count), and the messages
// that do arrive still come in order, gaps allowed.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "raw_uring.hpp"
#include "workloads.hpp"

namespace uringrace {

namespace {

// a message's res: its sequence number, kept positive
int res_of(uint64_t seq) {
    return static_cast<int>(seq & 0x3fffffff);
}

constexpr const char* kFailslab = "/sys/kernel/debug/failslab/";

bool write_file(const std::string& path, const char* value) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f)
        return false;
    bool ok = std::fputs(value, f) >= 0;
    return std::fclose(f) == 0 && ok;
}

// failslab armed for the tasks that ask for it (make_it_fail()), disarmed
// again when this goes: a failed allocation elsewhere would be another
// storm's trouble
class Failslab {
  public:
    // pct: the chance an allocation that cannot sleep fails. Empty, or
    // what could not be set (err: its errno).
    std::string arm(unsigned pct, int& err) {
        const std::pair<const char*, std::string> knobs[] = {
            {"task-filter", "Y"}, {"ignore-gfp-wait", "Y"}, {"verbose", "0"},
            {"interval", "1"},    {"times", "-1"},          {"probability", std::to_string(pct)}};
        for (const auto& [name, value] : knobs) {
            if (!write_file(std::string(kFailslab) + name, value.c_str()))
                return std::string(kFailslab) + name + ": " + std::strerror(err = errno) +
                       " (needs CONFIG_FAILSLAB and CONFIG_FAULT_INJECTION_DEBUG_FS, debugfs "
                       "mounted)";
            armed_ = true;
        }
        return {};
    }
    ~Failslab() {
        if (armed_)
            write_file(std::string(kFailslab) + "probability", "0");
    }

  private:
    bool armed_ = false;
};

// the calling thread's allocations may now fail (failslab's task filter)
bool make_it_fail() {
    return write_file("/proc/thread-self/make-it-fail", "1");
}

// one in two: each drop is a set of the DROPPED mark, and the overflow list
// still fills between drops, so the overflow mark's set and clear race it
// too (one in ten: 4 101 drops and 1 report of the plain set in 30 s)
constexpr unsigned kDropPct = 50;

Result flood(const Options& o, bool drop) {
    Result r = base(o, "raw");
    if (!two_cpus(r, "the sender on one, the ring's reaper on the other"))
        return r;
    RawRing target, sender;
    if (!ring_ready(r, target.init(o.entries, 0, 0, -1, o.entries), "io_uring_setup(CQSIZE)",
                    target.what()))
        return r;
    // a burst overflows the CQ twice over; at most `window` messages are
    // owed at once, so the overflow list stays short (no failed allocation
    // drops one)
    const unsigned burst = 2 * o.entries, window = 8 * burst;
    if (!ring_ready(r, sender.init(burst), "io_uring_setup", sender.what()))
        return r;
    if (!pin_or_error(r, 0))
        return r;
    Failslab failslab;
    if (drop) {
        int err = 0;
        if (std::string why = failslab.arm(kDropPct, err); !why.empty()) {
            // a kernel without failslab lacks the feature (a skip, which a
            // guest that must run everything fails); anything else is an error
            r.skipped = "failslab: " + why;
            if (err != ENOENT)
                r.counts["errors"] = 1;
            return r;
        }
    }
    const unsigned dropped_before = target.cq_dropped();
    std::atomic<uint64_t> sent{0}, received{0}, refused{0};
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> msg_errors{0}, sender_flushes{0}, bursts{0};
    std::thread flood([&] {
        if (!pin_self(1) || (drop && !make_it_fail())) {
            msg_errors.store(1);
            return;
        }
        uint64_t seq = sent.load();
        while (!stop.load(std::memory_order_relaxed)) {
            if (seq - received.load(std::memory_order_acquire) - refused.load() > window) {
                target.enter(0, 0, IORING_ENTER_GETEVENTS);
                sender_flushes.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            for (unsigned i = 0; i < burst; i++) {
                io_uring_sqe* sqe = sender.get_sqe();
                sqe->opcode = IORING_OP_MSG_RING;
                sqe->fd = target.fd();
                sqe->addr = IORING_MSG_DATA;
                sqe->len = static_cast<uint32_t>(res_of(seq + i)); // the message's res
                sqe->off = seq + i;                                // its user_data
            }
            if (sender.submit_and_wait(burst) < 0) {
                msg_errors.fetch_add(1);
                return;
            }
            uint64_t failed = 0, dropped = 0;
            sender.reap(burst, [&](const io_uring_cqe& c) {
                dropped += drop && c.res == -EOVERFLOW;
                failed += c.res != 0 && !(drop && c.res == -EOVERFLOW);
            });
            refused.fetch_add(dropped);
            if (failed) {
                // a message not posted, and not a drop asked for, leaves a
                // gap the order check would count: stop, as an error
                msg_errors.fetch_add(failed);
                return;
            }
            seq += burst;
            sent.store(seq, std::memory_order_release);
            bursts.fetch_add(1, std::memory_order_relaxed);
            target.enter(0, 0, IORING_ENTER_GETEVENTS);
            sender_flushes.fetch_add(1, std::memory_order_relaxed);
        }
    });
    uint64_t next = 0, out_of_order = 0, bad = 0, overflow_seen = 0, flushes = 0, lost = 0;
    auto take = [&](const io_uring_cqe& c) {
        // a dropped message leaves a gap; nothing may come back or twice
        out_of_order += drop ? c.user_data < next : c.user_data != next;
        bad += c.res != res_of(c.user_data);
        next = std::max<uint64_t>(next, c.user_data + 1);
    };
    using clock = std::chrono::steady_clock;
    const auto limit = std::chrono::milliseconds(o.watchdog_ms);
    auto progress = clock::now();
    // reap what came; with the CQ empty, enter to flush. True while the
    // messages owed keep coming (or none are owed).
    auto pump = [&] {
        overflow_seen += target.sq_flag(IORING_SQ_CQ_OVERFLOW);
        unsigned n = target.reap(2 * burst, take);
        if (n) {
            received.fetch_add(n, std::memory_order_release);
            progress = clock::now();
            return true;
        }
        target.enter(0, 0, IORING_ENTER_GETEVENTS);
        flushes++;
        if (received.load() + refused.load() >= sent.load(std::memory_order_acquire)) {
            progress = clock::now();
            return true;
        }
        return clock::now() - progress < limit;
    };
    Budget budget(o);
    auto t0 = clock::now();
    bool flowing = true;
    while (flowing && !budget.over(received.load()) &&
           !g_interrupted.load(std::memory_order_relaxed) && !msg_errors.load())
        flowing = pump();
    stop.store(true);
    flood.join();
    // the sender is done: everything it sent must arrive
    progress = clock::now();
    const uint64_t owed = sent.load() - refused.load();
    while (flowing && received.load() < owed)
        flowing = pump();
    if (received.load() < owed)
        lost = owed - received.load();
    r.seconds = since(t0);
    r.ops = received.load();
    r.anomalies["out_of_order"] = out_of_order;
    r.anomalies["bad_cqe"] = bad;
    r.anomalies["lost_cqe"] = lost;
    r.counts["bursts"] = bursts.load();
    r.counts["flushes"] = flushes;
    r.counts["sender_flushes"] = sender_flushes.load();
    r.counts["overflow_seen"] = overflow_seen;
    if (drop) {
        // the kernel's count of drops (32 bits, it wraps) against the refusals
        const unsigned counted = target.cq_dropped() - dropped_before;
        r.counts["dropped"] = refused.load();
        r.anomalies["drop_count"] = counted != static_cast<unsigned>(refused.load());
    }
    if (msg_errors.load())
        r.counts["errors"] = msg_errors.load(); // a message refused: not the storm asked for
    else if (!bursts.load() || !overflow_seen || (drop && !refused.load()))
        r.counts["errors"] = 1; // never overflowed or dropped: missing work, never a pass
    return r;
}

} // namespace

Result run_overflow_msg(const Options& o) {
    return flood(o, false);
}

Result run_overflow_drop(const Options& o) {
    return flood(o, true);
}

} // namespace uringrace
