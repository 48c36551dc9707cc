// uringrace: the provided-buffer ring (IORING_REGISTER_PBUF_RING) on the
// running kernel's io_uring.
//
// A recycler thread hands buffers to the kernel: it writes a ring entry
// (addr, len, bid) at the tail, then publishes the tail with a release store.
// For each read with IOSQE_BUFFER_SELECT the kernel loads the tail (acquire,
// io_ring_buffer_select), takes the entry at its head and names the buffer in
// the CQE. The submitter reads 64-byte records of a file whose every 8-byte
// word holds its own offset, so each completion can be checked: its buffer
// must have been in the ring (a buffer handed out twice, or one the
// application still holds, means the kernel read a stale entry) and must
// hold the record read.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "fences.hpp"
#include "raw_uring.hpp"
#include "ring.hpp"
#include "workloads.hpp"

namespace uringrace {

namespace {

using clock_type = std::chrono::steady_clock;

constexpr unsigned kBufs = 64;         // ring entries, a power of two
constexpr unsigned kLen = 64;          // bytes per buffer and per read
constexpr unsigned kFileLen = 1 << 20; // the records read, in a loop
constexpr uint16_t kGroup = 7;

// A scratch file whose 8-byte words each hold their own offset: its fd, or
// -1 after setup_failed.
int record_file(Result& r) {
    std::vector<uint64_t> words(kFileLen / 8);
    for (size_t i = 0; i < words.size(); i++)
        words[i] = i * 8;
    return scratch_file(r, "pbuf", words.data(), kFileLen);
}

} // namespace

Result run_pbuf(const Options& o) {
    Result r = base(o, "raw");
    RawRing ring;
    if (!ring_ready(r, ring.init(o.entries), "io_uring_setup", ring.what()))
        return r;
    int fd = record_file(r);
    if (fd < 0)
        return r;
    const size_t ring_len = kBufs * sizeof(io_uring_buf);
    void* mem = mmap(nullptr, ring_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        setup_failed(r, "mmap");
        close(fd);
        return r;
    }
    auto* br = static_cast<io_uring_buf_ring*>(mem);
    std::vector<char> bufs(kBufs * kLen);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(br);
    reg.ring_entries = kBufs;
    reg.bgid = kGroup;
    if (int e = ring.register_op(IORING_REGISTER_PBUF_RING, &reg, 1); e < 0) {
        munmap(mem, ring_len);
        close(fd);
        ring_ready(r, e, "IORING_REGISTER_PBUF_RING");
        return r;
    }
    // in_ring[bid]: handed to the kernel and not yet named by a CQE
    std::vector<uint8_t> in_ring(kBufs);
    uint16_t tail = 0; // the recycler's own
    // one entry's three fields, never the whole struct: entry 0's resv is
    // the ring's tail
    auto put = [&](uint16_t bid) {
        // the entries start at the ring's first byte (in C++ the header's
        // flexible-array wrapper may place br->bufs 8 bytes later)
        io_uring_buf* b = static_cast<io_uring_buf*>(mem) + (tail & (kBufs - 1));
        b->addr = reinterpret_cast<uint64_t>(&bufs[bid * kLen]);
        b->len = kLen;
        b->bid = bid;
        std::atomic_ref<uint8_t>(in_ring[bid]).store(1, std::memory_order_relaxed);
        tail++;
    };
    auto publish = [&] { store(&br->tail, tail, std::memory_order_release); };
    for (uint16_t b = 0; b < kBufs; b++)
        put(b);
    publish();

    std::mutex qlock;
    std::deque<uint16_t> back; // buffers the submitter is done with
    std::atomic<bool> done{false};
    std::atomic<int> avail{kBufs}; // published and not yet asked for
    uint64_t stale = 0, wrong = 0, nobufs = 0, errors = 0, ops = 0;
    Budget budget(o);
    auto t0 = clock_type::now();
    run_threads(2, o.pin, [&](unsigned t) {
        if (t == 1) { // the recycler
            // one buffer at a time, a random 0-50 us apart, and only while
            // at most one is published and unasked for: the ring stays near
            // empty and its tail moves while the kernel selects, not only
            // between the submitter's system calls (in a TCG guest the
            // submitter is the slow side, and a ring kept full hid the kbuf
            // emulated mutant)
            std::mt19937 rng(static_cast<unsigned>(o.seed));
            std::deque<uint16_t> mine;
            while (!done.load(std::memory_order_acquire)) {
                if (mine.empty()) {
                    std::lock_guard<std::mutex> g(qlock);
                    mine.swap(back);
                }
                if (mine.empty() || avail.load(std::memory_order_acquire) > 1) {
                    std::this_thread::yield();
                    continue;
                }
                // a random one of those waiting: handed back in order, each
                // slot would get the same buffer every lap, and an entry read
                // a lap late would look like the fresh one
                std::swap(mine[rng() % mine.size()], mine.front());
                put(mine.front());
                mine.pop_front();
                publish();
                avail.fetch_add(1, std::memory_order_release);
                spin_for(rng() % 50000);
            }
            return;
        }
        uint64_t next = 0; // the next record's offset
        while (!budget.over(ops)) {
            // as many reads as buffers published, so that most find one, and
            // at least one: a read racing the recycler's next tail store
            const unsigned want = std::clamp(avail.load(std::memory_order_acquire), 1, 8);
            unsigned n = 0;
            for (; n < want; n++) {
                io_uring_sqe* sqe = ring.get_sqe();
                if (!sqe)
                    break;
                sqe->opcode = IORING_OP_READ;
                sqe->fd = fd;
                sqe->off = next;
                sqe->len = kLen;
                sqe->flags = IOSQE_BUFFER_SELECT;
                sqe->buf_group = kGroup;
                sqe->user_data = next + 1;
                next = (next + kLen) % kFileLen;
            }
            avail.fetch_sub(static_cast<int>(n), std::memory_order_relaxed);
            if (int e = ring.submit_and_wait(n); e < 0) {
                errors++;
                break;
            }
            std::vector<uint16_t> done_with;
            unsigned got = 0;
            while (got < n)
                got += ring.reap(n - got, [&](const io_uring_cqe& c) {
                    if (c.res == -ENOBUFS) { // the ring ran dry: not an anomaly
                        nobufs++;
                        avail.fetch_add(1, std::memory_order_relaxed);
                        return;
                    }
                    if (c.res < 0 || !(c.flags & IORING_CQE_F_BUFFER)) {
                        errors++;
                        return;
                    }
                    unsigned bid = c.flags >> IORING_CQE_BUFFER_SHIFT;
                    if (bid >= kBufs || !std::atomic_ref<uint8_t>(in_ring[bid])
                                             .exchange(0, std::memory_order_relaxed)) {
                        stale++; // named a buffer that was not in the ring
                        return;
                    }
                    uint64_t word;
                    std::memcpy(&word, &bufs[bid * kLen], sizeof(word));
                    wrong += c.res != static_cast<int>(kLen) || word != c.user_data - 1;
                    ops++;
                    done_with.push_back(static_cast<uint16_t>(bid));
                });
            std::lock_guard<std::mutex> g(qlock);
            back.insert(back.end(), done_with.begin(), done_with.end());
        }
        done.store(true, std::memory_order_release);
    });
    r.seconds = since(t0);
    r.ops = ops;
    r.anomalies["stale_buffer"] = stale;
    r.anomalies["wrong_data"] = wrong;
    r.counts["nobufs"] = nobufs;
    if (errors)
        r.counts["errors"] = errors;
    io_uring_buf_reg un{};
    un.bgid = kGroup;
    ring.register_op(IORING_UNREGISTER_PBUF_RING, &un, 1);
    munmap(mem, ring_len);
    close(fd);
    return r;
}

} // namespace uringrace
