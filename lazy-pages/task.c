// SPDX-License-Identifier: MIT
/*
 * One restored task's lazy memory: a sorted array of ranges, each with a bitmap of the
 * pages still to copy. Faults and background population clear bits; layout events split,
 * move or drop ranges. A bitmap per range (not lists split per fault) keeps a lookup at
 * O(log ranges) however many faults came before.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pagesize.h"
#include "task.h"
#include "uffd.h"
#include "lazy_pages.h"

#define WORDS(n) (((n) + 63) / 64)

static uint64_t range_end(const struct lazy_range *r)
{
	return r->start + (r->nr_pages << PAGE_SHIFT);
}

static int ranges_reserve(struct lazy_task *t, size_t extra)
{
	struct lazy_range *n;
	size_t cap;

	if (t->nr_ranges + extra <= t->cap_ranges)
		return 0;
	cap = t->cap_ranges ? t->cap_ranges * 2 : 16;
	while (cap < t->nr_ranges + extra)
		cap *= 2;
	n = realloc(t->ranges, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	t->ranges = n;
	t->cap_ranges = cap;
	return 0;
}

static uint64_t count_bits(const uint64_t *bm, uint64_t nbits)
{
	uint64_t i, c = 0;

	for (i = 0; i < nbits / 64; i++)
		c += __builtin_popcountll(bm[i]);
	if (nbits % 64)
		c += __builtin_popcountll(bm[i] & ((1ULL << (nbits % 64)) - 1));
	return c;
}

/* Append a range of NR all-pending pages; ranges must come in address order. */
static int range_append(struct lazy_task *t, uint64_t start, uint64_t img_start, uint64_t nr)
{
	struct lazy_range *r;
	uint64_t *bm;

	if (ranges_reserve(t, 1))
		return -ENOMEM;
	bm = malloc(WORDS(nr) * sizeof(*bm));
	if (!bm)
		return -ENOMEM;
	memset(bm, 0xff, WORDS(nr) * sizeof(*bm));
	if (nr % 64)
		bm[WORDS(nr) - 1] = (1ULL << (nr % 64)) - 1;
	r = &t->ranges[t->nr_ranges++];
	r->start = start;
	r->img_start = img_start;
	r->nr_pages = nr;
	r->nr_pending = nr;
	r->pending = bm;
	t->nr_pending += nr;
	return 0;
}

int task_init_ranges(struct lazy_task *t)
{
	const struct crimg_task *it = t->img;
	size_t i, v = 0;
	int ret;

	for (i = 0; i < it->nr_pmes; i++) {
		const struct crimg_pme *pe = &it->pmes[i];
		uint64_t start = pe->vaddr, end = pe->vaddr + (pe->nr_pages << PAGE_SHIFT);

		if (!(pe->flags & CRIMG_PE_LAZY))
			continue;
		/* An entry may straddle VMAs, and a copy must stay inside one. */
		while (start < end) {
			const struct crimg_vma *vma;
			uint64_t stop, nr;
			struct lazy_range *last;

			while (v < it->nr_vmas && it->vmas[v].end <= start)
				v++;
			if (v == it->nr_vmas || it->vmas[v].start > start) {
				/* crimg guarantees entries lie inside VMAs; be defensive anyway. */
				pr_err("task %d: lazy page 0x%llx is outside every VMA", t->vpid, (unsigned long long)start);
				return -EINVAL;
			}
			vma = &it->vmas[v];
			stop = end < vma->end ? end : vma->end;
			nr = (stop - start) >> PAGE_SHIFT;
			if (!vma->lazy) {
				/*
				 * crimg refuses such images; should one get here, the pages could
				 * never be copied (the restorer leaves the VMA unregistered) and
				 * the task would read zeros: unservable, not skippable.
				 */
				pr_err("task %d: lazy pages at 0x%llx in VMA 0x%llx-0x%llx (flags 0x%x), which CRIU "
				       "does not register with userfaultfd: they cannot be served",
				       t->vpid, (unsigned long long)start, (unsigned long long)vma->start,
				       (unsigned long long)vma->end, vma->flags);
				return -EINVAL;
			}
			last = t->nr_ranges ? &t->ranges[t->nr_ranges - 1] : NULL;
			if (last && range_end(last) == start && start > vma->start) {
				/* Same VMA, contiguous: grow the last range. */
				uint64_t old = last->nr_pages, n = old + nr, j;
				uint64_t *bm = realloc(last->pending, WORDS(n) * sizeof(*bm));

				if (!bm)
					return -ENOMEM;
				for (j = WORDS(old); j < WORDS(n); j++)
					bm[j] = 0;
				for (j = old; j < n; j++)
					bm[j / 64] |= 1ULL << (j % 64);
				last->pending = bm;
				last->nr_pages = n;
				last->nr_pending += nr;
				t->nr_pending += nr;
			} else {
				ret = range_append(t, start, start, nr);
				if (ret)
					return ret;
			}
			start = stop;
		}
	}
	return 0;
}

/*
 * The restorer registers every lazy-eligible VMA of the images it restores, whole, before
 * criu sends the finish word; the daemon's ranges come from its own images and are moved
 * by every layout event read since. A range whose first or last page is in no registered
 * VMA therefore means the two sets of images differ. One probe per end (no memory is
 * touched): the ends catch a VMA missing, moved or shorter, and cost two ioctls a range.
 * Pending events make the kernel say EAGAIN, never ENOENT, so a task changing its layout
 * right after the finish word is not taken for a mismatch; such a task is not checked.
 */
int task_check_registered(const struct lazy_task *t, const char *images)
{
	size_t i;

	if (t->done)
		return 0;
	for (i = 0; i < t->nr_ranges; i++) {
		const struct lazy_range *r = &t->ranges[i];
		uint64_t ends[2] = {r->start, range_end(r) - PAGE_SZ};
		int j, err;

		for (j = 0; j < 2; j++) {
			switch (uffd_probe_registered(t->uffd, ends[j], &err)) {
			case UFFD_OK:
				continue;
			case UFFD_NOENT:
				pr_err("task %d (pid %d): 0x%llx, lazy memory in %s/pagemap-%d.img (range "
				       "0x%llx-0x%llx, dump-time 0x%llx), is in no VMA the restorer registered: "
				       "criu restore restored this task from other images than the daemon's",
				       t->vpid, t->host_pid, (unsigned long long)ends[j], images, t->img->pid,
				       (unsigned long long)r->start, (unsigned long long)range_end(r),
				       (unsigned long long)r->img_start);
				return -EINVAL;
			case UFFD_RETRY:
			case UFFD_GONE:
				pr_debug("task %d: layout events pending or the task is gone: registration not checked",
					 t->vpid);
				return 0;
			default:
				pr_warn("task %d: cannot probe 0x%llx for registration: %s; not checked", t->vpid,
					(unsigned long long)ends[j], strerror(err));
				return 0;
			}
		}
	}
	pr_debug("task %d: its %zu lazy ranges are in registered VMAs", t->vpid, t->nr_ranges);
	return 0;
}

int task_clone_ranges(struct lazy_task *child, const struct lazy_task *parent)
{
	size_t i;

	if (ranges_reserve(child, parent->nr_ranges))
		return -ENOMEM;
	for (i = 0; i < parent->nr_ranges; i++) {
		const struct lazy_range *p = &parent->ranges[i];
		struct lazy_range *c = &child->ranges[i];

		if (!p->nr_pending) {
			/* Fully copied: the child inherited the pages with its memory. */
			memset(c, 0, sizeof(*c));
			continue;
		}
		*c = *p;
		c->pending = malloc(WORDS(p->nr_pages) * sizeof(uint64_t));
		if (!c->pending) {
			child->nr_ranges = i;
			return -ENOMEM;
		}
		memcpy(c->pending, p->pending, WORDS(p->nr_pages) * sizeof(uint64_t));
	}
	/* Squeeze out the complete ranges left as holes above. */
	child->nr_ranges = 0;
	for (i = 0; i < parent->nr_ranges; i++)
		if (child->ranges[i].pending)
			child->ranges[child->nr_ranges++] = child->ranges[i];
	child->nr_pending = parent->nr_pending;
	return 0;
}

void task_free_ranges(struct lazy_task *t)
{
	size_t i;

	for (i = 0; i < t->nr_ranges; i++)
		free(t->ranges[i].pending);
	free(t->ranges);
	t->ranges = NULL;
	t->nr_ranges = t->cap_ranges = 0;
	t->nr_pending = 0;
}

ssize_t task_find(const struct lazy_task *t, uint64_t addr)
{
	size_t lo = 0, hi = t->nr_ranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct lazy_range *r = &t->ranges[mid];

		if (addr < r->start)
			hi = mid;
		else if (addr >= range_end(r))
			lo = mid + 1;
		else
			return mid;
	}
	return -1;
}

/* First range ending after ADDR (the insertion point for ADDR). */
static size_t task_lower_bound(const struct lazy_task *t, uint64_t addr)
{
	size_t lo = 0, hi = t->nr_ranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (range_end(&t->ranges[mid]) <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint64_t task_hole_pages(const struct lazy_task *t, uint64_t addr, uint64_t max)
{
	size_t i = task_lower_bound(t, addr);
	uint64_t n = max;

	if (i < t->nr_ranges && t->ranges[i].start > addr && (t->ranges[i].start - addr) >> PAGE_SHIFT < n)
		n = (t->ranges[i].start - addr) >> PAGE_SHIFT;
	return n;
}

/* Split range I at AT (strictly inside it) into [start, AT) and [AT, end). */
static int range_split(struct lazy_task *t, size_t i, uint64_t at)
{
	struct lazy_range *l, *r;
	uint64_t k, n, j, *bm;

	if (ranges_reserve(t, 1))
		return -ENOMEM;
	l = &t->ranges[i];
	k = (at - l->start) >> PAGE_SHIFT;
	n = l->nr_pages - k;
	bm = calloc(WORDS(n), sizeof(*bm));
	if (!bm)
		return -ENOMEM;
	for (j = 0; j < n; j++)
		if (range_page_pending(l, k + j))
			bm[j / 64] |= 1ULL << (j % 64);

	memmove(&t->ranges[i + 2], &t->ranges[i + 1], (t->nr_ranges - i - 1) * sizeof(*l));
	t->nr_ranges++;
	r = &t->ranges[i + 1];
	r->start = at;
	r->img_start = l->img_start + (k << PAGE_SHIFT);
	r->nr_pages = n;
	r->pending = bm;
	r->nr_pending = count_bits(bm, n);
	l->nr_pages = k;
	l->nr_pending -= r->nr_pending;
	return 0;
}

/* Make START and END range boundaries; returns the first range inside [start, end). */
static int split_around(struct lazy_task *t, uint64_t start, uint64_t end, size_t *first)
{
	size_t i = task_lower_bound(t, start);
	int ret;

	if (i < t->nr_ranges && t->ranges[i].start < start) {
		ret = range_split(t, i, start);
		if (ret)
			return ret;
		i++;
	}
	*first = i;
	i = task_lower_bound(t, end);
	if (i < t->nr_ranges && t->ranges[i].start < end && range_end(&t->ranges[i]) > end)
		return range_split(t, i, end);
	return 0;
}

int task_drop(struct lazy_task *t, uint64_t start, uint64_t end)
{
	size_t i, j;
	int ret;

	ret = split_around(t, start, end, &i);
	if (ret)
		return ret;
	for (j = i; j < t->nr_ranges && t->ranges[j].start < end; j++) {
		t->nr_pending -= t->ranges[j].nr_pending;
		free(t->ranges[j].pending);
	}
	memmove(&t->ranges[i], &t->ranges[j], (t->nr_ranges - j) * sizeof(t->ranges[0]));
	t->nr_ranges -= j - i;
	if (t->bg_range > i)
		t->bg_range = i;
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct lazy_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

int task_remap(struct lazy_task *t, uint64_t from, uint64_t to, uint64_t len)
{
	size_t i;
	int ret;

	ret = split_around(t, from, from + len, &i);
	if (ret)
		return ret;
	/* The kernel sent UNMAP for whatever lay at the target before it moved this. */
	for (; i < t->nr_ranges && t->ranges[i].start < from + len; i++)
		t->ranges[i].start = t->ranges[i].start - from + to;
	qsort(t->ranges, t->nr_ranges, sizeof(t->ranges[0]), cmp_range);
	t->bg_range = 0;
	return 0;
}

void task_mark_done(struct lazy_task *t, struct lazy_range *r, uint64_t idx, uint64_t n)
{
	uint64_t j;

	for (j = idx; j < idx + n; j++) {
		uint64_t bit = 1ULL << (j % 64);

		if (r->pending[j / 64] & bit) {
			r->pending[j / 64] &= ~bit;
			r->nr_pending--;
			t->nr_pending--;
		}
	}
}

uint64_t range_pending_run(const struct lazy_range *r, uint64_t idx, uint64_t max)
{
	uint64_t n = 0;

	while (idx + n < r->nr_pages && n < max) {
		uint64_t w = r->pending[(idx + n) / 64] >> ((idx + n) % 64);
		uint64_t ones = w == ~0ULL ? 64 : (uint64_t)__builtin_ctzll(~w);

		/* ones counts set bits up to the word's end at most. */
		if (ones > 64 - (idx + n) % 64)
			ones = 64 - (idx + n) % 64;
		if (!ones)
			break;
		n += ones;
		if ((idx + n) % 64)
			break;
	}
	if (idx + n > r->nr_pages)
		n = r->nr_pages - idx;
	return n < max ? n : max;
}

uint64_t range_pending_span(const struct lazy_range *r, uint64_t idx, uint64_t max)
{
	uint64_t end = max < r->nr_pages - idx ? idx + max : r->nr_pages, last = idx, k = idx;

	while ((k = range_next_pending(r, k)) < end) {
		k += range_pending_run(r, k, end - k);
		last = k;
	}
	return last - idx;
}

uint64_t range_next_pending(const struct lazy_range *r, uint64_t idx)
{
	while (idx < r->nr_pages) {
		uint64_t w = r->pending[idx / 64] >> (idx % 64);

		if (w)
			return idx + __builtin_ctzll(w) < r->nr_pages ? idx + __builtin_ctzll(w) : r->nr_pages;
		idx = (idx / 64 + 1) * 64;
	}
	return r->nr_pages;
}

/* The range of T holding dump-time page IMG, or -1. */
ssize_t task_find_img(const struct lazy_task *t, uint64_t img)
{
	ssize_t ri = task_find(t, img);
	size_t i;

	if (ri >= 0 && t->ranges[ri].start == t->ranges[ri].img_start)
		return ri;
	/* Moved by a remap: the dump-time addresses are no longer the order. */
	for (i = 0; i < t->nr_ranges; i++) {
		const struct lazy_range *r = &t->ranges[i];

		if (img >= r->img_start && img < r->img_start + (r->nr_pages << PAGE_SHIFT))
			return i;
	}
	return -1;
}

/* Mark N pages from dump-time address IMG of T as copied, wherever they are now. */
void task_mark_img_done(struct lazy_task *t, uint64_t img, uint64_t n)
{
	uint64_t end = img + (n << PAGE_SHIFT);

	while (img < end) {
		ssize_t ri = task_find_img(t, img);
		struct lazy_range *r;
		uint64_t k, m;

		if (ri < 0) {
			img += PAGE_SZ; /* dropped meanwhile (unmapped, removed) */
			continue;
		}
		r = &t->ranges[ri];
		k = (img - r->img_start) >> PAGE_SHIFT;
		m = (end - img) >> PAGE_SHIFT;
		if (m > r->nr_pages - k)
			m = r->nr_pages - k;
		task_mark_done(t, r, k, m);
		img += m << PAGE_SHIFT;
	}
}
