// SPDX-License-Identifier: MIT
/*
 * got-test: plugin/got.c on this very program, linked the ways a criu can be:
 *   got-lazy   lazy binding, partial RELRO: a writable JUMP_SLOT (criu 4.x here)
 *   got-now    -z now -z relro: the JUMP_SLOT is on a read-only page
 *   got-noplt  -fno-plt -z now: calls go through a read-only GLOB_DAT slot
 *
 *   got-test jump|glob writable|readonly
 *
 * Finds the syscall() slot, checks its kind and protection, points it at a wrapper,
 * checks that calls from the program reach the wrapper and that the page is read-only
 * again afterwards, then puts the original back. Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "plugin.h"

static int failures;
static int wrapped;

#define check(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
			failures++;                                          \
		}                                                            \
	} while (0)

/* got.c logs nothing, but plugin.h declares the logger. */
void lu_log(unsigned int level, const char *file, int line, const char *fmt, ...)
{
}

static long wrapper(long nr, ...)
{
	wrapped++;
	return nr == SYS_getpid ? 4242 : -1;
}

/*
 * The calls under test, each a function entered anew: with -fno-plt an aarch64 compiler
 * loads a GOT slot once per function and may reuse the value for later calls, as criu's
 * own functions would.
 */
static __attribute__((noinline)) long call_getpid(void)
{
	return syscall(SYS_getpid);
}

/* The protection of the page holding @addr, from /proc/self/maps: "rw-p" etc. */
static int page_perms(const void *addr, char perms[5])
{
	uintptr_t a = (uintptr_t)addr, start, end;
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	int found = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %4s", &start, &end, perms) == 3 && a >= start && a < end) {
			found = 0;
			break;
		}
	fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	struct got_slot slots[4];
	char perms[5] = "";
	bool want_jump, want_ro;
	void *orig;
	long r;
	int nr;

	if (argc != 3) {
		fprintf(stderr, "usage: got-test jump|glob writable|readonly\n");
		return 2;
	}
	want_jump = !strcmp(argv[1], "jump");
	want_ro = !strcmp(argv[2], "readonly");

	/* Resolve the lazy binding first, as criu has by the time a plugin loads. */
	check(call_getpid() == getpid(), "syscall(SYS_getpid) before");

	nr = got_find("syscall", slots, 4);
	check(nr == 1, "got_find(syscall) = %d, want 1", nr);
	if (nr != 1)
		return 1;
	check(slots[0].jump_slot == want_jump, "slot kind %s, want %s", slots[0].jump_slot ? "JUMP_SLOT" : "GLOB_DAT",
	      argv[1]);
	check(slots[0].relro == want_ro, "slot relro %d, want %s", slots[0].relro, argv[2]);
	check(!page_perms(slots[0].addr, perms) && (perms[1] == 'w') == !want_ro, "slot page %s, want %s", perms,
	      argv[2]);

	check(got_find("no_such_import_anywhere", slots + 1, 3) == 0, "a symbol that is not imported has slots");
	check(got_find("main", slots + 1, 3) == 0, "main is defined here, not imported: no slot");

	orig = *slots[0].addr;
	check(got_write(&slots[0], (void *)wrapper) == 0, "got_write(wrapper)");
	r = call_getpid();
	check(r == 4242 && wrapped == 1, "call after redirect: %ld, wrapper ran %d times", r, wrapped);
	check(!page_perms(slots[0].addr, perms) && (perms[1] == 'w') == !want_ro, "slot page %s after the store",
	      perms);

	check(got_write(&slots[0], orig) == 0, "got_write(orig)");
	r = call_getpid();
	check(r == getpid() && wrapped == 1, "call after restore: %ld, wrapper ran %d times", r, wrapped);

	if (failures)
		return 1;
	printf("PASS %s %s\n", argv[1], argv[2]);
	return 0;
}
