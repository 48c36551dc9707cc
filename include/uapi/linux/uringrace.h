/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * uringrace: the interface of /dev/uringrace, shared by the module, the C++
 * driver and the selftests. Every struct starts with its own size so that the
 * module can reject callers built against another layout.
 */
#ifndef _UAPI_LINUX_URINGRACE_H
#define _UAPI_LINUX_URINGRACE_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define URINGRACE_API_VERSION	4U
#define URINGRACE_DEV		"/dev/uringrace"

/*
 * Scenarios, variants, modes and anomaly kinds are listed once, in
 * <linux/uringrace_list.h>; the enums below and every consumer (module,
 * driver, selftests, the host's scripts/uringrace/catalog.py) expand them.
 */
#define URINGRACE_MODES_BIT(m)	(1U << URINGRACE_MODE_##m)

enum uringrace_mode {
#define URINGRACE_MODE(ID, ...) URINGRACE_MODE_##ID,
#include "uringrace_list.h"
	URINGRACE_MODE_MAX
};

enum uringrace_scenario {
	URINGRACE_SC_NONE,	/* 0: never a scenario */
#define URINGRACE_SCENARIO(ID, ...) URINGRACE_SC_##ID,
#include "uringrace_list.h"
	URINGRACE_SC_MAX
};

enum uringrace_variant {
#define URINGRACE_VARIANT(ID, ...) URINGRACE_VAR_##ID,
#include "uringrace_list.h"
	URINGRACE_VAR_MAX
};

enum uringrace_anomaly {
#define URINGRACE_ANOMALY(ID, ...) URINGRACE_AN_##ID,
#include "uringrace_list.h"
	URINGRACE_AN_MAX,
	URINGRACE_AN_NONE = URINGRACE_AN_MAX,	/* a scenario without a counter */
};

#define URINGRACE_MAX_THREADS	8
#define URINGRACE_MAX_ENTRIES	4096
#define URINGRACE_MAX_DURATION_MS	(10U * 60 * 1000)

struct uringrace_version {
	__u32 size;		/* sizeof(struct uringrace_version) */
	__u32 api;		/* URINGRACE_API_VERSION */
	__u32 nr_scenarios;	/* URINGRACE_SC_MAX - 1 of the module's build */
	__u32 flags;		/* URINGRACE_VF_* */
};

/* the module counts KCSAN reports itself (console tracepoint probe) */
#define URINGRACE_VF_KCSAN_PROBE	(1U << 0)

struct uringrace_config {
	__u32 size;		/* sizeof(struct uringrace_config) */
	__u32 scenario;		/* enum uringrace_scenario */
	__u32 variant;		/* enum uringrace_variant */
	__u32 mode;		/* enum uringrace_mode */
	__u32 threads;		/* kernel-side threads per role, 1..MAX_THREADS */
	__u32 duration_ms;	/* 1..URINGRACE_MAX_DURATION_MS */
	__u32 entries;		/* ring entries, power of two, 2..MAX_ENTRIES */
	__u32 watchdog_ms;	/* stall limit for lost wake-up/notification */
	__u64 seed;
};

struct uringrace_stats {
	__u32 size;		/* sizeof(struct uringrace_stats) */
	__u32 running;		/* 1 while the scenario's threads work */
	__u64 ops;		/* protocol operations completed */
	__u64 anomalies[URINGRACE_AN_MAX];
	__u64 first_anomaly_ns;	/* since start; 0: none */
	__u64 elapsed_ns;
	/*
	 * KCSAN reports printed while the run's threads worked (console
	 * tracepoint), whatever they name: a count for the log reader to check
	 * itself against. Which report is whose race is decided in user space,
	 * on both accesses (selftests/kcsan_match.h).
	 */
	__u64 kcsan_reports;
};

/*
 * The ring shared in URINGRACE_MODE_USER: one mmap of
 * uringrace_ring_bytes(entries) bytes at offset 0.
 */
struct uringrace_ring_hdr {
	__u32 head;		/* consumer position */
	__u32 tail;		/* producer position */
	__u32 flags;		/* URINGRACE_RING_NEED_WAKEUP */
	__u32 entries;
	__u32 notifications;	/* BPF ringbuf model: notifications sent */
	__u32 decided;		/* ... records whose notify decision is made */
	__u32 pad[10];		/* entries start on a cache line */
};

#define URINGRACE_RING_NEED_WAKEUP	(1U << 0)

/* One slot: seq at both ends, so a torn read shows as seq != seq_end. */
struct uringrace_entry {
	__u64 seq;
	__u64 data[6];
	__u64 seq_end;
};

#define uringrace_ring_bytes(entries) \
	(sizeof(struct uringrace_ring_hdr) + \
	 (__u64)(entries) * sizeof(struct uringrace_entry))

#define URINGRACE_IOC_MAGIC	0xB7
#define URINGRACE_IOC_VERSION	_IOWR(URINGRACE_IOC_MAGIC, 0x00, struct uringrace_version)
#define URINGRACE_IOC_CONFIGURE	_IOW(URINGRACE_IOC_MAGIC, 0x01, struct uringrace_config)
#define URINGRACE_IOC_START	_IO(URINGRACE_IOC_MAGIC, 0x02)
#define URINGRACE_IOC_STOP	_IO(URINGRACE_IOC_MAGIC, 0x03)
#define URINGRACE_IOC_STATS	_IOWR(URINGRACE_IOC_MAGIC, 0x04, struct uringrace_stats)
/* wake the running scenario's sleepers (IORING_ENTER_SQ_WAKEUP's role) */
#define URINGRACE_IOC_WAKE	_IO(URINGRACE_IOC_MAGIC, 0x05)

#endif /* _UAPI_LINUX_URINGRACE_H */
