// SPDX-License-Identifier: MIT
/*
 * hwbp-probe: do x86 hardware breakpoints set through ptrace fire here?
 *
 * criu (compel) stops a task coming out of its parasite or restorer with a hardware
 * breakpoint when it can set one, and waits for the trap. On some virtual machines the
 * debug registers are accepted but never fire (seen on a VM restored from a snapshot:
 * every `criu dump` then hung in wait4 with the task back in its own code). criu's fault
 * injection CRIU_FAULT=130 makes it step by syscalls instead, which always works.
 *
 * Exit 0: a breakpoint fired on every CPU tried; 1: one did not (the message says
 * where); 77: nothing to probe (not x86_64).
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
static volatile int sink;

static void __attribute__((noinline)) target(void)
{
	sink++;
	__asm__ volatile("" ::: "memory");
}

/* 1 fired, 0 did not, -1 the probe itself failed. */
static int probe_on(int cpu)
{
	cpu_set_t set;
	pid_t pid;
	int st, i;

	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL))
			_exit(3);
		raise(SIGSTOP);
		for (i = 0; i < 100; i++)
			target();
		_exit(0);
	}
	if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st))
		goto fail;
	if (ptrace(PTRACE_POKEUSER, pid, offsetof(struct user, u_debugreg[0]), (void *)target) ||
	    ptrace(PTRACE_POKEUSER, pid, offsetof(struct user, u_debugreg[7]), (void *)1UL))
		goto fail;
	if (ptrace(PTRACE_CONT, pid, NULL, NULL))
		goto fail;
	if (waitpid(pid, &st, 0) != pid)
		goto fail;
	if (WIFSTOPPED(st) && WSTOPSIG(st) == SIGTRAP) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return 1;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
fail:
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

int main(void)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int cpu, round, r;

	for (round = 0; round < 5; round++)
		for (cpu = 0; cpu < ncpu; cpu++) {
			r = probe_on(cpu);
			if (r < 0) {
				fprintf(stderr, "hwbp-probe: the probe failed on CPU %d: %m\n", cpu);
				return 2;
			}
			if (!r) {
				printf("a ptrace hardware breakpoint did not fire on CPU %d\n", cpu);
				return 1;
			}
		}
	return 0;
}
#else
int main(void)
{
	return 77;
}
#endif
