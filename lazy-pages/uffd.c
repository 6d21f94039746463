// SPDX-License-Identifier: MIT
/* Thin wrappers over the userfaultfd ioctls. Every errno the kernel can give is turned
 * into an enum uffd_res here, so callers decide on meaning, not on numbers. */
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pagesize.h"
#include "uffd.h"

static enum uffd_res classify(int e)
{
	switch (e) {
	case EEXIST:
		return UFFD_EXISTS;
	case EAGAIN:
	case EINTR:
		return UFFD_RETRY;
	case ENOENT:
		return UFFD_NOENT;
	case ESRCH:
	case ENOSPC:
		return UFFD_GONE;
	default:
		return UFFD_FAILED;
	}
}

/*
 * COPY and ZEROPAGE report progress in the struct (bytes done, or -errno). After partial
 * progress the ioctl fails with EAGAIN whatever stopped it (an existing page, pending
 * events): the caller retries from *done and learns the real reason then.
 */
static enum uffd_res finish(int ret, int64_t progress, uint64_t len, uint64_t *done, int *err)
{
	int e = errno;

	*done = progress > 0 ? (uint64_t)progress : 0;
	if (*done > len)
		*done = len;
	if (ret == 0 && *done == len)
		return UFFD_OK;
	if (ret == 0)
		e = progress < 0 ? (int)-progress : EAGAIN;
	*err = e;
	return classify(e);
}

enum uffd_res uffd_copy_mode(int uffd, uint64_t dst, const void *src, uint64_t len, bool wake, uint64_t *done,
			     int *err)
{
	struct uffdio_copy c = {
		.dst = dst,
		.src = (uint64_t)(uintptr_t)src,
		.len = len,
		.mode = wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE,
	};
	int ret = ioctl(uffd, UFFDIO_COPY, &c);

	return finish(ret, c.copy, len, done, err);
}

enum uffd_res uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len, uint64_t *done, int *err)
{
	return uffd_copy_mode(uffd, dst, src, len, true, done, err);
}

enum uffd_res uffd_zero(int uffd, uint64_t dst, uint64_t len, uint64_t *done, int *err)
{
	struct uffdio_zeropage z = {
		.range = { .start = dst, .len = len },
		.mode = 0,
	};
	int ret = ioctl(uffd, UFFDIO_ZEROPAGE, &z);

	return finish(ret, z.zeropage, len, done, err);
}

enum uffd_res uffd_wake(int uffd, uint64_t start, uint64_t len, int *err)
{
	struct uffdio_range r = { .start = start, .len = len };

	if (ioctl(uffd, UFFDIO_WAKE, &r) == 0)
		return UFFD_OK;
	*err = errno;
	return classify(errno);
}

/*
 * A copy that asks for write-protection into a VMA registered for missing faults only:
 * the kernel finds the VMA (ENOENT when no registered VMA holds the range, EAGAIN while
 * layout events are unread) and then refuses the mode (EINVAL) before it looks at a
 * page. The source is a PROT_NONE page, so that a VMA registered for write-protect
 * faults too (CRIU never asks for them) gets EFAULT rather than a page of ours. A kernel
 * that refused the mode before the lookup would say EINVAL for every range: the probe
 * then finds nothing wrong, never a false mismatch. Loop thread only.
 */
enum uffd_res uffd_probe_registered(int uffd, uint64_t page, int *err)
{
	static void *no_access = MAP_FAILED;
	struct uffdio_copy c = {
		.dst = page,
		.len = PAGE_SZ,
		.mode = UFFDIO_COPY_MODE_WP | UFFDIO_COPY_MODE_DONTWAKE,
	};

	if (no_access == MAP_FAILED) {
		no_access = mmap(NULL, PAGE_SZ, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (no_access == MAP_FAILED) {
			*err = errno;
			return UFFD_FAILED;
		}
	}
	c.src = (uint64_t)(uintptr_t)no_access;
	*err = 0;
	if (ioctl(uffd, UFFDIO_COPY, &c) == 0)
		return UFFD_OK;
	*err = errno;
	if (errno == EINVAL || errno == EFAULT)
		return UFFD_OK;
	return classify(errno);
}

int uffd_read_msgs(int uffd, struct uffd_msg *msgs, int n)
{
	ssize_t r = read(uffd, msgs, sizeof(*msgs) * n);

	if (r < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		return -errno;
	}
	return r / sizeof(*msgs);
}
