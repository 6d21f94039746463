// SPDX-License-Identifier: MIT
/*
 * Good images in 4.1 and 4.2 encodings (and version 1 headers) read the same: tasks,
 * VMAs and their lazy flags, normalised entries and offsets, crimg_locate answers
 * checked against the page data, and the summaries `lazy-uffd show` prints.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "crimg.h"
#include "tu.h"

#define PP (CRIMG_PE_PRESENT)
#define PL (CRIMG_PE_PRESENT | CRIMG_PE_LAZY)

static const struct crimg_vma want_vmas1[] = {
	{.start = 0x400000, .end = 0x402000, .prot = 5, .flags = 0x2, .status = 0x41, .lazy = false},
	{.start = 0x600000, .end = 0x604000, .prot = 3, .flags = 0x22, .status = 0x221, .lazy = true},
	{.start = 0x604000, .end = 0x606000, .prot = 3, .flags = 0x22, .status = 0x201, .lazy = true},
	{.start = 0x7ffd0000, .end = 0x7ffd4000, .prot = 3, .flags = 0x122, .status = 0x201, .lazy = true},
	{.start = 0x7ffd8000, .end = 0x7ffd9000, .prot = 1, .flags = 0x22, .status = 0x1201, .lazy = false},
	{.start = 0x7ffd9000, .end = 0x7ffdb000, .prot = 5, .flags = 0x22, .status = 0x209, .lazy = false},
	{.start = 0x7f0000000000, .end = 0x7f0000002000, .prot = 3, .flags = 0x21, .status = 0x101, .lazy = false},
	{.start = 0x7f0000010000, .end = 0x7f0000011000, .prot = 3, .flags = 0x2022, .status = 0x201, .lazy = false},
};

static const struct crimg_pme want_pmes1[] = {
	{0x400000, 2, PP, 0},
	{0x600000, 2, PL, 2 * 4096},
	{0x603000, 2, PL, 4 * 4096},
	{0x7ffd0000, 2, PP, 6 * 4096}, /* no flags field: PE_PRESENT */
	{0x7ffd2000, 1, CRIMG_PE_LAZY, 0},
	{0x7ffd8000, 1, PP, 8 * 4096},
	{0x7ffd9000, 2, PP, 9 * 4096},
};

struct want_loc {
	pid_t pid;
	uint64_t addr;
	enum crimg_where where;
	uint64_t nr_pages;
	uint32_t flags;
	uint64_t off;
};

#define NOT_IN CRIMG_NOT_IN_IMAGE

static const struct want_loc want_locs[] = {
	{1, 0x0, NOT_IN, 0x400, 0, 0},
	{1, 0x400000, CRIMG_PRESENT, 2, PP, 0},
	{1, 0x401fff, CRIMG_PRESENT, 1, PP, 4096}, /* rounded down to its page */
	{1, 0x402000, NOT_IN, (0x600000 - 0x402000) / 4096, 0, 0},
	{1, 0x600000, CRIMG_PRESENT, 2, PL, 8192},
	{1, 0x601000, CRIMG_PRESENT, 1, PL, 12288},
	{1, 0x602000, CRIMG_ZERO, 1, 0, 0},
	{1, 0x603000, CRIMG_PRESENT, 1, PL, 16384}, /* split at the VMA end */
	{1, 0x604000, CRIMG_PRESENT, 1, PL, 20480}, /* same entry, next VMA */
	{1, 0x605000, CRIMG_ZERO, 1, 0, 0},
	{1, 0x606000, NOT_IN, (0x7ffd0000 - 0x606000) / 4096, 0, 0},
	{1, 0x7ffd0000, CRIMG_PRESENT, 2, PP, 24576},
	{1, 0x7ffd2000, CRIMG_REMOTE, 1, CRIMG_PE_LAZY, 0},
	{1, 0x7ffd3000, CRIMG_ZERO, 1, 0, 0},
	{1, 0x7ffd8000, CRIMG_PRESENT, 1, PP, 32768},
	{1, 0x7ffd9000, CRIMG_PRESENT, 2, PP, 36864},
	{1, 0x7ffda000, CRIMG_PRESENT, 1, PP, 40960},
	{1, 0x7f0000000000, CRIMG_ZERO, 2, 0, 0},
	{1, 0x7f0000011000, NOT_IN, (~0x7f0000011000ULL >> 12) + 1, 0, 0},
	{1, 0xfffffffffffff000ULL, NOT_IN, 1, 0, 0},
	{5, 0x10000, CRIMG_PRESENT, 1, PL, 0},
	{5, 0x11000, CRIMG_ZERO, 1, 0, 0},
	{5, 0x12000, NOT_IN, (~0x12000ULL >> 12) + 1, 0, 0},
};

/* per VMA of pid 1: pages present lazy parent zero */
static const uint64_t want_vma_sums[][5] = {
	{2, 2, 0, 0, 0}, {4, 3, 3, 0, 1}, {2, 1, 1, 0, 1}, {4, 2, 1, 0, 1},
	{1, 1, 0, 0, 0}, {2, 2, 0, 0, 0}, {2, 0, 0, 0, 2}, {1, 0, 0, 0, 1},
};

static void check_page(const struct crimg_loc *loc, uint64_t addr, uint32_t pages_id)
{
	uint8_t buf[12];
	uint64_t va;
	uint32_t id;

	CHECK(pread(loc->fd, buf, sizeof(buf), loc->off) == (ssize_t)sizeof(buf), "pread %s at %llu", loc->path,
	      (unsigned long long)loc->off);
	memcpy(&va, buf, 8);
	memcpy(&id, buf + 8, 4);
	CHECK_EQ(va, addr & ~4095ULL);
	CHECK_EQ(id, pages_id);
}

static void check_image(const char *scenario, enum crimg_pagemap_encoding enc)
{
	const char *dir = tu_scenario(scenario);
	const struct crimg_task *t1, *t5;
	struct crimg_summary sum;
	struct crimg_error err;
	struct crimg *img;
	size_t i;
	int ret;

	if (!dir)
		return;
	fprintf(stderr, "# %s\n", scenario);
	ret = crimg_open(dir, &img, &err);
	CHECK(ret == 0, "crimg_open(%s): %d %s", dir, ret, err.msg);
	if (ret)
		return;

	CHECK(!strcmp(crimg_dir(img), dir), "dir %s", crimg_dir(img));
	CHECK(crimg_parent(img) == NULL);
	CHECK_EQ(crimg_nr_tasks(img), 2);
	CHECK(crimg_task(img, 2) == NULL);
	t1 = crimg_task(img, 0);
	t5 = crimg_task(img, 1);
	CHECK(t1 && t5);
	if (!t1 || !t5)
		goto out;
	CHECK(crimg_find_task(img, 1) == t1);
	CHECK(crimg_find_task(img, 5) == t5);
	CHECK(crimg_find_task(img, 2) == NULL);

	CHECK_EQ(t1->pid, 1);
	CHECK_EQ(t1->ppid, 0);
	CHECK_EQ(t1->pgid, 1);
	CHECK(!t1->zombie);
	CHECK_EQ(t1->nr_threads, 2);
	CHECK(t1->nr_threads == 2 && t1->threads[0] == 1 && t1->threads[1] == 3, "threads");
	CHECK_EQ(t1->pages_id, 3);
	CHECK_EQ(t1->encoding, enc);
	CHECK_EQ(t5->pid, 5);
	CHECK_EQ(t5->ppid, 1);
	CHECK_EQ(t5->pages_id, 4);
	CHECK_EQ(t5->encoding, enc);

	/* good42's GUARD vma overlapping the stack must be gone */
	CHECK_EQ(t1->nr_vmas, sizeof(want_vmas1) / sizeof(want_vmas1[0]));
	for (i = 0; i < t1->nr_vmas && i < sizeof(want_vmas1) / sizeof(want_vmas1[0]); i++) {
		const struct crimg_vma *g = &t1->vmas[i], *w = &want_vmas1[i];

		CHECK_EQ(g->start, w->start);
		CHECK_EQ(g->end, w->end);
		CHECK_EQ(g->prot, w->prot);
		CHECK_EQ(g->flags, w->flags);
		CHECK_EQ(g->status, w->status);
		CHECK(g->lazy == w->lazy, "vma %zu lazy %d", i, g->lazy);
	}

	CHECK_EQ(t1->nr_pmes, sizeof(want_pmes1) / sizeof(want_pmes1[0]));
	for (i = 0; i < t1->nr_pmes && i < sizeof(want_pmes1) / sizeof(want_pmes1[0]); i++) {
		const struct crimg_pme *g = &t1->pmes[i], *w = &want_pmes1[i];

		CHECK_EQ(g->vaddr, w->vaddr);
		CHECK_EQ(g->nr_pages, w->nr_pages);
		CHECK_EQ(g->flags, w->flags);
		if (w->flags & CRIMG_PE_PRESENT)
			CHECK_EQ(g->pages_off, w->pages_off);
	}

	for (i = 0; i < sizeof(want_locs) / sizeof(want_locs[0]); i++) {
		const struct want_loc *w = &want_locs[i];
		const struct crimg_task *t = crimg_find_task(img, w->pid);
		struct crimg_loc loc;

		ret = crimg_locate(img, t, w->addr, &loc, &err);
		CHECK(ret == 0, "locate 0x%llx: %s", (unsigned long long)w->addr, err.msg);
		if (ret)
			continue;
		fprintf(stderr, "#   locate %d 0x%llx\n", (int)w->pid, (unsigned long long)w->addr);
		CHECK_EQ(loc.where, w->where);
		CHECK_EQ(loc.nr_pages, w->nr_pages);
		CHECK_EQ(loc.flags, w->flags);
		CHECK_EQ(loc.depth, 0);
		if (w->where == CRIMG_PRESENT) {
			char want_path[4096];

			snprintf(want_path, sizeof(want_path), "%s/pages-%u.img", dir, t->pages_id);
			CHECK(loc.path && !strcmp(loc.path, want_path), "path %s", loc.path ? loc.path : "(null)");
			CHECK_EQ(loc.off, w->off);
			CHECK(loc.fd >= 0, "fd %d", loc.fd);
			if (loc.fd >= 0)
				check_page(&loc, w->addr, t->pages_id);
		} else {
			CHECK(loc.fd == -1 && loc.path == NULL && loc.off == 0, "no file for where=%d", loc.where);
		}
	}

	for (i = 0; i < t1->nr_vmas && i < 8; i++) {
		crimg_summarize_vma(t1, &t1->vmas[i], &sum);
		CHECK_EQ(sum.vma_pages, want_vma_sums[i][0]);
		CHECK_EQ(sum.present, want_vma_sums[i][1]);
		CHECK_EQ(sum.lazy, want_vma_sums[i][2]);
		CHECK_EQ(sum.parent, want_vma_sums[i][3]);
		CHECK_EQ(sum.zero, want_vma_sums[i][4]);
		CHECK_EQ(sum.lazy_vma_pages, want_vmas1[i].lazy ? want_vma_sums[i][0] : 0);
	}
	crimg_summarize(t1, &sum);
	CHECK_EQ(sum.vma_pages, 18);
	CHECK_EQ(sum.lazy_vma_pages, 10);
	CHECK_EQ(sum.present, 11);
	CHECK_EQ(sum.lazy, 5);
	CHECK_EQ(sum.parent, 0);
	CHECK_EQ(sum.zero, 6);
	crimg_summarize(t5, &sum);
	CHECK_EQ(sum.vma_pages, 2);
	CHECK_EQ(sum.present, 1);
	CHECK_EQ(sum.lazy, 1);
	CHECK_EQ(sum.zero, 1);
out:
	crimg_close(img);
}

int main(void)
{
	check_image("good41", CRIMG_PAGEMAP_41);
	check_image("good42", CRIMG_PAGEMAP_42);
	check_image("v1", CRIMG_PAGEMAP_41);
	return tu_done();
}
