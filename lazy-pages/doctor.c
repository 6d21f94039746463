// SPDX-License-Identifier: MIT
/*
 * lazy-uffd doctor: can `criu restore --lazy-pages` work here, and if not, what to change.
 *
 * It looks at what the restore would use, from the process it runs in (so under the
 * same seccomp profile, user and mount namespace as a criu started the same way): the
 * userfaultfd(2) syscall, /dev/userfaultfd, the features each path grants, the criu in
 * use and whether lazy_uffd.so loads into it. Read-only: nothing is changed.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "../plugin/uffd_dev.h"
#include "lazy_pages.h"
#include "pagesize.h"

#define CMD_TIMEOUT_MS 30000

/* What one path (the syscall, or the device) gives. */
struct path_probe {
	int err;	   /* 0: a uffd could be made; else the errno */
	uint64_t features; /* UFFDIO_API with no features: what the kernel offers */
	uint64_t ioctls;
	uint64_t range_ioctls; /* UFFDIO_REGISTER of an anonymous page */
	int need_err;	       /* UFFDIO_API asking for what a lazy restore needs */
	int step;	       /* for the device: which step failed */
};

struct doctor {
	const char *criu_arg;
	const char *plugin_arg;
	const char *device;
	bool allow_no_fork;
	const char *mode;

	struct utsname uts;
	char unpriv[32];
	struct path_probe sys, dev;
	struct uffd_dev_node node;
	int user_only_err; /* userfaultfd(UFFD_USER_MODE_ONLY): the sysctl lets it through */
	int seccomp;	   /* Seccomp: of /proc/self/status, -1 unknown */
	char uid_map[64];  /* first line of /proc/self/uid_map, squeezed */
	bool userns;	   /* not the initial user namespace's identity map */
	int devcg;	   /* uffd_devcg_denies() */
	char devcg_why[8192];

	char criu[PATH_MAX];
	char criu_from[PATH_MAX + 32];
	char criu_version[64];
	int criu_major;
	char plugin[PATH_MAX];
	int plugin_loads; /* 1 yes, 0 no, -1 not checked */
	char plugin_why[512];
	int check_alone; /* exit status of criu check --feature uffd-noncoop, -1 not run */
	int check_preload;
};

static void doctor_usage(FILE *out)
{
	fprintf(out, "usage: lazy-uffd doctor [--criu PATH] [--plugin PATH]\n"
		     "\n"
		     "Say whether criu restore --lazy-pages can work here and what to change if not:\n"
		     "the kernel, what userfaultfd(2) does and why (a seccomp filter, the sysctl, a user\n"
		     "namespace), /dev/userfaultfd (owner, mode, usable by this user), the device cgroup\n"
		     "(v1 devices.list, a v2 device BPF program), vm.unprivileged_userfaultfd, the uffd\n"
		     "features and ioctls each path grants,\n"
		     "the criu in use (--criu, else build/criu-*.env next to this program, else PATH),\n"
		     "its version and whether lazy_uffd.so (--plugin, else next to this program or in\n"
		     "lib/criu) loads into it. Run it the way criu runs: same user, container and\n"
		     "seccomp profile. Exits 0 when a lazy restore can work, 1 when not, 2 on bad usage.\n");
}

/* Make a uffd through one path; -errno. */
static int path_new(int devfd, int flags)
{
	return devfd < 0 ? uffd_sys_new(flags) : uffd_dev_new(devfd, flags);
}

static void probe_path(int devfd, struct path_probe *p)
{
	struct uffdio_register reg = {0};
	void *page;
	int uffd, ret;

	ret = uffd_probe(devfd, &p->features, &p->ioctls);
	if (ret) {
		p->err = -ret;
		p->step = UFFD_STEP_IOC_NEW;
		return;
	}

	/* The range ioctls are what the daemon uses: COPY, ZEROPAGE, WAKE. */
	uffd = path_new(devfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd >= 0 && !uffd_api(uffd, 0, NULL, NULL)) {
		page = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (page != MAP_FAILED) {
			reg.range.start = (unsigned long)page;
			reg.range.len = PAGE_SZ;
			reg.mode = UFFDIO_REGISTER_MODE_MISSING;
			if (!ioctl(uffd, UFFDIO_REGISTER, &reg))
				p->range_ioctls = reg.ioctls;
			munmap(page, PAGE_SZ);
		}
	}
	if (uffd >= 0)
		close(uffd);

	/* The handshake CRIU's restore does: EVENT_FORK needs CAP_SYS_PTRACE. */
	uffd = path_new(devfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0) {
		p->need_err = -uffd;
		return;
	}
	p->need_err = -uffd_api(uffd, UFFD_NEED_FEATURES & p->features, NULL, NULL);
	close(uffd);
}

static void probe_device(struct doctor *d)
{
	int devfd;

	uffd_dev_describe(d->device, &d->node);
	devfd = uffd_dev_open(d->device);
	if (devfd < 0) {
		d->dev.err = -devfd;
		d->dev.step = UFFD_STEP_OPEN;
		return;
	}
	probe_path(devfd, &d->dev);
	close(devfd);
}

/*
 * Run @argv (LD_PRELOAD set to @preload, or cleared) with stdout and stderr captured
 * into @out; bounded in time. The exit status, 128 + signal, or -errno.
 */
static int run(char *const argv[], const char *preload, char *out, size_t len)
{
	struct timespec start, now;
	size_t used = 0;
	int pfd[2], ws = 0;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -errno;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null >= 0)
			dup2(null, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		if (preload)
			setenv("LD_PRELOAD", preload, 1);
		else
			unsetenv("LD_PRELOAD");
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
		char sink[512];
		long left;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = CMD_TIMEOUT_MS - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0 || poll(&pf, 1, left) == 0) {
			kill(pid, SIGKILL);
			break;
		}
		if (used + 1 < len)
			n = read(pfd[0], out + used, len - used - 1);
		else
			n = read(pfd[0], sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (used + 1 < len)
			used += n;
	}
	if (len)
		out[used] = '\0';
	close(pfd[0]);
	if (waitpid(pid, &ws, 0) < 0)
		return -errno;
	if (WIFSIGNALED(ws))
		return 128 + WTERMSIG(ws);
	return WEXITSTATUS(ws);
}

static bool executable(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISREG(st.st_mode) && !access(path, X_OK);
}

/* The directory this program lives in. */
static int self_dir(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	char *slash;

	if (n <= 0)
		return -errno;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	return 0;
}

/* CRIU=... from one of mk/deps.sh's env files. */
static bool criu_from_env(const char *file, char *criu, size_t len)
{
	char line[PATH_MAX];
	bool found = false;
	FILE *f;

	f = fopen(file, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "CRIU=", 5))
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (strlen(line + 5) >= len)
			continue;
		memcpy(criu, line + 5, strlen(line + 5) + 1);
		found = executable(criu);
	}
	fclose(f);
	return found;
}

static void find_criu(struct doctor *d)
{
	static const char *const envs[] = {"criu-4.1.env", "criu-4.2.env", "../criu-4.1.env", "../criu-4.2.env"};
	char dir[PATH_MAX], file[PATH_MAX + 32], *path, *tok, *save = NULL;
	unsigned int i;

	if (d->criu_arg) {
		snprintf(d->criu, sizeof(d->criu), "%s", d->criu_arg);
		snprintf(d->criu_from, sizeof(d->criu_from), "--criu");
		if (!executable(d->criu))
			d->criu[0] = '\0';
		return;
	}
	if (!self_dir(dir, sizeof(dir))) {
		for (i = 0; i < sizeof(envs) / sizeof(envs[0]); i++) {
			snprintf(file, sizeof(file), "%s/%s", dir, envs[i]);
			if (criu_from_env(file, d->criu, sizeof(d->criu))) {
				snprintf(d->criu_from, sizeof(d->criu_from), "%s", file);
				return;
			}
		}
	}
	path = getenv("PATH");
	if (!path)
		return;
	path = strdup(path);
	for (tok = path ? strtok_r(path, ":", &save) : NULL; tok; tok = strtok_r(NULL, ":", &save)) {
		snprintf(d->criu, sizeof(d->criu), "%s/criu", tok);
		if (executable(d->criu)) {
			snprintf(d->criu_from, sizeof(d->criu_from), "PATH");
			free(path);
			return;
		}
	}
	free(path);
	d->criu[0] = '\0';
}

static void find_plugin(struct doctor *d)
{
	static const char *const rel[] = {"lazy_uffd.so", "../lazy_uffd.so", "../lib/criu/lazy_uffd.so"};
	static const char *const abs[] = {"/usr/lib/criu/lazy_uffd.so", "/usr/local/lib/criu/lazy_uffd.so"};
	char dir[PATH_MAX], file[PATH_MAX + 32];
	struct stat st;
	unsigned int i;

	if (d->plugin_arg) {
		if (!realpath(d->plugin_arg, d->plugin))
			d->plugin[0] = '\0';
		return;
	}
	if (!self_dir(dir, sizeof(dir))) {
		for (i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(file, sizeof(file), "%s/%s", dir, rel[i]);
			if (!stat(file, &st) && realpath(file, d->plugin))
				return;
		}
	}
	for (i = 0; i < sizeof(abs) / sizeof(abs[0]); i++)
		if (!stat(abs[i], &st)) {
			snprintf(d->plugin, sizeof(d->plugin), "%s", abs[i]);
			return;
		}
	d->plugin[0] = '\0';
}

static void criu_version(struct doctor *d)
{
	char out[4096], *v;
	char *argv[] = {d->criu, "--version", NULL};

	if (run(argv, NULL, out, sizeof(out)) != 0 || !(v = strstr(out, "Version: "))) {
		snprintf(d->criu_version, sizeof(d->criu_version), "unknown");
		return;
	}
	v += strlen("Version: ");
	v[strcspn(v, " \n")] = '\0';
	snprintf(d->criu_version, sizeof(d->criu_version), "%s", v);
	d->criu_major = atoi(d->criu_version);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

/* A pid that exists no more: criu dump loads its plugins, then fails to seize it. */
static pid_t dead_pid(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return pid;
}

/*
 * Load the plugin the way a restore would: plugins load only for dump and restore,
 * and a dump of a pid that is gone loads them and stops right after. The plugin logs
 * whether it found criu's syscall() and ioctl() GOT slots.
 */
static void check_plugin(struct doctor *d)
{
	char tmpl[] = "/tmp/lazy-uffd-doctor.XXXXXX", plugdir[64], link[96], log[96], pidstr[16];
	char out[4096], *text = NULL, *line;
	long size;
	pid_t pid;
	FILE *f;

	d->plugin_loads = -1;
	if (!mkdtemp(tmpl)) {
		snprintf(d->plugin_why, sizeof(d->plugin_why), "mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(plugdir, sizeof(plugdir), "%s/plugins", tmpl);
	snprintf(link, sizeof(link), "%s/lazy_uffd.so", plugdir);
	snprintf(log, sizeof(log), "%s/dump.log", tmpl);
	pid = dead_pid();
	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	if (pid <= 0 || mkdir(plugdir, 0700) || symlink(d->plugin, link)) {
		snprintf(d->plugin_why, sizeof(d->plugin_why), "cannot prepare %s: %s", plugdir, strerror(errno));
		goto out;
	}
	{
		char *argv[] = {d->criu, "dump",  "-t", pidstr,	    "-D",  tmpl,
				"-L",	 plugdir, "-o", "dump.log", "-v4", NULL};

		run(argv, NULL, out, sizeof(out));
	}

	f = fopen(log, "re");
	if (!f) {
		snprintf(d->plugin_why, sizeof(d->plugin_why), "criu wrote no log: %.200s", out);
		goto out;
	}
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	text = calloc(1, size > 0 ? size + 1 : 1);
	if (text && size > 0 && fread(text, 1, size, f) != (size_t)size)
		text[0] = '\0';
	fclose(f);
	if (!text)
		goto out;

	if (strstr(text, "lazy_uffd: loaded for dump")) {
		if (strstr(text, "syscall() GOT slot: found, ioctl(): found")) {
			d->plugin_loads = 1;
			snprintf(d->plugin_why, sizeof(d->plugin_why),
				 "loads, and finds criu's syscall() and ioctl() GOT slots");
		} else {
			d->plugin_loads = 0;
			snprintf(d->plugin_why, sizeof(d->plugin_why),
				 "loads, but cannot find criu's syscall() or ioctl() GOT slots (criu linked statically "
				 "or with BIND_NOW-free calls inlined?)");
		}
		goto out;
	}
	d->plugin_loads = 0;
	/* The first error criu gave about plugins says why. */
	for (line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
		if (strstr(line, "Error") && (strstr(line, "plugin") || strstr(line, "Plugin"))) {
			snprintf(d->plugin_why, sizeof(d->plugin_why), "does not load: %.400s", line);
			goto out;
		}
	snprintf(d->plugin_why, sizeof(d->plugin_why), "does not load (no line of it in criu's log)");
out:
	free(text);
	nftw(tmpl, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void check_criu(struct doctor *d)
{
	char out[4096];
	char *argv[] = {d->criu, "check", "--feature", "uffd-noncoop", NULL};

	criu_version(d);
	d->check_alone = run(argv, NULL, out, sizeof(out));
	d->check_preload = d->plugin[0] ? run(argv, d->plugin, out, sizeof(out)) : -1;
	if (d->plugin[0])
		check_plugin(d);
}

static void row(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void row(const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("%-31s ", key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void print_path(const char *name, const struct path_probe *p)
{
	char key[64], names[512], range[256];

	if (p->err)
		return;
	snprintf(key, sizeof(key), "features via %s", name);
	uffd_features_str(p->features, names, sizeof(names));
	row(key, "%#llx: %s", (unsigned long long)p->features, names);
	snprintf(key, sizeof(key), "ioctls via %s", name);
	uffd_ioctls_str(p->ioctls, names, sizeof(names));
	uffd_ioctls_str(p->range_ioctls, range, sizeof(range));
	row(key, "%s; for an anonymous range: %s", names, range);
	snprintf(key, sizeof(key), "lazy restore events via %s", name);
	uffd_features_str(UFFD_NEED_FEATURES & p->features, names, sizeof(names));
	if (!p->need_err)
		row(key, "granted: %s", names);
	else if (p->need_err == EPERM)
		row(key, "EPERM: EVENT_FORK needs CAP_SYS_PTRACE (asked for %s)", names);
	else
		row(key, "refused: %s (asked for %s)", strerror(p->need_err), names);
}

/* Whether the events CRIU needs are all there, or EVENT_FORK may be left out. */
static bool events_ok(const struct doctor *d, const struct path_probe *p, char *why, size_t len)
{
	if (!p->need_err && (p->features & UFFD_NEED_FEATURES) == UFFD_NEED_FEATURES)
		return true;
	snprintf(why, len,
		 "%s; a process that forks after the restore would lose its lazy pages: give criu "
		 "CAP_SYS_PTRACE%s",
		 p->need_err == EPERM ? "the kernel refuses EVENT_FORK without CAP_SYS_PTRACE"
				      : "this kernel does not offer every event a lazy restore needs",
		 p == &d->dev ? ", or set LAZY_UFFD_ALLOW_NO_FORK_EVENT=1 if no restored process forks" : "");
	return p == &d->dev && d->allow_no_fork;
}

static int verdict(const struct doctor *d)
{
	char why[1024], plugdir[PATH_MAX];
	bool root = geteuid() == 0;
	char *slash;

	if (!d->criu[0]) {
		printf("verdict: no: no criu found\n");
		printf("next step: install CRIU >= 4.0 (make deps does), or pass --criu PATH\n");
		return 1;
	}
	if (d->criu_major && d->criu_major < 4) {
		printf("verdict: no: criu %s is older than 4.0\n", d->criu_version);
		printf("next step: install CRIU >= 4.0 (make deps does), or pass --criu PATH\n");
		return 1;
	}

	if (!d->sys.err && strcmp(d->mode, "device")) {
		if (!events_ok(d, &d->sys, why, sizeof(why))) {
			printf("verdict: no: userfaultfd(2) works, but %s\n", why);
			printf("next step: run criu with CAP_SYS_PTRACE (as root, without dropping it)\n");
			return 1;
		}
		printf("verdict: ok: lazy restore works with the userfaultfd syscall; the plugin is not needed here "
		       "(loaded, it changes nothing)\n");
		printf("next step: criu restore --lazy-pages -D DIR, with a lazy-pages daemon on the same -W\n");
		return 0;
	}

	if (!strcmp(d->mode, "syscall")) {
		printf("verdict: no: userfaultfd(2) is refused (%s) and LAZY_UFFD_MODE=syscall turns the plugin off\n",
		       uffd_errno_name(d->sys.err));
		printf("next step: unset LAZY_UFFD_MODE (or set it to auto)\n");
		return 1;
	}
	if (d->dev.err) {
		uffd_dev_explain(d->device, d->dev.step, d->dev.err, why, sizeof(why));
		printf("verdict: no: userfaultfd(2) is refused (%s) and %s cannot be used\n",
		       d->sys.err ? uffd_errno_name(d->sys.err) : "LAZY_UFFD_MODE=device", d->device);
		printf("next step: %s\n", why);
		return 1;
	}
	if (!events_ok(d, &d->dev, why, sizeof(why))) {
		printf("verdict: no: %s works, but %s\n", d->device, why);
		printf("next step: run criu with CAP_SYS_PTRACE, or set LAZY_UFFD_ALLOW_NO_FORK_EVENT=1 if no restored "
		       "process forks\n");
		return 1;
	}
	if (!d->plugin[0]) {
		printf("verdict: no: userfaultfd(2) is refused but %s works; lazy_uffd.so, which makes criu use it, "
		       "is not found\n",
		       d->device);
		printf("next step: build it (make) or install it (make install: PREFIX/lib/criu/lazy_uffd.so), or "
		       "pass --plugin PATH\n");
		return 1;
	}
	if (!root) {
		printf("verdict: no: %s works for this user, but criu restores need root, so criu and the plugin "
		       "were not tried\n",
		       d->device);
		printf("next step: run lazy-uffd doctor as the user (root) and in the container that runs criu\n");
		return 1;
	}
	if (d->plugin_loads != 1) {
		printf("verdict: no: %s works, but lazy_uffd.so %s\n", d->device, d->plugin_why);
		printf("next step: rebuild lazy_uffd.so against this criu (make CRIU_SERIES=...), or use a CRIU >= 4.0 "
		       "built without BIND_NOW\n");
		return 1;
	}

	snprintf(plugdir, sizeof(plugdir), "%s", d->plugin);
	slash = strrchr(plugdir, '/');
	if (slash)
		*slash = '\0';
	printf("verdict: ok: lazy restore works through %s with lazy_uffd.so (userfaultfd(2): %s)\n", d->device,
	       d->sys.err ? uffd_errno_name(d->sys.err) : "not used, LAZY_UFFD_MODE=device");
	if (d->dev.need_err)
		printf("warning: without EVENT_FORK (LAZY_UFFD_ALLOW_NO_FORK_EVENT=1): a process that forks after the "
		       "restore loses the lazy pages it has not touched yet\n");
	printf("next step: criu restore --lazy-pages -L %s -D DIR (or install lazy_uffd.so in /usr/lib/criu); "
	       "for criu check and CRIU's own criu lazy-pages: LD_PRELOAD=%s criu ...\n",
	       plugdir, d->plugin);
	return 0;
}

/* Why userfaultfd(2) is refused, each cause checked rather than listed. */
static void probe_sys_cause(struct doctor *d)
{
	char line[256];
	FILE *f;
	int fd;

	d->seccomp = -1;
	f = fopen("/proc/self/status", "re");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "Seccomp: %d", &d->seccomp) == 1)
				break;
		fclose(f);
	}
	/*
	 * The initial user namespace maps every uid to itself; any other map means root
	 * here is not root for the kernel's CAP_SYS_PTRACE check.
	 */
	snprintf(d->uid_map, sizeof(d->uid_map), "unknown");
	f = fopen("/proc/self/uid_map", "re");
	if (f) {
		unsigned long in, out, count;

		if (fscanf(f, "%lu %lu %lu", &in, &out, &count) == 3) {
			snprintf(d->uid_map, sizeof(d->uid_map), "%lu %lu %lu", in, out, count);
			d->userns = !(in == 0 && out == 0 && count == 4294967295UL);
		}
		fclose(f);
	}
	/* The kernel lets UFFD_USER_MODE_ONLY through whatever the sysctl; a filter does not. */
	fd = uffd_sys_new(O_CLOEXEC | UFFD_USER_MODE_ONLY);
	d->user_only_err = fd < 0 ? -fd : 0;
	if (fd >= 0)
		close(fd);
}

/* The row for userfaultfd(2): the errno and the cause that was found. */
static void sys_row(const struct doctor *d)
{
	const char *err = uffd_errno_name(d->sys.err);

	if (!d->sys.err) {
		row("userfaultfd(2)", "ok");
	} else if (d->sys.err == EPERM && !d->user_only_err && d->userns) {
		row("userfaultfd(2)",
		    "EPERM: refused by vm.unprivileged_userfaultfd=%s: this process is in a user "
		    "namespace (uid_map %s), and only CAP_SYS_PTRACE in the initial one counts; "
		    "with UFFD_USER_MODE_ONLY it is allowed, so no seccomp filter refuses it",
		    d->unpriv, d->uid_map);
	} else if (d->sys.err == EPERM && !d->user_only_err) {
		row("userfaultfd(2)",
		    "EPERM: refused by vm.unprivileged_userfaultfd=%s without CAP_SYS_PTRACE; with "
		    "UFFD_USER_MODE_ONLY it is allowed, so no seccomp filter refuses it",
		    d->unpriv);
	} else if (d->seccomp == 2 && (d->sys.err == EPERM || d->sys.err == ENOSYS)) {
		row("userfaultfd(2)",
		    "%s: refused by a seccomp filter (Seccomp: 2 in /proc/self/status; with "
		    "UFFD_USER_MODE_ONLY too, which vm.unprivileged_userfaultfd=%s would allow)",
		    err, d->unpriv);
	} else if (d->sys.err == ENOSYS) {
		row("userfaultfd(2)", "ENOSYS: not available (no seccomp filter here: a kernel without "
				      "CONFIG_USERFAULTFD)");
	} else {
		row("userfaultfd(2)", "%s: %s (seccomp mode %d, vm.unprivileged_userfaultfd=%s)", err,
		    strerror(d->sys.err), d->seccomp, d->unpriv);
	}
}

static void report(struct doctor *d)
{
	char names[512];

	unsigned int major = 0, minor = 0;

	sscanf(d->uts.release, "%u.%u", &major, &minor);
	row("kernel", "%s %s (%s)%s", d->uts.sysname, d->uts.release, d->uts.machine,
	    major > 6 || (major == 6 && minor >= 1) ? "" : "; /dev/userfaultfd needs Linux >= 6.1");

	sys_row(d);
	row("vm.unprivileged_userfaultfd", "%s", d->unpriv);

	if (d->node.stat_err)
		row(d->device, "%s: %s", uffd_errno_name(d->node.stat_err), strerror(d->node.stat_err));
	else
		row(d->device, "%s %u:%u%s, owner %s, group %s, mode %s%s",
		    S_ISCHR(d->node.mode) ? "char" : "not a char device,", major(d->node.rdev), minor(d->node.rdev),
		    uffd_dev_is_uffd(&d->node) ? "" : ", NOT the userfaultfd device 10:257 (hidden or replaced)",
		    d->node.owner, d->node.group, d->node.modestr, d->node.nodev ? ", on a nodev mount" : "");
	if (!d->dev.err)
		row("device access", "usable by uid %u: open and USERFAULTFD_IOC_NEW work", (unsigned int)geteuid());
	else
		row("device access", "%s failed for uid %u: %s",
		    d->dev.step == UFFD_STEP_OPEN ? "open" : "USERFAULTFD_IOC_NEW", (unsigned int)geteuid(),
		    uffd_errno_name(d->dev.err));

	if (d->devcg_why[0])
		row("device cgroup", "%s%s", d->devcg == 1 ? "DENIES: " : "", d->devcg_why);
	else if (d->devcg < 0)
		row("device cgroup", "cannot tell: %s", strerror(-d->devcg));
	else
		row("device cgroup", "no devices controller and no cgroup2 here");

	print_path("syscall", &d->sys);
	print_path("device", &d->dev);

	if (!d->criu[0])
		row("criu", "not found (--criu PATH, build/criu-*.env, PATH)");
	else
		row("criu", "%s (from %s), version %s", d->criu, d->criu_from, d->criu_version);
	if (!d->plugin[0])
		row("plugin", "lazy_uffd.so not found (--plugin PATH)");
	else if (d->plugin_loads < 0)
		row("plugin", "%s: not tried%s%s", d->plugin, d->plugin_why[0] ? ": " : " (needs root and criu)",
		    d->plugin_why);
	else
		row("plugin", "%s %s", d->plugin, d->plugin_why);
	if (d->check_alone >= 0) {
		snprintf(names, sizeof(names), "%s", d->check_alone == 0 ? "passes" : "fails");
		if (d->check_preload >= 0)
			row("criu check uffd-noncoop", "%s alone, %s with LD_PRELOAD=lazy_uffd.so", names,
			    d->check_preload == 0 ? "passes" : "fails");
		else
			row("criu check uffd-noncoop", "%s alone", names);
	}
	if (strcmp(d->mode, "auto"))
		row("LAZY_UFFD_MODE", "%s", d->mode);
	if (d->allow_no_fork)
		row("LAZY_UFFD_ALLOW_NO_FORK_EVENT", "1");
	putchar('\n');
}

static void read_sysctl(struct doctor *d)
{
	FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");

	snprintf(d->unpriv, sizeof(d->unpriv), "absent");
	if (!f)
		return;
	if (fgets(d->unpriv, sizeof(d->unpriv), f))
		d->unpriv[strcspn(d->unpriv, "\n")] = '\0';
	fclose(f);
}

int cmd_doctor(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"criu", required_argument, NULL, 'c'},
		{"plugin", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct doctor d = {.device = UFFD_DEV_PATH, .mode = "auto", .check_alone = -1, .check_preload = -1};
	const char *env;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			d.criu_arg = optarg;
			break;
		case 'p':
			d.plugin_arg = optarg;
			break;
		case 'h':
			doctor_usage(stdout);
			return 0;
		default:
			doctor_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		pr_err("doctor takes no arguments, only options");
		doctor_usage(stderr);
		return 2;
	}
	/* The plugin's settings, as criu would see them from this environment. */
	env = getenv("LAZY_UFFD_DEVICE");
	if (env && *env)
		d.device = env;
	env = getenv("LAZY_UFFD_MODE");
	if (env && *env)
		d.mode = env;
	env = getenv("LAZY_UFFD_ALLOW_NO_FORK_EVENT");
	d.allow_no_fork = env && !strcmp(env, "1");
	if (strcmp(d.mode, "auto") && strcmp(d.mode, "device") && strcmp(d.mode, "syscall")) {
		pr_err("LAZY_UFFD_MODE=%s: expected auto, device or syscall", d.mode);
		return 2;
	}

	uname(&d.uts);
	read_sysctl(&d);
	probe_path(-1, &d.sys);
	probe_sys_cause(&d);
	probe_device(&d);
	d.devcg = uffd_devcg_denies(d.dev.step == UFFD_STEP_OPEN ? d.dev.err : 0, d.devcg_why, sizeof(d.devcg_why));
	find_criu(&d);
	find_plugin(&d);
	d.plugin_loads = -1;
	if (d.criu[0] && geteuid() == 0)
		check_criu(&d);
	else if (d.criu[0])
		criu_version(&d);

	fflush(stdout);
	report(&d);
	return verdict(&d);
}
