// uringrace: every fence a protocol needs, in one place, each with its switch.
#pragma once

#include <atomic>

namespace uringrace {

enum class Fence { on, off };

// sqpoll_wakeup (seed 000): the application stores the SQ tail, then loads
// sq_flags to test NEED_WAKEUP. Store then load of another location: only a
// SeqCst fence orders them (liburing's io_uring_smp_mb()). Release/acquire
// do not: that is the store-buffering bug.
inline void sqpoll_tail_to_flags_fence(Fence f) {
    if (f == Fence::on)
        std::atomic_thread_fence(std::memory_order_seq_cst);
}

// ringbuf_notify (seed 003): the consumer stores its position, then loads
// the producer's to decide whether to wait for a notification. Same shape,
// same cure; the kernel side pairs it with smp_mb() (xchg() in the commit).
inline void ringbuf_pos_to_pos_fence(Fence f) {
    if (f == Fence::on)
        std::atomic_thread_fence(std::memory_order_seq_cst);
}

// The kernel's side of the same two protocols, as the litmus forms run it on
// the host CPU: smp_mb() is a SeqCst fence, atomic_or() a fetch_or.
inline void kernel_smp_mb(Fence f) {
    if (f == Fence::on)
        std::atomic_thread_fence(std::memory_order_seq_cst);
}

// cq_tail (seed 002) and sq_head (seed 001) need no fence: their order is the
// acquire load of the tail / release store of the head. The "off" forms use
// relaxed orders instead (see ring.hpp).
inline std::memory_order load_order(Fence f) {
    return f == Fence::on ? std::memory_order_acquire : std::memory_order_relaxed;
}
inline std::memory_order store_order(Fence f) {
    return f == Fence::on ? std::memory_order_release : std::memory_order_relaxed;
}

} // namespace uringrace
