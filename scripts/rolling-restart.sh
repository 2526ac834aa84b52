#!/usr/bin/env bash
# scripts/rolling-restart.sh — restart a running scripts/workers.sh cluster the way Faust's
# workers guide advises ("Restarting a cluster"): stop half of the workers and wait for them to
# exit, start them again and wait until they are fully started, then the same for the other
# half. Measures what the restart costs while a steady stream flows into an agent.
set -euo pipefail

# shellcheck source=scripts/lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"

usage() {
    cat <<'EOF'
Usage: scripts/rolling-restart.sh [options] [APP]

Restarts the running workers.sh cluster of APP (default: the cluster started last) half by
half: TERM the first half (the non-leaders first, so that the leader moves once), wait for them
to exit, start them and wait until they are ready and the group's assignment has settled (all
the agent's partitions held, every worker holding some), then the second half.

While it runs, a background producer (kcat -P) sends a steady stream of records to the agent's
topic ({app id}-{agent}) and the summed `events_in` of every live worker (GET /stats) is sampled
every 100 ms. Reported: the duration of each phase and of the whole restart, the agent-group
rebalances (as the broker logged them, when its log is at hand; per-worker `rebalances`
increments in /stats; the `rebalance: assigned` lines of the logs grouped into rounds 1 s
apart), the longest interval without processing progress (the pause),
the longest interval in which no worker led the default election (GET /leader, same samples),
samples in which two workers led, and the leader before and after. The samples and the logs'
part written during the restart stay in <run folder>/rolling-restart/.

Options:
  --static        static membership: restart the workers with `--instance-id auto` (a worker
                  restarted within the session timeout keeps its partitions, no rebalance).
                  Needs a faust-rs whose `worker --help` lists --instance-id; without one the
                  restart goes on with dynamic membership and says so. For a fair comparison,
                  start the cluster static already: workers.sh start N APP -- --instance-id auto
  --rate N        records per second sent to the agent (default 200)
  --agent NAME    the agent to feed (default: the app's first agent)
  --warmup S      seconds of steady processing measured before the restart (default 2)
  --settle S      after the restart, measure until processing has gone on for S seconds
                  without a pause of 1 s (default 3)
  -h, --help      this help

Environment: FAUST_RS (binary), FAUST_RS_RUN_DIR (run folder), FAUST_RS_START_TIMEOUT (60),
FAUST_RS_STOP_TIMEOUT (40), FAUST_RS_SAMPLE_MS (sampling period, default 100),
FAUST_RS_BROKER_LOG (the broker's log, default .kafka/logs/server.log from scripts/kafka.sh).

Exit status: 0 done; 1 a worker did not stop or start, or processing did not resume;
2 usage error; 3 no cluster.
EOF
}

STATIC=0 RATE=200 AGENT='' WARMUP=2 SETTLE=3 APP_ARG=''
START_TIMEOUT=${FAUST_RS_START_TIMEOUT:-60}
STOP_TIMEOUT=${FAUST_RS_STOP_TIMEOUT:-40}
SAMPLE_MS=${FAUST_RS_SAMPLE_MS:-100}

while (($#)); do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --static) STATIC=1 ;;
    --rate)
        need_number "$1" "${2:-}"
        RATE=$2
        shift
        ;;
    --agent)
        [[ -n ${2:-} ]] || usage_error "--agent needs a name"
        AGENT=$2
        shift
        ;;
    --warmup)
        need_number "$1" "${2:-}"
        WARMUP=$2
        shift
        ;;
    --settle)
        need_number "$1" "${2:-}"
        SETTLE=$2
        shift
        ;;
    -*) usage_error "unknown option $1" ;;
    *)
        [[ -z $APP_ARG ]] || usage_error "unexpected argument '$1'"
        APP_ARG=$1
        ;;
    esac
    shift
done
((RATE > 0)) || usage_error "--rate must be positive"

fr_require curl jq setsid kcat
fr_binary
fr_locate "$APP_ARG"

# ---------------------------------------------------------------------------------------------
# Preconditions: every worker alive and ready, an agent to feed.

for port in "${FR_PORTS[@]}"; do
    fr_alive "$port" || fr_die "worker $port is not running: scripts/workers.sh status / start first"
    fr_ready "$port" || fr_die "worker $port is not ready: scripts/workers.sh status"
done

agents_json=$("$FR_BIN" -A "$FR_APP" agents --json-output) || fr_die "faust-rs agents failed"
if [[ -z $AGENT ]]; then
    AGENT=$(jq -r '.[0].name // empty' <<<"$agents_json")
    [[ -n $AGENT ]] || fr_die "$FR_APP has no agent to feed"
fi
TOPIC=$(jq -r --arg a "$AGENT" '.[] | select(.name == $a) | .topic' <<<"$agents_json")
[[ -n $TOPIC ]] || fr_die "no agent named '$AGENT' in $FR_APP"
BROKER=${FR_BROKERS%%,*}
BROKER=${BROKER#kafka://}

# Static membership: pass --instance-id auto (a member id kept in each worker's datadir).
has_instance_id=0
for arg in "${FR_EXTRA_ARGS[@]}"; do
    [[ $arg == --instance-id* ]] && has_instance_id=1
done
MEMBERSHIP=dynamic
if ((STATIC)); then
    if "$FR_BIN" worker --help 2>/dev/null | grep -q -- '--instance-id'; then
        if ((!has_instance_id)); then
            fr_warn "the cluster runs with dynamic membership: the restarted workers join as static members (--instance-id auto), which itself rebalances; for a fair measurement start it with: workers.sh start $FR_COUNT $FR_APP -- --instance-id auto"
            FR_EXTRA_ARGS+=(--instance-id auto)
            fr_save "$FR_APP" "$FR_COUNT" "$FR_BASE_PORT" "${FR_EXTRA_ARGS[@]}"
        fi
        MEMBERSHIP='static (--instance-id)'
    else
        fr_warn "--static: this faust-rs has no --instance-id option yet; restarting with dynamic membership"
        MEMBERSHIP='dynamic (--static asked, but faust-rs has no --instance-id)'
    fi
elif ((has_instance_id)); then
    MEMBERSHIP='static (--instance-id in the cluster arguments)'
fi

# ---------------------------------------------------------------------------------------------
# Background producer and sampler.

WORK=$FR_RUN_DIR/rolling-restart
rm -rf "$WORK"
mkdir -p "$WORK"
SAMPLES=$WORK/samples
PHASES=$WORK/phases
: >"$SAMPLES"
: >"$PHASES"
producer_pid='' kcat_pid='' sampler_pid=''

# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    local pid
    for pid in "$sampler_pid" "$producer_pid"; do
        [[ -z $pid ]] || kill "$pid" 2>/dev/null || true
    done
    if [[ -n $kcat_pid ]]; then
        # kcat flushes and exits at the end of its input; give it a moment, then end it.
        local tries=0
        while kill -0 "$kcat_pid" 2>/dev/null && ((tries++ < 50)); do
            sleep 0.1
        done
        kill "$kcat_pid" 2>/dev/null || true
    fi
    return 0
}
trap cleanup EXIT
trap 'fr_warn "interrupted: see scripts/workers.sh status"; exit 130' INT TERM

# One record per line: the sequence number, padded with spaces (valid as a raw, string or JSON
# value), paced to RATE. kcat -P reads its input 1 KiB at a time, so short lines would leave in
# bursts of ~250 records a second: the padding makes each read cover ~50 ms of the stream.
# shellcheck disable=SC2317  # run in the background
produce() {
    local i=0 start target pad=$((20480 / RATE))
    ((pad >= 8)) || pad=8
    ((pad <= 4000)) || pad=4000
    trap 'printf "%s\n" "$i" >"$WORK/produced"; exit 0' TERM
    fr_now
    start=$FR_NOW_MS
    while :; do
        fr_now
        target=$(((FR_NOW_MS - start) * RATE / 1000))
        while ((i < target)); do
            printf '%-*d\n' "$pad" "$i"
            i=$((i + 1))
        done
        sleep 0.02
    done
}

# Every SAMPLE_MS, one line: "<ms> <port>:<uptime>:<events_in summed over agents>:<rebalances>:<leads>"
# for each worker that answers (<leads>: 1 if it leads the default election, else 0).
# shellcheck disable=SC2317  # run in the background
sample() {
    local next port body rest line ev up rb delay re_ev='"events_in":([0-9]+)'
    local re_up='"uptime_seconds":([0-9.]+)' re_rb='"rebalances":([0-9]+)'
    local -a fields leaders answered
    local i
    fr_now
    next=$FR_NOW_MS
    while :; do
        fr_now
        line=$FR_NOW_MS fields=() leaders=() answered=()
        for port in "${FR_PORTS[@]}"; do
            body=$(curl -s -m 0.3 "http://127.0.0.1:$port/stats") || continue
            ev=0 up=0 rb=0 rest=$body
            while [[ $rest =~ $re_ev ]]; do
                ev=$((ev + BASH_REMATCH[1]))
                rest=${rest#*\"events_in\":}
            done
            [[ $body =~ $re_up ]] && up=${BASH_REMATCH[1]}
            [[ $body =~ $re_rb ]] && rb=${BASH_REMATCH[1]}
            body=$(curl -s -m 0.3 "http://127.0.0.1:$port/leader") || body='{}'
            fields+=("$port:$up:$ev:$rb")
            answered+=("$body")
        done
        if ((${#answered[@]})); then
            mapfile -t leaders < <(printf '%s\n' "${answered[@]}" | jq -r --arg e "$FR_ELECTION" '
                (if $e == "" or ((.elections // {}) | has($e) | not)
                 then ((.elections // {}) | to_entries | .[0].value) else .elections[$e] end)
                | if .this_worker_leads == true then 1 else 0 end' 2>/dev/null)
        fi
        for i in "${!fields[@]}"; do
            line+=" ${fields[i]}:${leaders[i]:-0}"
        done
        printf '%s\n' "$line" >>"$SAMPLES"
        next=$((next + SAMPLE_MS))
        fr_now
        delay=$((next - FR_NOW_MS))
        if ((delay > 0)); then
            sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
        else
            next=$FR_NOW_MS
        fi
    done
}

# events_total → events_in summed over the live workers (for the warm-up and settle waits).
events_total() {
    local port body total=0 rest re_ev='"events_in":([0-9]+)'
    for port in "${FR_PORTS[@]}"; do
        fr_alive "$port" || continue
        body=$(curl -s -m 0.3 "http://127.0.0.1:$port/stats") || continue
        rest=$body
        while [[ $rest =~ $re_ev ]]; do
            total=$((total + BASH_REMATCH[1]))
            rest=${rest#*\"events_in\":}
        done
    done
    printf '%s' "$total"
}

# wait_steady SECONDS TIMEOUT: until processing has progressed for SECONDS without a pause of
# 1 s or more (the counters are polled every 100 ms). Returns 1 at the deadline.
wait_steady() {
    local need=$(($1 * 1000)) timeout=$(($2 * 1000)) start since=0 last_progress=0 total previous
    fr_now
    start=$FR_NOW_MS
    previous=$(events_total)
    while :; do
        sleep 0.1
        total=$(events_total)
        fr_now
        if ((total > previous)); then
            # A new steady run begins after a pause of 1 s or more.
            ((last_progress > 0 && FR_NOW_MS - last_progress < 1000)) || since=$FR_NOW_MS
            last_progress=$FR_NOW_MS
        elif ((total < previous)); then
            since=0 last_progress=0 # a worker left, its counter with it: start over
        fi
        previous=$total
        if ((since > 0 && FR_NOW_MS - last_progress < 1000 && FR_NOW_MS - since >= need)); then
            return 0
        fi
        ((FR_NOW_MS - start < timeout)) || return 1
    done
}

# Log sizes now, so that only the restart's log lines are counted later.
declare -A LOG_OFFSET=()
for port in "${FR_PORTS[@]}"; do
    file=$(fr_logfile "$port")
    LOG_OFFSET[$port]=$(($(wc -c <"$file") + 0))
done

leader_of_cluster() {
    local port view leads epoch
    for port in "${FR_PORTS[@]}"; do
        fr_alive "$port" || continue
        view=$(fr_leader_view "$port") || continue
        IFS=$'\t' read -r leads epoch _ _ <<<"$view"
        if [[ $leads == true ]]; then
            printf '%s (pid %s, epoch %s)' "$port" "$(fr_pid "$port")" "$epoch"
            return
        fi
    done
    printf 'none'
}

leader_port() {
    local port view leads
    for port in "${FR_PORTS[@]}"; do
        view=$(fr_leader_view "$port") || continue
        IFS=$'\t' read -r leads _ _ _ <<<"$view"
        [[ $leads == true ]] && printf '%s' "$port" && return
    done
    return 0
}

fr_say "cluster: $FR_COUNT worker(s) of $FR_APP_ID, ports ${FR_PORTS[*]}; membership: $MEMBERSHIP"
fr_say "stream: $RATE records/s to $TOPIC (agent $AGENT) via kcat -b $BROKER; sampling /stats every ${SAMPLE_MS} ms"

mkfifo "$WORK/stream"
produce >"$WORK/stream" &
producer_pid=$!
kcat -P -b "$BROKER" -t "$TOPIC" -X linger.ms=5 <"$WORK/stream" 2>"$WORK/kcat.err" &
kcat_pid=$!
sample &
sampler_pid=$!

fr_say "warming up: waiting for ${WARMUP}s of steady processing"
wait_steady "$WARMUP" 60 || fr_die "the agent does not process the stream (see $WORK/kcat.err and the workers' logs)"

LEADER_BEFORE=$(leader_of_cluster)
lead=$(leader_port)
# The non-leaders first, the leader in the second half: leadership moves once.
ORDER=()
for port in "${FR_PORTS[@]}"; do
    [[ $port == "$lead" ]] || ORDER+=("$port")
done
[[ -z $lead ]] || ORDER+=("$lead")
first=$((FR_COUNT / 2))
((first >= 1)) || first=1
HALF1=("${ORDER[@]:0:first}")
HALF2=("${ORDER[@]:first}")

fr_now
T0=$FR_NOW_MS
fr_say "restart begins; leader: $LEADER_BEFORE; first half: ${HALF1[*]}; second half: ${HALF2[*]:-none}"

# phase NAME START_MS END_MS NOTE: one line of the phase table.
phase() {
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$PHASES"
}

restart_half() {
    local half=$1
    shift
    local -a ports=("$@")
    local t_start t_end note status port
    fr_now
    t_start=$FR_NOW_MS
    fr_say "half $half: TERM ${ports[*]}"
    for port in "${ports[@]}"; do
        kill -TERM "$(fr_pid "$port")" 2>/dev/null || true
    done
    status=0
    note=$(fr_wait_exit "$STOP_TIMEOUT" "${ports[@]}") || status=$?
    printf '%s\n' "$note"
    fr_now
    t_end=$FR_NOW_MS
    note=$(sed -E 's/^ *worker ([0-9]+) \(pid [0-9]+\): exit ([0-9]+).* after ([0-9.]+)s$/\1:\2/' <<<"$note" | paste -sd' ')
    phase "stop ${ports[*]}" "$t_start" "$t_end" "exit $note"
    ((status != 1)) || fr_die "half $half: workers did not exit in ${STOP_TIMEOUT}s; restart aborted"

    fr_say "half $half: start ${ports[*]}"
    t_start=$t_end
    for port in "${ports[@]}"; do
        fr_start_worker "$port"
    done
    fr_wait_ready "$START_TIMEOUT" "${ports[@]}" || fr_die "half $half: workers did not start; restart aborted"
    fr_now
    local t_ready=$FR_NOW_MS
    fr_wait_settled "$START_TIMEOUT" "${ports[@]}" ||
        fr_die "half $half: the group's assignment did not settle in ${START_TIMEOUT}s"
    fr_now
    t_end=$FR_NOW_MS
    phase "start ${ports[*]}" "$t_start" "$t_end" "ready after $(fr_secs $((t_ready - t_start)))s, settled after $(fr_secs $((t_end - t_start)))s"
}

restart_half 1 "${HALF1[@]}"
((${#HALF2[@]} == 0)) || restart_half 2 "${HALF2[@]}"

fr_now
T1=$FR_NOW_MS
fr_say "restart done in $(fr_secs $((T1 - T0)))s; measuring until processing has run ${SETTLE}s without a pause"
resumed=1
wait_steady "$SETTLE" 60 || resumed=0
# The leaderless interval is measured to its end: wait (a while) for a leader if there is none.
if [[ -n $FR_ELECTION && $(leader_port) == "" ]]; then
    fr_say "no worker leads yet: waiting up to 30s for one"
    fr_now
    deadline=$((FR_NOW_MS + 30000))
    while [[ -z $(leader_port) ]] && ((FR_NOW_MS < deadline)); do
        sleep 0.1
        fr_now
    done
    sleep 0.2 # one more sample with the leader in it
fi
fr_now
TEND=$FR_NOW_MS

kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=''
kill "$producer_pid" 2>/dev/null || true
wait "$producer_pid" 2>/dev/null || true
producer_pid=''
LEADER_AFTER=$(leader_of_cluster)

# ---------------------------------------------------------------------------------------------
# Analysis.

# The samples: pauses and /stats rebalance increments, all times relative to T0.
read -r PAUSE_MS PAUSE_AT BASELINE_MS STATS_REBALANCES PROCESSED TRAILING LEADERLESS_MS \
    LEADERLESS_AT DOUBLE_TICKS LEADERLESS_OPEN < <(
    awk -v t0="$T0" -v tend="$TEND" '
    {
        t = $1; progress = 0; claims = 0
        for (i = 2; i <= NF; i++) {
            split($i, f, ":"); p = f[1]; up = f[2] + 0; ev = f[3] + 0; rb = f[4] + 0
            claims += f[5]
            if (p in last_up) {
                if (up >= last_up[p] && ev >= last_ev[p]) { dev = ev - last_ev[p]; drb = rb - last_rb[p] }
                else { dev = ev; drb = rb }   # restarted: its counters start from zero
            } else if (NR > 1) { dev = ev; drb = rb } else { dev = 0; drb = 0 }
            last_up[p] = up; last_ev[p] = ev; last_rb[p] = rb
            progress += dev
            if (t >= t0) rebalances += drb
        }
        if (t >= t0) processed += progress
        # Leadership: the longest run of samples in which no worker led, and samples with two.
        if (t >= t0 && claims > 1) doubles++
        if (claims == 0) { if (no_leader_since == "") no_leader_since = t }
        else if (no_leader_since != "") {
            if (t > t0 && t - no_leader_since > leaderless) { leaderless = t - no_leader_since; leaderless_at = no_leader_since - t0 }
            no_leader_since = ""
        }
        if (progress > 0) {
            if (last_progress != "") {
                gap = t - last_progress
                if (t <= t0) { if (gap > baseline) baseline = gap }
                else if (gap > pause) { pause = gap; pause_at = last_progress - t0 }
            }
            last_progress = t
        }
    }
    END {
        trailing = 0
        if (last_progress == "" || tend - last_progress > pause) {
            if (last_progress != "" && tend - last_progress > 1000) {
                pause = tend - last_progress; pause_at = last_progress - t0; trailing = 1
            }
        }
        open = 0
        if (no_leader_since != "" && tend - no_leader_since > leaderless) {
            leaderless = tend - no_leader_since; leaderless_at = no_leader_since - t0; open = 1
        }
        printf "%d %d %d %d %d %d %d %d %d %d\n", pause, pause_at, baseline, rebalances, processed, trailing,
            leaderless, leaderless_at, doubles, open
    }' "$SAMPLES"
)

# The logs: `rebalance: assigned` lines written since the restart began, with their times.
ASSIGN_TIMES=$WORK/assigned
: >"$ASSIGN_TIMES"
LOG_ASSIGNED=0 LOG_ASSIGNED_NOTHING=0 MEMBERSHIP_LOGGED=''
for port in "${FR_PORTS[@]}"; do
    file=$(fr_logfile "$port")
    tail -c +"$((LOG_OFFSET[$port] + 1))" "$file" | sed 's/\x1b\[[0-9;]*m//g' >"$WORK/log-$port"
    n=$(grep -c 'rebalance: assigned' "$WORK/log-$port" || true)
    LOG_ASSIGNED=$((LOG_ASSIGNED + n))
    n=$(grep -c 'rebalance: assigned nothing' "$WORK/log-$port" || true)
    LOG_ASSIGNED_NOTHING=$((LOG_ASSIGNED_NOTHING + n))
    grep 'rebalance: assigned' "$WORK/log-$port" | awk '{print $1}' >>"$ASSIGN_TIMES" || true
    m=$(grep -o 'joining group [^ ]* ([^)]*)' "$WORK/log-$port" | tail -n 1 | sed 's/.*(\(.*\))/\1/' || true)
    [[ -z $m ]] || MEMBERSHIP_LOGGED=$m
done
# Group the assignment callbacks of all workers into rounds (callbacks less than 1 s apart are
# one round of the group's rebalance), with their times relative to T0.
ROUNDS=$(awk -v t0="$T0" '
    function days(y, m, d) { if (m <= 2) { y--; m += 12 }
        return 365 * y + int(y / 4) - int(y / 100) + int(y / 400) + int((153 * (m - 3) + 2) / 5) + d }
    function ms(s) {
        return ((days(substr(s, 1, 4) + 0, substr(s, 6, 2) + 0, substr(s, 9, 2) + 0) - days(1970, 1, 1)) * 86400 \
            + substr(s, 12, 2) * 3600 + substr(s, 15, 2) * 60 + substr(s, 18, 9)) * 1000
    }
    { print ms($1) - t0 }' "$ASSIGN_TIMES" | sort -n | awk '
    { if (NR == 1 || $1 - prev >= 1000) { n++; at[n] = $1 } prev = $1 }
    END { line = n + 0; for (i = 1; i <= n; i++) line = line " " sprintf("%+.1f", at[i] / 1000); print line }')
ROUND_COUNT=${ROUNDS%% *}
ROUND_TIMES=${ROUNDS#* }
[[ $ROUND_COUNT != "$ROUNDS" ]] || ROUND_TIMES=''

produced=$(cat "$WORK/produced" 2>/dev/null || echo '?')

# The broker's own account, when its log is at hand (scripts/kafka.sh's broker): rebalances of
# the agents' group (the group id is the app id) begun during the restart, and static members
# that rejoined without one. The broker writes local time, as `date` does here.
BROKER_LOG=${FAUST_RS_BROKER_LOG:-$FR_REPO_ROOT/.kafka/logs/server.log}
BROKER_REBALANCES='' BROKER_STATIC_REJOINS=''
if [[ -r $BROKER_LOG ]]; then
    from=$(date -d "@$((T0 / 1000))" '+%Y-%m-%d %H:%M:%S')
    to=$(date -d "@$((TEND / 1000 + 1))" '+%Y-%m-%d %H:%M:%S')
    awk -v from="[$from" -v to="[$to" '$0 >= from && $0 < to' "$BROKER_LOG" >"$WORK/broker.log" || true
    BROKER_REBALANCES=$(grep -cF "Preparing to rebalance group $FR_APP_ID in state" "$WORK/broker.log" || true)
    BROKER_STATIC_REJOINS=$(grep -F "joins group $FR_APP_ID in Stable state" "$WORK/broker.log" |
        grep -cF 'Replacing previously mapped member' || true)
fi

# The phase in which the longest pause began.
PAUSE_PHASE='after the restart'
while IFS=$'\t' read -r name start end _; do
    if ((PAUSE_AT + T0 >= start && PAUSE_AT + T0 <= end)); then
        PAUSE_PHASE=$name
    fi
done <"$PHASES"
((PAUSE_AT >= 0)) || PAUSE_PHASE='before the restart'

# ---------------------------------------------------------------------------------------------
# Summary.

echo
printf 'rolling restart of %s: %d worker(s), membership %s\n' "$FR_APP_ID" "$FR_COUNT" "$MEMBERSHIP"
[[ -z $MEMBERSHIP_LOGGED ]] || printf '  (the restarted workers log: %s)\n' "$MEMBERSHIP_LOGGED"
printf '%-28s %9s %8s  %s\n' PHASE START DURATION RESULT
while IFS=$'\t' read -r name start end note; do
    printf '%-28s %8ss %7ss  %s\n' "$name" "+$(fr_secs $((start - T0)))" "$(fr_secs $((end - start)))" "$note"
done <"$PHASES"
printf '%s\n' '--------------------------------------------------------------------------------'
printf '%-40s %s\n' 'restart duration' "$(fr_secs $((T1 - T0)))s"
if [[ -n $BROKER_REBALANCES ]]; then
    printf '%-40s %s\n' 'agent-group rebalances (broker log)' "$BROKER_REBALANCES (static members rejoined without one: $BROKER_STATIC_REJOINS)"
fi
printf '%-40s %s\n' 'assignment rounds (worker logs)' "$ROUND_COUNT${ROUND_TIMES:+  (at ${ROUND_TIMES// /s, }s)}"
printf '%-40s %s\n' "'rebalance: assigned' log lines" "$LOG_ASSIGNED (of which 'assigned nothing': $LOG_ASSIGNED_NOTHING)"
printf '%-40s %s\n' '/stats rebalances increments (sum)' "$STATS_REBALANCES"
if ((TRAILING)); then
    printf '%-40s %s\n' 'longest processing pause' ">= $(fr_secs "$PAUSE_MS")s from +$(fr_secs "$PAUSE_AT")s (processing had not resumed at the end)"
else
    printf '%-40s %s\n' 'longest processing pause' "$(fr_secs "$PAUSE_MS")s from +$(fr_secs "$PAUSE_AT")s (during: $PAUSE_PHASE)"
fi
printf '%-40s %s\n' 'longest gap before the restart' "$(fr_secs "$BASELINE_MS")s (sampling every ${SAMPLE_MS} ms)"
printf '%-40s %s\n' 'events processed from the restart on' "$PROCESSED (producer sent $produced at $RATE/s in all)"
if ((LEADERLESS_OPEN)); then
    printf '%-40s %s\n' 'longest time without a leader' ">= $(fr_secs "$LEADERLESS_MS")s from +$(fr_secs "$LEADERLESS_AT")s (still no leader at the end)"
elif ((LEADERLESS_MS > 0)); then
    printf '%-40s %s\n' 'longest time without a leader' "$(fr_secs "$LEADERLESS_MS")s from +$(fr_secs "$LEADERLESS_AT")s"
else
    printf '%-40s %s\n' 'longest time without a leader' "0s (a leader in every sample)"
fi
printf '%-40s %s\n' 'samples with two leaders' "$DOUBLE_TICKS"
printf '%-40s %s\n' 'leader before' "$LEADER_BEFORE"
printf '%-40s %s\n' 'leader after' "$LEADER_AFTER"
printf '%-40s %s\n' 'samples and logs' "$WORK"
if ((DOUBLE_TICKS > 0)); then
    fr_warn "two workers claimed leadership in $DOUBLE_TICKS sample(s): see $SAMPLES"
fi
if ((!resumed)); then
    fr_warn "processing did not run steadily for ${SETTLE}s within 60s after the restart"
    exit 1
fi
