// SPDX-License-Identifier: MIT
/* lazy-pages/opts.c: each kind of entry, included tables, --help's layout, --config FILE. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lazy-pages/opts.h"
#include "tu.h"

struct shared {
	const char *dir;
	bool flag;
};

struct toy {
	struct shared sh; /* first: the shared table writes there */
	int num;
	unsigned int count;
	int calls;
	const char *last_fn_arg;
};

static int toy_fn(void *base, const char *arg)
{
	struct toy *t = base;

	t->calls++;
	t->last_fn_arg = arg;
	return arg && !strcmp(arg, "bad") ? -1 : 0;
}

static const struct opt shared_table[] = {
	{OPT_STR, "dir", 'D', "DIR", .help = "a directory", .off = offsetof(struct shared, dir)},
	{OPT_SET, "flag", .help = "a flag", .off = offsetof(struct shared, flag)},
	{},
};

static const struct opt toy_table[] = {
	{OPT_INCLUDE, .include = shared_table},
	{OPT_INT, "num", 'n', "N", .help = "a number\non two lines", .off = offsetof(struct toy, num), .min = -5,
	 .max = 5, .range = "-5 to 5"},
	{OPT_UINT, "a-rather-long-option-name", 0, "COUNT", .help = "wraps", .off = offsetof(struct toy, count),
	 .max = 9},
	{OPT_FN, "fn", 'f', "ARG", .optional_arg = true, .help = "calls", .fn = toy_fn},
	{OPT_NOP, "ignored", 'j', .help = "accepted"},
	{OPT_PARA, .help = "A paragraph."},
	{OPT_CONFIG, "config", 0, "FILE", .help = "config"},
	{OPT_HELP, "help", 'h', .help = "this text"},
	{},
};

static const struct opts_cmd toy_cmd = {
	.name = "toy",
	.usage = "usage: toy %s",
	.intro = "Intro.",
	.table = toy_table,
};

/* What the last parse() stored points into it: freed by the next one, and at the end. */
static struct opts_run last_run;

/* opts_parse over a NULL-terminated argument list, into *T. */
static int parse(struct toy *t, ...)
{
	char *argv[16] = {"toy"};
	int argc = 1;
	va_list ap;

	opts_free(&last_run);
	memset(t, 0, sizeof(*t));
	va_start(ap, t);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	return opts_parse(&toy_cmd, argc, argv, t, &last_run);
}

static void test_kinds(void)
{
	struct toy t;

	CHECK_EQ(parse(&t, "-D", "d", "--flag", "-n", "-5", "--a-rather-long-option-name=9", "-fx", "-j", NULL), -1);
	CHECK(t.sh.dir && !strcmp(t.sh.dir, "d"));
	CHECK(t.sh.flag);
	CHECK_EQ(t.num, -5);
	CHECK_EQ(t.count, 9);
	CHECK_EQ(t.calls, 1);
	CHECK(t.last_fn_arg && !strcmp(t.last_fn_arg, "x"));
	/* An optional argument left out: the setter gets NULL. */
	CHECK_EQ(parse(&t, "--fn", NULL), -1);
	CHECK(t.calls == 1 && !t.last_fn_arg);
	/* Out of range, not a number, trailing junk, a setter's refusal: usage errors. */
	CHECK_EQ(parse(&t, "--num", "6", NULL), 2);
	CHECK_EQ(parse(&t, "--num", "", NULL), 2);
	CHECK_EQ(parse(&t, "--num", "1x", NULL), 2);
	CHECK_EQ(parse(&t, "--a-rather-long-option-name", "-1", NULL), 2);
	CHECK_EQ(parse(&t, "--fn=bad", NULL), 2);
	CHECK_EQ(parse(&t, "--nope", NULL), 2);
	CHECK_EQ(parse(&t, "stray", NULL), 2);
	CHECK_EQ(parse(&t, "--flag", "--help", NULL), 0);
}

static void test_help(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f) {
		CHECK(f, "open_memstream");
		return;
	}
	opts_usage(&toy_cmd, f, "called");
	fclose(f);
	CHECK(tu_starts_with(buf, "usage: toy called\n\nIntro.\n\n"), "%s", buf);
	CHECK(tu_contains(buf, "\n  -D, --dir DIR          a directory\n"), "%s", buf);
	CHECK(tu_contains(buf, "\n      --flag             a flag\n"), "%s", buf);
	CHECK(tu_contains(buf, "\n  -n, --num N            a number\n                         on two lines\n"), "%s",
	      buf);
	CHECK(tu_contains(buf, "\n      --a-rather-long-option-name COUNT\n                         wraps\n"), "%s",
	      buf);
	CHECK(tu_contains(buf, "\n  -f, --fn[=ARG]         calls\n"), "%s", buf);
	CHECK(tu_contains(buf, "\n  -j, --ignored          accepted\n\nA paragraph.\n      --config FILE"), "%s", buf);
	free(buf);
}

static const char *write_config(const char *text)
{
	static char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/toy.conf", tu_tmpdir());
	f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	return path;
}

static void test_config(void)
{
	struct toy t;
	const char *conf;

	conf = write_config("# a comment\n  num 3 # the rest is a comment\ndir \"cfg \\\"dir\\\"\"\nflag\nfn\n");
	CHECK_EQ(parse(&t, "--config", conf, NULL), -1);
	CHECK_EQ(t.num, 3);
	CHECK(t.sh.flag);
	CHECK(t.sh.dir && !strcmp(t.sh.dir, "cfg \"dir\""), "%s", t.sh.dir);
	CHECK_EQ(t.calls, 1);
	/* The command line overrides the file. */
	CHECK_EQ(parse(&t, "--num", "4", "--config", conf, NULL), -1);
	CHECK_EQ(t.num, 4);
	/* An unknown name, --help or --config in a file, an argument missing or too many. */
	CHECK_EQ(parse(&t, "--config", write_config("nope\n"), NULL), 2);
	CHECK_EQ(parse(&t, "--config", write_config("help\n"), NULL), 2);
	CHECK_EQ(parse(&t, "--config", write_config("config x\n"), NULL), 2);
	CHECK_EQ(parse(&t, "--config", write_config("num\n"), NULL), 2);
	CHECK_EQ(parse(&t, "--config", write_config("flag yes\n"), NULL), 2);
	CHECK_EQ(parse(&t, "--config", write_config("num 1 2\n"), NULL), 2);
	CHECK_EQ(parse(&t, "--config", write_config("dir \"open\n"), NULL), 2);
	/* One --config, given in full. */
	conf = write_config("num 1\n");
	CHECK_EQ(parse(&t, "--conf", conf, NULL), 2);
	CHECK_EQ(parse(&t, "--config", "/nonexistent/toy.conf", NULL), 2);
}

int main(void)
{
	test_kinds();
	test_help();
	test_config();
	opts_free(&last_run);
	return tu_done();
}
