// SPDX-License-Identifier: MIT
/*
 * Every corruption scenario fails crimg_open() with the right return code and one error
 * line that starts with the damaged file's path, quotes the byte offset of the bad
 * record (where there is one) and says what is wrong.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crimg.h"
#include "tu.h"

struct want_err {
	const char *scenario;
	int ret;
	const char *file;   /* path of the named file, relative to the scenario dir */
	long long offset;   /* -1: the message quotes no offset */
	const char *detail; /* must appear after the offset */
	bool abs;	    /* FILE is under the realpath of the scenario dir */
};

static const struct want_err cases[] = {
	{"bad-magic", -EINVAL, "pstree.img", 0, "bad magic 0xdeadbeef (expected 0x54564319)", false},
	{"bad-type-magic", -EINVAL, "mm-1.img", 4, "bad magic 0x56084025 (expected 0x57492820)", false},
	{"bad-inventory-magic", -EINVAL, "inventory.img", 0, "bad magic 0x54564319 (expected 0x58313116)", false},
	{"bad-inventory-version", -EINVAL, "inventory.img", 4, "unsupported img_version 3", false},
	{"trunc-header", -EINVAL, "pagemap-1.img", 38, "truncated record header: 2 of 4 bytes", false},
	{"trunc-payload", -EINVAL, "pagemap-1.img", 38, "record length 8 runs past end of file (size 45)", false},
	{"len-past-eof", -EINVAL, "pagemap-1.img", 38, "record length 9000 runs past end of file (size 50)", false},
	{"len-huge", -EINVAL, "pagemap-1.img", 38, "record length 4294967295 exceeds the limit", false},
	{"garbage", -EINVAL, "pagemap-1.img", 38, "cannot decode pagemap_entry (8 bytes)", false},
	{"garbage-mm", -EINVAL, "mm-1.img", 8, "cannot decode mm_entry (3 bytes)", false},
	{"overlap", -EINVAL, "pagemap-1.img", 26, "entry 0x11000-0x13000 overlaps the previous entry 0x10000-0x12000",
	 false},
	{"unsorted", -EINVAL, "pagemap-1.img", 26, "entry 0x10000-0x12000 is unsorted", false},
	{"past-vma", -EINVAL, "pagemap-1.img", 26, "entry 0x15000-0x17000: page 0x16000 is outside every VMA", false},
	{"outside-vma", -EINVAL, "pagemap-1.img", 26, "entry 0x18000-0x19000: page 0x18000 is outside every VMA",
	 false},
	{"bad-flags", -EINVAL, "pagemap-1.img", 26, "unknown flags 0x14", false},
	{"parent-present", -EINVAL, "pagemap-1.img", 26, "both PE_PARENT and PE_PRESENT", false},
	{"unaligned", -EINVAL, "pagemap-1.img", 26, "vaddr 0x13800 is not page aligned", false},
	{"overflow", -EINVAL, "pagemap-1.img", 26, "runs past the end of the address space", false},
	{"no-head", -EINVAL, "pagemap-1.img", 8, "no pagemap_head record", false},
	{"dup-pid", -EINVAL, "pstree.img", 22, "duplicate pid 1", false},
	{"missing-pages", -ENOENT, "pages-2.img", -1, "cannot open: No such file or directory", false},
	{"short-pages", -EINVAL, "pages-2.img", 16384, "file ends, but", false},
	{"missing-mm", -ENOENT, "mm-1.img", -1, "cannot open: No such file or directory", false},
	{"fifo", -EINVAL, "pagemap-1.img", -1, "not a regular file", false},
	{"loop", -ELOOP, "b/parent", -1, "parent loop", false},
	{"parent-missing", -EINVAL, "pagemap-1.img", 26, "entry 0x13000-0x15000 is PE_PARENT, but there is no", false},
	{"chain-uncovered", -EINVAL, "pagemap-1.img", 70, "page 0x1000c000 is not in ", false},
	{"chain-lazy-parent", -EINVAL, "p1/pagemap-1.img", 46, "page 0x10008000 is in ", true},
};

/* The rest of the message names the other file involved. */
static const struct {
	const char *scenario, *also;
	bool abs;
} also[] = {
	{"missing-pages", "pagemap-1.img has 5 present pages", false},
	{"short-pages", "pagemap-1.img has 5 present pages (20480 bytes)", false},
	{"parent-missing", "/parent", false},
	{"chain-uncovered", "p1/pagemap-1.img", true},
	{"chain-lazy-parent", "p1/../p2/pagemap-1.img offset 28 with flags 0x2", true},
};

static void check_case(const struct want_err *w)
{
	char prefix[PATH_MAX * 2], off[64], abs[PATH_MAX], other[PATH_MAX * 2];
	const char *dir = tu_scenario(w->scenario), *base;
	struct crimg_error err;
	struct crimg *img = (struct crimg *)0x1;
	size_t i;
	int ret;

	if (!dir)
		return;
	fprintf(stderr, "# %s\n", w->scenario);
	memset(err.msg, 0, sizeof(err.msg));
	ret = crimg_open(dir, &img, &err);
	CHECK(ret == w->ret, "%s: ret %d, want %d (%s)", w->scenario, ret, w->ret, err.msg);
	CHECK(img == NULL, "%s: *out not cleared on failure", w->scenario);
	if (!ret) {
		crimg_close(img);
		return;
	}
	CHECK(realpath(dir, abs) != NULL);
	base = w->abs ? abs : dir;

	snprintf(prefix, sizeof(prefix), "%s/%s: ", base, w->file);
	CHECK(tu_starts_with(err.msg, prefix), "%s: message does not start with '%s':\n    %s", w->scenario, prefix,
	      err.msg);
	if (w->offset >= 0) {
		snprintf(off, sizeof(off), ": offset %lld: ", w->offset);
		CHECK(tu_contains(err.msg, off), "%s: no '%s' in:\n    %s", w->scenario, off, err.msg);
	} else {
		CHECK(!tu_contains(err.msg, " offset "), "%s: unexpected offset in:\n    %s", w->scenario, err.msg);
	}
	CHECK(tu_contains(err.msg, w->detail), "%s: no '%s' in:\n    %s", w->scenario, w->detail, err.msg);
	CHECK(!strchr(err.msg, '\n'), "%s: more than one line", w->scenario);

	for (i = 0; i < sizeof(also) / sizeof(also[0]); i++) {
		if (strcmp(also[i].scenario, w->scenario))
			continue;
		snprintf(other, sizeof(other), "%s/%s", also[i].abs ? abs : dir, also[i].also);
		if (also[i].also[0] == '/')
			snprintf(other, sizeof(other), "%s%s", dir, also[i].also);
		CHECK(tu_contains(err.msg, other), "%s: no '%s' in:\n    %s", w->scenario, other, err.msg);
	}
}

int main(void)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i]);
	return tu_done();
}
