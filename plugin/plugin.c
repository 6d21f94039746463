// SPDX-License-Identifier: MIT
/*
 * The CRIU plugin descriptor, its init/exit, the preload constructor, and keeping the
 * device fd for the restored tasks; see plugin.h for the contract.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>

#pragma GCC visibility push(default)
#include <criu-plugin.h>
#pragma GCC visibility pop

#include "plugin.h"
#include "uffd_dev.h"

/* Exported by the criu executable; weak so the library also loads where they are absent. */
extern void print_on_level(unsigned int level, const char *fmt, ...) __attribute__((weak, format(printf, 2, 3)));
extern int fdstore_add(int fd) __attribute__((weak));
extern int inherit_fd_parse(char *optarg) __attribute__((weak));

struct lu_state lu = {
	.mode = LU_MODE_AUTO,
	.device = UFFD_DEV_PATH,
	.keep = LU_KEEP_NONE,
	.keep_id = -1,
};

/* Set when another copy of this library owns criu's slots: init and exit go to it. */
static cr_plugin_desc_t *owner;

static const char *const stage_names[] = {"dump", "pre-dump", "restore"};

void lu_log(unsigned int level, const char *file, int line, const char *fmt, ...)
{
	int saved = errno;
	char msg[2048];
	va_list ap;

	if (!print_on_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* The prefixes of CRIU's own pr_err()/pr_warn(), which users and zdtm grep for. */
	if (level == LU_LOG_ERROR)
		print_on_level(level, "Error (%s:%d): " LAZY_UFFD_PLUGIN_NAME ": %s\n", file, line, msg);
	else if (level == LU_LOG_WARN)
		print_on_level(level, "Warn  (%s:%d): " LAZY_UFFD_PLUGIN_NAME ": %s\n", file, line, msg);
	else
		print_on_level(level, LAZY_UFFD_PLUGIN_NAME ": %s\n", msg);
	errno = saved;
}

int lu_read_settings(bool report)
{
	const char *mode = getenv("LAZY_UFFD_MODE");
	const char *allow = getenv("LAZY_UFFD_ALLOW_NO_FORK_EVENT");
	const char *dev = getenv("LAZY_UFFD_DEVICE");

	if (!mode || !*mode || !strcmp(mode, "auto"))
		lu.mode = LU_MODE_AUTO;
	else if (!strcmp(mode, "device"))
		lu.mode = LU_MODE_DEVICE;
	else if (!strcmp(mode, "syscall"))
		lu.mode = LU_MODE_SYSCALL;
	else {
		if (report)
			lu_err("LAZY_UFFD_MODE=%s: expected auto, device or syscall", mode);
		return -EINVAL;
	}

	if (!allow || !*allow || !strcmp(allow, "0"))
		lu.allow_no_fork = false;
	else if (!strcmp(allow, "1"))
		lu.allow_no_fork = true;
	else {
		if (report)
			lu_err("LAZY_UFFD_ALLOW_NO_FORK_EVENT=%s: expected 0 or 1", allow);
		return -EINVAL;
	}

	if (dev && *dev) {
		if (dev[0] != '/') {
			if (report)
				lu_err("LAZY_UFFD_DEVICE=%s: expected an absolute path", dev);
			return -EINVAL;
		}
		lu.device = dev;
	}
	return 0;
}

/*
 * Whether this is a lazy restore. Plugins are not told, and opts is CRIU's private
 * layout. The command line covers the usual case; a lazy restore started through RPC
 * (runc, any swrk user) or a config file shows in the work dir instead, criu's cwd at
 * plugin init, where its lazy-pages daemon must listen (a stat: connecting would take
 * the daemon's one connection).
 */
static bool cmdline_lazy(void)
{
	char buf[8192];
	bool lazy = false;
	ssize_t n;
	size_t off;
	int fd;

	fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	for (off = 0; off < (size_t)n; off += strlen(buf + off) + 1)
		if (!strcmp(buf + off, "--lazy-pages"))
			lazy = true;
	return lazy;
}

static bool restore_is_lazy(void)
{
	struct stat st;

	if (cmdline_lazy())
		return true;
	return !stat("lazy-pages.socket", &st) && S_ISSOCK(st.st_mode);
}

/*
 * Whether CRIU's fdstore exists yet: 4.2 creates it before plugin init, 4.1 after. It
 * is a datagram socket bound to itself under the abstract name "\0/criu-fdstore-...".
 * Not finding it is safe: the inherit-fd route works on both.
 */
static bool fdstore_ready(void)
{
	static const char prefix[] = "/criu-fdstore-";
	struct sockaddr_un addr;
	struct dirent *de;
	bool found = false;
	socklen_t len;
	DIR *d;

	d = opendir("/proc/self/fd");
	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		struct stat st;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		if (fd == dirfd(d) || fstat(fd, &st) || !S_ISSOCK(st.st_mode))
			continue;
		len = sizeof(addr);
		memset(&addr, 0, sizeof(addr));
		if (getsockname(fd, (struct sockaddr *)&addr, &len) || addr.sun_family != AF_UNIX)
			continue;
		if (len > sizeof(sa_family_t) + sizeof(prefix) - 1 && addr.sun_path[0] == '\0' &&
		    !memcmp(addr.sun_path + 1, prefix, sizeof(prefix) - 1))
			found = true;
	}
	closedir(d);
	return found;
}

/*
 * Keep @devfd (consumed) where the restored tasks can take it back: they close every
 * inherited fd except CRIU's service fds, and may not see the device path at all.
 */
static int keep_device(int devfd, char *where, size_t len)
{
	char arg[96], *copy;
	int id;

	if (fdstore_add && fdstore_ready()) {
		id = fdstore_add(devfd);
		close(devfd);
		if (id < 0) {
			lu_err("fdstore_add(%s) failed: cannot keep the device for the restored tasks", lu.device);
			return -EIO;
		}
		lu.keep = LU_KEEP_FDSTORE;
		lu.keep_id = id;
		snprintf(where, len, "kept in CRIU's fdstore (id %d)", id);
		return 0;
	}

	/*
	 * CRIU 4.1: the fdstore does not exist yet. CRIU moves every --inherit-fd entry
	 * into it right after creating it, before any task is forked, and a task gets a
	 * copy back by key: the same route `criu restore --inherit-fd fd[N]:KEY` takes.
	 * The key matches no file of an image (those are paths or "type:[inode]").
	 */
	if (!inherit_fd_parse) {
		lu_err("this criu exports neither a ready fdstore nor inherit_fd_parse(): cannot keep the device "
		       "for the restored tasks");
		close(devfd);
		return -ENOSYS;
	}
	snprintf(lu.keep_key, sizeof(lu.keep_key), "lazy-uffd-device-%d", (int)getpid());
	snprintf(arg, sizeof(arg), "fd[%d]:%s", devfd, lu.keep_key);
	/* CRIU may keep pointers into the string: it must outlive this library. */
	copy = strdup(arg);
	if (!copy || inherit_fd_parse(copy)) {
		lu_err("cannot hand %s (fd %d) to CRIU's inherit-fd list", lu.device, devfd);
		free(copy);
		close(devfd);
		return -EIO;
	}
	lu.keep = LU_KEEP_INHERIT;
	snprintf(where, len, "handed to CRIU's inherit-fd list as %s, for its fdstore", lu.keep_key);
	return 0;
}

/*
 * A device uffd with the events CRIU needs, at init: the kernel refuses EVENT_FORK
 * without CAP_SYS_PTRACE, and the restore should stop before any task exists. *@got:
 * the events a device uffd of criu's gets (the probe lists EVENT_FORK as offered even
 * to a caller it will refuse it to). Returns 0 with EVENT_FORK among them; -EPERM when
 * it was refused and -EOPNOTSUPP when it is not offered (*@got: the others, as far as a
 * handshake without it took them); else -errno of the handshake.
 */
static int check_fork_event(int devfd, uint64_t *got)
{
	uint64_t want = UFFD_NEED_FEATURES & lu.dev_features;
	int uffd, ret;

	*got = 0;
	uffd = uffd_dev_new(devfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		return uffd;
	ret = uffd_api(uffd, want, NULL, NULL);
	if (ret == -EPERM && (want & UFFD_EV_FORK)) {
		/* What redirect.c's handshake falls back on with LAZY_UFFD_ALLOW_NO_FORK_EVENT=1. */
		want &= ~UFFD_EV_FORK;
		if (uffd_api(uffd, want, NULL, NULL))
			want = 0;
	}
	close(uffd);
	if (ret && ret != -EPERM)
		return ret;
	*got = want;
	if (!ret && !(want & UFFD_EV_FORK))
		return -EOPNOTSUPP;
	return ret;
}

/* A failure of the device path at init: fatal to a lazy restore, a note otherwise. */
static int init_failed(bool lazy, const char *msg)
{
	if (lazy) {
		lu_err("criu restore --lazy-pages cannot work: %s", msg);
		return -1;
	}
	lu_info("%s (not a lazy restore, as far as the command line tells: going on; a task that asks "
		"for a userfaultfd will fail)",
		msg);
	return 0;
}

static int restore_init(void)
{
	bool lazy = restore_is_lazy();
	char msg[1024], where[128], names[256], why[64];
	uint64_t ioctls, got;
	int sys_err = 0;
	int devfd, fd, ret;

	lu.master = getpid();
	if (lu.mode == LU_MODE_AUTO) {
		fd = uffd_sys_new(O_CLOEXEC | O_NONBLOCK);
		if (fd >= 0)
			close(fd);
		else
			sys_err = -fd;
	}

	ret = redirect_install();
	if (ret) {
		if (lu.mode == LU_MODE_AUTO && !sys_err)
			return 0;
		return init_failed(lazy, "criu's userfaultfd calls cannot be redirected (see above)");
	}
	lu.restore = true;

	if (lu.mode == LU_MODE_AUTO && !sys_err) {
		/*
		 * criu may call userfaultfd(2), but a restored task in a user namespace may not
		 * (vm.unprivileged_userfaultfd=0 asks for CAP_SYS_PTRACE in the initial one),
		 * and its mount namespace may have no node: keep the device now, while criu can
		 * open it, for such a task to fall back on. Not having it is no error here.
		 */
		devfd = uffd_dev_open(lu.device);
		if (devfd >= 0 && uffd_probe(devfd, &lu.dev_features, &ioctls)) {
			close(devfd);
			devfd = -1;
		}
		if (devfd >= 0) {
			lu.dev_probed = true;
			if (!keep_device(devfd, where, sizeof(where))) {
				lu_info("userfaultfd(2) works here: CRIU's uffds come from it; %s, opened now and %s, "
					"serves a restored task whose own userfaultfd(2) is refused (a user namespace)",
					lu.device, where);
				return 0;
			}
		}
		lu_info("userfaultfd(2) works here: CRIU's uffds come from it (%s, which criu cannot open now, "
			"only if a task is refused)",
			lu.device);
		return 0;
	}
	if (sys_err)
		snprintf(why, sizeof(why), "userfaultfd(2) fails with %s", uffd_errno_name(sys_err));
	else
		snprintf(why, sizeof(why), "LAZY_UFFD_MODE=device");

	devfd = uffd_dev_open(lu.device);
	if (devfd == -EPERM || devfd == -EACCES || devfd == -ENOENT || devfd == -ENOTDIR) {
		/*
		 * Our cgroup, our mount namespace or a mount option may keep us from the node
		 * while a lazy-uffd daemon outside the container can open it: ask it (the
		 * socket is in criu's work dir, our cwd).
		 */
		int err = devfd, fd = uffd_dev_from_daemon(UFFD_DEV_SOCKET, 5000);

		if (fd >= 0) {
			lu_info("%s: %s cannot be opened here (%s); the lazy-pages daemon handed us its fd",
				why, lu.device, uffd_errno_name(-err));
			devfd = fd;
		} else {
			lu_info("no lazy-uffd daemon hands out %s through %s here: %s", lu.device, UFFD_DEV_SOCKET,
				strerror(-fd));
		}
	}
	if (devfd < 0) {
		uffd_dev_explain(lu.device, UFFD_STEP_OPEN, -devfd, msg, sizeof(msg));
		return init_failed(lazy, msg);
	}
	ret = uffd_probe(devfd, &lu.dev_features, &ioctls);
	if (ret) {
		uffd_dev_explain(lu.device, UFFD_STEP_IOC_NEW, -ret, msg, sizeof(msg));
		close(devfd);
		return init_failed(lazy, msg);
	}
	lu.dev_probed = true;

	ret = check_fork_event(devfd, &got);
	if (ret && ret != -EPERM && ret != -EOPNOTSUPP) {
		snprintf(msg, sizeof(msg), "%s: UFFDIO_API asking for the events a lazy restore needs failed: %s",
			 lu.device, strerror(-ret));
		close(devfd);
		return init_failed(lazy, msg);
	}
	if (ret) {
		snprintf(msg, sizeof(msg),
			 "%s: %s, and without it a process that forks after the restore would lose the lazy pages "
			 "it has not touched yet (the child sees zeros there); give criu CAP_SYS_PTRACE, or set "
			 "LAZY_UFFD_ALLOW_NO_FORK_EVENT=1 if no restored process forks",
			 lu.device,
			 ret == -EPERM ? "the kernel refuses EVENT_FORK (it needs CAP_SYS_PTRACE)"
				       : "this kernel offers no EVENT_FORK");
		if (!lu.allow_no_fork) {
			close(devfd);
			return init_failed(lazy, msg);
		}
		lu_warn("%s; going on without it (LAZY_UFFD_ALLOW_NO_FORK_EVENT=1)", msg);
	}

	ret = keep_device(devfd, where, sizeof(where));
	if (ret)
		return init_failed(lazy, "the device cannot be kept for the restored tasks (see above)");

	uffd_features_str(got, names, sizeof(names));
	lu_info("%s: CRIU's uffds will be made through %s, opened now and %s; of the events a lazy restore "
		"needs they get %s%s",
		why, lu.device, where, names, got & UFFD_EV_FORK ? "" : " (no EVENT_FORK)");
	return 0;
}

static int lazy_uffd_init(int stage)
{
	const char *name = stage >= 0 && stage < 3 ? stage_names[stage] : "unknown";
	struct got_slot slot;

	if (!owner)
		owner = redirect_owner_desc();
	if (owner) {
		lu_info("loaded for %s; another copy of lazy_uffd (preloaded) does the work", name);
		return owner->init(stage);
	}

	lu_info("loaded for %s", name);
	if (lu_read_settings(true))
		return stage == CR_PLUGIN_STAGE__RESTORE ? -1 : 0;
	if (!got_arch()) {
		char msg[256];
		struct utsname u;

		snprintf(msg, sizeof(msg),
			 "lazy_uffd redirects criu's calls on x86_64 and aarch64 only, not on %s: it does nothing here",
			 uname(&u) ? "this architecture" : u.machine);
		if (stage != CR_PLUGIN_STAGE__RESTORE || lu.mode == LU_MODE_SYSCALL) {
			lu_info("%s", msg);
			return 0;
		}
		return init_failed(restore_is_lazy(), msg);
	}
	if (stage != CR_PLUGIN_STAGE__RESTORE) {
		/* Nothing to do at dump; tell whether a restore could redirect this criu. */
		lu_debug("criu's syscall() GOT slot: %s, ioctl(): %s",
			 got_find("syscall", &slot, 1) > 0 ? "found" : "missing",
			 got_find("ioctl", &slot, 1) > 0 ? "found" : "missing");
		return 0;
	}
	if (lu.mode == LU_MODE_SYSCALL) {
		lu_info("LAZY_UFFD_MODE=syscall: CRIU's uffds are left to the userfaultfd syscall");
		return 0;
	}
	if (!restore_init())
		return 0;
	/*
	 * CRIU unloads a plugin whose init failed without calling its exit: criu's slots
	 * must not point into the library once it is gone.
	 */
	if (lu.installed && !lu.by_preload)
		redirect_uninstall();
	lu.restore = false;
	return -1;
}

static void lazy_uffd_exit(int stage, int ret)
{
	if (owner) {
		owner->exit(stage, ret);
		return;
	}
	/* Our code goes away after exit (dlclose): criu must not call it any more. */
	if (lu.installed && !lu.by_preload)
		redirect_uninstall();
	lu.restore = false;
}

CR_PLUGIN_REGISTER(LAZY_UFFD_PLUGIN_NAME, lazy_uffd_init, lazy_uffd_exit)

/* Whether this very file is listed in LD_PRELOAD (rather than dlopen()ed as a plugin). */
static bool preloaded(void)
{
	const char *env = getenv("LD_PRELOAD");
	char list[4096], *tok, *save = NULL;
	struct stat me, st;
	Dl_info info;

	if (!env || !dladdr((void *)preloaded, &info) || !info.dli_fname || stat(info.dli_fname, &me))
		return false;
	snprintf(list, sizeof(list), "%s", env);
	for (tok = strtok_r(list, " :", &save); tok; tok = strtok_r(NULL, " :", &save))
		if (!stat(tok, &st) && st.st_dev == me.st_dev && st.st_ino == me.st_ino)
			return true;
	return false;
}

/*
 * Preload mode: redirect before main(), so CRIU's startup probe (kerndat, which runs
 * before any plugin loads) and commands that load no plugins (check, lazy-pages) get
 * the device fallback too. Only in criu: other programs criu starts inherit
 * LD_PRELOAD, and print_on_level/fdstore_add exist only in its executable.
 */
__attribute__((constructor)) static void lazy_uffd_preload(void)
{
	if (!print_on_level || !fdstore_add || !preloaded())
		return;
	/* Bad settings are reported by plugin init; the logger is not up yet. */
	if (lu_read_settings(false) || lu.mode == LU_MODE_SYSCALL || !got_arch())
		return;
	if (redirect_owner_desc())
		return;
	lu.master = getpid();
	if (!redirect_install())
		lu.by_preload = true;
}
