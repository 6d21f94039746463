// SPDX-License-Identifier: MIT
/* The command-line options and set-up `daemon` and `page-server` share (contract in cli.h). */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "lazy_pages.h"

#define COMMON(field) offsetof(struct cli_common, field)

/* -v, -vN, -vvv and --verbosity=N, as criu takes them. */
static int parse_verbosity(const char *arg, int cur)
{
	char *end;
	long v;

	if (!arg)
		return cur + 1;
	if (arg[0] == 'v') {
		size_t n = strspn(arg, "v");

		if (arg[n])
			return -1;
		return cur + 1 + (int)n;
	}
	v = strtol(arg, &end, 10);
	if (*end || v < 0)
		return -1;
	return (int)v;
}

static int create_pidfile(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		pr_err("--pidfile %s: %m", path);
		return -errno;
	}
	return fd;
}

/* Closes FD in every case. */
static int fill_pidfile(int fd, const char *path, pid_t pid)
{
	char buf[32];
	int len;

	len = snprintf(buf, sizeof(buf), "%d", pid);
	if (write(fd, buf, len) != len) {
		pr_err("--pidfile %s: write: %m", path);
		close(fd);
		return -EIO;
	}
	close(fd);
	return 0;
}

/* A background process: stdio to /dev/null, as criu's --daemon does. */
static void null_stdio(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

static int set_verbosity(void *base, const char *arg)
{
	struct cli_common *c = base;

	c->verbosity = parse_verbosity(arg, c->verbosity);
	if (c->verbosity < 0) {
		pr_err("bad verbosity '%s'", arg);
		return -1;
	}
	return 0;
}

const struct opt cli_serve_opts[] = {
	{OPT_STR, "images-dir", 'D', "DIR", .help = "the dump to serve (required)", .off = COMMON(images_dir)},
	{OPT_STR, "log-file", 'o', "FILE",
	 .help = "log file, relative to the work dir; '-' for stdout\n"
		 "(default: stderr); created mode 0600, appended to",
	 .off = COMMON(log_file)},
	{OPT_FN, "verbosity", 'v', "N", .optional_arg = true,
	 .help = "log level 0-4 (default 2); each extra v adds one (-vvv)", .fn = set_verbosity},
	{OPT_SET, "daemon", 'd', .help = "go to the background once listening", .off = COMMON(daemonize)},
	{OPT_STR, "pidfile", 0, "FILE", .help = "with --daemon: write its pid here (relative to the work dir)",
	 .off = COMMON(pidfile)},
	{OPT_INT, "status-fd", 0, "FD", .help = "write one NUL byte to FD, then close it, once listening",
	 .off = COMMON(status_fd), .min = 0, .max = 0x7fffffff},
	{},
};

const struct opt cli_tls_opts[] = {
	{OPT_SET, "tls", .help = "TLS with X.509 certificates, both sides authenticated, as criu",
	 .off = COMMON(tls.on)},
	{OPT_STR, "tls-cacert", 0, "FILE", .help = "trusted CA (default /etc/pki/CA/cacert.pem)",
	 .off = COMMON(tls.cacert)},
	{OPT_STR, "tls-cacrl", 0, "FILE", .help = "revocation list (default /etc/pki/CA/cacrl.pem, if readable)",
	 .off = COMMON(tls.cacrl)},
	{OPT_STR, "tls-cert", 0, "FILE", .help = "own certificate (default /etc/pki/criu/cert.pem)",
	 .off = COMMON(tls.cert)},
	{OPT_STR, "tls-key", 0, "FILE", .help = "own key (default /etc/pki/criu/private/key.pem)",
	 .off = COMMON(tls.key)},
	{OPT_SET, "tls-no-cn-verify", .help = "do not check that the other side's certificate names ADDR",
	 .off = COMMON(tls.no_cn_verify)},
	{},
};

const struct opt cli_config_opts[] = {
	{OPT_CONFIG, "config", 0, "FILE",
	 .help = "read options from FILE first, in criu's config syntax (one\n"
		 "long option a line without its '--', then its argument,\n"
		 "\"quoted\" if it has spaces; # comments); only the options\n"
		 "of this list; the command line overrides it"},
	{OPT_NOP, "no-default-config",
	 .help = "accepted for criu compatibility: no default config file\n"
		 "(/etc/criu/default.conf, ~/.criu/default.conf) is read"},
	{OPT_HELP, "help", 'h', .help = "this text"},
	{},
};

void cli_init(struct cli_common *c)
{
	memset(c, 0, sizeof(*c));
	c->verbosity = LOG_WARN;
	c->status_fd = -1;
	c->pidfile_fd = -1;
}

/* Like criu, everything relative (socket, log, pidfile) lives in the work dir. */
int cli_enter_work_dir(const struct cli_common *c, const char *images)
{
	const char *dir = c->work_dir ? c->work_dir : images;

	if (chdir(dir)) {
		int ret = -errno;

		pr_err("work dir %s: %m", dir);
		return ret;
	}
	return 0;
}

int cli_open_log(struct cli_common *c)
{
	bool to_stdout = c->log_file && !strcmp(c->log_file, "-");

	if (c->log_file && !to_stdout) {
		/* 0600, as criu's: a log names the restored tasks, their pids and addresses. */
		int fd = open(c->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600), ret = -errno;

		c->log = fd < 0 ? NULL : fdopen(fd, "a");
		if (!c->log) {
			if (fd >= 0) {
				ret = -errno;
				close(fd);
			}
			errno = -ret;
			pr_err("log file %s: %m", c->log_file);
			return ret;
		}
		setvbuf(c->log, NULL, _IOLBF, 0);
	}
	log_setup(to_stdout ? stdout : c->log, c->verbosity > LOG_DEBUG ? LOG_DEBUG : c->verbosity, LOG_STYLE_CRIU);
	return 0;
}

int cli_take_pidfile(struct cli_common *c)
{
	if (!c->daemonize || !c->pidfile)
		return 0;
	c->pidfile_fd = create_pidfile(c->pidfile);
	return c->pidfile_fd < 0 ? c->pidfile_fd : 0;
}

int cli_ready(struct cli_common *c)
{
	if (c->daemonize) {
		pid_t pid = fork();

		if (pid < 0) {
			int ret = -errno;

			pr_err("fork: %m");
			return ret;
		}
		if (pid > 0)
			_exit(c->pidfile_fd >= 0 && fill_pidfile(c->pidfile_fd, c->pidfile, pid) ? 1 : 0);
		/* The file is the parent's to fill, and names this process from now on. */
		if (c->pidfile_fd >= 0)
			close(c->pidfile_fd);
		c->pidfile_fd = -1;
		setsid();
		null_stdio();
	}
	if (c->status_fd >= 0) {
		char zero = 0;

		if (write(c->status_fd, &zero, 1) != 1)
			pr_warn("--status-fd %d: %m", c->status_fd);
		close(c->status_fd);
		c->status_fd = -1;
	}
	return 0;
}

void cli_done(struct cli_common *c)
{
	/* Never filled: it names nothing running, and would refuse the next start. */
	if (c->pidfile_fd >= 0) {
		close(c->pidfile_fd);
		unlink(c->pidfile);
		c->pidfile_fd = -1;
	}
	if (c->log) {
		fclose(c->log);
		c->log = NULL;
	}
}
