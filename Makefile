# lazy-uffd: `make`, `make check`, `make asan`, `make deps`, `make install`.
# Sub-makefiles (*/*.mk) add their sources and targets to the lists below.

TOP	:= $(abspath .)
# Where CRIU prefixes and their env files live; shared by the normal and asan builds.
DEPS	:= build
# Where objects and programs go (relative, so `make build/lazy-uffd` works).
O	?= build

# Which CRIU the tests and tools run: 4.1 (Debian 13) or 4.2 (Debian unstable).
# build/criu-$(CRIU_SERIES).env is the one place naming that criu binary and the
# plugin headers (always 4.1's); make and the test scripts both read it.
CRIU_SERIES	?= 4.1
CRIU_ENV	:= $(DEPS)/criu-$(CRIU_SERIES).env

PREFIX	?= /usr/local
MANDIR	?= $(PREFIX)/share/man
DESTDIR	?=

CC	?= cc
CFLAGS	?= -O2 -g
SAN	?=
ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
# The daemon's threads under ThreadSanitizer: see make tsan.
ifeq ($(SAN),thread)
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
endif
# libFuzzer builds (make fuzz, with CC=clang): coverage for the fuzzer, no main of its own.
ifeq ($(SAN),fuzz)
SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
# A cross build (make check-cross sets CROSS_SYSROOT): headers and libraries beyond the
# cross toolchain's glibc come from Debian's arm64 packages unpacked there.
ifneq ($(CROSS_SYSROOT),)
CROSS_LIBDIR	:= $(CROSS_SYSROOT)/usr/lib/$(CROSS_TRIPLET)
CFLAGS		+= -isystem $(CROSS_SYSROOT)/usr/include
LDFLAGS		+= -L$(CROSS_LIBDIR) -Wl,-rpath-link,$(CROSS_LIBDIR)
endif
# The plugin never gets sanitizers: it is loaded into an uninstrumented criu.
BASE_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE \
	   -MMD -MP -Iimages -I$(O)/gen $(CFLAGS)
XCFLAGS	:= $(BASE_CFLAGS) $(SANFLAGS)
XLDFLAGS := $(SANFLAGS) $(LDFLAGS)
PROTOBUF_LIBS := $(shell pkg-config --libs libprotobuf-c 2>/dev/null || echo -lprotobuf-c)

# Filled in by the sub-makefiles.
PROGS		:=
TEST_PROGS	:=
OBJS		:=

NODEPS_GOALS := clean distclean print-criu help uninstall
ifneq ($(filter-out $(NODEPS_GOALS),$(or $(MAKECMDGOALS),all)),)
-include $(CRIU_ENV)
endif

.PHONY: all deps check check-unit check-zdtm check-cross asan tsan install uninstall clean distclean print-criu demo bench bench-fanout fuzz stress help
all:

include images/images.mk
include lazy-pages/lazy-pages.mk
include plugin/plugin.mk
include test/unit/unit.mk
include test/zdtm/zdtm.mk
include test/tools/restrict.mk
include test/tools/remote.mk
include fuzz/fuzz.mk
include bench/bench.mk

all: $(PROGS)

$(DEPS)/criu-%.env:
	mk/deps.sh $(DEPS) $*

deps:
	@mk/deps.sh $(DEPS) $(CRIU_SERIES)

print-criu:
	@sed -n 's/^CRIU=//p' $(CRIU_ENV) 2>/dev/null | grep . || \
		{ echo "no criu yet for series $(CRIU_SERIES): run 'make deps'" >&2; exit 1; }

$(O)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) -c -o $@ $<

TEST_ENV = LAZY_UFFD_BUILD=$(abspath $(O)) LAZY_UFFD_CRIU_ENV=$(abspath $(CRIU_ENV))

check: deps all $(TEST_PROGS)
	@$(TEST_ENV) test/run.sh test/unit test/build test/plugin test/zdtm

check-unit: all $(TEST_PROGS)
	@$(TEST_ENV) test/run.sh test/unit test/build

check-zdtm: deps all $(TEST_PROGS)
	@$(TEST_ENV) test/run.sh test/plugin test/zdtm

# Sizes too slow for make check (8 GiB lazily restored).
stress: deps all $(TEST_PROGS)
	@$(TEST_ENV) test/run.sh test/stress

# ASan+UBSan build of everything in build/asan, then the unit tests against it.
asan:
	@$(MAKE) --no-print-directory O=build/asan SAN=1 check-unit

# make check-cross: everything built for aarch64 in build/aarch64 with Debian's cross
# compiler, against arm64 libraries unpacked from Debian's packages (mk/deps.sh cross,
# which also fetches Debian's arm64 criu 4.1 and 4.2), then the unit tests and the GOT
# finder's tests run under qemu-user. Not run there: the unit test that needs a real
# userfaultfd (qemu-user has no userfaultfd(2)).
CROSS_TRIPLET	?= aarch64-linux-gnu
CROSS_QEMU	?= qemu-aarch64-static
CROSS_O		:= build/aarch64
check-cross:
	@mk/deps.sh $(DEPS) cross
	@. $(DEPS)/cross.env && $(MAKE) --no-print-directory O=$(CROSS_O) CC=$(CROSS_TRIPLET)-gcc \
		AR=$(CROSS_TRIPLET)-ar CROSS_TRIPLET=$(CROSS_TRIPLET) CROSS_SYSROOT="$$CROSS_SYSROOT" \
		all $(patsubst $(O)/%,$(CROSS_O)/%,$(UNIT_PROGS) $(GOT_TESTS) $(GOT_SCAN))
	@. $(DEPS)/cross.env && LAZY_UFFD_BUILD=$(abspath $(CROSS_O)) LAZY_UFFD_CRIU_ENV=$(abspath $(CRIU_ENV)) \
		LAZY_UFFD_CROSS_ENV=$(abspath $(DEPS)/cross.env) \
		LAZY_UFFD_EXEC="$(CROSS_QEMU) -L /usr/$(CROSS_TRIPLET) -E LD_LIBRARY_PATH=$$CROSS_SYSROOT/usr/lib/$(CROSS_TRIPLET)" \
		test/run.sh test/unit/unit.bats test/cross

# The daemon's threads (loop, copy thread, page-server receivers) under ThreadSanitizer:
# lazy-uffd built in build/tsan, then the suites that drive the daemon hardest run against
# it, everything else as in make check. A race report makes the daemon exit 66, which
# fails its test; the reports are build/tsan/report.PID.
TSAN_SUITES := test/zdtm/lazy.bats test/zdtm/perf.bats test/zdtm/lazy-scenarios.bats test/zdtm/load.bats \
	       test/zdtm/events.bats test/zdtm/remote-ours.bats
# The page-server client's threads against CRIU's servers too, plain and TLS: a sample.
TSAN_REMOTE := test/zdtm/remote-ps.bats test/zdtm/remote-dump.bats
TSAN_REMOTE_FILTER := ^remote (ps|dump)( tls)?: (anon 64M|tree|threads)$$
tsan: deps all $(TEST_PROGS)
	@$(MAKE) --no-print-directory O=build/tsan SAN=thread build/tsan/lazy-uffd
	@rm -rf build/tsan/run build/tsan/report.* && mkdir -p build/tsan/run && \
		for f in $(abspath $(O))/*; do ln -s "$$f" build/tsan/run/; done && \
		rm -f build/tsan/run/lazy-uffd build/tsan/run/tsan && cp build/tsan/lazy-uffd build/tsan/run/
	@LAZY_UFFD_BUILD=$(abspath build/tsan/run) LAZY_UFFD_CRIU_ENV=$(abspath $(CRIU_ENV)) \
		TSAN_OPTIONS="halt_on_error=1 exitcode=66 log_path=$(abspath build/tsan)/report" \
		test/run.sh $(TSAN_SUITES)
	@LAZY_UFFD_BUILD=$(abspath build/tsan/run) LAZY_UFFD_CRIU_ENV=$(abspath $(CRIU_ENV)) \
		TSAN_OPTIONS="halt_on_error=1 exitcode=66 log_path=$(abspath build/tsan)/report" \
		LAZY_UFFD_BATS_FILTER='$(TSAN_REMOTE_FILTER)' test/run.sh $(TSAN_REMOTE)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/criu $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(O)/lazy-uffd $(DESTDIR)$(PREFIX)/bin/lazy-uffd
	install -m 0755 lazy-pages/criu-lazy-uffd $(DESTDIR)$(PREFIX)/bin/criu-lazy-uffd
	install -m 0644 $(O)/lazy_uffd.so $(DESTDIR)$(PREFIX)/lib/criu/lazy_uffd.so
	install -m 0644 man/lazy-uffd.1 $(DESTDIR)$(MANDIR)/man1/lazy-uffd.1

# The files make install puts in place; the directories stay (they may hold others).
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/lazy-uffd $(DESTDIR)$(PREFIX)/bin/criu-lazy-uffd \
		$(DESTDIR)$(PREFIX)/lib/criu/lazy_uffd.so $(DESTDIR)$(MANDIR)/man1/lazy-uffd.1

demo: deps all $(O)/zdtm/anon $(NO_UFFD)
	@mk/demo.sh $(O) $(CRIU_ENV)

clean:
	rm -rf $(O)/obj $(O)/gen $(O)/test $(O)/zdtm $(O)/asan $(PROGS) $(O)/bench/obj $(BENCH_PROGS)

# Also drops the unpacked CRIU prefixes.
distclean:
	rm -rf build

help:
	@echo "make            build build/lazy-uffd, build/lazy_uffd.so, build/libcrimg.a"
	@echo "make deps       install build deps and a CRIU >= 4.0 (CRIU_SERIES=4.1|4.2)"
	@echo "make check      deps, build, unit tests and zdtm tests; prints 'N passed, N failed, N skipped'"
	@echo "make asan       unit tests under ASan+UBSan (build/asan)"
	@echo "make check-cross  build for aarch64 (Debian's cross compiler), unit and GOT tests under qemu-user"
	@echo "make tsan       the daemon under ThreadSanitizer (build/tsan) through the zdtm suites that drive it"
	@echo "make stress     8 GiB restored lazily, byte-exact (needs 18 GiB free; not in make check)"
	@echo "make fuzz       libFuzzer targets (clang) for FUZZ_TIME seconds each (default 60)"
	@echo "make bench      eager vs criu lazy-pages vs lazy-uffd, local and remote (BENCH_SIZES, BENCH_PATTERNS, BENCH_CONFIGS, BENCH_REPS, BENCH_BIG)"
	@echo "make bench-fanout  one dump, N restores at once from lazy-uffd page-server and criu page-server (BENCH_FANOUT, BENCH_FANOUT_SIZE); also the end of make bench"
	@echo "make print-criu absolute path of the criu binary in use"
	@echo "make install    PREFIX=/usr DESTDIR=...: bin/lazy-uffd, bin/criu-lazy-uffd, lib/criu/lazy_uffd.so, share/man/man1/lazy-uffd.1"
	@echo "make uninstall  PREFIX=/usr DESTDIR=...: remove what make install put there"

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)
