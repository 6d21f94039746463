// SPDX-License-Identifier: MIT
/*
 * Page data from the image directory: each pages file (of this image or a parent) is
 * mapped read-only once, and UFFDIO_COPY reads straight from the mapping, so no byte
 * passes through a buffer of ours.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pagesize.h"
#include "source.h"
#include "lazy_pages.h"

/*
 * Runs up to 256 KiB are read into a buffer instead: through the mapping, each
 * small copy would map and unmap a whole large folio (hundreds of PTEs each way), which
 * made a 4 KiB copy cost ~25 us; a pread from the page cache costs a few.
 */
#define SMALL_READ_PAGES PAGES_IN(256 << 10)

/* What source_put drops: the aligned windows around the copied bytes. */
#define WIDE_PUT (2 * 1024 * 1024)

struct mapping {
	int fd;
	const char *path;
	const uint8_t *base;
	uint64_t size;
};

struct source {
	const struct crimg *img;
	struct mapping *maps;
	size_t nr_maps;
	uint8_t *buf; /* small reads: SMALL_READ_PAGES */
};

int source_local_open(struct source **out, const struct crimg *img)
{
	struct source *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->buf = malloc(SMALL_READ_PAGES * PAGE_SZ);
	if (!s->buf) {
		free(s);
		return -ENOMEM;
	}
	s->img = img;
	*out = s;
	return 0;
}

void source_close(struct source *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->nr_maps; i++)
		if (s->maps[i].size)
			munmap((void *)s->maps[i].base, s->maps[i].size);
	free(s->maps);
	free(s->buf);
	free(s);
}

static int map_file(struct source *s, int fd, const char *path, const struct mapping **out)
{
	struct mapping *m;
	struct stat st;
	void *p = NULL;
	size_t i;

	for (i = 0; i < s->nr_maps; i++)
		if (s->maps[i].fd == fd) {
			*out = &s->maps[i];
			return 0;
		}
	if (fstat(fd, &st)) {
		pr_err("%s: cannot stat: %m", path);
		return -errno;
	}
	if (st.st_size) {
		p = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			pr_err("%s: cannot map: %m", path);
			return -errno;
		}
		/* Fault handling is random access; background population reads ahead itself. */
		madvise(p, st.st_size, MADV_RANDOM);
	}
	m = realloc(s->maps, (s->nr_maps + 1) * sizeof(*m));
	if (!m) {
		if (p)
			munmap(p, st.st_size);
		return -ENOMEM;
	}
	s->maps = m;
	m = &s->maps[s->nr_maps++];
	m->fd = fd;
	m->path = path;
	m->base = p;
	m->size = st.st_size;
	*out = m;
	return 0;
}

/* Where the data of IMG_ADDR is: its file, mapped, and the offset and run there. */
static int locate(struct source *s, const struct crimg_task *task, uint64_t img_addr, uint64_t nr,
		  const struct mapping **m, struct crimg_loc *loc, uint64_t *run)
{
	struct crimg_error err;
	int ret;

	ret = crimg_locate(s->img, task, img_addr, loc, &err);
	if (ret) {
		pr_err("task %d, page 0x%llx: %s", task->pid, (unsigned long long)img_addr, err.msg);
		return ret;
	}
	if (loc->where != CRIMG_PRESENT) {
		/* Never stand in zeros for a page the dump says had data. */
		pr_err("task %d, page 0x%llx: no page data in the image (%s)", task->pid, (unsigned long long)img_addr,
		       loc->where == CRIMG_REMOTE ? "held by the dump's page server: use --page-server" :
						    "not a stored page");
		return -ENODATA;
	}
	ret = map_file(s, loc->fd, loc->path, m);
	if (ret)
		return ret;
	if (loc->off + PAGE_SZ > (*m)->size) {
		pr_err("%s: page 0x%llx of task %d at offset %llu is past the end of the file (size %llu)", (*m)->path,
		       (unsigned long long)img_addr, task->pid, (unsigned long long)loc->off,
		       (unsigned long long)(*m)->size);
		return -EIO;
	}
	*run = loc->nr_pages < nr ? loc->nr_pages : nr;
	if (((*m)->size - loc->off) / PAGE_SZ < *run)
		*run = ((*m)->size - loc->off) / PAGE_SZ;
	return 0;
}

static int get(struct source *s, const struct crimg_task *task, uint64_t img_addr, uint64_t nr, const void **data,
	       uint64_t *run, bool small_reads)
{
	const struct mapping *m = NULL;
	struct crimg_loc loc;
	int ret;

	ret = locate(s, task, img_addr, nr, &m, &loc, run);
	if (ret)
		return ret;
	*data = m->base + loc.off;
	if (small_reads && *run <= SMALL_READ_PAGES) {
		ssize_t got = pread(loc.fd, s->buf, *run << PAGE_SHIFT, loc.off);

		if (got < (ssize_t)PAGE_SZ) {
			pr_err("%s: reading page 0x%llx of task %d at offset %llu: %s", m->path,
			       (unsigned long long)img_addr, task->pid, (unsigned long long)loc.off,
			       got < 0 ? strerror(errno) : "short read");
			return got < 0 ? -errno : -EIO;
		}
		*run = (uint64_t)got >> PAGE_SHIFT;
		*data = s->buf;
	}
	return 0;
}

int source_get(struct source *s, const struct crimg_task *task, uint64_t img_addr, uint64_t nr, const void **data,
	       uint64_t *run)
{
	return get(s, task, img_addr, nr, data, run, true);
}

int source_locate(struct source *s, const struct crimg_task *task, uint64_t img_addr, uint64_t nr, int *fd,
		  uint64_t *off, uint64_t *run)
{
	const struct mapping *m = NULL;
	struct crimg_loc loc;
	int ret;

	ret = locate(s, task, img_addr, nr, &m, &loc, run);
	if (ret)
		return ret;
	*fd = loc.fd;
	*off = loc.off;
	return 0;
}

int source_get_mapped(struct source *s, const struct crimg_task *task, uint64_t img_addr, uint64_t nr,
		      const void **data, uint64_t *run)
{
	return get(s, task, img_addr, nr, data, run, false);
}

void source_put(struct source *s, const void *data, uint64_t nr)
{
	/*
	 * The data stays in the page cache; this only drops our mapping of it, which would
	 * otherwise count the whole dump into the daemon's RSS by the end of population.
	 */
	uintptr_t start = (uintptr_t)data, end = start + (nr << PAGE_SHIFT);
	size_t i;

	if (data == s->buf)
		return;
	/*
	 * A read fault on a file mapping also maps the cached pages around it (the
	 * kernel's fault-around: a whole large folio, up to 2 MiB, on this kernel). Drop
	 * the aligned 2 MiB windows around what was copied, or random faults (and chunks
	 * not aligned in the file) leave those pages behind by the thousand. Mapping a
	 * cached folio again when the next copy needs it is one minor fault.
	 */
	for (i = 0; i < s->nr_maps; i++) {
		uintptr_t b = (uintptr_t)s->maps[i].base, e = b + s->maps[i].size;

		if (start < b || start >= e)
			continue;
		start &= ~(uintptr_t)(WIDE_PUT - 1);
		end = (end + WIDE_PUT - 1) & ~(uintptr_t)(WIDE_PUT - 1);
		if (start < b)
			start = b;
		if (end > ((e + PAGE_SZ - 1) & ~(uintptr_t)(PAGE_SZ - 1)))
			end = (e + PAGE_SZ - 1) & ~(uintptr_t)(PAGE_SZ - 1);
		/* Only ever inside a pages file's mapping: on memory of ours it would zero it. */
		madvise((void *)start, end - start, MADV_DONTNEED);
		return;
	}
}
