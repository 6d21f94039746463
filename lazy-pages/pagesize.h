/* SPDX-License-Identifier: MIT */
/*
 * The page size the daemon and the page server work in: the system's, as the image
 * reader's (crimg_page_size()), read once before main() runs; a unit test may set
 * another with lazy_set_page_size() before it reads any image or starts a thread.
 *
 * Contract for every file of lazy-pages/:
 * - PAGE_SZ and PAGE_SHIFT are run-time values (4 KiB to 1 MiB, a power of two). Never
 *   use them where C wants a constant: array sizes, static initializers, _Static_assert,
 *   case labels.
 * - A bound that is about time or memory is given in bytes and turned into pages with
 *   PAGES_IN() where it is used, so that 16 KiB and 64 KiB pages get the same bytes.
 * - An array sized in pages (a bitmap of a run) is sized for PAGE_SZ_MIN, the smallest
 *   page, and holds fewer, larger pages elsewhere.
 * - Page counts in images, profiles and on the page-server wire are in pages of this
 *   size; DESIGN.md says how a mismatch is refused.
 */
#ifndef LAZY_UFFD_PAGESIZE_H
#define LAZY_UFFD_PAGESIZE_H

#include <stdint.h>

extern unsigned int lazy_page_shift;

#define PAGE_SHIFT  ((unsigned int)lazy_page_shift)
#define PAGE_SZ	    (1ULL << lazy_page_shift)
#define PAGE_SZ_MIN 4096ULL

/* Whole pages in BYTES, at least 1. */
static inline uint64_t pages_in(uint64_t bytes)
{
	return bytes >> lazy_page_shift ? bytes >> lazy_page_shift : 1;
}
#define PAGES_IN(bytes) pages_in(bytes)

/* Set the page size for the daemon and the image reader: -EINVAL unless 4 KiB to 1 MiB. */
int lazy_set_page_size(uint64_t size);

#endif
