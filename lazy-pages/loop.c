// SPDX-License-Identifier: MIT
/*
 * The daemon's one loop: take uffds from criu restore, serve every fault as it arrives,
 * and once the restore has finished, copy what is left in chunks, polling for faults
 * between chunks so that a fault never waits behind more than one.
 *
 * A page that the image says had data is either copied with its data or the daemon fails;
 * when it fails it kills the restored tasks it knows (SIGKILL, by pid) so that none of them
 * runs on to read zeros where its memory should be.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "copier.h"
#include "guard.h"
#include "handoff.h"
#include "pagesize.h"
#include "remote.h"
#include "serve.h"
#include "source.h"
#include "stats.h"
#include "task.h"
#include "tree.h"
#include "uffd.h"
#include "lazy_pages.h"

/* Background chunk: 2 MiB copies run near the UFFDIO_COPY ceiling and take ~0.5 ms. */
#define BG_CHUNK_BYTES (2ULL << 20)
#define BG_CHUNK_PAGES PAGES_IN(BG_CHUNK_BYTES)
/*
 * Pages copied for a fault: the faulting page and the pending run after it. The window
 * doubles while a task's faults come in address order, each one just past what the last
 * copied, up to a background chunk; any other fault sets it back.
 */
#define FAULT_AROUND_PAGES PAGES_IN(32 << 10)
#define FAULT_AROUND_MAX   BG_CHUNK_PAGES
#define MSGS_PER_READ	   64
/* Looking for a forked child's pid: how often, and for how long before giving up. */
#define CLAIM_INTERVAL_NS  200000ULL
#define CLAIM_GIVE_UP_NS   5000000000ULL
/* How long kill_restored waits for each killed process to be gone. */
#define KILL_WAIT_MS	   10000
/*
 * While faults are arriving (the busy-poll window), background work goes on in chunks
 * this small (32 KiB, some us) between polls: a fault then waits behind at most
 * one of them, and the population does not stop while a program faults its way through.
 */
#define BG_POLL_CHUNK_PAGES PAGES_IN(32 << 10)
/*
 * A background span with several runs (pitted by faults or a prefetch) looks for events
 * after this much: 512 KiB, ~125 us. Checking every 128 KiB kept the wait median (1G
 * random: 95 us) but cost the pass a quarter (0.34 -> 0.43 s); every 1 MiB or never made
 * a waiting fault wait out most of a span (median 550-610 us) for a pass ~10% shorter.
 */
#define SPAN_CHECK_PAGES PAGES_IN(512 << 10)
/* How long after the finish word background chunks stay that small. */
#define START_SMALL_NS (20 * 1000000ULL)
/*
 * A prefetch step ends after this long even with pages of its chunk left: a scattered
 * profile is copied a page per call (~4 us each), and a fault arriving meanwhile waits
 * for the step as it would for one background chunk. Shorter while faults are arriving.
 */
#define PREFETCH_STEP_NS      (500 * 1000ULL)
#define PREFETCH_STEP_POLL_NS (50 * 1000ULL)
/* Prefetch before the finish word found the VMAs not registered yet: retry after this. */
#define PREFETCH_RETRY_NS (1000000ULL)
/* --record-profile: background population waits until faults have stopped this long. */
#define RECORD_QUIET_NS (250 * 1000000ULL)

enum copy_res {
	COPY_OK,
	COPY_QUEUED, /* remote: a request is on its way; the answer's copy wakes the fault */
	COPY_RETRY, /* layout events pending on this uffd */
	COPY_NOENT, /* the page is no longer registered */
	COPY_GONE,  /* the task exited */
	COPY_FAILED,
};

struct pending_fault {
	struct lazy_task *t;
	uint64_t addr;
};

struct daemon {
	const struct crimg *img;
	struct source *src;   /* local pages files, or */
	struct copier *cp;    /* local: the second thread copying background runs, or NULL */
	bool bg_idle;	      /* all the background work left is the copy thread's: sleep */
	struct remote *rem;   /* a page server */
	uint64_t dup_pages;   /* remote pages that arrived when no task wanted them any more */
	struct pending_fault *waiting; /* remote faults that found every buffer busy */
	size_t nr_waiting, cap_waiting;
	struct handoff *h;
	struct guard *guard;
	uint32_t guard_ids;
	size_t nr_unclaimed;	/* forked children whose pid is still being looked for */
	uint64_t next_claim_ns;
	int ep;
	int conn_fd;

	struct lazy_task **tasks;
	size_t nr_tasks, cap_tasks;
	size_t nr_expected; /* task records criu restore will send: pstree size */
	size_t nr_received;
	bool finished; /* the restore-finished word arrived */
	size_t bg_task;
	size_t pf_task; /* where prefetch resumes */
	bool failed;
	enum copy_path path; /* what the copies under way are for (bytes by path) */

	uint64_t busy_poll_ns;
	uint64_t bg_pages; /* this background step's chunk */
	uint64_t start_ns, last_fault_ns, finish_ns;
	const struct profile *prefetch;
	/*
	 * Prefetch copies leave waking to the end of their step: [wake_lo, wake_hi) spans
	 * what they copied. See prefetch_step.
	 */
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

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static double elapsed(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) + (b->tv_nsec - a->tv_nsec) / 1e9;
}

static int add_task(struct daemon *d, struct lazy_task *t)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = t };
	int ret;

	if (d->nr_tasks == d->cap_tasks) {
		size_t cap = d->cap_tasks ? d->cap_tasks * 2 : 16;
		struct lazy_task **n = realloc(d->tasks, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		d->tasks = n;
		d->cap_tasks = cap;
	}
	/* Not served before the guard holds it: a daemon dying now must not leave zeros. */
	t->guard_id = ++d->guard_ids;
	ret = guard_hold(d->guard, t->guard_id, t->vpid, t->host_pid, t->uffd);
	if (!ret && t->pidfd >= 0) {
		ret = guard_pidfd(d->guard, t->guard_id, t->pidfd, t->host_pid, t->outer_ppid, t->sid);
		if (ret)
			guard_release(d->guard, t->guard_id);
	}
	if (ret)
		return ret;
	if (epoll_ctl(d->ep, EPOLL_CTL_ADD, t->uffd, &ev)) {
		pr_err("epoll_ctl(uffd of task %d): %m", t->vpid);
		ret = -errno;
		guard_release(d->guard, t->guard_id);
		return ret;
	}
	d->tasks[d->nr_tasks++] = t;
	return 0;
}

/* Stop serving T: its memory is complete, or it is gone. Closing the uffd unregisters. */
static void task_finish(struct daemon *d, struct lazy_task *t, bool gone)
{
	if (t->done)
		return;
	if (gone)
		pr_info("task %d exited with %llu lazy pages not copied (nothing left to serve)", t->vpid,
			(unsigned long long)t->nr_pending);
	else
		pr_info("task %d: all lazy pages copied", t->vpid);
	/* No copy of the thread may go to this fd number once it is closed and reused. */
	copier_forget(d->cp, t);
	/*
	 * The guard's copy keeps the file, and so its epoll registration, alive after our
	 * close: a later event would wake us for a task we no longer serve, forever.
	 */
	epoll_ctl(d->ep, EPOLL_CTL_DEL, t->uffd, NULL);
	close(t->uffd);
	guard_release(d->guard, t->guard_id);
	t->uffd = -1;
	t->done = true;
	t->gone = gone;
	task_free_ranges(t);
	free(t->pf);
	free(t->pf_sorted);
	t->pf = NULL;
	t->pf_sorted = NULL;
	t->pf_nr = t->pf_nr_sorted = 0;
}

static void fail(struct daemon *d)
{
	d->failed = true;
}

/*
 * Copy pages [k, k + n) of range RI of T from DATA. Ranges may be reallocated by the
 * caller between calls, never during one.
 */
static enum copy_res copy_run(struct daemon *d, struct lazy_task *t, size_t ri, uint64_t k, uint64_t n,
			      const uint8_t *data, uint64_t *copied)
{
	struct lazy_range *r = &t->ranges[ri];

	uint64_t limit = n; /* pages per UFFDIO_COPY: 1 after ENOENT, to find where it stops */

	*copied = 0;
	while (n) {
		uint64_t done, pages;
		enum uffd_res res;
		int err = 0;

		res = uffd_copy_mode(t->uffd, r->start + (k << PAGE_SHIFT), data, (n < limit ? n : limit) << PAGE_SHIFT,
				     !d->defer_wake, &done, &err);
		if (d->defer_wake && done) {
			uint64_t a = r->start + (k << PAGE_SHIFT);

			if (a < d->wake_lo)
				d->wake_lo = a;
			if (a + done > d->wake_hi)
				d->wake_hi = a + done;
		}
		pages = done >> PAGE_SHIFT;
		task_mark_done(t, r, k, pages);
		*copied += pages;
		t->st.bytes += done;
		t->st.bytes_path[d->path] += done;
		k += pages;
		n -= pages;
		data += done;
		switch (res) {
		case UFFD_OK:
			break;
		case UFFD_EXISTS:
			/* Already mapped (by us, or inherited): never overwrite it. */
			task_mark_done(t, r, k, 1);
			k++;
			n--;
			data += PAGE_SZ;
			break;
		case UFFD_RETRY:
			if (pages)
				break;
			return COPY_RETRY;
		case UFFD_NOENT:
			/*
			 * A copy must stay inside one VMA, and an mprotect() or madvise() of part
			 * of a VMA after the restore splits it: retry page by page, so that only
			 * a page that really is no longer registered is given up.
			 */
			if (limit > 1) {
				limit = 1;
				break;
			}
			return COPY_NOENT;
		case UFFD_GONE:
			return COPY_GONE;
		case UFFD_FAILED:
			pr_err("UFFDIO_COPY of %llu pages at 0x%llx into task %d: %s", (unsigned long long)n,
			       (unsigned long long)(r->start + (k << PAGE_SHIFT)), t->vpid, strerror(err));
			return COPY_FAILED;
		}
	}
	return COPY_OK;
}

/* Copy pages [k, k + n) of range RI of T from the image's pages files. */
static enum copy_res copy_pages(struct daemon *d, struct lazy_task *t, size_t ri, uint64_t k, uint64_t n,
				uint64_t *copied)
{
	*copied = 0;
	while (n) {
		struct lazy_range *r = &t->ranges[ri];
		const void *data;
		uint64_t run, c;
		enum copy_res res;

		if (source_get(d->src, t->img, r->img_start + (k << PAGE_SHIFT), n, &data, &run))
			return COPY_FAILED;
		res = copy_run(d, t, ri, k, run, data, &c);
		source_put(d->src, data, run);
		*copied += c;
		if (res != COPY_OK)
			return res;
		k += run;
		n -= run;
	}
	return COPY_OK;
}

/*
 * Handle a fault on PAGE, which has no lazy data: map zero pages at PAGE and the N - 1
 * after it (a hole's neighbours, which read as zero too), or, if PAGE is present already
 * (copied meanwhile, or a second thread's fault on it), just wake the faulting thread.
 */
/*
 * PAGE was unmapped or moved away while its fault waited. The kernel does not wake such
 * a waiter by itself: woken, the thread faults again where the memory is now (a new
 * fault for us) or gets the SIGSEGV of an unmapped address, as it would without a uffd.
 */
static enum copy_res wake_unregistered(struct lazy_task *t, uint64_t page)
{
	int err = 0;

	switch (uffd_wake(t->uffd, page, PAGE_SZ, &err)) {
	case UFFD_OK:
	case UFFD_NOENT:
	case UFFD_EXISTS:
		return COPY_OK;
	case UFFD_GONE:
		return COPY_GONE;
	default:
		pr_err("UFFDIO_WAKE at 0x%llx in task %d: %s", (unsigned long long)page, t->vpid, strerror(err));
		return COPY_FAILED;
	}
}

/* PAGE is no longer registered: out of T's lazy ranges, and its waiter woken. */
static enum copy_res drop_unregistered(struct lazy_task *t, uint64_t page)
{
	pr_debug("task %d: 0x%llx is no longer registered; dropping it", t->vpid, (unsigned long long)page);
	if (task_drop(t, page, page + PAGE_SZ))
		return COPY_FAILED;
	return wake_unregistered(t, page);
}

static enum copy_res serve_zero(struct lazy_task *t, uint64_t page, uint64_t n)
{
	uint64_t done;
	int err = 0;
	enum uffd_res res;

	res = uffd_zero(t->uffd, page, n << PAGE_SHIFT, &done, &err);
	if (done) {
		/* The faulting page is the first: the rest stopped at a present page or the like. */
		t->st.pages_zero += done >> PAGE_SHIFT;
		return COPY_OK;
	}
	switch (res) {
	case UFFD_OK:
		return COPY_OK;
	case UFFD_EXISTS:
		switch (uffd_wake(t->uffd, page, PAGE_SZ, &err)) {
		case UFFD_OK:
		case UFFD_NOENT:
			return COPY_OK;
		case UFFD_GONE:
			return COPY_GONE;
		default:
			break;
		}
		pr_err("UFFDIO_WAKE at 0x%llx in task %d: %s", (unsigned long long)page, t->vpid, strerror(err));
		return COPY_FAILED;
	case UFFD_RETRY:
		return COPY_RETRY;
	case UFFD_NOENT:
		/* N pages crossed the end of the VMA: the faulting page alone then. */
		if (n > 1)
			return serve_zero(t, page, 1);
		return wake_unregistered(t, page);
	case UFFD_GONE:
		return COPY_GONE;
	case UFFD_FAILED:
		break;
	}
	pr_err("UFFDIO_ZEROPAGE at 0x%llx in task %d: %s", (unsigned long long)page, t->vpid, strerror(err));
	return COPY_FAILED;
}

static enum copy_res remote_fault(struct daemon *d, struct lazy_task *t, struct lazy_range *r, uint64_t k);

/*
 * A fault on a page with nothing to copy: copied already (N is 1: a wake-up), or outside
 * lazy data, where N zero pages go in. Counted as a zero fault if it mapped any.
 */
static enum copy_res serve_absent(struct daemon *d, struct lazy_task *t, uint64_t page, uint64_t n)
{
	uint64_t zeros = t->st.pages_zero;
	enum copy_res res = serve_zero(t, page, n);

	if (res == COPY_RETRY)
		return res; /* counted when it is retried */
	if (t->st.pages_zero != zeros)
		t->st.faults_zero++;
	else
		t->st.faults_present++;
	return res;
}

/*
 * A fault outside lazy data: memory the program had not touched (or had dropped) before
 * the dump, and now writes, as a heap grows. Zero its neighbours in the hole too, with a
 * window that doubles while such faults come in address order, as for copies: a program
 * filling fresh memory then takes one round trip per window instead of one per page.
 */
static enum copy_res serve_hole(struct daemon *d, struct lazy_task *t, uint64_t page)
{
	uint64_t n;
	enum copy_res res;

	if (page == t->zero_next && t->zero_around)
		t->zero_around = t->zero_around * 2 < FAULT_AROUND_MAX ? t->zero_around * 2 : FAULT_AROUND_MAX;
	else
		t->zero_around = FAULT_AROUND_PAGES;
	n = task_hole_pages(t, page, t->zero_around);
	res = serve_absent(d, t, page, n ? n : 1);
	if (res == COPY_OK)
		t->zero_next = page + (n << PAGE_SHIFT);
	return res;
}

/*
 * --record-profile: the faulting page, and on a sequential fault the pages between the
 * previous fault and this one too (its fault-around, which the task evidently read, or it
 * would not be here). A random fault's fault-around is left out: mostly never touched, it
 * would make the prefetch of a scattered hot set several times larger than the set.
 */
static void record_fault(struct daemon *d, struct lazy_task *t, uint64_t img, bool seq)
{
	int ret = 0;

	if (seq && img > t->seq_prev_img && img - t->seq_prev_img <= (FAULT_AROUND_MAX << PAGE_SHIFT) &&
	    img - t->seq_prev_img > PAGE_SZ)
		ret = profile_add(d->rec, t->vpid, t->seq_prev_img + PAGE_SZ,
				  (uint32_t)((img - t->seq_prev_img - PAGE_SZ) >> PAGE_SHIFT));
	if (!ret)
		ret = profile_add(d->rec, t->vpid, img, 1);
	if (ret && !d->rec_full) {
		pr_warn("--record-profile: %s; the profile stops here", strerror(-ret));
		d->rec_full = true;
	}
}

/* Is dump-time page IMG among T's profile pages? */
static bool in_profile(const struct lazy_task *t, uint64_t img)
{
	size_t lo = 0, hi = t->pf_nr_sorted;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct profile_rec *p = &t->pf_sorted[mid];

		if (img < p->img_addr)
			hi = mid;
		else if (img >= p->img_addr + ((uint64_t)p->nr_pages << PAGE_SHIFT))
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

static enum copy_res serve_fault(struct daemon *d, struct lazy_task *t, uint64_t addr)
{
	uint64_t page = addr & ~(PAGE_SZ - 1), k, n, copied;
	ssize_t ri = task_find(t, page);
	bool seq;
	struct lazy_range *r;
	enum copy_res res;

	if (ri < 0)
		return serve_hole(d, t, page);
	r = &t->ranges[ri];
	k = (page - r->start) >> PAGE_SHIFT;
	if (!range_page_pending(r, k))
		return serve_absent(d, t, page, 1);
	if (d->rem) {
		t->st.faults_queued++;
		return remote_fault(d, t, r, k);
	}
	t->st.faults_copied++;
	/* Sequential: this fault is where the last one's copy ended. */
	seq = page == t->seq_next && t->around;
	if (seq)
		t->around = t->around * 2 < FAULT_AROUND_MAX ? t->around * 2 : FAULT_AROUND_MAX;
	else
		/* Recording: a neighbour copied unasked would never show up in the profile. */
		t->around = d->rec ? 1 : FAULT_AROUND_PAGES;
	n = range_pending_run(r, k, t->around);
	d->path = PATH_AROUND;
	/*
	 * The faulting page alone first, read and copied (its thread woken) before the rest
	 * of the run is read: the thread waits for one page, not for the fault-around.
	 */
	res = copy_pages(d, t, ri, k, 1, &copied);
	if (res == COPY_OK && n > 1) {
		uint64_t more;
		enum copy_res rest = copy_pages(d, t, ri, k + 1, n - 1, &more);

		copied += more;
		/*
		 * The fault is served. Pending layout events or an unregistered page in the
		 * rest of the run are met again by whatever copies those pages next; passing
		 * them on would retry (and count) a fault already answered, or drop its page.
		 */
		if (rest == COPY_GONE || rest == COPY_FAILED)
			res = rest;
	}
	if (res == COPY_RETRY && !copied)
		t->st.faults_copied--; /* counted when it is retried */
	if (copied) {
		/* The run starts at the faulting page: its bytes are the fault's own. */
		t->st.bytes_path[PATH_AROUND] -= PAGE_SZ;
		t->st.bytes_path[PATH_FAULT] += PAGE_SZ;
		t->st.pages_around += copied - 1;
		if (t->pf_nr_sorted && in_profile(t, r->img_start + (k << PAGE_SHIFT)))
			t->st.prefetch_misses++;
		if (d->rec && !t->parent_vpid)
			record_fault(d, t, r->img_start + (k << PAGE_SHIFT), seq);
	}
	t->seq_next = page + (n << PAGE_SHIFT);
	t->seq_prev_img = r->img_start + (k << PAGE_SHIFT);
	t->st.pages_fault += copied;
	return res == COPY_NOENT ? drop_unregistered(t, page) : res;
}

static int on_fork(struct daemon *d, struct lazy_task *parent, int uffd)
{
	struct lazy_task *c = calloc(1, sizeof(*c));
	int ret;

	if (!c) {
		close(uffd);
		return -ENOMEM;
	}
	c->vpid = parent->vpid; /* its pages are looked up in the parent's image */
	c->parent_vpid = parent->vpid;
	c->uffd = uffd;
	c->pidfd = -1;
	c->fork_parent = parent;
	c->sid = parent->sid;
	c->img = parent->img;
	ret = task_clone_ranges(c, parent);
	if (!ret)
		ret = add_task(d, c);
	if (ret) {
		pr_err("cannot track the child forked by task %d: %s", parent->vpid, strerror(-ret));
		task_free_ranges(c);
		close(uffd);
		free(c);
		return ret;
	}
	d->nr_unclaimed++;
	d->next_claim_ns = 0;
	pr_info("task %d forked; its child gets %llu lazy pages", parent->vpid, (unsigned long long)c->nr_pending);
	return 0;
}

/*
 * Faults that met pending layout events are kept here and retried after reading them.
 * Never bounded: a dropped fault outside lazy data is answered by nothing else.
 */
struct deferred {
	uint64_t *addr;
	size_t nr, cap;
};

static int defer(struct deferred *df, uint64_t addr)
{
	if (df->nr == df->cap) {
		size_t cap = df->cap ? df->cap * 2 : MSGS_PER_READ;
		uint64_t *n = realloc(df->addr, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		df->addr = n;
		df->cap = cap;
	}
	df->addr[df->nr++] = addr;
	return 0;
}

static enum copy_res handle_msg(struct daemon *d, struct lazy_task *t, const struct uffd_msg *m, struct deferred *df)
{
	enum copy_res res = COPY_OK;
	int ret = 0;

	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT: {
		uint64_t t0 = now_ns();

		t->st.faults++;
		d->last_fault_ns = t0;
		res = serve_fault(d, t, m->arg.pagefault.address);
		if (res == COPY_RETRY) {
			if (defer(df, m->arg.pagefault.address)) {
				pr_err("task %d: out of memory keeping a fault for later", t->vpid);
				return COPY_FAILED;
			}
			return COPY_OK;
		}
		if (res == COPY_OK)
			stats_add_latency(&t->st, now_ns() - t0);
		return res == COPY_QUEUED ? COPY_OK : res;
	}
	case UFFD_EVENT_FORK:
		ret = on_fork(d, t, (int)m->arg.fork.ufd);
		break;
	case UFFD_EVENT_REMAP:
		pr_debug("task %d: remap 0x%llx -> 0x%llx (%llu bytes)", t->vpid,
			 (unsigned long long)m->arg.remap.from, (unsigned long long)m->arg.remap.to,
			 (unsigned long long)m->arg.remap.len);
		ret = task_remap(t, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len);
		break;
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		/* Removed pages read as zero from now on, unmapped ones are gone: neither is lazy. */
		pr_debug("task %d: %s 0x%llx-0x%llx", t->vpid, m->event == UFFD_EVENT_REMOVE ? "remove" : "unmap",
			 (unsigned long long)m->arg.remove.start, (unsigned long long)m->arg.remove.end);
		ret = task_drop(t, m->arg.remove.start, m->arg.remove.end);
		break;
	default:
		pr_warn("task %d: unknown uffd event 0x%x ignored", t->vpid, m->event);
		break;
	}
	if (ret) {
		pr_err("task %d: cannot follow a layout change: %s", t->vpid, strerror(-ret));
		return COPY_FAILED;
	}
	return res;
}

/*
 * The rest of a batch whose task is gone or failed: its FORK messages carry uffds of
 * children that live on (and an fd the read installed in us), so those are still taken
 * up; everything else of that task no longer matters.
 */
static void batch_forks(struct daemon *d, struct lazy_task *t, const struct uffd_msg *msgs, int from, int n)
{
	int i;

	for (i = from; i < n; i++)
		if (msgs[i].event == UFFD_EVENT_FORK && on_fork(d, t, (int)msgs[i].arg.fork.ufd))
			fail(d);
}

/* Read and handle every message queued on T's uffd, retrying faults that met EAGAIN. */
static void handle_uffd(struct daemon *d, struct lazy_task *t)
{
	struct uffd_msg msgs[MSGS_PER_READ];
	struct deferred df = { 0 }, again = { 0 };
	unsigned int spins = 0;
	enum copy_res res;
	int n, i;

	for (;;) {
		bool held = copier_read_lock(d->cp, t);

		n = uffd_read_msgs(t->uffd, msgs, MSGS_PER_READ);
		if (held) {
			bool layout = false;

			for (i = 0; i < n; i++)
				layout |= msgs[i].event != UFFD_EVENT_PAGEFAULT;
			copier_read_unlock(d->cp, t, layout);
		}
		if (n < 0) {
			pr_err("reading the uffd of task %d: %s", t->vpid, strerror(-n));
			fail(d);
			goto out;
		}
		for (i = 0; i < n; i++) {
			res = handle_msg(d, t, &msgs[i], &df);
			if (res == COPY_GONE || res == COPY_FAILED) {
				batch_forks(d, t, msgs, i + 1, n);
				if (res == COPY_GONE)
					task_finish(d, t, true);
				else
					fail(d);
				goto out;
			}
		}
		if (n == MSGS_PER_READ)
			continue;
		if (!df.nr)
			break;
		/* Retry deferred faults; EAGAIN again means an event is still being queued. */
		{
			struct deferred tmp;
			size_t j;

			again.nr = 0;
			for (j = 0; j < df.nr; j++) {
				res = serve_fault(d, t, df.addr[j]);
				if (res == COPY_QUEUED)
					continue;
				if (res == COPY_RETRY) {
					if (defer(&again, df.addr[j])) {
						pr_err("task %d: out of memory keeping a fault for later", t->vpid);
						fail(d);
						goto out;
					}
				} else if (res == COPY_GONE) {
					task_finish(d, t, true);
					goto out;
				} else if (res == COPY_FAILED) {
					fail(d);
					goto out;
				}
			}
			tmp = df;
			df = again;
			again = tmp;
		}
		if (df.nr && ++spins > 16)
			sched_yield();
	}
	if (d->finished && !t->nr_pending)
		task_finish(d, t, false);
out:
	free(df.addr);
	free(again.addr);
}

static struct lazy_task *find_task(struct daemon *d, pid_t vpid)
{
	size_t i;

	for (i = 0; i < d->nr_tasks; i++)
		if (d->tasks[i]->vpid == vpid && !d->tasks[i]->parent_vpid)
			return d->tasks[i];
	return NULL;
}

static int cmp_rec(const void *a, const void *b)
{
	const struct profile_rec *x = a, *y = b;

	return x->img_addr < y->img_addr ? -1 : x->img_addr > y->img_addr;
}

/* The range of T holding dump-time page IMG, or -1. */
static ssize_t range_by_img(const struct lazy_task *t, uint64_t img)
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

/* T's share of the --prefetch-profile: its records in order, and its pages counted. */
static int task_prefetch_init(struct daemon *d, struct lazy_task *t)
{
	const struct profile *p = d->prefetch;
	size_t i, n = 0;

	for (i = 0; i < p->nr; i++)
		n += p->recs[i].vpid == t->vpid;
	if (!n)
		return 0;
	t->pf = malloc(n * sizeof(*t->pf));
	t->pf_sorted = malloc(n * sizeof(*t->pf_sorted));
	if (!t->pf || !t->pf_sorted)
		return -ENOMEM;
	for (i = 0; i < p->nr; i++) {
		const struct profile_rec *rec = &p->recs[i];
		uint64_t a = rec->img_addr, end = a + ((uint64_t)rec->nr_pages << PAGE_SHIFT);

		if (rec->vpid != t->vpid)
			continue;
		t->pf_sorted[t->pf_nr] = *rec;
		t->pf[t->pf_nr++] = rec;
		while (a < end) {
			ssize_t ri = task_find(t, a);
			uint64_t stop = end;
			size_t j;

			if (ri >= 0) {
				const struct lazy_range *r = &t->ranges[ri];

				if (r->start + (r->nr_pages << PAGE_SHIFT) < stop)
					stop = r->start + (r->nr_pages << PAGE_SHIFT);
				t->st.profile_pages += (stop - a) >> PAGE_SHIFT;
			} else {
				for (j = 0; j < t->nr_ranges; j++)
					if (t->ranges[j].start > a && t->ranges[j].start < stop)
						stop = t->ranges[j].start;
				t->st.profile_skipped += (stop - a) >> PAGE_SHIFT;
			}
			a = stop;
		}
	}
	t->pf_nr_sorted = t->pf_nr;
	qsort(t->pf_sorted, t->pf_nr_sorted, sizeof(*t->pf_sorted), cmp_rec);
	if (t->st.profile_skipped)
		pr_warn("--prefetch-profile: %llu pages of task %d are not lazy memory of this dump; skipped",
			(unsigned long long)t->st.profile_skipped, t->vpid);
	return 0;
}

/*
 * Before the finish word: 0 if a task's profile can be prefetched now, the ms to wait if
 * all that is left waits for the restorer to register its VMAs, -1 if nothing is left.
 */
static int prefetch_wait_ms(const struct daemon *d)
{
	uint64_t now = now_ns(), next = UINT64_MAX;
	size_t i;

	for (i = 0; i < d->nr_tasks; i++) {
		const struct lazy_task *t = d->tasks[i];

		if (t->done || t->pf_pos >= t->pf_nr)
			continue;
		if (t->pf_retry_ns <= now)
			return 0;
		if (t->pf_retry_ns < next)
			next = t->pf_retry_ns;
	}
	return next == UINT64_MAX ? -1 : (int)((next - now) / 1000000) + 1;
}

/* Wake the threads of T waiting on pages its prefetch step copied without waking them. */
static void prefetch_wake(struct daemon *d, struct lazy_task *t)
{
	int err = 0;

	if (d->wake_hi > d->wake_lo && !t->done &&
	    uffd_wake(t->uffd, d->wake_lo, d->wake_hi - d->wake_lo, &err) == UFFD_FAILED)
		pr_warn("task %d: UFFDIO_WAKE after a prefetch step: %s", t->vpid, strerror(err));
	d->wake_lo = UINT64_MAX;
	d->wake_hi = 0;
}

/* Say when T's profile is in: every record taken, and no batch of it with the thread. */
static void prefetch_note_done(struct daemon *d, struct lazy_task *t)
{
	if (!t->pf_nr || t->pf_pos < t->pf_nr || t->pf_jobs)
		return;
	d->ls.prefetch_done_ms = (now_ns() - d->start_ns) / 1e6;
	pr_info("task %d: profile prefetched, %.1f ms after the daemon started%s", t->vpid, d->ls.prefetch_done_ms,
		d->finished ? "" : ", before the restore finished");
}

/* N pages of T's current profile record are taken care of: move on. */
static void prefetch_advance(struct daemon *d, struct lazy_task *t, uint64_t n)
{
	t->pf_off += n;
	if (t->pf_off >= t->pf[t->pf_pos]->nr_pages) {
		t->pf_pos++;
		t->pf_off = 0;
	}
	prefetch_note_done(d, t);
}

/*
 * The next batch of T's profile for the copy thread: up to COPIER_BATCH_PAGES pending
 * pages from the front, which moves past them. False if none was left (or on failure).
 */
static bool prefetch_batch(struct daemon *d, struct lazy_task *t, struct copier_job *j)
{
	struct copier_piece *pc;
	uint64_t pages = 0;
	size_t np = 0, slot;

	for (slot = 0; slot < COPIER_DEPTH && d->pf_pool_busy[slot]; slot++)
		;
	if (slot == COPIER_DEPTH)
		return false;
	pc = d->pf_pool[slot];
	d->pf_pool_pos[slot] = t->pf_pos;
	d->pf_pool_off[slot] = t->pf_off;
	while (t->pf_pos < t->pf_nr && pages < COPIER_BATCH_PAGES) {
		const struct profile_rec *rec = t->pf[t->pf_pos];
		uint64_t a = rec->img_addr + (t->pf_off << PAGE_SHIFT), n = 1, k, max, off;
		ssize_t ri = range_by_img(t, a);
		int fd;

		if (ri >= 0) {
			const struct lazy_range *r = &t->ranges[ri];

			k = (a - r->img_start) >> PAGE_SHIFT;
			max = rec->nr_pages - t->pf_off;
			if (max > r->nr_pages - k)
				max = r->nr_pages - k;
			if (max > COPIER_BATCH_PAGES - pages)
				max = COPIER_BATCH_PAGES - pages;
			if (range_page_pending(r, k)) {
				n = range_pending_run(r, k, max);
				if (source_locate(d->src, t->img, a, n, &fd, &off, &n)) {
					fail(d);
					return false;
				}
				pc[np++] = (struct copier_piece){
					.dst = r->start + (k << PAGE_SHIFT),
					.img = a,
					.off = off,
					.fd = fd,
					.nr = (uint32_t)n,
				};
				pages += n;
			} else {
				n = range_next_pending(r, k) - k;
				if (n > max)
					n = max;
			}
		}
		prefetch_advance(d, t, n);
	}
	if (!np)
		return false;
	*j = (struct copier_job){
		.owner = t,
		.uffd = t->uffd,
		.pieces = pc,
		.nr_pieces = np,
		.len = pages << PAGE_SHIFT,
	};
	return true;
}

/*
 * Batch PC is back. Cut short (a layout change, pending events, VMAs not all registered
 * yet), it gives its place back: T's prefetch goes on from where the batch began, and
 * passes over what is in by now at the cost of a bitmap test a page.
 */
static void pf_pool_put(struct daemon *d, struct lazy_task *t, const struct copier_piece *pc, bool short_cut)
{
	size_t i = (pc - d->pf_pool[0]) / COPIER_BATCH_PAGES;

	d->pf_pool_busy[i] = false;
	if (!short_cut || !t || t->done)
		return;
	if (d->pf_pool_pos[i] < t->pf_pos || (d->pf_pool_pos[i] == t->pf_pos && d->pf_pool_off[i] < t->pf_off)) {
		t->pf_pos = d->pf_pool_pos[i];
		t->pf_off = d->pf_pool_off[i];
	}
}

/*
 * Both CPUs on T's profile: while the thread has room, give it the batch at the front
 * (the program, resumed, wants those first); the loop goes on behind it.
 */
static void feed_prefetch(struct daemon *d, struct lazy_task *t)
{
	struct copier_job all[COPIER_DEPTH], j;

	while (!d->failed && copier_in_flight(d->cp, all, COPIER_DEPTH) < COPIER_DEPTH && prefetch_batch(d, t, &j)) {
		if (copier_submit(d->cp, &j))
			return;
		d->pf_pool_busy[(j.pieces - d->pf_pool[0]) / COPIER_BATCH_PAGES] = true;
		t->pf_jobs++;
	}
}

/*
 * Copy up to one chunk of the next task's profile pages, in recorded order; true if any
 * work. The program, once resumed, runs into the front of the prefetch and waits there
 * page after page: woken by each copy, it costs an IPI and a context switch per page on
 * both sides (~4000 a pass of a 16384-page profile). So the copies do not wake, and one
 * UFFDIO_WAKE over their span ends the step (the program then runs through the pages the
 * step copied). A thread whose fault the loop reads meanwhile is served and woken as
 * ever; one that the span's wake finds still missing its page faults again.
 */
static bool prefetch_step(struct daemon *d)
{
	size_t i;

	for (i = 0; i < d->nr_tasks; i++) {
		size_t ti = (d->pf_task + i) % d->nr_tasks;
		struct lazy_task *t = d->tasks[ti];
		uint64_t budget = d->bg_pages, start = now_ns();
		uint64_t step_ns = d->bg_pages < BG_CHUNK_PAGES ? PREFETCH_STEP_POLL_NS : PREFETCH_STEP_NS;

		if (t->done || t->pf_pos >= t->pf_nr || (!d->finished && t->pf_retry_ns > now_ns()))
			continue;
		d->pf_task = ti;
		d->wake_lo = UINT64_MAX;
		d->wake_hi = 0;
		/* Before the finish word, only once the loop's copies show the VMAs registered. */
		if (d->cp && (d->finished || t->pf_live))
			feed_prefetch(d, t);
		while (budget && !t->done && !d->failed && t->pf_pos < t->pf_nr && now_ns() - start < step_ns) {
			const struct profile_rec *rec = t->pf[t->pf_pos];
			uint64_t a = rec->img_addr + (t->pf_off << PAGE_SHIFT), n = 1, copied, k, max;
			ssize_t ri = range_by_img(t, a);
			enum copy_res res = COPY_OK;
			struct lazy_range *r;

			if (ri >= 0) {
				r = &t->ranges[ri];
				k = (a - r->img_start) >> PAGE_SHIFT;
				max = rec->nr_pages - t->pf_off;
				if (max > r->nr_pages - k)
					max = r->nr_pages - k;
				if (max > budget)
					max = budget;
				if (range_page_pending(r, k)) {
					n = range_pending_run(r, k, max);
					d->path = PATH_PREFETCH;
					d->defer_wake = true;
					res = copy_pages(d, t, ri, k, n, &copied);
					d->defer_wake = false;
					t->st.pages_prefetch += copied;
					t->st.prefetch_hits += copied;
					t->pf_live |= copied > 0;
				} else {
					n = range_next_pending(r, k) - k;
					if (n > max)
						n = max;
				}
			}
			switch (res) {
			case COPY_OK:
			case COPY_QUEUED:
				break;
			case COPY_RETRY:
				/* Layout events first; the next step tries these pages again. */
				prefetch_wake(d, t);
				handle_uffd(d, t);
				return true;
			case COPY_NOENT:
				/*
				 * Before the finish word, the restorer may not have registered
				 * the VMAs yet (criu sends the uffd first): try again shortly.
				 */
				if (!d->finished) {
					prefetch_wake(d, t);
					t->pf_retry_ns = now_ns() + PREFETCH_RETRY_NS;
					return true;
				}
				if (task_drop(t, r->start + (k << PAGE_SHIFT), r->start + ((k + 1) << PAGE_SHIFT)))
					fail(d);
				continue;
			case COPY_GONE:
				task_finish(d, t, true);
				return true;
			case COPY_FAILED:
				prefetch_wake(d, t);
				fail(d);
				return true;
			}
			budget -= n < budget ? n : budget;
			prefetch_advance(d, t, n);
		}
		prefetch_wake(d, t);
		/* Before the finish word a task is never closed: the finish word does that. */
		if (d->finished && !t->done && !t->nr_pending)
			task_finish(d, t, false);
		return true;
	}
	return false;
}

static int on_task(struct daemon *d, const struct handoff_msg *m)
{
	const struct crimg_task *it = crimg_find_task(d->img, m->vpid);
	struct lazy_task *t;
	int ret;

	if (!it || it->zombie) {
		pr_err("criu restore sent a uffd for task %d, which the images in %s %s", m->vpid, crimg_dir(d->img),
		       it ? "record as a zombie" : "do not have");
		close(m->uffd);
		return -EINVAL;
	}
	if (find_task(d, m->vpid)) {
		pr_err("criu restore sent a second uffd for task %d", m->vpid);
		close(m->uffd);
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		close(m->uffd);
		return -ENOMEM;
	}
	t->vpid = m->vpid;
	t->host_pid = m->host_pid;
	t->uffd = m->uffd;
	/* Taken while the task waits in its restorer for the finish word: its pid is its own. */
	t->pidfd = tree_pidfd(t->host_pid);
	if (t->pidfd < 0)
		pr_warn("task %d (pid %d): pidfd_open: %m; it can only be killed by its pid number", t->vpid,
			t->host_pid);
	t->outer_ppid = tree_ppid(t->host_pid);
	t->sid = tree_sid(t->host_pid);
	t->img = it;
	t->around = FAULT_AROUND_PAGES;
	ret = task_init_ranges(t);
	if (!ret && d->prefetch)
		ret = task_prefetch_init(d, t);
	if (!ret)
		ret = add_task(d, t);
	if (ret) {
		task_free_ranges(t);
		free(t->pf);
		free(t->pf_sorted);
		close(t->uffd);
		if (t->pidfd >= 0)
			close(t->pidfd);
		free(t);
		return ret;
	}
	pr_info("task %d (pid %d here): uffd %d, %llu lazy pages in %zu ranges", t->vpid, t->host_pid, t->uffd,
		(unsigned long long)t->nr_pending, t->nr_ranges);
	return 0;
}

static int handle_conn(struct daemon *d)
{
	struct handoff_msg m;
	bool expect_task = d->nr_received < d->nr_expected;
	size_t i;
	int ret;

	ret = handoff_read(d->h, expect_task, &m);
	if (ret)
		return ret;
	switch (m.kind) {
	case HANDOFF_TASK:
		d->nr_received++;
		if (!d->nr_tasks)
			clock_gettime(CLOCK_MONOTONIC, &d->t_first_uffd);
		return on_task(d, &m);
	case HANDOFF_ZOMBIE:
		d->nr_received++;
		pr_info("task %d is a zombie: nothing to serve", m.vpid);
		return 0;
	case HANDOFF_FINISH:
		d->finished = true;
		clock_gettime(CLOCK_MONOTONIC, &d->t_finish);
		d->finish_ns = now_ns();
		pr_info("restore finished: populating the remaining pages in the background");
		for (i = 0; i < d->nr_tasks; i++)
			if (task_check_registered(d->tasks[i], crimg_dir(d->img)))
				return -EINVAL;
		for (i = 0; i < d->nr_tasks; i++)
			if (!d->tasks[i]->done && !d->tasks[i]->nr_pending)
				task_finish(d, d->tasks[i], false);
		return 0;
	case HANDOFF_EOF:
		if (!d->finished) {
			pr_err("criu restore closed lazy-pages.socket before the restore finished (it failed?)");
			return -EPIPE;
		}
		epoll_ctl(d->ep, EPOLL_CTL_DEL, d->conn_fd, NULL);
		d->conn_fd = -1;
		return 0;
	}
	return 0;
}

/* ---- remote: pages come from a page server, asynchronously ---- */

/* Pages from IMG (dump-time address) up to N that no request covers yet. */
static uint64_t not_requested(struct daemon *d, pid_t vpid, uint64_t img, uint64_t n, bool urgent_only)
{
	uint64_t j;

	for (j = 1; j < n; j++)
		if (remote_find(d->rem, vpid, img + (j << PAGE_SHIFT), urgent_only))
			break;
	return j;
}

/*
 * A fault on pending page K of R: ask for it (and the pending run after it) unless a
 * request that will bring it is on its way. With the urgent channel only a fault's own
 * request counts: a background one may wait behind others on its connection.
 */
static enum copy_res remote_fault(struct daemon *d, struct lazy_task *t, struct lazy_range *r, uint64_t k)
{
	uint64_t img = r->img_start + (k << PAGE_SHIFT), n;
	bool urgent_only = remote_has_urgent(d->rem);
	struct ps_req *q = remote_find(d->rem, t->vpid, img, urgent_only);
	int ret;

	if (!q) {
		n = range_pending_run(r, k, FAULT_AROUND_PAGES);
		n = not_requested(d, t->vpid, img, n, urgent_only);
		ret = remote_get(d->rem, t->vpid, img, n, true, &q);
		if (ret == -EBUSY) {
			struct pending_fault *w = d->waiting;

			if (d->nr_waiting == d->cap_waiting) {
				size_t cap = d->cap_waiting ? d->cap_waiting * 2 : 64;

				w = realloc(d->waiting, cap * sizeof(*w));
				if (!w)
					return COPY_FAILED;
				d->waiting = w;
				d->cap_waiting = cap;
			}
			w[d->nr_waiting++] = (struct pending_fault){ .t = t, .addr = r->start + (k << PAGE_SHIFT) };
			return COPY_QUEUED;
		}
		if (ret)
			return COPY_FAILED;
	}
	if (!q->fault_task) {
		q->fault_task = t;
		q->fault_ns = now_ns();
	}
	return COPY_QUEUED;
}

/*
 * Copy an answer into every task that still wants those pages: the task that asked, and
 * the children it forked since (same vpid, same dump-time addresses), wherever their
 * ranges are now. Layout events met on the way are handled and the copy retried.
 */
static void deliver_to(struct daemon *d, struct lazy_task *t, const struct ps_req *q)
{
	uint64_t a0 = q->img_addr, a1 = q->img_addr + (q->got << PAGE_SHIFT);
	unsigned int rounds = 0;
	size_t ri;

again:
	for (ri = 0; !t->done && ri < t->nr_ranges; ri++) {
		struct lazy_range *r = &t->ranges[ri];
		uint64_t r0 = r->img_start, r1 = r0 + (r->nr_pages << PAGE_SHIFT);
		uint64_t lo = a0 > r0 ? a0 : r0, hi = a1 < r1 ? a1 : r1, k, kend;

		if (lo >= hi || !r->nr_pending)
			continue;
		kend = (hi - r0) >> PAGE_SHIFT;
		for (k = range_next_pending(r, (lo - r0) >> PAGE_SHIFT); k < kend;
		     k = range_next_pending(r, k)) {
			uint64_t n = range_pending_run(r, k, kend - k), copied;
			enum copy_res res;

			d->path = q->urgent ? PATH_FAULT : PATH_BG;
			res = copy_run(d, t, ri, k, n, q->data + (r0 + (k << PAGE_SHIFT) - a0), &copied);
			if (q->urgent)
				t->st.pages_fault += copied;
			else
				t->st.pages_bg += copied;
			switch (res) {
			case COPY_OK:
			case COPY_QUEUED:
				k += n;
				continue;
			case COPY_RETRY:
				/* Layout events first; then the ranges may look different. */
				handle_uffd(d, t);
				if (d->failed || ++rounds > 10000)
					goto out;
				goto again;
			case COPY_NOENT:
				/* A fault may wait on it (its request was this one). */
				res = drop_unregistered(t, r->start + (range_next_pending(r, k) << PAGE_SHIFT));
				if (res == COPY_OK)
					goto again;
				break;
			case COPY_GONE:
			case COPY_FAILED:
				break;
			}
			if (res == COPY_GONE)
				task_finish(d, t, true);
			else
				fail(d);
			return;
		}
	}
out:
	if (rounds > 10000)
		pr_warn("task %d: pages at 0x%llx kept meeting layout changes; they will be asked for again", t->vpid,
			(unsigned long long)a0);
	if (d->finished && !t->done && !t->nr_pending)
		task_finish(d, t, false);
}

static void deliver(struct daemon *d, struct ps_req *q)
{
	uint64_t before = 0, after = 0;
	size_t i;

	for (i = 0; i < d->nr_tasks && !d->failed; i++) {
		struct lazy_task *t = d->tasks[i];

		if (t->vpid != q->vpid || t->done)
			continue;
		before += t->st.pages_fault + t->st.pages_bg;
		deliver_to(d, t, q);
		after += t->st.pages_fault + t->st.pages_bg;
	}
	if (after == before)
		d->dup_pages += q->got;
	if (q->fault_task)
		stats_add_latency(&q->fault_task->st, now_ns() - q->fault_ns);
}

static void report_remote_failure(struct daemon *d)
{
	uint64_t pending = 0;
	size_t i, nt = 0, nreq;
	char inflight[512];

	for (i = 0; i < d->nr_tasks; i++)
		if (!d->tasks[i]->done && d->tasks[i]->nr_pending) {
			pending += d->tasks[i]->nr_pending;
			nt++;
		}
	nreq = remote_describe_inflight(d->rem, inflight, sizeof(inflight));
	pr_err("page server %s: %llu lazy pages of %zu tasks cannot be served; %zu requests were unanswered%s%s",
	       remote_peer(d->rem), (unsigned long long)pending, nt, nreq, nreq ? ": " : "", inflight);
}

/* Take every answer that has come in; on failure of the source, fail the restore. */
static void remote_drain(struct daemon *d)
{
	bool bulk = false;

	/*
	 * Every fault's answer that is in, but at most one background answer (a 1 MiB copy)
	 * per call: then back to the uffds, so a fault waits behind one at the most. The
	 * source signals its eventfd again while answers remain.
	 */
	while (!bulk) {
		struct ps_req *q, rest;
		int ret = remote_next(d->rem, &q);

		if (ret < 0) {
			report_remote_failure(d);
			fail(d);
			return;
		}
		if (!ret)
			break;
		pr_debug("got %llu of %llu pages at 0x%llx of task %d%s", (unsigned long long)q->got,
			 (unsigned long long)q->nr_pages, (unsigned long long)q->img_addr, q->vpid,
			 q->urgent ? " (fault)" : "");
		bulk = !q->urgent;
		deliver(d, q);
		rest = *q;
		remote_release(d->rem, q);
		if (d->failed)
			return;
		/* A short answer (the server cut at its buffer's end): ask for the rest. */
		if (rest.got < rest.nr_pages) {
			uint64_t a = rest.img_addr + (rest.got << PAGE_SHIFT);
			size_t i;

			for (i = 0; i < d->nr_tasks; i++) {
				struct lazy_task *t = d->tasks[i];
				ssize_t ri;

				if (t->vpid != rest.vpid || t->done)
					continue;
				for (ri = 0; ri < (ssize_t)t->nr_ranges; ri++) {
					struct lazy_range *r = &t->ranges[ri];
					uint64_t k;

					if (a < r->img_start || a >= r->img_start + (r->nr_pages << PAGE_SHIFT))
						continue;
					k = (a - r->img_start) >> PAGE_SHIFT;
					if (range_page_pending(r, k) && rest.urgent)
						remote_fault(d, t, r, k);
					break;
				}
			}
		}
	}
	/* Faults that found no free buffer before. */
	while (d->nr_waiting && !d->failed) {
		struct pending_fault w = d->waiting[--d->nr_waiting];
		size_t before = d->nr_waiting;
		enum copy_res res;

		if (w.t->done)
			continue;
		res = serve_fault(d, w.t, w.addr);
		if (res == COPY_FAILED) {
			fail(d);
			return;
		}
		if (res == COPY_GONE) {
			task_finish(d, w.t, true);
			continue;
		}
		if (d->nr_waiting > before)
			break; /* still no buffer: wait for the next answer */
	}
}

/* The next background request for task T, or false if all it lacks is on its way. */
static bool remote_bg_task(struct daemon *d, struct lazy_task *t)
{
	unsigned int max = remote_bulk_pages(d->rem);
	size_t ri;

	while (t->bg_range < t->nr_ranges && !t->ranges[t->bg_range].nr_pending)
		t->bg_range++;
	for (ri = t->bg_range; ri < t->nr_ranges; ri++) {
		struct lazy_range *r = &t->ranges[ri];
		uint64_t k;

		if (!r->nr_pending)
			continue;
		for (k = range_next_pending(r, 0); k < r->nr_pages;) {
			uint64_t img = r->img_start + (k << PAGE_SHIFT), n;
			struct ps_req *q = remote_find(d->rem, t->vpid, img, false), *nq;

			if (q) {
				uint64_t end = q->img_addr + (q->nr_pages << PAGE_SHIFT);

				k = range_next_pending(r, (end - r->img_start) >> PAGE_SHIFT);
				continue;
			}
			n = range_pending_run(r, k, max);
			n = not_requested(d, t->vpid, img, n, false);
			if (remote_get(d->rem, t->vpid, img, n, false, &nq))
				return false;
			return true;
		}
	}
	return false;
}

/* Keep the background requests in flight up to the bound; true if one was sent. */
static bool remote_background(struct daemon *d)
{
	bool sent = false;
	size_t tried = 0;

	while (remote_bulk_slot(d->rem) && tried < d->nr_tasks) {
		struct lazy_task *t = d->tasks[d->bg_task % d->nr_tasks];

		if (!t->done && t->nr_pending && remote_bg_task(d, t)) {
			sent = true;
			tried = 0;
			continue; /* the same task again: its next run */
		}
		d->bg_task = (d->bg_task + 1) % d->nr_tasks;
		tried++;
	}
	return sent;
}

/* ---- local: the copy thread's share of the background work ---- */

/* T's jobs not yet reaped: their runs are the thread's until then. */
static size_t jobs_of(struct daemon *d, const struct lazy_task *t, struct copier_job *jobs)
{
	struct copier_job all[COPIER_DEPTH];
	size_t n = copier_in_flight(d->cp, all, COPIER_DEPTH), i, m = 0;

	for (i = 0; i < n; i++)
		if (all[i].owner == t)
			jobs[m++] = all[i];
	return m;
}

static const struct copier_job *job_at(const struct copier_job *jobs, size_t n, uint64_t addr)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!jobs[i].pieces && addr >= jobs[i].dst && addr < jobs[i].dst + jobs[i].len)
			return &jobs[i];
	return NULL;
}

/* The first page at or after K of R that is pending and in none of JOBS, or r->nr_pages. */
static uint64_t next_free(const struct lazy_range *r, uint64_t k, const struct copier_job *jobs, size_t nj)
{
	for (;;) {
		const struct copier_job *in;

		k = range_next_pending(r, k);
		if (k == r->nr_pages)
			return k;
		in = job_at(jobs, nj, r->start + (k << PAGE_SHIFT));
		if (!in)
			return k;
		k = (in->dst + in->len - r->start) >> PAGE_SHIFT;
		if (k >= r->nr_pages)
			return r->nr_pages;
	}
}

/*
 * Where T's background work goes on: the first pending page not in a job, from the range
 * population has reached, and the span there (at most MAX pages, up to the next job; see
 * range_pending_span). False if every page left is in a job or none is left.
 */
static bool next_bg_run(struct daemon *d, struct lazy_task *t, uint64_t max, size_t *ri_out, uint64_t *k_out,
			uint64_t *n_out)
{
	struct copier_job jobs[COPIER_DEPTH];
	size_t nj = d->cp ? jobs_of(d, t, jobs) : 0, ri, i, j;

	while (t->bg_range < t->nr_ranges && !t->ranges[t->bg_range].nr_pending)
		t->bg_range++;
	if (t->bg_range >= t->nr_ranges)
		t->bg_range = 0; /* ranges were split or moved: look again from the start */
	for (i = 0; i < t->nr_ranges; i++) {
		const struct lazy_range *r;
		uint64_t k, n, a;

		/* From where population is, then round: a cancelled run may be left behind. */
		ri = (t->bg_range + i) % t->nr_ranges;
		r = &t->ranges[ri];

		if (!r->nr_pending)
			continue;
		k = next_free(r, 0, jobs, nj);
		if (k == r->nr_pages)
			continue;
		n = range_pending_span(r, k, max);
		a = r->start + (k << PAGE_SHIFT);
		for (j = 0; j < nj; j++)
			if (!jobs[j].pieces && jobs[j].dst > a && jobs[j].dst < a + (n << PAGE_SHIFT))
				n = (jobs[j].dst - a) >> PAGE_SHIFT;
		*ri_out = ri;
		*k_out = k;
		*n_out = n;
		return true;
	}
	return false;
}

/* The thread's next run for T: the next chunk at the front, as the loop's own would be. */
static bool pick_job(struct daemon *d, struct lazy_task *t, struct copier_job *j)
{
	const struct lazy_range *r;
	const void *data;
	uint64_t k, n, run, i;
	size_t ri;

	_Static_assert(BG_CHUNK_BYTES / PAGE_SZ_MIN <= COPIER_SPAN_PAGES, "a job holds a background chunk");
	if (!next_bg_run(d, t, BG_CHUNK_PAGES, &ri, &k, &n))
		return false;
	r = &t->ranges[ri];
	if (source_get_mapped(d->src, t->img, r->img_start + (k << PAGE_SHIFT), n, &data, &run)) {
		fail(d);
		return false;
	}
	*j = (struct copier_job){
		.owner = t,
		.uffd = t->uffd,
		.dst = r->start + (k << PAGE_SHIFT),
		.img = r->img_start + (k << PAGE_SHIFT),
		.src = data,
		.len = run << PAGE_SHIFT,
	};
	for (i = 0; i < run; i++)
		if (range_page_pending(r, k + i))
			j->want[i / 64] |= 1ULL << (i % 64);
	return true;
}

/* Keep the thread's queue full, in the order the loop's own background work goes. */
static void feed_copier(struct daemon *d)
{
	struct copier_job all[COPIER_DEPTH], j;
	size_t i;

	while (!d->failed && copier_in_flight(d->cp, all, COPIER_DEPTH) < COPIER_DEPTH) {
		bool picked = false;

		for (i = 0; i < d->nr_tasks && !picked; i++) {
			struct lazy_task *t = d->tasks[(d->bg_task + i) % d->nr_tasks];

			if (!t->done && t->nr_pending && !t->cp_skip && pick_job(d, t, &j))
				picked = true;
		}
		if (!picked)
			return;
		if (copier_submit(d->cp, &j)) {
			source_put(d->src, j.src, j.len >> PAGE_SHIFT);
			return;
		}
	}
}

/* Mark N pages from dump-time address IMG of T as copied, wherever they are now. */
static void mark_img_done(struct lazy_task *t, uint64_t img, uint64_t n)
{
	uint64_t end = img + (n << PAGE_SHIFT);

	while (img < end) {
		ssize_t ri = range_by_img(t, img);
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

/*
 * Account the thread's finished runs. By dump-time address: a remap read after the copy
 * moved those pages and their range alike; an unmap or remove dropped both.
 */
static void reap_jobs(struct daemon *d)
{
	struct copier_job j;
	int ret;

	while ((ret = copier_reap(d->cp, &j)) > 0) {
		struct lazy_task *t = NULL;
		size_t i;

		if (!j.pieces)
			source_put(d->src, j.src, j.len >> PAGE_SHIFT);
		d->bg_idle = false;
		for (i = 0; i < d->nr_tasks && !t; i++)
			if (d->tasks[i] == j.owner)
				t = d->tasks[i];
		if (j.pieces) {
			pf_pool_put(d, t, j.pieces, j.through < j.len && j.res != UFFD_GONE && j.res != UFFD_FAILED);
			if (t)
				t->pf_jobs--;
		}
		if (!t || t->done)
			continue;
		t->st.bytes += j.copied;
		d->ls.copy_thread_bytes += j.copied;
		if (j.pieces) {
			uint64_t left = j.through >> PAGE_SHIFT;

			for (i = 0; i < j.nr_pieces && left; i++) {
				uint64_t m = j.pieces[i].nr < left ? j.pieces[i].nr : left;

				mark_img_done(t, j.pieces[i].img, m);
				left -= m;
			}
			t->st.bytes_path[PATH_PREFETCH] += j.copied;
			d->ls.copy_thread_prefetch_bytes += j.copied;
			t->st.pages_prefetch += j.copied >> PAGE_SHIFT;
			t->st.prefetch_hits += j.copied >> PAGE_SHIFT;
			prefetch_note_done(d, t);
		} else {
			mark_img_done(t, j.img, j.through >> PAGE_SHIFT);
			t->st.bytes_path[PATH_BG] += j.copied;
			t->st.pages_bg += j.copied >> PAGE_SHIFT;
		}
		if (!j.cancelled && j.through < j.len) {
			switch (j.res) {
			case UFFD_GONE:
				task_finish(d, t, true);
				continue;
			case UFFD_FAILED:
				if (j.read_failed)
					pr_err("task %d: reading its profile pages for the copy thread: %s", t->vpid,
					       strerror(j.err));
				else if (j.pieces)
					pr_err("UFFDIO_COPY of profile pages into task %d (copy thread): %s", t->vpid,
					       strerror(j.err));
				else
					pr_err("UFFDIO_COPY of %llu bytes at 0x%llx into task %d (copy thread): %s",
					       (unsigned long long)(j.len - j.through),
					       (unsigned long long)(j.dst + j.through), t->vpid, strerror(j.err));
				fail(d);
				return;
			default:
				/*
				 * Pending events, or a page no longer registered: the addresses
				 * this run was planned with may be stale. The loop copies T's
				 * next chunk itself, from the layout as it is after the events,
				 * and meets the same cause knowing what to do.
				 */
				t->cp_skip = true;
				break;
			}
		}
		if (d->finished && !t->nr_pending)
			task_finish(d, t, false);
	}
	if (ret < 0) {
		pr_err("copy thread: %s", strerror(-ret));
		fail(d);
	}
}

/* Anything for the loop (a fault, most likely): one epoll_wait that does not block. */
static bool loop_has_events(const struct daemon *d)
{
	struct epoll_event ev;

	return epoll_wait(d->ep, &ev, 1, 0) > 0;
}

/*
 * Copy the pending runs of pages [k, k + n) of range RI of T, in order, as background.
 * A span pitted by faults or a prefetch is many runs: between them, every
 * SPAN_CHECK_PAGES, it stops for any event, so that a fault does not wait for the whole
 * span (the rest stays pending for the next step).
 */
static enum copy_res copy_span(struct daemon *d, struct lazy_task *t, size_t ri, uint64_t k, uint64_t n)
{
	const struct lazy_range *r = &t->ranges[ri];
	uint64_t end = k + n, run, copied, since = 0;
	enum copy_res res = COPY_OK;

	while (res == COPY_OK && (k = range_next_pending(r, k)) < end) {
		if (since >= SPAN_CHECK_PAGES) {
			if (loop_has_events(d))
				break;
			since = 0;
		}
		run = range_pending_run(r, k, end - k);
		res = copy_pages(d, t, ri, k, run, &copied);
		t->st.pages_bg += copied;
		since += run;
		k += run;
	}
	return res;
}

/* Copy one chunk for the next task with pages left; true if there was work. */
static bool background_step(struct daemon *d)
{
	bool waits_on_thread = false;
	size_t i;

	if (d->rem)
		return remote_background(d);
	if (d->cp)
		feed_copier(d);
	for (i = 0; i < d->nr_tasks; i++) {
		struct lazy_task *t = d->tasks[(d->bg_task + i) % d->nr_tasks];
		uint64_t k, n;
		enum copy_res res;
		struct lazy_range *r;
		size_t ri;

		if (t->done || !t->nr_pending)
			continue;
		if (!next_bg_run(d, t, d->bg_pages, &ri, &k, &n)) {
			/* What is left is in the thread's runs, or nothing is (not yet finished). */
			waits_on_thread |= d->cp != NULL;
			continue;
		}
		t->bg_range = ri;
		r = &t->ranges[ri];
		d->bg_task = (d->bg_task + i) % d->nr_tasks;
		d->path = PATH_BG;
		res = copy_span(d, t, ri, k, n);
		switch (res) {
		case COPY_OK:
		case COPY_QUEUED:
			t->cp_skip = false; /* the cause that stopped the thread is behind us */
			break;
		case COPY_RETRY:
			handle_uffd(d, t);
			break;
		case COPY_NOENT:
			/* The span went in order: what refused is its first page still pending. */
			k = range_next_pending(r, k);
			if (k == r->nr_pages)
				break;
			pr_debug("task %d: 0x%llx is no longer registered; dropping it", t->vpid,
				 (unsigned long long)(r->start + (k << PAGE_SHIFT)));
			if (task_drop(t, r->start + (k << PAGE_SHIFT), r->start + ((k + 1) << PAGE_SHIFT)))
				fail(d);
			break;
		case COPY_GONE:
			task_finish(d, t, true);
			break;
		case COPY_FAILED:
			fail(d);
			break;
		}
		if (!t->done && !t->nr_pending)
			task_finish(d, t, false);
		return true;
	}
	/* Nothing for the loop itself until a run of the thread's is reaped: sleep till then. */
	d->bg_idle = waits_on_thread;
	return false;
}

static bool all_done(const struct daemon *d)
{
	size_t i;

	if (!d->finished)
		return false;
	for (i = 0; i < d->nr_tasks; i++)
		if (!d->tasks[i]->done)
			return false;
	return true;
}

/*
 * Look for the pids of children forked after the restore (FORK gives their uffd before
 * the kernel has given them a pid): a new child of the parent, or, when the parent has
 * exited meanwhile, a process with uffd-registered memory under a reaper we know (the
 * tree's own tasks, or where criu's tasks hung at the handoff). Only after the finish
 * word, when every task criu restores has been handed over and is known.
 */
static void claim_forks(struct daemon *d, bool now_or_never)
{
	pid_t *known, *reapers;
	size_t i, nk = 0, nr = 0;
	uint64_t now;

	/* Called on every pass of the loop: nothing but these tests when no fork is pending. */
	if (!d->nr_unclaimed || (!d->finished && !now_or_never))
		return;
	now = now_ns();
	if (now < d->next_claim_ns && !now_or_never)
		return;
	d->next_claim_ns = now + CLAIM_INTERVAL_NS;
	known = calloc(d->nr_tasks, sizeof(*known));
	reapers = calloc(2 * d->nr_tasks, sizeof(*reapers));
	if (!known || !reapers)
		goto out;
	for (i = 0; i < d->nr_tasks; i++) {
		const struct lazy_task *t = d->tasks[i];

		if (t->host_pid > 0)
			known[nk++] = reapers[nr++] = t->host_pid;
		if (t->outer_ppid > 1)
			reapers[nr++] = t->outer_ppid;
	}
	for (i = 0; i < d->nr_tasks; i++) {
		struct lazy_task *c = d->tasks[i], *p = c->fork_parent;
		pid_t pid = 0;
		int fd;

		if (!p || p->host_pid <= 0)
			continue; /* a grandchild waits for its parent's pid */
		if (c->gone) {
			/* It exited: nothing of it is left to kill. */
			c->fork_parent = NULL;
			d->nr_unclaimed--;
			continue;
		}
		fd = tree_find_child(p->host_pid, known, nk, &pid);
		if (fd < 0 && (p->pidfd < 0 || tree_exited(p->pidfd)))
			fd = tree_find_orphan(reapers, nr, known, nk, c->sid, &pid);
		if (fd < 0) {
			if (!c->claim_since_ns)
				c->claim_since_ns = now;
			if (now - c->claim_since_ns < CLAIM_GIVE_UP_NS && !now_or_never)
				continue;
			if (c->done)
				pr_debug("the pid of a child forked by task %d (complete) was not found", c->parent_vpid);
			else
				pr_warn("the pid of a child forked by task %d was not found; were the daemon to fail, it would not be killed unless it is still under the restored tree",
					c->parent_vpid);
		} else {
			c->host_pid = pid;
			c->pidfd = fd;
			known[nk++] = pid;
			pr_info("task %d's child forked after the restore is pid %d", c->parent_vpid, (int)pid);
			/* Even complete: on a failure the whole tree goes, this child with it. */
			guard_pidfd(d->guard, c->guard_id, fd, pid, 0, c->sid);
		}
		c->fork_parent = NULL;
		d->nr_unclaimed--;
	}
out:
	free(known);
	free(reapers);
}

/*
 * Never let a task run on with memory it did not get; and the rest of the tree goes
 * with it (README): complete tasks, forked children, everything they forked.
 */
static void kill_restored(struct daemon *d)
{
	int *fds = calloc(d->nr_tasks ? d->nr_tasks : 1, sizeof(*fds));
	size_t i, n = 0;

	claim_forks(d, true);
	for (i = 0; i < d->nr_tasks; i++) {
		struct lazy_task *t = d->tasks[i];
		bool incomplete = !t->done && !t->gone;

		if (t->pidfd >= 0 && !tree_exited(t->pidfd)) {
			if (incomplete)
				pr_err("killing restored task %d (pid %d): its memory cannot be completed", t->vpid,
				       t->host_pid);
			else
				pr_err("killing restored task %d (pid %d) with the rest of the tree", t->vpid,
				       t->host_pid);
			if (fds)
				fds[n++] = t->pidfd;
			else
				tree_kill(&t->pidfd, 1, KILL_WAIT_MS); /* one by one rather than not at all */
		} else if (t->pidfd < 0 && t->host_pid > 0 && incomplete) {
			pr_err("killing restored task %d (pid %d, by number: no pidfd): its memory cannot be completed",
			       t->vpid, t->host_pid);
			kill(t->host_pid, SIGKILL);
		} else if (t->host_pid <= 0 && incomplete) {
			pr_err("a child forked by task %d has lazy memory that cannot be completed and no known pid: it dies with its parent's tree",
			       t->vpid);
		}
	}
	tree_kill(fds, n, KILL_WAIT_MS);
	free(fds);
}

/* One line for the log: where the pages went and how the loop waited. */
static void log_summary(const struct daemon *d)
{
	uint64_t faults = 0, copied = 0, present = 0, zero = 0, b[NR_PATHS] = { 0 }, hits = 0, misses = 0, pf = 0;
	size_t i, j;

	for (i = 0; i < d->nr_tasks; i++) {
		const struct fault_stats *st = &d->tasks[i]->st;

		faults += st->faults;
		copied += st->faults_copied;
		present += st->faults_present;
		zero += st->faults_zero;
		for (j = 0; j < NR_PATHS; j++)
			b[j] += st->bytes_path[j];
		hits += st->prefetch_hits;
		misses += st->prefetch_misses;
		pf += st->profile_pages;
	}
	pr_info("faults %llu (copied %llu, already present %llu, zero %llu); MiB by fault %.1f, fault-around %.1f, "
		"background %.1f, prefetch %.1f; busy-poll %llu us: %llu polled wakeups, %llu epoll sleeps; "
		"profile %llu pages: %llu prefetched before a fault, %llu faulted first",
		(unsigned long long)faults, (unsigned long long)copied, (unsigned long long)present,
		(unsigned long long)zero, b[PATH_FAULT] / 1048576.0, b[PATH_AROUND] / 1048576.0, b[PATH_BG] / 1048576.0,
		b[PATH_PREFETCH] / 1048576.0, (unsigned long long)d->ls.busy_poll_us,
		(unsigned long long)d->ls.polled_wakeups, (unsigned long long)d->ls.epoll_sleeps,
		(unsigned long long)pf, (unsigned long long)hits, (unsigned long long)misses);
}

/* Mark the page server's and the copy thread's eventfds among the epoll events (tasks
 * are theirs, criu's is NULL). */
static char remote_marker, copier_marker;

int daemon_serve(const struct crimg *img, const struct daemon_opts *o)
{
	struct daemon d = { .img = img, .conn_fd = -1, .ep = -1, .busy_poll_ns = o->busy_poll_ns };
	struct profile rec = { 0 };
	struct profile_error perr;
	struct remote_stats rst;
	struct epoll_event ev, evs[32];
	int ret, n, i, status = 1;

	clock_gettime(CLOCK_MONOTONIC, &d.t_start);
	d.t_first_uffd = d.t_start;
	d.start_ns = now_ns();
	d.nr_expected = crimg_nr_tasks(img);
	d.ls.busy_poll_us = o->busy_poll_ns / 1000;
	if (o->record_profile)
		d.rec = &rec;
	d.prefetch = o->prefetch;
	if (d.prefetch) {
		d.ls.profile_records = d.prefetch->nr;
		d.ls.profile_skipped_records = d.prefetch->skipped_tasks;
	}
	stats_set_loop(&d.ls);
	/* Forked while the daemon has one thread: the page-server client and copier start more. */
	if (guard_start(&d.guard))
		goto out;
	if (o->remote)
		ret = remote_open(&d.rem, img, o->remote);
	else
		ret = source_local_open(&d.src, img);
	if (ret)
		goto out;
	ret = handoff_listen(&d.h);
	if (ret)
		goto out;
	/* --daemon forks here: every thread starts after it, or the daemon would lack it. */
	if (o->ready) {
		ret = o->ready(o->ready_arg);
		if (ret)
			goto out;
	}
	if (d.rem && remote_start(d.rem))
		goto out;
	if (!d.rem && o->copy_threads) {
		if (copier_start(&d.cp))
			goto out;
		d.ls.copy_threads = 1;
	}
	/* Only this thread: the copy thread and the page-server receivers keep their CPUs. */
	if (o->loop_cpu >= 0) {
		cpu_set_t cpus;

		CPU_ZERO(&cpus);
		CPU_SET(o->loop_cpu, &cpus);
		if (sched_setaffinity(0, sizeof(cpus), &cpus)) {
			pr_err("--loop-cpu %d: %m (is that CPU online and allowed to the daemon?)", o->loop_cpu);
			goto out;
		}
		pr_info("the loop runs on CPU %d only%s", o->loop_cpu, d.cp ? "; the copy thread where it started" : "");
	}
	d.conn_fd = handoff_accept(d.h);
	if (d.conn_fd < 0)
		goto out;
	d.ep = epoll_create1(EPOLL_CLOEXEC);
	if (d.ep < 0) {
		pr_err("epoll_create1: %m");
		goto out;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	if (epoll_ctl(d.ep, EPOLL_CTL_ADD, d.conn_fd, &ev)) {
		pr_err("epoll_ctl: %m");
		goto out;
	}
	if (d.rem) {
		ev.data.ptr = &remote_marker;
		if (epoll_ctl(d.ep, EPOLL_CTL_ADD, remote_fd(d.rem), &ev)) {
			pr_err("epoll_ctl: %m");
			goto out;
		}
	} else if (d.cp) {
		ev.data.ptr = &copier_marker;
		if (epoll_ctl(d.ep, EPOLL_CTL_ADD, copier_fd(d.cp), &ev)) {
			pr_err("epoll_ctl: %m");
			goto out;
		}
	}
	pr_info("criu restore connected; expecting %zu tasks", d.nr_expected);

	while (!d.failed && !all_done(&d)) {
		bool bg = d.finished && !d.bg_idle, polling = false, early_pf = false;
		int timeout = -1;

		/* Remote: keep the background requests going; answers and faults wake us. */
		if (d.rem && bg) {
			background_step(&d);
			bg = false;
		}
		/*
		 * Faults come in bursts (a thread touching memory it has not got yet): just
		 * after one, the next is likely within microseconds, and waking from epoll or
		 * finishing a 2 MiB chunk first would cost it more than the copy. So poll for
		 * a short while, then go back to background work or sleep.
		 */
		if (!d.rem && d.busy_poll_ns && now_ns() - d.last_fault_ns < d.busy_poll_ns)
			polling = true;
		/*
		 * The tasks resume as the finish word comes, and their first touches (stack,
		 * libc data) are faults: small chunks then too, or each waits behind 2 MiB.
		 */
		d.bg_pages = BG_CHUNK_PAGES;
		if (polling || now_ns() - d.finish_ns < START_SMALL_NS)
			d.bg_pages = BG_POLL_CHUNK_PAGES;
		/*
		 * Recording: what the background copies first is never asked for by a fault,
		 * so it would be missing from the profile. Hold the background back until
		 * the faults have stopped for a while.
		 */
		if (bg && d.rec) {
			uint64_t now = now_ns(), last = d.last_fault_ns > d.finish_ns ? d.last_fault_ns : d.finish_ns;

			if (now - last < RECORD_QUIET_NS) {
				bg = false;
				timeout = (int)((RECORD_QUIET_NS - (now - last)) / 1000000) + 1;
			}
		}
		/*
		 * The profile goes from the moment the restorer has registered a task's
		 * VMAs, well before the finish word: the program should find its hot pages
		 * there when it starts.
		 */
		if (d.prefetch && !d.finished) {
			int w = prefetch_wait_ms(&d);

			early_pf = !w;
			if (w > 0)
				timeout = w;
		}
		if (d.nr_unclaimed && d.finished && (timeout < 0 || timeout > 1))
			timeout = 1;
		if (!bg && !polling && !early_pf)
			d.ls.epoll_sleeps++;
		n = epoll_wait(d.ep, evs, 32, bg || polling || early_pf ? 0 : timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			pr_err("epoll_wait: %m");
			fail(&d);
			break;
		}
		for (i = 0; i < n && !d.failed; i++) {
			struct lazy_task *t = evs[i].data.ptr;

			if (evs[i].data.ptr == &remote_marker) {
				remote_drain(&d);
			} else if (evs[i].data.ptr == &copier_marker) {
				reap_jobs(&d);
			} else if (!t) {
				if (handle_conn(&d))
					fail(&d);
			} else if (!t->done) {
				if (polling)
					d.ls.polled_wakeups++;
				handle_uffd(&d, t);
			}
		}
		claim_forks(&d, false);
		if (bg && !d.failed) {
			if (!prefetch_step(&d))
				background_step(&d);
		} else if (early_pf && !d.failed && !d.finished) {
			prefetch_step(&d);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &d.t_complete);
	/* Before any uffd is closed below, and before the tasks are killed. */
	copier_stop(d.cp);
	d.cp = NULL;

	if (d.failed) {
		kill_restored(&d);
		goto out;
	}
	if (d.rem) {
		/* Say goodbye properly: a lazy `criu dump` ends (and kills its tasks) on CLOSE. */
		remote_get_stats(d.rem, &rst);
		rst.dup_pages = d.dup_pages;
		remote_close(d.rem, true);
		d.rem = NULL;
		pr_info("page server: %llu requests (%llu for faults), %llu pages, %llu reconnects%s",
			(unsigned long long)rst.requests, (unsigned long long)rst.urgent_requests,
			(unsigned long long)rst.pages, (unsigned long long)rst.reconnects,
			rst.urgent_channel ? ", faults on the urgent channel" : "");
		stats_set_remote(&rst);
	}
	pr_info("all tasks complete in %.3f s (%.3f s after the restore finished)", elapsed(&d.t_start, &d.t_complete),
		elapsed(&d.t_finish, &d.t_complete));
	log_summary(&d);
	status = 0;
	if (d.rec) {
		d.ls.recorded_records = rec.nr;
		if (profile_write(&rec, o->record_profile, o->fingerprint, &perr)) {
			pr_err("--record-profile: %s", perr.msg);
			status = 1;
		} else {
			pr_info("--record-profile %s: %zu records", o->record_profile, rec.nr);
		}
	}
	if (o->stats_file &&
	    stats_write_json(o->stats_file, d.tasks, d.nr_tasks, elapsed(&d.t_start, &d.t_complete),
			     elapsed(&d.t_finish, &d.t_complete), elapsed(&d.t_first_uffd, &d.t_complete)))
		status = 1;
out:
	copier_stop(d.cp);
	for (i = 0; i < (int)d.nr_tasks; i++) {
		if (!d.tasks[i]->done)
			close(d.tasks[i]->uffd);
		if (d.tasks[i]->pidfd >= 0)
			close(d.tasks[i]->pidfd);
		task_free_ranges(d.tasks[i]);
		free(d.tasks[i]->pf);
		free(d.tasks[i]->pf_sorted);
		free(d.tasks[i]);
	}
	profile_free(&rec);
	stats_set_loop(NULL);
	free(d.tasks);
	/* After kill_restored: the guard only finishes what the daemon could not. */
	guard_close(d.guard, status == 0);
	if (d.ep >= 0)
		close(d.ep);
	handoff_close(d.h);
	source_close(d.src);
	remote_close(d.rem, false);
	stats_set_remote(NULL);
	free(d.waiting);
	return status;
}
