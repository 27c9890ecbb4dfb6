# Ringmaster: the two commands on a fresh Debian 12 machine are `make demo` and `make check`.
#
#   make deps     install the Debian packages that are missing (apt-get; sudo if not root)
#   make build    release build of ringmasterd and ringctl (static Swift stdlib)
#   make demo     build, then run ringmasterd on contrib/examples/demo.toml in the foreground
#   make demo-stack  the same on contrib/examples/stack.toml (a oneshot migration, pre-start, env file)
#   make check    every test: unit tests, then the integration tests inside a private
#                 systemd user session (scripts/systemd-session)
#   make check-host  the real-host suite: a Debian 12 VM, systemd as PID 1, two real users
#                 (scripts/realhost, docs/testing.md)
#
# SCRATCH=DIR puts the build somewhere else than .build (e.g. a second tree: .build-NAME).

SWIFT     ?= swift
SCRATCH   ?= .build
SWIFTPM   := --scratch-path $(SCRATCH)
RELEASE   := -c release --static-swift-stdlib
# The session mounts and makes cgroups: it needs root.
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SESSION   := $(SUDO) env "PATH=$(PATH)" scripts/systemd-session

# Debian packages to build and test (the session adds its own: see
# `scripts/systemd-session --missing-packages`).
# ringctl links -static-executable: glibc's and libstdc++'s static archives (libc6-dev,
# libstdc++-12-dev; both usually come with the Swift toolchain's own requirements).
BUILD_PACKAGES := libsystemd-dev pkgconf python3 curl libc6-dev libstdc++-12-dev

.PHONY: all deps build build-debug demo demo-stack check unit-test integration-test clean

all: build

deps:
	@missing=""; \
	for p in $(BUILD_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q '^install ok installed$$' \
	        || missing="$$missing $$p"; \
	done; \
	for p in $$(scripts/systemd-session --missing-packages); do \
	    case " $$missing " in *" $$p "*) ;; *) missing="$$missing $$p";; esac; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "make deps: installing$$missing"; \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

build: deps
	$(SWIFT) build $(SWIFTPM) $(RELEASE)

# Debug build of everything, tests included (what `make check` runs).
build-debug: deps
	$(SWIFT) build $(SWIFTPM) --build-tests

demo: build
	@echo "demo: ringmasterd on contrib/examples/demo.toml; try: curl http://127.0.0.1:8080/ ; Ctrl-C to stop"
	@"$$($(SWIFT) build $(SWIFTPM) $(RELEASE) --show-bin-path)/ringmasterd" --config contrib/examples/demo.toml

demo-stack: build
	@echo "demo-stack: ringmasterd on contrib/examples/stack.toml; try: curl http://127.0.0.1:8090/ ; curl http://127.0.0.1:8100/healthz ; Ctrl-C to stop"
	@"$$($(SWIFT) build $(SWIFTPM) $(RELEASE) --show-bin-path)/ringmasterd" --config contrib/examples/stack.toml

check: unit-test integration-test

# The pure core and the D-Bus wire format need nothing around them.
unit-test: build-debug
	$(SWIFT) test $(SWIFTPM) --skip-build --filter '^(RingmasterCoreTests|DBusTests)\.' --skip FaultStackModelTests

# The runtime tests (spawner, sd-event, journald streams) and the integration tests run
# inside the private session, with a real journald, user D-Bus and systemd --user.
integration-test: build-debug
	$(SESSION) -- $(SWIFT) test $(SWIFTPM) --skip-build --filter 'RingmasterRuntimeTests|IntegrationTests' --skip FaultSlow

# The fault suite (docs/reliability.md): every Fault* test, the slow ones (FaultSlow*, which
# `make check` skips) included, against the release binaries users run; ringctl's D-Bus decoder
# fuzzed with 1,000,000 inputs (20,000 in `make check`). About 5 minutes.
.PHONY: faults
faults: build-debug build
	$(SESSION) -- env "RINGMASTER_BIN_DIR=$$($(SWIFT) build $(SWIFTPM) $(RELEASE) --show-bin-path)" \
	    RINGMASTER_FUZZ_INPUTS=1000000 \
	    $(SWIFT) test $(SWIFTPM) --skip-build --filter 'IntegrationTests\.Fault|RingmasterCoreTests\.Fault|DBusTests\.Fault|RingmasterRuntimeTests\.CgroupTests/testPidByPid'

# The real-host suite (docs/testing.md): the release binaries installed as the README says,
# as a real user, in a throw-away Debian 12 VM (systemd as PID 1, pure cgroup v2, lingering),
# booted twice. Builds the VM image once (cached in .build-realhost/, rebuilt when
# scripts/realhost-image changes). REALHOST_TIMEOUT=SECONDS: the hard limit for the VM run.
.PHONY: check-host
check-host: build
	$(SUDO) scripts/realhost --bin-dir "$$($(SWIFT) build $(SWIFTPM) $(RELEASE) --show-bin-path)" \
	    $(if $(REALHOST_TIMEOUT),--timeout $(REALHOST_TIMEOUT))

clean:
	rm -rf $(SCRATCH)

include mk/install.mk

# Benchmarks against supervisord, circus, runit, s6 and systemd --user (not part of check):
# ~25 min, writes docs/benchmarks.md; QUICK=1: one repetition, report under contrib/bench/out/.
.PHONY: bench
bench:
	$(SUDO) env "PATH=$(PATH)" "SWIFT=$(SWIFT)" contrib/bench/run $(if $(QUICK),--quick)
