#!/usr/bin/env bash
# scripts/workers.sh — a local cluster of faust-rs workers for one app, as in Faust's workers
# guide: each worker with its own web port and data directory, logs under one folder.
set -euo pipefail

# shellcheck source=scripts/lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"

usage() {
    cat <<'EOF'
Usage: scripts/workers.sh <command> [args]

Commands:
  start N [APP] [-- WORKER_ARGS...]
            start N workers of APP (default configs/leader.toml) on ports BASE..BASE+N-1 and
            return once all are ready (GET /ready is 200) and the group's assignment has
            settled. A worker that dies or is not ready in time has its log tail shown and
            the command fails. WORKER_ARGS go to every `faust-rs worker`; `{port}` in them
            becomes the worker's port. If the same cluster (same N, APP, base port and
            WORKER_ARGS) partly runs, only its missing workers are started.
  stop [APP]    TERM every worker (warm shutdown), wait for them to exit, report exit statuses
  kill [APP]    KILL every worker
  status [APP]  a table: port, pid, alive, ready, leader, epoch, partitions, last exit status
  restart [APP] stop, then start the same workers with the same arguments
  leader [APP]  the current leader's port, pid and epoch (asked from every live worker)

Without APP, stop/kill/status/restart/leader use the cluster started last.

Files (run folder): cluster.conf, worker-PORT.{pid,rc,log,out,cmd}, data/worker-PORT/.
  worker-PORT.log is the worker's standard error (its log), worker-PORT.out its standard
  output (what agents and timers print), worker-PORT.rc its exit status once it exited.

Environment:
  FAUST_RS                the binary (default: target/release/faust-rs, built if missing)
  FAUST_RS_BASE_PORT      first web port (default 6066)
  FAUST_RS_RUN_DIR        run folder (default: .faust-rs/run/<app id> in the repository)
  FAUST_RS_START_TIMEOUT  seconds to wait for the workers to be ready (default 60)
  FAUST_RS_STOP_TIMEOUT   seconds to wait for them to exit after TERM (default 40)
  FAUST_RS_LOGLEVEL       the workers' log level (default: -l info)
  NO_COLOR                passed to the workers (default 1: plain text logs)

Exit status: 0 success; 1 failure (a worker died, was not ready, did not exit, or exited
non-zero on stop; status: some worker not alive and ready; leader: no leader);
2 usage error or two leaders (leader); 3 no cluster found.
EOF
}

START_TIMEOUT=${FAUST_RS_START_TIMEOUT:-60}
STOP_TIMEOUT=${FAUST_RS_STOP_TIMEOUT:-40}

cmd_start() {
    (($# >= 1)) || usage_error "start: missing N"
    local count=$1
    shift
    [[ $count =~ ^[1-9][0-9]*$ ]] || usage_error "start: N must be a positive number, not '$count'"
    local app=$FR_DEFAULT_APP
    if (($#)) && [[ $1 != -- ]]; then
        app=$1
        shift
    fi
    if (($#)); then
        [[ $1 == -- ]] || usage_error "start: unexpected argument '$1' (worker arguments go after --)"
        shift
    fi
    local base=${FAUST_RS_BASE_PORT:-6066}
    [[ $base =~ ^[0-9]+$ ]] || usage_error "FAUST_RS_BASE_PORT must be a port number"
    fr_binary
    fr_resolve_app "$app"
    fr_app_info
    fr_run_dir_for_app
    # Over a cluster that still runs in this folder: the same cluster (N, app, base port,
    # arguments) gets its missing workers started; anything else is refused.
    if [[ -f $FR_RUN_DIR/cluster.conf ]]; then
        local saved_app=$FR_APP
        fr_load
        local live
        live=$(fr_live_ports)
        if [[ -n $live ]]; then
            if [[ $FR_APP == "$saved_app" && $FR_COUNT == "$count" && $FR_BASE_PORT == "$base" ]] &&
                [[ "${FR_EXTRA_ARGS[*]}" == "$*" ]]; then
                start_all missing
                return
            fi
            fr_die "other workers still run in $FR_RUN_DIR (ports $live): stop them first, or use restart"
        fi
        FR_APP=$saved_app
        fr_app_info
    fi
    fr_save "$FR_APP" "$count" "$base" "$@"
    fr_load
    start_all
}

# Starts every worker of the loaded cluster and waits until all are ready.
# start_all [missing]: starts every worker of the loaded cluster (or those not running) and
# waits until all are ready and the group's assignment has settled.
start_all() {
    local port
    local -a ports=()
    for port in "${FR_PORTS[@]}"; do
        [[ ${1:-} == missing ]] && fr_alive "$port" && continue
        ports+=("$port")
    done
    if ((${#ports[@]} == 0)); then
        fr_say "all ${FR_COUNT} worker(s) of $FR_APP_ID already run"
        print_status
        return
    fi
    fr_say "starting ${#ports[@]} worker(s) of $FR_APP_ID (ports ${ports[*]}) in $FR_RUN_DIR"
    fr_now
    local t0=$FR_NOW_MS
    for port in "${ports[@]}"; do
        fr_start_worker "$port"
    done
    if ! fr_wait_ready "$START_TIMEOUT" "${ports[@]}"; then
        fr_warn "not every worker started: see scripts/workers.sh status"
        exit 1
    fi
    fr_now
    fr_say "${#ports[@]} worker(s) ready in $(fr_secs $((FR_NOW_MS - t0)))s"
    if fr_wait_settled "$START_TIMEOUT" "${ports[@]}"; then
        fr_now
        fr_say "partitions assigned to all, rebalance over after $(fr_secs $((FR_NOW_MS - t0)))s"
    else
        fr_warn "the group's assignment has not settled in ${START_TIMEOUT}s"
    fi
    if [[ -n $FR_ELECTION ]]; then
        local leader
        if leader=$(wait_for_leader "$START_TIMEOUT"); then
            fr_now
            fr_say "leader: $leader, $(fr_secs $((FR_NOW_MS - t0)))s after the start"
        else
            fr_warn "no worker leads election $FR_ELECTION ${START_TIMEOUT}s after the start (all --no-candidate?)"
        fi
    fi
    print_status
}

# wait_for_leader TIMEOUT_S → "PORT (pid P, epoch E)" once a live worker leads the default
# election; fails at the deadline.
wait_for_leader() {
    local port view leads epoch deadline
    fr_now
    deadline=$((FR_NOW_MS + $1 * 1000))
    while :; do
        for port in "${FR_PORTS[@]}"; do
            fr_alive "$port" || continue
            view=$(fr_leader_view "$port") || continue
            IFS=$'\t' read -r leads epoch _ _ <<<"$view"
            if [[ $leads == true ]]; then
                printf '%s (pid %s, epoch %s)' "$port" "$(fr_pid "$port")" "$epoch"
                return 0
            fi
        done
        fr_now
        ((FR_NOW_MS < deadline)) || return 1
        sleep 0.1
    done
}

# stop_all SIGNAL: signals every live worker and waits for them to exit.
stop_all() {
    local signal=$1 timeout=$2 port
    local -a live=()
    for port in "${FR_PORTS[@]}"; do
        fr_alive "$port" && live+=("$port")
    done
    if ((${#live[@]} == 0)); then
        fr_say "no worker of $FR_APP_ID is running"
        return 0
    fi
    fr_say "sending $signal to ${#live[@]} worker(s): ${live[*]}"
    for port in "${live[@]}"; do
        kill -s "$signal" "$(fr_pid "$port")" 2>/dev/null || true
        # A stopped worker (kill -STOP, Control-Z) handles the signal only once it runs again.
        if [[ $signal != KILL ]] && fr_stopped "$port"; then
            kill -CONT "$(fr_pid "$port")" 2>/dev/null || true
        fi
    done
    local status=0
    fr_wait_exit "$timeout" "${live[@]}" || status=$?
    case $status in
    0) fr_say "all stopped" ;;
    1)
        fr_warn "some workers did not exit in ${timeout}s (scripts/workers.sh kill ends them)"
        return 1
        ;;
    2)
        if [[ $signal == TERM ]]; then
            fr_warn "all stopped, but not every worker exited cleanly"
            return 1
        fi
        fr_say "all stopped"
        ;;
    esac
}

cmd_stop() {
    fr_locate "${1:-}"
    stop_all TERM "$STOP_TIMEOUT"
}

cmd_kill() {
    fr_locate "${1:-}"
    stop_all KILL 10
}

cmd_restart() {
    fr_binary
    fr_locate "${1:-}"
    stop_all TERM "$STOP_TIMEOUT" || fr_die "restart: stop failed, not starting again"
    start_all
}

# print_status: the table; returns 0 if every worker is alive and ready.
print_status() {
    local port pid alive ready leads epoch parts last view all_ok=0 leaders=0
    local n_alive=0 n_ready=0 assigned=0 leader_port=none
    printf '%s (%s), run folder %s\n' "$FR_APP_ID" "$FR_APP" "$FR_RUN_DIR"
    printf '%-6s %-8s %-8s %-6s %-7s %-6s %-6s %s\n' PORT PID ALIVE READY LEADER EPOCH PARTS 'LAST EXIT'
    for port in "${FR_PORTS[@]}"; do
        pid=$(fr_pid "$port")
        alive=no ready=- leads=- epoch=- parts=- last=-
        if fr_alive "$port"; then
            alive=yes n_alive=$((n_alive + 1))
            if fr_stopped "$port"; then
                alive=stopped
                all_ok=1
            else
                ready=no
                fr_ready "$port" && ready=yes n_ready=$((n_ready + 1))
                [[ $ready == yes ]] || all_ok=1
                if view=$(fr_leader_view "$port"); then
                    IFS=$'\t' read -r leads epoch _ _ <<<"$view"
                    if [[ $leads == true ]]; then
                        leads=yes leaders=$((leaders + 1)) leader_port=$port
                    fi
                    [[ $leads == false ]] && leads=no
                fi
                parts=$(fr_partitions "$port") || parts=-
                [[ $parts == - ]] || assigned=$((assigned + parts))
            fi
        else
            all_ok=1
            if [[ -n $pid ]]; then
                local rc
                rc=$(fr_exit_code "$port")
                if [[ -n $rc ]]; then
                    last=$(fr_describe_exit "$rc")
                else
                    last='unknown (stale pid file)'
                fi
            else
                pid=-
                last='never started'
            fi
        fi
        printf '%-6s %-8s %-8s %-6s %-7s %-6s %-6s %s\n' "$port" "$pid" "$alive" "$ready" \
            "$leads" "$epoch" "$parts" "$last"
    done
    printf '%d/%d alive, %d ready, leader: %s, agent partitions held: %d/%d\n' "$n_alive" \
        "$FR_COUNT" "$n_ready" "$leader_port" "$assigned" "$FR_AGENT_PARTITIONS"
    if ((n_ready > 0 && assigned < FR_AGENT_PARTITIONS)); then
        fr_warn "some agent partitions are not held by this cluster (a rebalance, or other members in group $FR_APP_ID)"
    fi
    if ((leaders > 1)); then
        fr_warn "$leaders workers claim leadership"
        all_ok=1
    fi
    return "$all_ok"
}

cmd_status() {
    fr_locate "${1:-}"
    print_status
}

cmd_leader() {
    fr_binary
    fr_locate "${1:-}"
    local port view leads epoch worker pid found=0
    for port in "${FR_PORTS[@]}"; do
        if ! fr_alive "$port" || fr_stopped "$port"; then
            continue
        fi
        view=$(fr_leader_view "$port") || continue
        IFS=$'\t' read -r leads epoch worker pid <<<"$view"
        [[ $leads == true ]] || continue
        found=$((found + 1))
        printf 'leader: port %s pid %s epoch %s (%s, election %s)\n' "$port" "$pid" "$epoch" \
            "$worker" "${FR_ELECTION:-default}"
    done
    # Kafka's view (the newest announcement on the election topic), for comparison.
    local kafka
    if kafka=$("$FR_BIN" -A "$FR_APP" leader 2>&1); then
        printf 'kafka:  %s\n' "$kafka"
    fi
    if ((found == 0)); then
        fr_warn "no live worker leads"
        return 1
    elif ((found > 1)); then
        fr_warn "$found workers claim leadership"
        return 2
    fi
}

main() {
    fr_require curl jq setsid
    (($#)) || {
        usage >&2
        exit 2
    }
    local command=$1
    shift
    case $command in
    -h | --help | help) usage ;;
    start) cmd_start "$@" ;;
    stop | kill | status | restart | leader)
        (($# <= 1)) || usage_error "$command: unexpected argument '$2'"
        if [[ ${1:-} == -h || ${1:-} == --help ]]; then
            usage
            return
        fi
        "cmd_$command" "$@"
        ;;
    *) usage_error "unknown command '$command'" ;;
    esac
}

main "$@"
