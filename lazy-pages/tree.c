// SPDX-License-Identifier: MIT
/*
 * The restored tree as processes: pidfds for the tasks criu hands over and for the
 * children they fork later, and the one way the daemon and the guard end such a tree.
 *
 * A task is named by a pidfd from the moment its uffd arrives, never by a pid number
 * alone: a restored tree that dies and a pid reused by an unrelated process must not be
 * confused when we send SIGKILL.
 *
 * A child forked after the restore is announced by a FORK event on its parent's uffd
 * before the kernel has given it a pid, so its pid is found afterwards among the parent's
 * children; a parent that exits at once leaves the child to a reaper, where it is found
 * by its uffd-registered memory (tree_find_orphan).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tree.h"
#include "lazy_pages.h"

#ifndef KCMP_VM
#define KCMP_VM 1
#endif

/* Walking a tree that forks faster than we stop it must still end. */
#define TREE_MAX_PROCS 65536
#define TREE_WALK_ROUNDS 8

int tree_pidfd(pid_t pid)
{
	return pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
}

static int pidfd_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* "State" and "PPid" of PID from /proc/PID/status; -1 when it is gone. */
static int proc_status(pid_t pid, char *state, pid_t *ppid)
{
	char path[64], line[256];
	FILE *f;
	int got = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (got < 2 && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "State:", 6)) {
			char *p = line + 6;

			while (*p == ' ' || *p == '\t')
				p++;
			*state = *p;
			got++;
		} else if (!strncmp(line, "PPid:", 5)) {
			*ppid = (pid_t)atoi(line + 5);
			got++;
		}
	}
	fclose(f);
	return got == 2 ? 0 : -1;
}

pid_t tree_sid(pid_t pid)
{
	char path[64], buf[512], *p;
	int sid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	/* After the last ')' of the comm: state, ppid, pgrp, session. */
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && sscanf(p + 1, " %*c %*d %*d %d", &sid) != 1)
		sid = 0;
	fclose(f);
	return sid;
}

pid_t tree_ppid(pid_t pid)
{
	pid_t ppid = 0;
	char st = 0;

	return proc_status(pid, &st, &ppid) ? 0 : ppid;
}

/* Every child of every thread of PID, appended to *V (which grows). */
static void add_children(pid_t pid, pid_t **v, size_t *n, size_t *cap)
{
	char path[64];
	struct dirent *de;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return;
	while ((de = readdir(dir))) {
		char cpath[96];
		FILE *f;
		int c;

		if (de->d_name[0] == '.')
			continue;
		snprintf(cpath, sizeof(cpath), "/proc/%d/task/%.16s/children", (int)pid, de->d_name);
		f = fopen(cpath, "re");
		if (!f)
			continue;
		while (*n < TREE_MAX_PROCS && fscanf(f, "%d", &c) == 1) {
			if (*n == *cap) {
				size_t nc = *cap ? *cap * 2 : 64;
				pid_t *nv = realloc(*v, nc * sizeof(*nv));

				if (!nv)
					break;
				*v = nv;
				*cap = nc;
			}
			(*v)[(*n)++] = c;
		}
		fclose(f);
	}
	closedir(dir);
}

static bool known(pid_t pid, const pid_t *set, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (set[i] == pid)
			return true;
	return false;
}

static bool same_mm(pid_t a, pid_t b)
{
	return syscall(SYS_kcmp, a, b, KCMP_VM, 0, 0) == 0;
}

/* Whether PID has memory registered with a uffd for missing pages ("um" in VmFlags). */
static bool has_uffd_vma(pid_t pid)
{
	char path[64], line[512];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmFlags:", 8) && strstr(line, " um"))
			found = true;
	fclose(f);
	return found;
}

/*
 * A pidfd for CHILD only while it is still PARENT's live child (not a zombie): between
 * reading the children list and pidfd_open the pid could have died and been reused.
 */
static int child_pidfd(pid_t parent, pid_t child)
{
	pid_t ppid = 0;
	char st = 0;
	int fd = tree_pidfd(child);

	if (fd < 0)
		return -1;
	if (proc_status(child, &st, &ppid) || (parent > 0 && ppid != parent) || st == 'Z' || st == 'X') {
		close(fd);
		return -1;
	}
	return fd;
}

int tree_find_child(pid_t parent, const pid_t *skip, size_t nr_skip, pid_t *child)
{
	pid_t *v = NULL;
	size_t n = 0, cap = 0, i;
	int fd = -1;

	add_children(parent, &v, &n, &cap);
	for (i = 0; i < n && fd < 0; i++) {
		if (known(v[i], skip, nr_skip))
			continue;
		/* A CLONE_VM child (vfork, posix_spawn) shares the parent's uffd: no FORK. */
		if (same_mm(parent, v[i]))
			continue;
		fd = child_pidfd(parent, v[i]);
		if (fd >= 0)
			*child = v[i];
	}
	free(v);
	return fd;
}

int tree_find_orphan(const pid_t *reapers, size_t nr_reapers, const pid_t *skip, size_t nr_skip, pid_t sid,
		     pid_t *child)
{
	pid_t *v = NULL;
	size_t n = 0, cap = 0, i;
	int fd = -1;

	for (i = 0; i < nr_reapers; i++)
		if (reapers[i] > 0)
			add_children(reapers[i], &v, &n, &cap);
	for (i = 0; i < n && fd < 0; i++) {
		if (known(v[i], skip, nr_skip) || (sid > 0 && tree_sid(v[i]) != sid) || !has_uffd_vma(v[i]))
			continue;
		fd = child_pidfd(0, v[i]);
		if (fd >= 0)
			*child = v[i];
	}
	free(v);
	return fd;
}

bool tree_exited(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

pid_t tree_pidfd_pid(int pidfd)
{
	char path[64], line[128];
	pid_t pid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Pid:", 4)) {
			pid = (pid_t)atoi(line + 4);
			break;
		}
	fclose(f);
	return pid;
}

struct victims {
	pid_t *pid;
	int *fd;
	size_t n, cap;
};

static int victims_add(struct victims *vs, pid_t pid, int fd)
{
	if (vs->n == vs->cap) {
		size_t nc = vs->cap ? vs->cap * 2 : 64;
		pid_t *np = realloc(vs->pid, nc * sizeof(*np));
		int *nf;

		if (!np)
			return -ENOMEM;
		vs->pid = np;
		nf = realloc(vs->fd, nc * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		vs->fd = nf;
		vs->cap = nc;
	}
	vs->pid[vs->n] = pid;
	vs->fd[vs->n] = fd;
	vs->n++;
	return 0;
}

/*
 * Stop everything first, then look for descendants, then kill: a task that is killed
 * before its children are found leaves them to a reaper outside the tree, and a task
 * that runs while we walk can fork past us.
 */
size_t tree_kill(const int *pidfds, size_t nr, int wait_ms)
{
	struct victims vs = { 0 };
	size_t i, walked = 0, killed = 0;
	int round;

	for (i = 0; i < nr; i++) {
		pid_t pid;
		int fd;

		if (pidfds[i] < 0)
			continue;
		pid = tree_pidfd_pid(pidfds[i]);
		if (pid <= 0)
			continue; /* exited: its children were reparented, found by the caller or not at all */
		fd = dup(pidfds[i]);
		if (fd < 0 || victims_add(&vs, pid, fd)) {
			/* Cannot track it: kill it now rather than not at all. */
			pidfd_signal(pidfds[i], SIGKILL);
			if (fd >= 0)
				close(fd);
			continue;
		}
		pidfd_signal(fd, SIGSTOP);
	}
	for (round = 0; round < TREE_WALK_ROUNDS && walked < vs.n; round++) {
		size_t end = vs.n;

		for (; walked < end; walked++) {
			pid_t *c = NULL;
			size_t nc = 0, cc = 0, j;

			add_children(vs.pid[walked], &c, &nc, &cc);
			for (j = 0; j < nc && vs.n < TREE_MAX_PROCS; j++) {
				int fd;

				if (known(c[j], vs.pid, vs.n))
					continue;
				fd = child_pidfd(vs.pid[walked], c[j]);
				if (fd < 0)
					continue;
				if (victims_add(&vs, c[j], fd)) {
					pidfd_signal(fd, SIGKILL);
					close(fd);
					continue;
				}
				pidfd_signal(fd, SIGSTOP);
			}
			free(c);
		}
	}
	for (i = 0; i < vs.n; i++)
		if (!pidfd_signal(vs.fd[i], SIGKILL))
			killed++;
		else if (errno != ESRCH)
			pr_err("cannot kill pid %d: %m", vs.pid[i]);
	for (i = 0; i < vs.n; i++) {
		struct pollfd p = { .fd = vs.fd[i], .events = POLLIN };

		/* A pidfd turns readable once the whole thread group has exited. */
		if (wait_ms > 0 && poll(&p, 1, wait_ms) != 1)
			pr_err("pid %d still runs %d ms after SIGKILL", vs.pid[i], wait_ms);
		close(vs.fd[i]);
	}
	free(vs.pid);
	free(vs.fd);
	return killed;
}
