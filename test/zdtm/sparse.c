// SPDX-License-Identifier: MIT
/*
 * sparse: one reservation of --size bytes (default 8M, at least 8M) cut into runs of
 * pages that must come back exactly as they were:
 *   PATTERN   written with the pattern (index = page index in the reservation)
 *   UNTOUCHED never touched: must read zero
 *   DROPPED   written, then MADV_DONTNEED: must read zero
 *   GAP       munmap'd: must still be unmapped (checked with mincore, no fault)
 * Quarter 1 has fixed runs of several lengths, quarter 2 picks a kind per page from a
 * hash (many one-page runs and one-page gaps), quarter 3 is one big gap with a single
 * pattern page in the middle, quarter 4 is pattern with an untouched last page.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "zdtmtst.h"

#define SPARSE_SEED	0x5ba75e

enum kind { PATTERN, UNTOUCHED, DROPPED, GAP };

static const char *const kind_name[] = {
	[PATTERN] = "pattern", [UNTOUCHED] = "untouched", [DROPPED] = "dropped", [GAP] = "gap",
};

/* Fixed runs of quarter 1: { first page, kind }, each up to the next entry. */
static const struct { size_t start; enum kind kind; } q1_runs[] = {
	{ 0, PATTERN }, { 16, GAP }, { 48, UNTOUCHED }, { 64, PATTERN }, { 65, GAP },
	{ 66, PATTERN }, { 128, UNTOUCHED }, { 256, PATTERN }, { 300, DROPPED },
	{ 340, PATTERN }, { 341, DROPPED }, { 342, PATTERN }, { 400, UNTOUCHED },
	{ 401, PATTERN },
};

static enum kind kind_of(size_t i, size_t nr_pages)
{
	size_t q = nr_pages / 4;
	enum kind k = PATTERN;
	unsigned int j;

	if (i < q) {
		for (j = 0; j < sizeof(q1_runs) / sizeof(q1_runs[0]); j++)
			if (q1_runs[j].start <= i)
				k = q1_runs[j].kind;
		return k;
	}
	if (i < 2 * q) {
		uint64_t h = zt_pattern_word(SPARSE_SEED, i, 7);

		return (enum kind)((h >> 29) % 4);
	}
	if (i < 3 * q)
		return i == q * 5 / 2 ? PATTERN : GAP;
	return i == nr_pages - 1 ? UNTOUCHED : PATTERN;
}

int main(int argc, char **argv)
{
	size_t size = 8 << 20, nr_pages, i, run, nr_kind[4] = { 0 };
	const struct zt_opt opts[] = {
		{ "size", ZT_OPT_SIZE, &size, false, "bytes in the reservation (>= 8M, page multiple)" },
		{ NULL },
	};
	char *mem;
	int ret;

	zt_init(argc, argv, "sparse", opts);
	if (size < (8 << 20) || size % ZT_PAGE_SIZE)
		zt_setup_fail("--size %zu: need a page multiple of at least 8M", size);
	nr_pages = size / ZT_PAGE_SIZE;

	mem = zt_map_guarded(size);
	if (!mem)
		zt_setup_fail("mmap %zu bytes: %s", size, strerror(errno));

	/* Write everything that is written at some point, then drop and unmap. */
	for (i = 0; i < nr_pages; i++) {
		enum kind k = kind_of(i, nr_pages);

		if (k == PATTERN || k == DROPPED || k == GAP)
			zt_pattern_fill(mem + i * ZT_PAGE_SIZE, ZT_PAGE_SIZE, SPARSE_SEED, i);
	}
	for (i = 0; i < nr_pages; i = run) {
		enum kind k = kind_of(i, nr_pages);
		char what[48];

		for (run = i + 1; run < nr_pages && kind_of(run, nr_pages) == k; run++)
			;
		if (k == DROPPED && madvise(mem + i * ZT_PAGE_SIZE, (run - i) * ZT_PAGE_SIZE,
					    MADV_DONTNEED))
			zt_setup_fail("madvise DONTNEED page %zu: %s", i, strerror(errno));
		if (k == GAP && munmap(mem + i * ZT_PAGE_SIZE, (run - i) * ZT_PAGE_SIZE))
			zt_setup_fail("munmap page %zu: %s", i, strerror(errno));

		snprintf(what, sizeof(what), "sparse %s @%zu+%zu", kind_name[k], i, run - i);
		ret = zt_region_add(what, mem + i * ZT_PAGE_SIZE, (run - i) * ZT_PAGE_SIZE,
				    k == PATTERN ? ZT_REGION_PATTERN :
				    k == GAP ? ZT_REGION_UNMAPPED : ZT_REGION_ZERO,
				    SPARSE_SEED, i);
		if (ret)
			zt_setup_fail("too many runs: %s", strerror(-ret));
		nr_kind[k] += run - i;
	}
	for (i = 0; i < 4; i++)
		if (!nr_kind[i])
			zt_setup_fail("layout has no %s page", kind_name[i]);

	ret = zt_ready();
	if (ret)
		zt_setup_fail("pidfile: %s", strerror(-ret));
	zt_wait_term();
	zt_check_regions();
	return zt_finish();
}
