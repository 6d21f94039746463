/* SPDX-License-Identifier: MIT */
/*
 * The figures: per-task fault latencies in fixed histograms (memory does not grow with
 * faults), the loop's and the remote source's counters, and --stats FILE as JSON written
 * beside FILE and renamed over it.
 */
#ifndef LAZY_UFFD_STATS_H
#define LAZY_UFFD_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "task.h"
#include "remote.h"

void stats_add_latency(struct fault_stats *st, uint64_t ns);

/* Daemon-wide figures of the loop, for the JSON and the end-of-run line. */
struct loop_stats {
	uint64_t busy_poll_us;	 /* the setting */
	uint64_t polled_wakeups; /* faults found by polling, without sleeping */
	uint64_t epoll_sleeps;	 /* blocking epoll_wait calls */
	uint64_t profile_records; /* --prefetch-profile records read */
	uint64_t profile_skipped_records; /* for tasks the images do not have */
	uint64_t recorded_records; /* --record-profile records written */
	double prefetch_done_ms;   /* when the last task's profile was copied (since the start) */
	uint64_t copy_threads;	   /* the setting, as used: 0 for a page server */
	uint64_t copy_thread_bytes;	     /* bytes the copy thread copied: background and prefetch */
	uint64_t copy_thread_prefetch_bytes; /* of them, profile pages */
};
void stats_set_loop(const struct loop_stats *ls);
/* Remote figures to add to the JSON (the pointer is kept until it is written). */
void stats_set_remote(const struct remote_stats *rs);
/* --display-stats: stats_write_json() prints the JSON on stdout as well. */
void stats_set_display(bool on);
/*
 * wall_s: from the daemon's start; populate_s: from the restore's finish word;
 * from_uffd_s: from the first uffd handed over, when copying can begin (the span to
 * set against the UFFDIO_COPY floor). Each ends when the last task is complete.
 */
int stats_write_json(const char *path, struct lazy_task **tasks, size_t nr, double wall_s, double populate_s,
		     double from_uffd_s);

#endif
