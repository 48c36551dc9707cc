// SPDX-License-Identifier: GPL-2.0
/*
 * Description: uringrace.ko loads, creates /dev/uringrace, answers the version
 * ioctl with the API this build was compiled against, rejects a wrong struct
 * size and an unknown ioctl, and unloads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/uringrace.h>

#include "kselftest_harness.h"

static const char *module_path(void)
{
	const char *p = getenv("URINGRACE_KO");

	return p ? p : "/lib/modules/uringrace.ko";
}

FIXTURE(dev) {
	int fd;
};

FIXTURE_SETUP(dev)
{
	char cmd[512];

	if (access(URINGRACE_DEV, F_OK)) {
		snprintf(cmd, sizeof(cmd), "insmod %s", module_path());
		ASSERT_EQ(0, system(cmd)) TH_LOG("cannot load %s", module_path());
	}
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
	EXPECT_EQ(sizeof(v), v.size);
}

TEST_F(dev, version_bad_size)
{
	struct uringrace_version v = { .size = sizeof(v) - 4 };

	EXPECT_EQ(-1, ioctl(self->fd, URINGRACE_IOC_VERSION, &v));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(dev, unknown_ioctl)
{
	EXPECT_EQ(-1, ioctl(self->fd, _IO(URINGRACE_IOC_MAGIC, 0x7f), 0));
	EXPECT_EQ(ENOTTY, errno);
}

TEST(unload_and_reload)
{
	char cmd[512];

	if (access(URINGRACE_DEV, F_OK)) {
		snprintf(cmd, sizeof(cmd), "insmod %s", module_path());
		ASSERT_EQ(0, system(cmd));
	}
	ASSERT_EQ(0, system("rmmod uringrace"));
	EXPECT_NE(0, access(URINGRACE_DEV, F_OK));
	snprintf(cmd, sizeof(cmd), "insmod %s", module_path());
	ASSERT_EQ(0, system(cmd));
	EXPECT_EQ(0, access(URINGRACE_DEV, F_OK));
}

TEST_HARNESS_MAIN
