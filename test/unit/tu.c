// SPDX-License-Identifier: MIT
/* Unit test helpers (see tu.h). */
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imgwriter.h"
#include "tu.h"

int tu_failures;
static char tmpdir[PATH_MAX];

void tu_fail(const char *file, int line, const char *what)
{
	tu_failures++;
	fprintf(stderr, "FAIL %s:%d: %s\n", file, line, what);
}

void tu_note(const char *fmt, ...)
{
	va_list ap;

	/* CHECK() prefixes a space so that an absent message is not an empty format. */
	if (!strcmp(fmt, " "))
		return;
	fprintf(stderr, "    ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *tu_tmpdir(void)
{
	const char *base = getenv("TMPDIR");

	if (tmpdir[0])
		return tmpdir;
	snprintf(tmpdir, sizeof(tmpdir), "%s/lazy-uffd-unit.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(T_FAIL);
	}
	return tmpdir;
}

const char *tu_scenario(const char *name)
{
	static char path[8][PATH_MAX];
	static int next;
	char *p = path[next++ % 8];

	snprintf(p, PATH_MAX, "%s/%s", tu_tmpdir(), name);
	if (tw_make(name, p)) {
		tu_fail(__FILE__, __LINE__, "building a scenario");
		tu_note("scenario %s", name);
		return NULL;
	}
	return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void tu_cleanup(void)
{
	if (!tmpdir[0] || getenv("LAZY_UFFD_KEEP_TMP"))
		return;
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	tmpdir[0] = '\0';
}

int tu_done(void)
{
	tu_cleanup();
	if (tu_failures) {
		fprintf(stderr, "%d check(s) failed\n", tu_failures);
		return T_FAIL;
	}
	return T_PASS;
}

bool tu_contains(const char *haystack, const char *needle)
{
	return strstr(haystack, needle) != NULL;
}

bool tu_starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}
