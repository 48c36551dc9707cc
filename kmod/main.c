// SPDX-License-Identifier: GPL-2.0
/*
 * uringrace: re-creations of io_uring's shared-memory protocols, each in a
 * buggy and a fixed variant, driven from /dev/uringrace.
 *
 * This file is the control side: one run per open file (configure, start,
 * stop, stats), the ring that user space maps, debugfs, and the console
 * tracepoint probe that counts KCSAN reports naming a running scenario.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/tracepoint.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "ur_internal.h"

#define UR_DEFAULT_WATCHDOG_MS	200
#define UR_MAX_WATCHDOG_MS	10000

/* the scenario list (uapi/linux/uringrace_list.h), expanded */
struct ur_sc_entry {
	const char *name;
	unsigned int modes;
	enum uringrace_anomaly anomaly;	/* what the scenario's own detector counts */
	const struct ur_scenario *sc;
};

static const struct ur_sc_entry ur_scenarios[URINGRACE_SC_MAX] = {
#define URINGRACE_SCENARIO(ID, nm, md, an, ...)			\
	[URINGRACE_SC_##ID] = { .name = #nm, .modes = (md),		\
				.anomaly = URINGRACE_AN_##an, .sc = &ur_sc_##ID },
#include <uapi/linux/uringrace_list.h>
};

static const char *const ur_anomaly_names[URINGRACE_AN_MAX] = {
#define URINGRACE_ANOMALY(ID, nm, ...)	\
	[URINGRACE_AN_##ID] = #nm,
#include <uapi/linux/uringrace_list.h>
};

struct ur_thread {
	struct ur_run *run;
	int (*fn)(void *arg);
	void *arg;
};

/* A run plus what the control code needs to find it from the probe. */
struct ur_run_box {
	struct ur_run run;
	struct list_head node;		/* ur_runs, under ur_runs_lock */
	struct ur_thread th[UR_MAX_RUN_THREADS];
	unsigned int id;
};

/*
 * Locks: lock serialises the ioctls and is never held across a user copy
 * (which may take mmap_lock); ring_lock guards ring, ring_bytes and uaddr,
 * is taken inside lock or mmap_lock, and takes nothing itself. So mmap()
 * (mmap_lock, then ring_lock) never waits for a STOP that holds lock while
 * kthread_stop() waits for a thread faulting on mmap_lock.
 */
struct ur_file {
	struct mutex lock;
	bool configured;
	struct uringrace_config cfg;
	struct ur_run_box *box;		/* running or finished run */
	struct mutex ring_lock;
	void *ring;			/* vmalloc_user, lives until release */
	size_t ring_bytes;
	void __user *uaddr;		/* where the ring was last mapped */
};

static LIST_HEAD(ur_runs);
static DEFINE_SPINLOCK(ur_runs_lock);
static atomic_t ur_next_id = ATOMIC_INIT(0);
static struct tracepoint *ur_console_tp;
static struct dentry *ur_debugfs;

/* ---- helpers the scenarios use ---- */

/*
 * Called in every scenario loop, so it must not order memory: a barrier here
 * (ktime_get_ns() has seqcount smp_rmb()s) would end KCSAN's simulated
 * reordering of the loop's plain accesses. jiffies and kthread_should_stop()
 * are plain and atomic reads.
 */
bool ur_should_stop(struct ur_run *run)
{
	return kthread_should_stop() || READ_ONCE(run->stopping) ||
	       time_after_eq(jiffies, run->end_jiffies);
}

/* After its work loop: count out, then wait for kthread_stop(). */
void ur_park(struct ur_run *run)
{
	atomic_dec(&run->workers_live);
	while (!kthread_should_stop()) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (!kthread_should_stop())
			schedule();
		__set_current_state(TASK_RUNNING);
	}
}

void ur_anomaly(struct ur_run *run, enum uringrace_anomaly kind)
{
	u64 now = ktime_get_ns() - run->start_ns;

	atomic64_inc(&run->anomalies[kind]);
	atomic64_cmpxchg(&run->first_anomaly_ns, 0, now ? now : 1);
}

static int ur_thread_main(void *p)
{
	struct ur_thread *t = p;

	t->fn(t->arg);
	ur_park(t->run);
	return 0;
}

int ur_spawn(struct ur_run *run, int (*fn)(void *), void *arg, const char *role)
{
	struct ur_run_box *box = container_of(run, struct ur_run_box, run);
	unsigned int i = run->nr_threads;
	struct task_struct *task;

	if (i >= ARRAY_SIZE(run->threads))
		return -E2BIG;
	box->th[i] = (struct ur_thread){ .run = run, .fn = fn, .arg = arg };
	task = kthread_create(ur_thread_main, &box->th[i], "ur/%s/%s",
			      ur_scenarios[run->cfg.scenario].name, role);
	if (IS_ERR(task))
		return PTR_ERR(task);
	get_task_struct(task);
	run->threads[i] = task;
	run->nr_threads = i + 1;
	atomic_inc(&run->workers_live);
	return 0;
}

int ur_ring_setup(struct ur_run *run)
{
	if (run->ring)
		return 0;
	run->ring = kvzalloc(uringrace_ring_bytes(run->cfg.entries), GFP_KERNEL);
	if (!run->ring)
		return -ENOMEM;
	run->own_ring = true;
	run->ring->entries = run->cfg.entries;
	return 0;
}

/*
 * The shape most scenarios share: the ring, the kernel side's thread and, in
 * MODE_KTHREAD, a thread playing the application; both get arg.
 */
int ur_start_pair(struct ur_run *run, int (*kernel_fn)(void *), const char *kernel_role,
		  int (*app_fn)(void *), const char *app_role, void *arg)
{
	int ret = ur_ring_setup(run);

	if (ret)
		return ret;
	ret = ur_spawn(run, kernel_fn, arg, kernel_role);
	if (ret || run->cfg.mode != URINGRACE_MODE_KTHREAD)
		return ret;
	return ur_spawn(run, app_fn, arg, app_role);
}

/* ---- runs ---- */

static void ur_run_stop(struct ur_run_box *box)
{
	struct ur_run *run = &box->run;
	unsigned int i;

	WRITE_ONCE(run->stopping, 1);
	wake_up_all(&run->wq);
	for (i = 0; i < run->nr_threads; i++) {
		kthread_stop(run->threads[i]);
		put_task_struct(run->threads[i]);
	}
	run->nr_threads = 0;
	/* a thread stopped before it first ran never reached ur_park() */
	atomic_set(&run->workers_live, 0);
}

static void ur_run_free(struct ur_run_box *box)
{
	if (!box)
		return;
	ur_run_stop(box);
	spin_lock_irq(&ur_runs_lock);
	list_del(&box->node);
	spin_unlock_irq(&ur_runs_lock);
	if (box->run.sc->cleanup)
		box->run.sc->cleanup(&box->run);
	if (box->run.mm)
		mmdrop(box->run.mm);
	if (box->run.own_ring)
		kvfree(box->run.ring);
	kfree(box);
}

static int ur_start(struct ur_file *uf)
{
	const struct ur_scenario *sc = ur_scenarios[uf->cfg.scenario].sc;
	struct ur_run_box *box;
	struct ur_run *run;
	unsigned int i;
	int ret;

	if (!uf->configured)
		return -EINVAL;
	if (uf->box && atomic_read(&uf->box->run.workers_live))
		return -EBUSY;
	ur_run_free(uf->box);
	uf->box = NULL;

	box = kzalloc(sizeof(*box), GFP_KERNEL);
	if (!box)
		return -ENOMEM;
	run = &box->run;
	run->cfg = uf->cfg;
	run->sc = sc;
	init_waitqueue_head(&run->wq);
	box->id = atomic_inc_return(&ur_next_id);
	if (uf->cfg.mode != URINGRACE_MODE_KTHREAD) {
		run->ring = uf->ring;
		memset(uf->ring, 0, uf->ring_bytes);
		run->ring->entries = uf->cfg.entries;
	}
	if (uf->cfg.mode == URINGRACE_MODE_USER_MM) {
		/* the struct only: the thread takes users with mmget_not_zero() */
		mmgrab(current->mm);
		run->mm = current->mm;
		mutex_lock(&uf->ring_lock);
		run->uring = uf->uaddr;
		mutex_unlock(&uf->ring_lock);
	}
	run->start_ns = ktime_get_ns();
	run->end_ns = run->start_ns + (u64)uf->cfg.duration_ms * NSEC_PER_MSEC;
	run->end_jiffies = jiffies + msecs_to_jiffies(uf->cfg.duration_ms);
	spin_lock_irq(&ur_runs_lock);
	list_add_tail(&box->node, &ur_runs);
	spin_unlock_irq(&ur_runs_lock);

	ret = sc->start(run);
	if (ret) {
		ur_run_free(box);
		return ret;
	}
	for (i = 0; i < run->nr_threads; i++)
		wake_up_process(run->threads[i]);
	uf->box = box;
	return 0;
}

static void ur_fill_stats(struct ur_run *run, struct uringrace_stats *st)
{
	u64 now = ktime_get_ns();
	unsigned int i;

	st->running = atomic_read(&run->workers_live) > 0;
	st->ops = atomic64_read(&run->ops);
	for (i = 0; i < URINGRACE_AN_MAX; i++)
		st->anomalies[i] = atomic64_read(&run->anomalies[i]);
	st->first_anomaly_ns = atomic64_read(&run->first_anomaly_ns);
	st->elapsed_ns = min(now, run->end_ns) - run->start_ns;
	st->kcsan_reports = atomic64_read(&run->kcsan_reports);
}

/* ---- ioctls ---- */

static int ur_get_sized(void *dst, size_t size, void __user *arg)
{
	u32 usize;

	if (get_user(usize, (u32 __user *)arg))
		return -EFAULT;
	if (usize != size)
		return -EINVAL;
	if (copy_from_user(dst, arg, size))
		return -EFAULT;
	return 0;
}

static long ur_ioctl_version(void __user *arg)
{
	struct uringrace_version v;
	int ret = ur_get_sized(&v, sizeof(v), arg);

	if (ret)
		return ret;
	v.api = URINGRACE_API_VERSION;
	v.nr_scenarios = URINGRACE_SC_MAX - 1;
	v.flags = ur_console_tp ? URINGRACE_VF_KCSAN_PROBE : 0;
	return copy_to_user(arg, &v, sizeof(v)) ? -EFAULT : 0;
}

static int ur_validate(struct uringrace_config *c)
{
	if (c->scenario < 1 || c->scenario >= URINGRACE_SC_MAX)
		return -EINVAL;
	if (c->variant >= URINGRACE_VAR_MAX)
		return -EINVAL;
	if (c->mode >= URINGRACE_MODE_MAX ||
	    !(ur_scenarios[c->scenario].modes & BIT(c->mode)))
		return -EINVAL;
	if (c->threads < 1 || c->threads > URINGRACE_MAX_THREADS)
		return -EINVAL;
	if (c->duration_ms < 1 || c->duration_ms > URINGRACE_MAX_DURATION_MS)
		return -EINVAL;
	if (c->entries < 2 || c->entries > URINGRACE_MAX_ENTRIES ||
	    !is_power_of_2(c->entries))
		return -EINVAL;
	if (c->watchdog_ms > UR_MAX_WATCHDOG_MS)
		return -EINVAL;
	if (!c->watchdog_ms)
		c->watchdog_ms = UR_DEFAULT_WATCHDOG_MS;
	return 0;
}

/* under uf->lock, c already copied in and validated */
static long ur_configure(struct ur_file *uf, const struct uringrace_config *c)
{
	size_t bytes;
	void *ring;

	if (uf->box && atomic_read(&uf->box->run.workers_live))
		return -EBUSY;
	if (c->mode != URINGRACE_MODE_KTHREAD) {
		bytes = PAGE_ALIGN(uringrace_ring_bytes(c->entries));
		/* a mapped ring cannot change size: use a new file for that */
		if (uf->ring && uf->ring_bytes != bytes)
			return -EBUSY;
		if (!uf->ring) {
			ring = vmalloc_user(bytes);
			if (!ring)
				return -ENOMEM;
			mutex_lock(&uf->ring_lock);
			uf->ring = ring;
			uf->ring_bytes = bytes;
			mutex_unlock(&uf->ring_lock);
		}
	}
	uf->cfg = *c;
	uf->configured = true;
	return 0;
}

static long ur_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct ur_file *uf = file->private_data;
	void __user *uarg = (void __user *)arg;
	struct uringrace_config c;
	struct uringrace_stats st;
	long ret;

	/* user copies in and out happen outside uf->lock (see struct ur_file) */
	switch (cmd) {
	case URINGRACE_IOC_VERSION:
		return ur_ioctl_version(uarg);
	case URINGRACE_IOC_CONFIGURE:
		ret = ur_get_sized(&c, sizeof(c), uarg);
		if (!ret)
			ret = ur_validate(&c);
		if (ret)
			return ret;
		break;
	case URINGRACE_IOC_STATS:
		ret = ur_get_sized(&st, sizeof(st), uarg);
		if (ret)
			return ret;
		memset(&st, 0, sizeof(st));
		st.size = sizeof(st);
		break;
	}

	mutex_lock(&uf->lock);
	switch (cmd) {
	case URINGRACE_IOC_CONFIGURE:
		ret = ur_configure(uf, &c);
		break;
	case URINGRACE_IOC_START:
		ret = ur_start(uf);
		break;
	case URINGRACE_IOC_STOP:
		ret = 0;
		if (uf->box)
			ur_run_stop(uf->box);
		break;
	case URINGRACE_IOC_STATS:
		ret = uf->box ? 0 : -ENODATA;
		if (uf->box)
			ur_fill_stats(&uf->box->run, &st);
		break;
	case URINGRACE_IOC_WAKE:
		ret = uf->box ? 0 : -ENODATA;
		if (uf->box)
			wake_up_all(&uf->box->run.wq);
		break;
	default:
		ret = -ENOTTY;
	}
	mutex_unlock(&uf->lock);
	if (!ret && cmd == URINGRACE_IOC_STATS && copy_to_user(uarg, &st, sizeof(st)))
		ret = -EFAULT;
	return ret;
}

static int ur_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct ur_file *uf = file->private_data;
	unsigned long len = vma->vm_end - vma->vm_start;
	int ret = -EINVAL;

	/* mmap_lock is held: ring_lock only, never uf->lock */
	mutex_lock(&uf->ring_lock);
	if (uf->ring && vma->vm_pgoff < (uf->ring_bytes >> PAGE_SHIFT) &&
	    len <= uf->ring_bytes - (vma->vm_pgoff << PAGE_SHIFT))
		ret = remap_vmalloc_range(vma, uf->ring, vma->vm_pgoff);
	if (!ret && !vma->vm_pgoff)
		uf->uaddr = (void __user *)vma->vm_start;
	mutex_unlock(&uf->ring_lock);
	return ret;
}

/* -1: root only (device 0600); a gid: that group too (device 0660 + check) */
static int group = -1;
module_param(group, int, 0444);
MODULE_PARM_DESC(group, "gid whose members may open /dev/uringrace (default: root only)");

static int ur_open(struct inode *inode, struct file *file)
{
	struct ur_file *uf;

	if (group >= 0 && !capable(CAP_SYS_ADMIN) &&
	    !in_group_p(make_kgid(current_user_ns(), group)))
		return -EPERM;
	uf = kzalloc(sizeof(*uf), GFP_KERNEL);
	if (!uf)
		return -ENOMEM;
	mutex_init(&uf->lock);
	mutex_init(&uf->ring_lock);
	file->private_data = uf;
	return 0;
}

static int ur_release(struct inode *inode, struct file *file)
{
	struct ur_file *uf = file->private_data;

	ur_run_free(uf->box);
	vfree(uf->ring);
	kfree(uf);
	return 0;
}

static const struct file_operations ur_fops = {
	.owner = THIS_MODULE,
	.open = ur_open,
	.release = ur_release,
	.unlocked_ioctl = ur_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = ur_mmap,
};

static struct miscdevice ur_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "uringrace",
	.fops = &ur_fops,
	.mode = 0600,	/* ur_init() opens it to the group module parameter */
};

/* ---- KCSAN reports, from the console tracepoint ---- */

/*
 * Counts only: which report is whose race is decided in user space, on both
 * accesses, from the whole report (one console line reaches us at a time).
 */
static void ur_probe_console(void *ignore, const char *buf, size_t len)
{
	struct ur_run_box *box;
	unsigned long flags;

	if (!strnstr(buf, "BUG: KCSAN: ", len))
		return;
	/* never spin here: a report printed under the lock would deadlock */
	if (!spin_trylock_irqsave(&ur_runs_lock, flags))
		return;
	list_for_each_entry(box, &ur_runs, node)
		if (atomic_read(&box->run.workers_live))
			atomic64_inc(&box->run.kcsan_reports);
	spin_unlock_irqrestore(&ur_runs_lock, flags);
}

static void ur_find_console_tp(struct tracepoint *tp, void *priv)
{
	if (!strcmp(tp->name, "console"))
		*(struct tracepoint **)priv = tp;
}

/* ---- debugfs: every run still held by an open file ---- */

static int ur_stats_show(struct seq_file *m, void *v)
{
	struct uringrace_stats st;
	struct ur_run_box *box;
	unsigned int i;

	spin_lock_irq(&ur_runs_lock);
	list_for_each_entry(box, &ur_runs, node) {
		ur_fill_stats(&box->run, &st);
		seq_printf(m, "run %u scenario %s variant %s mode %u running %u ops %llu",
			   box->id, ur_scenarios[box->run.cfg.scenario].name,
			   ur_fixed(&box->run) ? "fixed" : "buggy",
			   box->run.cfg.mode, st.running, st.ops);
		for (i = 0; i < URINGRACE_AN_MAX; i++)
			seq_printf(m, " %s %llu", ur_anomaly_names[i], st.anomalies[i]);
		seq_printf(m, " kcsan %llu\n", st.kcsan_reports);
	}
	spin_unlock_irq(&ur_runs_lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ur_stats);

/*
 * "id name anomaly race..." per scenario: the anomaly its own detector
 * counts, and the race signatures its KCSAN reports match
 */
static int ur_scenarios_show(struct seq_file *m, void *v)
{
	const char *const *r;
	unsigned int i;

	for (i = 1; i < URINGRACE_SC_MAX; i++) {
		seq_printf(m, "%u %s %s", i, ur_scenarios[i].name,
			   ur_scenarios[i].anomaly == URINGRACE_AN_NONE ? "none" :
			   ur_anomaly_names[ur_scenarios[i].anomaly]);
		for (r = ur_scenarios[i].sc->races; *r; r++)
			seq_printf(m, " %s", *r);
		seq_putc(m, '\n');
	}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ur_scenarios);

static int __init ur_init(void)
{
	int ret;

	if (group >= 0)
		ur_misc.mode = 0666;	/* ur_open() admits root and the group */
	for_each_kernel_tracepoint(ur_find_console_tp, &ur_console_tp);
	if (ur_console_tp &&
	    tracepoint_probe_register(ur_console_tp, ur_probe_console, NULL))
		ur_console_tp = NULL;
	ret = misc_register(&ur_misc);
	if (ret)
		goto err_tp;
	ur_debugfs = debugfs_create_dir("uringrace", NULL);
	debugfs_create_file("stats", 0444, ur_debugfs, NULL, &ur_stats_fops);
	debugfs_create_file("scenarios", 0444, ur_debugfs, NULL, &ur_scenarios_fops);
	pr_info("loaded, api %u, KCSAN report probe %s\n", URINGRACE_API_VERSION,
		ur_console_tp ? "on" : "off");
	return 0;

err_tp:
	if (ur_console_tp) {
		tracepoint_probe_unregister(ur_console_tp, ur_probe_console, NULL);
		tracepoint_synchronize_unregister();
	}
	return ret;
}

static void __exit ur_exit(void)
{
	debugfs_remove_recursive(ur_debugfs);
	misc_deregister(&ur_misc);
	if (ur_console_tp) {
		tracepoint_probe_unregister(ur_console_tp, ur_probe_console, NULL);
		tracepoint_synchronize_unregister();
	}
	pr_info("unloaded\n");
}

module_init(ur_init);
module_exit(ur_exit);
MODULE_DESCRIPTION("uringrace: io_uring shared-memory protocol race scenarios");
MODULE_LICENSE("GPL");
