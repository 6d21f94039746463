// SPDX-License-Identifier: MIT
/* One log for every subcommand: CRIU's line form for the daemon, plain for the CLI. */
#include <stdarg.h>
#include <time.h>

#include "lazy_pages.h"

static FILE *log_out;
static enum log_level log_max = LOG_WARN;
static enum log_style log_style_cur = LOG_STYLE_PLAIN;
static struct timespec log_start;

void log_setup(FILE *out, enum log_level max_level, enum log_style style)
{
	log_out = out;
	log_max = max_level;
	log_style_cur = style;
	clock_gettime(CLOCK_MONOTONIC, &log_start);
}

int log_fd(void)
{
	return fileno(log_out ? log_out : stderr);
}

static const char *const criu_prefix[] = {
	[LOG_ERROR] = "Error",
	[LOG_WARN] = "Warn ",
};

void log_line(enum log_level level, const char *file, int line, const char *fmt, ...)
{
	FILE *out = log_out ? log_out : stderr;
	va_list ap;

	if (level > log_max)
		return;

	/* The page server's sessions and the daemon's receiver threads log too: whole lines. */
	flockfile(out);
	if (log_style_cur == LOG_STYLE_CRIU) {
		struct timespec now;
		double t;

		clock_gettime(CLOCK_MONOTONIC, &now);
		t = (now.tv_sec - log_start.tv_sec) + (now.tv_nsec - log_start.tv_nsec) / 1e9;
		fprintf(out, "(%12.6f) ", t);
		if (level == LOG_ERROR || level == LOG_WARN)
			fprintf(out, "%s (%s:%d): ", criu_prefix[level], file, line);
	} else if (level == LOG_ERROR) {
		fputs("lazy-uffd: error: ", out);
	} else if (level == LOG_WARN) {
		fputs("lazy-uffd: warning: ", out);
	}

	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
	fflush(out);
	funlockfile(out);
}
