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

#define URINGRACE_API_VERSION	3U
#define URINGRACE_DEV		"/dev/uringrace"

/* Scenarios: one per seed protocol (see the scenario table in DESIGN.md). */
enum uringrace_scenario {
	URINGRACE_SC_IOWQ_FLAGS = 1,	/* io-wq worker->flags, plain RMW vs bitops */
	URINGRACE_SC_SQ_HEAD,		/* SQ head publish after reading SQEs */
	URINGRACE_SC_SQPOLL_WAKEUP,	/* NEED_WAKEUP vs SQ tail (store buffering) */
	URINGRACE_SC_CQ_TAIL,		/* CQE stores vs CQ tail publish */
	URINGRACE_SC_RINGBUF_NOTIFY,	/* BPF ringbuf positions (store buffering) */
	URINGRACE_SC_MAX,
};

enum uringrace_variant {
	URINGRACE_VAR_BUGGY = 0,	/* the ordering as it was before the fix */
	URINGRACE_VAR_FIXED = 1,	/* the ordering the fix put in */
};

enum uringrace_mode {
	URINGRACE_MODE_KTHREAD = 0,	/* a kthread plays the application */
	URINGRACE_MODE_USER = 1,	/* user space plays it, on the mmap'ed ring */
	URINGRACE_MODE_USER_MM = 2,	/* kernel side runs in the user's mm */
};

enum uringrace_anomaly {
	URINGRACE_AN_LOST_UPDATE = 0,	/* a flag bit changed by another context */
	URINGRACE_AN_TORN_SQE,		/* an SQE overwritten while being read */
	URINGRACE_AN_STALE_CQE,		/* a CQE read before its contents arrived */
	URINGRACE_AN_LOST_WAKEUP,	/* SQ thread asleep with work pending */
	URINGRACE_AN_LOST_NOTIFY,	/* consumer asleep with records pending */
	URINGRACE_AN_MAX,
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
	__u64 kcsan_reports;	/* KCSAN reports seen on the console during the run */
	__u64 kcsan_matched;	/* ... whose title names this scenario's functions */
	__u64 first_kcsan_ns;	/* since start; 0: none */
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
	__u32 notifications;	/* ringbuf_notify: notifications sent */
	__u32 decided;		/* ringbuf_notify: records whose notify decision is made */
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
