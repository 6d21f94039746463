// SPDX-License-Identifier: MIT
/*
 * A dump with two parent pre-dumps: the chain is found through an absolute and a
 * relative `parent` link, parents are read for their pagemaps only (in_parent and 4.2
 * counts normalised), and crimg_locate resolves PE_PARENT ranges to the right file,
 * depth and offset, splitting where parent entries end (checked against page data).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crimg.h"
#include "tu.h"

struct want_loc {
	uint64_t addr;
	enum crimg_where where;
	uint64_t nr_pages;
	uint32_t flags;
	unsigned int depth;
	uint64_t off;
};

#define PAR CRIMG_PE_PARENT

static const struct want_loc want_locs[] = {
	{0x0fff0000, CRIMG_NOT_IN_IMAGE, 16, 0, 0, 0},
	{0x10000000, CRIMG_PRESENT, 1, CRIMG_PE_PRESENT, 0, 0},
	{0x10001000, CRIMG_PRESENT, 1, PAR, 1, 4096},  /* p1 present */
	{0x10002000, CRIMG_PRESENT, 4, PAR, 2, 8192},  /* p1 in_parent -> p2 */
	{0x10003000, CRIMG_PRESENT, 3, PAR, 2, 12288}, /* same, mid-run */
	{0x10006000, CRIMG_PRESENT, 2, PAR, 2, 24576}, /* p1 parent -> p2 entry 0 ... */
	{0x10008000, CRIMG_PRESENT, 1, PAR, 2, 32768}, /* ... and p2 entry 1; top entry ends */
	{0x10009000, CRIMG_PRESENT, 1, PAR | CRIMG_PE_LAZY, 2, 36864},
	{0x1000a000, CRIMG_PRESENT, 1, CRIMG_PE_PRESENT | CRIMG_PE_LAZY, 0, 4096},
	{0x1000b000, CRIMG_ZERO, 1, 0, 0, 0},
	{0x1000c000, CRIMG_REMOTE, 4, CRIMG_PE_LAZY, 0, 0},
	{0x1000e123, CRIMG_REMOTE, 2, CRIMG_PE_LAZY, 0, 0},
	{0x10010000, CRIMG_NOT_IN_IMAGE, (~0x10010000ULL >> 12) + 1, 0, 0, 0},
};

static void check_data(const struct crimg_loc *loc, uint64_t addr, uint32_t pages_id)
{
	uint8_t buf[12];
	uint64_t va;
	uint32_t id;

	CHECK(pread(loc->fd, buf, sizeof(buf), loc->off) == (ssize_t)sizeof(buf), "pread %s", loc->path);
	memcpy(&va, buf, 8);
	memcpy(&id, buf + 8, 4);
	CHECK_EQ(va, addr & ~4095ULL);
	CHECK_EQ(id, pages_id);
}

int main(void)
{
	const char *dir = tu_scenario("chain");
	const struct crimg *p1, *p2;
	const struct crimg_task *t, *pt;
	char abs[PATH_MAX], want[PATH_MAX * 2];
	struct crimg_summary sum;
	struct crimg_error err;
	struct crimg_loc loc;
	struct crimg *img;
	size_t i;
	int ret;

	if (!dir)
		return tu_done();
	ret = crimg_open(dir, &img, &err);
	CHECK(ret == 0, "crimg_open: %d %s", ret, err.msg);
	if (ret)
		return tu_done();
	CHECK(realpath(dir, abs) != NULL);

	p1 = crimg_parent(img);
	p2 = p1 ? crimg_parent(p1) : NULL;
	CHECK(p1 && p2 && !crimg_parent(p2), "chain of two parents");
	if (!p1 || !p2)
		goto out;
	/* top -> absolute link; p1 -> "../p2", joined to p1's directory */
	snprintf(want, sizeof(want), "%s/p1", abs);
	CHECK(!strcmp(crimg_dir(p1), want), "p1 dir %s", crimg_dir(p1));
	snprintf(want, sizeof(want), "%s/p1/../p2", abs);
	CHECK(!strcmp(crimg_dir(p2), want), "p2 dir %s", crimg_dir(p2));

	/* Pid 2 was not in the pre-dumps: the parents hold pid 1 only. */
	CHECK_EQ(crimg_nr_tasks(img), 2);
	CHECK_EQ(crimg_nr_tasks(p1), 1);
	CHECK_EQ(crimg_nr_tasks(p2), 1);
	CHECK(crimg_find_task(p1, 2) == NULL);

	pt = crimg_find_task(p1, 1);
	CHECK(pt != NULL);
	if (pt) {
		CHECK_EQ(pt->nr_vmas, 0);
		CHECK_EQ(pt->pages_id, 2);
		CHECK_EQ(pt->encoding, CRIMG_PAGEMAP_42);
		CHECK_EQ(pt->nr_pmes, 4);
		if (pt->nr_pmes == 4) {
			CHECK_EQ(pt->pmes[1].vaddr, 0x10002000);
			CHECK_EQ(pt->pmes[1].nr_pages, 4);
			CHECK_EQ(pt->pmes[1].flags, CRIMG_PE_PARENT); /* from in_parent */
			CHECK_EQ(pt->pmes[3].pages_off, 8192);
		}
		crimg_summarize(pt, &sum);
		CHECK_EQ(sum.present, 4);
		CHECK_EQ(sum.parent, 8);
		CHECK_EQ(sum.vma_pages, 0);
		CHECK_EQ(sum.zero, 0);

		/* A parent's own view: entries only, no VMAs. */
		ret = crimg_locate(p1, pt, 0x10002000, &loc, &err);
		CHECK(ret == 0 && loc.where == CRIMG_PRESENT && loc.depth == 1 && loc.off == 8192 && loc.nr_pages == 4,
		      "p1 locate: %d where %d depth %u off %llu nr %llu", ret, loc.where, loc.depth,
		      (unsigned long long)loc.off, (unsigned long long)loc.nr_pages);
		ret = crimg_locate(p1, pt, 0x1000c000, &loc, &err);
		CHECK(ret == 0 && loc.where == CRIMG_NOT_IN_IMAGE, "p1 past its entries: %d", loc.where);
		ret = crimg_locate(p1, pt, 0x0, &loc, &err);
		CHECK(ret == 0 && loc.where == CRIMG_NOT_IN_IMAGE && loc.nr_pages == 0x10000, "nr %llu",
		      (unsigned long long)loc.nr_pages);
	}
	pt = crimg_find_task(p2, 1);
	CHECK(pt && pt->encoding == CRIMG_PAGEMAP_41 && pt->pages_id == 1 && pt->nr_pmes == 2);

	t = crimg_find_task(img, 1);
	CHECK(t != NULL);
	if (!t)
		goto out;
	for (i = 0; i < sizeof(want_locs) / sizeof(want_locs[0]); i++) {
		const struct want_loc *w = &want_locs[i];
		static const char *const files[] = {"pages-7.img", "p1/pages-2.img", "p1/../p2/pages-1.img"};
		static const uint32_t ids[] = {7, 2, 1};

		fprintf(stderr, "# locate 0x%llx\n", (unsigned long long)w->addr);
		ret = crimg_locate(img, t, w->addr, &loc, &err);
		CHECK(ret == 0, "%d %s", ret, err.msg);
		if (ret)
			continue;
		CHECK_EQ(loc.where, w->where);
		CHECK_EQ(loc.nr_pages, w->nr_pages);
		CHECK_EQ(loc.flags, w->flags);
		CHECK_EQ(loc.depth, w->depth);
		if (w->where != CRIMG_PRESENT) {
			CHECK(loc.fd == -1 && !loc.path);
			continue;
		}
		if (w->depth == 0)
			snprintf(want, sizeof(want), "%s/%s", dir, files[0]);
		else
			snprintf(want, sizeof(want), "%s/%s", abs, files[w->depth]);
		CHECK(loc.path && !strcmp(loc.path, want), "path %s, want %s", loc.path ? loc.path : "(null)", want);
		CHECK_EQ(loc.off, w->off);
		if (loc.fd >= 0)
			check_data(&loc, w->addr, ids[w->depth]);
	}

	/* A task of another image is refused, not misread. */
	pt = crimg_find_task(p1, 1);
	ret = crimg_locate(img, pt, 0x10000000, &loc, &err);
	CHECK(ret == -EINVAL && tu_contains(err.msg, "not from this image"), "%d %s", ret, err.msg);

	crimg_summarize(t, &sum);
	CHECK_EQ(sum.vma_pages, 16);
	CHECK_EQ(sum.present, 2);
	CHECK_EQ(sum.lazy, 6);
	CHECK_EQ(sum.parent, 9);
	CHECK_EQ(sum.zero, 1);
out:
	crimg_close(img);
	return tu_done();
}
