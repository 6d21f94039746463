// SPDX-License-Identifier: MIT
/*
 * Opening a 4 GiB dump reads its pagemaps, not its memory: the pages file (sparse
 * here) is only measured, so the bytes this process reads stay far below its size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crimg.h"
#include "imgwriter.h"
#include "tu.h"

#define NR_ENTRIES 1024
#define PER_ENTRY  1024 /* pages: 1024 x 1024 x 4 KiB = 4 GiB */

/* Bytes read so far by this process through read()/pread() (and kin). */
static long long rchar(void)
{
	char line[128];
	long long v = -1;
	FILE *f = fopen("/proc/self/io", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "rchar: %lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

int main(void)
{
	static struct tw_pme pmes[NR_ENTRIES];
	static const struct tw_vma vma = {0x100000000ULL, 0x100000000ULL + (4ULL << 30), 3, 0x22, 0x201};
	struct tw_task t = {.pid = 1,
			    .threads = {1},
			    .nr_threads = 1,
			    .pages_id = 1,
			    .vmas = &vma,
			    .nr_vmas = 1,
			    .pmes = pmes,
			    .nr_pmes = NR_ENTRIES};
	char dir[4096];
	struct crimg_summary sum;
	struct crimg_error err;
	struct crimg_loc loc;
	struct timespec t0, t1;
	long long r0, r1;
	struct crimg *img;
	double secs;
	size_t i;
	int ret;

	for (i = 0; i < NR_ENTRIES; i++) {
		pmes[i].vaddr = vma.start + i * PER_ENTRY * 4096ULL;
		pmes[i].nr = PER_ENTRY;
		pmes[i].flags = 6;
	}
	snprintf(dir, sizeof(dir), "%s/big", tu_tmpdir());
	tw_sparse_pages = true;
	ret = tw_dump(dir, &t, 1, TW_41);
	tw_sparse_pages = false;
	if (ret) {
		fprintf(stderr, "cannot write a sparse 4 GiB pages file here: skipping\n");
		tu_cleanup();
		return T_SKIP;
	}

	r0 = rchar();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = crimg_open(dir, &img, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r1 = rchar();
	CHECK(ret == 0, "crimg_open: %d %s", ret, err.msg);
	if (ret)
		return tu_done();

	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr, "# open: %.3f s, %lld bytes read\n", secs, r1 - r0);
	/* The pagemap is ~14 KiB; allow for inventory, pstree, core, mm and libc. */
	if (r0 >= 0 && r1 >= 0)
		CHECK(r1 - r0 < (1 << 20), "read %lld bytes while opening", r1 - r0);
	/* Generous for ASan and a loaded machine; reading 4 GiB would take far longer. */
	CHECK(secs < 2.0, "open took %.3f s", secs);

	crimg_summarize(crimg_task(img, 0), &sum);
	CHECK_EQ(sum.present, (unsigned long long)NR_ENTRIES * PER_ENTRY);
	CHECK_EQ(sum.zero, 0);
	ret = crimg_locate(img, crimg_task(img, 0), vma.end - 4096, &loc, &err);
	CHECK(ret == 0 && loc.where == CRIMG_PRESENT && loc.off == (4ULL << 30) - 4096 && loc.nr_pages == 1,
	      "last page: %d where %d off %llu", ret, loc.where, (unsigned long long)loc.off);
	crimg_close(img);
	return tu_done();
}
