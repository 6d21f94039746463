// SPDX-License-Identifier: MIT
/*
 * threads: eight threads, each with its own --size bytes (default 2M) of pattern
 * memory (seed by thread index), a pattern-filled buffer on its own stack and a
 * thread-local variable. After SIGTERM (taken by the main thread: the others keep it
 * blocked) the main thread releases them; each checks its region, its stack buffer,
 * its TLS value and that gettid() is what it was before the dump. The main thread
 * also checks that the process still has nine threads, joins them and writes the
 * outfile.
 *
 * --shared SIZE: one more region that every thread checks. After SIGTERM the main
 * thread probes all regions (mincore), then releases the threads through a barrier so
 * they fault at once: even threads check the shared region first and then their own,
 * odd threads the other way round, so the same pages and different pages are asked
 * for at the same time. The threads then stay until zt_settle() has returned (with
 * --settle: until the lazy-pages daemon has exited), unless --exit-early: then they exit
 * at once, and glibc drops their stacks (MADV_DONTNEED, and munmap beyond its stack
 * cache) while the daemon may still be copying.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "zdtmtst.h"

#define NR_THREADS	8
#define THR_SEED	0x7412ead
#define STACK_PAGES	4

struct thr {
	pthread_t th;
	unsigned int idx;
	char *mem;
	pid_t tid;
};

/*
 * More than one of a remote daemon's background requests (1 MiB): it asks for ranges
 * no bigger than that first, which would leave nothing lazy for the threads to fault.
 */
static size_t size = 2 << 20, shared_size;
static char *shared;
static pthread_barrier_t barrier;
static struct thr thrs[NR_THREADS];
static __thread unsigned int tls_idx = ~0U;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned int nr_ready;
static bool go, released, exit_early;

static void *thread_main(void *arg)
{
	struct thr *t = arg;
	uint64_t stack_buf[STACK_PAGES * ZT_PAGE_SIZE / sizeof(uint64_t)]
		__attribute__((aligned(4096)));
	char what[48];

	tls_idx = t->idx;
	t->tid = gettid();
	zt_pattern_fill(t->mem, size, THR_SEED + t->idx, 0);
	zt_pattern_fill(stack_buf, sizeof(stack_buf), THR_SEED + 100 + t->idx, 0);

	pthread_mutex_lock(&lock);
	nr_ready++;
	pthread_cond_broadcast(&cond);
	while (!go)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);

	if (shared) {
		pthread_barrier_wait(&barrier);
		if (!(t->idx & 1))
			zt_pattern_check("threads shared memory", shared, shared_size, THR_SEED + 999, 0);
	}
	snprintf(what, sizeof(what), "threads %u memory", t->idx);
	zt_pattern_check(what, t->mem, size, THR_SEED + t->idx, 0);
	if (shared && (t->idx & 1))
		zt_pattern_check("threads shared memory", shared, shared_size, THR_SEED + 999, 0);
	snprintf(what, sizeof(what), "threads %u stack", t->idx);
	zt_pattern_check(what, stack_buf, sizeof(stack_buf), THR_SEED + 100 + t->idx, 0);
	if (tls_idx != t->idx)
		zt_fail("threads %u: TLS value %u", t->idx, tls_idx);
	if (gettid() != t->tid)
		zt_fail("threads %u: tid %d after restore, was %d", t->idx, (int)gettid(),
			(int)t->tid);
	if (shared && !exit_early) {
		pthread_mutex_lock(&lock);
		while (!released)
			pthread_cond_wait(&cond, &lock);
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

static int count_threads(void)
{
	struct dirent *de;
	DIR *d = opendir("/proc/self/task");
	int n = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	const struct zt_opt opts[] = {
		{ "size", ZT_OPT_SIZE, &size, false, "bytes of memory per thread (default 2M)" },
		{ "shared", ZT_OPT_SIZE, &shared_size, false, "bytes every thread checks (default none)" },
		{ "exit-early", ZT_OPT_FLAG, &exit_early, false, "with --shared: threads exit right after their checks" },
		{ NULL },
	};
	unsigned int i;
	int ret, n;

	zt_init(argc, argv, "threads", opts);
	if (!size || size % ZT_PAGE_SIZE)
		zt_setup_fail("--size %zu is not a positive page multiple", size);
	if (shared_size % ZT_PAGE_SIZE)
		zt_setup_fail("--shared %zu is not a page multiple", shared_size);
	if (shared_size) {
		shared = zt_map_guarded(shared_size);
		if (!shared)
			zt_setup_fail("mmap shared: %s", strerror(errno));
		zt_pattern_fill(shared, shared_size, THR_SEED + 999, 0);
		ret = pthread_barrier_init(&barrier, NULL, NR_THREADS);
		if (ret)
			zt_setup_fail("pthread_barrier_init: %s", strerror(ret));
	}

	for (i = 0; i < NR_THREADS; i++) {
		thrs[i].idx = i;
		thrs[i].mem = zt_map_guarded(size);
		if (!thrs[i].mem)
			zt_setup_fail("mmap for thread %u: %s", i, strerror(errno));
		/* Only for --selftest-corrupt (thread 0's memory); each thread checks its own. */
		zt_region_add("threads memory", thrs[i].mem, size, ZT_REGION_PATTERN, THR_SEED + i, 0);
		ret = pthread_create(&thrs[i].th, NULL, thread_main, &thrs[i]);
		if (ret)
			zt_setup_fail("pthread_create %u: %s", i, strerror(ret));
	}
	pthread_mutex_lock(&lock);
	while (nr_ready < NR_THREADS)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);

	ret = zt_ready();
	if (ret)
		zt_setup_fail("pidfile: %s", strerror(-ret));
	zt_wait_term();

	if (shared) {
		zt_lazy_probe("threads shared memory", shared, shared_size);
		for (i = 0; i < NR_THREADS; i++)
			zt_lazy_probe("threads own memory", thrs[i].mem, size);
	}
	n = count_threads();
	if (n != NR_THREADS + 1)
		zt_fail("threads: %d threads after restore, expected %d", n, NR_THREADS + 1);
	pthread_mutex_lock(&lock);
	go = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	if (shared) {
		zt_settle();
		pthread_mutex_lock(&lock);
		released = true;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&lock);
	}
	for (i = 0; i < NR_THREADS; i++)
		pthread_join(thrs[i].th, NULL);
	if (shared)
		zt_check_regions_kind(ZT_REGION_PATTERN);	/* no thread checks --ballast */
	return zt_finish();
}
