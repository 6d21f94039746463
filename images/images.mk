# images/: the CRIU image reader, build/libcrimg.a.

IMAGES_PROTOS	:= $(wildcard images/proto/*.proto)
IMAGES_PB_C	:= $(patsubst images/proto/%.proto,$(O)/gen/%.pb-c.c,$(IMAGES_PROTOS))
IMAGES_PB_H	:= $(IMAGES_PB_C:.c=.h)
IMAGES_SRCS	:= $(wildcard images/*.c)
IMAGES_OBJS	:= $(patsubst %.c,$(O)/obj/%.o,$(IMAGES_SRCS)) \
		   $(patsubst $(O)/gen/%.c,$(O)/obj/gen/%.o,$(IMAGES_PB_C))
LIBCRIMG	:= $(O)/libcrimg.a

PROGS += $(LIBCRIMG)

# protoc-c writes <name>.pb-c.{c,h}; generated files are never committed.
$(O)/gen/%.pb-c.c $(O)/gen/%.pb-c.h: images/proto/%.proto
	@mkdir -p $(O)/gen
	protoc-c --proto_path=images/proto --c_out=$(O)/gen $<

$(O)/obj/gen/%.o: $(O)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) -Wno-missing-field-initializers -c -o $@ $<

# Reader sources include the generated headers.
$(patsubst %.c,$(O)/obj/%.o,$(IMAGES_SRCS)): | $(IMAGES_PB_H)

$(LIBCRIMG): $(IMAGES_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^
