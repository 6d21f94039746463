// SPDX-License-Identifier: MIT
/* Thin wrappers over the userfaultfd ioctls. Every errno the kernel can give is turned
 * into an enum uffd_res here, so callers decide on meaning, not on numbers. */
#include <errno.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "daemon.h"

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
