// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the access-profile reader: the input is a file handed to
 * `--prefetch-profile`, parsed against the real dump in fuzz/base. The fingerprint check
 * would stop nearly every input at offset 16, so the input is parsed twice: once against
 * the fingerprint in its own header (on into the records) and once against the dump's
 * (the refusal). Any input must give a clean refusal (-EINVAL, a message naming the file
 * and an offset) or a profile that keeps the format's promises and survives a write and
 * a read back unchanged.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lazy-pages/pagesize.h"
#include "../lazy-pages/profile.h"

static struct crimg *img;
static uint64_t img_fp;
static char dir[] = "/tmp/fuzz-profile-XXXXXX";
static char path[PATH_MAX];

static void remove_dir(void)
{
	unlink(path);
	rmdir(dir);
}

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz-profile: %s\n", what);
		abort();
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = getenv("LAZY_UFFD_FUZZ_BASE");
	struct crimg_error err;

	(void)argc;
	(void)argv;
	if (crimg_open(base ? base : FUZZ_BASE, &img, &err)) {
		fprintf(stderr, "fuzz base: %s\n", err.msg);
		exit(1);
	}
	img_fp = profile_fingerprint(img);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/profile", dir);
	atexit(remove_dir);
	return 0;
}

static void check_parsed(int ret, const struct profile *p, const struct profile_error *err, size_t size)
{
	size_t i;

	if (ret) {
		check(ret == -EINVAL || ret == -ENOMEM, "an error other than -EINVAL or -ENOMEM");
		check(!strncmp(err->msg, "profile fuzz, offset ", 21), "an error message without file and offset");
		check(!p->recs && !p->nr, "a refused profile kept records");
		return;
	}
	/* Version 1's header is the shorter. */
	check(size >= PROFILE_HDR_SIZE_V1 && p->nr <= (size - PROFILE_HDR_SIZE_V1) / PROFILE_REC_SIZE,
	      "more records than the file holds");
	for (i = 0; i < p->nr; i++) {
		const struct profile_rec *r = &p->recs[i];

		check(r->vpid > 0, "a record with pid 0 or negative");
		check(r->nr_pages >= 1, "a record of no pages");
		check(!(r->img_addr & (PAGE_SZ - 1)), "a record not page aligned");
		check(r->img_addr + ((uint64_t)r->nr_pages << PAGE_SHIFT) > r->img_addr, "a record that wraps");
		check(crimg_find_task(img, r->vpid) != NULL, "a record of a task the dump does not have");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct profile p, back;
	struct profile_error err;
	uint64_t own_fp = 0;
	size_t i;
	int ret;

	if (size >= 24)
		memcpy(&own_fp, data + 16, sizeof(own_fp)); /* little-endian, as the format */

	ret = profile_parse(data, size, "fuzz", img_fp, img, &p, &err);
	check_parsed(ret, &p, &err, size);
	profile_free(&p);

	ret = profile_parse(data, size, "fuzz", own_fp, img, &p, &err);
	check_parsed(ret, &p, &err, size);
	if (ret)
		return 0;
	/* What we write, we read back the same (adjacent runs were merged when parsed). */
	check(!profile_write(&p, path, own_fp, &err), "a parsed profile could not be written");
	check(!profile_load(path, own_fp, img, &back, &err), "a written profile was refused");
	check(back.nr == p.nr, "a different number of records read back");
	for (i = 0; i < p.nr; i++)
		check(back.recs[i].vpid == p.recs[i].vpid && back.recs[i].nr_pages == p.recs[i].nr_pages &&
			      back.recs[i].img_addr == p.recs[i].img_addr,
		      "a different record read back");
	check(back.skipped_tasks == 0, "records of unknown tasks were written");
	profile_free(&back);
	profile_free(&p);
	unlink(path);
	return 0;
}
