// SPDX-License-Identifier: MIT
/*
 * lazyops: change the layout of lazy memory that nobody has touched since the restore,
 * then check it twice: right away (faults the daemon serves after the layout event) and
 * after zt_settle() (what the daemon's background copy left, once it has exited).
 *
 *   --op dontneed  MADV_DONTNEED on the first page, a middle run and the last page:
 *                  those read zero, the rest keeps its pattern
 *   --op munmap    unmap the first page and a middle run (they stay unmapped: mincore),
 *                  unmap the last 3 pages and map fresh memory there with a second
 *                  pattern (it keeps that pattern)
 *   --op mremap    move a region to a new address (MREMAP_FIXED; the data is intact
 *                  there, the old range is unmapped), grow a region in place into a
 *                  hole left for it, and grow one that cannot grow in place (it moves);
 *                  grown tails read zero
 *   --op mprotect  PROT_NONE on two whole regions, then PROT_READ on the first and
 *                  read it at once; the second stays PROT_NONE until after zt_settle(),
 *                  then is made readable and read
 *   --op mprotect-split  the same on parts of one region (a middle run, and a short
 *                  run near the start), which splits its VMA where the images have one
 *
 * Every region is --size bytes (default 8M) of pattern memory between guard pages.
 * Run it with --ballast (below the regions, filled first by a lazy daemon) so that the
 * regions are still missing when the operation happens; zt_lazy_probe() records it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "zdtmtst.h"

#define OPS_SEED	0x1a2e0b5
#define OPS_SEED2	0x1a2e0b6
#define P		ZT_PAGE_SIZE

static size_t size = 8 << 20;
static size_t npages;

/* A middle run that straddles 2 MiB (512-page) chunk boundaries on either side. */
#define MID_START	(npages / 4 + 1)
#define MID_END		(npages / 2 + 3)

static char *map_pattern(const char *what, uint64_t seed)
{
	char *p = zt_map_guarded(size);

	if (!p)
		zt_setup_fail("%s: mmap %zu bytes: %s", what, size, strerror(errno));
	zt_pattern_fill(p, size, seed, 0);
	return p;
}

static void pat(const char *what, const char *base, size_t first, size_t end, uint64_t seed)
{
	if (end > first)
		zt_pattern_check(what, base + first * P, (end - first) * P, seed, first);
}

/* --- dontneed --------------------------------------------------------------- */

static char *dn;

static void dontneed_setup(void)
{
	dn = map_pattern("dontneed", OPS_SEED);
}

static void dontneed_check(int phase)
{
	if (phase == 1) {
		/* A little of each kind right away; the rest after the daemon is done. */
		pat("dontneed kept (early)", dn, 1, 9, OPS_SEED);
		zt_zero_check("dontneed first page (early)", dn, P);
		zt_zero_check("dontneed middle (early)", dn + MID_START * P, 8 * P);
		return;
	}
	zt_zero_check("dontneed first page", dn, P);
	pat("dontneed kept 1", dn, 1, MID_START, OPS_SEED);
	zt_zero_check("dontneed middle", dn + MID_START * P, (MID_END - MID_START) * P);
	pat("dontneed kept 2", dn, MID_END, npages - 1, OPS_SEED);
	zt_zero_check("dontneed last page", dn + (npages - 1) * P, P);
}

static void dontneed_op(void)
{
	zt_lazy_probe("dontneed", dn, size);
	if (madvise(dn, P, MADV_DONTNEED) ||
	    madvise(dn + MID_START * P, (MID_END - MID_START) * P, MADV_DONTNEED) ||
	    madvise(dn + (npages - 1) * P, P, MADV_DONTNEED))
		zt_fail("dontneed: madvise: %s", strerror(errno));
}

/* --- munmap ----------------------------------------------------------------- */

static char *um;

static void munmap_setup(void)
{
	um = map_pattern("munmap", OPS_SEED);
}

static void munmap_op(void)
{
	char *fresh;

	zt_lazy_probe("munmap", um, size);
	if (munmap(um, P) || munmap(um + MID_START * P, (MID_END - MID_START) * P) ||
	    munmap(um + (npages - 3) * P, 3 * P)) {
		zt_fail("munmap: %s", strerror(errno));
		return;
	}
	fresh = mmap(um + (npages - 3) * P, 3 * P, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (fresh != um + (npages - 3) * P) {
		zt_fail("munmap: fresh mapping at %p: got %p (%s)", (void *)(um + (npages - 3) * P),
			(void *)fresh, fresh == MAP_FAILED ? strerror(errno) : "elsewhere");
		if (fresh != MAP_FAILED)
			munmap(fresh, 3 * P);
		return;
	}
	zt_pattern_fill(fresh, 3 * P, OPS_SEED2, 0);
}

static void munmap_check(int phase)
{
	if (phase == 1) {
		pat("munmap kept (early)", um, 1, 9, OPS_SEED);
		zt_unmapped_check("munmap first page (early)", um, P);
		zt_unmapped_check("munmap middle (early)", um + MID_START * P, (MID_END - MID_START) * P);
		return;
	}
	zt_unmapped_check("munmap first page", um, P);
	pat("munmap kept 1", um, 1, MID_START, OPS_SEED);
	zt_unmapped_check("munmap middle", um + MID_START * P, (MID_END - MID_START) * P);
	pat("munmap kept 2", um, MID_END, npages - 3, OPS_SEED);
	zt_pattern_check("munmap fresh tail", um + (npages - 3) * P, 3 * P, OPS_SEED2, 0);
}

/* --- mremap ----------------------------------------------------------------- */

/* mv: moved with MREMAP_FIXED; gi: grows in place into a hole; gm: grows by moving. */
static char *mv, *mv_to, *gi, *gm, *gm_to;
static size_t grow;

static void mremap_setup(void)
{
	grow = size / 2;
	mv = map_pattern("mremap move", OPS_SEED);
	/* gi gets a hole of @grow bytes above it, then its guard page. */
	gi = zt_map_guarded(size + grow);
	if (!gi)
		zt_setup_fail("mremap grow-in-place: mmap: %s", strerror(errno));
	zt_pattern_fill(gi, size, OPS_SEED + 1, 0);
	if (munmap(gi + size, grow))
		zt_setup_fail("mremap grow-in-place: munmap the hole: %s", strerror(errno));
	gm = map_pattern("mremap grow-move", OPS_SEED + 2);
}

static void mremap_op(void)
{
	void *r, *target;

	zt_lazy_probe("mremap move", mv, size);
	zt_lazy_probe("mremap grow-in-place", gi, size);
	zt_lazy_probe("mremap grow-move", gm, size);

	/* A fresh PROT_NONE reservation as the target: nothing lazy there. */
	target = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (target == MAP_FAILED) {
		zt_fail("mremap: reserve the target: %s", strerror(errno));
		return;
	}
	r = mremap(mv, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, target);
	if (r != target) {
		zt_fail("mremap move %p -> %p: %s", (void *)mv, target,
			r == MAP_FAILED ? strerror(errno) : "moved elsewhere");
		return;
	}
	mv_to = r;

	r = mremap(gi, size, size + grow, 0);
	if (r != gi) {
		zt_fail("mremap grow-in-place %p by %zu: %s", (void *)gi, grow,
			r == MAP_FAILED ? strerror(errno) : "moved");
		return;
	}

	r = mremap(gm, size, size + grow, MREMAP_MAYMOVE);
	if (r == MAP_FAILED || r == gm) {
		zt_fail("mremap grow-move %p by %zu: %s", (void *)gm, grow,
			r == MAP_FAILED ? strerror(errno) : "grew in place over its guard page");
		return;
	}
	gm_to = r;
}

static void mremap_check(int phase)
{
	size_t gp = grow / P;

	if (!mv_to || !gm_to)
		return;	/* the operation failed */
	if (phase == 1) {
		pat("mremap moved (early)", mv_to, 0, npages / 2, OPS_SEED);
		pat("mremap grown in place (early)", gi, 0, 8, OPS_SEED + 1);
		zt_zero_check("mremap grown in place, tail (early)", gi + size, 8 * P);
		pat("mremap grown by moving (early)", gm_to, 0, 8, OPS_SEED + 2);
		zt_zero_check("mremap grown by moving, tail (early)", gm_to + size, 8 * P);
		zt_unmapped_check("mremap moved, old range (early)", mv, size);
		zt_unmapped_check("mremap grown by moving, old range (early)", gm, size);
		return;
	}
	pat("mremap moved", mv_to, 0, npages, OPS_SEED);
	zt_unmapped_check("mremap moved, old range", mv, size);
	pat("mremap grown in place", gi, 0, npages, OPS_SEED + 1);
	zt_zero_check("mremap grown in place, tail", gi + size, gp * P);
	pat("mremap grown by moving", gm_to, 0, npages, OPS_SEED + 2);
	zt_zero_check("mremap grown by moving, tail", gm_to + size, gp * P);
	zt_unmapped_check("mremap grown by moving, old range", gm, size);
}

/* --- mprotect --------------------------------------------------------------- */

static char *mw1, *mw2;

static void mprotect_whole_setup(void)
{
	mw1 = map_pattern("mprotect 1", OPS_SEED);
	mw2 = map_pattern("mprotect 2", OPS_SEED + 1);
}

static void mprotect_whole_op(void)
{
	zt_lazy_probe("mprotect 1", mw1, size);
	zt_lazy_probe("mprotect 2", mw2, size);
	if (mprotect(mw1, size, PROT_NONE) || mprotect(mw2, size, PROT_NONE)) {
		zt_fail("mprotect PROT_NONE: %s", strerror(errno));
		return;
	}
	if (mprotect(mw1, size, PROT_READ))
		zt_fail("mprotect PROT_READ: %s", strerror(errno));
}

static void mprotect_whole_check(int phase)
{
	if (phase == 1) {
		pat("mprotect PROT_NONE, then PROT_READ", mw1, 0, npages, OPS_SEED);
		return;
	}
	if (mprotect(mw2, size, PROT_READ)) {
		zt_fail("mprotect PROT_READ (late): %s", strerror(errno));
		return;
	}
	pat("mprotect PROT_NONE until settled", mw2, 0, npages, OPS_SEED + 1);
	pat("mprotect PROT_NONE, then PROT_READ (late)", mw1, 0, npages, OPS_SEED);
}

/* --- mprotect-split ---------------------------------------------------------- */

static char *mp;
#define NEAR_START	(npages / 8 + 3)
#define NEAR_END	(npages / 8 + 8)

static void mprotect_setup(void)
{
	mp = map_pattern("mprotect", OPS_SEED);
}

static void mprotect_op(void)
{
	zt_lazy_probe("mprotect-split", mp, size);
	if (mprotect(mp + MID_START * P, (MID_END - MID_START) * P, PROT_NONE) ||
	    mprotect(mp + NEAR_START * P, (NEAR_END - NEAR_START) * P, PROT_NONE)) {
		zt_fail("mprotect PROT_NONE: %s", strerror(errno));
		return;
	}
	if (mprotect(mp + MID_START * P, (MID_END - MID_START) * P, PROT_READ))
		zt_fail("mprotect PROT_READ: %s", strerror(errno));
}

static void mprotect_check(int phase)
{
	if (phase == 1) {
		/* Read right after PROT_READ: the whole run, since it is the point. */
		pat("mprotect-split PROT_NONE, then PROT_READ", mp, MID_START, MID_END, OPS_SEED);
		pat("mprotect-split kept (early)", mp, 0, 8, OPS_SEED);
		return;
	}
	if (mprotect(mp + NEAR_START * P, (NEAR_END - NEAR_START) * P, PROT_READ)) {
		zt_fail("mprotect PROT_READ (late): %s", strerror(errno));
		return;
	}
	pat("mprotect-split kept 1", mp, 0, NEAR_START, OPS_SEED);
	pat("mprotect-split PROT_NONE until settled", mp, NEAR_START, NEAR_END, OPS_SEED);
	pat("mprotect-split kept 2", mp, NEAR_END, MID_START, OPS_SEED);
	pat("mprotect-split PROT_NONE, then PROT_READ (late)", mp, MID_START, MID_END, OPS_SEED);
	pat("mprotect-split kept 3", mp, MID_END, npages, OPS_SEED);
}

static const struct op {
	const char *name;
	void (*setup)(void);
	void (*op)(void);
	void (*check)(int phase);
} ops[] = {
	{ "dontneed", dontneed_setup, dontneed_op, dontneed_check },
	{ "munmap", munmap_setup, munmap_op, munmap_check },
	{ "mremap", mremap_setup, mremap_op, mremap_check },
	{ "mprotect", mprotect_whole_setup, mprotect_whole_op, mprotect_whole_check },
	{ "mprotect-split", mprotect_setup, mprotect_op, mprotect_check },
};

int main(int argc, char **argv)
{
	const char *opname = NULL;
	const struct zt_opt opts[] = {
		{ "op", ZT_OPT_STR, &opname, true, "dontneed|munmap|mremap|mprotect|mprotect-split" },
		{ "size", ZT_OPT_SIZE, &size, false, "bytes per region (default 8M, >= 64K)" },
		{ NULL },
	};
	const struct op *o = NULL;
	unsigned int i;
	int ret;

	zt_init(argc, argv, "lazyops", opts);
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(opname, ops[i].name))
			o = &ops[i];
	if (!o)
		zt_setup_fail("--op %s: dontneed, munmap, mremap, mprotect or mprotect-split", opname);
	if (size < (64 << 10) || size % (2 * P))
		zt_setup_fail("--size %zu: need a multiple of 8K of at least 64K", size);
	npages = size / P;

	o->setup();
	ret = zt_ready();
	if (ret)
		zt_setup_fail("pidfile: %s", strerror(-ret));
	zt_wait_term();

	o->op();
	if (!zt_failures())
		o->check(1);
	zt_settle();
	if (!zt_failures())
		o->check(2);
	zt_check_regions();	/* --ballast */
	return zt_finish();
}
