/* SPDX-License-Identifier: MIT */
/*
 * The copy thread (local pages, --copy-threads 1): takes background spans and prefetch
 * batches from the loop, copies them into the tasks' uffds, and hands each back, finished
 * or cut short, to be reaped by the loop. The loop plans every job; the thread decides
 * nothing. Its ioctls and the loop's reads of a uffd with a job of the thread's exclude
 * each other (copier_read_lock), so a copy planned before a layout event never lands
 * after the loop has read it.
 */
#ifndef LAZY_UFFD_COPIER_H
#define LAZY_UFFD_COPIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uffd.h"

#define COPIER_DEPTH 2 /* runs queued or running at once: the thread never waits for the next */

/* A piece of a prefetch job: NR pages, contiguous at DST (now), IMG (dump time) and OFF of FD. */
struct copier_piece {
	uint64_t dst, img;
	uint64_t off;
	int fd;
	uint32_t nr;
};

#define COPIER_BATCH_PAGES 64 /* pages in one prefetch job, at most */
/* Pages in one background job, at most: a 2 MiB chunk of the smallest pages (pagesize.h). */
#define COPIER_SPAN_PAGES  512

struct copier_job {
	const void *owner; /* the loop's task; compared, never used */
	int uffd;
	uint64_t dst, img; /* a run: where it goes now, and its dump-time address */
	const void *src;   /* a run: from source_get_mapped */
	/*
	 * A run's pages to copy: bit i for page i. The others are done (a fault's or the
	 * prefetch's copy) and no ioctl goes to them: a present page would cost a refused
	 * copy each, and a page done but no longer present must not get old data.
	 */
	uint64_t want[COPIER_SPAN_PAGES / 64];
	/*
	 * Or scattered pieces (a prefetch batch, up to COPIER_BATCH_PAGES pages), which the
	 * thread reads from their files and copies without waking anyone; one UFFDIO_WAKE
	 * over their span ends the job. The loop's until reaped.
	 */
	struct copier_piece *pieces;
	size_t nr_pieces;
	uint64_t len; /* bytes in all */
	/* Results: bytes from the start got through (copied, or present already), of them copied. */
	uint64_t through, copied;
	enum uffd_res res; /* why it stopped short of len, if it did */
	int err;
	bool cancelled;
	bool read_failed; /* a prefetch job's pread, not its copy (err) */
};

struct copier;

int copier_start(struct copier **out);
/* Cancels what is queued, waits for the run under way to stop, joins the thread. */
void copier_stop(struct copier *c);
/* Readable (eventfd) while finished jobs wait to be reaped. */
int copier_fd(const struct copier *c);
/* Queue a job; -EBUSY when COPIER_DEPTH are queued or running or not yet reaped. */
int copier_submit(struct copier *c, const struct copier_job *j);
/* 1 and *out: a finished job, oldest first; 0: none. */
int copier_reap(struct copier *c, struct copier_job *out);
/* Jobs submitted and not yet reaped (their runs are off limits for other copies' planning). */
size_t copier_in_flight(struct copier *c, struct copier_job *out, size_t max);
/*
 * Around every read of a uffd: copier_read_lock (true if OWNER has a job queued or
 * running: the thread's copies are then held off) and, if it returned true,
 * copier_read_unlock, saying whether the messages read had a layout event: OWNER's jobs
 * are then cancelled before any copy of theirs can start again. C may be NULL.
 */
bool copier_read_lock(struct copier *c, const void *owner);
void copier_read_unlock(struct copier *c, const void *owner, bool layout_changed);
/* Cancel OWNER's jobs, then wait until none of them is queued or running (its uffd closes). */
void copier_forget(struct copier *c, const void *owner);

#endif
