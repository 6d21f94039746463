// SPDX-License-Identifier: MIT
/*
 * storm: load for the daemon. A root and --procs - 1 children (default 64 processes in
 * all), each with --threads T threads (default 4). Every thread has --size bytes
 * (default 1M) of its own pattern memory; every process has --shared bytes (default 4M)
 * that all its threads check. On SIGTERM the root forwards the signal to every child; in
 * each process the main thread releases the threads through a barrier, so that every
 * thread of every process faults at once. Even threads check
 * the shared region first, odd ones their own.
 *
 * --fork-storm: before releasing its threads, every process forks a child that checks
 * all of the process's memory (its pages still lazy: the daemon must serve the fork's own
 * uffd) and exits 0 or 1 (its verdict in OUTFILE.<name>.fork). Each process waits for
 * its fork, every child for its own; the root aggregates the exit statuses.
 *
 * --expect-lazy (without --fork-storm): every process counts its pages not present yet
 * before it releases its threads; a child whose memory was all there exits
 * STORM_EXIT_PRESENT instead of 0, and the run is inconclusive when no process had
 * anything left to fault in.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define ST_SEED 0x5707

/* A child's exit status: it passed, but with --expect-lazy its memory was all there. */
#define STORM_EXIT_PRESENT 3

struct thr {
	pthread_t th;
	unsigned long proc, idx;
	char *mem;
};

static size_t size = 1 << 20, shared_size = 4 << 20;
static unsigned long nr_procs = 64, nr_threads = 4;
static bool fork_storm;

static char *shared;
static struct thr *thrs;
static pthread_barrier_t barrier;
static char name[32] = "root";

static uint64_t thread_seed(unsigned long proc, unsigned long idx)
{
	return ST_SEED + 1000 * (proc + 1) + idx;
}

static uint64_t shared_seed(unsigned long proc)
{
	return ST_SEED + 1000 * (proc + 1) + 999;
}

static void *thread_main(void *arg)
{
	struct thr *t = arg;
	char what[64];

	/* Released once after the dump (the first wait is before it). */
	pthread_barrier_wait(&barrier);
	pthread_barrier_wait(&barrier);
	snprintf(what, sizeof(what), "storm %s thread %lu memory", name, t->idx);
	if (t->idx & 1)
		zt_pattern_check(what, t->mem, size, thread_seed(t->proc, t->idx), 0);
	zt_pattern_check("storm shared memory", shared, shared_size, shared_seed(t->proc), 0);
	if (!(t->idx & 1))
		zt_pattern_check(what, t->mem, size, thread_seed(t->proc, t->idx), 0);
	return NULL;
}

/* The fork of --fork-storm: everything the process has, read through its own uffd. */
static void __attribute__((noreturn)) fork_check(unsigned long proc)
{
	char fname[48], what[64];
	unsigned long i;

	snprintf(fname, sizeof(fname), "%s.fork", name);
	zt_child_init(fname);
	zt_pattern_check("storm fork: shared memory", shared, shared_size, shared_seed(proc), 0);
	for (i = 0; i < nr_threads; i++) {
		snprintf(what, sizeof(what), "storm fork: thread %lu memory", i);
		zt_pattern_check(what, thrs[i].mem, size, thread_seed(proc, i), 0);
	}
	_exit(zt_finish());
}

/* Set up process PROC's memory and threads; the threads wait at the barrier. */
static void proc_setup(unsigned long proc)
{
	unsigned long i;
	int ret;

	thrs = calloc(nr_threads, sizeof(*thrs));
	shared = zt_map_guarded(shared_size);
	if (!thrs || !shared)
		zt_setup_fail("%s: memory: %s", name, strerror(errno));
	zt_pattern_fill(shared, shared_size, shared_seed(proc), 0);
	zt_region_add("storm shared memory", shared, shared_size, ZT_REGION_PATTERN, shared_seed(proc), 0);
	ret = pthread_barrier_init(&barrier, NULL, nr_threads + 1);
	if (ret)
		zt_setup_fail("pthread_barrier_init: %s", strerror(ret));
	for (i = 0; i < nr_threads; i++) {
		thrs[i].proc = proc;
		thrs[i].idx = i;
		thrs[i].mem = zt_map_guarded(size);
		if (!thrs[i].mem)
			zt_setup_fail("%s: mmap for thread %lu: %s", name, i, strerror(errno));
		zt_pattern_fill(thrs[i].mem, size, thread_seed(proc, i), 0);
		/* For --selftest-corrupt and the probes; each thread checks its own. */
		zt_region_add("storm thread memory", thrs[i].mem, size, ZT_REGION_PATTERN, thread_seed(proc, i), 0);
		ret = pthread_create(&thrs[i].th, NULL, thread_main, &thrs[i]);
		if (ret)
			zt_setup_fail("pthread_create %lu: %s", i, strerror(ret));
	}
	pthread_barrier_wait(&barrier);
}

/*
 * The pages of this process not present yet, before its threads touch them. The
 * daemon's background population goes through the tasks in the order their uffds
 * were handed over, which is the order in which their restorers got there, not the
 * tree's: any process may be the last one filled. So every process counts its own,
 * and the run exercised the lazy path when one of them still had pages to fault in.
 */
static long probe(void)
{
	long missing, sum;
	unsigned long i;

	sum = zt_lazy_count("storm shared memory", shared, shared_size);
	for (i = 0; i < nr_threads && sum >= 0; i++) {
		missing = zt_lazy_count("storm thread memory", thrs[i].mem, size);
		sum = missing < 0 ? missing : sum + missing;
	}
	return sum;
}

/* After SIGTERM: fork (--fork-storm), release the threads, collect. */
static void proc_check(unsigned long proc)
{
	pid_t fork_pid = -1;
	unsigned long i;
	int ws;

	if (fork_storm) {
		fork_pid = fork();
		if (fork_pid < 0)
			zt_fail("storm %s: fork after restore: %s", name, strerror(errno));
		if (fork_pid == 0)
			fork_check(proc);
	}
	pthread_barrier_wait(&barrier);
	for (i = 0; i < nr_threads; i++)
		pthread_join(thrs[i].th, NULL);
	if (fork_pid > 0 && (waitpid(fork_pid, &ws, 0) != fork_pid || !WIFEXITED(ws) || WEXITSTATUS(ws)))
		zt_fail("storm %s: its fork failed (wait status 0x%x); see OUTFILE.%s.fork", name, ws, name);
}

static void __attribute__((noreturn)) child_main(unsigned long proc, int ready_fd)
{
	bool lazy = true;
	int ret;

	snprintf(name, sizeof(name), "child%lu", proc);
	zt_child_init(name);
	proc_setup(proc);
	if (write(ready_fd, "r", 1) != 1)
		zt_setup_fail("%s: ready pipe: %s", name, strerror(errno));
	close(ready_fd);
	zt_wait_term();
	/* --fork-storm: the forks' own faults (the daemon's stats) show the lazy path. */
	if (zt_expect_lazy() && !fork_storm)
		lazy = probe() > 0;
	proc_check(proc);
	ret = zt_finish();
	_exit(ret == ZT_EXIT_PASS && !lazy ? STORM_EXIT_PRESENT : ret);
}

int main(int argc, char **argv)
{
	const struct zt_opt opts[] = {
		{ "procs", ZT_OPT_ULONG, &nr_procs, false, "processes, the root included (default 64)" },
		{ "threads", ZT_OPT_ULONG, &nr_threads, false, "threads per process besides the main one (default 4)" },
		{ "size", ZT_OPT_SIZE, &size, false, "bytes per thread (default 1M)" },
		{ "shared", ZT_OPT_SIZE, &shared_size, false, "bytes per process all its threads check (default 4M)" },
		{ "fork-storm", ZT_OPT_FLAG, &fork_storm, false, "every process forks a checker after restore" },
		{ NULL },
	};
	unsigned long i, bad = 0, lazy = 0;
	pid_t *kids;
	int ret;

	zt_init(argc, argv, "storm", opts);
	if (!size || size % ZT_PAGE_SIZE || !shared_size || shared_size % ZT_PAGE_SIZE)
		zt_setup_fail("--size and --shared must be positive page multiples");
	if (!nr_procs || nr_procs > 1000 || !nr_threads || nr_threads > 64)
		zt_setup_fail("--procs 1..1000, --threads 1..64");
	kids = calloc(nr_procs, sizeof(*kids));
	if (!kids)
		zt_setup_fail("memory: %s", strerror(errno));
	/* Children first: they must not inherit the root's threads' state. */
	for (i = 1; i < nr_procs; i++)
		kids[i] = zt_fork_ready(i, child_main);
	proc_setup(0);

	ret = zt_ready();
	if (ret)
		zt_setup_fail("pidfile: %s", strerror(-ret));
	zt_wait_term();
	if (zt_expect_lazy() && !fork_storm && probe() > 0)
		lazy++;
	for (i = 1; i < nr_procs; i++)
		kill(kids[i], SIGTERM);
	proc_check(0);
	for (i = 1; i < nr_procs; i++) {
		int ws = 0;
		bool ok = waitpid(kids[i], &ws, 0) == kids[i] && WIFEXITED(ws);

		if (ok && WEXITSTATUS(ws) == ZT_EXIT_PASS && !fork_storm)
			lazy++;
		else if (!ok || (WEXITSTATUS(ws) != ZT_EXIT_PASS && WEXITSTATUS(ws) != STORM_EXIT_PRESENT)) {
			if (!bad++)
				zt_fail("storm: child%lu failed (wait status 0x%x); see OUTFILE.child%lu", i, ws, i);
		}
	}
	if (bad > 1)
		zt_fail("storm: %lu of %lu children failed", bad, nr_procs - 1);
	if (zt_expect_lazy() && !fork_storm) {
		zt_note("storm: %lu of %lu processes still had lazy memory when SIGTERM came", lazy, nr_procs);
		if (!lazy)
			zt_lazy_inconclusive("storm: all %lu processes had all of their memory before their threads touched it (--expect-lazy): the lazy path was not exercised",
					     nr_procs);
	}
	return zt_finish();
}
