#!/usr/bin/env bash
# bench/latency.sh — the end-to-end latency a read-committed consumer sees through one faust-rs
# worker: exactly_once at several commit intervals and at_least_once for comparison, one after
# the other against the same broker; prints one table (records, p50/p90/p99/max latency).
#
#   bench/latency.sh [--configs LIST] [--rate R] [--seconds S] [--warmup S] [--grace S] [-h]
#
#   --configs LIST  comma-separated GUARANTEE[:COMMIT_INTERVAL] (default
#                   exactly_once:0.1,exactly_once:0.5,exactly_once:1.0,at_least_once);
#                   without an interval, the guarantee's default (0.1 s or 2.8 s)
#   --rate R        records per second produced to the input (default 500)
#   --seconds S     how long the load lasts (default 20)
#   --warmup S      records sent in the load's first S seconds are not measured (default 2)
#   --grace S       how long to wait after the load for the last records (default 10)
#
# Per configuration: a fresh app id and topics, latency-<pid>-<time>-<n>-in and -out (4
# partitions, both created by the worker), one worker of an app whose agent copies its input to
# the output (body `value`, sink = [out]). Once the worker is ready (GET /ready), a reader
# (kcat, isolation.level=read_committed, no group, every partition from the beginning) starts;
# 3 s later the load: unkeyed JSON {"i": seq, "t": send time in unix ms, "pad": "x..."} through
# `kcat -P -X linger.ms=0`, paced to R a second. The reader's python3 stamps each output record
# on arrival: latency = arrival - t (one clock), the whole path: producer, broker, worker, its
# commit (under exactly-once the transaction's end makes the outputs visible), reader's fetch.
# Each record is padded to exactly 1024 bytes: kcat 1.7.1 (Debian's) produced a short line only
# once about 1 KiB more input had come (its CreateTime - t: 140 ms p50 at 100 records/s with
# 36-byte lines, 30 ms at 500/s; 0 ms once padded): a delay that would count as the worker's.
# Columns: sent, received (distinct), measured (received, sent after the warm-up), latency
# percentiles in ms, missing (sent, not received within the grace period), commits (the
# worker's /stats "commits" at the end).
#
# Environment: KAFKA_PORT (broker on 127.0.0.1, default 9092; started with scripts/kafka.sh
# when nothing answers there), FAUST_RS (binary; default target/release/faust-rs, built if
# missing), KAFKA_HOME_DIR and KAFKA_VERSION (where scripts/kafka.sh keeps Kafka's jars, for
# TopicCommand to delete this run's topics; default .kafka and 4.4.0).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/free-port.sh
source scripts/lib/free-port.sh

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "latency.sh: $*" >&2; exit 1; }

configs=exactly_once:0.1,exactly_once:0.5,exactly_once:1.0,at_least_once
rate=500 seconds=20 warmup=2 grace=10
while (($#)); do
    case $1 in
        --configs | --rate | --seconds | --warmup | --grace)
            (($# >= 2)) || die "$1 needs a value (see -h)"
            declare "${1#--}=$2"
            shift 2
            ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see -h)" ;;
    esac
done
for var in rate seconds grace warmup; do
    [[ ${!var} =~ ^(0|[1-9][0-9]*)$ && ($var == warmup || ${!var} -gt 0) ]] ||
        die "--$var must be a positive integer, not '${!var}'"
done
((warmup < seconds)) || die "--warmup must be below --seconds"
IFS=, read -ra config_list <<<"$configs"
((${#config_list[@]})) || die "--configs: no configuration"
for c in "${config_list[@]}"; do
    [[ $c =~ ^(exactly_once|at_least_once)(:[0-9]*\.?[0-9]+)?$ ]] ||
        die "--configs: '$c' is not GUARANTEE[:SECONDS] (exactly_once or at_least_once)"
done

broker=127.0.0.1:${KAFKA_PORT:-9092}
binary=${FAUST_RS:-target/release/faust-rs}
kafka_libs=${KAFKA_HOME_DIR:-.kafka}/${KAFKA_VERSION:-4.4.0}/libs

if ! scripts/kafka.sh ping >/dev/null 2>&1; then
    echo "latency.sh: no broker on $broker: scripts/kafka.sh start" >&2
    scripts/kafka.sh start >&2
fi
[[ -x $binary ]] || cargo build --release --quiet

run_id=latency-$$-$(date +%s)
work=$(mktemp -d)
pids=()

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; } # for deadlines, without a subprocess
# stop: TERM the running processes (pids), then KILL whatever still runs 20 s later (a
# worker's warm shutdown commits its open transaction first).
stop() {
    local pid i
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}
cleanup() {
    stop
    # every topic of the run (inputs, outputs, whatever else the workers made) starts with run_id
    java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$kafka_libs/*" \
        org.apache.kafka.tools.TopicCommand --bootstrap-server "$broker" --delete --if-exists \
        --topic "$run_id-.*" >/dev/null 2>&1 || echo "latency.sh: could not delete topics $run_id-*" >&2
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The reader: kcat's lines stamped on arrival. kcat runs as its child so that TERM (sent by
# stop) ends both; each line is written out at once, as "i t arrival" (ms).
reader_py='
import json, signal, subprocess, sys, time
broker, topic, path = sys.argv[1:4]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
kcat = subprocess.Popen(["kcat", "-C", "-b", broker, "-t", topic, "-o", "beginning", "-u", "-q",
                         "-X", "isolation.level=read_committed", "-f", "%s\n"], stdout=subprocess.PIPE)
try:
    with open(path, "w", buffering=1) as out:
        for line in iter(kcat.stdout.readline, b""):
            arrival = time.time() * 1000
            v = json.loads(line)
            out.write("%d %.3f %.3f\n" % (v["i"], v["t"], arrival))
finally:
    kcat.terminate()
'
# The load: RATE records a second for SECONDS, each 1024 bytes (see above) flushed to kcat at
# once; then kcat is closed (it delivers what it holds) and "sent t0" (t0: its start, ms) printed.
load_py='
import subprocess, sys, time
broker, topic, rate, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
kcat = subprocess.Popen(["kcat", "-P", "-b", broker, "-t", topic, "-X", "linger.ms=0"],
                        stdin=subprocess.PIPE)
start = time.time()
for i in range(rate * seconds):
    delay = start + i / rate - time.time()
    time.sleep(max(0, delay))
    head = b"{\"i\": %d, \"t\": %.3f, \"pad\": \"" % (i, time.time() * 1000)
    kcat.stdin.write(head + b"x" * (1024 - 3 - len(head)) + b"\"}\n")
    kcat.stdin.flush()
kcat.stdin.close()
kcat.wait()
print(rate * seconds, f"{start * 1000:.3f}")
'
# The row: percentiles (nearest rank) of the records sent after the warm-up.
row_py='
import sys
path, label, sent, t0, warmup, commits = sys.argv[1:7]
sent, t0, warmup = int(sent), float(t0), float(warmup)
got, lat = set(), []
for line in open(path):
    i, t, arrival = line.split()
    if int(i) not in got and float(t) >= t0 + warmup * 1000:
        lat.append(float(arrival) - float(t))
    got.add(int(i))
lat.sort()
pct = lambda p: f"{lat[min(len(lat) - 1, int(p / 100 * len(lat)))]:.1f}" if lat else "-"
missing = sent - len(got & set(range(sent)))
print(f"| {label} | {sent} | {len(got)} | {len(lat)} | {pct(50)} | {pct(90)} | {pct(99)} | "
      f"{pct(100)} | {missing} | {commits} |")
'

# run N GUARANTEE INTERVAL LABEL: one configuration; appends its row to rows.
rows=()
run() {
    local n=$1 guarantee=$2 interval=$3 label=$4 dir=$work/$1 port deadline worker
    local in=$run_id-$n-in out=$run_id-$n-out sent t0 commits
    mkdir -p "$dir"
    cat >"$dir/app.toml" <<TOML
[app]
id = "$run_id-$n"
broker = "kafka://$broker"
value_serializer = "json"
topic_partitions = 4
processing_guarantee = "$guarantee"
${interval:+commit_interval = $interval}
[[topics]]
name = "$out"
[[agents]]
name = "relay"
topic = "$in"
sink = ["$out"]
body = '''value'''
TOML
    port=$(fr_free_port)
    "$binary" -A "$dir/app.toml" -l warn worker --web-port "$port" --web-bind 127.0.0.1 \
        --datadir "$dir/data" >"$dir/worker.out" 2>"$dir/worker.err" &
    worker=$! && pids+=("$worker")
    echo "latency.sh: $label: worker $worker, $in -> $out" >&2
    deadline=$(($(now_us) + 60000000))
    until curl -sf "127.0.0.1:$port/ready" >/dev/null; do
        if ! kill -0 "$worker" 2>/dev/null || (($(now_us) > deadline)); then
            tail -n 20 "$dir/worker.err" >&2
            rows+=("| $label | worker not ready (see above) |||||||||")
            stop
            return 0
        fi
        sleep 0.1
    done
    touch "$dir/received"
    python3 -c "$reader_py" "$broker" "$out" "$dir/received" &
    pids+=($!)
    sleep 3 # the reader fetches metadata and starts fetching before the first record is sent
    read -r sent t0 < <(python3 -c "$load_py" "$broker" "$in" "$rate" "$seconds") ||
        die "$label: the load failed"
    # the load is over: wait for the last records, at most the grace period
    deadline=$(($(now_us) + grace * 1000000))
    while (($(wc -l <"$dir/received") < sent && $(now_us) < deadline)); do sleep 0.2; done
    commits=$(curl -sf "127.0.0.1:$port/stats" | jq -r '.commits // "?"') || commits="?"
    kill -0 "$worker" 2>/dev/null || commits="$commits (worker exited)"
    stop
    rows+=("$(python3 -c "$row_py" "$dir/received" "$label" "$sent" "$t0" "$warmup" "$commits")")
}

echo "latency.sh: run $run_id, $rate records/s for $seconds s per configuration, broker $broker," \
    "$(git describe --always --dirty 2>/dev/null || echo '?')" >&2
n=0
for c in "${config_list[@]}"; do
    n=$((n + 1))
    guarantee=${c%%:*} interval=""
    [[ $c != *:* ]] || interval=${c#*:}
    case $guarantee in exactly_once) default=0.1 ;; *) default=2.8 ;; esac
    label="$guarantee, commit_interval ${interval:-$default} s"
    [[ -n $interval ]] || label+=" (default)"
    run "$n" "$guarantee" "$interval" "$label"
done

printf '\nOne faust-rs worker, %s records/s for %s s; latency = read-committed arrival - send time, first %s s not measured.\n\n' \
    "$rate" "$seconds" "$warmup"
echo "| configuration | sent | received | measured | p50 ms | p90 ms | p99 ms | max ms | missing | commits |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
