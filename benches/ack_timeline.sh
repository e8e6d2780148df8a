#!/usr/bin/env bash
# Where an acknowledgement's time goes at concurrency 1, step by step, from the gateway's own
# syscalls: `perf record` of the syscalls and context switches of `serve` (pinned to CPU 1)
# while `load --connections 1 --concurrency 1` (CPU 0) files the samples, then, for each
# filing, the time between its request's first read, the hand-over to the writer (the futex
# wake), the log's write, its fdatasync, the writer's answer (the eventfd wake) and the
# response's write. Medians; `--echo` times the echo server's read-to-response for comparison.
#
#   benches/ack_timeline.sh [--echo]
#
# Needs perf (linux-perf) and the permission to trace (root, or perf_event_paranoid <= 1).
# Tracing adds a few microseconds to each syscall: compare steps with each other, not with the
# figures of benches/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 1; }
BIN=target/release/aci-gateway
WORK=target/ack-timeline
cargo build --release --locked -q --features testing --bin aci-gateway
rm -rf "$WORK" && mkdir -p "$WORK/json"
cp schemas/examples/*.json "$WORK/json/" && rm -f "$WORK/json/"*large*
WORK=$(cd "$WORK" && pwd)
sed -e "s|data_dir = \"../var/data\"|data_dir = \"$WORK/data\"|" \
    -e "s|^rate_per_carrier = .*|rate_per_carrier = 0|" \
    -e "s|^max_in_flight_per_carrier = .*|max_in_flight_per_carrier = 0|" \
    -e "s|dev_pki = \"../var/pki\"|dev_pki = \"$WORK/pki\"|" \
    config/gateway.toml > "$WORK/gateway.toml"

RUST_LOG=warn taskset -c 1 "$BIN" serve --config "$WORK/gateway.toml" \
  --ready-file "$WORK/ready" "$@" > "$WORK/serve.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
until [ -f "$WORK/ready" ]; do
  kill -0 "$server" 2>/dev/null || { echo "the gateway died; see $WORK/serve.log" >&2; exit 1; }
  sleep 0.01
done
taskset -c 0 "$BIN" load --config "$WORK/gateway.toml" --connections 1 --concurrency 1 \
  --duration 5 --payloads "$WORK/json" > "$WORK/load.txt" 2>&1 &
loader=$!
sleep 2
perf record -q -e raw_syscalls:sys_enter,raw_syscalls:sys_exit,sched:sched_switch \
  -p "$server" -o "$WORK/perf.data" -- sleep 1 > /dev/null 2>&1
wait "$loader"
perf script -i "$WORK/perf.data" -F tid,time,event,trace 2>/dev/null > "$WORK/trace.txt"

python3 - "$WORK/trace.txt" <<'EOF'
import re, statistics, sys

# x86-64 syscall numbers.
PWRITE, WRITE, WRITEV, RECVFROM, FDATASYNC, FUTEX = 18, 1, 20, 45, 75, 202
events = []
for line in open(sys.argv[1]):
    m = re.match(r"\s*(\d+)\s+([\d.]+):\s+(\S+)\s+(.*)", line)
    if not m:
        continue
    tid, t, event, rest = m.groups()
    nr = re.search(r"NR (\d+)", rest)
    events.append((int(tid), float(t) * 1e6, event.startswith("raw_syscalls:sys_enter"),
                   event.startswith("raw_syscalls:sys_exit"), int(nr.group(1)) if nr else None))
worker = next((e[0] for e in events if e[4] == WRITEV), None)
writer = next((e[0] for e in events if e[4] == FDATASYNC), None)
if worker is None:
    sys.exit("no response was written while tracing")
steps = [
    ("A", "request read (first recvfrom)"),
    ("B", "handed to the writer (futex wake)"),
    ("L", "log write"),
    ("C", "fdatasync begins"),
    ("D", "fdatasync ends"),
    ("E", "answer to the worker (eventfd write)"),
    ("F", "response written (writev)"),
]
cycles, cur = [], {}
for tid, t, enter, exit_, nr in events:
    if tid == worker and enter and nr == RECVFROM and "A" not in cur:
        cur["A"] = t
    elif writer is None and tid == worker and enter and nr == WRITEV and "A" in cur:
        cur["F"] = t  # the echo server: read, then respond
        cycles.append(cur)
        cur = {}
    elif tid == worker and enter and nr == FUTEX and "A" in cur and "B" not in cur:
        cur["B"] = t
    elif tid == writer and enter and nr == PWRITE and "B" in cur and "L" not in cur:
        cur["L"] = t
    elif tid == writer and enter and nr == FDATASYNC and "L" in cur and "C" not in cur:
        cur["C"] = t
    elif tid == writer and exit_ and nr == FDATASYNC and "C" in cur and "D" not in cur:
        cur["D"] = t
    elif tid == writer and enter and nr == WRITE and "D" in cur and "E" not in cur:
        cur["E"] = t
    elif tid == worker and enter and nr == WRITEV and "E" in cur:
        cur["F"] = t
        cycles.append(cur)
        cur = {}
if len(cycles) < 2:
    sys.exit("too few filings traced")
median = lambda values: statistics.median(values) if values else float("nan")
print(f"{len(cycles)} requests traced; medians (us):")
keys = [k for k, _ in steps if k in cycles[0]]
# The echo server has no steps between reading and responding.
for a, b in zip(keys, keys[1:]) if len(keys) > 2 else []:
    label = f"{dict(steps)[a]} -> {dict(steps)[b]}"
    print(f"  {label:75s} {median([c[b] - c[a] for c in cycles]):7.1f}")
print(f"  {'server: request read -> response written':75s} "
      f"{median([c['F'] - c['A'] for c in cycles]):7.1f}")
turnaround = [n["A"] - c["F"] for c, n in zip(cycles, cycles[1:])]
print(f"  {'client turnaround: response written -> next request read':75s} "
      f"{median(turnaround):7.1f}")
EOF
