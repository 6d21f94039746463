/* SPDX-License-Identifier: MIT */
/*
 * The restored tree as processes: pidfds, never bare pid numbers, name the tasks we may
 * kill; finding the pid of a child forked after the restore; ending the whole tree so
 * that nothing forks past the walk. Knows nothing of uffds or images.
 */
#ifndef LAZY_UFFD_TREE_H
#define LAZY_UFFD_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* pidfd_open(PID): a pidfd or -1 with errno. */
int tree_pidfd(pid_t pid);
/* PID's parent, or 0 when it is gone. */
pid_t tree_ppid(pid_t pid);
/* Whether the process PIDFD names has exited. */
bool tree_exited(int pidfd);
/* The pid a pidfd names in our pid namespace, or -1 once it has exited. */
pid_t tree_pidfd_pid(int pidfd);
/* A live child of PARENT (any thread's) not in SKIP and not sharing PARENT's mm: its
 * pidfd (pid in *CHILD), or -1 when there is none yet. */
int tree_find_child(pid_t parent, const pid_t *skip, size_t nr_skip, pid_t *child);
/* The same among the children of REAPERS, for a child whose parent exited: only a
 * process of session SID (when > 0) with uffd-registered memory qualifies. */
int tree_find_orphan(const pid_t *reapers, size_t nr_reapers, const pid_t *skip, size_t nr_skip, pid_t sid,
		     pid_t *child);
/* PID's session as our pid namespace sees it, or 0. */
pid_t tree_sid(pid_t pid);
/* SIGSTOP every process named by PIDFDS (-1 entries skipped) and all their descendants,
 * then SIGKILL them all and wait up to WAIT_MS for each to be gone. Returns how many
 * were signalled. */
size_t tree_kill(const int *pidfds, size_t nr, int wait_ms);

#endif
