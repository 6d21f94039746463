// SPDX-License-Identifier: MIT
/* mm-<pid>.img: the task's VMAs and which of them a lazy restore may fill on demand. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "crimg_int.h"
#include "mm.pb-c.h"

#define PAGE_MASK (CRIMG_PAGE_SIZE - 1)

/*
 * The test CRIU runs at dump time and in the restorer (images.md section 5): only
 * private anonymous memory that is not locked, not hugetlb and not a kernel-provided
 * mapping is ever registered with userfaultfd.
 */
bool crimg_vma_lazy(uint32_t flags, uint32_t status)
{
	if ((flags & (MAP_ANONYMOUS | MAP_PRIVATE)) != (MAP_ANONYMOUS | MAP_PRIVATE))
		return false;
	if (flags & (MAP_LOCKED | MAP_HUGETLB))
		return false;
	return !(status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL));
}

const char *crimg_vma_not_lazy_why(uint32_t flags, uint32_t status)
{
	if (!(flags & MAP_ANONYMOUS))
		return "not anonymous";
	if (!(flags & MAP_PRIVATE))
		return flags & MAP_SHARED ? "MAP_SHARED" : "not MAP_PRIVATE";
	if (flags & MAP_LOCKED)
		return "MAP_LOCKED";
	if (flags & MAP_HUGETLB)
		return "MAP_HUGETLB";
	if (status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL))
		return "a kernel mapping (VDSO, VVAR or VSYSCALL)";
	return NULL;
}

static int add_vmas(struct crimg_task_img *t, const MmEntry *mm, struct crimg_file *f, struct crimg_error *err)
{
	size_t i, n = 0;

	if (mm->n_vmas) {
		t->vmas = calloc(mm->n_vmas, sizeof(*t->vmas));
		if (!t->vmas)
			return crimg_err(err, -ENOMEM, "%s: out of memory", f->path);
	}

	for (i = 0; i < mm->n_vmas; i++) {
		const VmaEntry *ve = mm->vmas[i];
		struct crimg_vma *v;

		if (!ve->has_start || !ve->has_end || !ve->has_prot || !ve->has_flags || !ve->has_status)
			return crimg_file_err(f, f->rec_off, err, -EINVAL,
					      "vma %zu lacks one of start, end, prot, flags, status", i);
		/* 4.2 appends MADV_GUARD_INSTALL ranges that overlap real VMAs; they hold no pages. */
		if (ve->status == VMA_AREA_GUARD)
			continue;
		if ((ve->start & PAGE_MASK) || (ve->end & PAGE_MASK) || ve->start >= ve->end)
			return crimg_file_err(
				f, f->rec_off, err, -EINVAL, "vma %zu 0x%llx-0x%llx is not a page range%s", i,
				(unsigned long long)ve->start, (unsigned long long)ve->end, crimg_page_size_hint());
		if (n && ve->start < t->vmas[n - 1].end)
			return crimg_file_err(
				f, f->rec_off, err, -EINVAL, "vma %zu 0x%llx-0x%llx %s the previous vma 0x%llx-0x%llx",
				i, (unsigned long long)ve->start, (unsigned long long)ve->end,
				ve->start < t->vmas[n - 1].start ? "is unsorted after" : "overlaps",
				(unsigned long long)t->vmas[n - 1].start, (unsigned long long)t->vmas[n - 1].end);

		v = &t->vmas[n++];
		v->start = ve->start;
		v->end = ve->end;
		v->pgoff = ve->has_pgoff ? ve->pgoff : 0;
		v->shmid = ve->has_shmid ? ve->shmid : 0;
		v->prot = ve->prot;
		v->flags = ve->flags;
		v->status = ve->status;
		v->madv = ve->has_madv ? ve->madv : 0;
		v->lazy = crimg_vma_lazy(ve->flags, ve->status);
	}
	t->pub.vmas = t->vmas;
	t->pub.nr_vmas = n;
	return 0;
}

int crimg_mm_load(const char *dir, struct crimg_task_img *t, struct crimg_error *err)
{
	MmEntry *mm = NULL;
	struct crimg_file f;
	char name[32];
	int ret;

	snprintf(name, sizeof(name), "mm-%d.img", (int)t->pub.pid);
	ret = crimg_file_open(&f, dir, name, MM_MAGIC, 0, err);
	if (ret)
		return ret;

	ret = crimg_file_next_msg(&f, &mm_entry__descriptor, (ProtobufCMessage **)&mm, err);
	if (ret)
		goto out;
	ret = add_vmas(t, mm, &f, err);
	if (ret)
		goto out;
	ret = crimg_file_expect_end(&f, err);
out:
	if (mm)
		mm_entry__free_unpacked(mm, NULL);
	crimg_file_close(&f);
	return ret;
}
