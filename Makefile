# The commands a person types. Each one installs what it needs first.
BUILD   ?= build
CONFIG  ?= etc/phalanx.json
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc)

.PHONY: all deps build run test unit integration bench install clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

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

bench: build
	bash scripts/bench.sh $(BUILD)/phalanx

install: build
	install -D -m 0755 $(BUILD)/phalanx $(DESTDIR)$(PREFIX)/bin/phalanx
	install -D -m 0644 etc/phalanx.json $(DESTDIR)/etc/phalanx/phalanx.json

clean:
	rm -rf $(BUILD)
