/* SPDX-License-Identifier: MIT */
/*
 * Thin wrappers over the userfaultfd ioctls and event reads, with errno classified once
 * into enum uffd_res: callers decide on a class, never on an errno. Nothing here knows
 * tasks or images.
 */
#ifndef LAZY_UFFD_UFFD_H
#define LAZY_UFFD_UFFD_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/userfaultfd.h>

enum uffd_res {
	UFFD_OK,      /* everything asked for was done */
	UFFD_EXISTS,  /* stopped at a page that is already present */
	UFFD_RETRY,   /* EAGAIN: layout events are pending; read them, then retry */
	UFFD_NOENT,   /* ENOENT: the range is no longer registered (layout changed) */
	UFFD_GONE,    /* ESRCH/ENOSPC: the task's memory is gone (it exited) */
	UFFD_FAILED,  /* anything else: a bug or a broken target */
};

/*
 * Copy LEN bytes from SRC to DST (page aligned) in the task behind UFFD, or map zero
 * pages. *done gets the bytes handled before the result (all of LEN for UFFD_OK).
 */
enum uffd_res uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len, uint64_t *done, int *err);
/* The same; unless WAKE, threads waiting on those pages sleep on until a uffd_wake. */
enum uffd_res uffd_copy_mode(int uffd, uint64_t dst, const void *src, uint64_t len, bool wake, uint64_t *done,
			     int *err);
enum uffd_res uffd_zero(int uffd, uint64_t dst, uint64_t len, uint64_t *done, int *err);
enum uffd_res uffd_wake(int uffd, uint64_t start, uint64_t len, int *err);
/*
 * Whether PAGE lies in a VMA registered with a uffd, without touching memory: UFFD_OK
 * yes, UFFD_NOENT no, UFFD_RETRY layout events are pending (cannot tell), UFFD_GONE the
 * task exited; UFFD_FAILED anything else (*err).
 */
enum uffd_res uffd_probe_registered(int uffd, uint64_t page, int *err);
/* Read up to N messages without blocking: count (0 when none), or -errno. */
int uffd_read_msgs(int uffd, struct uffd_msg *msgs, int n);

#endif
