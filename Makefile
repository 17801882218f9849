# softprohub — the two commands a newcomer needs are `make run` and `make test`.
GO       ?= go
BIN      := bin
PKGS     := ./...
# Packages that must stay free of drivers (see docs/architecture.md).
PURE     := ./domain/... ./ingest/... ./projections/...
FORBIDDEN := github.com/jackc/pgx|github.com/redis/go-redis|github.com/twmb/franz-go|github.com/IBM/sarama|github.com/ThreeDotsLabs/watermill|github.com/go-chi/chi

.PHONY: build run test test-unit lint fmt bench-ingest bench-project bench-api bench-sync bench-replay clean

build:
	$(GO) build -o $(BIN)/ ./cmd/...

## run: the whole system in one process (embedded broker, local Postgres and Redis)
run: build
	./$(BIN)/softprohub serve --dev

## test: unit and integration tests against real Postgres, Redis and the embedded broker
test:
	$(GO) test -count=1 -timeout 20m $(PKGS)

test-unit:
	$(GO) test -count=1 -short ./domain/... ./ingest/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@bad=$$($(GO) list -deps $(PURE) | grep -E '^($(FORBIDDEN))' || true); \
	if [ -n "$$bad" ]; then echo "domain, ingest and projections must not import drivers:"; echo "$$bad"; exit 1; fi
	@echo "lint ok"

fmt:
	gofmt -w $$(git ls-files '*.go')

## bench-ingest: webhook ingest throughput and latency against a bare HMAC ceiling
bench-ingest:
	bash scripts/bench-ingest.sh

## bench-project: live projection drain rate, end-to-end latency at 500/s, and a COPY ceiling
bench-project: build
	./$(BIN)/softprosim bench-project $(BENCH_PROJECT_ARGS)

## bench-api: query API latency and throughput over 1,000,000 projected events
bench-api:
	bash scripts/bench-api.sh

## bench-replay: rebuild from 1,000,000 events (events/s, peak heap, time) against the live path and a COPY ceiling
bench-replay:
	bash scripts/bench-replay.sh

## bench-sync: time to sync 100 and 10,000 records of each type from softprosim, rate limit off and at 100 req/min
bench-sync:
	bash scripts/bench-sync.sh

clean:
	rm -rf $(BIN)
