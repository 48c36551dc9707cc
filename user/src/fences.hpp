// uringrace: every fence a protocol needs, in one place, each with its switch.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace uringrace {

// The application's ordering between its store and the load that follows it
// in the two store-buffering protocols (seed 000: SQ tail, then sq_flags;
// seed 003: consumer position, then producer position). Store then load of
// another location: only a SeqCst fence, or making the load an RMW the
// kernel's own RMW is ordered with, forbids both sides reading old values.
//
//   on        seq_cst fence (liburing's io_uring_smp_mb()); "seq_cst" too
//   off       no fence, and the litmus forms drop the kernel side's barrier
//             too (the module's and the old kernels' buggy form)
//   acq_rel   acq_rel fence: orders load->load, load->store, store->store,
//             never store->load: allowed to fail by the C++ model
//   signal    compiler fence only: allowed to fail
//   none      no fence (the kernel side keeps its barrier): allowed to fail
//   fetch_xor the load made fetch_xor(0, acq_rel): an RMW on the flags,
//             ordered with the kernel's atomic_or + full barrier: forbidden
//             to fail by the model (the form seed 000 proposes)
//   reorder   EMULATED reordering: the load done before the store, with
//             --reorder-ns between them: what a store buffer does to the
//             unfenced forms, performed at the source level where the
//             hardware (TCG, x86 TSO for other pairs) does not show it
enum class Fence { on, off, acq_rel, signal, none, fetch_xor, reorder };

inline constexpr std::pair<Fence, std::string_view> kFenceNames[] = {
    {Fence::on, "on"},           {Fence::off, "off"},   {Fence::acq_rel, "acq_rel"},
    {Fence::signal, "signal"},   {Fence::none, "none"}, {Fence::fetch_xor, "fetch_xor"},
    {Fence::reorder, "reorder"},
};

inline std::string_view fence_name(Fence f) {
    for (const auto& [v, n] : kFenceNames)
        if (v == f)
            return n;
    return "?";
}

// What the C++ memory model says of the form, with the kernel side correct:
// may both loads read the old values (a lost wake-up or notification)?
// fetch_xor is forbidden only where the kernel side RMWs the same word
// (seed 000: atomic_or on sq_flags). The BPF ringbuf producer stores
// producer_pos plainly, and libbpf's consumer also loads the record header
// after its store (the busy bit: a second pair the RMW does not cover).
inline std::string_view fence_model(Fence f, std::string_view workload = {}) {
    const bool ringbuf = workload.find("ringbuf") != std::string_view::npos;
    switch (f) {
    case Fence::on:
        return "forbidden";
    case Fence::fetch_xor:
        return ringbuf ? "allowed" : "forbidden";
    case Fence::reorder:
        return "emulated";
    default:
        return "allowed";
    }
}

inline std::optional<Fence> fence_from(std::string_view s) {
    if (s == "seq_cst")
        return Fence::on;
    for (const auto& [v, n] : kFenceNames)
        if (n == s)
            return v;
    return std::nullopt;
}

// Between the application's store and its load (both SB protocols).
inline void store_to_load(Fence f) {
    if (f == Fence::on)
        std::atomic_thread_fence(std::memory_order_seq_cst);
    else if (f == Fence::acq_rel)
        std::atomic_thread_fence(std::memory_order_acq_rel);
    else if (f == Fence::signal)
        std::atomic_signal_fence(std::memory_order_seq_cst);
}

// The load after the store: plain atomic load in order o, or for fetch_xor an
// RMW that leaves the value as it is.
template <typename T> inline T load_after_store(T* p, Fence f, std::memory_order o) {
    if (f == Fence::fetch_xor)
        return std::atomic_ref<T>(*p).fetch_xor(T{0}, std::memory_order_acq_rel);
    return std::atomic_ref<T>(*p).load(o);
}

// Busy-wait ns nanoseconds (a window widened on purpose: no sleep, no yield).
inline void spin_for(uint64_t ns) {
    auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
    while (std::chrono::steady_clock::now() < until)
        ;
}

// The application's store, then its load, in the form f: publish() stores,
// observe() loads (observe(f) may make the load an RMW); the reorder form
// loads first and stores reorder_ns later.
template <typename Publish, typename Observe>
inline auto store_then_load(Fence f, unsigned reorder_ns, Publish&& publish, Observe&& observe) {
    if (f == Fence::reorder) {
        auto seen = observe(f);
        spin_for(reorder_ns);
        publish();
        return seen;
    }
    publish();
    store_to_load(f);
    return observe(f);
}

// The kernel's side of the same two protocols, as the litmus forms run it on
// the host CPU: smp_mb() is a SeqCst fence, atomic_or() a fetch_or. Every
// form but "off" keeps it.
inline bool kernel_fenced(Fence f) {
    return f != Fence::off;
}
inline void kernel_smp_mb(Fence f) {
    if (kernel_fenced(f))
        std::atomic_thread_fence(std::memory_order_seq_cst);
}

// cq_tail (seed 002) and sq_head (seed 001) need no fence: their order is the
// acquire load of the tail / release store of the head. Every form but "on"
// uses relaxed orders instead (see ring.hpp).
inline std::memory_order load_order(Fence f) {
    return f == Fence::on ? std::memory_order_acquire : std::memory_order_relaxed;
}
inline std::memory_order store_order(Fence f) {
    return f == Fence::on ? std::memory_order_release : std::memory_order_relaxed;
}

} // namespace uringrace
