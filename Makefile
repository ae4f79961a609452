# mxsieve build. One Makefile, no recursion: every .c under src/<module>/ goes
# into libmx.a (except src/daemon/main.c), every tests/unit/test_*.c becomes a
# unit-test binary linked against it, every tests/fuzz/fuzz_*.c a libFuzzer
# target (clang only). Adding a file needs no edit here.
#
#   make            build build/mxsieve and the unit tests
#   make check      build, then run the whole suite (pytest drives it all)
#   make run        build and run on examples/mxsieve.conf (foreground)
#   make install    PREFIX=/usr/local DESTDIR= : daemon, man page, systemd unit
#   make SAN=1      build with ASan+UBSan into build-san/
#   make check-san  the suite against that build (CI runs check, then this)
#   make fuzz       build the fuzz targets with clang into build-fuzz/ (FB=dir to change)

CC      ?= cc
PKGS    := libevent libevent_openssl libevent_pthreads libpcre2-8 openssl libcares zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))

WARN    := -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-unused-parameter -Werror
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(WARN) -Isrc $(PKG_CFLAGS) -pthread
LDLIBS  += $(PKG_LIBS) -pthread -lm

ifeq ($(SAN),1)
B       ?= build-san
CFLAGS  += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
B       ?= build
endif

# MODULES limits the library to some folders, so that one module can be built
# and tested while another is half-written:
#   make B=build-audit MODULES="util audit" build-audit/tests/test_audit
MODULES  ?= $(notdir $(wildcard src/*))
LIB_SRC  := $(filter-out src/daemon/main.c,$(foreach m,$(MODULES),$(wildcard src/$(m)/*.c)))
LIB_OBJ  := $(patsubst src/%.c,$(B)/obj/%.o,$(LIB_SRC))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
BENCH_SRC := $(wildcard bench/*_bench.c)
BENCH_BIN := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRC))

.PHONY: all check check-san run install clean fuzz bench
all: $(B)/mxsieve $(UNIT_BIN) $(BENCH_BIN)

$(B)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/libmx.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/mxsieve: $(B)/obj/daemon/main.o $(B)/libmx.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: tests/unit/%.c tests/unit/unit.h $(B)/libmx.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(B)/libmx.a $(LDLIBS)

$(B)/bench/%: bench/%.c $(B)/libmx.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O3 $(LDFLAGS) -o $@ $< $(B)/libmx.a $(LDLIBS)

# The whole suite: unit binaries, conformance scripts, end-to-end dialogues
# against the real daemon, all collected by pytest (Debian's, hence the path).
check: all
	MXSIEVE_BUILD=$(abspath $(B)) /usr/bin/python3 -m pytest -q tests

# The suite again under ASan+UBSan, as CI runs it. The fuzz smoke run is left
# out (its targets are sanitized builds already), and so is the benchmark
# smoke run (a benchmark under sanitizers measures nothing).
check-san:
	$(MAKE) SAN=1 all
	MXSIEVE_BUILD=$(abspath build-san) /usr/bin/python3 -m pytest -q tests \
		--ignore=tests/test_fuzz_smoke.py --ignore=tests/test_bench_smoke.py

run: $(B)/mxsieve
	$(B)/mxsieve -c examples/mxsieve.conf

# make install [PREFIX=/usr/local] [DESTDIR=staging]: the daemon, its man page,
# the systemd unit (which reads /etc/mxsieve/mxsieve.conf) and the examples.
PREFIX  ?= /usr/local
SYSTEMD_DIR ?= $(PREFIX)/lib/systemd/system
install: $(B)/mxsieve
	install -D -m 0755 $(B)/mxsieve $(DESTDIR)$(PREFIX)/sbin/mxsieve
	install -D -m 0644 man/mxsieve.8 $(DESTDIR)$(PREFIX)/share/man/man8/mxsieve.8
	install -d $(DESTDIR)$(SYSTEMD_DIR)
	sed 's|@SBINDIR@|$(PREFIX)/sbin|g' contrib/mxsieve.service.in \
		> $(DESTDIR)$(SYSTEMD_DIR)/mxsieve.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_DIR)/mxsieve.service
	install -d $(DESTDIR)$(PREFIX)/share/doc/mxsieve/examples/policy
	install -m 0644 contrib/mxsieve.conf contrib/recipients $(DESTDIR)$(PREFIX)/share/doc/mxsieve/examples/
	install -m 0644 examples/policy/* $(DESTDIR)$(PREFIX)/share/doc/mxsieve/examples/policy/

FB       ?= build-fuzz
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(FB)/%,$(FUZZ_SRC))
FUZZ_LIB_OBJ := $(patsubst src/%.c,$(FB)/obj/%.o,$(LIB_SRC))
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Isrc $(PKG_CFLAGS) -pthread \
               -fsanitize=fuzzer-no-link,address,undefined -DMX_FUZZING
fuzz: $(FUZZ_BIN)
$(FB)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<
$(FB)/libmx.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(FB)/%: tests/fuzz/%.c $(FB)/libmx.a
	clang $(FUZZ_CFLAGS) -MMD -MP -fsanitize=fuzzer -o $@ $< $(FB)/libmx.a $(PKG_LIBS) -pthread -lm
# header dependencies of the fuzz build too: a changed struct in a header must
# rebuild every object that uses it, or the targets mix two layouts
-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_BIN:=.d)

clean:
	rm -rf build build-* 

-include $(LIB_OBJ:.o=.d) $(B)/obj/daemon/main.d
.gitignore: ;
