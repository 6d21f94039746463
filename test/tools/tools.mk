# test/tools/: programs the tests use, never installed. Included from test/zdtm/zdtm.mk.
#
# mkparent: builds parent-linked image directories from a real dump (see mkparent.c),
# with the protobuf-c code that images/ generates from images/proto; img-edit the same way.

TEST_TOOLS	:= $(O)/test/tools/mkparent $(O)/test/tools/touchbench $(O)/test/tools/img-edit

TEST_PROGS	+= $(TEST_TOOLS)

$(O)/obj/test/tools/mkparent.o: | $(O)/gen/pagemap.pb-c.h

$(O)/test/tools/mkparent: $(O)/obj/test/tools/mkparent.o $(O)/obj/gen/pagemap.pb-c.o
	@mkdir -p $(dir $@)
	$(CC) $(XLDFLAGS) -o $@ $^ $(PROTOBUF_LIBS)

# img-edit: one precise damage to a real dump's mm or pagemap (see img-edit.c).
$(O)/obj/test/tools/img-edit.o: | $(O)/gen/pagemap.pb-c.h $(O)/gen/mm.pb-c.h

$(O)/test/tools/img-edit: $(O)/obj/test/tools/img-edit.o $(O)/obj/gen/pagemap.pb-c.o $(O)/obj/gen/mm.pb-c.o
	@mkdir -p $(dir $@)
	$(CC) $(XLDFLAGS) -o $@ $^ $(PROTOBUF_LIBS)

# touchbench: the workload of mk/perf-local.sh (timed first touches after a restore).
$(O)/test/tools/touchbench: test/tools/touchbench.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $<

.PHONY: test-tools
test-tools: $(TEST_TOOLS)

# The zdtm tests use mkparent: `make zdtm` builds it too.
zdtm: $(TEST_TOOLS)

# uffd-events: the daemon's event paths scripted without criu (test/zdtm/events.bats):
# it writes its images with the unit tests' writer and plays criu restore's part.
UFFD_EVENTS	:= $(O)/test/tools/uffd-events
TEST_PROGS	+= $(UFFD_EVENTS)

$(O)/obj/test/tools/uffd-events.o: | $(IMAGES_PB_H)

$(UFFD_EVENTS): $(O)/obj/test/tools/uffd-events.o $(O)/obj/test/unit/imgwriter.o $(LIBCRIMG)
	@mkdir -p $(dir $@)
	$(CC) -pthread $(XLDFLAGS) -o $@ $^ $(PROTOBUF_LIBS)

# hwbp-probe: whether ptrace hardware breakpoints fire here (test/run.sh, bench).
HWBP_PROBE	:= $(O)/test/tools/hwbp-probe
TEST_PROGS	+= $(HWBP_PROBE)

$(HWBP_PROBE): test/tools/hwbp-probe.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $<

# ns-run: a program as the init of new user, pid and mount namespaces on its own root,
# the way a container runs it (test/zdtm/userns.bats).
NS_RUN		:= $(O)/test/tools/ns-run
TEST_PROGS	+= $(NS_RUN)

$(NS_RUN): test/tools/ns-run.c test/tools/child.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $<
