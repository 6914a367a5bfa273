# foneai-bridge — see README.md. `make demo` and `make test` are the two entry points.
SWIFT      ?= swift
BUILD_DIR  ?= .build
DEBUG_BIN  := $(BUILD_DIR)/debug

.PHONY: all build test unit-test integration-test demo clean

all: build

build:
	$(SWIFT) build

# Everything: unit tests and the integration tests that run the real daemon binary against
# the simulator over real sockets.
test:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

unit-test:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --filter FoneAIBridgeTests

integration-test:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --filter IntegrationTests

# The real daemon bridging simulated calls through the built-in Asterisk simulator to the
# built-in AI test server, with a live view of the calls.
demo: build
	$(DEBUG_BIN)/foneai-sim demo --bridge $(DEBUG_BIN)/foneai-bridge

clean:
	rm -rf $(BUILD_DIR) .build-* out
