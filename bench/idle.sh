#!/usr/bin/env bash
# bench/idle.sh — what idle workers of the leader tutorial cost: faust-rs and Python Faust,
# one after the other against the same broker; prints one table (CPU as % of one core per
# worker and in total, RSS and threads per worker, how many workers ticked as leader).
#
#   bench/idle.sh [--workers N] [--seconds S] [--settle S] [--only LIST] [-h]
#
#   --workers N    workers per implementation, each its own process (default 1)
#   --seconds S    length of the measurement window (default 60)
#   --settle S     seconds to wait once a leader ticks, before measuring: rebalances end
#                  (default 10; Python Faust's workers keep rebalancing for a while)
#   --only LIST    comma-separated subset of faust-rs,faust (default: both)
#
# The app: Faust's leader-election tutorial (configs/leader.toml, bench/faust/leader.py) with
# a fresh app id per implementation and run, so fresh groups and topics: one agent printing
# greetings, one timer every 2 s on the leader that sends one. Its timer also prints a TICK
# line, from which "leaders" counts the workers that ticked in the window (1 is right).
# CPU is user+sys from /proc/PID/stat over the window, RSS is VmRSS at its end and, in
# brackets, its anonymous part (RssAnon: the rest is the program's own files, such as its
# code, shared by every worker of the machine).
#
# For the hand-off of many workers, run bench/failover.py --workers 50 --signals TERM
# --settle 10.
#
# Environment: KAFKA_PORT (broker on 127.0.0.1, default 9092; started with scripts/kafka.sh
# when nothing answers there), FAUST_RS (binary; default target/release/faust-rs, built if
# missing), FAUST_VENV (Python Faust's virtualenv; default .bench/faust-venv).
set -euo pipefail
export LC_ALL=C # the same order for globs and join
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/free-port.sh
source scripts/lib/free-port.sh

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "idle.sh: $*" >&2; exit 1; }

workers=1
seconds=60
settle=10
only=faust-rs,faust
while (($#)); do
    case $1 in
        --workers | --seconds | --settle | --only)
            (($# >= 2)) || die "$1 needs a value (see -h)"
            case $1 in
                --workers) workers=$2 ;;
                --seconds) seconds=$2 ;;
                --settle) settle=$2 ;;
                --only) only=$2 ;;
            esac
            shift 2
            ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see -h)" ;;
    esac
done
for var in workers seconds settle; do
    if ! [[ ${!var} =~ ^[0-9]+$ ]] || [[ ${!var} == 0 && $var != settle ]]; then
        die "--$var must be a positive integer, not '${!var}'"
    fi
done
impls=()
IFS=, read -ra wanted <<<"$only"
for impl in "${wanted[@]}"; do
    case $impl in
        faust-rs | faust) impls+=("$impl") ;;
        *) die "--only: unknown implementation '$impl' (faust-rs, faust)" ;;
    esac
done
((${#impls[@]})) || die "--only: no implementation"

broker=127.0.0.1:${KAFKA_PORT:-9092}
binary=${FAUST_RS:-target/release/faust-rs}
venv=${FAUST_VENV:-.bench/faust-venv}
clk_tck=$(getconf CLK_TCK)

if ! scripts/kafka.sh ping >/dev/null 2>&1; then
    echo "idle.sh: no broker on $broker: scripts/kafka.sh start" >&2
    scripts/kafka.sh start >&2
fi
[[ -x $binary ]] || cargo build --release --quiet
if [[ " ${impls[*]} " == *" faust "* ]]; then FAUST_VENV=$venv bench/faust/setup.sh; fi

run_id=idle-$$-$(date +%s)
work=$(mktemp -d)
procs=()

stop_all() {
    local pid deadline
    for pid in "${procs[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    deadline=$((SECONDS + 40))
    for pid in "${procs[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    procs=()
}
cleanup() {
    stop_all
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# cpu_ticks PID...: user+sys clock ticks of the processes so far, summed.
cpu_ticks() {
    local pid
    for pid; do sed 's/.*) //' "/proc/$pid/stat"; done | awk '{ s += $12 + $13 } END { print s + 0 }'
}
# status_sum FIELD PID...: a /proc/PID/status field summed over the processes.
status_sum() {
    local field=$1 pid
    shift
    for pid; do cat "/proc/$pid/status"; done | awk -v f="$field:" '$1 == f { s += $2 } END { print s + 0 }'
}

# start_IMPL INDEX APP_ID: start worker INDEX in the background, appending to procs.
start_faust-rs() {
    local dir=$work/$2
    mkdir -p "$dir"
    [[ -f $dir/app.toml ]] || cat >"$dir/app.toml" <<TOML
[app]
id = "$2"
broker = "kafka://$broker"
value_serializer = "raw"

[[agents]]
name = "say"
body = '''print(value)'''

[[timers]]
name = "publish_greetings"
interval = 2.0
on_leader = true
body = '''
print("PUBLISHING ON LEADER!");
print("TICK " + now() + " " + worker_id());
say.send(str(random()));
'''
TOML
    "$binary" -A "$dir/app.toml" --datadir "$dir/data$1" worker -l warn \
        --web-port "$(fr_free_port)" --web-bind 127.0.0.1 >"$dir/worker$1.out" 2>"$dir/worker$1.err" &
    procs+=($!)
}
start_faust() {
    local dir=$work/$2
    mkdir -p "$dir"
    (cd bench/faust && FAUST_APP_ID=$2 FAUST_BROKER=kafka://$broker exec "../../$venv/bin/faust" \
        -A leader --datadir "$dir/data$1" worker -l warn --web-port "$(fr_free_port)" \
        --web-bind 127.0.0.1 >"$dir/worker$1.out" 2>"$dir/worker$1.err") &
    procs+=($!)
}

# ticks DIR: "TICK" lines so far, over every worker's output.
ticks() { cat "$1"/worker*.out 2>/dev/null | grep -c 'TICK ' || true; }
# ticks_per_worker DIR: "FILE COUNT" lines, the TICK lines of each worker so far.
ticks_per_worker() {
    local f
    for f in "$1"/worker*.out; do echo "$f $(grep -c 'TICK ' "$f" || true)"; done
}

declare -A row
# run IMPL: start the workers, wait for a leader's tick and the settling, measure, stop.
run() {
    local impl=$1 app_id=$run_id-$1 dir i deadline before after t0 t1
    dir=$work/$app_id
    echo "idle.sh: $impl: $workers workers, app id $app_id" >&2
    for ((i = 0; i < workers; i++)); do "start_$impl" "$i" "$app_id"; done
    deadline=$((SECONDS + 120 + 2 * workers))
    until (($(ticks "$dir") > 0)); do
        for pid in "${procs[@]}"; do
            kill -0 "$pid" 2>/dev/null && continue
            tail -n 20 "$dir"/worker*.err >&2
            row[$impl]="a worker exited before a leader ticked"
            stop_all
            return 0
        done
        if ((SECONDS > deadline)); then
            row[$impl]="no leader ticked within $((120 + 2 * workers)) s"
            stop_all
            return 0
        fi
        sleep 0.2
    done
    sleep "$settle" # a measurement's settling time, not a condition
    ticks_per_worker "$dir" >"$dir/ticks-before"
    t0=$EPOCHREALTIME
    before=$(cpu_ticks "${procs[@]}")
    sleep "$seconds" # the measurement window
    after=$(cpu_ticks "${procs[@]}")
    t1=$EPOCHREALTIME
    local rss anon threads leaders
    rss=$(status_sum VmRSS "${procs[@]}")
    anon=$(status_sum RssAnon "${procs[@]}")
    threads=$(status_sum Threads "${procs[@]}")
    # workers whose TICK count grew in the window
    leaders=$(ticks_per_worker "$dir" | join "$dir/ticks-before" - | awk '$3 > $2' | wc -l)
    row[$impl]=$(python3 -c '
import sys
n, ticks, hz, t0, t1, rss_kb, anon_kb, threads, leaders = sys.argv[1:]
n, secs = int(n), float(t1) - float(t0)
core = int(ticks) / int(hz) / secs * 100
rss, anon = int(rss_kb) / n / 1024, int(anon_kb) / n / 1024
print(f"{n} | {core / n:.2f} | {core:.2f} | {rss:.1f} ({anon:.1f}) | {int(threads) / n:.0f} | {leaders}")
' "$workers" "$((after - before))" "$clk_tck" "$t0" "$t1" "$rss" "$anon" "$threads" "$leaders")
    stop_all
}

for impl in "${impls[@]}"; do run "$impl"; done

echo
echo "| implementation | workers | idle CPU per worker, % of a core | total, % of a core | RSS per worker, MiB (anonymous) | threads per worker | leaders ticking |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for impl in "${impls[@]}"; do
    case $impl in
        faust-rs) name="faust-rs $(git describe --always --dirty 2>/dev/null || echo '?')" ;;
        faust) name="Python Faust 0.15.3" ;;
    esac
    if [[ ${row[$impl]} == *" | "* ]]; then
        echo "| $name | ${row[$impl]} |"
    else
        echo "| $name | $workers | ${row[$impl]} | | | | |"
    fi
done
echo
echo "Over a ${seconds} s window, ${settle} s after the first leader tick; the leader ticks every 2 s."
