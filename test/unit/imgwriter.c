// SPDX-License-Identifier: MIT
/* Test-only CRIU image writer and the scenarios built with it (see imgwriter.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imgwriter.h"
#include "core.pb-c.h"
#include "inventory.pb-c.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"

#define COMMON_MAGIC	0x54564319U
#define INVENTORY_MAGIC 0x58313116U
#define PSTREE_MAGIC	0x50273030U
#define CORE_MAGIC	0x55053847U
#define MM_MAGIC	0x57492820U
#define PAGEMAP_MAGIC	0x56084025U

#define PE_PARENT	1
#define PE_LAZY		2
#define PE_PRESENT	4

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

struct wfile {
	FILE *f;
	char path[PATH_MAX];
};

static int fail(const char *what, const char *path)
{
	fprintf(stderr, "imgwriter: %s %s: %s\n", what, path, strerror(errno));
	return -1;
}

/* DIR/NAME into OUT (PATH_MAX bytes); scenario paths are short, so overflow is a bug. */
static char *pjoin(char *out, const char *dir, const char *name)
{
	if ((size_t)snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
		fprintf(stderr, "imgwriter: path too long: %s/%s\n", dir, name);
		abort();
	}
	return out;
}

static int w_open(struct wfile *w, const char *dir, const char *name, uint32_t magic, enum tw_encoding enc)
{
	pjoin(w->path, dir, name);
	w->f = fopen(w->path, "wb");
	if (!w->f)
		return fail("cannot create", w->path);
	/* inventory.img never has the common prefix; version 1 images had none at all. */
	if (magic != INVENTORY_MAGIC && enc != TW_V1) {
		uint32_t c = COMMON_MAGIC;

		fwrite(&c, 4, 1, w->f);
	}
	fwrite(&magic, 4, 1, w->f);
	return 0;
}

static void w_raw(struct wfile *w, const void *pre, size_t pre_len, const ProtobufCMessage *m)
{
	size_t len = m ? protobuf_c_message_get_packed_size(m) : 0;
	uint8_t *buf = malloc(pre_len + len + 1);
	uint32_t n = pre_len + len;

	if (pre_len)
		memcpy(buf, pre, pre_len);
	if (m)
		protobuf_c_message_pack(m, buf + pre_len);
	fwrite(&n, 4, 1, w->f);
	fwrite(buf, 1, n, w->f);
	free(buf);
}

static void w_rec(struct wfile *w, const ProtobufCMessage *m)
{
	w_raw(w, NULL, 0, m);
}

static int w_close(struct wfile *w)
{
	if (ferror(w->f) | fclose(w->f))
		return fail("cannot write", w->path);
	return 0;
}

static int write_inventory(const char *dir, enum tw_encoding enc)
{
	InventoryEntry ie = INVENTORY_ENTRY__INIT;
	struct wfile w;

	if (w_open(&w, dir, "inventory.img", INVENTORY_MAGIC, enc))
		return -1;
	ie.has_img_version = true;
	ie.img_version = enc == TW_V1 ? 1 : 2;
	ie.has_fdinfo_per_id = true;
	ie.fdinfo_per_id = true;
	w_rec(&w, &ie.base);
	return w_close(&w);
}

static int write_pstree(const char *dir, const struct tw_task *tasks, size_t n, enum tw_encoding enc)
{
	struct wfile w;
	size_t i;

	if (w_open(&w, dir, "pstree.img", PSTREE_MAGIC, enc))
		return -1;
	for (i = 0; i < n; i++) {
		PstreeEntry pe = PSTREE_ENTRY__INIT;
		uint32_t threads[4];

		memcpy(threads, tasks[i].threads, sizeof(threads));
		pe.has_pid = pe.has_ppid = pe.has_pgid = pe.has_sid = true;
		pe.pid = tasks[i].pid;
		pe.ppid = tasks[i].ppid;
		pe.pgid = tasks[i].ppid ? tasks[i].ppid : tasks[i].pid;
		pe.sid = pe.pgid;
		pe.n_threads = tasks[i].nr_threads;
		pe.threads = threads;
		w_rec(&w, &pe.base);
	}
	return w_close(&w);
}

static int write_core(const char *dir, const struct tw_task *t, enum tw_encoding enc)
{
	/* mtype = X86_64, a field the reader does not declare: it must be skipped. */
	static const uint8_t mtype[] = {0x08, 0x01};
	CoreEntry ce = CORE_ENTRY__INIT;
	TaskCoreEntry tc = TASK_CORE_ENTRY__INIT;
	struct wfile w;
	char name[64];

	snprintf(name, sizeof(name), "core-%u.img", t->pid);
	if (w_open(&w, dir, name, CORE_MAGIC, enc))
		return -1;
	tc.has_task_state = true;
	tc.task_state = t->zombie ? 2 : 1;
	ce.tc = &tc;
	w_raw(&w, mtype, sizeof(mtype), &ce.base);
	return w_close(&w);
}

static int write_mm(const char *dir, const struct tw_task *t, enum tw_encoding enc)
{
	/* mm_start_code = 0x400000, undeclared in our mm_entry. */
	static const uint8_t start_code[] = {0x08, 0x80, 0x80, 0x80, 0x02};
	MmEntry mm = MM_ENTRY__INIT;
	VmaEntry ve[16], *vp[16];
	struct wfile w;
	char name[64];
	size_t i;

	if (t->nr_vmas > ARRAY_SIZE(ve))
		return -1;
	snprintf(name, sizeof(name), "mm-%u.img", t->pid);
	if (w_open(&w, dir, name, MM_MAGIC, enc))
		return -1;
	for (i = 0; i < t->nr_vmas; i++) {
		const struct tw_vma *v = &t->vmas[i];

		vma_entry__init(&ve[i]);
		ve[i].has_start = ve[i].has_end = ve[i].has_pgoff = ve[i].has_shmid = true;
		ve[i].has_prot = ve[i].has_flags = ve[i].has_status = ve[i].has_fd = true;
		ve[i].start = v->start;
		ve[i].end = v->end;
		ve[i].prot = v->prot;
		ve[i].flags = v->flags;
		ve[i].status = v->status;
		ve[i].fd = -1;
		vp[i] = &ve[i];
	}
	mm.n_vmas = t->nr_vmas;
	mm.vmas = vp;
	w_raw(&w, start_code, sizeof(start_code), &mm.base);
	return w_close(&w);
}

bool tw_sparse_pages;
uint64_t tw_page_size = 4096;
uint64_t tw_field5_vaddr, tw_field5_nr;

static int write_pages(const char *dir, uint32_t pages_id, const struct tw_pme *pmes, size_t n)
{
	static char page[1 << 20];
	char path[PATH_MAX], name[64];
	size_t i;
	uint64_t j;
	FILE *f;

	if (tw_page_size > sizeof(page))
		return fail("page size too large for", dir);
	snprintf(name, sizeof(name), "pages-%u.img", pages_id);
	pjoin(path, dir, name);
	f = fopen(path, "wb");
	if (!f)
		return fail("cannot create", path);
	memset(page, 0xa5, tw_page_size);
	for (i = 0; i < n; i++) {
		int fl = pmes[i].flags;

		if (fl == TW_INPARENT || (fl != TW_NOFLAGS && !(fl & PE_PRESENT)))
			continue;
		if (tw_sparse_pages) {
			if (fseek(f, pmes[i].nr * tw_page_size, SEEK_CUR))
				return fail("cannot seek in", path);
			continue;
		}
		for (j = 0; j < pmes[i].nr; j++) {
			uint64_t va = pmes[i].vaddr + j * tw_page_size;

			memcpy(page, &va, 8);
			memcpy(page + 8, &pages_id, 4);
			fwrite(page, 1, tw_page_size, f);
		}
	}
	/* A seek alone does not extend the file. */
	if (tw_sparse_pages && ftruncate(fileno(f), ftell(f)))
		return fail("cannot extend", path);
	if (ferror(f) | fclose(f))
		return fail("cannot write", path);
	return 0;
}

static int write_pagemap(const char *dir, const struct tw_task *t, enum tw_encoding enc)
{
	PagemapHead h = PAGEMAP_HEAD__INIT;
	struct wfile w;
	char name[64];
	size_t i;

	snprintf(name, sizeof(name), "pagemap-%u.img", t->pid);
	if (w_open(&w, dir, name, PAGEMAP_MAGIC, enc))
		return -1;
	h.has_pages_id = true;
	h.pages_id = t->pages_id;
	w_rec(&w, &h.base);
	for (i = 0; i < t->nr_pmes; i++) {
		const struct tw_pme *p = &t->pmes[i];
		PagemapEntry pe = PAGEMAP_ENTRY__INIT;

		pe.has_vaddr = true;
		pe.vaddr = p->vaddr;
		pe.has_compat_nr_pages = true;
		if (enc == TW_42) {
			pe.compat_nr_pages = 0;
			pe.has_nr_pages = true;
			pe.nr_pages = p->nr;
		} else {
			pe.compat_nr_pages = p->nr;
			if (tw_field5_nr && p->vaddr == tw_field5_vaddr) {
				pe.has_nr_pages = true;
				pe.nr_pages = tw_field5_nr;
			}
		}
		if (p->flags == TW_INPARENT) {
			pe.has_in_parent = true;
			pe.in_parent = true;
		} else if (p->flags != TW_NOFLAGS) {
			pe.has_flags = true;
			pe.flags = p->flags;
		}
		w_rec(&w, &pe.base);
	}
	if (w_close(&w))
		return -1;
	return write_pages(dir, t->pages_id, t->pmes, t->nr_pmes);
}

static int mkdir_p(const char *dir)
{
	if (mkdir(dir, 0755) && errno != EEXIST)
		return fail("cannot create", dir);
	return 0;
}

int tw_dump(const char *dir, const struct tw_task *tasks, size_t n, enum tw_encoding enc)
{
	size_t i;

	if (mkdir_p(dir) || write_inventory(dir, enc) || write_pstree(dir, tasks, n, enc))
		return -1;
	for (i = 0; i < n; i++) {
		if (write_core(dir, &tasks[i], enc))
			return -1;
		if (tasks[i].zombie)
			continue;
		if (write_mm(dir, &tasks[i], enc) || write_pagemap(dir, &tasks[i], enc))
			return -1;
	}
	return 0;
}

int tw_predump(const char *dir, const struct tw_task *tasks, size_t n, enum tw_encoding enc)
{
	size_t i;

	if (mkdir_p(dir) || write_inventory(dir, enc))
		return -1;
	for (i = 0; i < n; i++)
		if (write_pagemap(dir, &tasks[i], enc))
			return -1;
	return 0;
}

int tw_truncate(const char *dir, const char *name, long long size)
{
	char path[PATH_MAX];

	pjoin(path, dir, name);
	if (truncate(path, size))
		return fail("cannot truncate", path);
	return 0;
}

int tw_poke(const char *dir, const char *name, long long off, const void *bytes, size_t len)
{
	char path[PATH_MAX];
	int fd, ret = 0;

	pjoin(path, dir, name);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return fail("cannot open", path);
	if (pwrite(fd, bytes, len, off) != (ssize_t)len)
		ret = fail("cannot write", path);
	close(fd);
	return ret;
}

int tw_poke_u32(const char *dir, const char *name, long long off, uint32_t v)
{
	return tw_poke(dir, name, off, &v, sizeof(v));
}

int tw_unlink(const char *dir, const char *name)
{
	char path[PATH_MAX];

	pjoin(path, dir, name);
	if (unlink(path))
		return fail("cannot remove", path);
	return 0;
}

int tw_symlink(const char *target, const char *dir, const char *name)
{
	char path[PATH_MAX];

	pjoin(path, dir, name);
	if (symlink(target, path))
		return fail("cannot symlink", path);
	return 0;
}

/* good41 / good42: two tasks, every kind of VMA and entry. */
#define RW  3 /* PROT_READ | PROT_WRITE */
#define R_X 5
#define R   1

static const struct tw_vma good_vmas1[] = {
	{0x400000, 0x402000, R_X, 0x2, 0x41},		     /* file private text: eager */
	{0x600000, 0x604000, RW, 0x22, 0x221},		     /* heap: lazy */
	{0x604000, 0x606000, RW, 0x22, 0x201},		     /* anon, adjacent: lazy */
	{0x7ffd0000, 0x7ffd4000, RW, 0x122, 0x201},	     /* stack: lazy */
	{0x7ffd8000, 0x7ffd9000, R, 0x22, 0x1201},	     /* vvar: eager */
	{0x7ffd9000, 0x7ffdb000, R_X, 0x22, 0x209},	     /* vdso: eager */
	{0x7f0000000000, 0x7f0000002000, RW, 0x21, 0x101},   /* shared anon: eager */
	{0x7f0000010000, 0x7f0000011000, RW, 0x2022, 0x201}, /* locked: eager */
	{0x7ffd0000, 0x7ffd1000, 0, 0x22, 1U << 16},	     /* 4.2 GUARD: dropped */
};

static const struct tw_pme good_pmes1[] = {
	{0x400000, 2, PE_PRESENT},	     {0x600000, 2, PE_PRESENT | PE_LAZY},
	{0x603000, 2, PE_PRESENT | PE_LAZY}, /* straddles two VMAs */
	{0x7ffd0000, 2, TW_NOFLAGS},	     {0x7ffd2000, 1, PE_LAZY},
	{0x7ffd8000, 1, PE_PRESENT},	     {0x7ffd9000, 2, PE_PRESENT},
};

static const struct tw_vma good_vmas5[] = {
	{0x10000, 0x12000, RW, 0x22, 0x201},
};

static const struct tw_pme good_pmes5[] = {
	{0x10000, 1, PE_PRESENT | PE_LAZY},
};

static int make_good(const char *dir, enum tw_encoding enc)
{
	struct tw_task t[] = {
		{.pid = 1,
		 .ppid = 0,
		 .threads = {1, 3},
		 .nr_threads = 2,
		 .pages_id = 3,
		 .vmas = good_vmas1,
		 .nr_vmas = ARRAY_SIZE(good_vmas1) - (enc == TW_42 ? 0 : 1),
		 .pmes = good_pmes1,
		 .nr_pmes = ARRAY_SIZE(good_pmes1)},
		{.pid = 5,
		 .ppid = 1,
		 .threads = {5},
		 .nr_threads = 1,
		 .pages_id = 4,
		 .vmas = good_vmas5,
		 .nr_vmas = 1,
		 .pmes = good_pmes5,
		 .nr_pmes = 1},
	};

	return tw_dump(dir, t, ARRAY_SIZE(t), enc);
}

static int make_good41(const char *dir)
{
	return make_good(dir, TW_41);
}

static int make_good42(const char *dir)
{
	/* pstree record of pid 1 with its threads packed, as a proto3-minded writer would. */
	static const uint8_t packed[] = {0x08, 0x01, 0x10, 0x00, 0x18, 0x01, 0x20, 0x01, 0x2a, 0x02, 0x01, 0x03};
	char path[PATH_MAX];
	uint32_t len = sizeof(packed);
	FILE *f;

	if (make_good(dir, TW_42))
		return -1;
	/* Rewrite pstree.img: pid 1 packed, pid 5 as the packer wrote it (offset 8 + 4 + 8). */
	pjoin(path, dir, "pstree.img");
	f = fopen(path, "r+b");
	if (!f)
		return fail("cannot open", path);
	/* The packer's record for pid 1 with threads {1, 3} unpacked is 12 bytes too. */
	fseek(f, 8, SEEK_SET);
	fwrite(&len, 4, 1, f);
	fwrite(packed, 1, sizeof(packed), f);
	if (ferror(f) | fclose(f))
		return fail("cannot write", path);
	return 0;
}

static int make_v1(const char *dir)
{
	return make_good(dir, TW_V1);
}

/* Written on a system with 64 KiB pages: text, and a lazy VMA of 4 pages, 3 with data. */
static const struct tw_vma pages64k_vmas[] = {
	{0x400000, 0x410000, R_X, 0x2, 0x41},
	{0x7f0000000000, 0x7f0000040000, RW, 0x22, 0x201},
};

static const struct tw_pme pages64k_pmes[] = {
	{0x400000, 1, PE_PRESENT},
	{0x7f0000000000, 3, PE_PRESENT | PE_LAZY},
};

static int make_pages64k(const char *dir)
{
	struct tw_task t = {.pid = 1,
			    .threads = {1},
			    .nr_threads = 1,
			    .pages_id = 2,
			    .vmas = pages64k_vmas,
			    .nr_vmas = ARRAY_SIZE(pages64k_vmas),
			    .pmes = pages64k_pmes,
			    .nr_pmes = ARRAY_SIZE(pages64k_pmes)};
	uint64_t was = tw_page_size;
	int ret;

	tw_page_size = 64 << 10;
	ret = tw_dump(dir, &t, 1, TW_42);
	tw_page_size = was;
	return ret;
}

static const struct tw_vma zombie_vmas[] = {
	{0x10000, 0x11000, RW, 0x22, 0x201},
};

static const struct tw_pme zombie_pmes[] = {
	{0x10000, 1, PE_PRESENT | PE_LAZY},
};

static int make_zombie(const char *dir)
{
	struct tw_task t[] = {
		{.pid = 1,
		 .ppid = 0,
		 .threads = {1},
		 .nr_threads = 1,
		 .pages_id = 1,
		 .vmas = zombie_vmas,
		 .nr_vmas = 1,
		 .pmes = zombie_pmes,
		 .nr_pmes = 1},
		/* The garbage threads[0] seen in a real zombie's pstree record. */
		{.pid = 2, .ppid = 1, .threads = {3157198096U}, .nr_threads = 1, .zombie = true},
	};

	return tw_dump(dir, t, ARRAY_SIZE(t), TW_41);
}

/*
 * chain: DIR is a full dump whose parent is DIR/p1 (absolute link), a 4.2 pre-dump whose
 * parent is DIR/p2 (link "../p2"), a 4.1 pre-dump. Pid 2 exists only in the top image.
 */
static const struct tw_vma chain_vmas1[] = {
	{0x10000000, 0x10010000, RW, 0x22, 0x201},
};

static const struct tw_pme chain_top1[] = {
	{0x10000000, 1, PE_PRESENT},
	{0x10001000, 8, PE_PARENT},	      /* p1: present, in_parent, parent over two p2 entries */
	{0x10009000, 1, PE_PARENT | PE_LAZY}, /* lazy data two levels down */
	{0x1000a000, 1, PE_PRESENT | PE_LAZY},
	{0x1000c000, 4, PE_LAZY},
};

static const struct tw_pme chain_p1[] = {
	{0x10000000, 2, PE_PRESENT},
	{0x10002000, 4, TW_INPARENT},
	{0x10006000, 4, PE_PARENT},
	{0x1000a000, 2, PE_PRESENT},
};

static const struct tw_pme chain_p2[] = {
	{0x10000000, 8, PE_PRESENT},
	{0x10008000, 8, PE_PRESENT | PE_LAZY},
};

static const struct tw_vma chain_vmas2[] = {
	{0x5000000, 0x5001000, RW, 0x22, 0x201},
};

static const struct tw_pme chain_top2[] = {
	{0x5000000, 1, PE_PRESENT | PE_LAZY},
};

static int make_chain_top(const char *dir, const struct tw_pme *pmes, size_t n)
{
	struct tw_task t[] = {
		{.pid = 1,
		 .ppid = 0,
		 .threads = {1},
		 .nr_threads = 1,
		 .pages_id = 7,
		 .vmas = chain_vmas1,
		 .nr_vmas = 1,
		 .pmes = pmes,
		 .nr_pmes = n},
		{.pid = 2,
		 .ppid = 1,
		 .threads = {2},
		 .nr_threads = 1,
		 .pages_id = 8,
		 .vmas = chain_vmas2,
		 .nr_vmas = 1,
		 .pmes = chain_top2,
		 .nr_pmes = 1},
	};

	return tw_dump(dir, t, ARRAY_SIZE(t), TW_41);
}

static int make_chain_parents(const char *dir)
{
	struct tw_task p1 = {.pid = 1, .pages_id = 2, .pmes = chain_p1, .nr_pmes = ARRAY_SIZE(chain_p1)};
	struct tw_task p2 = {.pid = 1, .pages_id = 1, .pmes = chain_p2, .nr_pmes = ARRAY_SIZE(chain_p2)};
	char path[PATH_MAX], abs[PATH_MAX];

	pjoin(path, dir, "p1");
	if (tw_predump(path, &p1, 1, TW_42) || tw_symlink("../p2", path, "parent"))
		return -1;
	pjoin(path, dir, "p2");
	if (tw_predump(path, &p2, 1, TW_41))
		return -1;
	if (!realpath(dir, abs))
		return fail("cannot resolve", dir);
	pjoin(path, abs, "p1");
	return tw_symlink(path, dir, "parent");
}

static int make_chain(const char *dir)
{
	if (make_chain_top(dir, chain_top1, ARRAY_SIZE(chain_top1)))
		return -1;
	return make_chain_parents(dir);
}

/*
 * base: the small good dump every corruption starts from. pagemap-1.img (4.1, 50 bytes):
 * header 0-7, head record at 8, entries at 14 (0x10000 x2), 26 (0x13000 x2, straddling
 * two VMAs) and 38 (0x20000 x1), 12 bytes each. pages-2.img: 5 pages.
 */
static const struct tw_vma base_vmas[] = {
	{0x10000, 0x14000, RW, 0x22, 0x201},
	{0x14000, 0x16000, RW, 0x22, 0x201},
	{0x20000, 0x21000, R_X, 0x2, 0x41},
};

static const struct tw_pme base_pmes[] = {
	{0x10000, 2, PE_PRESENT | PE_LAZY},
	{0x13000, 2, PE_PRESENT | PE_LAZY},
	{0x20000, 1, PE_PRESENT},
};

static int make_base_vmas(const char *dir, const struct tw_vma *vmas, const struct tw_pme *pmes, size_t n)
{
	struct tw_task t = {.pid = 1,
			    .ppid = 0,
			    .threads = {1},
			    .nr_threads = 1,
			    .pages_id = 2,
			    .vmas = vmas,
			    .nr_vmas = ARRAY_SIZE(base_vmas),
			    .pmes = pmes,
			    .nr_pmes = n};

	return tw_dump(dir, &t, 1, TW_41);
}

static int make_base_with(const char *dir, const struct tw_pme *pmes, size_t n)
{
	return make_base_vmas(dir, base_vmas, pmes, n);
}

static int make_base(const char *dir)
{
	return make_base_with(dir, base_pmes, ARRAY_SIZE(base_pmes));
}

/* base with entry 1 (the record at offset 26) replaced */
static int make_base_e1(const char *dir, uint64_t vaddr, uint64_t nr, int flags)
{
	struct tw_pme p[ARRAY_SIZE(base_pmes)];

	memcpy(p, base_pmes, sizeof(p));
	p[1].vaddr = vaddr;
	p[1].nr = nr;
	p[1].flags = flags;
	return make_base_with(dir, p, ARRAY_SIZE(p));
}

static int make_dangling_parent(const char *dir)
{
	return make_base(dir) || tw_symlink("../no-such-parent", dir, "parent");
}

static int make_no_present_no_pages(const char *dir)
{
	static const struct tw_pme lazy_only[] = {{0x10000, 4, PE_LAZY}};

	return make_base_with(dir, lazy_only, 1) || tw_unlink(dir, "pages-2.img");
}

static int make_bad_magic(const char *dir)
{
	return make_base(dir) || tw_poke_u32(dir, "pstree.img", 0, 0xdeadbeef);
}

static int make_bad_type_magic(const char *dir)
{
	return make_base(dir) || tw_poke_u32(dir, "mm-1.img", 4, PAGEMAP_MAGIC);
}

static int make_bad_inventory_magic(const char *dir)
{
	return make_base(dir) || tw_poke_u32(dir, "inventory.img", 0, COMMON_MAGIC);
}

static int make_bad_inventory_version(const char *dir)
{
	/* record at 4: len 4, then 08 02 10 01; byte 9 is img_version */
	static const uint8_t v3 = 3;

	return make_base(dir) || tw_poke(dir, "inventory.img", 9, &v3, 1);
}

static int make_trunc_header(const char *dir)
{
	return make_base(dir) || tw_truncate(dir, "pagemap-1.img", 40);
}

static int make_trunc_payload(const char *dir)
{
	return make_base(dir) || tw_truncate(dir, "pagemap-1.img", 45);
}

static int make_len_past_eof(const char *dir)
{
	return make_base(dir) || tw_poke_u32(dir, "pagemap-1.img", 38, 9000);
}

static int make_len_huge(const char *dir)
{
	return make_base(dir) || tw_poke_u32(dir, "pagemap-1.img", 38, 0xffffffffU);
}

static int make_garbage(const char *dir)
{
	static const uint8_t junk[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

	return make_base(dir) || tw_poke(dir, "pagemap-1.img", 42, junk, sizeof(junk));
}

static int make_garbage_mm(const char *dir)
{
	/* field 14 (vmas), length-delimited, claiming 100 bytes inside a 3-byte tail */
	static const uint8_t junk[] = {0x72, 0x64, 0x00};
	char path[PATH_MAX];
	uint32_t len = sizeof(junk);
	FILE *f;

	if (make_base(dir))
		return -1;
	pjoin(path, dir, "mm-1.img");
	f = fopen(path, "wb");
	if (!f)
		return fail("cannot create", path);
	fwrite((uint32_t[]){COMMON_MAGIC, MM_MAGIC}, 4, 2, f);
	fwrite(&len, 4, 1, f);
	fwrite(junk, 1, sizeof(junk), f);
	if (ferror(f) | fclose(f))
		return fail("cannot write", path);
	return 0;
}

static int make_overlap(const char *dir)
{
	return make_base_e1(dir, 0x11000, 2, PE_PRESENT | PE_LAZY);
}

static int make_unsorted(const char *dir)
{
	static const struct tw_pme p[] = {
		{0x13000, 2, PE_PRESENT | PE_LAZY},
		{0x10000, 2, PE_PRESENT | PE_LAZY},
		{0x20000, 1, PE_PRESENT},
	};

	return make_base_with(dir, p, ARRAY_SIZE(p));
}

static int make_past_vma(const char *dir)
{
	return make_base_e1(dir, 0x15000, 2, PE_PRESENT | PE_LAZY);
}

static int make_outside_vma(const char *dir)
{
	return make_base_e1(dir, 0x18000, 1, PE_PRESENT | PE_LAZY);
}

static int make_bad_flags(const char *dir)
{
	return make_base_e1(dir, 0x13000, 2, 0x10 | PE_PRESENT);
}

static int make_parent_present(const char *dir)
{
	return make_base_e1(dir, 0x13000, 2, PE_PARENT | PE_PRESENT);
}

static int make_unaligned(const char *dir)
{
	return make_base_e1(dir, 0x13800, 2, PE_PRESENT | PE_LAZY);
}

static int make_overflow(const char *dir)
{
	return make_base_e1(dir, 0xfffffffffffff000ULL, 2, PE_PRESENT | PE_LAZY);
}

/* Entry 1 (offset 26) counts 2 pages in field 2 and 1 in field 5. */
static int make_count_mismatch(const char *dir)
{
	int ret;

	tw_field5_vaddr = base_pmes[1].vaddr;
	tw_field5_nr = 1;
	ret = make_base(dir);
	tw_field5_nr = 0;
	return ret;
}

/* base with the first VMA, holding entry 0 (offset 14, lazy), MAP_LOCKED. */
static int make_lazy_locked(const char *dir)
{
	struct tw_vma v[ARRAY_SIZE(base_vmas)];

	memcpy(v, base_vmas, sizeof(v));
	v[0].flags |= 0x2000;
	return make_base_vmas(dir, v, base_pmes, ARRAY_SIZE(base_pmes));
}

/* base with the second VMA MAP_SHARED: entry 1 (offset 26) straddles into it. */
static int make_lazy_shared(const char *dir)
{
	struct tw_vma v[ARRAY_SIZE(base_vmas)];

	memcpy(v, base_vmas, sizeof(v));
	v[1].flags = 0x21;
	v[1].status = 0x101;
	return make_base_vmas(dir, v, base_pmes, ARRAY_SIZE(base_pmes));
}

static int make_missing_pages(const char *dir)
{
	return make_base(dir) || tw_unlink(dir, "pages-2.img");
}

static int make_short_pages(const char *dir)
{
	return make_base(dir) || tw_truncate(dir, "pages-2.img", 4 * 4096);
}

static int make_missing_mm(const char *dir)
{
	return make_base(dir) || tw_unlink(dir, "mm-1.img");
}

static int make_no_head(const char *dir)
{
	return make_base(dir) || tw_truncate(dir, "pagemap-1.img", 8);
}

static int make_dup_pid(const char *dir)
{
	struct tw_task t[] = {
		{.pid = 1,
		 .threads = {1},
		 .nr_threads = 1,
		 .pages_id = 2,
		 .vmas = base_vmas,
		 .nr_vmas = 3,
		 .pmes = base_pmes,
		 .nr_pmes = 3},
		{.pid = 1,
		 .ppid = 1,
		 .threads = {1},
		 .nr_threads = 1,
		 .pages_id = 2,
		 .vmas = base_vmas,
		 .nr_vmas = 3,
		 .pmes = base_pmes,
		 .nr_pmes = 3},
	};

	/* pstree.img: records at 8 (10 bytes: 08 01 10 00 18 01 20 01 28 01) and 22 */
	return tw_dump(dir, t, 2, TW_41);
}

static int make_fifo(const char *dir)
{
	char path[PATH_MAX];

	if (make_base(dir) || tw_unlink(dir, "pagemap-1.img"))
		return -1;
	pjoin(path, dir, "pagemap-1.img");
	if (mkfifo(path, 0644))
		return fail("cannot mkfifo", path);
	return 0;
}

/* a -> b -> a: DIR is a, DIR/b is b, b's parent is "..". */
static int make_loop(const char *dir)
{
	struct tw_task b = {.pid = 1, .pages_id = 9, .pmes = base_pmes, .nr_pmes = ARRAY_SIZE(base_pmes)};
	char path[PATH_MAX];

	if (make_base(dir) || tw_symlink("b", dir, "parent"))
		return -1;
	pjoin(path, dir, "b");
	return tw_predump(path, &b, 1, TW_41) || tw_symlink("..", path, "parent");
}

/* The top's last parent range, 0x1000c000-0x10010000, is not in p1 (which ends at 0x1000c000). */
static int make_chain_uncovered(const char *dir)
{
	struct tw_pme p[ARRAY_SIZE(chain_top1)];

	memcpy(p, chain_top1, sizeof(p));
	p[4].flags = PE_PARENT;
	return make_chain_top(dir, p, ARRAY_SIZE(p)) || make_chain_parents(dir);
}

/* p1's parent range 0x10006000-0x1000a000 hits p2 pages that are only PE_LAZY. */
static int make_chain_lazy_parent(const char *dir)
{
	static const struct tw_pme p2[] = {
		{0x10000000, 8, PE_PRESENT},
		{0x10008000, 8, PE_LAZY},
	};
	char path[PATH_MAX];
	struct tw_task t = {.pid = 1, .pages_id = 1, .pmes = p2, .nr_pmes = ARRAY_SIZE(p2)};

	if (make_chain(dir))
		return -1;
	pjoin(path, dir, "p2");
	return tw_predump(path, &t, 1, TW_41);
}

static int make_parent_missing(const char *dir)
{
	return make_base_e1(dir, 0x13000, 2, PE_PARENT);
}

const struct tw_scenario tw_scenarios[] = {
	{"good41", make_good41, "two tasks, 4.1 pagemap encoding"},
	{"good42", make_good42, "the same in 4.2 encoding, with a GUARD vma and packed threads"},
	{"v1", make_v1, "good41 with image version 1 headers"},
	{"pages-64k", make_pages64k, "a dump written with 64 KiB pages"},
	{"zombie", make_zombie, "a live task and a zombie"},
	{"chain", make_chain, "a dump with two parent pre-dumps"},
	{"base", make_base, "the small dump the corruptions start from"},
	{"dangling-parent", make_dangling_parent, "base with a parent link to nowhere"},
	{"lazy-only", make_no_present_no_pages, "only PE_LAZY pages and no pages file"},
	{"bad-magic", make_bad_magic, "pstree.img with a wrong common magic"},
	{"bad-type-magic", make_bad_type_magic, "mm-1.img with the pagemap magic"},
	{"bad-inventory-magic", make_bad_inventory_magic, "inventory.img with the common magic"},
	{"bad-inventory-version", make_bad_inventory_version, "inventory img_version 3"},
	{"trunc-header", make_trunc_header, "pagemap cut inside a record length"},
	{"trunc-payload", make_trunc_payload, "pagemap cut inside a record payload"},
	{"len-past-eof", make_len_past_eof, "a record length past the end of file"},
	{"len-huge", make_len_huge, "a record length over the limit"},
	{"garbage", make_garbage, "an undecodable pagemap entry"},
	{"garbage-mm", make_garbage_mm, "an undecodable mm entry"},
	{"overlap", make_overlap, "pagemap entries that overlap"},
	{"unsorted", make_unsorted, "pagemap entries out of order"},
	{"past-vma", make_past_vma, "an entry running past its VMA"},
	{"outside-vma", make_outside_vma, "an entry outside every VMA"},
	{"bad-flags", make_bad_flags, "an entry with unknown flags"},
	{"parent-present", make_parent_present, "an entry with PE_PARENT and PE_PRESENT"},
	{"unaligned", make_unaligned, "an entry with an unaligned vaddr"},
	{"overflow", make_overflow, "an entry running past 2^64"},
	{"no-head", make_no_head, "a pagemap without its head"},
	{"count-mismatch", make_count_mismatch, "an entry whose field 2 and field 5 counts differ"},
	{"lazy-locked", make_lazy_locked, "lazy pages in a MAP_LOCKED VMA"},
	{"lazy-shared", make_lazy_shared, "an entry straddling into a MAP_SHARED VMA with lazy pages"},
	{"dup-pid", make_dup_pid, "two pstree records for pid 1"},
	{"missing-pages", make_missing_pages, "no pages file"},
	{"short-pages", make_short_pages, "a pages file one page short"},
	{"missing-mm", make_missing_mm, "no mm-1.img"},
	{"fifo", make_fifo, "pagemap-1.img is a FIFO"},
	{"loop", make_loop, "parent loop a -> b -> a"},
	{"parent-missing", make_parent_missing, "a PE_PARENT entry and no parent"},
	{"chain-uncovered", make_chain_uncovered, "a PE_PARENT range the parent lacks"},
	{"chain-lazy-parent", make_chain_lazy_parent, "a PE_PARENT range only PE_LAZY below"},
};

const size_t tw_nr_scenarios = ARRAY_SIZE(tw_scenarios);

int tw_make(const char *name, const char *dir)
{
	size_t i;

	for (i = 0; i < tw_nr_scenarios; i++) {
		if (strcmp(tw_scenarios[i].name, name))
			continue;
		if (mkdir(dir, 0755))
			return fail("cannot create", dir);
		return tw_scenarios[i].make(dir) ? -1 : 0;
	}
	fprintf(stderr, "imgwriter: no scenario '%s'\n", name);
	return -1;
}
