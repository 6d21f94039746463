/* SPDX-License-Identifier: MIT */
/*
 * uffd_dev: making userfaultfds the two ways Linux offers, and saying why one failed.
 *
 *  - the userfaultfd(2) syscall (refused by seccomp profiles, or without
 *    CAP_SYS_PTRACE when vm.unprivileged_userfaultfd=0);
 *  - /dev/userfaultfd (Linux >= 6.1, char 10:257): open it, then
 *    ioctl(USERFAULTFD_IOC_NEW, flags); access follows the node's permissions.
 *
 * Either way the new uffd is bound to the mm of the process that asked. Shared by the
 * plugin (built -fPIC, loaded into criu) and `lazy-uffd doctor`: no logging here, no
 * global state; functions return a value >= 0 or -errno and leave errno alone.
 */
#ifndef LAZY_UFFD_UFFD_DEV_H
#define LAZY_UFFD_UFFD_DEV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define UFFD_DEV_PATH  "/dev/userfaultfd"
#define UFFD_DEV_MAJOR 10
#define UFFD_DEV_MINOR 257

/* The non-cooperative events a lazy restore needs (CRIU asks for exactly these). */
#define UFFD_EV_FORK	   (1ULL << 1)
#define UFFD_EV_REMAP	   (1ULL << 2)
#define UFFD_EV_REMOVE	   (1ULL << 3)
#define UFFD_EV_UNMAP	   (1ULL << 6)
#define UFFD_NEED_FEATURES (UFFD_EV_FORK | UFFD_EV_REMAP | UFFD_EV_REMOVE | UFFD_EV_UNMAP)

/* userfaultfd(2) with @flags (O_CLOEXEC, O_NONBLOCK, UFFD_USER_MODE_ONLY). */
int uffd_sys_new(int flags);

/* open(@path, O_RDWR | O_CLOEXEC): the device fd, or -errno. */
int uffd_dev_open(const char *path);

/* USERFAULTFD_IOC_NEW on an open device: a uffd for the caller's mm, or -errno. */
int uffd_dev_new(int devfd, int flags);

/*
 * The UFFDIO_API handshake on a fresh uffd, asking for @features. On success
 * *@granted (may be NULL) holds the features the kernel reports and *@ioctls (may be
 * NULL) the ioctls it offers. The kernel refuses EVENT_FORK with -EPERM unless the
 * caller has CAP_SYS_PTRACE; a refused handshake may be retried on the same uffd.
 */
int uffd_api(int uffd, uint64_t features, uint64_t *granted, uint64_t *ioctls);

/*
 * What the kernel offers through one path: make a uffd (through the syscall when
 * @devfd < 0, else through the device), handshake with no features, close it.
 */
int uffd_probe(int devfd, uint64_t *features, uint64_t *ioctls);

/* Feature and ioctl bit names, space separated ("EVENT_FORK EVENT_REMAP"); "none" for 0. */
void uffd_features_str(uint64_t features, char *buf, size_t len);
void uffd_ioctls_str(uint64_t ioctls, char *buf, size_t len);

/*
 * Whether this process's device cgroup refused an open that failed with @open_err
 * (0: it did not fail). 1 with @buf a clause naming it ("the devices cgroup /PATH of this
 * process does not allow char 10:257"; on cgroup v2, the cgroup, where its device BPF
 * program is attached, and that the program's rules cannot be read); 0 when the cgroups
 * allow it or there is no controller, -errno when it cannot tell; @buf then says what was
 * found. Cgroup v1 is judged from devices.list; v2 (beside v1 on a hybrid host too) by
 * BPF_PROG_QUERY on the cgroup and its ancestors: a program attached and an EPERM open
 * is a denial. Without CAP_NET_ADMIN the query is refused and an EPERM open is only
 * presumed a denial, as @buf then says.
 */
int uffd_devcg_denies(int open_err, char *buf, size_t len);

/*
 * Where a lazy-uffd daemon hands out a device fd to a criu that cannot open the node
 * (its devices cgroup): in the restore's work dir, beside lazy-pages.socket.
 */
#define UFFD_DEV_SOCKET "lazy-uffd-device.socket"

/* Ask the daemon listening on @path for a device fd: the fd, or -errno. */
int uffd_dev_from_daemon(const char *path, int timeout_ms);

/* "EPERM", "ENOSYS", ... or "errno N": the short name the messages and doctor print. */
const char *uffd_errno_name(int err);

/* The node at a path, as a user would want it described. */
struct uffd_dev_node {
	int stat_err; /* 0, or the errno of stat() */
	mode_t mode;
	dev_t rdev;
	uid_t uid;
	gid_t gid;
	int nodev;	/* the mount holding it forbids device nodes */
	char owner[64]; /* "root(0)" */
	char group[64];
	char modestr[16]; /* "0600 crw-------" */
};

void uffd_dev_describe(const char *path, struct uffd_dev_node *node);

/* Whether @node is the userfaultfd device (char 10:257). */
int uffd_dev_is_uffd(const struct uffd_dev_node *node);

/* Which step of the device path failed. */
enum uffd_dev_step {
	UFFD_STEP_OPEN,
	UFFD_STEP_IOC_NEW,
};

/*
 * One message naming the cause and the fix of a device-path failure (-@err is what
 * uffd_dev_open() or uffd_dev_new() returned). No trailing newline.
 */
void uffd_dev_explain(const char *path, enum uffd_dev_step step, int err, char *buf, size_t len);

#endif
