#!/usr/bin/env bash
# bench/throughput.sh — one worker, a trivial agent body (`value`, unchanged), N small records
# pre-produced; prints events/s of faust-rs and, on the same topic in the same run, of
# `kcat -C` consuming it raw, plus faust-rs's peak RSS.
#
#   bench/throughput.sh [RECORDS]      (default 1000000; needs scripts/kafka.sh start)
#
# Environment: KAFKA_PORT (default 9092), FAUST_RS (binary; default target/release/faust-rs,
# built if missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/free-port.sh
source scripts/lib/free-port.sh

records=${1:-1000000}
broker=127.0.0.1:${KAFKA_PORT:-9092}
binary=${FAUST_RS:-target/release/faust-rs}
[[ -x $binary ]] || cargo build --release --quiet
scripts/kafka.sh ping >/dev/null || { echo "no broker on $broker: run scripts/kafka.sh start" >&2; exit 1; }

run_id=bench-$$-$(date +%s)
work=$(mktemp -d)
trap 'kill -9 "${worker_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
topic=$run_id-echo
port=$(fr_free_port)

# write_app ID: an app whose one agent returns each value unchanged.
write_app() {
    cat >"$work/app.toml" <<TOML
[app]
id = "$1"
broker = "kafka://$broker"
value_serializer = "raw"
topic_partitions = 4

[[agents]]
name = "echo"
topic = "$topic"
body = '''value'''
TOML
}
write_app "$run_id"

now() { date +%s.%N; }
rate() { python3 -c "import sys; n, s = int(sys.argv[1]), float(sys.argv[2]); print(f'{n / s:,.0f}')" "$@"; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$@"; }

# The worker creates its topic with the app's partition count; produce once it exists.
"$binary" -A "$work/app.toml" -l warn worker --web-port "$port" --web-bind 127.0.0.1 \
    --datadir "$work/data" >/dev/null 2>"$work/worker.log" &
worker_pid=$!
until curl -sf "127.0.0.1:$port/ready" >/dev/null; do
    kill -0 "$worker_pid" 2>/dev/null || { cat "$work/worker.log" >&2; exit 1; }
    sleep 0.1
done
# Stop it before producing so the measured run starts from a full topic, like kcat's.
kill -TERM "$worker_pid"; wait "$worker_pid" || true

echo "producing $records records to $topic ..."
seq 1 "$records" | kcat -b "$broker" -P -t "$topic" -X linger.ms=50 -X batch.num.messages=10000

start=$(now)
count=$(kcat -b "$broker" -C -t "$topic" -o beginning -e -q -f 'x\n' | wc -l)
kcat_s=$(elapsed "$start" "$(now)")
[[ $count == "$records" ]] || { echo "kcat read $count of $records" >&2; exit 1; }

# The measured run: a new app id, so a new group that starts from the beginning.
write_app "$run_id-run"
rm -rf "$work/data"
start=$(now)
"$binary" -A "$work/app.toml" -l warn worker --web-port "$port" --web-bind 127.0.0.1 \
    --datadir "$work/data" >/dev/null 2>"$work/worker.log" &
worker_pid=$!
until curl -sf "127.0.0.1:$port/ready" >/dev/null; do sleep 0.05; done
ready=$(now)
while :; do
    seen=$(curl -sf "127.0.0.1:$port/stats" | jq '.agents.echo.events_in')
    ((seen >= records)) && break
    sleep 0.1
done
done_at=$(now)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$worker_pid/status")
kill -TERM "$worker_pid"; wait "$worker_pid" || true

faust_s=$(elapsed "$ready" "$done_at")
echo
echo "records:              $records (4 partitions, values 1..$records)"
echo "kcat -C:              ${kcat_s} s  -> $(rate "$records" "$kcat_s") events/s"
echo "faust-rs worker:      ${faust_s} s  -> $(rate "$records" "$faust_s") events/s (from ready; group join took $(elapsed "$start" "$ready") s)"
echo "faust-rs peak RSS:    $((rss_kb / 1024)) MiB"
