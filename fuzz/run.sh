#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each, from the seeds in fuzz/seeds/ plus what
# earlier runs found in fuzz/corpus/. With FUZZ_RUNS=N instead, each target runs exactly N inputs
# from the seeds alone with a fixed random seed: the same run every time, which is what CI does
# (a finding there is a real regression, never luck). Works on the stable toolchain (RUSTC_BOOTSTRAP lets
# cargo fuzz pass its instrumentation flags) without a sanitizer: the gateway forbids unsafe
# code, so what the fuzzers look for is panics, hangs and memory blow-ups. A finding is left in
# fuzz/artifacts/<target>/ and fails the run. Needs `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
declare -A seeds=(
  [xml_schema]=seeds/xml
  [xml_mapping]=seeds/xml
  [protobuf_constraints]=seeds/protobuf
  [log_record]=seeds/log_record
  [manifest_wire]=seeds/protobuf
)
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O -s none
for target in xml_schema xml_mapping protobuf_constraints log_record manifest_wire; do
  mkdir -p "corpus/$target"
  status=0
  if [ -n "${FUZZ_RUNS:-}" ]; then
    echo "fuzzing $target: $FUZZ_RUNS inputs from the seeds, random seed 1"
    corpus=$(mktemp -d)
    bound=(-seed=1 -runs="$FUZZ_RUNS")
  else
    echo "fuzzing $target for $seconds s"
    corpus="corpus/$target"
    bound=(-max_total_time="$seconds")
  fi
  cargo fuzz run -O -s none "$target" "$corpus" "${seeds[$target]}" -- \
    "${bound[@]}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    >"target/$target.log" 2>&1 || status=$?
  grep -E '^(Done|stat::number_of_executed_units|SUMMARY)|panicked' "target/$target.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "target/$target.log" >&2
    echo "fuzz target $target found a failure: see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
