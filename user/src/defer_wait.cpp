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
// out its limit (by the clock: the kernel runs the local work when its timer
// fires and then reports the completion, not -ETIME) although the write had
// returned at least half the limit before it ended is a lost wake-up,
// confirmed by the completion being there at once, without waiting (if it
// is not, the read stalled: counted apart). A writer that was itself late
// (descheduled) is counted as such, never as lost.
//
// The eventfd form waits the way an event loop does: the ring's registered
// eventfd in poll(2), then a non-waiting enter to run the local work the
// notification announced. io_req_local_work_add signals the eventfd when it
// adds to an empty list; from a wake-up (the pipe's poll callback) that
// signal is deferred to an RCU callback, guarded by a pending bit in the
// eventfd's ops word. A poll that ran out its limit with the write long
// done, whose completion then appears, is a lost notification.
//
// The message form is the wake-up of a task waiting on an ordinary ring for
// a completion another task posts: the cued writer sends an
// IORING_OP_MSG_RING from a ring of its own, which posts the CQE into the
// task's ring in the writer's context (io_post_aux_cqe -> io_cq_unlock_post:
// the CQ tail stored, then the wait queue loaded by wq_has_sleeper, a full
// barrier between), while the task queues itself on that wait queue
// (prepare_to_wait_exclusive) and then loads the tail. A wait that ran out
// with the message posted long before, the task asleep, is a lost wake-up.
// (Not an io-wq worker's completion: the task work that frees the request
// after the worker's post wakes the task anyway, even with COOP_TASKRUN
// (TWA_SIGNAL_NO_IPI wakes a sleeper), so a lost CQ wake-up never shows
// there: the emulated form lost none in 14 212 attempts.)
#include <atomic>
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <random>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>

#include "fences.hpp"
#include "raw_uring.hpp"
#include "workloads.hpp"

namespace uringrace {

namespace {

using clock_type = std::chrono::steady_clock;

// Who completes the request the task waits for.
enum class Waker {
    local_work, // a pipe write's poll callback queues local task work (DEFER_TASKRUN)
    eventfd,    // the same, the task waiting on the ring's registered eventfd
    msg_ring,   // the writer posts a message CQE into the task's ordinary ring
};
constexpr int kMessage = 0x75726d; // a message's res

// What the waiter asks of the writer, and what the writer did and saw.
struct Cue {
    std::atomic<uint64_t> asked{0};      // attempt number to write for
    std::atomic<uint64_t> delay_ns{0};   // stored before asked
    std::atomic<uint64_t> done{0};       // attempt number written for
    std::atomic<int64_t> wrote_at{0};    // now_ns() after write() returned; before done
    std::atomic<uint64_t> reaped{0};     // attempt number whose completion the waiter has
    std::atomic<uint64_t> asleep_for{0}; // attempt whose waiter slept, its CQ empty, at half
    std::atomic<uint64_t> watched{0};    // attempt whose watch is over (after asleep_for)
    std::atomic<bool> stop{false};
};

// The writer: cued, it spins the delay asked and writes; then it watches.
// If the waiter has not reaped by half the limit after the write, and is
// then asleep (state S) with no completion posted, its wake-up did not come:
// the evidence that tells a lost wake-up from a woken waiter held up (by
// the host, or a KCSAN report printing on its CPU: state R, or a
// completion already posted).
//
// What the write is: a word into the pipe, or attempt n's message, sent
// from the writer's own ring (MSG_RING completes inline) to the task's. The
// evidence then: for local work, no completion posted yet (the work waits
// for the task); for a message, the completion posted (the writer's part is
// done, only the wake-up is missing).
bool write_once(Waker k, int fd, RawRing& sender, int target, uint64_t n) {
    if (k != Waker::msg_ring) {
        const uint64_t word = 0x7572696e67726163; // "uringrac"
        return write(fd, &word, sizeof(word)) == sizeof(word);
    }
    io_uring_sqe* sqe = sender.get_sqe();
    sqe->opcode = IORING_OP_MSG_RING;
    sqe->fd = target;
    sqe->len = kMessage;
    sqe->off = n; // the task's CQE's user_data
    sqe->user_data = n;
    if (sender.submit_and_wait(1) != 1)
        return false;
    bool sent = false;
    sender.reap(1, [&](const io_uring_cqe& c) { sent = c.res == 0; });
    return sent;
}

void writer_loop(Waker k, Cue& cue, int fd, RawRing& sender, const RawRing& ring,
                 const std::string& waiter, int64_t half_ns) {
    uint64_t last = 0;
    while (!cue.stop.load(std::memory_order_relaxed)) {
        uint64_t n = cue.asked.load(std::memory_order_acquire);
        if (n == last)
            continue;
        spin_for(cue.delay_ns.load(std::memory_order_relaxed));
        if (!write_once(k, fd, sender, ring.fd(), n))
            break; // the waiter sees no write and stops as an error
        int64_t at = now_ns();
        cue.wrote_at.store(at, std::memory_order_relaxed);
        cue.done.store(n, std::memory_order_release);
        last = n;
        while (cue.reaped.load(std::memory_order_acquire) != n && now_ns() - at < half_ns &&
               !cue.stop.load(std::memory_order_relaxed))
            ;
        if (cue.reaped.load(std::memory_order_acquire) != n && task_state(waiter) == 'S' &&
            (ring.cq_ready() == 0) == (k != Waker::msg_ring))
            cue.asleep_for.store(n, std::memory_order_release);
        cue.watched.store(n, std::memory_order_release);
    }
}

// How the task waits for its read's completion, at most limit_ns: 0 when it
// may have come (the caller reaps; none means wait again), -ETIME when the
// limit ran out, another -errno on failure.
int wait_in_enter(RawRing& ring, int, uint64_t limit_ns) {
    return ring.wait(1, limit_ns);
}

int wait_on_eventfd(RawRing& ring, int efd, uint64_t limit_ns) {
    pollfd p{efd, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(limit_ns / 1000000));
    if (n < 0)
        return -errno;
    if (n == 0)
        return -ETIME;
    uint64_t count;
    if (read(efd, &count, sizeof(count)) != sizeof(count))
        return -errno;
    ring.enter(0, 0, IORING_ENTER_GETEVENTS); // run the announced local work
    return 0;
}

Result wake_storm(const Options& o, Waker k) {
    Result r = base(o, "raw");
    const bool eventfd = k == Waker::eventfd, msg = k == Waker::msg_ring;
    RawRing ring, sender;
    if (!ring_ready(r,
                    msg ? ring.init(8)
                        : ring.init(8, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN),
                    msg ? "io_uring_setup" : "io_uring_setup(DEFER_TASKRUN)", ring.what()))
        return r;
    if (int e = msg ? sender.init(8) : 0; e) {
        r.counts["errors"] = 1; // the first ring's setup worked: not a skip
        r.counts["sender_error"] = uint64_t(-e);
        return r;
    }
    int efd = -1;
    if (eventfd) {
        // the kernel has DEFER_TASKRUN by now, so eventfd support is a given:
        // a failure here is an error, not a skip
        efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        int e = efd < 0 ? -errno : ring.register_op(IORING_REGISTER_EVENTFD, &efd, 1);
        if (e < 0) {
            r.counts["errors"] = 1;
            r.counts["eventfd_error"] = uint64_t(-e);
            if (efd >= 0)
                close(efd);
            return r;
        }
    }
    auto wait = eventfd ? wait_on_eventfd : wait_in_enter;
    int pfd[2] = {-1, -1}; // the pipe whose read is the task's request (not for a message)
    if (!msg && pipe(pfd)) {
        setup_failed(r, "pipe");
        if (efd >= 0)
            close(efd);
        return r;
    }
    const unsigned ncpu = std::max(1u, std::thread::hardware_concurrency());
    if (ncpu > 1)
        pin_self(0);
    Cue cue;
    const uint64_t limit_ns = uint64_t(o.watchdog_ms) * 1000000;
    const std::string waiter = std::to_string(gettid());
    std::thread writer([&] {
        if (ncpu > 1)
            pin_self(1);
        writer_loop(k, cue, pfd[1], sender, ring, waiter, int64_t(limit_ns / 2));
    });
    std::mt19937_64 rng(o.seed);
    std::uniform_int_distribution<uint64_t> delay(0, o.aim_after_ns);
    uint64_t sink = 0, attempts = 0, lost = 0, late = 0, held_up = 0, stalled = 0, bad = 0;
    Budget budget(o);
    auto t0 = clock_type::now();
    while (!budget.over(attempts)) {
        ++attempts;
        if (!msg) { // the message needs no request of the task's
            io_uring_sqe* sqe = ring.get_sqe();
            sqe->opcode = IORING_OP_READ;
            sqe->fd = pfd[0];
            sqe->addr = reinterpret_cast<uint64_t>(&sink);
            sqe->len = sizeof(sink);
            sqe->user_data = attempts;
            if (int e = ring.submit_and_wait(0); e != 1) {
                r.counts["errors"] = 1;
                r.counts["submit_error"] = e < 0 ? -e : 0;
                break;
            }
        }
        cue.delay_ns.store(delay(rng), std::memory_order_relaxed);
        cue.asked.store(attempts, std::memory_order_release);
        unsigned got = 0, spurious = 0;
        auto take = [&](const io_uring_cqe& c) {
            got++;
            bad += c.user_data != attempts || c.res != (msg ? kMessage : int(sizeof(sink)));
        };
        int w;
        int64_t began, ended;
        do { // an eventfd count left by an earlier completion wakes early
            began = now_ns();
            w = wait(ring, efd, limit_ns);
            ended = now_ns();
            ring.reap(1, take);
        } while (!got && w == 0 && ++spurious < 1000);
        if (w != 0 && w != -ETIME && w != -EINTR) {
            r.counts["errors"] = 1;
            r.counts["wait_error"] = -w;
            break;
        }
        if (got)
            cue.reaped.store(attempts, std::memory_order_release);
        // A wait that ran out its limit. io_cqring_wait runs the local work
        // after its timer fires and then returns 0, not -ETIME, if that
        // posted a completion: a lost wake-up's completion is then already
        // reaped, so the time slept decides, not the return value.
        if (w == -ETIME || ended - began >= int64_t(limit_ns) * 9 / 10) {
            bool wrote = cue.done.load(std::memory_order_acquire) == attempts;
            int64_t at = cue.wrote_at.load(std::memory_order_relaxed);
            // run the local work without waiting: a lost wake-up's completion
            // is there already
            if (!got)
                ring.enter(0, 0, IORING_ENTER_GETEVENTS);
            ring.reap(1, take);
            // the writer's evidence, once its watch of this attempt is over
            auto t_watch = clock_type::now();
            while (wrote && cue.watched.load(std::memory_order_acquire) != attempts &&
                   clock_type::now() - t_watch < std::chrono::seconds(1))
                ;
            bool asleep = cue.asleep_for.load(std::memory_order_acquire) == attempts;
            if (!wrote || ended - at < int64_t(limit_ns / 2))
                late++;
            else if (!asleep)
                held_up++; // woken, or its completion posted: not lost
            else if (got)
                lost++;
            else
                stalled++;
        }
        // catch up: the writer's write is owed to this attempt's read
        auto t_catch = clock_type::now();
        while (!got && clock_type::now() - t_catch < std::chrono::seconds(5)) {
            wait(ring, efd, limit_ns);
            ring.reap(1, take);
        }
        if (!got) {
            r.counts["errors"] = 1;
            r.counts["never_completed"] = attempts;
            break;
        }
        cue.reaped.store(attempts, std::memory_order_release);
        while (cue.done.load(std::memory_order_acquire) != attempts &&
               clock_type::now() - t_catch < std::chrono::seconds(5))
            ;
        r.ops++;
        if (lost && o.until_witness)
            break;
    }
    cue.stop.store(true);
    writer.join();
    for (int fd : pfd)
        if (fd >= 0)
            close(fd);
    if (efd >= 0)
        close(efd);
    r.seconds = since(t0);
    r.anomalies[eventfd ? "lost_notify" : "lost_wakeups"] = lost;
    r.anomalies["bad_cqe"] = bad;
    r.anomalies["stalled"] = stalled; // written long before, yet no completion
    r.counts["attempts"] = attempts;
    r.counts["late_writer"] = late;
    r.counts["held_up"] = held_up;
    r.counts["aim_after_ns"] = o.aim_after_ns;
    return r;
}

} // namespace

Result run_defer_wait(const Options& o) {
    return wake_storm(o, Waker::local_work);
}
Result run_eventfd_wait(const Options& o) {
    return wake_storm(o, Waker::eventfd);
}
Result run_msg_wait(const Options& o) {
    return wake_storm(o, Waker::msg_ring);
}

} // namespace uringrace
