// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the image reader: the input replaces one image file (FUZZ_FILE,
 * fixed at build time: inventory.img, pstree.img, core-1.img, mm-1.img or pagemap-1.img)
 * of a real dump (fuzz/base), and the reader opens the directory and walks everything a
 * daemon would ask of it. Any input must end in a clean error or a consistent image; the
 * sanitizers and the checks below say which it was not.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crimg.h"

#ifndef FUZZ_FILE
#error "build with -DFUZZ_FILE=\"name.img\""
#endif

static char dir[PATH_MAX];
static char target[PATH_MAX + 32];

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in, out, ret = 0;
	ssize_t n;

	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		ret = -errno;
		goto out_in;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n) {
			ret = -EIO;
			break;
		}
	if (n < 0)
		ret = -errno;
	close(out);
out_in:
	close(in);
	return ret;
}

/* The base dump is copied once into a private directory on tmpfs (fast rewrites). */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const files[] = { "inventory.img", "pstree.img", "core-1.img", "mm-1.img",
					     "pagemap-1.img", "pages-1.img" };
	const char *base = getenv("LAZY_UFFD_FUZZ_BASE");
	char from[PATH_MAX + 32], to[PATH_MAX + 32];
	size_t i;

	(void)argc;
	(void)argv;
	if (!base)
		base = FUZZ_BASE;
	snprintf(dir, sizeof(dir), "/dev/shm/lazy-uffd-fuzz-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(from, sizeof(from), "%s/%s", base, files[i]);
		snprintf(to, sizeof(to), "%s/%s", dir, files[i]);
		if (copy_file(from, to)) {
			fprintf(stderr, "cannot copy %s to %s\n", from, to);
			exit(1);
		}
	}
	snprintf(target, sizeof(target), "%s/%s", dir, FUZZ_FILE);
	return 0;
}

static void walk_task(const struct crimg *img, const struct crimg_task *t)
{
	struct crimg_summary sum;
	struct crimg_error err;
	struct crimg_loc loc;
	uint64_t addr;
	size_t i;

	crimg_summarize(t, &sum);
	for (i = 0; i < t->nr_vmas; i++) {
		const struct crimg_vma *v = &t->vmas[i];

		if (v->start >= v->end || (i && v->start < t->vmas[i - 1].end))
			abort(); /* the reader promises sorted, non-overlapping VMAs */
		crimg_summarize_vma(t, v, &sum);
	}
	for (i = 0; i < t->nr_pmes && i < 64; i++) {
		/* What the daemon does: locate every page of an entry, run by run. */
		addr = t->pmes[i].vaddr;
		for (int n = 0; n < 16; n++) {
			if (crimg_locate(img, t, addr, &loc, &err))
				break;
			if (!loc.nr_pages)
				abort(); /* an answer must cover at least the page asked about */
			if (loc.where == CRIMG_PRESENT && (loc.fd < 0 || !loc.path))
				abort();
			if (addr + loc.nr_pages * CRIMG_PAGE_SIZE < addr)
				break;
			addr += loc.nr_pages * CRIMG_PAGE_SIZE;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct crimg_error err;
	struct crimg *img;
	size_t i;
	int fd;

	fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size)) {
		perror(target);
		abort();
	}
	close(fd);
	if (crimg_open(dir, &img, &err))
		return 0;
	for (i = 0; i < crimg_nr_tasks(img); i++) {
		const struct crimg_task *t = crimg_task(img, i);

		if (crimg_find_task(img, t->pid) != t)
			abort();
		if (!t->zombie)
			walk_task(img, t);
	}
	crimg_close(img);
	return 0;
}
