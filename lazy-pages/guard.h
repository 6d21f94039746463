/* SPDX-License-Identifier: MIT */
/*
 * The guard: a process forked at the daemon's start, before any thread, that holds a copy
 * of every served uffd until its task is complete and a pidfd of every task until the end.
 * A daemon that dies leaves the restored tasks blocked in their faults rather than reading
 * zeros; the guard then ends the whole tree (tree_kill) and only after that lets the uffds
 * go. Every call after a failed start is a no-op with a NULL guard.
 */
#ifndef LAZY_UFFD_GUARD_H
#define LAZY_UFFD_GUARD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct guard;
int guard_start(struct guard **out);
/* Hand the guard a copy of UFFD (ID names it for guard_release). */
int guard_hold(struct guard *g, uint32_t id, pid_t vpid, pid_t host_pid, int uffd);
/*
 * PIDFD names task ID's process (HOST_PID): the guard keeps a copy, to kill it with the
 * tree. OUTER_PPID and SID let it find a forked child the daemon had not found yet.
 */
int guard_pidfd(struct guard *g, uint32_t id, int pidfd, pid_t host_pid, pid_t outer_ppid, pid_t sid);
/* The task's memory is complete: the guard drops its copy. */
void guard_release(struct guard *g, uint32_t id);
/* The end: with COMPLETE the guard exits quietly, else, if any task was incomplete, it
 * kills the whole tree (every task it has a pidfd of, complete or not, and their
 * descendants). Waits for the guard to finish either way. */
void guard_close(struct guard *g, bool complete);

#endif
