// SPDX-License-Identifier: GPL-2.0
/*
 * Description: /dev/uringrace's control side holds up under bad input and
 * abuse: wrong ioctls, sizes and values, mmap outside the ring, a second
 * start, close and module unload during a run, several processes mapping at
 * once. (That no KCSAN report falls in the module's control code is checked
 * last, after every other test: module_races.sh.)
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/uringrace.h>

#include "kselftest_harness.h"
#include "module_path.h"

static struct uringrace_config good_config(void)
{
	struct uringrace_config c = {
		.size = sizeof(c),
		.scenario = URINGRACE_SC_IOWQ_FLAGS,
		.variant = URINGRACE_VAR_FIXED,
		.mode = URINGRACE_MODE_KTHREAD,
		.threads = 1,
		.duration_ms = 60000,
		.entries = 8,
	};
	return c;
}

FIXTURE(dev) {
	int fd;
};

FIXTURE_SETUP(dev)
{
	UR_NEED_MODULE();
	self->fd = open(URINGRACE_DEV, O_RDWR);
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(dev)
{
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F(dev, version)
{
	struct uringrace_version v = { .size = sizeof(v) };

	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_VERSION, &v));
	EXPECT_EQ(URINGRACE_API_VERSION, v.api);
	EXPECT_EQ(URINGRACE_SC_MAX - 1, (int)v.nr_scenarios);
}

TEST_F(dev, wrong_sizes)
{
	struct uringrace_version v = { .size = sizeof(v) - 4 };
	struct uringrace_config c = good_config();
	struct uringrace_stats st = { .size = sizeof(st) + 8 };

	EXPECT_EQ(-1, ioctl(self->fd, URINGRACE_IOC_VERSION, &v));
	EXPECT_EQ(EINVAL, errno);
	c.size = sizeof(c) + 8;
	EXPECT_EQ(-1, ioctl(self->fd, URINGRACE_IOC_CONFIGURE, &c));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->fd, URINGRACE_IOC_STATS, &st));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->fd, URINGRACE_IOC_VERSION, NULL));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(dev, unknown_ioctl)
{
	EXPECT_EQ(-1, ioctl(self->fd, _IO(URINGRACE_IOC_MAGIC, 0x7f), 0));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->fd, _IO('T', 0x01), 0));
	EXPECT_EQ(ENOTTY, errno);
}

TEST_F(dev, bad_values)
{
	struct uringrace_config c;
	struct {
		const char *what;
		void (*apply)(struct uringrace_config *c);
	} cases[] = {
#define CASE(expr) { #expr, ({ void f(struct uringrace_config *c) { expr; } f; }) }
		CASE(c->scenario = 0),
		CASE(c->scenario = URINGRACE_SC_MAX),
		CASE(c->variant = 2),
		CASE(c->mode = 3),
		CASE(c->mode = URINGRACE_MODE_USER),	/* iowq_flags is kthread-only */
		CASE(c->threads = 0),
		CASE(c->threads = URINGRACE_MAX_THREADS + 1),
		CASE(c->duration_ms = 0),
		CASE(c->duration_ms = URINGRACE_MAX_DURATION_MS + 1),
		CASE(c->entries = 6),
		CASE(c->entries = 1),
		CASE(c->entries = 2 * URINGRACE_MAX_ENTRIES),
		CASE(c->watchdog_ms = 100000),
#undef CASE
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = good_config();
		cases[i].apply(&c);
		EXPECT_EQ(-1, ioctl(self->fd, URINGRACE_IOC_CONFIGURE, &c))
			TH_LOG("accepted: %s", cases[i].what);
		EXPECT_EQ(EINVAL, errno) TH_LOG("%s", cases[i].what);
	}
}

TEST_F(dev, start_needs_configure_and_stats_need_a_run)
{
	struct uringrace_stats st = { .size = sizeof(st) };

	EXPECT_EQ(-1, ioctl(self->fd, URINGRACE_IOC_START, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->fd, URINGRACE_IOC_STATS, &st));
	EXPECT_EQ(ENODATA, errno);
	EXPECT_EQ(0, ioctl(self->fd, URINGRACE_IOC_STOP, 0));
}

TEST_F(dev, second_start_is_busy)
{
	struct uringrace_config c = good_config();
	struct uringrace_stats st = { .size = sizeof(st) };

	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_CONFIGURE, &c));
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_START, 0));
	usleep(200000);	/* let the threads get a CPU and do some work */
	EXPECT_EQ(-1, ioctl(self->fd, URINGRACE_IOC_START, 0));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(-1, ioctl(self->fd, URINGRACE_IOC_CONFIGURE, &c));
	EXPECT_EQ(EBUSY, errno);
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_STATS, &st));
	EXPECT_EQ(1, (int)st.running);
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_STOP, 0));
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_STATS, &st));
	EXPECT_EQ(0, (int)st.running);
	EXPECT_LT(0ULL, (unsigned long long)st.ops);
	EXPECT_EQ(0, ur_threads());
	/* and it can run again */
	c.duration_ms = 200;
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_CONFIGURE, &c));
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_START, 0));
	do {
		usleep(50000);
		ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_STATS, &st));
	} while (st.running);
}

TEST_F(dev, mmap_bounds)
{
	struct uringrace_config c = good_config();
	size_t bytes, page = sysconf(_SC_PAGESIZE);
	struct uringrace_ring_hdr *r;
	void *p;

	/* no ring before a user-mode configure */
	p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);

	c.scenario = URINGRACE_SC_SQ_HEAD;
	c.mode = URINGRACE_MODE_USER;
	c.entries = 256;
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_CONFIGURE, &c));
	bytes = (uringrace_ring_bytes(c.entries) + page - 1) & ~(page - 1);
	p = mmap(NULL, bytes + page, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 0);
	EXPECT_EQ(MAP_FAILED, p) TH_LOG("mapped past the ring");
	EXPECT_EQ(EINVAL, errno);
	p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, bytes);
	EXPECT_EQ(MAP_FAILED, p) TH_LOG("mapped at an offset past the ring");
	EXPECT_EQ(EINVAL, errno);
	r = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 0);
	ASSERT_NE(MAP_FAILED, r);
	/* a ring of another size while this one is mapped: refused */
	c.entries = 512;
	EXPECT_EQ(-1, ioctl(self->fd, URINGRACE_IOC_CONFIGURE, &c));
	EXPECT_EQ(EBUSY, errno);
	c.entries = 256;
	c.duration_ms = 100;
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_CONFIGURE, &c));
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_START, 0));
	EXPECT_EQ(256U, r->entries) TH_LOG("start did not initialise the mapped ring");
	ASSERT_EQ(0, ioctl(self->fd, URINGRACE_IOC_STOP, 0));
	munmap(r, bytes);
}

TEST(close_during_run_stops_every_thread)
{
	struct uringrace_config c = good_config();
	int fd;

	UR_NEED_MODULE();
	fd = open(URINGRACE_DEV, O_RDWR);
	ASSERT_LE(0, fd);
	c.threads = 4;
	ASSERT_EQ(0, ioctl(fd, URINGRACE_IOC_CONFIGURE, &c));
	ASSERT_EQ(0, ioctl(fd, URINGRACE_IOC_START, 0));
	usleep(200000);
	EXPECT_EQ(8, ur_threads());	/* iowq_flags: 4 workers, 4 enqueuers */
	close(fd);
	EXPECT_EQ(0, ur_threads());
}

TEST(unload_refused_during_run_then_clean)
{
	struct uringrace_config c = good_config();
	char cmd[512];
	int fd;

	UR_NEED_MODULE();
	fd = open(URINGRACE_DEV, O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, URINGRACE_IOC_CONFIGURE, &c));
	ASSERT_EQ(0, ioctl(fd, URINGRACE_IOC_START, 0));
	EXPECT_NE(0, system("rmmod uringrace 2>/dev/null")) TH_LOG("unloaded mid-run");
	EXPECT_EQ(0, access(URINGRACE_DEV, F_OK));
	close(fd);
	EXPECT_EQ(0, system("rmmod uringrace"));
	EXPECT_NE(0, access(URINGRACE_DEV, F_OK));
	snprintf(cmd, sizeof(cmd), "insmod %s", ur_module_path());
	ASSERT_EQ(0, system(cmd));
}

/* the application side of sq_head on the mapped ring, fixed ordering */
static int child_sq_producer(void)
{
	struct uringrace_config c = good_config();
	struct uringrace_stats st = { .size = sizeof(st) };
	size_t page = sysconf(_SC_PAGESIZE), bytes;
	struct uringrace_ring_hdr *r;
	struct uringrace_entry *e;
	unsigned int tail = 0;
	int fd = open(URINGRACE_DEV, O_RDWR);

	if (fd < 0)
		return 10;
	c.scenario = URINGRACE_SC_SQ_HEAD;
	c.mode = URINGRACE_MODE_USER;
	c.duration_ms = 1000;
	c.entries = 16;
	if (ioctl(fd, URINGRACE_IOC_CONFIGURE, &c))
		return 11;
	bytes = (uringrace_ring_bytes(c.entries) + page - 1) & ~(page - 1);
	r = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r == MAP_FAILED)
		return 12;
	e = (struct uringrace_entry *)(r + 1);
	if (ioctl(fd, URINGRACE_IOC_START, 0))
		return 13;
	do {
		for (int i = 0; i < 64; i++) {
			unsigned long long seq = tail + 1ULL;
			struct uringrace_entry *s = &e[tail & (c.entries - 1)];

			if (tail - __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) >= c.entries)
				break;
			s->seq = seq;
			s->data[0] = s->data[1] = s->data[2] = seq;
			s->seq_end = seq;
			__atomic_store_n(&r->tail, ++tail, __ATOMIC_RELEASE);
		}
		if (ioctl(fd, URINGRACE_IOC_STATS, &st))
			return 14;
	} while (st.running);
	if (!st.ops || st.ops > tail)
		return 15;
	if (st.anomalies[URINGRACE_AN_TORN_SQE])
		return 16;
	munmap(r, bytes);
	close(fd);
	return 0;
}

TEST(several_processes_map_and_run_at_once)
{
	pid_t pids[4];
	int status;

	UR_NEED_MODULE();
	for (int i = 0; i < 4; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (!pids[i])
			_exit(child_sq_producer());
	}
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
		EXPECT_TRUE(WIFEXITED(status));
		EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("child %d failed step %d", i,
							 WEXITSTATUS(status));
	}
	EXPECT_EQ(0, ur_threads());
}

/*
 * A leak in a run's life cycle (ring, run state, a task reference) would
 * grow vmalloc or slab use by kilobytes per cycle: 300 cycles make it MBs.
 */
TEST(no_leak_over_many_runs)
{
	size_t page = sysconf(_SC_PAGESIZE);
	long vm0 = 0, slab0 = 0, vm1, slab1;

	UR_NEED_MODULE();
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {	/* the first pass warms caches up */
			vm0 = meminfo_kb("VmallocUsed");
			slab0 = meminfo_kb("Slab");
		}
		for (int i = 0; i < 150; i++) {
			struct uringrace_config c = good_config();
			size_t bytes;
			int fd = open(URINGRACE_DEV, O_RDWR);
			void *p;

			ASSERT_LE(0, fd);
			c.scenario = URINGRACE_SC_SQ_HEAD;
			c.mode = URINGRACE_MODE_USER;
			c.entries = 256;
			c.duration_ms = 1;
			ASSERT_EQ(0, ioctl(fd, URINGRACE_IOC_CONFIGURE, &c));
			bytes = (uringrace_ring_bytes(c.entries) + page - 1) & ~(page - 1);
			p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			ASSERT_NE(MAP_FAILED, p);
			ASSERT_EQ(0, ioctl(fd, URINGRACE_IOC_START, 0));
			ASSERT_EQ(0, ioctl(fd, URINGRACE_IOC_STOP, 0));
			munmap(p, bytes);
			close(fd);
		}
	}
	vm1 = meminfo_kb("VmallocUsed");
	slab1 = meminfo_kb("Slab");
	TH_LOG("150 runs: VmallocUsed %+ld kB, Slab %+ld kB", vm1 - vm0, slab1 - slab0);
	EXPECT_GT(256, vm1 - vm0);
	EXPECT_GT(1024, slab1 - slab0);
}

TEST_HARNESS_MAIN
