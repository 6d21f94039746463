// SPDX-License-Identifier: MIT
/*
 * mkparent: make an incremental (parent-linked) image directory out of a real dump, for
 * tests on a kernel without soft-dirty tracking, where `criu pre-dump` cannot run.
 *
 *   mkparent [--flags parent|lazy-parent] [--split N] [--phase 0|1] [--all] [--lazy-only]
 *            [--renumber-parent K] D P C
 *
 * D is a dump directory. P becomes a copy of D (unless P is D itself, which is then
 * used as it is). C is created: a `parent` symlink to P, a copy of every image of D
 * except the task pagemaps (pagemap-<pid>.img) and their pages files, and rewritten
 * pagemaps in which some PE_PRESENT pages are served from the parent instead:
 *
 *   --flags parent       those pages get PE_PARENT (1): criu restore fills them itself
 *                        from P, even with --lazy-pages (default)
 *   --flags lazy-parent  pages that were PE_LAZY get PE_LAZY|PE_PARENT (3): criu restore
 *                        leaves them to the lazy-pages daemon, which must read them from P;
 *                        pages that were not lazy get PE_PARENT
 *   --split N            which pages: cut the address space into runs of N pages
 *                        (default 16); run k goes to the parent when k % 2 == --phase
 *   --all                every page goes to the parent (instead of --split runs)
 *   --lazy-only          only pages of PE_LAZY entries move to the parent
 *   --renumber-parent K  in the copy P, add K to the pages_id of every task pagemap
 *                        and rename its pages file to match: a reader must take a
 *                        parent's pages file from the parent's own pagemap head
 *
 * Entries that are not PE_PRESENT (already in a parent, say) are kept as they are, so
 * running mkparent on its own output makes a deeper chain: C -> B -> A. C's pages files
 * hold exactly the pages of its PE_PRESENT entries, in pagemap order. The 4.1 or 4.2
 * encoding of each entry (images.md section 6) is kept.
 *
 * Prints one line per task pagemap and a total line:
 *   pagemap-1.img: entries 9 -> 4105, present 8202, parent 8202 (moved 8202)
 *   total: present 8202 parent 8202
 * Exit status: 0, 1 on an error, 2 on bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pagemap.pb-c.h"

#define IMG_COMMON_MAGIC	0x54564319U
#define PAGEMAP_MAGIC		0x56084025U
#define PE_PARENT		1U
#define PE_LAZY			2U
#define PE_PRESENT		4U
#define PAGE			4096ULL
#define MAX_PAGEMAPS		1024

static unsigned int opt_split = 16, opt_phase;
static bool opt_lazy_parent, opt_lazy_only, opt_all;
static unsigned int opt_renumber;

static unsigned long long total_present, total_parent;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("mkparent: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void usage(FILE *f, int status)
{
	fprintf(f, "usage: mkparent [--flags parent|lazy-parent] [--split N] [--phase 0|1] [--all] [--lazy-only]\n"
		   "                [--renumber-parent K] D P C\n"
		   "Make C, an image directory whose parent is P (a copy of the dump D), with some\n"
		   "present pages moved to the parent. See the comment at the top of mkparent.c.\n");
	exit(status);
}

/* --- files ------------------------------------------------------------------ */

static char *path_join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		die("out of memory");
	return p;
}

static void write_all(int fd, const void *buf, size_t len, const char *path)
{
	const char *b = buf;

	while (len) {
		ssize_t n = write(fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write %s: %s", path, n < 0 ? strerror(errno) : "short write");
		b += n;
		len -= (size_t)n;
	}
}

static void copy_file(const char *from, const char *to)
{
	char buf[1 << 16];
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	ssize_t n;

	if (in < 0)
		die("open %s: %s", from, strerror(errno));
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		die("create %s: %s", to, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		write_all(out, buf, (size_t)n, to);
	if (n < 0)
		die("read %s: %s", from, strerror(errno));
	if (close(out))
		die("close %s: %s", to, strerror(errno));
	close(in);
}

static void copy_link(const char *from, const char *to)
{
	char target[PATH_MAX];
	ssize_t n = readlink(from, target, sizeof(target) - 1);

	if (n < 0)
		die("readlink %s: %s", from, strerror(errno));
	target[n] = '\0';
	if (symlink(target, to))
		die("symlink %s: %s", to, strerror(errno));
}

/* Is NAME "pagemap-<digits>.img" (a task's pagemap, not a shmem one)? */
static bool is_task_pagemap(const char *name)
{
	const char *p = name + strlen("pagemap-");

	if (strncmp(name, "pagemap-", strlen("pagemap-")) || !*p)
		return false;
	while (*p >= '0' && *p <= '9')
		p++;
	return p != name + strlen("pagemap-") && !strcmp(p, ".img");
}

/* Copy every regular file and symlink of SRC into DST, except those SKIP says. */
static void copy_dir(const char *src, const char *dst, bool (*skip)(const char *name))
{
	struct dirent *de;
	DIR *d = opendir(src);

	if (!d)
		die("opendir %s: %s", src, strerror(errno));
	while ((de = readdir(d))) {
		struct stat st;
		char *from, *to;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (skip && skip(de->d_name))
			continue;
		from = path_join(src, de->d_name);
		to = path_join(dst, de->d_name);
		if (lstat(from, &st))
			die("lstat %s: %s", from, strerror(errno));
		if (S_ISREG(st.st_mode))
			copy_file(from, to);
		else if (S_ISLNK(st.st_mode))
			copy_link(from, to);
		/* Sockets (lazy-pages.socket) and the like are not images. */
		free(from);
		free(to);
	}
	closedir(d);
}

/* --- pagemaps --------------------------------------------------------------- */

struct img {
	unsigned char *buf;
	size_t len, off;
	const char *path;
};

static void img_load(struct img *im, const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st))
		die("open %s: %s", path, strerror(errno));
	im->len = (size_t)st.st_size;
	im->buf = malloc(im->len ? im->len : 1);
	if (!im->buf)
		die("out of memory");
	if (im->len && pread(fd, im->buf, im->len, 0) != (ssize_t)im->len)
		die("read %s: short read", path);
	close(fd);
	im->off = 0;
	im->path = path;
}

static uint32_t img_u32(struct img *im)
{
	uint32_t v;

	if (im->len - im->off < 4)
		die("%s: truncated at offset %zu", im->path, im->off);
	memcpy(&v, im->buf + im->off, 4);
	im->off += 4;
	return v;
}

/* The next record (length-prefixed), or NULL at the end of the file. */
static const unsigned char *img_record(struct img *im, size_t *len)
{
	const unsigned char *p;

	if (im->off == im->len)
		return NULL;
	*len = img_u32(im);
	if (im->len - im->off < *len)
		die("%s: record of %zu bytes at offset %zu runs past the end", im->path, *len, im->off);
	p = im->buf + im->off;
	im->off += *len;
	return p;
}

struct out {
	int fd;
	const char *path;
};

static void out_u32(struct out *o, uint32_t v)
{
	write_all(o->fd, &v, 4, o->path);
}

static void out_entry(struct out *o, const PagemapEntry *e)
{
	size_t len = pagemap_entry__get_packed_size(e);
	unsigned char *buf = malloc(len ? len : 1);

	if (!buf)
		die("out of memory");
	pagemap_entry__pack(e, buf);
	out_u32(o, (uint32_t)len);
	write_all(o->fd, buf, len, o->path);
	free(buf);
}

/* Write entry @src with a new start, count and flags, in @src's encoding. */
static void emit(struct out *o, const PagemapEntry *src, uint64_t vaddr, uint64_t count, uint32_t flags)
{
	PagemapEntry e = *src;

	e.has_vaddr = 1;
	e.vaddr = vaddr;
	if (src->has_nr_pages) {
		e.nr_pages = count;	/* 4.2: field 5; field 2 stays as it was (0) */
	} else {
		if (count > UINT32_MAX)
			die("an entry of %llu pages does not fit the 4.1 encoding", (unsigned long long)count);
		e.has_compat_nr_pages = 1;
		e.compat_nr_pages = (uint32_t)count;
	}
	e.has_in_parent = 0;
	e.in_parent = 0;
	e.has_flags = 1;
	e.flags = flags;
	out_entry(o, &e);
}

static bool to_parent(uint64_t page_no)
{
	return opt_all || (page_no / opt_split) % 2 == opt_phase;
}

static void rewrite_pagemap(const char *src_dir, const char *dst_dir, const char *name, uint32_t *pages_id_out)
{
	char *src_path = path_join(src_dir, name), *dst_path = path_join(dst_dir, name);
	char pname[64], *src_pages, *dst_pages;
	unsigned long long nr_in = 0, nr_out = 0, present = 0, parent = 0, moved = 0;
	const unsigned char *rec, *data = NULL;
	struct out pm, pg;
	PagemapHead *head;
	struct img im;
	uint64_t src_off = 0;
	struct stat st;
	size_t len;
	int fd;

	img_load(&im, src_path);
	if (img_u32(&im) != IMG_COMMON_MAGIC || img_u32(&im) != PAGEMAP_MAGIC)
		die("%s: not a pagemap image (magic)", src_path);
	rec = img_record(&im, &len);
	if (!rec)
		die("%s: no pagemap_head", src_path);
	head = pagemap_head__unpack(NULL, len, rec);
	if (!head || !head->has_pages_id)
		die("%s: bad pagemap_head", src_path);
	*pages_id_out = head->pages_id;

	snprintf(pname, sizeof(pname), "pages-%u.img", head->pages_id);
	src_pages = path_join(src_dir, pname);
	dst_pages = path_join(dst_dir, pname);
	fd = open(src_pages, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st))
		die("open %s: %s", src_pages, strerror(errno));
	if (st.st_size) {
		data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (data == MAP_FAILED)
			die("mmap %s: %s", src_pages, strerror(errno));
	}
	close(fd);

	pm.path = dst_path;
	pm.fd = open(dst_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	pg.path = dst_pages;
	pg.fd = open(dst_pages, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (pm.fd < 0 || pg.fd < 0)
		die("create %s or %s: %s", dst_path, dst_pages, strerror(errno));
	out_u32(&pm, IMG_COMMON_MAGIC);
	out_u32(&pm, PAGEMAP_MAGIC);
	{
		size_t hl = pagemap_head__get_packed_size(head);
		unsigned char hb[64];

		if (hl > sizeof(hb))
			die("%s: pagemap_head too big", src_path);
		pagemap_head__pack(head, hb);
		out_u32(&pm, (uint32_t)hl);
		write_all(pm.fd, hb, hl, dst_path);
	}

	while ((rec = img_record(&im, &len))) {
		PagemapEntry *e = pagemap_entry__unpack(NULL, len, rec);
		uint64_t count, i, run_start;
		uint32_t flags;
		bool eligible;

		if (!e || !e->has_vaddr)
			die("%s: bad pagemap_entry #%llu", src_path, nr_in);
		nr_in++;
		count = e->has_nr_pages ? e->nr_pages : e->compat_nr_pages;
		if (e->has_in_parent && e->in_parent)
			flags = PE_PARENT;
		else
			flags = e->has_flags ? e->flags : PE_PRESENT;
		if (e->vaddr % PAGE)
			die("%s: entry at 0x%llx is not page aligned", src_path, (unsigned long long)e->vaddr);

		if (!(flags & PE_PRESENT)) {
			/* Already elsewhere (a parent, or remote): keep it as it is. */
			emit(&pm, e, e->vaddr, count, flags);
			nr_out++;
			if (flags & PE_PARENT)
				parent += count;
			pagemap_entry__free_unpacked(e, NULL);
			continue;
		}
		if ((src_off + count) * PAGE > (uint64_t)st.st_size)
			die("%s: entry at 0x%llx runs past the end of %s", src_path, (unsigned long long)e->vaddr,
			    src_pages);
		eligible = !opt_lazy_only || (flags & PE_LAZY);

		/* Cut the entry into runs that all go the same way; a run goes where its
		 * first page goes. */
		for (run_start = 0, i = 1; count && i <= count; i++) {
			bool par = eligible && to_parent(e->vaddr / PAGE + run_start);

			if (i < count && (eligible && to_parent(e->vaddr / PAGE + i)) == par)
				continue;
			if (par) {
				uint32_t pf = opt_lazy_parent && (flags & PE_LAZY) ? (PE_LAZY | PE_PARENT) : PE_PARENT;

				emit(&pm, e, e->vaddr + run_start * PAGE, i - run_start, pf);
				parent += i - run_start;
				moved += i - run_start;
			} else {
				emit(&pm, e, e->vaddr + run_start * PAGE, i - run_start, flags);
				write_all(pg.fd, data + (src_off + run_start) * PAGE, (i - run_start) * PAGE, dst_pages);
				present += i - run_start;
			}
			nr_out++;
			run_start = i;
		}
		src_off += count;
		pagemap_entry__free_unpacked(e, NULL);
	}
	if (src_off * PAGE != (uint64_t)st.st_size)
		die("%s: its present entries hold %llu pages, but %s has %lld bytes", src_path,
		    (unsigned long long)src_off, src_pages, (long long)st.st_size);
	if (close(pm.fd) || close(pg.fd))
		die("close %s: %s", dst_path, strerror(errno));
	if (data)
		munmap((void *)data, (size_t)st.st_size);
	pagemap_head__free_unpacked(head, NULL);
	free(im.buf);

	printf("%s: entries %llu -> %llu, present %llu, parent %llu (moved %llu)\n", name, nr_in, nr_out, present,
	       parent, moved);
	total_present += present;
	total_parent += parent;
	free(src_path);
	free(dst_path);
	free(src_pages);
	free(dst_pages);
}

/* Give the task pagemap NAME in DIR pages_id + K, and rename its pages file to match. */
static void renumber_pagemap(const char *dir, const char *name, unsigned int k)
{
	char *path = path_join(dir, name), *tmp, *from, *to, pname[64];
	unsigned char hb[64];
	const unsigned char *rec;
	PagemapHead *head;
	struct out o;
	struct img im;
	size_t len, hl;
	uint32_t old;

	img_load(&im, path);
	if (img_u32(&im) != IMG_COMMON_MAGIC || img_u32(&im) != PAGEMAP_MAGIC)
		die("%s: not a pagemap image (magic)", path);
	rec = img_record(&im, &len);
	head = rec ? pagemap_head__unpack(NULL, len, rec) : NULL;
	if (!head || !head->has_pages_id)
		die("%s: bad pagemap_head", path);
	old = head->pages_id;
	head->pages_id = old + k;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		die("out of memory");
	o.path = tmp;
	o.fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (o.fd < 0)
		die("create %s: %s", tmp, strerror(errno));
	out_u32(&o, IMG_COMMON_MAGIC);
	out_u32(&o, PAGEMAP_MAGIC);
	hl = pagemap_head__get_packed_size(head);
	if (hl > sizeof(hb))
		die("%s: pagemap_head too big", path);
	pagemap_head__pack(head, hb);
	out_u32(&o, (uint32_t)hl);
	write_all(o.fd, hb, hl, tmp);
	write_all(o.fd, im.buf + im.off, im.len - im.off, tmp);	/* the entries, unchanged */
	if (close(o.fd) || rename(tmp, path))
		die("write %s: %s", path, strerror(errno));

	snprintf(pname, sizeof(pname), "pages-%u.img", old);
	from = path_join(dir, pname);
	snprintf(pname, sizeof(pname), "pages-%u.img", old + k);
	to = path_join(dir, pname);
	if (!access(to, F_OK))
		die("%s: %s exists already", dir, pname);
	if (rename(from, to))
		die("rename %s: %s", from, strerror(errno));
	pagemap_head__free_unpacked(head, NULL);
	free(im.buf);
	free(path);
	free(tmp);
	free(from);
	free(to);
}

/* --- main ------------------------------------------------------------------- */

static char skip_names[MAX_PAGEMAPS * 2 + 1][NAME_MAX + 1];
static unsigned int nr_skip;

static bool skip_for_child(const char *name)
{
	unsigned int i;

	if (!strcmp(name, "parent"))
		return true;
	for (i = 0; i < nr_skip; i++)
		if (!strcmp(name, skip_names[i]))
			return true;
	return false;
}

static bool same_dir(const char *a, const char *b)
{
	struct stat sa, sb;

	return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The `parent` link: relative (as criu --prev-images-dir ../x writes) when P and C are
 * siblings, else P's absolute path. */
static void link_parent(const char *p, const char *c)
{
	char rp[PATH_MAX], rc[PATH_MAX], dp[PATH_MAX], dc[PATH_MAX], target[PATH_MAX + 4];
	char *link = path_join(c, "parent");

	if (!realpath(p, rp) || !realpath(c, rc))
		die("realpath: %s", strerror(errno));
	snprintf(dp, sizeof(dp), "%s", rp);
	snprintf(dc, sizeof(dc), "%s", rc);
	if (!strcmp(dirname(dp), dirname(dc)))
		snprintf(target, sizeof(target), "../%s", basename(rp));
	else
		snprintf(target, sizeof(target), "%s", rp);
	if (symlink(target, link))
		die("symlink %s -> %s: %s", link, target, strerror(errno));
	free(link);
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "flags", required_argument, NULL, 'f' },
		{ "split", required_argument, NULL, 's' },
		{ "phase", required_argument, NULL, 'p' },
		{ "lazy-only", no_argument, NULL, 'l' },
		{ "all", no_argument, NULL, 'a' },
		{ "renumber-parent", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *d, *p, *c;
	struct dirent *de;
	unsigned int nr_pm = 0;
	char *end;
	DIR *dir;
	int o;

	while ((o = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (o) {
		case 'f':
			if (!strcmp(optarg, "parent"))
				opt_lazy_parent = false;
			else if (!strcmp(optarg, "lazy-parent"))
				opt_lazy_parent = true;
			else
				usage(stderr, 2);
			break;
		case 's':
			errno = 0;
			opt_split = (unsigned int)strtoul(optarg, &end, 0);
			if (errno || *end || !opt_split)
				usage(stderr, 2);
			break;
		case 'p':
			if (strcmp(optarg, "0") && strcmp(optarg, "1"))
				usage(stderr, 2);
			opt_phase = (unsigned int)(optarg[0] - '0');
			break;
		case 'l':
			opt_lazy_only = true;
			break;
		case 'a':
			opt_all = true;
			break;
		case 'r':
			errno = 0;
			opt_renumber = (unsigned int)strtoul(optarg, &end, 0);
			if (errno || *end || !opt_renumber || opt_renumber > 1000000)
				usage(stderr, 2);
			break;
		case 'h':
			usage(stdout, 0);
			break;
		default:
			usage(stderr, 2);
		}
	}
	if (argc - optind != 3)
		usage(stderr, 2);
	d = argv[optind];
	p = argv[optind + 1];
	c = argv[optind + 2];

	if (!same_dir(d, p)) {
		if (mkdir(p, 0755))
			die("mkdir %s: %s", p, strerror(errno));
		copy_dir(d, p, NULL);
		if (opt_renumber) {
			dir = opendir(p);
			if (!dir)
				die("opendir %s: %s", p, strerror(errno));
			while ((de = readdir(dir)))
				if (is_task_pagemap(de->d_name))
					renumber_pagemap(p, de->d_name, opt_renumber);
			closedir(dir);
		}
	} else if (opt_renumber) {
		die("--renumber-parent needs P to be a copy, not D itself");
	}
	if (mkdir(c, 0755))
		die("mkdir %s: %s", c, strerror(errno));
	link_parent(p, c);

	/* The task pagemaps and their pages files are rewritten; the rest is copied. */
	dir = opendir(d);
	if (!dir)
		die("opendir %s: %s", d, strerror(errno));
	while ((de = readdir(dir))) {
		uint32_t id;

		if (!is_task_pagemap(de->d_name))
			continue;
		if (nr_skip + 2 > sizeof(skip_names) / sizeof(skip_names[0]))
			die("%s: too many pagemaps", d);
		rewrite_pagemap(d, c, de->d_name, &id);
		snprintf(skip_names[nr_skip++], sizeof(skip_names[0]), "%s", de->d_name);
		snprintf(skip_names[nr_skip++], sizeof(skip_names[0]), "pages-%u.img", id);
		nr_pm++;
	}
	closedir(dir);
	if (!nr_pm)
		die("%s: no pagemap-<pid>.img: not a dump directory", d);
	copy_dir(d, c, skip_for_child);
	printf("total: present %llu parent %llu\n", total_present, total_parent);
	return 0;
}
