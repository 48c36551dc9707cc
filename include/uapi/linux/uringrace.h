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

#define URINGRACE_API_VERSION	1U
#define URINGRACE_DEV		"/dev/uringrace"

struct uringrace_version {
	__u32 size;		/* sizeof(struct uringrace_version) */
	__u32 api;		/* URINGRACE_API_VERSION */
	__u32 nr_scenarios;	/* scenarios this build of the module knows */
	__u32 flags;		/* URINGRACE_VF_* */
};

/* the module can count KCSAN reports itself (console tracepoint probe) */
#define URINGRACE_VF_KCSAN_PROBE	(1U << 0)

#define URINGRACE_IOC_MAGIC	0xB7
#define URINGRACE_IOC_VERSION	_IOR(URINGRACE_IOC_MAGIC, 0x00, struct uringrace_version)

#endif /* _UAPI_LINUX_URINGRACE_H */
