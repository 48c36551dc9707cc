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

// libbpf's ringbuf_process_ring() (1.1, as Debian ships it), on any ring:
// load the producer position (after the consumer's store: the form f may
// make it an RMW), then for each record whose header is committed call
// consume(cons), advance cons by its length and store cons (release), with
// the form's fence after that store; a busy header (header() returns 0) ends
// it, and so does a pass that found nothing. The load that decides "nothing
// more, sleep" is thus the one right after the last store: the SB pair with
// the producer's commit, which notifies only a consumer it sees caught up.
// reorder (EMULATED): one pass only, so the decision rests on a producer
// position loaded before the consumer's store, as a store buffer allows.
template <typename Pos, typename ProdAfterStore, typename Header, typename Consume, typename Store>
void libbpf_process(Pos& cons, Fence f, ProdAfterStore&& prod_after_store, Header&& header,
                    Consume&& consume, Store&& store_cons) {
    bool got;
    do {
        got = false;
        Pos prod = prod_after_store(f);
        while (cons != prod) {
            Pos len = header(cons);
            if (!len)
                return; // busy: not committed yet
            consume(cons);
            cons += len;
            got = true;
            store_cons(cons);
            store_to_load(f);
        }
    } while (got && f != Fence::reorder);
}

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
