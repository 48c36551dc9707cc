// uringrace: CQ overflow and task-work flags on the running kernel's io_uring.
//
// A ring with a CQ of o.entries and COOP_TASKRUN | TASKRUN_FLAG: each round
// submits four times the CQ's size before reaping any: NOPs, IOSQE_ASYNC NOPs
// (io-wq workers post them under the completion lock) and reads of an
// eventfd at 0, which a writer thread then counts up: each read's poll
// wake-up adds task work from the writer's context, setting
// IORING_SQ_TASKRUN in sq_flags while this task runs task work, clears it,
// and posts the completions that do not fit into the overflow list, setting
// IORING_SQ_CQ_OVERFLOW in the same word. We reap, and when the CQ is empty with completions
// missing, enter the kernel to flush. Every user_data of a round must come back exactly once,
// within the watchdog's limit. The defer form sets the ring up with SINGLE_ISSUER | DEFER_TASKRUN
// instead of COOP_TASKRUN: the wake-ups queue local work (io_req_local_work_add) that runs only
// when we wait.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <random>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "raw_uring.hpp"
#include "workloads.hpp"

namespace uringrace {

namespace {

Result overflow_storm(const Options& o, bool defer) {
    Result r = base(o, "raw");
    RawRing ring;
    const unsigned cq = o.entries;
    const unsigned flags =
        IORING_SETUP_TASKRUN_FLAG | (defer ? IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN
                                           : IORING_SETUP_COOP_TASKRUN);
    if (!ring_ready(r, ring.init(o.entries, flags, 0, -1, cq),
                    defer ? "io_uring_setup(CQSIZE, DEFER_TASKRUN)"
                          : "io_uring_setup(CQSIZE, TASKRUN_FLAG)",
                    ring.what()))
        return r;
    // An eventfd (a semaphore: a read takes one), not a pipe: 6.1's pipes
    // lack FMODE_NOWAIT, so io_uring retries a poll-woken pipe read 128
    // times (APOLL_MAX_RETRY), then hands it to io-wq, and each round waited
    // tens of ms for its reads (a tenth of 6.12's wake-ups). The guests'
    // kernels have no AF_UNIX for a socket.
    int efd = eventfd(0, EFD_SEMAPHORE | EFD_CLOEXEC);
    if (efd < 0) {
        setup_failed(r, "eventfd");
        return r;
    }
    // the writer: one count for each read asked for
    std::atomic<int> owed{0};
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        const uint64_t one = 1;
        while (!stop.load(std::memory_order_relaxed)) {
            if (owed.load(std::memory_order_acquire) > 0) {
                if (write(efd, &one, sizeof(one)) == sizeof(one))
                    owed.fetch_sub(1, std::memory_order_acq_rel);
            } else {
                std::this_thread::yield();
            }
        }
    });
    const unsigned round = 4 * cq;
    std::mt19937_64 rng(o.seed);
    uint64_t buf_sink[64];
    std::vector<uint8_t> seen(round);
    uint64_t dup = 0, bad = 0, lost = 0, rounds = 0, overflowed = 0, taskrun = 0, idle = 0;
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
                unsigned kind = rng() % 3, reads = 0;
                if (kind == 2) { // a read: parked on poll until counted up
                    sqe->opcode = IORING_OP_READ;
                    sqe->fd = efd;
                    sqe->addr = reinterpret_cast<uint64_t>(&buf_sink[(sent + n) % 64]);
                    sqe->len = sizeof(uint64_t);
                    reads++;
                } else {
                    sqe->opcode = IORING_OP_NOP;
                    sqe->flags = kind ? IOSQE_ASYNC : 0;
                }
                sqe->user_data = sent + n + 1;
                owed.fetch_add(static_cast<int>(reads), std::memory_order_acq_rel);
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
            overflowed += ring.sq_flag(IORING_SQ_CQ_OVERFLOW);
            taskrun += ring.sq_flag(IORING_SQ_TASKRUN);
            unsigned n = ring.reap(round, [&](const io_uring_cqe& c) {
                if (c.user_data == 0 || c.user_data > round) {
                    bad++;
                    return;
                }
                dup += seen[c.user_data - 1]++ != 0;
                bad += c.res < 0;
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
            // the CQ is empty: flush the overflow list and run task work at
            // once, as a busy reaper does, so that the task's clears of
            // sq_flags follow a wake-up's set within microseconds (inside
            // KCSAN's watch of it); every 16th time wait for a completion,
            // which io-wq's workers may still owe
            ring.enter(0, ++idle % 16 ? 0 : 1, IORING_ENTER_GETEVENTS);
        }
        r.ops += got;
        rounds++;
        if (lost)
            break; // a lost completion leaves the ring's accounting behind
    }
    stop.store(true);
    writer.join();
    close(efd);
    r.seconds = since(t0);
    r.anomalies["duplicate_cqe"] = dup;
    r.anomalies["bad_cqe"] = bad;
    r.anomalies["lost_cqe"] = lost;
    r.counts["rounds"] = rounds;
    r.counts["overflow_seen"] = overflowed;
    r.counts["taskrun_seen"] = taskrun;
    if (rounds && !overflowed) {
        // the storm exists to overflow the CQ: a run that never did is not
        // work done
        r.counts["errors"] = 1;
    }
    return r;
}

} // namespace

Result run_overflow(const Options& o) {
    return overflow_storm(o, false);
}
Result run_overflow_defer(const Options& o) {
    return overflow_storm(o, true);
}

} // namespace uringrace
