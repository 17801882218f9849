#!/usr/bin/env bash
# bench-replay: rebuild from a log of 1,000,000 events over 100 integrations;
# prints events/s, peak heap and total time, the live path's events/s in the
# same run, and the COPY ceiling with the ratio. RUNS=n repeats it and prints
# the median of each figure. Extra flags go to softprosim via BENCH_REPLAY_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/ ./cmd/...
runs=${RUNS:-1}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for i in $(seq "$runs"); do
	echo "== run $i of $runs"
	./bin/softprosim bench-replay ${BENCH_REPLAY_ARGS:-} | tee -a "$out"
done
if [ "$runs" -gt 1 ]; then
	echo "== medians over $runs runs"
	grep '^BENCH ' "$out" | sed 's/^BENCH //' | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin]
print(json.dumps({k: round(statistics.median(r[k] for r in rows), 4) for k in rows[0]}))'
fi
