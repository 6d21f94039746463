// SPDX-License-Identifier: MIT
/*
 * tree: four processes, covering both shapes (a chain and siblings):
 *     root (pid 1) -+- child1 (pid 2) --- grandchild (pid 3)
 *                   `- child2 (pid 4)
 * Each has its own pattern memory (--size bytes, default 4M, seed by name). The root
 * also fills a "shared" region before forking: every descendant inherits it
 * copy-on-write and rewrites its second half with its own seed, so after restore
 * the first half must still hold the root's pattern in every process.
 *
 * Readiness goes bottom-up through pipes that are closed before the pidfile is
 * written (no pipe crosses the dump). On SIGTERM every process forwards it to its
 * children, checks its own memory, pid and parent pid, waits for its children and
 * exits with: bit 0 own check failed, bit 1 a descendant failed. The root writes
 * the outfile; each child writes OUTFILE.<name> with its own verdict too.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define TREE_SEED	0x7733
#define MAX_KIDS	2

struct node {
	const char *name;
	pid_t pid;			/* expected pid inside the namespace */
	int nr_kids;
	const struct node *kids[MAX_KIDS];
};

static const struct node grandchild = { "grandchild", 3, 0, { NULL } };
static const struct node child1 = { "child1", 2, 1, { &grandchild } };
static const struct node child2 = { "child2", 4, 0, { NULL } };
static const struct node root = { "root", 1, 2, { &child1, &child2 } };

static size_t size = 4 << 20;
static char *shared;

static uint64_t seed_of(const struct node *n)
{
	return TREE_SEED + n->pid;
}

static void setup_node(const struct node *n, pid_t *kid_pids);

/* The life of child @k of @parent after fork: set up, report ready on @ready_fd,
 * wait for SIGTERM, forward it, check, reap the children, exit. */
static void __attribute__((noreturn))
child_main(const struct node *parent, const struct node *k, int ready_fd)
{
	pid_t kids[MAX_KIDS];
	int j, st = 0;

	zt_child_init(k->name);
	if (getpid() != k->pid)
		zt_setup_fail("%s has pid %d, expected %d", k->name, (int)getpid(), (int)k->pid);
	setup_node(k, kids);
	if (write(ready_fd, "r", 1) != 1)
		zt_setup_fail("%s: ready pipe: %s", k->name, strerror(errno));
	close(ready_fd);

	zt_wait_term();
	for (j = 0; j < k->nr_kids; j++)
		kill(kids[j], SIGTERM);
	if (getppid() != parent->pid)
		zt_fail("%s: parent pid is %d, expected %d", k->name, (int)getppid(),
			(int)parent->pid);
	zt_check_regions();
	if (zt_failures())
		st |= 1;
	for (j = 0; j < k->nr_kids; j++) {
		int ws = 0;

		if (waitpid(kids[j], &ws, 0) != kids[j] || !WIFEXITED(ws) || WEXITSTATUS(ws)) {
			zt_fail("%s: %s failed (wait status 0x%x)", k->name, k->kids[j]->name, ws);
			st |= 2;
		}
	}
	zt_finish();
	_exit(st);
}

/* Set up @n in the calling process: memory, then children, depth first. */
static void setup_node(const struct node *n, pid_t *kid_pids)
{
	char what[48];
	char *mem;
	int i;

	mem = zt_map_guarded(size);
	if (!mem)
		zt_setup_fail("%s: mmap: %s", n->name, strerror(errno));
	zt_pattern_fill(mem, size, seed_of(n), 0);
	snprintf(what, sizeof(what), "tree %s own", n->name);
	zt_region_add(what, mem, size, ZT_REGION_PATTERN, seed_of(n), 0);

	if (n != &root)
		zt_pattern_fill(shared + size / 2, size / 2, seed_of(n), size / 2 / ZT_PAGE_SIZE);
	snprintf(what, sizeof(what), "tree %s shared", n->name);
	zt_region_add(what, shared, size / 2, ZT_REGION_PATTERN, seed_of(&root), 0);
	snprintf(what, sizeof(what), "tree %s shared/own", n->name);
	zt_region_add(what, shared + size / 2, size / 2, ZT_REGION_PATTERN, seed_of(n),
		      size / 2 / ZT_PAGE_SIZE);

	for (i = 0; i < n->nr_kids; i++) {
		const struct node *k = n->kids[i];
		int fds[2];
		char c;

		if (pipe(fds))
			zt_setup_fail("%s: pipe: %s", n->name, strerror(errno));
		kid_pids[i] = fork();
		if (kid_pids[i] < 0)
			zt_setup_fail("%s: fork: %s", n->name, strerror(errno));
		if (kid_pids[i] == 0) {
			close(fds[0]);
			child_main(n, k, fds[1]);
		}
		close(fds[1]);
		/* A child that dies during setup closes the pipe without writing. */
		if (read(fds[0], &c, 1) != 1)
			zt_setup_fail("%s: %s did not get ready", n->name, k->name);
		close(fds[0]);
	}
}

int main(int argc, char **argv)
{
	const struct zt_opt opts[] = {
		{ "size", ZT_OPT_SIZE, &size, false, "bytes of own memory per process (default 4M)" },
		{ NULL },
	};
	pid_t kids[MAX_KIDS];
	int i, ret;

	zt_init(argc, argv, "tree", opts);
	if (size < 2 * ZT_PAGE_SIZE || size % (2 * ZT_PAGE_SIZE))
		zt_setup_fail("--size %zu: need a multiple of 8K", size);
	if (getpid() != 1)
		zt_setup_fail("not the init of a pid namespace (pid %d)", (int)getpid());

	shared = zt_map_guarded(size);
	if (!shared)
		zt_setup_fail("mmap shared: %s", strerror(errno));
	zt_pattern_fill(shared, size, seed_of(&root), 0);
	setup_node(&root, kids);

	ret = zt_ready();
	if (ret)
		zt_setup_fail("pidfile: %s", strerror(-ret));
	zt_wait_term();
	for (i = 0; i < root.nr_kids; i++)
		kill(kids[i], SIGTERM);
	zt_check_regions();
	for (i = 0; i < root.nr_kids; i++) {
		int ws = 0;
		pid_t p = waitpid(kids[i], &ws, 0);

		if (p != kids[i])
			zt_fail("root: waitpid(%s): %s", root.kids[i]->name,
				p < 0 ? strerror(errno) : "wrong pid");
		else if (!WIFEXITED(ws))
			zt_fail("root: %s died (wait status 0x%x)", root.kids[i]->name, ws);
		else if (WEXITSTATUS(ws))
			zt_fail("root: %s exited %d (%s); see OUTFILE.<name>", root.kids[i]->name,
				WEXITSTATUS(ws),
				WEXITSTATUS(ws) == 1 ? "its own check failed" :
				WEXITSTATUS(ws) == 2 ? "a descendant failed" :
				"its own check and a descendant failed");
	}
	return zt_finish();
}
