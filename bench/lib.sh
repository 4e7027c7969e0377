# Shared by bench/patch-latency.sh, bench/rss.sh and bench/start.sh (sourced,
# not run): builds the release binary and the harness, runs the harness, and
# on exit stops every process started here, by PID.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  # The harness stops its rollbackd children itself; any left after a crash
  # or a SIGKILL of the harness are in its PID file.
  if [ -f "$work/pids" ]; then
    while read -r p; do
      if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = rollbackd ]; then
        kill "$p" 2>/dev/null || true
      fi
    done <"$work/pids"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --locked --bin rollbackd --example service_bench >&2

# Runs the harness (examples/service_bench) with its arguments.
bench() {
  target/release/examples/service_bench --rollbackd target/release/rollbackd \
    --work-dir "$work" --pid-file "$work/pids" "$@" &
  pids+=($!)
  wait "$!"
}
