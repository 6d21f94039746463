// SPDX-License-Identifier: MIT
/* lazy-uffd: dispatch to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "lazy_pages.h"

struct subcommand {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct subcommand subcommands[] = {
	{ "daemon", cmd_daemon, "serve a criu restore --lazy-pages from the image files (drop-in for criu lazy-pages)" },
	{ "lazy-pages", cmd_daemon, "the same as daemon, under criu's name for it" },
	{ "show", cmd_show, "print the tasks, lazy VMAs and pagemap summary of a CRIU image directory" },
	{ "page-server", cmd_page_server, "serve a dump's lazy pages to remote restores (CRIU's page-server protocol)" },
	{ "doctor", cmd_doctor, "say whether criu restore --lazy-pages can work here, and what to change if not" },
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: lazy-uffd COMMAND [OPTIONS]\n\ncommands:\n");
	for (i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		fprintf(out, "  %-12s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(out, "\noptions:\n  %-12s %s\n  %-12s %s\n", "-h, --help", "this text", "--version",
		"print lazy-uffd's version");
	fprintf(out, "\n'lazy-uffd COMMAND --help' describes each command.\n");
}

int main(int argc, char **argv)
{
	size_t i;

	log_setup(NULL, LOG_WARN, LOG_STYLE_PLAIN);

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("lazy-uffd %s\n", LAZY_UFFD_VERSION);
		return 0;
	}
	for (i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		if (!strcmp(argv[1], subcommands[i].name))
			return subcommands[i].run(argc - 1, argv + 1);

	pr_err("unknown command '%s'", argv[1]);
	usage(stderr);
	return 2;
}
