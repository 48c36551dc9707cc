// uringrace: seed 000 on the running kernel's own io_uring, aimed.
//
// The SQ thread (io_sq_thread) decides to sleep when jiffies passes its idle
// deadline, so on a timer tick: it sets NEED_WAKEUP (atomic_or, then
// smp_mb__after_atomic), looks at the SQ tail once more, and sleeps if it saw
// nothing. User space sees tick edges as steps of CLOCK_MONOTONIC_COARSE.
// Each attempt here: one NOP submitted with the full fence makes the thread
// busy (its idle deadline restarts); then a NOP is published at an offset from
// a tick edge after that one completed (the first or the second edge, the
// offset swept over [-before, +after] ns; a negative offset aims before the
// second edge, predicted from the first and the tick period) with the
// application's store->load form under test (--fence, fences.hpp).
// The SQ thread is pinned to CPU 0 (IORING_SETUP_SQ_AFF), we run on CPU 1.
//
// A lost wake-up is counted only when confirmed: we read NEED_WAKEUP clear
// and sent no wake-up, and after the watchdog the SQE is still unconsumed,
// NEED_WAKEUP is set and the iou-sqp thread sleeps (state S). Then we wake it,
// as a careful application would, and go on.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <pthread.h>
#include <random>
#include <sched.h>
#include <thread>
#include <vector>

#include "fences.hpp"
#include "raw_uring.hpp"
#include "workloads.hpp"

namespace uringrace {

namespace {

using clock_type = std::chrono::steady_clock;

// Spin until CLOCK_MONOTONIC_COARSE steps (a tick edge); return the fine
// clock at the step, or -1 after limit_ns without one.
int64_t next_edge(int64_t limit_ns) {
    const int64_t c0 = now_ns(CLOCK_MONOTONIC_COARSE);
    const int64_t t0 = now_ns(CLOCK_MONOTONIC);
    for (;;) {
        int64_t t = now_ns(CLOCK_MONOTONIC);
        if (now_ns(CLOCK_MONOTONIC_COARSE) != c0)
            return t;
        if (t - t0 > limit_ns)
            return -1;
    }
}

void spin_until(int64_t t_ns) {
    while (now_ns(CLOCK_MONOTONIC) < t_ns)
        ;
}

} // namespace

Result run_sqpoll_aim(const Options& o) {
    Result r = base(o, "raw");
    if (!two_cpus(r, "the SQ thread on one, the application on the other"))
        return r;
    RawRing ring;
    if (!ring_ready(r, ring.init(8, IORING_SETUP_SQPOLL, o.idle_ms, 0),
                    "io_uring_setup(SQPOLL|SQ_AFF)", ring.what()))
        return r;
    if (!pin_or_error(r, 1))
        return r;
    // the tick period, from edges the coarse clock shows (median of 8)
    std::vector<int64_t> gaps;
    for (int64_t prev = next_edge(100000000), t; gaps.size() < 8 && prev > 0; prev = t) {
        t = next_edge(100000000);
        if (t < 0)
            break;
        gaps.push_back(t - prev);
    }
    if (gaps.size() < 8) {
        r.counts["errors"] = 1;
        r.skipped = "CLOCK_MONOTONIC_COARSE did not step within 100 ms: no tick to aim at";
        return r;
    }
    std::nth_element(gaps.begin(), gaps.begin() + 4, gaps.end());
    const int64_t tick = gaps[4];

    std::mt19937_64 rng(o.seed);
    Budget budget(o);
    uint64_t attempts = 0, late = 0, lost = 0, bad = 0, warm_stalls = 0;
    std::map<std::string, uint64_t> hits; // lost wake-ups by edge and 100 ns offset bucket
    const auto wd = std::chrono::milliseconds(o.watchdog_ms);
    auto t0 = clock_type::now();
    uint64_t next_id = 1;
    // wait for one CQE; on the watchdog, judge (when asked) and wake
    auto complete = [&](bool judge, bool woke, bool& was_lost) {
        Watchdog dog{wd};
        dog.arm(clock_type::now());
        was_lost = false;
        for (;;) {
            if (ring.reap(1, [&](const io_uring_cqe& c) { bad += c.res != 0; }))
                return true;
            if (g_interrupted.load(std::memory_order_relaxed))
                return false;
            if (dog.expired(clock_type::now())) {
                was_lost = judge && !woke && ring.sq_unconsumed() > 0 && ring.sq_needs_wakeup() &&
                           sq_thread_asleep();
                ring.enter(0, 0, IORING_ENTER_SQ_WAKEUP);
                woke = true;
                dog.arm(clock_type::now());
                if (!judge)
                    warm_stalls++;
                judge = false;
            }
        }
    };
    auto publish = [&](Fence f) {
        io_uring_sqe* sqe = ring.get_sqe();
        sqe->opcode = IORING_OP_NOP;
        sqe->user_data = next_id++;
        bool woke = store_then_load(
            f, o.reorder_ns, [&] { ring.flush(); },
            [&](Fence g) { return ring.sq_needs_wakeup(g); });
        if (woke)
            ring.enter(0, 0, IORING_ENTER_SQ_WAKEUP);
        return woke;
    };
    const int64_t span = int64_t(o.aim_before_ns) + o.aim_after_ns + 1;
    while (!budget.over(attempts)) {
        bool was_lost;
        // the thread busy: its idle deadline restarts now
        if (!complete(false, publish(Fence::on), was_lost))
            break;
        int64_t off = int64_t(rng() % uint64_t(span)) - o.aim_before_ns;
        int edge = off < 0 ? 2 : o.aim_edge ? int(o.aim_edge) : 1 + int(rng() % 2);
        int64_t e1 = next_edge(4 * tick);
        if (e1 < 0)
            continue;
        int64_t target = e1 + off;
        if (off < 0)
            target = e1 + tick + off; // before the predicted second edge
        else if (edge == 2) {
            int64_t e2 = next_edge(4 * tick);
            if (e2 < 0)
                continue;
            target = e2 + off;
        }
        spin_until(target);
        bool woke = publish(o.fence);
        attempts++;
        late += woke;
        if (!complete(true, woke, was_lost))
            break;
        r.ops++;
        if (was_lost) {
            lost++;
            int64_t b = (off >= 0 ? off : off - 99) / 100 * 100;
            char key[48];
            snprintf(key, sizeof(key), "lost_edge%d_%+05lldns", edge, (long long)b);
            hits[key]++;
        }
    }
    r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    r.anomalies["lost_wakeups"] = lost;
    r.anomalies["bad_cqe"] = bad;
    r.counts["attempts"] = attempts;
    r.counts["late"] = late; // NEED_WAKEUP already set when we looked: we woke it
    r.counts["warm_stalls"] = warm_stalls;
    r.counts["tick_ns"] = uint64_t(tick);
    r.counts["aim_before_ns"] = o.aim_before_ns;
    r.counts["aim_after_ns"] = o.aim_after_ns;
    for (auto& [k, v] : hits)
        r.counts[k] = v;
    return r;
}

} // namespace uringrace
