// SPDX-License-Identifier: MIT
/*
 * touchbench: the workload of mk/perf-local.sh. Maps SIZE MiB of private anonymous memory
 * holding a per-word pattern, writes its host pid to PIDFILE and waits for SIGTERM (while
 * it is checkpointed and restored). On SIGTERM it reads MODEFILE ("seq", or "hot N": the
 * first N pages of a fixed shuffle) and makes one timed pass of first touches, checking
 * word 0 of each page; then it writes to OUTFILE:
 *   pass_us T bad B waits W wait_med_us M wait_p99_us P
 * where waits counts the touches that took over 3 us (a fault, or a wait for a copy),
 * and M/P are their median and 99th percentile.
 *
 * usage: touchbench SIZE_MIB PIDFILE MODEFILE OUTFILE   (run as init of a pid namespace)
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PAGE	4096UL
#define MULT	0x9e3779b97f4a7c15ULL
#define WAIT_NS 3000
/* A touch this slow did more than miss the caches: a fault of some kind. */
#define SLOW_NS 1000

static volatile sig_atomic_t go;

static void on_term(int sig)
{
	(void)sig;
	go = 1;
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000ULL + t.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The page to touch I-th: in order, or through the fixed shuffle. */
static size_t page_at(const uint32_t *order, size_t i)
{
	return order ? order[i] : i;
}

static double tv_us(const struct timeval *tv)
{
	return tv->tv_sec * 1e6 + tv->tv_usec;
}

int main(int argc, char **argv)
{
	size_t size, n, i, touches, waits = 0, bad = 0, slow = 0;
	struct rusage ru0, ru1;
	uint64_t state = 0x1234567, t0, t1, *lat, sum_ns = 0;
	uint32_t *order = NULL;
	char mode[64] = "hot 0", kind[16] = "hot", self[32] = "";
	uint64_t *mem;
	FILE *f;

	if (argc != 5) {
		fprintf(stderr, "usage: touchbench SIZE_MIB PIDFILE MODEFILE OUTFILE\n");
		return 2;
	}
	size = strtoull(argv[1], NULL, 0) << 20;
	n = size / PAGE;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	lat = calloc(n, sizeof(*lat));
	order = malloc(n * sizeof(*order));
	if (mem == MAP_FAILED || !lat || !order) {
		perror("touchbench");
		return 1;
	}
	for (i = 0; i < size / 8; i++)
		mem[i] = i * MULT;
	for (i = 0; i < n; i++)
		order[i] = i;
	for (i = n - 1; i > 0; i--) {
		size_t j;
		uint32_t x;

		state ^= state << 13;
		state ^= state >> 7;
		state ^= state << 17;
		j = state % (i + 1);
		x = order[i];
		order[i] = order[j];
		order[j] = x;
	}
	signal(SIGTERM, on_term);
	/* Init of its own pid namespace: the host pid is what /proc/self names. */
	if (readlink("/proc/self", self, sizeof(self) - 1) < 0 || !(f = fopen(argv[2], "w"))) {
		perror("touchbench: pidfile");
		return 1;
	}
	fputs(self, f);
	fclose(f);
	while (!go)
		pause();

	f = fopen(argv[3], "r");
	if (f) {
		if (!fgets(mode, sizeof(mode), f))
			strcpy(mode, "hot 0");
		fclose(f);
	}
	touches = 0;
	if (sscanf(mode, "%15s %zu", kind, &touches) < 1)
		strcpy(kind, "hot");
	if (!strcmp(kind, "seq")) {
		touches = n;
		free(order);
		order = NULL;
	}
	if (touches > n)
		touches = n;
	getrusage(RUSAGE_SELF, &ru0);
	t0 = now_ns();
	for (i = 0; i < touches; i++) {
		size_t p = page_at(order, i);
		uint64_t a = now_ns();

		bad += mem[p * PAGE / 8] != p * PAGE / 8 * MULT;
		lat[i] = now_ns() - a;
	}
	t1 = now_ns();
	getrusage(RUSAGE_SELF, &ru1);
	for (i = 0; i < touches; i++) {
		sum_ns += lat[i];
		slow += lat[i] > SLOW_NS;
	}
	for (i = 0; i < touches; i++)
		if (lat[i] > WAIT_NS)
			lat[waits++] = lat[i];
	qsort(lat, waits, sizeof(*lat), cmp_u64);
	f = fopen(argv[4], "w");
	if (!f)
		return 1;
	fprintf(f,
		"pass_us %.0f bad %zu waits %zu wait_med_us %.1f wait_p99_us %.1f touch_avg_us %.2f over_1us %zu "
		"minflt %ld majflt %ld cpu_us %.0f vcsw %ld ivcsw %ld\n",
		(t1 - t0) / 1e3, bad, waits, waits ? lat[waits / 2] / 1e3 : 0.0, waits ? lat[waits * 99 / 100] / 1e3 : 0.0,
		touches ? sum_ns / 1e3 / touches : 0.0, slow, ru1.ru_minflt - ru0.ru_minflt, ru1.ru_majflt - ru0.ru_majflt,
		tv_us(&ru1.ru_utime) + tv_us(&ru1.ru_stime) - tv_us(&ru0.ru_utime) - tv_us(&ru0.ru_stime),
		ru1.ru_nvcsw - ru0.ru_nvcsw, ru1.ru_nivcsw - ru0.ru_nivcsw);
	fclose(f);
	return bad ? 1 : 0;
}
