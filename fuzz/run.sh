#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each, from the seeds in fuzz/seeds/ plus what
# earlier runs found in fuzz/corpus/. Works on the stable toolchain (RUSTC_BOOTSTRAP lets
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
)
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O -s none
for target in xml_schema xml_mapping protobuf_constraints log_record; do
  mkdir -p "corpus/$target"
  echo "fuzzing $target for ${seconds}s"
  status=0
  cargo fuzz run -O -s none "$target" "corpus/$target" "${seeds[$target]}" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    >"target/$target.log" 2>&1 || status=$?
  grep -E '^(Done|stat::number_of_executed_units|SUMMARY)|panicked' "target/$target.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "target/$target.log" >&2
    echo "fuzz target $target found a failure: see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
