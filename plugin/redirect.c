// SPDX-License-Identifier: MIT
/*
 * The wrappers criu's syscall() and ioctl() GOT slots point at, and how a uffd is made
 * when the userfaultfd(2) syscall is refused. See plugin.h for the contract.
 *
 * The wrappers run in whichever criu process calls them: the main process (the startup
 * probe, when preloaded) and the restored tasks, which are forks of it and inherit the
 * redirected slots and the state in `lu`.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#pragma GCC visibility push(default)
#include <criu-plugin.h>
#pragma GCC visibility pop

#include "plugin.h"
#include "uffd_dev.h"

/* Exported by the criu executable; weak so the library loads into anything. */
extern int fdstore_get(int id) __attribute__((weak));
extern int inherit_fd_lookup_id(char *id) __attribute__((weak));

#define MAX_SLOTS 4

static struct redirect {
	const char *name;
	void *wrapper;
	struct got_slot slots[MAX_SLOTS];
	void *orig[MAX_SLOTS];
	int nr;
} redirects[2];

/* Device-made uffds whose UFFDIO_API has not been seen yet, per process. */
struct pending {
	int fd;
	pid_t pid;
	int sys_err; /* what userfaultfd(2) said, 0 when not tried */
};

static struct pending pending[8];

static void pending_add(int fd, int sys_err)
{
	pid_t me = getpid();
	unsigned int i;

	for (i = 0; i < sizeof(pending) / sizeof(pending[0]); i++) {
		/* An entry of another process is a parent's, copied by fork: reuse it. */
		if (pending[i].pid == me && pending[i].fd != fd)
			continue;
		pending[i].fd = fd;
		pending[i].pid = me;
		pending[i].sys_err = sys_err;
		return;
	}
	/* CRIU handshakes each uffd right after making it; eight in flight is plenty. */
	lu_warn("uffd %d: too many uffds without a handshake; its features are left to CRIU", fd);
}

static struct pending *pending_find(int fd)
{
	pid_t me = getpid();
	unsigned int i;

	for (i = 0; i < sizeof(pending) / sizeof(pending[0]); i++)
		if (pending[i].pid == me && pending[i].fd == fd)
			return &pending[i];
	return NULL;
}

/* Errors in a restore's tasks are fatal to it; in criu's main process (the startup
 * probe of a preloaded command) the command may not need a uffd at all. */
static unsigned int failure_level(void)
{
	return getpid() != lu.master ? LU_LOG_ERROR : LU_LOG_WARN;
}

/*
 * Log a device-path failure. A task of a restore without the plugin stage (preloaded
 * only) had to use the path itself, in its own mount namespace: say what avoids that.
 */
static void report(const char *msg)
{
	bool own_open = lu.keep == LU_KEEP_NONE && getpid() != lu.master && !lu.restore;

	lu_log(failure_level(), __FILE__, __LINE__, "%s%s", msg,
	       own_open ? " (or also load lazy_uffd.so as a CRIU plugin, criu restore -L DIR: the plugin opens the "
			  "device at init, in criu's own mount namespace, and hands it to the tasks)"
			: "");
}

/* The device fd for this process: the one kept at plugin init, or a fresh open. */
static int device_fd(void)
{
	char msg[1024];
	int fd;

	switch (lu.keep) {
	case LU_KEEP_FDSTORE:
		fd = fdstore_get ? fdstore_get(lu.keep_id) : -1;
		break;
	case LU_KEEP_INHERIT:
		fd = inherit_fd_lookup_id ? inherit_fd_lookup_id(lu.keep_key) : -1;
		break;
	default:
		fd = uffd_dev_open(lu.device);
		if (fd < 0) {
			uffd_dev_explain(lu.device, UFFD_STEP_OPEN, -fd, msg, sizeof(msg));
			report(msg);
		}
		return fd;
	}
	if (fd < 0) {
		lu_err("the %s fd kept in CRIU's fdstore at plugin init cannot be taken back (%s): "
		       "cannot make a uffd through it",
		       lu.device, lu.keep == LU_KEEP_FDSTORE ? "fdstore_get failed" : "inherit_fd_lookup_id failed");
		return -EBADF;
	}
	return fd;
}

/* userfaultfd(@flags) as CRIU asked for it: the syscall, or the device on EPERM/ENOSYS. */
static long make_uffd(int flags)
{
	char msg[1024];
	int sys_err = 0;
	int devfd, fd;

	if (lu.mode == LU_MODE_AUTO) {
		fd = uffd_sys_new(flags);
		if (fd >= 0) {
			lu_info("uffd %d made by the userfaultfd syscall", fd);
			return fd;
		}
		if (fd != -EPERM && fd != -ENOSYS) {
			errno = -fd;
			return -1;
		}
		sys_err = -fd;
	}

	devfd = device_fd();
	if (devfd < 0)
		goto refused;
	fd = uffd_dev_new(devfd, flags);
	close(devfd);
	if (fd < 0) {
		uffd_dev_explain(lu.device, UFFD_STEP_IOC_NEW, -fd, msg, sizeof(msg));
		report(msg);
		goto refused;
	}
	pending_add(fd, sys_err);
	/*
	 * The handshake's info line may never come from this process: a task in a user
	 * namespace has criu's usernsd (outside, CAP_SYS_PTRACE for EVENT_FORK) do its
	 * UFFDIO_API.
	 */
	lu_debug("uffd %d from USERFAULTFD_IOC_NEW on %s, %s (%s%s)", fd, lu.device,
		 lu.keep == LU_KEEP_NONE ? "opened by this process" : "the fd criu opened at plugin init",
		 sys_err ? "userfaultfd(2): " : "", sys_err ? uffd_errno_name(sys_err) : "LAZY_UFFD_MODE=device");
	return fd;

refused:
	/*
	 * Report what the syscall said: CRIU's startup probe treats any errno but EPERM
	 * and ENOSYS as fatal, and the device failure is logged above.
	 */
	errno = sys_err ? sys_err : EPERM;
	return -1;
}

static long lu_syscall(long nr, ...)
{
	long a[6];
	va_list ap;
	int i;

	/* syscall() is variadic: take the six arguments any syscall can have. */
	va_start(ap, nr);
	for (i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);

	if (nr == SYS_userfaultfd && lu.mode != LU_MODE_SYSCALL)
		return make_uffd((int)a[0]);
	return syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static const char no_fork_msg[] =
	"a process that forks after the restore would lose the lazy pages it has not touched yet (the "
	"child sees zeros there); refusing the restore: give criu CAP_SYS_PTRACE, or set "
	"LAZY_UFFD_ALLOW_NO_FORK_EVENT=1 if no restored process forks";

/* UFFDIO_API on a device-made uffd, CRIU's struct in @api. */
static int handshake(int fd, struct uffdio_api *api, int sys_err)
{
	uint64_t asked = api->features, want = asked, reported = 0, ioctls = 0;
	char names[256], how[96];
	bool widened = false;
	int ret;

	if (sys_err)
		snprintf(how, sizeof(how), "userfaultfd(2): %s", uffd_errno_name(sys_err));
	else
		snprintf(how, sizeof(how), "LAZY_UFFD_MODE=device");

	/*
	 * CRIU asks for the events it needs only when its startup probe found a
	 * userfaultfd; in a restore that probe ran before the plugin and failed.
	 */
	if (asked == 0 && lu.restore && lu.dev_probed) {
		want = UFFD_NEED_FEATURES & lu.dev_features;
		widened = true;
		if (!(want & UFFD_EV_FORK)) {
			if (!lu.allow_no_fork) {
				lu_err("uffd %d: this kernel offers no EVENT_FORK: %s", fd, no_fork_msg);
				errno = EOPNOTSUPP;
				return -1;
			}
			lu_warn("uffd %d: no EVENT_FORK (LAZY_UFFD_ALLOW_NO_FORK_EVENT=1): a child forked after the "
				"restore gets zeros where its parent's pages were still lazy",
				fd);
		}
	}

	ret = uffd_api(fd, want, &reported, &ioctls);
	if (ret == -EPERM && (want & UFFD_EV_FORK)) {
		if (!lu.allow_no_fork) {
			lu_err("uffd %d: the kernel refused EVENT_FORK (it needs CAP_SYS_PTRACE): %s", fd, no_fork_msg);
			errno = EPERM;
			return -1;
		}
		lu_warn("uffd %d: the kernel refused EVENT_FORK (no CAP_SYS_PTRACE); going on without it as "
			"LAZY_UFFD_ALLOW_NO_FORK_EVENT=1 says: a child forked after the restore gets zeros where its "
			"parent's pages were still lazy",
			fd);
		want &= ~UFFD_EV_FORK;
		ret = uffd_api(fd, want, &reported, &ioctls);
	}
	if (ret) {
		lu_log(failure_level(), __FILE__, __LINE__, "uffd %d: UFFDIO_API asking for features %#llx failed: %s",
		       fd, (unsigned long long)want, strerror(-ret));
		errno = -ret;
		return -1;
	}

	api->api = UFFD_API;
	api->features = reported;
	api->ioctls = ioctls;

	uffd_features_str(want, names, sizeof(names));
	if (widened)
		lu_info("uffd %d made through %s (%s); CRIU asked for no features (its startup probe found no "
			"userfaultfd), enabled %#llx: %s",
			fd, lu.device, how, (unsigned long long)want, names);
	else
		lu_info("uffd %d made through %s (%s); enabled the features CRIU asked for, %#llx: %s", fd, lu.device,
			how, (unsigned long long)want, names);
	return 0;
}

static int lu_ioctl(int fd, unsigned long req, ...)
{
	struct pending *p;
	va_list ap;
	void *arg;
	int sys_err;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);

	if (req == UFFDIO_API && (p = pending_find(fd))) {
		sys_err = p->sys_err;
		p->pid = 0;
		return handshake(fd, arg, sys_err);
	}
	return ioctl(fd, req, arg);
}

static int find_slots(struct redirect *r)
{
	int nr = got_find(r->name, r->slots, MAX_SLOTS);

	if (nr == 0)
		nr = -ENOENT;
	if (nr < 0) {
		lu_err("cannot find the GOT slot through which criu calls %s(): %s; this criu cannot be "
		       "redirected (is it linked statically?)",
		       r->name, strerror(-nr));
		return nr;
	}
	r->nr = nr;
	return 0;
}

void *redirect_owner_desc(void)
{
	cr_plugin_desc_t *desc = NULL;
	struct got_slot slot;
	Dl_info info, self;
	void *cur, *h;

	if (lu.installed || got_find("syscall", &slot, 1) != 1)
		return NULL;
	cur = __atomic_load_n(slot.addr, __ATOMIC_SEQ_CST);
	if (!dladdr(cur, &info) || !info.dli_fname || !dladdr((void *)lu_syscall, &self))
		return NULL;
	if (info.dli_fbase == self.dli_fbase)
		return NULL;
	/*
	 * Another copy of this library (a different file, so a separate instance: the
	 * preloaded one) may own the slot. Compare by object, not by &CR_PLUGIN_DESC: that
	 * name binds to the preloaded copy's descriptor in every copy.
	 */
	h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
	if (!h)
		return NULL;
	desc = dlsym(h, "CR_PLUGIN_DESC");
	dlclose(h);
	if (!desc || !desc->name || strcmp(desc->name, LAZY_UFFD_PLUGIN_NAME))
		return NULL;
	return desc;
}

int redirect_install(void)
{
	int i, j, ret;

	if (lu.installed)
		return 0;

	redirects[0] = (struct redirect){.name = "syscall", .wrapper = (void *)lu_syscall};
	redirects[1] = (struct redirect){.name = "ioctl", .wrapper = (void *)lu_ioctl};
	for (i = 0; i < 2; i++) {
		ret = find_slots(&redirects[i]);
		if (ret)
			return ret;
	}

	for (i = 0; i < 2; i++) {
		struct redirect *r = &redirects[i];

		for (j = 0; j < r->nr; j++) {
			r->orig[j] = __atomic_load_n(r->slots[j].addr, __ATOMIC_SEQ_CST);
			ret = got_write(&r->slots[j], r->wrapper);
			if (ret) {
				lu_err("cannot redirect criu's %s() slot at %p: %s", r->name, (void *)r->slots[j].addr,
				       strerror(-ret));
				r->nr = j;
				lu.installed = true;
				redirect_uninstall();
				return ret;
			}
		}
		lu_debug("criu's %s() goes through %d GOT slot(s), first at %p (%s%s): redirected", r->name, r->nr,
			 (void *)r->slots[0].addr, r->slots[0].jump_slot ? "JUMP_SLOT" : "GLOB_DAT",
			 r->slots[0].relro ? ", read-only" : "");
	}
	lu.installed = true;
	return 0;
}

void redirect_uninstall(void)
{
	int i, j, ret;

	if (!lu.installed)
		return;
	for (i = 0; i < 2; i++) {
		struct redirect *r = &redirects[i];

		for (j = 0; j < r->nr; j++) {
			ret = got_write(&r->slots[j], r->orig[j]);
			if (ret)
				lu_err("cannot restore criu's %s() slot at %p: %s", r->name, (void *)r->slots[j].addr,
				       strerror(-ret));
		}
		r->nr = 0;
	}
	lu.installed = false;
	lu_debug("criu's syscall() and ioctl() GOT slots are back as they were");
}
