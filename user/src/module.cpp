// uringrace: the application side of the module's scenarios, on the ring the
// module maps (URINGRACE_MODE_USER, and MODE_USER_MM for cq_tail).
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/uringrace.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>

#include "fences.hpp"
#include "ring.hpp"
#include "ringbuf_model.hpp"
#include "scenarios.hpp"
#include "workloads.hpp"

namespace uringrace {

namespace {

class Device {
  public:
    ~Device() {
        if (ring_)
            munmap(ring_, bytes_);
        if (fd_ >= 0)
            close(fd_);
    }
    // 0, or -errno with what() naming the step
    int open_and_map(const uringrace_config& cfg) {
        fd_ = ::open(URINGRACE_DEV, O_RDWR | O_CLOEXEC);
        if (fd_ < 0)
            return fail("open " URINGRACE_DEV);
        uringrace_version v{};
        v.size = sizeof(v);
        if (ioctl(fd_, URINGRACE_IOC_VERSION, &v))
            return fail("version ioctl");
        if (v.api != URINGRACE_API_VERSION) {
            what_ = "module API " + std::to_string(v.api) + ", driver built for " +
                    std::to_string(URINGRACE_API_VERSION);
            return -EPROTO;
        }
        if (ioctl(fd_, URINGRACE_IOC_CONFIGURE, &cfg))
            return fail("configure ioctl");
        long page = sysconf(_SC_PAGESIZE);
        bytes_ = (uringrace_ring_bytes(cfg.entries) + page - 1) & ~(page - 1);
        void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
        if (p == MAP_FAILED)
            return fail("mmap ring");
        ring_ = static_cast<uringrace_ring_hdr*>(p);
        return 0;
    }
    int start() { return ioctl(fd_, URINGRACE_IOC_START, 0) ? fail("start ioctl") : 0; }
    int stop() { return ioctl(fd_, URINGRACE_IOC_STOP, 0) ? fail("stop ioctl") : 0; }
    int wake() { return ioctl(fd_, URINGRACE_IOC_WAKE, 0) ? fail("wake ioctl") : 0; }
    bool stats(uringrace_stats& st) {
        st = {};
        st.size = sizeof(st);
        return ioctl(fd_, URINGRACE_IOC_STATS, &st) == 0;
    }
    uringrace_ring_hdr* ring() const { return ring_; }
    uringrace_entry* entries() const { return reinterpret_cast<uringrace_entry*>(ring_ + 1); }
    const std::string& what() const { return what_; }

  private:
    int fail(const char* step) {
        int e = -errno;
        what_ = std::string(step) + ": " + std::strerror(errno);
        return e;
    }
    int fd_ = -1;
    uringrace_ring_hdr* ring_ = nullptr;
    size_t bytes_ = 0;
    std::string what_;
};

using clock_type = std::chrono::steady_clock;

// sq_head: fill SQEs and reuse each slot the moment the head frees it
uint64_t sq_head_producer(Device& d, const RingMath& m, const Budget& b) {
    auto* r = d.ring();
    uringrace_entry* e = d.entries();
    uint32_t tail = 0;
    while (!b.over(tail)) {
        // pairs with the module's head publish (release in the fixed variant)
        if (m.full(load(&r->head, std::memory_order_acquire), tail))
            continue;
        uringrace_entry* s = &e[m.slot(tail)];
        uint64_t seq = uint64_t(tail) + 1;
        s->seq = seq;
        s->data[0] = s->data[1] = s->data[2] = seq;
        s->seq_end = seq;
        store(&r->tail, ++tail, std::memory_order_release);
    }
    return tail;
}

// cq_tail: reap CQEs; --fence off loads the tail relaxed (the buggy reader)
uint64_t cq_tail_reaper(Device& d, const RingMath& m, const Budget& b, Fence f, uint64_t& stale) {
    auto* r = d.ring();
    uringrace_entry* e = d.entries();
    uint32_t head = 0;
    while (!b.over(head)) {
        uint32_t tail = load(&r->tail, load_order(f));
        while (head != tail) {
            const uringrace_entry* c = &e[m.slot(head)];
            uint64_t want = uint64_t(head) + 1;
            if (c->seq != want || c->data[0] != want || c->seq_end != want)
                stale++;
            head++;
        }
        store(&r->head, head, std::memory_order_release);
    }
    return head;
}

// sqpoll_wakeup: submit to the module's SQ thread at the moment it sleeps. A
// lost wake-up is only this: we read NEED_WAKEUP clear and sent none, and
// after wd_ms the flag is set and our entry still unconsumed (the thread
// went to sleep without seeing it); any other delay is not counted.
uint64_t sqpoll_submitter(Device& d, const Budget& b, Fence f, unsigned reorder_ns, unsigned wd_ms,
                          uint64_t& lost) {
    auto* r = d.ring();
    uint32_t tail = 0;
    Watchdog dog{std::chrono::milliseconds(wd_ms)};
    while (!b.over(tail)) {
        ++tail;
        bool woke = store_then_load(
            f, reorder_ns, [&] { store(&r->tail, tail, std::memory_order_release); },
            [&](Fence g) {
                return load_after_store(&r->flags, g, std::memory_order_relaxed) &
                       URINGRACE_RING_NEED_WAKEUP;
            });
        if (woke)
            d.wake();
        dog.arm(clock_type::now());
        while (load(&r->head, std::memory_order_acquire) != tail && !b.over(0)) {
            if (dog.expired(clock_type::now())) {
                lost += !woke &&
                        (load(&r->flags, std::memory_order_acquire) & URINGRACE_RING_NEED_WAKEUP) &&
                        load(&r->head, std::memory_order_acquire) != tail;
                woke = true;
                d.wake(); // IORING_ENTER_SQ_WAKEUP's role
                dog.arm(clock_type::now());
            }
        }
    }
    return tail;
}

// The application side of each scenario that has one: what it runs, the
// counter its anomalies go to, and which side produces the work (for the
// cross-check of the two sides' operation counts).
struct UserSide {
    unsigned scenario;
    const char* help;
    const char* counter;
    bool user_produces;
    uint64_t (*run)(Device&, const RingMath&, const Budget&, const Options&, uint64_t&);
};

constexpr UserSide user_sides[] = {
    {URINGRACE_SC_SQ_HEAD, "module: fill SQEs, reuse each slot as soon as the head frees it",
     "anomalies", true,
     [](Device& d, const RingMath& m, const Budget& b, const Options&, uint64_t&) {
         return sq_head_producer(d, m, b);
     }},
    {URINGRACE_SC_CQ_TAIL, "module: reap CQEs (--fence off: relaxed tail load)", "stale_cqe_user",
     false,
     [](Device& d, const RingMath& m, const Budget& b, const Options& o, uint64_t& an) {
         return cq_tail_reaper(d, m, b, o.fence, an);
     }},
    {URINGRACE_SC_SQPOLL_WAKEUP, "module: submit to the module's SQ thread (--fence F)",
     "lost_wakeups", true,
     [](Device& d, const RingMath&, const Budget& b, const Options& o, uint64_t& an) {
         return sqpoll_submitter(d, b, o.fence, o.reorder_ns, o.watchdog_ms, an);
     }},
    {URINGRACE_SC_RINGBUF_NOTIFY, "module: consume the module's ring buffer (--fence F)",
     "lost_notify_user", false,
     [](Device& d, const RingMath& m, const Budget& b, const Options& o, uint64_t& an) {
         return ringbuf_consume(d.ring(), d.entries(), m, b, o.fence, o.watchdog_ms, an);
     }},
};

const UserSide* user_side(const std::string& workload) {
    auto id = id_of(kScenarios, workload);
    for (const auto& u : user_sides)
        if (id && u.scenario == *id)
            return &u;
    return nullptr;
}

} // namespace

std::vector<std::pair<std::string, std::string>> module_workloads() {
    std::vector<std::pair<std::string, std::string>> w;
    for (const auto& u : user_sides)
        w.emplace_back(std::string(name_of(kScenarios, u.scenario)), u.help);
    return w;
}

Result run_module(const Options& o) {
    Result r;
    r.workload = o.workload;
    r.path = "module";
    r.fence = std::string(fence_name(o.fence));
    const UserSide* side = user_side(o.workload);
    if (!side) {
        r.skipped = "no application side for " + o.workload;
        r.counts["errors"] = 1;
        return r;
    }
    uringrace_config cfg{};
    cfg.size = sizeof(cfg);
    cfg.scenario = side->scenario;
    cfg.variant = id_of(kVariants, o.variant).value_or(URINGRACE_VAR_FIXED);
    cfg.mode = id_of(kModes, o.mode).value_or(URINGRACE_MODE_USER);
    cfg.threads = 1;
    // the module runs a little longer than we do, so it is still there at the end
    cfg.duration_ms = static_cast<uint32_t>(o.duration_s * 1000) + 2000;
    cfg.entries = o.entries;
    cfg.watchdog_ms = o.watchdog_ms;
    Device d;
    if (access(URINGRACE_DEV, F_OK)) {
        r.skipped = URINGRACE_DEV " missing: load uringrace.ko";
        return r;
    }
    if (int e = d.open_and_map(cfg); e) {
        r.skipped = d.what();
        if (e != -ENOENT && e != -ENODEV)
            r.counts["errors"] = 1;
        return r;
    }
    if (d.start()) {
        r.skipped = d.what();
        r.counts["errors"] = 1;
        return r;
    }
    RingMath m = *RingMath::make(o.entries);
    Budget b(o);
    uint64_t anomalies = 0;
    auto t0 = clock_type::now();
    r.ops = side->run(d, m, b, o, anomalies);
    r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    uringrace_stats st{};
    d.stop();
    if (d.stats(st)) {
        r.counts["module_ops"] = st.ops;
        for (int i = 0; i < URINGRACE_AN_MAX; i++)
            if (st.anomalies[i])
                r.anomalies["module_" + std::string(name_of(kAnomalies, i))] = st.anomalies[i];
        r.counts["module_kcsan_reports"] = st.kcsan_reports;
        // cross-check: the two sides must agree on how much work passed
        // (the consumer never has more than the producer made)
        bool agree = side->user_produces ? st.ops <= r.ops : r.ops <= st.ops;
        if (!agree)
            r.anomalies["mismatch"] = 1;
    } else {
        r.counts["errors"] = 1;
    }
    r.anomalies[side->counter] = anomalies;
    return r;
}

} // namespace uringrace
