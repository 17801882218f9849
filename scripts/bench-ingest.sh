#!/usr/bin/env bash
# bench-ingest.sh measures softprohub's webhook ingest (verify, rate limit,
# dedup, append with acks=all, answer) against a ceiling: a bare net/http
# server that only verifies the HMAC (softprosim ceiling). Called by
# `make bench-ingest`.
#
# In order, on this machine:
#   1. the ceiling, flat out, BENCH_RUNS times, before the service starts, so
#      the ceiling has the machine to itself;
#   2. the service (`softprohub serve --dev`: embedded broker in a fresh
#      DATA_DIR, Postgres and Redis from the local servers) with BENCH_INTEGRATIONS
#      integrations whose ids are unique to this run, after a short warm-up:
#      (b) BENCH_RATE events/s open loop for BENCH_DURATION, for latency;
#      (a) flat out, BENCH_RUNS times, for throughput (median).
#      Before each measured run it waits for the service to go idle, so the
#      projections catching up on the previous run do not steal its CPU.
# Then it prints a summary against the goals and a final `BENCH {json}` line.
#
# The exit status is 0 when the benchmark ran, whatever the figures; with
# BENCH_STRICT=1 a missed goal exits 1. Everything it starts is stopped on
# exit.
#
# Settings (environment):
#   BENCH_DURATION      length of each measured run (20s)
#   BENCH_RUNS          flat-out runs per target; the median is reported (3)
#   BENCH_CONCURRENCY   requests in flight flat out (64)
#   BENCH_INTEGRATIONS  integrations the load spreads over (50)
#   BENCH_RATE          fixed rate of the latency run, events/s (1000)
#   BENCH_WARMUP        warm-up at half BENCH_RATE before measuring (3s)
#   BENCH_SETTLE_MAX    longest wait for the service to go idle, seconds (60)
#   BENCH_DEDUP_TTL     the service's WEBHOOK_DEDUP_TTL, seconds (900)
#   BENCH_ROLES         serve --roles (ingest,api): the ingest role alone, as a
#                       split deployment runs it; set "ingest,api,project,schedule"
#                       to measure with the projectors catching up on the same cores
#   BENCH_DATABASE_URL  Postgres for the service; created if missing
#                       (postgres://postgres@127.0.0.1:5432/softprohub_bench?sslmode=disable)
#   BENCH_REDIS_URL     Redis for the service (redis://127.0.0.1:6379/0)
#   BENCH_DROP_DB       1 drops the bench database at the end (0)
#   BENCH_STRICT        1 exits 1 when a goal is missed (0)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BENCH_DURATION=${BENCH_DURATION:-20s}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-64}
BENCH_INTEGRATIONS=${BENCH_INTEGRATIONS:-50}
BENCH_RATE=${BENCH_RATE:-1000}
BENCH_WARMUP=${BENCH_WARMUP:-3s}
BENCH_SETTLE_MAX=${BENCH_SETTLE_MAX:-60}
BENCH_DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/softprohub_bench?sslmode=disable}
BENCH_REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}
BENCH_DROP_DB=${BENCH_DROP_DB:-0}
BENCH_STRICT=${BENCH_STRICT:-0}
BENCH_ROLES=${BENCH_ROLES:-ingest,api}

# Goals.
GOAL_RATE=6000     # accepted/s flat out, at least
GOAL_P99_MS=15     # p99 at BENCH_RATE, below
GOAL_RATIO_PCT=8   # service / ceiling, at least

# Fixed bench values; never use them outside a benchmark.
JWT_SECRET_BENCH=bench-jwt-secret-not-for-production-0123456789
SECRETS_KEY_BENCH=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f

NONCE=$(printf '%04x%04x' $RANDOM $RANDOM)
ID_PREFIX="bench-$NONCE-"
SECRET_PREFIX="bench-secret-$NONCE-"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-ingest.XXXXXX")
PIDS=()

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench-ingest: %s\n' "$*" >&2; exit 1; }

cleanup() {
	local status=$?
	set +e
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	if ((status != 0)); then
		for f in "$TMP"/service.log "$TMP"/ceiling.log; do
			if [[ -s $f ]]; then
				printf -- '--- last lines of %s\n' "${f##*/}" >&2
				tail -n 30 "$f" >&2
			fi
		done
	fi
	if [[ $BENCH_DROP_DB == 1 ]] && command -v psql >/dev/null; then
		psql "$(admin_url)" -qc "DROP DATABASE IF EXISTS \"$(db_name)\"" >/dev/null 2>&1 || true
	fi
	rm -rf "$TMP"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop PID: ends one process this script started and forgets it.
stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	local keep=() pid
	for pid in "${PIDS[@]}"; do [[ $pid == "$1" ]] || keep+=("$pid"); done
	PIDS=("${keep[@]+"${keep[@]}"}")
}

# free_port prints a loopback port nothing listens on.
free_port() {
	local port _
	for _ in $(seq 100); do
		port=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	die "no free port found"
}

db_name() { local u=${BENCH_DATABASE_URL%%\?*}; echo "${u##*/}"; }
admin_url() {
	local u=${BENCH_DATABASE_URL%%\?*} q=""
	[[ $BENCH_DATABASE_URL == *\?* ]] && q="?${BENCH_DATABASE_URL#*\?}"
	echo "${u%/*}/postgres$q"
}

ensure_db() {
	if ! command -v psql >/dev/null; then
		log "psql not found: assuming database $(db_name) exists"
		return
	fi
	local db
	db=$(db_name)
	if ! psql "$(admin_url)" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
		log "creating database $db"
		psql "$(admin_url)" -qc "CREATE DATABASE \"$db\"" >/dev/null
	fi
}

# wait_ready URL PID: waits up to 90 s for URL/readyz to answer 200.
wait_ready() {
	local deadline=$((SECONDS + 90))
	until curl -fsS -o /dev/null --max-time 2 "$1/readyz" 2>/dev/null; do
		kill -0 "$2" 2>/dev/null || die "service exited before it was ready"
		((SECONDS < deadline)) || die "service not ready after 90 s ($1/readyz)"
		sleep 0.2
	done
}

# wait_quiet PID: waits until the process uses under a tenth of a core for
# a whole second, at most BENCH_SETTLE_MAX seconds.
wait_quiet() {
	local stat=/proc/$1/stat hz before after start=$SECONDS
	if [[ ! -r $stat ]]; then
		sleep 2
		return
	fi
	hz=$(getconf CLK_TCK)
	while ((SECONDS - start < BENCH_SETTLE_MAX)); do
		before=$(awk '{print $14 + $15}' "$stat")
		sleep 1
		after=$(awk '{print $14 + $15}' "$stat")
		if (((after - before) * 10 < hz)); then
			log "service idle after $((SECONDS - start)) s"
			return
		fi
	done
	log "service still busy after ${BENCH_SETTLE_MAX} s; measuring anyway"
}

# load LABEL URL ARGS...: runs softprosim load, shows its report and leaves
# the RESULT json in $TMP/LABEL.json.
load() {
	local label=$1 url=$2
	shift 2
	./bin/softprosim load --url "$url" --integrations "$BENCH_INTEGRATIONS" \
		--id-prefix "$ID_PREFIX" --secret-prefix "$SECRET_PREFIX" --progress 0 "$@" \
		>"$TMP/$label.out" 2>"$TMP/$label.err" ||
		{ cat "$TMP/$label.err" >&2; die "load run $label failed"; }
	sed -n 's/^/    /; /^    RESULT /!p' "$TMP/$label.out" >&2
	sed -n 's/^RESULT //p' "$TMP/$label.out" >"$TMP/$label.json"
	local json
	json=$(<"$TMP/$label.json")
	[[ -n $json ]] || die "load run $label printed no RESULT line"
	local fresh transport
	fresh=$(field "$json" freshRejected)
	transport=$(sed -E 's/.*"transportErrors":(\{[^}]*\}).*/\1/' <<<"$json")
	if ((fresh > 0)); then
		log "warning: $fresh valid events not accepted in $label: $(sed -E 's/.*"errorsByCode":(\{[^}]*\}).*/\1/' <<<"$json") transport $transport"
	fi
}

# field JSON NAME prints a top-level number or boolean of a RESULT line.
field() { sed -E -n "s/.*\"$2\":(-?[0-9.eE+]+|true|false)[,}].*/\1/p" <<<"$1"; }

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# flat_runs LABEL URL [ARGS...]: BENCH_RUNS flat-out runs; leaves their
# accepted/s in RATES and the most requests one run sent in MOST_SENT.
flat_runs() {
	local label=$1 url=$2 i json
	shift 2
	RATES=()
	MOST_SENT=0
	for ((i = 1; i <= BENCH_RUNS; i++)); do
		if [[ -n ${SERVICE_PID:-} ]]; then wait_quiet "$SERVICE_PID"; fi
		log "$label flat out, run $i/$BENCH_RUNS ($BENCH_DURATION, concurrency $BENCH_CONCURRENCY)"
		load "$label-$i" "$url" --duration "$BENCH_DURATION" --concurrency "$BENCH_CONCURRENCY" --seed "$i" "$@"
		json=$(<"$TMP/$label-$i.json")
		RATES+=("$(field "$json" acceptedPerSec)")
		MOST_SENT=$((MOST_SENT > $(field "$json" sent) ? MOST_SENT : $(field "$json" sent)))
		if [[ $(field "$json" poolExhausted) == true ]]; then
			log "warning: $label run $i used up its request pool and stopped early; its rate is still valid"
		fi
	done
}

command -v curl >/dev/null || die "curl is required"
((BENCH_RUNS >= 1)) || die "BENCH_RUNS must be at least 1"

log "building bin/softprohub and bin/softprosim"
go build -o bin/ ./cmd/...

# 1. Ceiling, alone on the machine.
./bin/softprosim ceiling --addr 127.0.0.1:0 --integrations "$BENCH_INTEGRATIONS" \
	--id-prefix "$ID_PREFIX" --secret-prefix "$SECRET_PREFIX" >"$TMP/ceiling.out" 2>"$TMP/ceiling.log" &
CEILING_PID=$!
PIDS+=("$CEILING_PID")
for _ in $(seq 100); do
	grep -q '^LISTEN ' "$TMP/ceiling.out" && break
	kill -0 "$CEILING_PID" 2>/dev/null || die "ceiling exited"
	sleep 0.05
done
CEILING_URL="http://$(awk '/^LISTEN /{print $2; exit}' "$TMP/ceiling.out")"
[[ $CEILING_URL != http:// ]] || die "ceiling printed no LISTEN line"
log "ceiling listening on $CEILING_URL; warming up"
load ceiling-warmup "$CEILING_URL" --duration "$BENCH_WARMUP" --concurrency "$BENCH_CONCURRENCY" --seed 100
flat_runs ceiling "$CEILING_URL"
CEILING_RATES=("${RATES[@]}")
# The service cannot outrun the ceiling: pre-generate half as much again as
# the ceiling's busiest run rather than the generator's generous default.
SERVICE_POOL=$((MOST_SENT * 3 / 2 + 1000))
stop "$CEILING_PID"

# 2. Service.
ensure_db
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
SERVICE_ENV=(
	DATA_DIR="$TMP/data"
	HTTP_ADDR="127.0.0.1:$PORT"
	DATABASE_URL="$BENCH_DATABASE_URL"
	REDIS_URL="$BENCH_REDIS_URL"
	JWT_SECRET="$JWT_SECRET_BENCH"
	SECRETS_KEY="$SECRETS_KEY_BENCH"
	LOG_LEVEL=warn
	# Each run's integrations are new, so its fingerprints are never needed
	# again: kept the default 24 h, a few runs leave millions of keys in the
	# shared Redis. The TTL does not change what a webhook costs.
	WEBHOOK_DEDUP_TTL="${BENCH_DEDUP_TTL:-900}"
)
mkdir -p "$TMP/data"
SERVE_ARGS=(serve --dev)
if [[ -n $BENCH_ROLES ]]; then SERVE_ARGS+=(--roles "$BENCH_ROLES"); fi
log "starting softprohub ${SERVE_ARGS[*]} on $URL (DATA_DIR $TMP/data)"
env "${SERVICE_ENV[@]}" ./bin/softprohub "${SERVE_ARGS[@]}" >"$TMP/service.log" 2>&1 &
SERVICE_PID=$!
PIDS+=("$SERVICE_PID")
wait_ready "$URL" "$SERVICE_PID"

TOKEN=$(env "${SERVICE_ENV[@]}" ./bin/softprohub token --role admin --ttl 1h)
[[ -n $TOKEN ]] || die "softprohub token printed nothing"
log "creating $BENCH_INTEGRATIONS integrations ${ID_PREFIX}0 … ${ID_PREFIX}$((BENCH_INTEGRATIONS - 1))"
for ((i = 0; i < BENCH_INTEGRATIONS; i++)); do
	code=$(curl -sS -o "$TMP/create.out" -w '%{http_code}' -X POST "$URL/api/v1/integrations/softpro" \
		-H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
		-d "{\"id\":\"$ID_PREFIX$i\",\"organizationId\":\"org-bench\",\"webhookSecret\":\"$SECRET_PREFIX$i\",\"ingestRateLimit\":10000000}")
	case $code in
	2?? | 409) ;;
	*) die "create integration $ID_PREFIX$i: HTTP $code: $(cat "$TMP/create.out")" ;;
	esac
done

log "service warm-up at $((BENCH_RATE / 2))/s for $BENCH_WARMUP"
load service-warmup "$URL" --rate "$((BENCH_RATE / 2))" --duration "$BENCH_WARMUP" --seed 200

# (b) Latency at a fixed rate, open loop.
wait_quiet "$SERVICE_PID"
log "service at $BENCH_RATE/s for $BENCH_DURATION (open loop)"
load service-rate "$URL" --rate "$BENCH_RATE" --duration "$BENCH_DURATION" --seed 300
RATE_JSON=$(<"$TMP/service-rate.json")

# (a) Throughput flat out.
flat_runs service "$URL" --pool "$SERVICE_POOL"
SERVICE_RATES=("${RATES[@]}")

# Summary.
CEILING_MEDIAN=$(median "${CEILING_RATES[@]}")
SERVICE_MEDIAN=$(median "${SERVICE_RATES[@]}")
RATIO_PCT=$(awk -v s="$SERVICE_MEDIAN" -v c="$CEILING_MEDIAN" 'BEGIN {printf "%.1f", (c > 0 ? 100 * s / c : 0)}')
P50=$(field "$RATE_JSON" p50Ms)
P95=$(field "$RATE_JSON" p95Ms)
P99=$(field "$RATE_JSON" p99Ms)
RATE_ACCEPTED=$(field "$RATE_JSON" acceptedPerSec)
RATE_SENT=$(field "$RATE_JSON" sent)
RATE_OK=$(field "$RATE_JSON" accepted)

verdict() { if awk "BEGIN {exit !($1)}"; then echo PASS; else echo MISS; fi; }
V_RATE=$(verdict "$SERVICE_MEDIAN >= $GOAL_RATE")
V_P99=$(verdict "$P99 < $GOAL_P99_MS && $RATE_OK == $RATE_SENT")
V_RATIO=$(verdict "$RATIO_PCT >= $GOAL_RATIO_PCT")

{
	echo
	echo "softprohub ingest benchmark: $(nproc 2>/dev/null || echo '?') CPUs shared by everything, $BENCH_DURATION runs,"
	echo "$BENCH_INTEGRATIONS integrations, concurrency $BENCH_CONCURRENCY flat out, median of $BENCH_RUNS"
	echo
	printf '%-34s %14s %12s  %s\n' "" measured goal ""
	printf '%-34s %12s/s %12s  %s\n' "service flat out" "$SERVICE_MEDIAN" ">= $GOAL_RATE/s" "$V_RATE"
	printf '%-34s %14s\n' "  runs" "${SERVICE_RATES[*]}"
	printf '%-34s %12s/s\n' "ceiling flat out (HMAC only)" "$CEILING_MEDIAN"
	printf '%-34s %14s\n' "  runs" "${CEILING_RATES[*]}"
	printf '%-34s %13s%% %12s  %s\n' "service / ceiling" "$RATIO_PCT" ">= $GOAL_RATIO_PCT%" "$V_RATIO"
	printf '%-34s %12s/s  (%s of %s accepted)\n' "service at $BENCH_RATE/s open loop" "$RATE_ACCEPTED" "$RATE_OK" "$RATE_SENT"
	printf '%-34s %11s ms\n' "  p50" "$P50"
	printf '%-34s %11s ms\n' "  p95" "$P95"
	printf '%-34s %11s ms %12s  %s\n' "  p99" "$P99" "< $GOAL_P99_MS ms" "$V_P99"
	echo
	printf 'BENCH {"serviceAcceptedPerSec":%s,"ceilingAcceptedPerSec":%s,"ratioPct":%s,"rate":%s,"p50Ms":%s,"p95Ms":%s,"p99Ms":%s,"serviceRuns":[%s],"ceilingRuns":[%s],"goalsMet":%s}\n' \
		"$SERVICE_MEDIAN" "$CEILING_MEDIAN" "$RATIO_PCT" "$BENCH_RATE" "$P50" "$P95" "$P99" \
		"$(IFS=,; echo "${SERVICE_RATES[*]}")" "$(IFS=,; echo "${CEILING_RATES[*]}")" \
		"$([[ "$V_RATE$V_P99$V_RATIO" == PASSPASSPASS ]] && echo true || echo false)"
}

if [[ $BENCH_STRICT == 1 && "$V_RATE$V_P99$V_RATIO" != PASSPASSPASS ]]; then
	exit 1
fi
