# lazy-pages/: the lazy-uffd command (show today; daemon and page server later).

LAZY_SRCS	:= $(wildcard lazy-pages/*.c)
LAZY_OBJS	:= $(patsubst %.c,$(O)/obj/%.o,$(LAZY_SRCS))

PROGS += $(O)/lazy-uffd

$(O)/lazy-uffd: $(LAZY_OBJS) $(LIBCRIMG)
	$(CC) $(XLDFLAGS) -o $@ $^ $(PROTOBUF_LIBS)
