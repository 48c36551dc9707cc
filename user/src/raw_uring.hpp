// uringrace: a raw io_uring, set up and driven without liburing, so that a
// fence can be dropped on purpose. Every shared field is accessed through
// ring.hpp's atomic_ref helpers with an explicit order.
#pragma once

#include <cstdint>
#include <linux/io_uring.h>
#include <string>

#include "fences.hpp"

namespace uringrace {

class RawRing {
  public:
    // flags: IORING_SETUP_*; sq_idle_ms with IORING_SETUP_SQPOLL, and
    // sq_cpu >= 0 pins the SQ thread there (IORING_SETUP_SQ_AFF); cq_entries
    // > 0 sizes the CQ (IORING_SETUP_CQSIZE); attach_fd >= 0 shares that
    // ring's io-wq, and with SQPOLL its SQ thread (IORING_SETUP_ATTACH_WQ).
    // Returns 0 or -errno; on error, what() says which step failed.
    int init(unsigned entries, unsigned flags = 0, unsigned sq_idle_ms = 0, int sq_cpu = -1,
             unsigned cq_entries = 0, int attach_fd = -1);
    ~RawRing();
    RawRing() = default;
    RawRing(const RawRing&) = delete;
    RawRing& operator=(const RawRing&) = delete;

    // Next free SQE (zeroed), or nullptr if the SQ is full.
    io_uring_sqe* get_sqe();
    // Publish queued SQEs: the tail store-release the kernel pairs with.
    unsigned flush();
    int enter(unsigned to_submit, unsigned min_complete, unsigned flags);
    // Wait for min_complete CQEs at most timeout_ns (IORING_ENTER_EXT_ARG):
    // 0, -ETIME when the time ran out, or another -errno.
    int wait(unsigned min_complete, uint64_t timeout_ns);
    // io_uring_register(2); returns its result or -errno.
    int register_op(unsigned opcode, void* arg, unsigned nr_args);
    // Submit and wait for `wait` completions (not for SQPOLL rings).
    int submit_and_wait(unsigned wait);
    // The SQPOLL side: does the SQ thread need a wake-up? The load that
    // store_to_load(f) must order after the tail store (fences.hpp; the
    // fetch_xor form makes it an RMW).
    bool sq_needs_wakeup(Fence f = Fence::none) const;
    // SQEs published but not yet consumed by the kernel (tail - head).
    unsigned sq_unconsumed() const;
    // CQEs posted but not yet reaped (tail - head); safe from any thread.
    unsigned cq_ready() const;
    // Is this IORING_SQ_* bit of sq_flags set (a relaxed load)? CQ_OVERFLOW:
    // completions wait in the overflow list; TASKRUN: task work waits for
    // this task to enter the kernel.
    bool sq_flag(unsigned bit) const;
    // The kernel's count of completions it dropped (cq_off.overflow): one
    // per overflow entry it could not allocate.
    unsigned cq_dropped() const;
    // Reap up to max CQEs into fn(cqe); returns how many.
    template <typename F> unsigned reap(unsigned max, F&& fn);
    int fd() const { return fd_; }
    const std::string& what() const { return what_; }
    bool sqpoll() const { return flags_ & IORING_SETUP_SQPOLL; }

  private:
    int fd_ = -1;
    unsigned flags_ = 0;
    void* sq_ptr_ = nullptr;
    void* cq_ptr_ = nullptr;
    size_t sq_len_ = 0, cq_len_ = 0, sqes_len_ = 0;
    io_uring_sqe* sqes_ = nullptr;
    unsigned *sq_head_ = nullptr, *sq_tail_ = nullptr, *sq_mask_ = nullptr, *sq_array_ = nullptr,
             *sq_flags_ = nullptr;
    unsigned *cq_head_ = nullptr, *cq_tail_ = nullptr, *cq_mask_ = nullptr, *cq_overflow_ = nullptr;
    io_uring_cqe* cqes_ = nullptr;
    unsigned sqe_head_ = 0, sqe_tail_ = 0; // local: handed out / flushed
    unsigned sq_entries_ = 0;
    std::string what_;
};

} // namespace uringrace

#include "raw_uring_inl.hpp"
