#!/usr/bin/env bash
# Instructions per filing, counted by callgrind: `serve` and `serve --echo` each take the same
# filings at 64 in flight (4 connections × 16), counted only after a warm-up, and the gateway's
# largest parts are listed inclusive, per filing. Counts do not depend on the machine's load, so
# two builds compare to a fraction of a percent where the throughput runs of benches/run.sh
# swing by several (a background task such as the scheduler's first read of the log can fall in
# or out of the counted window: look at its line before comparing totals).
#
#   benches/instructions.sh [json|xml] [FILINGS]
#
# Needs valgrind (apt-get install valgrind). Under valgrind SHA-256 takes its portable code,
# not the CPU's SHA instructions: its count here is several times what it costs natively.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
MODE=${1:-json}
FILINGS=${2:-3000}
BIN=target/release/aci-gateway
WORK=target/instructions
cargo build --release --locked -q --features testing --bin aci-gateway
rm -rf "$WORK" && mkdir -p "$WORK/payloads"
cp schemas/examples/*."$MODE" "$WORK/payloads/" && rm -f "$WORK/payloads/"*large*
WORK=$(cd "$WORK" && pwd)

server=
trap '[ -n "$server" ] && kill -9 "$server" 2> /dev/null; true' EXIT

count() { # name, serve flags...
  local name=$1; shift
  rm -rf "$WORK/data" "$WORK/ready"
  sed -e "s|data_dir = \"../var/data\"|data_dir = \"$WORK/data\"|" \
      -e "s|^rate_per_carrier = .*|rate_per_carrier = 0|" \
      -e "s|^max_in_flight_per_carrier = .*|max_in_flight_per_carrier = 0|" \
      -e "s|dev_pki = \"../var/pki\"|dev_pki = \"$WORK/pki\"|" \
      config/gateway.toml > "$WORK/gateway.toml"
  RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
      --callgrind-out-file="$WORK/$name.out" "$BIN" serve --config "$WORK/gateway.toml" \
      --ready-file "$WORK/ready" "$@" > "$WORK/$name.log" 2>&1 &
  server=$!
  until [ -f "$WORK/ready" ]; do
    kill -0 "$server" 2> /dev/null || { echo "serve $* failed: see $WORK/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  "$BIN" load --config "$WORK/gateway.toml" --count 300 --payloads "$WORK/payloads" > /dev/null 2>&1
  callgrind_control -i on "$server" > /dev/null 2>&1
  "$BIN" load --config "$WORK/gateway.toml" --count "$FILINGS" --payloads "$WORK/payloads" \
      --json > "$WORK/$name.load" 2> /dev/null
  callgrind_control -i off "$server" > /dev/null 2>&1
  kill -TERM "$server"; wait "$server" || true
  server=
  # Every filing counted must have filed: the figures are per filing.
  grep -q '"errors": {}' "$WORK/$name.load" \
    || { echo "$name: some filings failed, see $WORK/$name.load" >&2; exit 1; }
}

per_filing() { # callgrind output -> instructions per filing
  callgrind_annotate "$1" 2>/dev/null | awk -v n="$FILINGS" \
      '/PROGRAM TOTALS/ { gsub(",", "", $1); printf "%.1fk", $1 / n / 1000; exit }'
}

count echo --echo
count gateway
echo "instructions per $MODE filing: gateway $(per_filing "$WORK/gateway.out"), echo $(per_filing "$WORK/echo.out")"
echo "the gateway's own parts, inclusive, per filing:"
callgrind_annotate --inclusive=yes "$WORK/gateway.out" 2>/dev/null \
  | grep -E '(Validator::(accept|validate_xml)|Constraints::(check|check_data_set)|rules::check|Writer::commit_requests|Index::apply|writer::decide|record::seal|FilingService::file::\{\{closure\}\}|LogCursor>::read_heads)( \[|$)' \
  | awk -v n="$FILINGS" '{ c = $1; gsub(",", "", c); c += 0; sub(/ \[.*/, ""); sub(/.*\.rs:/, "")
                            if (c > most[$0]) most[$0] = c }
      END { for (f in most) printf "  %8.1fk  %s\n", most[f] / n / 1000, f }' \
  | sort -rn
