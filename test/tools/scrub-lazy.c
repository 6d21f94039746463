// SPDX-License-Identifier: MIT
/*
 * scrub-lazy: overwrite the data of every lazy page (PE_LAZY) of an image directory with
 * 0xa5 bytes where it is stored (its pages files or a parent's), keeping sizes and offsets;
 * what criu restore itself reads (non-lazy pages, PE_PARENT pages) is left alone.
 *
 *   scrub-lazy DIR
 *
 * A remote restore's destination copy is scrubbed so that a daemon reading lazy pages
 * from local files instead of the page server gives the test program garbage: the
 * program's byte check then fails. criu restore --lazy-pages never reads those pages.
 * Prints "scrubbed N pages"; exit 0, 1 on an error, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crimg.h"

int main(int argc, char **argv)
{
	static unsigned char junk[1 << 20]; /* the largest page size crimg reads with */
	struct crimg_error err;
	struct crimg *img;
	unsigned long long total = 0;
	size_t i, j;

	if (argc != 2) {
		fprintf(stderr, "usage: scrub-lazy DIR\n");
		return 2;
	}
	memset(junk, 0xa5, sizeof(junk));
	if (crimg_open(argv[1], &img, &err)) {
		fprintf(stderr, "scrub-lazy: %s\n", err.msg);
		return 1;
	}
	for (i = 0; i < crimg_nr_tasks(img); i++) {
		const struct crimg_task *t = crimg_task(img, i);

		for (j = 0; !t->zombie && j < t->nr_pmes; j++) {
			const struct crimg_pme *e = &t->pmes[j];
			uint64_t a = e->vaddr, end = e->vaddr + e->nr_pages * CRIMG_PAGE_SIZE;

			if (!(e->flags & CRIMG_PE_LAZY))
				continue;
			/* Wherever the data is: this image's pages file or a parent's. */
			while (a < end) {
				struct crimg_loc loc;
				uint64_t k, n;
				int fd;

				if (crimg_locate(img, t, a, &loc, &err)) {
					fprintf(stderr, "scrub-lazy: %s\n", err.msg);
					return 1;
				}
				n = loc.nr_pages < (end - a) / CRIMG_PAGE_SIZE ? loc.nr_pages : (end - a) / CRIMG_PAGE_SIZE;
				if (!n)
					n = 1;
				if (loc.where == CRIMG_PRESENT) {
					fd = open(loc.path, O_WRONLY | O_CLOEXEC);
					if (fd < 0) {
						fprintf(stderr, "scrub-lazy: %s: %s\n", loc.path, strerror(errno));
						return 1;
					}
					for (k = 0; k < n; k++)
						if (pwrite(fd, junk, CRIMG_PAGE_SIZE, loc.off + k * CRIMG_PAGE_SIZE) !=
						    (ssize_t)CRIMG_PAGE_SIZE) {
							fprintf(stderr, "scrub-lazy: %s: write: %s\n", loc.path,
								strerror(errno));
							return 1;
						}
					close(fd);
					total += n;
				}
				a += n * CRIMG_PAGE_SIZE;
			}
		}
	}
	crimg_close(img);
	printf("scrubbed %llu pages\n", total);
	return 0;
}
