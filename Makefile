# shopkeeper: one hand-written Makefile.
#
#   make            build bin/shopkeeper and the bench tools (installs missing
#                   -dev packages first)
#   make server     build bin/shopkeeper only: what the container image ships
#   make deps       apt-get install the libraries and tools the build and tests use
#   make demo       build, train on the bundled demo data, serve on 127.0.0.1:8080
#                   (make demo PORT=9090, or SHOPKEEPER_LISTEN=HOST:PORT)
#   make demo-model only train the demo model (models/demo)
#   make test       unit tests + end-to-end tests against the real server +
#                   the console in Chromium (screenshots in build/console/)
#   make test-browser  only the console in Chromium
#   make test-asan  the same suite built with AddressSanitizer + UBSan
#   make valgrind   the unit tests under valgrind memcheck
#   make valgrind-e2e  the end-to-end suites with the server under valgrind
#   make fuzz       every libFuzzer harness for FUZZ_SECONDS (fuzz-smoke: 10 s)
#   make test-deploy  the deploy/ topology on loopback through nginx, serve's
#                   operations (env, access log, drain, promtool), k8s manifests
#   make image      the container image with podman (base made by debootstrap)
#   make test-image start the server inside the built image's file system (slow)
#   make clean
#
# SANITIZE=1 builds everything with ASan + UBSan into build-asan/ and bin-asan/.

CC      ?= cc
PKGS    := libmicrohttpd jansson lmdb openblas hiredis
DEBS    := libmicrohttpd-dev libjansson-dev liblmdb-dev libopenblas-dev libhiredis-dev pkg-config \
           python3 lmdb-utils curl
HEADERS := /usr/include/microhttpd.h /usr/include/jansson.h /usr/include/lmdb.h \
           /usr/include/hiredis/hiredis.h

ifeq ($(SANITIZE),1)
BUILD   := build-asan
BIN     := bin-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT     := -O1 -g
else
BUILD   := build
BIN     := bin
SANFLAGS :=
OPT     := -O2 -g
endif

# pkg-config is only asked once the packages are there (see the deps check).
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  := -std=c11 $(OPT) -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-unused-parameter -D_GNU_SOURCE -Iinclude \
           $(SANFLAGS) -MMD -MP $(EXTRA_CFLAGS)
LDFLAGS += $(SANFLAGS)
LDLIBS  := -lpthread -lm

SRCS    := $(wildcard src/*.c)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
# The console's files (console/), compiled into the binary: console/embed.c,
# a build tool, writes them into $(BUILD)/console_assets.c (generated, never
# committed), linked with the rest (src/console.c serves them).
CONSOLE_FILES := $(sort $(wildcard console/*.html console/*.css console/*.js))
CONSOLE_OBJ := $(BUILD)/console_assets.o
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/%.o) $(CONSOLE_OBJ)
GEN     := $(if $(wildcard bench/gen.c),$(BIN)/shopkeeper-gen)
INV_BENCH := $(BIN)/shopkeeper-inverse-bench
# What serving under experiments adds to an answer (bench/experiments_micro.c).
EXP_MICRO := $(BIN)/shopkeeper-experiments-micro
# The shared event log's append throughput against a real redis-server.
EL_BENCH := $(if $(wildcard bench/eventlog_bench.c),$(BIN)/shopkeeper-eventlog-bench)
# The paced event writer of bench/event_log_bench.sh: plain C, no libraries.
PACER   := $(if $(wildcard bench/event_pacer.c),$(BIN)/shopkeeper-event-pacer)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(FUZZ_SRCS:tests/fuzz/fuzz_%.c=%)
# Each harness with the replay driver (any compiler): run over its corpus
# by `make test`.
FUZZ_REPLAY := $(FUZZ_NAMES:%=$(BUILD)/fuzz/replay_%)
FUZZ_SECONDS ?= 60
# make fuzz FUZZ=http runs one harness.
FUZZ_RUN := $(if $(FUZZ),$(FUZZ),$(FUZZ_NAMES))

.PHONY: all server deps demo demo-model fuzz fuzz-smoke lint-openapi test test-unit test-e2e test-asan valgrind \
	valgrind-e2e clean check-deps check-redis check-browser test-browser image test-image test-deploy lint-k8s check-deploy-tools

all: check-deps $(BIN)/shopkeeper $(GEN) $(INV_BENCH) $(EL_BENCH) $(PACER) $(EXP_MICRO)

# Only the shipped binary: the image's build stage copies include/ and src/
# alone, so a new bench tool cannot break it (issue 21, bug 0).
server: check-deps $(BIN)/shopkeeper

# Installing packages needs root and the network; only do it when a header is
# actually missing, and say so.
check-deps:
	@missing=""; for h in $(HEADERS); do [ -f $$h ] || missing="$$missing $$h"; done; \
	 [ -n "$$(ls /usr/include/*/cblas.h /usr/include/cblas.h 2>/dev/null)" ] || missing="$$missing cblas.h"; \
	 command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	 if [ -n "$$missing" ]; then \
	   echo "make: missing$$missing; running 'make deps' to install them"; \
	   $(MAKE) --no-print-directory deps; \
	 fi

deps:
	@if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root (apt-get install $(DEBS))"; exit 1; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEBS)

# `make V=1` shows the full commands.
Q := $(if $(V),,@)

$(BIN)/shopkeeper: $(BUILD)/main.o $(LIB_OBJS) | $(BIN)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

# The synthetic data generator for benchmarks: plain C, no libraries.
$(BIN)/shopkeeper-gen: bench/gen.c | $(BIN)
	@echo "  CC      $<"
	$(Q)$(CC) $(filter-out -MMD -MP,$(CFLAGS)) $(LDFLAGS) -o $@ $< -lm

# EASE's inverse timed against LAPACK's (bench/inverse_bench.c).
$(INV_BENCH): bench/inverse_bench.c $(LIB_OBJS) | $(BIN)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -MF $(BUILD)/inverse_bench.d $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) \
	  $(PKG_LIBS) $(LDLIBS)

$(BIN)/shopkeeper-event-pacer: bench/event_pacer.c | $(BIN)
	@echo "  CC      $<"
	$(Q)$(CC) $(filter-out -MMD -MP,$(CFLAGS)) $(LDFLAGS) -o $@ $< -lpthread

$(EXP_MICRO): bench/experiments_micro.c $(LIB_OBJS) | $(BIN)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -MF $(BUILD)/experiments_micro.d $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) \
	  $(PKG_LIBS) $(LDLIBS)

# bench/eventlog_bench.c: durable appends/s through the event log.
$(BIN)/shopkeeper-eventlog-bench: bench/eventlog_bench.c $(LIB_OBJS) | $(BIN)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -MF $(BUILD)/eventlog_bench.d $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) \
	  $(PKG_LIBS) $(LDLIBS)

$(BUILD)/%.o: src/%.c | $(BUILD) check-deps
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

# Built without the sanitizers: it runs on the build host, not in tests.
$(BUILD)/console-embed: console/embed.c | $(BUILD)
	@echo "  CC      $<"
	$(Q)$(CC) -std=c11 -O2 -Wall -Wextra -Werror -o $@ $<

$(BUILD)/console_assets.c: $(BUILD)/console-embed $(CONSOLE_FILES)
	@echo "  EMBED   $(CONSOLE_FILES)"
	$(Q)$(BUILD)/console-embed $@ $(CONSOLE_FILES)

$(BUILD)/console_assets.o: $(BUILD)/console_assets.c include/console.h | check-deps
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c tests/harness.h $(LIB_OBJS) | $(BUILD)/tests
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(PKG_LIBS) $(LDLIBS)

$(BUILD)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/driver.c tests/fuzz/fuzz.h $(LIB_OBJS) | $(BUILD)/fuzz
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests/fuzz $(LDFLAGS) -o $@ $< tests/fuzz/driver.c \
	  $(LIB_OBJS) $(PKG_LIBS) $(LDLIBS)

$(BUILD) $(BUILD)/tests $(BUILD)/fuzz $(BIN):
	mkdir -p $@

# ---- fuzzing (clang's libFuzzer) ----------------------------------------------
# make fuzz: every harness (or FUZZ=NAME) for FUZZ_SECONDS (default 60) from
# its corpus and tests/fuzz/NAME.dict if there is one; new inputs it finds are
# kept in build-fuzz/corpus/NAME, the log in build-fuzz/fuzz_NAME.log, a
# crashing input in build-fuzz/NAME-crash-*; a finding fails the target.
# make fuzz-smoke: 10 s each, as CI runs it.
FUZZ_CFLAGS := -std=c11 -O1 -g -D_GNU_SOURCE -Iinclude -Itests/fuzz \
	       -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_OBJS := $(LIB_SRCS:src/%.c=build-fuzz/%.o) build-fuzz/console_assets.o

build-fuzz/%.o: src/%.c | check-deps
	@mkdir -p build-fuzz
	@echo "  CLANG   $<"
	$(Q)clang $(FUZZ_CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

build-fuzz/console_assets.o: $(BUILD)/console_assets.c
	@mkdir -p build-fuzz
	@echo "  CLANG   $<"
	$(Q)clang $(FUZZ_CFLAGS) -c -o $@ $<

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJS)
	@echo "  CLANG   $<"
	$(Q)clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $(PKG_CFLAGS) -o $@ $< $(FUZZ_LIB_OBJS) \
	  $(PKG_LIBS) $(LDLIBS)

fuzz: check-clang $(FUZZ_RUN:%=build-fuzz/fuzz_%)
	@for f in $(FUZZ_RUN); do \
	  mkdir -p build-fuzz/corpus/$$f; \
	  echo "== fuzz_$$f for $(FUZZ_SECONDS)s"; \
	  dict=; [ ! -f tests/fuzz/$$f.dict ] || dict=-dict=tests/fuzz/$$f.dict; \
	  build-fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 \
	    -artifact_prefix=build-fuzz/$$f- $$dict build-fuzz/corpus/$$f tests/fuzz/corpus/$$f \
	    >build-fuzz/fuzz_$$f.log 2>&1; rc=$$?; \
	  grep -E "^(stat::|#[0-9]+[[:space:]]+DONE|SUMMARY)" build-fuzz/fuzz_$$f.log; \
	  if [ $$rc -ne 0 ]; then tail -n 40 build-fuzz/fuzz_$$f.log; \
	    echo "fuzz_$$f: a finding (exit $$rc): build-fuzz/fuzz_$$f.log, build-fuzz/$$f-*"; exit 1; fi; \
	done

fuzz-smoke:
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10

.SECONDARY: $(FUZZ_LIB_OBJS)

# The OpenAPI description, linted by Redocly's CLI from the npm registry
# (installed once into build-npm/; needs node and npm).
REDOCLY := build-npm/node_modules/.bin/redocly
lint-openapi: $(REDOCLY)
	@$(REDOCLY) lint deploy/openapi.json --format=stylish >build-npm/lint.txt 2>&1; rc=$$?; \
	  grep -v "^ *[║╔╚]" build-npm/lint.txt; exit $$rc

$(REDOCLY):
	@command -v npm >/dev/null || { echo "make: installing npm"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	mkdir -p build-npm
	npm install --prefix build-npm --no-audit --no-fund --silent @redocly/cli@2.77.0

check-clang:
	@command -v clang >/dev/null || { echo "make: installing clang for libFuzzer"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null; }

# ---- running -------------------------------------------------------------

DEMO_DATA  := data/demo/online-retail-sample.csv
DEMO_MODEL := models/demo
DEMO_STATE := models/demo-state
DEMO_COLUMNS := customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice,title=Description,birth_date=BirthDate

demo-model: all
	$(BIN)/shopkeeper train --interactions $(DEMO_DATA) --catalog data/demo/catalog.csv \
	  --customers data/demo/customers.csv --columns $(DEMO_COLUMNS) --out $(DEMO_MODEL)

# Where the demo listens: `make demo PORT=9090`, else SHOPKEEPER_LISTEN as
# serve itself reads it (HOST:PORT), else 127.0.0.1:8080. The curl lines
# below follow it; a wildcard host is reached on loopback.
ifeq ($(origin PORT),command line)
DEMO_LISTEN := 127.0.0.1:$(PORT)
else ifneq ($(SHOPKEEPER_LISTEN),)
DEMO_LISTEN := $(SHOPKEEPER_LISTEN)
else
DEMO_LISTEN := 127.0.0.1:$(or $(PORT),8080)
endif
DEMO_PORT := $(lastword $(subst :, ,$(DEMO_LISTEN)))
DEMO_HOST := $(patsubst %:$(DEMO_PORT),%,$(DEMO_LISTEN))
DEMO_HOST := $(if $(filter-out 0.0.0.0,$(DEMO_HOST)),$(DEMO_HOST),127.0.0.1)
DEMO_HOST := $(if $(filter-out [::],$(DEMO_HOST)),$(DEMO_HOST),[::1])
DEMO_URL  := http://$(DEMO_HOST):$(DEMO_PORT)

demo: demo-model
	@echo
	@echo "Try:  curl -s '$(DEMO_URL)/v1/customers/17850/recommendations?n=5'"
	@echo "      curl -s '$(DEMO_URL)/v1/customers/17850'"
	@echo "      curl -s '$(DEMO_URL)/v1/items/85123A/similar?n=5'"
	@echo "      curl -s '$(DEMO_URL)/v1/segments'"
	@echo "Stop with Ctrl-C. Port taken? make demo PORT=9090"
	@echo
	$(BIN)/shopkeeper serve --model $(DEMO_MODEL) --state $(DEMO_STATE) --listen $(DEMO_LISTEN)

# The test runner prints one closing line: "N passed, N failed".
# tests/test_eventlog starts real redis-server and redis-sentinel
# processes (and fails when they are missing): install them if we can.
check-redis:
	@for t in redis-server redis-sentinel; do command -v $$t >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then echo "make: installing $$t"; apt-get update -qq; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$t >/dev/null; \
	  else echo "make: $$t is missing (apt-get install $$t): test_eventlog will fail"; fi; }; \
	done

# tests/browser drives the console in Debian's chromium through
# chromium-driver and python3-selenium: installed when missing (as root).
BROWSER_TOOLS := /usr/bin/chromium:chromium /usr/bin/chromedriver:chromium-driver \
		 /usr/lib/python3/dist-packages/selenium:python3-selenium

check-browser:
	@missing=""; for t in $(BROWSER_TOOLS); do [ -e $${t%%:*} ] || missing="$$missing $${t#*:}"; done; \
	 if [ -n "$$missing" ]; then \
	   if [ "$$(id -u)" = 0 ]; then echo "make: installing$$missing"; apt-get update -qq; \
	     DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	   else echo "make: missing$$missing (apt-get install them): the browser tests will fail"; fi; \
	 fi

test: all check-redis check-browser $(TEST_BINS) $(FUZZ_REPLAY)
	@BIN=$(BIN) BUILD=$(BUILD) sh tests/run.sh

test-unit: all check-redis $(TEST_BINS) $(FUZZ_REPLAY)
	@BIN=$(BIN) BUILD=$(BUILD) sh tests/run.sh unit

test-e2e: all
	@BIN=$(BIN) BUILD=$(BUILD) sh tests/run.sh e2e

test-browser: all check-browser
	@BIN=$(BIN) BUILD=$(BUILD) sh tests/run.sh browser

test-asan:
	$(MAKE) --no-print-directory SANITIZE=1 test

valgrind: all check-redis $(TEST_BINS) $(FUZZ_REPLAY)
	@BIN=$(BIN) BUILD=$(BUILD) VALGRIND=1 sh tests/run.sh unit

# Every end-to-end suite with each shopkeeper process (servers and CLI runs)
# under valgrind memcheck through tests/valgrind/shopkeeper; time bounds in
# the tests are stretched VALGRIND_TIME_FACTOR times. Fails on any memcheck
# error or definite leak (a non-empty log in build/valgrind/) or a failed test.
VALGRIND_TIME_FACTOR ?= 10
valgrind-e2e: all
	@command -v valgrind >/dev/null || { echo "make: installing valgrind"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
	@rm -rf $(BUILD)/valgrind && mkdir -p $(BUILD)/valgrind
	@t0=$$(date +%s); \
	 BIN=$(BIN) BUILD=$(BUILD) E2E_SHOPKEEPER=$(CURDIR)/tests/valgrind/shopkeeper \
	   SHOPKEEPER_REAL=$(CURDIR)/$(BIN)/shopkeeper VALGRIND_LOGS=$(CURDIR)/$(BUILD)/valgrind \
	   SHOPKEEPER_TIME_FACTOR=$(VALGRIND_TIME_FACTOR) sh tests/run.sh e2e; rc=$$?; \
	 logs=$$(find $(BUILD)/valgrind -name 'vg.*.log' -size +0 | sort); \
	 echo "valgrind-e2e: $$(ls $(BUILD)/valgrind | wc -l) processes, $$(($$(date +%s) - t0)) s"; \
	 if [ -n "$$logs" ]; then for l in $$logs; do echo "== $$l"; head -n 60 $$l; done; \
	   echo "valgrind-e2e: memcheck found errors or definite leaks in $$(echo $$logs | wc -w) processes"; exit 1; fi; \
	 exit $$rc

# ---- deploy ----------------------------------------------------------------
# The deploy/ topology on loopback (replicas on a Redis event log with
# Sentinel, Debian's nginx), serve's operational behaviour, and the
# Kubernetes manifests checked offline. Tools come from apt when missing
# (nginx, prometheus for promtool, curl, redis-server, redis-sentinel).
DEPLOY_TOOLS := nginx:nginx promtool:prometheus curl:curl redis-server:redis-server \
	redis-sentinel:redis-sentinel

check-deploy-tools:
	@for t in $(DEPLOY_TOOLS); do \
	  command -v $${t%%:*} >/dev/null || PATH=$$PATH:/usr/sbin command -v $${t%%:*} >/dev/null || { \
	    echo "make: installing $${t#*:}"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $${t#*:} >/dev/null; }; \
	done

test-deploy: all check-deploy-tools lint-k8s
	@BIN=$(BIN) sh tests/deploy/run.sh

# The Kubernetes manifests, checked offline (kubectl's dry run needs a
# cluster): schemas from the npm package kubernetes-models, and the
# cross-checks in deploy/k8s/validate.mjs.
K8S_NODE_MODULES := build-npm/k8s/node_modules
lint-k8s: $(BIN)/shopkeeper $(K8S_NODE_MODULES)/kubernetes-models/package.json
	@$(BIN)/shopkeeper serve --help >build-npm/k8s/serve-help.txt
	@node deploy/k8s/validate.mjs $(K8S_NODE_MODULES) build-npm/k8s/serve-help.txt deploy/k8s

$(K8S_NODE_MODULES)/kubernetes-models/package.json:
	@command -v npm >/dev/null || { echo "make: installing npm"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	mkdir -p build-npm/k8s
	npm install --prefix build-npm/k8s --no-audit --no-fund --silent kubernetes-models@5.1.0 yaml@2.9.1

# The container image, built for real with Debian's podman (vfs storage,
# chroot isolation: no daemon, no overlay, no user namespace needed). The
# base image is made locally by debootstrap (no registry is needed).
PODMAN := podman --storage-driver vfs
IMAGE  ?= localhost/shopkeeper:latest

image:
	@command -v podman >/dev/null && command -v debootstrap >/dev/null || { \
	  echo "make: installing podman and debootstrap"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman debootstrap >/dev/null; }
	deploy/base-image.sh
	$(PODMAN) build --isolation chroot --format docker -t $(IMAGE) .

# Starts the image's own entrypoint in the image's file system (podman image
# mount + chroot; containers cannot start on these machines) and talks to it.
test-image: image
	@IMAGE=$(IMAGE) python3 tests/deploy/image_test.py

clean:
	rm -rf build build-asan build-fuzz bin bin-asan

-include $(wildcard $(BUILD)/*.d $(BUILD)/tests/*.d $(BUILD)/fuzz/*.d)
