# shellcheck shell=bash
# shellcheck disable=SC2034  # the FR_* variables set here are read by the sourcing scripts
# scripts/lib/cluster.sh — the local worker cluster shared by scripts/workers.sh,
# scripts/rolling-restart.sh and scripts/drill.sh. Sourced, never run.
#
# A cluster lives in a run folder (FAUST_RS_RUN_DIR, default <repo>/.faust-rs/run/<app id>):
#   cluster.conf          app=, app_id=, count=, base_port= (written by `workers.sh start`)
#   worker.args           the extra worker arguments, NUL-separated ({port} is replaced)
#   worker-PORT.pid       the worker's pid (kept after it exits: aliveness is always re-checked)
#   worker-PORT.rc        its exit status, written when it exits (absent while running or if
#                         the launcher itself was killed)
#   worker-PORT.log       its standard error (the log), appended across restarts
#   worker-PORT.out       its standard output (the agents' and timers' print), appended
#   worker-PORT.cmd       the command line it was started with, NUL-separated
#   data/worker-PORT/     its --datadir
#
# Each worker runs under a small launcher (`bash -c fr_launch faust-worker-launcher`, in its own
# session) that records the exit status. Neither the launcher's command line nor any other
# helper's contains "faust-rs", so `pkill -f faust-rs` hits the workers only.

FR_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FR_DEFAULT_APP=$FR_REPO_ROOT/configs/leader.toml
FR_PROG=${0##*/}
FR_HTTP_TIMEOUT=${FAUST_RS_HTTP_TIMEOUT:-1}

fr_say() { printf '%s: %s\n' "$FR_PROG" "$*"; }
fr_warn() { printf '%s: %s\n' "$FR_PROG" "$*" >&2; }

# usage_error MESSAGE: a bad command line: say so, point at -h, exit 2.
usage_error() {
    fr_warn "$*"
    fr_warn "try: scripts/$FR_PROG -h"
    exit 2
}

# need_number FLAG VALUE: VALUE must be a whole number.
need_number() {
    [[ ${2:-} =~ ^[0-9]+$ ]] || usage_error "$1 needs a whole number, not '${2:-}'"
}
fr_die() {
    fr_warn "$*"
    exit 1
}

# FR_NOW_MS: milliseconds since the epoch, without a subprocess.
fr_now() {
    local t=${EPOCHREALTIME//[!0-9]/}
    FR_NOW_MS=$((10#$t / 1000))
}

# fr_secs MS → "1.23" (seconds with two decimals).
fr_secs() {
    local ms=$1 sign=''
    ((ms < 0)) && sign=- && ms=$((-ms))
    printf '%s%d.%02d' "$sign" $((ms / 1000)) $((ms % 1000 / 10))
}

fr_require() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 ||
            fr_die "$tool is required (apt-get install $tool; scripts/deps.sh installs kcat)"
    done
}

# Sets FR_BIN: $FAUST_RS, or target/release/faust-rs (built when missing).
fr_binary() {
    if [[ -n ${FAUST_RS:-} ]]; then
        if [[ $FAUST_RS == */* ]]; then
            [[ -x $FAUST_RS ]] || fr_die "FAUST_RS=$FAUST_RS is not an executable file"
            FR_BIN=$(cd "$(dirname "$FAUST_RS")" && pwd)/$(basename "$FAUST_RS")
        else
            FR_BIN=$(command -v "$FAUST_RS") || fr_die "FAUST_RS=$FAUST_RS is not on PATH"
        fi
        return
    fi
    FR_BIN=$FR_REPO_ROOT/target/release/faust-rs
    if [[ ! -x $FR_BIN ]]; then
        fr_say "building $FR_BIN (cargo build --release)"
        (cd "$FR_REPO_ROOT" && cargo build --release) >&2 || fr_die "cargo build --release failed"
    fi
}

# fr_resolve_app APP → FR_APP, an absolute path. APP is taken relative to the current
# directory first, then to the repository (so `configs/leader.toml` works from anywhere).
fr_resolve_app() {
    local app=$1
    if [[ ! -f $app && $app != /* && -f $FR_REPO_ROOT/$app ]]; then
        app=$FR_REPO_ROOT/$app
    fi
    [[ -f $app ]] || fr_die "no such app file: $1"
    FR_APP=$(cd "$(dirname "$app")" && pwd)/$(basename "$app")
}

# fr_app_info: `faust-rs -A $FR_APP check --json-output`, read into FR_APP_ID, FR_BROKERS (comma-separated),
# FR_SESSION_TIMEOUT_MS (the agents' group), FR_ELECTION_SESSION_TIMEOUT_MS, FR_ELECTION (the
# default election's name; empty if none found),
# FR_AGENT_TOPICS and FR_AGENT_PARTITIONS (their partitions in all), FR_LEADER_TIMERS (the
# timers that run on a leader only).
fr_app_info() {
    local out errors
    [[ -n ${FR_BIN:-} ]] || fr_binary
    errors=$(mktemp)
    if ! out=$("$FR_BIN" -A "$FR_APP" check --json-output 2>"$errors"); then
        cat "$errors" >&2
        rm -f "$errors"
        fr_die "$FR_APP is not a valid app (faust-rs check failed)"
    fi
    rm -f "$errors"
    FR_APP_ID=$(jq -r .id <<<"$out")
    FR_BROKERS=$(jq -r '.brokers | join(",")' <<<"$out")
    FR_SESSION_TIMEOUT_MS=$(jq -r '.session_timeout * 1000 | round' <<<"$out")
    FR_ELECTION_SESSION_TIMEOUT_MS=$(jq -r '.election_session_timeout * 1000 | round' <<<"$out")
    # The default election comes first.
    FR_ELECTION=$(jq -r '.elections[0].name // ""' <<<"$out")
    mapfile -t FR_AGENT_TOPICS < <(jq -r '[.agents[].topic] | unique | .[]' <<<"$out")
    FR_AGENT_PARTITIONS=$(jq -r '([.agents[].topic] | unique) as $mine
        | [.topics[] | select(.name as $n | $mine | index($n)) | .partitions] | add // 0' <<<"$out")
    mapfile -t FR_LEADER_TIMERS < <(jq -r '.elections[0].name as $default
        | .timers[] | select(.election == $default) | .name' <<<"$out")
}

# The run folder of the app in FR_APP_ID (FAUST_RS_RUN_DIR wins).
fr_run_dir_for_app() {
    if [[ -n ${FAUST_RS_RUN_DIR:-} ]]; then
        mkdir -p "$FAUST_RS_RUN_DIR"
        FR_RUN_DIR=$(cd "$FAUST_RS_RUN_DIR" && pwd)
    else
        FR_RUN_DIR=$FR_REPO_ROOT/.faust-rs/run/${FR_APP_ID//\//_}
    fi
}

FR_CURRENT_LINK=$FR_REPO_ROOT/.faust-rs/run/.current

# fr_locate [APP]: finds the run folder of an existing cluster and loads it. Without APP:
# FAUST_RS_RUN_DIR, else the cluster started last (.faust-rs/run/.current), else the default
# app's. Dies with status 3 when there is no cluster there.
fr_locate() {
    local app=${1:-}
    if [[ -n ${FAUST_RS_RUN_DIR:-} ]]; then
        [[ -d $FAUST_RS_RUN_DIR ]] || fr_die_no_cluster "$FAUST_RS_RUN_DIR"
        FR_RUN_DIR=$(cd "$FAUST_RS_RUN_DIR" && pwd)
    elif [[ -n $app ]]; then
        fr_resolve_app "$app"
        fr_app_info
        fr_run_dir_for_app
    elif [[ -L $FR_CURRENT_LINK && -f $FR_CURRENT_LINK/cluster.conf ]]; then
        FR_RUN_DIR=$(cd "$FR_CURRENT_LINK" && pwd -P)
    else
        fr_resolve_app "$FR_DEFAULT_APP"
        fr_app_info
        fr_run_dir_for_app
    fi
    [[ -f $FR_RUN_DIR/cluster.conf ]] || fr_die_no_cluster "$FR_RUN_DIR"
    fr_load
}

fr_die_no_cluster() {
    fr_warn "no cluster in $1 (start one with: scripts/workers.sh start N [APP])"
    exit 3
}

# fr_save APP COUNT BASE_PORT ARGS...: writes the cluster's description into FR_RUN_DIR.
fr_save() {
    local app=$1 count=$2 base=$3
    shift 3
    mkdir -p "$FR_RUN_DIR/data"
    {
        printf 'app=%s\n' "$app"
        printf 'app_id=%s\n' "$FR_APP_ID"
        printf 'count=%s\n' "$count"
        printf 'base_port=%s\n' "$base"
    } >"$FR_RUN_DIR/cluster.conf"
    if (($#)); then
        printf '%s\0' "$@" >"$FR_RUN_DIR/worker.args"
    else
        : >"$FR_RUN_DIR/worker.args"
    fi
    if [[ -z ${FAUST_RS_RUN_DIR:-} ]]; then
        mkdir -p "$(dirname "$FR_CURRENT_LINK")"
        ln -sfn "$FR_RUN_DIR" "$FR_CURRENT_LINK"
    fi
}

# fr_load: reads FR_RUN_DIR/cluster.conf into FR_APP, FR_APP_ID, FR_COUNT, FR_BASE_PORT,
# FR_PORTS (array) and FR_EXTRA_ARGS (array), then the app's settings (fr_app_info).
fr_load() {
    local key value
    FR_APP='' FR_COUNT=0 FR_BASE_PORT=0
    while IFS='=' read -r key value; do
        case $key in
        app) FR_APP=$value ;;
        count) FR_COUNT=$value ;;
        base_port) FR_BASE_PORT=$value ;;
        esac
    done <"$FR_RUN_DIR/cluster.conf"
    [[ -f $FR_APP ]] || fr_die "$FR_RUN_DIR/cluster.conf: app file $FR_APP is gone"
    FR_EXTRA_ARGS=()
    if [[ -s $FR_RUN_DIR/worker.args ]]; then
        mapfile -d '' -t FR_EXTRA_ARGS <"$FR_RUN_DIR/worker.args"
    fi
    FR_PORTS=()
    local i
    for ((i = 0; i < FR_COUNT; i++)); do
        FR_PORTS+=($((FR_BASE_PORT + i)))
    done
    fr_app_info
}

fr_pidfile() { printf '%s/worker-%s.pid' "$FR_RUN_DIR" "$1"; }
fr_rcfile() { printf '%s/worker-%s.rc' "$FR_RUN_DIR" "$1"; }
fr_logfile() { printf '%s/worker-%s.log' "$FR_RUN_DIR" "$1"; }
fr_outfile() { printf '%s/worker-%s.out' "$FR_RUN_DIR" "$1"; }
fr_datadir() { printf '%s/data/worker-%s' "$FR_RUN_DIR" "$1"; }

# fr_pid PORT → the pid in the pid file (empty if none).
fr_pid() {
    local file
    file=$(fr_pidfile "$1")
    [[ -s $file ]] || return 0
    local pid
    read -r pid <"$file" || true
    [[ $pid =~ ^[0-9]+$ ]] && printf '%s' "$pid"
    return 0
}

# fr_alive PORT: true if the pid file names a live process that is this port's worker (its
# command line has our --datadir), so a stale pid file or a reused pid never counts.
fr_alive() {
    local pid cmdline
    pid=$(fr_pid "$1")
    [[ -n $pid ]] || return 1
    if [[ -d /proc/$pid ]]; then
        cmdline=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || return 1
    else
        cmdline=$(ps -ww -o args= -p "$pid" 2>/dev/null) || return 1
    fi
    # The launcher's subshell holds the pid for an instant before it execs the worker.
    [[ $cmdline == *"--datadir $(fr_datadir "$1") "* || $cmdline == *faust-worker-launcher* ]]
}

# fr_stopped PORT: true if the worker is stopped (SIGSTOP / job control).
fr_stopped() {
    local pid stat
    pid=$(fr_pid "$1")
    [[ -n $pid && -r /proc/$pid/stat ]] || return 1
    { stat=$(<"/proc/$pid/stat"); } 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} == [Tt] ]]
}

# fr_exit_code PORT → the recorded exit status (empty if none).
fr_exit_code() {
    local file rc
    file=$(fr_rcfile "$1")
    [[ -s $file ]] || return 0
    read -r rc <"$file" || true
    printf '%s' "$rc"
}

# fr_describe_exit STATUS → "0 (clean)" etc. (the statuses of src/exit.rs, and 128+signal).
fr_describe_exit() {
    local rc=$1
    case $rc in
    '') printf 'unknown' ;;
    0) printf '0 (clean)' ;;
    1) printf '1 (runtime error)' ;;
    2) printf '2 (config error)' ;;
    3) printf '3 (cold shutdown)' ;;
    *)
        if ((rc > 128)); then
            printf '%s (killed by SIG%s)' "$rc" "$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"
        else
            printf '%s' "$rc"
        fi
        ;;
    esac
}

# fr_http PORT PATH → the body (fails if the worker does not answer in time).
fr_http() {
    curl -sf -m "$FR_HTTP_TIMEOUT" "http://127.0.0.1:$1$2"
}

# fr_ready PORT: /ready answers 200 and / names our pid (not some other process on the port).
fr_ready() {
    local pid body
    pid=$(fr_pid "$1")
    [[ -n $pid ]] || return 1
    fr_http "$1" /ready >/dev/null || return 1
    body=$(fr_http "$1" /) || return 1
    [[ $body == *"\"pid\":$pid,"* || $body == *"\"pid\":$pid}"* ]]
}

fr_port_busy() {
    if command -v ss >/dev/null 2>&1; then
        [[ -n $(ss -Htln "sport = :$1" 2>/dev/null) ]]
    else
        curl -s -m 0.5 -o /dev/null "http://127.0.0.1:$1/"
    fi
}

# The launcher: runs the worker in the foreground, so that it is reaped here and its status
# recorded. Exported so that its command line is just `bash -c fr_launch faust-worker-launcher`.
fr_launch() {
    local -a cmd
    mapfile -d '' -t cmd <"$W_CMD"
    (
        printf '%s\n' "$BASHPID" >"$W_PID.tmp" && mv -f "$W_PID.tmp" "$W_PID" && exec "${cmd[@]}"
    ) </dev/null >>"$W_OUT" 2>>"$W_LOG"
    printf '%s\n' "$?" >"$W_RC"
}
export -f fr_launch

# fr_start_worker PORT: starts the worker of PORT in the background (does not wait for ready).
fr_start_worker() {
    local port=$1 pid
    if fr_alive "$port"; then
        fr_die "worker $port is already running (pid $(fr_pid "$port"))"
    fi
    if fr_port_busy "$port"; then
        fr_die "port $port is already in use by another process"
    fi
    local datadir pidfile cmdfile
    datadir=$(fr_datadir "$port")
    pidfile=$(fr_pidfile "$port")
    cmdfile=$FR_RUN_DIR/worker-$port.cmd
    mkdir -p "$datadir"
    rm -f "$pidfile" "$(fr_rcfile "$port")"
    local -a cmd=("$FR_BIN" -A "$FR_APP")
    [[ -n ${FAUST_RS_LOGLEVEL:-} ]] || cmd+=(-l info)
    cmd+=(worker --web-port "$port" --datadir "$datadir")
    local arg has_bind=0
    for arg in "${FR_EXTRA_ARGS[@]}"; do
        [[ $arg == --web-bind* ]] && has_bind=1
    done
    ((has_bind)) || cmd+=(--web-bind 127.0.0.1)
    cmd+=("${FR_EXTRA_ARGS[@]//\{port\}/$port}")
    printf '%s\0' "${cmd[@]}" >"$cmdfile"
    printf '==== %s: %s starting worker %s: %s\n' "$(date -u +%FT%TZ)" "$FR_PROG" "$port" \
        "${cmd[*]}" >>"$(fr_logfile "$port")"
    # NO_COLOR: faust-rs colours its log even when standard error is a file.
    NO_COLOR=${NO_COLOR:-1} W_CMD=$cmdfile W_PID=$pidfile W_RC=$(fr_rcfile "$port") \
        W_OUT=$(fr_outfile "$port") W_LOG=$(fr_logfile "$port") \
        setsid -f bash -c fr_launch faust-worker-launcher </dev/null >/dev/null 2>&1
    fr_now
    local deadline=$((FR_NOW_MS + 5000))
    while :; do
        pid=$(fr_pid "$port")
        [[ -n $pid ]] && break
        fr_now
        ((FR_NOW_MS < deadline)) || fr_die "worker $port: no pid file after 5 s"
        sleep 0.02
    done
}

# fr_log_tail PORT [LINES]: the end of a worker's log, without colours, indented.
fr_log_tail() {
    local file
    file=$(fr_logfile "$1")
    [[ -f $file ]] || return 0
    tail -n "${2:-15}" "$file" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    | /'
}

# fr_wait_ready TIMEOUT_S PORT...: waits until every given worker is ready. On a worker that
# dies, or on the deadline, shows the log tails and returns 1.
fr_wait_ready() {
    local timeout=$1
    shift
    local -a pending=("$@") still=()
    local port failed=0
    fr_now
    local deadline=$((FR_NOW_MS + timeout * 1000))
    while ((${#pending[@]})); do
        still=()
        for port in "${pending[@]}"; do
            if fr_ready "$port"; then
                continue
            elif ! fr_alive "$port"; then
                # The launcher writes the status right after the worker exits.
                local rc tries=0
                rc=$(fr_exit_code "$port")
                while [[ -z $rc ]] && ((tries++ < 20)); do
                    sleep 0.05
                    rc=$(fr_exit_code "$port")
                done
                fr_warn "worker $port died while starting: exit $(fr_describe_exit "$rc"); log tail:"
                fr_log_tail "$port" >&2
                failed=1
            else
                still+=("$port")
            fi
        done
        pending=("${still[@]}")
        ((${#pending[@]})) || break
        fr_now
        if ((FR_NOW_MS >= deadline)); then
            for port in "${pending[@]}"; do
                fr_warn "worker $port (pid $(fr_pid "$port")) not ready after ${timeout}s; log tail:"
                fr_log_tail "$port" >&2
            done
            return 1
        fi
        sleep 0.1
    done
    return "$failed"
}

# fr_wait_exit TIMEOUT_S PORT...: waits until the given workers have exited; prints one line per
# worker (exit status, seconds since the call). Returns 1 if some are still running at the
# deadline, 2 if all exited but some not with status 0.
fr_wait_exit() {
    local timeout=$1
    shift
    local -a pending=("$@") still=()
    local port start
    fr_now
    start=$FR_NOW_MS
    local deadline=$((start + timeout * 1000)) result=0
    while ((${#pending[@]})); do
        still=()
        for port in "${pending[@]}"; do
            if fr_alive "$port"; then
                still+=("$port")
                continue
            fi
            fr_now
            local took=$((FR_NOW_MS - start)) rc tries=0
            rc=$(fr_exit_code "$port")
            while [[ -z $rc ]] && ((tries++ < 20)); do
                sleep 0.05
                rc=$(fr_exit_code "$port")
            done
            printf '  worker %s (pid %s): exit %s after %ss\n' "$port" "$(fr_pid "$port")" \
                "$(fr_describe_exit "$rc")" "$(fr_secs "$took")"
            [[ $rc == 0 ]] || result=2
        done
        pending=("${still[@]}")
        ((${#pending[@]})) || break
        fr_now
        if ((FR_NOW_MS >= deadline)); then
            for port in "${pending[@]}"; do
                printf '  worker %s (pid %s): still running after %ss\n' "$port" \
                    "$(fr_pid "$port")" "$timeout"
            done
            return 1
        fi
        sleep 0.05
    done
    return "$result"
}

# fr_leader_view PORT → "LEADS EPOCH LEADER_WORKER LEADER_PID" for the default election (or the
# first one), tab-separated; fails if the worker does not answer.
fr_leader_view() {
    local body
    body=$(fr_http "$1" /leader) || return 1
    jq -r --arg e "$FR_ELECTION" '
        (if $e == "" or (.elections | has($e) | not)
         then (.elections | to_entries | .[0].value) else .elections[$e] end) as $x
        | [($x.this_worker_leads // false | tostring), ($x.epoch // "-" | tostring),
           ($x.leader.worker // "-"), ($x.leader.pid // "-" | tostring)] | @tsv' <<<"$body"
}

# fr_partitions PORT → how many partitions the worker is assigned.
fr_partitions() {
    local body
    body=$(fr_http "$1" /assignment) || return 1
    jq -r '[.assignment[] | length] | add // 0' <<<"$body"
}

# fr_settled PORT...: every given worker is ready, and the live workers between them hold all
# the agents' partitions, each at least one (when there are enough partitions): the group's
# rebalance is over. (A joining worker is ready as soon as it has an assignment, which may
# still be empty while the cooperative rebalance goes on.)
fr_settled() {
    local port parts total=0 live=0 empty=0
    for port in "$@"; do
        fr_ready "$port" || return 1
    done
    for port in "${FR_PORTS[@]}"; do
        if ! fr_alive "$port" || fr_stopped "$port"; then
            continue
        fi
        parts=$(fr_partitions "$port") || return 1
        live=$((live + 1))
        total=$((total + parts))
        ((parts > 0)) || empty=$((empty + 1))
    done
    ((FR_AGENT_PARTITIONS == 0)) && return 0
    ((total == FR_AGENT_PARTITIONS)) || return 1
    ((live > FR_AGENT_PARTITIONS || empty == 0))
}

# fr_wait_settled TIMEOUT_S PORT...: polls fr_settled; returns 1 at the deadline.
fr_wait_settled() {
    local timeout=$1
    shift
    fr_now
    local deadline=$((FR_NOW_MS + timeout * 1000))
    until fr_settled "$@"; do
        fr_now
        ((FR_NOW_MS < deadline)) || return 1
        sleep 0.1
    done
}

# fr_live_ports → the ports whose worker is alive (space-separated).
fr_live_ports() {
    local port out=()
    for port in "${FR_PORTS[@]}"; do
        fr_alive "$port" && out+=("$port")
    done
    printf '%s' "${out[*]}"
}
