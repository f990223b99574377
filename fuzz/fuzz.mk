# fuzz.mk: libFuzzer targets of ltorch's parsers (included by the Makefile;
# fuzz/README.md says what each target covers).
#   make fuzz                      every target, FUZZ_SECONDS (60) each, one at a time
#   make fuzz FUZZ_TARGETS="npy t7" FUZZ_SECONDS=300
#   make fuzz-build                the binaries only: build-fuzz/bin/fuzz_<target>
# clang with ASan + UBSan (-fno-sanitize-recover); a target fails on any
# crash, sanitizer report, leak, timeout or out-of-memory, whose input
# libFuzzer leaves in build-fuzz/artifacts/<target>/. make fuzz exits
# non-zero when any target had a finding.

FUZZ_CC ?= clang
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_RSS_MB ?= 2048
FUZZ_TIMEOUT ?= 10
FUZZ_FLAGS ?=
FUZZ_ALL_TARGETS := pickle zip pt safetensors npy npz torchsharp json t7 gguf
FUZZ_TARGETS ?= $(FUZZ_ALL_TARGETS)
# the targets that go through Lua (fuzz_lua.c)
FUZZ_LUA_TARGETS := pt npz json
FUZZ_PKGS = clang libclang-rt-14-dev

FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_BASE_CFLAGS = -std=c11 -D_GNU_SOURCE -O1 -g $(FUZZ_SAN) \
  -I/usr/include/x86_64-linux-gnu/openblas-pthread $(LUA_INC) $(DEP_CFLAGS)
FUZZ_CORE_OBJS := $(patsubst src/%.c,$(FUZZ_BUILD)/obj/%.o,$(SRCS))
FUZZ_HARNESS_HDRS := $(wildcard fuzz/*.h)
FUZZ_BINS = $(patsubst %,$(FUZZ_BUILD)/bin/fuzz_%,$(FUZZ_TARGETS))
FUZZ_CORPUS_STAMP = $(FUZZ_BUILD)/corpus/.stamp

.PHONY: fuzz fuzz-deps fuzz-build fuzz-seeds fuzz-clean
# the harness objects are kept (make would delete them as intermediates)
.PRECIOUS: $(FUZZ_BUILD)/hobj/%.o

# fuzz: every target in turn (the help line is in the Makefile)
fuzz:
	@$(MAKE) --no-print-directory fuzz-deps
	@$(MAKE) --no-print-directory fuzz-build fuzz-seeds
	@FUZZ_BUILD='$(FUZZ_BUILD)' FUZZ_SECONDS='$(FUZZ_SECONDS)' FUZZ_RSS_MB='$(FUZZ_RSS_MB)' \
	  FUZZ_TIMEOUT='$(FUZZ_TIMEOUT)' FUZZ_FLAGS='$(FUZZ_FLAGS)' FUZZ_LUA_TARGETS='$(FUZZ_LUA_TARGETS)' \
	  sh fuzz/run.sh $(FUZZ_TARGETS)

# clang and libFuzzer's runtime, installed when missing (as `deps` does)
fuzz-deps:
	@missing=""; for p in $(FUZZ_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

fuzz-build: $(FUZZ_BINS)

# the seed corpora (fuzz/make_seeds.sh), made with the ordinary build
fuzz-seeds: $(FUZZ_CORPUS_STAMP)

$(FUZZ_CORPUS_STAMP): fuzz/make_seeds.sh fuzz/make_seeds.lua fuzz/make_seeds.py $(BUILD)/ltorch/core.so
	sh fuzz/make_seeds.sh $(FUZZ_BUILD)/corpus
	touch $@

$(FUZZ_BUILD)/obj $(FUZZ_BUILD)/hobj $(FUZZ_BUILD)/bin:
	mkdir -p $@

# the core, instrumented for coverage (linked by every target). glibc's
# <complex.h> defines CMPLX only for GCC >= 4.7, and clang says it is GCC
# 4.2: clang's builtin stands in for it
FUZZ_CORE_CFLAGS = $(FUZZ_BASE_CFLAGS) -fsanitize=fuzzer-no-link \
  '-DCMPLX(x,y)=__builtin_complex((double)(x),(double)(y))'
$(FUZZ_BUILD)/obj/%.o: src/%.c $(HDRS) | $(FUZZ_BUILD)/obj
	$(FUZZ_CC) $(FUZZ_CORE_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/libltorch.a: $(FUZZ_CORE_OBJS)
	rm -f $@
	ar rcs $@ $(FUZZ_CORE_OBJS)

$(FUZZ_BUILD)/hobj/%.o: fuzz/%.c $(FUZZ_HARNESS_HDRS) $(HDRS) | $(FUZZ_BUILD)/hobj
	$(FUZZ_CC) $(FUZZ_BASE_CFLAGS) $(WARN) -Isrc -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/bin/fuzz_%: $(FUZZ_BUILD)/hobj/fuzz_%.o $(FUZZ_BUILD)/hobj/fuzz_util.o \
    $(FUZZ_BUILD)/hobj/fuzz_lua.o $(FUZZ_BUILD)/libltorch.a | $(FUZZ_BUILD)/bin
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $(filter %.o %.a,$^) \
	  $(DEP_LIBS) -llua5.4 -lm -pthread

# fuzz-clean: remove the fuzz build, corpora and artefacts (build-fuzz)
fuzz-clean:
	rm -rf $(FUZZ_BUILD)
