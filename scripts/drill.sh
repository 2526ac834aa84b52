#!/usr/bin/env bash
# scripts/drill.sh — the seed tutorial's "Seeing things in action" (shut down workers
# arbitrarily and watch the leader stay at exactly one worker), as pkill-style drills on a
# running scripts/workers.sh cluster.
set -euo pipefail

# shellcheck source=scripts/lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"

ALL_STEPS=(int-leader term-leader kill-leader quit-follower stop-leader term-random)

usage() {
    cat <<'EOF'
Usage: scripts/drill.sh [options] [APP]

Runs leader-election drills on the running workers.sh cluster of APP (default: the cluster
started last, else configs/leader.toml). With no worker running, starts one first:
scripts/workers.sh start 3 APP.

Steps (default: int-leader,term-leader,kill-leader,quit-follower,stop-leader,term-random):
  int-leader     INT the leader (Control-C in the tutorial): warm shutdown, hand-off first
  term-leader    TERM the leader
  kill-leader    KILL the leader (no hand-off: the other candidates see its process gone and
                 remove it from the election group), then start a fresh worker on its port
  quit-follower  QUIT a worker that does not lead (cold shutdown, exit 3)
  stop-leader    STOP the leader for longer than the election session timeout, then CONT it:
                 another worker must lead while it is stopped, and the resumed one must not
                 lead again beside it nor run a leader-only timer
  term-random    TERM a random worker
  usr2-leader    USR2 the leader (stand down; another candidate takes over)
  kill-random    KILL a random worker, then start a fresh one on its port
  term-pair      TERM a follower and right after it the leader (two warm shutdowns at once,
                 as in a rolling restart); needs a third worker to take over

Before each step, workers are started on free ports until at least --min-workers run. After a
step, the drill waits (up to --timeout) until exactly one live worker reports
this_worker_leads=true for the default election and every live worker names it as the leader,
then waits (up to --tick-timeout) for the leader's first run of a leader-only timer. It prints
one line per step: the step, the signal and its target, the target's exit status, the leader's
port, pid and epoch, the seconds from the signal to a single agreed leader (TOOK) and to its
first leader-only timer run (TICK).

Options:
  --steps A,B,C      the steps to run, in order (names above)
  --min-workers M    workers kept running before each step (default 2)
  --timeout S        deadline for a single leader after a step (default: the larger of 30 s and
                     5 election session timeouts, which `faust-rs check` prints)
  --tick-timeout S   deadline for the leader's first leader-only timer run (default 15; 0: skip)
  --seed N           seed for the random choices (default: random, printed)
  --no-restore       leave the cluster as the last step left it (default: restart the stopped
                     workers at the end)
  -h, --help         this help

Environment: FAUST_RS (binary), FAUST_RS_RUN_DIR (run folder), FAUST_RS_START_TIMEOUT (60).

Exit status: 0 every check passed; 1 two workers claimed leadership, none led by the deadline,
a leader-only timer did not run, a resumed leader ran one, a worker exited with an unexpected
status, or a worker did not start/stop; 2 usage error.
EOF
}

STEPS_ARG='' MIN_WORKERS=2 TIMEOUT='' TICK_TIMEOUT=15 SEED='' RESTORE=1 APP_ARG=''
START_TIMEOUT=${FAUST_RS_START_TIMEOUT:-60}

while (($#)); do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --steps)
        [[ -n ${2:-} ]] || usage_error "--steps needs a list"
        STEPS_ARG=$2
        shift
        ;;
    --min-workers)
        need_number "$1" "${2:-}"
        MIN_WORKERS=$2
        shift
        ;;
    --timeout)
        need_number "$1" "${2:-}"
        TIMEOUT=$2
        shift
        ;;
    --tick-timeout)
        need_number "$1" "${2:-}"
        TICK_TIMEOUT=$2
        shift
        ;;
    --seed)
        need_number "$1" "${2:-}"
        SEED=$2
        shift
        ;;
    --no-restore) RESTORE=0 ;;
    -*) usage_error "unknown option $1" ;;
    *)
        [[ -z $APP_ARG ]] || usage_error "unexpected argument '$1'"
        APP_ARG=$1
        ;;
    esac
    shift
done

STEPS=("${ALL_STEPS[@]}")
if [[ -n $STEPS_ARG ]]; then
    IFS=',' read -r -a STEPS <<<"$STEPS_ARG"
fi
for step in "${STEPS[@]}"; do
    case $step in
    int-leader | term-leader | kill-leader | quit-follower | stop-leader | term-random | usr2-leader | kill-random | term-pair) ;;
    *) usage_error "unknown step '$step'" ;;
    esac
done
((MIN_WORKERS >= 2)) || usage_error "--min-workers must be at least 2 (a leader needs a successor)"

fr_require curl jq setsid
fr_binary

# A running cluster, or start one.
WORKERS_SH=$FR_REPO_ROOT/scripts/workers.sh
status=0
"$WORKERS_SH" status ${APP_ARG:+"$APP_ARG"} >/dev/null 2>&1 || status=$?
if ((status == 3)); then
    fr_say "no cluster: starting one (scripts/workers.sh start 3 ${APP_ARG:-configs/leader.toml})"
    "$WORKERS_SH" start 3 "${APP_ARG:-$FR_DEFAULT_APP}" >/dev/null || fr_die "could not start the cluster"
fi
fr_locate "$APP_ARG"
if [[ -z $(fr_live_ports) ]]; then
    fr_say "no worker of $FR_APP_ID runs: starting the cluster again (scripts/workers.sh restart)"
    "$WORKERS_SH" restart >/dev/null || fr_die "could not start the cluster"
fi
((FR_COUNT >= MIN_WORKERS)) || fr_die "the cluster has $FR_COUNT worker(s); the drill needs at least $MIN_WORKERS (--min-workers)"

SESSION_MS=$FR_ELECTION_SESSION_TIMEOUT_MS
if [[ -z $TIMEOUT ]]; then
    TIMEOUT=$((5 * SESSION_MS / 1000))
    ((TIMEOUT >= 30)) || TIMEOUT=30
fi
[[ -n $SEED ]] || SEED=$((RANDOM * 32768 + RANDOM))
RANDOM=$((SEED % 32768))
LEADER_TIMERS_JSON=$(printf '%s\n' "${FR_LEADER_TIMERS[@]}" | jq -R . | jq -sc 'map(select(. != ""))')

FAILED=0

fail() {
    fr_warn "FAIL: $*"
    FAILED=1
}

# ---------------------------------------------------------------------------------------------
# Observing the cluster.

# answering_ports [EXCLUDE]: the live, running (not stopped) workers.
answering_ports() {
    local port out=()
    for port in "${FR_PORTS[@]}"; do
        [[ $port != "${1:-}" ]] || continue
        fr_alive "$port" || continue
        fr_stopped "$port" && continue
        out+=("$port")
    done
    printf '%s' "${out[*]}"
}

# leader_runs PORT → runs of the leader-only timers on that worker (empty if it does not answer).
leader_runs() {
    local body
    body=$(fr_http "$1" /stats) || return 0
    jq -r --argjson t "$LEADER_TIMERS_JSON" \
        '[.timers as $all | $t[] | ($all[.].runs // 0)] | add // 0' <<<"$body"
}

# skipped_runs PORT → skipped_not_leader of the leader-only timers.
skipped_runs() {
    local body
    body=$(fr_http "$1" /stats) || return 0
    jq -r --argjson t "$LEADER_TIMERS_JSON" \
        '[.timers as $all | $t[] | ($all[.].skipped_not_leader // 0)] | add // 0' <<<"$body"
}

# views [EXCLUDE]: one line per answering worker: "port leads epoch leader_worker leader_pid".
views() {
    local port view
    for port in $(answering_ports "${1:-}"); do
        view=$(fr_leader_view "$port") || continue
        printf '%s\t%s\n' "$port" "$view"
    done
}

show_views() {
    local port leads epoch worker pid
    while IFS=$'\t' read -r port leads epoch worker pid; do
        fr_warn "  worker $port: this_worker_leads=$leads epoch=$epoch leader=$worker (pid $pid)"
    done < <(views)
}

# wait_leader START_MS [--exited PORT] [--exclude PORT] [--min-ms MS] [--not PORT]: polls until
# exactly one answering worker leads and every answering worker names it (same worker, same
# epoch), and the conditions hold (PORT has exited; at least MS since START_MS; the leader is
# not PORT). Sets LEADER_PORT, LEADER_PID, LEADER_EPOCH, TOOK_MS. Returns 1 (after saying why)
# when two workers claim leadership, 2 at the deadline.
wait_leader() {
    local start=$1
    shift
    local exited='' exclude='' min_ms=0 not=''
    while (($#)); do
        case $1 in
        --exited) exited=$2 ;;
        --exclude) exclude=$2 ;;
        --min-ms) min_ms=$2 ;;
        --not) not=$2 ;;
        esac
        shift 2
    done
    local deadline=$((start + TIMEOUT * 1000)) port leads epoch worker pid
    local -a claims
    local agreed claim_worker claim_epoch lines first_ok=0
    while :; do
        claims=() agreed=1 claim_worker='' claim_epoch=''
        lines=$(views "$exclude")
        while IFS=$'\t' read -r port leads epoch worker pid; do
            [[ -n $port ]] || continue
            [[ $leads == true ]] && claims+=("$port")
        done <<<"$lines"
        if ((${#claims[@]} > 1)); then
            fail "${#claims[@]} workers claim leadership at once: ${claims[*]}"
            show_views
            return 1
        fi
        if ((${#claims[@]} == 1)); then
            while IFS=$'\t' read -r port leads epoch worker pid; do
                if [[ $port == "${claims[0]}" ]]; then
                    claim_worker=$worker claim_epoch=$epoch
                    LEADER_PID=$pid
                fi
            done <<<"$lines"
            while IFS=$'\t' read -r port leads epoch worker pid; do
                [[ $worker == "$claim_worker" && $epoch == "$claim_epoch" ]] || agreed=0
            done <<<"$lines"
        fi
        fr_now
        # TOOK is when the single agreed leader was first seen; --min-ms only holds the wait.
        if ((${#claims[@]} == 1 && agreed)) && [[ ${claims[0]} != "$not" ]] &&
            { [[ -z $exited ]] || ! fr_alive "$exited"; }; then
            ((first_ok > 0)) || first_ok=$FR_NOW_MS
            if ((FR_NOW_MS - start >= min_ms)); then
                LEADER_PORT=${claims[0]} LEADER_EPOCH=$claim_epoch TOOK_MS=$((first_ok - start))
                return 0
            fi
        else
            first_ok=0
        fi
        if ((FR_NOW_MS >= deadline)); then
            if [[ -n $exited ]] && fr_alive "$exited"; then
                fail "worker $exited has not exited ${TIMEOUT}s after the signal"
            elif ((${#claims[@]} == 0)); then
                fail "no live worker leads ${TIMEOUT}s after the signal"
            elif ((!agreed)); then
                fail "the workers do not agree on the leader ${TIMEOUT}s after the signal"
            else
                fail "no other worker took over from $not in ${TIMEOUT}s"
            fi
            show_views
            return 2
        fi
        sleep 0.1
    done
}

# wait_tick SIGNAL_MS BASELINE: waits for the leader's leader-only timers to run past BASELINE
# runs; sets TICK ("1.90s", or "-" without such timers or checks).
wait_tick() {
    local start=$1 baseline=$2 runs
    TICK=-
    ((${#FR_LEADER_TIMERS[@]} > 0 && TICK_TIMEOUT > 0)) || return 0
    local deadline=$((start + (TOOK_MS + TICK_TIMEOUT * 1000)))
    while :; do
        runs=$(leader_runs "$LEADER_PORT")
        fr_now
        if [[ -n $runs ]] && ((runs > baseline)); then
            TICK=$(fr_secs $((FR_NOW_MS - start)))s
            return 0
        fi
        if ((FR_NOW_MS >= deadline)); then
            fail "leader $LEADER_PORT ran no leader-only timer (${FR_LEADER_TIMERS[*]}) within ${TICK_TIMEOUT}s of leading"
            TICK=none
            return 1
        fi
        sleep 0.1
    done
}

# ---------------------------------------------------------------------------------------------
# Acting on it.

line() { # STEP SIGNAL TARGET RESULT
    printf '%-20s %-6s %-14s %-6s %-8s %-5s %7s %7s  %s\n' "$1" "$2" "$3" "${LEADER_PORT:--}" \
        "${LEADER_PID:--}" "${LEADER_EPOCH:--}" "$(fr_secs "${TOOK_MS:-0}")s" "${TICK:--}" "$4"
}

header() {
    printf '%-20s %-6s %-14s %-6s %-8s %-5s %7s %7s  %s\n' STEP SIGNAL TARGET LEADER PID EPOCH \
        TOOK TICK 'RESULT (target exit status, notes)'
}

# current_leader: sets LEADER_PORT etc. from a quick check (no signal).
current_leader() {
    fr_now
    wait_leader "$FR_NOW_MS"
}

# start_ports STEP PORT...: starts workers and checks the leader after they joined.
start_ports() {
    local step=$1 port
    shift
    fr_now
    local t0=$FR_NOW_MS baseline
    for port in "$@"; do
        fr_start_worker "$port"
    done
    if ! fr_wait_ready "$START_TIMEOUT" "$@"; then
        fail "$step: worker(s) $* did not start"
        return 1
    fi
    fr_wait_settled "$START_TIMEOUT" "$@" || fr_warn "$step: the group's assignment did not settle in ${START_TIMEOUT}s"
    local previous=${LEADER_PORT:-}
    wait_leader "$t0" || return 1
    TICK=-
    if [[ $LEADER_PORT != "$previous" ]]; then
        # A fresh worker starts from 0 runs; a worker that ran before may have some.
        baseline=0
        [[ " $* " == *" $LEADER_PORT "* ]] || baseline=$(leader_runs "$LEADER_PORT")
        wait_tick "$t0" "${baseline:-0}" || true
    fi
    local result=started
    if [[ -n $previous && $LEADER_PORT != "$previous" ]]; then
        result+="; the leadership moved from $previous"
        fr_warn "$step: starting $* moved the leadership from $previous to $LEADER_PORT"
    fi
    line "$step" start "+ ${*}" "$result"
}

# ensure_workers STEP: starts stopped ports until MIN_WORKERS answer.
ensure_workers() { # STEP [MIN]
    local -a live dead=() add=()
    local min=${2:-$MIN_WORKERS}
    ((min >= MIN_WORKERS)) || min=$MIN_WORKERS
    read -r -a live <<<"$(answering_ports)"
    local port
    for port in "${FR_PORTS[@]}"; do
        fr_alive "$port" || dead+=("$port")
    done
    local need=$((min - ${#live[@]}))
    ((need > 0)) || return 0
    ((${#dead[@]} >= need)) || fr_die "$1: only ${#live[@]} worker(s) run and $((${#dead[@]})) can be started; need $min"
    add=("${dead[@]:0:need}")
    start_ports "replenish" "${add[@]}"
}

random_of() {
    local -a items=("$@")
    printf '%s' "${items[RANDOM % ${#items[@]}]}"
}

exit_note() { # PORT EXPECTED...
    local port=$1 rc tries=0
    shift
    rc=$(fr_exit_code "$port")
    while [[ -z $rc ]] && ((tries++ < 40)); do
        sleep 0.05
        rc=$(fr_exit_code "$port")
    done
    local expected ok=0
    for expected in "$@"; do
        [[ $rc == "$expected" ]] && ok=1
    done
    ((ok)) || fail "worker $port exited with $(fr_describe_exit "$rc"), expected $*"
    printf '%s' "$(fr_describe_exit "$rc")"
}

# signal_step STEP SIGNAL TARGET_PORT EXPECTED_EXIT...: signals a worker that must exit, waits for
# the new single leader, prints the line.
signal_step() {
    local step=$1 signal=$2 target=$3
    shift 3
    local pid baseline others
    pid=$(fr_pid "$target")
    # The runs of every other worker now: the next leader's count must go past its own.
    declare -A before=()
    for others in $(answering_ports "$target"); do
        before[$others]=$(leader_runs "$others")
    done
    fr_now
    local t0=$FR_NOW_MS
    if ! kill -s "$signal" "$pid" 2>/dev/null; then
        fail "$step: worker $target (pid $pid) is gone"
        return 1
    fi
    if ! wait_leader "$t0" --exited "$target"; then
        local state=running
        fr_alive "$target" || state=$(exit_note "$target" "$@")
        line "$step" "$signal" "$target ($pid)" "$state"
        return 1
    fi
    local note
    note=$(exit_note "$target" "$@")
    baseline=${before[$LEADER_PORT]:-0}
    wait_tick "$t0" "${baseline:-0}" || true
    line "$step" "$signal" "$target ($pid)" "$note"
}

step_stop_leader() {
    local target=$LEADER_PORT pid stop_ms baseline
    pid=$(fr_pid "$target")
    stop_ms=$((SESSION_MS + 1000))
    declare -A before=()
    local other
    for other in $(answering_ports "$target"); do
        before[$other]=$(leader_runs "$other")
    done
    fr_now
    local t0=$FR_NOW_MS
    if ! kill -STOP "$pid" 2>/dev/null; then
        fail "stop-leader: worker $target (pid $pid) is gone"
        return 1
    fi
    # Another worker leads (and runs the leader's timers)...
    if ! wait_leader "$t0" --exclude "$target" --not "$target"; then
        kill -CONT "$pid" 2>/dev/null || true
        line stop-leader STOP "$target ($pid)" stopped
        return 1
    fi
    baseline=${before[$LEADER_PORT]:-0}
    wait_tick "$t0" "${baseline:-0}" || true
    # ... and the target stays stopped past the session timeout, with one leader throughout.
    local took=$TOOK_MS tick=$TICK first=$LEADER_PORT
    if ! wait_leader "$t0" --exclude "$target" --min-ms "$stop_ms" --not "$target"; then
        kill -CONT "$pid" 2>/dev/null || true
        line stop-leader STOP "$target ($pid)" stopped
        return 1
    fi
    [[ $LEADER_PORT == "$first" ]] || fr_warn "stop-leader: the leadership moved from $first to $LEADER_PORT while $target was stopped"
    TOOK_MS=$took TICK=$tick
    fr_now
    line stop-leader STOP "$target ($pid)" "stopped $(fr_secs $((FR_NOW_MS - t0)))s"
    local new_leader=$LEADER_PORT
    # Resume it: it must not lead beside the new leader, nor run a leader-only timer.
    fr_now
    t0=$FR_NOW_MS
    kill -CONT "$pid" 2>/dev/null || true
    local target_runs0='' target_skipped0=''
    # Its first answers after CONT.
    local deadline=$((t0 + 5000))
    while [[ -z $target_runs0 ]]; do
        target_runs0=$(leader_runs "$target")
        target_skipped0=$(skipped_runs "$target")
        fr_now
        ((FR_NOW_MS < deadline)) || break
        [[ -n $target_runs0 ]] || sleep 0.05
    done
    TICK=-
    if ! wait_leader "$t0"; then
        line stop-leader CONT "$target ($pid)" resumed
        return 1
    fi
    local note="resumed"
    if [[ $LEADER_PORT == "$target" ]]; then
        note+=", leads again"
        fr_warn "stop-leader: the resumed worker $target leads again (the leadership moved back)"
    fi
    # Fencing: over one more timer period, the resumed worker (if it does not lead) runs no
    # leader-only timer; its skipped_not_leader count shows that the timer fired and was fenced.
    if [[ $LEADER_PORT != "$target" && -n $target_runs0 ]] && ((${#FR_LEADER_TIMERS[@]} > 0)); then
        local runs_now skipped_now
        deadline=$((t0 + TIMEOUT * 1000))
        while :; do
            runs_now=$(leader_runs "$target")
            skipped_now=$(skipped_runs "$target")
            fr_now
            if [[ -n $runs_now && $runs_now -gt $target_runs0 ]]; then
                fail "stop-leader: the resumed worker $target ran a leader-only timer $((runs_now - target_runs0)) time(s) after CONT although $LEADER_PORT leads"
                note+=", ran the leader timer!"
                break
            fi
            if [[ -n $skipped_now && $skipped_now -gt ${target_skipped0:-0} ]]; then
                note+=", fenced (timer skipped)"
                break
            fi
            ((FR_NOW_MS < deadline)) || {
                note+=", timer not seen"
                break
            }
            sleep 0.1
        done
    fi
    fr_now
    TOOK_MS=$((FR_NOW_MS - t0))
    line stop-leader CONT "$target ($pid)" "$note"
    [[ $LEADER_PORT == "$new_leader" ]] || fr_warn "stop-leader: the leadership moved from $new_leader to $LEADER_PORT after CONT"
}

step_usr2_leader() {
    local target=$LEADER_PORT pid
    pid=$(fr_pid "$target")
    declare -A before=()
    local other
    for other in $(answering_ports "$target"); do
        before[$other]=$(leader_runs "$other")
    done
    fr_now
    local t0=$FR_NOW_MS
    if ! kill -USR2 "$pid" 2>/dev/null; then
        fail "usr2-leader: worker $target (pid $pid) is gone"
        return 1
    fi
    if ! wait_leader "$t0" --not "$target"; then
        line usr2-leader USR2 "$target ($pid)" running
        return 1
    fi
    wait_tick "$t0" "${before[$LEADER_PORT]:-0}" || true
    line usr2-leader USR2 "$target ($pid)" "running (stood down)"
}

# step_term_pair: TERM a follower and, right after, the leader (two warm shutdowns at once, as in
# the second half of a rolling restart); a third worker must take over.
step_term_pair() {
    local follower=$1 leader=$LEADER_PORT fpid lpid
    fpid=$(fr_pid "$follower")
    lpid=$(fr_pid "$leader")
    declare -A before=()
    local other
    for other in $(answering_ports); do
        before[$other]=$(leader_runs "$other")
    done
    fr_now
    local t0=$FR_NOW_MS
    if ! kill -TERM "$fpid" 2>/dev/null || ! kill -TERM "$lpid" 2>/dev/null; then
        fail "term-pair: worker $follower or $leader is gone"
        return 1
    fi
    if ! wait_leader "$t0" --exited "$leader" --not "$leader"; then
        line term-pair TERM "$follower+$leader" "-"
        return 1
    fi
    local note
    note="$(exit_note "$follower" 0), $(exit_note "$leader" 0)"
    wait_tick "$t0" "${before[$LEADER_PORT]:-0}" || true
    line term-pair TERM "$follower+$leader" "$note"
}

run_step() {
    local step=$1 target
    if [[ $step == term-pair ]]; then
        ensure_workers "$step" 3 || return 1
    else
        ensure_workers "$step" || return 1
    fi
    current_leader || return 1
    local -a followers=() live
    read -r -a live <<<"$(answering_ports)"
    for target in "${live[@]}"; do
        [[ $target == "$LEADER_PORT" ]] || followers+=("$target")
    done
    case $step in
    int-leader) signal_step "$step" INT "$LEADER_PORT" 0 ;;
    term-leader) signal_step "$step" TERM "$LEADER_PORT" 0 ;;
    kill-leader)
        target=$LEADER_PORT
        signal_step "$step" KILL "$target" 137 || return 1
        start_ports "$step (fresh)" "$target"
        ;;
    quit-follower)
        ((${#followers[@]})) || fr_die "quit-follower: no follower"
        signal_step "$step" QUIT "$(random_of "${followers[@]}")" 3
        ;;
    stop-leader) step_stop_leader ;;
    term-random) signal_step "$step" TERM "$(random_of "${live[@]}")" 0 ;;
    usr2-leader) step_usr2_leader ;;
    term-pair) step_term_pair "$(random_of "${followers[@]}")" ;;
    kill-random)
        target=$(random_of "${live[@]}")
        signal_step "$step" KILL "$target" 137 || return 1
        start_ports "$step (fresh)" "$target"
        ;;
    esac
}

# ---------------------------------------------------------------------------------------------

cleanup_stopped() {
    # Never leave a worker stopped behind (interrupted during stop-leader).
    local port
    for port in "${FR_PORTS[@]}"; do
        if fr_alive "$port" && fr_stopped "$port"; then
            kill -CONT "$(fr_pid "$port")" 2>/dev/null || true
        fi
    done
    return 0
}
trap cleanup_stopped EXIT

fr_say "$FR_APP_ID: ${FR_COUNT} worker(s) on ports ${FR_PORTS[*]}, election session timeout $(fr_secs "$SESSION_MS")s, election ${FR_ELECTION:-default}, leader-only timers: ${FR_LEADER_TIMERS[*]:-none}"
fr_say "steps: ${STEPS[*]}; deadline ${TIMEOUT}s per step; seed $SEED"
header
TICK=-
if ! current_leader; then
    line initial - - -
    exit 1
fi
line initial - - -

for step in "${STEPS[@]}"; do
    if ! run_step "$step"; then
        fr_warn "step $step failed; the cluster now:"
        "$WORKERS_SH" status >&2 || true
        exit 1
    fi
done

if ((RESTORE)); then
    dead=()
    for port in "${FR_PORTS[@]}"; do
        fr_alive "$port" || dead+=("$port")
    done
    if ((${#dead[@]})); then
        start_ports restore "${dead[@]}" || true
    fi
fi

if ((FAILED)); then
    fr_warn "drill finished with failures"
    exit 1
fi
fr_say "drill passed: exactly one leader after every step"
