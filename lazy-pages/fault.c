// SPDX-License-Identifier: MIT
/*
 * A task's uffd messages (contract in loop.h): faults served as they are read, local ones
 * copied with an adaptive fault-around, remote ones asked of the page server; forks and
 * layout events followed in the task's ranges. A fault that meets pending events is kept
 * and tried again once they are read; every result is settled by exec.c.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copier.h"
#include "lazy_pages.h"
#include "loop.h"
#include "uffd.h"

#define MSGS_PER_READ 64

/*
 * A fault on a page with nothing to copy: copied already (N is 1: a wake-up), or outside
 * lazy data, where N zero pages go in. Counted as a zero fault if it mapped any.
 */
static enum copy_res serve_absent(struct daemon *d, struct lazy_task *t, uint64_t page, uint64_t n)
{
	uint64_t zeros = t->st.pages_zero;
	enum copy_res res = exec_zero(t, page, n);

	if (res != COPY_OK)
		return res; /* counted when it is retried, or moot */
	if (t->st.pages_zero != zeros)
		t->st.faults_zero++;
	else
		t->st.faults_present++;
	return res;
}

/*
 * A fault outside lazy data: memory the program had not touched (or had dropped) before
 * the dump, and now writes, as a heap grows. Zero its neighbours in the hole too, with a
 * window that doubles while such faults come in address order, as for copies: a program
 * filling fresh memory then takes one round trip per window instead of one per page.
 */
static enum copy_res serve_hole(struct daemon *d, struct lazy_task *t, uint64_t page)
{
	uint64_t n;
	enum copy_res res;

	t->zero_around = plan_hole_window(t, page);
	n = task_hole_pages(t, page, t->zero_around);
	res = serve_absent(d, t, page, n ? n : 1);
	if (res == COPY_OK)
		t->zero_next = page + (n << PAGE_SHIFT);
	return res;
}

/*
 * --record-profile: the faulting page, and on a sequential fault the pages between the
 * previous fault and this one too (its fault-around, which the task evidently read, or it
 * would not be here). A random fault's fault-around is left out: mostly never touched, it
 * would make the prefetch of a scattered hot set several times larger than the set.
 */
static void record_fault(struct daemon *d, struct lazy_task *t, uint64_t img, bool seq)
{
	int ret = 0;

	if (seq && img > t->seq_prev_img && img - t->seq_prev_img <= (FAULT_AROUND_MAX << PAGE_SHIFT) &&
	    img - t->seq_prev_img > PAGE_SZ)
		ret = profile_add(d->rec, t->vpid, t->seq_prev_img + PAGE_SZ,
				  (uint32_t)((img - t->seq_prev_img - PAGE_SZ) >> PAGE_SHIFT));
	if (!ret)
		ret = profile_add(d->rec, t->vpid, img, 1);
	if (ret && !d->rec_full) {
		pr_warn("--record-profile: %s; the profile stops here", strerror(-ret));
		d->rec_full = true;
	}
}

/* Is dump-time page IMG among T's profile pages? */
static bool in_profile(const struct lazy_task *t, uint64_t img)
{
	size_t lo = 0, hi = t->pf_nr_sorted;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct profile_rec *p = &t->pf_sorted[mid];

		if (img < p->img_addr)
			hi = mid;
		else if (img >= p->img_addr + ((uint64_t)p->nr_pages << PAGE_SHIFT))
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

enum copy_res fault_serve(struct daemon *d, struct lazy_task *t, uint64_t addr)
{
	uint64_t page = addr & ~(PAGE_SZ - 1), k, n, copied;
	ssize_t ri = task_find(t, page);
	bool seq;
	struct lazy_range *r;
	enum copy_res res;

	if (ri < 0)
		return serve_hole(d, t, page);
	r = &t->ranges[ri];
	k = (page - r->start) >> PAGE_SHIFT;
	if (!range_page_pending(r, k))
		return serve_absent(d, t, page, 1);
	if (d->rem) {
		t->st.faults_queued++;
		return fetch_fault(d, t, r, k);
	}
	t->around = plan_fault_window(t, page, d->rec, &seq);
	n = range_pending_run(r, k, t->around);
	d->path = PATH_AROUND;
	/*
	 * The faulting page alone first, read and copied (its thread woken) before the rest
	 * of the run is read: the thread waits for one page, not for the fault-around.
	 */
	res = exec_copy(d, t, ri, k, 1, &copied);
	/*
	 * Present, though pending here: the copy thread's job put it in and wakes its span
	 * only when the job ends. Woken now, and counted as already present.
	 */
	if (res == COPY_OK && !copied)
		return serve_absent(d, t, page, 1);
	if (res == COPY_OK && n > 1) {
		uint64_t more;
		enum copy_res rest = exec_copy(d, t, ri, k + 1, n - 1, &more);

		copied += more;
		/*
		 * The fault is served. Pending layout events or an unregistered page in the
		 * rest of the run are met again by whatever copies those pages next; passing
		 * them on would retry (and count) a fault already answered, or drop its page.
		 */
		if (exec_ends_task(rest))
			res = rest;
	}
	/* Not copied: retried after the events, or the page was dropped (exec_settle). */
	if (copied) {
		t->st.faults_copied++;
		/* The run starts at the faulting page: its bytes are the fault's own. */
		t->st.bytes_path[PATH_AROUND] -= PAGE_SZ;
		t->st.bytes_path[PATH_FAULT] += PAGE_SZ;
		t->st.pages_around += copied - 1;
		if (t->pf_nr_sorted && in_profile(t, r->img_start + (k << PAGE_SHIFT)))
			t->st.prefetch_misses++;
		if (d->rec && !t->parent_vpid)
			record_fault(d, t, r->img_start + (k << PAGE_SHIFT), seq);
	}
	t->seq_next = page + (n << PAGE_SHIFT);
	t->seq_prev_img = r->img_start + (k << PAGE_SHIFT);
	t->st.pages_fault += copied;
	return res;
}

static int on_fork(struct daemon *d, struct lazy_task *parent, int uffd)
{
	struct lazy_task *c = calloc(1, sizeof(*c));
	int ret;

	if (!c) {
		close(uffd);
		return -ENOMEM;
	}
	c->vpid = parent->vpid; /* its pages are looked up in the parent's image */
	c->parent_vpid = parent->vpid;
	c->uffd = uffd;
	c->pidfd = -1;
	c->fork_parent = parent;
	c->sid = parent->sid;
	c->img = parent->img;
	ret = task_clone_ranges(c, parent);
	if (!ret)
		ret = loop_add_task(d, c);
	if (ret) {
		pr_err("cannot track the child forked by task %d: %s", parent->vpid, strerror(-ret));
		task_free_ranges(c);
		close(uffd);
		free(c);
		return ret;
	}
	d->nr_unclaimed++;
	d->next_claim_ns = 0;
	pr_info("task %d forked; its child gets %llu lazy pages", parent->vpid, (unsigned long long)c->nr_pending);
	return 0;
}

/*
 * Faults that met pending layout events are kept here and retried after reading them.
 * Never bounded: a dropped fault outside lazy data is answered by nothing else.
 */
struct deferred {
	uint64_t *addr;
	size_t nr, cap;
};

static int defer(struct deferred *df, uint64_t addr)
{
	if (df->nr == df->cap) {
		size_t cap = df->cap ? df->cap * 2 : MSGS_PER_READ;
		uint64_t *n = realloc(df->addr, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		df->addr = n;
		df->cap = cap;
	}
	df->addr[df->nr++] = addr;
	return 0;
}

/* A layout event or a fork: COPY_OK, or COPY_FAILED (logged). */
static enum copy_res handle_event(struct daemon *d, struct lazy_task *t, const struct uffd_msg *m)
{
	int ret = 0;

	switch (m->event) {
	case UFFD_EVENT_FORK:
		ret = on_fork(d, t, (int)m->arg.fork.ufd);
		break;
	case UFFD_EVENT_REMAP:
		pr_debug("task %d: remap 0x%llx -> 0x%llx (%llu bytes)", t->vpid,
			 (unsigned long long)m->arg.remap.from, (unsigned long long)m->arg.remap.to,
			 (unsigned long long)m->arg.remap.len);
		ret = task_remap(t, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len);
		break;
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		/* Removed pages read as zero from now on, unmapped ones are gone: neither is lazy. */
		pr_debug("task %d: %s 0x%llx-0x%llx", t->vpid, m->event == UFFD_EVENT_REMOVE ? "remove" : "unmap",
			 (unsigned long long)m->arg.remove.start, (unsigned long long)m->arg.remove.end);
		ret = task_drop(t, m->arg.remove.start, m->arg.remove.end);
		break;
	default:
		pr_warn("task %d: unknown uffd event 0x%x ignored", t->vpid, m->event);
		break;
	}
	if (ret) {
		pr_err("task %d: cannot follow a layout change: %s", t->vpid, strerror(-ret));
		return COPY_FAILED;
	}
	return COPY_OK;
}

/*
 * What RES, the outcome of a fault at ADDR (or of an event), leaves to do: a fault that
 * met pending events is kept in LATER; T0, a fault's arrival, times one answered now.
 * -1 when T is no longer served (finished, or the daemon failed).
 */
static int settle_msg(struct daemon *d, struct lazy_task *t, uint64_t addr, enum copy_res res, uint64_t t0,
		      struct deferred *later)
{
	switch (exec_settle(d, t, res, addr & ~(PAGE_SZ - 1), EXEC_FAULT)) {
	case EXEC_GO_ON:
		if (t0)
			stats_add_latency(&t->st, loop_now_ns() - t0);
		return 0;
	case EXEC_QUEUED: /* timed when its answer is copied */
	case EXEC_REPLAN:
		return 0;
	case EXEC_LATER:
		if (!defer(later, addr))
			return 0;
		pr_err("task %d: out of memory keeping a fault for later", t->vpid);
		loop_fail(d);
		return -1;
	case EXEC_STOP:
		break;
	}
	return -1;
}

/*
 * The rest of a batch whose task is gone or failed: its FORK messages carry uffds of
 * children that live on (and an fd the read installed in us), so those are still taken
 * up; everything else of that task no longer matters.
 */
static void batch_forks(struct daemon *d, struct lazy_task *t, const struct uffd_msg *msgs, int from, int n)
{
	int i;

	for (i = from; i < n; i++)
		if (msgs[i].event == UFFD_EVENT_FORK && on_fork(d, t, (int)msgs[i].arg.fork.ufd))
			loop_fail(d);
}

/* Read and handle every message queued on T's uffd, retrying faults that met EAGAIN. */
void fault_handle_uffd(struct daemon *d, struct lazy_task *t)
{
	struct uffd_msg msgs[MSGS_PER_READ];
	struct deferred df = { 0 }, again = { 0 };
	unsigned int spins = 0;
	enum copy_res res;
	int n, i;

	for (;;) {
		bool held = copier_read_lock(d->cp, t);

		n = uffd_read_msgs(t->uffd, msgs, MSGS_PER_READ);
		if (held) {
			bool layout = false;

			for (i = 0; i < n; i++)
				layout |= msgs[i].event != UFFD_EVENT_PAGEFAULT;
			copier_read_unlock(d->cp, t, layout);
		}
		if (n < 0) {
			pr_err("reading the uffd of task %d: %s", t->vpid, strerror(-n));
			loop_fail(d);
			goto out;
		}
		for (i = 0; i < n; i++) {
			const struct uffd_msg *m = &msgs[i];
			uint64_t t0 = 0, addr = 0;

			if (m->event == UFFD_EVENT_PAGEFAULT) {
				t0 = d->last_fault_ns = loop_now_ns();
				addr = m->arg.pagefault.address;
				t->st.faults++;
				res = fault_serve(d, t, addr);
			} else {
				res = handle_event(d, t, m);
			}
			/* Forks later in the batch: children that live on, whatever became of T. */
			if (exec_ends_task(res))
				batch_forks(d, t, msgs, i + 1, n);
			if (settle_msg(d, t, addr, res, t0, &df))
				goto out;
		}
		if (n == MSGS_PER_READ)
			continue;
		if (!df.nr)
			break;
		/* Retry deferred faults; EAGAIN again means an event is still being queued. */
		{
			struct deferred tmp;
			size_t j;

			again.nr = 0;
			for (j = 0; j < df.nr; j++) {
				res = fault_serve(d, t, df.addr[j]);
				if (settle_msg(d, t, df.addr[j], res, 0, &again))
					goto out;
			}
			tmp = df;
			df = again;
			again = tmp;
		}
		if (df.nr && ++spins > 16)
			sched_yield();
	}
	if (d->finished && !t->nr_pending)
		loop_task_finish(d, t, false);
out:
	free(df.addr);
	free(again.addr);
}
