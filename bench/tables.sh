#!/usr/bin/env bash
# bench/tables.sh — issue 15: how long a worker takes to recover a large table from its local
# store, against from the changelog alone. Fills a table of N distinct keys through one
# faust-rs worker, stops it (TERM: its store is flushed durably), then restarts it on the same
# data directory ROUNDS times per mode, alternating: "store" (the data directory as it was
# left) and "changelog" (its tables/ folder removed first); prints one table.
#
#   bench/tables.sh [--keys N] [--partitions P] [--rounds R] [--timeout S] [--keep-logs DIR] [-h]
#
#   --keys N        distinct keys, one input record each (default 1000000)
#   --partitions P  partitions of the input topic, hence of the table and its changelog
#                   (default 8)
#   --rounds R      restarts per mode, alternated store, changelog, store, ... (default 2)
#   --timeout S     seconds the fill, and each restart, may take (default 600)
#   --keep-logs DIR copy the workers' logs (fill.err, store-1.err, changelog-1.err, ... and
#                   their standard output) and the app file into DIR at exit
#
# The app (id tables-<pid>-<time>, at_least_once, value_serializer json): a table `counts`
# (default 0) and an agent on the topic <app id>-in whose body is `counts[key] += 1`; a timer
# prints `counts.len()` every 0.5 s (the check that a recovered table is whole). The input:
# N records keyed k1..kN (raw keys, value 1), produced with `kcat -P -K` once the worker is
# ready (the worker creates the topic, P partitions; kcat's partitioner spreads the keys); the
# fill ends when the changelog <app id>-counts-changelog holds N records (the sum of its end
# offsets). Then TERM, and the worker's exit awaited.
#
# Per restart (`faust-rs -l info worker --datadir <the same directory>`), measured:
#   recovery ms     the worker's `table counts recovered partitions [..]: R changelog records
#                   read in M ms` log lines (M summed when the assignment came in pieces)
#   records read    R, summed likewise
#   to ready, s     wall time from starting the process to GET /ready answering 200 (polled
#                   every 20 ms): process start, opening the store, joining the group, the
#                   recovery (the worker is ready once its table partitions are recovered)
#   peak RSS        VmHWM of the worker, read when it is ready
#   CPU s           user+sys of the worker from its start until it is ready
#   rows            `counts.len()` printed by the timer once ready: must be N
# and the ratio changelog / store of the mean recovery ms and of the mean time to ready.
#
# Environment: KAFKA_PORT (broker on 127.0.0.1, default 9092; started with scripts/kafka.sh
# when nothing answers there), FAUST_RS (binary; default target/release/faust-rs, built if
# missing), TABLES_APP_EXTRA (TOML appended to the app file, to try settings: e.g.
# $'[kafka]\n"fetch.queue.backoff.ms" = 10'), KAFKA_HOME_DIR and KAFKA_VERSION (where
# scripts/kafka.sh keeps Kafka's jars, for TopicCommand to delete this run's topics; default
# .kafka and 4.4.0).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/free-port.sh
source scripts/lib/free-port.sh

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "tables.sh: $*" >&2; exit 1; }

keys=1000000 partitions=8 rounds=2 timeout=600 keep_logs=""
while (($#)); do
    case $1 in
        --keys | --partitions | --rounds | --timeout)
            (($# >= 2)) || die "$1 needs a value (see -h)"
            declare "${1#--}=$2"
            shift 2
            ;;
        --keep-logs)
            (($# >= 2)) || die "$1 needs a value (see -h)"
            keep_logs=$2
            shift 2
            ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see -h)" ;;
    esac
done
for var in keys partitions rounds timeout; do
    [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "--$var must be a positive integer, not '${!var}'"
done

broker=127.0.0.1:${KAFKA_PORT:-9092}
binary=${FAUST_RS:-target/release/faust-rs}
kafka_libs=${KAFKA_HOME_DIR:-.kafka}/${KAFKA_VERSION:-4.4.0}/libs
clk_tck=$(getconf CLK_TCK)
script_start=$EPOCHREALTIME

if ! scripts/kafka.sh ping >/dev/null 2>&1; then
    echo "tables.sh: no broker on $broker: scripts/kafka.sh start" >&2
    scripts/kafka.sh start >&2
fi
[[ -x $binary ]] || cargo build --release --quiet
[[ -d $kafka_libs ]] || die "no Kafka jars in $kafka_libs (to delete the topics): scripts/kafka.sh install, or set KAFKA_HOME_DIR"

run_id=tables-$$-$(date +%s)
in_topic=$run_id-in
changelog=$run_id-counts-changelog
work=$(mktemp -d)
datadir=$work/data
worker=""

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; } # for deadlines, without a subprocess
py() { python3 -c "$@"; }

# wait_gone PID SECONDS: wait until PID has exited (reaping it: it is our child); 1 if it has not.
wait_gone() {
    local deadline=$(($(now_us) + $2 * 1000000))
    while kill -0 "$1" 2>/dev/null; do
        if [[ $(ps -o stat= -p "$1" 2>/dev/null) == Z* ]]; then break; fi
        (($(now_us) <= deadline)) || return 1
        sleep 0.05
    done
    wait "$1" 2>/dev/null || true
}
# stop_worker: TERM (a warm shutdown flushes the store durably), KILL after 60 s.
stop_worker() {
    [[ -n $worker ]] || return 0
    kill -TERM "$worker" 2>/dev/null || true
    if ! wait_gone "$worker" 60; then
        echo "tables.sh: worker $worker still running 60 s after TERM: KILL" >&2
        kill -KILL "$worker" 2>/dev/null || true
        wait_gone "$worker" 5 || true
    fi
    worker=""
}
cleanup() {
    stop_worker
    # every topic of the run (input, changelog) starts with run_id
    java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$kafka_libs/*" \
        org.apache.kafka.tools.TopicCommand --bootstrap-server "$broker" --delete --if-exists \
        --topic "$run_id-.*" >/dev/null 2>&1 || echo "tables.sh: could not delete topics $run_id-*" >&2
    if [[ -n $keep_logs ]]; then
        mkdir -p "$keep_logs" && cp "$work"/*.err "$work"/*.out "$work/app.toml" "$keep_logs/" 2>/dev/null &&
            echo "tables.sh: logs kept in $keep_logs" >&2 || echo "tables.sh: could not copy the logs to $keep_logs" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# end_total TOPIC: the sum of the topic's end offsets (its record count: the topic is new,
# at-least-once writes no transaction markers, and nothing is compacted in a fresh segment).
end_total() {
    local args=() p
    for ((p = 0; p < partitions; p++)); do args+=(-t "$1:$p:-1"); done
    kcat -b "$broker" -Q "${args[@]}" 2>/dev/null | awk '$3 == "offset" { s += $4 } END { print s + 0 }'
}
cpu_s() { sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$clk_tck" '{ printf "%.2f", ($12 + $13) / hz }'; }
peak_rss_mib() { awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

cat >"$work/app.toml" <<TOML
[app]
id = "$run_id"
broker = "kafka://$broker"
value_serializer = "json"
topic_partitions = $partitions
processing_guarantee = "at_least_once"

[[tables]]
name = "counts"
default = 0

[[agents]]
name = "count"
topic = "$in_topic"
body = '''counts[key] += 1; ()'''

[[timers]]
name = "rows"
interval = 0.5
body = '''print("ROWS " + counts.len());'''
${TABLES_APP_EXTRA:-}
TOML

# start_worker NAME: start a worker on the data directory, logging to $work/NAME.{out,err};
# sets worker, started (unix µs) and port.
start_worker() {
    port=$(fr_free_port)
    started=$(now_us)
    "$binary" -A "$work/app.toml" -l info worker --web-port "$port" --web-bind 127.0.0.1 \
        --datadir "$datadir" >"$work/$1.out" 2>"$work/$1.err" &
    worker=$!
}
# wait_ready NAME: until GET /ready answers 200; sets ready (unix µs).
wait_ready() {
    local deadline=$(($(now_us) + timeout * 1000000))
    until curl -sf "127.0.0.1:$port/ready" >/dev/null 2>&1; do
        if ! kill -0 "$worker" 2>/dev/null || (($(now_us) > deadline)); then
            tail -n 20 "$work/$1.err" >&2
            die "$1: the worker exited or was not ready within $timeout s (above: its log)"
        fi
        sleep 0.02
    done
    ready=$(now_us)
}
# rows_seen NAME: the last `counts.len()` the timer printed, waiting (up to 30 s) for N.
rows_seen() {
    local deadline=$(($(now_us) + 30000000)) last=""
    while :; do
        last=$(awk '$1 == "ROWS" { n = $2 } END { print n }' "$work/$1.out")
        [[ $last != "$keys" ]] || break
        (($(now_us) <= deadline)) || break
        sleep 0.1
    done
    echo "${last:-none}"
}

# ---------------------------------------------------------------------------------------
# the fill

echo "tables.sh: run $run_id, $keys keys, $partitions partitions, $rounds rounds per mode," \
    "broker $broker, $("$binary" --version 2>/dev/null | head -n 1) ($(git describe --always --dirty 2>/dev/null || echo '?'))" >&2
awk -v n="$keys" 'BEGIN { for (i = 1; i <= n; i++) print "k" i ":1" }' >"$work/input"
start_worker fill
wait_ready fill
fill_start=$(now_us)
kcat -b "$broker" -P -t "$in_topic" -K : -X linger.ms=50 -X batch.num.messages=10000 <"$work/input"
deadline=$(($(now_us) + timeout * 1000000))
while written=$(end_total "$changelog") && ((written < keys)); do
    kill -0 "$worker" 2>/dev/null || { tail -n 20 "$work/fill.err" >&2; die "the worker exited during the fill"; }
    (($(now_us) <= deadline)) || die "fill: $written of $keys changelog records after $timeout s"
    sleep 0.2
done
fill_s=$(py 'import sys; print(f"{(int(sys.argv[2]) - int(sys.argv[1])) / 1e6:.1f}")' "$fill_start" "$(now_us)")
fill_rss=$(peak_rss_mib "$worker")
stop_worker
if grep -q 'ERROR' "$work/fill.err"; then
    grep 'ERROR' "$work/fill.err" | head -n 5 >&2
    die "errors in the fill's log (above)"
fi
store_mib=$(du -sm "$datadir/tables" | cut -f1)
echo "tables.sh: filled: $written changelog records in $fill_s s (from the first record produced), worker peak RSS $fill_rss MiB; store $store_mib MiB" >&2

# ---------------------------------------------------------------------------------------
# the restarts

rows=()
for ((r = 1; r <= rounds; r++)); do
    for mode in store changelog; do
        name=$mode-$r
        [[ $mode == store ]] || rm -rf "$datadir/tables"
        start_worker "$name"
        wait_ready "$name"
        rss=$(peak_rss_mib "$worker")
        cpu=$(cpu_s "$worker")
        seen=$(rows_seen "$name")
        stop_worker
        read -r pieces read_n ms < <(awk '
            match($0, /table counts recovered partitions \[[^]]*\]: [0-9]+ changelog records read in [0-9]+ ms/) {
                s = substr($0, RSTART, RLENGTH); sub(/.*\]: /, "", s)
                split(s, f, " "); n++; records += f[1]; ms += f[6]
            } END { print n + 0, records + 0, ms + 0 }' "$work/$name.err")
        ((pieces > 0)) || { tail -n 20 "$work/$name.err" >&2; die "$name: no recovery log line"; }
        to_ready=$(py 'import sys; print(f"{(int(sys.argv[2]) - int(sys.argv[1])) / 1e6:.2f}")' "$started" "$ready")
        echo "tables.sh: $name: $read_n changelog records read in $ms ms ($pieces recoveries), ready after $to_ready s, $rss MiB, $cpu CPU s, rows $seen" >&2
        rows+=("$r $mode $ms $read_n $to_ready $rss $cpu $seen $pieces")
    done
done

# ---------------------------------------------------------------------------------------
# the table

echo
printf '%s\n' "${rows[@]}" | py '
import sys
keys, parts, store_mib = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rows = [line.split() for line in sys.stdin]
print(f"{keys:,} keys, {parts} partitions; the store: {store_mib} MiB")
print()
print("| round | recovered from | recovery, ms (log) | changelog records read | start to ready, s | peak RSS, MiB | CPU s to ready | rows |")
print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for r, mode, ms, n, ready, rss, cpu, seen, pieces in rows:
    where = "local store" if mode == "store" else "changelog alone"
    ok = seen if seen == str(keys) else f"{seen} (WRONG: {keys:,} expected)"
    print(f"| {r} | {where} | {int(ms):,} | {int(n):,} | {ready} | {rss} | {cpu} | {ok} |")
def mean(mode, i):
    values = [float(x[i]) for x in rows if x[1] == mode]
    return sum(values) / len(values)
ms_c, ms_s, rd_c, rd_s = mean("changelog", 2), mean("store", 2), mean("changelog", 4), mean("store", 4)
print()
print(f"changelog / store: recovery {ms_c / max(ms_s, 1):.1f}x ({ms_c:,.0f} against {ms_s:,.0f} ms, means), "
      f"start to ready {rd_c / rd_s:.1f}x ({rd_c:.2f} against {rd_s:.2f} s)")
' "$keys" "$partitions" "$store_mib"
echo "Fill: $keys records, changelog complete $fill_s s after the first was produced; worker peak RSS $fill_rss MiB."
py 'import sys; print(f"tables.sh: total {(int(sys.argv[2]) - int(sys.argv[1])) / 1e6:.0f} s")' "${script_start/./}" "$(now_us)"
