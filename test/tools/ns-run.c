// SPDX-License-Identifier: MIT
/*
 * ns-run: run a program as a container would, for criu to dump from outside: as the
 * init of new user, pid and mount namespaces, root of the user namespace mapped to an
 * unprivileged host id range, with DIR as its whole file system (pivot_root) and its
 * own /proc.
 *
 *   ns-run --root DIR --map INSIDE:OUTSIDE:COUNT --hostpid FILE -- PROG [ARGS...]
 *
 * DIR must hold an empty proc/ and old/ and PROG (a path inside DIR; static, as nothing
 * else is there). The same map is written to uid_map and gid_map, by this process (it
 * stays in the parent namespaces), before the child does anything. FILE gets the
 * child's pid as the host sees it (written before the child execs; the pid PROG writes
 * itself is 1). ns-run waits for the child and exits with its status (128 + signal if
 * killed); 125 when the setup fails, with the reason on stderr. PROG gets stdin, stdout
 * and stderr as given and no other fd: pass ones criu can dump (files inside DIR).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"

#define SETUP_FAILED 125

struct child_args {
	const char *root;
	char **argv;
	int sync[2]; /* the parent closes its end once the maps are written */
};

static int die(const char *what)
{
	fprintf(stderr, "ns-run: %s: %s\n", what, strerror(errno));
	return SETUP_FAILED;
}

static int child_main(void *arg)
{
	struct child_args *a = arg;
	char c;

	close(a->sync[1]);
	if (read(a->sync[0], &c, 1) != 0) {
		fprintf(stderr, "ns-run: the parent failed to set up the id maps\n");
		return SETUP_FAILED;
	}
	close(a->sync[0]);

	/*
	 * Still the host's uid here (only setuid below moves to the mapped one), so the
	 * path to DIR is searchable even through directories only root may enter.
	 */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return die("make / private");
	if (mount(a->root, a->root, NULL, MS_BIND, NULL))
		return die("bind DIR onto itself");
	if (chdir(a->root))
		return die("chdir DIR");
	if (syscall(SYS_pivot_root, ".", "old"))
		return die("pivot_root(., old)");
	if (chdir("/"))
		return die("chdir /");
	/* Before old/ goes: a user namespace may mount proc only where one is visible. */
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL))
		return die("mount /proc");
	if (umount2("/old", MNT_DETACH))
		return die("umount /old");
	if (setgroups(0, NULL) || setresgid(0, 0, 0) || setresuid(0, 0, 0))
		return die("become root of the user namespace");
	if (setsid() < 0)
		return die("setsid");
	/* Host files inherited from the caller would be outside every mount criu can see. */
	if (syscall(SYS_close_range, 3, ~0U, 0))
		return die("close_range");
	execv(a->argv[0], a->argv);
	return die(a->argv[0]);
}

static int write_map(pid_t pid, const char *which, const char *map)
{
	char path[64];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, which);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, map, strlen(map)) != (ssize_t)strlen(map)) {
		fprintf(stderr, "ns-run: %s '%s': %s\n", path, map, strerror(errno));
		ret = -1;
	}
	if (fd >= 0)
		close(fd);
	return ret;
}

static int write_pid(const char *file, pid_t pid)
{
	char tmp[4096], text[24];
	int fd, n;

	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	n = snprintf(text, sizeof(text), "%d", pid);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, n) != n || close(fd) || rename(tmp, file)) {
		fprintf(stderr, "ns-run: %s: %s\n", file, strerror(errno));
		return -1;
	}
	return 0;
}

#define USAGE "ns-run --root DIR --map INSIDE:OUTSIDE:COUNT --hostpid FILE -- PROG [ARGS...]"

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "map", required_argument, NULL, 'm' },
		{ "hostpid", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	const char *map = NULL, *hostpid = NULL;
	struct child_args a = { 0 };
	unsigned long in, out, count;
	char line[96];
	size_t stack_size = 256 << 10;
	char *stack;
	int opt, ws;
	pid_t pid;

	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (opt) {
		case 'r':
			a.root = optarg;
			break;
		case 'm':
			map = optarg;
			break;
		case 'p':
			hostpid = optarg;
			break;
		default:
			child_usage(USAGE);
		}
	}
	if (!a.root || !map || !hostpid || optind >= argc)
		child_usage(USAGE);
	if (sscanf(map, "%lu:%lu:%lu", &in, &out, &count) != 3 || !count)
		child_usage(USAGE);
	snprintf(line, sizeof(line), "%lu %lu %lu\n", in, out, count);
	a.argv = argv + optind;

	stack = malloc(stack_size);
	if (!stack || pipe2(a.sync, O_CLOEXEC))
		return die("setup");
	pid = clone(child_main, stack + stack_size, CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, &a);
	if (pid < 0)
		return die("clone");
	close(a.sync[0]);
	if (write_map(pid, "uid_map", line) || write_map(pid, "gid_map", line) || write_pid(hostpid, pid)) {
		/* The child reads a byte, not EOF, and gives up. */
		if (write(a.sync[1], "x", 1) < 0)
			kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return SETUP_FAILED;
	}
	close(a.sync[1]);

	ws = child_reap(pid, NULL);
	return ws < 0 ? die("waitpid") : ws;
}
