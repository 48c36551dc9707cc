// uringrace: the wake-up of a task asleep in io_uring_enter(GETEVENTS) on a
// DEFER_TASKRUN ring, by local task work a pipe write queues.
//
// The protocol is store buffering, as seed 000's: the waiter stores
// ctx->cq_wait_nr (how many completions it waits for) and then, after
// set_current_state()'s full barrier, loads the local work list; the waker
// (the pipe write's poll callback, in the writer's context) adds its request
// to the list with a cmpxchg (a full barrier) and then loads cq_wait_nr to
// decide whether to wake the waiter. Each side must see the other's store.
//
// One attempt: an 8-byte read of the empty pipe is submitted (it parks on
// poll), the writer thread is cued, spins 0..--aim-after-ns and writes, and
// this task waits for the completion at most --watchdog-ms. A wait that ran
// out its limit although the write had returned at least half the limit
// before it ended is a lost wake-up, confirmed when the completion then
// appears as soon as this task runs its local work without waiting (if it
// does not, the read stalled: counted apart). A writer that was itself late
// (descheduled) is counted as such, never as lost.
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <thread>
#include <unistd.h>

#include "fences.hpp"
#include "raw_uring.hpp"
#include "workloads.hpp"

namespace uringrace {

namespace {

using clock_type = std::chrono::steady_clock;

int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               clock_type::now().time_since_epoch())
        .count();
}

// What the waiter asks of the writer, and when the writer did it.
struct Cue {
    std::atomic<uint64_t> asked{0};    // attempt number to write for
    std::atomic<uint64_t> delay_ns{0}; // stored before asked
    std::atomic<uint64_t> done{0};     // attempt number written for
    std::atomic<int64_t> wrote_at{0};  // now_ns() after write() returned; before done
    std::atomic<bool> stop{false};
};

void writer_loop(Cue& cue, int fd) {
    const uint64_t word = 0x7572696e67726163; // "uringrac"
    uint64_t last = 0;
    while (!cue.stop.load(std::memory_order_relaxed)) {
        uint64_t n = cue.asked.load(std::memory_order_acquire);
        if (n == last)
            continue;
        spin_for(cue.delay_ns.load(std::memory_order_relaxed));
        if (write(fd, &word, sizeof(word)) != sizeof(word))
            break; // the waiter sees no write and stops as an error
        cue.wrote_at.store(now_ns(), std::memory_order_relaxed);
        cue.done.store(n, std::memory_order_release);
        last = n;
    }
}

} // namespace

Result run_defer_wait(const Options& o) {
    Result r = base(o, "raw");
    RawRing ring;
    if (int e = ring.init(8, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN); e) {
        r.skipped = skip_reason(e, "io_uring_setup(DEFER_TASKRUN)");
        return r;
    }
    int pfd[2];
    if (pipe(pfd)) {
        r.skipped = std::string("pipe: ") + std::strerror(errno);
        return r;
    }
    const unsigned ncpu = std::max(1u, std::thread::hardware_concurrency());
    if (ncpu > 1)
        pin_self(0);
    Cue cue;
    std::thread writer([&] {
        if (ncpu > 1)
            pin_self(1);
        writer_loop(cue, pfd[1]);
    });
    const uint64_t limit_ns = uint64_t(o.watchdog_ms) * 1000000;
    std::mt19937_64 rng(o.seed);
    std::uniform_int_distribution<uint64_t> delay(0, o.aim_after_ns);
    uint64_t sink = 0, attempts = 0, lost = 0, late = 0, stalled = 0, bad = 0;
    Budget budget(o);
    auto t0 = clock_type::now();
    while (!budget.over(attempts)) {
        io_uring_sqe* sqe = ring.get_sqe();
        sqe->opcode = IORING_OP_READ;
        sqe->fd = pfd[0];
        sqe->addr = reinterpret_cast<uint64_t>(&sink);
        sqe->len = sizeof(sink);
        sqe->user_data = ++attempts;
        if (int e = ring.submit_and_wait(0); e != 1) {
            r.counts["errors"] = 1;
            r.counts["submit_error"] = e < 0 ? -e : 0;
            break;
        }
        cue.delay_ns.store(delay(rng), std::memory_order_relaxed);
        cue.asked.store(attempts, std::memory_order_release);
        int w = ring.wait(1, limit_ns);
        int64_t ended = now_ns();
        if (w != 0 && w != -ETIME && w != -EINTR) {
            r.counts["errors"] = 1;
            r.counts["wait_error"] = -w;
            break;
        }
        unsigned got = 0;
        auto take = [&](const io_uring_cqe& c) {
            got++;
            bad += c.user_data != attempts || c.res != int(sizeof(sink));
        };
        ring.reap(1, take);
        if (!got && w == -ETIME) {
            bool wrote = cue.done.load(std::memory_order_acquire) == attempts;
            int64_t at = cue.wrote_at.load(std::memory_order_relaxed);
            // run the local work without waiting: a lost wake-up's completion
            // is there already
            ring.enter(0, 0, IORING_ENTER_GETEVENTS);
            ring.reap(1, take);
            if (!wrote || ended - at < int64_t(limit_ns / 2))
                late++;
            else if (got)
                lost++;
            else
                stalled++;
        }
        // catch up: the writer's write is owed to this attempt's read
        auto t_catch = clock_type::now();
        while (!got && clock_type::now() - t_catch < std::chrono::seconds(5)) {
            ring.wait(1, limit_ns);
            ring.reap(1, take);
        }
        if (!got) {
            r.counts["errors"] = 1;
            r.counts["never_completed"] = attempts;
            break;
        }
        while (cue.done.load(std::memory_order_acquire) != attempts &&
               clock_type::now() - t_catch < std::chrono::seconds(5))
            ;
        r.ops++;
        if (lost && o.until_witness)
            break;
    }
    cue.stop.store(true);
    writer.join();
    close(pfd[0]);
    close(pfd[1]);
    r.seconds = since(t0);
    r.anomalies["lost_wakeups"] = lost;
    r.anomalies["bad_cqe"] = bad;
    r.anomalies["stalled"] = stalled; // written long before, yet no completion
    r.counts["attempts"] = attempts;
    r.counts["late_writer"] = late;
    r.counts["aim_after_ns"] = o.aim_after_ns;
    return r;
}

} // namespace uringrace
