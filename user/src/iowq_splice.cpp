// uringrace: io-wq workers put to sleep and woken on both CPUs at once.
//
// io-wq counts the running workers of each of its accounts (nr_running):
// the scheduler's hooks decrement it as a worker sleeps in a blocking call
// (io_wq_worker_sleeping) and increment it as the worker wakes
// (io_wq_worker_running). Only workers of one io-wq share the count, and an
// io-wq is a task's: so one thread submits everything here.
//
// IORING_OP_SPLICE always runs in io-wq (it cannot be made non-blocking)
// and, from an empty pipe, sleeps in the worker until a byte arrives. This
// thread keeps --entries splices out, each from its own pipe into /dev/null
// (not a regular file: every one in io-wq's unbound account, one worker
// each). Two writer threads, pinned one per CPU, own every other pipe and put
// a byte into each pipe whose splice is out again; the byte wakes that
// worker, wherever it sleeps, and the splice completes. This thread reaps
// and submits each pipe's splice again. So workers fall asleep and wake on
// both CPUs without a pause, each change of the count on one CPU meeting
// the other's. (iowq_block wakes its four workers one open after the other:
// about 700 sleeps a second in an x86-64 guest.)
//
// Every splice must move its one byte (bad_cqe), and every byte written
// must be spliced within the watchdog (lost_cqe).
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <thread>
#include <unistd.h>
#include <vector>

#include "raw_uring.hpp"
#include "workloads.hpp"

namespace uringrace {

Result run_iowq_splice(const Options& o) {
    Result r = base(o, "raw");
    if (!two_cpus(r, "a writer on each"))
        return r;
    const unsigned n = o.entries;
    RawRing ring;
    if (!ring_ready(r, ring.init(n), "io_uring_setup", ring.what()))
        return r;
    // a pipe and its own /dev/null: splices into one open file would race
    // on its position (do_splice / do_splice: 52 KCSAN reports in 30 s)
    struct Pipe {
        int rd = -1, wr = -1, sink = -1;
        std::atomic<bool> owed{false}; // a splice is out and has no byte yet
    };
    std::unique_ptr<Pipe[]> pipes(new Pipe[n]);
    auto cleanup = [&] {
        for (unsigned i = 0; i < n; i++)
            for (int fd : {pipes[i].rd, pipes[i].wr, pipes[i].sink})
                if (fd >= 0)
                    close(fd);
    };
    for (unsigned i = 0; i < n; i++) {
        int fds[2];
        const char* failed = pipe2(fds, O_CLOEXEC) ? "pipe2" : nullptr;
        if (!failed) {
            pipes[i].rd = fds[0];
            pipes[i].wr = fds[1];
            if ((pipes[i].sink = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
                failed = "open /dev/null";
        }
        if (failed) {
            setup_failed(r, failed);
            cleanup();
            return r;
        }
    }
    auto splice_out = [&](unsigned i) {
        io_uring_sqe* sqe = ring.get_sqe();
        sqe->opcode = IORING_OP_SPLICE;
        sqe->fd = pipes[i].sink;
        sqe->splice_fd_in = pipes[i].rd;
        sqe->splice_off_in = ~0ull; // a pipe: no offset
        sqe->off = ~0ull;           // /dev/null's file position
        sqe->len = 1;
        sqe->user_data = i + 1;
    };
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> written{0}, write_errors{0};
    auto writer = [&](unsigned cpu) {
        if (!pin_self(cpu)) {
            write_errors.fetch_add(1);
            return;
        }
        const char byte = 'u';
        while (!stop.load(std::memory_order_relaxed))
            for (unsigned i = cpu; i < n; i += 2)
                if (pipes[i].owed.exchange(false, std::memory_order_acq_rel)) {
                    if (write(pipes[i].wr, &byte, 1) == 1)
                        written.fetch_add(1, std::memory_order_relaxed);
                    else
                        write_errors.fetch_add(1);
                }
    };
    for (unsigned i = 0; i < n; i++)
        splice_out(i);
    if (int e = ring.submit_and_wait(0); e < 0) {
        r.skipped = std::string("io_uring_enter(SPLICE): ") + std::strerror(-e);
        r.counts["errors"] = 1;
        cleanup();
        return r;
    }
    for (unsigned i = 0; i < n; i++)
        pipes[i].owed.store(true, std::memory_order_release);
    std::thread w0(writer, 0u), w1(writer, 1u);
    uint64_t bad = 0, spliced = 0, enter_errors = 0, submitted = n;
    using clock = std::chrono::steady_clock;
    const auto limit = std::chrono::milliseconds(o.watchdog_ms);
    std::vector<unsigned> again;
    auto progress = clock::now();
    // reap; while running, submit each finished pipe's splice again.
    // False once nothing came back within the watchdog.
    auto pump = [&](bool resubmit) {
        ring.wait(1, 1000000);
        again.clear();
        unsigned got = ring.reap(n, [&](const io_uring_cqe& c) {
            if (c.user_data == 0 || c.user_data > n || c.res != 1)
                bad++;
            else
                again.push_back(unsigned(c.user_data - 1));
        });
        spliced += got;
        if (got)
            progress = clock::now();
        if (resubmit && !again.empty()) {
            for (unsigned i : again)
                splice_out(i);
            if (ring.submit_and_wait(0) < 0) {
                enter_errors++;
                return false;
            }
            submitted += again.size();
            for (unsigned i : again)
                pipes[i].owed.store(true, std::memory_order_release);
        }
        return clock::now() - progress < limit;
    };
    Budget budget(o);
    auto t0 = clock::now();
    bool flowing = true;
    while (flowing && !budget.over(spliced) && !g_interrupted.load(std::memory_order_relaxed) &&
           !write_errors.load())
        flowing = pump(true);
    stop.store(true);
    w0.join();
    w1.join();
    // the splices still out: one without its byte gets it now, and all
    // must come back
    const char byte = 'u';
    for (unsigned i = 0; i < n; i++)
        if (pipes[i].owed.exchange(false) && write(pipes[i].wr, &byte, 1) != 1)
            write_errors.fetch_add(1);
    progress = clock::now();
    while (flowing && spliced + bad < submitted)
        flowing = pump(false);
    cleanup();
    r.seconds = since(t0);
    r.ops = spliced;
    r.anomalies["bad_cqe"] = bad;
    r.anomalies["lost_cqe"] = submitted - std::min(submitted, spliced + bad);
    r.counts["written"] = written.load();
    if (write_errors.load() || enter_errors)
        r.counts["errors"] = write_errors.load() + enter_errors;
    else if (!spliced)
        r.counts["errors"] = 1; // no worker ever woke: missing work
    return r;
}

} // namespace uringrace
