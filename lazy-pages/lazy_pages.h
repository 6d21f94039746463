/* SPDX-License-Identifier: MIT */
/*
 * The lazy-uffd command: subcommands and the log they share.
 *
 * Each subcommand is `int cmd_NAME(int argc, char **argv)`: argv[0] is the subcommand
 * name, options follow; it returns the process exit status (0 success, 1 failure,
 * 2 usage error) and has printed any error itself, once.
 *
 * Logging: pr_err()/pr_warn()/pr_info()/pr_debug() write one line each. In LOG_STYLE_CRIU
 * (the daemon) lines take CRIU's form, which zdtm and users grep for:
 *     (   0.000123) Error (lazy-pages/foo.c:42): message
 * In LOG_STYLE_PLAIN (interactive subcommands) errors read `lazy-uffd: error: message`
 * and info lines are printed bare. Messages end without a newline; the logger adds it.
 */
#ifndef LAZY_UFFD_LAZY_PAGES_H
#define LAZY_UFFD_LAZY_PAGES_H

#include <stdio.h>

#define LAZY_UFFD_VERSION "0.1.0"

/* CRIU's verbosity levels (-v0 .. -v4). */
enum log_level {
	LOG_MSG = 0,
	LOG_ERROR = 1,
	LOG_WARN = 2,
	LOG_INFO = 3,
	LOG_DEBUG = 4,
};

enum log_style {
	LOG_STYLE_PLAIN,
	LOG_STYLE_CRIU,
};

/* Where lines go (NULL: stderr), the highest level printed, and the line form. */
void log_setup(FILE *out, enum log_level max_level, enum log_style style);

/* The file descriptor lines go to (a forked helper keeps it and closes the rest). */
int log_fd(void);

void log_line(enum log_level level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define pr_err(fmt, ...)   log_line(LOG_ERROR, __FILE__, __LINE__, fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...)  log_line(LOG_WARN, __FILE__, __LINE__, fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...)  log_line(LOG_INFO, __FILE__, __LINE__, fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) log_line(LOG_DEBUG, __FILE__, __LINE__, fmt, ##__VA_ARGS__)

int cmd_show(int argc, char **argv);
int cmd_daemon(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_page_server(int argc, char **argv);

#endif
