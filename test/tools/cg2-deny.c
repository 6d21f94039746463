// SPDX-License-Identifier: MIT
/*
 * cg2-deny: a cgroup v2 cgroup whose device BPF program refuses /dev/userfaultfd
 * (char 10:257) and allows every other device, as a container runtime on cgroup v2
 * builds one from the OCI device rules; then run a command in it.
 *
 *   cg2-deny CGROUP_DIR [--] [COMMAND [ARGS...]]
 *
 * CGROUP_DIR is a directory on a cgroup2 mount: created if missing; the program is
 * attached (BPF_F_ALLOW_MULTI, as runc does) unless one is attached there already, so
 * running it again for the same cgroup only runs the command. With a COMMAND, this
 * process moves into the cgroup and execs it. The program stays attached until the
 * cgroup is removed (rmdir). Needs root (CAP_SYS_ADMIN for BPF_PROG_LOAD and _ATTACH).
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

static int sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

/* The number of device programs attached to @cgfd itself; -1 with errno. */
static int attached(int cgfd)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.query.target_fd = cgfd;
	attr.query.attach_type = BPF_CGROUP_DEVICE;
	if (sys_bpf(BPF_PROG_QUERY, &attr))
		return -1;
	return attr.query.prog_cnt;
}

/*
 * r1 points at struct bpf_cgroup_dev_ctx { access_type, major, minor } (u32 each); the
 * device type is the low 16 bits of access_type. Return 0 (deny) for char 10:257, else 1.
 */
static int load_prog(void)
{
	const struct bpf_insn prog[] = {
		INSN(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_2, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, access_type),
		     0),
		INSN(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff),
		INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, 6, BPF_DEVCG_DEV_CHAR),
		INSN(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_3, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, major), 0),
		INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_3, 0, 4, 10),
		INSN(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_4, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, minor), 0),
		INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, 2, 257),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0),
		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1),
		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	static char log[4096];
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.insns = (uintptr_t)prog;
	attr.insn_cnt = sizeof(prog) / sizeof(prog[0]);
	attr.license = (uintptr_t) "MIT";
	attr.log_buf = (uintptr_t)log;
	attr.log_size = sizeof(log);
	attr.log_level = 1;
	fd = sys_bpf(BPF_PROG_LOAD, &attr);
	if (fd < 0)
		fprintf(stderr, "cg2-deny: BPF_PROG_LOAD: %s\n%s", strerror(errno), log);
	return fd;
}

int main(int argc, char **argv)
{
	union bpf_attr attr;
	const char *dir;
	char procs[4096];
	int cgfd, progfd, n, fd;

	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: cg2-deny CGROUP_DIR [--] [COMMAND [ARGS...]]\n");
		return 2;
	}
	dir = argv[1];
	argv += 2;
	if (*argv && !strcmp(*argv, "--"))
		argv++;

	if (mkdir(dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "cg2-deny: mkdir %s: %s\n", dir, strerror(errno));
		return 1;
	}
	cgfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0) {
		fprintf(stderr, "cg2-deny: open %s: %s\n", dir, strerror(errno));
		return 1;
	}
	n = attached(cgfd);
	if (n < 0) {
		fprintf(stderr, "cg2-deny: BPF_PROG_QUERY %s: %s (not a cgroup2 directory?)\n", dir, strerror(errno));
		return 1;
	}
	if (n == 0) {
		progfd = load_prog();
		if (progfd < 0)
			return 1;
		memset(&attr, 0, sizeof(attr));
		attr.target_fd = cgfd;
		attr.attach_bpf_fd = progfd;
		attr.attach_type = BPF_CGROUP_DEVICE;
		attr.attach_flags = BPF_F_ALLOW_MULTI;
		if (sys_bpf(BPF_PROG_ATTACH, &attr)) {
			fprintf(stderr, "cg2-deny: BPF_PROG_ATTACH %s: %s\n", dir, strerror(errno));
			return 1;
		}
		close(progfd);
	}
	close(cgfd);
	if (!*argv)
		return 0;

	snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "0", 1) != 1) {
		fprintf(stderr, "cg2-deny: joining %s: %s\n", procs, strerror(errno));
		return 1;
	}
	close(fd);
	execvp(argv[0], argv);
	fprintf(stderr, "cg2-deny: exec %s: %s\n", argv[0], strerror(errno));
	return 127;
}
