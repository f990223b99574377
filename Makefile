# ltorch: a Lua 5.4-scriptable model I/O runtime with a C core.
# `make help` lists the targets.

CC ?= gcc
LUA ?= lua5.4
PYTHON ?= /usr/bin/python3
BUSTED ?= busted --lua=$(LUA)
LUA_INC ?= $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
PKGS := libzip zlib libcjson libcurl
DEP_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEP_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lzip -lz -lcjson -lcurl) -ldl
WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla -Werror
OPT ?= -O2 -g
CFLAGS ?= $(OPT)
# -fno-math-errno: nothing reads errno after a libm call, and with it sqrt and
# friends become instructions the vectoriser can use
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -fno-math-errno -fPIC -fvisibility=hidden -I/usr/include/x86_64-linux-gnu/openblas-pthread $(WARN) $(LUA_INC) $(DEP_CFLAGS) $(CFLAGS)
BUILD ?= build
SRCS := $(wildcard src/*.c)
OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS))
HDRS := $(wildcard src/*.h)

DEB_PKGS = gcc make pkg-config lua5.4 liblua5.4-dev libzip-dev zlib1g-dev libcjson-dev \
  lua-busted libopenblas-dev python3-torch python3-torchvision python3-numpy tmux \
  libcurl4-openssl-dev nginx-light openssl \
  lua-readline luarocks
# test peers from the npm registry, pinned (run by node: spec/fixtures/gguf/peer.mjs);
# `make deps` installs them into $(NPM_DIR) once, then only checks their versions.
# @huggingface/tasks is gguf's one dependency (^0.21.33): pinned too, so a fresh
# install gets the same tree; s3rver (the S3 server of spec/remote_spec.lua) is
# pinned, its own dependencies are as npm resolves them
NPM_DIR = build/npm
NPM_PEERS = @huggingface/gguf@0.4.6 @huggingface/tasks@0.21.54 s3rver@3.7.1

.PHONY: all host deps test demo bench asan tsan install clean help

## all: build build/ltorch/core.so (the default)
all: $(BUILD)/ltorch/core.so $(BUILD)/host $(BUILD)/threads $(BUILD)/fakecuda/libcuda.so.1

$(BUILD)/obj/%.o: src/%.c $(HDRS) | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj $(BUILD)/ltorch:
	mkdir -p $@

# the soname lets a program link core.so by name (build/host: found through
# its rpath, $ORIGIN/ltorch, from any folder)
$(BUILD)/ltorch/core.so: $(OBJS) | $(BUILD)/ltorch
	$(CC) -shared $(ALL_CFLAGS) -Wl,-soname,core.so -o $@ $(OBJS) $(DEP_LIBS) $(LDFLAGS) -lm -pthread

# the fake NVIDIA driver the CUDA specs run against where there is no GPU
# (spec/cuda/fake_cuda.c; core.so opens it when LTORCH_CUDA_DRIVER names it)
$(BUILD)/fakecuda/libcuda.so.1: spec/cuda/fake_cuda.c src/cudadrv.h
	mkdir -p $(BUILD)/fakecuda
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -Isrc $(CFLAGS) -fPIC -shared -o $@ spec/cuda/fake_cuda.c $(LDFLAGS) -pthread

## host: build the example C host application (examples/host) as build/host
host: $(BUILD)/host $(BUILD)/threads

$(BUILD)/host: examples/host/host.c examples/host/host_state.h src/ltorch.h $(BUILD)/ltorch/core.so
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) $(LUA_INC) -Isrc $(CFLAGS) -o $@ examples/host/host.c \
	  $(LDFLAGS) -L$(BUILD)/ltorch -l:core.so -Wl,-rpath,'$$ORIGIN/ltorch' -llua5.4 -lpthread

# the threads host (examples/host/threads.c): 8 threads loading and saving
$(BUILD)/threads: examples/host/threads.c examples/host/host_state.h src/ltorch.h $(BUILD)/ltorch/core.so
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) $(LUA_INC) -Isrc $(CFLAGS) -o $@ examples/host/threads.c \
	  $(LDFLAGS) -L$(BUILD)/ltorch -l:core.so -Wl,-rpath,'$$ORIGIN/ltorch' -llua5.4 -lpthread

## deps: install the Debian packages ltorch needs (apt-get, only what is missing) and the pinned npm test peers (into build/npm)
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@for p in $(NPM_PEERS); do \
	  v=$$(node -p "require(require('path').resolve(process.argv[1])).version" $(NPM_DIR)/node_modules/$${p%@*}/package.json 2>/dev/null); \
	  [ "$$v" = "$${p##*@}" ] || { echo "npm install: $(NPM_PEERS)"; \
	    npm install --prefix $(NPM_DIR) --no-audit --no-fund $(NPM_PEERS) || exit 1; break; }; \
	done

## test: install what is missing, build, run every spec
test: deps all host
	$(BUSTED) spec

## demo: install what is missing, build, run the walkthrough
demo: deps all
	bin/ltorch examples/walkthrough.lua

## bench: time ltorch against PyTorch on the same files
bench: deps all
	$(LUA) bench/bench.lua

## asan: build with AddressSanitizer and UBSan and run the whole suite
asan: deps
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" LDFLAGS="-fsanitize=address,undefined" all host
	LTORCH_BUILD=build-asan LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0 $(BUSTED) spec

## tsan: build with ThreadSanitizer into build-tsan and run the threads host (examples/host/threads.c) under it; fails on any report
include examples/host/tsan.mk

## install: install the module with luarocks
install: all
	luarocks --lua-version 5.4 make rockspec/ltorch-scm-1.rockspec

## clean: remove build outputs
clean:
	rm -rf build build-asan build-tsan

## fuzz: libFuzzer every parser (clang, ASan + UBSan), FUZZ_SECONDS (60) each, FUZZ_TARGETS to pick; fails on any finding (fuzz/README.md)
include fuzz/fuzz.mk

## help: list targets
help:
	@sed -n 's/^## //p' Makefile
