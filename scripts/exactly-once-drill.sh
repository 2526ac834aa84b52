#!/usr/bin/env bash
# scripts/exactly-once-drill.sh — faust-rs's processing guarantee under fire: N keyed records
# through an agent with a sink, W workers, and while they work one worker killed (KILL) and
# restarted, one stopped cold (QUIT) and restarted, one paused (STOP) past its session timeout
# and resumed (CONT); then a read-committed reader of the sink counts every input id.
#
#   scripts/exactly-once-drill.sh [--guarantee G] [--records N] [--workers W] [--cluster] [-h]
#
#   --guarantee G   exactly_once (default) or at_least_once: the app's processing_guarantee
#   --records N     input records (default 20000)
#   --workers W     workers, at least 3 (default 3)
#   --cluster       on the 3-node cluster of `scripts/kafka.sh cluster` (started if needed;
#                   topics replicated 3 times) and, first of all, kill -9 the broker that
#                   coordinates the agents' group (often a transaction coordinator too), and
#                   start it again 15 s later (Kafka moves its partitions and coordinators
#                   after 9 s), instead of the workers' KILL, QUIT and STOP; a worker that
#                   stops meanwhile (exit 1: a transaction that did not settle, see README
#                   "Exactly-once") is started again on its port
#
# Exit status: 0 when the sink holds what the guarantee promises — every id exactly once at
# exactly_once, every id at least once at at_least_once (whose duplicates are reported) —,
# 1 otherwise. Restarted workers keep their web port, hence their worker id and transactional
# id: the broker fences what the previous process left open.
#
# Environment: KAFKA_PORT (broker on 127.0.0.1, default 9092; started when nothing answers),
# FAUST_RS (binary; default target/release/faust-rs, built if missing), FAUST_RS_BASE_PORT
# (first web port, default 7300), EOS_DRILL_KEEP (set: keep the workers' logs). Not run by CI
# (tests/exactly_once.rs is the same drill there, on one broker).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "exactly-once-drill.sh: $*" >&2; exit 1; }
say() { echo "exactly-once-drill.sh: $*"; }

guarantee=exactly_once
records=20000
workers=3
cluster=0
while (($#)); do
    case $1 in
        --cluster) cluster=1; shift ;;
        --guarantee | --records | --workers)
            (($# >= 2)) || die "$1 needs a value (see -h)"
            case $1 in
                --guarantee) guarantee=$2 ;;
                --records) records=$2 ;;
                --workers) workers=$2 ;;
            esac
            shift 2
            ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see -h)" ;;
    esac
done
[[ $guarantee == exactly_once || $guarantee == at_least_once ]] ||
    die "--guarantee must be exactly_once or at_least_once, not '$guarantee'"
[[ $records =~ ^[1-9][0-9]*$ ]] || die "--records must be a positive integer"
if ! [[ $workers =~ ^[0-9]+$ ]] || ((workers < 3)); then die "--workers must be 3 or more"; fi

export FAUST_RS=${FAUST_RS:-$PWD/target/release/faust-rs}
export FAUST_RS_BASE_PORT=${FAUST_RS_BASE_PORT:-7300}
if ((cluster)); then
    scripts/kafka.sh cluster status >/dev/null 2>&1 || scripts/kafka.sh cluster start
    broker=$(scripts/kafka.sh cluster status | sed -n 's/^kafka.sh: bootstrap: //p')
    replication=3
else
    broker=127.0.0.1:${KAFKA_PORT:-9092}
    scripts/kafka.sh ping >/dev/null 2>&1 || scripts/kafka.sh start
    replication=1
fi
[[ -x $FAUST_RS ]] || cargo build --release --quiet

id=eos-drill-$$-$(date +%s)
work=$(mktemp -d)
export FAUST_RS_RUN_DIR=$work/run
app=$work/app.toml
coordinator=""
# shellcheck disable=SC2317  # run by the EXIT trap
finish() {
    scripts/workers.sh kill "$app" >/dev/null 2>&1 || true
    if [[ -n $coordinator ]]; then scripts/kafka.sh cluster start >/dev/null || true; fi
    if [[ -n ${EOS_DRILL_KEEP:-} ]]; then
        echo "exactly-once-drill.sh: logs kept in $work/run"
    else
        rm -rf "$work"
    fi
}
trap finish EXIT
# The body spins a little so that the run lasts long enough to be interrupted.
cat >"$app" <<TOML
[app]
id = "$id"
broker = "kafka://$broker"
topic_partitions = 6
topic_replication_factor = $replication
processing_guarantee = "$guarantee"
session_timeout = 6.0
heartbeat_interval = 1.0

[[topics]]
name = "$id-out"
partitions = 3

[[agents]]
name = "copy"
sink = ["$id-out"]
body = '''
let spin = 0;
for i in 0..20000 { spin += i; }
value
'''
TOML

port() { echo $((FAUST_RS_BASE_PORT + $1)); }
pid_of() { cat "$FAUST_RS_RUN_DIR/worker-$(port "$1").pid"; }
events_in() { curl -sf "127.0.0.1:$(port "$1")/stats" | jq '.agents.copy.events_in // 0' 2>/dev/null || echo 0; }

# mid_stream I: wait until worker I has processed 300 more events (at most 120 s).
mid_stream() {
    local start now deadline=$((SECONDS + 120))
    start=$(events_in "$1")
    while now=$(events_in "$1"); ((now < start + 300)); do
        ((SECONDS < deadline)) || die "worker $(port "$1") made no progress"
        sleep 0.2
    done
}

# ids TOPIC: every value of TOPIC a read-committed reader sees (librdkafka's default).
ids() { kcat -b "$broker" -C -t "$1" -o beginning -e -q 2>/dev/null; }

say "app $id, $guarantee, $records records, $workers workers (ports $(port 0)..$(port $((workers - 1))))"
scripts/workers.sh start "$workers" "$app" >/dev/null
seq 0 $((records - 1)) | awk '{ print "k" $1 ":" $1 }' |
    kcat -b "$broker" -P -t "$id-copy" -K: -X linger.ms=20
say "input produced"

if ((cluster)); then
    mid_stream 0
    coordinator=$(scripts/kafka.sh cluster coordinator-of "$id")
    scripts/kafka.sh cluster kill "$coordinator" >/dev/null
    say "kill -9 broker $coordinator (the group's coordinator)"
    sleep 15
    scripts/kafka.sh cluster start-node "$coordinator" >/dev/null
    say "broker $coordinator back; workers that stop are restarted on their ports"
else
    mid_stream 0
    kill -KILL "$(pid_of 0)"
    say "KILL worker $(port 0)"
    mid_stream 1
    kill -QUIT "$(pid_of 1)"
    say "QUIT worker $(port 1)"
    sleep 1
    scripts/workers.sh start "$workers" "$app" >/dev/null
    say "restarted workers $(port 0) and $(port 1) on their ports"
    mid_stream 2
    kill -STOP "$(pid_of 2)"
    say "STOP worker $(port 2) for 9 s (session timeout 6 s)"
    sleep 9
    kill -CONT "$(pid_of 2)"
    say "CONT worker $(port 2)"
fi

deadline=$((SECONDS + 300))
while (($(ids "$id-out" | sort -u | wc -l) < records)); do
    ((SECONDS < deadline)) || break
    if ((cluster)) && ! scripts/workers.sh status "$app" >/dev/null 2>&1; then
        say "restarting stopped workers: $(grep -h 'done for' "$FAUST_RS_RUN_DIR"/worker-*.log | tail -n 1 | cut -c1-160)"
        scripts/workers.sh start "$workers" "$app" >/dev/null || true
    fi
    sleep 2
done
sleep 5 # late records (a transaction still settling) would show now
for ((i = 0; i < workers; i++)); do
    aborted=$(curl -sf "127.0.0.1:$(port "$i")/stats" | jq '.transactions_aborted' || echo '?')
    say "worker $(port "$i"): $aborted transactions aborted"
done
total=$(ids "$id-out" | wc -l)
distinct=$(ids "$id-out" | sort -u | wc -l)
scripts/workers.sh stop "$app" >/dev/null || say "some worker did not stop cleanly (see above)"
missing=$((records - distinct))
duplicates=$((total - distinct))
say "sink: $total records, $distinct distinct ids of $records; missing $missing, duplicates $duplicates"
((missing == 0)) || die "ids lost"
if [[ $guarantee == exactly_once ]]; then
    ((duplicates == 0)) || die "duplicates at exactly_once"
    say "every id exactly once"
fi
