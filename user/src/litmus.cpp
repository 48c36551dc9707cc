// uringrace: the store-buffering protocols as litmus tests on the host CPU.
//
// Each iteration aligns two pinned threads: thread 0 coordinates (resets the
// two locations, releases thread 1, runs its side, waits for thread 1's
// result); both sides add a random 0-400 spin before their store to sweep
// the window. A witness is the outcome the fence exists to forbid: both
// loads returned the old value (the SQ thread sleeps and nobody wakes it; the
// consumer waits and the producer does not notify).
#include <random>
#include <thread>

#include "fences.hpp"
#include "ring.hpp"
#include "scenarios.hpp"
#include "workloads.hpp"

namespace uringrace {

namespace {

struct alignas(64) Line {
    uint32_t v = 0;
};

struct Shared {
    Line x;    // sqpoll: SQ tail | ringbuf: producer position
    Line y;    // sqpoll: sq_flags | ringbuf: consumer position
    Line go;   // iteration released by thread 0
    Line done; // iteration finished by thread 1
    Line r1;   // thread 1's load result
};

inline void spin(unsigned n) {
    for (unsigned i = 0; i < n; i++)
        asm volatile("" ::: "memory");
}

} // namespace

// The store-buffering scenarios: each side stores, then loads the other's.
std::vector<std::string> litmus_protocols() {
    return {std::string(name_of(kScenarios, URINGRACE_SC_SQPOLL_WAKEUP)),
            std::string(name_of(kScenarios, URINGRACE_SC_RINGBUF_NOTIFY))};
}

Result run_litmus(const Options& o, const std::string& protocol) {
    Result r;
    r.workload = "litmus:" + protocol;
    r.path = "host";
    r.fence = std::string(fence_name(o.fence));
    const bool sqpoll = id_of(kScenarios, protocol) == URINGRACE_SC_SQPOLL_WAKEUP;
    Shared s;
    uint64_t witnesses = 0, iters = 0;
    Budget b(o);
    auto t0 = std::chrono::steady_clock::now();
    // thread 0: the application (sqpoll: tail then flags) or the consumer
    // (ringbuf: cons then prod); thread 1: the kernel side of each
    run_threads(2, true, [&](unsigned t) {
        std::mt19937 rng(static_cast<unsigned>(o.seed) * 2 + t);
        for (uint32_t it = 1;; it++) {
            if (t == 0) {
                bool stop = b.over(iters) || (o.until_witness && witnesses > 0);
                store(&s.x.v, 0u, std::memory_order_relaxed);
                store(&s.y.v, 0u, std::memory_order_relaxed);
                store(&s.go.v, stop ? ~0u : it, std::memory_order_release);
                if (stop)
                    return;
                spin(rng() % 400);
                uint32_t r0;
                if (sqpoll) {
                    r0 = store_then_load(
                        o.fence, o.reorder_ns,
                        [&] { store(&s.x.v, 1u, std::memory_order_release); }, // SQ tail
                        [&](Fence f) {                                         // NEED_WAKEUP?
                            return load_after_store(&s.y.v, f, std::memory_order_relaxed);
                        });
                } else {
                    r0 = store_then_load(
                        o.fence, o.reorder_ns,
                        [&] { store(&s.y.v, 1u, std::memory_order_release); }, // consumer
                        [&](Fence f) {                                         // producer position
                            return load_after_store(&s.x.v, f, std::memory_order_acquire);
                        });
                }
                while (load(&s.done.v, std::memory_order_acquire) != it)
                    ;
                uint32_t r1 = load(&s.r1.v, std::memory_order_relaxed);
                witnesses += r0 == 0 && r1 == 0;
                iters++;
            } else {
                uint32_t g;
                while ((g = load(&s.go.v, std::memory_order_acquire)) != it && g != ~0u)
                    ;
                if (g == ~0u)
                    return;
                spin(rng() % 400);
                uint32_t r1;
                if (sqpoll) {
                    // fixed: atomic_or + smp_mb__after_atomic; buggy: WRITE_ONCE
                    if (kernel_fenced(o.fence))
                        fetch_or(&s.y.v, 1u, std::memory_order_relaxed);
                    else
                        store(&s.y.v, 1u, std::memory_order_relaxed);
                    kernel_smp_mb(o.fence);
                    r1 = load(&s.x.v, std::memory_order_acquire); // io_sqring_entries
                } else {
                    store(&s.x.v, 1u, std::memory_order_release); // producer pos
                    kernel_smp_mb(o.fence);
                    r1 = load(&s.y.v, std::memory_order_acquire); // consumer pos
                }
                store(&s.r1.v, r1, std::memory_order_relaxed);
                store(&s.done.v, it, std::memory_order_release);
            }
        }
    });
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.ops = iters;
    r.anomalies["witnesses"] = witnesses;
    return r;
}

} // namespace uringrace
