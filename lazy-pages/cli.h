/* SPDX-License-Identifier: MIT */
/*
 * What `lazy-uffd daemon` and `lazy-uffd page-server` share on their command lines: the
 * options both take (as opts.h tables) and what both do with them (work dir, log file,
 * pidfile, going to the background, --status-fd).
 *
 * Contract:
 * - A command's option struct starts with a struct cli_common (the shared tables'
 *   offsets count from there); cli_init() gives it its defaults.
 * - cli_serve_opts: -D, -o, -v, -d, --pidfile, --status-fd. cli_tls_opts: --tls and its
 *   files. cli_config_opts: --config, --no-default-config, -h. Each command adds its
 *   own -W (to .work_dir), --address and --port: their meanings differ.
 * - The order of use: cli_enter_work_dir() (after the images dir was resolved),
 *   cli_open_log(), cli_take_pidfile() (before listening: a pidfile that exists fails the
 *   start with nothing running), cli_ready() once listening (the caller of --daemon
 *   exits there; the background process returns), cli_done() at the end in every case.
 *   Each logs its own error and returns 0 or -errno.
 */
#ifndef LAZY_UFFD_CLI_H
#define LAZY_UFFD_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "opts.h"
#include "proto.h"

struct cli_common {
	const char *images_dir;
	const char *work_dir;
	const char *log_file; /* NULL: stderr; "-": stdout */
	int verbosity;
	bool daemonize;
	const char *pidfile;
	int status_fd;
	struct tls_opts tls;
	/* Not options: what the steps below hold. */
	int pidfile_fd; /* created (empty) before listening; -1 once handed over */
	FILE *log;
};

extern const struct opt cli_serve_opts[];
extern const struct opt cli_tls_opts[];
extern const struct opt cli_config_opts[];

void cli_init(struct cli_common *c);
int cli_enter_work_dir(const struct cli_common *c, const char *images);
int cli_open_log(struct cli_common *c);
int cli_take_pidfile(struct cli_common *c);
int cli_ready(struct cli_common *c);
void cli_done(struct cli_common *c);

#endif
