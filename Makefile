# Thin wrapper over meson/ninja for the README's commands.
BUILD      ?= build
SOCKET     ?= ./vscsi.sock
IMAGE      ?= ./vscsi-default.img
IMAGE_SIZE ?= 1G

.PHONY: all deps run test test-unit test-asan demo clean fuzz

all: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) >/dev/null

# README command 1: serve a default 1 GiB sparse disk on ./vscsi.sock.
run: all
	@[ -e $(IMAGE) ] || truncate -s $(IMAGE_SIZE) $(IMAGE)
	exec $(BUILD)/vscsid --socket $(SOCKET) \
	    --drive file=$(IMAGE),id=disk0,cache=writeback,discard=unmap \
	    --device scsi-hd,drive=disk0,scsi-id=0,lun=0,id=disk0

# README command 2: install what is missing, build, run every test suite.
test:
	@scripts/install-deps.sh --test
	@scripts/run-tests.sh

test-unit: all
	meson test -C $(BUILD) --suite unit --suite harness --print-errorlogs

demo: all
	@scripts/install-deps.sh --test
	tests/guest/demo.sh

# libFuzzer targets (clang build in build-fuzz), FUZZ_SECONDS each; fails on any finding.
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz-smoke.sh

clean:
	rm -rf $(BUILD) build-asan

# Performance (docs/performance.md): the standard matrix with vscsi-bench, results
# and plots in $(BUILD)/bench/; bench-guest compares devices in a TCG guest.
.PHONY: bench bench-guest
bench: all
	scripts/bench.sh --build $(BUILD)

bench-guest: all
	@scripts/install-deps.sh --test
	tests/guest/bench-guest.sh
