/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * uringrace: the one list of scenarios, variants, modes and anomaly kinds.
 *
 * No include guard: like asm-generic/unistd.h, this file is included once
 * per expansion, after the includer has defined the macros it wants
 * (URINGRACE_SCENARIO, URINGRACE_VARIANT, URINGRACE_MODE, URINGRACE_ANOMALY);
 * the others expand to nothing, and all four are undefined at the end.
 *
 * URINGRACE_SCENARIO(ID, name, modes, anomaly, what): the scenario's enum
 * suffix (URINGRACE_SC_ID) and name (kmod/sc_<name>.c defines
 * ur_sc_<ID>), the modes it supports (URINGRACE_MODES_BIT() of each), the
 * anomaly its own detector counts (NONE: KCSAN is its only detector), and
 * a line for humans. The others:
 * (ID, name, what). Numbers follow the order (scenarios from 1, the rest
 * from 0) and are ABI: append, never insert or remove.
 *
 * Adding a scenario: one line here, its kmod/sc_<name>.c, its rows in
 * selftests/verdicts.txt, and its application side in user/src/module.cpp
 * if user space can play it.
 */
#ifndef URINGRACE_SCENARIO
#define URINGRACE_SCENARIO(...)
#endif
#ifndef URINGRACE_VARIANT
#define URINGRACE_VARIANT(...)
#endif
#ifndef URINGRACE_MODE
#define URINGRACE_MODE(...)
#endif
#ifndef URINGRACE_ANOMALY
#define URINGRACE_ANOMALY(...)
#endif

URINGRACE_SCENARIO(IOWQ_FLAGS, iowq_flags, URINGRACE_MODES_BIT(KTHREAD),
		   NONE, "io-wq worker->flags, plain RMW vs bitops (seed 004)")
URINGRACE_SCENARIO(SQ_HEAD, sq_head,
		   URINGRACE_MODES_BIT(KTHREAD) | URINGRACE_MODES_BIT(USER),
		   TORN_SQE, "SQ head publish after reading SQEs (seed 001)")
URINGRACE_SCENARIO(SQPOLL_WAKEUP, sqpoll_wakeup,
		   URINGRACE_MODES_BIT(KTHREAD) | URINGRACE_MODES_BIT(USER),
		   LOST_WAKEUP, "NEED_WAKEUP vs SQ tail, store buffering (seed 000)")
URINGRACE_SCENARIO(CQ_TAIL, cq_tail,
		   URINGRACE_MODES_BIT(KTHREAD) | URINGRACE_MODES_BIT(USER) |
		   URINGRACE_MODES_BIT(USER_MM),
		   STALE_CQE, "CQE stores vs CQ tail publish (seed 002)")
URINGRACE_SCENARIO(RINGBUF_NOTIFY, ringbuf_notify,
		   URINGRACE_MODES_BIT(KTHREAD) | URINGRACE_MODES_BIT(USER),
		   LOST_NOTIFY, "BPF ringbuf positions, store buffering (seed 003)")

URINGRACE_VARIANT(BUGGY, buggy, "the ordering as it was before the fix")
URINGRACE_VARIANT(FIXED, fixed, "the ordering the fix put in")

URINGRACE_MODE(KTHREAD, kthread, "a kthread plays the application")
URINGRACE_MODE(USER, user, "user space plays it, on the mmap'ed ring")
URINGRACE_MODE(USER_MM, user_mm, "the kernel side runs in the user's mm")

URINGRACE_ANOMALY(TORN_SQE, torn_sqe, "an SQE overwritten while being read")
URINGRACE_ANOMALY(STALE_CQE, stale_cqe, "a CQE read before its contents arrived")
URINGRACE_ANOMALY(LOST_WAKEUP, lost_wakeup, "SQ thread asleep with work pending")
URINGRACE_ANOMALY(LOST_NOTIFY, lost_notify, "consumer asleep with records pending")

#undef URINGRACE_SCENARIO
#undef URINGRACE_VARIANT
#undef URINGRACE_MODE
#undef URINGRACE_ANOMALY
