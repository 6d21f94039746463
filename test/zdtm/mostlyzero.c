// SPDX-License-Identifier: MIT
/*
 * mostlyzero: --size bytes (default 256M) of which about --percent (default 1) percent
 * of the pages hold the pattern, scattered one by one; the others come in 16-page
 * blocks that are either never written (no data in the dump: the daemon zero-fills
 * them on a fault) or written with zeros (real pages of zeros in the dump). After
 * SIGTERM the region is probed (mincore), then every page is checked: pattern pages
 * byte-exact, all others zero. Then every zero page is written and read back, so they
 * must be private writable pages, and the pattern pages must be unchanged.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "zdtmtst.h"

#define MZ_SEED		0x2e20
#define MZ_SEED2	0x2e21

enum kind { PATTERN, ZEROED, UNTOUCHED };

static unsigned long percent = 1;

static enum kind kind_of(size_t i)
{
	if (zt_pattern_word(MZ_SEED, i, 3) % 100 < percent)
		return PATTERN;
	return (zt_pattern_word(MZ_SEED, i / 16, 9) >> 33) & 1 ? ZEROED : UNTOUCHED;
}

int main(int argc, char **argv)
{
	size_t size = 256 << 20, n, i, nr[3] = { 0 }, bad = 0;
	const struct zt_opt opts[] = {
		{ "size", ZT_OPT_SIZE, &size, false, "bytes (default 256M, >= 1M)" },
		{ "percent", ZT_OPT_ULONG, &percent, false, "pattern pages in percent (default 1)" },
		{ NULL },
	};
	char *mem;
	int ret;

	zt_init(argc, argv, "mostlyzero", opts);
	if (size < (1 << 20) || size % ZT_PAGE_SIZE)
		zt_setup_fail("--size %zu: need a page multiple of at least 1M", size);
	if (!percent || percent > 50)
		zt_setup_fail("--percent %lu: 1..50", percent);
	n = size / ZT_PAGE_SIZE;
	mem = zt_map_guarded(size);
	if (!mem)
		zt_setup_fail("mmap %zu bytes: %s", size, strerror(errno));
	for (i = 0; i < n; i++) {
		enum kind k = kind_of(i);

		if (k == PATTERN)
			zt_pattern_fill(mem + i * ZT_PAGE_SIZE, ZT_PAGE_SIZE, MZ_SEED, i);
		else if (k == ZEROED)
			memset(mem + i * ZT_PAGE_SIZE, 0, ZT_PAGE_SIZE);
		nr[k]++;
	}
	if (!nr[PATTERN] || !nr[ZEROED] || !nr[UNTOUCHED])
		zt_setup_fail("layout: %zu pattern, %zu zeroed, %zu untouched pages", nr[PATTERN],
			      nr[ZEROED], nr[UNTOUCHED]);
	zt_note("mostlyzero: %zu pattern, %zu zeroed, %zu untouched pages", nr[PATTERN], nr[ZEROED],
		nr[UNTOUCHED]);

	ret = zt_ready();
	if (ret)
		zt_setup_fail("pidfile: %s", strerror(-ret));
	zt_wait_term();
	zt_lazy_probe("mostlyzero", mem, size);

	for (i = 0; i < n; i++) {
		const char *p = mem + i * ZT_PAGE_SIZE;
		int r = kind_of(i) == PATTERN ? zt_pattern_check("mostlyzero pattern", p, ZT_PAGE_SIZE, MZ_SEED, i)
					      : zt_zero_check(kind_of(i) == ZEROED ? "mostlyzero zeroed" :
							      "mostlyzero untouched", p, ZT_PAGE_SIZE);
		if (r)
			bad++;
	}
	if (bad)
		zt_fail("mostlyzero: %zu of %zu pages bad", bad, n);
	if (!zt_failures()) {
		for (i = 0; i < n; i++)
			if (kind_of(i) != PATTERN)
				zt_pattern_fill(mem + i * ZT_PAGE_SIZE, ZT_PAGE_SIZE, MZ_SEED2, i);
		for (i = 0; i < n; i++)
			zt_pattern_check("mostlyzero rewritten", mem + i * ZT_PAGE_SIZE, ZT_PAGE_SIZE,
					 kind_of(i) == PATTERN ? MZ_SEED : MZ_SEED2, i);
	}
	zt_check_regions();	/* --ballast */
	return zt_finish();
}
