// SPDX-License-Identifier: GPL-2.0
/*
 * Description: /dev/uringrace under random calls. Four processes make
 * URINGRACE_FUZZ_CALLS (default 100000) random calls between them: ioctls
 * (the real numbers and random ones, right and wrong sizes, random contents,
 * valid configurations now and then so that runs start and stop), mmaps
 * (random offsets, sizes, protections, shared or private), closes and
 * reopens, and forks that use the inherited file and exit. Then 100 rounds
 * of unloading the module while a run holds it. Every process must exit
 * normally, every scenario thread must be gone, memory must come back (the
 * meminfo check of control.c), and (module_races.sh, last) no KCSAN report
 * may fall in the module's control code; with LOCKDEP=1 no lockdep report.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "module_path.h"

enum { K_IOCTL, K_IOCTL_RANDOM, K_CONFIG_VALID, K_MMAP, K_MMAP_OK, K_CLOSE, K_FORK, K_MAX };
static const char *const kind_names[K_MAX] = {
	"ioctl", "ioctl_random_number", "configure_valid", "mmap", "mmap_succeeded",
	"close_reopen", "fork",
};

struct counts {
	unsigned long n[K_MAX];
};

static unsigned long long rnd(unsigned long long *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void random_config(unsigned long long *s, struct uringrace_config *c, int valid)
{
	unsigned char *b = (unsigned char *)c;

	for (size_t i = 0; i < sizeof(*c); i++)
		b[i] = rnd(s);
	c->size = (rnd(s) & 7) ? sizeof(*c) : (unsigned int)rnd(s);
	if (!valid)
		return;
	c->size = sizeof(*c);
	c->scenario = 1 + rnd(s) % (URINGRACE_SC_MAX - 1);
	c->variant = rnd(s) % URINGRACE_VAR_MAX;
	c->mode = (rnd(s) & 1) ? URINGRACE_MODE_USER : URINGRACE_MODE_KTHREAD;
	c->threads = 1 + rnd(s) % 2;
	c->duration_ms = 1 + rnd(s) % 30;
	c->entries = 2u << (rnd(s) % 6);
	c->watchdog_ms = rnd(s) % 20;
}

static void one_call(int *fd, unsigned long long *s, struct counts *k)
{
	static const unsigned long cmds[] = {
		URINGRACE_IOC_VERSION, URINGRACE_IOC_CONFIGURE, URINGRACE_IOC_START,
		URINGRACE_IOC_STOP, URINGRACE_IOC_STATS, URINGRACE_IOC_WAKE,
	};
	unsigned char buf[512];
	unsigned int r = rnd(s) % 100;

	if (r < 75) {
		unsigned long cmd;

		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = rnd(s);
		if (r < 60) {
			cmd = cmds[rnd(s) % (sizeof(cmds) / sizeof(cmds[0]))];
			if (cmd == URINGRACE_IOC_CONFIGURE) {
				int valid = !(rnd(s) % 3);

				random_config(s, (struct uringrace_config *)buf, valid);
				k->n[K_CONFIG_VALID] += valid;
			} else if (rnd(s) & 3) {
				/* mostly the right size, so the call gets past it */
				((unsigned int *)buf)[0] = cmd == URINGRACE_IOC_VERSION ?
					sizeof(struct uringrace_version) :
					sizeof(struct uringrace_stats);
			}
			k->n[K_IOCTL]++;
		} else {
			/* our magic with any number, size and direction, or anything */
			cmd = (rnd(s) & 1) ? _IOC(rnd(s) % 4, URINGRACE_IOC_MAGIC, rnd(s) % 256,
						  rnd(s) % 1024) : (unsigned int)rnd(s);
			k->n[K_IOCTL_RANDOM]++;
		}
		/* a bad pointer now and then */
		ioctl(*fd, cmd, (rnd(s) % 50) ? (void *)buf : (void *)(unsigned long)rnd(s));
	} else if (r < 90) {
		long page = sysconf(_SC_PAGESIZE);
		size_t len = (rnd(s) % 4) * page + (rnd(s) % 2) * (rnd(s) % page);
		off_t off = (rnd(s) % 4) * page;
		int prot = (rnd(s) & 1) ? PROT_READ | PROT_WRITE : PROT_READ;
		int flags = (rnd(s) % 4) ? MAP_SHARED : MAP_PRIVATE;
		void *p = mmap(NULL, len, prot, flags, *fd, off);

		k->n[K_MMAP]++;
		if (p != MAP_FAILED) {
			k->n[K_MMAP_OK]++;
			(void)*(volatile unsigned char *)p;	/* fault it in */
			munmap(p, len);
		}
	} else if (r < 98) {
		close(*fd);
		*fd = open(URINGRACE_DEV, O_RDWR);
		k->n[K_CLOSE]++;
	} else {
		pid_t pid = fork();

		k->n[K_FORK]++;
		if (pid == 0) {
			struct uringrace_stats st = { .size = sizeof(st) };

			ioctl(*fd, URINGRACE_IOC_STATS, &st);
			ioctl(*fd, URINGRACE_IOC_STOP, 0);
			_exit(0);
		}
		if (pid > 0)
			waitpid(pid, NULL, 0);
	}
}

FIXTURE(fuzz) {
	int unused;
};

FIXTURE_SETUP(fuzz)
{
}

FIXTURE_TEARDOWN(fuzz)
{
}

/*
 * the harness's own limit is 30 s: these take minutes under KCSAN and TCG.
 * 2700 s leaves room for a million calls (URINGRACE_FUZZ_CALLS=1000000:
 * about 17 minutes here); the default 100 000 is bounded first by the
 * runner's per-program timeout (selftests/settings).
 */
TEST_F_TIMEOUT(fuzz, random_calls_from_four_processes, 2700)
{
	const char *env = getenv("URINGRACE_FUZZ_CALLS");
	/*
	 * 100 000 by default: about 1 000 calls a second under KCSAN and TCG
	 * here (docs/MEASUREMENTS.md), so a million is for hardware and labs
	 */
	unsigned long calls = env ? strtoul(env, NULL, 10) : 100000;
	struct counts *shared, total = { 0 };
	long vm0, slab0, vm1, slab1;
	int status, bad = 0;
	char out[512] = "";
	size_t off = 0;

	UR_NEED_MODULE();
	shared = mmap(NULL, 4 * sizeof(*shared), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, shared);
	memset(shared, 0, 4 * sizeof(*shared));
	vm0 = meminfo_kb("VmallocUsed");
	slab0 = meminfo_kb("Slab");
	for (int i = 0; i < 4; i++) {
		pid_t pid = fork();

		ASSERT_LE(0, pid);
		if (pid == 0) {
			unsigned long long seed = 0x9e3779b97f4a7c15ULL * (i + 1);
			int fd = open(URINGRACE_DEV, O_RDWR);

			for (unsigned long c = 0; c < calls / 4; c++) {
				if (fd < 0)
					fd = open(URINGRACE_DEV, O_RDWR);
				if (fd >= 0)
					one_call(&fd, &seed, &shared[i]);
			}
			if (fd >= 0)
				close(fd);
			_exit(0);
		}
	}
	TH_LOG("%lu calls from 4 processes", calls / 4 * 4);
	for (int i = 0; i < 4; i++) {
		ASSERT_LT(0, wait(&status));
		/* a process killed by a signal (SIGBUS, SIGSEGV) is a failure */
		bad += !WIFEXITED(status) || WEXITSTATUS(status);
	}
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < K_MAX; j++)
			total.n[j] += shared[i].n[j];
	for (int j = 0; j < K_MAX; j++)
		off += snprintf(out + off, sizeof(out) - off, "%s\"%s\":%lu", j ? "," : "",
				kind_names[j], total.n[j]);
	printf("# uringrace-result {\"label\":\"fuzz\",\"ops\":%lu,\"counts\":{%s}}\n",
	       calls / 4 * 4, out);
	EXPECT_EQ(0, bad) TH_LOG("%d fuzzing process(es) did not exit normally", bad);
	/* every run was stopped by its close: no thread may be left */
	usleep(100000);
	EXPECT_EQ(0, ur_threads());
	vm1 = meminfo_kb("VmallocUsed");
	slab1 = meminfo_kb("Slab");
	TH_LOG("VmallocUsed %+ld kB, Slab %+ld kB", vm1 - vm0, slab1 - slab0);
	EXPECT_GT(1024, vm1 - vm0);
	EXPECT_GT(4096, slab1 - slab0);
	munmap(shared, 4 * sizeof(*shared));
}

/* 100 rounds: a run holds the module, rmmod is refused, close, rmmod, load */
TEST_F_TIMEOUT(fuzz, unload_while_running_100_times, 280)
{
	struct uringrace_config c = {
		.size = sizeof(c), .scenario = URINGRACE_SC_SQ_HEAD,
		.variant = URINGRACE_VAR_FIXED, .mode = URINGRACE_MODE_KTHREAD,
		.threads = 1, .duration_ms = 60000, .entries = 8,
	};

	for (int i = 0; i < 100; i++) {
		int fd;

		if (!(i % 25))
			TH_LOG("round %d", i);
		UR_NEED_MODULE();
		fd = open(URINGRACE_DEV, O_RDWR);
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, ioctl(fd, URINGRACE_IOC_CONFIGURE, &c));
		ASSERT_EQ(0, ioctl(fd, URINGRACE_IOC_START, 0));
		/* the open file holds the module: the unload must be refused */
		ASSERT_NE(0, system("rmmod uringrace 2>/dev/null")) TH_LOG("round %d", i);
		close(fd);
		ASSERT_EQ(0, system("rmmod uringrace")) TH_LOG("round %d", i);
		ASSERT_EQ(0, ur_threads());
	}
	UR_NEED_MODULE();
}

TEST_HARNESS_MAIN
