// SPDX-License-Identifier: MIT
/*
 * fanout: a root with --children N children (default 24, more than a daemon might
 * expect at first), each with --size bytes (default 1M) of its own pattern memory
 * and the root's inherited region, whose second half each child rewrites with its
 * own seed before the dump. Children report ready through one pipe each (closed
 * before the pidfile is written). On SIGTERM the root forwards it to every child;
 * each checks its memory and its inherited region and exits 0 or 1; the root checks
 * its own and every exit status.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define FO_SEED		0xfa40

static size_t size = 1 << 20;
static unsigned long nr_children = 24;
static char *inherited;

static void add_pattern(const char *what, char *mem, size_t len, uint64_t seed, uint64_t first)
{
	zt_pattern_fill(mem, len, seed, first);
	if (zt_region_add(what, mem, len, ZT_REGION_PATTERN, seed, first))
		zt_setup_fail("%s: too many regions", what);
}

static void __attribute__((noreturn)) child_main(unsigned long i, int ready_fd)
{
	char name[32], what[64];
	char *own;

	snprintf(name, sizeof(name), "child%lu", i);
	zt_child_init(name);
	own = zt_map_guarded(size);
	if (!own)
		zt_setup_fail("%s: mmap: %s", name, strerror(errno));
	snprintf(what, sizeof(what), "fanout %s own", name);
	add_pattern(what, own, size, FO_SEED + 1 + i, 0);
	snprintf(what, sizeof(what), "fanout %s inherited", name);
	zt_region_add(what, inherited, size / 2, ZT_REGION_PATTERN, FO_SEED, 0);
	snprintf(what, sizeof(what), "fanout %s inherited/own", name);
	add_pattern(what, inherited + size / 2, size / 2, FO_SEED + 1 + i, size / 2 / ZT_PAGE_SIZE);
	if (write(ready_fd, "r", 1) != 1)
		zt_setup_fail("%s: ready pipe: %s", name, strerror(errno));
	close(ready_fd);

	zt_wait_term();
	zt_check_regions();
	_exit(zt_finish());
}

int main(int argc, char **argv)
{
	const struct zt_opt opts[] = {
		{ "size", ZT_OPT_SIZE, &size, false, "bytes per process (default 1M)" },
		{ "children", ZT_OPT_ULONG, &nr_children, false, "children (default 24)" },
		{ NULL },
	};
	unsigned long i, bad = 0;
	pid_t *kids;
	char *own;
	int ret;

	zt_init(argc, argv, "fanout", opts);
	if (!size || size % (2 * ZT_PAGE_SIZE))
		zt_setup_fail("--size %zu: need a positive multiple of 8K", size);
	if (!nr_children || nr_children > 1000)
		zt_setup_fail("--children %lu: 1..1000", nr_children);
	kids = calloc(nr_children, sizeof(*kids));
	inherited = zt_map_guarded(size);
	own = zt_map_guarded(size);
	if (!kids || !inherited || !own)
		zt_setup_fail("memory: %s", strerror(errno));
	zt_pattern_fill(inherited, size, FO_SEED, 0);
	add_pattern("fanout root own", own, size, FO_SEED + 1000, 0);
	zt_region_add("fanout root inherited", inherited, size, ZT_REGION_PATTERN, FO_SEED, 0);

	for (i = 0; i < nr_children; i++)
		kids[i] = zt_fork_ready(i, child_main);

	ret = zt_ready();
	if (ret)
		zt_setup_fail("pidfile: %s", strerror(-ret));
	zt_wait_term();
	for (i = 0; i < nr_children; i++)
		kill(kids[i], SIGTERM);
	zt_check_regions();
	for (i = 0; i < nr_children; i++) {
		int ws = 0;

		if (waitpid(kids[i], &ws, 0) != kids[i] || !WIFEXITED(ws) || WEXITSTATUS(ws)) {
			if (!bad++)
				zt_fail("fanout: child%lu failed (wait status 0x%x); see OUTFILE.child%lu", i, ws,
					i);
		}
	}
	if (bad > 1)
		zt_fail("fanout: %lu of %lu children failed", bad, nr_children);
	return zt_finish();
}
