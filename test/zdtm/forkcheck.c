// SPDX-License-Identifier: MIT
/*
 * forkcheck: fork after a (lazy) restore. Three pattern regions of --size bytes
 * (default 16M), none touched by anyone between the restore and the fork:
 *   A  the child reads all of it (its faults arrive on the uffd the kernel made for it
 *      at the fork), then overwrites its second half with another pattern
 *   B  the grandchild (forked by the child before the child reads anything, so its
 *      uffd comes from a forked uffd) reads all of it
 *   C  nobody reads it until the parent does, after zt_settle()
 *   D  the child drops its middle (MADV_DONTNEED) and unmaps its last quarter, then
 *      checks it; the parent's D must not change
 *   E  the parent moves it (mremap) right after the fork, while the child reads it
 *      at the old address; the parent reads it at the new one after zt_settle()
 * The parent waits for the child (which waits for the grandchild), then settles and
 * checks A (the child's writes must not show), B, C, D and E. A layout change in one
 * process must reach only the daemon's state for that process. Each process probes (mincore)
 * what it is about to read first, so --expect-lazy proves the pages were still missing.
 * Exit statuses: the child exits 1 if its own check failed, 2 if the grandchild failed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define FC_SEED		0xf0c4
#define FC_SEED_CHILD	0xf0c5

static size_t size = 16 << 20;
static char *a, *b, *c, *d, *e;

static int wait_child(const char *who, const char *what, pid_t pid)
{
	int ws = 0;
	pid_t p = waitpid(pid, &ws, 0);

	if (p != pid) {
		zt_fail("%s: waitpid(%s): %s", who, what, p < 0 ? strerror(errno) : "wrong pid");
		return -1;
	}
	if (!WIFEXITED(ws) || WEXITSTATUS(ws)) {
		zt_fail("%s: %s failed (wait status 0x%x); see OUTFILE.%s", who, what, ws, what);
		return -1;
	}
	return 0;
}

static void __attribute__((noreturn)) grandchild_main(void)
{
	zt_child_init("grandchild");
	zt_lazy_probe("B in the grandchild", b, size);
	zt_pattern_check("B in the grandchild", b, size, FC_SEED + 1, 0);
	_exit(zt_finish());
}

static void __attribute__((noreturn)) child_main(void)
{
	size_t half = size / 2;
	int st = 0;
	pid_t gc;

	zt_child_init("child");
	zt_lazy_probe("A in the child", a, size);
	zt_lazy_probe("D in the child", d, size);
	zt_lazy_probe("E in the child", e, size);
	/* Fork first: B must still be missing in the child when the grandchild is made. */
	gc = fork();
	if (gc < 0) {
		zt_fail("child: fork: %s", strerror(errno));
		st |= 2;
	} else if (gc == 0) {
		grandchild_main();
	}
	/* The layout changes next, while D is still missing; reading takes time. */
	if (madvise(d + size / 4, size / 4, MADV_DONTNEED) || munmap(d + size / 4 * 3, size / 4))
		zt_fail("child: D: madvise or munmap: %s", strerror(errno));
	zt_pattern_check("E in the child, at the old address", e, size, FC_SEED + 4, 0);
	zt_pattern_check("D in the child, first quarter", d, size / 4, FC_SEED + 3, 0);
	zt_zero_check("D in the child, dropped quarter", d + size / 4, size / 4);
	zt_pattern_check("D in the child, third quarter", d + size / 2, size / 4, FC_SEED + 3,
			 size / 2 / ZT_PAGE_SIZE);
	zt_unmapped_check("D in the child, unmapped quarter", d + size / 4 * 3, size / 4);

	zt_pattern_check("A in the child", a, size, FC_SEED, 0);
	zt_pattern_fill(a + half, half, FC_SEED_CHILD, 0);
	zt_pattern_check("A in the child, rewritten half", a + half, half, FC_SEED_CHILD, 0);
	zt_pattern_check("A in the child, first half", a, half, FC_SEED, 0);
	if (zt_failures())
		st |= 1;
	if (gc > 0 && wait_child("child", "grandchild", gc))
		st |= 2;
	zt_finish();
	_exit(st);
}

int main(int argc, char **argv)
{
	const struct zt_opt opts[] = {
		{ "size", ZT_OPT_SIZE, &size, false, "bytes per region (default 16M)" },
		{ NULL },
	};
	void *target, *moved;
	pid_t child;
	int ret;

	zt_init(argc, argv, "forkcheck", opts);
	if (!size || size % (4 * ZT_PAGE_SIZE))
		zt_setup_fail("--size %zu: need a positive multiple of 16K", size);
	a = zt_map_guarded(size);
	b = zt_map_guarded(size);
	c = zt_map_guarded(size);
	d = zt_map_guarded(size);
	e = zt_map_guarded(size);
	if (!a || !b || !c || !d || !e)
		zt_setup_fail("mmap: %s", strerror(errno));
	zt_pattern_fill(a, size, FC_SEED, 0);
	zt_pattern_fill(b, size, FC_SEED + 1, 0);
	zt_pattern_fill(c, size, FC_SEED + 2, 0);
	zt_pattern_fill(d, size, FC_SEED + 3, 0);
	zt_pattern_fill(e, size, FC_SEED + 4, 0);

	ret = zt_ready();
	if (ret)
		zt_setup_fail("pidfile: %s", strerror(-ret));
	zt_wait_term();

	/* Probe in the parent too: the regions are missing here as well at the fork. */
	zt_lazy_probe("A in the parent before the fork", a, size);
	child = fork();
	if (child < 0)
		zt_setup_fail("fork: %s", strerror(errno));
	if (child == 0)
		child_main();
	zt_lazy_probe("E in the parent before the move", e, size);
	target = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	moved = target == MAP_FAILED ? MAP_FAILED :
		mremap(e, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, target);
	if (moved == MAP_FAILED || moved != target)
		zt_fail("parent: move E: %s", strerror(errno));
	wait_child("parent", "child", child);

	zt_settle();
	zt_pattern_check("A in the parent", a, size, FC_SEED, 0);
	zt_pattern_check("B in the parent", b, size, FC_SEED + 1, 0);
	zt_pattern_check("C in the parent", c, size, FC_SEED + 2, 0);
	zt_pattern_check("D in the parent", d, size, FC_SEED + 3, 0);
	if (moved != MAP_FAILED) {
		zt_pattern_check("E in the parent, moved", moved, size, FC_SEED + 4, 0);
		zt_unmapped_check("E in the parent, old address", e, size);
	}
	zt_check_regions();	/* --ballast */
	return zt_finish();
}
