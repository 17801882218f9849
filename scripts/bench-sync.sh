#!/usr/bin/env bash
# bench-sync: time to sync 100 and 10,000 records of each type from the
# simulated SoftPro API (softprosim), with its rate limit off and with
# 100 requests/min. Services: TEST_DATABASE_URL / TEST_REDIS_URL, else the
# local servers. Extra arguments go to softprosim bench-sync.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/ ./cmd/softprosim
db="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/softprohub_bench?sslmode=disable}"
redis="${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
exec ./bin/softprosim bench-sync --database-url "$db" --redis-url "$redis" "$@"
