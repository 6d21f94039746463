// SPDX-License-Identifier: MIT
/*
 * `lazy-uffd daemon` (also `lazy-uffd lazy-pages`): a drop-in for `criu lazy-pages`,
 * taking the same options, so a wrapper routing `criu lazy-pages` here is enough for
 * tools that run criu (zdtm among them).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "lazy_pages.h"

#define DEFAULT_BULK_PAGES	  256
#define DEFAULT_BULK_DEPTH	  8
#define DEFAULT_BULK_DEPTH_SHARED 2
#define DEFAULT_BUSY_POLL_US	  200

struct cli {
	const char *images_dir;
	const char *work_dir;
	const char *log_file;
	int verbosity;
	bool daemonize;
	const char *pidfile;
	int pidfile_fd; /* created (empty) before listening; -1 once handed to the daemon */
	int status_fd;
	const char *stats_file;
	bool display_stats;
};

static void usage(FILE *out, const char *name)
{
	fprintf(out,
		"usage: lazy-uffd %s -D DIR [options]\n"
		"\n"
		"Serve the lazy pages of a `criu restore --lazy-pages -D DIR` from the image files,\n"
		"as `criu lazy-pages` does: listen on lazy-pages.socket in the work directory, take\n"
		"each restored task's userfaultfd, serve its page faults, copy the remaining pages in\n"
		"the background once the restore has finished, and exit 0 when every task has all of\n"
		"its memory (or has exited). Exit 1 when a page could not be served; restored tasks\n"
		"left without their memory are then killed.\n"
		"\n"
		"  -D, --images-dir DIR   the dump to serve (required)\n"
		"  -W, --work-dir DIR     where lazy-pages.socket, the log and the pidfile go\n"
		"                         (default: the images dir); give criu restore the same -W\n"
		"  -o, --log-file FILE    log file, relative to the work dir; '-' for stdout\n"
		"                         (default: stderr); created mode 0600, appended to\n"
		"      --log-pid          accepted for criu compatibility: the log stays FILE, as with\n"
		"                         criu lazy-pages (criu splits only a restore's processes)\n"
		"  -v, --verbosity[=N]    log level 0-4 (default 2); each extra v adds one (-vvv)\n"
		"  -d, --daemon           go to the background once the socket listens\n"
		"      --pidfile FILE     with --daemon: write the daemon's pid here (relative to the\n"
		"                         work dir)\n"
		"      --status-fd FD     write one NUL byte to FD, then close it, once listening\n"
		"      --stats FILE       write what was served as JSON at exit\n"
		"      --display-stats    print that JSON on stdout at exit (/dev/null with --daemon)\n"
		"      --busy-poll USEC   after a fault, poll the uffds this long for the next one\n"
		"                         instead of sleeping, copying in 32 KiB chunks between\n"
		"                         polls (default %u; 0: never poll)\n"
		"      --copy-threads N   threads that copy background chunks beside the loop, 0 or\n"
		"                         1 (default: 1 when the daemon may run on more than one\n"
		"                         CPU; local pages only)\n"
		"      --loop-cpu CPU     run the loop (fault service, polling) on CPU only; the copy\n"
		"                         thread and page-server receivers keep the CPUs the daemon\n"
		"                         started with\n"
		"      --record-profile FILE\n"
		"                         write the order in which faults first asked for pages\n"
		"                         (local pages only)\n"
		"      --prefetch-profile FILE\n"
		"                         copy the pages of a profile recorded on these images first,\n"
		"                         in recorded order, then the rest (local pages only)\n"
		"      --config FILE      read options from FILE first, in criu's config syntax (one\n"
		"                         long option a line without its '--', then its argument,\n"
		"                         \"quoted\" if it has spaces; # comments); only the options\n"
		"                         of this list; the command line overrides it\n"
		"      --no-default-config  accepted for criu compatibility: no default config file\n"
		"                         (/etc/criu/default.conf, ~/.criu/default.conf) is read\n"
		"  -j, --shell-job        accepted for criu compatibility; meaningless here: the\n"
		"                         daemon restores no process and has no session to pass on\n"
		"\n"
		"Remote pages (live migration): the page map comes from -D, the page data from a page\n"
		"server: `criu dump --lazy-pages --port P`, `criu page-server --lazy-pages` or\n"
		"`lazy-uffd page-server`.\n"
		"      --page-server      fetch lazy pages from the page server at --address/--port\n"
		"      --address ADDR     the page server's address (default: 127.0.0.1)\n"
		"      --port PORT        its TCP port (required with --page-server)\n"
		"      --ps-protocol 4.1|4.2\n"
		"                         CRIU 4.1's 24-byte or 4.2's 32-byte headers (default: as the\n"
		"                         images were written; our page server understands both)\n"
		"      --reconnect-timeout SECONDS\n"
		"                         reconnect as needed, but give up after this long without\n"
		"                         progress (default 30; faulting tasks wait); then fail: the\n"
		"                         restored tasks are killed and the exit status is 1\n"
		"      --ps-single-connection\n"
		"                         never open the second (urgent) connection for faults that\n"
		"                         lazy-uffd page-server accepts\n"
		"      --ps-bulk-pages N, --ps-bulk-depth N\n"
		"                         background requests: pages each (default %u) and how many in\n"
		"                         flight (default %u; %u while faults share the connection)\n"
		"      --tls              TLS with X.509 certificates, both sides authenticated, as criu\n"
		"      --tls-cacert FILE  trusted CA (default /etc/pki/CA/cacert.pem)\n"
		"      --tls-cacrl FILE   revocation list (default /etc/pki/CA/cacrl.pem, if readable)\n"
		"      --tls-cert FILE    own certificate (default /etc/pki/criu/cert.pem)\n"
		"      --tls-key FILE     own key (default /etc/pki/criu/private/key.pem)\n"
		"      --tls-no-cn-verify do not check that the server's certificate names ADDR\n"
		"      --ps-socket FD     (criu: a connection to the page server, already made)\n"
		"                         not supported yet: refused; give --address and --port\n"
		"  -h, --help             this text\n",
		name, DEFAULT_BUSY_POLL_US, DEFAULT_BULK_PAGES, DEFAULT_BULK_DEPTH, DEFAULT_BULK_DEPTH_SHARED);
}

/* -v, -vN, -vvv and --verbosity=N, as criu takes them. */
int daemon_parse_verbosity(const char *arg, int cur)
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

int daemon_create_pidfile(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		pr_err("--pidfile %s: %m", path);
		return -errno;
	}
	return fd;
}

/* Closes FD in every case. */
int daemon_fill_pidfile(int fd, const char *path, pid_t pid)
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

int daemon_write_pidfile(const char *path, pid_t pid)
{
	int fd = daemon_create_pidfile(path);

	return fd < 0 ? fd : daemon_fill_pidfile(fd, path, pid);
}

/* A background process: stdio to /dev/null, as criu's --daemon does. */
void daemon_null_stdio(void)
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

/* Runs once the socket listens: the moment criu restore may be started. */
static int on_ready(void *arg)
{
	struct cli *c = arg;

	if (c->daemonize) {
		pid_t pid = fork();

		if (pid < 0) {
			pr_err("fork: %m");
			return -errno;
		}
		if (pid > 0) {
			int ret = c->pidfile_fd >= 0 ? daemon_fill_pidfile(c->pidfile_fd, c->pidfile, pid) : 0;

			_exit(ret ? 1 : 0);
		}
		/* The file is the parent's to fill, and names this process from now on. */
		if (c->pidfile_fd >= 0)
			close(c->pidfile_fd);
		c->pidfile_fd = -1;
		setsid();
		daemon_null_stdio();
	}
	if (c->status_fd >= 0) {
		char zero = 0;

		if (write(c->status_fd, &zero, 1) != 1)
			pr_warn("--status-fd %d: %m", c->status_fd);
		close(c->status_fd);
	}
	return 0;
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

enum {
	OPT_PIDFILE = 256,
	OPT_STATUS_FD,
	OPT_NO_DEFAULT_CONFIG,
	OPT_PAGE_SERVER,
	OPT_ADDRESS,
	OPT_PORT,
	OPT_STATS,
	OPT_PS_PROTOCOL,
	OPT_RECONNECT_TIMEOUT,
	OPT_PS_SINGLE,
	OPT_PS_BULK_PAGES,
	OPT_PS_BULK_DEPTH,
	OPT_TLS,
	OPT_TLS_CACERT,
	OPT_TLS_CACRL,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_NO_CN,
	OPT_BUSY_POLL,
	OPT_COPY_THREADS,
	OPT_LOOP_CPU,
	OPT_RECORD_PROFILE,
	OPT_PREFETCH_PROFILE,
	OPT_CONFIG,
	OPT_LOG_PID,
	OPT_DISPLAY_STATS,
	OPT_PS_SOCKET,
};
static const struct option longopts[] = {
	{ "images-dir", required_argument, NULL, 'D' },
	{ "work-dir", required_argument, NULL, 'W' },
	{ "log-file", required_argument, NULL, 'o' },
	{ "verbosity", optional_argument, NULL, 'v' },
	{ "daemon", no_argument, NULL, 'd' },
	{ "pidfile", required_argument, NULL, OPT_PIDFILE },
	{ "status-fd", required_argument, NULL, OPT_STATUS_FD },
	{ "no-default-config", no_argument, NULL, OPT_NO_DEFAULT_CONFIG },
	{ "page-server", no_argument, NULL, OPT_PAGE_SERVER },
	{ "address", required_argument, NULL, OPT_ADDRESS },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "stats", required_argument, NULL, OPT_STATS },
	{ "ps-protocol", required_argument, NULL, OPT_PS_PROTOCOL },
	{ "reconnect-timeout", required_argument, NULL, OPT_RECONNECT_TIMEOUT },
	{ "ps-single-connection", no_argument, NULL, OPT_PS_SINGLE },
	{ "ps-bulk-pages", required_argument, NULL, OPT_PS_BULK_PAGES },
	{ "ps-bulk-depth", required_argument, NULL, OPT_PS_BULK_DEPTH },
	{ "tls", no_argument, NULL, OPT_TLS },
	{ "tls-cacert", required_argument, NULL, OPT_TLS_CACERT },
	{ "tls-cacrl", required_argument, NULL, OPT_TLS_CACRL },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "tls-no-cn-verify", no_argument, NULL, OPT_TLS_NO_CN },
	{ "busy-poll", required_argument, NULL, OPT_BUSY_POLL },
	{ "copy-threads", required_argument, NULL, OPT_COPY_THREADS },
	{ "loop-cpu", required_argument, NULL, OPT_LOOP_CPU },
	{ "record-profile", required_argument, NULL, OPT_RECORD_PROFILE },
	{ "prefetch-profile", required_argument, NULL, OPT_PREFETCH_PROFILE },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "log-pid", no_argument, NULL, OPT_LOG_PID },
	{ "display-stats", no_argument, NULL, OPT_DISPLAY_STATS },
	{ "shell-job", no_argument, NULL, 'j' },
	{ "ps-socket", required_argument, NULL, OPT_PS_SOCKET },
	{ "help", no_argument, NULL, 'h' },
	{},
};

/*
 * --config FILE: its options as "--NAME[=ARG]" strings, put before the command line's
 * so that those override them. What getopt parses points into them: freed only once
 * the daemon is done.
 */
static char **config_args;
static int nr_config_args;

static int config_add(const char *name, const char *arg)
{
	char **v = realloc(config_args, (nr_config_args + 1) * sizeof(*v));
	int n;

	if (!v)
		return -ENOMEM;
	config_args = v;
	n = arg ? asprintf(&v[nr_config_args], "--%s=%s", name, arg) : asprintf(&v[nr_config_args], "--%s", name);
	if (n < 0)
		return -ENOMEM;
	nr_config_args++;
	return 0;
}

/* One line of a criu config file: NAME [ARG], ARG in double quotes if it has spaces. */
static int config_line(const char *file, int lineno, char *p)
{
	const struct option *o;
	char *name, *arg = NULL;

	while (isspace((unsigned char)*p))
		p++;
	if (!*p || *p == '#')
		return 0;
	name = p;
	while (*p && !isspace((unsigned char)*p) && *p != '#')
		p++;
	if (*p == '#') {
		*p = '\0'; /* a comment right after the name: nothing follows */
	} else if (*p) {
		*p++ = '\0';
	}
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '"') {
		char *w = ++p;

		arg = w;
		for (; *p && *p != '"'; p++) {
			/* Only \" is an escape; any other backslash is itself. */
			if (*p == '\\' && p[1] == '"')
				p++;
			*w++ = *p;
		}
		if (*p != '"') {
			pr_err("--config %s: line %d: no closing quote", file, lineno);
			return -EINVAL;
		}
		*w = '\0';
		p++;
	} else if (*p && *p != '#') {
		arg = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (*p)
			*p++ = '\0';
	}
	while (isspace((unsigned char)*p))
		p++;
	if (*p && *p != '#') {
		pr_err("--config %s: line %d: '%s' takes at most one argument", file, lineno, name);
		return -EINVAL;
	}
	for (o = longopts; o->name; o++)
		if (!strcmp(o->name, name))
			break;
	if (!o->name || !strcmp(name, "config") || !strcmp(name, "help")) {
		pr_err("--config %s: line %d: '%s' is not an option of lazy-uffd daemon (see --help)", file, lineno,
		       name);
		return -EINVAL;
	}
	if (o->has_arg == no_argument && arg) {
		pr_err("--config %s: line %d: '%s' takes no argument", file, lineno, name);
		return -EINVAL;
	}
	if (o->has_arg == required_argument && !arg) {
		pr_err("--config %s: line %d: '%s' needs an argument", file, lineno, name);
		return -EINVAL;
	}
	return config_add(name, arg);
}

static int config_read(const char *file)
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
		ret = config_line(file, ++lineno, line);
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

/* The command line, after --config's options were put in front of it. */
static int daemon_cli(int argc, char **argv, const char *config_file)
{
	struct cli c = { .verbosity = LOG_WARN, .status_fd = -1, .pidfile_fd = -1 };
	struct daemon_opts o = { .ready = on_ready, .ready_arg = &c, .busy_poll_ns = DEFAULT_BUSY_POLL_US * 1000ULL };
	cpu_set_t cpus;

	o.loop_cpu = -1;
	const char *record_arg = NULL, *prefetch_arg = NULL;
	char *record_path = NULL, *prefetch_path = NULL;
	struct profile prefetch = { 0 };
	struct profile_error perr;
	struct remote_opts ro = {
		.reconnect_timeout = 30,
		.bulk_pages = DEFAULT_BULK_PAGES,
		.bulk_depth = DEFAULT_BULK_DEPTH,
		.bulk_depth_shared = DEFAULT_BULK_DEPTH_SHARED,
	};
	char *tls_paths[4] = { NULL };
	bool remote = false, remote_opt = false;
	char *end;
	long v;
	struct crimg_error err;
	struct crimg *img = NULL;
	char *images = NULL, *stats = NULL;
	FILE *log = NULL;
	int opt, ret, status = 1;

	optind = 1;
	/* A second copying thread only pays where it can run beside the loop. */
	if (sched_getaffinity(0, sizeof(cpus), &cpus))
		CPU_ZERO(&cpus);
	if (CPU_COUNT(&cpus) > 1)
		o.copy_threads = 1;
	while ((opt = getopt_long(argc, argv, "D:W:o:v::djh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'D':
			c.images_dir = optarg;
			break;
		case 'W':
			c.work_dir = optarg;
			break;
		case 'o':
			c.log_file = optarg;
			break;
		case 'v':
			c.verbosity = daemon_parse_verbosity(optarg, c.verbosity);
			if (c.verbosity < 0) {
				pr_err("bad verbosity '%s'", optarg);
				return 2;
			}
			break;
		case 'd':
			c.daemonize = true;
			break;
		case OPT_PIDFILE:
			c.pidfile = optarg;
			break;
		case OPT_STATUS_FD: {
			char *end;

			c.status_fd = (int)strtol(optarg, &end, 10);
			if (*end || c.status_fd < 0) {
				pr_err("bad --status-fd '%s'", optarg);
				return 2;
			}
			break;
		}
		case OPT_CONFIG:
			/* Read above, if the scan for it saw this one (not an abbreviation, not a second). */
			if (!config_file || strcmp(optarg, config_file)) {
				pr_err("--config %s: give one --config, as --config FILE or --config=FILE", optarg);
				return 2;
			}
			break;
		case OPT_NO_DEFAULT_CONFIG:
		case 'j': /* criu's restored tasks keep its session; we restore none */
			break;
		/*
		 * criu gives a log file of its own (FILE.PID) only to the processes a
		 * restore forks; criu lazy-pages (4.1.1) still logs to FILE, and so do we.
		 */
		case OPT_LOG_PID:
			break;
		case OPT_DISPLAY_STATS:
			c.display_stats = true;
			break;
		case OPT_PS_SOCKET:
			/* The remote client owns its connections and reconnects by address. */
			pr_err("--ps-socket is not supported yet: give the page server's --address and --port");
			return 2;
		case OPT_PAGE_SERVER:
			remote = true;
			break;
		case OPT_ADDRESS:
			ro.address = optarg;
			remote_opt = true;
			break;
		case OPT_PORT:
			v = strtol(optarg, &end, 10);
			if (*end || v <= 0 || v > 65535) {
				pr_err("bad --port '%s'", optarg);
				return 2;
			}
			ro.port = (int)v;
			remote_opt = true;
			break;
		case OPT_PS_PROTOCOL:
			if (!strcmp(optarg, "4.1") || !strcmp(optarg, "24"))
				ro.layout = PS_LAYOUT_41;
			else if (!strcmp(optarg, "4.2") || !strcmp(optarg, "32"))
				ro.layout = PS_LAYOUT_42;
			else {
				pr_err("bad --ps-protocol '%s' (4.1 or 4.2)", optarg);
				return 2;
			}
			remote_opt = true;
			break;
		case OPT_RECONNECT_TIMEOUT:
			ro.reconnect_timeout = strtod(optarg, &end);
			if (*end || !(ro.reconnect_timeout >= 0.1) || ro.reconnect_timeout > 86400) {
				pr_err("bad --reconnect-timeout '%s' (seconds, 0.1 to 86400)", optarg);
				return 2;
			}
			break;
		case OPT_PS_SINGLE:
			ro.single_connection = true;
			break;
		case OPT_PS_BULK_PAGES:
		case OPT_PS_BULK_DEPTH:
			v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > (opt == OPT_PS_BULK_PAGES ? 65536 : 64)) {
				pr_err("bad --%s '%s'", opt == OPT_PS_BULK_PAGES ? "ps-bulk-pages" : "ps-bulk-depth", optarg);
				return 2;
			}
			if (opt == OPT_PS_BULK_PAGES)
				ro.bulk_pages = (unsigned int)v;
			else
				ro.bulk_depth = ro.bulk_depth_shared = (unsigned int)v;
			break;
		case OPT_TLS:
			ro.tls.on = true;
			break;
		case OPT_TLS_CACERT:
			ro.tls.cacert = optarg;
			break;
		case OPT_TLS_CACRL:
			ro.tls.cacrl = optarg;
			break;
		case OPT_TLS_CERT:
			ro.tls.cert = optarg;
			break;
		case OPT_TLS_KEY:
			ro.tls.key = optarg;
			break;
		case OPT_TLS_NO_CN:
			ro.tls.no_cn_verify = true;
			break;
		case OPT_STATS:
			c.stats_file = optarg;
			break;
		case OPT_BUSY_POLL:
			v = strtol(optarg, &end, 10);
			if (*end || v < 0 || v > 1000000) {
				pr_err("bad --busy-poll '%s' (microseconds, 0 to 1000000)", optarg);
				return 2;
			}
			o.busy_poll_ns = (uint64_t)v * 1000;
			break;
		case OPT_COPY_THREADS:
			v = strtol(optarg, &end, 10);
			if (*end || v < 0 || v > 1) {
				pr_err("bad --copy-threads '%s' (0 or 1)", optarg);
				return 2;
			}
			o.copy_threads = (unsigned int)v;
			break;
		case OPT_LOOP_CPU:
			v = strtol(optarg, &end, 10);
			if (*end || v < 0 || v >= CPU_SETSIZE) {
				pr_err("bad --loop-cpu '%s' (a CPU number)", optarg);
				return 2;
			}
			o.loop_cpu = (int)v;
			/* Checked now: once the socket listens, criu restore may already be on its way. */
			if (CPU_COUNT(&cpus) && !CPU_ISSET(o.loop_cpu, &cpus)) {
				pr_err("--loop-cpu %d: not among the %d CPUs the daemon may run on", o.loop_cpu,
				       CPU_COUNT(&cpus));
				return 2;
			}
			break;
		case OPT_RECORD_PROFILE:
			record_arg = optarg;
			break;
		case OPT_PREFETCH_PROFILE:
			prefetch_arg = optarg;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (optind < argc) {
		pr_err("unexpected argument '%s'", argv[optind]);
		return 2;
	}
	if (remote_opt && !remote) {
		pr_err("--address, --port and --ps-protocol need --page-server");
		return 2;
	}
	if (remote && (record_arg || prefetch_arg)) {
		pr_err("--record-profile and --prefetch-profile work with local pages, not --page-server");
		return 2;
	}
	if (remote && !ro.port) {
		pr_err("--page-server needs --port (the page server's)");
		return 2;
	}
	if (remote) {
		const char **p[4] = { &ro.tls.cacert, &ro.tls.cacrl, &ro.tls.cert, &ro.tls.key };
		int k;

		/* The certificates are read after the chdir to the work dir: make them absolute. */
		for (k = 0; k < 4; k++) {
			if (!*p[k])
				continue;
			tls_paths[k] = absolute_from_cwd(*p[k]);
			if (!tls_paths[k]) {
				pr_err("%s: %m", *p[k]);
				goto out;
			}
			*p[k] = tls_paths[k];
		}
		o.remote = &ro;
	}
	if (!c.images_dir) {
		pr_err("-D/--images-dir is required");
		usage(stderr, argv[0]);
		return 2;
	}
	if (c.verbosity > LOG_DEBUG)
		c.verbosity = LOG_DEBUG;

	images = realpath(c.images_dir, NULL);
	if (!images) {
		pr_err("images dir %s: %m", c.images_dir);
		return 1;
	}
	if (c.stats_file) {
		stats = absolute_from_cwd(c.stats_file);
		if (!stats) {
			pr_err("--stats %s: %m", c.stats_file);
			goto out;
		}
		o.stats_file = stats;
	}
	if (c.display_stats) {
		stats_set_display(true);
		if (!o.stats_file)
			o.stats_file = "-";
	}
	if (record_arg) {
		record_path = absolute_from_cwd(record_arg);
		if (!record_path) {
			pr_err("--record-profile %s: %m", record_arg);
			goto out;
		}
		o.record_profile = record_path;
	}
	if (prefetch_arg) {
		prefetch_path = absolute_from_cwd(prefetch_arg);
		if (!prefetch_path) {
			pr_err("--prefetch-profile %s: %m", prefetch_arg);
			goto out;
		}
	}
	/* Like criu, everything relative (socket, log, pidfile) lives in the work dir. */
	if (chdir(c.work_dir ? c.work_dir : images)) {
		pr_err("work dir %s: %m", c.work_dir ? c.work_dir : images);
		goto out;
	}
	if (c.log_file && strcmp(c.log_file, "-")) {
		int fd;

		/* 0600, as criu's: a log names the restored tasks, their pids and addresses. */
		fd = open(c.log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		log = fd < 0 ? NULL : fdopen(fd, "a");
		if (!log) {
			pr_err("log file %s: %m", c.log_file);
			if (fd >= 0)
				close(fd);
			goto out;
		}
		setvbuf(log, NULL, _IOLBF, 0);
	}
	log_setup(c.log_file && !strcmp(c.log_file, "-") ? stdout : log, c.verbosity, LOG_STYLE_CRIU);
	pr_info("lazy-uffd %s: serving %s", LAZY_UFFD_VERSION, images);
	/*
	 * Taken now, not after the fork: a daemon that could not write its pidfile would
	 * otherwise already be listening, and the next criu restore would go to it while
	 * whoever reads the pidfile watches another process.
	 */
	if (c.daemonize && c.pidfile) {
		c.pidfile_fd = daemon_create_pidfile(c.pidfile);
		if (c.pidfile_fd < 0)
			goto out;
	}

	ret = crimg_open(images, &img, &err);
	if (ret) {
		pr_err("%s", err.msg);
		goto out;
	}
	o.fingerprint = profile_fingerprint(img);
	if (prefetch_path) {
		/* Refused before the socket listens: criu restore then fails at once, visibly. */
		if (profile_load(prefetch_path, o.fingerprint, img, &prefetch, &perr)) {
			pr_err("--prefetch-profile: %s", perr.msg);
			goto out;
		}
		if (prefetch.skipped_tasks)
			pr_warn("--prefetch-profile %s: %zu records for tasks these images do not have; skipped",
				prefetch_path, prefetch.skipped_tasks);
		pr_info("--prefetch-profile %s: %zu records", prefetch_path, prefetch.nr);
		o.prefetch = &prefetch;
	}
	status = daemon_serve(img, &o);
out:
	profile_free(&prefetch);
	free(record_path);
	free(prefetch_path);
	crimg_close(img);
	free(images);
	free(stats);
	for (v = 0; v < 4; v++)
		free(tls_paths[v]);
	/* Never filled: it names no daemon, and would refuse the next start. */
	if (c.pidfile_fd >= 0) {
		close(c.pidfile_fd);
		unlink(c.pidfile);
	}
	if (log)
		fclose(log);
	return status;
}

int cmd_daemon(int argc, char **argv)
{
	const char *config_file;
	char **args = NULL;
	int i, status = 2;

	/* Before getopt: the config's options come first, so the command line wins. */
	config_file = config_file_arg(argc, argv);
	if (config_file && config_read(config_file))
		goto out;
	args = calloc(argc + nr_config_args + 1, sizeof(*args));
	if (!args) {
		pr_err("out of memory");
		status = 1;
		goto out;
	}
	args[0] = argv[0];
	if (nr_config_args)
		memcpy(args + 1, config_args, nr_config_args * sizeof(*args));
	memcpy(args + 1 + nr_config_args, argv + 1, (argc - 1) * sizeof(*args));
	status = daemon_cli(argc + nr_config_args, args, config_file);
out:
	free(args);
	for (i = 0; i < nr_config_args; i++)
		free(config_args[i]);
	free(config_args);
	config_args = NULL;
	nr_config_args = 0;
	return status;
}
