#!/usr/bin/env bash
# bench/pipeline.sh — the same JSON pipeline on faust-rs, Kafka Streams and Python Faust, one
# after the other against the same broker and the same pre-produced records; prints one table
# (events/s, peak RSS, CPU seconds, events/s relative to faust-rs) and, for scale, the rate of
# `kcat -C | kcat -P` copying the same input.
#
#   bench/pipeline.sh [--records N] [--faust-records M] [--partitions P] [--workers W]
#                     [--guarantee G] [--only LIST] [--timeout S] [--no-copy] [--keep-topics]
#                     [--table] [--table-keys K] [-h]
#
#   --records N        input records for faust-rs and Kafka Streams (default 300000)
#   --faust-records M  input records for Python Faust, the first M of the same records
#                      (default 50000: it is 100 times slower or more)
#   --partitions P     partitions of every input and output topic (default 4)
#   --workers W        faust-rs workers sharing the input, each its own process (default 1);
#                      their peak RSS and CPU seconds are summed
#   --guarantee G      at_least_once (default) or exactly_once: faust-rs's and Faust's
#                      processing_guarantee, Kafka Streams' processing.guarantee (at_least_once
#                      or exactly_once_v2); each at its own default commit interval (faust-rs
#                      and Kafka Streams 0.1 s under exactly-once, Faust 2.8 s)
#   --only LIST        comma-separated subset of faust-rs,kstreams,faust (default: all three)
#   --timeout S        seconds each implementation may take to write all its output (default 600)
#   --no-copy          skip the `kcat -C | kcat -P` line
#   --keep-topics      leave this run's topics on the broker (default: deleted at exit)
#   --table            faust-rs's agent also updates a table per event: its app gets
#                      [[tables]] counts (default 0) and the body `counts[value.id % K] += 1`
#                      before its result; every update goes to the changelog
#                      <app id>-counts-changelog (P partitions). Checked after the run: the
#                      changelog's last value per key sums to the output records. The other
#                      implementations are unchanged
#   --table-keys K     the table's distinct keys with --table (default 10000)
#
# The pipeline: each input record is an ~80-byte JSON object, unkeyed,
# {"id": 1, "n": 1, "pad": "xxx..."} with id = 1..N and n = id % 1000, record i written to
# partition (i-1) % P. Each implementation (1 worker/instance, --guarantee) decodes it and
# writes {"id": value.id, "n": value.n * 2} as JSON, unkeyed, to an output topic of P
# partitions:
#   faust-rs     an app file written here: one agent on the input topic, value_serializer json,
#                body `#{ id: value.id, n: value.n * 2 }`, sink = [the output topic]
#   kstreams     bench/kstreams (Kafka Streams 4.4.0, mapValues with Jackson,
#                processing.guarantee=at_least_once, one stream thread), built by
#                bench/kstreams/build.sh
#   faust        bench/faust/pipeline.py (faust-streaming 0.15.3, an agent with sink=[output]),
#                installed by bench/faust/setup.sh
# Every implementation has its own topics and consumer group, pipeline-<pid>-<time>-<impl>-in
# and -out (the output topics use the broker's LogAppendTime), all produced before the first
# one starts.
#
# Measured, per implementation:
#   events/s         records / (broker append time of the last output record - that of the
#                    first one): from the first record through to the last one written
#   from ready       records / (last output append time - the moment the implementation was
#                    ready: faust-rs's GET /ready, Kafka Streams' RUNNING, Faust's first
#                    completed rebalance)
#   peak RSS         VmHWM of the process, read once all output is written
#   CPU s            user+sys of the process from its start until all output is written (and,
#                    in brackets, the part after ready)
# The output is then read back and checked: every id 1..N present with n doubled; duplicates
# (allowed by at-least-once) are counted and reported.
#
# Environment: KAFKA_PORT (broker on 127.0.0.1, default 9092; started with scripts/kafka.sh
# when nothing answers there), FAUST_RS (binary; default target/release/faust-rs, built if
# missing), PIPELINE_APP_EXTRA (TOML appended to faust-rs's app file, to try settings: e.g.
# $'[kafka]\n"queued.max.messages.kbytes" = 8192'), KSTREAMS_JAVA_OPTS (JVM options of the Kafka Streams process; default none, the
# JVM's defaults), FAUST_VENV (Python Faust's virtualenv; default .bench/faust-venv), MVN.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/free-port.sh
source scripts/lib/free-port.sh

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "pipeline.sh: $*" >&2; exit 1; }

records=300000
faust_records=50000
partitions=4
workers=1
only=faust-rs,kstreams,faust
guarantee=at_least_once
timeout=600
copy=1
keep_topics=0
table=0
table_keys=10000
while (($#)); do
    case $1 in
        --records | --faust-records | --partitions | --workers | --guarantee | --only | --timeout | --table-keys)
            (($# >= 2)) || die "$1 needs a value (see -h)"
            case $1 in
                --records) records=$2 ;;
                --faust-records) faust_records=$2 ;;
                --partitions) partitions=$2 ;;
                --workers) workers=$2 ;;
                --guarantee) guarantee=$2 ;;
                --only) only=$2 ;;
                --timeout) timeout=$2 ;;
                --table-keys) table_keys=$2 ;;
            esac
            shift 2
            ;;
        --no-copy) copy=0; shift ;;
        --keep-topics) keep_topics=1; shift ;;
        --table) table=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see -h)" ;;
    esac
done
for var in records faust_records partitions workers timeout table_keys; do
    [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "--${var//_/-} must be a positive integer, not '${!var}'"
done
[[ $guarantee == at_least_once || $guarantee == exactly_once ]] ||
    die "--guarantee must be at_least_once or exactly_once, not '$guarantee'"
export PIPELINE_GUARANTEE=$guarantee # read by bench/kstreams and bench/faust/pipeline.py
impls=()
IFS=, read -ra wanted <<<"$only"
for impl in "${wanted[@]}"; do
    case $impl in
        faust-rs | kstreams | faust) impls+=("$impl") ;;
        *) die "--only: unknown implementation '$impl' (faust-rs, kstreams, faust)" ;;
    esac
done
((${#impls[@]})) || die "--only: no implementation"

broker=127.0.0.1:${KAFKA_PORT:-9092}
binary=${FAUST_RS:-target/release/faust-rs}
venv=${FAUST_VENV:-.bench/faust-venv}
read -ra java_opts <<<"${KSTREAMS_JAVA_OPTS:-}"
kstreams_cp="bench/kstreams/target/kstreams-pipeline.jar:bench/kstreams/target/lib/*"
clk_tck=$(getconf CLK_TCK)
script_start=$EPOCHREALTIME

# ---------------------------------------------------------------------------------------
# set-up: broker, binaries (each step does nothing when already done)

if ! scripts/kafka.sh ping >/dev/null 2>&1; then
    echo "pipeline.sh: no broker on $broker: scripts/kafka.sh start" >&2
    scripts/kafka.sh start >&2
fi
[[ -x $binary ]] || cargo build --release --quiet
bench/kstreams/build.sh # also the admin tool that creates and deletes the topics
if [[ " ${impls[*]} " == *" faust "* ]]; then FAUST_VENV=$venv bench/faust/setup.sh; fi

run_id=pipeline-$$-$(date +%s)
work=$(mktemp -d)
pids=()
topics_made=0

cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait_gone "$pid" 20 || kill -KILL "$pid" 2>/dev/null || true
    done
    if ((topics_made && !keep_topics)); then
        mapfile -t ours < <(kcat -b "$broker" -L -J 2>/dev/null |
            jq -r --arg p "$run_id-" '.topics[].topic | select(startswith($p))')
        ((${#ours[@]} == 0)) || admin delete "${ours[@]}" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

admin() { java -cp "$kstreams_cp" faustrs.bench.Pipeline admin "$broker" "$@"; }
now() { echo "$EPOCHREALTIME"; }
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; } # for deadlines, without a subprocess
py() { python3 -c "$@"; }

# wait_gone PID SECONDS: wait until PID has exited (reaping it when it is our child).
wait_gone() {
    local deadline=$(($(now_us) + $2 * 1000000))
    while kill -0 "$1" 2>/dev/null; do
        if [[ $(ps -o stat= -p "$1" 2>/dev/null) == Z* ]]; then break; fi
        (($(now_us) <= deadline)) || return 1
        sleep 0.1
    done
    wait "$1" 2>/dev/null || true
}

# end_total TOPIC: the sum of the topic's end offsets (its record count: the topics are new).
end_total() {
    local args=() p
    for ((p = 0; p < partitions; p++)); do args+=(-t "$1:$p:-1"); done
    kcat -b "$broker" -Q "${args[@]}" 2>/dev/null | awk '$3 == "offset" { s += $4 } END { print s + 0 }'
}

# append_time TOPIC first|last: the broker's append time (ms) of the topic's first or last record.
# The last from the last two offsets: under exactly-once the very last is a transaction marker.
append_time() {
    local p offset ts stamps=()
    [[ $2 == first ]] && offset=beginning || offset=-2
    for ((p = 0; p < partitions; p++)); do
        ts=$(kcat -b "$broker" -C -t "$1" -p "$p" -o "$offset" -e -q -f '%T\n' 2>/dev/null |
            if [[ $2 == first ]]; then head -n 1; else tail -n 1; fi)
        [[ -n $ts ]] && stamps+=("$ts")
    done
    printf '%s\n' "${stamps[@]}" | sort -n | if [[ $2 == first ]]; then head -n 1; else tail -n 1; fi
}

# cpu_s PID...: user+sys seconds of the processes so far, summed.
cpu_s() {
    local pid
    for pid; do sed 's/.*) //' "/proc/$pid/stat"; done |
        awk -v hz="$clk_tck" '{ s += $12 + $13 } END { printf "%.2f", s / hz }'
}
# peak_rss_mib PID...: the processes' peak RSS (VmHWM), summed.
peak_rss_mib() {
    local pid
    for pid; do cat "/proc/$pid/status"; done | awk '/^VmHWM/ { s += $2 } END { printf "%.0f", s / 1024 }'
}
# all_alive PID...: whether every one of them still runs.
all_alive() {
    local pid
    for pid; do kill -0 "$pid" 2>/dev/null || return 1; done
}

# ---------------------------------------------------------------------------------------
# the input: the same records for every implementation, produced before the first one starts

echo "pipeline.sh: run $run_id, $records records ($faust_records for Python Faust), $partitions partitions, $guarantee, broker $broker"
py '
import sys
n, m, parts, d = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for name, count in (("all", n), ("faust", m)):
    files = [open(f"{d}/{name}-{p}", "w") for p in range(parts)]
    for i in range(1, count + 1):
        head = f"{{\"id\": {i}, \"n\": {i % 1000}, \"pad\": \""
        files[(i - 1) % parts].write(head + "x" * max(0, 78 - len(head)) + "\"}\n")
    for f in files:
        f.close()
' "$records" "$faust_records" "$partitions" "$work"

in_topics=() out_topics=()
for impl in "${impls[@]}"; do
    in_topics+=("$run_id-$impl-in")
    out_topics+=("$run_id-$impl-out")
done
((copy)) && in_topics+=("$run_id-kcat-copy")
topics_made=1
admin create "$partitions" - "${in_topics[@]}"
admin create "$partitions" message.timestamp.type=LogAppendTime "${out_topics[@]}"

for impl in "${impls[@]}"; do
    [[ $impl == faust ]] && part_set=faust n=$faust_records || part_set=all n=$records
    for ((p = 0; p < partitions; p++)); do
        kcat -b "$broker" -P -t "$run_id-$impl-in" -p "$p" -X linger.ms=50 \
            -X batch.num.messages=10000 <"$work/$part_set-$p"
    done
    got=$(end_total "$run_id-$impl-in")
    ((got == n)) || die "produced $got records to $run_id-$impl-in, expected $n"
done
echo "pipeline.sh: input produced: $(cat "$work"/all-* | wc -c) bytes in $records records"

# ---------------------------------------------------------------------------------------
# one implementation

# ready_line FILE DIVISOR: the time on the first "READY <time>" line of FILE, in seconds.
ready_line() {
    awk -v div="$2" 'match($0, /READY [0-9.]+/) {
        printf "%.3f\n", substr($0, RSTART + 6, RLENGTH - 6) / div; found = 1; exit
    } END { exit !found }' "$1"
}

# start_IMPL IN OUT GROUP: start it in the background, setting procs (its processes).
start_faust-rs() {
    local body='#{ id: value.id, n: value.n * 2 }' tables=""
    if ((table)); then
        body="counts[value.id % $table_keys] += 1;"$'\n'"$body"
        tables=$'[[tables]]\nname = "counts"\ndefault = 0\n'
    fi
    cat >"$work/faust-rs.toml" <<TOML
[app]
id = "$3"
broker = "kafka://$broker"
value_serializer = "json"
topic_partitions = $partitions
processing_guarantee = "$guarantee"

[[topics]]
name = "$1"
create = false

[[topics]]
name = "$2"
create = false

$tables
[[agents]]
name = "double"
topic = "$1"
sink = ["$2"]
body = '''$body'''
${PIPELINE_APP_EXTRA:-}
TOML
    local w
    procs=() ports=()
    for ((w = 0; w < workers; w++)); do
        ports+=("$(fr_free_port)")
        "$binary" -A "$work/faust-rs.toml" -l warn worker --web-port "${ports[w]}" \
            --web-bind 127.0.0.1 --datadir "$work/faust-rs-data-$w" \
            >>"$work/faust-rs.out" 2>>"$work/faust-rs.err" &
        procs+=($!)
    done
}
# ready once every worker is (each has partitions)
ready_faust-rs() {
    local port
    for port in "${ports[@]}"; do curl -sf "127.0.0.1:$port/ready" >/dev/null || return 1; done
    now
}

start_kstreams() {
    java "${java_opts[@]}" -cp "$kstreams_cp" faustrs.bench.Pipeline run "$broker" "$3" "$1" "$2" \
        "$work/kstreams-state" >"$work/kstreams.out" 2>"$work/kstreams.err" &
    procs=($!)
}
ready_kstreams() { ready_line "$work/kstreams.out" 1000; }

start_faust() {
    FAUST_APP_ID=$3 FAUST_BROKER=kafka://$broker PIPELINE_IN=$1 PIPELINE_OUT=$2 \
        PYTHONPATH=bench/faust "$venv/bin/faust" -A pipeline --datadir "$work/faust-data" \
        worker -l warn --without-web >"$work/faust.out" 2>"$work/faust.err" &
    procs=($!)
}
# (Faust's worker writes terminal escapes around it: the line does not start with READY)
ready_faust() { ready_line "$work/faust.out" 1; }

# The check of an output topic: every id 1..N once or more, n doubled. Prints "total distinct bad".
verify_py='
import json, sys
n = int(sys.argv[1])
seen = bytearray(n + 1)
total = distinct = bad = 0
for line in sys.stdin:
    total += 1
    try:
        v = json.loads(line)
        i = v["id"]
        ok = 1 <= i <= n and v["n"] == 2 * (i % 1000) and len(v) == 2
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        bad += 1
    elif not seen[i]:
        seen[i] = 1
        distinct += 1
print(total, distinct, bad)
'

# check_table CHANGELOG OUTPUTS: the table's changelog as a read-committed reader sees it: its
# keys, records, and the sum of each key's last value — every evaluation added 1, so it is the
# number of outputs (duplicates included). Sets table_line; marks the row wrong when it is not.
check_table() {
    local keys_seen changes sum expected=$((records < table_keys ? records : table_keys))
    read -r keys_seen changes sum < <(kcat -b "$broker" -C -t "$1" -o beginning -e -q \
        -X isolation.level=read_committed -f '%k %s\n' |
        awk '{ last[$1] = $2; n++ } END { for (k in last) { s += last[k]; c++ } print c + 0, n + 0, s + 0 }')
    table_line="faust-rs's table: $keys_seen keys (of $expected), $changes changelog records, values summing to $sum ($2 output records)"
    if ((keys_seen != expected || sum != $2)); then row[faust-rs.status]="WRONG TABLE: $table_line"; fi
}
table_line=""

declare -A row
# run IMPL: run one implementation to completion and fill row[IMPL.*].
run() {
    local impl=$1 in=$run_id-$1-in out=$run_id-$1-out group=$run_id-$1 n=$records
    local started ready="" cpu_ready="" done_at="" deadline written=0 rss cpu first last total distinct bad
    [[ $impl == faust ]] && n=$faust_records
    row[$impl.n]=$n
    echo "pipeline.sh: $impl: $n records, $in -> $out" >&2
    started=$(now)
    "start_$impl" "$in" "$out" "$group"
    pids+=("${procs[@]}")
    deadline=$(($(now_us) + timeout * 1000000))
    # until ready (polled often: faust-rs's ready time is when this loop sees it) ...
    until ready=$("ready_$impl"); do
        if ! all_alive "${procs[@]}"; then
            tail -n 20 "$work/$impl.err" >&2
            row[$impl.status]="exited before it was ready"
            return 0
        fi
        if (($(now_us) > deadline)); then
            tail -n 20 "$work/$impl.err" >&2
            row[$impl.status]="not ready after $timeout s"
            return 0
        fi
        sleep 0.02
    done
    cpu_ready=$(cpu_s "${procs[@]}")
    # ... then until all the output is written
    while :; do
        if ! all_alive "${procs[@]}"; then
            tail -n 20 "$work/$impl.err" >&2
            row[$impl.status]="exited early ($written of $n written)"
            return 0
        fi
        written=$(end_total "$out")
        # Under exactly-once the end offsets count transaction markers too: then count the
        # records a read-committed reader sees.
        if ((written >= n)) && [[ $guarantee == exactly_once ]]; then
            written=$(kcat -b "$broker" -C -t "$out" -o beginning -e -q -f 'x\n' | wc -l)
        fi
        if ((written >= n)); then done_at=$(now); break; fi
        if (($(now_us) > deadline)); then
            row[$impl.status]="timed out after $timeout s ($written of $n written)"
            break
        fi
        sleep 0.1
    done
    rss=$(peak_rss_mib "${procs[@]}")
    cpu=$(cpu_s "${procs[@]}")
    local pid
    for pid in "${procs[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${procs[@]}"; do
        wait_gone "$pid" 30 || { kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || true; }
    done
    [[ -n $done_at ]] || return 0

    first=$(append_time "$out" first)
    last=$(append_time "$out" last)
    read -r total distinct bad < <(kcat -b "$broker" -C -t "$out" -o beginning -e -q -f '%s\n' |
        py "$verify_py" "$n")
    row[$impl.status]=ok
    if ((bad > 0 || distinct != n)); then
        row[$impl.status]="WRONG OUTPUT: $total records, $distinct of $n ids, $bad bad"
    fi
    if [[ $impl == faust-rs ]] && ((table)); then check_table "$group-counts-changelog" "$total"; fi
    row[$impl.dups]=$((total - distinct))
    row[$impl.rss]=$rss
    row[$impl.cpu]=$cpu
    row[$impl.cpu_ready]=$cpu_ready
    row[$impl.first]=$first
    row[$impl.last]=$last
    row[$impl.started]=$started
    row[$impl.ready]=$ready
    row[$impl.done_at]=$done_at
}

for impl in "${impls[@]}"; do run "$impl"; done

copy_line=""
if ((copy)); then
    start=$(now)
    kcat -b "$broker" -C -t "$run_id-${impls[0]}-in" -o beginning -e -q -f '%s\n' |
        kcat -b "$broker" -P -t "$run_id-kcat-copy" -X linger.ms=50 -X batch.num.messages=10000
    copy_s=$(py 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$start" "$(now)")
    copied=$(end_total "$run_id-kcat-copy")
    copy_line=$(py 'import sys; n, s = int(sys.argv[1]), float(sys.argv[2]); print(f"{n:,} records in {s:.2f} s: {n / s:,.0f} events/s")' "$copied" "$copy_s")
fi

# ---------------------------------------------------------------------------------------
# the table

names=(); for impl in "${impls[@]}"; do
    case $impl in
        faust-rs)
            name="faust-rs $(git describe --always --dirty 2>/dev/null || echo '?')"
            ((workers == 1)) || name+=", $workers workers"
            ((table == 0)) || name+=", table update"
            names+=("$name")
            ;;
        kstreams) names+=("Kafka Streams 4.4.0") ;;
        faust) names+=("Python Faust 0.15.3") ;;
    esac
done
echo
for i in "${!impls[@]}"; do
    impl=${impls[$i]}
    printf '%s\t%s' "${names[$i]}" "${row[$impl.status]:-?}"
    for k in n first last started ready done_at rss cpu cpu_ready dups; do printf '\t%s' "${row[$impl.$k]:-}"; done
    printf '\n'
done | py '
import sys
rows = [line.rstrip("\n").split("\t") for line in sys.stdin]

def rate(r):  # records / (last output append time - first output append time)
    return int(r[2]) / ((int(r[4]) - int(r[3])) / 1000)

base = next((rate(r) for r in rows if r[0].startswith("faust-rs") and r[1] == "ok"), None)
print("| implementation | records | events/s | vs faust-rs | from ready: events/s | start-up to ready, s "
      "| start to all written, s | peak RSS, MiB | CPU s (after ready) | duplicates |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    name, status, n = r[0], r[1], int(r[2])
    if status != "ok":
        print(f"| {name} | {n:,} | {status} | | | | | | | |")
        continue
    first, last = int(r[3]) / 1000, int(r[4]) / 1000
    started, ready, done, rss, cpu, cpu_ready, dups = map(float, r[5:])
    eps = rate(r)
    ratio = (f"{eps / base:.2f}" if eps >= base / 10 else f"{eps / base:.3f}") if base else "-"
    from_ready = n / (last - min(ready, first))
    print(f"| {name} | {n:,} | {eps:,.0f} | {ratio} | {from_ready:,.0f} | {ready - started:.2f} "
          f"| {done - started:.2f} | {rss:.0f} | {cpu:.2f} ({cpu - cpu_ready:.2f}) | {dups:.0f} |")
'
echo
echo "Input: unkeyed ~80-byte JSON records, $partitions partitions, spread evenly; output $partitions partitions, JSON, unkeyed."
echo "events/s: records / (broker append time of the last output record - of the first one); from ready: from the"
echo "implementation's ready signal (or the first output record, if earlier) to the last output record."
if [[ " ${impls[*]} " == *" faust "* ]]; then
    echo "Python Faust ran on the first $faust_records of the same records (it is much slower); events/s compare."
fi
[[ -z $copy_line ]] || echo "kcat -C | kcat -P, the same input, unkeyed: $copy_line"
((table == 0)) || echo "faust-rs's body also did counts[value.id % $table_keys] += 1 (a table of $table_keys keys, changelog $partitions partitions). ${table_line:-}"
py 'import sys; print(f"pipeline.sh: total {float(sys.argv[2]) - float(sys.argv[1]):.0f} s")' "$script_start" "$(now)"
