# memloc: the two commands that do everything on a fresh Debian 12 machine.
#   make demo   install missing packages, build, run the main job
#   make test   install missing packages, build, run every test (Release and ASan+UBSan)
# Other targets: build, bench, asan, fuzz, fixtures, clean.

BUILD   ?= build
ASAN    ?= build-asan
FUZZB   ?= build-fuzz
JOBS    ?= $(shell nproc)
CMAKE   ?= cmake
CTEST   ?= ctest
DEMO_ARGS ?=

.PHONY: all deps build asan fuzz test test-release test-asan test-fuzz demo bench fixtures clean

all: build

deps:
	@scripts/install-deps

build: deps
	@$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@$(CMAKE) --build $(BUILD) -j $(JOBS)

asan: deps
	@$(CMAKE) -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DMLOC_SANITIZE=ON >/dev/null
	@$(CMAKE) --build $(ASAN) -j $(JOBS)

fuzz: deps
	@CC=clang $(CMAKE) -S . -B $(FUZZB) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMLOC_FUZZ=ON \
	    -DMLOC_SANITIZE=ON >/dev/null
	@$(CMAKE) --build $(FUZZB) -j $(JOBS) --target $$(cd tests/fuzz && ls fuzz_*.c 2>/dev/null | sed 's/\.c$$//')

test-release: build
	@cd $(BUILD) && $(CTEST) --output-on-failure -j 1 -LE fuzz

test-asan: asan
	@cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1 $(CTEST) --output-on-failure -j 1 -L 'unit|gradcheck|parity|fuzz'

test-fuzz: fuzz
	@cd $(FUZZB) && $(CTEST) --output-on-failure -L fuzz

test: test-release test-asan test-fuzz

demo: build
	@$(BUILD)/memloc demo $(DEMO_ARGS)

bench: build
	@bench/run-all $(BUILD)

# Regenerate the committed PyTorch/torchvision/scipy fixtures (needs scripts/install-deps --dev).
fixtures:
	@for g in tools/gen_*_fixtures.py; do echo "$$g"; /usr/bin/python3 $$g || exit 1; done

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZB)
