# Thin wrapper around CMake. `make demo` and `make test` are the quick start.
BUILD   ?= build
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build kiln test bench demo clean format

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# Only the kiln tool (what `make demo` runs): no tests, no benchmarks.
kiln: configure
	@cmake --build $(BUILD) -j $(JOBS) --target kiln

# Every test has its own TIMEOUT and thread count (tests/CMakeLists.txt); the
# skipped ones are listed with their reasons afterwards.
test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@bash scripts/test-skips.sh $(BUILD)

demo: kiln
	@bash scripts/demo.sh

bench: build
	$(BUILD)/kiln bench --peak
	$(BUILD)/kiln bench --model stories110M --batch 4 --seq 256 --steps 5

clean:
	rm -rf $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h' '*.cu')
