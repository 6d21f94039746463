/* SPDX-License-Identifier: MIT */
/*
 * Access profiles: the order in which a restore's faults first asked for pages, recorded
 * by one restore (`--record-profile FILE`) and copied first by a later restore of the same
 * images (`--prefetch-profile FILE`), before the background population.
 *
 * File format, version 2, all fields little-endian:
 *
 *   offset 0   8 bytes  magic "LUPROF\0\1"
 *   offset 8   u32      version (2)
 *   offset 12  u32      record size in bytes (16)
 *   offset 16  u64      images fingerprint (profile_fingerprint(): vpids and lazy
 *                       pagemap entries of every task), so a profile is never applied
 *                       to a dump it was not recorded on
 *   offset 24  u64      number of records N
 *   offset 32  u32      page size in bytes the page counts are in (the recording
 *                       daemon's); a profile is read only at that page size
 *   offset 36  u32      0
 *   offset 40  N records, in the order the pages were first asked for:
 *                u32 vpid (pid in the dump)
 *                u32 number of pages (1 .. PROFILE_MAX_RUN)
 *                u64 dump-time address of the first page (page aligned)
 *
 * The file is exactly 40 + 16 * N bytes, N <= PROFILE_MAX_RECORDS. Records for a vpid the
 * images do not have are skipped (counted); pages outside the task's lazy memory are
 * skipped (counted) when the profile is applied.
 *
 * Version 1 (written before the page size was a run-time value) is still read: the same
 * without the page size, records from offset 32, in pages of 4 KiB, which is the only
 * size a daemon then ran with. Only version 2 is written.
 */
#ifndef LAZY_UFFD_PROFILE_H
#define LAZY_UFFD_PROFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "crimg.h"

#define PROFILE_MAGIC	    "LUPROF\0\1"
#define PROFILE_VERSION	    2
#define PROFILE_HDR_SIZE    40
#define PROFILE_HDR_SIZE_V1 32
#define PROFILE_PAGE_SIZE_V1 4096
#define PROFILE_REC_SIZE    16
#define PROFILE_MAX_RECORDS (1u << 24)
#define PROFILE_MAX_RUN	    (1u << 18) /* pages in one record: 1 GiB of 4 KiB pages */

struct profile_rec {
	pid_t vpid;
	uint32_t nr_pages;
	uint64_t img_addr;
};

struct profile {
	struct profile_rec *recs; /* in recorded order */
	size_t nr, cap;
	size_t skipped_tasks; /* records (when read) for a vpid the images do not have */
};

struct profile_error {
	char msg[512];
};

/* A number naming the dump's lazy memory layout. */
uint64_t profile_fingerprint(const struct crimg *img);

/*
 * Parse the LEN bytes at BUF, read from NAME (for messages), recorded on images with
 * fingerprint FP; IMG (may be NULL) to count records of unknown tasks. On error, -EINVAL
 * and err->msg names NAME and the byte offset.
 */
int profile_parse(const void *buf, size_t len, const char *name, uint64_t fp, const struct crimg *img,
		  struct profile *out, struct profile_error *err);
/* Read and parse PATH (errors as profile_parse, plus the file's own). */
int profile_load(const char *path, uint64_t fp, const struct crimg *img, struct profile *out,
		 struct profile_error *err);

/* Append a record; a run continuing the task's previous record extends it. */
int profile_add(struct profile *p, pid_t vpid, uint64_t img_addr, uint32_t nr_pages);
/* Write P to PATH (through a temporary file renamed into place). */
int profile_write(const struct profile *p, const char *path, uint64_t fp, struct profile_error *err);
void profile_free(struct profile *p);

#endif
