#!/usr/bin/env bash
# The cross-language test: Go publishes N messages to xlang.in (each in its own OpenTelemetry
# span), Python consumes them and republishes each to xlang.out inside its consumer span, and
# TypeScript consumes xlang.out. check.py then checks that every payload reached TypeScript
# exactly once, in Go's publish order (per ordering key; with the default single key, in total
# order), with its attributes carried over plus relayed_by=python, and that one trace id runs
# from the Go producer span to the TypeScript consumer span; that the spans of the three clients
# and of the broker (exported over OTLP to otlp_sink.py) carry the same attribute names, those
# of docs/clients.md; and, from the broker's stats, that each topic holds N messages and both
# subscriptions acked them all.
#
# It prepares what is missing (the broker build, the Python venv, the TypeScript client build),
# builds the Go publisher and the TypeScript consumer into test/cross-language/dist/
# (gitignored), starts a broker on 127.0.0.1 with a temporary SQLite store, runs the three
# programs concurrently with timeouts, and stops the broker. The whole run is bounded by
# XLANG_BUDGET_S seconds (default 115). The last line is "1 passed, 0 failed" or
# "0 passed, 1 failed"; the exit status is non-zero on failure.
#
# Environment: XLANG_N (messages, default 50), XLANG_KEYS (ordering keys, default 1),
# XLANG_BUDGET_S, XLANG_KEEP=1 (keep the work directory with every program's output).
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
N="${XLANG_N:-50}"
KEYS="${XLANG_KEYS:-1}"
BUDGET="${XLANG_BUDGET_S:-115}"
began=$SECONDS
bin="$here/dist"
py="$repo/clients/python/.venv/bin/python"
broker_js="$repo/dist/src/cli/main.js"
work="$(mktemp -d "${TMPDIR:-/tmp}/nervebus-xlang.XXXXXX")"
broker_pid=""
sink_pid=""
job_pids=()

say() { printf '[cross-language] %s\n' "$*"; }

# Seconds left of the budget.
remaining() { echo $((BUDGET - (SECONDS - began))); }

# The smaller of $1 and what is left of the budget once $2 seconds are kept for later steps.
limit() {
  local max=$1 left
  left=$(($(remaining) - $2))
  ((left < max)) && max=$left
  echo "$max"
}

# Stops what this script started (by pid) and removes the work directory. Quiet: the summary
# line must stay the last line.
cleanup() {
  local pid
  for pid in "${job_pids[@]}" $sink_pid; do
    kill -TERM "$pid" 2>/dev/null
  done
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid" 2>/dev/null
    for _ in $(seq 40); do
      kill -0 "$broker_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$broker_pid" 2>/dev/null
  fi
  wait 2>/dev/null
  broker_pid=""
  sink_pid=""
  job_pids=()
  if [ "${XLANG_KEEP:-0}" = "1" ]; then
    say "kept $work"
  else
    rm -rf "$work"
  fi
}
trap 'cleanup >/dev/null 2>&1' EXIT
trap 'say "interrupted"; finish 1' INT TERM

# Prints the last lines of each log, for a failure.
show_logs() {
  local f
  for f in "$work"/*.err "$work"/*.log; do
    [ -s "$f" ] || continue
    say "--- last lines of $(basename "$f")"
    tail -n 15 "$f"
  done
}

finish() {
  local status=$1
  if [ "$status" -ne 0 ]; then show_logs; fi
  cleanup
  trap - EXIT
  say "took $((SECONDS - began)) s"
  if [ "$status" -eq 0 ]; then
    echo "1 passed, 0 failed"
    exit 0
  fi
  echo "0 passed, 1 failed"
  exit 1
}

fail() {
  say "FAIL: $*"
  finish 1
}

# Runs a preparation step with a time limit, its output going to prepare.log.
prepare() {
  local max=$1 what=$2
  shift 2
  # Keep 40 s of the budget for the test itself (which normally takes about 5 s).
  max=$(limit "$max" 40)
  ((max >= 5)) || fail "no time left in the ${BUDGET} s budget for: $what (run it once by hand, then retry)"
  say "$what"
  timeout --kill-after=5 "$max" "$@" >>"$work/prepare.log" 2>&1 || fail "$what (see prepare.log above)"
}

# -- prepare ---------------------------------------------------------------------------------
cd "$repo" || fail "cd $repo"
if [ ! -f "$broker_js" ]; then
  prepare 90 "building the broker (tsc -p .)" npx --no-install tsc -p .
fi
prepare 90 "Python client venv (clients/python/scripts/setup.sh)" bash clients/python/scripts/setup.sh
if [ ! -f clients/ts/dist/index.js ]; then
  prepare 60 "building @nervebus/client (clients/ts)" npx --no-install tsc -p clients/ts
fi
prepare 60 "building the TypeScript consumer" npx --no-install tsc -p test/cross-language
prepare 90 "building the Go publisher" bash -c 'cd "$1/go" && go build -o "$1/dist/publish" .' _ "$here"

# -- OTLP sink for the broker's spans ---------------------------------------------------------
"$py" "$here/otlp_sink.py" --out "$work/broker-spans.jsonl" --port-file "$work/otlp.port" \
  2>"$work/otlp.err" &
sink_pid=$!
for _ in $(seq 100); do
  [ -s "$work/otlp.port" ] && break
  sleep 0.1
done
[ -s "$work/otlp.port" ] || fail "the OTLP sink did not start within 10 s"
otlp="http://127.0.0.1:$(cat "$work/otlp.port")/v1/traces"

# -- broker ----------------------------------------------------------------------------------
# The test's own settings win over NERVEBUS_* and OTEL_* variables of the environment.
unset_env=()
while IFS= read -r name; do unset_env+=(-u "$name"); done < <(compgen -e | grep -E '^(NERVEBUS|OTEL)_')
env "${unset_env[@]}" OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="$otlp" OTEL_BSP_SCHEDULE_DELAY=500 \
  node "$broker_js" serve --listen 127.0.0.1:0 --http-listen off \
  --store "sqlite:$work/nb.db" >"$work/broker.out" 2>"$work/broker.log" &
broker_pid=$!
addr=""
for _ in $(seq 100); do
  addr="$(grep -m1 -o 'nervebus listening on 127\.0\.0\.1:[0-9]*' "$work/broker.out" 2>/dev/null | sed 's/.* //')"
  [ -n "$addr" ] && break
  kill -0 "$broker_pid" 2>/dev/null || fail "the broker exited before listening"
  sleep 0.1
done
[ -n "$addr" ] || fail "the broker did not print its address within 10 s"
say "broker on $addr (sqlite store in $work)"

# -- the three programs, concurrently ----------------------------------------------------------
# The consumers subscribe from the earliest message, so they may start before or after Go.
say "Go → xlang.in → Python relay → xlang.out → TypeScript: $N messages, $KEYS ordering key(s)"
# Time for the programs: up to 45 s, keeping 22 s for the stats, the broker's stop and the checks.
t=$(limit 45 22)
((t >= 10)) || fail "no time left in the ${BUDGET} s budget to run the programs"
timeout --kill-after=5 "$t" "$py" "$here/relay.py" --addr "$addr" -n "$N" --timeout $((t - 5)) \
  --spans "$work/relay-spans.jsonl" >"$work/relay.jsonl" 2>"$work/relay.err" &
relay_pid=$!
job_pids+=("$relay_pid")
timeout --kill-after=5 "$t" node "$bin/consume.js" --addr "$addr" -n "$N" --timeout-ms $(((t - 5) * 1000)) \
  --spans "$work/ts-spans.jsonl" >"$work/ts.jsonl" 2>"$work/ts.err" &
ts_pid=$!
job_pids+=("$ts_pid")
((t > 30)) && t=30
timeout --kill-after=5 "$t" "$bin/publish" -addr "$addr" -n "$N" -keys "$KEYS" -timeout "$((t - 5))s" \
  -spans "$work/go-spans.jsonl" >"$work/go.jsonl" 2>"$work/go.err"
go_status=$?
wait "$relay_pid"
relay_status=$?
wait "$ts_pid"
ts_status=$?
job_pids=()
say "exit status: Go publisher $go_status, Python relay $relay_status, TypeScript consumer $ts_status" \
  "(lines: $(wc -l <"$work/go.jsonl"), $(wc -l <"$work/relay.jsonl"), $(wc -l <"$work/ts.jsonl"))"

status=0
for topic in in out; do
  timeout 5 node "$broker_js" stats "xlang.$topic" --server "$addr" >"$work/$topic-stats.json" 2>>"$work/stats.err" ||
    status=1
done

# SIGTERM stops the broker gracefully, with exit status 0.
kill -TERM "$broker_pid"
for _ in $(seq 40); do
  kill -0 "$broker_pid" 2>/dev/null || break
  sleep 0.2
done
if kill -0 "$broker_pid" 2>/dev/null; then
  say "FAIL: the broker did not stop within 8 s of SIGTERM"
  status=1
else
  wait "$broker_pid"
  broker_status=$?
  broker_pid=""
  if [ "$broker_status" -ne 0 ]; then
    say "FAIL: the broker exited with status $broker_status after SIGTERM"
    status=1
  fi
fi

# -- checks ----------------------------------------------------------------------------------
if [ "$go_status" -ne 0 ] || [ "$relay_status" -ne 0 ] || [ "$ts_status" -ne 0 ]; then
  say "FAIL: a program failed or timed out (124 = timeout)"
  status=1
fi
"$py" "$here/check.py" --n "$N" --go "$work/go.jsonl" --relay "$work/relay.jsonl" --ts "$work/ts.jsonl" \
  --in-stats "$work/in-stats.json" --out-stats "$work/out-stats.json" \
  --go-spans "$work/go-spans.jsonl" --relay-spans "$work/relay-spans.jsonl" \
  --ts-spans "$work/ts-spans.jsonl" --broker-spans "$work/broker-spans.jsonl" || status=1
finish "$status"
