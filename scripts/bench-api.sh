#!/usr/bin/env bash
# bench-api: latency and throughput of the query API over 1,000,000 projected
# events (100 integrations, 30 days). The first run seeds the schema
# bench_api (a few minutes); later runs reuse it. Services as for the tests:
# TEST_DATABASE_URL, TEST_REDIS_URL, else the local servers.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench '^BenchmarkQueryAPI$' -benchtime 1x -count 1 -timeout 30m ./tests/ | grep -v -E '^(goos|goarch|pkg|cpu|PASS|ok|BenchmarkQueryAPI)'
