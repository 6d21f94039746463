# plugin/: build/lazy_uffd.so, the CRIU plugin (also usable as an LD_PRELOAD).
# Built against CRIU 4.1's plugin header: 4.1 refuses a plugin declaring 4.2's larger
# hook table, while 4.2 loads one built with 4.1's.

PLUGIN_SRCS	:= $(wildcard plugin/*.c)
PLUGIN_OBJS	:= $(patsubst %.c,$(O)/obj/pic/%.o,$(PLUGIN_SRCS))

PROGS += $(O)/lazy_uffd.so

$(O)/obj/pic/plugin/%.o: plugin/%.c $(CRIU_ENV)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -fPIC -fvisibility=hidden -I$(CRIU_PLUGIN_INCLUDE) -c -o $@ $<

$(O)/lazy_uffd.so: $(PLUGIN_OBJS)
	$(CC) $(LDFLAGS) -shared -Wl,-z,defs -Wl,-z,now -o $@ $^ -ldl

# test/plugin/got-test: plugin/got.c on a program linked each way a criu can be
# (see the file). Run by test/plugin/got.bats.
GOT_TESTS	:= $(O)/test/plugin/got-lazy $(O)/test/plugin/got-now $(O)/test/plugin/got-noplt
GOT_TEST_SRCS	:= test/plugin/got-test.c plugin/got.c
TEST_PROGS	+= $(GOT_TESTS)

$(O)/test/plugin/got-lazy: $(GOT_TEST_SRCS) plugin/plugin.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Iplugin $(LDFLAGS) -Wl,-z,lazy -o $@ $(GOT_TEST_SRCS)

$(O)/test/plugin/got-now: $(GOT_TEST_SRCS) plugin/plugin.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Iplugin $(LDFLAGS) -Wl,-z,now -Wl,-z,relro -o $@ $(GOT_TEST_SRCS)

$(O)/test/plugin/got-noplt: $(GOT_TEST_SRCS) plugin/plugin.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Iplugin -fno-plt $(LDFLAGS) -Wl,-z,now -Wl,-z,relro -o $@ $(GOT_TEST_SRCS)

# test/tools/got-scan: the same matcher on an executable read from a file (got.bats runs
# it on the criu binaries, make check-cross on Debian's arm64 ones).
GOT_SCAN	:= $(O)/test/tools/got-scan
TEST_PROGS	+= $(GOT_SCAN)

$(GOT_SCAN): test/tools/got-scan.c plugin/got.c plugin/plugin.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Iplugin $(LDFLAGS) -o $@ test/tools/got-scan.c plugin/got.c
