// SPDX-License-Identifier: MIT
/*
 * zeropages: zeros that got there in different ways, next to pattern pages.
 *   huge-read   2M, 2M aligned, MADV_HUGEPAGE, only read (the huge zero page when THP
 *               allows it, else the shared zero page)
 *   huge-zeroed 2M, 2M aligned, MADV_HUGEPAGE, written with zeros (a real zero-filled
 *               huge page or 512 real zero pages)
 *   mixed       --size bytes (default 4M), each page one of: pattern, written with
 *               zeros, only read (shared zero page), never touched
 * After restore: pattern pages hold the pattern and every other page reads zero; then
 * every zero page is written with a second pattern and read back (it must be a
 * private, writable page), and the first pattern must still be intact.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "zdtmtst.h"

#define ZP_SEED		0x2e80
#define ZP_SEED2	0x2e81
#define HUGE		(2UL << 20)

enum kind { PATTERN, ZEROED, READ, UNTOUCHED, NR_KINDS };

static const char *const kind_name[] = {
	[PATTERN] = "pattern", [ZEROED] = "zeroed", [READ] = "read", [UNTOUCHED] = "untouched",
};

static enum kind kind_of(size_t i)
{
	/* Runs of 1..4 pages, kinds from a hash, so every kind borders every other. */
	uint64_t h = zt_pattern_word(ZP_SEED, i / 3 + (i % 7 == 0), 5);

	return (enum kind)((h >> 40) % NR_KINDS);
}

static void touch_read(const char *p, size_t len)
{
	size_t off;

	for (off = 0; off < len; off += ZT_PAGE_SIZE)
		(void)*(const volatile char *)(p + off);
}

int main(int argc, char **argv)
{
	size_t size = 4 << 20, nr_pages, i, run, nr_kind[NR_KINDS] = { 0 };
	const struct zt_opt opts[] = {
		{ "size", ZT_OPT_SIZE, &size, false, "bytes in the mixed part (>= 64K, page multiple)" },
		{ NULL },
	};
	char *base, *huge_read, *huge_zeroed, *mixed;
	int ret;

	zt_init(argc, argv, "zeropages", opts);
	if (size < (64 << 10) || size % ZT_PAGE_SIZE)
		zt_setup_fail("--size %zu: need a page multiple of at least 64K", size);
	nr_pages = size / ZT_PAGE_SIZE;

	/* Room to align the two huge parts to 2M. */
	base = zt_map_guarded(HUGE + 2 * HUGE + size);
	if (!base)
		zt_setup_fail("mmap: %s", strerror(errno));
	huge_read = (char *)(((uintptr_t)base + HUGE - 1) & ~(HUGE - 1));
	huge_zeroed = huge_read + HUGE;
	mixed = huge_zeroed + HUGE;

	/* Best effort: without THP these are plain small pages, still worth checking. */
	madvise(huge_read, 2 * HUGE, MADV_HUGEPAGE);
	touch_read(huge_read, HUGE);
	memset(huge_zeroed, 0, HUGE);
	zt_region_add("zeropages huge-read", huge_read, HUGE, ZT_REGION_ZERO, 0, 0);
	zt_region_add("zeropages huge-zeroed", huge_zeroed, HUGE, ZT_REGION_ZERO, 0, 0);

	for (i = 0; i < nr_pages; i = run) {
		enum kind k = kind_of(i);
		char *p = mixed + i * ZT_PAGE_SIZE, what[48];
		size_t len;

		for (run = i + 1; run < nr_pages && kind_of(run) == k; run++)
			;
		len = (run - i) * ZT_PAGE_SIZE;
		if (k == PATTERN)
			zt_pattern_fill(p, len, ZP_SEED, i);
		else if (k == ZEROED)
			memset(p, 0, len);
		else if (k == READ)
			touch_read(p, len);
		snprintf(what, sizeof(what), "zeropages %s @%zu+%zu", kind_name[k], i, run - i);
		ret = zt_region_add(what, p, len, k == PATTERN ? ZT_REGION_PATTERN : ZT_REGION_ZERO,
				    ZP_SEED, i);
		if (ret)
			zt_setup_fail("too many runs: %s", strerror(-ret));
		nr_kind[k] += run - i;
	}
	for (i = 0; i < NR_KINDS; i++)
		if (!nr_kind[i])
			zt_setup_fail("layout has no %s page", kind_name[i]);

	ret = zt_ready();
	if (ret)
		zt_setup_fail("pidfile: %s", strerror(-ret));
	zt_wait_term();
	if (zt_check_regions())
		return zt_finish();

	/* The zero pages must be private and writable; the pattern must not move. */
	zt_pattern_fill(huge_read, 2 * HUGE, ZP_SEED2, 0);
	for (i = 0; i < nr_pages; i++)
		if (kind_of(i) != PATTERN)
			zt_pattern_fill(mixed + i * ZT_PAGE_SIZE, ZT_PAGE_SIZE, ZP_SEED2, 1024 + i);
	zt_pattern_check("zeropages huge rewritten", huge_read, 2 * HUGE, ZP_SEED2, 0);
	for (i = 0; i < nr_pages; i++)
		if (kind_of(i) != PATTERN)
			zt_pattern_check("zeropages mixed rewritten", mixed + i * ZT_PAGE_SIZE,
					 ZT_PAGE_SIZE, ZP_SEED2, 1024 + i);
	zt_check_regions_kind(ZT_REGION_PATTERN);
	return zt_finish();
}
