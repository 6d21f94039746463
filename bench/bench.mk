# bench/: `make bench`, the side-by-side benchmark of eager restore, criu lazy-pages and
# lazy-uffd's daemon, local and remote (bench/bench.sh says what it runs and prints).
#
# workload    the zdtm program that is dumped and restored (links test/zdtm/lib)
# floor       what UFFDIO_COPY and a fault round trip cost here
# rusage      wait4() wrapper: wall time, CPU and peak RSS of a daemon or a restore
# warm        touch and free memory right before a restore
# pull        every lazy page from a page server, thrown away: the source's own floor

BENCH_PROGS	:= $(O)/bench/workload $(O)/bench/floor $(O)/bench/rusage $(O)/bench/warm $(O)/bench/pull

# Narrowing a run: BENCH_SIZES (256M 1G; BENCH_BIG=1 adds 4G), BENCH_PATTERNS (seq
# random hot), BENCH_CONFIGS (eager criu-local ours-local ours-profile criu-remote
# ours-remote criu-migrate ours-migrate pull-migrate), BENCH_REPS (3). Passed through
# the environment.
export BENCH_SIZES BENCH_PATTERNS BENCH_CONFIGS BENCH_REPS BENCH_BIG BENCH_SLOW BENCH_TIMEOUT BENCH_OUT BENCH_WORKLOAD_ARGS
# bench/fanout.sh: BENCH_FANOUT (1 4 16 64; 0 skips it in make bench), BENCH_FANOUT_SIZE
# (16M), BENCH_FANOUT_SERVERS (criu ours), BENCH_FANOUT_REPS (1).
export BENCH_FANOUT BENCH_FANOUT_SIZE BENCH_FANOUT_SERVERS BENCH_FANOUT_REPS BENCH_FANOUT_DAEMON_ARGS

$(O)/bench/obj/workload.o: bench/workload.c
	@mkdir -p $(dir $@)
	$(CC) $(ZDTM_CFLAGS) -c -o $@ $<

$(O)/bench/workload: $(O)/bench/obj/workload.o $(ZDTM_LIB_OBJ)
	$(CC) -pthread $(LDFLAGS) -o $@ $^

# pull is a client of the daemon's page-server code (lazy-pages/remote.h), linked as the
# daemon is, without its main.
$(O)/bench/obj/pull.o: bench/pull.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Ilazy-pages -pthread -c -o $@ $<

$(O)/bench/pull: $(O)/bench/obj/pull.o $(filter-out $(O)/obj/lazy-pages/main.o,$(LAZY_OBJS)) \
		$(O)/obj/plugin/uffd_dev.o $(LIBCRIMG)
	$(CC) -pthread $(LDFLAGS) -o $@ $^ $(PROTOBUF_LIBS) $(GNUTLS_LIBS)

$(O)/bench/obj/%.o: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -pthread -c -o $@ $<

$(O)/bench/%: $(O)/bench/obj/%.o
	$(CC) -pthread $(LDFLAGS) -o $@ $^

.SECONDARY: $(patsubst $(O)/bench/%,$(O)/bench/obj/%.o,$(BENCH_PROGS))

bench: deps all $(BENCH_PROGS) $(O)/test/tools/scrub-lazy $(O)/test/tools/hwbp-probe
	@$(TEST_ENV) bench/bench.sh
	@$(TEST_ENV) bench/fanout.sh

# One snapshot, many restores at once (bench/fanout.sh); also the end of `make bench`.
bench-fanout: deps all $(BENCH_PROGS) $(O)/test/tools/scrub-lazy $(O)/test/tools/hwbp-probe
	@$(TEST_ENV) bench/fanout.sh

-include $(wildcard $(O)/bench/obj/*.d)
