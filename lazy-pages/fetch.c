// SPDX-License-Identifier: MIT
/*
 * Remote pages (contract in loop.h): a fault asks for its page unless a request that
 * brings it is on its way; background requests are kept in flight up to the source's
 * bound; each answer is copied into every task that still wants those pages (the task
 * that asked and the children it forked since, wherever their ranges are now).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lazy_pages.h"
#include "loop.h"
#include "remote.h"

/* Pages from IMG (dump-time address) up to N that no request covers yet. */
static uint64_t not_requested(struct daemon *d, pid_t vpid, uint64_t img, uint64_t n, bool urgent_only)
{
	uint64_t j;

	for (j = 1; j < n; j++)
		if (remote_find(d->rem, vpid, img + (j << PAGE_SHIFT), urgent_only))
			break;
	return j;
}

/* Every request buffer is busy: the fault at ADDR is served again after an answer. */
static enum copy_res wait_for_buffer(struct daemon *d, struct lazy_task *t, uint64_t addr)
{
	if (d->nr_waiting == d->cap_waiting) {
		size_t cap = d->cap_waiting ? d->cap_waiting * 2 : 64;
		struct pending_fault *w = realloc(d->waiting, cap * sizeof(*w));

		if (!w) {
			pr_err("task %d: out of memory keeping a fault for later", t->vpid);
			return COPY_FAILED;
		}
		d->waiting = w;
		d->cap_waiting = cap;
	}
	d->waiting[d->nr_waiting++] = (struct pending_fault){ .t = t, .addr = addr };
	return COPY_QUEUED;
}

/*
 * A fault on pending page K of R: ask for it (and the pending run after it) unless a
 * request that will bring it is on its way. With the urgent channel only a fault's own
 * request counts: a background one may wait behind others on its connection.
 */
enum copy_res fetch_fault(struct daemon *d, struct lazy_task *t, struct lazy_range *r, uint64_t k)
{
	uint64_t img = r->img_start + (k << PAGE_SHIFT), n;
	bool urgent_only = remote_has_urgent(d->rem);
	struct ps_req *q = remote_find(d->rem, t->vpid, img, urgent_only);
	int ret;

	if (!q) {
		n = range_pending_run(r, k, FAULT_AROUND_PAGES);
		n = not_requested(d, t->vpid, img, n, urgent_only);
		ret = remote_get(d->rem, t->vpid, img, n, true, &q);
		if (ret == -EBUSY)
			return wait_for_buffer(d, t, r->start + (k << PAGE_SHIFT));
		if (ret)
			return COPY_FAILED;
	}
	if (!q->fault_task) {
		q->fault_task = t;
		q->fault_ns = loop_now_ns();
	}
	return COPY_QUEUED;
}

/*
 * Copy an answer into every task that still wants those pages: the task that asked, and
 * the children it forked since (same vpid, same dump-time addresses), wherever their
 * ranges are now. Layout events met on the way are handled and the copy retried.
 */
static void deliver_to(struct daemon *d, struct lazy_task *t, const struct ps_req *q)
{
	uint64_t a0 = q->img_addr, a1 = q->img_addr + (q->got << PAGE_SHIFT);
	unsigned int rounds = 0;
	size_t ri;

again:
	for (ri = 0; !t->done && ri < t->nr_ranges; ri++) {
		struct lazy_range *r = &t->ranges[ri];
		uint64_t r0 = r->img_start, r1 = r0 + (r->nr_pages << PAGE_SHIFT);
		uint64_t lo = a0 > r0 ? a0 : r0, hi = a1 < r1 ? a1 : r1, k, kend;

		if (lo >= hi || !r->nr_pending)
			continue;
		kend = (hi - r0) >> PAGE_SHIFT;
		for (k = range_next_pending(r, (lo - r0) >> PAGE_SHIFT); k < kend;
		     k = range_next_pending(r, k)) {
			uint64_t n = range_pending_run(r, k, kend - k), copied;
			enum copy_res res;

			d->path = q->urgent ? PATH_FAULT : PATH_BG;
			res = exec_copy_run(d, t, ri, k, n, q->data + (r0 + (k << PAGE_SHIFT) - a0), &copied);
			if (q->urgent)
				t->st.pages_fault += copied;
			else
				t->st.pages_bg += copied;
			switch (exec_settle_at(d, t, res, ri, k, EXEC_BG)) {
			case EXEC_GO_ON:
			case EXEC_QUEUED:
				k += n;
				continue;
			case EXEC_REPLAN:
				/* Events read or a page dropped: the ranges may look different. */
				if (++rounds > 10000)
					goto out;
				goto again;
			case EXEC_LATER:
			case EXEC_STOP:
				break;
			}
			return;
		}
	}
out:
	if (rounds > 10000)
		pr_warn("task %d: pages at 0x%llx kept meeting layout changes; they will be asked for again", t->vpid,
			(unsigned long long)a0);
	if (d->finished && !t->done && !t->nr_pending)
		loop_task_finish(d, t, false);
}

static void deliver(struct daemon *d, struct ps_req *q)
{
	uint64_t before = 0, after = 0;
	size_t i;

	for (i = 0; i < d->nr_tasks && !d->failed; i++) {
		struct lazy_task *t = d->tasks[i];

		if (t->vpid != q->vpid || t->done)
			continue;
		before += t->st.pages_fault + t->st.pages_bg;
		deliver_to(d, t, q);
		after += t->st.pages_fault + t->st.pages_bg;
	}
	if (after == before)
		d->dup_pages += q->got;
	if (q->fault_task)
		stats_add_latency(&q->fault_task->st, loop_now_ns() - q->fault_ns);
}

static void report_remote_failure(struct daemon *d)
{
	uint64_t pending = 0;
	size_t i, nt = 0, nreq;
	char inflight[512];

	for (i = 0; i < d->nr_tasks; i++)
		if (!d->tasks[i]->done && d->tasks[i]->nr_pending) {
			pending += d->tasks[i]->nr_pending;
			nt++;
		}
	nreq = remote_describe_inflight(d->rem, inflight, sizeof(inflight));
	pr_err("page server %s: %llu lazy pages of %zu tasks cannot be served; %zu requests were unanswered%s%s",
	       remote_peer(d->rem), (unsigned long long)pending, nt, nreq, nreq ? ": " : "", inflight);
}

/* Take every answer that has come in; on failure of the source, loop_fail the restore. */
void fetch_drain(struct daemon *d)
{
	bool bulk = false;

	/*
	 * Every fault's answer that is in, but at most one background answer (a 1 MiB copy)
	 * per call: then back to the uffds, so a fault waits behind one at the most. The
	 * source signals its eventfd again while answers remain.
	 */
	while (!bulk) {
		struct ps_req *q, rest;
		int ret = remote_next(d->rem, &q);

		if (ret < 0) {
			report_remote_failure(d);
			loop_fail(d);
			return;
		}
		if (!ret)
			break;
		pr_debug("got %llu of %llu pages at 0x%llx of task %d%s", (unsigned long long)q->got,
			 (unsigned long long)q->nr_pages, (unsigned long long)q->img_addr, q->vpid,
			 q->urgent ? " (fault)" : "");
		bulk = !q->urgent;
		deliver(d, q);
		rest = *q;
		remote_release(d->rem, q);
		if (d->failed)
			return;
		/* A short answer (the server cut at its buffer's end): ask for the rest. */
		if (rest.got < rest.nr_pages) {
			uint64_t a = rest.img_addr + (rest.got << PAGE_SHIFT);
			size_t i;

			for (i = 0; i < d->nr_tasks; i++) {
				struct lazy_task *t = d->tasks[i];
				ssize_t ri;

				if (t->vpid != rest.vpid || t->done)
					continue;
				for (ri = 0; ri < (ssize_t)t->nr_ranges; ri++) {
					struct lazy_range *r = &t->ranges[ri];
					uint64_t k;

					if (a < r->img_start || a >= r->img_start + (r->nr_pages << PAGE_SHIFT))
						continue;
					k = (a - r->img_start) >> PAGE_SHIFT;
					if (range_page_pending(r, k) && rest.urgent)
						fetch_fault(d, t, r, k);
					break;
				}
			}
		}
	}
	/* Faults that found no free buffer before. */
	while (d->nr_waiting && !d->failed) {
		struct pending_fault w = d->waiting[--d->nr_waiting];
		size_t before = d->nr_waiting;
		enum copy_res res;

		if (w.t->done)
			continue;
		res = fault_serve(d, w.t, w.addr);
		if (exec_settle(d, w.t, res, w.addr, EXEC_FAULT) == EXEC_LATER) {
			/* Events pending on its uffd: read them, then this fault goes first again. */
			fault_handle_uffd(d, w.t);
			if (!d->failed && !w.t->done)
				exec_settle(d, w.t, wait_for_buffer(d, w.t, w.addr), w.addr, EXEC_FAULT);
			break;
		}
		if (d->nr_waiting > before)
			break; /* still no buffer: wait for the next answer */
	}
}

/*
 * The next background request in R of task T: 1 if one went out, 0 if all R lacks is on
 * its way, -1 if it could not be sent.
 */
static int remote_bg_range(struct daemon *d, struct lazy_task *t, struct lazy_range *r, unsigned int max)
{
	uint64_t k = range_next_pending(r, 0);

	while (k < r->nr_pages) {
		uint64_t img = r->img_start + (k << PAGE_SHIFT), n;
		struct ps_req *q = remote_find(d->rem, t->vpid, img, false), *nq;

		if (q) {
			uint64_t end = q->img_addr + (q->nr_pages << PAGE_SHIFT);

			k = range_next_pending(r, (end - r->img_start) >> PAGE_SHIFT);
			continue;
		}
		n = range_pending_run(r, k, max);
		n = not_requested(d, t->vpid, img, n, false);
		return remote_get(d->rem, t->vpid, img, n, false, &nq) ? -1 : 1;
	}
	return 0;
}

/*
 * The next request for one of T's small ranges, no bigger than one request: stacks,
 * heaps, libraries' data. A resumed program touches them first, and on one connection
 * a fault on them would wait behind the bulk requests ahead of it.
 */
static bool remote_bg_small(struct daemon *d, struct lazy_task *t)
{
	unsigned int max = remote_bulk_pages(d->rem);
	size_t ri;
	int ret;

	for (ri = 0; ri < t->nr_ranges; ri++) {
		struct lazy_range *r = &t->ranges[ri];

		if (!r->nr_pending || r->nr_pages > max)
			continue;
		ret = remote_bg_range(d, t, r, max);
		if (ret)
			return ret > 0;
	}
	return false;
}

/* The next background request for task T, or false if all it lacks is on its way. */
static bool remote_bg_task(struct daemon *d, struct lazy_task *t)
{
	unsigned int max = remote_bulk_pages(d->rem);
	size_t ri;
	int ret;

	while (t->bg_range < t->nr_ranges && !t->ranges[t->bg_range].nr_pending)
		t->bg_range++;
	for (ri = t->bg_range; ri < t->nr_ranges; ri++) {
		if (!t->ranges[ri].nr_pending)
			continue;
		ret = remote_bg_range(d, t, &t->ranges[ri], max);
		if (ret)
			return ret > 0;
	}
	return false;
}

/* Keep the background requests in flight up to the bound; true if one was sent. */
bool fetch_background(struct daemon *d)
{
	bool sent = false;
	size_t tried = 0;

	/* Every task's small ranges first, then the rest in address order. */
	while (remote_bulk_slot(d->rem) && d->bg_small < d->nr_tasks) {
		struct lazy_task *t = d->tasks[d->bg_small];

		if (!t->done && t->nr_pending && remote_bg_small(d, t)) {
			sent = true;
			continue;
		}
		d->bg_small++;
	}
	while (remote_bulk_slot(d->rem) && tried < d->nr_tasks) {
		struct lazy_task *t = d->tasks[d->bg_task % d->nr_tasks];

		if (!t->done && t->nr_pending && remote_bg_task(d, t)) {
			sent = true;
			tried = 0;
			continue; /* the same task again: its next run */
		}
		d->bg_task = (d->bg_task + 1) % d->nr_tasks;
		tried++;
	}
	return sent;
}
