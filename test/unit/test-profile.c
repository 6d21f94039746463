// SPDX-License-Identifier: MIT
/*
 * Access profiles (lazy-pages/profile.c): records written are read back the same, and
 * every kind of damage is refused with a message naming the file and the byte offset.
 * Page sizes: a profile says the one it was recorded with and is refused at another;
 * one recorded at 64 KiB on a dump written with 64 KiB pages (by the test) reads back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lazy-pages/pagesize.h"
#include "../../lazy-pages/profile.h"
#include "imgwriter.h"
#include "tu.h"

#define FP  0x1122334455667788ULL
#define K64 (64ULL << 10)

static char path[4096];

static size_t slurp(const char *p, unsigned char *buf, size_t cap)
{
	FILE *f = fopen(p, "r");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

/* Parse LEN bytes of BUF: must fail with a message holding WANT and "offset OFF". */
static void expect_refused(const unsigned char *buf, size_t len, const char *want, size_t off)
{
	struct profile p;
	struct profile_error err = { "" };
	char at[64];
	int ret = profile_parse(buf, len, "prof.bin", FP, NULL, &p, &err);

	snprintf(at, sizeof(at), "prof.bin, offset %zu:", off);
	CHECK(ret == -22, "want -EINVAL for '%s', got %d", want, ret);
	CHECK(tu_contains(err.msg, want), "message '%s' lacks '%s'", err.msg, want);
	CHECK(tu_contains(err.msg, at), "message '%s' lacks '%s'", err.msg, at);
	CHECK(p.recs == NULL && p.nr == 0, "a refused profile leaves records behind");
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static uint32_t get32(const unsigned char *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * Version 1 (no page size, records from offset 32) is read as 4 KiB pages: BUF (version
 * 2, LEN bytes) rewritten as version 1 into V1, read at 4 KiB, refused at 64 KiB.
 */
static void test_version1(const unsigned char *buf, size_t len, const struct profile *w)
{
	unsigned char v1[4096];
	size_t n = len - (PROFILE_HDR_SIZE - PROFILE_HDR_SIZE_V1);
	struct profile r;
	struct profile_error err = { "" };
	int ret;

	memcpy(v1, buf, PROFILE_HDR_SIZE_V1);
	put32(v1 + 8, 1);
	memcpy(v1 + PROFILE_HDR_SIZE_V1, buf + PROFILE_HDR_SIZE, len - PROFILE_HDR_SIZE);
	ret = profile_parse(v1, n, "prof.bin", FP, NULL, &r, &err);
	CHECK(ret == 0, "version 1 at 4 KiB: %s", err.msg);
	CHECK_EQ(r.nr, w->nr);
	for (size_t i = 0; i < r.nr && i < w->nr; i++) {
		CHECK_EQ(r.recs[i].nr_pages, w->recs[i].nr_pages);
		CHECK_EQ(r.recs[i].img_addr, w->recs[i].img_addr);
	}
	profile_free(&r);
	expect_refused(v1, n - 1, "need 96 bytes, the file has 95", 95);
	CHECK_EQ(lazy_set_page_size(K64), 0);
	expect_refused(v1, n,
		       "recorded with 4096-byte pages (version 1), this system's page size is 65536: record the "
		       "profile again here",
		       8);
	CHECK_EQ(lazy_set_page_size(4096), 0);
}

/*
 * At 64 KiB: a dump written with 64 KiB pages, a profile recorded on it (runs merge in
 * 64 KiB steps, the header says 65536), read back against the dump; refused at 4 KiB.
 */
static void test_64k(void)
{
	static const struct tw_vma vmas[] = {
		{0x7f0000000000, 0x7f0000000000 + 16 * K64, 3, 0x22, 0x201},
	};
	static const struct tw_pme pmes[] = {
		{0x7f0000000000, 16, 4 | 2}, /* PE_PRESENT | PE_LAZY */
	};
	struct tw_task tt = {.pid = 7,
			     .threads = {7},
			     .nr_threads = 1,
			     .pages_id = 2,
			     .vmas = vmas,
			     .nr_vmas = 1,
			     .pmes = pmes,
			     .nr_pmes = 1};
	const uint64_t a = 0x7f0000000000;
	struct profile w = { 0 }, r;
	struct profile_error err = { "" };
	unsigned char buf[4096];
	struct crimg_error cerr;
	struct crimg *img;
	char dir[4096];
	uint64_t fp;
	size_t len;
	int ret;

	snprintf(dir, sizeof(dir), "%s/k64", tu_tmpdir());
	tw_page_size = K64;
	ret = tw_dump(dir, &tt, 1, TW_42);
	tw_page_size = 4096;
	CHECK(ret == 0, "writing the 64 KiB dump");
	if (ret)
		return;
	CHECK_EQ(lazy_set_page_size(K64), 0);
	ret = crimg_open(dir, &img, &cerr);
	CHECK(ret == 0, "crimg_open at 64 KiB: %s", cerr.msg);
	if (ret)
		goto out;
	fp = profile_fingerprint(img);

	CHECK_EQ(profile_add(&w, 7, a + 2 * K64, 1), 0);
	CHECK_EQ(profile_add(&w, 7, a + 3 * K64, 2), 0); /* right after it: 64 KiB on */
	CHECK_EQ(profile_add(&w, 7, a, 1), 0);
	CHECK_EQ(profile_add(&w, 7, a + 4096, 1), 0); /* 4 KiB on: not after a 64 KiB page */
	CHECK_EQ(w.nr, 3);
	CHECK_EQ(w.recs[0].nr_pages, 3);
	CHECK_EQ(profile_add(&w, 9, a + 8 * K64, 1), 0); /* a task the dump lacks */
	CHECK_EQ(w.nr, 4);

	ret = profile_write(&w, path, fp, &err);
	CHECK(ret == 0, "profile_write at 64 KiB: %s", err.msg);
	len = slurp(path, buf, sizeof(buf));
	CHECK_EQ(len, PROFILE_HDR_SIZE + 4 * PROFILE_REC_SIZE);
	CHECK_EQ(get32(buf + 32), K64);

	/* Record 2 (a + 4 KiB) is not aligned to 64 KiB: the file as written is refused. */
	ret = profile_load(path, fp, img, &r, &err);
	CHECK(ret == -EINVAL && tu_contains(err.msg, "record 2: bad address 0x7f0000001000"), "%d %s", ret,
	      err.msg);
	if (!ret)
		profile_free(&r);
	/* Without it, the rest reads back, the unknown task's record skipped. */
	w.recs[2] = w.recs[3];
	w.nr = 3;
	CHECK_EQ(profile_write(&w, path, fp, &err), 0);
	ret = profile_load(path, fp, img, &r, &err);
	CHECK(ret == 0, "profile_load at 64 KiB: %s", err.msg);
	CHECK_EQ(r.nr, 2);
	CHECK_EQ(r.skipped_tasks, 1);
	if (r.nr == 2) {
		CHECK_EQ(r.recs[0].img_addr, a + 2 * K64);
		CHECK_EQ(r.recs[0].nr_pages, 3);
		CHECK_EQ(r.recs[1].img_addr, a);
	}
	profile_free(&r);

	/* At 4 KiB, the same file is refused, naming both sizes. */
	CHECK_EQ(lazy_set_page_size(4096), 0);
	ret = profile_load(path, fp, img, &r, &err);
	CHECK(ret == -EINVAL && tu_contains(err.msg, "offset 32: recorded with 65536-byte pages, this system's "
						     "page size is 4096"),
	      "%d %s", ret, err.msg);
	if (!ret)
		profile_free(&r);
	crimg_close(img);
out:
	CHECK_EQ(lazy_set_page_size(4096), 0);
	profile_free(&w);
}

int main(void)
{
	struct profile w = { 0 }, r;
	struct profile_error err = { "" };
	unsigned char buf[4096], bad[4096];
	size_t len;
	int ret;

	snprintf(path, sizeof(path), "%s/prof.bin", tu_tmpdir());
	/* The addresses below are 4 KiB apart, whatever this system's page size. */
	CHECK_EQ(lazy_set_page_size(4096), 0);

	/* Contiguous runs of one task merge; another task or a gap starts a record. */
	CHECK_EQ(profile_add(&w, 7, 0x10000, 1), 0);
	CHECK_EQ(profile_add(&w, 7, 0x11000, 3), 0);
	CHECK_EQ(profile_add(&w, 9, 0x14000, 1), 0);
	CHECK_EQ(profile_add(&w, 7, 0x14000, 1), 0);
	CHECK_EQ(profile_add(&w, 7, 0x40000, 2), 0);
	CHECK_EQ(w.nr, 4);
	CHECK_EQ(w.recs[0].nr_pages, 4);

	ret = profile_write(&w, path, FP, &err);
	CHECK(ret == 0, "profile_write: %s", err.msg);
	len = slurp(path, buf, sizeof(buf));
	CHECK_EQ(len, PROFILE_HDR_SIZE + 4 * PROFILE_REC_SIZE);
	CHECK(!memcmp(buf, "LUPROF\0\1", 8), "magic");
	CHECK_EQ(get32(buf + 8), 2);
	CHECK_EQ(get32(buf + 32), 4096);
	CHECK_EQ(get32(buf + 36), 0);

	ret = profile_load(path, FP, NULL, &r, &err);
	CHECK(ret == 0, "profile_load: %s", err.msg);
	CHECK_EQ(r.nr, w.nr);
	for (size_t i = 0; i < r.nr && i < w.nr; i++) {
		CHECK_EQ(r.recs[i].vpid, w.recs[i].vpid);
		CHECK_EQ(r.recs[i].nr_pages, w.recs[i].nr_pages);
		CHECK_EQ(r.recs[i].img_addr, w.recs[i].img_addr);
	}
	profile_free(&r);

	/* An empty profile is valid. */
	{
		struct profile empty = { 0 };

		CHECK_EQ(profile_write(&empty, path, FP, &err), 0);
		CHECK_EQ(profile_load(path, FP, NULL, &r, &err), 0);
		CHECK_EQ(r.nr, 0);
		profile_free(&r);
	}

	/* Damage, one kind at a time, each with its offset. */
	expect_refused(buf, 0, "truncated header", 0);
	expect_refused(buf, 20, "truncated header", 20);
	memcpy(bad, buf, len);
	bad[3] ^= 1;
	expect_refused(bad, len, "bad magic", 0);
	{
		/* One 32-bit field set to a bad value: the message and the offset of that field. */
		static const struct {
			size_t off;
			uint32_t val;
			const char *msg;
		} fields[] = {
			{ 8, 3, "version 3, this daemon reads versions 1 and 2" },
			{ 12, 24, "record size 24" },
			{ 32, 65536, "recorded with 65536-byte pages, this system's page size is 4096" },
			{ 32, 3000, "recorded with 3000-byte pages" },
			{ 36, 1, "reserved field is not 0" },
			{ 24, 0xffffffff, "more than the limit" },
			{ PROFILE_HDR_SIZE + PROFILE_REC_SIZE + 4, 0, "record 1: 0 pages" },
			{ PROFILE_HDR_SIZE + 2 * PROFILE_REC_SIZE + 4, PROFILE_MAX_RUN + 1, "record 2: 262145 pages" },
			{ PROFILE_HDR_SIZE + 3 * PROFILE_REC_SIZE, 0, "record 3: bad pid 0" },
		};

		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			memcpy(bad, buf, len);
			put32(bad + fields[i].off, fields[i].val);
			expect_refused(bad, len, fields[i].msg, fields[i].off);
		}
	}
	expect_refused(buf, len - 5, "need 104 bytes, the file has 99", 99);
	expect_refused(buf, len - PROFILE_REC_SIZE, "need 104 bytes, the file has 88", 88);
	expect_refused(buf, 36, "truncated header (36 of 40 bytes)", 36);
	memcpy(bad, buf, len);
	bad[16] ^= 0xff;
	expect_refused(bad, len, "recorded on other images", 16);
	memcpy(bad, buf, len);
	bad[PROFILE_HDR_SIZE + 8] |= 0x10;
	expect_refused(bad, len, "record 0: bad address 0x10010", PROFILE_HDR_SIZE + 8);
	/* An address range that wraps around. */
	memcpy(bad, buf, len);
	memset(bad + PROFILE_HDR_SIZE + 8, 0xff, 8);
	bad[PROFILE_HDR_SIZE + 8] = 0;
	bad[PROFILE_HDR_SIZE + 9] = 0xf0;
	expect_refused(bad, len, "record 0: bad address", PROFILE_HDR_SIZE + 8);

	/* A file that is not there: the message names it. */
	snprintf(path + strlen(path), sizeof(path) - strlen(path), ".missing");
	ret = profile_load(path, FP, NULL, &r, &err);
	CHECK(ret < 0, "a missing profile loaded");
	CHECK(tu_contains(err.msg, path) && tu_contains(err.msg, "No such file"), "message: %s", err.msg);

	test_version1(buf, len, &w);
	test_64k();
	profile_free(&w);
	return tu_done();
}
