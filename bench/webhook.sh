#!/usr/bin/env bash
# Durable-ack throughput and latency of POST /webhook (rollbackd, journal in
# WAL with synchronous=FULL, worker running) against a bare axum handler that
# only parses the same real 3-alert payload. Both in the same run, on
# loopback; wrk shares the machine's cores with the server, so read the
# ratio, not the absolute numbers.
#
#   bash bench/webhook.sh [DURATION_SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-32}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --locked --bin rollbackd --example bare_parse >/dev/null
# ROLLBACKD_BIN: another build to compare (A/B against the same bare run).
ROLLBACKD_BIN=${ROLLBACKD_BIN:-target/release/rollbackd}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Starts a server in this shell (not a subshell, so the EXIT trap knows its
# pid and stops it), waits for its "addr=" log line, and stores the address
# in the variable named by $1.
start() {
  local var=$1 log=$2; shift 2
  "$@" >"$log" 2>&1 &
  pids+=($!)
  local addr=""
  for _ in $(seq 1 100); do
    addr=$(grep -o 'addr=[0-9.:]*' "$log" | sed -n 1p | cut -d= -f2 || true)
    [ -n "$addr" ] && { printf -v "$var" '%s' "$addr"; return; }
    sleep 0.1
  done
  echo "server did not start: $(cat "$log")" >&2; exit 1
}

export PAYLOAD=bench/payload-3-alerts.json
start bare "$work/bare.log" target/release/examples/bare_parse 127.0.0.1:0
# The "addr=" line comes from rollbackd::service::server (rollbackd::app in
# builds before the layers, kept for ROLLBACKD_BIN A/B runs against them).
# The acknowledgement path alone: journal durable, worker off.
start intake "$work/intake.log" env ROLLBACKD_LOG=warn,rollbackd::service::server=info,rollbackd::app=info \
  "$ROLLBACKD_BIN" serve --listen 127.0.0.1:0 --journal "$work/intake.db" \
  --rules rules --webhook-token bench-token --intake-only
# The whole service: the worker decides every alert meanwhile (no cluster:
# each rollback decision is journaled as not done and logged at ERROR).
start durable "$work/rollbackd.log" env ROLLBACKD_LOG=warn,rollbackd::service::server=info,rollbackd::app=info KUBECONFIG=/nonexistent \
  "$ROLLBACKD_BIN" serve --listen 127.0.0.1:0 --journal "$work/journal.db" \
  --rules rules --webhook-token bench-token

run() {
  local name=$1 addr=$2
  echo "== $name" >&2
  wrk -t2 -c"$connections" -d"${duration}s" --latency -s bench/post.lua "http://$addr/webhook" \
    | tee "$work/$name.txt" >&2
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$name.txt")
  p50=$(awk '$1=="50%" {print $2}' "$work/$name.txt")
  p99=$(awk '$1=="99%" {print $2}' "$work/$name.txt")
  non2xx=$(awk '/Non-2xx/ {print $4}' "$work/$name.txt")
  echo "$name $rps $p50 $p99 ${non2xx:-0}"
}

bare_line=$(run bare "$bare")
intake_line=$(run durable-intake-only "$intake")
durable_line=$(run durable-with-worker "$durable")
accepted=$(curl -s "http://$durable/metrics" | awk -F' ' '/^rollbackd_webhooks_total\{outcome="accepted"/ {print $2}')
# Mean writes per commit (rollbackd_journal_batch_size) of a server.
batch() {
  curl -s "http://$1/metrics" | awk '/^rollbackd_journal_batch_size_sum/ {s=$2}
    /^rollbackd_journal_batch_size_count/ {c=$2} END {if (c>0) printf "%.1f", s/c}'
}

echo
printf '%-28s %12s %10s %10s %8s\n' handler req/s p50 p99 non-2xx
for line in "$bare_line" "$intake_line" "$durable_line"; do
  set -- $line
  printf '%-28s %12s %10s %10s %8s\n' "$1" "$2" "$3" "$4" "$5"
done
b=$(echo "$bare_line" | awk '{print $2}')
i=$(echo "$intake_line" | awk '{print $2}'); d=$(echo "$durable_line" | awk '{print $2}')
echo "durable intake-only / bare throughput: $(awk -v d="$i" -v b="$b" 'BEGIN {printf "%.2f", d/b}')"
echo "durable with worker / bare throughput: $(awk -v d="$d" -v b="$b" 'BEGIN {printf "%.2f", d/b}')"
echo "webhooks journaled with worker (from /metrics): $accepted"
echo "mean writes per commit: intake-only $(batch "$intake"), with worker $(batch "$durable") (webhooks and the worker's completions)"
