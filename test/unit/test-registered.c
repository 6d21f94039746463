// SPDX-License-Identifier: MIT
/*
 * task_check_registered() and uffd_probe_registered() against a real uffd of this
 * process: a range in a VMA registered for missing faults passes and no page appears
 * there; a range in an unregistered VMA, one running past the registered VMA's end and
 * one in unmapped memory are each a mismatch. Skips (77) where no uffd can be had.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../lazy-pages/pagesize.h"
#include "../../lazy-pages/task.h"
#include "../../lazy-pages/uffd.h"
#include "tu.h"

#define NP 16

static int open_uffd(void)
{
	struct uffdio_api api = {.api = UFFD_API};
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev < 0)
			return -1;
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
		if (fd < 0)
			return -1;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		close(fd);
		return -1;
	}
	return fd;
}

static unsigned int resident(const uint8_t *p, size_t n)
{
	unsigned char vec[NP];
	unsigned int i, c = 0;

	if (mincore((void *)p, n * PAGE_SZ, vec))
		return ~0U;
	for (i = 0; i < n; i++)
		c += vec[i] & 1;
	return c;
}

/* One image VMA and one lazy entry over [START, START + N pages), checked against UFFD. */
static int check(int uffd, uint64_t start, uint64_t n)
{
	struct crimg_vma vma = {.start = start, .end = start + n * PAGE_SZ, .flags = 0x22, .lazy = true};
	struct crimg_pme pme = {.vaddr = start, .nr_pages = n, .flags = CRIMG_PE_LAZY | CRIMG_PE_PRESENT};
	struct crimg_task it = {.pid = 1, .nr_vmas = 1, .vmas = &vma, .nr_pmes = 1, .pmes = &pme};
	struct lazy_task t = {.vpid = 1, .host_pid = getpid(), .uffd = uffd, .img = &it};
	int ret;

	CHECK_EQ(task_init_ranges(&t), 0);
	ret = task_check_registered(&t, "/images");
	task_free_ranges(&t);
	return ret;
}

int main(void)
{
	uint8_t *reg, *unreg, *hole;
	struct uffdio_register r = {.mode = UFFDIO_REGISTER_MODE_MISSING};
	int uffd = open_uffd(), err;

	if (uffd < 0) {
		printf("no userfaultfd here: %s\n", strerror(errno));
		return T_SKIP;
	}
	/* Three neighbours: registered, unregistered, and a hole where a third was. */
	reg = mmap(NULL, 3 * NP * PAGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(reg != MAP_FAILED);
	if (reg == MAP_FAILED)
		return tu_done();
	unreg = reg + NP * PAGE_SZ;
	hole = unreg + NP * PAGE_SZ;
	CHECK_EQ(munmap(hole, NP * PAGE_SZ), 0);
	r.range.start = (uint64_t)(uintptr_t)reg;
	r.range.len = NP * PAGE_SZ;
	if (ioctl(uffd, UFFDIO_REGISTER, &r)) {
		printf("cannot register anonymous memory: %s\n", strerror(errno));
		return T_SKIP;
	}

	CHECK_EQ(uffd_probe_registered(uffd, (uintptr_t)reg, &err), UFFD_OK);
	CHECK_EQ(uffd_probe_registered(uffd, (uintptr_t)(reg + (NP - 1) * PAGE_SZ), &err), UFFD_OK);
	CHECK_EQ(uffd_probe_registered(uffd, (uintptr_t)unreg, &err), UFFD_NOENT);
	CHECK_EQ(uffd_probe_registered(uffd, (uintptr_t)hole, &err), UFFD_NOENT);

	CHECK_EQ(check(uffd, (uintptr_t)reg, NP), 0);
	CHECK_EQ(check(uffd, (uintptr_t)(reg + PAGE_SZ), 2), 0);
	/* The probes copied nothing: reading a page now would wait for a monitor. */
	CHECK_EQ(resident(reg, NP), 0);
	CHECK_EQ(check(uffd, (uintptr_t)unreg, NP), -EINVAL);
	CHECK_EQ(check(uffd, (uintptr_t)(reg + PAGE_SZ), NP), -EINVAL); /* runs past the end */
	CHECK_EQ(check(uffd, (uintptr_t)hole, NP), -EINVAL);

	close(uffd);
	return tu_done();
}
