// uringrace: CQ overflow and task-work flags on the running kernel's io_uring.
//
// A ring with a CQ of o.entries and COOP_TASKRUN | TASKRUN_FLAG: each round
// submits four times the CQ's size in NOPs, half of them IOSQE_ASYNC (io-wq
// workers complete them and add task work, setting IORING_SQ_TASKRUN in
// sq_flags), before reaping any. The kernel keeps what does not fit in its
// overflow list and sets IORING_SQ_CQ_OVERFLOW in the same word; we reap, and
// when the CQ is empty with completions missing, enter the kernel to flush.
// Every user_data of a round must come back exactly once, within the
// watchdog's limit.
#include <algorithm>
#include <random>
#include <vector>

#include "raw_uring.hpp"
#include "workloads.hpp"

namespace uringrace {

Result run_overflow(const Options& o) {
    Result r = base(o, "raw");
    RawRing ring;
    const unsigned cq = o.entries;
    if (int e =
            ring.init(o.entries, IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, 0, -1, cq);
        e) {
        r.skipped = skip_reason(e, "io_uring_setup(CQSIZE, TASKRUN_FLAG)");
        return r;
    }
    const unsigned round = 4 * cq;
    std::mt19937_64 rng(o.seed);
    std::vector<uint8_t> seen(round);
    uint64_t dup = 0, bad = 0, lost = 0, rounds = 0, overflowed = 0;
    Budget budget(o);
    Watchdog dog{std::chrono::milliseconds(o.watchdog_ms)};
    auto t0 = std::chrono::steady_clock::now();
    while (!budget.over(r.ops)) {
        std::fill(seen.begin(), seen.end(), 0);
        unsigned sent = 0;
        while (sent < round) {
            unsigned n = 0;
            for (; n < o.entries && sent + n < round; n++) {
                io_uring_sqe* sqe = ring.get_sqe();
                if (!sqe)
                    break;
                sqe->opcode = IORING_OP_NOP;
                sqe->flags = rng() % 2 ? IOSQE_ASYNC : 0;
                sqe->user_data = sent + n + 1;
            }
            if (int e = ring.submit_and_wait(0); e < 0) {
                r.counts["errors"] = 1;
                break;
            }
            sent += n;
        }
        if (r.counts.count("errors"))
            break;
        unsigned got = 0;
        dog.arm(std::chrono::steady_clock::now());
        while (got < round) {
            overflowed += ring.cq_overflowed();
            unsigned n = ring.reap(round, [&](const io_uring_cqe& c) {
                if (c.user_data == 0 || c.user_data > round) {
                    bad++;
                    return;
                }
                dup += seen[c.user_data - 1]++ != 0;
            });
            got += n;
            if (n) {
                dog.arm(std::chrono::steady_clock::now());
                continue;
            }
            if (dog.expired(std::chrono::steady_clock::now())) {
                lost += round - got;
                break;
            }
            // the CQ is empty: flush the overflow list, run task work, wait
            // a little for io-wq's completions
            ring.enter(0, 1, IORING_ENTER_GETEVENTS);
        }
        r.ops += got;
        rounds++;
        if (lost)
            break; // a lost completion leaves the ring's accounting behind
    }
    r.seconds = since(t0);
    r.anomalies["duplicate_cqe"] = dup;
    r.anomalies["bad_cqe"] = bad;
    r.anomalies["lost_cqe"] = lost;
    r.counts["rounds"] = rounds;
    r.counts["overflow_seen"] = overflowed;
    if (rounds && !overflowed) {
        // the storm exists to overflow the CQ: a run that never did is not
        // work done
        r.counts["errors"] = 1;
    }
    return r;
}

} // namespace uringrace
