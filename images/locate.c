// SPDX-License-Identifier: MIT
/* Answering "where is this page": pagemap lookups, PE_PARENT resolution, summaries. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "crimg_int.h"

size_t crimg_vma_lookup(const struct crimg_task *t, uint64_t addr)
{
	size_t lo = 0, hi = t->nr_vmas;

	/* VMAs are disjoint and sorted, so their ends are sorted too. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->vmas[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

size_t crimg_pme_lookup(const struct crimg_task *t, uint64_t addr)
{
	size_t lo = 0, hi = t->nr_pmes;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (crimg_pme_end(&t->pmes[mid]) <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Pages from ADDR up to END (exclusive); END == 0 stands for 2^64. */
static uint64_t pages_to(uint64_t addr, uint64_t end)
{
	if (!end)
		return (~addr >> CRIMG_PAGE_SHIFT) + 1;
	return (end - addr) >> CRIMG_PAGE_SHIFT;
}

/*
 * Find the parent entry holding ADDR for entry IDX of task T in image IMG, which is
 * PE_PARENT. Returns the parent task and entry index, or an error naming both files.
 */
static int parent_entry(const struct crimg *img, const struct crimg_task_img *t, size_t idx, uint64_t addr,
			const struct crimg_task_img **pt_out, size_t *pi_out, struct crimg_error *err)
{
	const struct crimg_pme *e = &t->pmes[idx];
	const struct crimg_task_img *pt;
	size_t pi;

	if (!img->parent)
		return crimg_err(err, -EINVAL, "%s: offset %zu: entry 0x%llx-0x%llx is PE_PARENT, but %s",
				 t->pagemap_path, t->pme_off[idx], (unsigned long long)e->vaddr,
				 (unsigned long long)crimg_pme_end(e),
				 img->parent_note ? img->parent_note : "there is no parent image");
	pt = crimg_task_by_pid(img->parent, t->pub.pid);
	if (!pt)
		return crimg_err(
			err, -EINVAL,
			"%s: offset %zu: entry 0x%llx-0x%llx is PE_PARENT, but %s/pagemap-%d.img does not exist",
			t->pagemap_path, t->pme_off[idx], (unsigned long long)e->vaddr,
			(unsigned long long)crimg_pme_end(e), img->parent->dir, (int)t->pub.pid);
	pi = crimg_pme_lookup(&pt->pub, addr);
	if (pi >= pt->pub.nr_pmes || pt->pmes[pi].vaddr > addr)
		return crimg_err(err, -EINVAL,
				 "%s: offset %zu: PE_PARENT entry 0x%llx-0x%llx: page 0x%llx is not in %s",
				 t->pagemap_path, t->pme_off[idx], (unsigned long long)e->vaddr,
				 (unsigned long long)crimg_pme_end(e), (unsigned long long)addr, pt->pagemap_path);
	if (!(pt->pmes[pi].flags & (CRIMG_PE_PRESENT | CRIMG_PE_PARENT)))
		return crimg_err(err, -EINVAL,
				 "%s: offset %zu: PE_PARENT entry 0x%llx-0x%llx: page 0x%llx is in %s offset %zu "
				 "with flags 0x%x, which stores no data",
				 t->pagemap_path, t->pme_off[idx], (unsigned long long)e->vaddr,
				 (unsigned long long)crimg_pme_end(e), (unsigned long long)addr, pt->pagemap_path,
				 pt->pme_off[pi], pt->pmes[pi].flags);
	*pt_out = pt;
	*pi_out = pi;
	return 0;
}

/* Each image's PE_PARENT ranges must be held, page for page, by its parent's entries. */
int crimg_check_parent_ranges(const struct crimg *img, struct crimg_error *err)
{
	for (; img; img = img->parent) {
		size_t ti, i;

		for (ti = 0; ti < img->nr_tasks; ti++) {
			const struct crimg_task_img *t = &img->tasks[ti];

			for (i = 0; i < t->pub.nr_pmes; i++) {
				const struct crimg_pme *e = &t->pmes[i];
				uint64_t at = e->vaddr, end = crimg_pme_end(e);

				if (!(e->flags & CRIMG_PE_PARENT))
					continue;
				while (at < end) {
					const struct crimg_task_img *pt;
					size_t pi;
					int ret = parent_entry(img, t, i, at, &pt, &pi, err);

					if (ret)
						return ret;
					at = crimg_pme_end(&pt->pmes[pi]);
				}
			}
		}
	}
	return 0;
}

static void loc_present(struct crimg_loc *loc, const struct crimg_task_img *t, const struct crimg_pme *e, uint64_t addr,
			unsigned int depth)
{
	loc->where = CRIMG_PRESENT;
	loc->depth = depth;
	loc->fd = t->pages_fd;
	loc->path = t->pages_path;
	loc->off = e->pages_off + (addr - e->vaddr);
}

int crimg_locate(const struct crimg *img, const struct crimg_task *task, uint64_t addr, struct crimg_loc *loc,
		 struct crimg_error *err)
{
	const struct crimg_task_img *t = task ? crimg_task_by_pid(img, task->pid) : NULL;
	const struct crimg_pme *e;
	uint64_t limit = 0; /* 2^64 */
	unsigned int depth = 0;
	size_t vi, pi;

	memset(loc, 0, sizeof(*loc));
	loc->fd = -1;
	if (!t || &t->pub != task)
		return crimg_err(err, -EINVAL, "%s: task %d is not from this image", img->dir,
				 task ? (int)task->pid : -1);
	addr &= ~(CRIMG_PAGE_SIZE - 1);

	/* Parent images have no VMAs: their entries alone say what they hold. */
	if (!img->is_parent) {
		vi = crimg_vma_lookup(task, addr);
		if (vi >= task->nr_vmas || task->vmas[vi].start > addr) {
			loc->where = CRIMG_NOT_IN_IMAGE;
			loc->nr_pages = pages_to(addr, vi < task->nr_vmas ? task->vmas[vi].start : 0);
			return 0;
		}
		limit = task->vmas[vi].end;
	}

	pi = crimg_pme_lookup(task, addr);
	if (pi >= task->nr_pmes || task->pmes[pi].vaddr > addr) {
		uint64_t next = pi < task->nr_pmes ? task->pmes[pi].vaddr : 0;

		loc->where = img->is_parent ? CRIMG_NOT_IN_IMAGE : CRIMG_ZERO;
		loc->nr_pages = min_u64(pages_to(addr, next), pages_to(addr, limit));
		return 0;
	}

	e = &task->pmes[pi];
	loc->flags = e->flags;
	loc->nr_pages = min_u64(pages_to(addr, crimg_pme_end(e)), pages_to(addr, limit));
	if (e->flags & CRIMG_PE_PRESENT) {
		loc_present(loc, t, e, addr, 0);
		return 0;
	}
	if (!(e->flags & CRIMG_PE_PARENT)) {
		loc->where = CRIMG_REMOTE;
		return 0;
	}

	/* Follow PE_PARENT down the chain; each step can only shorten the run. */
	while (img) {
		const struct crimg_task_img *pt;
		int ret = parent_entry(img, t, pi, addr, &pt, &pi, err);

		if (ret) {
			memset(loc, 0, sizeof(*loc));
			loc->fd = -1;
			return ret;
		}
		img = img->parent;
		t = pt;
		e = &t->pmes[pi];
		depth++;
		loc->nr_pages = min_u64(loc->nr_pages, pages_to(addr, crimg_pme_end(e)));
		if (e->flags & CRIMG_PE_PRESENT) {
			loc_present(loc, t, e, addr, depth);
			return 0;
		}
	}
	/* parent_entry() refuses a missing parent, so the loop always returns. */
	return crimg_err(err, -EINVAL, "%s: PE_PARENT chain ends without data", t->pagemap_path);
}

void crimg_summarize_vma(const struct crimg_task *task, const struct crimg_vma *vma, struct crimg_summary *sum)
{
	uint64_t covered = 0;
	size_t i;

	memset(sum, 0, sizeof(*sum));
	sum->vma_pages = (vma->end - vma->start) >> CRIMG_PAGE_SHIFT;
	if (vma->lazy)
		sum->lazy_vma_pages = sum->vma_pages;

	for (i = crimg_pme_lookup(task, vma->start); i < task->nr_pmes && task->pmes[i].vaddr < vma->end; i++) {
		const struct crimg_pme *e = &task->pmes[i];
		uint64_t lo = e->vaddr > vma->start ? e->vaddr : vma->start;
		uint64_t n = (min_u64(crimg_pme_end(e), vma->end) - lo) >> CRIMG_PAGE_SHIFT;

		covered += n;
		if (e->flags & CRIMG_PE_PRESENT)
			sum->present += n;
		if (e->flags & CRIMG_PE_LAZY)
			sum->lazy += n;
		if (e->flags & CRIMG_PE_PARENT)
			sum->parent += n;
	}
	sum->zero = sum->vma_pages - covered;
}

void crimg_summarize(const struct crimg_task *task, struct crimg_summary *sum)
{
	size_t i;

	memset(sum, 0, sizeof(*sum));
	for (i = 0; i < task->nr_vmas; i++) {
		struct crimg_summary v;

		crimg_summarize_vma(task, &task->vmas[i], &v);
		sum->vma_pages += v.vma_pages;
		sum->lazy_vma_pages += v.lazy_vma_pages;
		sum->zero += v.zero;
	}
	/* Counted over the entries, so a parent image's tasks (no VMAs) add up as well. */
	for (i = 0; i < task->nr_pmes; i++) {
		const struct crimg_pme *e = &task->pmes[i];

		if (e->flags & CRIMG_PE_PRESENT)
			sum->present += e->nr_pages;
		if (e->flags & CRIMG_PE_LAZY)
			sum->lazy += e->nr_pages;
		if (e->flags & CRIMG_PE_PARENT)
			sum->parent += e->nr_pages;
	}
}
