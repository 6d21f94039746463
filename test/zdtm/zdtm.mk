# test/zdtm/: zdtm-style test programs, run by test/zdtm/*.bats.
#
# One program per scenario, each linked with the small test library in lib/ (see
# lib/zdtmtst.h for the contract). Built without sanitizers: criu dumps and restores
# them, and an ASan shadow map is neither small nor interesting to checkpoint.

ZDTM_TESTS	:= anon sparse zeropages tree threads lazyops forkcheck zombie mostlyzero fanout storm
ZDTM_LIB_OBJ	:= $(O)/zdtm/obj/lib/zdtmtst.o
ZDTM_CFLAGS	:= $(BASE_CFLAGS) -pthread -I$(TOP)/test/zdtm/lib

ZDTM_OBJS	:= $(patsubst %,$(O)/zdtm/obj/%.o,$(ZDTM_TESTS)) $(ZDTM_LIB_OBJ)

TEST_PROGS	+= $(addprefix $(O)/zdtm/,$(ZDTM_TESTS)) $(O)/zdtm/anon-static $(O)/zdtm/forkcheck-static

# runc.bats and userns.bats: a container's one process, static (its root holds nothing else).
$(O)/zdtm/%-static: $(O)/zdtm/obj/%.o $(ZDTM_LIB_OBJ)
	$(CC) -static -pthread $(LDFLAGS) -o $@ $^

# Keep the objects: they are intermediate files of a pattern chain otherwise.
.SECONDARY: $(ZDTM_OBJS)

$(O)/zdtm/obj/%.o: test/zdtm/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ZDTM_CFLAGS) -c -o $@ $<

$(O)/zdtm/%: $(O)/zdtm/obj/%.o $(ZDTM_LIB_OBJ)
	$(CC) -pthread $(LDFLAGS) -o $@ $^

.PHONY: zdtm
zdtm: $(addprefix $(O)/zdtm/,$(ZDTM_TESTS))

-include $(wildcard $(O)/zdtm/obj/*.d $(O)/zdtm/obj/lib/*.d)

# Test-only tools (mkparent) live in test/tools/.
include test/tools/tools.mk
