// SPDX-License-Identifier: MIT
/*
 * pagemap-<pid>.img and its pages-<id>.img: entries normalised the way CRIU's reader
 * does (images.md section 6), checked for order, VMA containment (lazy entries in VMAs a
 * lazy restore registers) and agreeing page counts, and given their offsets in the pages
 * file. The pages file is only opened and measured.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crimg_int.h"
#include "pagemap.pb-c.h"

#define PE_ALL (CRIMG_PE_PARENT | CRIMG_PE_LAZY | CRIMG_PE_PRESENT)

/* Turn a decoded entry into a crimg_pme, refusing anything the offsets or ranges could not survive. */
static int normalise(const PagemapEntry *pe, struct crimg_pme *p, bool *field5, struct crimg_file *f,
		     struct crimg_error *err)
{
	uint64_t nr;

	if (!pe->has_vaddr)
		return crimg_file_err(f, f->rec_off, err, -EINVAL, "pagemap_entry has no vaddr");
	if (pe->vaddr & (CRIMG_PAGE_SIZE - 1))
		return crimg_file_err(f, f->rec_off, err, -EINVAL, "vaddr 0x%llx is not page aligned%s",
				      (unsigned long long)pe->vaddr, crimg_page_size_hint());

	/*
	 * 4.2 writes 0 in field 2 beside its count in field 5, and 4.1 reads field 2 alone:
	 * two counts that disagree mean a criu restore of either series places the pages
	 * where we would not, and every later page of the pages file shifts with them.
	 */
	if (pe->has_nr_pages && pe->has_compat_nr_pages && pe->compat_nr_pages && pe->compat_nr_pages != pe->nr_pages)
		return crimg_file_err(f, f->rec_off, err, -EINVAL,
				      "entry at 0x%llx has two page counts that disagree: %u in field 2 (read by "
				      "CRIU 4.1), %llu in field 5 (CRIU 4.2)",
				      (unsigned long long)pe->vaddr, pe->compat_nr_pages,
				      (unsigned long long)pe->nr_pages);
	if (pe->has_nr_pages) {
		nr = pe->nr_pages;
		*field5 = true;
	} else if (pe->has_compat_nr_pages) {
		nr = pe->compat_nr_pages;
	} else {
		return crimg_file_err(f, f->rec_off, err, -EINVAL, "entry at 0x%llx has no page count",
				      (unsigned long long)pe->vaddr);
	}
	if (!nr)
		return crimg_file_err(f, f->rec_off, err, -EINVAL, "entry at 0x%llx has 0 pages",
				      (unsigned long long)pe->vaddr);
	/* The end, vaddr + nr pages, must stay below 2^64 so that no range arithmetic wraps. */
	if (nr > (~pe->vaddr >> CRIMG_PAGE_SHIFT))
		return crimg_file_err(f, f->rec_off, err, -EINVAL,
				      "entry at 0x%llx with %llu pages runs past the end of the address space",
				      (unsigned long long)pe->vaddr, (unsigned long long)nr);

	if (pe->has_in_parent && pe->in_parent)
		p->flags = CRIMG_PE_PARENT;
	else if (!pe->has_flags)
		p->flags = CRIMG_PE_PRESENT;
	else
		p->flags = pe->flags;

	if (p->flags & ~PE_ALL)
		return crimg_file_err(f, f->rec_off, err, -EINVAL, "entry at 0x%llx has unknown flags 0x%x",
				      (unsigned long long)pe->vaddr, p->flags);
	if (!p->flags)
		return crimg_file_err(f, f->rec_off, err, -EINVAL, "entry at 0x%llx has flags 0: no data anywhere",
				      (unsigned long long)pe->vaddr);
	/* The offset walk would count these pages here while the data is in the parent. */
	if ((p->flags & CRIMG_PE_PARENT) && (p->flags & CRIMG_PE_PRESENT))
		return crimg_file_err(f, f->rec_off, err, -EINVAL,
				      "entry at 0x%llx has flags 0x%x: both PE_PARENT and PE_PRESENT",
				      (unsigned long long)pe->vaddr, p->flags);

	p->vaddr = pe->vaddr;
	p->nr_pages = nr;
	return 0;
}

/*
 * Lazy pages in a VMA the restorer does not register with userfaultfd: criu restore
 * --lazy-pages leaves every PE_LAZY page to the daemon, and no daemon can copy into an
 * unregistered VMA, so the task would run on with zeros there. Only a damaged or edited
 * image has them (criu dump applies the same test), and it is refused before any restore.
 */
static int lazy_in_unregistered(const char *dir, const struct crimg_task_img *t, const struct crimg_pme *p,
				const struct crimg_vma *v, struct crimg_file *f, struct crimg_error *err)
{
	char name[32];
	char *mm;
	int ret;

	snprintf(name, sizeof(name), "mm-%d.img", (int)t->pub.pid);
	mm = crimg_path(dir, name);
	if (!mm)
		return crimg_err(err, -ENOMEM, "%s: out of memory", f->path);
	ret = crimg_file_err(
		f, f->rec_off, err, -EINVAL,
		"entry 0x%llx-0x%llx has lazy pages in VMA 0x%llx-0x%llx of %s (flags 0x%x, status "
		"0x%x: %s), which a lazy restore never registers with userfaultfd: they could not be served",
		(unsigned long long)p->vaddr, (unsigned long long)crimg_pme_end(p), (unsigned long long)v->start,
		(unsigned long long)v->end, mm, v->flags, v->status, crimg_vma_not_lazy_why(v->flags, v->status));
	free(mm);
	return ret;
}

/* Every page of P must lie in some VMA (adjacent VMAs may share an entry), a lazy one if P is lazy. */
static int check_in_vmas(const char *dir, const struct crimg_task_img *t, const struct crimg_pme *p,
			 struct crimg_file *f, struct crimg_error *err)
{
	uint64_t at = p->vaddr, end = crimg_pme_end(p);
	size_t i = crimg_vma_lookup(&t->pub, at);

	for (; at < end; i++) {
		if (i >= t->pub.nr_vmas || t->vmas[i].start > at)
			return crimg_file_err(
				f, f->rec_off, err, -EINVAL, "entry 0x%llx-0x%llx: page 0x%llx is outside every VMA",
				(unsigned long long)p->vaddr, (unsigned long long)end, (unsigned long long)at);
		if ((p->flags & CRIMG_PE_LAZY) && !t->vmas[i].lazy)
			return lazy_in_unregistered(dir, t, p, &t->vmas[i], f, err);
		at = t->vmas[i].end;
	}
	return 0;
}

static int add_entry(struct crimg_task_img *t, size_t *cap, const struct crimg_pme *p, size_t off, struct crimg_file *f,
		     struct crimg_error *err)
{
	if (t->pub.nr_pmes == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct crimg_pme *np;
		size_t *no;

		np = realloc(t->pmes, ncap * sizeof(*np));
		if (!np)
			return crimg_err(err, -ENOMEM, "%s: out of memory", f->path);
		t->pmes = np;
		no = realloc(t->pme_off, ncap * sizeof(*no));
		if (!no)
			return crimg_err(err, -ENOMEM, "%s: out of memory", f->path);
		t->pme_off = no;
		*cap = ncap;
	}
	t->pmes[t->pub.nr_pmes] = *p;
	t->pme_off[t->pub.nr_pmes] = off;
	t->pub.nr_pmes++;
	t->pub.pmes = t->pmes;
	return 0;
}

static int read_head(struct crimg_task_img *t, struct crimg_file *f, struct crimg_error *err)
{
	PagemapHead *h;
	int ret;

	ret = crimg_file_next_msg(f, &pagemap_head__descriptor, (ProtobufCMessage **)&h, err);
	if (ret)
		return ret;
	if (!h->has_pages_id)
		ret = crimg_file_err(f, f->rec_off, err, -EINVAL, "pagemap_head has no pages_id");
	else
		t->pub.pages_id = h->pages_id;
	pagemap_head__free_unpacked(h, NULL);
	return ret;
}

int crimg_pagemap_load(const char *dir, struct crimg_task_img *t, bool check_vmas, struct crimg_error *err)
{
	struct crimg_file f;
	const uint8_t *data;
	uint64_t present = 0;
	bool field5 = false;
	size_t len, cap = 0;
	char name[32];
	int ret;

	snprintf(name, sizeof(name), "pagemap-%d.img", (int)t->pub.pid);
	ret = crimg_file_open(&f, dir, name, PAGEMAP_MAGIC, 0, err);
	if (ret)
		return ret;

	ret = read_head(t, &f, err);
	if (ret)
		goto out;

	while ((ret = crimg_file_next(&f, &data, &len, err)) > 0) {
		PagemapEntry *pe = pagemap_entry__unpack(NULL, len, data);
		struct crimg_pme p = {};

		if (!pe) {
			ret = crimg_file_err(&f, f.rec_off, err, -EINVAL, "cannot decode pagemap_entry (%zu bytes)",
					     len);
			goto out;
		}
		ret = normalise(pe, &p, &field5, &f, err);
		pagemap_entry__free_unpacked(pe, NULL);
		if (ret)
			goto out;

		if (t->pub.nr_pmes) {
			const struct crimg_pme *prev = &t->pmes[t->pub.nr_pmes - 1];

			if (p.vaddr < prev->vaddr || p.vaddr < crimg_pme_end(prev)) {
				ret = crimg_file_err(
					&f, f.rec_off, err, -EINVAL,
					"entry 0x%llx-0x%llx %s the previous entry 0x%llx-0x%llx",
					(unsigned long long)p.vaddr, (unsigned long long)crimg_pme_end(&p),
					p.vaddr < prev->vaddr ? "is unsorted: it starts before" : "overlaps",
					(unsigned long long)prev->vaddr, (unsigned long long)crimg_pme_end(prev));
				goto out;
			}
		}
		if (check_vmas) {
			ret = check_in_vmas(dir, t, &p, &f, err);
			if (ret)
				goto out;
		}
		/* Sorted, disjoint ranges below 2^64 cannot sum past 2^52 pages: no overflow. */
		if (p.flags & CRIMG_PE_PRESENT) {
			p.pages_off = present << CRIMG_PAGE_SHIFT;
			present += p.nr_pages;
		}
		ret = add_entry(t, &cap, &p, f.rec_off, &f, err);
		if (ret)
			goto out;
	}
	if (ret < 0)
		goto out;

	t->nr_present = present;
	t->pub.encoding = field5 ? CRIMG_PAGEMAP_42 : CRIMG_PAGEMAP_41;
	t->pagemap_path = f.path;
	f.path = NULL;
	ret = 0;
out:
	crimg_file_close(&f);
	return ret;
}

/*
 * The page size, other than ours, at which @nr pages fill exactly @size bytes; 0 if
 * none. CRIU writes a pages file of exactly its present pages: a file that fits another
 * page size exactly was written on a system with that one.
 */
static uint64_t other_page_size(uint64_t nr, uint64_t size)
{
	uint64_t ps;

	if (!nr || size % nr)
		return 0;
	ps = size / nr;
	if (ps == CRIMG_PAGE_SIZE || ps < 4096 || ps > (1ULL << 20) || (ps & (ps - 1)))
		return 0;
	return ps;
}

int crimg_pages_open(const char *dir, struct crimg_task_img *t, struct crimg_error *err)
{
	uint64_t need = t->nr_present << CRIMG_PAGE_SHIFT, other;
	char name[32];
	struct stat st;
	int fd;

	snprintf(name, sizeof(name), "pages-%u.img", t->pub.pages_id);
	t->pages_path = crimg_path(dir, name);
	if (!t->pages_path)
		return crimg_err(err, -ENOMEM, "%s/%s: out of memory", dir, name);

	fd = open(t->pages_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		/* CRIU reads a missing image as empty, which is right when nothing is stored. */
		if (errno == ENOENT && !t->nr_present)
			return 0;
		return crimg_err(err, -errno, "%s: cannot open: %s (%s has %llu present pages)", t->pages_path,
				 strerror(errno), t->pagemap_path, (unsigned long long)t->nr_present);
	}
	t->pages_fd = fd;
	if (fstat(fd, &st))
		return crimg_err(err, -errno, "%s: cannot stat: %s", t->pages_path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return crimg_err(err, -EINVAL, "%s: not a regular file", t->pages_path);
	other = other_page_size(t->nr_present, st.st_size);
	if ((uint64_t)st.st_size != need && other)
		return crimg_err(err, -EINVAL,
				 "%s: %lld bytes are %s's %llu present pages of %llu bytes: the images were written "
				 "with %llu-byte pages, this system's page size is %llu",
				 t->pages_path, (long long)st.st_size, t->pagemap_path,
				 (unsigned long long)t->nr_present, (unsigned long long)other,
				 (unsigned long long)other, (unsigned long long)CRIMG_PAGE_SIZE);
	if ((uint64_t)st.st_size < need)
		return crimg_err(err, -EINVAL, "%s: offset %lld: file ends, but %s has %llu present pages (%llu bytes)",
				 t->pages_path, (long long)st.st_size, t->pagemap_path,
				 (unsigned long long)t->nr_present, (unsigned long long)need);
	return 0;
}
