// uringrace: index math for power-of-two rings and typed access to fields
// shared with the kernel (std::atomic_ref with explicit orders).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

namespace uringrace {

// Free-running 32-bit head/tail, masked on use, as io_uring and the BPF ring
// buffer keep them: wrap-around of the counters is harmless while the ring
// holds fewer than 2^31 entries.
struct RingMath {
    uint32_t entries;

    static std::optional<RingMath> make(uint32_t n) {
        if (n < 2 || n > (1u << 30) || (n & (n - 1)) != 0)
            return std::nullopt;
        return RingMath{n};
    }
    uint32_t mask() const { return entries - 1; }
    uint32_t slot(uint32_t pos) const { return pos & mask(); }
    // entries queued between a consumer at head and a producer at tail
    uint32_t used(uint32_t head, uint32_t tail) const { return tail - head; }
    uint32_t space(uint32_t head, uint32_t tail) const { return entries - used(head, tail); }
    bool full(uint32_t head, uint32_t tail) const { return used(head, tail) >= entries; }
    // a head/tail pair no correct producer and consumer can reach
    bool corrupt(uint32_t head, uint32_t tail) const { return used(head, tail) > entries; }
};

template <typename T> inline T load(T* p, std::memory_order o) {
    return std::atomic_ref<T>(*p).load(o);
}
template <typename T> inline void store(T* p, T v, std::memory_order o) {
    std::atomic_ref<T>(*p).store(v, o);
}
template <typename T> inline T fetch_or(T* p, T v, std::memory_order o) {
    return std::atomic_ref<T>(*p).fetch_or(v, o);
}

} // namespace uringrace
