# fuzz/: libFuzzer targets for what lazy-uffd reads from outside.
#
# fuzz-image-T: the image reader, the input replacing one file T of the real dump in
# fuzz/base. `make fuzz` builds them with clang (-fsanitize=fuzzer,address,undefined) in
# build/fuzz and runs each for FUZZ_TIME seconds or FUZZ_RUNS executions (fuzz/run.sh); seeds are in
# fuzz/corpus/T, inputs that once crashed in fuzz/regress/T. The ordinary build makes
# replay-image-T (the same target, fed files by fuzz/replay.c), which `make check` and
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

.PHONY: fuzz fuzz-build
fuzz-build: $(patsubst %,$(O)/fuzz/fuzz-image-%,$(FUZZ_IMAGE_NAMES))

FUZZ_TIME ?= 60
FUZZ_RUNS ?=
export FUZZ_RUNS
fuzz:
	@$(MAKE) --no-print-directory O=build/fuzz SAN=fuzz CC=clang fuzz-build
	fuzz/run.sh build/fuzz $(FUZZ_TIME) $(FUZZ_IMAGE_NAMES)
