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
 *                  pattern, and map fresh memory with MAP_FIXED straight over another
 *                  run (both keep the second pattern)
 *   --op mremap    move a region to a new address (MREMAP_FIXED; the data is intact
 *                  there, the old range is unmapped), grow a region in place into a
 *                  hole left for it, and grow one that cannot grow in place (it moves);
 *                  grown tails read zero
 *   --op mremap-dontunmap  move a region with MREMAP_DONTUNMAP: the data is at the new
 *                  address, the old range stays mapped (and registered) and reads zero
 *   --op mremap-part  move the middle of a region elsewhere (MREMAP_FIXED; the region
 *                  is left as two VMAs with a hole), move the first 3 pages of another,
 *                  and shrink a third to half its size plus 5 pages
 *   --op stackgrow grow the main thread's stack (a GROWSDOWN VMA registered with the
 *                  uffd) by --stack bytes (default 2M) below what it was at the dump,
 *                  every frame holding its own pattern page
 *   --op churn     layout events while faults are in flight: four threads read their
 *                  own regions while the main thread moves 32 regions one by one
 *                  (mremap), drops a page of each (MADV_DONTNEED), unmaps another, and
 *                  reads each one back at once
 *   --op prot-layout  no change after the restore: one region was cut before the dump
 *                  into adjacent VMAs that differ only in protection (rw, r, none, rwx,
 *                  rw), all holding pattern data, so pagemap entries and daemon copies
 *                  meet VMA edges; the PROT_NONE part is made readable after SIGTERM
 *   --op mprotect  PROT_NONE on two whole regions, then PROT_READ on the first and
 *                  read it at once; the second stays PROT_NONE until after zt_settle(),
 *                  then is made readable and read
 *   --op mprotect-split  the same on parts of one region (a middle run, and a short
 *                  run near the start), which splits its VMA where the images have one
 *   --op madvise-split  MADV_NOHUGEPAGE on a middle run of a region: its VMA splits in
 *                  three, nothing else changes; then read the run at once
 *
 * Every region is --size bytes (default 8M) of pattern memory between guard pages.
 * Run it with --ballast (below the regions, filled first by a lazy daemon) so that the
 * regions are still missing when the operation happens; zt_lazy_probe() records it.
 */
#include <errno.h>
#include <pthread.h>
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

/* A run replaced with MAP_FIXED. */
#define REPL_START	(npages * 3 / 4 + 1)
#define REPL_END	(npages * 3 / 4 + 10)
static bool replaced;

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

	/* Over a lazy run without unmapping it first. */
	fresh = mmap(um + REPL_START * P, (REPL_END - REPL_START) * P, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (fresh != um + REPL_START * P) {
		zt_fail("munmap: MAP_FIXED over %p: %s", (void *)(um + REPL_START * P), strerror(errno));
		return;
	}
	zt_pattern_fill(fresh, (REPL_END - REPL_START) * P, OPS_SEED2, 100);
	replaced = true;
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
	pat("munmap kept 2", um, MID_END, REPL_START, OPS_SEED);
	if (replaced)
		zt_pattern_check("munmap MAP_FIXED run", um + REPL_START * P, (REPL_END - REPL_START) * P,
				 OPS_SEED2, 100);
	pat("munmap kept 3", um, REPL_END, npages - 3, OPS_SEED);
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

/* --- mremap-dontunmap --------------------------------------------------------- */

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP	4
#endif

static char *du, *du_to;

static void mremap_dontunmap_setup(void)
{
	du = map_pattern("mremap-dontunmap", OPS_SEED);
}

static void mremap_dontunmap_op(void)
{
	void *r;

	zt_lazy_probe("mremap-dontunmap", du, size);
	r = mremap(du, size, size, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
	if (r == MAP_FAILED || r == du) {
		zt_fail("mremap-dontunmap %p: %s", (void *)du, r == MAP_FAILED ? strerror(errno) : "did not move");
		return;
	}
	du_to = r;
}

static void mremap_dontunmap_check(int phase)
{
	if (!du_to)
		return;
	if (phase == 1) {
		pat("mremap-dontunmap moved (early)", du_to, 0, npages / 4, OPS_SEED);
		zt_zero_check("mremap-dontunmap old range (early)", du, npages / 4 * P);
		return;
	}
	pat("mremap-dontunmap moved", du_to, 0, npages, OPS_SEED);
	zt_zero_check("mremap-dontunmap old range", du, size);
}

/* --- mremap-part ------------------------------------------------------------- */

/* pm: its middle moves to pm_to; ph: its first 3 pages move to ph_to; ps: shrinks. */
static char *pm, *pm_to, *ph, *ph_to, *ps;
#define SHRUNK	(npages / 2 + 5)

static void mremap_part_setup(void)
{
	pm = map_pattern("mremap-part middle", OPS_SEED);
	ph = map_pattern("mremap-part head", OPS_SEED + 1);
	ps = map_pattern("mremap-part shrink", OPS_SEED + 2);
}

static void *move_to_new(const char *what, void *from, size_t len)
{
	void *target = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *r;

	if (target == MAP_FAILED) {
		zt_fail("%s: reserve the target: %s", what, strerror(errno));
		return NULL;
	}
	r = mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, target);
	if (r != target) {
		zt_fail("%s: mremap %p -> %p: %s", what, from, target,
			r == MAP_FAILED ? strerror(errno) : "moved elsewhere");
		return NULL;
	}
	return r;
}

static void mremap_part_op(void)
{
	void *r;

	zt_lazy_probe("mremap-part middle", pm, size);
	zt_lazy_probe("mremap-part head", ph, size);
	zt_lazy_probe("mremap-part shrink", ps, size);
	pm_to = move_to_new("mremap-part middle", pm + MID_START * P, (MID_END - MID_START) * P);
	ph_to = move_to_new("mremap-part head", ph, 3 * P);
	r = mremap(ps, size, SHRUNK * P, 0);
	if (r != ps)
		zt_fail("mremap-part shrink %p to %zu pages: %s", (void *)ps, SHRUNK,
			r == MAP_FAILED ? strerror(errno) : "moved");
}

static void mremap_part_check(int phase)
{
	size_t mid = MID_END - MID_START;

	if (!pm_to || !ph_to)
		return;
	if (phase == 1) {
		/* Next to every new edge first: a copy must not run across one. */
		pat("mremap-part middle, moved (early)", pm_to - MID_START * P, MID_START, MID_START + 8,
		    OPS_SEED);
		pat("mremap-part middle, moved, end (early)", pm_to - MID_START * P, MID_END - 8, MID_END,
		    OPS_SEED);
		pat("mremap-part middle, below the hole (early)", pm, MID_START - 8, MID_START, OPS_SEED);
		pat("mremap-part middle, above the hole (early)", pm, MID_END, MID_END + 8, OPS_SEED);
		pat("mremap-part head, moved (early)", ph_to, 0, 3, OPS_SEED + 1);
		pat("mremap-part head, the rest (early)", ph, 3, 11, OPS_SEED + 1);
		pat("mremap-part shrink, end (early)", ps, SHRUNK - 8, SHRUNK, OPS_SEED + 2);
		return;
	}
	pat("mremap-part middle, below the hole", pm, 0, MID_START, OPS_SEED);
	zt_unmapped_check("mremap-part middle, the hole", pm + MID_START * P, mid * P);
	pat("mremap-part middle, above the hole", pm, MID_END, npages, OPS_SEED);
	pat("mremap-part middle, moved", pm_to - MID_START * P, MID_START, MID_END, OPS_SEED);
	zt_unmapped_check("mremap-part head, old place", ph, 3 * P);
	pat("mremap-part head, moved", ph_to, 0, 3, OPS_SEED + 1);
	pat("mremap-part head, the rest", ph, 3, npages, OPS_SEED + 1);
	pat("mremap-part shrink, kept", ps, 0, SHRUNK, OPS_SEED + 2);
	zt_unmapped_check("mremap-part shrink, cut off", ps + SHRUNK * P, (npages - SHRUNK) * P);
}

/* --- stackgrow --------------------------------------------------------------- */

static size_t stack_bytes = 2 << 20;

/* One pattern page per frame, checked on the way back up. */
static unsigned int __attribute__((noinline)) stack_grow(size_t depth, size_t max)
{
	uint64_t frame[P / sizeof(uint64_t)] __attribute__((aligned(4096)));
	unsigned int bad = 0;

	zt_pattern_fill(frame, P, OPS_SEED + 7, depth);
	if (depth + 1 < max)
		bad = stack_grow(depth + 1, max);
	if (zt_pattern_check("stackgrow frame", frame, P, OPS_SEED + 7, depth))
		bad++;
	return bad;
}

static void stackgrow_setup(void)
{
}

static void stackgrow_op(void)
{
	/* Frames are a little more than a page: stay within --stack. */
	size_t depth = stack_bytes / (2 * P);

	if (stack_grow(0, depth))
		zt_fail("stackgrow: bad frames in %zu", depth);
}

static void stackgrow_check(int phase)
{
	if (phase == 2)
		stackgrow_op();
}

/* --- churn ------------------------------------------------------------------ */

#define CH_THREADS	4
#define CH_POOL		32
/*
 * Per pool region; page 3 is dropped, page 7 unmapped. More than one of a remote
 * daemon's background requests (1 MiB), which asks for smaller ranges first: the
 * regions must still be lazy when they are moved.
 */
#define CH_PAGES	((1UL << 20) / P + 16)

static char *ch_own[CH_THREADS], *ch_pool[CH_POOL], *ch_moved[CH_POOL];
static pthread_t ch_th[CH_THREADS];
static pthread_barrier_t ch_barrier;

static void *churn_reader(void *arg)
{
	unsigned long t = (unsigned long)arg;

	pthread_barrier_wait(&ch_barrier);
	zt_pattern_check("churn reader", ch_own[t], size, OPS_SEED + 10 + t, 0);
	return NULL;
}

static void churn_setup(void)
{
	unsigned long i;
	int ret;

	for (i = 0; i < CH_THREADS; i++)
		ch_own[i] = map_pattern("churn reader", OPS_SEED + 10 + i);
	for (i = 0; i < CH_POOL; i++) {
		ch_pool[i] = zt_map_guarded(CH_PAGES * P);
		if (!ch_pool[i])
			zt_setup_fail("churn pool: mmap: %s", strerror(errno));
		zt_pattern_fill(ch_pool[i], CH_PAGES * P, OPS_SEED + 100 + i, 0);
	}
	ret = pthread_barrier_init(&ch_barrier, NULL, CH_THREADS + 1);
	if (ret)
		zt_setup_fail("pthread_barrier_init: %s", strerror(ret));
	/* The readers wait at the barrier from before the dump on. */
	for (i = 0; i < CH_THREADS; i++) {
		ret = pthread_create(&ch_th[i], NULL, churn_reader, (void *)i);
		if (ret)
			zt_setup_fail("pthread_create: %s", strerror(ret));
	}
}

static void churn_check_pool(const char *when, unsigned long i)
{
	char what[64];

	snprintf(what, sizeof(what), "churn pool %lu %s", i, when);
	zt_pattern_check(what, ch_moved[i], 3 * P, OPS_SEED + 100 + i, 0);
	zt_zero_check(what, ch_moved[i] + 3 * P, P);
	zt_pattern_check(what, ch_moved[i] + 4 * P, 3 * P, OPS_SEED + 100 + i, 4);
	zt_unmapped_check(what, ch_moved[i] + 7 * P, P);
	zt_pattern_check(what, ch_moved[i] + 8 * P, (CH_PAGES - 8) * P, OPS_SEED + 100 + i, 8);
	zt_unmapped_check(what, ch_pool[i], CH_PAGES * P);
}

static void churn_op(void)
{
	unsigned long i;

	for (i = 0; i < CH_THREADS; i++)
		zt_lazy_probe("churn reader", ch_own[i], size);
	zt_lazy_probe("churn pool", ch_pool[CH_POOL - 1], CH_PAGES * P);
	pthread_barrier_wait(&ch_barrier);
	for (i = 0; i < CH_POOL; i++) {
		void *target = mmap(NULL, CH_PAGES * P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		void *r = target == MAP_FAILED ? MAP_FAILED :
			  mremap(ch_pool[i], CH_PAGES * P, CH_PAGES * P, MREMAP_MAYMOVE | MREMAP_FIXED, target);

		if (r == MAP_FAILED || r != target) {
			zt_fail("churn pool %lu: mremap: %s", i, strerror(errno));
			break;
		}
		ch_moved[i] = r;
		if (madvise(ch_moved[i] + 3 * P, P, MADV_DONTNEED) || munmap(ch_moved[i] + 7 * P, P)) {
			zt_fail("churn pool %lu: madvise or munmap: %s", i, strerror(errno));
			break;
		}
		churn_check_pool("(early)", i);
	}
	for (i = 0; i < CH_THREADS; i++)
		pthread_join(ch_th[i], NULL);
}

static void churn_check(int phase)
{
	unsigned long i;

	if (phase != 2)
		return;
	for (i = 0; i < CH_THREADS; i++)
		zt_pattern_check("churn reader (late)", ch_own[i], size, OPS_SEED + 10 + i, 0);
	for (i = 0; i < CH_POOL && ch_moved[i]; i++)
		churn_check_pool("(late)", i);
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

/* --- prot-layout ------------------------------------------------------------- */

static char *pl;
/* Edges at odd offsets, not chunk aligned; the last one is the end of the region. */
#define PL_EDGE(k)	((k) == 5 ? npages : (k) * npages / 5 + (k))

static void prot_layout_setup(void)
{
	static const int prot[5] = { PROT_READ | PROT_WRITE, PROT_READ, PROT_NONE,
				     PROT_READ | PROT_WRITE | PROT_EXEC, PROT_READ | PROT_WRITE };
	int k;

	pl = map_pattern("prot-layout", OPS_SEED);
	for (k = 0; k < 5; k++)
		if (mprotect(pl + PL_EDGE(k) * P, (PL_EDGE(k + 1) - PL_EDGE(k)) * P, prot[k]))
			zt_setup_fail("prot-layout: mprotect part %d: %s", k, strerror(errno));
}

static void prot_layout_op(void)
{
	zt_lazy_probe("prot-layout", pl, size);
}

static void prot_layout_check(int phase)
{
	int k;

	if (phase == 1) {
		/* Right below and above every edge first. */
		for (k = 1; k < 5; k++) {
			if (k == 2 || k == 3)
				continue;	/* next to the PROT_NONE part: phase 2 */
			pat("prot-layout below an edge (early)", pl, PL_EDGE(k) - 4, PL_EDGE(k), OPS_SEED);
			pat("prot-layout above an edge (early)", pl, PL_EDGE(k), PL_EDGE(k) + 4, OPS_SEED);
		}
		return;
	}
	if (mprotect(pl + PL_EDGE(2) * P, (PL_EDGE(3) - PL_EDGE(2)) * P, PROT_READ)) {
		zt_fail("prot-layout: mprotect PROT_READ: %s", strerror(errno));
		return;
	}
	pat("prot-layout", pl, 0, npages, OPS_SEED);
}

/* --- madvise-split ----------------------------------------------------------- */

static char *ms;

static void madvise_split_setup(void)
{
	ms = map_pattern("madvise-split", OPS_SEED);
}

static void madvise_split_op(void)
{
	zt_lazy_probe("madvise-split", ms, size);
	if (madvise(ms + MID_START * P, (MID_END - MID_START) * P, MADV_NOHUGEPAGE))
		zt_fail("madvise-split: MADV_NOHUGEPAGE: %s", strerror(errno));
}

static void madvise_split_check(int phase)
{
	if (phase == 1) {
		pat("madvise-split middle (early)", ms, MID_START, MID_END, OPS_SEED);
		return;
	}
	pat("madvise-split", ms, 0, npages, OPS_SEED);
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
	{ "mremap-part", mremap_part_setup, mremap_part_op, mremap_part_check },
	{ "mremap-dontunmap", mremap_dontunmap_setup, mremap_dontunmap_op, mremap_dontunmap_check },
	{ "stackgrow", stackgrow_setup, stackgrow_op, stackgrow_check },
	{ "churn", churn_setup, churn_op, churn_check },
	{ "mprotect", mprotect_whole_setup, mprotect_whole_op, mprotect_whole_check },
	{ "mprotect-split", mprotect_setup, mprotect_op, mprotect_check },
	{ "madvise-split", madvise_split_setup, madvise_split_op, madvise_split_check },
	{ "prot-layout", prot_layout_setup, prot_layout_op, prot_layout_check },
};

int main(int argc, char **argv)
{
	const char *opname = NULL;
	const struct zt_opt opts[] = {
		{ "op", ZT_OPT_STR, &opname, true, "dontneed|munmap|mremap|mremap-part|mremap-dontunmap|stackgrow|churn|mprotect|mprotect-split|madvise-split|prot-layout" },
		{ "size", ZT_OPT_SIZE, &size, false, "bytes per region (default 8M, >= 64K)" },
		{ "stack", ZT_OPT_SIZE, &stack_bytes, false, "stackgrow: bytes of stack (default 2M)" },
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
		zt_setup_fail("--op %s: see the comment at the top of lazyops.c", opname);
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
