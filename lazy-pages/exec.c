// SPDX-License-Identifier: MIT
/*
 * The executor: copies into a task's uffd, and the meaning of every result, decided here
 * and nowhere else (contract in loop.h). The other parts of the loop plan, call in, and
 * do what exec_settle says; they ask a copy result only whether it went through.
 */
#include <errno.h>
#include <string.h>

#include "loop.h"
#include "lazy_pages.h"
#include "source.h"
#include "uffd.h"

/*
 * Copy pages [k, k + n) of range RI of T from DATA. Ranges may be reallocated by the
 * caller between calls, never during one.
 */
enum copy_res exec_copy_run(struct daemon *d, struct lazy_task *t, size_t ri, uint64_t k, uint64_t n,
			      const uint8_t *data, uint64_t *copied)
{
	struct lazy_range *r = &t->ranges[ri];

	uint64_t limit = n; /* pages per UFFDIO_COPY: 1 after ENOENT, to find where it stops */

	*copied = 0;
	while (n) {
		uint64_t done, pages;
		enum uffd_res res;
		int err = 0;

		res = uffd_copy_mode(t->uffd, r->start + (k << PAGE_SHIFT), data, (n < limit ? n : limit) << PAGE_SHIFT,
				     !d->defer_wake, &done, &err);
		if (d->defer_wake && done) {
			uint64_t a = r->start + (k << PAGE_SHIFT);

			if (a < d->wake_lo)
				d->wake_lo = a;
			if (a + done > d->wake_hi)
				d->wake_hi = a + done;
		}
		pages = done >> PAGE_SHIFT;
		task_mark_done(t, r, k, pages);
		*copied += pages;
		t->st.bytes += done;
		t->st.bytes_path[d->path] += done;
		k += pages;
		n -= pages;
		data += done;
		switch (res) {
		case UFFD_OK:
			break;
		case UFFD_EXISTS:
			/* Already mapped (by us, or inherited): never overwrite it. */
			task_mark_done(t, r, k, 1);
			k++;
			n--;
			data += PAGE_SZ;
			break;
		case UFFD_RETRY:
			if (pages)
				break;
			return COPY_RETRY;
		case UFFD_NOENT:
			/*
			 * A copy must stay inside one VMA, and an mprotect() or madvise() of part
			 * of a VMA after the restore splits it: retry page by page, so that only
			 * a page that really is no longer registered is given up.
			 */
			if (limit > 1) {
				limit = 1;
				break;
			}
			return COPY_NOENT;
		case UFFD_GONE:
			return COPY_GONE;
		case UFFD_FAILED:
			pr_err("UFFDIO_COPY of %llu pages at 0x%llx into task %d: %s", (unsigned long long)n,
			       (unsigned long long)(r->start + (k << PAGE_SHIFT)), t->vpid, strerror(err));
			return COPY_FAILED;
		}
	}
	return COPY_OK;
}

/* Copy pages [k, k + n) of range RI of T from the image's pages files. */
enum copy_res exec_copy(struct daemon *d, struct lazy_task *t, size_t ri, uint64_t k, uint64_t n,
				uint64_t *copied)
{
	*copied = 0;
	while (n) {
		struct lazy_range *r = &t->ranges[ri];
		const void *data;
		uint64_t run, c;
		enum copy_res res;

		if (source_get(d->src, t->img, r->img_start + (k << PAGE_SHIFT), n, &data, &run))
			return COPY_FAILED;
		res = exec_copy_run(d, t, ri, k, run, data, &c);
		source_put(d->src, data, run);
		*copied += c;
		if (res != COPY_OK)
			return res;
		k += run;
		n -= run;
	}
	return COPY_OK;
}

/*
 * PAGE was unmapped or moved away while its fault waited. The kernel does not wake such
 * a waiter by itself: woken, the thread faults again where the memory is now (a new
 * fault for us) or gets the SIGSEGV of an unmapped address, as it would without a uffd.
 */
static enum copy_res wake_unregistered(struct lazy_task *t, uint64_t page)
{
	int err = 0;

	switch (uffd_wake(t->uffd, page, PAGE_SZ, &err)) {
	case UFFD_OK:
	case UFFD_NOENT:
	case UFFD_EXISTS:
		return COPY_OK;
	case UFFD_GONE:
		return COPY_GONE;
	default:
		pr_err("UFFDIO_WAKE at 0x%llx in task %d: %s", (unsigned long long)page, t->vpid, strerror(err));
		return COPY_FAILED;
	}
}

/* PAGE is no longer registered: out of T's lazy ranges, and its waiter woken. */
static enum copy_res drop_page(struct lazy_task *t, uint64_t page)
{
	pr_debug("task %d: 0x%llx is no longer registered; dropping it", t->vpid, (unsigned long long)page);
	if (task_drop(t, page, page + PAGE_SZ))
		return COPY_FAILED;
	return wake_unregistered(t, page);
}

/*
 * Handle a fault on PAGE, which has no lazy data: map zero pages at PAGE and the N - 1
 * after it (a hole's neighbours, which read as zero too), or, if PAGE is present already
 * (copied meanwhile, or a second thread's fault on it), just wake the faulting thread.
 */
enum copy_res exec_zero(struct lazy_task *t, uint64_t page, uint64_t n)
{
	uint64_t done;
	int err = 0;
	enum uffd_res res;

	res = uffd_zero(t->uffd, page, n << PAGE_SHIFT, &done, &err);
	if (done) {
		/* The faulting page is the first: the rest stopped at a present page or the like. */
		t->st.pages_zero += done >> PAGE_SHIFT;
		return COPY_OK;
	}
	switch (res) {
	case UFFD_OK:
		return COPY_OK;
	case UFFD_EXISTS:
		switch (uffd_wake(t->uffd, page, PAGE_SZ, &err)) {
		case UFFD_OK:
		case UFFD_NOENT:
			return COPY_OK;
		case UFFD_GONE:
			return COPY_GONE;
		default:
			break;
		}
		pr_err("UFFDIO_WAKE at 0x%llx in task %d: %s", (unsigned long long)page, t->vpid, strerror(err));
		return COPY_FAILED;
	case UFFD_RETRY:
		return COPY_RETRY;
	case UFFD_NOENT:
		/* N pages crossed the end of the VMA: the faulting page alone then. */
		if (n > 1)
			return exec_zero(t, page, 1);
		return wake_unregistered(t, page);
	case UFFD_GONE:
		return COPY_GONE;
	case UFFD_FAILED:
		break;
	}
	pr_err("UFFDIO_ZEROPAGE at 0x%llx in task %d: %s", (unsigned long long)page, t->vpid, strerror(err));
	return COPY_FAILED;
}

bool exec_ends_task(enum copy_res res)
{
	return res == COPY_GONE || res == COPY_FAILED;
}

enum exec_next exec_settle(struct daemon *d, struct lazy_task *t, enum copy_res res, uint64_t page,
			   enum exec_who who)
{
	switch (res) {
	case COPY_OK:
		return EXEC_GO_ON;
	case COPY_QUEUED:
		return EXEC_QUEUED;
	case COPY_RETRY:
		/* A fault is kept by its reader, who reads the events before trying it again. */
		if (who == EXEC_FAULT)
			return EXEC_LATER;
		fault_handle_uffd(d, t);
		return d->failed || t->done ? EXEC_STOP : EXEC_REPLAN;
	case COPY_NOENT:
		/* criu sends a task's uffd before its restorer registers the VMAs. */
		if (who == EXEC_PREFETCH && !d->finished)
			return EXEC_LATER;
		res = drop_page(t, page);
		if (res == COPY_OK)
			return EXEC_REPLAN;
		return exec_settle(d, t, res, page, who);
	case COPY_GONE:
		loop_task_finish(d, t, true);
		return EXEC_STOP;
	case COPY_FAILED:
		break;
	}
	loop_fail(d);
	return EXEC_STOP;
}

enum exec_next exec_settle_at(struct daemon *d, struct lazy_task *t, enum copy_res res, size_t ri, uint64_t k,
			      enum exec_who who)
{
	const struct lazy_range *r;
	uint64_t first;

	if (res != COPY_NOENT)
		return exec_settle(d, t, res, 0, who);
	/* The copy went in order: the page that refused is the first one still pending. */
	r = &t->ranges[ri];
	first = range_next_pending(r, k);
	if (first == r->nr_pages)
		return EXEC_REPLAN;
	return exec_settle(d, t, res, r->start + (first << PAGE_SHIFT), who);
}

bool exec_job_cut_short(const struct copier_job *j)
{
	return j->through < j->len && j->res != UFFD_GONE && j->res != UFFD_FAILED;
}

enum exec_next exec_settle_job(struct daemon *d, struct lazy_task *t, const struct copier_job *j)
{
	if (j->cancelled || j->through >= j->len)
		return EXEC_GO_ON;
	switch (j->res) {
	case UFFD_GONE:
		loop_task_finish(d, t, true);
		return EXEC_STOP;
	case UFFD_FAILED:
		if (j->read_failed)
			pr_err("task %d: reading its profile pages for the copy thread: %s", t->vpid, strerror(j->err));
		else if (j->pieces)
			pr_err("UFFDIO_COPY of profile pages into task %d (copy thread): %s", t->vpid,
			       strerror(j->err));
		else
			pr_err("UFFDIO_COPY of %llu bytes at 0x%llx into task %d (copy thread): %s",
			       (unsigned long long)(j->len - j->through), (unsigned long long)(j->dst + j->through),
			       t->vpid, strerror(j->err));
		loop_fail(d);
		return EXEC_STOP;
	default:
		/*
		 * Pending events, or a page no longer registered: the addresses this job was
		 * planned with may be stale. The loop copies T's next chunk itself, from the
		 * layout as it is after the events, and meets the same cause knowing what to do.
		 */
		t->cp_skip = true;
		return EXEC_REPLAN;
	}
}
