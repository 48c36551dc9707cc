// uringrace: the BPF ring buffer protocol (seed 003) in user space: libbpf's
// consumer, used against the module's producer (module.cpp), and the
// kernel's producer rule, used against it on the host CPU ("model").
#pragma once

#include <linux/uringrace.h>

#include <atomic>
#include <cstdint>

#include "fences.hpp"
#include "ring.hpp"
#include "workloads.hpp"

namespace uringrace {

// libbpf's ringbuf_process_ring(), then an edge-triggered wait for a
// notification; a wait of wd_ms with the record at our position committed
// and decided, and no notification, counts one in lost. Returns records.
uint64_t ringbuf_consume(uringrace_ring_hdr* r, uringrace_entry* e, const RingMath& m,
                         const Budget& b, Fence f, unsigned wd_ms, uint64_t& lost);

// kernel/bpf/ringbuf.c: reserve (busy header, producer_pos), fill, commit
// (exchange on the header: a full barrier), notify when consumer_pos is the
// record's start. Until stop; returns records.
uint64_t ringbuf_produce(uringrace_ring_hdr* r, uringrace_entry* e, const RingMath& m,
                         const std::atomic<bool>& stop, uint64_t seed);

// Both on the host CPU: the kernel's rule against libbpf's consumer (with
// or without its fence), on a ring in our own memory. lost_notify counts.
Result run_ringbuf_model(const Options& o);

} // namespace uringrace
