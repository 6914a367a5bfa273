# foneai-bridge — see README.md. `make demo` and `make test` are the two entry points.
SWIFT      ?= swift
BUILD_DIR  ?= .build
DEBUG_BIN  := $(BUILD_DIR)/debug

.PHONY: all build test unit-test integration-test demo clean release deb install system-test fuzz bench

all: build

build:
	$(SWIFT) build

# Everything: unit tests and the integration tests that run the real daemon binary against
# the simulator over real sockets.
test:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel

unit-test:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel --filter FoneAIBridgeTests

integration-test:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel --filter IntegrationTests

# The real daemon bridging simulated calls through the built-in Asterisk simulator to the
# built-in AI test server, with a live view of the calls.
demo: build
	$(DEBUG_BIN)/foneai-sim demo --bridge $(DEBUG_BIN)/foneai-bridge

clean:
	rm -rf $(BUILD_DIR) .build-* out

# libFuzzer targets (rtp, ari, ai, control, config), ASan-built in .build-fuzz, each run for
# FUZZ_SECONDS from the seed corpus in Tests/Fuzz/corpus; crash inputs land in out/fuzz/crashes/.
# FUZZ_TARGETS="rtp ai" picks some, FUZZ_JOBS=2 runs two at once. See Tests/Fuzz/run.sh.
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 1
FUZZ_TARGETS ?=
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) SWIFT=$(SWIFT) bash Tests/Fuzz/run.sh $(FUZZ_TARGETS)

# ---- Packaging -------------------------------------------------------------------------------
# One flag set for everything shipped: release, Swift runtime linked statically, so the binaries
# need only libc6, libstdc++6, libgcc-s1, zlib1g and libsystemd0.
RELEASE_FLAGS := -c release --static-swift-stdlib
RELEASE_BIN   := $(BUILD_DIR)/release
VERSION       ?= $(shell sed -n 's/.*static let version = "\(.*\)".*/\1/p' Sources/FoneAIBridge/BridgeDaemon.swift)
OUT_DIR       ?= out
DEB           := $(OUT_DIR)/foneai-bridge_$(VERSION)_amd64.deb

# The shipped binaries, release-built with the static Swift runtime, in $(RELEASE_BIN).
release:
	$(SWIFT) build $(RELEASE_FLAGS) --product foneai-bridge
	$(SWIFT) build $(RELEASE_FLAGS) --product foneaictl

# $(OUT_DIR)/foneai-bridge_$(VERSION)_amd64.deb (debhelper, from packaging/debian), then lintian.
# VERSION=0.1.0+local1 make deb packages the same binaries under another version.
deb: release
	packaging/build-deb.sh --version "$(VERSION)" --bin-dir "$(RELEASE_BIN)" --out-dir "$(OUT_DIR)"

# For systems without dpkg: make release && sudo make install [PREFIX=/usr/local] [DESTDIR=...]
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/foneai-bridge
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR ?= /etc
INSTALL    ?= install

install:
	@test -x $(RELEASE_BIN)/foneai-bridge -a -x $(RELEASE_BIN)/foneaictl || \
	  { echo "no release binaries in $(RELEASE_BIN): run 'make release' first (as your user, not root)"; exit 1; }
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(DOCDIR) $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	$(INSTALL) -m 0755 -s $(RELEASE_BIN)/foneai-bridge $(RELEASE_BIN)/foneaictl $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 0644 docs/man/foneaictl.1 $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 0644 docs/man/foneai-bridge.8 $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 0644 packaging/bash-completion/foneaictl $(DESTDIR)$(BASHCOMPDIR)/foneaictl
	sed -e 's#/usr/bin/foneai-bridge#$(BINDIR)/foneai-bridge#' -e 's#/etc/foneai/#$(SYSCONFDIR)/foneai/#' \
	  packaging/systemd/foneai-bridge.service \
	  > $(DESTDIR)$(UNITDIR)/foneai-bridge.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/foneai-bridge.service
	$(INSTALL) -m 0644 packaging/sysusers/foneai-bridge.conf $(DESTDIR)$(SYSUSERSDIR)/foneai-bridge.conf
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/foneai
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/foneai/config.json ]; then \
	  echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/foneai/config.json"; \
	else \
	  $(INSTALL) -m 0640 etc/foneai/config.json $(DESTDIR)$(SYSCONFDIR)/foneai/config.json; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v systemd-sysusers >/dev/null; then \
	  systemd-sysusers $(SYSUSERSDIR)/foneai-bridge.conf && \
	  chgrp foneai $(SYSCONFDIR)/foneai/config.json && chmod 0640 $(SYSCONFDIR)/foneai/config.json && \
	  systemctl daemon-reload 2>/dev/null || true; \
	  echo; echo "Installed; user foneai created. Next:"; \
	else \
	  echo; echo "Installed. On the target machine, as root:"; \
	  echo "  systemd-sysusers $(SYSUSERSDIR)/foneai-bridge.conf   # creates user and group foneai"; \
	  echo "  chgrp foneai $(SYSCONFDIR)/foneai/config.json && chmod 0640 $(SYSCONFDIR)/foneai/config.json"; \
	fi
	@echo "  edit $(SYSCONFDIR)/foneai/config.json, then: foneai-bridge --check-config $(SYSCONFDIR)/foneai/config.json"
	@echo "  systemctl daemon-reload && systemctl enable --now foneai-bridge"

# Boots Debian 12 with real systemd under systemd-nspawn, installs the .deb and checks the
# service end to end (Tests/System/README.md). Needs root, systemd-container and debootstrap.
system-test: deb
	$(SWIFT) build $(RELEASE_FLAGS) --product foneai-sim
	Tests/System/run.sh --deb "$(DEB)" --version "$(VERSION)" --sim "$(RELEASE_BIN)/foneai-sim" \
	  --bin-dir "$(RELEASE_BIN)" --out-dir "$(OUT_DIR)/system-test"

# Load benchmark (issue 7): release build, then Tests/Bench/run.sh runs `foneai-sim load` for each
# BENCH_CALLS (default 50 100 200 500) for BENCH_SECONDS (60) at BENCH_RATE (20) calls/s,
# BENCH_REPEAT (1) times each, searches the largest passing call count, and writes docs/benchmarks.md and docs/benchmarks.json.
bench:
	$(SWIFT) build $(RELEASE_FLAGS) --product foneai-bridge
	$(SWIFT) build $(RELEASE_FLAGS) --product foneai-sim
	BENCH_BIN=$(RELEASE_BIN) bash Tests/Bench/run.sh
