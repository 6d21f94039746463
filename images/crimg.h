/* SPDX-License-Identifier: MIT */
/*
 * crimg: read the CRIU image files a lazy restore needs (CRIU 4.x, image version 2).
 *
 * An image directory is opened once, with its whole parent chain (the `parent` symlink
 * of incremental dumps). Opening reads inventory, pstree, and each live task's mm and
 * pagemap; it checks the pages files' presence and sizes but never reads page data, so
 * opening a 4 GiB dump costs the size of its pagemaps, not of its memory.
 *
 * Errors: every function returning int returns 0 or -errno and, on failure, fills the
 * caller's struct crimg_error with one line naming the file and, for bad content, the
 * byte offset in it, e.g.
 *     ".../pagemap-1.img: offset 24: record length 9000 runs past end of file (size 64)"
 * Bad input never crashes, hangs or reads out of bounds.
 * ERR may be NULL when the caller does not want the text.
 * The offset is that of the record's u32 length header (for a bad magic, of the magic;
 * for a pages file that is too short, its size: where the missing bytes start).
 * Return codes: -ENOENT a needed file is missing, -EINVAL bad content, -ELOOP a parent
 * loop or a chain deeper than CRIMG_MAX_PARENT_DEPTH, -EFBIG a file over
 * CRIMG_MAX_FILE_SIZE, -ENOMEM, or whatever open()/read() said.
 *
 * Parent images (the `parent` symlink; usually `criu pre-dump` output, which has no
 * pstree or mm) are read for their pagemaps only: their tasks are the live tasks of the
 * top image that have a pagemap-<pid>.img there, with no VMAs. A dangling `parent` link
 * is no parent (as for CRIU); it is an error only when an entry is PE_PARENT. Every
 * PE_PARENT range is resolved at open time, so an uncovered one fails crimg_open().
 *
 * Refused as bad content too, though each entry alone would decode: a PE_LAZY entry in a
 * VMA that is not lazy-eligible (MAP_SHARED, MAP_LOCKED, ...: the restorer never
 * registers it, so those pages could never be served), and an entry with a count in both
 * field 2 and field 5 that differ (CRIU 4.1 and 4.2 would read different layouts).
 *
 * Objects returned by crimg_task() etc. live until crimg_close().
 */
#ifndef LAZY_UFFD_CRIMG_H
#define LAZY_UFFD_CRIMG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The page size the images are read with: the system's (sysconf), as CRIU takes it when
 * it dumps and restores. The images do not record theirs; images written with another
 * page size are refused when their layout tells (page counts that fit the pages file
 * only at another size, addresses not aligned to ours), with an error naming both.
 * crimg_set_page_size() sets it for all later reads, before any image is opened (tests:
 * 64 KiB images on a 4 KiB host); -EINVAL unless a power of two from 4 KiB to 1 MiB.
 */
uint64_t crimg_page_size(void);
int crimg_set_page_size(uint64_t size);
#define CRIMG_PAGE_SIZE crimg_page_size()

/* pagemap entry flags, as CRIU writes them. */
#define CRIMG_PE_PARENT	 (1U << 0) /* data is in a parent image */
#define CRIMG_PE_LAZY	 (1U << 1) /* may be filled on demand */
#define CRIMG_PE_PRESENT (1U << 2) /* data is in this image's pages file */

/* Parent chains deeper than this are refused (and loops are detected before). */
#define CRIMG_MAX_PARENT_DEPTH 64

/* Bounds on what is read from disk; larger input is refused with an error. */
#define CRIMG_MAX_RECORD_SIZE (16ULL << 20)  /* one protobuf record */
#define CRIMG_MAX_FILE_SIZE   (256ULL << 20) /* one protobuf image file (not pages-*.img) */
#define CRIMG_MAX_TASKS	      65536	     /* records in pstree.img */

struct crimg_error {
	char msg[1024];
};

/* Which writer's pagemap encoding a task's pagemap uses (field 2 vs field 5 counts). */
enum crimg_pagemap_encoding {
	CRIMG_PAGEMAP_41, /* nr_pages in field 2 (CRIU <= 4.1) */
	CRIMG_PAGEMAP_42, /* nr_pages in field 5, field 2 is 0 (CRIU >= 4.2) */
};

struct crimg_vma {
	uint64_t start, end; /* [start, end) */
	uint64_t pgoff;
	uint64_t shmid;
	uint32_t prot;	 /* PROT_* */
	uint32_t flags;	 /* MAP_* */
	uint32_t status; /* CRIU VMA_* bits */
	uint64_t madv;
	bool lazy; /* eligible for lazy restore (images.md §5) */
};

/* One normalised pagemap entry (count and flags as CRIU's reader interprets them). */
struct crimg_pme {
	uint64_t vaddr;
	uint64_t nr_pages;
	uint32_t flags;	    /* CRIMG_PE_* */
	uint64_t pages_off; /* byte offset in the pages file; meaningful with PE_PRESENT */
};

struct crimg_task {
	pid_t pid, ppid, pgid, sid; /* as in pstree.img (pids inside the dump) */
	bool zombie;		    /* no memory images; the restorer sends -pid */
	size_t nr_threads;
	const pid_t *threads; /* not trustworthy for zombies */

	size_t nr_vmas;
	const struct crimg_vma *vmas; /* sorted by start, GUARD entries dropped */

	uint32_t pages_id; /* pages-<pages_id>.img */
	enum crimg_pagemap_encoding encoding;
	size_t nr_pmes;
	const struct crimg_pme *pmes; /* sorted by vaddr, non-overlapping */
};

struct crimg;

/* Open DIR and its parent chain. */
int crimg_open(const char *dir, struct crimg **out, struct crimg_error *err);
void crimg_close(struct crimg *img);

/*
 * The directory as given (trailing slashes dropped; for a parent, the image's directory
 * joined with the link target), and the parent image (NULL for the last in the chain).
 */
const char *crimg_dir(const struct crimg *img);
const struct crimg *crimg_parent(const struct crimg *img);

size_t crimg_nr_tasks(const struct crimg *img);
/* Tasks in pstree order (a parent before its children). */
const struct crimg_task *crimg_task(const struct crimg *img, size_t i);
const struct crimg_task *crimg_find_task(const struct crimg *img, pid_t pid);

enum crimg_where {
	CRIMG_NOT_IN_IMAGE, /* outside every VMA of the task */
	CRIMG_ZERO,	    /* inside a VMA, no pagemap entry: absent or zero at dump */
	CRIMG_PRESENT,	    /* bytes in a pages file (of this image or, depth > 0, a parent) */
	CRIMG_REMOTE,	    /* PE_LAZY without PE_PRESENT: held by the dump's page server */
};

/*
 * Where page ADDR of TASK is: the answer covers `nr_pages` pages from ADDR onward that
 * share it (contiguous in the same file for CRIMG_PRESENT), stopping at the end of the
 * VMA, of the pagemap entry, or of the run.
 * For CRIMG_PRESENT: `fd` (owned by img) and `path` name the pages file, `off` the byte
 * offset of ADDR in it, `depth` 0 for this image, N for the Nth parent. `flags` are the
 * flags of this image's entry (PE_PARENT when resolved through a parent).
 * Otherwise fd is -1, path NULL, off and depth 0; flags are 0 unless an entry covers ADDR.
 * ADDR is rounded down to its page. TASK must come from IMG (else -EINVAL). For a parent
 * image, which has no VMAs, pages outside every entry are CRIMG_NOT_IN_IMAGE.
 * CRIMG_NOT_IN_IMAGE covers the pages up to the next VMA (or the end of the address space).
 */
struct crimg_loc {
	enum crimg_where where;
	uint64_t nr_pages;
	uint32_t flags;
	unsigned int depth;
	int fd;
	const char *path;
	uint64_t off;
};

int crimg_locate(const struct crimg *img, const struct crimg_task *task, uint64_t addr, struct crimg_loc *loc,
		 struct crimg_error *err);

/* Per-task page counts, for `lazy-uffd show` and tests. */
struct crimg_summary {
	uint64_t vma_pages;	 /* pages in all VMAs */
	uint64_t lazy_vma_pages; /* pages in lazy-eligible VMAs */
	uint64_t present;	 /* PE_PRESENT */
	uint64_t lazy;		 /* PE_LAZY */
	uint64_t parent;	 /* PE_PARENT */
	uint64_t zero;		 /* in a VMA but in no pagemap entry */
};

void crimg_summarize(const struct crimg_task *task, struct crimg_summary *sum);
/* The same counts restricted to one VMA of TASK (vma_pages is the VMA's size). */
void crimg_summarize_vma(const struct crimg_task *task, const struct crimg_vma *vma, struct crimg_summary *sum);

#endif
