#!/usr/bin/env bash
# scripts/tutorial.sh — Faust's leader-election tutorial in one command: a broker, the release
# binary and N workers of an app in the foreground, their output interleaved line by line and
# prefixed by the worker's web port; Control-C stops them all warmly.
set -euo pipefail

# shellcheck source=scripts/lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"

usage() {
    cat <<'EOF'
Usage: scripts/tutorial.sh [APP] [N] [-- WORKER_ARGS...]

Runs the tutorial: N workers (default 3) of APP (default configs/leader.toml) in the
foreground, as the three terminals of Faust's tutorial would, in one:

  1. starts the project's Kafka broker (scripts/kafka.sh start, which installs Kafka on first
     use) unless one answers already (scripts/kafka.sh ping); it is left running afterwards
     (scripts/kafka.sh stop stops it);
  2. builds target/release/faust-rs (cargo build --release) if it is missing;
  3. starts `faust-rs -A APP worker -l info --web-port P --datadir DIR` for P = BASE..BASE+N-1,
     each with its own data directory, and prints their standard output and standard error
     interleaved line by line, each line prefixed by the worker's port:
       [6066] PUBLISHING ON LEADER!
     (the prefix coloured per worker when standard output is a terminal and NO_COLOR is unset);
  4. says which worker leads once one does, and again whenever that changes:
       tutorial.sh: worker 6067 leads (epoch 0)
     and reports any worker that exits on its own (try `kill -TERM <pid>` or
     `pkill -f 'web-port 6067'` from another terminal and watch the leadership move).

Control-C (INT) or TERM stops every worker warmly (TERM to each; a second Control-C sends
TERM again, which turns their shutdown cold), waits up to FAUST_RS_STOP_TIMEOUT seconds, then
KILLs what is left, and prints each worker's exit status:
  tutorial.sh: worker 6066 exited 0 (clean) after 0.52s
WORKER_ARGS go to every `faust-rs worker`; `{port}` in them becomes the worker's port.

Files (run folder): worker-PORT.pid, worker-PORT.cmd, data/worker-PORT/ (the --datadir),
tutorial.lock (one tutorial per run folder). Workers left running by a tutorial.sh that was
KILLed are stopped by the next run in the same folder.

Environment:
  FAUST_RS                the binary (default: target/release/faust-rs, built if missing)
  FAUST_RS_BASE_PORT      first web port (default 6066)
  FAUST_RS_RUN_DIR        run folder (default: .faust-rs/tutorial/<app id> in the repository)
  FAUST_RS_STOP_TIMEOUT   seconds to wait for the workers to exit after TERM (default 40)
  KAFKA_PORT, KAFKA_CONTROLLER_PORT, KAFKA_SASL_SSL_PORT, KAFKA_MTLS_PORT, KAFKA_HOME_DIR
                          passed to scripts/kafka.sh (its broker's ports and state folder);
                          the app's `broker` must name 127.0.0.1:$KAFKA_PORT (or localhost)
  NO_COLOR                set and non-empty: no colours

Exit status: 0 every worker exited 0; 1 some worker exited non-zero or was killed, the broker
or the build failed, or the tutorial was interrupted before its workers started; 2 usage error.
EOF
}

KAFKA_SH=$FR_REPO_ROOT/scripts/kafka.sh
STOP_TIMEOUT=${FAUST_RS_STOP_TIMEOUT:-40}
# Worker colours (ANSI): cyan, yellow, magenta, green, blue, red.
COLOURS=(36 33 35 32 34 31)

T_PORTS=()              # the workers' ports, in start order
declare -A T_LAUNCHER=() # port → pid of its launcher (our child; exits with the worker's status)
declare -A T_STATUS=()   # port → exit status, once reaped
T_SIGNAL=''              # the signal that asked us to stop
T_STOPPING=0
T_STOP_MS=0              # when t_stop began (ms)
T_LEADER_STATE=''        # the last leadership report, to print only changes

# The launcher of one worker, in a session of its own (setsid) so that a Control-C on the
# terminal reaches tutorial.sh only, never the workers or their prefixers: tutorial.sh then
# sends each worker exactly one TERM (a second one would turn its shutdown cold). It writes the
# worker's pid, pipes the worker's standard output and standard error through the prefixer and
# exits with the worker's status. Exported, so that its command line is just
# `bash -c tutorial_launch faust-tutorial-launcher` (no "faust-rs" in it: `pkill -f faust-rs`
# hits the workers only).
tutorial_launch() {
    local -a cmd
    mapfile -d '' -t cmd <"$T_CMD"
    {
        printf '%s\n' "$BASHPID" >"$T_PID.tmp" && mv -f "$T_PID.tmp" "$T_PID" && exec "${cmd[@]}"
    } </dev/null 2>&1 | sed -u "s/^/$T_PREFIX/"
    exit "${PIPESTATUS[0]}"
}
export -f tutorial_launch

# t_sleep SECONDS: a Control-C on the terminal also INTerrupts the sleep, which must not end the
# script (set -e) before the INT trap has had its say.
t_sleep() {
    sleep "$1" || true
}

# t_exited PID: true once our child PID has exited (a zombie, or already reaped by bash).
t_exited() {
    local stat
    # (read, not $(<file): under set -e a $(<file) of a missing file ends the shell.)
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 0
    stat=${stat##*) }
    [[ ${stat:0:1} == [ZX] ]]
}

# t_worker_pid PORT → the worker's pid (empty if its launcher has not written it).
t_worker_pid() {
    local pid=''
    [[ -s $FR_RUN_DIR/worker-$1.pid ]] && read -r pid <"$FR_RUN_DIR/worker-$1.pid"
    printf '%s' "$pid"
}

# t_reap [QUIET]: records the status of every worker whose launcher has exited, and says so.
t_reap() {
    local port lpid rc
    for port in "${T_PORTS[@]}"; do
        [[ -z ${T_STATUS[$port]+x} ]] || continue
        lpid=${T_LAUNCHER[$port]}
        t_exited "$lpid" || continue
        rc=0
        wait "$lpid" || rc=$?
        T_STATUS[$port]=$rc
        fr_now
        if ((T_STOPPING)); then
            fr_say "worker $port exited $(fr_describe_exit "$rc") after $(fr_secs $((FR_NOW_MS - T_STOP_MS)))s"
        else
            fr_say "worker $port exited $(fr_describe_exit "$rc") on its own"
        fi
    done
}

# t_live → the ports whose worker has not been reaped yet (space-separated).
t_live() {
    local port out=()
    for port in "${T_PORTS[@]}"; do
        [[ -n ${T_STATUS[$port]+x} ]] || out+=("$port")
    done
    printf '%s' "${out[*]}"
}

# t_signal_workers SIGNAL: sends SIGNAL to every live worker.
t_signal_workers() {
    local port pid
    for port in $(t_live); do
        pid=$(t_worker_pid "$port")
        if [[ -n $pid ]]; then
            kill -s "$1" "$pid" 2>/dev/null || true
        fi
    done
}

# t_stop: TERM every live worker, wait up to STOP_TIMEOUT, then KILL the rest (the worker, its
# prefixer and its launcher: the launcher's process group). Called again (from the EXIT trap),
# it only goes on waiting: a second TERM would turn the shutdown cold.
t_stop() {
    local live port
    if ((!T_STOPPING)); then
        T_STOPPING=1
        fr_now
        T_STOP_MS=$FR_NOW_MS
        t_reap
        live=$(t_live)
        [[ -n $live ]] || return 0
        fr_say "stopping worker(s) $live warmly (TERM; Control-C again turns the shutdown cold)"
        t_signal_workers TERM
    fi
    local deadline=$((T_STOP_MS + STOP_TIMEOUT * 1000))
    while :; do
        t_reap
        live=$(t_live)
        [[ -n $live ]] || return 0
        fr_now
        ((FR_NOW_MS < deadline)) || break
        t_sleep 0.1
    done
    fr_warn "worker(s) $live still running ${STOP_TIMEOUT}s after TERM: sending KILL"
    for port in $live; do
        kill -KILL -- "-${T_LAUNCHER[$port]}" 2>/dev/null || true
    done
    while [[ -n $(t_live) ]]; do
        t_reap
        t_sleep 0.05
    done
}

# A signal: stop (the main loop sees T_SIGNAL). While stopping: TERM again, i.e. cold.
t_on_signal() {
    if ((T_STOPPING)); then
        fr_say "$1 again: sending TERM again (a cold shutdown)"
        t_signal_workers TERM
    else
        T_SIGNAL=$1
    fi
}

# On any exit (an error included): no worker outlives tutorial.sh.
t_on_exit() {
    set +e
    if [[ -n $(t_live) ]]; then
        t_stop
    fi
}

# t_stop_orphans: stops workers a KILLed tutorial.sh left running in this run folder (their pid
# files name live processes with our --datadir).
t_stop_orphans() {
    local file pid cmdline port
    local -a orphans=()
    for file in "$FR_RUN_DIR"/worker-*.pid; do
        [[ -s $file ]] || continue
        read -r pid <"$file" || continue
        [[ $pid =~ ^[0-9]+$ ]] || continue
        port=${file##*/worker-}
        port=${port%.pid}
        cmdline=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || continue
        [[ $cmdline == *"--datadir $FR_RUN_DIR/data/worker-$port "* ]] || continue
        orphans+=("$pid")
    done
    ((${#orphans[@]})) || return 0
    fr_say "workers of an earlier tutorial.sh still run here (pids ${orphans[*]}): stopping them (TERM)"
    kill -TERM "${orphans[@]}" 2>/dev/null || true
    fr_now
    local deadline=$((FR_NOW_MS + STOP_TIMEOUT * 1000))
    for pid in "${orphans[@]}"; do
        while [[ -e /proc/$pid ]]; do
            fr_now
            if ((FR_NOW_MS >= deadline)); then
                kill -KILL "$pid" 2>/dev/null || true
            fi
            t_sleep 0.1
        done
    done
}

# t_check_interrupted: a signal before the workers started ends the tutorial here.
t_check_interrupted() {
    if [[ -n $T_SIGNAL ]]; then
        fr_warn "interrupted ($T_SIGNAL) before the workers started"
        exit 1
    fi
}

# t_app_uses_local_broker: the app's brokers include 127.0.0.1 / localhost on KAFKA_PORT.
t_app_uses_local_broker() {
    local broker
    local -a brokers
    IFS=, read -ra brokers <<<"$FR_BROKERS"
    for broker in "${brokers[@]}"; do
        case $broker in
        "127.0.0.1:$KAFKA_PORT" | "localhost:$KAFKA_PORT" | "[::1]:$KAFKA_PORT") return 0 ;;
        esac
    done
    return 1
}

# t_start_worker PORT INDEX: starts the worker of PORT under its launcher.
t_start_worker() {
    local port=$1 index=$2 datadir prefix pidfile cmdfile
    datadir=$FR_RUN_DIR/data/worker-$port
    pidfile=$FR_RUN_DIR/worker-$port.pid
    cmdfile=$FR_RUN_DIR/worker-$port.cmd
    mkdir -p "$datadir"
    rm -f "$pidfile"
    local -a cmd=("$FR_BIN" -A "$FR_APP" worker -l info --web-port "$port" --datadir "$datadir")
    cmd+=("${T_WORKER_ARGS[@]//\{port\}/$port}")
    printf '%s\0' "${cmd[@]}" >"$cmdfile"
    prefix="[$port] "
    if ((T_COLOUR)); then
        prefix=$'\e[1;'"${COLOURS[index % ${#COLOURS[@]}]}m[$port]"$'\e[0m '
    fi
    fr_say "starting worker $port: ${cmd[*]}"
    # The run folder's lock (fd T_LOCK_FD) is not passed on: it must die with tutorial.sh.
    T_CMD=$cmdfile T_PID=$pidfile T_PREFIX=$prefix \
        setsid -w bash -c tutorial_launch faust-tutorial-launcher {T_LOCK_FD}>&- &
    T_LAUNCHER[$port]=$!
    T_PORTS+=("$port")
    fr_now
    local deadline=$((FR_NOW_MS + 5000))
    until [[ -s $pidfile ]]; do
        t_exited "${T_LAUNCHER[$port]}" && return 0
        fr_now
        ((FR_NOW_MS < deadline)) || fr_die "worker $port: no pid file after 5 s"
        t_sleep 0.02
    done
}

# t_report_leader: polls GET /leader of the live workers; prints who leads when it changes.
t_report_leader() {
    [[ -n $FR_ELECTION ]] || return 0
    local port view leads epoch state
    local -a leaders=() epochs=()
    for port in $(t_live); do
        view=$(fr_leader_view "$port") || continue
        IFS=$'\t' read -r leads epoch _ _ <<<"$view"
        if [[ $leads == true ]]; then
            leaders+=("$port")
            epochs+=("$epoch")
        fi
    done
    if ((${#leaders[@]} == 1)); then
        state="worker ${leaders[0]} leads (epoch ${epochs[0]})"
    elif ((${#leaders[@]} > 1)); then
        state="workers ${leaders[*]} all claim to lead (epochs ${epochs[*]})"
    elif [[ -n $T_LEADER_STATE ]]; then
        state="no worker leads at the moment"
    else
        return 0
    fi
    if [[ $state != "$T_LEADER_STATE" ]]; then
        T_LEADER_STATE=$state
        fr_say "$state"
    fi
}

main() {
    local app=$FR_DEFAULT_APP count=3
    T_WORKER_ARGS=()
    case ${1:-} in -h | --help | help)
        usage
        return
        ;;
    esac
    if (($#)) && [[ $1 != -- ]]; then
        app=$1
        shift
    fi
    if (($#)) && [[ $1 != -- ]]; then
        count=$1
        shift
        [[ $count =~ ^[1-9][0-9]*$ ]] || usage_error "N must be a positive number, not '$count'"
    fi
    if (($#)); then
        [[ $1 == -- ]] || usage_error "unexpected argument '$1' (worker arguments go after --)"
        shift
        T_WORKER_ARGS=("$@")
    fi
    local base=${FAUST_RS_BASE_PORT:-6066}
    need_number FAUST_RS_BASE_PORT "$base"
    need_number FAUST_RS_STOP_TIMEOUT "$STOP_TIMEOUT"
    ((base + count - 1 <= 65535)) || usage_error "ports $base..$((base + count - 1)) are not all valid"
    fr_require curl jq setsid flock sed
    KAFKA_PORT=${KAFKA_PORT:-9092}
    T_COLOUR=0
    [[ -t 1 && -z ${NO_COLOR:-} ]] && T_COLOUR=1

    trap 't_on_signal INT' INT
    trap 't_on_signal TERM' TERM
    trap 't_on_signal HUP' HUP
    trap t_on_exit EXIT

    fr_resolve_app "$app"

    # 1. The broker, before anything else needs it.
    if "$KAFKA_SH" ping; then
        fr_say "a broker answers on 127.0.0.1:$KAFKA_PORT"
    else
        t_check_interrupted
        fr_say "no broker answers on 127.0.0.1:$KAFKA_PORT: starting one (scripts/kafka.sh start)"
        "$KAFKA_SH" start || {
            t_check_interrupted
            fr_die "scripts/kafka.sh start failed"
        }
    fi
    t_check_interrupted

    # 2. The binary and the app.
    fr_binary
    t_check_interrupted
    fr_app_info
    t_app_uses_local_broker ||
        fr_warn "note: the app's brokers ($FR_BROKERS) are not 127.0.0.1:$KAFKA_PORT, the broker checked above"
    t_run_dir

    # 3. The run folder: one tutorial at a time; workers a KILLed one left behind are stopped.
    mkdir -p "$FR_RUN_DIR/data"
    exec {T_LOCK_FD}>"$FR_RUN_DIR/tutorial.lock"
    flock -n "$T_LOCK_FD" || fr_die "another tutorial.sh runs in $FR_RUN_DIR"
    t_stop_orphans
    local port i
    for ((i = 0; i < count; i++)); do
        port=$((base + i))
        if fr_port_busy "$port"; then
            fr_die "port $port is in use by another process (set FAUST_RS_BASE_PORT, or stop it: scripts/workers.sh stop)"
        fi
    done
    t_check_interrupted

    # 4. The workers, in the foreground.
    fr_say "$FR_APP_ID ($FR_APP): $count worker(s) on ports $base..$((base + count - 1)), run folder $FR_RUN_DIR"
    fr_now
    local t0=$FR_NOW_MS ready_said=0
    for ((i = 0; i < count; i++)); do
        t_start_worker $((base + i)) "$i"
    done
    while [[ -z $T_SIGNAL ]]; do
        t_reap
        if [[ -z $(t_live) ]]; then
            fr_warn "every worker has exited"
            break
        fi
        if ((!ready_said)); then
            local all_ready=1
            for port in $(t_live); do
                fr_http "$port" /ready >/dev/null || {
                    all_ready=0
                    break
                }
            done
            if ((all_ready)); then
                ready_said=1
                fr_now
                fr_say "worker(s) $(t_live) ready after $(fr_secs $((FR_NOW_MS - t0)))s (Control-C stops them)"
            fi
        fi
        t_report_leader
        [[ -n $T_SIGNAL ]] && break
        t_sleep 0.5
    done
    [[ -z $T_SIGNAL ]] || fr_say "$T_SIGNAL received"
    t_stop

    local failed=()
    for port in "${T_PORTS[@]}"; do
        [[ ${T_STATUS[$port]} == 0 ]] || failed+=("$port")
    done
    if ((${#failed[@]} == 0)); then
        fr_say "all ${#T_PORTS[@]} worker(s) exited 0"
        return 0
    fi
    fr_warn "worker(s) ${failed[*]} did not exit 0"
    return 1
}

# The run folder: FAUST_RS_RUN_DIR, else .faust-rs/tutorial/<app id> (apart from the folders of
# scripts/workers.sh, so a tutorial never touches a workers.sh cluster's files).
t_run_dir() {
    if [[ -n ${FAUST_RS_RUN_DIR:-} ]]; then
        mkdir -p "$FAUST_RS_RUN_DIR"
        FR_RUN_DIR=$(cd "$FAUST_RS_RUN_DIR" && pwd)
    else
        FR_RUN_DIR=$FR_REPO_ROOT/.faust-rs/tutorial/${FR_APP_ID//\//_}
    fi
}

main "$@"
