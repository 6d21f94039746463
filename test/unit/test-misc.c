// SPDX-License-Identifier: MIT
/*
 * Edges of crimg_open(): directory naming, a dangling parent link, a dump whose pages
 * are all remote (no pages file), missing or non-directory paths, a NULL error buffer,
 * and the parent depth limit (64 parents open, 65 do not).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crimg.h"
#include "imgwriter.h"
#include "tu.h"

static void trailing_slash(void)
{
	const char *dir = tu_scenario("base");
	char slashed[4096];
	struct crimg_error err;
	struct crimg *img;
	int ret;

	if (!dir)
		return;
	snprintf(slashed, sizeof(slashed), "%s//", dir);
	ret = crimg_open(slashed, &img, &err);
	CHECK(ret == 0, "%d %s", ret, err.msg);
	if (ret)
		return;
	CHECK(!strcmp(crimg_dir(img), dir), "dir %s", crimg_dir(img));
	CHECK(!strcmp(crimg_task(img, 0)->pmes ? "ok" : "", "ok"));
	crimg_close(img);
}

static void dangling_parent(void)
{
	const char *dir = tu_scenario("dangling-parent");
	struct crimg_error err;
	struct crimg *img;
	int ret;

	if (!dir)
		return;
	/* As CRIU does: no PE_PARENT entry needs it, so a missing parent is no parent. */
	ret = crimg_open(dir, &img, &err);
	CHECK(ret == 0, "%d %s", ret, err.msg);
	if (ret)
		return;
	CHECK(crimg_parent(img) == NULL);
	crimg_close(img);
}

static void lazy_only(void)
{
	const char *dir = tu_scenario("lazy-only");
	const struct crimg_task *t;
	struct crimg_error err;
	struct crimg_loc loc;
	struct crimg *img;
	int ret;

	if (!dir)
		return;
	ret = crimg_open(dir, &img, &err);
	CHECK(ret == 0, "%d %s", ret, err.msg);
	if (ret)
		return;
	t = crimg_task(img, 0);
	ret = crimg_locate(img, t, 0x11000, &loc, &err);
	CHECK(ret == 0 && loc.where == CRIMG_REMOTE && loc.nr_pages == 3 && loc.flags == CRIMG_PE_LAZY,
	      "%d where %d nr %llu", ret, loc.where, (unsigned long long)loc.nr_pages);
	ret = crimg_locate(img, t, 0x14000, &loc, &err);
	CHECK(ret == 0 && loc.where == CRIMG_ZERO && loc.nr_pages == 2);
	crimg_close(img);
}

static void bad_paths(void)
{
	char path[4096];
	struct crimg_error err;
	struct crimg *img;
	int ret;

	snprintf(path, sizeof(path), "%s/no-such-dir", tu_tmpdir());
	ret = crimg_open(path, &img, &err);
	CHECK(ret == -ENOENT && img == NULL, "%d", ret);
	CHECK(tu_starts_with(err.msg, path), "%s", err.msg);

	/* A regular file where the directory should be. */
	snprintf(path, sizeof(path), "%s/base/pstree.img", tu_tmpdir());
	ret = crimg_open(path, &img, &err);
	CHECK(ret == -ENOTDIR, "%d %s", ret, err.msg);
	CHECK(tu_contains(err.msg, "pstree.img/inventory.img: cannot open"), "%s", err.msg);

	/* No error buffer: still an error code, and no crash. */
	snprintf(path, sizeof(path), "%s/no-such-dir", tu_tmpdir());
	ret = crimg_open(path, &img, NULL);
	CHECK(ret == -ENOENT, "%d", ret);
}

/* DIR/c0 is a dump; c1..cN are pre-dumps, each ci's parent being "../c<i+1>". */
static int make_deep(const char *dir, int parents)
{
	static const struct tw_vma vma = {0x10000, 0x11000, 3, 0x22, 0x201};
	static const struct tw_pme present = {0x10000, 1, 4}, inparent = {0x10000, 1, 1};
	char path[4096], target[64];
	int i;

	if (mkdir(dir, 0755))
		return -1;
	for (i = 0; i <= parents; i++) {
		struct tw_task t = {.pid = 1,
				    .threads = {1},
				    .nr_threads = 1,
				    .pages_id = 1,
				    .vmas = &vma,
				    .nr_vmas = 1,
				    .pmes = i == parents ? &present : &inparent,
				    .nr_pmes = 1};

		snprintf(path, sizeof(path), "%s/c%d", dir, i);
		if (i ? tw_predump(path, &t, 1, TW_41) : tw_dump(path, &t, 1, TW_41))
			return -1;
		snprintf(target, sizeof(target), "../c%d", i + 1);
		if (i < parents && tw_symlink(target, path, "parent"))
			return -1;
	}
	return 0;
}

static void depth_limit(void)
{
	char dir[4096], top[4096 + 8];
	struct crimg_error err;
	struct crimg_loc loc;
	struct crimg *img;
	int ret;

	snprintf(dir, sizeof(dir), "%s/deep64", tu_tmpdir());
	CHECK(make_deep(dir, CRIMG_MAX_PARENT_DEPTH) == 0);
	snprintf(top, sizeof(top), "%s/c0", dir);
	ret = crimg_open(top, &img, &err);
	CHECK(ret == 0, "%d %s", ret, err.msg);
	if (!ret) {
		ret = crimg_locate(img, crimg_task(img, 0), 0x10000, &loc, &err);
		CHECK(ret == 0 && loc.where == CRIMG_PRESENT && loc.depth == CRIMG_MAX_PARENT_DEPTH, "%d depth %u", ret,
		      loc.depth);
		crimg_close(img);
	}

	snprintf(dir, sizeof(dir), "%s/deep65", tu_tmpdir());
	CHECK(make_deep(dir, CRIMG_MAX_PARENT_DEPTH + 1) == 0);
	snprintf(top, sizeof(top), "%s/c0", dir);
	ret = crimg_open(top, &img, &err);
	CHECK(ret == -ELOOP, "%d %s", ret, err.msg);
	CHECK(tu_contains(err.msg, "/c64/parent: parent chain deeper than 64 images"), "%s", err.msg);
}

int main(void)
{
	trailing_slash();
	dangling_parent();
	lazy_only();
	bad_paths();
	depth_limit();
	return tu_done();
}
