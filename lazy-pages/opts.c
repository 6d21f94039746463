// SPDX-License-Identifier: MIT
/* Options as tables: the parser, --help and --config FILE (contract in opts.h). */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "lazy_pages.h"
#include "opts.h"

#define HELP_COLUMN 25
#define MAX_OPTS    128

/* The options of TABLE, included tables spliced in, into OUT; their count. */
static size_t flatten(const struct opt *table, const struct opt **out, size_t n)
{
	const struct opt *o;

	for (o = table; o->kind != OPT_END; o++) {
		if (o->kind == OPT_INCLUDE)
			n = flatten(o->include, out, n);
		else if (o->kind != OPT_PARA && n < MAX_OPTS)
			out[n++] = o;
	}
	return n;
}

static void print_help_lines(FILE *out, const char *help)
{
	const char *nl;

	for (; (nl = strchr(help, '\n')); help = nl + 1)
		fprintf(out, "%.*s\n%*s", (int)(nl - help), help, HELP_COLUMN, "");
	fprintf(out, "%s\n", help);
}

static void print_table(FILE *out, const struct opt *table)
{
	const struct opt *o;
	char label[128];
	int len;

	for (o = table; o->kind != OPT_END; o++) {
		if (o->kind == OPT_INCLUDE) {
			print_table(out, o->include);
			continue;
		}
		if (o->kind == OPT_PARA) {
			fprintf(out, "\n%s\n", o->help);
			continue;
		}
		len = snprintf(label, sizeof(label), "  %c%c%c --%s%s%s%s", o->short_name ? '-' : ' ',
			       o->short_name ? o->short_name : ' ', o->short_name ? ',' : ' ', o->name,
			       !o->arg		 ? ""
			       : o->optional_arg ? "[="
						 : " ",
			       o->arg ? o->arg : "", o->arg && o->optional_arg ? "]" : "");
		if (len < HELP_COLUMN)
			fprintf(out, "%-*s", HELP_COLUMN, label);
		else
			fprintf(out, "%s\n%*s", label, HELP_COLUMN, "");
		print_help_lines(out, o->help);
	}
}

void opts_usage(const struct opts_cmd *cmd, FILE *out, const char *called)
{
	fprintf(out, cmd->usage, called);
	fprintf(out, "\n\n%s\n\n", cmd->intro);
	print_table(out, cmd->table);
}

static int config_add(struct opts_run *run, const char *name, const char *arg)
{
	char **v = realloc(run->config_args, (run->nr_config_args + 1) * sizeof(*v));
	int n;

	if (!v)
		return -ENOMEM;
	run->config_args = v;
	n = arg ? asprintf(&v[run->nr_config_args], "--%s=%s", name, arg)
		: asprintf(&v[run->nr_config_args], "--%s", name);
	if (n < 0)
		return -ENOMEM;
	run->nr_config_args++;
	return 0;
}

/* A "quoted" argument at P, unquoted in place (only \" is an escape); past it, or NULL. */
static char *config_unquote(char *p)
{
	char *w = p;

	for (; *p && *p != '"'; p++) {
		if (*p == '\\' && p[1] == '"')
			p++;
		*w++ = *p;
	}
	if (*p != '"')
		return NULL;
	*w = '\0';
	return p + 1;
}

/* NAME and ARG of a config line: 0 with *name NULL for a blank or comment line. */
static int config_split(char *p, char **name, char **arg)
{
	*name = *arg = NULL;
	while (isspace((unsigned char)*p))
		p++;
	if (!*p || *p == '#')
		return 0;
	*name = p;
	while (*p && !isspace((unsigned char)*p) && *p != '#')
		p++;
	if (*p == '#')
		*p = '\0'; /* a comment right after the name: nothing follows */
	else if (*p)
		*p++ = '\0';
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '"') {
		*arg = p + 1;
		p = config_unquote(p + 1);
		if (!p)
			return -EBADMSG;
	} else if (*p && *p != '#') {
		*arg = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (*p)
			*p++ = '\0';
	}
	while (isspace((unsigned char)*p))
		p++;
	return *p && *p != '#' ? -E2BIG : 0;
}

/* One line of a criu config file: NAME [ARG], ARG in double quotes if it has spaces. */
static int config_line(const struct opts_cmd *cmd, struct opts_run *run, const char *file, int lineno, char *line)
{
	const struct opt *all[MAX_OPTS];
	const struct opt *o = NULL;
	char *name, *arg;
	size_t n, i;
	int ret;

	ret = config_split(line, &name, &arg);
	if (ret == -EBADMSG)
		pr_err("--config %s: line %d: no closing quote", file, lineno);
	else if (ret)
		pr_err("--config %s: line %d: '%s' takes at most one argument", file, lineno, name);
	if (ret || !name)
		return ret;
	n = flatten(cmd->table, all, 0);
	for (i = 0; i < n && !o; i++)
		if (!strcmp(all[i]->name, name) && all[i]->kind != OPT_CONFIG && all[i]->kind != OPT_HELP)
			o = all[i];
	if (!o) {
		pr_err("--config %s: line %d: '%s' is not an option of lazy-uffd %s (see --help)", file, lineno, name,
		       cmd->name);
		return -EINVAL;
	}
	if (!o->arg && arg) {
		pr_err("--config %s: line %d: '%s' takes no argument", file, lineno, name);
		return -EINVAL;
	}
	if (o->arg && !o->optional_arg && !arg) {
		pr_err("--config %s: line %d: '%s' needs an argument", file, lineno, name);
		return -EINVAL;
	}
	return config_add(run, name, arg);
}

static int config_read(const struct opts_cmd *cmd, struct opts_run *run, const char *file)
{
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, ret = 0;
	FILE *f;

	f = fopen(file, "re");
	if (!f) {
		ret = -errno;
		pr_err("--config %s: %m", file);
		return ret;
	}
	while (!ret && getline(&line, &cap, f) >= 0)
		ret = config_line(cmd, run, file, ++lineno, line);
	if (!ret && ferror(f)) {
		ret = -EIO;
		pr_err("--config %s: read error", file);
	}
	free(line);
	fclose(f);
	return ret;
}

/* The last --config of the command line, looked for before getopt runs. */
static const char *config_file_arg(int argc, char **argv)
{
	const char *file = NULL;
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			file = argv[++i];
		else if (!strncmp(argv[i], "--config=", 9))
			file = argv[i] + 9;
	}
	return file;
}

static int bad_value(const struct opt *o, const char *arg)
{
	if (o->range)
		pr_err("bad --%s '%s' (%s)", o->name, arg, o->range);
	else
		pr_err("bad --%s '%s'", o->name, arg);
	return -1;
}

/* What one option given does; -1 after a usage error (logged). */
static int apply(const struct opt *o, const char *arg, void *base, const char *config_file)
{
	char *p = (char *)base + o->off, *end;
	long v;

	switch (o->kind) {
	case OPT_STR:
		*(const char **)p = arg;
		return 0;
	case OPT_SET:
		*(bool *)p = true;
		return 0;
	case OPT_INT:
	case OPT_UINT:
		errno = 0;
		v = strtol(arg, &end, 10);
		if (errno || end == arg || *end || v < o->min || v > o->max)
			return bad_value(o, arg);
		if (o->kind == OPT_INT)
			*(int *)p = (int)v;
		else
			*(unsigned int *)p = (unsigned int)v;
		return 0;
	case OPT_FN:
		return o->fn(base, arg);
	case OPT_CONFIG:
		/* Read before getopt, if the scan for it saw this one (not an abbreviation, not a second). */
		if (!config_file || strcmp(arg, config_file)) {
			pr_err("--config %s: give one --config, as --config FILE or --config=FILE", arg);
			return -1;
		}
		return 0;
	default:
		return 0;
	}
}

static int parse_args(const struct opts_cmd *cmd, int argc, char **argv, void *base, const char *config_file)
{
	const struct opt *all[MAX_OPTS];
	struct option longopts[MAX_OPTS + 1] = {0};
	char shorts[2 * MAX_OPTS + 1] = "", *s = shorts;
	size_t n = flatten(cmd->table, all, 0), i;
	int opt;

	for (i = 0; i < n; i++) {
		longopts[i].name = all[i]->name;
		longopts[i].has_arg = !all[i]->arg	     ? no_argument
				      : all[i]->optional_arg ? optional_argument
							     : required_argument;
		longopts[i].val = all[i]->short_name ? all[i]->short_name : 256 + (int)i;
		if (all[i]->short_name) {
			*s++ = all[i]->short_name;
			if (all[i]->arg)
				*s++ = ':';
			if (all[i]->arg && all[i]->optional_arg)
				*s++ = ':';
		}
	}
	*s = '\0';
	optind = 1;
	while ((opt = getopt_long(argc, argv, shorts, longopts, NULL)) != -1) {
		const struct opt *o = NULL;

		if (opt >= 256)
			o = all[opt - 256];
		for (i = 0; i < n && !o && opt != '?'; i++)
			if (all[i]->short_name == opt)
				o = all[i];
		if (!o) {
			opts_usage(cmd, stderr, argv[0]);
			return 2;
		}
		if (o->kind == OPT_HELP) {
			opts_usage(cmd, stdout, argv[0]);
			return 0;
		}
		if (apply(o, optarg, base, config_file))
			return 2;
	}
	if (optind < argc) {
		pr_err("unexpected argument '%s'", argv[optind]);
		return 2;
	}
	return -1;
}

int opts_parse(const struct opts_cmd *cmd, int argc, char **argv, void *base, struct opts_run *run)
{
	const char *config_file;

	memset(run, 0, sizeof(*run));
	/* Before getopt: the config's options come first, so the command line wins. */
	config_file = config_file_arg(argc, argv);
	if (config_file && config_read(cmd, run, config_file))
		return 2;
	run->args = calloc(argc + run->nr_config_args + 1, sizeof(*run->args));
	if (!run->args) {
		pr_err("out of memory");
		return 1;
	}
	run->args[0] = argv[0];
	if (run->nr_config_args)
		memcpy(run->args + 1, run->config_args, run->nr_config_args * sizeof(*run->args));
	memcpy(run->args + 1 + run->nr_config_args, argv + 1, (argc - 1) * sizeof(*run->args));
	return parse_args(cmd, argc + run->nr_config_args, run->args, base, config_file);
}

void opts_free(struct opts_run *run)
{
	int i;

	free(run->args);
	for (i = 0; i < run->nr_config_args; i++)
		free(run->config_args[i]);
	free(run->config_args);
	memset(run, 0, sizeof(*run));
}
