/* SPDX-License-Identifier: MIT */
/*
 * The serving state of one restore and the parts of the loop that share it (DESIGN.md,
 * "One fault, end to end"). Each part decides one kind of work; the loop (loop.c) keeps
 * the order between them:
 *
 *   plan.c      what to copy next: pure functions of a task's ranges and fronts
 *   exec.c      applies a copy and owns what every result means (EEXIST, EAGAIN,
 *               ENOENT, ESRCH, failure): the only place that switches on one
 *   fault.c     a task's uffd messages: faults, forks, layout events
 *   prefetch.c  the --prefetch-profile front, in recorded order
 *   populate.c  local background population, the copy thread's feeder and reaper
 *   fetch.c     remote: requests to the page server and the delivery of its answers
 *   forks.c     the restored tree's processes: forked children found, the tree killed
 *
 * Everything runs on the loop's thread; the copy thread (copier.h) and the page-server
 * receivers (remote.h) touch none of this. A part that meets a failure it cannot
 * recover calls loop_fail(); the loop then kills the restored tree and exits 1.
 */
#ifndef LAZY_UFFD_LOOP_H
#define LAZY_UFFD_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <linux/userfaultfd.h>

#include "copier.h"
#include "crimg.h"
#include "pagesize.h"
#include "plan.h"
#include "profile.h"
#include "remote.h"
#include "stats.h"
#include "task.h"

enum copy_res {
	COPY_OK,
	COPY_QUEUED, /* remote: a request is on its way; the answer's copy wakes the fault */
	COPY_RETRY,  /* layout events pending on this uffd */
	COPY_NOENT,  /* the page is no longer registered */
	COPY_GONE,   /* the task exited */
	COPY_FAILED,
};

/* A remote fault that found every request buffer busy: served again after an answer. */
struct pending_fault {
	struct lazy_task *t;
	uint64_t addr;
};

struct daemon {
	const struct crimg *img;
	struct handoff *h;
	int ep;
	int conn_fd; /* criu restore's connection, until it closes after the finish word */
	struct guard *guard;
	uint32_t guard_ids;

	/* The tasks, in handoff order, forked children after their parents. */
	struct lazy_task **tasks;
	size_t nr_tasks, cap_tasks;
	size_t nr_expected; /* task records criu restore will send: pstree size */
	size_t nr_received;
	bool finished; /* the restore-finished word arrived */
	bool failed;

	/* Where the bytes come from: the local pages files (and the copy thread), or */
	struct source *src;
	struct copier *cp; /* NULL without --copy-threads */
	bool bg_idle;	   /* all the background work left is the copy thread's: sleep */
	/* the page server. */
	struct remote *rem;
	uint64_t dup_pages; /* remote pages that arrived when no task wanted them any more */
	struct pending_fault *waiting;
	size_t nr_waiting, cap_waiting;

	/* Fronts: where background population and the prefetch resume (task index). */
	size_t bg_task;
	size_t bg_small; /* remote: tasks whose small ranges have all been asked for */
	size_t pf_task;
	uint64_t bg_pages; /* this pass's background chunk: BG_CHUNK_PAGES or the small one */
	enum copy_path path; /* what the copies under way are for (bytes by path) */

	/* Forked children whose pid is still being looked for (forks.c). */
	size_t nr_unclaimed;
	uint64_t next_claim_ns;

	uint64_t busy_poll_ns;
	uint64_t start_ns, last_fault_ns, finish_ns;

	/* --prefetch-profile (prefetch.c). Prefetch copies leave waking to the end of their
	 * step: [wake_lo, wake_hi) spans what they copied. */
	const struct profile *prefetch;
	bool defer_wake;
	uint64_t wake_lo, wake_hi;
	/* The pieces of the prefetch batches with the copy thread (at most COPIER_DEPTH). */
	struct copier_piece pf_pool[COPIER_DEPTH][COPIER_BATCH_PAGES];
	bool pf_pool_busy[COPIER_DEPTH];
	size_t pf_pool_pos[COPIER_DEPTH]; /* where in its task's profile each batch began */
	uint64_t pf_pool_off[COPIER_DEPTH];

	struct profile *rec; /* --record-profile */
	bool rec_full;

	struct loop_stats ls;
	struct timespec t_start, t_first_uffd, t_finish, t_complete;
};

static inline uint64_t loop_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* ---- loop.c ---- */

/* Serve T from now on: the guard holds a copy of its uffd first, then epoll watches it. */
int loop_add_task(struct daemon *d, struct lazy_task *t);
/* Stop serving T: its memory is complete, or (GONE) it exited. Closes its uffd. */
void loop_task_finish(struct daemon *d, struct lazy_task *t, bool gone);
/* The restore cannot be completed: the loop ends and the restored tree is killed. */
void loop_fail(struct daemon *d);

/* ---- exec.c: one copy into a task, and what its result means ---- */

/*
 * Copy pages [k, k + n) of range RI of T from DATA (from the pages files: exec_copy;
 * from a page server's answer: exec_copy_run). *copied gets the pages copied; a present
 * page is passed over and never overwritten; a range split since it was planned is copied
 * page by page to find the page really gone. With d->defer_wake the copies do not wake
 * and [d->wake_lo, d->wake_hi) grows over them.
 */
enum copy_res exec_copy_run(struct daemon *d, struct lazy_task *t, size_t ri, uint64_t k, uint64_t n,
			    const uint8_t *data, uint64_t *copied);
enum copy_res exec_copy(struct daemon *d, struct lazy_task *t, size_t ri, uint64_t k, uint64_t n,
			uint64_t *copied);
/* Zero pages for a fault outside lazy data: PAGE and the N - 1 after it (a wake if present). */
enum copy_res exec_zero(struct lazy_task *t, uint64_t page, uint64_t n);

/* What the caller of a copy does next, as the executor decided from its result. */
enum exec_next {
	EXEC_GO_ON,  /* copied (or nothing to do): the plan goes on */
	EXEC_QUEUED, /* a fault's page is asked of the page server: its answer wakes it */
	EXEC_REPLAN, /* the task's ranges changed (events read, a page dropped): plan again */
	EXEC_LATER,  /* not now (events pending, VMAs not registered yet): try again later */
	EXEC_STOP,   /* the task is finished (gone) or the daemon failed: leave it */
};

/* Who copied: what a pending event or an unregistered page means depends on it. */
enum exec_who {
	EXEC_FAULT,	/* a fault's copy: the fault is retried after the events */
	EXEC_BG,	/* background or a page server's answer: events read, then replanned */
	EXEC_PREFETCH,	/* the profile: before the finish word an unregistered page is "not yet" */
};

/*
 * Settle RES, the result of a copy into T by WHO, whose first page not copied is PAGE
 * (current address; only read for COPY_NOENT): read pending events, drop and wake an
 * unregistered page, finish a task that exited, fail the daemon.
 */
enum exec_next exec_settle(struct daemon *d, struct lazy_task *t, enum copy_res res, uint64_t page,
			   enum exec_who who);
/* The same for a copy of pages from K of range RI: PAGE is the first of them still pending. */
enum exec_next exec_settle_at(struct daemon *d, struct lazy_task *t, enum copy_res res, size_t ri, uint64_t k,
			      enum exec_who who);
/* The same for a job of the copy thread's, reaped (its failure logged here). */
enum exec_next exec_settle_job(struct daemon *d, struct lazy_task *t, const struct copier_job *j);
/* The job stopped short for a cause the task survives (events, a layout change). */
bool exec_job_cut_short(const struct copier_job *j);
/* RES ends T's batch of messages: the task is gone or the daemon failed. */
bool exec_ends_task(enum copy_res res);

/* ---- fault.c ---- */

/* Serve a fault at ADDR of T (local: copied with its fault-around; remote: asked for). */
enum copy_res fault_serve(struct daemon *d, struct lazy_task *t, uint64_t addr);
/* Read and handle every message queued on T's uffd, retrying faults that met EAGAIN. */
void fault_handle_uffd(struct daemon *d, struct lazy_task *t);

/* ---- prefetch.c ---- */

/* T's share of the --prefetch-profile: its records in order, and its pages counted. */
int prefetch_task_init(struct daemon *d, struct lazy_task *t);
/* Before the finish word: 0 to prefetch now, else the ms to wait, or -1 when none is left. */
int prefetch_wait_ms(const struct daemon *d);
/* Copy up to one step of the next task's profile; true if there was any work. */
bool prefetch_step(struct daemon *d);
/* Log when T's profile is all in. */
void prefetch_note_done(struct daemon *d, struct lazy_task *t);
/* A batch the copy thread had is back (SHORT_CUT: its front goes back to where it began). */
void prefetch_batch_back(struct daemon *d, struct lazy_task *t, const struct copier_piece *pc, bool short_cut);

/* ---- populate.c: local background population ---- */

/* Copy one background chunk (feeding the copy thread first); true if there was work. */
bool populate_step(struct daemon *d);
/* Account the copy thread's finished jobs. */
void populate_reap(struct daemon *d);

/* ---- fetch.c: remote ---- */

/* A fault on pending page K of R: ask for it unless a request that brings it is on its way. */
enum copy_res fetch_fault(struct daemon *d, struct lazy_task *t, struct lazy_range *r, uint64_t k);
/* Take the answers that came in (every fault's, one background answer at most). */
void fetch_drain(struct daemon *d);
/* Keep the background requests in flight up to the bound; true if one was sent. */
bool fetch_background(struct daemon *d);

/* ---- forks.c ---- */

/* Look for the pids of children forked after the restore (NOW_OR_NEVER: last chance). */
void forks_claim(struct daemon *d, bool now_or_never);
/* Kill every restored task, complete or not, with their descendants. */
void forks_kill_tree(struct daemon *d);

#endif
