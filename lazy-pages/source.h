/* SPDX-License-Identifier: MIT */
/*
 * Page data from the images' pages files (parents included), by (task, dump-time address,
 * count): a pointer valid until source_put, or where the bytes are for a pread of one's
 * own. Synchronous; the page server's asynchronous counterpart is remote.h. Knows nothing
 * of uffds or of scheduling.
 */
#ifndef LAZY_UFFD_SOURCE_H
#define LAZY_UFFD_SOURCE_H

#include <stdint.h>

#include "crimg.h"

struct source;

int source_local_open(struct source **out, const struct crimg *img);
void source_close(struct source *s);
/*
 * Point *data at the bytes of up to NR pages of TASK at dump-time address IMG_ADDR;
 * *run gets how many pages are contiguous there (>= 1).
 */
int source_get(struct source *s, const struct crimg_task *task, uint64_t img_addr, uint64_t nr, const void **data,
	       uint64_t *run);
/*
 * Where up to NR pages of TASK at IMG_ADDR are stored: *fd (the image's, never closed by
 * the caller) at *off, *run of them contiguous there (>= 1), for a pread of one's own.
 */
int source_locate(struct source *s, const struct crimg_task *task, uint64_t img_addr, uint64_t nr, int *fd,
		  uint64_t *off, uint64_t *run);
/* The NR pages at DATA (from source_get) have been copied: let them go from our memory. */
void source_put(struct source *s, const void *data, uint64_t nr);

/*
 * Like source_get, but *data always points into the mapping of the pages file (never a
 * buffer of ours), so it stays valid until source_put whatever else is read meanwhile.
 */
int source_get_mapped(struct source *s, const struct crimg_task *task, uint64_t img_addr, uint64_t nr,
		      const void **data, uint64_t *run);

#endif
