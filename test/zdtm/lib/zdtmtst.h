/* SPDX-License-Identifier: MIT */
/*
 * zdtmtst: the small library behind every test/zdtm/ program.
 *
 * Contract of a test program (what test/zdtm/zdtm.bash relies on):
 *
 *  1. It is started as the init of its own pid namespace and session leader:
 *        setsid unshare -p -f setsid PROG --pidfile /abs/pid --outfile /abs/out [opts]
 *     so getpid() == 1 inside, while /proc is still the host's proc mount.
 *  2. zt_init() parses the options, changes into the outfile's directory (private to
 *     the test: criu's parasite makes a directory in the cwd) and points stdin, stdout and
 *     stderr at /dev/null (criu cannot dump a pipe to the outside world).
 *     Option errors are printed to stderr before that and exit with status 2.
 *  3. The program sets up its state (memory, children, threads), then calls
 *     zt_ready(): it writes the HOST pid (readlink("/proc/self")) to the pidfile,
 *     atomically (PIDFILE.tmp + rename), decimal with a trailing newline.
 *  4. zt_wait_term() sleeps until SIGTERM. A pid-namespace init ignores signals it
 *     has no handler for, so zt_init() installs one, and keeps SIGTERM blocked
 *     outside zt_wait_term() so threads and children never take it by accident.
 *     The dump and the restore happen during this wait.
 *  5. The program checks its state and calls zt_finish(): the outfile (opened by
 *     absolute path only now, so no open file crosses the dump) gets exactly
 *     "PASS\n" or "FAIL: <first reason>\n" (written as OUTFILE.tmp, then renamed,
 *     so the file appears complete), and the exit status is 0 or 1.
 *     A failure before zt_ready() (setup) also writes "FAIL: ..." and exits 1.
 *
 * Common options: --pidfile F, --outfile F (both absolute, required),
 *     --selftest-corrupt KIND:PAGE  after SIGTERM, spoil page PAGE of the first
 *         pattern region before it is checked (negative test of the checker):
 *         flip (xor one byte at offset ZT_CORRUPT_OFFSET), zero (clear the page),
 *         move (copy page PAGE+1 over it). PAGE counts from the region's start.
 *     --selftest-in NAME  only the process whose zt name (zt_init/zt_child_init)
 *         is NAME applies --selftest-corrupt.
 *     --ballast SIZE  zt_ready() first maps SIZE bytes of pattern memory (checked last
 *         by zt_check_regions()). Mapped after everything else, it sits below the
 *         test's memory, and lazy daemons fill the lowest addresses first: the test's
 *         own ranges are then still missing for a while after the restore.
 *     --expect-lazy  when a probed range is already completely present,
 *         zt_lazy_probe() writes OUTFILE.inconclusive (a child's to
 *         OUTFILE.<name>.inconclusive): whatever the verdict, the run did not exercise
 *         the lazy path it was meant to (the harness passes the option on lazy restores
 *         only, fails a run with such a file, and zdtm_run_lazy tries again).
 *     --settle  zt_settle() writes OUTFILE.settle and waits for a second SIGTERM,
 *         which the harness sends once the lazy-pages daemon has exited.
 *
 * Notes (zt_note(), zt_lazy_probe()) go to OUTFILE.notes (a child's to
 * OUTFILE.<name>.notes) at zt_finish(): evidence for a reader, never a verdict.
 *
 * Per-page pattern: every byte of page i of a region with seed s is a function of
 * (s, i) only, never of the address. Word 0 is tag(s) ^ i, so a page that holds
 * another page's bytes is recognised and named in the failure message; other
 * words are distinct per page and never zero in practice, so zero pages and
 * pages from another region (another seed) are caught too.
 *
 * All functions are async-signal-unsafe and are called from normal context.
 * zt_fail() and the checkers are thread safe; the first failure is the one
 * reported, later ones are counted.
 */
#ifndef ZDTMTST_H
#define ZDTMTST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ZT_PAGE_SIZE		4096UL
#define ZT_CORRUPT_OFFSET	123

/* Exit statuses: pass, fail, skip (like liburing's tests), bad usage. */
#define ZT_EXIT_PASS	0
#define ZT_EXIT_FAIL	1
#define ZT_EXIT_USAGE	2
#define ZT_EXIT_SKIP	77

enum zt_opt_type {
	ZT_OPT_STR,	/* const char ** */
	ZT_OPT_SIZE,	/* size_t *: bytes, K/M/G suffixes, terms joined by '+' (2M+4K) */
	ZT_OPT_ULONG,	/* unsigned long * */
	ZT_OPT_FLAG,	/* bool *, takes no argument */
};

/* A test-specific option: --name ARG. The table ends with a NULL name. */
struct zt_opt {
	const char *name;
	enum zt_opt_type type;
	void *dst;
	bool required;
	const char *help;
};

/*
 * Parse argv (common options plus @opts, may be NULL), install the SIGTERM handler,
 * block SIGTERM, chdir to the outfile's directory and redirect stdio to /dev/null. Exits with
 * ZT_EXIT_USAGE on bad options. @name appears in failure messages.
 */
void zt_init(int argc, char **argv, const char *name, const struct zt_opt *opts);

/* Signal readiness: write the host pid to the pidfile atomically. Returns 0 or -errno. */
int zt_ready(void);

/*
 * Wait for SIGTERM (returns at once if it already came), then check that getpid()
 * is what it was at zt_init() and apply --selftest-corrupt.
 */
void zt_wait_term(void);

/* Record a failure (printf format). Thread safe; the first message wins. */
void zt_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Number of failures recorded so far in this process. */
unsigned int zt_failures(void);

/* First failure message, or NULL. */
const char *zt_first_failure(void);

/*
 * Write the outfile ("PASS" or "FAIL: reason") and return the exit status to use.
 * zt_finish_exit() does the same and exits.
 */
int zt_finish(void);
void zt_finish_exit(void) __attribute__((noreturn));

/* Setup failed before zt_ready(): record @fmt, write the outfile and exit 1. */
void zt_setup_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * In a forked child: forget the parent's regions and failures, remember the new
 * pid, and make zt_finish() write OUTFILE.<name> (the child's own verdict, for
 * debugging; the parent aggregates the exit statuses into OUTFILE).
 */
void zt_child_init(const char *name);

/*
 * Fork a child that runs CHILD(IDX, READY_FD) (which must not return) and wait for it to
 * write one byte to READY_FD: set-up children are all in place before zt_ready(). A
 * failure is a zt_setup_fail(). Returns the child's pid.
 */
pid_t zt_fork_ready(unsigned long idx, void (*child)(unsigned long idx, int ready_fd));

/* Regions: what zt_check_regions() checks and what --selftest-corrupt spoils. */
enum zt_region_kind {
	ZT_REGION_PATTERN,	/* holds zt_pattern_fill(seed) */
	ZT_REGION_ZERO,		/* must read as zeros */
	ZT_REGION_UNMAPPED,	/* must not be mapped (mincore says ENOMEM) */
};

/*
 * Register a region (page aligned). A pattern region holds pages
 * [first_page, first_page + len / 4096) of pattern @seed; the others ignore both.
 * Returns 0 or -ENOSPC (at most 4096 regions).
 */
int zt_region_add(const char *what, void *addr, size_t len, enum zt_region_kind kind,
		  uint64_t seed, uint64_t first_page);

/* Forget every region (a forked child calls this before adding its own). */
void zt_regions_reset(void);

/* Check every registered region; returns the number of bad regions. */
int zt_check_regions(void);

/* Check only the registered regions of @kind; returns the number of bad ones. */
int zt_check_regions_kind(enum zt_region_kind kind);

/*
 * Fill pages [first_page, first_page + len / 4096) of pattern @seed into @addr.
 * @len is a multiple of the page size.
 */
void zt_pattern_fill(void *addr, size_t len, uint64_t seed, uint64_t first_page);

/*
 * Check such a range. On the first bad page, zt_fail() names @what, the page index,
 * its address, the first bad offset, expected and found bytes, and whether the page
 * is all zero or holds another page of the same pattern. Returns 0 or -1.
 */
int zt_pattern_check(const char *what, const void *addr, size_t len, uint64_t seed,
		     uint64_t first_page);

/* Check that [addr, addr + len) reads as zeros; zt_fail() on the first bad byte. */
int zt_zero_check(const char *what, const void *addr, size_t len);

/* Check that no page of [addr, addr + len) is mapped; zt_fail() otherwise. */
int zt_unmapped_check(const char *what, const void *addr, size_t len);

/* The pattern word @word (0..511) of page @page for @seed. */
uint64_t zt_pattern_word(uint64_t seed, uint64_t page, unsigned int word);

/* Write "TEXT" to PATH atomically (PATH.tmp + rename). Returns 0 or -errno. */
int zt_write_file(const char *path, const char *text);

/* The --pidfile and --outfile paths. */
const char *zt_pidfile_path(void);
const char *zt_outfile_path(void);

/* Host pid of the calling process (readlink("/proc/self")), or -errno. */
long zt_host_pid(void);

/* Map @len bytes of private anonymous memory between two PROT_NONE guard pages, so
 * it never merges with a neighbouring VMA. Returns the start or NULL (errno set). */
void *zt_map_guarded(size_t len);

/* Record a line for OUTFILE.notes (printf format). Thread safe. */
void zt_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Count the pages of [addr, addr + len) that are not in memory yet (mincore, which
 * never faults): after a lazy restore, pages the daemon has not copied yet. Notes
 * the count; with --expect-lazy, writes the .inconclusive file when it is 0. Call it
 * before touching the range. Returns the count, or -1 if mincore failed (a failure).
 */
long zt_lazy_probe(const char *what, const void *addr, size_t len);

/* zt_lazy_probe() without the verdict: count and note only. */
long zt_lazy_count(const char *what, const void *addr, size_t len);

/*
 * With --expect-lazy: write the .inconclusive file once, with this text (printf
 * format, no newline), for a test whose premise is wider than one range (storm: some
 * process still had lazy memory). Without --expect-lazy, nothing.
 */
void zt_lazy_inconclusive(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Whether --expect-lazy was given. */
bool zt_expect_lazy(void);

/*
 * Without --settle: return at once. With it: write OUTFILE.settle, then wait for
 * another SIGTERM (the harness sends it after the lazy-pages daemon exited), so
 * what follows runs once the daemon has done all of its background work.
 */
void zt_settle(void);

#endif /* ZDTMTST_H */
