#include "raw_uring.hpp"

#include <cerrno>
#include <cstring>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ring.hpp"

namespace uringrace {

namespace {
int sys_setup(unsigned entries, io_uring_params* p) {
    return static_cast<int>(syscall(__NR_io_uring_setup, entries, p));
}
int sys_enter(int fd, unsigned submit, unsigned complete, unsigned flags) {
    return static_cast<int>(syscall(__NR_io_uring_enter, fd, submit, complete, flags, nullptr, 0));
}
} // namespace

int RawRing::init(unsigned entries, unsigned flags, unsigned sq_idle_ms, int sq_cpu,
                  unsigned cq_entries, int attach_fd) {
    io_uring_params p{};
    if (attach_fd >= 0) {
        flags |= IORING_SETUP_ATTACH_WQ;
        p.wq_fd = static_cast<unsigned>(attach_fd);
    }
    if (sq_cpu >= 0) {
        flags |= IORING_SETUP_SQ_AFF;
        p.sq_thread_cpu = static_cast<unsigned>(sq_cpu);
    }
    if (cq_entries) {
        flags |= IORING_SETUP_CQSIZE;
        p.cq_entries = cq_entries;
    }
    p.flags = flags;
    p.sq_thread_idle = sq_idle_ms;
    fd_ = sys_setup(entries, &p);
    if (fd_ < 0) {
        what_ = "io_uring_setup";
        return -errno;
    }
    flags_ = flags;
    sq_entries_ = p.sq_entries;
    sq_len_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    cq_len_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP)
        sq_len_ = cq_len_ = std::max(sq_len_, cq_len_);
    sq_ptr_ = mmap(nullptr, sq_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_,
                   IORING_OFF_SQ_RING);
    if (sq_ptr_ == MAP_FAILED) {
        sq_ptr_ = nullptr;
        what_ = "mmap SQ ring";
        return -errno;
    }
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        cq_ptr_ = sq_ptr_;
    } else {
        cq_ptr_ = mmap(nullptr, cq_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_,
                       IORING_OFF_CQ_RING);
        if (cq_ptr_ == MAP_FAILED) {
            cq_ptr_ = nullptr;
            what_ = "mmap CQ ring";
            return -errno;
        }
    }
    sqes_len_ = p.sq_entries * sizeof(io_uring_sqe);
    void* s = mmap(nullptr, sqes_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_,
                   IORING_OFF_SQES);
    if (s == MAP_FAILED) {
        what_ = "mmap SQEs";
        return -errno;
    }
    sqes_ = static_cast<io_uring_sqe*>(s);
    auto* sq = static_cast<char*>(sq_ptr_);
    auto* cq = static_cast<char*>(cq_ptr_);
    sq_head_ = reinterpret_cast<unsigned*>(sq + p.sq_off.head);
    sq_tail_ = reinterpret_cast<unsigned*>(sq + p.sq_off.tail);
    sq_mask_ = reinterpret_cast<unsigned*>(sq + p.sq_off.ring_mask);
    sq_array_ = reinterpret_cast<unsigned*>(sq + p.sq_off.array);
    sq_flags_ = reinterpret_cast<unsigned*>(sq + p.sq_off.flags);
    cq_head_ = reinterpret_cast<unsigned*>(cq + p.cq_off.head);
    cq_tail_ = reinterpret_cast<unsigned*>(cq + p.cq_off.tail);
    cq_mask_ = reinterpret_cast<unsigned*>(cq + p.cq_off.ring_mask);
    cq_overflow_ = reinterpret_cast<unsigned*>(cq + p.cq_off.overflow);
    cqes_ = reinterpret_cast<io_uring_cqe*>(cq + p.cq_off.cqes);
    for (unsigned i = 0; i < p.sq_entries; i++)
        sq_array_[i] = i; // identity map, set once
    return 0;
}

RawRing::~RawRing() {
    if (sqes_)
        munmap(sqes_, sqes_len_);
    if (cq_ptr_ && cq_ptr_ != sq_ptr_)
        munmap(cq_ptr_, cq_len_);
    if (sq_ptr_)
        munmap(sq_ptr_, sq_len_);
    if (fd_ >= 0)
        close(fd_);
}

io_uring_sqe* RawRing::get_sqe() {
    // the kernel's head: SQEs before it are consumed and may be refilled
    unsigned head = load(sq_head_, std::memory_order_acquire);
    if (sqe_tail_ - head >= sq_entries_)
        return nullptr;
    io_uring_sqe* sqe = &sqes_[sqe_tail_ & *sq_mask_];
    sqe_tail_++;
    std::memset(sqe, 0, sizeof(*sqe));
    return sqe;
}

unsigned RawRing::flush() {
    unsigned n = sqe_tail_ - sqe_head_;
    if (n) {
        // the SQE stores above become visible before the tail
        store(sq_tail_, sqe_tail_, std::memory_order_release);
        sqe_head_ = sqe_tail_;
    }
    return n;
}

int RawRing::enter(unsigned to_submit, unsigned min_complete, unsigned flags) {
    int r = sys_enter(fd_, to_submit, min_complete, flags);
    return r < 0 ? -errno : r;
}

int RawRing::wait(unsigned min_complete, uint64_t timeout_ns) {
    __kernel_timespec ts{};
    ts.tv_sec = static_cast<long long>(timeout_ns / 1000000000);
    ts.tv_nsec = static_cast<long long>(timeout_ns % 1000000000);
    io_uring_getevents_arg arg{};
    arg.ts = reinterpret_cast<uint64_t>(&ts);
    int r =
        static_cast<int>(syscall(__NR_io_uring_enter, fd_, 0, min_complete,
                                 IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof(arg)));
    return r < 0 ? -errno : 0;
}

int RawRing::register_op(unsigned opcode, void* arg, unsigned nr_args) {
    int r = static_cast<int>(syscall(__NR_io_uring_register, fd_, opcode, arg, nr_args));
    return r < 0 ? -errno : r;
}

int RawRing::submit_and_wait(unsigned wait) {
    unsigned n = flush();
    return enter(n, wait, wait ? IORING_ENTER_GETEVENTS : 0);
}

bool RawRing::sq_needs_wakeup(Fence f) const {
    return load_after_store(sq_flags_, f, std::memory_order_relaxed) & IORING_SQ_NEED_WAKEUP;
}

bool RawRing::sq_flag(unsigned bit) const {
    return load(sq_flags_, std::memory_order_relaxed) & bit;
}

unsigned RawRing::cq_dropped() const {
    return load(cq_overflow_, std::memory_order_relaxed);
}

unsigned RawRing::cq_ready() const {
    return load(cq_tail_, std::memory_order_acquire) - load(cq_head_, std::memory_order_acquire);
}

unsigned RawRing::sq_unconsumed() const {
    return load(sq_tail_, std::memory_order_relaxed) - load(sq_head_, std::memory_order_acquire);
}

} // namespace uringrace
