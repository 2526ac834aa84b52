#!/usr/bin/env bash
# scripts/symbol-order.sh — regenerate link/symbol-order.txt, the functions an idle worker
# runs, which the release build's linker places first and together in the binary's code.
#
#   scripts/symbol-order.sh [--settle S]
#   scripts/symbol-order.sh --check
#
#   --settle S   seconds each phase idles once it is reached (default 30)
#   --check      build the release binary and count the listed functions it lacks; exits 1
#                when any is missing (the list is stale: regenerate it)
#
# Why: the kernel maps a binary's code into a process 64 KiB around every page it touches
# (fault-around), so an idle worker whose few MiB of live code lie scattered over 13 MiB of
# text keeps most of the text resident. Packed, it keeps only what it runs (README "Idle
# cost" has the figures).
#
# How: two workers of the leader tutorial (configs/leader.toml's app, fresh id) run under
# Valgrind's callgrind, which records every function that executed: both start and join the
# group, one leads and ticks, the web endpoints are asked once, the leader gets TERM and the
# other takes over, then it gets TERM too. Functions are written most executed first;
# symbols missing from a later build (renamed, rustc's hash moved) just fall back to the
# linker's default placement, so a stale list costs memory, never correctness. It goes stale
# more often than it looks: the optimizer numbers the local copies of a function
# (`name.1648`), and any change to the code can renumber a few of them; each one then keeps
# another 64 KiB of code resident. Run `--check` after changing the code, and regenerate
# after a rustc or dependency upgrade or when `--check` fails.
#
# Needs valgrind (a Debian package) and a broker (scripts/kafka.sh start). Environment:
# KAFKA_PORT (default 9092).
set -euo pipefail
# shellcheck source=scripts/lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"
# shellcheck source=scripts/lib/free-port.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/free-port.sh"
cd "$FR_REPO_ROOT"

settle=30
check=0
while (($#)); do
    case $1 in
        --settle) need_number "$1" "${2:-}"; settle=$2; shift 2 ;;
        --check) check=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) usage_error "unknown argument '$1'" ;;
    esac
done

if ((check)); then
    cargo build --release --quiet
    listed=$(grep -vc '^#' link/symbol-order.txt)
    missing=$(grep -v '^#' link/symbol-order.txt | sort -u |
        comm -23 - <(nm target/release/faust-rs | awk '{print $NF}' | sort -u) | wc -l)
    echo "symbol-order.sh: $missing of $listed listed functions are not in target/release/faust-rs"
    ((missing == 0)) || fr_die "link/symbol-order.txt is stale: run scripts/symbol-order.sh"
    exit 0
fi
command -v valgrind >/dev/null || fr_die "needs valgrind (apt-get install valgrind)"
# As users write it: by host name (resolving it, and the IPv6 address it may give, is code
# that runs too).
broker=localhost:${KAFKA_PORT:-9092}
scripts/kafka.sh ping >/dev/null 2>&1 || fr_die "no broker on $broker (scripts/kafka.sh start)"

cargo build --release --quiet
binary=$PWD/target/release/faust-rs
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

app_id=symbol-order-$$-$(date +%s)
sed -e "s/^id = .*/id = \"$app_id\"/" -e "s|^broker = .*|broker = \"kafka://$broker\"|" \
    configs/leader.toml >"$work/app.toml"
ports=()
for i in 0 1; do
    ports+=("$(fr_free_port)")
    valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
        --dump-instr=no --callgrind-out-file="$work/callgrind.$i" \
        "$binary" -A "$work/app.toml" --datadir "$work/data$i" worker -l info \
        --web-port "${ports[$i]}" >"$work/out.$i" 2>"$work/err.$i" &
    pids+=($!)
done

# await WHAT SECONDS COMMAND...: run COMMAND every 0.5 s until it succeeds.
await() {
    local what=$1 deadline=$((SECONDS + $2))
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { tail -n 20 "$work"/err.* >&2; fr_die "no $what within $2 s"; }
        sleep 0.5
    done
}
leader_of() { # the index of the worker whose output shows the leader's timer
    local i
    for i in 0 1; do grep -q 'PUBLISHING ON LEADER' "$work/out.$i" && { echo "$i"; return 0; }; done
    return 1
}
await "leader" 180 leader_of
sleep "$settle" # idling is what is being recorded
for i in 0 1; do
    for path in ready health leader assignment stats metrics; do
        curl -sf "http://127.0.0.1:${ports[$i]}/$path" >/dev/null || true
    done
done
first=$(leader_of)
other=$((1 - first))
: >"$work/out.$other"
kill -TERM "${pids[$first]}"
wait "${pids[$first]}" || fr_die "the leader exited with status $? on TERM"
await "hand-off" 120 grep -q 'PUBLISHING ON LEADER' "$work/out.$other"
sleep "$settle"
kill -TERM "${pids[$other]}"
wait "${pids[$other]}" || fr_die "the second worker exited with status $? on TERM"
pids=()

# Self cost per function of the binary, over both profiles; callgrind suffixes recursion
# levels ('2), names unsymbolized code by address (0x...) and the code before `main` as
# "(below main)": the suffixes and those names are dropped.
python3 - "$binary" "$work"/callgrind.* >link/symbol-order.txt <<'PY'
import collections, re, sys
binary, profiles = sys.argv[1], sys.argv[2:]
cost = collections.Counter()
for profile in profiles:
    in_binary, function, call_line_next = False, None, False
    for line in open(profile):
        if line.startswith("ob="):
            in_binary = line[3:].strip() == binary
        elif line.startswith("fn="):
            function = re.sub(r"'\d+$", "", line[3:].strip()) if in_binary else None
            if function:
                cost[function] += 0
        elif line.startswith("calls="):
            call_line_next = True  # the next cost line is the callee's, not this function's
        elif line[:1].isdigit() or line[:1] in "+-*":
            if call_line_next:
                call_line_next = False
            elif function:
                cost[function] += int(line.split()[1])
print("# Written by scripts/symbol-order.sh: the functions an idle worker runs, most executed")
print("# first, for the release build's linker (build.rs). Regenerate, never edit.")
for function, _ in cost.most_common():
    if not function.startswith("0x") and function != "(below main)":  # not symbols
        print(function)
PY
echo "symbol-order.sh: link/symbol-order.txt: $(grep -vc '^#' link/symbol-order.txt) functions"
