// SPDX-License-Identifier: MIT
/*
 * anon: one private anonymous mapping of --size bytes (4K .. 1G), every page holding
 * the per-page pattern. --mapfile F gets "0x<start> <bytes>" so the harness can find
 * the VMA in `lazy-uffd show`. The mapping sits between PROT_NONE guard pages, so it
 * is exactly one VMA of exactly --size bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "zdtmtst.h"

#define ANON_SEED	0xa11c0de

int main(int argc, char **argv)
{
	size_t size = 0;
	const char *mapfile = NULL;
	const struct zt_opt opts[] = {
		{ "size", ZT_OPT_SIZE, &size, true, "bytes of anonymous memory (page multiple)" },
		{ "mapfile", ZT_OPT_STR, &mapfile, false, "write \"0x<start> <bytes>\" here" },
		{ NULL },
	};
	char text[64];
	void *mem;
	int ret;

	zt_init(argc, argv, "anon", opts);
	if (!size || size % ZT_PAGE_SIZE)
		zt_setup_fail("--size %zu is not a positive multiple of %lu", size, ZT_PAGE_SIZE);

	mem = zt_map_guarded(size);
	if (!mem)
		zt_setup_fail("mmap %zu bytes: %s", size, strerror(errno));
	zt_pattern_fill(mem, size, ANON_SEED, 0);
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
	zt_check_regions();
	return zt_finish();
}
