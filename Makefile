# The commands a person types. Each one installs what it needs first.

# SANITIZE=1: every target built with ASan + UBSan (gcc) in a build directory of
# its own, and the tests run there: `make test SANITIZE=1`, `make unit SANITIZE=1`.
# A finding fails the test that met it: the process exits 1 with the report on
# stderr (UBSan too: -fno-sanitize-recover), and the integration harness fails a
# test whose phalanx logged a report (tests/integration/conftest.py).
SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD       ?= build-asan
CMAKE_FLAGS += -DPHALANX_SANITIZE=ON
# check_initialization_order: static-init order bugs between our translation units.
export ASAN_OPTIONS  ?= halt_on_error=1:detect_leaks=1:check_initialization_order=1:print_summary=1
export UBSAN_OPTIONS ?= halt_on_error=1:print_stacktrace=1
endif
BUILD   ?= build
CONFIG  ?= etc/phalanx.json
PREFIX  ?= /usr/local
# /usr/local/lib/systemd/system is where systemd looks for units of locally
# installed software; /etc/systemd/system stays the operator's (drop-ins).
UNITDIR ?= $(PREFIX)/lib/systemd/system
CONFDIR ?= /etc/phalanx
JOBS    ?= $(shell nproc)
# make fuzz: libFuzzer harnesses (clang 14) in their own build directory.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ         ?=

.PHONY: all deps build run test unit integration fuzz fuzz-replay bench loadtest install uninstall clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	exec $(BUILD)/phalanx -c $(CONFIG)

test: build
	cd $(BUILD) && ctest --output-on-failure

unit: build
	$(BUILD)/unit_tests

integration: build
	cd $(BUILD) && ctest --output-on-failure -R integration

# Replays the fuzz seeds and every crash found so far (tests/fuzz/); no fuzzing.
# make test runs it too.
fuzz-replay: build
	cd $(BUILD) && ctest --output-on-failure -R '^fuzz_replay_'

# Fuzzes each harness (or only FUZZ=name) for FUZZ_SECONDS; what crashes is copied
# into tests/fuzz/crashes/NAME/. Warnings are not errors in this build: clang warns
# about things gcc does not, and the gcc build is the one that enforces them.
$(FUZZ_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
	  -DCMAKE_CXX_COMPILER=clang++-14 -DPHALANX_FUZZ=ON -DPHALANX_WERROR=OFF >/dev/null

fuzz: deps $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ)

# Throughput, latency and memory; then what reloads and crashes cost under load;
# then what limits, auth and the cache cost, as ratios to the static route.
bench: build
	bash scripts/bench.sh $(BUILD)/phalanx
	/usr/bin/python3 scripts/bench/supervision.py --bin $(BUILD)/phalanx
	/usr/bin/python3 scripts/bench/access.py --bin $(BUILD)/phalanx

# Load scenarios (scripts/loadtest/scenarios.toml) against a local deployment it
# starts and stops (or LOADTEST_ARGS="--target URL"); a report directory under
# loadtest-reports/. LOADTEST_ARGS="--quick", "normal spike", "--set normal.duration_s=60",
# "--baseline loadtest-reports/OLD", "--out DIR": see scripts/loadtest/README.md.
LOADTEST_ARGS ?=
loadtest: build
	/usr/bin/python3 scripts/loadtest/run.py --bin $(BUILD)/phalanx --ctl $(BUILD)/phalanxctl $(LOADTEST_ARGS)

# make install (as root): phalanx and phalanxctl in PREFIX/bin, the systemd unit,
# the system user phalanx, and /etc/phalanx/phalanx.json unless one exists
# (operators edit it). The installed config is etc/phalanx.json with the paths
# the unit provides: the control socket in RuntimeDirectory=, the access log in
# LogsDirectory=. DESTDIR stages the files under a directory (packaging, tests)
# and touches nothing else: no user, no chgrp, no daemon-reload.
install: build
	install -d -m 0755 $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CONFDIR)
	install -m 0755 $(BUILD)/phalanx $(BUILD)/phalanxctl $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|/usr/local/bin/|$(PREFIX)/bin/|g' -e 's|/etc/phalanx/|$(CONFDIR)/|g' systemd/phalanx.service > $(BUILD)/phalanx.service
	install -m 0644 $(BUILD)/phalanx.service $(DESTDIR)$(UNITDIR)/phalanx.service
	@if [ -z "$(DESTDIR)" ] && ! getent passwd phalanx >/dev/null; then \
	  useradd --system --user-group --home-dir /nonexistent --no-create-home \
	    --shell /usr/sbin/nologin --comment "phalanx API gateway" phalanx && \
	  echo "install: created the system user phalanx"; \
	fi
	@if [ -e $(DESTDIR)$(CONFDIR)/phalanx.json ]; then \
	  echo "install: kept the existing $(DESTDIR)$(CONFDIR)/phalanx.json"; \
	else \
	  python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); \
	    c["control_socket"] = "/run/phalanx/phalanx.sock"; \
	    c.setdefault("log", {})["access"] = "/var/log/phalanx/access.log"; \
	    print(json.dumps(c, indent=2))' etc/phalanx.json > $(BUILD)/phalanx.systemd.json && \
	  install -m 0640 $(if $(DESTDIR),,-g phalanx) $(BUILD)/phalanx.systemd.json \
	    $(DESTDIR)$(CONFDIR)/phalanx.json && \
	  echo "install: wrote $(DESTDIR)$(CONFDIR)/phalanx.json"; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "install: start with: systemctl enable --now phalanx"

# Removes what install put in place except the config and the user (as apt's
# remove keeps conffiles): a reinstall finds the operator's config again.
uninstall:
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
	  systemctl disable --now phalanx.service 2>/dev/null || true; \
	fi
	rm -f $(DESTDIR)$(PREFIX)/bin/phalanx $(DESTDIR)$(PREFIX)/bin/phalanxctl \
	  $(DESTDIR)$(UNITDIR)/phalanx.service
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

clean:
	rm -rf $(BUILD)
