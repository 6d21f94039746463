// SPDX-License-Identifier: MIT
/* lazy-uffd show: what a lazy restore of an image directory would serve, per task and VMA. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "crimg.h"
#include "lazy_pages.h"

static void show_usage(FILE *out)
{
	fprintf(out, "usage: lazy-uffd show [--help] DIR\n"
		     "\n"
		     "Read the CRIU images in DIR (and its parent chain) and print, for each task,\n"
		     "its VMAs, whether each one is restored lazily, and how many of its pages are\n"
		     "present in a pages file, lazy, in a parent image or zero (in no pagemap entry).\n"
		     "Exits 1 if the images are unreadable or inconsistent, 2 on a usage error.\n");
}

static void print_counts(const struct crimg_summary *s)
{
	printf("pages %llu present %llu lazy %llu parent %llu zero %llu\n", (unsigned long long)s->vma_pages,
	       (unsigned long long)s->present, (unsigned long long)s->lazy, (unsigned long long)s->parent,
	       (unsigned long long)s->zero);
}

static void show_task(const struct crimg_task *t)
{
	struct crimg_summary sum;
	size_t i;

	if (t->zombie) {
		printf("task %d ppid %d zombie\n", (int)t->pid, (int)t->ppid);
		return;
	}
	printf("task %d ppid %d threads %zu pagemap %s pages pages-%u.img\n", (int)t->pid, (int)t->ppid, t->nr_threads,
	       t->encoding == CRIMG_PAGEMAP_42 ? "4.2" : "4.1", t->pages_id);

	for (i = 0; i < t->nr_vmas; i++) {
		const struct crimg_vma *v = &t->vmas[i];

		crimg_summarize_vma(t, v, &sum);
		printf("  vma 0x%llx-0x%llx %c%c%c%c %s ", (unsigned long long)v->start, (unsigned long long)v->end,
		       v->prot & PROT_READ ? 'r' : '-', v->prot & PROT_WRITE ? 'w' : '-',
		       v->prot & PROT_EXEC ? 'x' : '-', v->flags & MAP_SHARED ? 's' : 'p', v->lazy ? "lazy" : "eager");
		print_counts(&sum);
	}
	crimg_summarize(t, &sum);
	printf("  total ");
	print_counts(&sum);
}

int cmd_show(int argc, char **argv)
{
	const struct crimg *p;
	struct crimg_error err;
	const char *dir = NULL;
	struct crimg *img;
	unsigned int parents = 0;
	bool opts_done = false;
	size_t i;
	int a;

	for (a = 1; a < argc; a++) {
		if (!opts_done && (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h"))) {
			show_usage(stdout);
			return 0;
		}
		if (!opts_done && !strcmp(argv[a], "--")) {
			opts_done = true;
			continue;
		}
		if (!opts_done && argv[a][0] == '-' && argv[a][1]) {
			pr_err("show: unknown option '%s'", argv[a]);
			show_usage(stderr);
			return 2;
		}
		if (dir) {
			pr_err("show: more than one directory given");
			show_usage(stderr);
			return 2;
		}
		dir = argv[a];
	}
	if (!dir) {
		pr_err("show: no image directory given");
		show_usage(stderr);
		return 2;
	}

	if (crimg_open(dir, &img, &err)) {
		pr_err("%s", err.msg);
		return 1;
	}
	for (p = crimg_parent(img); p; p = crimg_parent(p))
		parents++;

	printf("images %s parents %u\n", dir, parents);
	for (i = 0; i < crimg_nr_tasks(img); i++)
		show_task(crimg_task(img, i));
	crimg_close(img);

	if (fflush(stdout) || ferror(stdout)) {
		pr_err("show: cannot write the output");
		return 1;
	}
	return 0;
}
