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
