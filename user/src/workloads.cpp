#include "workloads.hpp"

#include <dirent.h>
#include <fstream>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <liburing.h>
#include <mutex>
#include <pthread.h>
#include <random>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "fences.hpp"
#include "raw_uring.hpp"
#include "ring.hpp"

namespace uringrace {

std::atomic<bool> g_interrupted{false};

Budget::Budget(const Options& o)
    : deadline(std::chrono::steady_clock::now() +
               std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                   std::chrono::duration<double>(o.duration_s))),
      max_ops(o.max_ops) {}

bool Budget::over(uint64_t ops) const {
    return g_interrupted.load(std::memory_order_relaxed) || (max_ops && ops >= max_ops) ||
           std::chrono::steady_clock::now() >= deadline;
}

cpu_set_t only_cpu(unsigned cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return set;
}

bool pin_self(unsigned cpu) {
    const cpu_set_t set = only_cpu(cpu);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

bool two_cpus(Result& r, const char* why) {
    if (std::thread::hardware_concurrency() >= 2)
        return true;
    r.skipped = r.workload + " needs two CPUs (" + why + ")";
    return false;
}

bool pin_or_error(Result& r, unsigned cpu) {
    if (pin_self(cpu))
        return true;
    r.counts["errors"] = 1;
    r.skipped = "cannot pin to CPU " + std::to_string(cpu);
    return false;
}

namespace {

std::atomic<bool> g_shared_creds{false};

// The calling thread's own credentials: a copy committed by a prctl that
// changes nothing. Threads share their process's struct cred, and each
// request io_uring prepares for io-wq takes a reference to it with
// get_cred(), whose plain store to cred->non_rcu KCSAN reports whenever two
// threads submit at once (prep-async-work in expect/: 113 of 117 reports in
// a 30 s iowq-hashed storm, x86-64 TCG): console time and watchpoints spent
// outside io_uring. A kernel that refuses leaves the thread sharing, noisier.
void own_creds() {
    if (int keep = prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0); keep >= 0)
        prctl(PR_SET_KEEPCAPS, keep, 0, 0, 0);
}

} // namespace

void share_creds(bool shared) {
    g_shared_creds.store(shared);
}

void run_threads(unsigned n, bool pin, const std::function<void(unsigned)>& fn) {
    std::vector<std::thread> ts;
    unsigned ncpu = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; i++) {
        ts.emplace_back([&, i] {
            if (!g_shared_creds.load())
                own_creds();
            if (pin)
                pin_self(i % ncpu);
            fn(i);
        });
    }
    for (auto& t : ts)
        t.join();
}

using clock_type = std::chrono::steady_clock;

int64_t now_ns(clockid_t c) {
    timespec ts;
    clock_gettime(c, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

double since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

namespace {

// Why a setup error e stopped the storm, and whether it means "skip": the
// kernel has no io_uring or forbids it (ring_ready's rule).
std::string skip_reason(int err, const char* what) {
    std::string why = std::string(what) + ": " + std::strerror(-err);
    if (err == -ENOSYS)
        why += " (no io_uring in this kernel)";
    else if (err == -EPERM)
        why += " (io_uring not permitted: kernel.io_uring_disabled or no privilege)";
    else if (err == -EINVAL)
        why += " (a kernel older than 6.1 may lack what was asked: uringrace needs 6.1)";
    return why;
}

bool unavailable(int err) {
    return err == -ENOSYS || err == -EPERM || err == -EACCES;
}

} // namespace

void settle_setup_error(Result& r, int err, const char* what) {
    if (err && r.ops == 0)
        ring_ready(r, err, what); // the rule of a storm that did nothing
    else if (err)
        r.counts["errors"] = 1; // some work was done: never a skip
}

bool ring_ready(Result& r, int e, const char* what, const std::string& step) {
    if (!e)
        return true;
    r.skipped = skip_reason(e, step.empty() ? what : (std::string(what) + " " + step).c_str());
    if (!unavailable(e))
        r.counts["errors"] = 1;
    return false;
}

void setup_failed(Result& r, const char* call) {
    r.counts["errors"] = 1;
    r.skipped = std::string(call) + ": " + std::strerror(errno);
}

int scratch_file(Result& r, const char* tag, const void* data, size_t len) {
    std::string path = std::string("/tmp/uringrace-") + tag + "-XXXXXX";
    int fd = mkstemp(path.data());
    if (fd < 0) {
        setup_failed(r, "mkstemp");
        return -1;
    }
    unlink(path.c_str());
    if (ssize_t n = len ? write(fd, data, len) : 0; n != static_cast<ssize_t>(len)) {
        if (n >= 0)
            errno = EFBIG; // a short write: the file holds less than asked
        setup_failed(r, "write");
        close(fd);
        return -1;
    }
    return fd;
}

Result base(const Options& o, const char* path) {
    Result r;
    r.workload = o.workload;
    r.path = path;
    r.fence = std::string(fence_name(o.fence));
    return r;
}

namespace {

// One NOP batch through the raw ring; returns completions or -errno.
int raw_nop_batch(RawRing& ring, unsigned batch, uint8_t sqe_flags, uint64_t& bad) {
    for (unsigned i = 0; i < batch; i++) {
        io_uring_sqe* sqe = ring.get_sqe();
        if (!sqe)
            return -EBUSY;
        sqe->opcode = IORING_OP_NOP;
        sqe->flags = sqe_flags;
        sqe->user_data = i + 1;
    }
    int r = ring.submit_and_wait(batch);
    if (r < 0)
        return r;
    unsigned got = 0;
    while (got < batch)
        got += ring.reap(batch - got, [&](const io_uring_cqe& c) {
            if (c.res < 0 || c.user_data == 0 || c.user_data > batch)
                bad++;
        });
    return static_cast<int>(got);
}

int uring_nop_batch(io_uring& ring, unsigned batch, uint8_t sqe_flags, uint64_t& bad) {
    for (unsigned i = 0; i < batch; i++) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        if (!sqe)
            return -EBUSY;
        io_uring_prep_nop(sqe);
        sqe->flags |= sqe_flags;
        io_uring_sqe_set_data64(sqe, i + 1);
    }
    int r = io_uring_submit_and_wait(&ring, batch);
    if (r < 0)
        return r;
    unsigned got = 0;
    io_uring_cqe* cqe;
    while (got < batch && io_uring_peek_cqe(&ring, &cqe) == 0) {
        if (cqe->res < 0 || cqe->user_data == 0 || cqe->user_data > batch)
            bad++;
        io_uring_cqe_seen(&ring, cqe);
        got++;
    }
    return static_cast<int>(got);
}

// NOP storm on o.threads threads, one ring each; sqe_flags adds IOSQE_ASYNC
// for the io-wq storm, gaps makes bursts with idle time between them.
Result nop_storm(const Options& o, uint8_t sqe_flags, bool gaps) {
    Result r = base(o, o.via == Via::raw ? "raw" : "liburing");
    std::atomic<uint64_t> ops{0}, bad{0};
    std::atomic<int> err{0};
    Budget budget(o);
    auto t0 = clock_type::now();
    run_threads(o.threads, o.pin, [&](unsigned t) {
        std::mt19937_64 rng(o.seed + t);
        unsigned batch = std::min(32u, o.entries);
        uint64_t mine = 0, mybad = 0;
        RawRing raw;
        io_uring lu{};
        int e = o.via == Via::raw ? raw.init(o.entries) : io_uring_queue_init(o.entries, &lu, 0);
        if (e) {
            err.store(e);
            return;
        }
        while (!budget.over(ops.load(std::memory_order_relaxed))) {
            int n = o.via == Via::raw ? raw_nop_batch(raw, batch, sqe_flags, mybad)
                                      : uring_nop_batch(lu, batch, sqe_flags, mybad);
            if (n < 0) {
                err.store(n);
                break;
            }
            mine += n;
            ops.fetch_add(n, std::memory_order_relaxed);
            if (gaps && rng() % 4 == 0) // idle gap: workers go free, then re-activate
                std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
        }
        bad.fetch_add(mybad);
        if (o.via == Via::liburing)
            io_uring_queue_exit(&lu);
    });
    r.seconds = since(t0);
    r.ops = ops.load();
    r.anomalies["bad_cqe"] = bad.load();
    settle_setup_error(r, err.load(), "io_uring_setup");
    return r;
}

} // namespace

Result run_nop(const Options& o) {
    return nop_storm(o, 0, false);
}
Result run_iowq(const Options& o) {
    return nop_storm(o, IOSQE_ASYNC, true);
}

// io-wq's life cycle: io-wq belongs to a task and ends with it, so each of
// o.threads threads starts, over and over, a short-lived thread that sets a
// ring up, runs four batches of IOSQE_ASYNC NOPs through its own io-wq and
// exits: workers are created, go idle, wake and exit (each dropping its
// reference on io-wq) while the other threads' do the same. Every CQE must
// be a NOP's.
Result run_iowq_churn(const Options& o) {
    Result r = base(o, "raw");
    std::atomic<uint64_t> ops{0}, bad{0}, rings{0};
    std::atomic<int> err{0};
    Budget budget(o);
    auto t0 = clock_type::now();
    run_threads(o.threads, o.pin, [&](unsigned) {
        const unsigned batch = std::min(32u, o.entries);
        uint64_t mybad = 0;
        while (!budget.over(ops.load(std::memory_order_relaxed)) && !err.load()) {
            std::thread life([&] {
                RawRing ring;
                if (int e = ring.init(o.entries); e) {
                    err.store(e);
                    return;
                }
                for (int k = 0; k < 4; k++) {
                    int n = raw_nop_batch(ring, batch, IOSQE_ASYNC, mybad);
                    if (n < 0) {
                        err.store(n);
                        return;
                    }
                    ops.fetch_add(n, std::memory_order_relaxed);
                }
                rings.fetch_add(1, std::memory_order_relaxed);
            });
            life.join();
        }
        bad.fetch_add(mybad);
    });
    r.seconds = since(t0);
    r.ops = ops.load();
    r.anomalies["bad_cqe"] = bad.load();
    r.counts["rings"] = rings.load();
    settle_setup_error(r, err.load(), "io_uring_setup");
    return r;
}

// io-wq's exit: each of o.threads threads keeps a ring, limited to one bound
// io-wq worker per task, and starts, over and over, a short-lived thread
// that submits a batch filling the SQ with IOSQE_ASYNC work of 512 bytes on
// a memfd through it and exits at once. Its first
// submission gave it an io-wq and its worker; once the first completion is
// posted (the worker is up and running the rest) it exits (io_wq_exit_start
// sets IO_WQ_BIT_EXIT) while the worker still takes the work, testing the
// exit bit at each. One life in two writes (hashed work: the worker takes
// the writes as one chain); the other reads, and then cancels all
// (IORING_OP_ASYNC_CANCEL, CANCEL_ANY) before it exits: queued reads and,
// through IO_WQ_WORK_CANCEL, the one the worker runs. (Reads only and eight
// workers, exiting at once, as at first: a life cost 25 ms in an x86-64
// guest, and the plain set met no test in 2 672 lives; one worker, still at
// once: 5 580 lives, none either. The worker had not started yet.)
// The threads run on CPU 0 and each life's worker on CPU 1: a first NOP
// gives the life its io-wq, still without a worker, and
// IORING_REGISTER_IOWQ_AFF has the worker made on CPU 1. The exit's set,
// when KCSAN watches it, holds CPU 0 in its delay, and a worker on that CPU
// could not run its test then (unpinned, 6.1 x86-64 caught it in 3 of 7
// runs of 30 s). Lives cost more so (host, 3 s: 4 610-6 071 lives against
// 32 322) because they now exit with work running: 2.4 items in flight at
// the exit per life against 0.1.
// The worker tests the bit once per work, so the shorter each work, the
// more tests fall in KCSAN's delay on the set: 512 bytes against 8 KiB,
// 30 s runs, x86-64 guests: 6.1 caught in 3 of 3 (6.79-14.56 s, 4 034-4 339
// lives) against 3 of 4 (8.3-20.42 s, 2 931-3 230 lives); 6.12 in 3 of 3
// (7.61-27.87 s) against 1 of 2 (23.73 s).
// in_flight_at_exit counts the work not yet back just before the exit;
// each must come back, whole or cut short by a cancel (bad_cqe), within the
// watchdog (lost_cqe).
Result run_iowq_exit(const Options& o) {
    Result r = base(o, "raw");
    if (!two_cpus(r, "the exiting threads on one, their io-wq workers on the other") ||
        !pin_or_error(r, 0))
        return r;
    cpu_set_t worker_cpu = only_cpu(1);
    std::atomic<uint64_t> lives{0}, bad{0}, left{0}, at_exit{0}, done{0}, cancelled{0}, lost{0};
    std::atomic<int> err{0};
    constexpr unsigned kRead = 512;
    constexpr uint64_t kCancelTag = ~0ull;
    const int mfd = memfd_create("uringrace-exit", MFD_CLOEXEC);
    if (mfd < 0 || ftruncate(mfd, kRead) != 0) {
        setup_failed(r, mfd < 0 ? "memfd_create" : "ftruncate");
        if (mfd >= 0)
            close(mfd);
        return r;
    }
    Budget budget(o);
    auto t0 = clock_type::now();
    run_threads(o.threads, o.pin, [&](unsigned) {
        RawRing ring;
        // one bound worker for each life's io-wq (a new task's io-wq takes
        // the ring's limits)
        unsigned limits[2] = {1, 0};
        if (int e = ring.init(o.entries); e) {
            err.store(e);
            return;
        } else if ((e = ring.register_op(IORING_REGISTER_IOWQ_MAX_WORKERS, limits, 2)) < 0) {
            err.store(e);
            return;
        }
        std::vector<char> buf(kRead); // all reads of a thread land here
        uint64_t mybad = 0, mine = 0;
        while (!budget.over(left.load(std::memory_order_relaxed)) && !err.load()) {
            const bool cancel = ++mine % 2 == 0;
            unsigned n = 0; // the whole SQ, but a slot for the cancel
            std::thread life([&] {
                io_uring_sqe* nop = ring.get_sqe();
                nop->opcode = IORING_OP_NOP;
                nop->user_data = 0;
                int e = ring.submit_and_wait(1);
                if (e >= 0 &&
                    ring.reap(1, [&](const io_uring_cqe& c) { mybad += c.res != 0; }) != 1)
                    e = -EIO;
                if (e >= 0)
                    e = std::min(0, ring.register_op(IORING_REGISTER_IOWQ_AFF, &worker_cpu,
                                                     sizeof(worker_cpu)));
                if (e < 0) {
                    err.store(e);
                    return;
                }
                for (io_uring_sqe* sqe; n + cancel < o.entries && (sqe = ring.get_sqe()); n++) {
                    sqe->opcode = cancel ? IORING_OP_READ : IORING_OP_WRITE;
                    sqe->flags = IOSQE_ASYNC;
                    sqe->fd = mfd;
                    sqe->addr = reinterpret_cast<uint64_t>(buf.data());
                    sqe->len = kRead;
                    sqe->user_data = n + 1;
                }
                e = ring.submit_and_wait(0);
                // once the worker has finished the first, it is running the
                // rest: exit (or cancel them, the running one too) now
                if (e >= 0)
                    ring.wait(1, uint64_t(o.watchdog_ms) * 1000000);
                if (e >= 0 && cancel) {
                    io_uring_sqe* sqe = ring.get_sqe();
                    sqe->opcode = IORING_OP_ASYNC_CANCEL;
                    sqe->cancel_flags = IORING_ASYNC_CANCEL_ANY;
                    sqe->user_data = kCancelTag;
                    e = ring.submit_and_wait(0);
                }
                if (e < 0) {
                    err.store(e);
                    n = 0;
                    return;
                }
                at_exit.fetch_add(n + cancel - std::min(ring.cq_ready(), n + cancel),
                                  std::memory_order_relaxed);
            });
            life.join();
            if (!n)
                break;
            left.fetch_add(n, std::memory_order_relaxed);
            lives.fetch_add(1, std::memory_order_relaxed);
            unsigned got = 0;
            auto t = clock_type::now();
            while (got < n + cancel &&
                   clock_type::now() - t < std::chrono::milliseconds(o.watchdog_ms)) {
                ring.wait(1, 1000000);
                got += ring.reap(o.entries, [&](const io_uring_cqe& c) {
                    if (c.user_data == kCancelTag) // how many it found, or none
                        mybad += c.res < 0 && c.res != -ENOENT && c.res != -EALREADY;
                    else if (c.user_data == 0 || c.user_data > o.entries)
                        mybad++;
                    else if (c.res == int(kRead))
                        done.fetch_add(1, std::memory_order_relaxed);
                    else if (c.res == -ECANCELED || c.res == -EINTR ||
                             (c.res > 0 && c.res < int(kRead)))
                        cancelled.fetch_add(1, std::memory_order_relaxed);
                    else
                        mybad++;
                });
            }
            lost.fetch_add(n + cancel - std::min(got, n + cancel), std::memory_order_relaxed);
            if (got < n + cancel)
                break; // the ring's accounting is behind: no more lives on it
        }
        bad.fetch_add(mybad);
    });
    close(mfd);
    r.seconds = since(t0);
    r.ops = left.load();
    r.anomalies["bad_cqe"] = bad.load();
    r.anomalies["lost_cqe"] = lost.load();
    r.counts["lives"] = lives.load();
    r.counts["in_flight_at_exit"] = at_exit.load();
    r.counts["done"] = done.load();
    r.counts["cancelled"] = cancelled.load();
    settle_setup_error(r, err.load(), "io_uring_setup");
    if (!err.load() && !lives.load())
        r.counts["errors"] = 1; // no thread exited with reads in flight: missing work
    return r;
}
namespace {

// One ring, one submitter, o.threads reapers sharing its CQ (under a mutex,
// as applications do): the kernel keeps reading the CQ head that several user
// threads move. Every user_data must come back exactly once. With sqpoll, the
// kernel's SQ thread reads SQEs while the submitter writes the next ones into
// the slots it frees, and posts CQEs while the reapers read them: SQ head and
// tail, SQE loads and CQ tail all cross threads (seeds 001 and 002 on the
// real ring). The SQ thread is pinned to CPU 0 and the submitter to CPU 1:
// on one CPU they take turns, and a slot the SQ thread frees is never
// written while it still reads the SQE there (measured, x86-64 TCG, the
// early SQ head store of sq-head-no-release-emulated: 0 duplicate CQEs in
// 256 956 with both on CPU 0, 85 907 in 258 475 apart; left to the
// scheduler, 0 in one run of five).
Result cq_storm(const Options& o, bool sqpoll) {
    Result r = base(o, o.via == Via::raw ? "raw" : "liburing");
    if (sqpoll && !two_cpus(r, "the SQ thread on one, the submitter on the other"))
        return r;
    RawRing ring;
    io_uring lu{};
    const bool raw = o.via == Via::raw;
    int e;
    if (raw) {
        e = sqpoll ? ring.init(o.entries, IORING_SETUP_SQPOLL, o.idle_ms, 0) : ring.init(o.entries);
    } else {
        io_uring_params p{};
        p.flags = sqpoll ? IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF : 0;
        p.sq_thread_cpu = 0;
        p.sq_thread_idle = o.idle_ms;
        e = io_uring_queue_init_params(o.entries, &lu, &p);
    }
    if (!ring_ready(r, e, sqpoll ? "io_uring_setup(SQPOLL)" : "io_uring_setup",
                    raw ? ring.what() : ""))
        return r;
    const uint64_t cq_cap = 2 * o.entries; // the kernel's default CQ size
    constexpr uint64_t window = 1 << 16;   // user_data values tracked at once
    std::atomic<uint64_t> submitted{0}, reaped{0}, dup{0}, bad{0}, wakeups{0};
    std::atomic<bool> done{false};
    std::vector<uint8_t> seen(window);
    std::mutex cq_lock;
    Budget budget(o);
    auto t0 = clock_type::now();
    // raw SQPOLL: publish the tail, wake the thread if it sleeps (the fence
    // of --fence between); liburing's submit does both itself
    auto submit = [&]() -> int {
        if (!raw)
            return io_uring_submit(&lu);
        if (!sqpoll)
            return ring.submit_and_wait(0);
        if (store_then_load(
                o.fence, o.reorder_ns, [&] { ring.flush(); },
                [&](Fence g) { return ring.sq_needs_wakeup(g); })) {
            wakeups.fetch_add(1, std::memory_order_relaxed);
            return ring.enter(0, 0, IORING_ENTER_SQ_WAKEUP);
        }
        return 0;
    };
    run_threads(o.threads + 1, o.pin, [&](unsigned t) {
        if (t == 0) { // the submitter
            if (sqpoll && !pin_or_error(r, 1)) {
                done.store(true, std::memory_order_release);
                return;
            }
            uint64_t next = 0;
            while (!budget.over(reaped.load(std::memory_order_relaxed))) {
                unsigned n = 0;
                while (n < 16 && next - reaped.load(std::memory_order_acquire) + 16 <= cq_cap) {
                    io_uring_sqe* sqe = raw ? ring.get_sqe() : io_uring_get_sqe(&lu);
                    if (!sqe)
                        break;
                    if (raw)
                        sqe->opcode = IORING_OP_NOP;
                    else
                        io_uring_prep_nop(sqe);
                    sqe->user_data = ++next;
                    n++;
                }
                submitted.store(next, std::memory_order_release);
                if (n && submit() < 0)
                    break;
                if (!n) {
                    // a sleeping SQ thread with work queued is not this
                    // storm's question (sqpoll and sqpoll_aim ask it): wake it
                    if (sqpoll && raw && ring.sq_unconsumed() && ring.sq_needs_wakeup(Fence::on))
                        ring.enter(0, 0, IORING_ENTER_SQ_WAKEUP);
                    std::this_thread::yield();
                }
            }
            if (sqpoll && raw) // what is queued gets consumed, asleep or not
                ring.enter(0, 0, IORING_ENTER_SQ_WAKEUP);
            done.store(true, std::memory_order_release);
            return;
        }
        auto check = [&](uint64_t user_data) {
            // a user_data never submitted: a torn or stale SQE or CQE
            if (user_data == 0 || user_data > submitted.load(std::memory_order_acquire)) {
                bad.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            // the slot's parity flips once per pass of the window
            uint8_t& slot = seen[user_data % window];
            if (slot != ((user_data - 1) / window) % 2)
                dup.fetch_add(1, std::memory_order_relaxed);
            slot ^= 1;
        };
        auto last = clock_type::now();
        for (;;) { // a reaper
            bool finished = done.load(std::memory_order_acquire);
            unsigned got = 0;
            {
                std::lock_guard<std::mutex> g(cq_lock);
                if (raw) {
                    got = ring.reap(16, [&](const io_uring_cqe& c) { check(c.user_data); });
                } else {
                    unsigned head;
                    io_uring_cqe* cqe;
                    io_uring_for_each_cqe(&lu, head, cqe) {
                        check(cqe->user_data);
                        if (++got == 16)
                            break;
                    }
                    io_uring_cq_advance(&lu, got);
                }
            }
            reaped.fetch_add(got, std::memory_order_release);
            if (got) {
                last = clock_type::now();
            } else {
                // finished: all back, or nothing for a second (what is
                // missing is counted as lost)
                if (finished && (reaped.load() >= submitted.load() ||
                                 clock_type::now() - last > std::chrono::seconds(1)))
                    return;
                std::this_thread::yield();
            }
        }
    });
    r.seconds = since(t0);
    r.ops = reaped.load();
    r.anomalies["duplicate_cqe"] = dup.load();
    r.anomalies["bad_cqe"] = bad.load();
    r.anomalies["lost_cqe"] =
        submitted.load() > reaped.load() ? submitted.load() - reaped.load() : 0;
    if (sqpoll && raw)
        r.counts["wakeups"] = wakeups.load();
    if (!raw)
        io_uring_queue_exit(&lu);
    return r;
}

} // namespace

Result run_cq(const Options& o) {
    return cq_storm(o, false);
}
Result run_cq_sqpoll(const Options& o) {
    return cq_storm(o, true);
}

const std::vector<RealWorkload>& real_workloads() {
    static const std::vector<RealWorkload> w = {
        {"nop", "NOP storm on the running kernel's io_uring (--via raw|liburing)", run_nop},
        {"read", "read storm from a temp file", run_read},
        {"sqpoll", "SQPOLL wake-up storm, counts lost wake-ups (--fence F)", run_sqpoll},
        {"sqpoll_aim", "SQPOLL lost wake-ups aimed at the SQ thread's sleep tick (--fence F)",
         run_sqpoll_aim},
        {"iowq", "IOSQE_ASYNC bursts with idle gaps: io-wq workers busy/free", run_iowq},
        {"iowq_churn", "rings set up, run through io-wq and closed: workers come and go",
         run_iowq_churn},
        {"iowq_exit",
         "threads exit with io-wq reads in flight (every other one cancels them first): the "
         "exit bit and cancel marks set while workers take work",
         run_iowq_exit},
        {"iowq_cancel",
         "pipe reads sent one at a time to io-wq's one worker, each cancelled by user_data as "
         "the worker starts it (the cancel mark on running work); counts cancels that met it "
         "running",
         run_iowq_cancel},
        {"iowq_hashed", "iowq with buffered file writes: hashed work, stalled queues",
         run_iowq_hashed},
        {"iowq_stall",
         "pairs of writes to one file, the second a swept delay after the first: one io-wq "
         "worker marks its queue stalled as the other clears the mark",
         run_iowq_stall},
        {"iowq_block", "io-wq workers blocked in FIFO opens, woken all at once: running count",
         run_iowq_block},
        {"iowq_splice",
         "splices from empty pipes asleep in io-wq workers, woken by writers on both CPUs: "
         "the running count changed on both at once",
         run_iowq_splice},
        {"iowq_starve",
         "a FIFO read and write open through io-wq with free workers asleep: counts pairs "
         "starved",
         run_iowq_starve},
        {"cq", "one CQ reaped by several threads", run_cq},
        {"cq_sqpoll", "cq with an SQPOLL ring: SQEs written while the SQ thread reads",
         run_cq_sqpoll},
        {"sqpoll_share",
         "rings join one SQ thread (ATTACH_WQ), run NOPs and leave, parking it each time",
         run_sqpoll_share},
        {"sqpoll_flags",
         "the SQ thread sleeps and wakes (NEED_WAKEUP) while MSG_RING bursts overflow its CQ "
         "(CQ_OVERFLOW, same word); counts lost and stale flags",
         run_sqpoll_flags},
        {"poll_multi",
         "a multishot poll on an eventfd another CPU writes without a pause: the poll's "
         "reference count read while wake-ups raise it",
         run_poll_multi},
        {"poll_multi_taskrun",
         "poll_multi on a COOP_TASKRUN | TASKRUN_FLAG ring: each wake-up's task work sets "
         "IORING_SQ_TASKRUN, which the task clears as it runs it",
         run_poll_multi_taskrun},
        {"poll_multi_defer",
         "poll_multi on a DEFER_TASKRUN ring: wake-ups queue local work while the task waits "
         "and wakes",
         run_poll_multi_defer},
        {"pbuf", "reads into a provided-buffer ring a second thread refills", run_pbuf},
        {"overflow", "CQ overflow while wake-ups add task work (TASKRUN flag) in sq_flags",
         run_overflow},
        {"overflow_defer", "overflow on a DEFER_TASKRUN ring (local task work)",
         run_overflow_defer},
        {"overflow_msg",
         "MSG_RING messages from the other CPU overflow a small CQ while both CPUs flush it "
         "(the kernel's overflow mark, check_cq); counts messages out of order",
         run_overflow_msg},
        {"overflow_drop",
         "overflow_msg with failslab failing one overflow entry in two (the sender's): dropped "
         "messages (the kernel's DROPPED mark, check_cq); counts messages lost or miscounted",
         run_overflow_drop},
        {"defer_wait",
         "DEFER_TASKRUN: a pipe write's local work wakes the task waiting for it (aimed); counts "
         "lost wake-ups",
         run_defer_wait},
        {"eventfd_wait",
         "defer_wait waiting on the ring's registered eventfd (poll), as event loops do; counts "
         "lost notifications",
         run_eventfd_wait},
        {"msg_wait",
         "a message (MSG_RING) another thread posts, aimed, wakes the task waiting in "
         "io_uring_enter on an ordinary ring; counts lost wake-ups",
         run_msg_wait},
        {"bpf_ringbuf",
         "a real BPF ring buffer: libbpf's consumer loop (--fence F), EPOLLET wait; counts lost "
         "notifications",
         run_bpf_ringbuf},
        {"bpf_ringbuf_libbpf", "the same with libbpf's ring_buffer__poll (level-triggered)",
         run_bpf_ringbuf_libbpf},
    };
    return w;
}

Result run_read(const Options& o) {
    Result r = base(o, o.via == Via::raw ? "raw" : "liburing");
    const std::vector<char> content(256 * 4096, 'u');
    int fd = scratch_file(r, "read", content.data(), content.size());
    if (fd < 0)
        return r;
    std::atomic<uint64_t> ops{0}, bad{0};
    std::atomic<int> err{0};
    Budget budget(o);
    auto t0 = clock_type::now();
    run_threads(o.threads, o.pin, [&](unsigned t) {
        io_uring ring{};
        std::mt19937_64 rng(o.seed + t);
        std::vector<std::vector<char>> bufs(8, std::vector<char>(4096));
        if (o.via == Via::raw) {
            RawRing raw;
            if (int e = raw.init(std::max(o.entries, 8u)); e) {
                err.store(e);
                return;
            }
            while (!budget.over(ops.load(std::memory_order_relaxed))) {
                for (size_t i = 0; i < bufs.size(); i++) {
                    io_uring_sqe* sqe = raw.get_sqe();
                    sqe->opcode = IORING_OP_READ;
                    sqe->fd = fd;
                    sqe->addr = reinterpret_cast<uint64_t>(bufs[i].data());
                    sqe->len = 4096;
                    sqe->off = (rng() % 256) * 4096;
                }
                if (raw.submit_and_wait(bufs.size()) < 0)
                    break;
                unsigned got = 0;
                while (got < bufs.size())
                    got += raw.reap(bufs.size() - got, [&](const io_uring_cqe& c) {
                        if (c.res != 4096)
                            bad.fetch_add(1);
                    });
                ops.fetch_add(got, std::memory_order_relaxed);
            }
            return;
        }
        int e = io_uring_queue_init(o.entries, &ring, 0);
        if (e) {
            err.store(e);
            return;
        }
        while (!budget.over(ops.load(std::memory_order_relaxed))) {
            for (auto& b : bufs)
                io_uring_prep_read(io_uring_get_sqe(&ring), fd, b.data(), 4096,
                                   (rng() % 256) * 4096);
            if (io_uring_submit_and_wait(&ring, bufs.size()) < 0)
                break;
            io_uring_cqe* cqe;
            for (size_t i = 0; i < bufs.size() && io_uring_peek_cqe(&ring, &cqe) == 0; i++) {
                if (cqe->res != 4096)
                    bad.fetch_add(1);
                io_uring_cqe_seen(&ring, cqe);
                ops.fetch_add(1, std::memory_order_relaxed);
            }
        }
        io_uring_queue_exit(&ring);
    });
    close(fd);
    r.seconds = since(t0);
    r.ops = ops.load();
    r.anomalies["short_reads"] = bad.load();
    settle_setup_error(r, err.load(), "io_uring_queue_init");
    return r;
}

// SQPOLL wake-up storm through the raw ring: submit right when the SQ thread
// is due to go to sleep, with or without the fence between the tail store
// and the flags load. A watchdog counts submissions not picked up in time,
// then wakes the thread as a careful application would.
// Is this process's SQPOLL thread (a task named iou-sqp-<pid>) asleep
// (state S)? The kernel thread of a lost wake-up is.
char task_state(const std::string& tid) {
    std::ifstream stat("/proc/self/task/" + tid + "/stat");
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')'); // the name in () may hold anything
    return close != std::string::npos && close + 2 < line.size() ? line[close + 2] : '?';
}

std::vector<std::string> tasks_named(const std::string& prefix) {
    std::vector<std::string> tids;
    DIR* d = opendir("/proc/self/task");
    while (dirent* e = d ? readdir(d) : nullptr) {
        std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
        std::string name;
        if (comm >> name && name.rfind(prefix, 0) == 0)
            tids.emplace_back(e->d_name);
    }
    if (d)
        closedir(d);
    return tids;
}

std::string task_wchan(const std::string& tid) {
    std::ifstream f("/proc/self/task/" + tid + "/wchan");
    std::string w;
    f >> w;
    return w;
}

bool sq_thread_asleep() {
    auto sqp = tasks_named("iou-sqp-");
    return !sqp.empty() && task_state(sqp.back()) == 'S';
}

Result run_sqpoll(const Options& o) {
    Result r = base(o, o.via == Via::raw ? "raw" : "liburing");
    RawRing ring;
    io_uring lu{};
    int e;
    if (o.via == Via::raw) {
        e = ring.init(o.entries, IORING_SETUP_SQPOLL, o.idle_ms);
    } else {
        io_uring_params p{};
        p.flags = IORING_SETUP_SQPOLL;
        p.sq_thread_idle = o.idle_ms;
        e = io_uring_queue_init_params(o.entries, &lu, &p);
        r.fence = "liburing"; // liburing's own io_uring_smp_mb(), not switchable
    }
    if (!ring_ready(r, e, "io_uring_setup(SQPOLL)"))
        return r;
    std::mt19937_64 rng(o.seed);
    Budget budget(o);
    Watchdog dog{std::chrono::milliseconds(o.watchdog_ms)};
    // lost: the watchdog expired with our SQE unconsumed, NEED_WAKEUP set,
    // the SQ thread asleep and no wake-up sent by us for it (raw path: we
    // know what we read); slow: any other expiry, not an anomaly
    uint64_t lost = 0, slow = 0, wakeups = 0, bad = 0;
    auto t0 = clock_type::now();
    bool woke = false; // we sent a wake-up for the submission in flight
    auto wake = [&] {
        if (o.via == Via::raw)
            ring.enter(0, 0, IORING_ENTER_SQ_WAKEUP);
        else
            io_uring_enter(lu.ring_fd, 0, 0, IORING_ENTER_SQ_WAKEUP, nullptr);
    };
    while (!budget.over(r.ops)) {
        // land near the end of sq_thread_idle, when NEED_WAKEUP gets set
        auto idle = std::chrono::microseconds(o.idle_ms * 1000 + (rng() % 200) - 100);
        std::this_thread::sleep_for(std::max(idle, std::chrono::microseconds(0)));
        if (o.via == Via::raw) {
            io_uring_sqe* sqe = ring.get_sqe();
            if (!sqe)
                break;
            sqe->opcode = IORING_OP_NOP;
            sqe->user_data = r.ops + 1;
            woke = store_then_load(
                o.fence, o.reorder_ns, [&] { ring.flush(); },
                [&](Fence g) { return ring.sq_needs_wakeup(g); });
            if (woke) {
                wake();
                wakeups++;
            }
        } else {
            io_uring_sqe* sqe = io_uring_get_sqe(&lu);
            if (!sqe)
                break;
            io_uring_prep_nop(sqe);
            io_uring_submit(&lu); // wakes the SQ thread itself when flagged
        }
        dog.arm(clock_type::now());
        unsigned got = 0;
        bool counted = false;
        while (!got && !budget.over(0)) {
            if (o.via == Via::raw) {
                got = ring.reap(1, [&](const io_uring_cqe& c) { bad += c.res != 0; });
            } else {
                io_uring_cqe* cqe;
                if (io_uring_peek_cqe(&lu, &cqe) == 0) {
                    bad += cqe->res != 0;
                    io_uring_cqe_seen(&lu, cqe);
                    got = 1;
                }
            }
            if (!got && dog.expired(clock_type::now())) {
                bool is_lost = o.via == Via::raw && !woke && !counted && ring.sq_unconsumed() > 0 &&
                               ring.sq_needs_wakeup() && sq_thread_asleep();
                lost += is_lost;
                slow += !is_lost;
                counted = true;
                wake(); // as a careful application would, then go on
                woke = true;
                dog.arm(clock_type::now());
            }
        }
        r.ops += got;
    }
    r.seconds = since(t0);
    r.anomalies["lost_wakeups"] = lost;
    r.counts["slow"] = slow;
    r.counts["wakeups"] = wakeups;
    r.anomalies["bad_cqe"] = bad;
    if (o.via == Via::liburing)
        io_uring_queue_exit(&lu);
    return r;
}

} // namespace uringrace
