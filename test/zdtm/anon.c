// SPDX-License-Identifier: MIT
/*
 * anon: one private anonymous mapping of --size bytes (4K .. 1G), every page holding
 * the per-page pattern. --mapfile F gets "0x<start> <bytes>" so the harness can find
 * the VMA in `lazy-uffd show`. The mapping sits between PROT_NONE guard pages, so it
 * is exactly one VMA of exactly --size bytes.
 *
 * --check-order seq|random|write: after SIGTERM, first touch every page once, in
 * address order or in a shuffled order (one read of word 0 each, checked), or in a
 * shuffled order with a write (byte 0 gets the value the pattern has there, without
 * reading it first: a write fault), before the full byte check. On a lazy restore these first touches are the faults the daemon serves
 * while its background copy runs; the region is probed with mincore first.
 *
 * --thp: the region starts on a 2 MiB boundary and has MADV_HUGEPAGE (THP-eligible);
 * the note file records how much of it was in huge pages before the dump, and the
 * VMA must still have the hg flag after restore.
 *
 * --exit-at-once: after SIGTERM, probe the region (mincore, no touch), write the
 * outfile and exit: the process is gone long before a lazy daemon has copied it all.
 *
 * --exec-after: after SIGTERM, probe the region, check its first eighth, then execv()
 * this program again (with --exec-stage2, same pidfile and outfile): the restored mm
 * goes away under the daemon while the process lives on. The second stage checks it
 * is still pid 1 and writes the outfile.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "zdtmtst.h"

#define ANON_SEED	0xa11c0de

/* A fixed-seed xorshift: the shuffle is the same in every run. */
static uint64_t rnd_state = 0x5eed5eed12345678ULL;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* Touch every page once in ORDER; word 0 must already be right on the first read. */
static void first_touch(char *mem, size_t size, const char *order)
{
	size_t n = size / ZT_PAGE_SIZE, i, bad = 0;
	uint32_t *perm = NULL;
	struct timespec t0, t1;

	if (strcmp(order, "seq")) {
		perm = malloc(n * sizeof(*perm));
		if (!perm) {
			zt_fail("anon: no memory for a %zu-page shuffle", n);
			return;
		}
		for (i = 0; i < n; i++)
			perm[i] = i;
		for (i = n - 1; i > 0; i--) {
			size_t j = rnd() % (i + 1);
			uint32_t t = perm[i];

			perm[i] = perm[j];
			perm[j] = t;
		}
	}
	/* The shuffle is not timed: the note gives the first-touch pass alone (bench.bats). */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++) {
		size_t page = perm ? perm[i] : i;
		uint64_t w;

		if (!strcmp(order, "write")) {
			*(volatile char *)(mem + page * ZT_PAGE_SIZE) =
				(char)(zt_pattern_word(ANON_SEED, page, 0) & 0xff);
			continue;
		}
		w = *(const volatile uint64_t *)(mem + page * ZT_PAGE_SIZE);

		if (w != zt_pattern_word(ANON_SEED, page, 0) && !bad++)
			zt_fail("anon: first %s touch #%zu, page %zu: word 0 is 0x%llx, expected 0x%llx",
				order, i, page, (unsigned long long)w,
				(unsigned long long)zt_pattern_word(ANON_SEED, page, 0));
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	zt_note("anon: first touches (%s) of %zu pages took %.3f s", order, n,
		(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	free(perm);
}

#define HUGE	(2UL << 20)

/* The smaps field @field ("AnonHugePages:", "VmFlags:") of the VMA starting at @start. */
static int smaps_field(const void *start, const char *field, char *out, size_t outlen)
{
	char line[512], want[32];
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "r");
	int ret = -1;

	if (!f)
		return -1;
	snprintf(want, sizeof(want), "%lx-", (unsigned long)start);
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, ' ') && strchr(line, '-') < strchr(line, ' ')) {
			in = !strncmp(line, want, strlen(want));
			continue;
		}
		if (in && !strncmp(line, field, strlen(field))) {
			snprintf(out, outlen, "%s", line + strlen(field));
			out[strcspn(out, "\n")] = '\0';
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

/* Run this program again as the second stage of --exec-after (returns on failure). */
static void exec_stage2_now(const char *argv0)
{
	char *args[] = { (char *)argv0, "--pidfile", (char *)zt_pidfile_path(), "--outfile",
			 (char *)zt_outfile_path(), "--size", "4K", "--exec-stage2", NULL };

	execv("/proc/self/exe", args);
}

static void *map_thp(size_t size)
{
	char *base = zt_map_guarded(size + HUGE), *p;

	if (!base)
		return NULL;
	p = (char *)(((uintptr_t)base + HUGE - 1) & ~(HUGE - 1));
	if (madvise(p, size, MADV_HUGEPAGE))
		return NULL;
	return p;
}

int main(int argc, char **argv)
{
	size_t size = 0;
	bool thp = false, exit_at_once = false, exec_after = false, exec_stage2 = false;
	char field[256];
	const char *mapfile = NULL, *order = NULL;
	const struct zt_opt opts[] = {
		{ "size", ZT_OPT_SIZE, &size, true, "bytes of anonymous memory (page multiple)" },
		{ "mapfile", ZT_OPT_STR, &mapfile, false, "write \"0x<start> <bytes>\" here" },
		{ "check-order", ZT_OPT_STR, &order, false, "seq|random|write: first touches before the check" },
		{ "thp", ZT_OPT_FLAG, &thp, false, "2 MiB aligned and MADV_HUGEPAGE" },
		{ "exit-at-once", ZT_OPT_FLAG, &exit_at_once, false, "after SIGTERM: probe, PASS, exit" },
		{ "exec-after", ZT_OPT_FLAG, &exec_after, false, "after SIGTERM: probe, check 1/8, exec" },
		{ "exec-stage2", ZT_OPT_FLAG, &exec_stage2, false, "(internal) the program --exec-after runs" },
		{ NULL },
	};
	char text[64];
	void *mem;
	int ret;

	zt_init(argc, argv, "anon", opts);
	if (exec_stage2) {
		if (getpid() != 1)
			zt_fail("anon --exec-after: pid %d after exec, expected 1", (int)getpid());
		return zt_finish();
	}
	if (!size || size % ZT_PAGE_SIZE)
		zt_setup_fail("--size %zu is not a positive multiple of %lu", size, ZT_PAGE_SIZE);
	if (order && strcmp(order, "seq") && strcmp(order, "random") && strcmp(order, "write"))
		zt_setup_fail("--check-order %s: seq, random or write", order);
	if (size / ZT_PAGE_SIZE > UINT32_MAX)
		zt_setup_fail("--size %zu: too many pages", size);

	if (thp && size % HUGE)
		zt_setup_fail("--thp: --size %zu is not a multiple of 2M", size);
	mem = thp ? map_thp(size) : zt_map_guarded(size);
	if (!mem)
		zt_setup_fail("mmap %zu bytes: %s", size, strerror(errno));
	zt_pattern_fill(mem, size, ANON_SEED, 0);
	if (thp) {
		if (smaps_field(mem, "AnonHugePages:", field, sizeof(field)))
			zt_setup_fail("--thp: no smaps entry starting at %p", mem);
		zt_note("anon: before the dump, AnonHugePages:%s of %zu kB", field, size >> 10);
	}
	zt_region_add("anon", mem, size, ZT_REGION_PATTERN, ANON_SEED, 0);

	if (mapfile) {
		snprintf(text, sizeof(text), "%p %zu\n", mem, size);
		ret = zt_write_file(mapfile, text);
		if (ret)
			zt_setup_fail("%s: %s", mapfile, strerror(-ret));
	}
	ret = zt_ready();
	if (ret)
		zt_setup_fail("pidfile: %s", strerror(-ret));

	zt_wait_term();
	if (exit_at_once) {
		zt_lazy_probe("anon", mem, size);
		return zt_finish();
	}
	if (exec_after) {
		zt_lazy_probe("anon", mem, size);
		zt_pattern_check("anon before exec", mem, size / 8 / ZT_PAGE_SIZE * ZT_PAGE_SIZE,
				 ANON_SEED, 0);
		if (zt_failures())
			return zt_finish();
		exec_stage2_now(argv[0]);
		zt_fail("anon --exec-after: execv /proc/self/exe: %s", strerror(errno));
		return zt_finish();
	}
	if (thp) {
		if (smaps_field(mem, "VmFlags:", field, sizeof(field)))
			zt_fail("anon --thp: no smaps entry starting at %p after restore", mem);
		else if (!strstr(field, " hg"))
			zt_fail("anon --thp: VmFlags%s after restore: no hg (MADV_HUGEPAGE)", field);
		else
			zt_note("anon: after restore, VmFlags:%s", field);
	}
	if (order) {
		zt_lazy_probe("anon", mem, size);
		first_touch(mem, size, order);
	}
	zt_check_regions();
	if (thp && !smaps_field(mem, "AnonHugePages:", field, sizeof(field)))
		zt_note("anon: after the check, AnonHugePages:%s", field);
	return zt_finish();
}
