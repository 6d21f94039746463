# lazy-pages/: the lazy-uffd command (show today; daemon and page server later).

LAZY_SRCS	:= $(wildcard lazy-pages/*.c)
LAZY_OBJS	:= $(patsubst %.c,$(O)/obj/%.o,$(LAZY_SRCS))

PROGS += $(O)/lazy-uffd

# doctor uses the plugin's device-path module (plugin/uffd_dev.h), built here like our own code.
# The page-server client and server: GnuTLS (as CRIU) and a receiver thread per connection.
GNUTLS_LIBS	:= $(shell pkg-config --libs gnutls 2>/dev/null || echo -lgnutls)

$(O)/lazy-uffd: $(LAZY_OBJS) $(O)/obj/plugin/uffd_dev.o $(LIBCRIMG)
	$(CC) $(XLDFLAGS) -pthread -o $@ $^ $(PROTOBUF_LIBS) $(GNUTLS_LIBS)
