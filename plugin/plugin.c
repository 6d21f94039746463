// SPDX-License-Identifier: MIT
/* The CRIU plugin descriptor and its init/exit; see plugin.h for the contract. */
#include <stddef.h>

#pragma GCC visibility push(default)
#include <criu-plugin.h>
#pragma GCC visibility pop

#include "plugin.h"

/* CRIU's levels, as print_on_level() takes them. */
#define CRIU_LOG_INFO 3

/* Exported by the criu executable; weak so the library also loads where it is absent. */
extern void print_on_level(unsigned int level, const char *fmt, ...) __attribute__((weak, format(printf, 2, 3)));

static const char *const stage_names[] = { "dump", "pre-dump", "restore" };

static int lazy_uffd_init(int stage)
{
	const char *name = stage >= 0 && stage < 3 ? stage_names[stage] : "unknown";

	if (print_on_level)
		print_on_level(CRIU_LOG_INFO, LAZY_UFFD_PLUGIN_NAME ": loaded for %s\n", name);
	return 0;
}

static void lazy_uffd_exit(int stage, int ret)
{
}

CR_PLUGIN_REGISTER(LAZY_UFFD_PLUGIN_NAME, lazy_uffd_init, lazy_uffd_exit)
