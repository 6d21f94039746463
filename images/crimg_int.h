/* SPDX-License-Identifier: MIT */
/*
 * crimg internals shared by the reader's modules; nothing here is part of crimg.h.
 *
 * Modules: imgfile.c (file header and record framing), pstree.c (inventory, pstree,
 * core), mm.c (VMAs), pagemap.c (pagemap and pages file), chain.c (opening an image and
 * its parents), locate.c (crimg_locate and the summaries).
 */
#ifndef LAZY_UFFD_CRIMG_INT_H
#define LAZY_UFFD_CRIMG_INT_H

#include <stdarg.h>

#include <protobuf-c/protobuf-c.h>

#include "crimg.h"

/* Type magics (images.md section 1). */
#define IMG_COMMON_MAGIC 0x54564319U
#define INVENTORY_MAGIC	 0x58313116U
#define PSTREE_MAGIC	 0x50273030U
#define CORE_MAGIC	 0x55053847U
#define MM_MAGIC	 0x57492820U
#define PAGEMAP_MAGIC	 0x56084025U

/* CRIU vma_entry.status bits the reader looks at. */
#define VMA_AREA_VSYSCALL (1U << 2)
#define VMA_AREA_VDSO	  (1U << 3)
#define VMA_AREA_VVAR	  (1U << 12)
#define VMA_AREA_GUARD	  (1U << 16)

#define TASK_STATE_DEAD	  2

/* log2 of crimg_page_size(). */
unsigned int crimg_page_shift(void);
#define CRIMG_PAGE_SHIFT crimg_page_shift()
/*
 * Appended to an alignment error: with pages larger than 4 KiB, images from a system
 * with smaller ones fail that way first. Empty at 4 KiB.
 */
const char *crimg_page_size_hint(void);

/*
 * One image file read into memory. Records are walked in place; `rec_off` is the
 * offset of the length header of the record crimg_file_next() returned last, which is the
 * offset error messages quote for that record.
 */
struct crimg_file {
	char *path;
	uint8_t *buf;
	size_t size;
	size_t pos;
	size_t rec_off;
};

/* crimg_file_open() flags */
#define CRIMG_FILE_BARE_MAGIC (1U << 0) /* inventory.img: type magic only, no common prefix */

int crimg_file_open(struct crimg_file *f, const char *dir, const char *name, uint32_t magic, unsigned int flags,
		    struct crimg_error *err);
/* 1 and a record, 0 at a clean EOF, or -EINVAL for broken framing. */
int crimg_file_next(struct crimg_file *f, const uint8_t **data, size_t *len, struct crimg_error *err);
/*
 * The next record as a DESC message: 0 and *msg (free it with
 * protobuf_c_message_free_unpacked), or -EINVAL when there is none or it does not decode.
 */
int crimg_file_next_msg(struct crimg_file *f, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg,
			struct crimg_error *err);
/* -EINVAL unless the file has no records left after the one just read. */
int crimg_file_expect_end(struct crimg_file *f, struct crimg_error *err);
void crimg_file_close(struct crimg_file *f);

/* Fill ERR (may be NULL) with "PATH: offset OFF: ..." and return RET. */
int crimg_file_err(const struct crimg_file *f, size_t off, struct crimg_error *err, int ret, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Fill ERR (may be NULL) with a formatted line and return RET. */
int crimg_err(struct crimg_error *err, int ret, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

char *crimg_path(const char *dir, const char *name);

/* A task and what the public struct points at. */
struct crimg_task_img {
	struct crimg_task pub;
	pid_t *threads;
	struct crimg_vma *vmas;
	struct crimg_pme *pmes;
	size_t *pme_off; /* byte offset of each entry's record in pagemap_path */
	char *pagemap_path;
	char *pages_path;
	int pages_fd; /* -1 when the task has no present pages and no pages file */
	uint64_t nr_present;
	size_t pstree_off; /* its record in pstree.img */
};

struct crimg_pid_idx {
	pid_t pid;
	size_t idx;
};

struct crimg {
	char *dir;	/* as given, trailing slashes dropped */
	char *realdir;	/* realpath(dir), for loop detection */
	bool is_parent; /* no pstree/mm read: tasks follow the top image */
	unsigned int depth;
	struct crimg *parent;
	char *parent_note; /* why there is no parent, for PE_PARENT errors */

	size_t nr_tasks;
	struct crimg_task_img *tasks;
	struct crimg_pid_idx *by_pid; /* sorted by pid */
};

/* pstree.c */
int crimg_inventory_check(const char *dir, bool required, struct crimg_error *err);
int crimg_pstree_load(struct crimg *img, struct crimg_error *err);
int crimg_core_load(const char *dir, struct crimg_task_img *t, struct crimg_error *err);

/* mm.c */
bool crimg_vma_lazy(uint32_t flags, uint32_t status);
/* Which part of crimg_vma_lazy()'s test a VMA fails, for messages; NULL if it is lazy. */
const char *crimg_vma_not_lazy_why(uint32_t flags, uint32_t status);
int crimg_mm_load(const char *dir, struct crimg_task_img *t, struct crimg_error *err);

/* pagemap.c */
int crimg_pagemap_load(const char *dir, struct crimg_task_img *t, bool check_vmas, struct crimg_error *err);
int crimg_pages_open(const char *dir, struct crimg_task_img *t, struct crimg_error *err);

/* chain.c */
struct crimg_task_img *crimg_task_by_pid(const struct crimg *img, pid_t pid);
int crimg_index_tasks(struct crimg *img, struct crimg_error *err);

/* locate.c */
int crimg_check_parent_ranges(const struct crimg *img, struct crimg_error *err);
/* Index of the entry covering ADDR, or of the first entry above it (may be nr_pmes). */
size_t crimg_pme_lookup(const struct crimg_task *t, uint64_t addr);
/* Index of the VMA covering ADDR, or of the first VMA above it (may be nr_vmas). */
size_t crimg_vma_lookup(const struct crimg_task *t, uint64_t addr);

static inline uint64_t crimg_pme_end(const struct crimg_pme *p)
{
	return p->vaddr + (p->nr_pages << CRIMG_PAGE_SHIFT);
}

#endif
