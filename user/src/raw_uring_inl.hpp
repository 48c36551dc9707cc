#pragma once

#include "ring.hpp"

namespace uringrace {

template <typename F> unsigned RawRing::reap(unsigned max, F&& fn) {
    // pairs with the kernel's smp_store_release() of the CQ tail
    unsigned tail = load(cq_tail_, std::memory_order_acquire);
    unsigned head = load(cq_head_, std::memory_order_relaxed);
    unsigned n = 0;
    while (head != tail && n < max) {
        fn(cqes_[head & *cq_mask_]);
        head++;
        n++;
    }
    // the CQE reads above happen before the kernel may reuse their slots
    store(cq_head_, head, std::memory_order_release);
    return n;
}

} // namespace uringrace
