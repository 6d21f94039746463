# test/tools/remote.mk: tools for the remote-pages tests (test/zdtm/remote*.bats).
#
# scrub-lazy: overwrite lazy page data in an image dir (a destination copy must not be
#             where a remote restore's pages come from)
# fake-ps:    a page server that sends a malformed answer on purpose
# idle-conns: many TCP connections that send nothing (a page server at its limits)

REMOTE_TOOLS	:= $(O)/test/tools/scrub-lazy $(O)/test/tools/fake-ps $(O)/test/tools/idle-conns

TEST_PROGS	+= $(REMOTE_TOOLS)

$(O)/test/tools/scrub-lazy: $(O)/obj/test/tools/scrub-lazy.o $(LIBCRIMG)
	@mkdir -p $(dir $@)
	$(CC) $(XLDFLAGS) -o $@ $^ $(PROTOBUF_LIBS)

$(O)/test/tools/fake-ps: $(O)/obj/test/tools/fake-ps.o $(LIBCRIMG)
	@mkdir -p $(dir $@)
	$(CC) $(XLDFLAGS) -o $@ $^ $(PROTOBUF_LIBS)

$(O)/test/tools/idle-conns: test/tools/idle-conns.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $<
