// SPDX-License-Identifier: MIT
/*
 * The daemon's loop (contract in serve.h and loop.h): take uffds from criu restore, and
 * keep the order of the work: faults first, from the moment a uffd arrives; answers from
 * the page server or the copy thread; the profile's prefetch; then, once the restore has
 * finished, background population one chunk between polls, so that a fault never waits
 * behind more than one. Exit when every task is complete or gone.
 *
 * A page that the images say had data is either copied with its data or the daemon fails;
 * when it fails it kills the restored tree, so that no task runs on to read zeros where
 * its memory should be.
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
#include "lazy_pages.h"
#include "loop.h"
#include "remote.h"
#include "serve.h"
#include "source.h"
#include "stats.h"
#include "task.h"
#include "tree.h"
#include "uffd.h"

/* How long after the finish word background chunks stay small: the resumed tasks fault. */
#define START_SMALL_NS (20 * 1000000ULL)
/* --record-profile: background population waits until faults have stopped this long. */
#define RECORD_QUIET_NS (250 * 1000000ULL)

static double elapsed(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) + (b->tv_nsec - a->tv_nsec) / 1e9;
}

int loop_add_task(struct daemon *d, struct lazy_task *t)
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
void loop_task_finish(struct daemon *d, struct lazy_task *t, bool gone)
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

void loop_fail(struct daemon *d)
{
	d->failed = true;
}

static struct lazy_task *find_task(struct daemon *d, pid_t vpid)
{
	size_t i;

	for (i = 0; i < d->nr_tasks; i++)
		if (d->tasks[i]->vpid == vpid && !d->tasks[i]->parent_vpid)
			return d->tasks[i];
	return NULL;
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
		ret = prefetch_task_init(d, t);
	if (!ret)
		ret = loop_add_task(d, t);
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
		d->finish_ns = loop_now_ns();
		pr_info("restore finished: populating the remaining pages in the background");
		for (i = 0; i < d->nr_tasks; i++)
			if (task_check_registered(d->tasks[i], crimg_dir(d->img)))
				return -EINVAL;
		for (i = 0; i < d->nr_tasks; i++)
			if (!d->tasks[i]->done && !d->tasks[i]->nr_pending)
				loop_task_finish(d, d->tasks[i], false);
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

static int watch(struct daemon *d, int fd, void *mark)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = mark };

	if (epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &ev)) {
		pr_err("epoll_ctl: %m");
		return -1;
	}
	return 0;
}

/*
 * Everything up to criu restore's connection: the guard (forked while the daemon has one
 * thread), the source, lazy-pages.socket, --daemon's fork (every thread starts after it,
 * or the daemon would lack it), the threads, epoll.
 */
static int serve_open(struct daemon *d, const struct daemon_opts *o)
{
	if (guard_start(&d->guard))
		return -1;
	if (o->remote ? remote_open(&d->rem, d->img, o->remote) : source_local_open(&d->src, d->img))
		return -1;
	if (handoff_listen(&d->h))
		return -1;
	if (o->ready && o->ready(o->ready_arg))
		return -1;
	if (d->rem && remote_start(d->rem))
		return -1;
	if (!d->rem && o->copy_threads) {
		if (copier_start(&d->cp))
			return -1;
		d->ls.copy_threads = 1;
	}
	/* Only this thread: the copy thread and the page-server receivers keep their CPUs. */
	if (o->loop_cpu >= 0) {
		cpu_set_t cpus;

		CPU_ZERO(&cpus);
		CPU_SET(o->loop_cpu, &cpus);
		if (sched_setaffinity(0, sizeof(cpus), &cpus)) {
			pr_err("--loop-cpu %d: %m (is that CPU online and allowed to the daemon?)", o->loop_cpu);
			return -1;
		}
		pr_info("the loop runs on CPU %d only%s", o->loop_cpu, d->cp ? "; the copy thread where it started" : "");
	}
	d->conn_fd = handoff_accept(d->h);
	if (d->conn_fd < 0)
		return -1;
	d->ep = epoll_create1(EPOLL_CLOEXEC);
	if (d->ep < 0) {
		pr_err("epoll_create1: %m");
		return -1;
	}
	if (watch(d, d->conn_fd, NULL) || (d->rem && watch(d, remote_fd(d->rem), &remote_marker)) ||
	    (d->cp && watch(d, copier_fd(d->cp), &copier_marker)))
		return -1;
	pr_info("criu restore connected; expecting %zu tasks", d->nr_expected);
	return 0;
}

/* What one pass of the loop does besides reading events, and how long it may sleep. */
struct pass {
	bool bg;       /* background (or, first, the prefetch) after the events */
	bool polling;  /* just after a fault: poll rather than sleep */
	bool early_pf; /* before the finish word: a task's profile can be prefetched now */
	int timeout;   /* epoll_wait's, when none of the above */
};

static struct pass plan_pass(struct daemon *d)
{
	struct pass p = { .bg = d->finished && !d->bg_idle, .timeout = -1 };
	uint64_t now = loop_now_ns();

	/*
	 * Faults come in bursts (a thread touching memory it has not got yet): just after
	 * one, the next is likely within microseconds, and waking from epoll or finishing a
	 * 2 MiB chunk first would cost it more than the copy. So poll for a short while.
	 */
	p.polling = !d->rem && d->busy_poll_ns && now - d->last_fault_ns < d->busy_poll_ns;
	/* The tasks resume as the finish word comes, and their first touches are faults. */
	d->bg_pages = p.polling || now - d->finish_ns < START_SMALL_NS ? BG_POLL_CHUNK_PAGES : BG_CHUNK_PAGES;
	/*
	 * Recording: what the background copies first is never asked for by a fault, so it
	 * would be missing from the profile. Hold it back until the faults have stopped.
	 */
	if (p.bg && d->rec) {
		uint64_t last = d->last_fault_ns > d->finish_ns ? d->last_fault_ns : d->finish_ns;

		if (now - last < RECORD_QUIET_NS) {
			p.bg = false;
			p.timeout = (int)((RECORD_QUIET_NS - (now - last)) / 1000000) + 1;
		}
	}
	/* The profile goes from the moment the restorer has registered a task's VMAs. */
	if (d->prefetch && !d->finished) {
		int w = prefetch_wait_ms(d);

		p.early_pf = !w;
		if (w > 0)
			p.timeout = w;
	}
	if (d->nr_unclaimed && d->finished && (p.timeout < 0 || p.timeout > 1))
		p.timeout = 1;
	return p;
}

static void dispatch(struct daemon *d, const struct epoll_event *ev, bool polling)
{
	struct lazy_task *t = ev->data.ptr;

	if (ev->data.ptr == &remote_marker) {
		fetch_drain(d);
	} else if (ev->data.ptr == &copier_marker) {
		populate_reap(d);
	} else if (!t) {
		if (handle_conn(d))
			loop_fail(d);
	} else if (!t->done) {
		if (polling)
			d->ls.polled_wakeups++;
		fault_handle_uffd(d, t);
	}
}

static void serve_run(struct daemon *d)
{
	struct epoll_event evs[32];
	int n, i;

	while (!d->failed && !all_done(d)) {
		struct pass p = plan_pass(d);

		/* Remote: keep the background requests going; answers and faults wake us. */
		if (d->rem && p.bg) {
			fetch_background(d);
			p.bg = false;
		}
		if (!p.bg && !p.polling && !p.early_pf)
			d->ls.epoll_sleeps++;
		n = epoll_wait(d->ep, evs, 32, p.bg || p.polling || p.early_pf ? 0 : p.timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			pr_err("epoll_wait: %m");
			loop_fail(d);
			break;
		}
		for (i = 0; i < n && !d->failed; i++)
			dispatch(d, &evs[i], p.polling);
		forks_claim(d, false);
		if (p.bg && !d->failed) {
			if (!prefetch_step(d))
				populate_step(d);
		} else if (p.early_pf && !d->failed && !d->finished) {
			prefetch_step(d);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &d->t_complete);
}

/* Every task complete: close the page server's session properly, log, write the files. */
static int serve_complete(struct daemon *d, const struct daemon_opts *o)
{
	struct profile_error perr;
	struct remote_stats rst;
	int status = 0;

	if (d->rem) {
		/* Say goodbye properly: a lazy `criu dump` ends (and kills its tasks) on CLOSE. */
		remote_get_stats(d->rem, &rst);
		rst.dup_pages = d->dup_pages;
		remote_close(d->rem, true);
		d->rem = NULL;
		pr_info("page server: %llu requests (%llu for faults), %llu pages, %llu reconnects%s",
			(unsigned long long)rst.requests, (unsigned long long)rst.urgent_requests,
			(unsigned long long)rst.pages, (unsigned long long)rst.reconnects,
			rst.urgent_channel ? ", faults on the urgent channel" : "");
		stats_set_remote(&rst);
	}
	pr_info("all tasks complete in %.3f s (%.3f s after the restore finished)",
		elapsed(&d->t_start, &d->t_complete), elapsed(&d->t_finish, &d->t_complete));
	log_summary(d);
	if (d->rec) {
		d->ls.recorded_records = d->rec->nr;
		if (profile_write(d->rec, o->record_profile, o->fingerprint, &perr)) {
			pr_err("--record-profile: %s", perr.msg);
			status = 1;
		} else {
			pr_info("--record-profile %s: %zu records", o->record_profile, d->rec->nr);
		}
	}
	if (o->stats_file &&
	    stats_write_json(o->stats_file, d->tasks, d->nr_tasks, elapsed(&d->t_start, &d->t_complete),
			     elapsed(&d->t_finish, &d->t_complete), elapsed(&d->t_first_uffd, &d->t_complete)))
		status = 1;
	stats_set_remote(NULL);
	return status;
}

static void serve_close(struct daemon *d, int status)
{
	size_t i;

	copier_stop(d->cp);
	for (i = 0; i < d->nr_tasks; i++) {
		struct lazy_task *t = d->tasks[i];

		if (!t->done)
			close(t->uffd);
		if (t->pidfd >= 0)
			close(t->pidfd);
		task_free_ranges(t);
		free(t->pf);
		free(t->pf_sorted);
		free(t);
	}
	stats_set_loop(NULL);
	free(d->tasks);
	/* After forks_kill_tree: the guard only finishes what the daemon could not. */
	guard_close(d->guard, status == 0);
	if (d->ep >= 0)
		close(d->ep);
	handoff_close(d->h);
	source_close(d->src);
	remote_close(d->rem, false);
	free(d->waiting);
}

int daemon_serve(const struct crimg *img, const struct daemon_opts *o)
{
	struct daemon d = { .img = img, .conn_fd = -1, .ep = -1, .busy_poll_ns = o->busy_poll_ns };
	struct profile rec = { 0 };
	int status = 1;

	clock_gettime(CLOCK_MONOTONIC, &d.t_start);
	d.t_first_uffd = d.t_start;
	d.start_ns = loop_now_ns();
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
	if (!serve_open(&d, o)) {
		serve_run(&d);
		/* Before any uffd is closed, and before the tasks are killed. */
		copier_stop(d.cp);
		d.cp = NULL;
		if (d.failed)
			forks_kill_tree(&d);
		else
			status = serve_complete(&d, o);
	}
	serve_close(&d, status);
	profile_free(&rec);
	return status;
}
