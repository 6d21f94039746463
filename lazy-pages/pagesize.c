// SPDX-License-Identifier: MIT
/*
 * The run-time page size of pagesize.h. Taken from the reader before main(), so that
 * every program linking lazy-pages/ objects (the daemon, unit tests, fuzzers) starts
 * with the system's and the reader and the daemon can never disagree.
 */
#include "crimg.h"
#include "pagesize.h"

unsigned int lazy_page_shift = 12;

__attribute__((constructor)) static void page_size_init(void)
{
	lazy_page_shift = (unsigned int)__builtin_ctzll(crimg_page_size());
}

int lazy_set_page_size(uint64_t size)
{
	int ret = crimg_set_page_size(size);

	if (ret)
		return ret;
	lazy_page_shift = (unsigned int)__builtin_ctzll(size);
	return 0;
}
