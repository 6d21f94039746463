/* SPDX-License-Identifier: MIT */
/*
 * Unit test helpers: checks that report and count failures (a test keeps going so one
 * run shows every broken expectation), exit codes, and scratch image directories.
 */
#ifndef LAZY_UFFD_TEST_TU_H
#define LAZY_UFFD_TEST_TU_H

#include <stdbool.h>
#include <stdint.h>

#define T_PASS 0
#define T_FAIL 1
#define T_SKIP 77

extern int tu_failures;

/* CHECK(cond) or CHECK(cond, "fmt", args...): the message says what was seen. */
#define CHECK(cond, ...)                                    \
	do {                                                \
		if (!(cond)) {                              \
			tu_fail(__FILE__, __LINE__, #cond); \
			tu_note(" " __VA_ARGS__);           \
		}                                           \
	} while (0)

#define CHECK_EQ(a, b)                                                                         \
	do {                                                                                   \
		unsigned long long _a = (unsigned long long)(a), _b = (unsigned long long)(b); \
		if (_a != _b) {                                                                \
			tu_fail(__FILE__, __LINE__, #a " == " #b);                             \
			tu_note("got %llu (0x%llx), want %llu (0x%llx)", _a, _a, _b, _b);      \
		}                                                                              \
	} while (0)

void tu_fail(const char *file, int line, const char *what);
void tu_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A fresh directory under $TMPDIR, removed with everything in it by tu_cleanup(). */
const char *tu_tmpdir(void);
/* tu_tmpdir()/NAME built as scenario NAME (see imgwriter.h); NULL (and a failure) if it could not be. */
const char *tu_scenario(const char *name);
void tu_cleanup(void);

/* Exit status for the failures counted so far, after cleaning up. */
int tu_done(void);

bool tu_contains(const char *haystack, const char *needle);
bool tu_starts_with(const char *s, const char *prefix);

#endif
