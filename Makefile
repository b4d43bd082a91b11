# Every target runs from a clean clone with Go; test-kafka also needs Java 17
# and Maven (the broker comes from Maven Central), smoke-kcat also kcat.
SHELL   := /bin/bash
GO      ?= go
BROKER  := tools/kafka/broker.sh

.PHONY: all build test vet test-kafka smoke-kcat bench bench-leadspace dev fuzz clean

all: build test

build:
	$(GO) build -o .build/bin/ ./cmd/...

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Unit tests and the integration suite on the in-process broker (kfake),
# under the race detector: the pipeline is concurrent by design.
test: vet
	$(GO) test -race -count=1 ./...

# The same integration suite against a real Apache Kafka 4.4.0 broker,
# started here without Docker and always stopped afterwards.
test-kafka:
	@set -e; trap '$(BROKER) stop' EXIT; \
	eval "$$($(BROKER) start)"; export KAFKA_BOOTSTRAP; \
	echo "integration suite against Apache Kafka at $$KAFKA_BOOTSTRAP"; \
	$(GO) test -count=1 -v ./processor/...

# kcat, a client we did not write, checks what the service puts on the topics.
smoke-kcat: build
	@set -e; trap '$(BROKER) stop' EXIT; \
	eval "$$($(BROKER) start)"; export KAFKA_BOOTSTRAP; \
	tools/kcat-smoke.sh

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

# Leadspace tiers against the simulator at 30 TPS and 120 ms: single vs bulk.
bench-leadspace:
	$(GO) test -run '^$$' -bench Tiers -benchtime 1x ./leadspace/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeProfile -fuzztime 30s ./schemas/

dev:
	$(GO) run ./cmd/enricher dev

clean:
	-$(BROKER) stop
	rm -rf .build
