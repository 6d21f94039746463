// SPDX-License-Identifier: MIT
/*
 * The daemon's lazy-range bookkeeping (lazy-pages/task.c): building ranges from an image,
 * and keeping them right through faults, unmaps, removes, remaps and forks. Checked
 * against a page-by-page model under thousands of random operations; all of it at the
 * system's page size and again at 64 KiB (pagesize.h), with a dump written with 64 KiB
 * pages read back into ranges.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lazy-pages/pagesize.h"
#include "../../lazy-pages/task.h"
#include "../../lazy-pages/uffd.h"
#include "imgwriter.h"
#include "tu.h"

#define BASE	 0x10000000ULL
#define NPAGES	 2048
#define ADDR(i)	 (BASE + ((uint64_t)(i) << PAGE_SHIFT))
#define ABSENT	 UINT64_MAX
#define K64	 (64ULL << 10)

/* model[i]: the dump-time address page i now holds, or ABSENT; pend[i]: still to copy. */
static uint64_t model[NPAGES];
static bool pend[NPAGES];

static void check_against_model(const struct lazy_task *t, const char *when)
{
	uint64_t total = 0, sum = 0;
	size_t i;
	int bad = 0;

	for (i = 0; i < t->nr_ranges; i++) {
		const struct lazy_range *r = &t->ranges[i];

		sum += r->nr_pending;
		CHECK(r->nr_pages > 0, "%s: empty range %zu", when, i);
		if (i)
			CHECK(t->ranges[i - 1].start + (t->ranges[i - 1].nr_pages << PAGE_SHIFT) <= r->start,
			      "%s: ranges %zu and %zu overlap or are unsorted", when, i - 1, i);
	}
	for (i = 0; i < NPAGES && bad < 5; i++) {
		ssize_t ri = task_find(t, ADDR(i));

		if (model[i] == ABSENT || !pend[i]) {
			/* Not lazy any more: either no range, or a range with this page done. */
			if (ri >= 0) {
				const struct lazy_range *r = &t->ranges[ri];
				uint64_t k = (ADDR(i) - r->start) >> PAGE_SHIFT;

				if (range_page_pending(r, k)) {
					tu_fail(__FILE__, __LINE__, "page is pending but should not be");
					tu_note("%s: page %zu", when, i);
					bad++;
				}
			}
			continue;
		}
		total++;
		if (ri < 0) {
			tu_fail(__FILE__, __LINE__, "pending page has no range");
			tu_note("%s: page %zu", when, i);
			bad++;
			continue;
		}
		{
			const struct lazy_range *r = &t->ranges[ri];
			uint64_t k = (ADDR(i) - r->start) >> PAGE_SHIFT;

			if (!range_page_pending(r, k) || r->img_start + (k << PAGE_SHIFT) != model[i]) {
				tu_fail(__FILE__, __LINE__, "page state or source differs from the model");
				tu_note("%s: page %zu pending %d img 0x%llx want 0x%llx", when, i,
					range_page_pending(r, k), (unsigned long long)(r->img_start + (k << PAGE_SHIFT)),
					(unsigned long long)model[i]);
				bad++;
			}
		}
	}
	CHECK_EQ(t->nr_pending, total);
	CHECK_EQ(sum, total);
}

static void test_init_split_merge(void)
{
	/* VMAs: [0,100) lazy, [100,200) lazy, [200,300) not lazy (e.g. a file mapping). */
	struct crimg_vma vmas[] = {
		{ .start = ADDR(0), .end = ADDR(100), .lazy = true },
		{ .start = ADDR(100), .end = ADDR(200), .lazy = true },
		{ .start = ADDR(200), .end = ADDR(300), .lazy = false },
	};
	struct crimg_pme pmes[] = {
		{ .vaddr = ADDR(10), .nr_pages = 20, .flags = CRIMG_PE_LAZY | CRIMG_PE_PRESENT },
		{ .vaddr = ADDR(30), .nr_pages = 80, .flags = CRIMG_PE_LAZY | CRIMG_PE_PRESENT }, /* straddles */
		{ .vaddr = ADDR(110), .nr_pages = 10, .flags = CRIMG_PE_PRESENT },		   /* not lazy */
		{ .vaddr = ADDR(150), .nr_pages = 50, .flags = CRIMG_PE_LAZY | CRIMG_PE_PRESENT },
		{ .vaddr = ADDR(250), .nr_pages = 10, .flags = CRIMG_PE_PRESENT }, /* non-lazy VMA */
	};
	struct crimg_task it = { .pid = 1, .nr_vmas = 3, .vmas = vmas, .nr_pmes = 5, .pmes = pmes };
	struct lazy_task t = { .vpid = 1, .img = &it };

	CHECK_EQ(task_init_ranges(&t), 0);
	CHECK_EQ(t.nr_ranges, 3);
	if (t.nr_ranges == 3) {
		/* [10,100) merged from two entries, cut at the VMA end. */
		CHECK_EQ(t.ranges[0].start, ADDR(10));
		CHECK_EQ(t.ranges[0].nr_pages, 90);
		CHECK_EQ(t.ranges[1].start, ADDR(100));
		CHECK_EQ(t.ranges[1].nr_pages, 10);
		CHECK_EQ(t.ranges[2].start, ADDR(150));
		CHECK_EQ(t.ranges[2].nr_pages, 50);
	}
	CHECK_EQ(t.nr_pending, 150);
	CHECK_EQ(task_find(&t, ADDR(9)), -1);
	CHECK_EQ(task_find(&t, ADDR(99) + 17), 0);
	CHECK_EQ(task_find(&t, ADDR(115)), -1);
	CHECK_EQ(task_find(&t, ADDR(199)), 2);
	CHECK_EQ(task_find(&t, ADDR(200)), -1);
	task_free_ranges(&t);
}

/* Lazy pages in a VMA the restorer leaves unregistered could never be copied. */
static void test_init_lazy_in_unregistered(void)
{
	struct crimg_vma vmas[] = {
		{ .start = ADDR(0), .end = ADDR(100), .lazy = true },
		{ .start = ADDR(100), .end = ADDR(200), .flags = 0x2022, .lazy = false },
	};
	struct crimg_pme pme = { .vaddr = ADDR(90), .nr_pages = 20, .flags = CRIMG_PE_LAZY | CRIMG_PE_PRESENT };
	struct crimg_task it = { .pid = 1, .nr_vmas = 2, .vmas = vmas, .nr_pmes = 1, .pmes = &pme };
	struct lazy_task t = { .vpid = 1, .img = &it };

	CHECK_EQ(task_init_ranges(&t), -EINVAL);
	task_free_ranges(&t);
}

static void test_runs(void)
{
	struct crimg_vma vma = { .start = ADDR(0), .end = ADDR(300), .lazy = true };
	struct crimg_pme pme = { .vaddr = ADDR(0), .nr_pages = 300, .flags = CRIMG_PE_LAZY | CRIMG_PE_PRESENT };
	struct crimg_task it = { .pid = 1, .nr_vmas = 1, .vmas = &vma, .nr_pmes = 1, .pmes = &pme };
	struct lazy_task t = { .vpid = 1, .img = &it };
	struct lazy_range *r;

	CHECK_EQ(task_init_ranges(&t), 0);
	r = &t.ranges[0];
	CHECK_EQ(range_pending_run(r, 0, 1000), 300);
	CHECK_EQ(range_pending_run(r, 60, 10), 10);
	CHECK_EQ(range_pending_run(r, 299, 10), 1);
	task_mark_done(&t, r, 70, 60); /* [70, 130) done: crosses a word boundary */
	CHECK_EQ(t.nr_pending, 240);
	CHECK_EQ(range_pending_run(r, 60, 100), 10);
	CHECK_EQ(range_pending_run(r, 70, 100), 0);
	CHECK_EQ(range_next_pending(r, 70), 130);
	CHECK_EQ(range_pending_run(r, 130, 1000), 170);
	/* A span passes over done pages and ends at its last pending page. */
	CHECK_EQ(range_pending_span(r, 60, 100), 100);
	CHECK_EQ(range_pending_span(r, 60, 70), 10); /* [70, 130) done: ends at 69 */
	CHECK_EQ(range_pending_span(r, 60, 71), 71);
	CHECK_EQ(range_pending_span(r, 250, 1000), 50); /* ends at the range's end */
	task_mark_done(&t, r, 280, 20);
	CHECK_EQ(range_pending_span(r, 250, 1000), 30);
	CHECK_EQ(range_pending_span(r, 279, 1), 1);
	task_mark_done(&t, r, 70, 60); /* twice: counts must not go down again */
	CHECK_EQ(t.nr_pending, 220);
	task_mark_done(&t, r, 0, 300);
	CHECK_EQ(range_next_pending(r, 0), 300);
	CHECK_EQ(t.nr_pending, 0);
	task_free_ranges(&t);
}

static uint64_t rnd(uint64_t n)
{
	return (uint64_t)random() % n;
}

static void model_drop(uint64_t a, uint64_t b)
{
	for (; a < b; a++)
		model[a] = ABSENT;
}

static void test_random_ops(void)
{
	struct crimg_vma vmas[4];
	struct crimg_pme pmes[4];
	struct crimg_task it = { .pid = 1, .vmas = vmas, .pmes = pmes };
	struct lazy_task t = { .vpid = 1, .img = &it }, c = { .vpid = 1, .img = &it };
	uint64_t tmp[NPAGES];
	bool tpend[NPAGES];
	int step, i;

	srandom(42);
	/* Four lazy VMAs in the lower half, the upper half free to move things into. */
	for (i = 0; i < 4; i++) {
		vmas[i] = (struct crimg_vma){ .start = ADDR(i * 256), .end = ADDR(i * 256 + 256), .lazy = true };
		pmes[i] = (struct crimg_pme){ .vaddr = ADDR(i * 256 + 8), .nr_pages = 240,
					      .flags = CRIMG_PE_LAZY | CRIMG_PE_PRESENT };
	}
	it.nr_vmas = it.nr_pmes = 4;
	for (i = 0; i < NPAGES; i++) {
		model[i] = ABSENT;
		pend[i] = false;
	}
	for (i = 0; i < 4; i++)
		for (int k = 8; k < 248; k++) {
			model[i * 256 + k] = ADDR(i * 256 + k);
			pend[i * 256 + k] = true;
		}
	CHECK_EQ(task_init_ranges(&t), 0);
	check_against_model(&t, "init");

	for (step = 0; step < 3000 && !tu_failures; step++) {
		uint64_t a = rnd(NPAGES), len = 1 + rnd(64), b = a + len > NPAGES ? NPAGES : a + len;
		char when[64];

		switch (rnd(4)) {
		case 0: /* a fault or a background chunk */
			for (uint64_t p = a; p < b; p++) {
				ssize_t ri = task_find(&t, ADDR(p));

				if (ri >= 0)
					task_mark_done(&t, &t.ranges[ri], (ADDR(p) - t.ranges[ri].start) >> PAGE_SHIFT,
						       1);
				pend[p] = false;
			}
			break;
		case 1: /* munmap / MADV_DONTNEED */
			CHECK_EQ(task_drop(&t, ADDR(a), ADDR(b)), 0);
			model_drop(a, b);
			break;
		case 2: { /* mremap: the kernel unmaps the target first */
			uint64_t to = rnd(NPAGES - len), n = b - a;

			if (to < b && a < to + n)
				continue; /* overlapping moves are not what mremap does */
			CHECK_EQ(task_drop(&t, ADDR(to), ADDR(to + n)), 0);
			model_drop(to, to + n);
			CHECK_EQ(task_remap(&t, ADDR(a), ADDR(to), ADDR(n) - BASE), 0);
			memcpy(tmp, &model[a], n * sizeof(tmp[0]));
			memcpy(tpend, &pend[a], n * sizeof(tpend[0]));
			model_drop(a, b);
			memcpy(&model[to], tmp, n * sizeof(tmp[0]));
			memcpy(&pend[to], tpend, n * sizeof(tpend[0]));
			break;
		}
		case 3: /* fork: the child must see exactly the parent's state */
			CHECK_EQ(task_clone_ranges(&c, &t), 0);
			check_against_model(&c, "fork child");
			task_free_ranges(&c);
			break;
		}
		snprintf(when, sizeof(when), "step %d", step);
		check_against_model(&t, when);
	}
	task_free_ranges(&t);
}

/*
 * At 64 KiB, in bytes written out: a dump written with 64 KiB pages, read back, gives
 * ranges counted in 64 KiB pages, and a drop of one page takes 64 KiB out of them.
 */
static void test_64k_dump(void)
{
	static const struct tw_vma vmas[] = {
		{BASE, BASE + 300 * K64, 3, 0x22, 0x201},
		{BASE + 300 * K64, BASE + 310 * K64, 3, 0x22, 0x201},
	};
	static const struct tw_pme pmes[] = {
		{BASE + 10 * K64, 200, 4 | 2}, /* PE_PRESENT | PE_LAZY */
		{BASE + 295 * K64, 10, 4 | 2}, /* straddles the VMA end */
	};
	struct tw_task tt = {.pid = 1,
			     .threads = {1},
			     .nr_threads = 1,
			     .pages_id = 2,
			     .vmas = vmas,
			     .nr_vmas = 2,
			     .pmes = pmes,
			     .nr_pmes = 2};
	struct lazy_task t = {.vpid = 1};
	struct crimg_error err;
	struct crimg *img;
	char dir[4096];
	int ret;

	snprintf(dir, sizeof(dir), "%s/k64", tu_tmpdir());
	tw_sparse_pages = true;
	tw_page_size = K64;
	ret = tw_dump(dir, &tt, 1, TW_42);
	tw_page_size = 4096;
	tw_sparse_pages = false;
	CHECK(ret == 0, "writing the 64 KiB dump");
	if (ret)
		return;
	ret = crimg_open(dir, &img, &err);
	CHECK(ret == 0, "crimg_open: %s", err.msg);
	if (ret)
		return;
	t.img = crimg_task(img, 0);
	CHECK_EQ(task_init_ranges(&t), 0);
	CHECK_EQ(t.nr_ranges, 3);
	if (t.nr_ranges == 3) {
		CHECK_EQ(t.ranges[0].start, BASE + 10 * K64);
		CHECK_EQ(t.ranges[0].nr_pages, 200);
		CHECK_EQ(t.ranges[1].start, BASE + 295 * K64);
		CHECK_EQ(t.ranges[1].nr_pages, 5);
		CHECK_EQ(t.ranges[2].start, BASE + 300 * K64);
		CHECK_EQ(t.ranges[2].img_start, BASE + 300 * K64);
		CHECK_EQ(t.ranges[2].nr_pages, 5);
	}
	CHECK_EQ(t.nr_pending, 210);
	CHECK_EQ(task_find(&t, BASE + 210 * K64 - 1), 0);
	CHECK_EQ(task_find(&t, BASE + 210 * K64), -1);
	CHECK_EQ(task_hole_pages(&t, BASE, 1000), 10);
	/* One 64 KiB page out of the middle: 4 KiB further on is gone too. */
	CHECK_EQ(task_drop(&t, BASE + 20 * K64, BASE + 21 * K64), 0);
	CHECK_EQ(task_find(&t, BASE + 20 * K64 + 4096), -1);
	CHECK_EQ(task_find(&t, BASE + 21 * K64), 1);
	CHECK_EQ(t.nr_pending, 209);
	if (t.nr_ranges == 4) {
		CHECK_EQ(t.ranges[0].nr_pages, 10);
		CHECK_EQ(t.ranges[1].img_start, BASE + 21 * K64);
		CHECK_EQ(t.ranges[1].nr_pages, 189);
	}
	/* The bitmap of a range longer than the 512 pages of a 2 MiB 4 KiB chunk. */
	CHECK_EQ(task_remap(&t, BASE + 21 * K64, BASE + 1000 * K64, 100 * K64), 0);
	CHECK_EQ(task_find(&t, BASE + 1099 * K64), 4); /* after [121, 210), [295, 300), [300, 305) */
	CHECK_EQ(task_find(&t, BASE + 1100 * K64), -1);
	if (t.nr_ranges == 5) {
		CHECK_EQ(t.ranges[4].img_start, BASE + 21 * K64);
		CHECK_EQ(t.ranges[4].nr_pending, 100);
		CHECK(range_page_pending(&t.ranges[4], 99), "the remapped range's last page");
	}
	task_free_ranges(&t);
	crimg_close(img);
}

int main(void)
{
	test_init_split_merge();
	test_init_lazy_in_unregistered();
	test_runs();
	test_random_ops();

	CHECK_EQ(lazy_set_page_size(3 << 12), -EINVAL);
	CHECK_EQ(lazy_set_page_size(K64), 0);
	CHECK_EQ(PAGE_SZ, K64);
	CHECK_EQ(PAGE_SHIFT, 16);
	CHECK_EQ(crimg_page_size(), K64);
	test_init_split_merge();
	test_init_lazy_in_unregistered();
	test_runs();
	test_random_ops();
	test_64k_dump();
	return tu_done();
}
