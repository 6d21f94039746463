/* SPDX-License-Identifier: MIT */
/*
 * Test-only writer of synthetic CRIU image directories (tw_*), and the named scenarios
 * the unit tests and show.bats use. Good scenarios and every corruption are built the
 * same way: write a good dump with our own protobuf-c packers, then damage one file.
 *
 * Pages files hold, at the start of each page, the page's vaddr (u64) and the pages_id
 * (u32) of the file, so a reader's offsets can be checked against the data.
 */
#ifndef LAZY_UFFD_TEST_IMGWRITER_H
#define LAZY_UFFD_TEST_IMGWRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TW_NOFLAGS  (-1) /* write no flags field: the reader must take PE_PRESENT */
#define TW_INPARENT (-2) /* write the obsolete in_parent = true instead of flags */

enum tw_encoding {
	TW_41, /* count in field 2 */
	TW_42, /* field 2 = 0, count in field 5 */
	TW_V1, /* 4.1 records, image version 1 headers (type magic only) */
};

struct tw_vma {
	uint64_t start, end;
	uint32_t prot, flags, status;
};

struct tw_pme {
	uint64_t vaddr;
	uint64_t nr;
	int flags; /* PE_* bits, TW_NOFLAGS or TW_INPARENT */
};

struct tw_task {
	uint32_t pid, ppid;
	uint32_t threads[4];
	size_t nr_threads;
	bool zombie;
	uint32_t pages_id;
	const struct tw_vma *vmas; /* at most 16 */
	size_t nr_vmas;
	const struct tw_pme *pmes;
	size_t nr_pmes;
};

/* The page size pages files are written with (4096 unless a test sets another). */
extern uint64_t tw_page_size;
/* Pages files are made with ftruncate() (all holes, no page data) while this is set. */
extern bool tw_sparse_pages;
/* While tw_field5_nr is set, a TW_41 entry at tw_field5_vaddr also gets it as a second count in field 5. */
extern uint64_t tw_field5_vaddr, tw_field5_nr;

/* A full dump: inventory, pstree, core, and mm/pagemap/pages for live tasks. */
int tw_dump(const char *dir, const struct tw_task *tasks, size_t n, enum tw_encoding enc);
/* A pre-dump: inventory, pagemap and pages only. */
int tw_predump(const char *dir, const struct tw_task *tasks, size_t n, enum tw_encoding enc);

/* Damage helpers; NAME is relative to DIR. */
int tw_truncate(const char *dir, const char *name, long long size);
int tw_poke(const char *dir, const char *name, long long off, const void *bytes, size_t len);
int tw_poke_u32(const char *dir, const char *name, long long off, uint32_t v);
int tw_unlink(const char *dir, const char *name);
int tw_symlink(const char *target, const char *dir, const char *name);

struct tw_scenario {
	const char *name;
	int (*make)(const char *dir);
	const char *what;
};

extern const struct tw_scenario tw_scenarios[];
extern const size_t tw_nr_scenarios;

/* Build scenario NAME as directory DIR (created; must not exist). 0 or -1 with a message. */
int tw_make(const char *name, const char *dir);

#endif
