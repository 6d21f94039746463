// SPDX-License-Identifier: MIT
/*
 * Page sizes other than 4 KiB: images written with 64 KiB pages are read back with the
 * reader set to 64 KiB (offsets, counts and data checked), and refused, with an error
 * naming both sizes, by a reader at 4 KiB; 4 KiB images are refused at 64 KiB.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "crimg.h"
#include "imgwriter.h"
#include "tu.h"

#define K64 (64ULL << 10)

/* An eager text VMA of 1 big page, and a lazy anonymous one of 8. */
static const struct tw_vma vmas64[] = {
	{0x400000, 0x400000 + K64, 5, 0x2, 0x41},
	{0x7f0000000000, 0x7f0000000000 + 8 * K64, 3, 0x22, 0x201},
};

static const struct tw_pme pmes64[] = {
	{0x400000, 1, 4},		      /* PE_PRESENT */
	{0x7f0000000000, 2, 4 | 2},	      /* PE_PRESENT | PE_LAZY */
	{0x7f0000000000 + 4 * K64, 3, 4 | 2}, /* after a 2-page hole */
};

/* 4 KiB images whose VMA ends 4 KiB- but not 64 KiB-aligned. */
static const struct tw_vma vmas4[] = {
	{0x10000, 0x14000, 3, 0x22, 0x201},
};

static const struct tw_pme pmes4[] = {
	{0x11000, 2, 4 | 2},
};

static int write_dump(const char *dir, const struct tw_vma *vmas, size_t nv, const struct tw_pme *pmes, size_t np)
{
	struct tw_task t = {.pid = 1,
			    .threads = {1},
			    .nr_threads = 1,
			    .pages_id = 2,
			    .vmas = vmas,
			    .nr_vmas = nv,
			    .pmes = pmes,
			    .nr_pmes = np};

	return tw_dump(dir, &t, 1, TW_42);
}

/* The page at @addr is where the pages file says, and holds its own address. */
static void check_page(const struct crimg *img, const struct crimg_task *t, uint64_t addr, uint64_t want_off,
		       uint64_t want_run)
{
	struct crimg_error err;
	struct crimg_loc loc;
	uint64_t va = 0;
	int ret;

	ret = crimg_locate(img, t, addr + 123, &loc, &err);
	CHECK(ret == 0, "locate 0x%llx: %d %s", (unsigned long long)addr, ret, err.msg);
	if (ret)
		return;
	CHECK_EQ(loc.where, CRIMG_PRESENT);
	CHECK_EQ(loc.off, want_off);
	CHECK_EQ(loc.nr_pages, want_run);
	CHECK(pread(loc.fd, &va, 8, loc.off) == 8);
	CHECK_EQ(va, addr);
}

int main(void)
{
	char dir64[4096], dir4[4096];
	const struct crimg_task *t;
	struct crimg_summary sum;
	struct crimg_error err;
	struct crimg_loc loc;
	struct crimg *img;
	int ret;

	CHECK_EQ(crimg_page_size(), sysconf(_SC_PAGESIZE));
	CHECK(crimg_set_page_size(3000) == -EINVAL);
	CHECK(crimg_set_page_size(2048) == -EINVAL);
	CHECK(crimg_set_page_size(2ULL << 20) == -EINVAL);
	CHECK_EQ(crimg_page_size(), sysconf(_SC_PAGESIZE));

	snprintf(dir64, sizeof(dir64), "%s/k64", tu_tmpdir());
	snprintf(dir4, sizeof(dir4), "%s/k4", tu_tmpdir());
	tw_page_size = K64;
	ret = write_dump(dir64, vmas64, 2, pmes64, 3);
	tw_page_size = 4096;
	ret = ret || write_dump(dir4, vmas4, 1, pmes4, 1);
	CHECK(ret == 0, "writing the images");
	if (ret)
		return tu_done();

	/* 64 KiB images at 64 KiB: every offset is in 64 KiB pages. */
	CHECK(crimg_set_page_size(K64) == 0);
	CHECK_EQ(crimg_page_size(), K64);
	ret = crimg_open(dir64, &img, &err);
	CHECK(ret == 0, "crimg_open 64K at 64K: %d %s", ret, err.msg);
	if (!ret) {
		t = crimg_task(img, 0);
		check_page(img, t, 0x400000, 0, 1);
		check_page(img, t, 0x7f0000000000, K64, 2);
		check_page(img, t, 0x7f0000000000 + K64, 2 * K64, 1);
		check_page(img, t, 0x7f0000000000 + 5 * K64, 4 * K64, 2);
		ret = crimg_locate(img, t, 0x7f0000000000 + 2 * K64, &loc, &err);
		CHECK(ret == 0 && loc.where == CRIMG_ZERO && loc.nr_pages == 2, "the hole: %d where %d, %llu pages",
		      ret, loc.where, (unsigned long long)loc.nr_pages);
		crimg_summarize(t, &sum);
		CHECK_EQ(sum.vma_pages, 9);
		CHECK_EQ(sum.present, 6);
		CHECK_EQ(sum.lazy, 5);
		CHECK_EQ(sum.zero, 3); /* the hole, and the last page */
		crimg_close(img);
	}

	/* 4 KiB images at 64 KiB: the VMA does not end on a 64 KiB page. */
	ret = crimg_open(dir4, &img, &err);
	CHECK(ret == -EINVAL, "crimg_open 4K at 64K: %d", ret);
	CHECK(tu_contains(err.msg, "mm-1.img: offset 8: vma 0 0x10000-0x14000 is not a page range (with "
				   "65536-byte pages: were the images written with smaller ones?)"),
	      "%s", err.msg);
	if (!ret)
		crimg_close(img);

	/* 64 KiB images at 4 KiB: every address is aligned; the pages file's size tells. */
	CHECK(crimg_set_page_size(4096) == 0);
	ret = crimg_open(dir64, &img, &err);
	CHECK(ret == -EINVAL, "crimg_open 64K at 4K: %d", ret);
	CHECK(tu_contains(err.msg, "pages-2.img: 393216 bytes are ") &&
		      tu_contains(err.msg, "pagemap-1.img's 6 present pages of 65536 bytes: the images were "
					   "written with 65536-byte pages, this system's page size is 4096"),
	      "%s", err.msg);
	if (!ret)
		crimg_close(img);

	/* And 4 KiB images at 4 KiB still read. */
	ret = crimg_open(dir4, &img, &err);
	CHECK(ret == 0, "crimg_open 4K at 4K: %d %s", ret, err.msg);
	if (!ret)
		crimg_close(img);
	return tu_done();
}
