// uringrace: the workloads. Each returns a Result; a workload that cannot run
// here (no io_uring, no SQPOLL permission, no module) returns one with
// `skipped` set instead of failing.
#pragma once

#include <atomic>
#include <chrono>
#include <ctime>
#include <functional>
#include <sched.h>
#include <string>
#include <vector>

#include "options.hpp"
#include "report.hpp"

namespace uringrace {

// Set by SIGINT: every loop checks it and ends with a clean summary.
extern std::atomic<bool> g_interrupted;

struct Budget {
    std::chrono::steady_clock::time_point deadline;
    uint64_t max_ops;
    explicit Budget(const Options& o);
    bool over(uint64_t ops) const;
};

// The set of one CPU (sched_setaffinity, IORING_REGISTER_IOWQ_AFF).
cpu_set_t only_cpu(unsigned cpu);
// Pin the calling thread to one CPU; false if the kernel refused.
bool pin_self(unsigned cpu);
// For a storm whose two sides must run at once on CPUs 0 and 1: false,
// with r skipped and the reason (why: what runs where), on one CPU.
bool two_cpus(Result& r, const char* why);
// Pin the calling thread to cpu; false, with r marked an error, if refused.
bool pin_or_error(Result& r, unsigned cpu);

// Run fn(thread index) on n threads, pinned round-robin if asked, each with
// credentials of its own unless share_creds(true) (--shared-creds) was called.
void share_creds(bool shared);
void run_threads(unsigned n, bool pin, const std::function<void(unsigned)>& fn);

Result run_nop(const Options& o);
Result run_read(const Options& o);
Result run_sqpoll(const Options& o);
Result run_iowq(const Options& o);
Result run_iowq_hashed(const Options& o);
Result run_iowq_stall(const Options& o);
Result run_iowq_block(const Options& o);
Result run_iowq_splice(const Options& o);
Result run_iowq_starve(const Options& o);
Result run_iowq_churn(const Options& o);
Result run_iowq_exit(const Options& o);
Result run_iowq_cancel(const Options& o);
Result run_cq(const Options& o);
Result run_cq_sqpoll(const Options& o);
Result run_sqpoll_share(const Options& o);
Result run_sqpoll_flags(const Options& o);
Result run_poll_multi(const Options& o);
Result run_poll_multi_taskrun(const Options& o);
Result run_poll_multi_defer(const Options& o);
Result run_pbuf(const Options& o);
Result run_overflow(const Options& o);
Result run_overflow_defer(const Options& o);
Result run_overflow_msg(const Options& o);
Result run_overflow_drop(const Options& o);
Result run_defer_wait(const Options& o);
Result run_eventfd_wait(const Options& o);
Result run_msg_wait(const Options& o);
Result run_bpf_ringbuf(const Options& o);
Result run_bpf_ringbuf_libbpf(const Options& o);

// The workloads on the running kernel's own io_uring: the one list of their
// names, help lines and runners (usage and main read it).
struct RealWorkload {
    const char* name;
    const char* help;
    Result (*run)(const Options&);
};
const std::vector<RealWorkload>& real_workloads();
Result run_module(const Options& o);
Result run_litmus(const Options& o, const std::string& protocol);
Result run_sqpoll_aim(const Options& o);

// Shared by the workload files: a Result named after the options, the rule
// for a setup error (skip or error), and whether this process's SQPOLL
// thread (iou-sqp-<pid>) sleeps in state S.
Result base(const Options& o, const char* path);
double since(std::chrono::steady_clock::time_point t0);
// Nanoseconds on clock c (CLOCK_MONOTONIC: steady_clock's clock).
int64_t now_ns(clockid_t c = CLOCK_MONOTONIC);
// A threaded storm's setup error err (0: none): a skip when the kernel lacks
// the feature and no work was done, else an error (never a pass).
void settle_setup_error(Result& r, int err, const char* what);
// A storm's ring setup error e (0: none): false, with r skipped and why
// (what the setup asked for, then step: the step that failed), and an error
// unless the kernel lacks io_uring or forbids it (ENOSYS, EPERM, EACCES);
// true when e is 0. The one rule for every setup step: EINVAL for a flag
// is an error too (every flag the storms ask for is in 6.1, the oldest tree
// uringrace targets, so there EINVAL means the storm asked wrongly).
bool ring_ready(Result& r, int e, const char* what, const std::string& step = "");
// The storm's own setup failed (call: what it called, errno its reason):
// an error, never a skip (the kernel's io_uring is not what is missing) and
// never a pass.
void setup_failed(Result& r, const char* call);
// A scratch file in /tmp for the storm, unlinked once open (tag names it
// meanwhile), holding the len bytes at data: its fd, or -1 after
// setup_failed (a short write too: a storm never reads a file shorter than
// it asked for).
int scratch_file(Result& r, const char* tag, const void* data = nullptr, size_t len = 0);
bool sq_thread_asleep();
// This process's threads whose name starts with prefix (their TIDs), and the
// kernel function a thread sleeps in (/proc/self/task/TID/wchan, "" if none).
std::vector<std::string> tasks_named(const std::string& prefix);
std::string task_wchan(const std::string& tid);
// The state letter of this process's thread tid (/proc/self/task/TID/stat:
// 'S' asleep, 'R' running or runnable), '?' if unreadable.
char task_state(const std::string& tid);

// A stall watchdog: armed when a submission is made, it reports a stall when
// nothing completed within the limit. Exposed for the host tests.
class Watchdog {
  public:
    explicit Watchdog(std::chrono::milliseconds limit) : limit_(limit) {}
    void arm(std::chrono::steady_clock::time_point now) { armed_at_ = now, armed_ = true; }
    void disarm() { armed_ = false; }
    // true once per arming when the limit has passed
    bool expired(std::chrono::steady_clock::time_point now) {
        if (!armed_ || now - armed_at_ < limit_)
            return false;
        armed_ = false;
        return true;
    }
    bool armed() const { return armed_; }

  private:
    std::chrono::milliseconds limit_;
    std::chrono::steady_clock::time_point armed_at_{};
    bool armed_ = false;
};

} // namespace uringrace
