#include "ringbuf_model.hpp"

#include "scenarios.hpp"

#include <chrono>
#include <random>
#include <thread>
#include <vector>

namespace uringrace {

uint64_t ringbuf_consume(uringrace_ring_hdr* r, uringrace_entry* e, const RingMath& m,
                         const Budget& b, Fence f, unsigned wd_ms, uint64_t& lost) {
    using clock_type = std::chrono::steady_clock;
    uint32_t cons = 0;
    while (!b.over(cons)) {
        // an edge that comes after this point wakes the wait below
        uint32_t seen = load(&r->notifications, std::memory_order_acquire);
        libbpf_process(
            cons, f,
            [&](Fence g) { return load_after_store(&r->tail, g, std::memory_order_acquire); },
            [&](uint32_t c) {
                return uint32_t(load(&e[m.slot(c)].seq_end, std::memory_order_acquire) != 0);
            },
            [](uint32_t) {}, [&](uint32_t c) { store(&r->head, c, std::memory_order_release); });
        Watchdog dog{std::chrono::milliseconds(wd_ms)};
        dog.arm(clock_type::now());
        while (load(&r->notifications, std::memory_order_acquire) == seen && !b.over(0)) {
            if (dog.expired(clock_type::now())) {
                uint32_t decided = load(&r->decided, std::memory_order_acquire);
                if (load(&r->tail, std::memory_order_acquire) != cons &&
                    int32_t(decided - (cons + 1)) >= 0 &&
                    load(&r->notifications, std::memory_order_acquire) == seen)
                    lost++;
                break; // go on, as a level-triggered poll would
            }
            std::this_thread::yield();
        }
    }
    return cons;
}

uint64_t ringbuf_produce(uringrace_ring_hdr* r, uringrace_entry* e, const RingMath& m,
                         const std::atomic<bool>& stop, uint64_t seed) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    uint32_t prod = 0;
    while (!stop.load(std::memory_order_relaxed)) {
        if (m.full(load(&r->head, std::memory_order_acquire), prod))
            continue;
        uringrace_entry* rec = &e[m.slot(prod)];
        store(&rec->seq_end, __u64{0}, std::memory_order_relaxed); // busy
        store(&r->tail, prod + 1, std::memory_order_release);      // producer_pos
        rec->seq = uint64_t(prod) + 1;
        // bpf_ringbuf_commit(): xchg() on the header, a full barrier
        std::atomic_ref<__u64>(rec->seq_end).exchange(__u64(prod) + 1, std::memory_order_seq_cst);
        if (load(&r->head, std::memory_order_acquire) == prod) // at the record's start
            store(&r->notifications, load(&r->notifications, std::memory_order_relaxed) + 1,
                  std::memory_order_release);
        prod++;
        store(&r->decided, prod, std::memory_order_release);
        // bursts: the consumer is sometimes one behind, sometimes heading for sleep
        if ((rng() & 3) == 0)
            for (unsigned i = rng() % 4000; i; i--)
                asm volatile("" ::: "memory");
    }
    return prod;
}

} // namespace uringrace

namespace uringrace {

Result run_ringbuf_model(const Options& o) {
    Result r;
    r.workload = "model:" + std::string(name_of(kScenarios, URINGRACE_SC_RINGBUF_NOTIFY));
    r.path = "host";
    r.fence = std::string(fence_name(o.fence));
    RingMath m = *RingMath::make(o.entries);
    std::vector<unsigned char> mem(uringrace_ring_bytes(o.entries), 0);
    auto* hdr = reinterpret_cast<uringrace_ring_hdr*>(mem.data());
    auto* ents = reinterpret_cast<uringrace_entry*>(hdr + 1);
    hdr->entries = o.entries;
    Budget b(o);
    std::atomic<bool> stop{false};
    uint64_t lost = 0, consumed = 0, produced = 0;
    auto t0 = std::chrono::steady_clock::now();
    run_threads(2, true, [&](unsigned t) {
        if (t == 0) {
            consumed = ringbuf_consume(hdr, ents, m, b, o.fence, o.watchdog_ms, lost);
            stop.store(true);
        } else {
            produced = ringbuf_produce(hdr, ents, m, stop, o.seed);
        }
    });
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.ops = consumed;
    r.counts["produced"] = produced;
    r.anomalies["lost_notify"] = lost;
    return r;
}

} // namespace uringrace
