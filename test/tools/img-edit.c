// SPDX-License-Identifier: MIT
/*
 * img-edit: damage a real dump in one precise way, for the tests that check the daemon
 * refuses images no lazy restore can serve right. DIR is the image directory, PID the
 * task (pagemap-PID.img, mm-PID.img). Each edit rewrites one file in place.
 *
 *   img-edit vma-flags DIR PID MASK
 *       OR MASK (hex or decimal MAP_* bits: 0x2000 MAP_LOCKED) into the flags of the VMA
 *       holding the most PE_LAZY pages; prints
 *       "vma 0xSTART-0xEND flags 0xOLD -> 0xNEW, N lazy pages"
 *   img-edit count-mismatch DIR PID
 *       give the first PE_LAZY entry with a count N >= 2 in one field alone (field 2,
 *       CRIU 4.1; field 5 beside a 0 in field 2, 4.2) N - 1 in the other, as a writer
 *       that disagrees with itself would; prints
 *       "entry at offset OFF vaddr 0xVADDR field 2 F2 field 5 F5"
 *       (OFF: the record's length header, which error messages quote)
 *
 * Exit status: 0, 1 on an error, 2 on bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm.pb-c.h"
#include "pagemap.pb-c.h"

#define PE_LAZY	 2U
#define HDR_SIZE 8 /* common magic, type magic */
#define MAX_RECS (1U << 20)

struct rec {
	size_t off; /* of its length header */
	uint8_t *data;
	uint32_t len;
};

struct img {
	char path[4096];
	uint8_t hdr[HDR_SIZE];
	struct rec *recs;
	size_t nr;
	uint8_t *buf;
};

static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("img-edit: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static int img_read(struct img *im, const char *dir, const char *name)
{
	size_t size, pos;
	FILE *f;
	long l;

	snprintf(im->path, sizeof(im->path), "%s/%s", dir, name);
	f = fopen(im->path, "rb");
	if (!f)
		return fail("%s: %s", im->path, strerror(errno));
	if (fseek(f, 0, SEEK_END) || (l = ftell(f)) < HDR_SIZE || fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return fail("%s: cannot size it, or shorter than its header", im->path);
	}
	size = l;
	im->buf = malloc(size);
	im->recs = calloc(MAX_RECS, sizeof(*im->recs));
	if (!im->buf || !im->recs || fread(im->buf, 1, size, f) != size) {
		fclose(f);
		return fail("%s: cannot read it", im->path);
	}
	fclose(f);
	memcpy(im->hdr, im->buf, HDR_SIZE);
	for (pos = HDR_SIZE; pos < size; im->nr++) {
		uint32_t len;

		if (size - pos < 4 || im->nr == MAX_RECS)
			return fail("%s: offset %zu: bad framing", im->path, pos);
		memcpy(&len, im->buf + pos, 4);
		if (len > size - pos - 4)
			return fail("%s: offset %zu: record runs past the end", im->path, pos);
		im->recs[im->nr] = (struct rec){.off = pos, .data = im->buf + pos + 4, .len = len};
		pos += 4 + len;
	}
	return 0;
}

/* Write the file again, record I replaced by MSG. */
static int img_write(const struct img *im, size_t i, const ProtobufCMessage *msg)
{
	size_t k, len = protobuf_c_message_get_packed_size(msg);
	uint8_t *out = malloc(len ? len : 1);
	FILE *f;

	if (!out)
		return fail("out of memory");
	protobuf_c_message_pack(msg, out);
	f = fopen(im->path, "wb");
	if (!f) {
		free(out);
		return fail("%s: %s", im->path, strerror(errno));
	}
	fwrite(im->hdr, 1, HDR_SIZE, f);
	for (k = 0; k < im->nr; k++) {
		uint32_t l = k == i ? (uint32_t)len : im->recs[k].len;

		fwrite(&l, 4, 1, f);
		fwrite(k == i ? out : im->recs[k].data, 1, l, f);
	}
	free(out);
	if (ferror(f) | fclose(f))
		return fail("%s: cannot write it", im->path);
	return 0;
}

static uint64_t entry_count(const PagemapEntry *pe)
{
	return pe->has_nr_pages ? pe->nr_pages : pe->compat_nr_pages;
}

static uint32_t entry_flags(const PagemapEntry *pe)
{
	if (pe->has_in_parent && pe->in_parent)
		return 1;
	return pe->has_flags ? pe->flags : 4;
}

/* PE_LAZY pages of the pagemap inside [start, end). */
static int lazy_pages_in(const struct img *pm, uint64_t start, uint64_t end, uint64_t *n)
{
	size_t i;

	*n = 0;
	for (i = 1; i < pm->nr; i++) {
		PagemapEntry *pe = pagemap_entry__unpack(NULL, pm->recs[i].len, pm->recs[i].data);
		uint64_t a, b;

		if (!pe)
			return fail("%s: offset %zu: cannot decode", pm->path, pm->recs[i].off);
		a = pe->vaddr;
		b = a + entry_count(pe) * 4096;
		if (entry_flags(pe) & PE_LAZY) {
			a = a > start ? a : start;
			b = b < end ? b : end;
			if (a < b)
				*n += (b - a) / 4096;
		}
		pagemap_entry__free_unpacked(pe, NULL);
	}
	return 0;
}

static int vma_flags(const char *dir, const char *pid, uint32_t mask)
{
	struct img mm = {}, pm = {};
	char name[64];
	uint64_t best_n = 0, n;
	size_t i, best = 0;
	MmEntry *e;
	uint32_t old;

	snprintf(name, sizeof(name), "mm-%s.img", pid);
	if (img_read(&mm, dir, name))
		return 1;
	snprintf(name, sizeof(name), "pagemap-%s.img", pid);
	if (img_read(&pm, dir, name))
		return 1;
	if (mm.nr != 1)
		return fail("%s: %zu records, not one", mm.path, mm.nr);
	e = mm_entry__unpack(NULL, mm.recs[0].len, mm.recs[0].data);
	if (!e)
		return fail("%s: cannot decode", mm.path);
	for (i = 0; i < e->n_vmas; i++) {
		if (lazy_pages_in(&pm, e->vmas[i]->start, e->vmas[i]->end, &n))
			return 1;
		if (n > best_n) {
			best_n = n;
			best = i;
		}
	}
	if (!best_n)
		return fail("%s: no VMA holds a PE_LAZY page", mm.path);
	old = e->vmas[best]->flags;
	e->vmas[best]->flags |= mask;
	printf("vma 0x%" PRIx64 "-0x%" PRIx64 " flags 0x%x -> 0x%x, %" PRIu64 " lazy pages\n", e->vmas[best]->start,
	       e->vmas[best]->end, old, e->vmas[best]->flags, best_n);
	return img_write(&mm, 0, &e->base);
}

static int count_mismatch(const char *dir, const char *pid)
{
	struct img pm = {};
	char name[64];
	size_t i;

	snprintf(name, sizeof(name), "pagemap-%s.img", pid);
	if (img_read(&pm, dir, name))
		return 1;
	for (i = 1; i < pm.nr; i++) {
		PagemapEntry *pe = pagemap_entry__unpack(NULL, pm.recs[i].len, pm.recs[i].data);
		int ret;

		if (!pe)
			return fail("%s: offset %zu: cannot decode", pm.path, pm.recs[i].off);
		if (!(entry_flags(pe) & PE_LAZY)) {
			pagemap_entry__free_unpacked(pe, NULL);
			continue;
		}
		if (!pe->has_nr_pages && pe->compat_nr_pages >= 2) {
			/* CRIU 4.1: the count in field 2 alone; field 5 gets one less. */
			pe->has_nr_pages = true;
			pe->nr_pages = pe->compat_nr_pages - 1;
		} else if (pe->has_nr_pages && pe->nr_pages >= 2 && !pe->compat_nr_pages) {
			/* CRIU 4.2: 0 in field 2 beside the count in field 5; field 2 gets one less. */
			pe->has_compat_nr_pages = true;
			pe->compat_nr_pages = (uint32_t)pe->nr_pages - 1;
		} else {
			pagemap_entry__free_unpacked(pe, NULL);
			continue;
		}
		printf("entry at offset %zu vaddr 0x%" PRIx64 " field 2 %u field 5 %" PRIu64 "\n", pm.recs[i].off,
		       pe->vaddr, pe->compat_nr_pages, pe->nr_pages);
		ret = img_write(&pm, i, &pe->base);
		pagemap_entry__free_unpacked(pe, NULL);
		return ret;
	}
	return fail("%s: no PE_LAZY entry of 2 pages or more with its count in one field alone", pm.path);
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "vma-flags"))
		return vma_flags(argv[2], argv[3], (uint32_t)strtoul(argv[4], NULL, 0));
	if (argc == 4 && !strcmp(argv[1], "count-mismatch"))
		return count_mismatch(argv[2], argv[3]);
	fprintf(stderr, "usage: img-edit vma-flags DIR PID MASK\n"
			"       img-edit count-mismatch DIR PID\n");
	return 2;
}
