// SPDX-License-Identifier: MIT
/*
 * A second thread that copies background runs (local pages only), so that population
 * goes on on a second CPU while the loop serves faults and copies runs of its own.
 *
 * The one hazard is an address computed before a layout change: once the loop has read
 * a REMAP, UNMAP or REMOVE message the kernel lets copies through again, and a run
 * queued before it could land where the task has since moved other memory, or where it
 * dropped pages that must now read as zero. So every copy ioctl of the thread and every
 * read of a uffd that has a run queued or running hold one lock (io_lock), and a read
 * that returns a layout event cancels that uffd's runs before the lock is let go: no
 * copy of the thread starts after such a read. The thread takes the lock per piece of
 * PIECE bytes, so a read waits for at most one piece.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cpu_relax.h"
#include "copier.h"
#include "pagesize.h"
#include "uffd.h"
#include "lazy_pages.h"

/*
 * 32 KiB, some us: what a uffd read, and so a fault, may wait for. With 128 KiB the
 * first touches of a 1 GiB sequential pass that waited had a median of 39 us, not 13.
 */
#define PIECE (32 * 1024ULL)
/* A prefetch job's pages copied under one hold of io_lock: some 20 us, one page each. */
#define GROUP_PAGES PAGES_IN(PIECE)
/* Spinning for io_lock: some 10^4 pause loops, a few hundred us, then sleep. */
#define SPIN_TRIES 20000

enum job_state { JOB_FREE, JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct slot {
	struct copier_job job;
	enum job_state state;
	bool cancel; /* under io_lock */
	uint64_t seq;
};

struct copier {
	pthread_t thread;
	uint8_t *buf;	      /* a prefetch job's pages, read before they are copied */
	pthread_mutex_t lock; /* slots, stop */
	pthread_cond_t wake;  /* the thread: a job, or stop */
	pthread_cond_t done;  /* the loop: a job finished */
	pthread_mutex_t io_lock;
	struct slot slots[COPIER_DEPTH];
	uint64_t seq;
	bool stop;
	bool idle_policy;    /* SCHED_IDLE (not if the daemon runs with another policy) */
	atomic_int tid;	     /* the thread's, once it runs */
	atomic_bool boosted; /* the loop made the thread SCHED_OTHER to get io_lock back */
	int efd;
};

static void set_idle(struct copier *c, bool idle)
{
	struct sched_param sp = { .sched_priority = 0 };

	if (c->idle_policy)
		sched_setscheduler(0, idle ? SCHED_IDLE : SCHED_OTHER, &sp);
}

/*
 * The thread is SCHED_IDLE: a program woken on its CPU takes it at once, where a normal
 * thread could make it wait out a time slice. Holding io_lock it could then starve
 * behind a busy CPU with the loop, and its fault service, waiting; so the loop, finding
 * the lock taken, makes the thread SCHED_OTHER (take_io_lock), and the thread goes back
 * to SCHED_IDLE when it lets go.
 */
static void put_io_lock(struct copier *c)
{
	pthread_mutex_unlock(&c->io_lock);
	if (atomic_exchange(&c->boosted, false))
		set_idle(c, true);
}

static bool job_wants(const struct copier_job *j, uint64_t off)
{
	uint64_t i = off >> PAGE_SHIFT;

	return j->want[i / 64] >> (i % 64) & 1;
}

/*
 * Copy one job's run: its wanted pages piece by piece, each under io_lock, until done or
 * cancelled. The results go to R, not to the job, which the loop may read meanwhile.
 */
static void run_job(struct copier *c, struct slot *s, struct copier_job *r)
{
	const struct copier_job *j = &s->job;
	const uint8_t *src = j->src;
	uint64_t limit = PIECE; /* one page after ENOENT: find where the VMA ends */

	r->res = UFFD_OK;
	while (r->through < j->len) {
		uint64_t left = 0, n, done = 0;
		enum uffd_res res;
		int err = 0;

		if (!job_wants(j, r->through)) {
			r->through += PAGE_SZ;
			continue;
		}
		while (left < limit && r->through + left < j->len && job_wants(j, r->through + left))
			left += PAGE_SZ;
		n = left;

		pthread_mutex_lock(&c->io_lock);
		if (s->cancel) {
			put_io_lock(c);
			r->cancelled = true;
			return;
		}
		res = uffd_copy(j->uffd, j->dst + r->through, src + r->through, n, &done, &err);
		put_io_lock(c);
		r->through += done;
		r->copied += done;
		switch (res) {
		case UFFD_OK:
			continue;
		case UFFD_EXISTS:
			/* Present already (a fault's copy): never overwritten, passed over. */
			r->through += PAGE_SZ;
			continue;
		case UFFD_RETRY:
			if (done)
				continue;
			break;
		case UFFD_NOENT:
			if (limit > PAGE_SZ) {
				limit = PAGE_SZ;
				continue;
			}
			break;
		default:
			break;
		}
		r->res = res;
		r->err = err;
		return;
	}
}

/*
 * Copy one prefetch job: read all its pages first (the loop never waits for a read),
 * then copy them in groups of up to GROUP_PAGES under io_lock, without waking the
 * threads waiting on them; wake the span at the end.
 */
static void run_pieces(struct copier *c, struct slot *s, struct copier_job *r)
{
	const struct copier_job *j = &s->job;
	uint64_t lo = UINT64_MAX, hi = 0, off = 0, grouped = 0;
	size_t i, nread;
	int err = 0;

	r->res = UFFD_OK;
	for (nread = 0; nread < j->nr_pieces; nread++) {
		const struct copier_piece *p = &j->pieces[nread];
		ssize_t n = pread(p->fd, c->buf + off, p->nr * PAGE_SZ, p->off);

		if (n != (ssize_t)(p->nr * PAGE_SZ)) {
			r->res = UFFD_FAILED;
			r->err = n < 0 ? errno : EIO;
			r->read_failed = true;
			break;
		}
		off += n;
	}
	off = 0;
	for (i = 0; i < nread && r->res == UFFD_OK && !r->cancelled; i++) {
		const struct copier_piece *p = &j->pieces[i];
		uint64_t left = p->nr * PAGE_SZ, at = 0;

		if (!grouped)
			pthread_mutex_lock(&c->io_lock);
		while (left && !s->cancel) {
			uint64_t done = 0;
			enum uffd_res res =
				uffd_copy_mode(j->uffd, p->dst + at, c->buf + off + at, left, false, &done, &err);

			if (done) {
				lo = p->dst + at < lo ? p->dst + at : lo;
				hi = p->dst + at + done > hi ? p->dst + at + done : hi;
			}
			r->through += done;
			r->copied += done;
			at += done;
			left -= done;
			if (res == UFFD_OK)
				continue;
			if (res == UFFD_EXISTS) {
				/* Present already (a fault's copy): never overwritten, passed over. */
				r->through += PAGE_SZ;
				at += PAGE_SZ;
				left -= PAGE_SZ;
				continue;
			}
			r->res = res;
			r->err = err;
			break;
		}
		r->cancelled = left && s->cancel;
		off += p->nr * PAGE_SZ;
		grouped += p->nr;
		if (grouped >= GROUP_PAGES || i + 1 == nread || r->res != UFFD_OK || r->cancelled) {
			put_io_lock(c);
			grouped = 0;
		}
	}
	/* Stale after a cancelling layout change, at worst: a thread woken early faults again. */
	if (hi > lo)
		uffd_wake(j->uffd, lo, hi - lo, &err);
}

static void *copier_main(void *arg)
{
	struct copier *c = arg;
	struct copier_job r;
	uint64_t one = 1;

	atomic_store(&c->tid, gettid());
	set_idle(c, true);
	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct slot *s = NULL;
		size_t i;

		for (i = 0; i < COPIER_DEPTH; i++)
			if (c->slots[i].state == JOB_QUEUED && (!s || c->slots[i].seq < s->seq))
				s = &c->slots[i];
		if (c->stop)
			break;
		if (!s) {
			pthread_cond_wait(&c->wake, &c->lock);
			continue;
		}
		s->state = JOB_RUNNING;
		pthread_mutex_unlock(&c->lock);
		memset(&r, 0, sizeof(r));
		if (s->job.pieces)
			run_pieces(c, s, &r);
		else
			run_job(c, s, &r);
		pthread_mutex_lock(&c->lock);
		s->job.through = r.through;
		s->job.copied = r.copied;
		s->job.res = r.res;
		s->job.err = r.err;
		s->job.cancelled = r.cancelled;
		s->job.read_failed = r.read_failed;
		s->state = JOB_DONE;
		pthread_cond_broadcast(&c->done);
		/* The loop learns of it through epoll; a full counter only means it knows. */
		if (write(c->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			break;
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int copier_start(struct copier **out)
{
	struct copier *c = calloc(1, sizeof(*c));
	int ret;

	if (!c)
		return -ENOMEM;
	c->buf = malloc(COPIER_BATCH_PAGES * PAGE_SZ);
	if (!c->buf) {
		free(c);
		return -ENOMEM;
	}
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->efd < 0) {
		ret = -errno;
		pr_err("eventfd: %m");
		free(c->buf);
		free(c);
		return ret;
	}
	/* A daemon run under another policy (chrt) was put there on purpose: leave it be. */
	c->idle_policy = sched_getscheduler(0) == SCHED_OTHER;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->io_lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	pthread_cond_init(&c->done, NULL);
	ret = pthread_create(&c->thread, NULL, copier_main, c);
	if (ret) {
		pr_err("cannot start the copy thread: %s", strerror(ret));
		close(c->efd);
		free(c->buf);
		free(c);
		return -ret;
	}
	/* Named for top -H and for the tests; a failure costs only the name. */
	pthread_setname_np(c->thread, "lazy-uffd-copy");
	*out = c;
	return 0;
}

void copier_stop(struct copier *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->io_lock);
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	for (size_t i = 0; i < COPIER_DEPTH; i++)
		c->slots[i].cancel = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->io_lock);
	pthread_join(c->thread, NULL);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->io_lock);
	pthread_cond_destroy(&c->wake);
	pthread_cond_destroy(&c->done);
	close(c->efd);
	free(c->buf);
	free(c);
}

int copier_fd(const struct copier *c)
{
	return c->efd;
}

int copier_submit(struct copier *c, const struct copier_job *j)
{
	int ret = -EBUSY;
	size_t i;

	if (!j->pieces && j->len > COPIER_SPAN_PAGES * PAGE_SZ)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	for (i = 0; i < COPIER_DEPTH; i++) {
		struct slot *s = &c->slots[i];

		if (s->state != JOB_FREE)
			continue;
		s->job = *j;
		s->job.through = s->job.copied = 0;
		s->job.cancelled = s->job.read_failed = false;
		s->cancel = false;
		s->seq = ++c->seq;
		s->state = JOB_QUEUED;
		pthread_cond_signal(&c->wake);
		ret = 0;
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int copier_reap(struct copier *c, struct copier_job *out)
{
	struct slot *s = NULL;
	uint64_t v;
	size_t i;

	/* Emptied first: a job finishing after the scan below writes it again. */
	if (read(c->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	pthread_mutex_lock(&c->lock);
	for (i = 0; i < COPIER_DEPTH; i++)
		if (c->slots[i].state == JOB_DONE && (!s || c->slots[i].seq < s->seq))
			s = &c->slots[i];
	if (s) {
		*out = s->job;
		s->state = JOB_FREE;
	}
	pthread_mutex_unlock(&c->lock);
	if (s) {
		/* More may be done: keep the eventfd readable until they are reaped too. */
		v = 1;
		if (write(c->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return -errno;
	}
	return s ? 1 : 0;
}

size_t copier_in_flight(struct copier *c, struct copier_job *out, size_t max)
{
	size_t i, n = 0;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < COPIER_DEPTH && n < max; i++)
		if (c->slots[i].state != JOB_FREE)
			out[n++] = c->slots[i].job;
	pthread_mutex_unlock(&c->lock);
	return n;
}

static bool has_live_job(struct copier *c, const void *owner)
{
	size_t i;

	for (i = 0; i < COPIER_DEPTH; i++)
		if (c->slots[i].job.owner == owner &&
		    (c->slots[i].state == JOB_QUEUED || c->slots[i].state == JOB_RUNNING))
			return true;
	return false;
}

/*
 * The loop waits here for the end of one piece (tens of us): spin for it, as a futex
 * sleep would add a cross-CPU wake-up (~50 us on a VM) to every fault that waits.
 */
static void take_io_lock(struct copier *c)
{
	struct sched_param sp = { .sched_priority = 0 };
	unsigned int i;
	pid_t tid;

	if (!pthread_mutex_trylock(&c->io_lock))
		return;
	/*
	 * Raise, then flag: the thread lowers itself when it sees the flag, so a raise it
	 * missed lasts until it lets go of the lock once more.
	 */
	tid = atomic_load(&c->tid);
	if (c->idle_policy && tid && !sched_setscheduler(tid, SCHED_OTHER, &sp))
		atomic_store(&c->boosted, true);
	for (i = 0; i < SPIN_TRIES; i++) {
		if (!pthread_mutex_trylock(&c->io_lock))
			return;
		cpu_relax();
	}
	pthread_mutex_lock(&c->io_lock);
}

bool copier_read_lock(struct copier *c, const void *owner)
{
	bool live;

	if (!c)
		return false;
	pthread_mutex_lock(&c->lock);
	live = has_live_job(c, owner);
	pthread_mutex_unlock(&c->lock);
	/*
	 * A job queued after this check is the loop's own doing, and the loop is here: none
	 * can be. One that finishes meanwhile only makes the lock unneeded.
	 */
	if (live)
		take_io_lock(c);
	return live;
}

/* With io_lock held: no piece of OWNER's jobs starts after this. */
static void cancel_jobs(struct copier *c, const void *owner)
{
	size_t i;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < COPIER_DEPTH; i++)
		if (c->slots[i].job.owner == owner)
			c->slots[i].cancel = true;
	pthread_mutex_unlock(&c->lock);
}

void copier_read_unlock(struct copier *c, const void *owner, bool layout_changed)
{
	if (layout_changed)
		cancel_jobs(c, owner);
	pthread_mutex_unlock(&c->io_lock);
}

void copier_forget(struct copier *c, const void *owner)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->io_lock);
	cancel_jobs(c, owner);
	pthread_mutex_unlock(&c->io_lock);
	/* A cancelled job still passes through RUNNING to DONE: wait for that. */
	pthread_mutex_lock(&c->lock);
	while (has_live_job(c, owner))
		pthread_cond_wait(&c->done, &c->lock);
	pthread_mutex_unlock(&c->lock);
}
