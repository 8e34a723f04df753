SHELL := /bin/bash

# ldseg: build, test and run.
#
#   make          build build/ngx_http_ldseg_module.so against Debian's nginx
#   make test     install what is missing, build, unit tests, fuzz, prove -r t/
#   make run      install what the build needs if missing (make deps-build),
#                 build and run nginx in the foreground on 127.0.0.1:8080
#   make deps     install what make test needs (Debian, as root);
#                 make deps-build only what make needs
#   make deb      Debian package build/libnginx-mod-http-ldseg_<version>_<arch>.deb
#                 (debian/, debhelper and dh_nginx; .ci/deb.sh)
#   make fuzz     longer libFuzzer run (FUZZ_SECONDS, default 300)
#   make static   build nginx 1.22.1 with the module compiled in (build/static)
#   make asan     static nginx with AddressSanitizer/UBSan (build/asan)
#   make crashpoints  the module with its crash points compiled in
#                 (build/crashpoints/ngx_http_ldseg_module.so, t/490-*.t)
#   make bench    throughput/CPU benchmark against bare nginx (bench/)
#   make bench-instructions
#                 instructions per request against bare nginx (callgrind):
#                 a figure a loaded machine does not move
#   make bench-adversarial
#                 cost per byte of adversarial bodies against track.json
#   make bench-export
#                 CPU per exported event of the export core (one core)
#   make bench-mappings
#                 core CPU per message: built-in presets vs the presets file
#   make bench-crc
#                 the outbound gzip (one core): ldseg_crc32() vs zlib's
#                 crc32(), and ldseg_deflate() vs zlib's level 1 on 100 and
#                 1000 varied and identical events (time, MB/s, ratio)
#   make differential SEEDS="6 7 8"
#                 fresh random messages through the core, compared with
#                 Segment's own destination (installs t/oracle from npm)

NGX_SRC     ?= /usr/share/nginx/src
BUILD       := build
MODULE      := $(BUILD)/ngx_http_ldseg_module.so
NGX_BUILD   := $(BUILD)/nginx
CRASH_BUILD := $(BUILD)/nginx-crash
CRASH_MODULE := $(BUILD)/crashpoints/ngx_http_ldseg_module.so
CRASH_CC_OPT := -DNGX_HTTP_LDSEG_CRASHPOINTS=1
CC          ?= cc

CORE_SRCS   := src/ldseg.c $(wildcard src/ldseg_*.c)
CORE_HDRS   := src/ldseg.h $(wildcard src/ldseg_*.h)
GLUE_SRCS   := ngx_http_ldseg_module.c $(wildcard src/ngx_http_ldseg_*.c)
GLUE_HDRS   := $(wildcard src/ngx_http_ldseg_*.h)

CORE_CFLAGS := -std=c99 -D_DEFAULT_SOURCE -g -O1 -Wall -Wextra -Werror \
               -Wpointer-arith -Wno-unused-parameter -Isrc
SAN_FLAGS   := -fsanitize=address,undefined -fno-omit-frame-pointer \
               -fno-sanitize-recover=undefined

UNIT_SRCS   := $(wildcard t/unit/test_*.c)
UNIT_BINS   := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
FUZZ_SRCS   := $(wildcard t/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(patsubst t/fuzz/%.c,$(BUILD)/fuzz/%_replay,$(FUZZ_SRCS))
FUZZ_BINS   := $(patsubst t/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
FUZZ_SECONDS ?= 300
FUZZ_QUICK  ?= 20

.PHONY: all deps deps-build check-core unit fuzz-replay fuzz fuzz-quick test run \
        differential \
        static asan bench bench-instructions bench-adversarial bench-export \
        bench-mappings bench-crc clean crashpoints deb

all: $(MODULE)

deps:
	@sh .ci/deps.sh

deps-build:
	@sh .ci/deps.sh --build

# The core must stay free of nginx: fail the build if it names nginx.
check-core: $(BUILD)/check-core.stamp

$(BUILD)/check-core.stamp: $(CORE_SRCS) $(CORE_HDRS)
	@if grep -n 'ngx_\|NGX_' $(CORE_SRCS) $(CORE_HDRS); then \
	    echo "src/ldseg_* must not use nginx"; exit 1; fi
	@mkdir -p $(BUILD) && touch $@

# What to say when the build dependencies are missing (a fresh machine)
DEPS_HINT := sh $(CURDIR)/.ci/deps.sh --hint
NGX_SRC_CHECK := if [ ! -x $(NGX_SRC)/configure ] \
        || [ ! -f $(NGX_SRC)/conf_flags ]; then \
    echo "make: no nginx source tree in $(NGX_SRC)" \
         "(Debian's nginx-dev package provides it)."; \
    $(DEPS_HINT); exit 1; fi

# Debian's nginx-dev configure writes objs/Makefile only
$(NGX_BUILD)/objs/Makefile: config
	@$(NGX_SRC_CHECK)
	rm -rf $(NGX_BUILD)
	mkdir -p $(BUILD)
	cp -r $(NGX_SRC) $(NGX_BUILD)
	@cd $(NGX_BUILD) && . ./conf_flags && \
	    echo "configure ($(NGX_BUILD)/configure.log)" && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt='-g -O2 -fPIC -fstack-protector-strong' \
	        --with-ld-opt='-Wl,-z,relro -Wl,-z,now -fPIC' \
	        --add-dynamic-module=$(CURDIR) > configure.log 2>&1 || { \
	    tail -n 15 configure.log | sed 's/^/    /'; \
	    echo "make: nginx's configure failed (the whole output is" \
	         "$(NGX_BUILD)/configure.log)."; \
	    rm -f objs/Makefile; $(DEPS_HINT); exit 1; }

$(MODULE): $(NGX_BUILD)/objs/Makefile $(CORE_SRCS) $(CORE_HDRS) \
           $(GLUE_SRCS) $(GLUE_HDRS) $(BUILD)/check-core.stamp
	$(MAKE) -C $(NGX_BUILD) -f objs/Makefile modules
	cp $(NGX_BUILD)/objs/ngx_http_ldseg_module.so $@.tmp
	mv -f $@.tmp $@

# The same module with NGX_HTTP_LDSEG_CRASHPOINTS: a second objs tree,
# configured like $(NGX_BUILD) but for the define (src/ngx_http_ldseg_crash.h)
$(CRASH_BUILD)/objs/Makefile: config
	@$(NGX_SRC_CHECK)
	rm -rf $(CRASH_BUILD)
	mkdir -p $(BUILD)
	cp -r $(NGX_SRC) $(CRASH_BUILD)
	cd $(CRASH_BUILD) && . ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt='-g -O2 -fPIC -fstack-protector-strong $(CRASH_CC_OPT)' \
	        --with-ld-opt='-Wl,-z,relro -Wl,-z,now -fPIC' \
	        --add-dynamic-module=$(CURDIR) > configure.log

$(CRASH_MODULE): $(CRASH_BUILD)/objs/Makefile $(CORE_SRCS) $(CORE_HDRS) \
                 $(GLUE_SRCS) $(GLUE_HDRS) $(BUILD)/check-core.stamp
	$(MAKE) -C $(CRASH_BUILD) -f objs/Makefile modules
	@mkdir -p $(dir $@)
	cp $(CRASH_BUILD)/objs/ngx_http_ldseg_module.so $@.tmp
	mv -f $@.tmp $@

crashpoints: $(CRASH_MODULE)

$(BUILD)/unit/%: t/unit/%.c t/unit/unit.h t/unit/unit_json.h $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CORE_CFLAGS) $(SAN_FLAGS) -o $@ $< $(CORE_SRCS) -lcjson -lz -lm

unit: check-core $(UNIT_BINS)

$(BUILD)/fuzz/%_replay: t/fuzz/%.c t/fuzz/replay.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CORE_CFLAGS) $(SAN_FLAGS) -o $@ $< t/fuzz/replay.c \
	    $(CORE_SRCS) -lcjson -lz -lm

$(BUILD)/fuzz/fuzz_%: t/fuzz/fuzz_%.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(dir $@)
	clang $(CORE_CFLAGS) -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -o $@ $< $(CORE_SRCS) -lcjson -lz -lm

fuzz-replay: $(FUZZ_REPLAY)
	@for f in $(FUZZ_REPLAY); do \
	    t=$$(basename $$f _replay); t=$${t#fuzz_}; \
	    $$f t/fuzz/corpus/$$t || exit 1; done

# a fuzz run over each target, bounded in time; new finds stay in build/
fuzz-quick fuzz: $(FUZZ_BINS)
	@secs=$(if $(filter fuzz,$@),$(FUZZ_SECONDS),$(FUZZ_QUICK)); \
	for f in $(FUZZ_BINS); do \
	    t=$$(basename $$f); t=$${t#fuzz_}; \
	    mkdir -p $(BUILD)/fuzz/corpus-$$t; \
	    $$f -max_total_time=$$secs -max_len=65536 -timeout=10 \
	        -artifact_prefix=$(BUILD)/fuzz/crash-$$t- \
	        $(BUILD)/fuzz/corpus-$$t t/fuzz/corpus/$$t || exit 1; \
	done

test: deps
	$(MAKE) all crashpoints unit fuzz-replay fuzz-quick
	prove -r t/

# one step from a fresh clone: what the build needs, the module, nginx
run: deps-build
	@$(MAKE) --no-print-directory $(MODULE)
	@sh conf/run.sh

SEEDS       ?= 2 3 4

differential: $(BUILD)/unit/test_differential
	@bash t/oracle/setup.sh
	@for s in $(SEEDS); do \
	    node t/differential/gen.js --seed $$s --count 4000 \
	        > $(BUILD)/differential-$$s.json || exit 1; \
	    LDSEG_DIFF_CASES=$(BUILD)/differential-$$s.json \
	        $(BUILD)/unit/test_differential > $(BUILD)/differential-$$s.out; \
	    r=$$?; grep -A12 'messages as the reference' \
	        $(BUILD)/differential-$$s.out | grep -v '^ok\|^1\.\.'; \
	    [ $$r = 0 ] || { grep -B1 -A3 '^# s' $(BUILD)/differential-$$s.out \
	        | head -40; exit 1; }; \
	done

static:
	@sh .ci/static.sh

deb:
	@sh .ci/deb.sh

asan:
	@SANITIZE=1 sh .ci/static.sh

bench: $(MODULE)
	@sh bench/run.sh

bench-instructions: $(MODULE)
	@sh bench/instructions.sh

bench-adversarial: $(MODULE)
	@bash bench/adversarial.sh

# CPU of the export per event (ldseg_export_process(), one core)
bench-export: $(BUILD)/export_bench
	@$(BUILD)/export_bench

$(BUILD)/export_bench: bench/export_bench.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(BUILD)
	$(CC) -std=c99 -D_DEFAULT_SOURCE -O2 -Wall -Wextra -Wno-unused-parameter -Werror -Isrc \
	    -o $@ bench/export_bench.c $(CORE_SRCS) -lcjson -lz -lm

# the outbound gzip: ldseg_crc32() against zlib's crc32(), and
# ldseg_deflate() against zlib's level 1 (bench/crc_bench.c)
bench-crc: $(BUILD)/crc_bench
	@$(BUILD)/crc_bench

$(BUILD)/crc_bench: bench/crc_bench.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(BUILD)
	$(CC) -std=c99 -D_DEFAULT_SOURCE -O2 -Wall -Wextra -Wno-unused-parameter -Werror -Isrc \
	    -o $@ bench/crc_bench.c $(CORE_SRCS) -lcjson -lz -lm

# the core's CPU per message: built-in presets against the same presets
# loaded from a mappings file (bench/core_bench.c)
bench-mappings: $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(BUILD)
	$(CC) -std=c99 -D_DEFAULT_SOURCE -O2 -Isrc -o $(BUILD)/core_bench \
	    bench/core_bench.c $(CORE_SRCS) -lcjson -lz -lm
	$(BUILD)/core_bench t/conformance/presets.json

clean:
	rm -rf $(BUILD)
