// SPDX-License-Identifier: MIT
/* mkimg: write the synthetic image directories of imgwriter.c, for show.bats and by hand. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "imgwriter.h"

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: mkimg SCENARIO DIR   build one scenario as DIR\n"
		     "       mkimg --all DIR      build every scenario as DIR/SCENARIO\n"
		     "       mkimg --list         list the scenarios\n\nscenarios:\n");
	for (i = 0; i < tw_nr_scenarios; i++)
		fprintf(out, "  %-22s %s\n", tw_scenarios[i].name, tw_scenarios[i].what);
}

int main(int argc, char **argv)
{
	char path[4096];
	size_t i;

	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (i = 0; i < tw_nr_scenarios; i++)
			printf("%s\n", tw_scenarios[i].name);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (argc != 3) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--all"))
		return tw_make(argv[1], argv[2]) ? 1 : 0;

	if (mkdir(argv[2], 0755) && errno != EEXIST) {
		fprintf(stderr, "mkimg: cannot create %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	for (i = 0; i < tw_nr_scenarios; i++) {
		snprintf(path, sizeof(path), "%s/%s", argv[2], tw_scenarios[i].name);
		if (tw_make(tw_scenarios[i].name, path))
			return 1;
	}
	return 0;
}
