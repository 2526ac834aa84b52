#!/usr/bin/env bash
# scripts/crawler-demo.sh — README's "Crawler demo" as a self-checking script: configs/crawler.toml
# with three workers; five sources subscribed, one unsubscribed, the leader KILLed and started
# again; then every crawl job the leaders sent is matched against the `crawls` table.
#
# Not run by CI (.ci/run). It takes 39-46 s (18 runs on 2026-12-04, debug build, broker
# already running: 39-40 s mostly, 44-45 s when a wait just missed one of the leader's 5 s ticks),
# nearly all of it waiting for ticks (and, when the KILLed leader held crawl partitions, for the
# 6 s session timeout); it needs a broker (started if none answers), kcat, and Java with Kafka's
# jars (scripts/kafka.sh install) to delete its topics and groups at the end.
set -euo pipefail

# shellcheck source=scripts/lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"

usage() {
    cat <<'EOF'
Usage: scripts/crawler-demo.sh

Runs configs/crawler.toml (the news crawler of Faust's leader-election tutorial) as a fresh
app of its own (id crawler-demo-<pid>-<time>, topics named after it, so it never meets another
run or the README's `crawler`), with three workers started by scripts/workers.sh, and checks
what README's "Crawler demo" shows by eye:

  1. subscribes five sources; waits for a leader tick with "5 source(s) to crawl" and for
     every source to be crawled twice;
  2. unsubscribes https://lwn.example/headlines; waits for a tick with "4 source(s)" and one
     more;
  3. KILLs the leader (kill -9); waits for another worker's tick in a newer epoch and for each
     of the four sources to be crawled twice more;
  4. starts the KILLed worker again (same data directory); waits until the group has settled,
     shows its `table crawls recovered partitions ...` line, and waits for one more crawl of
     each of the four sources;
  5. unsubscribes the four others; waits for a tick with "0 source(s)", so that no more jobs
     come; reads the jobs the leaders sent from the crawl topic (kcat) and waits until each
     source's count in the table `crawls` (GET /table/crawls/<source>, following the redirect
     to the worker that holds it) equals its number of jobs;
  6. prints a summary (ticks and crawls per worker, jobs and count per source), stops the
     workers warmly and deletes the run's topics and groups.

Exit status 0 when every subscribed source was crawled, the unsubscribed one got no job after
its unsubscribe tick, no tick came from two leaders at once, and no job was lost across the
KILL (each source's count equals its jobs). At at-least-once (the app's guarantee) a count
above its jobs is reported, not failed: the KILLed worker had crawled a job, its count was on
the changelog, but its offset was not committed yet (every 2.8 s), so the partition's next owner
crawls that job again. At exactly_once it fails. Exit 1 otherwise (or when a wait passes its
deadline); 2 usage error. Workers, topics and groups are cleaned up on any exit (trap).

Environment:
  FAUST_RS                the binary (default: target/release/faust-rs, built if missing)
  FAUST_RS_BASE_PORT      first web port (default 7366: ports 7366..7368)
  CRAWLER_DEMO_GUARANTEE  the copy's processing_guarantee: at_least_once (default, as
                          configs/crawler.toml) or exactly_once (then counts must equal jobs)
  CRAWLER_DEMO_KEEP       set and non-empty: keep the run folder (worker logs and outputs) and
                          say where it is
  KAFKA_PORT              the broker's port on 127.0.0.1 (default 9092); started with
                          scripts/kafka.sh start when none answers
EOF
}

case ${1:-} in
-h | --help | help)
    usage
    exit 0
    ;;
'') ;;
*) usage_error "no arguments expected, not '$1'" ;;
esac

fr_require curl jq kcat sed setsid
KAFKA_PORT=${KAFKA_PORT:-9092}
GUARANTEE=${CRAWLER_DEMO_GUARANTEE:-at_least_once}
case $GUARANTEE in
at_least_once | exactly_once) ;;
*) usage_error "CRAWLER_DEMO_GUARANTEE must be at_least_once or exactly_once, not '$GUARANTEE'" ;;
esac
BROKER=127.0.0.1:$KAFKA_PORT
export FAUST_RS_BASE_PORT=${FAUST_RS_BASE_PORT:-7366}
need_number FAUST_RS_BASE_PORT "$FAUST_RS_BASE_PORT"
PORTS=("$FAUST_RS_BASE_PORT" $((FAUST_RS_BASE_PORT + 1)) $((FAUST_RS_BASE_PORT + 2)))
SOURCES=(https://news.example.com/rss https://blog.example.org/atom.xml https://example.net/feed
    https://lwn.example/headlines https://planet.example.org/rss)
DROPPED=https://lwn.example/headlines
KEPT=()
for s in "${SOURCES[@]}"; do [[ $s == "$DROPPED" ]] || KEPT+=("$s"); done
WORKERS_SH=$FR_REPO_ROOT/scripts/workers.sh
KAFKA_SH=$FR_REPO_ROOT/scripts/kafka.sh

ID=crawler-demo-$$-$EPOCHSECONDS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/crawler-demo.XXXXXX")
export FAUST_RS_RUN_DIR=$WORK/run
APP=$WORK/crawler.toml
STARTED=0  # workers (and so topics) may exist
FAILED=0

fr_now
T0=$FR_NOW_MS
# say MESSAGE: with the seconds since the start.
say() {
    fr_now
    fr_say "[$(fr_secs $((FR_NOW_MS - T0)))s] $*"
}
fail() {
    fr_warn "FAIL: $*"
    FAILED=1
}

# kafka_tool CLASS ARGS...: one of Kafka's command-line tools, from scripts/kafka.sh's jars.
kafka_tool() {
    local libs=${KAFKA_HOME_DIR:-$FR_REPO_ROOT/.kafka}/${KAFKA_VERSION:-4.4.0}/libs
    command -v java >/dev/null 2>&1 || return 1
    [[ -d $libs ]] || "$KAFKA_SH" install >/dev/null || return 1
    timeout 60 java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -cp "$libs/*" "$@" 2>/dev/null
}

# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    set +e
    if ((STARTED)); then
        # Warmly, so the workers leave their groups and the groups can be deleted.
        "$WORKERS_SH" stop "$APP" >/dev/null 2>&1 || "$WORKERS_SH" kill "$APP" >/dev/null 2>&1
        local topics
        topics=$(kcat -b "$BROKER" -L 2>/dev/null | sed -n "s/^ *topic \"\\($ID-[^\"]*\\)\".*/\\1/p" | sort -u)
        if [[ -n $topics ]]; then
            if kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKER" \
                --delete --if-exists --topic "$ID-.*" >/dev/null; then
                fr_say "deleted topics $(echo "$topics" | tr '\n' ' ')"
            else
                fr_warn "could not delete topics $ID-* (no java or Kafka's jars?): $(echo "$topics" | tr '\n' ' ')"
            fi
        fi
        kafka_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
            --bootstrap-server "$BROKER" --delete --group "$ID" --group "$ID-__election-${FR_ELECTION:-leader}" \
            >/dev/null || fr_warn "could not delete groups $ID, $ID-__election-${FR_ELECTION:-leader} (still members?)"
    fi
    if [[ -n ${CRAWLER_DEMO_KEEP:-} ]]; then
        fr_say "run folder kept: $FAUST_RS_RUN_DIR"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'fr_warn "interrupted (INT): cleaning up"; exit 130' INT
trap 'fr_warn "interrupted (TERM): cleaning up"; exit 143' TERM

# out → every worker's standard output so far (what the agents and the timer print).
out() { cat "$FAUST_RS_RUN_DIR"/worker-*.out 2>/dev/null || true; }
# ticks N → how many leader ticks said "N source(s) to crawl".
ticks() { out | grep -c "^LEADER .*): $1 source(s) to crawl\$" || true; }
# crawled SOURCE → how many times any worker printed that it crawled SOURCE.
crawled() { out | grep -cF "crawls $1 (" || true; }
# jobs SOURCE → the crawl jobs for SOURCE on the crawl topic (all the leaders ever sent).
all_jobs() { kcat -b "$BROKER" -C -t "$ID-crawl" -o beginning -e -q -f '%k\n' 2>/dev/null; }
jobs_of() { all_jobs | grep -cxF "$1" || true; }
# count SOURCE → its value in the table `crawls`, asked of any live worker (redirects followed).
count() {
    local port key body
    key=$(jq -rn --arg s "$1" '$s | @uri')
    for port in "${PORTS[@]}"; do
        fr_alive "$port" || continue
        body=$(curl -sfL -m 3 "http://127.0.0.1:$port/table/crawls/$key") || continue
        jq -r '.value' <<<"$body"
        return 0
    done
    return 1
}
send() {
    "$FR_BIN" -A "$APP" send "$ID-subscriptions" -k "$1" \
        "{\"action\": \"$2\", \"source\": \"$1\"}" >/dev/null
}

# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s; dies at the deadline.
wait_for() {
    local timeout=$1 what=$2 port
    shift 2
    fr_now
    local deadline=$((FR_NOW_MS + timeout * 1000))
    until "$@"; do
        fr_now
        if ((FR_NOW_MS >= deadline)); then
            fr_warn "FAIL: no $what after ${timeout}s; the workers' log tails:"
            for port in "${PORTS[@]}"; do
                fr_warn "  worker $port:"
                fr_log_tail "$port" 8 >&2
            done
            exit 1
        fi
        sleep 0.2
    done
}

# The conditions waited for.
more_ticks() { (($(ticks "$1") > $2)); }
each_crawled() { # MIN SOURCE...: every SOURCE printed at least MIN crawls
    local min=$1 s
    shift
    for s in "$@"; do
        (($(crawled "$s") >= min)) || return 1
    done
}
snapshot() { # remembers how often each kept source was crawled so far
    local s
    SNAPSHOT=()
    for s in "${KEPT[@]}"; do SNAPSHOT+=("$(crawled "$s")"); done
}
each_crawled_since() { # N: every kept source printed N more crawls than at the snapshot
    local i
    for i in "${!KEPT[@]}"; do
        (($(crawled "${KEPT[i]}") >= SNAPSHOT[i] + $1)) || return 1
    done
}
# crawl_partitions PORT → the crawl topic's partitions the worker holds, e.g. "[0,2]".
crawl_partitions() {
    fr_http "$1" /assignment | jq -c --arg t "$ID-crawl" '.assignment[$t] // [] | sort'
}
new_leader_ticked() { # a tick of another worker than the KILLed one, in a newer epoch
    local port epoch
    for port in "${PORTS[@]}"; do
        [[ $port != "$KILLED" ]] || continue
        epoch=$(sed -n 's/^LEADER [^ ]* (epoch \([0-9]*\)).*/\1/p' "$FAUST_RS_RUN_DIR/worker-$port.out" 2>/dev/null | tail -n 1)
        if [[ -n $epoch ]] && ((epoch > KILLED_EPOCH)); then
            NEW_LEADER=$port NEW_EPOCH=$epoch
            return 0
        fi
    done
    return 1
}
counts_match() { # every source's count in `crawls` is at least its jobs
    local s c
    for s in "${SOURCES[@]}"; do
        c=$(count "$s") || return 1
        ((c >= JOBS[$s])) || return 1
    done
}

# --- 0. The broker, the binary, the app.
if ! "$KAFKA_SH" ping; then
    fr_say "no broker answers on $BROKER: starting one (scripts/kafka.sh start)"
    "$KAFKA_SH" start
fi
fr_binary
sed -e "s/^id = \"crawler\"\$/id = \"$ID\"\nprocessing_guarantee = \"$GUARANTEE\"/" \
    -e "s/\"crawler-subscriptions\"/\"$ID-subscriptions\"/g" "$FR_REPO_ROOT/configs/crawler.toml" >"$APP"
(($(grep -c "$ID" "$APP") == 3)) || fr_die "configs/crawler.toml changed: cannot rename its app id and topic"
fr_resolve_app "$APP"
fr_app_info
FR_RUN_DIR=$FAUST_RS_RUN_DIR # read by fr_pid, fr_alive, fr_logfile (lib/cluster.sh)
for port in "${PORTS[@]}"; do
    ! fr_port_busy "$port" || fr_die "port $port is in use (set FAUST_RS_BASE_PORT)"
done

say "app $ID ($GUARANTEE, $FR_BIN), workers on ports ${PORTS[*]}"
STARTED=1
"$WORKERS_SH" start 3 "$APP" >/dev/null
say "3 workers ready and settled"

# --- 1. Five subscriptions.
for s in "${SOURCES[@]}"; do send "$s" subscribe; done
say "subscribed ${#SOURCES[@]} sources"
wait_for 30 "tick with 5 sources" more_ticks 5 0
say "a leader tick: 5 source(s) to crawl"
wait_for 30 "second crawl of every source" each_crawled 2 "${SOURCES[@]}"
say "every source crawled twice"

# --- 2. One unsubscribe.
before=$(ticks 4)
send "$DROPPED" unsubscribe
wait_for 30 "tick with 4 sources after the unsubscribe" more_ticks 4 "$before"
DROPPED_JOBS=$(jobs_of "$DROPPED")
say "unsubscribed $DROPPED: the next tick said 4 source(s); it had $DROPPED_JOBS jobs"
wait_for 30 "second tick with 4 sources" more_ticks 4 $((before + 1))

# --- 3. KILL the leader.
KILLED='' KILLED_EPOCH=''
for port in "${PORTS[@]}"; do
    view=$(fr_leader_view "$port") || continue
    IFS=$'\t' read -r leads epoch _ _ <<<"$view"
    if [[ $leads == true ]]; then
        KILLED=$port KILLED_EPOCH=$epoch
    fi
done
[[ -n $KILLED ]] || fr_die "no worker says it leads"
held=$(crawl_partitions "$KILLED") || held='?'
snapshot
kill -KILL "$(fr_pid "$KILLED")"
fr_now
KILL_MS=$FR_NOW_MS
say "kill -9 the leader, worker $KILLED (epoch $KILLED_EPOCH; it held the crawl topic's partitions $held)"
NEW_LEADER='' NEW_EPOCH=''
wait_for 30 "tick of a new leader" new_leader_ticked
fr_now
say "worker $NEW_LEADER ticked as leader (epoch $NEW_EPOCH) $((FR_NOW_MS - KILL_MS)) ms after the KILL (polled every 0.2 s)"
wait_for 60 "two more crawls of every kept source" each_crawled_since 2
say "every kept source crawled twice more since the KILL"

# --- 4. The KILLed worker again, with its data directory.
"$WORKERS_SH" start 3 "$APP" >/dev/null
say "worker $KILLED started again; the group has settled"
# (its log since the last `==== ... starting worker` line workers.sh wrote)
recovered=$(awk '/^==== /{n=0} {line[n++]=$0} END{for (i = 0; i < n; i++) print line[i]}' \
    "$(fr_logfile "$KILLED")" | grep -o 'table crawls recovered partitions.*' | tail -n 1 || true)
say "worker $KILLED: ${recovered:-no recovery line (no crawls partition assigned)}; holds crawl partitions $(crawl_partitions "$KILLED" || echo '?')"
snapshot
wait_for 30 "crawl of every kept source after the restart" each_crawled_since 1
say "every kept source crawled once more"

# --- 5. Nothing more to crawl: every job sent can be matched with the table.
before=$(ticks 0)
for s in "${KEPT[@]}"; do send "$s" unsubscribe; done
wait_for 30 "tick with 0 sources" more_ticks 0 "$before"
say "unsubscribed the other ${#KEPT[@]}: a tick said 0 source(s)"
declare -A JOBS=()
jobs_list=$(all_jobs)
for s in "${SOURCES[@]}"; do
    JOBS[$s]=$(grep -cxF "$s" <<<"$jobs_list" || true)
done
wait_for 30 "count in crawls reaching the jobs of every source" counts_match
say "every source's count reached its jobs"

# --- 6. Summary and verdict.
echo
printf '%-8s %8s %8s\n' worker ticks crawls
for port in "${PORTS[@]}"; do
    f=$FAUST_RS_RUN_DIR/worker-$port.out
    printf '%-8s %8s %8s\n' "$port" "$(grep -c '^LEADER ' "$f" || true)" "$(grep -c ' crawls ' "$f" || true)"
done
echo
printf '%-36s %5s %6s\n' source jobs count
for s in "${SOURCES[@]}"; do
    c=$(count "$s") || c='?'
    printf '%-36s %5s %6s\n' "$s" "${JOBS[$s]}" "$c"
    if [[ $c == '?' ]]; then
        fail "$s: no worker answers its count"
    elif ((c < JOBS[$s])); then
        fail "$s: $((JOBS[$s] - c)) job(s) lost"
    elif ((c > JOBS[$s])) && [[ $GUARANTEE == exactly_once ]]; then
        fail "$s: counted $((c - JOBS[$s])) time(s) more than its jobs at exactly_once"
    elif ((c > JOBS[$s])); then
        fr_say "note: $s counted $((c - JOBS[$s])) time(s) more than its jobs (at-least-once: a job crawled again after the KILL)"
    fi
    ((JOBS[$s] >= 2)) || fail "$s: only ${JOBS[$s]} job(s)"
done
echo
((JOBS[$DROPPED] == DROPPED_JOBS)) ||
    fail "$DROPPED: $((JOBS[$DROPPED] - DROPPED_JOBS)) job(s) after its unsubscribe tick"
# One leader at a time: every tick came from one worker per epoch, in increasing epochs.
epochs=$(out | sed -n 's/^LEADER \([^ ]*\) (epoch \([0-9]*\)).*/\2 \1/p' | sort -u)
if [[ $(cut -d' ' -f1 <<<"$epochs" | uniq -d) ]]; then
    fail "two workers ticked in the same epoch: $(tr '\n' ',' <<<"$epochs")"
fi
say "leaders by epoch: $(tr '\n' ',' <<<"$epochs" | sed 's/,$//')"
if ((FAILED)); then
    fr_warn "the crawler demo FAILED"
    exit 1
fi
say "OK: every source crawled, $DROPPED not after its unsubscribe, no job lost across the KILL"
