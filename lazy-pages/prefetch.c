// SPDX-License-Identifier: MIT
/*
 * The --prefetch-profile front (contract in loop.h): each task's recorded pages in
 * recorded order, from the moment the restorer has registered its VMAs, before the
 * background. Copies of a step do not wake; one UFFDIO_WAKE over the step's span ends
 * it. With the copy thread, batches from the front of the profile go to it and the loop
 * goes on behind them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "copier.h"
#include "lazy_pages.h"
#include "loop.h"
#include "source.h"
#include "uffd.h"

/*
 * A prefetch step ends after this long even with pages of its chunk left: a scattered
 * profile is copied a page per call, and a fault arriving meanwhile waits for the step
 * as it would for one background chunk. Shorter while faults are arriving.
 */
#define PREFETCH_STEP_NS      (500 * 1000ULL)
#define PREFETCH_STEP_POLL_NS (50 * 1000ULL)
/* Prefetch before the finish word found the VMAs not registered yet: retry after this. */
#define PREFETCH_RETRY_NS (1000000ULL)

static int cmp_rec(const void *a, const void *b)
{
	const struct profile_rec *x = a, *y = b;

	return x->img_addr < y->img_addr ? -1 : x->img_addr > y->img_addr;
}

/* T's share of the --prefetch-profile: its records in order, and its pages counted. */
int prefetch_task_init(struct daemon *d, struct lazy_task *t)
{
	const struct profile *p = d->prefetch;
	size_t i, n = 0;

	for (i = 0; i < p->nr; i++)
		n += p->recs[i].vpid == t->vpid;
	if (!n)
		return 0;
	t->pf = malloc(n * sizeof(*t->pf));
	t->pf_sorted = malloc(n * sizeof(*t->pf_sorted));
	if (!t->pf || !t->pf_sorted)
		return -ENOMEM;
	for (i = 0; i < p->nr; i++) {
		const struct profile_rec *rec = &p->recs[i];
		uint64_t a = rec->img_addr, end = a + ((uint64_t)rec->nr_pages << PAGE_SHIFT);

		if (rec->vpid != t->vpid)
			continue;
		t->pf_sorted[t->pf_nr] = *rec;
		t->pf[t->pf_nr++] = rec;
		while (a < end) {
			ssize_t ri = task_find(t, a);
			uint64_t stop = end;
			size_t j;

			if (ri >= 0) {
				const struct lazy_range *r = &t->ranges[ri];

				if (r->start + (r->nr_pages << PAGE_SHIFT) < stop)
					stop = r->start + (r->nr_pages << PAGE_SHIFT);
				t->st.profile_pages += (stop - a) >> PAGE_SHIFT;
			} else {
				for (j = 0; j < t->nr_ranges; j++)
					if (t->ranges[j].start > a && t->ranges[j].start < stop)
						stop = t->ranges[j].start;
				t->st.profile_skipped += (stop - a) >> PAGE_SHIFT;
			}
			a = stop;
		}
	}
	t->pf_nr_sorted = t->pf_nr;
	qsort(t->pf_sorted, t->pf_nr_sorted, sizeof(*t->pf_sorted), cmp_rec);
	if (t->st.profile_skipped)
		pr_warn("--prefetch-profile: %llu pages of task %d are not lazy memory of this dump; skipped",
			(unsigned long long)t->st.profile_skipped, t->vpid);
	return 0;
}

/*
 * Before the finish word: 0 if a task's profile can be prefetched now, the ms to wait if
 * all that is left waits for the restorer to register its VMAs, -1 if nothing is left.
 */
int prefetch_wait_ms(const struct daemon *d)
{
	uint64_t now = loop_now_ns(), next = UINT64_MAX;
	size_t i;

	for (i = 0; i < d->nr_tasks; i++) {
		const struct lazy_task *t = d->tasks[i];

		if (t->done || t->pf_pos >= t->pf_nr)
			continue;
		if (t->pf_retry_ns <= now)
			return 0;
		if (t->pf_retry_ns < next)
			next = t->pf_retry_ns;
	}
	return next == UINT64_MAX ? -1 : (int)((next - now) / 1000000) + 1;
}

/* Wake the threads of T waiting on pages its prefetch step copied without waking them. */
static void prefetch_wake(struct daemon *d, struct lazy_task *t)
{
	int err = 0;

	if (d->wake_hi > d->wake_lo && !t->done &&
	    uffd_wake(t->uffd, d->wake_lo, d->wake_hi - d->wake_lo, &err) == UFFD_FAILED)
		pr_warn("task %d: UFFDIO_WAKE after a prefetch step: %s", t->vpid, strerror(err));
	d->wake_lo = UINT64_MAX;
	d->wake_hi = 0;
}

/* Say when T's profile is in: every record taken, and no batch of it with the thread. */
void prefetch_note_done(struct daemon *d, struct lazy_task *t)
{
	if (!t->pf_nr || t->pf_pos < t->pf_nr || t->pf_jobs)
		return;
	d->ls.prefetch_done_ms = (loop_now_ns() - d->start_ns) / 1e6;
	pr_info("task %d: profile prefetched, %.1f ms after the daemon started%s", t->vpid, d->ls.prefetch_done_ms,
		d->finished ? "" : ", before the restore finished");
}

/* N pages of T's current profile record are taken care of: move on. */
static void prefetch_advance(struct daemon *d, struct lazy_task *t, uint64_t n)
{
	t->pf_off += n;
	if (t->pf_off >= t->pf[t->pf_pos]->nr_pages) {
		t->pf_pos++;
		t->pf_off = 0;
	}
	prefetch_note_done(d, t);
}

/*
 * The next batch of T's profile for the copy thread: up to COPIER_BATCH_PAGES pending
 * pages from the front, which moves past them. False if none was left (or on failure).
 */
static bool prefetch_batch(struct daemon *d, struct lazy_task *t, struct copier_job *j)
{
	struct copier_piece *pc;
	struct copy_plan p;
	uint64_t pages = 0;
	size_t np = 0, slot;

	for (slot = 0; slot < COPIER_DEPTH && d->pf_pool_busy[slot]; slot++)
		;
	if (slot == COPIER_DEPTH)
		return false;
	pc = d->pf_pool[slot];
	d->pf_pool_pos[slot] = t->pf_pos;
	d->pf_pool_off[slot] = t->pf_off;
	while (pages < COPIER_BATCH_PAGES && plan_prefetch(t, COPIER_BATCH_PAGES - pages, &p)) {
		uint64_t off, n = p.n;
		int fd;

		if (p.copy) {
			const struct lazy_range *r = &t->ranges[p.ri];
			uint64_t img = r->img_start + (p.k << PAGE_SHIFT);

			if (source_locate(d->src, t->img, img, n, &fd, &off, &n)) {
				loop_fail(d);
				return false;
			}
			pc[np++] = (struct copier_piece){
				.dst = r->start + (p.k << PAGE_SHIFT),
				.img = img,
				.off = off,
				.fd = fd,
				.nr = (uint32_t)n,
			};
			pages += n;
		}
		prefetch_advance(d, t, n);
	}
	if (!np)
		return false;
	*j = (struct copier_job){
		.owner = t,
		.uffd = t->uffd,
		.pieces = pc,
		.nr_pieces = np,
		.len = pages << PAGE_SHIFT,
	};
	return true;
}

/*
 * Batch PC is back. Cut short (a layout change, pending events, VMAs not all registered
 * yet), it gives its place back: T's prefetch goes on from where the batch began, and
 * passes over what is in by now at the cost of a bitmap test a page.
 */
void prefetch_batch_back(struct daemon *d, struct lazy_task *t, const struct copier_piece *pc, bool short_cut)
{
	size_t i = (pc - d->pf_pool[0]) / COPIER_BATCH_PAGES;

	d->pf_pool_busy[i] = false;
	if (!short_cut || !t || t->done)
		return;
	if (d->pf_pool_pos[i] < t->pf_pos || (d->pf_pool_pos[i] == t->pf_pos && d->pf_pool_off[i] < t->pf_off)) {
		t->pf_pos = d->pf_pool_pos[i];
		t->pf_off = d->pf_pool_off[i];
	}
}

/*
 * Both CPUs on T's profile: while the thread has room, give it the batch at the front
 * (the program, resumed, wants those first); the loop goes on behind it.
 */
static void feed_prefetch(struct daemon *d, struct lazy_task *t)
{
	struct copier_job all[COPIER_DEPTH], j;

	while (!d->failed && copier_in_flight(d->cp, all, COPIER_DEPTH) < COPIER_DEPTH && prefetch_batch(d, t, &j)) {
		if (copier_submit(d->cp, &j))
			return;
		d->pf_pool_busy[(j.pieces - d->pf_pool[0]) / COPIER_BATCH_PAGES] = true;
		t->pf_jobs++;
	}
}

/*
 * Copy up to one chunk of the next task's profile pages, in recorded order; true if any
 * work. The program, once resumed, runs into the front of the prefetch and waits there
 * page after page: woken by each copy, it costs an IPI and a context switch per page on
 * both sides (~4000 a pass of a 16384-page profile). So the copies do not wake, and one
 * UFFDIO_WAKE over their span ends the step (the program then runs through the pages the
 * step copied). A thread whose fault the loop reads meanwhile is served and woken as
 * ever; one that the span's wake finds still missing its page faults again.
 */
bool prefetch_step(struct daemon *d)
{
	struct copy_plan p;
	size_t i;

	for (i = 0; i < d->nr_tasks; i++) {
		size_t ti = (d->pf_task + i) % d->nr_tasks;
		struct lazy_task *t = d->tasks[ti];
		uint64_t budget = d->bg_pages, start = loop_now_ns();
		uint64_t step_ns = d->bg_pages < BG_CHUNK_PAGES ? PREFETCH_STEP_POLL_NS : PREFETCH_STEP_NS;

		if (t->done || t->pf_pos >= t->pf_nr || (!d->finished && t->pf_retry_ns > loop_now_ns()))
			continue;
		d->pf_task = ti;
		d->wake_lo = UINT64_MAX;
		d->wake_hi = 0;
		/* Before the finish word, only once the loop's copies show the VMAs registered. */
		if (d->cp && (d->finished || t->pf_live))
			feed_prefetch(d, t);
		while (budget && !t->done && !d->failed && loop_now_ns() - start < step_ns && plan_prefetch(t, budget, &p)) {
			enum copy_res res = COPY_OK;
			uint64_t copied;

			if (p.copy) {
				d->path = PATH_PREFETCH;
				d->defer_wake = true;
				res = exec_copy(d, t, p.ri, p.k, p.n, &copied);
				d->defer_wake = false;
				t->st.pages_prefetch += copied;
				t->st.prefetch_hits += copied;
				t->pf_live |= copied > 0;
			}
			if (res != COPY_OK) {
				prefetch_wake(d, t);
				/* The restorer has not registered the VMAs yet: try again shortly. */
				if (exec_settle_at(d, t, res, p.ri, p.k, EXEC_PREFETCH) == EXEC_LATER)
					t->pf_retry_ns = loop_now_ns() + PREFETCH_RETRY_NS;
				/* Else the next step plans from the task's ranges as they are now. */
				return true;
			}
			budget -= p.n < budget ? p.n : budget;
			prefetch_advance(d, t, p.n);
		}
		prefetch_wake(d, t);
		/* Before the finish word a task is never closed: the finish word does that. */
		if (d->finished && !t->done && !t->nr_pending)
			loop_task_finish(d, t, false);
		return true;
	}
	return false;
}
