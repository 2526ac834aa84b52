#!/usr/bin/env bash
# bench/failover.sh — leader fail-over of faust-rs and of Python Faust (faust-streaming), in one
# run on the same broker: 3 workers of the leader tutorial with the leader timer every 0.5 s,
# ROUNDS fail-overs of each kind (a fresh cluster each time), measured by bench/failover.py.
#
#   bench/failover.sh [ROUNDS] [FAUST_DEFAULT_ROUNDS]     (defaults: 10 and 3)
#
# Kinds: TERM of the leader, KILL of the leader, and for faust-rs a stand-down
# (`faust-rs leader --stand-down`; Python Faust has none). faust-rs runs twice: with its
# defaults (a KILLed leader is removed from the election group as soon as its web port refuses
# connections) and, for KILL only (FAUST_DEFAULT_ROUNDS rounds), as it was before that: no
# eviction, a 6 s election session timeout. Python Faust runs twice: with its default settings
# (60 s session timeout: FAUST_DEFAULT_ROUNDS rounds, each KILL round takes a minute or more)
# and with a 6 s session timeout. Prints, per kind, the leader gap
# (last tick of the old term -> first tick of the new one) and the time from the signal to the
# first new tick, as min / median / max, and the time from the old leader's last tick to the
# signal (the part of the gap no implementation controls: up to one timer interval). Needs
# scripts/kafka.sh start.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds=${1:-10}
faust_default_rounds=${2:-3}
interval=0.5
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

scripts/kafka.sh ping >/dev/null || { echo "no broker: run scripts/kafka.sh start" >&2; exit 1; }
cargo build --release --quiet

run() { # name, then bench/failover.py arguments
    local name=$1
    shift
    echo "== $name" >&2
    python3 bench/failover.py --interval "$interval" --phase-jitter 1.5 --json "$out/$name.json" "$@" >&2
}

run faust-rs --impl faust-rs --rounds "$rounds" --signals TERM,KILL,STANDDOWN --base-port 6200
run faust-rs-6s --impl faust-rs --rounds "$faust_default_rounds" --signals KILL --base-port 6230 \
    --app-line 'evict_dead_leaders = false' --app-line 'election_session_timeout = 6'
run faust-6s --impl faust --rounds "$rounds" --signals TERM,KILL --session-timeout 6 \
    --heartbeat-interval 1.5 --base-port 6210
run faust-default --impl faust --rounds "$faust_default_rounds" --signals TERM,KILL --base-port 6220

python3 - "$out" <<'PY'
import json, os, statistics, sys
rows = [('faust-rs', 'faust-rs, its defaults (dead leaders evicted)'),
        ('faust-rs-6s', 'faust-rs, no eviction, election session timeout 6 s (before)'),
        ('faust-6s', 'Faust, session timeout 6 s, heartbeat 1.5 s'),
        ('faust-default', 'Faust, default settings (session timeout 60 s, heartbeat 3 s)')]
fmt = lambda xs: f'{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f}'
print('| implementation | kind | rounds | leader gap s (min / median / max) | signal to new tick s | last old tick to signal s |')
print('| --- | --- | --- | --- | --- | --- |')
for key, label in rows:
    with open(os.path.join(sys.argv[1], key + '.json')) as f:
        results = json.load(f)['results']
    for kind in dict.fromkeys(r['signal'] for r in results):
        rs = [r for r in results if r['signal'] == kind]
        phase = [r['silent'] - r['gap'] for r in rs]
        print(f"| {label} | {kind} | {len(rs)} | {fmt([r['silent'] for r in rs])} | {fmt([r['gap'] for r in rs])} | {fmt(phase)} |")
    bad = [r for r in results if not r['one_leader']]
    if bad:
        print(f'| {label} | MORE THAN ONE LEADER in {len(bad)} rounds | | | |')
PY
