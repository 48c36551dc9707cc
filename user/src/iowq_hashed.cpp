// uringrace: io-wq workers that block, and io-wq's hashed work.
//
// iowq_block: io-wq keeps a count of its running workers (nr_running): the
// scheduler's hooks decrement it as a worker sleeps in a blocking call
// (io_wq_worker_sleeping, which creates another worker when work is
// pending) and increment it as the worker wakes (io_wq_worker_running).
// Each of o.threads threads has a ring and kOpens FIFOs of its own, and
// over and over: submits an IOSQE_ASYNC open of each FIFO for reading,
// which blocks in an io-wq worker (a FIFO's read open waits for a writer;
// io-wq does not turn an open into a poll as it does a pipe read), waits a
// moment, then opens each FIFO for writing (each waits for its reader), so
// the kOpens workers all block, then wake within microseconds, on both CPUs.
// (One FIFO for all the opens, as at first: a writer's open wakes the
// readers blocked so far and the later opens find it there and do not
// block: 3 712 worker sleeps in 3 858 rounds of 4 opens, x86-64 guest, 10 s.)
// Every CQE must be a file descriptor (then closed).
//
// iowq_hashed: buffered writes to a regular file are
// hashed by inode: io-wq runs one hash's work on one worker at a time, and a
// worker that finds only busy hashes marks its queue stalled
// (IO_ACCT_STALLED_BIT) and waits on the hash; the worker that finishes a
// hash clears its bit in the ring's hash map and the stalled mark, under a
// different lock than the one that set them.
//
// The hash map is the ring's through which a task first submitted (its
// io-wq is made then, with that ring's map): so each of o.threads threads
// first submits one NOP through a shared hub ring, then storms on a ring of
// its own. Every thread's io-wq then shares the hub's map: a hash one
// thread's worker holds stalls the other threads' queues, and the worker
// that releases it clears their stalled marks (io_wq_hash_wake) under the
// hash's wait lock while their own workers set them under their queues'
// locks. (A map per thread, as before: hash-map and stalled races rare.)
// Batches of IOSQE_ASYNC 512-byte writes into two shared files (two hashes)
// mixed with IOSQE_ASYNC NOPs (unhashed work a free worker may take while
// the hashes are busy), with idle gaps so that workers exit and are created
// again. Every CQE must carry its own result:
// 512 for a write, 0 for a NOP.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <fcntl.h>
#include <mutex>
#include <random>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "raw_uring.hpp"
#include "workloads.hpp"

namespace uringrace {

namespace {

// An IOSQE_ASYNC open of path: io-wq runs it, and a FIFO's open blocks the
// worker until its partner opens the other end.
void prep_async_open(RawRing& ring, const char* path, int flags, uint64_t ud) {
    io_uring_sqe* sqe = ring.get_sqe();
    sqe->opcode = IORING_OP_OPENAT;
    sqe->flags = IOSQE_ASYNC;
    sqe->fd = AT_FDCWD;
    sqe->addr = reinterpret_cast<uint64_t>(path);
    sqe->open_flags = flags | O_CLOEXEC;
    sqe->user_data = ud;
}

// Up to n CQEs of such opens, waited for up to limit: each fd closed, each
// failed open counted in bad. The count reaped.
unsigned reap_opens(RawRing& ring, unsigned n, std::chrono::milliseconds limit,
                    std::atomic<uint64_t>& bad) {
    unsigned got = 0;
    auto t_wait = std::chrono::steady_clock::now();
    while (got < n && std::chrono::steady_clock::now() - t_wait < limit) {
        ring.wait(1, 10000000);
        got += ring.reap(n - got, [&](const io_uring_cqe& c) {
            if (c.res >= 0)
                close(c.res);
            else
                bad.fetch_add(1, std::memory_order_relaxed);
        });
    }
    return got;
}

// The FIFO's write end, opened without blocking: again every step while its
// reader is not there yet (ENXIO), up to limit. The fd, or -1 with errno.
int open_writer(const std::string& fifo, std::chrono::milliseconds limit,
                std::chrono::microseconds step) {
    int w;
    auto t_open = std::chrono::steady_clock::now();
    while ((w = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0 && errno == ENXIO &&
           std::chrono::steady_clock::now() - t_open < limit)
        std::this_thread::sleep_for(step);
    return w;
}

} // namespace

Result run_iowq_hashed(const Options& o) {
    Result r = base(o, "raw");
    int files[2] = {-1, -1};
    for (int& fd : files) {
        fd = scratch_file(r, "hashed");
        if (fd < 0) {
            for (int f : files)
                if (f >= 0)
                    close(f);
            return r;
        }
    }
    constexpr unsigned kLen = 512, kSlots = 64;
    std::atomic<uint64_t> ops{0}, bad{0}, writes{0};
    std::atomic<int> err{0};
    RawRing hub;
    if (!ring_ready(r, hub.init(8), "io_uring_setup", hub.what())) {
        for (int f : files)
            close(f);
        return r;
    }
    std::mutex hub_mu;
    Budget budget(o);
    auto t0 = std::chrono::steady_clock::now();
    run_threads(o.threads, o.pin, [&](unsigned t) {
        std::mt19937_64 rng(o.seed + t);
        const unsigned batch = std::min(32u, o.entries);
        {
            std::lock_guard<std::mutex> lock(hub_mu);
            io_uring_sqe* sqe = hub.get_sqe();
            sqe->opcode = IORING_OP_NOP;
            sqe->user_data = t + 1;
            int e = hub.submit_and_wait(1);
            unsigned got = hub.reap(1, [](const io_uring_cqe&) {});
            if (e != 1 || got != 1) {
                err.store(e < 0 ? e : -EIO);
                return;
            }
        }
        std::vector<char> data(kLen, static_cast<char>('a' + t % 26));
        RawRing ring;
        if (int e = ring.init(o.entries); e) {
            err.store(e);
            return;
        }
        std::vector<int> want(batch + 1);
        while (!budget.over(ops.load(std::memory_order_relaxed))) {
            unsigned w = 0;
            for (unsigned i = 0; i < batch; i++) {
                io_uring_sqe* sqe = ring.get_sqe();
                sqe->flags = IOSQE_ASYNC;
                sqe->user_data = i + 1;
                if (rng() % 3) {
                    sqe->opcode = IORING_OP_WRITE;
                    sqe->fd = files[rng() % 2];
                    sqe->addr = reinterpret_cast<uint64_t>(data.data());
                    sqe->len = kLen;
                    sqe->off = (rng() % kSlots) * kLen;
                    want[i + 1] = kLen;
                    w++;
                } else {
                    sqe->opcode = IORING_OP_NOP;
                    want[i + 1] = 0;
                }
            }
            if (int e = ring.submit_and_wait(batch); e < 0) {
                err.store(e);
                break;
            }
            unsigned got = 0;
            uint64_t mybad = 0;
            while (got < batch)
                got += ring.reap(batch - got, [&](const io_uring_cqe& c) {
                    if (c.user_data == 0 || c.user_data > batch || c.res != want[c.user_data])
                        mybad++;
                });
            bad.fetch_add(mybad, std::memory_order_relaxed);
            writes.fetch_add(w, std::memory_order_relaxed);
            ops.fetch_add(got, std::memory_order_relaxed);
            if (rng() % 4 == 0) // idle gap: workers go free, exit, come back
                std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
        }
    });
    for (int f : files)
        close(f);
    r.seconds = since(t0);
    r.ops = ops.load();
    r.anomalies["bad_cqe"] = bad.load();
    r.counts["writes"] = writes.load();
    settle_setup_error(r, err.load(), "io_uring_setup");
    return r;
}

// iowq_stall: io-wq's stalled mark, set by one worker as the other clears
// it. One ring with two bound workers (IORING_REGISTER_IOWQ_MAX_WORKERS) and
// one file, so every write has one hash. A round submits a write, which
// worker A takes, and a delay later a second one, whose enqueue wakes
// worker B: B finds the hash busy and marks the queue stalled
// (io_get_next_work, under the queue's lock) while A, as it finishes the
// first write, clears the hash's bit and the mark (io_worker_handle_work,
// under the hash's wait lock). KCSAN can watch only B's mark when it is
// plain (iowq-stalled-plain), so it sees the pair only when B marks within
// a watch of A's clear: the delay is drawn anew each round up to kSweep, so
// some rounds land there. In iowq_hashed the two meet by chance, about once
// in 30 s (x86-64 TCG). Every write must return its length (bad_cqe).
Result run_iowq_stall(const Options& o) {
    Result r = base(o, "raw");
    if (!two_cpus(r, "a worker on each"))
        return r;
    const int fd = scratch_file(r, "stall");
    if (fd < 0)
        return r;
    constexpr unsigned kLen = 512;
    constexpr int64_t kSweepNs = 300000;
    RawRing ring;
    unsigned limits[2] = {2, 0}; // bound, unbound (0: unchanged)
    if (!ring_ready(r, ring.init(8), "io_uring_setup", ring.what()) ||
        !ring_ready(r, std::min(0, ring.register_op(IORING_REGISTER_IOWQ_MAX_WORKERS, limits, 2)),
                    "IORING_REGISTER_IOWQ_MAX_WORKERS", "")) {
        close(fd);
        return r;
    }
    int e = 0;
    std::vector<char> data(kLen, 's');
    auto write_sqe = [&](uint64_t ud) {
        io_uring_sqe* sqe = ring.get_sqe();
        sqe->opcode = IORING_OP_WRITE;
        sqe->flags = IOSQE_ASYNC;
        sqe->fd = fd;
        sqe->addr = reinterpret_cast<uint64_t>(data.data());
        sqe->len = kLen;
        sqe->off = (ud % 64) * kLen;
        sqe->user_data = ud;
    };
    std::mt19937_64 rng(o.seed);
    uint64_t writes = 0, bad = 0;
    Budget budget(o);
    auto t0 = std::chrono::steady_clock::now();
    while (!budget.over(writes) && !g_interrupted.load(std::memory_order_relaxed)) {
        const int64_t delay = int64_t(rng() % kSweepNs);
        write_sqe(writes + 1);
        const int64_t t = now_ns();
        if (e = ring.submit_and_wait(0); e >= 0) {
            while (now_ns() - t < delay)
                ;
            write_sqe(writes + 2);
            e = ring.submit_and_wait(2);
        }
        if (e < 0) {
            ring_ready(r, e, "io_uring_enter", "");
            break;
        }
        unsigned got = 0;
        while (got < 2) {
            unsigned n = ring.reap(2 - got, [&](const io_uring_cqe& c) {
                bad += c.res != int(kLen) || c.user_data <= writes || c.user_data > writes + 2;
            });
            if (!n && ring.wait(1, int64_t(o.watchdog_ms) * 1000000) < 0)
                break;
            got += n;
        }
        writes += 2;
        if (got < 2) {
            r.counts["errors"] = 1;
            r.skipped = "a write never completed";
            break;
        }
    }
    close(fd);
    r.seconds = since(t0);
    r.ops = writes;
    r.anomalies["bad_cqe"] = bad;
    return r;
}

Result run_iowq_block(const Options& o) {
    Result r = base(o, "raw");
    constexpr unsigned kOpens = 4;
    std::atomic<uint64_t> ops{0}, bad{0}, rounds{0};
    std::atomic<int> err{0};
    Budget budget(o);
    auto t0 = std::chrono::steady_clock::now();
    run_threads(o.threads, o.pin, [&](unsigned t) {
        std::mt19937_64 rng(o.seed + t);
        std::vector<std::string> fifos;
        for (unsigned i = 0; i < kOpens && !err.load(); i++) {
            fifos.push_back("/tmp/uringrace-block-" + std::to_string(getpid()) + "-" +
                            std::to_string(t) + "-" + std::to_string(i));
            if (mkfifo(fifos.back().c_str(), 0600))
                err.store(-errno);
        }
        RawRing ring;
        if (int e = err.load() ? 0 : ring.init(std::max(o.entries, kOpens)); e)
            err.store(e);
        while (!budget.over(ops.load(std::memory_order_relaxed)) && !err.load()) {
            for (unsigned i = 0; i < kOpens; i++)
                prep_async_open(ring, fifos[i].c_str(), O_RDONLY, i + 1);
            if (int e = ring.submit_and_wait(0); e < 0) {
                err.store(e);
                break;
            }
            // the workers reach their FIFOs and sleep; then the writers wake them
            std::this_thread::sleep_for(std::chrono::microseconds(200 + rng() % 2000));
            int w[kOpens];
            unsigned opened = 0;
            // non-blocking, again until its reader is there: a read open
            // that failed must not leave this thread blocked
            for (; opened < kOpens; opened++)
                if ((w[opened] = open_writer(fifos[opened], std::chrono::seconds(5),
                                             std::chrono::microseconds(20))) < 0) {
                    err.store(-errno);
                    break;
                }
            unsigned got = reap_opens(ring, kOpens, std::chrono::seconds(5), bad);
            for (unsigned i = 0; i < opened; i++)
                close(w[i]);
            if (got < kOpens) { // an open that never completed: the run is void
                err.store(-ETIME);
                break;
            }
            ops.fetch_add(got, std::memory_order_relaxed);
            rounds.fetch_add(1, std::memory_order_relaxed);
        }
        for (const auto& f : fifos)
            unlink(f.c_str());
    });
    r.seconds = since(t0);
    r.ops = ops.load();
    r.anomalies["bad_cqe"] = bad.load();
    r.counts["rounds"] = rounds.load();
    settle_setup_error(r, err.load(), "io_uring_setup");
    return r;
}

// iowq_starve: work queued to io-wq must run while a worker blocks. A worker
// that blocks with work queued asks for another (io_wq_dec_running ->
// create_worker_cb), but at its acct's worker limit none is made, and an
// enqueue wakes the first worker on the free list even when the previous
// enqueue woke that same one (io_wq_activate_free_worker). Each thread caps
// its io-wq at 2 bound workers (IORING_REGISTER_IOWQ_MAX_WORKERS), makes both
// (two read opens of its FIFO, blocked, then released by its own writer
// open), waits until both sleep free, then submits through io-wq a read open
// and a write open of the FIFO. The write releases the read: done at once if
// the two free workers take one each. If one worker took the read and
// blocked, the write waits for the other free worker's idle timeout (5 s):
// a pair not done within o.watchdog_ms counts as starved. (6.1 counts a
// free worker as taken only if wake_up_process() woke it, so its second
// enqueue wakes the other: Debian 6.12 starved 10 of 10 pairs, 6.1 0 of 10.)
Result run_iowq_starve(const Options& o) {
    Result r = base(o, "raw");
    constexpr unsigned kWorkers = 2;
    std::atomic<uint64_t> ops{0}, bad{0}, pairs{0}, starved{0}, unready{0}, worst_us{0};
    std::atomic<int> err{0};
    Budget budget(o);
    auto t0 = std::chrono::steady_clock::now();
    run_threads(o.threads, o.pin, [&](unsigned t) {
        const std::string fifo =
            "/tmp/uringrace-starve-" + std::to_string(getpid()) + "-" + std::to_string(t);
        const std::string workers = "iou-wrk-" + std::to_string(gettid());
        if (mkfifo(fifo.c_str(), 0600)) {
            err.store(-errno);
            return;
        }
        RawRing ring;
        unsigned limits[2] = {kWorkers, 0}; // bound, unbound (0: unchanged)
        if (int e = ring.init(8); e)
            err.store(e);
        else if (int e = ring.register_op(IORING_REGISTER_IOWQ_MAX_WORKERS, limits, 2); e < 0)
            err.store(e);
        // the thread's workers asleep in a function named fn..., polled up
        // to 1 s (a free worker sleeps in io_wq_worker, 6.1's io_wqe_worker)
        auto all_in = [&](const char* fn) {
            for (int i = 0; i < 1000; i++) {
                unsigned n = 0;
                for (const auto& tid : tasks_named(workers))
                    n += task_wchan(tid).rfind(fn, 0) == 0;
                if (n >= kWorkers)
                    return true;
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            return false;
        };
        while (!budget.over(ops.load(std::memory_order_relaxed)) && !err.load()) {
            // both workers made (or woken) and blocked, then released
            for (unsigned i = 0; i < kWorkers; i++)
                prep_async_open(ring, fifo.c_str(), O_RDONLY, 1);
            if (int e = ring.submit_and_wait(0); e < 0) {
                err.store(e);
                break;
            }
            bool both = all_in("wait_for_partner");
            int w = open_writer(fifo, std::chrono::seconds(10), std::chrono::milliseconds(1));
            if (w < 0) { // no reader ever came: the run is void
                err.store(-errno);
                break;
            }
            unsigned got = reap_opens(ring, kWorkers, std::chrono::seconds(10), bad);
            close(w);
            if (got < kWorkers) {
                err.store(-ETIME);
                break;
            }
            ops.fetch_add(got, std::memory_order_relaxed);
            if (!both || !all_in("io_wq")) { // not two free workers: no attempt
                unready.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            // the pair
            auto t_pair = std::chrono::steady_clock::now();
            prep_async_open(ring, fifo.c_str(), O_RDONLY, 2);
            prep_async_open(ring, fifo.c_str(), O_WRONLY, 3);
            if (int e = ring.submit_and_wait(0); e < 0) {
                err.store(e);
                break;
            }
            got = reap_opens(ring, 2, std::chrono::seconds(10), bad);
            auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - t_pair)
                          .count();
            if (got < 2) { // not even the idle timeout freed it: the run is void
                err.store(-ETIME);
                break;
            }
            ops.fetch_add(got, std::memory_order_relaxed);
            pairs.fetch_add(1, std::memory_order_relaxed);
            if (us > int64_t(o.watchdog_ms) * 1000)
                starved.fetch_add(1, std::memory_order_relaxed);
            uint64_t prev = worst_us.load();
            while (uint64_t(us) > prev && !worst_us.compare_exchange_weak(prev, uint64_t(us)))
                ;
        }
        unlink(fifo.c_str());
    });
    r.seconds = since(t0);
    r.ops = ops.load();
    r.anomalies["bad_cqe"] = bad.load();
    r.anomalies["starved"] = starved.load();
    r.counts["pairs"] = pairs.load();
    r.counts["unready"] = unready.load();
    r.counts["worst_pair_us"] = worst_us.load();
    if (!err.load() && !pairs.load())
        r.counts["errors"] = 1; // no pair tried: missing work, never a pass
    settle_setup_error(r, err.load(), "io_uring_setup");
    return r;
}

} // namespace uringrace
