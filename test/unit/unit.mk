# test/unit/: C unit tests (exit 0 pass, 1 fail, 77 skip) run by test/unit/*.bats.
# Each test-*.c is one program; imgwriter.c (the synthetic image writer) and tu.c (checks,
# temporary directories) are linked into all of them, and into mkimg for show.bats.

UNIT_TESTS	:= $(patsubst test/unit/%.c,$(O)/test/unit/%,$(wildcard test/unit/test-*.c))
UNIT_PROGS	:= $(UNIT_TESTS) $(O)/test/unit/mkimg
UNIT_LIB_OBJS	:= $(O)/obj/test/unit/imgwriter.o $(O)/obj/test/unit/tu.o
UNIT_OBJS	:= $(patsubst test/unit/%.c,$(O)/obj/test/unit/%.o,$(wildcard test/unit/*.c))

TEST_PROGS += $(UNIT_PROGS)

# The writer packs with the generated protobuf-c code.
$(UNIT_OBJS): | $(IMAGES_PB_H)

$(UNIT_PROGS): $(O)/test/unit/%: $(O)/obj/test/unit/%.o $(UNIT_LIB_OBJS) $(LIBCRIMG)
	@mkdir -p $(dir $@)
	$(CC) $(XLDFLAGS) -o $@ $^ $(PROTOBUF_LIBS)

# Daemon internals tested directly.
# pagesize.o: the run-time PAGE_SZ of lazy-pages/pagesize.h, which needs libcrimg.
$(O)/test/unit/test-ranges: $(O)/obj/lazy-pages/task.o $(O)/obj/lazy-pages/log.o $(O)/obj/lazy-pages/uffd.o \
	$(O)/obj/lazy-pages/pagesize.o
$(O)/test/unit/test-registered: $(O)/obj/lazy-pages/task.o $(O)/obj/lazy-pages/log.o $(O)/obj/lazy-pages/uffd.o \
	$(O)/obj/lazy-pages/pagesize.o
$(O)/test/unit/test-profile: $(O)/obj/lazy-pages/profile.o $(O)/obj/lazy-pages/pagesize.o
$(O)/test/unit/test-ranges $(O)/test/unit/test-registered $(O)/test/unit/test-plan: PROTOBUF_LIBS := $(LIBCRIMG) $(PROTOBUF_LIBS)
$(O)/test/unit/test-opts: $(O)/obj/lazy-pages/opts.o $(O)/obj/lazy-pages/log.o
$(O)/test/unit/test-tls-send: $(O)/obj/lazy-pages/tls.o $(O)/obj/lazy-pages/log.o
$(O)/test/unit/test-tls-send: PROTOBUF_LIBS := $(PROTOBUF_LIBS) $(GNUTLS_LIBS) -pthread
# profile.o needs libcrimg (the fingerprint), which the rule puts before it.
$(O)/test/unit/test-profile: PROTOBUF_LIBS := $(LIBCRIMG) $(PROTOBUF_LIBS)
$(O)/test/unit/test-plan: $(O)/obj/lazy-pages/plan.o $(O)/obj/lazy-pages/task.o $(O)/obj/lazy-pages/log.o \
	$(O)/obj/lazy-pages/uffd.o $(O)/obj/lazy-pages/pagesize.o
