// SPDX-License-Identifier: MIT
/*
 * no-uffd: run a command with the userfaultfd(2) syscall refused, as a container's
 * seccomp profile refuses it (Docker's default returns EPERM; a kernel without
 * CONFIG_USERFAULTFD gives ENOSYS).
 *
 *   no-uffd [--errno EPERM|ENOSYS|N] [--] COMMAND [ARGS...]
 *   no-uffd --probe      print what userfaultfd(2) does in this process and exit 0
 *
 * The seccomp filter is inherited over fork, clone and execve and cannot be removed,
 * so it covers the whole tree: criu, its helpers, the tasks it restores. Only the
 * syscall is refused; /dev/userfaultfd stays as it is.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

/* The number of userfaultfd in each syscall table the x86_64 kernel serves. */
#define NR_UFFD_X86_64 323
#define NR_UFFD_X32    (0x40000000 | 323)
#define NR_UFFD_I386   374

static void usage(FILE *out)
{
	fprintf(out, "usage: no-uffd [--errno EPERM|ENOSYS|N] [--] COMMAND [ARGS...]\n"
		     "       no-uffd --probe\n"
		     "\n"
		     "Run COMMAND with userfaultfd(2) failing with the given errno (default EPERM)\n"
		     "for it and every process it starts. --probe prints what userfaultfd(2) does\n"
		     "here: ok, or the errno name.\n");
}

static int parse_errno(const char *s)
{
	char *end;
	long v;

	if (!strcmp(s, "EPERM"))
		return EPERM;
	if (!strcmp(s, "ENOSYS"))
		return ENOSYS;
	if (!strcmp(s, "EACCES"))
		return EACCES;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v <= 0 || v > 4095)
		return -EINVAL;
	return v;
}

/* What userfaultfd(2) does here, in the words the tests and doctor use. */
static int probe(void)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd >= 0) {
		close(fd);
		printf("ok\n");
		return 0;
	}
	if (errno == EPERM)
		printf("EPERM\n");
	else if (errno == ENOSYS)
		printf("ENOSYS\n");
	else
		printf("errno %d (%s)\n", errno, strerror(errno));
	return 0;
}

static int install_filter(int err)
{
	struct sock_filter insns[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 4),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR_UFFD_X86_64, 6, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR_UFFD_X32, 5, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_I386, 0, 2),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR_UFFD_I386, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
	};
	struct sock_fprog prog = {
		.len = sizeof(insns) / sizeof(insns[0]),
		.filter = insns,
	};

	/*
	 * Without CAP_SYS_ADMIN the kernel only takes a filter from a task that can
	 * never gain privileges. Root keeps no_new_privs clear: criu would otherwise
	 * hand the flag on to every task it restores.
	 */
	if (geteuid() != 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
		fprintf(stderr, "no-uffd: PR_SET_NO_NEW_PRIVS: %s\n", strerror(errno));
		return -errno;
	}
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
		fprintf(stderr, "no-uffd: installing the seccomp filter: %s\n", strerror(errno));
		return -errno;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int err = EPERM;
	int i = 1;

	if (argc == 2 && !strcmp(argv[1], "--probe"))
		return probe();
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (i + 1 < argc && !strcmp(argv[i], "--errno")) {
		err = parse_errno(argv[i + 1]);
		if (err < 0) {
			fprintf(stderr, "no-uffd: bad --errno '%s': EPERM, ENOSYS or a number 1-4095\n", argv[i + 1]);
			return 2;
		}
		i += 2;
	}
	if (i < argc && !strcmp(argv[i], "--"))
		i++;
	if (i >= argc) {
		usage(stderr);
		return 2;
	}

	if (install_filter(err))
		return 1;
	execvp(argv[i], argv + i);
	fprintf(stderr, "no-uffd: %s: %s\n", argv[i], strerror(errno));
	return 127;
}
