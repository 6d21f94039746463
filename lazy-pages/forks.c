// SPDX-License-Identifier: MIT
/*
 * The restored tree's processes, from the loop's side (contract in loop.h): the pid of
 * each child forked after the restore, found and named by a pidfd (and told to the guard),
 * and on failure the whole tree killed, complete tasks and forked children included.
 */
#include <signal.h>
#include <stdlib.h>

#include "guard.h"
#include "lazy_pages.h"
#include "loop.h"
#include "tree.h"

/* Looking for a forked child's pid: how often, and for how long before giving up. */
#define CLAIM_INTERVAL_NS 200000ULL
#define CLAIM_GIVE_UP_NS  5000000000ULL
/* How long forks_kill_tree waits for each killed process to be gone. */
#define KILL_WAIT_MS 10000

/*
 * Look for the pids of children forked after the restore (FORK gives their uffd before
 * the kernel has given them a pid): a new child of the parent, or, when the parent has
 * exited meanwhile, a process with uffd-registered memory under a reaper we know (the
 * tree's own tasks, or where criu's tasks hung at the handoff). Only after the finish
 * word, when every task criu restores has been handed over and is known.
 */
void forks_claim(struct daemon *d, bool now_or_never)
{
	pid_t *known, *reapers;
	size_t i, nk = 0, nr = 0;
	uint64_t now;

	/* Called on every pass of the loop: nothing but these tests when no fork is pending. */
	if (!d->nr_unclaimed || (!d->finished && !now_or_never))
		return;
	now = loop_now_ns();
	if (now < d->next_claim_ns && !now_or_never)
		return;
	d->next_claim_ns = now + CLAIM_INTERVAL_NS;
	known = calloc(d->nr_tasks, sizeof(*known));
	reapers = calloc(2 * d->nr_tasks, sizeof(*reapers));
	if (!known || !reapers)
		goto out;
	for (i = 0; i < d->nr_tasks; i++) {
		const struct lazy_task *t = d->tasks[i];

		if (t->host_pid > 0)
			known[nk++] = reapers[nr++] = t->host_pid;
		if (t->outer_ppid > 1)
			reapers[nr++] = t->outer_ppid;
	}
	for (i = 0; i < d->nr_tasks; i++) {
		struct lazy_task *c = d->tasks[i], *p = c->fork_parent;
		pid_t pid = 0;
		int fd;

		if (!p || p->host_pid <= 0)
			continue; /* a grandchild waits for its parent's pid */
		if (c->gone) {
			/* It exited: nothing of it is left to kill. */
			c->fork_parent = NULL;
			d->nr_unclaimed--;
			continue;
		}
		fd = tree_find_child(p->host_pid, known, nk, &pid);
		if (fd < 0 && (p->pidfd < 0 || tree_exited(p->pidfd)))
			fd = tree_find_orphan(reapers, nr, known, nk, c->sid, &pid);
		if (fd < 0) {
			if (!c->claim_since_ns)
				c->claim_since_ns = now;
			if (now - c->claim_since_ns < CLAIM_GIVE_UP_NS && !now_or_never)
				continue;
			if (c->done)
				pr_debug("the pid of a child forked by task %d (complete) was not found", c->parent_vpid);
			else
				pr_warn("the pid of a child forked by task %d was not found; were the daemon to loop_fail, it would not be killed unless it is still under the restored tree",
					c->parent_vpid);
		} else {
			c->host_pid = pid;
			c->pidfd = fd;
			known[nk++] = pid;
			pr_info("task %d's child forked after the restore is pid %d", c->parent_vpid, (int)pid);
			/* Even complete: on a failure the whole tree goes, this child with it. */
			guard_pidfd(d->guard, c->guard_id, fd, pid, 0, c->sid);
		}
		c->fork_parent = NULL;
		d->nr_unclaimed--;
	}
out:
	free(known);
	free(reapers);
}

/*
 * Never let a task run on with memory it did not get; and the rest of the tree goes
 * with it (README): complete tasks, forked children, everything they forked.
 */
void forks_kill_tree(struct daemon *d)
{
	int *fds = calloc(d->nr_tasks ? d->nr_tasks : 1, sizeof(*fds));
	size_t i, n = 0;

	forks_claim(d, true);
	for (i = 0; i < d->nr_tasks; i++) {
		struct lazy_task *t = d->tasks[i];
		bool incomplete = !t->done && !t->gone;

		if (t->pidfd >= 0 && !tree_exited(t->pidfd)) {
			if (incomplete)
				pr_err("killing restored task %d (pid %d): its memory cannot be completed", t->vpid,
				       t->host_pid);
			else
				pr_err("killing restored task %d (pid %d) with the rest of the tree", t->vpid,
				       t->host_pid);
			if (fds)
				fds[n++] = t->pidfd;
			else
				tree_kill(&t->pidfd, 1, KILL_WAIT_MS); /* one by one rather than not at all */
		} else if (t->pidfd < 0 && t->host_pid > 0 && incomplete) {
			pr_err("killing restored task %d (pid %d, by number: no pidfd): its memory cannot be completed",
			       t->vpid, t->host_pid);
			kill(t->host_pid, SIGKILL);
		} else if (t->host_pid <= 0 && incomplete && t->parent_vpid) {
			pr_err("a child forked by task %d has lazy memory that cannot be completed and no known pid: it dies with its parent's tree",
			       t->vpid);
		} else if (t->host_pid <= 0 && incomplete) {
			pr_err("restored task %d has lazy memory that cannot be completed and came without a pid: it dies with the tree only if it is in it",
			       t->vpid);
		}
	}
	tree_kill(fds, n, KILL_WAIT_MS);
	free(fds);
}
