// SPDX-License-Identifier: MIT
/*
 * workload: the process `make bench` checkpoints and restores (see bench/bench.sh).
 *
 * It is a zdtm program (test/zdtm/lib/zdtmtst.h): one private anonymous mapping of
 * --size bytes, every page holding the zdtm per-page pattern (page index and seed in
 * every 8-byte word), then the pidfile, then a wait for SIGTERM during which it is
 * dumped and restored.
 *
 * The SIGTERM is the start signal. bench/rusage sends it the moment `criu restore -d`
 * has been reaped (--kill-pidfile), so the pass starts a few microseconds after the
 * restore returns, while the lazy-pages daemon is filling memory behind it. Only then
 * is --go read: "PATTERN RESULTFILE", so one dump serves every pattern and every rep.
 *
 * The first-touch pass reads word 0 of each page once in the pattern's order and
 * times only that load (CLOCK_MONOTONIC around it); word 0 is compared outside the
 * timed part. Orders: seq (address order), random (a fixed-key pseudo-random
 * permutation), hot (10% of the pages, chosen by another fixed-key permutation,
 * first-touched, then --hot-passes more passes over them, then the other 90% in that
 * permutation's order). Permutations are computed per index, not stored: a table
 * would itself be restored memory, faulted in by the pass it is meant to drive.
 *
 * After the pass the program waits for the harness's second SIGTERM (--settle: sent
 * once the daemon has exited, so the check does not race the population it would
 * disturb), checks every word of every page and writes RESULTFILE as key=value lines:
 * pages, pass_s, hot_s, lat_median_us, lat_p99_us, waits, wait_median_us, corrupt,
 * first_corrupt, go_real, cpus_at_go. The outfile says PASS or FAIL as for any zdtm
 * program. go_real is CLOCK_REALTIME: criu restores the task into a time namespace
 * whose CLOCK_MONOTONIC continues from the dump, so only the real-time clock compares
 * with the harness's.
 *
 * Most first touches of a lazy restore find the page already copied by the daemon's
 * background work, so the median of all of them says little about a fault. "waits" are
 * the first touches that took at least WL_WAIT_NS, more than any present page takes
 * here (a present page reads in well under a microsecond) and less than the cheapest
 * userfaultfd round trip (bench-floor): the touches that waited for the daemon, as
 * near as one can tell without a mincore() call in the timed loop.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "zdtmtst.h"

#define WL_SEED		0xbe4c4a11ULL
#define WL_KEY_RANDOM	0x1234abcdULL
#define WL_KEY_HOT	0x9876fedcULL
#define WL_WORDS	(ZT_PAGE_SIZE / sizeof(uint64_t))
#define WL_WAIT_NS	3000

/* A bijection on [0, 2^bits): add, odd multiply and xorshift steps, all invertible. */
struct perm {
	uint64_t n, mask, key;
	unsigned int shift;
};

static void perm_init(struct perm *p, uint64_t n, uint64_t key)
{
	unsigned int bits = 1;

	while ((1ULL << bits) < n)
		bits++;
	p->n = n;
	p->mask = (1ULL << bits) - 1;
	p->key = key;
	p->shift = bits / 2 + 1;
}

static uint64_t perm_step(const struct perm *p, uint64_t x)
{
	x = (x + p->key) & p->mask;
	x = (x * 0x9e3779b97f4a7c15ULL) & p->mask;
	x ^= x >> p->shift;
	x = (x * 0xbf58476d1ce4e5b9ULL) & p->mask;
	x ^= x >> p->shift;
	return x;
}

/* Cycle walking: the bijection restricted to [0, n) is still one. */
static uint64_t perm_at(const struct perm *p, uint64_t i)
{
	uint64_t x = perm_step(p, i);

	while (x >= p->n)
		x = perm_step(p, x);
	return x;
}

static double clock_now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct pass {
	char *mem;
	uint64_t n;
	uint32_t *lat_ns;	/* per first touch, in touch order */
	uint64_t nr_lat;
	uint64_t bad_word0;
	uint64_t first_bad_word0;
};

static inline uint64_t ns_between(const struct timespec *a, const struct timespec *b)
{
	return (uint64_t)(b->tv_sec - a->tv_sec) * 1000000000ULL + b->tv_nsec - a->tv_nsec;
}

static void first_touch(struct pass *ps, uint64_t page)
{
	struct timespec t0, t1;
	uint64_t w, ns;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	w = *(const volatile uint64_t *)(ps->mem + page * ZT_PAGE_SIZE);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ns = ns_between(&t0, &t1);
	ps->lat_ns[ps->nr_lat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
	if (w != zt_pattern_word(WL_SEED, page, 0) && !ps->bad_word0++)
		ps->first_bad_word0 = page;
}

static void retouch(struct pass *ps, uint64_t page)
{
	(void)*(const volatile uint64_t *)(ps->mem + page * ZT_PAGE_SIZE);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Every word of every page; returns the number of bad pages, the first in *first. */
static uint64_t verify_all(const char *mem, uint64_t n, uint64_t *first)
{
	uint64_t page, bad = 0;

	for (page = 0; page < n; page++) {
		const uint64_t *p = (const uint64_t *)(mem + page * ZT_PAGE_SIZE);
		uint64_t w1 = zt_pattern_word(WL_SEED, page, 1);
		uint64_t step = zt_pattern_word(WL_SEED, page, 2) - w1, want = w1;
		unsigned int w;
		bool ok = p[0] == zt_pattern_word(WL_SEED, page, 0);

		for (w = 1; ok && w < WL_WORDS; w++, want += step)
			ok = p[w] == want;
		if (!ok && !bad++)
			*first = page;
	}
	return bad;
}

/* The affinity criu restored (before anything here changes it), as "0" or "0-1". */
static void cpus_string(char *buf, size_t len)
{
	cpu_set_t set;
	size_t off = 0;
	int c;

	buf[0] = '\0';
	if (sched_getaffinity(0, sizeof(set), &set)) {
		snprintf(buf, len, "?");
		return;
	}
	for (c = 0; c < CPU_SETSIZE && off + 8 < len; c++)
		if (CPU_ISSET(c, &set))
			off += snprintf(buf + off, len - off, "%s%d", off ? "," : "", c);
}

static int read_go(const char *path, char *pattern, size_t plen, char *result, size_t rlen)
{
	char fmt[32];
	FILE *f = fopen(path, "r");
	int n;

	if (!f)
		return -errno;
	snprintf(fmt, sizeof(fmt), "%%%zus %%%zus", plen - 1, rlen - 1);
	n = fscanf(f, fmt, pattern, result);
	fclose(f);
	return n == 2 ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
	size_t size = 0;
	unsigned long cpu = ~0UL, hot_passes = 5;
	const char *go = NULL;
	const struct zt_opt opts[] = {
		{ "size", ZT_OPT_SIZE, &size, true, "bytes of anonymous memory (page multiple)" },
		{ "go", ZT_OPT_STR, &go, true, "read \"PATTERN RESULTFILE\" from here at SIGTERM" },
		{ "cpu", ZT_OPT_ULONG, &cpu, false, "pin to this CPU before getting ready" },
		{ "hot-passes", ZT_OPT_ULONG, &hot_passes, false, "passes over the hot set after its first touch (5)" },
		{ NULL },
	};
	char pattern[16], result[4096], cpus[256], text[1024];
	double t_go, t0, t_hot = 0, t_end;
	struct pass ps = { 0 };
	struct perm pm;
	uint64_t i, nh, corrupt, first_corrupt = 0, lo, hi, waits;
	int ret;

	zt_init(argc, argv, "workload", opts);
	if (!size || size % ZT_PAGE_SIZE)
		zt_setup_fail("--size %zu is not a positive multiple of %lu", size, ZT_PAGE_SIZE);
	if (size / ZT_PAGE_SIZE > UINT32_MAX)
		zt_setup_fail("--size %zu: too many pages", size);
	if (cpu != ~0UL) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			zt_setup_fail("--cpu %lu: %s", cpu, strerror(errno));
	}
	ps.n = size / ZT_PAGE_SIZE;
	ps.mem = zt_map_guarded(size);
	if (!ps.mem)
		zt_setup_fail("mmap %zu bytes: %s", size, strerror(errno));
	zt_pattern_fill(ps.mem, size, WL_SEED, 0);
	/* Only so that --selftest-corrupt has a region to spoil: the check is verify_all(). */
	zt_region_add("workload", ps.mem, size, ZT_REGION_PATTERN, WL_SEED, 0);
	ret = zt_ready();
	if (ret)
		zt_setup_fail("pidfile: %s", strerror(-ret));

	zt_wait_term();
	t_go = clock_now(CLOCK_REALTIME);
	cpus_string(cpus, sizeof(cpus));
	ret = read_go(go, pattern, sizeof(pattern), result, sizeof(result));
	if (ret) {
		zt_fail("workload: --go %s: %s", go, strerror(-ret));
		return zt_finish();
	}
	/* A fresh mapping, populated now: its faults must not land inside the timed pass. */
	ps.lat_ns = mmap(NULL, ps.n * sizeof(*ps.lat_ns), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (ps.lat_ns == MAP_FAILED) {
		zt_fail("workload: latency array: %s", strerror(errno));
		return zt_finish();
	}

	t0 = clock_now(CLOCK_MONOTONIC);
	if (!strcmp(pattern, "seq")) {
		for (i = 0; i < ps.n; i++)
			first_touch(&ps, i);
	} else if (!strcmp(pattern, "random")) {
		perm_init(&pm, ps.n, WL_KEY_RANDOM);
		for (i = 0; i < ps.n; i++)
			first_touch(&ps, perm_at(&pm, i));
	} else if (!strcmp(pattern, "hot")) {
		unsigned long k;

		perm_init(&pm, ps.n, WL_KEY_HOT);
		nh = ps.n / 10 ? ps.n / 10 : 1;
		for (i = 0; i < nh; i++)
			first_touch(&ps, perm_at(&pm, i));
		for (k = 0; k < hot_passes; k++)
			for (i = 0; i < nh; i++)
				retouch(&ps, perm_at(&pm, i));
		t_hot = clock_now(CLOCK_MONOTONIC);
		for (i = nh; i < ps.n; i++)
			first_touch(&ps, perm_at(&pm, i));
	} else {
		zt_fail("workload: pattern '%s': seq, random or hot", pattern);
		return zt_finish();
	}
	t_end = clock_now(CLOCK_MONOTONIC);

	/* The daemon finishes its background copy undisturbed; then every byte counts. */
	zt_settle();
	corrupt = verify_all(ps.mem, ps.n, &first_corrupt);
	if (corrupt)
		zt_fail("workload: %llu corrupt pages, the first is page %llu",
			(unsigned long long)corrupt, (unsigned long long)first_corrupt);
	if (ps.bad_word0 && !corrupt)
		zt_fail("workload: %llu pages read wrong at first touch (first %llu) but right later",
			(unsigned long long)ps.bad_word0, (unsigned long long)ps.first_bad_word0);

	qsort(ps.lat_ns, ps.nr_lat, sizeof(*ps.lat_ns), cmp_u32);
	for (lo = 0, hi = ps.nr_lat; lo < hi;) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (ps.lat_ns[mid] < WL_WAIT_NS)
			lo = mid + 1;
		else
			hi = mid;
	}
	waits = ps.nr_lat - lo;
	snprintf(text, sizeof(text),
		 "pattern=%s\npages=%llu\npass_s=%.6f\nhot_s=%.6f\nlat_median_us=%.3f\nlat_p99_us=%.3f\n"
		 "waits=%llu\nwait_median_us=%.3f\n"
		 "corrupt=%llu\nfirst_corrupt=%lld\nfirst_touch_bad=%llu\ngo_real=%.6f\n"
		 "cpus_at_go=%s\n",
		 pattern, (unsigned long long)ps.n, t_end - t0, t_hot ? t_hot - t0 : 0.0,
		 ps.lat_ns[ps.nr_lat / 2] / 1e3, ps.lat_ns[ps.nr_lat * 99 / 100] / 1e3,
		 (unsigned long long)waits, waits ? ps.lat_ns[lo + waits / 2] / 1e3 : 0.0,
		 (unsigned long long)corrupt, corrupt ? (long long)first_corrupt : -1LL,
		 (unsigned long long)ps.bad_word0, t_go, cpus);
	ret = zt_write_file(result, text);
	if (ret)
		zt_fail("workload: %s: %s", result, strerror(-ret));
	return zt_finish();
}
