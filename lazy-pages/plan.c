// SPDX-License-Identifier: MIT
/* The planner (contract in plan.h). */
#include "pagesize.h"
#include "plan.h"

static uint64_t doubled(uint64_t w)
{
	return w * 2 < FAULT_AROUND_MAX ? w * 2 : FAULT_AROUND_MAX;
}

uint64_t plan_fault_window(const struct lazy_task *t, uint64_t page, bool recording, bool *seq)
{
	*seq = page == t->seq_next && t->around;
	if (*seq)
		return doubled(t->around);
	return recording ? 1 : FAULT_AROUND_PAGES;
}

uint64_t plan_hole_window(const struct lazy_task *t, uint64_t page)
{
	if (page == t->zero_next && t->zero_around)
		return doubled(t->zero_around);
	return FAULT_AROUND_PAGES;
}

bool plan_prefetch(const struct lazy_task *t, uint64_t max, struct copy_plan *p)
{
	const struct profile_rec *rec;
	const struct lazy_range *r;
	uint64_t a;

	if (t->pf_pos >= t->pf_nr)
		return false;
	rec = t->pf[t->pf_pos];
	a = rec->img_addr + (t->pf_off << PAGE_SHIFT);
	*p = (struct copy_plan){ .ri = task_find_img(t, a), .n = 1 };
	if (p->ri < 0)
		return true; /* not lazy memory of this dump: a page at a time past it */
	r = &t->ranges[p->ri];
	p->k = (a - r->img_start) >> PAGE_SHIFT;
	if (max > rec->nr_pages - t->pf_off)
		max = rec->nr_pages - t->pf_off;
	if (max > r->nr_pages - p->k)
		max = r->nr_pages - p->k;
	p->copy = range_page_pending(r, p->k);
	if (p->copy) {
		p->n = range_pending_run(r, p->k, max);
	} else {
		p->n = range_next_pending(r, p->k) - p->k;
		if (p->n > max)
			p->n = max;
	}
	return true;
}

static const struct plan_busy *busy_at(const struct plan_busy *busy, size_t n, uint64_t addr)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (addr >= busy[i].start && addr < busy[i].start + busy[i].len)
			return &busy[i];
	return NULL;
}

/* The first page at or after K of R that is pending and in none of BUSY, or r->nr_pages. */
static uint64_t next_free(const struct lazy_range *r, uint64_t k, const struct plan_busy *busy, size_t nb)
{
	for (;;) {
		const struct plan_busy *in;

		k = range_next_pending(r, k);
		if (k == r->nr_pages)
			return k;
		in = busy_at(busy, nb, r->start + (k << PAGE_SHIFT));
		if (!in)
			return k;
		k = (in->start + in->len - r->start) >> PAGE_SHIFT;
		if (k >= r->nr_pages)
			return r->nr_pages;
	}
}

bool plan_background(const struct lazy_task *t, const struct plan_busy *busy, size_t nb, uint64_t max,
		     struct copy_plan *p)
{
	size_t from = t->bg_range, i, j;

	while (from < t->nr_ranges && !t->ranges[from].nr_pending)
		from++;
	if (from >= t->nr_ranges)
		from = 0; /* ranges were split or moved: look again from the start */
	for (i = 0; i < t->nr_ranges; i++) {
		/* From where population is, then round: a cancelled job may be left behind. */
		size_t ri = (from + i) % t->nr_ranges;
		const struct lazy_range *r = &t->ranges[ri];
		uint64_t k, n, a;

		if (!r->nr_pending)
			continue;
		k = next_free(r, 0, busy, nb);
		if (k == r->nr_pages)
			continue;
		n = range_pending_span(r, k, max);
		a = r->start + (k << PAGE_SHIFT);
		for (j = 0; j < nb; j++)
			if (busy[j].start > a && busy[j].start < a + (n << PAGE_SHIFT))
				n = (busy[j].start - a) >> PAGE_SHIFT;
		*p = (struct copy_plan){ .ri = (ssize_t)ri, .k = k, .n = n, .copy = true };
		return true;
	}
	return false;
}
