// uringrace: a multishot poll woken without a pause.
//
// One IORING_OP_POLL_ADD with IORING_POLL_ADD_MULTI on an eventfd that is
// never read (so always readable), while a thread on the other CPU writes
// it without a pause. Each write wakes the poll (io_poll_wake): the waker
// takes a reference in req->poll_refs (atomic_fetch_inc); the first takes
// ownership and queues task work, which this task runs (io_poll_check_events)
// reading poll_refs, posting a CQE and giving back what it saw, looping while
// more wake-ups came in meanwhile. So the task reads the count while the
// writer's wake-ups raise it, the whole run.
//
// Every CQE must be the poll's, with EPOLLIN in res (bad_cqe); a CQE
// without IORING_CQE_F_MORE ends the multishot (the CQ was full), and it is
// armed again (rearms). At the end the writer stops, the CQ is drained, and
// one more write must bring a CQE within the watchdog (lost_wakeup).
//
// The taskrun form sets the ring up with COOP_TASKRUN | TASKRUN_FLAG: each
// wake-up that takes ownership adds task work from the writer's CPU, which
// sets IORING_SQ_TASKRUN when the task's list was empty (6.1's
// __io_req_task_work_add, 6.12's io_req_normal_work_add), and this task
// clears the flag each time it has run the work (ctx_flush_and_put): a set
// and a clear of one word on two CPUs thousands of times a second, where
// the overflow storm's task work comes a few hundred times a storm on 6.1.
//
// The defer form sets the ring up with SINGLE_ISSUER | DEFER_TASKRUN |
// TASKRUN_FLAG: each wake-up that takes ownership queues local work from
// the writer's CPU (io_req_local_work_add: it sets IORING_SQ_TASKRUN on an
// empty list and reads how many completions the waiter waits for,
// ctx->cq_wait_nr), while this task, waiting in io_uring_enter over and
// over, sets cq_wait_nr before each sleep and resets it after, and clears
// the flag as it runs the work.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <poll.h>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>

#include "raw_uring.hpp"
#include "workloads.hpp"

namespace uringrace {

namespace {

constexpr uint64_t kPoll = 1;

bool arm(RawRing& ring, int efd) {
    io_uring_sqe* sqe = ring.get_sqe();
    if (!sqe)
        return false;
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = efd;
    sqe->poll32_events = POLLIN;
    sqe->len = IORING_POLL_ADD_MULTI;
    sqe->user_data = kPoll;
    return ring.submit_and_wait(0) == 1;
}

enum class Tw { plain, taskrun, defer };

Result poll_storm(const Options& o, Tw tw) {
    Result r = base(o, "raw");
    if (!two_cpus(r, "the writer on one, the ring's task on the other"))
        return r;
    struct Setup {
        unsigned flags;
        const char* what;
    };
    static constexpr Setup kSetup[] = {
        // by Tw
        {0, "io_uring_setup"},
        {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
         "io_uring_setup(COOP_TASKRUN, TASKRUN_FLAG)"},
        {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
         "io_uring_setup(DEFER_TASKRUN)"},
    };
    const Setup& s = kSetup[static_cast<unsigned>(tw)];
    RawRing ring;
    if (!ring_ready(r, ring.init(o.entries, s.flags), s.what, ring.what()))
        return r;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) {
        setup_failed(r, "eventfd");
        return r;
    }
    if (!pin_or_error(r, 0)) {
        close(efd);
        return r;
    }
    if (!arm(ring, efd)) {
        close(efd);
        r.counts["errors"] = 1;
        r.skipped = "cannot arm the multishot poll";
        return r;
    }
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> writes{0};
    std::thread writer([&] {
        pin_self(1);
        const uint64_t one = 1;
        while (!stop.load(std::memory_order_relaxed))
            if (write(efd, &one, sizeof(one)) == sizeof(one))
                writes.fetch_add(1, std::memory_order_relaxed);
    });
    uint64_t bad = 0, rearms = 0, lost = 0, arm_failed = 0, taskrun = 0;
    bool ended = false;
    auto take = [&](const io_uring_cqe& c) {
        if (c.user_data != kPoll || (c.res >= 0 && !(c.res & POLLIN)))
            bad++;
        ended |= !(c.flags & IORING_CQE_F_MORE);
    };
    // wait (which runs the poll's task work), reap, arm again if it ended
    auto pump = [&](uint64_t wait_ns) {
        ring.wait(1, wait_ns);
        taskrun += ring.sq_flag(IORING_SQ_TASKRUN);
        r.ops += ring.reap(o.entries, take);
        if (ended) {
            ended = false;
            rearms++;
            arm_failed += !arm(ring, efd);
        }
    };
    Budget budget(o);
    auto t0 = std::chrono::steady_clock::now();
    while (!budget.over(r.ops) && !g_interrupted.load(std::memory_order_relaxed) && !arm_failed)
        pump(10000000);
    stop.store(true);
    writer.join();
    // drain, then one write must still be seen
    for (int i = 0; i < 8 && !arm_failed; i++)
        pump(1000000);
    const uint64_t one = 1;
    if (!arm_failed && write(efd, &one, sizeof(one)) == sizeof(one)) {
        unsigned got = 0;
        auto t = std::chrono::steady_clock::now();
        while (!got &&
               std::chrono::steady_clock::now() - t < std::chrono::milliseconds(o.watchdog_ms)) {
            ring.wait(1, 1000000);
            got = ring.reap(o.entries, take);
        }
        r.ops += got;
        lost += !got;
    }
    close(efd);
    r.seconds = since(t0);
    r.anomalies["bad_cqe"] = bad;
    r.anomalies["lost_wakeup"] = lost;
    r.counts["writes"] = writes.load();
    r.counts["rearms"] = rearms;
    if (tw != Tw::plain)
        r.counts["taskrun_seen"] = taskrun; // task work added since the wait ran it
    if (arm_failed || !writes.load() || !r.ops)
        r.counts["errors"] = 1; // the poll not armed or never woken: missing work
    return r;
}

} // namespace

Result run_poll_multi(const Options& o) {
    return poll_storm(o, Tw::plain);
}
Result run_poll_multi_taskrun(const Options& o) {
    return poll_storm(o, Tw::taskrun);
}
Result run_poll_multi_defer(const Options& o) {
    return poll_storm(o, Tw::defer);
}

} // namespace uringrace
