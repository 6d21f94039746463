/* SPDX-License-Identifier: MIT */
/*
 * The planner: what to copy next, as pure functions of a task's ranges and fronts. No
 * uffd, no source, no clock; nothing here changes a task (the caller stores what it
 * keeps). The loop's parts turn a plan into copies through exec.c. test/unit/test-plan.c
 * runs these on ranges it builds itself.
 */
#ifndef LAZY_UFFD_PLAN_H
#define LAZY_UFFD_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pagesize.h"
#include "task.h"

/* Background chunk: a 2 MiB copy runs near the UFFDIO_COPY ceiling in about 0.5 ms. */
#define BG_CHUNK_BYTES (2ULL << 20)
#define BG_CHUNK_PAGES PAGES_IN(BG_CHUNK_BYTES)
/*
 * While faults are arriving (the busy-poll window, and just after the finish word),
 * background work goes on in chunks this small (32 KiB) between polls, so a fault waits
 * behind at most one of them and the population does not stop meanwhile.
 */
#define BG_POLL_CHUNK_PAGES PAGES_IN(32 << 10)
/*
 * Pages copied for a fault: the faulting page and the pending run after it. The window
 * doubles while a task's faults come in address order, up to a background chunk; any
 * other fault sets it back.
 */
#define FAULT_AROUND_PAGES PAGES_IN(32 << 10)
#define FAULT_AROUND_MAX   BG_CHUNK_PAGES

/* Pages [k, k + n) of range RI of a task. */
struct copy_plan {
	ssize_t ri; /* -1: in no range (not lazy memory) */
	uint64_t k, n;
	bool copy; /* false: nothing to copy there (done already, or not lazy): pass over N */
};

/* A span of current addresses the copy thread has (a queued or running job). */
struct plan_busy {
	uint64_t start, len;
};

/*
 * The fault-around window for a fault at PAGE of T, from T's last fault: doubled when
 * PAGE is where the last fault's copy ended (*SEQ), else reset (to 1 when RECORDING: a
 * neighbour copied unasked would never show up in the profile).
 */
uint64_t plan_fault_window(const struct lazy_task *t, uint64_t page, bool recording, bool *seq);
/* The same for a fault at PAGE outside lazy data (zero pages), from T's last such fault. */
uint64_t plan_hole_window(const struct lazy_task *t, uint64_t page);

/*
 * The next step of T's prefetch front (t->pf[t->pf_pos], t->pf_off pages in): at most MAX
 * pages, within one profile record and one range. False when the profile is all taken.
 */
bool plan_prefetch(const struct lazy_task *t, uint64_t max, struct copy_plan *p);

/*
 * T's next background span: the first pending page in none of BUSY, looked for from the
 * range population has reached (t->bg_range) and then round, and the span from there (at
 * most MAX pages, passing over pages copied already, up to the next busy span). False
 * when every page left is busy or none is left.
 */
bool plan_background(const struct lazy_task *t, const struct plan_busy *busy, size_t nr_busy, uint64_t max,
		     struct copy_plan *p);

#endif
