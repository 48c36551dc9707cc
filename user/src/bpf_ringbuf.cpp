// uringrace: seed 003 on the running kernel's own BPF ring buffer.
//
// A BPF_MAP_TYPE_RINGBUF and a ten-instruction socket filter that writes one
// 8-byte record into it with bpf_ringbuf_output(flags 0): the kernel's
// bpf_ringbuf_commit() clears the header's busy bit with xchg() (a full
// barrier), then loads consumer_pos and wakes the map's wait queue only if
// the consumer is caught up at this record's start. The producer thread runs
// the program with BPF_PROG_TEST_RUN; no clang, no libbpf needed for it.
//
// The consumers (one per run):
//   bpf_ringbuf         libbpf's ring_buffer processing (libbpf_process(),
//                       ringbuf_model.hpp) with the --fence form after each
//                       consumer_pos store, then an edge-triggered epoll
//                       wait (EPOLLET, as aya and libbpf's 2026 patch wait)
//   bpf_ringbuf_libbpf  libbpf's own ring_buffer__poll() as Debian ships it:
//                       level-triggered epoll (host build only: the guests'
//                       static driver has no libbpf)
//
// Aim: the consumer's callback for record A tells the producer, which at once
// runs the program for record B; the callback then spins d ns (swept over
// [0, --aim-after-ns]) before it returns, so the consumer's consumer_pos
// store after A lands around B's commit. A lost notification is counted only
// when the consumer slept --watchdog-ms in epoll_wait with a committed record
// at its position; it then consumes it and goes on.
#include <linux/bpf.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#if URINGRACE_LIBBPF
#include <bpf/libbpf.h>
#endif

#include "ringbuf_model.hpp"
#include "workloads.hpp"

namespace uringrace {

namespace {

using clock_type = std::chrono::steady_clock;

long sys_bpf(int cmd, bpf_attr& a) {
    return syscall(__NR_bpf, cmd, &a, sizeof(a));
}

bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
    bpf_insn i{};
    i.code = code;
    i.dst_reg = dst;
    i.src_reg = src;
    i.off = off;
    i.imm = imm;
    return i;
}

// A real BPF ring buffer, its producer program, and our view of its pages.
class BpfRing {
  public:
    ~BpfRing() {
        if (cons_ != MAP_FAILED)
            munmap(cons_, page_);
        if (prod_ != MAP_FAILED)
            munmap(prod_, page_ + 2 * size_);
        for (int fd : {prog_, map_})
            if (fd >= 0)
                close(fd);
    }

    // 0 or -errno; what() names the step that failed
    int init(uint32_t size) {
        size_ = size;
        page_ = size_t(sysconf(_SC_PAGESIZE));
        bpf_attr a{};
        a.map_type = BPF_MAP_TYPE_RINGBUF;
        a.max_entries = size;
        if ((map_ = int(sys_bpf(BPF_MAP_CREATE, a))) < 0)
            return fail("BPF_MAP_CREATE(RINGBUF)");
        // r1 = map; r2 = fp - 8 (holds 1); r3 = 8; r4 = 0; call ringbuf_output
        const bpf_insn prog[] = {
            insn(BPF_ST | BPF_MEM | BPF_DW, BPF_REG_10, 0, -8, 1),
            insn(BPF_LD | BPF_IMM | BPF_DW, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_),
            insn(0, 0, 0, 0, 0),
            insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0),
            insn(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -8),
            insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_3, 0, 0, 8),
            insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_4, 0, 0, 0),
            insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_ringbuf_output),
            insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0),
            insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
        };
        static const char license[] = "GPL";
        a = {};
        a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
        a.insns = reinterpret_cast<uint64_t>(prog);
        a.insn_cnt = sizeof(prog) / sizeof(prog[0]);
        a.license = reinterpret_cast<uint64_t>(license);
        a.log_buf = reinterpret_cast<uint64_t>(log_);
        a.log_size = sizeof(log_);
        a.log_level = 1;
        if ((prog_ = int(sys_bpf(BPF_PROG_LOAD, a))) < 0)
            return fail("BPF_PROG_LOAD(socket filter calling bpf_ringbuf_output)");
        // consumer_pos: writable; producer_pos and the data: read-only
        cons_ = mmap(nullptr, page_, PROT_READ | PROT_WRITE, MAP_SHARED, map_, 0);
        if (cons_ == MAP_FAILED)
            return fail("mmap(consumer page)");
        prod_ = mmap(nullptr, page_ + 2 * size_, PROT_READ, MAP_SHARED, map_, off_t(page_));
        if (prod_ == MAP_FAILED)
            return fail("mmap(producer page and data)");
        return 0;
    }

    // one record, through the program; 0 or -errno
    int emit() {
        bpf_attr a{};
        a.test.prog_fd = uint32_t(prog_);
        a.test.data_in = reinterpret_cast<uint64_t>(packet_);
        a.test.data_size_in = sizeof(packet_);
        a.test.repeat = 1;
        return sys_bpf(BPF_PROG_TEST_RUN, a) < 0 ? -errno : 0;
    }

    int fd() const { return map_; }
    uint64_t* consumer_pos() const { return static_cast<uint64_t*>(cons_); }
    uint64_t* producer_pos() const { return static_cast<uint64_t*>(prod_); }
    // the record's length in positions, 0 while its header is busy
    uint64_t committed(uint64_t pos) const {
        auto* hdr = reinterpret_cast<uint32_t*>(static_cast<unsigned char*>(prod_) + page_ +
                                                (pos & (size_ - 1)));
        uint32_t len = load(hdr, std::memory_order_acquire);
        if (len & BPF_RINGBUF_BUSY_BIT)
            return 0;
        len &= ~BPF_RINGBUF_DISCARD_BIT;
        return (uint64_t(len) + BPF_RINGBUF_HDR_SZ + 7) & ~uint64_t(7);
    }
    // a committed record waits at the consumer's position
    bool pending() const {
        uint64_t cons = load(consumer_pos(), std::memory_order_acquire);
        return load(producer_pos(), std::memory_order_acquire) != cons && committed(cons);
    }
    std::string what() const { return what_; }

  private:
    int fail(const char* step) {
        int e = -errno;
        what_ = std::string(step) + ": " + std::strerror(errno);
        if (log_[0])
            what_ += std::string(" (verifier: ") + log_ + ")";
        return e;
    }

    int map_ = -1, prog_ = -1;
    size_t page_ = 0, size_ = 0;
    void* cons_ = MAP_FAILED;
    void* prod_ = MAP_FAILED;
    char log_[4096] = {};
    unsigned char packet_[64] = {};
    std::string what_;
};

// What the consumer and the producer share: the callback's count (the
// producer's cue) and the delay it spins for the record in hand.
struct Aim {
    std::atomic<uint64_t> in_callback{0};
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> lost{0};        // lost notifications, counted by the consumer
    std::atomic<int64_t> committed_at{0}; // now_ns() after the producer's last record
    std::mt19937_64 rng;
    unsigned range_ns;
    uint64_t delay_ns = 0;

    Aim(uint64_t seed, unsigned range) : rng(seed), range_ns(range) {}
    // libbpf calls the sample callback before it stores consumer_pos
    void callback() {
        delay_ns = range_ns ? rng() % (uint64_t(range_ns) + 1) : 0;
        in_callback.fetch_add(1, std::memory_order_release);
        spin_for(delay_ns);
    }
};

// Record A, the cue, record B at once; then wait for the consumer to catch
// up (it does so itself after a lost notification). Returns attempts; with
// until_lost, ends at the first lost notification.
uint64_t produce(BpfRing& rb, Aim& aim, const Budget& budget, unsigned wd_ms, bool until_lost,
                 int& err) {
    uint64_t attempts = 0;
    const auto cue_limit = std::chrono::milliseconds(4 * wd_ms + 100);
    while (!budget.over(attempts) && !g_interrupted.load(std::memory_order_relaxed) &&
           !(until_lost && aim.lost.load(std::memory_order_relaxed))) {
        uint64_t cue = aim.in_callback.load(std::memory_order_acquire);
        if ((err = rb.emit()))
            break;
        auto t0 = clock_type::now();
        while (aim.in_callback.load(std::memory_order_acquire) == cue &&
               clock_type::now() - t0 < cue_limit)
            ;
        if ((err = rb.emit()))
            break;
        aim.committed_at.store(now_ns(), std::memory_order_release);
        attempts++;
        t0 = clock_type::now();
        while (load(rb.consumer_pos(), std::memory_order_acquire) !=
                   load(rb.producer_pos(), std::memory_order_acquire) &&
               clock_type::now() - t0 < cue_limit)
            ;
    }
    aim.stop.store(true);
    return attempts;
}

// After a wait that slept wd_ms (it ended at woke_ns): a record committed
// at our position at least half that long before is a lost notification,
// kept with the callback delay that led to it. One committed later is a
// producer held up (a vCPU descheduled by the host: an x86-64 guest under
// lava-run once counted one "lost" with the fence), counted apart.
void judge(const BpfRing& rb, Aim& aim, std::map<std::string, uint64_t>& hits, int64_t woke_ns,
           unsigned wd_ms) {
    if (!rb.pending())
        return;
    if (woke_ns - aim.committed_at.load(std::memory_order_acquire) < int64_t(wd_ms) * 500000) {
        hits["late_producer"]++;
        return;
    }
    aim.lost.fetch_add(1, std::memory_order_relaxed);
    char key[40];
    snprintf(key, sizeof(key), "lost_d_%05lluns", (unsigned long long)(aim.delay_ns / 100 * 100));
    hits[key]++;
}

// libbpf's processing, the form's fence, an edge-triggered wait.
uint64_t consume_epollet(BpfRing& rb, Aim& aim, Fence f, unsigned wd_ms,
                         std::map<std::string, uint64_t>& hits, int& err) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, rb.fd(), &ev) < 0) {
        err = -errno;
        if (ep >= 0)
            close(ep);
        return 0;
    }
    uint64_t cons = load(rb.consumer_pos(), std::memory_order_relaxed), records = 0;
    while (!aim.stop.load(std::memory_order_relaxed)) {
        libbpf_process(
            cons, f,
            [&](Fence g) {
                return load_after_store(rb.producer_pos(), g, std::memory_order_acquire);
            },
            [&](uint64_t c) { return rb.committed(c); },
            [&](uint64_t) {
                records++;
                aim.callback();
            },
            [&](uint64_t c) { store(rb.consumer_pos(), c, std::memory_order_release); });
        int n = epoll_wait(ep, &ev, 1, int(wd_ms));
        int64_t woke = now_ns();
        if (n == 0)
            judge(rb, aim, hits, woke, wd_ms);
        else if (n < 0 && errno != EINTR) {
            err = -errno;
            break;
        }
    }
    close(ep);
    return records;
}

#if URINGRACE_LIBBPF
uint64_t consume_libbpf(BpfRing& rb, Aim& aim, unsigned wd_ms,
                        std::map<std::string, uint64_t>& hits, int& err) {
    struct Ctx {
        Aim* aim;
        uint64_t records;
    } ctx{&aim, 0};
    auto cb = [](void* c, void*, size_t) {
        auto* x = static_cast<Ctx*>(c);
        x->records++;
        x->aim->callback();
        return 0;
    };
    ring_buffer* lb = ring_buffer__new(rb.fd(), cb, &ctx, nullptr);
    if (!lb) {
        err = -errno;
        return 0;
    }
    while (!aim.stop.load(std::memory_order_relaxed)) {
        auto t0 = clock_type::now();
        int n = ring_buffer__poll(lb, int(wd_ms));
        int64_t woke = now_ns();
        if (n == 0 && clock_type::now() - t0 >= std::chrono::milliseconds(wd_ms))
            judge(rb, aim, hits, woke, wd_ms);
        else if (n < 0 && n != -EINTR) {
            err = n;
            break;
        }
    }
    ring_buffer__free(lb);
    return ctx.records;
}
#endif

Result run_bpf_ringbuf_with(const Options& o, bool with_libbpf) {
    Result r = base(o, with_libbpf ? "libbpf" : "raw");
    if (with_libbpf)
        r.fence = "libbpf"; // its own release/acquire pairs, no fence
#if !URINGRACE_LIBBPF
    if (with_libbpf) {
        r.skipped = "this driver was built without libbpf (the guests' static build)";
        return r;
    }
#endif
    if (o.fence == Fence::fetch_xor) {
        r.counts["errors"] = 1;
        r.skipped = "--fence fetch_xor: the kernel maps producer_pos read-only, an RMW on it "
                    "faults (the real ring buffer cannot take that form)";
        return r;
    }
    if (!two_cpus(r, "consumer and producer apart"))
        return r;
    BpfRing rb;
    if (int e = rb.init(1u << 16)) {
        r.skipped = rb.what();
        if (e != -EPERM && e != -ENOSYS && e != -EINVAL)
            r.counts["errors"] = 1;
        return r;
    }
    Aim aim(o.seed, o.aim_after_ns);
    Budget budget(o);
    uint64_t records = 0, attempts = 0;
    std::map<std::string, uint64_t> hits;
    int cerr = 0, perr = 0;
    auto t0 = clock_type::now();
    run_threads(2, true, [&](unsigned t) {
        if (t == 0) {
#if URINGRACE_LIBBPF
            if (with_libbpf)
                records = consume_libbpf(rb, aim, o.watchdog_ms, hits, cerr);
            else
#endif
                records = consume_epollet(rb, aim, o.fence, o.watchdog_ms, hits, cerr);
            aim.stop.store(true);
        } else {
            attempts = produce(rb, aim, budget, o.watchdog_ms, o.until_witness, perr);
        }
    });
    r.seconds = since(t0);
    if (cerr || perr) {
        r.counts["errors"] = 1;
        r.skipped = std::string(cerr ? "consumer: " : "BPF_PROG_TEST_RUN: ") +
                    std::strerror(-(cerr ? cerr : perr));
    }
    r.ops = attempts;
    r.anomalies["lost_notify"] = aim.lost.load();
    r.counts["attempts"] = attempts;
    r.counts["records"] = records;
    r.counts["aim_after_ns"] = o.aim_after_ns;
    for (auto& [k, v] : hits)
        r.counts[k] = v;
    return r;
}

} // namespace

Result run_bpf_ringbuf(const Options& o) {
    return run_bpf_ringbuf_with(o, false);
}

Result run_bpf_ringbuf_libbpf(const Options& o) {
    return run_bpf_ringbuf_with(o, true);
}

} // namespace uringrace
