/* SPDX-License-Identifier: MIT */
/*
 * One restored task as the daemon serves it: its lazy ranges (current address, dump-time
 * address, a bitmap of the pages still to copy), kept true through fork, mremap, munmap
 * and MADV_DONTNEED; its per-task serving state (fault-around, prefetch front) and figures.
 * Nothing here copies a byte or knows where bytes come from.
 *
 * "img" addresses are the addresses at dump time, where the page data is found; they
 * differ from the current ones after a task mremap()s a lazy range.
 */
#ifndef LAZY_UFFD_TASK_H
#define LAZY_UFFD_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "crimg.h"
#include "profile.h"

/* A run of lazy pages contiguous both at dump time and now, inside one VMA. */
struct lazy_range {
	uint64_t start;	    /* current address */
	uint64_t img_start; /* address at dump time */
	uint64_t nr_pages;
	uint64_t nr_pending;
	uint64_t *pending; /* bit i set: page i still to be copied */
};

/* Where copied bytes went: a fault's own page, its fault-around, background, prefetch. */
enum copy_path { PATH_FAULT, PATH_AROUND, PATH_BG, PATH_PREFETCH, NR_PATHS };

/* Fault latency: log-linear buckets (16 per power of two of ns) for the quantiles. */
#define LAT_FINE_BUCKETS 640
/* ... and log2 buckets of microseconds for the JSON histogram. */
#define LAT_LOG2_BUCKETS 24

struct fault_stats {
	uint64_t faults;	 /* PAGEFAULT messages */
	uint64_t faults_copied;	 /* the page was still lazy: copied for this fault */
	uint64_t faults_present; /* already copied (fault-around, background, prefetch): woken */
	uint64_t faults_zero;	 /* outside lazy data: a zero page */
	uint64_t faults_queued;	 /* remote: answered later by a request on its way */
	uint64_t pages_fault;	 /* pages copied to serve a fault, fault-around included */
	uint64_t pages_around;	 /* of those, the pages after the faulting one */
	uint64_t pages_bg;	 /* pages copied by background population */
	uint64_t pages_prefetch; /* pages copied from the --prefetch-profile */
	uint64_t pages_zero;	 /* zero pages mapped for faults outside lazy data */
	uint64_t bytes;		 /* page data copied */
	uint64_t bytes_path[NR_PATHS];
	/* --prefetch-profile: profile pages in lazy memory, copied by prefetch before any
	 * fault asked (hits), asked for by a fault first (misses), outside lazy memory. */
	uint64_t profile_pages, prefetch_hits, prefetch_misses, profile_skipped;
	uint64_t nr_lat, lat_max_ns;
	uint32_t lat_fine[LAT_FINE_BUCKETS];
	uint32_t lat_log2_us[LAT_LOG2_BUCKETS];
};

struct lazy_task {
	pid_t vpid;	/* pid in the dump (pagemap-<vpid>.img) */
	pid_t host_pid; /* as the daemon sees it; 0 for a forked child until it is found */
	int pidfd;	/* names host_pid; -1 until known */
	pid_t parent_vpid;
	struct lazy_task *fork_parent; /* a forked child whose pid is still being looked for */
	pid_t outer_ppid; /* the parent criu's task had at the handoff: a reaper for orphans */
	pid_t sid;	  /* its session (a forked child's parent's): orphans are looked for in it */
	uint64_t claim_since_ns;
	int uffd;
	const struct crimg_task *img;

	struct lazy_range *ranges; /* sorted by start, non-overlapping */
	size_t nr_ranges, cap_ranges;
	uint64_t nr_pending;
	size_t bg_range; /* where background population resumes */
	bool cp_skip;	 /* the copy thread's last run stopped short: the loop's turn */

	uint32_t guard_id; /* its uffd's copy in the guard */
	/* Adaptive fault-around: where a sequential fault would come next, and the window. */
	uint64_t seq_next;
	uint64_t seq_prev_img; /* dump-time address of the last fault's page */
	uint64_t around;
	/* The same for faults outside lazy data, which are answered with zero pages. */
	uint64_t zero_next, zero_around;
	/* --prefetch-profile: this task's records (recorded order), the next one, how far
	 * into it; and its profile pages sorted by address (for the miss count). */
	const struct profile_rec **pf;
	size_t pf_nr, pf_pos;
	uint64_t pf_off;
	struct profile_rec *pf_sorted;
	size_t pf_nr_sorted;
	uint64_t pf_retry_ns; /* before the finish word: VMAs not registered yet, retry then */
	bool pf_live;	      /* a prefetch copy got through: the VMAs are registered */
	unsigned int pf_jobs; /* prefetch batches with the copy thread */

	bool done; /* uffd closed: complete, or the task is gone */
	bool gone;
	struct fault_stats st;
};

/* Build the lazy ranges of T from its image: PE_LAZY entries, split at VMA ends. */
int task_init_ranges(struct lazy_task *t);
/*
 * At the restore's finish word, every VMA the restorer registers is registered: each of
 * T's lazy ranges must lie in a registered VMA, or criu restore restored T from other
 * images than the daemon's (IMAGES, for the message). -EINVAL, logged, on a mismatch.
 */
int task_check_registered(const struct lazy_task *t, const char *images);
/* Copy PARENT's remaining state into CHILD (EVENT_FORK). */
int task_clone_ranges(struct lazy_task *child, const struct lazy_task *parent);
void task_free_ranges(struct lazy_task *t);

/* Index of the range holding ADDR, or -1. */
ssize_t task_find(const struct lazy_task *t, uint64_t addr);
/* The range holding dump-time page IMG (wherever a remap moved it), or -1. */
ssize_t task_find_img(const struct lazy_task *t, uint64_t img);
/* Mark N pages from dump-time address IMG as copied, wherever they are now. */
void task_mark_img_done(struct lazy_task *t, uint64_t img, uint64_t n);
/* Pages from ADDR, which no range holds, up to the next range's start; MAX at most. */
uint64_t task_hole_pages(const struct lazy_task *t, uint64_t addr, uint64_t max);
/* Forget [start, end): unmapped or MADV_DONTNEED'd; those pages are no longer lazy. */
int task_drop(struct lazy_task *t, uint64_t start, uint64_t end);
/* [from, from + len) now lives at TO (EVENT_REMAP). */
int task_remap(struct lazy_task *t, uint64_t from, uint64_t to, uint64_t len);
/* Mark pages [idx, idx + n) of range R as copied. */
void task_mark_done(struct lazy_task *t, struct lazy_range *r, uint64_t idx, uint64_t n);
static inline bool range_page_pending(const struct lazy_range *r, uint64_t idx)
{
	return r->pending[idx / 64] & (1ULL << (idx % 64));
}
/* Length of the run of pending pages of R starting at IDX, at most MAX. */
uint64_t range_pending_run(const struct lazy_range *r, uint64_t idx, uint64_t max);
/* First pending page of R at or after IDX, or r->nr_pages. */
uint64_t range_next_pending(const struct lazy_range *r, uint64_t idx);
/*
 * From IDX through the last pending page before IDX + MAX: a span whose pages copied
 * already are passed over, so that a range pitted by a prefetch or by faults is still
 * populated in large steps rather than one small run at a time.
 */
uint64_t range_pending_span(const struct lazy_range *r, uint64_t idx, uint64_t max);

#endif
