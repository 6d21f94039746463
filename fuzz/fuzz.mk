# fuzz/: libFuzzer targets for what lazy-uffd reads from outside.
#
# fuzz-image-T: the image reader, the input replacing one file T of the real dump in
# fuzz/base. fuzz-ps-server: our page server's session, the input being what a client
# sends. fuzz-profile: the --prefetch-profile reader, the input being the file. `make fuzz` builds them with clang (-fsanitize=fuzzer,address,undefined) in
# build/fuzz and runs each for FUZZ_TIME seconds or FUZZ_RUNS executions (fuzz/run.sh); seeds are in
# fuzz/corpus/T, inputs that once crashed in fuzz/regress/T. The ordinary build makes
# replay-T (the same target, fed files by fuzz/replay.c), which `make check` and
# `make asan` run over both folders.

FUZZ_IMAGE_FILES := inventory:inventory.img pstree:pstree.img core:core-1.img mm:mm-1.img pagemap:pagemap-1.img
FUZZ_IMAGE_NAMES := $(foreach p,$(FUZZ_IMAGE_FILES),$(firstword $(subst :, ,$(p))))
fuzz_image_file = $(word 2,$(subst :, ,$(filter $(1):%,$(FUZZ_IMAGE_FILES))))
FUZZ_DEFS = -DFUZZ_FILE='"$(call fuzz_image_file,$*)"' -DFUZZ_BASE='"$(TOP)/fuzz/base"'

FUZZ_REPLAYS := $(patsubst %,$(O)/fuzz/replay-image-%,$(FUZZ_IMAGE_NAMES))
TEST_PROGS += $(FUZZ_REPLAYS)

$(O)/fuzz/replay-image-%: fuzz/fuzz_image.c fuzz/replay.c $(LIBCRIMG)
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) $(FUZZ_DEFS) $(XLDFLAGS) -o $@ fuzz/fuzz_image.c fuzz/replay.c $(LIBCRIMG) $(PROTOBUF_LIBS)

$(O)/fuzz/fuzz-image-%: fuzz/fuzz_image.c $(LIBCRIMG)
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) $(FUZZ_DEFS) -fsanitize=fuzzer $(XLDFLAGS) -o $@ fuzz/fuzz_image.c $(LIBCRIMG) $(PROTOBUF_LIBS)

# ps-server: our page server's request parser (fuzz_ps_server.c includes page_server.c),
# linked with the rest of the daemon's objects.
FUZZ_PS_OBJS := $(filter-out $(O)/obj/lazy-pages/main.o $(O)/obj/lazy-pages/page_server.o,$(LAZY_OBJS)) \
		$(O)/obj/plugin/uffd_dev.o
FUZZ_PS_DEFS := -DFUZZ_BASE='"$(TOP)/fuzz/base"'
TEST_PROGS += $(O)/fuzz/replay-ps-server

$(O)/fuzz/replay-ps-server: fuzz/fuzz_ps_server.c fuzz/replay.c lazy-pages/page_server.c $(FUZZ_PS_OBJS) $(LIBCRIMG)
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) -MF $@.d $(FUZZ_PS_DEFS) $(XLDFLAGS) -pthread -o $@ fuzz/fuzz_ps_server.c fuzz/replay.c \
		$(FUZZ_PS_OBJS) $(LIBCRIMG) $(PROTOBUF_LIBS) $(GNUTLS_LIBS)

$(O)/fuzz/fuzz-ps-server: fuzz/fuzz_ps_server.c lazy-pages/page_server.c $(FUZZ_PS_OBJS) $(LIBCRIMG)
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) -MF $@.d $(FUZZ_PS_DEFS) -fsanitize=fuzzer $(XLDFLAGS) -pthread -o $@ fuzz/fuzz_ps_server.c \
		$(FUZZ_PS_OBJS) $(LIBCRIMG) $(PROTOBUF_LIBS) $(GNUTLS_LIBS)

# profile: the --prefetch-profile reader (profile.c), against the dump in fuzz/base.
FUZZ_PROFILE_OBJS := $(O)/obj/lazy-pages/profile.o $(O)/obj/lazy-pages/pagesize.o
TEST_PROGS += $(O)/fuzz/replay-profile

$(O)/fuzz/replay-profile: fuzz/fuzz_profile.c fuzz/replay.c $(FUZZ_PROFILE_OBJS) $(LIBCRIMG)
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) -MF $@.d $(FUZZ_PS_DEFS) $(XLDFLAGS) -o $@ fuzz/fuzz_profile.c fuzz/replay.c \
		$(FUZZ_PROFILE_OBJS) $(LIBCRIMG) $(PROTOBUF_LIBS)

$(O)/fuzz/fuzz-profile: fuzz/fuzz_profile.c $(FUZZ_PROFILE_OBJS) $(LIBCRIMG)
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) -MF $@.d $(FUZZ_PS_DEFS) -fsanitize=fuzzer $(XLDFLAGS) -o $@ fuzz/fuzz_profile.c \
		$(FUZZ_PROFILE_OBJS) $(LIBCRIMG) $(PROTOBUF_LIBS)

.PHONY: fuzz fuzz-build
fuzz-build: $(patsubst %,$(O)/fuzz/fuzz-image-%,$(FUZZ_IMAGE_NAMES)) $(O)/fuzz/fuzz-ps-server $(O)/fuzz/fuzz-profile

FUZZ_TIME ?= 60
FUZZ_RUNS ?=
export FUZZ_RUNS
fuzz:
	@$(MAKE) --no-print-directory O=build/fuzz SAN=fuzz CC=clang fuzz-build
	fuzz/run.sh build/fuzz $(FUZZ_TIME) $(addprefix image-,$(FUZZ_IMAGE_NAMES)) ps-server profile
