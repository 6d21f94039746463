/* SPDX-License-Identifier: MIT */
/*
 * Command-line options as tables: each option's names, argument, help text and effect
 * stand in one entry, and the getopt parsing, the --help text and criu's --config FILE
 * all come from it, so they cannot drift apart.
 *
 * Contract:
 * - A command is a struct opts_cmd: its name (for messages), the usage line of --help
 *   (a printf format taking the name it was called by), the intro paragraph, and a table
 *   of struct opt that ends with an empty entry.
 * - Entries, by kind: OPT_STR stores the argument (a const char *) at .off; OPT_SET
 *   stores true (a bool); OPT_INT and OPT_UINT parse a decimal number in [.min, .max]
 *   into an int or unsigned int, else "bad --NAME 'ARG'" and .range in parentheses is the
 *   usage error; OPT_FN calls .fn, which logs its own error and returns -1; OPT_NOP is
 *   accepted and does nothing (criu compatibility); OPT_HELP prints --help; OPT_CONFIG
 *   is --config FILE. OPT_PARA is not an option: its .help is a paragraph of --help.
 *   OPT_INCLUDE splices the table .include in its place: tables shared by commands write
 *   into the struct at the start of every such command's own (offsets count from there).
 * - .arg names the argument in --help; an entry without one takes none, unless
 *   .optional_arg (then --NAME[=ARG]). .help is one or more lines ('\n' between them).
 * - opts_parse() reads --config FILE first (its options go before the command line's,
 *   which thus override them), then the command line. It returns -1 when the command
 *   should run, else the exit status: 0 after --help, 2 after a usage error (logged).
 *   The strings stored point into what opts_free() frees: call it once the command is
 *   done with them.
 */
#ifndef LAZY_UFFD_OPTS_H
#define LAZY_UFFD_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define OPTS_STR_(x) #x
#define OPTS_STR(x)  OPTS_STR_(x)

enum opt_kind {
	OPT_END,
	OPT_PARA,
	OPT_INCLUDE,
	OPT_STR,
	OPT_SET,
	OPT_INT,
	OPT_UINT,
	OPT_FN,
	OPT_NOP,
	OPT_HELP,
	OPT_CONFIG,
};

struct opt {
	enum opt_kind kind;
	const char *name; /* the long name, without "--" */
	char short_name;  /* 0: none */
	const char *arg;  /* the argument's name in --help; NULL: none */
	bool optional_arg;
	const char *help;
	size_t off; /* OPT_STR, OPT_SET, OPT_INT, OPT_UINT: where in the command's struct */
	long min, max;
	const char *range;
	int (*fn)(void *base, const char *arg);
	const struct opt *include;
};

struct opts_cmd {
	const char *name;  /* as in "not an option of lazy-uffd NAME" */
	const char *usage; /* printf format: %s is the name the command was called by */
	const char *intro;
	const struct opt *table;
};

/* What opts_parse() allocated: the argument vector and --config's options. */
struct opts_run {
	char **args;
	char **config_args;
	int nr_config_args;
};

int opts_parse(const struct opts_cmd *cmd, int argc, char **argv, void *base, struct opts_run *run);
void opts_free(struct opts_run *run);
void opts_usage(const struct opts_cmd *cmd, FILE *out, const char *called);

#endif
