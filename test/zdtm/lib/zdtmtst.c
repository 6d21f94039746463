// SPDX-License-Identifier: MIT
/* zdtmtst: start-up, readiness, SIGTERM wait, page patterns and reporting (see zdtmtst.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zdtmtst.h"

#define ZT_MAX_REGIONS	4096
#define ZT_MSG_MAX	512
#define ZT_WORDS	(ZT_PAGE_SIZE / sizeof(uint64_t))

struct zt_region {
	char what[48];
	void *addr;
	size_t len;
	enum zt_region_kind kind;
	uint64_t seed;
	uint64_t first_page;
};

static const char *zt_name = "zdtm";
static const char *zt_pidfile;
static const char *zt_outfile;
static const char *zt_corrupt;
static const char *zt_corrupt_in;
static pid_t zt_pid;
static bool zt_is_child;
static size_t zt_ballast;
static bool zt_opt_expect_lazy;
static bool zt_opt_settle;
static bool zt_inconclusive;	/* a --expect-lazy probe found everything present */

#define ZT_NOTES_MAX	4096
#define ZT_BALLAST_SEED	0xba11a57

static pthread_mutex_t zt_note_lock = PTHREAD_MUTEX_INITIALIZER;
static char zt_notes[ZT_NOTES_MAX];
static size_t zt_notes_len;

static volatile sig_atomic_t zt_got_term;

static pthread_mutex_t zt_fail_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned int zt_nr_fail;
static char zt_fail_msg[ZT_MSG_MAX];

static struct zt_region zt_regions[ZT_MAX_REGIONS];
static unsigned int zt_nr_regions;

/* --- pattern --------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

#define ZT_STEP		0xd1b54a32d192ed03ULL	/* odd: the words of a page are distinct */

static uint64_t zt_tag(uint64_t seed)
{
	return splitmix64(seed ^ 0x7a64746d2d746167ULL);
}

static uint64_t zt_page_base(uint64_t tag, uint64_t page)
{
	return splitmix64(tag + page * 0x2545f4914f6cdd1dULL);
}

uint64_t zt_pattern_word(uint64_t seed, uint64_t page, unsigned int word)
{
	uint64_t tag = zt_tag(seed);

	if (word == 0)
		return tag ^ page;
	return zt_page_base(tag, page) + word * ZT_STEP;
}

static void zt_fill_page(uint64_t *p, uint64_t tag, uint64_t page)
{
	uint64_t v = zt_page_base(tag, page);
	unsigned int w;

	p[0] = tag ^ page;
	for (w = 1; w < ZT_WORDS; w++) {
		v += ZT_STEP;
		p[w] = v;
	}
}

/* Index of the first word that differs from the pattern, or ZT_WORDS. */
static unsigned int zt_page_mismatch(const uint64_t *p, uint64_t tag, uint64_t page)
{
	uint64_t v = zt_page_base(tag, page);
	unsigned int w;

	if (p[0] != (tag ^ page))
		return 0;
	for (w = 1; w < ZT_WORDS; w++) {
		v += ZT_STEP;
		if (p[w] != v)
			return w;
	}
	return ZT_WORDS;
}

static bool zt_page_is_zero(const uint64_t *p)
{
	unsigned int w;

	for (w = 0; w < ZT_WORDS; w++)
		if (p[w])
			return false;
	return true;
}

void zt_pattern_fill(void *addr, size_t len, uint64_t seed, uint64_t first_page)
{
	uint64_t tag = zt_tag(seed);
	size_t i, n = len / ZT_PAGE_SIZE;

	for (i = 0; i < n; i++)
		zt_fill_page((uint64_t *)((char *)addr + i * ZT_PAGE_SIZE), tag, first_page + i);
}

int zt_pattern_check(const char *what, const void *addr, size_t len, uint64_t seed,
		     uint64_t first_page)
{
	uint64_t tag = zt_tag(seed);
	size_t i, n = len / ZT_PAGE_SIZE, nr_bad = 0, first_bad = 0;
	unsigned int bad_word = 0;

	for (i = 0; i < n; i++) {
		const uint64_t *p = (const uint64_t *)((const char *)addr + i * ZT_PAGE_SIZE);
		unsigned int w = zt_page_mismatch(p, tag, first_page + i);

		if (w == ZT_WORDS)
			continue;
		if (!nr_bad++) {
			first_bad = i;
			bad_word = w;
		}
	}
	if (!nr_bad)
		return 0;

	{
		const uint64_t *p = (const uint64_t *)((const char *)addr + first_bad * ZT_PAGE_SIZE);
		uint64_t page = first_page + first_bad;
		uint64_t want = bad_word ? zt_page_base(tag, page) + bad_word * ZT_STEP : tag ^ page;
		uint64_t got = p[bad_word];
		unsigned int b = 0;
		char why[96] = "";

		while (b < 7 && ((want >> (8 * b)) & 0xff) == ((got >> (8 * b)) & 0xff))
			b++;
		if (zt_page_is_zero(p)) {
			snprintf(why, sizeof(why), "; the page is all zero");
		} else {
			uint64_t other = p[0] ^ tag;

			if (other != page && zt_page_mismatch(p, tag, other) == ZT_WORDS)
				snprintf(why, sizeof(why), "; it holds page %llu's data",
					 (unsigned long long)other);
			else
				snprintf(why, sizeof(why), "; not a page of this pattern");
		}
		zt_fail("%s: page %llu at %p: first bad offset %u (expected 0x%02x, found 0x%02x)%s; %zu of %zu pages bad",
			what, (unsigned long long)page, (const void *)p, bad_word * 8 + b,
			(unsigned int)((want >> (8 * b)) & 0xff),
			(unsigned int)((got >> (8 * b)) & 0xff), why, nr_bad, n);
	}
	return -1;
}

int zt_zero_check(const char *what, const void *addr, size_t len)
{
	const unsigned char *c = addr;
	size_t i, n = len / ZT_PAGE_SIZE, nr_bad = 0, first_bad = 0;

	for (i = 0; i < n; i++)
		if (!zt_page_is_zero((const uint64_t *)(c + i * ZT_PAGE_SIZE)) && !nr_bad++)
			first_bad = i;
	if (!nr_bad)
		return 0;

	c += first_bad * ZT_PAGE_SIZE;
	for (i = 0; i < ZT_PAGE_SIZE && !c[i]; i++)
		;
	zt_fail("%s: page %zu at %p should be zero: first bad offset %zu (found 0x%02x); %zu of %zu pages bad",
		what, first_bad, (const void *)c, i, c[i], nr_bad, n);
	return -1;
}

int zt_unmapped_check(const char *what, const void *addr, size_t len)
{
	size_t i;
	unsigned char vec;

	for (i = 0; i < len / ZT_PAGE_SIZE; i++) {
		void *p = (char *)addr + i * ZT_PAGE_SIZE;

		if (mincore(p, ZT_PAGE_SIZE, &vec) == 0) {
			zt_fail("%s: page %zu at %p should be unmapped but is mapped", what, i, p);
			return -1;
		}
		if (errno != ENOMEM) {
			zt_fail("%s: mincore(%p): %s", what, p, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* --- regions --------------------------------------------------------------- */

int zt_region_add(const char *what, void *addr, size_t len, enum zt_region_kind kind,
		  uint64_t seed, uint64_t first_page)
{
	struct zt_region *r;

	if (zt_nr_regions == ZT_MAX_REGIONS)
		return -ENOSPC;
	r = &zt_regions[zt_nr_regions++];
	snprintf(r->what, sizeof(r->what), "%s", what);
	r->addr = addr;
	r->len = len;
	r->kind = kind;
	r->seed = seed;
	r->first_page = first_page;
	return 0;
}

void zt_regions_reset(void)
{
	zt_nr_regions = 0;
}

static int zt_check_some(int kind)
{
	unsigned int i;
	int bad = 0;

	for (i = 0; i < zt_nr_regions; i++) {
		struct zt_region *r = &zt_regions[i];
		int ret = 0;

		if (kind >= 0 && (int)r->kind != kind)
			continue;

		switch (r->kind) {
		case ZT_REGION_PATTERN:
			ret = zt_pattern_check(r->what, r->addr, r->len, r->seed, r->first_page);
			break;
		case ZT_REGION_ZERO:
			ret = zt_zero_check(r->what, r->addr, r->len);
			break;
		case ZT_REGION_UNMAPPED:
			ret = zt_unmapped_check(r->what, r->addr, r->len);
			break;
		}
		if (ret)
			bad++;
	}
	return bad;
}

int zt_check_regions(void)
{
	return zt_check_some(-1);
}

int zt_check_regions_kind(enum zt_region_kind kind)
{
	return zt_check_some(kind);
}

/* --selftest-corrupt KIND:PAGE on the first pattern region. */
static void zt_apply_corrupt(void)
{
	struct zt_region *r = NULL;
	unsigned long page;
	const char *colon;
	char *end, *p;
	unsigned int i;

	if (!zt_corrupt || (zt_corrupt_in && strcmp(zt_corrupt_in, zt_name)))
		return;
	for (i = 0; i < zt_nr_regions && !r; i++)
		if (zt_regions[i].kind == ZT_REGION_PATTERN)
			r = &zt_regions[i];
	if (!r) {
		zt_fail("--selftest-corrupt: no pattern region to corrupt");
		return;
	}
	colon = strchr(zt_corrupt, ':');
	page = colon ? strtoul(colon + 1, &end, 0) : 0;
	if (!colon || *end || page >= r->len / ZT_PAGE_SIZE) {
		zt_fail("--selftest-corrupt %s: bad spec or page out of range", zt_corrupt);
		return;
	}
	p = (char *)r->addr + page * ZT_PAGE_SIZE;
	if (!strncmp(zt_corrupt, "flip:", 5)) {
		p[ZT_CORRUPT_OFFSET] ^= 0x5a;
	} else if (!strncmp(zt_corrupt, "zero:", 5)) {
		memset(p, 0, ZT_PAGE_SIZE);
	} else if (!strncmp(zt_corrupt, "move:", 5) && page + 1 < r->len / ZT_PAGE_SIZE) {
		memcpy(p, p + ZT_PAGE_SIZE, ZT_PAGE_SIZE);
	} else {
		zt_fail("--selftest-corrupt %s: unknown kind or no next page", zt_corrupt);
	}
}

/* --- failures and results -------------------------------------------------- */

void zt_fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&zt_fail_lock);
	if (!zt_nr_fail++) {
		va_start(ap, fmt);
		vsnprintf(zt_fail_msg, sizeof(zt_fail_msg), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&zt_fail_lock);
}

unsigned int zt_failures(void)
{
	unsigned int n;

	pthread_mutex_lock(&zt_fail_lock);
	n = zt_nr_fail;
	pthread_mutex_unlock(&zt_fail_lock);
	return n;
}

const char *zt_first_failure(void)
{
	return zt_failures() ? zt_fail_msg : NULL;
}

int zt_write_file(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	size_t len = strlen(text), off = 0;
	int fd, ret = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			break;
		}
		off += n;
	}
	if (close(fd) && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

int zt_finish(void)
{
	char text[ZT_MSG_MAX + 64], path[PATH_MAX];
	const char *out = zt_outfile;
	unsigned int n = zt_failures();

	if (n > 1)
		snprintf(text, sizeof(text), "FAIL: %s (and %u more)\n", zt_fail_msg, n - 1);
	else if (n)
		snprintf(text, sizeof(text), "FAIL: %s\n", zt_fail_msg);
	else
		snprintf(text, sizeof(text), "PASS\n");
	if (zt_is_child) {
		/* A child's own verdict, for debugging; its exit status is what counts. */
		snprintf(path, sizeof(path), "%s.%s", zt_outfile, zt_name);
		out = path;
	}
	if (zt_notes_len) {
		char npath[PATH_MAX + 8];

		snprintf(npath, sizeof(npath), "%s.notes", out);
		pthread_mutex_lock(&zt_note_lock);
		zt_write_file(npath, zt_notes);
		pthread_mutex_unlock(&zt_note_lock);
	}
	if (zt_write_file(out, text))
		return ZT_EXIT_FAIL;
	return n ? ZT_EXIT_FAIL : ZT_EXIT_PASS;
}

void zt_finish_exit(void)
{
	exit(zt_finish());
}

void zt_setup_fail(const char *fmt, ...)
{
	char msg[ZT_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	zt_fail("%s: setup: %s", zt_name, msg);
	zt_finish();
	exit(ZT_EXIT_FAIL);
}

/* --- start-up, readiness and SIGTERM ---------------------------------------- */

const char *zt_pidfile_path(void)
{
	return zt_pidfile;
}

const char *zt_outfile_path(void)
{
	return zt_outfile;
}

long zt_host_pid(void)
{
	char buf[32], *end;
	ssize_t n;
	long pid;

	n = readlink("/proc/self", buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	pid = strtol(buf, &end, 10);
	if (*end || pid <= 0)
		return -EINVAL;
	return pid;
}

int zt_ready(void)
{
	char text[32];
	long pid = zt_host_pid();

	if (pid < 0)
		return pid;
	if (zt_ballast) {
		void *b = zt_map_guarded(zt_ballast);

		if (!b)
			zt_setup_fail("ballast: mmap %zu bytes: %s", zt_ballast, strerror(errno));
		zt_pattern_fill(b, zt_ballast, ZT_BALLAST_SEED, 0);
		if (zt_region_add("ballast", b, zt_ballast, ZT_REGION_PATTERN, ZT_BALLAST_SEED, 0))
			zt_setup_fail("ballast: too many regions");
	}
	snprintf(text, sizeof(text), "%ld\n", pid);
	return zt_write_file(zt_pidfile, text);
}

static void zt_on_term(int sig)
{
	(void)sig;
	zt_got_term = 1;
}

void zt_wait_term(void)
{
	sigset_t mask;

	pthread_sigmask(SIG_SETMASK, NULL, &mask);
	sigdelset(&mask, SIGTERM);
	while (!zt_got_term)
		sigsuspend(&mask);

	if (getpid() != zt_pid)
		zt_fail("%s: getpid() is %d after restore, was %d", zt_name, (int)getpid(),
			(int)zt_pid);
	zt_apply_corrupt();
}

void zt_child_init(const char *name)
{
	zt_name = name;
	zt_pid = getpid();
	zt_is_child = true;
	zt_nr_fail = 0;
	zt_fail_msg[0] = '\0';
	zt_notes_len = 0;
	zt_notes[0] = '\0';
	zt_inconclusive = false;
	zt_regions_reset();
}

pid_t zt_fork_ready(unsigned long idx, void (*child)(unsigned long idx, int ready_fd))
{
	int fds[2];
	pid_t pid;
	char c;

	if (pipe(fds))
		zt_setup_fail("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		zt_setup_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		close(fds[0]);
		child(idx, fds[1]);
		_exit(1);
	}
	close(fds[1]);
	if (read(fds[0], &c, 1) != 1)
		zt_setup_fail("child %lu did not get ready", idx);
	close(fds[0]);
	return pid;
}

void zt_note(const char *fmt, ...)
{
	va_list ap;
	int n;

	pthread_mutex_lock(&zt_note_lock);
	if (zt_notes_len + 2 < ZT_NOTES_MAX) {
		va_start(ap, fmt);
		n = vsnprintf(zt_notes + zt_notes_len, ZT_NOTES_MAX - 1 - zt_notes_len, fmt, ap);
		va_end(ap);
		if (n > 0) {
			zt_notes_len += (size_t)n;
			if (zt_notes_len > ZT_NOTES_MAX - 2)
				zt_notes_len = ZT_NOTES_MAX - 2;
			zt_notes[zt_notes_len++] = '\n';
			zt_notes[zt_notes_len] = '\0';
		}
	}
	pthread_mutex_unlock(&zt_note_lock);
}

bool zt_expect_lazy(void)
{
	return zt_opt_expect_lazy;
}

long zt_lazy_count(const char *what, const void *addr, size_t len)
{
	size_t n = len / ZT_PAGE_SIZE, i, missing = 0;
	unsigned char *vec = malloc(n ? n : 1);

	if (!vec || mincore((void *)addr, len, vec)) {
		zt_fail("%s: mincore(%p, %zu): %s", what, addr, len, strerror(vec ? errno : ENOMEM));
		free(vec);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (!(vec[i] & 1))
			missing++;
	free(vec);
	zt_note("%s: %s: %zu of %zu pages not present yet", zt_name, what, missing, n);
	return (long)missing;
}

void zt_lazy_inconclusive(const char *fmt, ...)
{
	char path[PATH_MAX + 64], text[ZT_MSG_MAX];
	va_list ap;
	int len;

	if (!zt_opt_expect_lazy || zt_inconclusive)
		return;
	/* Not a verdict on the memory: the run did not test what it means to. */
	zt_inconclusive = true;
	if (zt_is_child)
		snprintf(path, sizeof(path), "%s.%s.inconclusive", zt_outfile, zt_name);
	else
		snprintf(path, sizeof(path), "%s.inconclusive", zt_outfile);
	va_start(ap, fmt);
	len = vsnprintf(text, sizeof(text) - 1, fmt, ap);
	va_end(ap);
	if (len < 0)
		len = 0;
	else if ((size_t)len > sizeof(text) - 2)
		len = sizeof(text) - 2;
	text[len] = '\n';
	text[len + 1] = '\0';
	if (zt_write_file(path, text))
		zt_fail("cannot write %s", path);
}

long zt_lazy_probe(const char *what, const void *addr, size_t len)
{
	long missing = zt_lazy_count(what, addr, len);

	if (!missing)
		zt_lazy_inconclusive("%s: %s: all %zu pages were present before the test touched them (--expect-lazy): the lazy path was not exercised",
				     zt_name, what, len / ZT_PAGE_SIZE);
	return missing;
}

void zt_settle(void)
{
	char path[PATH_MAX];
	int ret;

	if (!zt_opt_settle)
		return;
	zt_got_term = 0;
	snprintf(path, sizeof(path), "%s.settle", zt_outfile);
	ret = zt_write_file(path, "settle\n");
	if (ret) {
		zt_fail("%s: %s", path, strerror(-ret));
		return;
	}
	{
		sigset_t mask;

		pthread_sigmask(SIG_SETMASK, NULL, &mask);
		sigdelset(&mask, SIGTERM);
		while (!zt_got_term)
			sigsuspend(&mask);
	}
}

void *zt_map_guarded(size_t len)
{
	char *p;

	p = mmap(NULL, len + 2 * ZT_PAGE_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (mprotect(p, ZT_PAGE_SIZE, PROT_NONE) ||
	    mprotect(p + ZT_PAGE_SIZE + len, ZT_PAGE_SIZE, PROT_NONE)) {
		int err = errno;

		munmap(p, len + 2 * ZT_PAGE_SIZE);
		errno = err;
		return NULL;
	}
	return p + ZT_PAGE_SIZE;
}

static int zt_parse_size(const char *s, size_t *out)
{
	size_t total = 0;

	if (!*s)
		return -1;
	for (;;) {
		unsigned long long v, mult = 1;
		char *end;

		errno = 0;
		v = strtoull(s, &end, 0);
		if (errno || end == s)
			return -1;
		switch (*end) {
		case 'k': case 'K': mult = 1ULL << 10; end++; break;
		case 'm': case 'M': mult = 1ULL << 20; end++; break;
		case 'g': case 'G': mult = 1ULL << 30; end++; break;
		}
		if (v > SIZE_MAX / mult || total + v * mult < total)
			return -1;
		total += v * mult;
		if (!*end)
			break;
		if (*end != '+')
			return -1;
		s = end + 1;
	}
	*out = total;
	return 0;
}

static void zt_usage(FILE *f, const char *prog, const struct zt_opt *opts)
{
	fprintf(f, "usage: %s --pidfile ABS --outfile ABS [--selftest-corrupt flip|zero|move:PAGE [--selftest-in NAME]]"
		" [--ballast SIZE] [--expect-lazy] [--settle]", prog);
	for (; opts && opts->name; opts++)
		fprintf(f, " %s--%s%s%s", opts->required ? "" : "[", opts->name,
			opts->type == ZT_OPT_FLAG ? "" : " ARG", opts->required ? "" : "]");
	fputc('\n', f);
}

static void zt_bad_usage(const char *prog, const struct zt_opt *opts, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	zt_usage(stderr, prog, opts);
	exit(ZT_EXIT_USAGE);
}

enum { ZT_O_PIDFILE = 1, ZT_O_OUTFILE, ZT_O_CORRUPT, ZT_O_CORRUPT_IN, ZT_O_HELP,
       ZT_O_BALLAST, ZT_O_EXPECT_LAZY, ZT_O_SETTLE, ZT_O_TEST = 256 };

void zt_init(int argc, char **argv, const char *name, const struct zt_opt *opts)
{
	struct option lopts[64];
	bool seen[64] = { false };
	struct sigaction sa;
	sigset_t term;
	unsigned int n = 0, i, nr_test = 0;
	int c, fd;

	zt_name = name;
	while (opts && opts[nr_test].name)
		nr_test++;
	if (nr_test > 55)
		zt_bad_usage(argv[0], opts, "too many options");

	lopts[n++] = (struct option){ "pidfile", required_argument, NULL, ZT_O_PIDFILE };
	lopts[n++] = (struct option){ "outfile", required_argument, NULL, ZT_O_OUTFILE };
	lopts[n++] = (struct option){ "selftest-corrupt", required_argument, NULL, ZT_O_CORRUPT };
	lopts[n++] = (struct option){ "selftest-in", required_argument, NULL, ZT_O_CORRUPT_IN };
	lopts[n++] = (struct option){ "help", no_argument, NULL, ZT_O_HELP };
	lopts[n++] = (struct option){ "ballast", required_argument, NULL, ZT_O_BALLAST };
	lopts[n++] = (struct option){ "expect-lazy", no_argument, NULL, ZT_O_EXPECT_LAZY };
	lopts[n++] = (struct option){ "settle", no_argument, NULL, ZT_O_SETTLE };
	for (i = 0; i < nr_test; i++)
		lopts[n++] = (struct option){ opts[i].name,
			opts[i].type == ZT_OPT_FLAG ? no_argument : required_argument,
			NULL, ZT_O_TEST + i };
	lopts[n] = (struct option){ NULL, 0, NULL, 0 };

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case ZT_O_PIDFILE:
			zt_pidfile = optarg;
			break;
		case ZT_O_OUTFILE:
			zt_outfile = optarg;
			break;
		case ZT_O_CORRUPT:
			zt_corrupt = optarg;
			break;
		case ZT_O_CORRUPT_IN:
			zt_corrupt_in = optarg;
			break;
		case ZT_O_HELP:
			zt_usage(stdout, argv[0], opts);
			exit(0);
		case ZT_O_BALLAST:
			if (zt_parse_size(optarg, &zt_ballast) || zt_ballast % ZT_PAGE_SIZE)
				zt_bad_usage(argv[0], opts, "--ballast: bad size '%s'", optarg);
			break;
		case ZT_O_EXPECT_LAZY:
			zt_opt_expect_lazy = true;
			break;
		case ZT_O_SETTLE:
			zt_opt_settle = true;
			break;
		default: {
			const struct zt_opt *o;

			if (c < ZT_O_TEST || c >= ZT_O_TEST + (int)nr_test)
				zt_bad_usage(argv[0], opts, "bad option");
			o = &opts[c - ZT_O_TEST];
			seen[c - ZT_O_TEST] = true;
			switch (o->type) {
			case ZT_OPT_STR:
				*(const char **)o->dst = optarg;
				break;
			case ZT_OPT_SIZE:
				if (zt_parse_size(optarg, o->dst))
					zt_bad_usage(argv[0], opts, "--%s: bad size '%s'", o->name, optarg);
				break;
			case ZT_OPT_ULONG: {
				char *end;

				errno = 0;
				*(unsigned long *)o->dst = strtoul(optarg, &end, 0);
				if (errno || !*optarg || *end)
					zt_bad_usage(argv[0], opts, "--%s: bad number '%s'", o->name, optarg);
				break;
			}
			case ZT_OPT_FLAG:
				*(bool *)o->dst = true;
				break;
			}
		}
		}
	}
	if (optind < argc)
		zt_bad_usage(argv[0], opts, "unexpected argument '%s'", argv[optind]);
	if (!zt_pidfile || zt_pidfile[0] != '/' || !zt_outfile || zt_outfile[0] != '/')
		zt_bad_usage(argv[0], opts, "--pidfile and --outfile must be absolute paths");
	for (i = 0; i < nr_test; i++)
		if (opts[i].required && !seen[i])
			zt_bad_usage(argv[0], opts, "--%s is required", opts[i].name);

	/* Blocked everywhere except inside zt_wait_term(); threads inherit the mask. */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = zt_on_term;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL))
		zt_bad_usage(argv[0], opts, "sigaction: %s", strerror(errno));

	/*
	 * The outfile's directory, private to the test, rather than "/": criu's parasite
	 * makes "proc.crtools" in the dumped task's cwd (our /proc is not the pid
	 * namespace's), so two dumps of tests at once would collide there (EEXIST).
	 */
	{
		char dir[PATH_MAX];

		snprintf(dir, sizeof(dir), "%s", zt_outfile);
		*strrchr(dir, '/') = '\0';
		if (chdir(dir[0] ? dir : "/"))
			zt_bad_usage(argv[0], opts, "chdir %s: %s", dir[0] ? dir : "/", strerror(errno));
	}
	fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		zt_bad_usage(argv[0], opts, "/dev/null: %s", strerror(errno));
	if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		zt_setup_fail("dup2 /dev/null: %s", strerror(errno));
	if (fd > 2)
		close(fd);
	zt_pid = getpid();
}
