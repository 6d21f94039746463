/* SPDX-License-Identifier: MIT */
/*
 * What the wrappers that run one command and exit with its status share
 * (test/tools/ns-run, bench/rusage): their usage error and the reap.
 */
#ifndef LU_TOOLS_CHILD_H
#define LU_TOOLS_CHILD_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* child_usage USAGE: the command line was wrong: "usage: USAGE" on stderr, exit 2. */
static inline __attribute__((noreturn)) void child_usage(const char *usage)
{
	fprintf(stderr, "usage: %s\n", usage);
	exit(2);
}

/*
 * child_reap: wait for PID (a signal that interrupts the wait is no reason to stop: the
 * wrappers forward some) and fill RU if not NULL. Returns its exit status, or 128 + the
 * signal that killed it, as a shell would; -1 with errno when it cannot be waited for.
 */
static inline int child_reap(pid_t pid, struct rusage *ru)
{
	int status;

	while (wait4(pid, &status, 0, ru) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#endif
