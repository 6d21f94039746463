// SPDX-License-Identifier: MIT
/*
 * The planner (lazy-pages/plan.c) on ranges built here: the fault-around window, the
 * prefetch front through records, ranges and pages done already, and background spans
 * that start where population is, pass over done pages and stop short of the copy
 * thread's spans.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../../lazy-pages/pagesize.h"
#include "../../lazy-pages/plan.h"
#include "../../lazy-pages/task.h"
#include "tu.h"

#define BASE	0x40000000ULL
#define ADDR(i) (BASE + ((uint64_t)(i) << PAGE_SHIFT))

/* Two lazy VMAs: [0, 100) and [200, 1300) (pages from BASE), all pending. */
static void make_task(struct lazy_task *t, struct crimg_task *it, struct crimg_vma *vmas, struct crimg_pme *pmes)
{
	vmas[0] = (struct crimg_vma){ .start = ADDR(0), .end = ADDR(100), .lazy = true };
	vmas[1] = (struct crimg_vma){ .start = ADDR(200), .end = ADDR(1300), .lazy = true };
	pmes[0] = (struct crimg_pme){ .vaddr = ADDR(0), .nr_pages = 100, .flags = CRIMG_PE_LAZY | CRIMG_PE_PRESENT };
	pmes[1] = (struct crimg_pme){ .vaddr = ADDR(200), .nr_pages = 1100, .flags = CRIMG_PE_LAZY | CRIMG_PE_PRESENT };
	*it = (struct crimg_task){ .pid = 1, .nr_vmas = 2, .vmas = vmas, .nr_pmes = 2, .pmes = pmes };
	*t = (struct lazy_task){ .vpid = 1, .img = it, .around = FAULT_AROUND_PAGES };
	CHECK_EQ(task_init_ranges(t), 0);
	CHECK_EQ(t->nr_ranges, 2);
}

static void test_fault_window(void)
{
	struct lazy_task t = { .around = FAULT_AROUND_PAGES };
	uint64_t w = 0, page = ADDR(0);
	bool seq;
	int i;

	/* A first fault: the default window, not sequential. */
	t.seq_next = ADDR(5000);
	CHECK_EQ(plan_fault_window(&t, page, false, &seq), FAULT_AROUND_PAGES);
	CHECK(!seq);
	/* Faults each where the last copy ended: doubling, up to the maximum. */
	for (i = 0; i < 12; i++) {
		w = plan_fault_window(&t, page, false, &seq);
		CHECK(i == 0 || seq, "fault %d", i);
		t.around = w;
		page += w << PAGE_SHIFT;
		t.seq_next = page;
	}
	CHECK_EQ(w, FAULT_AROUND_MAX);
	/* Anywhere else: back to the default; while recording, the faulting page alone. */
	CHECK_EQ(plan_fault_window(&t, page + PAGE_SZ, false, &seq), FAULT_AROUND_PAGES);
	CHECK_EQ(plan_fault_window(&t, page + PAGE_SZ, true, &seq), 1);
	/* Holes: the same doubling from the last zero fault. */
	t.zero_next = ADDR(10);
	t.zero_around = 16;
	CHECK_EQ(plan_hole_window(&t, ADDR(10)), 32);
	CHECK_EQ(plan_hole_window(&t, ADDR(11)), FAULT_AROUND_PAGES);
	t.zero_around = 0;
	CHECK_EQ(plan_hole_window(&t, ADDR(10)), FAULT_AROUND_PAGES);
}

static void test_prefetch(void)
{
	struct crimg_vma vmas[2];
	struct crimg_pme pmes[2];
	struct crimg_task it;
	struct lazy_task t;
	/* 90..110 crosses out of the first range into memory that is not lazy; 250.. has done pages. */
	struct profile_rec recs[] = {
		{ .vpid = 1, .img_addr = ADDR(90), .nr_pages = 20 },
		{ .vpid = 1, .img_addr = ADDR(250), .nr_pages = 40 },
	};
	const struct profile_rec *order[] = { &recs[0], &recs[1] };
	struct copy_plan p;

	make_task(&t, &it, vmas, pmes);
	t.pf = order;
	t.pf_nr = 2;
	task_mark_done(&t, &t.ranges[1], 60, 10); /* pages 260..269 */

	CHECK(plan_prefetch(&t, 64, &p));
	CHECK(p.copy && p.ri == 0 && p.k == 90 && p.n == 10, "copy %d ri %zd k %llu n %llu", p.copy, p.ri,
	      (unsigned long long)p.k, (unsigned long long)p.n);
	t.pf_off = 10; /* past the range: not lazy memory, a page at a time */
	CHECK(plan_prefetch(&t, 64, &p));
	CHECK(!p.copy && p.ri == -1 && p.n == 1);
	t.pf_pos = 1;
	t.pf_off = 0;
	CHECK(plan_prefetch(&t, 64, &p));
	CHECK(p.copy && p.ri == 1 && p.k == 50 && p.n == 10, "k %llu n %llu", (unsigned long long)p.k,
	      (unsigned long long)p.n);
	CHECK(plan_prefetch(&t, 4, &p)); /* the budget bounds it */
	CHECK_EQ(p.n, 4);
	t.pf_off = 10; /* the done pages: passed over at once */
	CHECK(plan_prefetch(&t, 64, &p));
	CHECK(!p.copy && p.ri == 1 && p.k == 60 && p.n == 10);
	t.pf_off = 35; /* the record's end bounds the run */
	CHECK(plan_prefetch(&t, 64, &p));
	CHECK(p.copy && p.n == 5);
	t.pf_pos = 2;
	CHECK(!plan_prefetch(&t, 64, &p));
	task_free_ranges(&t);
}

static void test_background(void)
{
	struct crimg_vma vmas[2];
	struct crimg_pme pmes[2];
	struct crimg_task it;
	struct lazy_task t;
	struct plan_busy busy[2];
	struct copy_plan p;

	make_task(&t, &it, vmas, pmes);
	/* From the first range, a chunk at a time. */
	CHECK(plan_background(&t, NULL, 0, BG_CHUNK_PAGES, &p));
	CHECK(p.ri == 0 && p.k == 0 && p.n == 100);
	/* Population has reached the second range: it starts there. */
	t.bg_range = 1;
	CHECK(plan_background(&t, NULL, 0, BG_CHUNK_PAGES, &p));
	CHECK(p.ri == 1 && p.k == 0 && p.n == BG_CHUNK_PAGES);
	/* Done pages in the span are passed over, not a stop. */
	task_mark_done(&t, &t.ranges[1], 10, 20);
	CHECK(plan_background(&t, NULL, 0, 64, &p));
	CHECK(p.ri == 1 && p.k == 0 && p.n == 64);
	/* The copy thread's spans: the span starts after one and stops short of the next. */
	busy[0] = (struct plan_busy){ .start = ADDR(200), .len = 100ULL << PAGE_SHIFT };
	busy[1] = (struct plan_busy){ .start = ADDR(500), .len = 50ULL << PAGE_SHIFT };
	CHECK(plan_background(&t, busy, 2, BG_CHUNK_PAGES, &p));
	CHECK(p.ri == 1 && p.k == 100 && p.n == 200, "k %llu n %llu", (unsigned long long)p.k,
	      (unsigned long long)p.n);
	/* The range behind is not forgotten once the front's range is done. */
	task_mark_done(&t, &t.ranges[1], 0, 1100);
	CHECK(plan_background(&t, NULL, 0, BG_CHUNK_PAGES, &p));
	CHECK(p.ri == 0 && p.k == 0);
	/* Everything left is the thread's: nothing for the loop. */
	busy[0] = (struct plan_busy){ .start = ADDR(0), .len = 100ULL << PAGE_SHIFT };
	CHECK(!plan_background(&t, busy, 1, BG_CHUNK_PAGES, &p));
	task_mark_done(&t, &t.ranges[0], 0, 100);
	CHECK(!plan_background(&t, NULL, 0, BG_CHUNK_PAGES, &p));
	task_free_ranges(&t);
}

int main(void)
{
	test_fault_window();
	test_prefetch();
	test_background();
	return tu_done();
}
