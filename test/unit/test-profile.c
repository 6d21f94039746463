// SPDX-License-Identifier: MIT
/*
 * Access profiles (lazy-pages/profile.c): records written are read back the same, and
 * every kind of damage is refused with a message naming the file and the byte offset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lazy-pages/profile.h"
#include "tu.h"

#define FP 0x1122334455667788ULL

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

int main(void)
{
	struct profile w = { 0 }, r;
	struct profile_error err = { "" };
	unsigned char buf[4096], bad[4096];
	size_t len;
	int ret;

	snprintf(path, sizeof(path), "%s/prof.bin", tu_tmpdir());

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
	memcpy(bad, buf, len);
	put32(bad + 8, 2);
	expect_refused(bad, len, "version 2", 8);
	memcpy(bad, buf, len);
	put32(bad + 12, 24);
	expect_refused(bad, len, "record size 24", 12);
	expect_refused(buf, len - 5, "need 96 bytes, the file has 91", 91);
	expect_refused(buf, len - PROFILE_REC_SIZE, "need 96 bytes, the file has 80", 80);
	memcpy(bad, buf, len);
	put32(bad + 24, 0xffffffff);
	expect_refused(bad, len, "more than the limit", 24);
	memcpy(bad, buf, len);
	bad[16] ^= 0xff;
	expect_refused(bad, len, "recorded on other images", 16);
	memcpy(bad, buf, len);
	put32(bad + PROFILE_HDR_SIZE + PROFILE_REC_SIZE + 4, 0);
	expect_refused(bad, len, "record 1: 0 pages", PROFILE_HDR_SIZE + PROFILE_REC_SIZE + 4);
	memcpy(bad, buf, len);
	put32(bad + PROFILE_HDR_SIZE + 2 * PROFILE_REC_SIZE + 4, PROFILE_MAX_RUN + 1);
	expect_refused(bad, len, "record 2: 262145 pages", PROFILE_HDR_SIZE + 2 * PROFILE_REC_SIZE + 4);
	memcpy(bad, buf, len);
	bad[PROFILE_HDR_SIZE + 8] |= 0x10;
	expect_refused(bad, len, "record 0: bad address 0x10010", PROFILE_HDR_SIZE + 8);
	memcpy(bad, buf, len);
	put32(bad + PROFILE_HDR_SIZE + 3 * PROFILE_REC_SIZE, 0);
	expect_refused(bad, len, "record 3: bad pid 0", PROFILE_HDR_SIZE + 3 * PROFILE_REC_SIZE);
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

	profile_free(&w);
	return tu_done();
}
