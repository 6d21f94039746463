// SPDX-License-Identifier: MIT
/*
 * The page size the reader works with (crimg.h): the system's unless a test set another.
 * Read by the daemon's threads too: relaxed atomics, set once before any image is read.
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "crimg_int.h"

static uint64_t page_size;

uint64_t crimg_page_size(void)
{
	uint64_t ps = __atomic_load_n(&page_size, __ATOMIC_RELAXED);
	long sys;

	if (ps)
		return ps;
	sys = sysconf(_SC_PAGESIZE);
	ps = sys > 0 ? (uint64_t)sys : 4096;
	__atomic_store_n(&page_size, ps, __ATOMIC_RELAXED);
	return ps;
}

int crimg_set_page_size(uint64_t size)
{
	if (size < 4096 || size > (1ULL << 20) || (size & (size - 1)))
		return -EINVAL;
	__atomic_store_n(&page_size, size, __ATOMIC_RELAXED);
	return 0;
}

unsigned int crimg_page_shift(void)
{
	return __builtin_ctzll(crimg_page_size());
}

const char *crimg_page_size_hint(void)
{
	static __thread char hint[96];

	if (crimg_page_size() == 4096)
		return "";
	snprintf(hint, sizeof(hint), " (with %llu-byte pages: were the images written with smaller ones?)",
		 (unsigned long long)crimg_page_size());
	return hint;
}
