#!/usr/bin/env bash
# scripts/check-tutorial.sh — the automated check of scripts/tutorial.sh, from a state with no
# broker running: tutorial.sh must start a broker, then three workers of the tutorial app, one
# of which leads and publishes while the `say` agent prints the greetings; an INT must stop them
# all with exit status 0.
#
# NOT run by CI (.ci/run): it starts a second Kafka broker (about 1 GB of heap) beside the
# project's own on 9092, which it never touches. That broker gets four free ports (KAFKA_PORT,
# KAFKA_CONTROLLER_PORT, KAFKA_SASL_SSL_PORT, KAFKA_MTLS_PORT) and a temporary KAFKA_HOME_DIR whose <version> folder is a symbolic
# link to the installed jar cache (<repo>/.kafka/<version>, or $KAFKA_HOME_DIR's), so nothing is
# downloaded again; the workers get free web ports (FAUST_RS_BASE_PORT) and a temporary run
# folder. Since the app file names its broker, tutorial.sh runs on a copy of
# configs/leader.toml whose `broker` is the check's broker (nothing else differs).
#
# Usage: scripts/check-tutorial.sh [--keep]    (--keep: keep the temporary folder)
# Prints PASS or FAIL with the reason; exit 0 on PASS, 1 on FAIL, 2 on a usage error.
# Environment: FAUST_RS (binary, as for tutorial.sh), CHECK_TUTORIAL_TIMEOUT (seconds from the
# start until a leader publishes and greetings are printed; default 180, the broker's start
# included), FAUST_RS_STOP_TIMEOUT (tutorial.sh's bound on the workers' shutdown, default 40).
set -euo pipefail

# shellcheck source=scripts/lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"

KEEP=0
case ${1:-} in
'') ;;
--keep) KEEP=1 ;;
-h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
*) usage_error "unknown argument '$1'" ;;
esac

TIMEOUT=${CHECK_TUTORIAL_TIMEOUT:-180}
need_number CHECK_TUTORIAL_TIMEOUT "$TIMEOUT"
STOP_TIMEOUT=${FAUST_RS_STOP_TIMEOUT:-40}
need_number FAUST_RS_STOP_TIMEOUT "$STOP_TIMEOUT"
WORKERS=3
KAFKA_SH=$FR_REPO_ROOT/scripts/kafka.sh
TUTORIAL_SH=$FR_REPO_ROOT/scripts/tutorial.sh
fr_require curl jq ss setsid flock sed

fr_now
T0=$FR_NOW_MS
TMP=''
TUTORIAL_PID=''
BROKER_ENV=()

elapsed() {
    fr_now
    fr_secs $((FR_NOW_MS - T0))
}

# fail REASON: prints FAIL (and the tail of tutorial.sh's output), cleans up, exits 1.
fail() {
    if [[ -n $TMP && -s $TMP/tutorial.out ]]; then
        printf -- '--- the last lines of tutorial.sh'\''s output:\n' >&2
        tail -n 40 "$TMP/tutorial.out" >&2
        printf -- '---\n' >&2
    fi
    printf '%s: FAIL: %s (after %ss)\n' "$FR_PROG" "$*" "$(elapsed)"
    exit 1
}

# Always: no tutorial.sh, worker or broker of this check outlives it; the temporary folder goes.
cleanup() {
    set +e
    if [[ -n $TUTORIAL_PID ]] && [[ -e /proc/$TUTORIAL_PID ]]; then
        kill -TERM -- "-$TUTORIAL_PID" 2>/dev/null # its process group (tutorial.sh stops its workers)
        local i
        for ((i = 0; i < (STOP_TIMEOUT + 10) * 10; i++)); do
            [[ -e /proc/$TUTORIAL_PID ]] || break
            sleep 0.1
        done
        kill -KILL -- "-$TUTORIAL_PID" 2>/dev/null
    fi
    if [[ -n $TMP ]]; then
        # Workers in their own sessions, should tutorial.sh have been KILLed: by their pid files,
        # and only if their command line names our run folder.
        local file pid
        for file in "$TMP"/run/worker-*.pid; do
            [[ -s $file ]] || continue
            read -r pid <"$file"
            if [[ $pid =~ ^[0-9]+$ ]] &&
                [[ $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) == *"$TMP/run/"* ]]; then
                kill -KILL "$pid" 2>/dev/null
            fi
        done
        if ((${#BROKER_ENV[@]})); then
            env "${BROKER_ENV[@]}" "$KAFKA_SH" stop >"$TMP/kafka-stop.out" 2>&1 ||
                fr_warn "stopping the check's broker failed: $(cat "$TMP/kafka-stop.out")"
        fi
        if ((KEEP)); then
            fr_say "kept $TMP"
        else
            rm -rf "$TMP"
        fi
    fi
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM HUP

# free_ports COUNT → the first of COUNT consecutive ports that nothing listens on, picked at
# random in 20000..29999 (below the kernel's ephemeral range), none of them in $2 (a list).
free_ports() {
    local count=$1 avoid=${2:-} tries base i
    for ((tries = 0; tries < 200; tries++)); do
        base=$((20000 + RANDOM % (10000 - count)))
        for ((i = 0; i < count; i++)); do
            [[ " $avoid " != *" $((base + i)) "* ]] || continue 2
            ! fr_port_busy $((base + i)) || continue 2
        done
        printf '%s' "$base"
        return 0
    done
    return 1
}

# The check's own broker: free ports, a temporary home sharing the jar cache.
KAFKA_VERSION=${KAFKA_VERSION:-$(sed -n 's/^DEFAULT_KAFKA_VERSION=//p' "$KAFKA_SH")}
[[ -n $KAFKA_VERSION ]] || fail "cannot read DEFAULT_KAFKA_VERSION from $KAFKA_SH"
CACHE_HOME=${KAFKA_HOME_DIR:-$FR_REPO_ROOT/.kafka}
# The jars, in the cache the project's broker uses (a no-op once installed).
KAFKA_VERSION=$KAFKA_VERSION KAFKA_HOME_DIR=$CACHE_HOME "$KAFKA_SH" install >/dev/null ||
    fail "scripts/kafka.sh install failed"
[[ -d $CACHE_HOME/$KAFKA_VERSION/libs ]] || fail "no Kafka jars in $CACHE_HOME/$KAFKA_VERSION/libs"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/faust-rs-check-tutorial.XXXXXX")
mkdir -p "$TMP/kafka"
ln -s "$(cd "$CACHE_HOME/$KAFKA_VERSION" && pwd)" "$TMP/kafka/$KAFKA_VERSION"
KPORT=$(free_ports 4) || fail "no four free consecutive ports for the broker"
WPORT=$(free_ports "$WORKERS" "$KPORT $((KPORT + 1)) $((KPORT + 2)) $((KPORT + 3))") ||
    fail "no $WORKERS free consecutive web ports"
BROKER_ENV=(KAFKA_VERSION="$KAFKA_VERSION" KAFKA_PORT="$KPORT" KAFKA_CONTROLLER_PORT=$((KPORT + 1))
    KAFKA_SASL_SSL_PORT=$((KPORT + 2)) KAFKA_MTLS_PORT=$((KPORT + 3)) KAFKA_HOME_DIR="$TMP/kafka")
fr_say "broker 127.0.0.1:$KPORT (controller $((KPORT + 1))), web ports $WPORT..$((WPORT + WORKERS - 1)), in $TMP"

# Nothing may answer there yet: tutorial.sh is to start the broker.
if env "${BROKER_ENV[@]}" "$KAFKA_SH" ping; then
    BROKER_ENV=() # not ours: never stop it
    fail "a broker already answers on 127.0.0.1:$KPORT before tutorial.sh ran"
fi

# The tutorial app, pointed at the check's broker.
APP=$TMP/leader.toml
sed -E "s|^broker = \"kafka://localhost:9092\"$|broker = \"kafka://127.0.0.1:$KPORT\"|" \
    "$FR_REPO_ROOT/configs/leader.toml" >"$APP"
grep -q "^broker = \"kafka://127.0.0.1:$KPORT\"$" "$APP" ||
    fail "configs/leader.toml has no line 'broker = \"kafka://localhost:9092\"' to point at the check's broker"

# tutorial.sh in the background, in a process group of its own (set -m), so that it gets INT
# as from a terminal (a background job of a script would otherwise ignore INT).
OUT=$TMP/tutorial.out
: >"$OUT"
set -m
env "${BROKER_ENV[@]}" FAUST_RS_BASE_PORT="$WPORT" FAUST_RS_RUN_DIR="$TMP/run" \
    FAUST_RS_STOP_TIMEOUT="$STOP_TIMEOUT" "$TUTORIAL_SH" "$APP" "$WORKERS" >>"$OUT" 2>&1 </dev/null &
TUTORIAL_PID=$!
set +m
fr_say "started scripts/tutorial.sh $APP $WORKERS (pid $TUTORIAL_PID)"

# exited PID: true once our child PID has exited.
exited() {
    local stat
    # (read, not $(<file): under set -e a $(<file) of a missing file ends the shell.)
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 0
    stat=${stat##*) }
    [[ ${stat:0:1} == [ZX] ]]
}

PUBLISH_RE='^\[([0-9]+)\] PUBLISHING ON LEADER!$'
GREETING_RE='^\[([0-9]+)\] [0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$'
LEADS_RE='^tutorial\.sh: worker ([0-9]+) leads \(epoch [0-9]+\)$'

# Wait until the output shows one worker publishing (3 times) and the `say` agent printing
# greetings (2), the leader reported by tutorial.sh being the publisher.
declare -A publishers=() greeters=()
publishes=0 greetings=0 leader='' broker_ready_line=0 first_worker_line=0
deadline=$((T0 + TIMEOUT * 1000))
while :; do
    publishers=() greeters=()
    publishes=0 greetings=0 leader='' broker_ready_line=0 first_worker_line=0 n=0
    while IFS= read -r line; do
        n=$((n + 1))
        if [[ $line =~ $PUBLISH_RE ]]; then
            publishers[${BASH_REMATCH[1]}]=1
            publishes=$((publishes + 1))
        elif [[ $line =~ $GREETING_RE ]]; then
            greeters[${BASH_REMATCH[1]}]=1
            greetings=$((greetings + 1))
        elif [[ $line =~ $LEADS_RE ]]; then
            leader=${BASH_REMATCH[1]}
        elif [[ $line == 'kafka.sh: ready: '* ]]; then
            broker_ready_line=$n
        fi
        if ((first_worker_line == 0)) && [[ $line == '['[0-9]* ]]; then
            first_worker_line=$n
        fi
    done <"$OUT"
    if ((${#publishers[@]} > 1)); then
        fail "more than one worker printed PUBLISHING ON LEADER!: ${!publishers[*]}"
    fi
    if ((publishes >= 3 && greetings >= 2)) && [[ -n $leader ]]; then
        break
    fi
    if exited "$TUTORIAL_PID"; then
        fail "tutorial.sh exited before a leader published and greetings were printed"
    fi
    fr_now
    ((FR_NOW_MS < deadline)) ||
        fail "no leader publishing and greetings printed ${TIMEOUT}s after the start ($publishes PUBLISHING lines, $greetings greetings, leader '${leader:-none}')"
    sleep 0.2
done
((broker_ready_line > 0)) || fail "tutorial.sh did not start the broker (no 'kafka.sh: ready' line)"
((first_worker_line > broker_ready_line)) ||
    fail "a worker printed (line $first_worker_line) before the broker answered (line $broker_ready_line)"
publisher=${!publishers[*]}
[[ $publisher == "$leader" ]] ||
    fail "worker $publisher published, but tutorial.sh says worker $leader leads"
fr_say "after $(elapsed)s: worker $publisher leads and publishes ($publishes PUBLISHING lines), the say agent printed $greetings greetings (workers ${!greeters[*]})"

# INT, as Control-C would send; tutorial.sh stops the workers and must exit 0.
kill -INT "$TUTORIAL_PID"
fr_now
int_ms=$FR_NOW_MS
deadline=$((int_ms + (STOP_TIMEOUT + 20) * 1000))
until exited "$TUTORIAL_PID"; do
    fr_now
    ((FR_NOW_MS < deadline)) || fail "tutorial.sh still runs $((STOP_TIMEOUT + 20))s after INT"
    sleep 0.1
done
rc=0
wait "$TUTORIAL_PID" || rc=$?
TUTORIAL_PID=''
fr_now
fr_say "tutorial.sh exited $rc $(fr_secs $((FR_NOW_MS - int_ms)))s after INT"

# Every worker's status, as tutorial.sh printed it.
STATUS_RE='^tutorial\.sh: worker ([0-9]+) exited ([0-9]+)(.*)$'
declare -A statuses=() how=()
while IFS= read -r line; do
    if [[ $line =~ $STATUS_RE ]]; then
        statuses[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
        how[${BASH_REMATCH[1]}]=${BASH_REMATCH[3]}
    fi
done <"$OUT"
bad=()
for ((i = 0; i < WORKERS; i++)); do
    port=$((WPORT + i))
    if [[ -z ${statuses[$port]:-} ]]; then
        bad+=("worker $port: no exit status printed")
    elif [[ ${statuses[$port]} != 0 ]]; then
        bad+=("worker $port exited ${statuses[$port]}${how[$port]}")
    fi
done
grep '^tutorial\.sh: worker [0-9]* exited' "$OUT" | sed 's/^/  /' || true
if ((${#bad[@]})); then
    reason=${bad[0]}
    for ((i = 1; i < ${#bad[@]}; i++)); do
        reason+="; ${bad[i]}"
    done
    fail "$reason"
fi
((rc == 0)) || fail "tutorial.sh exited $rc"

# Not a failure, but worth seeing: the workers' warnings and errors before the INT (after it,
# each worker logs its warm shutdown at WARN).
warns=$(sed '/^tutorial\.sh: INT received$/q' "$OUT" | grep -E '^\[[0-9]+\] .* (WARN|ERROR) ' || true)
if [[ -n $warns ]]; then
    fr_say "note: $(wc -l <<<"$warns") WARN/ERROR line(s) in the workers' logs before the INT:"
    mapfile -t lines <<<"$warns"
    printf '  %s\n' "${lines[@]:0:30}"
fi

# The check's broker goes (the temporary folder goes in cleanup).
env "${BROKER_ENV[@]}" "$KAFKA_SH" stop >"$TMP/kafka-stop.out" 2>&1 ||
    fail "scripts/kafka.sh stop of the check's broker failed: $(cat "$TMP/kafka-stop.out")"
BROKER_ENV=()
! env KAFKA_PORT="$KPORT" "$KAFKA_SH" ping || fail "a broker still answers on 127.0.0.1:$KPORT after kafka.sh stop"

printf '%s: PASS: tutorial.sh started the broker, then %d workers; worker %s led and published, the say agent printed greetings; after INT every worker exited 0 and so did tutorial.sh (%ss in all)\n' \
    "$FR_PROG" "$WORKERS" "$publisher" "$(elapsed)"
