# test/tools/restrict.mk: no-uffd, the launcher that runs a command with userfaultfd(2)
# refused through seccomp (EPERM or ENOSYS), for the plugin tests. No sanitizers: it only
# installs a filter and execs, and the tree it starts is criu and its restored tasks.

NO_UFFD	:= $(O)/test/tools/no-uffd

TEST_PROGS += $(NO_UFFD)

$(NO_UFFD): test/tools/no-uffd.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(LDFLAGS) -o $@ $<

# cg2-deny: a cgroup v2 cgroup whose device BPF program refuses char 10:257 (as runc
# builds one on cgroup v2), and a command run in it (test/plugin/cgroup.bats).
CG2_DENY := $(O)/test/tools/cg2-deny

TEST_PROGS += $(CG2_DENY)

$(CG2_DENY): test/tools/cg2-deny.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(LDFLAGS) -o $@ $<
