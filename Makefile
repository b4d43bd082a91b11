# Every target runs from a clean clone with Go; test-kafka also needs Java 17
# and Maven (the broker comes from Maven Central), smoke-kcat also kcat.
SHELL   := /bin/bash
GO      ?= go
BROKER  := tools/kafka/broker.sh
# staticcheck, pinned; `go run` fetches it into the module cache once.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all help build test vet test-kafka smoke-kcat test-faults bench bench-leadspace bench-backlog dev fuzz clean check-deploy

# Flags for the fault suite and the backlog benchmark, e.g.
#   make test-faults FAULTS_FLAGS="--report-only --scenarios kill-loop"
#   make bench-backlog BENCH_FLAGS="--sizes 100000 --cases 1p1i,trickle"
FAULTS_FLAGS ?=
BENCH_FLAGS  ?=

all: build test

help:
	@echo "make build           build enricher and leadspace-sim into .build/bin"
	@echo "make test            vet, staticcheck, gofmt, unit and integration tests on the in-process broker (-race)"
	@echo "make test-kafka      the integration suite against Apache Kafka 4.4.0 (Java 17, Maven)"
	@echo "make smoke-kcat      kcat checks a real broker and a running enricher"
	@echo "make test-faults     black-box fault suite on Apache Kafka 4.4.0: broker kill -9, Leadspace 503s,"
	@echo "                     SIGKILL loop, rebalance churn, shared token, consent withdrawn in bulk mode;"
	@echo "                     exits 1 when a check fails (FAULTS_FLAGS=\"--report-only\" to only report,"
	@echo "                     --ci for the shorter CI preset, -h for every flag: .build/bin/faults suite -h)"
	@echo "make bench-backlog   backlog benchmark on Apache Kafka 4.4.0: 100,000 and 1,000,000 profiles, naive"
	@echo "                     loop, 1, 2 and 4 programs, 1-2 instances, fairness, restart, replay, trickle latency (BENCH_FLAGS)"
	@echo "make bench           in-process benchmarks; make bench-leadspace: the Leadspace client alone"
	@echo "make fuzz            fuzz the profile decoder for 30 s"
	@echo "make dev             everything embedded, with demo data"
	@echo "make check-deploy    Helm chart rendered and schema-checked, alert rules through promtool, AsyncAPI,"
	@echo "                     dashboard, alerts and compose against the code (needs promtool: apt-get install prometheus)"

build:
	$(GO) build -o .build/bin/ ./cmd/...

vet:
	$(GO) vet ./...
	$(STATICCHECK) ./...
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

# The black-box fault suite (issues 8 and 11): real broker, simulator,
# registry and enricher processes; see tools/faults/README.md. Always stops
# the broker, also when the suite fails or is interrupted.
test-faults: build
	@set -e; trap '$(BROKER) stop >/dev/null 2>&1 || true' EXIT; \
	$(GO) build -o .build/bin/ ./tools/faults; \
	.build/bin/faults suite $(FAULTS_FLAGS)

# Backlog throughput, memory, restart and trickle latency on the real broker
# with the shipped defaults of enricher run (issue 10); about 30 minutes.
bench-backlog: build
	@set -e; trap '$(BROKER) stop >/dev/null 2>&1 || true' EXIT; \
	$(GO) build -o .build/bin/ ./tools/faults; \
	.build/bin/faults bench $(BENCH_FLAGS)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

# Leadspace tiers against the simulator at 30 TPS and 120 ms: single vs bulk.
bench-leadspace:
	$(GO) test -run '^$$' -bench Tiers -benchtime 1x ./leadspace/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeProfile -fuzztime 30s ./schemas/

dev:
	$(GO) run ./cmd/enricher dev

# What operators deploy with (issue 20): promtool checks the rules and runs
# their unit tests; the chart is rendered with Helm's engine and decoded
# strictly into the Kubernetes API types (module deploy/); the contracts are
# held to the code and to a running service.
check-deploy:
	promtool check rules deploy/prometheus/alerts.yaml
	promtool test rules deploy/prometheus/alerts_test.yaml
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 ./...
	$(GO) test -count=1 ./cmd/enricher -run '(?i)(asyncapi|dashboard|alert|chart|manifest|compose)' 

clean:
	-$(BROKER) stop
	rm -rf .build
