// SPDX-License-Identifier: MIT
/*
 * `lazy-uffd daemon` (also `lazy-uffd lazy-pages`): a drop-in for `criu lazy-pages`,
 * taking the same options, so a wrapper routing `criu lazy-pages` here is enough for
 * tools that run criu (zdtm among them).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "pagesize.h"
#include "remote.h"
#include "serve.h"
#include "stats.h"
#include "lazy_pages.h"
#include "opts.h"

#define DEFAULT_BULK_BYTES	  (1 << 20) /* 256 pages of 4 KiB, 16 of 64 KiB */
#define DEFAULT_BULK_DEPTH	  8
#define DEFAULT_BULK_DEPTH_SHARED 2
#define DEFAULT_BUSY_POLL_US	  200

struct cli {
	struct cli_common common; /* first: the shared tables' offsets count from here */
	bool remote, display_stats;
	const char *stats_file, *record_profile, *prefetch_profile;
	int busy_poll_us;
	struct remote_opts ro;
	struct daemon_opts o;
};

/* Runs once the socket listens: the moment criu restore may be started. */
static int on_ready(void *arg)
{
	return cli_ready(arg);
}

/* A relative --stats path means relative to where the user ran us, not the work dir. */
static char *absolute_from_cwd(const char *path)
{
	char cwd[PATH_MAX], *out;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (asprintf(&out, "%s/%s", cwd, path) < 0)
		return NULL;
	return out;
}

#define CLI(field) offsetof(struct cli, field)

static int set_ps_protocol(void *base, const char *arg)
{
	struct cli *c = base;

	if (!strcmp(arg, "4.1") || !strcmp(arg, "24"))
		c->ro.layout = PS_LAYOUT_41;
	else if (!strcmp(arg, "4.2") || !strcmp(arg, "32"))
		c->ro.layout = PS_LAYOUT_42;
	else {
		pr_err("bad --ps-protocol '%s' (4.1 or 4.2)", arg);
		return -1;
	}
	return 0;
}

static int set_reconnect_timeout(void *base, const char *arg)
{
	double *t = &((struct cli *)base)->ro.reconnect_timeout;
	char *end;

	*t = strtod(arg, &end);
	if (!*end && *t >= 0.1 && *t <= 86400)
		return 0;
	pr_err("bad --reconnect-timeout '%s' (seconds, 0.1 to 86400)", arg);
	return -1;
}

static int set_bulk_depth(void *base, const char *arg)
{
	struct cli *c = base;
	char *end;
	long v = strtol(arg, &end, 10);

	if (end == arg || *end || v < 1 || v > 64) {
		pr_err("bad --ps-bulk-depth '%s'", arg);
		return -1;
	}
	c->ro.bulk_depth = c->ro.bulk_depth_shared = (unsigned int)v;
	return 0;
}

/* --ps-socket FD: taken only if FD is a connected stream socket, the one criu means. */
static int set_ps_socket(void *base, const char *arg)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct cli *c = base;
	int fd, type = 0;
	socklen_t tlen = sizeof(type);
	struct stat st;
	char *end;
	long v = strtol(arg, &end, 10);

	if (end == arg || *end || v < 0 || v > INT_MAX) {
		pr_err("bad --ps-socket '%s' (a file descriptor)", arg);
		return -1;
	}
	fd = (int)v;
	if (fstat(fd, &st)) {
		pr_err("--ps-socket %d: %m", fd);
		return -1;
	}
	if (!S_ISSOCK(st.st_mode) || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) || type != SOCK_STREAM) {
		pr_err("--ps-socket %d: not a stream socket (a connection to the page server is expected)", fd);
		return -1;
	}
	if (getpeername(fd, (struct sockaddr *)&ss, &len)) {
		pr_err("--ps-socket %d: not connected (%m)", fd);
		return -1;
	}
	/* Ours from now on: nothing we fork needs it. */
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	c->ro.ps_socket = fd;
	return 0;
}

static const struct opt daemon_table[] = {
	{ OPT_INCLUDE, .include = cli_serve_opts },
	{ OPT_STR, "work-dir", 'W', "DIR",
	  .help = "where lazy-pages.socket, the log and the pidfile go\n"
		  "(default: the images dir); give criu restore the same -W",
	  .off = CLI(common.work_dir) },
	{ OPT_NOP, "log-pid",
	  .help = "accepted for criu compatibility: the log stays FILE, as with\n"
		  "criu lazy-pages (criu splits only a restore's processes)" },
	{ OPT_STR, "stats", 0, "FILE", .help = "write what was served as JSON at exit", .off = CLI(stats_file) },
	{ OPT_SET, "display-stats", .help = "print that JSON on stdout at exit (/dev/null with --daemon)",
	  .off = CLI(display_stats) },
	{ OPT_INT, "busy-poll", 0, "USEC",
	  .help = "after a fault, poll the uffds this long for the next one\n"
		  "instead of sleeping, copying in 32 KiB chunks between\n"
		  "polls (default " OPTS_STR(DEFAULT_BUSY_POLL_US) "; 0: never poll)",
	  .off = CLI(busy_poll_us), .max = 1000000, .range = "microseconds, 0 to 1000000" },
	{ OPT_UINT, "copy-threads", 0, "N",
	  .help = "threads that copy background chunks beside the loop, 0 or\n"
		  "1 (default: 1 when the daemon may run on more than one\n"
		  "CPU; local pages only)",
	  .off = CLI(o.copy_threads), .max = 1, .range = "0 or 1" },
	{ OPT_INT, "loop-cpu", 0, "CPU",
	  .help = "run the loop (fault service, polling) on CPU only; the copy\n"
		  "thread and page-server receivers keep the CPUs the daemon\n"
		  "started with",
	  .off = CLI(o.loop_cpu), .max = CPU_SETSIZE - 1, .range = "a CPU number" },
	{ OPT_STR, "record-profile", 0, "FILE",
	  .help = "write the order in which faults first asked for pages\n"
		  "(local pages only)",
	  .off = CLI(record_profile) },
	{ OPT_STR, "prefetch-profile", 0, "FILE",
	  .help = "copy the pages of a profile recorded on these images first,\n"
		  "in recorded order, then the rest (local pages only)",
	  .off = CLI(prefetch_profile) },
	{ OPT_NOP, "shell-job", 'j',
	  .help = "accepted for criu compatibility; meaningless here: the\n"
		  "daemon restores no process and has no session to pass on" },
	{ OPT_INCLUDE, .include = cli_config_opts },
	{ OPT_PARA,
	  .help = "Remote pages (live migration): the page map comes from -D, the page data from a page\n"
		  "server: `criu dump --lazy-pages --port P`, `criu page-server --lazy-pages` or\n"
		  "`lazy-uffd page-server`." },
	{ OPT_SET, "page-server", .help = "fetch lazy pages from the page server at --address/--port",
	  .off = CLI(remote) },
	{ OPT_STR, "address", 0, "ADDR", .help = "the page server's address (default: 127.0.0.1)",
	  .off = CLI(ro.address) },
	{ OPT_INT, "port", 0, "PORT", .help = "its TCP port (required with --page-server, unless --ps-socket)",
	  .off = CLI(ro.port), .min = 1, .max = 65535 },
	{ OPT_FN, "ps-socket", 0, "FD",
	  .help = "a connection to the page server already made (inherited), as\n"
		  "criu's: the main connection, never reconnected (its loss is\n"
		  "the server's: the restore fails); a second (urgent) one only\n"
		  "if --port is given too",
	  .fn = set_ps_socket },
	{ OPT_FN, "ps-protocol", 0, "4.1|4.2",
	  .help = "CRIU 4.1's 24-byte or 4.2's 32-byte headers (default: as the\n"
		  "images were written; our page server understands both)",
	  .fn = set_ps_protocol },
	{ OPT_FN, "reconnect-timeout", 0, "SECONDS",
	  .help = "reconnect as needed, but give up after this long without\n"
		  "progress (default 30; faulting tasks wait); then fail: the\n"
		  "restored tasks are killed and the exit status is 1",
	  .fn = set_reconnect_timeout },
	{ OPT_SET, "ps-single-connection",
	  .help = "never open the second (urgent) connection for faults that\n"
		  "lazy-uffd page-server accepts",
	  .off = CLI(ro.single_connection) },
	{ OPT_INCLUDE, .include = cli_tls_opts },
	{ OPT_UINT, "ps-bulk-pages", 0, "N",
	  .help = "background requests: pages each (default: 1 MiB of pages)",
	  .off = CLI(ro.bulk_pages), .min = 1, .max = 65536 },
	{ OPT_FN, "ps-bulk-depth", 0, "N",
	  .help = "background requests in flight (default " OPTS_STR(DEFAULT_BULK_DEPTH) "; "
		  OPTS_STR(DEFAULT_BULK_DEPTH_SHARED) " while faults\n"
		  "share the connection)",
	  .fn = set_bulk_depth },
	{},
};

static const struct opts_cmd daemon_cmd = {
	.name = "daemon",
	.usage = "usage: lazy-uffd %s -D DIR [options]",
	.intro = "Serve the lazy pages of a `criu restore --lazy-pages -D DIR` from the image files,\n"
		 "as `criu lazy-pages` does: listen on lazy-pages.socket in the work directory, take\n"
		 "each restored task's userfaultfd, serve its page faults, copy the remaining pages in\n"
		 "the background once the restore has finished, and exit 0 when every task has all of\n"
		 "its memory (or has exited). Exit 1 when a page could not be served; restored tasks\n"
		 "left without their memory are then killed.",
	.table = daemon_table,
};

/* What no single option can check: their combinations. 0, or 2 (logged). */
static int check_combinations(struct cli *c, const cpu_set_t *cpus)
{
	bool remote_opt = c->ro.address || c->ro.port || c->ro.layout || c->ro.ps_socket >= 0;

	if (remote_opt && !c->remote) {
		pr_err("--address, --port, --ps-protocol and --ps-socket need --page-server");
		return 2;
	}
	if (c->remote && (c->record_profile || c->prefetch_profile)) {
		pr_err("--record-profile and --prefetch-profile work with local pages, not --page-server");
		return 2;
	}
	if (c->remote && !c->ro.port && c->ro.ps_socket < 0) {
		pr_err("--page-server needs --port (the page server's)");
		return 2;
	}
	/* Checked now: once the socket listens, criu restore may already be on its way. */
	if (c->o.loop_cpu >= 0 && CPU_COUNT(cpus) && !CPU_ISSET(c->o.loop_cpu, cpus)) {
		pr_err("--loop-cpu %d: not among the %d CPUs the daemon may run on", c->o.loop_cpu, CPU_COUNT(cpus));
		return 2;
	}
	if (!c->common.images_dir) {
		pr_err("-D/--images-dir is required");
		return 2;
	}
	return 0;
}

/* The paths given relative to where we were run, made absolute before the chdir. */
struct abs_paths {
	char *images, *stats, *record, *prefetch, *tls[4];
};

static int make_absolute(char **out, const char *path, const char *what)
{
	if (!path)
		return 0;
	*out = absolute_from_cwd(path);
	if (!*out) {
		pr_err("%s %s: %m", what, path);
		return -ENOMEM;
	}
	return 0;
}

static int absolute_paths(struct cli *c, struct abs_paths *p)
{
	const char **tls[4] = { &c->ro.tls.cacert, &c->ro.tls.cacrl, &c->ro.tls.cert, &c->ro.tls.key };
	int k;

	p->images = realpath(c->common.images_dir, NULL);
	if (!p->images) {
		pr_err("images dir %s: %m", c->common.images_dir);
		return -errno;
	}
	/* The certificates are read after the chdir to the work dir. */
	for (k = 0; k < 4 && c->remote; k++) {
		if (make_absolute(&p->tls[k], *tls[k], "TLS file"))
			return -ENOMEM;
		if (p->tls[k])
			*tls[k] = p->tls[k];
	}
	if (make_absolute(&p->stats, c->stats_file, "--stats") ||
	    make_absolute(&p->record, c->record_profile, "--record-profile") ||
	    make_absolute(&p->prefetch, c->prefetch_profile, "--prefetch-profile"))
		return -ENOMEM;
	c->o.stats_file = p->stats;
	c->o.record_profile = p->record;
	if (c->display_stats) {
		stats_set_display(true);
		if (!c->o.stats_file)
			c->o.stats_file = "-";
	}
	return 0;
}

static void free_paths(struct abs_paths *p)
{
	int k;

	free(p->images);
	free(p->stats);
	free(p->record);
	free(p->prefetch);
	for (k = 0; k < 4; k++)
		free(p->tls[k]);
}

/* From the parsed options to daemon_serve()'s exit status. */
static int run(struct cli *c)
{
	struct profile prefetch = { 0 };
	struct profile_error perr;
	struct abs_paths paths = { 0 };
	struct crimg_error err;
	struct crimg *img = NULL;
	int status = 1;

	if (absolute_paths(c, &paths))
		goto out;
	if (cli_enter_work_dir(&c->common, paths.images) || cli_open_log(&c->common))
		goto out;
	pr_info("lazy-uffd %s: serving %s", LAZY_UFFD_VERSION, paths.images);
	/*
	 * Taken now, not after the fork: a daemon that could not write its pidfile would
	 * otherwise already be listening, and the next criu restore would go to it while
	 * whoever reads the pidfile watches another process.
	 */
	if (cli_take_pidfile(&c->common))
		goto out;
	if (crimg_open(paths.images, &img, &err)) {
		pr_err("%s", err.msg);
		goto out;
	}
	c->o.fingerprint = profile_fingerprint(img);
	if (paths.prefetch) {
		/* Refused before the socket listens: criu restore then fails at once, visibly. */
		if (profile_load(paths.prefetch, c->o.fingerprint, img, &prefetch, &perr)) {
			pr_err("--prefetch-profile: %s", perr.msg);
			goto out;
		}
		if (prefetch.skipped_tasks)
			pr_warn("--prefetch-profile %s: %zu records for tasks these images do not have; skipped",
				paths.prefetch, prefetch.skipped_tasks);
		pr_info("--prefetch-profile %s: %zu records", paths.prefetch, prefetch.nr);
		c->o.prefetch = &prefetch;
	}
	if (c->remote)
		c->o.remote = &c->ro;
	status = daemon_serve(img, &c->o);
out:
	profile_free(&prefetch);
	crimg_close(img);
	free_paths(&paths);
	cli_done(&c->common);
	return status;
}

int cmd_daemon(int argc, char **argv)
{
	struct cli c = {
		.busy_poll_us = DEFAULT_BUSY_POLL_US,
		.ro = {
			.reconnect_timeout = 30,
			.bulk_pages = (unsigned int)PAGES_IN(DEFAULT_BULK_BYTES),
			.bulk_depth = DEFAULT_BULK_DEPTH,
			.bulk_depth_shared = DEFAULT_BULK_DEPTH_SHARED,
			.ps_socket = -1,
		},
		.o = { .ready = on_ready, .loop_cpu = -1 },
	};
	struct opts_run opts;
	cpu_set_t cpus;
	int status;

	cli_init(&c.common);
	c.o.ready_arg = &c.common;
	/* A second copying thread only pays where it can run beside the loop. */
	if (sched_getaffinity(0, sizeof(cpus), &cpus))
		CPU_ZERO(&cpus);
	if (CPU_COUNT(&cpus) > 1)
		c.o.copy_threads = 1;
	status = opts_parse(&daemon_cmd, argc, argv, &c, &opts);
	if (status >= 0)
		goto out;
	status = check_combinations(&c, &cpus);
	if (status) {
		if (!c.common.images_dir)
			opts_usage(&daemon_cmd, stderr, argv[0]);
		goto out;
	}
	c.ro.tls = c.common.tls;
	c.o.busy_poll_ns = (uint64_t)c.busy_poll_us * 1000;
	status = run(&c);
out:
	opts_free(&opts);
	return status;
}
