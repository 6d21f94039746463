// SPDX-License-Identifier: MIT
/*
 * Local background population (contract in loop.h): after the finish word, one chunk
 * of the next task with pages left between polls, from the front where population is;
 * with the copy thread, its queue kept full from the same front (the loop's own chunks
 * stop where the thread's begin), and its finished jobs accounted by dump-time address.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>

#include "copier.h"
#include "lazy_pages.h"
#include "loop.h"
#include "source.h"

/*
 * A background span with several runs (pitted by faults or a prefetch) looks for events
 * after this many pages (512 KiB), so a fault does not wait out a whole span.
 */
#define SPAN_CHECK_PAGES PAGES_IN(512 << 10)

/* T's jobs not yet reaped: their spans are the thread's until then. */
static size_t busy_of(struct daemon *d, const struct lazy_task *t, struct plan_busy *busy)
{
	struct copier_job all[COPIER_DEPTH];
	size_t n = d->cp ? copier_in_flight(d->cp, all, COPIER_DEPTH) : 0, i, m = 0;

	for (i = 0; i < n; i++)
		if (all[i].owner == t && !all[i].pieces)
			busy[m++] = (struct plan_busy){ .start = all[i].dst, .len = all[i].len };
	return m;
}

/* T's next background span, left of the thread's. */
static bool next_bg_run(struct daemon *d, const struct lazy_task *t, uint64_t max, struct copy_plan *p)
{
	struct plan_busy busy[COPIER_DEPTH];

	return plan_background(t, busy, busy_of(d, t, busy), max, p);
}

/* The thread's next run for T: the next chunk at the front, as the loop's own would be. */
static bool pick_job(struct daemon *d, struct lazy_task *t, struct copier_job *j)
{
	const struct lazy_range *r;
	const void *data;
	struct copy_plan p;
	uint64_t k, run, i;

	_Static_assert(BG_CHUNK_BYTES / PAGE_SZ_MIN <= COPIER_SPAN_PAGES, "a job holds a background chunk");
	if (!next_bg_run(d, t, BG_CHUNK_PAGES, &p))
		return false;
	r = &t->ranges[p.ri];
	k = p.k;
	if (source_get_mapped(d->src, t->img, r->img_start + (k << PAGE_SHIFT), p.n, &data, &run)) {
		loop_fail(d);
		return false;
	}
	*j = (struct copier_job){
		.owner = t,
		.uffd = t->uffd,
		.dst = r->start + (k << PAGE_SHIFT),
		.img = r->img_start + (k << PAGE_SHIFT),
		.src = data,
		.len = run << PAGE_SHIFT,
	};
	for (i = 0; i < run; i++)
		if (range_page_pending(r, k + i))
			j->want[i / 64] |= 1ULL << (i % 64);
	return true;
}

/* Keep the thread's queue full, in the order the loop's own background work goes. */
static void feed_copier(struct daemon *d)
{
	struct copier_job all[COPIER_DEPTH], j;
	size_t i;

	while (!d->failed && copier_in_flight(d->cp, all, COPIER_DEPTH) < COPIER_DEPTH) {
		bool picked = false;

		for (i = 0; i < d->nr_tasks && !picked; i++) {
			struct lazy_task *t = d->tasks[(d->bg_task + i) % d->nr_tasks];

			if (!t->done && t->nr_pending && !t->cp_skip && pick_job(d, t, &j))
				picked = true;
		}
		if (!picked)
			return;
		if (copier_submit(d->cp, &j)) {
			source_put(d->src, j.src, j.len >> PAGE_SHIFT);
			return;
		}
	}
}

/*
 * Account the thread's finished runs. By dump-time address: a remap read after the copy
 * moved those pages and their range alike; an unmap or remove dropped both.
 */
void populate_reap(struct daemon *d)
{
	struct copier_job j;
	int ret;

	while ((ret = copier_reap(d->cp, &j)) > 0) {
		struct lazy_task *t = NULL;
		size_t i;

		if (!j.pieces)
			source_put(d->src, j.src, j.len >> PAGE_SHIFT);
		d->bg_idle = false;
		for (i = 0; i < d->nr_tasks && !t; i++)
			if (d->tasks[i] == j.owner)
				t = d->tasks[i];
		if (j.pieces) {
			prefetch_batch_back(d, t, j.pieces, exec_job_cut_short(&j));
			if (t)
				t->pf_jobs--;
		}
		if (!t || t->done)
			continue;
		t->st.bytes += j.copied;
		d->ls.copy_thread_bytes += j.copied;
		if (j.pieces) {
			uint64_t left = j.through >> PAGE_SHIFT;

			for (i = 0; i < j.nr_pieces && left; i++) {
				uint64_t m = j.pieces[i].nr < left ? j.pieces[i].nr : left;

				task_mark_img_done(t, j.pieces[i].img, m);
				left -= m;
			}
			t->st.bytes_path[PATH_PREFETCH] += j.copied;
			d->ls.copy_thread_prefetch_bytes += j.copied;
			t->st.pages_prefetch += j.copied >> PAGE_SHIFT;
			t->st.prefetch_hits += j.copied >> PAGE_SHIFT;
			prefetch_note_done(d, t);
		} else {
			task_mark_img_done(t, j.img, j.through >> PAGE_SHIFT);
			t->st.bytes_path[PATH_BG] += j.copied;
			t->st.pages_bg += j.copied >> PAGE_SHIFT;
		}
		if (exec_settle_job(d, t, &j) == EXEC_STOP) {
			if (d->failed)
				return;
			continue;
		}
		if (d->finished && !t->nr_pending)
			loop_task_finish(d, t, false);
	}
	if (ret < 0) {
		pr_err("copy thread: %s", strerror(-ret));
		loop_fail(d);
	}
}

/* Anything for the loop (a fault, most likely): one epoll_wait that does not block. */
static bool loop_has_events(const struct daemon *d)
{
	struct epoll_event ev;

	return epoll_wait(d->ep, &ev, 1, 0) > 0;
}

/*
 * Copy the pending runs of pages [k, k + n) of range RI of T, in order, as background.
 * A span pitted by faults or a prefetch is many runs: between them, every
 * SPAN_CHECK_PAGES, it stops for any event, so that a fault does not wait for the whole
 * span (the rest stays pending for the next step).
 */
static enum copy_res copy_span(struct daemon *d, struct lazy_task *t, size_t ri, uint64_t k, uint64_t n)
{
	const struct lazy_range *r = &t->ranges[ri];
	uint64_t end = k + n, run, copied, since = 0;
	enum copy_res res = COPY_OK;

	while ((k = range_next_pending(r, k)) < end) {
		if (since >= SPAN_CHECK_PAGES) {
			if (loop_has_events(d))
				break;
			since = 0;
		}
		run = range_pending_run(r, k, end - k);
		res = exec_copy(d, t, ri, k, run, &copied);
		t->st.pages_bg += copied;
		if (res != COPY_OK)
			break;
		since += run;
		k += run;
	}
	return res;
}

/* Copy one chunk for the next task with pages left; true if there was work. */
bool populate_step(struct daemon *d)
{
	bool waits_on_thread = false;
	size_t i;

	if (d->cp)
		feed_copier(d);
	for (i = 0; i < d->nr_tasks; i++) {
		struct lazy_task *t = d->tasks[(d->bg_task + i) % d->nr_tasks];
		struct copy_plan p;
		enum copy_res res;

		if (t->done || !t->nr_pending)
			continue;
		if (!next_bg_run(d, t, d->bg_pages, &p)) {
			/* What is left is in the thread's runs, or nothing is (not yet finished). */
			waits_on_thread |= d->cp != NULL;
			continue;
		}
		t->bg_range = p.ri;
		d->bg_task = (d->bg_task + i) % d->nr_tasks;
		d->path = PATH_BG;
		res = copy_span(d, t, p.ri, p.k, p.n);
		if (exec_settle_at(d, t, res, p.ri, p.k, EXEC_BG) == EXEC_GO_ON)
			t->cp_skip = false; /* the cause that stopped the thread is behind us */
		if (!t->done && !t->nr_pending)
			loop_task_finish(d, t, false);
		return true;
	}
	/* Nothing for the loop itself until a run of the thread's is reaped: sleep till then. */
	d->bg_idle = waits_on_thread;
	return false;
}
