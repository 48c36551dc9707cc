// SPDX-License-Identifier: GPL-2.0
/*
 * uringrace: re-creations of io_uring's shared-memory protocols, each in a
 * buggy and a fixed variant, driven from /dev/uringrace.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/uaccess.h>

#include <uapi/linux/uringrace.h>

static long ur_ioctl_version(void __user *arg)
{
	struct uringrace_version v = {
		.size = sizeof(v),
		.api = URINGRACE_API_VERSION,
	};
	u32 usize;

	if (get_user(usize, (u32 __user *)arg))
		return -EFAULT;
	if (usize != sizeof(v))
		return -EINVAL;
	if (copy_to_user(arg, &v, sizeof(v)))
		return -EFAULT;
	return 0;
}

static long ur_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	switch (cmd) {
	case URINGRACE_IOC_VERSION:
		return ur_ioctl_version((void __user *)arg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations ur_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = ur_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice ur_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "uringrace",
	.fops = &ur_fops,
	.mode = 0666,
};

static int __init ur_init(void)
{
	int ret = misc_register(&ur_misc);

	if (ret)
		return ret;
	pr_info("loaded, api %u\n", URINGRACE_API_VERSION);
	return 0;
}

static void __exit ur_exit(void)
{
	misc_deregister(&ur_misc);
	pr_info("unloaded\n");
}

module_init(ur_init);
module_exit(ur_exit);
MODULE_DESCRIPTION("uringrace: io_uring shared-memory protocol race scenarios");
MODULE_LICENSE("GPL");
