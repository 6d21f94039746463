// SPDX-License-Identifier: MIT
/*
 * Access profiles (profile.h): what a restore's faults asked for, in order, so that the
 * next restore of the same dump can copy it before the program asks again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pagesize.h"
#include "profile.h"

static uint64_t get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	int i;

	for (i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	int i;

	for (i = 0; i < bytes; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

/* FNV-1a over the words: stable across runs and machines, enough to tell dumps apart. */
static uint64_t fnv(uint64_t h, uint64_t word)
{
	int i;

	for (i = 0; i < 8; i++, word >>= 8) {
		h ^= word & 0xff;
		h *= 0x100000001b3ULL;
	}
	return h;
}

uint64_t profile_fingerprint(const struct crimg *img)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i, j;

	for (i = 0; i < crimg_nr_tasks(img); i++) {
		const struct crimg_task *t = crimg_task(img, i);

		h = fnv(h, (uint64_t)t->pid);
		for (j = 0; j < t->nr_pmes; j++) {
			if (!(t->pmes[j].flags & CRIMG_PE_LAZY))
				continue;
			h = fnv(h, t->pmes[j].vaddr);
			h = fnv(h, t->pmes[j].nr_pages);
		}
	}
	return h;
}

int profile_add(struct profile *p, pid_t vpid, uint64_t img_addr, uint32_t nr_pages)
{
	struct profile_rec *last = p->nr ? &p->recs[p->nr - 1] : NULL;

	if (last && last->vpid == vpid && last->img_addr + ((uint64_t)last->nr_pages << PAGE_SHIFT) == img_addr &&
	    last->nr_pages + (uint64_t)nr_pages <= PROFILE_MAX_RUN) {
		last->nr_pages += nr_pages;
		return 0;
	}
	if (p->nr >= PROFILE_MAX_RECORDS)
		return -E2BIG;
	if (p->nr == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 256;
		struct profile_rec *n = realloc(p->recs, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->recs = n;
		p->cap = cap;
	}
	p->recs[p->nr++] = (struct profile_rec){ .vpid = vpid, .nr_pages = nr_pages, .img_addr = img_addr };
	return 0;
}

void profile_free(struct profile *p)
{
	free(p->recs);
	memset(p, 0, sizeof(*p));
}

#define fail_at(err, name, off, ...)                                                                                \
	do {                                                                                                        \
		int _n = snprintf((err)->msg, sizeof((err)->msg), "profile %s, offset %zu: ", name, (size_t)(off)); \
		if (_n > 0 && (size_t)_n < sizeof((err)->msg))                                                      \
			snprintf((err)->msg + _n, sizeof((err)->msg) - _n, __VA_ARGS__);                            \
	} while (0)

int profile_parse(const void *buf, size_t len, const char *name, uint64_t fp, const struct crimg *img,
		  struct profile *out, struct profile_error *err)
{
	const uint8_t *b = buf;
	uint64_t nr, i, file_fp, page_size = PROFILE_PAGE_SIZE_V1;
	uint32_t version, rec_size;
	size_t hdr = PROFILE_HDR_SIZE_V1;
	int ret;

	memset(out, 0, sizeof(*out));
	if (len < PROFILE_HDR_SIZE_V1) {
		fail_at(err, name, len, "truncated header (%zu of %d bytes)", len, PROFILE_HDR_SIZE_V1);
		return -EINVAL;
	}
	if (memcmp(b, PROFILE_MAGIC, 8)) {
		fail_at(err, name, 0, "not a lazy-uffd profile (bad magic)");
		return -EINVAL;
	}
	version = (uint32_t)get_le(b + 8, 4);
	if (version != 1 && version != PROFILE_VERSION) {
		fail_at(err, name, 8, "version %u, this daemon reads versions 1 and %d", version, PROFILE_VERSION);
		return -EINVAL;
	}
	rec_size = (uint32_t)get_le(b + 12, 4);
	if (rec_size != PROFILE_REC_SIZE) {
		fail_at(err, name, 12, "record size %u, expected %d", rec_size, PROFILE_REC_SIZE);
		return -EINVAL;
	}
	if (version >= 2) {
		hdr = PROFILE_HDR_SIZE;
		if (len < hdr) {
			fail_at(err, name, len, "truncated header (%zu of %zu bytes)", len, hdr);
			return -EINVAL;
		}
		page_size = get_le(b + 32, 4);
		if (get_le(b + 36, 4)) {
			fail_at(err, name, 36, "reserved field is not 0");
			return -EINVAL;
		}
	}
	/* Its counts and alignment mean other addresses at another page size. */
	if (page_size != PAGE_SZ) {
		fail_at(err, name, version >= 2 ? 32 : 8,
			"recorded with %llu-byte pages%s, this system's page size is %llu: record the profile again "
			"here",
			(unsigned long long)page_size, version >= 2 ? "" : " (version 1)", (unsigned long long)PAGE_SZ);
		return -EINVAL;
	}
	file_fp = get_le(b + 16, 8);
	if (file_fp != fp) {
		fail_at(err, name, 16, "recorded on other images (fingerprint %016llx, these are %016llx)",
			(unsigned long long)file_fp, (unsigned long long)fp);
		return -EINVAL;
	}
	nr = get_le(b + 24, 8);
	if (nr > PROFILE_MAX_RECORDS) {
		fail_at(err, name, 24, "%llu records, more than the limit %u", (unsigned long long)nr,
			PROFILE_MAX_RECORDS);
		return -EINVAL;
	}
	if (len != hdr + nr * PROFILE_REC_SIZE) {
		fail_at(err, name, len < hdr + nr * PROFILE_REC_SIZE ? len : hdr + nr * PROFILE_REC_SIZE,
			"%llu records need %llu bytes, the file has %zu", (unsigned long long)nr,
			(unsigned long long)(hdr + nr * PROFILE_REC_SIZE), len);
		return -EINVAL;
	}
	for (i = 0; i < nr; i++) {
		const uint8_t *r = b + hdr + i * PROFILE_REC_SIZE;
		uint64_t vpid = get_le(r, 4), n = get_le(r + 4, 4), addr = get_le(r + 8, 8);
		size_t off = r - b;

		if (!vpid || vpid > INT32_MAX) {
			fail_at(err, name, off, "record %llu: bad pid %llu", (unsigned long long)i,
				(unsigned long long)vpid);
			goto bad;
		}
		if (!n || n > PROFILE_MAX_RUN) {
			fail_at(err, name, off + 4, "record %llu: %llu pages (1 to %u)", (unsigned long long)i,
				(unsigned long long)n, PROFILE_MAX_RUN);
			goto bad;
		}
		if (addr & (PAGE_SZ - 1) || addr + (n << PAGE_SHIFT) < addr) {
			fail_at(err, name, off + 8, "record %llu: bad address 0x%llx", (unsigned long long)i,
				(unsigned long long)addr);
			goto bad;
		}
		if (img && !crimg_find_task(img, (pid_t)vpid)) {
			out->skipped_tasks++;
			continue;
		}
		ret = profile_add(out, (pid_t)vpid, addr, (uint32_t)n);
		if (ret) {
			fail_at(err, name, off, "%s", strerror(-ret));
			profile_free(out);
			return ret;
		}
	}
	return 0;
bad:
	profile_free(out);
	return -EINVAL;
}

int profile_load(const char *path, uint64_t fp, const struct crimg *img, struct profile *out, struct profile_error *err)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err->msg, sizeof(err->msg), "profile %s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		snprintf(err->msg, sizeof(err->msg), "profile %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > PROFILE_HDR_SIZE + (uint64_t)PROFILE_MAX_RECORDS * PROFILE_REC_SIZE) {
		ret = -EINVAL;
		snprintf(err->msg, sizeof(err->msg), "profile %s: not a regular file of at most %llu bytes", path,
			 (unsigned long long)(PROFILE_HDR_SIZE + (uint64_t)PROFILE_MAX_RECORDS * PROFILE_REC_SIZE));
		goto out;
	}
	buf = malloc(st.st_size ? st.st_size : 1);
	if (!buf) {
		ret = -ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "profile %s: out of memory", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n ? -errno : -EIO;
			snprintf(err->msg, sizeof(err->msg), "profile %s, offset %zu: %s", path, got,
				 n ? strerror(errno) : "file shrank while read");
			goto out;
		}
		got += n;
	}
	ret = profile_parse(buf, got, path, fp, img, out, err);
out:
	free(buf);
	close(fd);
	return ret;
}

int profile_write(const struct profile *p, const char *path, uint64_t fp, struct profile_error *err)
{
	uint8_t hdr[PROFILE_HDR_SIZE] = { 0 }, rec[PROFILE_REC_SIZE];
	char *tmp = NULL;
	FILE *f = NULL;
	size_t i;
	int ret = -EIO;

	if (asprintf(&tmp, "%s.tmp", path) < 0) {
		snprintf(err->msg, sizeof(err->msg), "profile %s: out of memory", path);
		return -ENOMEM;
	}
	f = fopen(tmp, "we");
	if (!f)
		goto sys_err;
	memcpy(hdr, PROFILE_MAGIC, 8);
	put_le(hdr + 8, PROFILE_VERSION, 4);
	put_le(hdr + 12, PROFILE_REC_SIZE, 4);
	put_le(hdr + 16, fp, 8);
	put_le(hdr + 24, p->nr, 8);
	put_le(hdr + 32, PAGE_SZ, 4);
	if (fwrite(hdr, sizeof(hdr), 1, f) != 1)
		goto sys_err;
	for (i = 0; i < p->nr; i++) {
		put_le(rec, (uint32_t)p->recs[i].vpid, 4);
		put_le(rec + 4, p->recs[i].nr_pages, 4);
		put_le(rec + 8, p->recs[i].img_addr, 8);
		if (fwrite(rec, sizeof(rec), 1, f) != 1)
			goto sys_err;
	}
	ret = fclose(f);
	f = NULL;
	if (ret)
		goto sys_err;
	if (rename(tmp, path))
		goto sys_err;
	free(tmp);
	return 0;
sys_err:
	ret = errno ? -errno : -EIO;
	snprintf(err->msg, sizeof(err->msg), "profile %s: %s", path, strerror(-ret));
	if (f)
		fclose(f);
	unlink(tmp);
	free(tmp);
	return ret;
}
