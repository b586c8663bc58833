#!/usr/bin/env bash
# Side-by-side ingest benchmark: the same MQTT QoS 1 load against a plain Mosquitto broker and
# against Vigil (acknowledging only after durable commit), in one run. Prints messages/s,
# publish→ack latency percentiles and the throughput ratio.
#   bench/ingest.sh [vigil bench flags, e.g. --devices 200 --window 16 --duration 30]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || {
  echo "installing mosquitto (the reference broker)"; apt-get update -qq && apt-get install -y -qq mosquitto; }
cargo build --release --locked -q -p vigil
exec ./target/release/vigil bench "$@"
