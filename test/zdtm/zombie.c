// SPDX-License-Identifier: MIT
/*
 * zombie: a process tree with zombies at dump time:
 *     root (pid 1) -+- zombie1 (pid 2): exited 42, not reaped
 *                   `- child (pid 3) --- zombie2 (pid 4): exited 7, not reaped
 * criu restores the zombies, and the restore tells the lazy-pages daemon about each one
 * with a negative pid and no uffd. The root and the child have --size bytes (default
 * 8M) of pattern memory each, which they check after SIGTERM; then they reap their
 * zombie and check its pid and exit status. The root forwards SIGTERM to the child
 * and aggregates: the child exits 1 if its own check failed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define ZB_SEED		0x20b1e

static size_t size = 8 << 20;

/* Fork a child that exits with @code at once; wait until it is a zombie, unreaped. */
static pid_t make_zombie(const char *who, int code, pid_t expect)
{
	siginfo_t si;
	pid_t z = fork();

	if (z < 0)
		zt_setup_fail("%s: fork: %s", who, strerror(errno));
	if (z == 0)
		_exit(code);
	if (z != expect)
		zt_setup_fail("%s: zombie has pid %d, expected %d", who, (int)z, (int)expect);
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, z, &si, WEXITED | WNOWAIT))
		zt_setup_fail("%s: waitid(WNOWAIT): %s", who, strerror(errno));
	return z;
}

static void reap_zombie(const char *who, pid_t z, int code)
{
	int ws = 0;
	pid_t p = waitpid(z, &ws, WNOHANG);

	if (p != z)
		zt_fail("%s: waitpid(zombie %d, WNOHANG) = %d (%s): it is not a zombie after restore",
			who, (int)z, (int)p, p < 0 ? strerror(errno) : "still running");
	else if (!WIFEXITED(ws) || WEXITSTATUS(ws) != code)
		zt_fail("%s: zombie %d has wait status 0x%x, expected exit %d", who, (int)z, ws, code);
}

static char *own_memory(const char *what, uint64_t seed)
{
	char *m = zt_map_guarded(size);

	if (!m)
		zt_setup_fail("%s: mmap: %s", what, strerror(errno));
	zt_pattern_fill(m, size, seed, 0);
	zt_region_add(what, m, size, ZT_REGION_PATTERN, seed, 0);
	return m;
}

static void __attribute__((noreturn)) child_main(int ready_fd)
{
	pid_t z;

	zt_child_init("child");
	if (getpid() != 3)
		zt_setup_fail("child has pid %d, expected 3", (int)getpid());
	own_memory("zombie child memory", ZB_SEED + 3);
	z = make_zombie("child", 7, 4);
	if (write(ready_fd, "r", 1) != 1)
		zt_setup_fail("child: ready pipe: %s", strerror(errno));
	close(ready_fd);

	zt_wait_term();
	if (getppid() != 1)
		zt_fail("child: parent pid %d, expected 1", (int)getppid());
	zt_check_regions();
	reap_zombie("child", z, 7);
	_exit(zt_finish());
}

int main(int argc, char **argv)
{
	const struct zt_opt opts[] = {
		{ "size", ZT_OPT_SIZE, &size, false, "bytes of memory per live process (default 8M)" },
		{ NULL },
	};
	int fds[2], ws = 0, ret;
	pid_t z, child, p;
	char ch;

	zt_init(argc, argv, "zombie", opts);
	if (!size || size % ZT_PAGE_SIZE)
		zt_setup_fail("--size %zu: need a positive page multiple", size);
	if (getpid() != 1)
		zt_setup_fail("not the init of a pid namespace (pid %d)", (int)getpid());

	own_memory("zombie root memory", ZB_SEED + 1);
	z = make_zombie("root", 42, 2);
	if (pipe(fds))
		zt_setup_fail("pipe: %s", strerror(errno));
	child = fork();
	if (child < 0)
		zt_setup_fail("fork: %s", strerror(errno));
	if (child == 0) {
		close(fds[0]);
		child_main(fds[1]);
	}
	close(fds[1]);
	if (read(fds[0], &ch, 1) != 1)
		zt_setup_fail("the child did not get ready");
	close(fds[0]);

	ret = zt_ready();
	if (ret)
		zt_setup_fail("pidfile: %s", strerror(-ret));
	zt_wait_term();
	kill(child, SIGTERM);
	zt_check_regions();
	reap_zombie("root", z, 42);
	p = waitpid(child, &ws, 0);
	if (p != child)
		zt_fail("root: waitpid(child): %s", p < 0 ? strerror(errno) : "wrong pid");
	else if (!WIFEXITED(ws) || WEXITSTATUS(ws))
		zt_fail("root: child failed (wait status 0x%x); see OUTFILE.child", ws);
	return zt_finish();
}
