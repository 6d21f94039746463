/* SPDX-License-Identifier: MIT */
/*
 * The page size the daemon works in. Fixed at 4 KiB for now (DESIGN.md, issue 18).
 */
#ifndef LAZY_UFFD_PAGESIZE_H
#define LAZY_UFFD_PAGESIZE_H

#include <stdint.h>

#define PAGE_SHIFT 12
#define PAGE_SZ	   4096ULL

#endif
