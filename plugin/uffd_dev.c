// SPDX-License-Identifier: MIT
/* Making userfaultfds through the syscall or /dev/userfaultfd; see uffd_dev.h. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdbool.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include "uffd_dev.h"

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

int uffd_sys_new(int flags)
{
	int saved = errno;
	long fd = syscall(SYS_userfaultfd, flags);
	int ret = fd < 0 ? -errno : (int)fd;

	errno = saved;
	return ret;
}

int uffd_dev_open(const char *path)
{
	int saved = errno;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	int ret = fd < 0 ? -errno : fd;

	errno = saved;
	return ret;
}

int uffd_dev_new(int devfd, int flags)
{
	int saved = errno;
	int fd = ioctl(devfd, USERFAULTFD_IOC_NEW, flags);
	int ret = fd < 0 ? -errno : fd;

	errno = saved;
	return ret;
}

int uffd_api(int uffd, uint64_t features, uint64_t *granted, uint64_t *ioctls)
{
	struct uffdio_api api = {.api = UFFD_API, .features = features};
	int saved = errno;
	int ret = 0;

	if (ioctl(uffd, UFFDIO_API, &api))
		ret = -errno;
	else if (api.api != UFFD_API)
		ret = -EPROTO;
	errno = saved;
	if (ret)
		return ret;
	if (granted)
		*granted = api.features;
	if (ioctls)
		*ioctls = api.ioctls;
	return 0;
}

int uffd_probe(int devfd, uint64_t *features, uint64_t *ioctls)
{
	int uffd, ret;

	uffd = devfd < 0 ? uffd_sys_new(O_CLOEXEC | O_NONBLOCK) : uffd_dev_new(devfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		return uffd;
	ret = uffd_api(uffd, 0, features, ioctls);
	close(uffd);
	return ret;
}

static void bits_str(uint64_t bits, const char *const *names, unsigned int nr, char *buf, size_t len)
{
	size_t off = 0;
	unsigned int i;
	int n;

	buf[0] = '\0';
	if (!bits) {
		snprintf(buf, len, "none");
		return;
	}
	for (i = 0; i < 64 && off < len; i++) {
		if (!(bits & (1ULL << i)))
			continue;
		if (i < nr && names[i])
			n = snprintf(buf + off, len - off, "%s%s", off ? " " : "", names[i]);
		else
			n = snprintf(buf + off, len - off, "%sbit%u", off ? " " : "", i);
		if (n < 0)
			break;
		off += n;
	}
}

void uffd_features_str(uint64_t features, char *buf, size_t len)
{
	/* Bit numbers from linux/userfaultfd.h, newer ones included (6.x). */
	static const char *const names[] = {
		"PAGEFAULT_FLAG_WP",
		"EVENT_FORK",
		"EVENT_REMAP",
		"EVENT_REMOVE",
		"MISSING_HUGETLBFS",
		"MISSING_SHMEM",
		"EVENT_UNMAP",
		"SIGBUS",
		"THREAD_ID",
		"MINOR_HUGETLBFS",
		"MINOR_SHMEM",
		"EXACT_ADDRESS",
		"WP_HUGETLBFS_SHMEM",
		"WP_UNPOPULATED",
		"POISON",
		"WP_ASYNC",
		"MOVE",
	};

	bits_str(features, names, sizeof(names) / sizeof(names[0]), buf, len);
}

void uffd_ioctls_str(uint64_t ioctls, char *buf, size_t len)
{
	static const char *const names[64] = {
		[0x00] = "REGISTER", [0x01] = "UNREGISTER", [0x02] = "WAKE",	     [0x03] = "COPY",
		[0x04] = "ZEROPAGE", [0x05] = "MOVE",	    [0x06] = "WRITEPROTECT", [0x07] = "CONTINUE",
		[0x08] = "POISON",   [0x3F] = "API",
	};

	bits_str(ioctls, names, 64, buf, len);
}

const char *uffd_errno_name(int err)
{
	static __thread char other[24];

	switch (err) {
	case EPERM:
		return "EPERM";
	case ENOSYS:
		return "ENOSYS";
	case ENOENT:
		return "ENOENT";
	case EACCES:
		return "EACCES";
	case ENOTTY:
		return "ENOTTY";
	case EINVAL:
		return "EINVAL";
	case ENXIO:
		return "ENXIO";
	case ENODEV:
		return "ENODEV";
	case EMFILE:
		return "EMFILE";
	case ENOMEM:
		return "ENOMEM";
	}
	snprintf(other, sizeof(other), "errno %d", err);
	return other;
}

void uffd_dev_describe(const char *path, struct uffd_dev_node *node)
{
	static const char kinds[] = "?pc?d?b?-?l?s???";
	char buf[1024];
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	struct statvfs vfs;
	struct stat st;
	const char *rwx = "rwxrwxrwx";
	int saved = errno;
	int i;

	memset(node, 0, sizeof(*node));
	if (stat(path, &st)) {
		node->stat_err = errno;
		errno = saved;
		return;
	}
	node->mode = st.st_mode;
	node->rdev = st.st_rdev;
	node->uid = st.st_uid;
	node->gid = st.st_gid;
	if (!statvfs(path, &vfs))
		node->nodev = !!(vfs.f_flag & ST_NODEV);

	/* Names help a user, numbers help in a container whose passwd differs: both. */
	if (!getpwuid_r(st.st_uid, &pw, buf, sizeof(buf), &pwp) && pwp)
		snprintf(node->owner, sizeof(node->owner), "%.40s(%u)", pw.pw_name, (unsigned int)st.st_uid);
	else
		snprintf(node->owner, sizeof(node->owner), "%u", (unsigned int)st.st_uid);
	if (!getgrgid_r(st.st_gid, &gr, buf, sizeof(buf), &grp) && grp)
		snprintf(node->group, sizeof(node->group), "%.40s(%u)", gr.gr_name, (unsigned int)st.st_gid);
	else
		snprintf(node->group, sizeof(node->group), "%u", (unsigned int)st.st_gid);

	snprintf(node->modestr, sizeof(node->modestr), "%04o %c", (unsigned int)(st.st_mode & 07777),
		 kinds[(st.st_mode >> 12) & 0xf]);
	for (i = 0; i < 9; i++)
		node->modestr[6 + i] = (st.st_mode & (0400 >> i)) ? rwx[i] : '-';
	node->modestr[15] = '\0';
	errno = saved;
}

int uffd_dev_is_uffd(const struct uffd_dev_node *node)
{
	return !node->stat_err && S_ISCHR(node->mode) && major(node->rdev) == UFFD_DEV_MAJOR &&
	       minor(node->rdev) == UFFD_DEV_MINOR;
}

/* "char 1:3", "a regular file": what stands where the device should be. */
static void node_kind(const struct uffd_dev_node *node, char *buf, size_t len)
{
	if (S_ISCHR(node->mode))
		snprintf(buf, len, "char device %u:%u", major(node->rdev), minor(node->rdev));
	else if (S_ISBLK(node->mode))
		snprintf(buf, len, "block device %u:%u", major(node->rdev), minor(node->rdev));
	else if (S_ISREG(node->mode))
		snprintf(buf, len, "a regular file");
	else if (S_ISDIR(node->mode))
		snprintf(buf, len, "a directory");
	else
		snprintf(buf, len, "not a device (mode %o)", (unsigned int)node->mode);
}

/* Whether a devices.list line ("c 10:257 rwm", "a *:* rwm", "c 10:* rw") lets us read and write. */
static int devlist_allows(const char *line)
{
	char type, maj[16], min[16], acc[8];

	if (sscanf(line, "%c %15[^:]:%15s %7s", &type, maj, min, acc) != 4)
		return 0;
	if (type != 'a' && type != 'c')
		return 0;
	if (type == 'c' && strcmp(maj, "*") && atoi(maj) != UFFD_DEV_MAJOR)
		return 0;
	if (type == 'c' && strcmp(min, "*") && atoi(min) != UFFD_DEV_MINOR)
		return 0;
	return strchr(acc, 'r') && strchr(acc, 'w');
}

/* The number of device BPF programs attached to the cgroup2 directory @dir itself; -errno. */
static int devcg_bpf_attached(const char *dir)
{
	union bpf_attr attr;
	int fd, ret;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	memset(&attr, 0, sizeof(attr));
	attr.query.target_fd = fd;
	attr.query.attach_type = BPF_CGROUP_DEVICE;
	ret = syscall(SYS_bpf, BPF_PROG_QUERY, &attr, sizeof(attr)) ? -errno : (int)attr.query.prog_cnt;
	close(fd);
	return ret;
}

/* Where the cgroup2 hierarchy is mounted, and the cgroup path that mount's root stands for. */
static int cgroup2_mount(char *mnt, size_t mlen, char *root, size_t rlen)
{
	char line[8192], r[4096], m[4096];
	FILE *f;
	int ret = -ENOENT;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");

		if (!sep || strncmp(sep + 3, "cgroup2 ", 8))
			continue;
		if (sscanf(line, "%*s %*s %*s %4095s %4095s", r, m) != 2)
			continue;
		snprintf(mnt, mlen, "%s", m);
		snprintf(root, rlen, "%s", r);
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

/*
 * cgroup v2: whether a device BPF program is attached to @cg (a path from
 * /proc/self/cgroup) or one of its ancestors. A program is what checks an open there;
 * its rules cannot be read back, so an EPERM open where one is attached is the denial.
 */
static int devcg_v2(const char *cg, int open_err, char *buf, size_t len)
{
	char mnt[4096], root[4096], dir[8400], at[4096] = "";
	const char *rel = cg;
	size_t rl, base;
	char *slash;
	int n, err = 0;

	if (cgroup2_mount(mnt, sizeof(mnt), root, sizeof(root))) {
		snprintf(buf, len, "cgroup v2 cgroup %.1000s: no cgroup2 mount here to look at it", cg);
		return -ENOENT;
	}
	rl = strcmp(root, "/") ? strlen(root) : 0;
	if (rl && (strncmp(cg, root, rl) || (cg[rl] && cg[rl] != '/'))) {
		snprintf(buf, len, "cgroup v2 cgroup %.1000s: outside the cgroup2 mount at %.1000s (root %.1000s)", cg,
			 mnt, root);
		return -ENOENT;
	}
	rel += rl;
	snprintf(dir, sizeof(dir), "%s%s", mnt, strcmp(rel, "/") ? rel : "");
	base = strlen(mnt);
	/* The nearest cgroup with a program of its own, up to the mount's root. */
	for (;;) {
		n = devcg_bpf_attached(dir);
		if (n < 0 && !err)
			err = -n;
		if (n > 0) {
			snprintf(at, sizeof(at), "%s", dir[base] ? dir + base : "/");
			break;
		}
		if (strlen(dir) <= base)
			break;
		slash = strrchr(dir + base, '/');
		if (!slash)
			break;
		*slash = '\0';
	}
	if (at[0] && open_err == EPERM) {
		snprintf(buf, len,
			 "the cgroup v2 cgroup %.1000s of this process has a device BPF program (attached at %.1000s) "
			 "and the open was refused with EPERM: that program does not allow char %d:%d (its rules "
			 "cannot be read, only that it is attached)",
			 cg, at, UFFD_DEV_MAJOR, UFFD_DEV_MINOR);
		return 1;
	}
	if (at[0]) {
		if (open_err)
			snprintf(buf, len,
				 "cgroup v2 cgroup %.1000s has a device BPF program (attached at %.1000s); the open "
				 "failed with %.1000s, not EPERM: not that program's refusal",
				 cg, at, uffd_errno_name(open_err));
		else
			snprintf(buf, len,
				 "cgroup v2 cgroup %.1000s has a device BPF program (attached at %.1000s); it allows "
				 "the open",
				 cg, at);
		return 0;
	}
	if (err && open_err != EPERM) {
		/* Only EPERM comes from a device program: no need to know whether one is there. */
		snprintf(buf, len,
			 "cgroup v2 cgroup %.1000s: whether a device BPF program is attached cannot be checked from "
			 "here (BPF_PROG_QUERY: %.1000s); the open %.1000s%.1000s",
			 cg, uffd_errno_name(err), open_err ? "failed with " : "worked",
			 open_err ? uffd_errno_name(open_err) : "");
		return 0;
	}
	if (err) {
		/* BPF_PROG_QUERY wants CAP_NET_ADMIN: without it an EPERM open is all there is. */
		snprintf(buf, len,
			 "the cgroup v2 cgroup %.1000s of this process may have a device BPF program that does not "
			 "allow char %d:%d: the open was refused with %.1000s, and whether one is attached cannot be "
			 "checked from here (BPF_PROG_QUERY: %.1000s)",
			 cg, UFFD_DEV_MAJOR, UFFD_DEV_MINOR, uffd_errno_name(open_err), uffd_errno_name(err));
		return 1;
	}
	snprintf(buf, len, "cgroup v2 cgroup %.1000s: no device BPF program attached to it or above it", cg);
	return 0;
}

int uffd_devcg_denies(int open_err, char *buf, size_t len)
{
	char line[4096], path[4200], v1cg[4096] = "", v2[4096] = "";
	bool v1 = false, have_v2 = false;
	FILE *f;
	int ret = 0;

	buf[0] = '\0';
	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *ctl = strchr(line, ':'), *cg;

		if (!ctl)
			continue;
		cg = strchr(ctl + 1, ':');
		if (!cg)
			continue;
		*ctl = 0;
		*cg++ = 0;
		cg[strcspn(cg, "\n")] = 0;
		if (!strcmp(ctl + 1, "devices")) {
			v1 = true;
			snprintf(path, sizeof(path), "/sys/fs/cgroup/devices%s/devices.list", strcmp(cg, "/") ? cg : "");
			snprintf(v1cg, sizeof(v1cg), "%s", cg);
		} else if (!strcmp(line, "0") && !ctl[1]) {
			have_v2 = true;
			snprintf(v2, sizeof(v2), "%s", cg);
		}
	}
	fclose(f);
	if (v1) {
		FILE *l = fopen(path, "re");
		bool allow_all = false;

		if (!l)
			return -errno;
		ret = 1;
		while (fgets(line, sizeof(line), l)) {
			if (!strncmp(line, "a *:* rwm", 9))
				allow_all = true;
			if (devlist_allows(line))
				ret = 0;
		}
		fclose(l);
		/*
		 * A cgroup that allows everything but some devices lists "a *:* rwm" and keeps
		 * its deny rules to itself: then an EPERM open in a cgroup of its own tells.
		 */
		if (allow_all && open_err == EPERM && strcmp(v1cg, "/"))
			ret = 1;
		if (ret) {
			snprintf(buf, len, "the devices cgroup %s of this process does not allow char %d:%d", v1cg,
				 UFFD_DEV_MAJOR, UFFD_DEV_MINOR);
			return ret;
		}
	}
	/* Both may judge an open (a hybrid host): v1 allowing it leaves v2's programs. */
	if (have_v2) {
		char v2why[8192];

		ret = devcg_v2(v2, open_err, v2why, sizeof(v2why));
		if (ret == 1 || !v1)
			snprintf(buf, len, "%s", v2why);
		else
			snprintf(buf, len, "devices cgroup %s allows it; %s", v1cg, v2why);
		return ret;
	}
	if (v1)
		snprintf(buf, len, "devices cgroup %s allows it", v1cg);
	return 0;
}

int uffd_dev_from_daemon(const char *path, int timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	struct pollfd p;
	struct cmsghdr *c;
	int sk, fd = -1, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	sk = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sk < 0)
		return -errno;
	if (connect(sk, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		goto out;
	}
	p = (struct pollfd){ .fd = sk, .events = POLLIN };
	ret = poll(&p, 1, timeout_ms);
	if (ret <= 0) {
		ret = ret ? -errno : -ETIMEDOUT;
		goto out;
	}
	ret = recvmsg(sk, &mh, MSG_CMSG_CLOEXEC);
	if (ret <= 0) {
		ret = ret ? -errno : -ECONNRESET;
		goto out;
	}
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	/* The byte is 0 with the fd, else the daemon's errno for its own open. */
	ret = fd >= 0 ? fd : -(byte ? byte : EPROTO);
out:
	close(sk);
	return ret;
}

void uffd_dev_explain(const char *path, enum uffd_dev_step step, int err, char *buf, size_t len)
{
	char cg[4608];
	struct uffd_dev_node node;
	char kind[48];

	uffd_dev_describe(path, &node);

	if (step == UFFD_STEP_OPEN && (err == ENOENT || err == ENOTDIR)) {
		snprintf(buf, len,
			 "%s does not exist: the kernel is older than 6.1 or built without CONFIG_USERFAULTFD, "
			 "or this container or mount namespace has no such node; fix: bind-mount the host's "
			 "%s into it, or create it with 'mknod -m 0660 %s c %d %d' and give it to a group of the "
			 "restoring user ('chgrp GROUP %s')",
			 path, path, path, UFFD_DEV_MAJOR, UFFD_DEV_MINOR, path);
		return;
	}
	if (step == UFFD_STEP_OPEN && (err == ENXIO || err == ENODEV)) {
		snprintf(buf, len,
			 "%s exists but no driver answers it (%s): this kernel has no userfaultfd device "
			 "(it needs Linux >= 6.1 with CONFIG_USERFAULTFD); fix: boot such a kernel, or allow the "
			 "userfaultfd(2) syscall",
			 path, uffd_errno_name(err));
		return;
	}
	if (step == UFFD_STEP_OPEN && err == EPERM && !node.stat_err && !node.nodev &&
	    uffd_devcg_denies(err, cg, sizeof(cg)) == 1) {
		/* Root or not, file modes do not matter here: the cgroup says no first. */
		snprintf(buf, len,
			 "%s cannot be opened from here: %s "
			 "(a container runtime puts criu into the container's cgroups; file permissions are not "
			 "the cause); fix: run `lazy-uffd daemon` outside the container (it hands criu the device "
			 "through %s in the work dir), or allow the device to the container (OCI "
			 "linux.resources.devices: {\"allow\":true,\"type\":\"c\",\"major\":%d,\"minor\":%d,"
			 "\"access\":\"rw\"}; docker/podman: --device %s), or let criu use the userfaultfd(2) "
			 "syscall (the seccomp profile; vm.unprivileged_userfaultfd=1)",
			 path, cg, UFFD_DEV_SOCKET, UFFD_DEV_MAJOR, UFFD_DEV_MINOR, path);
		return;
	}
	if (step == UFFD_STEP_OPEN && (err == EACCES || err == EPERM)) {
		if (node.stat_err) {
			snprintf(buf, len,
				 "permission denied opening %s (%s); fix: grant the restoring user read-write access "
				 "to it",
				 path, uffd_errno_name(err));
			return;
		}
		if (node.nodev) {
			/* Even root is refused: file modes are not the cause. */
			snprintf(buf, len,
				 "permission denied opening %s (owner %s, group %s, mode %s): the mount holding it is "
				 "nodev, which denies every device node; fix: bind-mount the host's %s from a mount "
				 "that allows devices, or remount without nodev",
				 path, node.owner, node.group, node.modestr, path);
			return;
		}
		snprintf(buf, len,
			 "permission denied opening %s (owner %s, group %s, mode %s; we are uid %u gid %u); fix: "
			 "grant access with a group and mode 0660 ('chgrp GROUP %s && chmod 0660 %s', with the "
			 "restoring user in GROUP) or an ACL ('setfacl -m u:USER:rw %s')",
			 path, node.owner, node.group, node.modestr, (unsigned int)geteuid(), (unsigned int)getegid(),
			 path, path, path);
		return;
	}
	if (!node.stat_err && !uffd_dev_is_uffd(&node)) {
		node_kind(&node, kind, sizeof(kind));
		snprintf(buf, len,
			 "%s is %s, not the userfaultfd device (char %d:%d): it is hidden or replaced in this mount "
			 "namespace (%s failed: %s); fix: bind-mount the host's %s there or create it with "
			 "'mknod -m 0660 %s c %d %d'",
			 path, kind, UFFD_DEV_MAJOR, UFFD_DEV_MINOR,
			 step == UFFD_STEP_OPEN ? "open" : "USERFAULTFD_IOC_NEW", uffd_errno_name(err), path, path,
			 UFFD_DEV_MAJOR, UFFD_DEV_MINOR);
		return;
	}
	if (step == UFFD_STEP_OPEN) {
		snprintf(buf, len, "cannot open %s: %s (%s)", path, strerror(err), uffd_errno_name(err));
		return;
	}
	snprintf(buf, len,
		 "%s opened, but the kernel refused USERFAULTFD_IOC_NEW: %s (%s); a security module policy or "
		 "the kernel configuration forbids new userfaultfds; fix: check the LSM policy (audit log, dmesg) "
		 "for userfaultfd denials, or allow the userfaultfd(2) syscall",
		 path, strerror(err), uffd_errno_name(err));
}
