#!/usr/bin/env bash
# bench/load.sh — issue 10: does the control plane keep its pace under agent load? WORKERS
# workers of one app whose agent burns about 0.5 s of CPU per record (concurrency 2, 6
# partitions) and whose leader timer ticks every 0.5 s; RECORDS keyed records produced once all
# are ready. Prints the leader terms seen, the longest gap between leader ticks, the worst and
# 99th-percentile /health latency, the records processed and the processing wall time, then
# the issue's goals and whether each holds. Measured by bench/load.py (see its usage).
#
#   bench/load.sh [WORKERS] [RECORDS] [bench/load.py flags ...]     (defaults: 3 and 240)
#   e.g. bench/load.sh 3 240 --keep-logs --json /tmp/load.json --check
#
# Environment: FAUST_RS (the binary; default target/release/faust-rs, built with cargo only
# when FAUST_RS is unset and it is missing). Needs scripts/kafka.sh start and kcat.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

workers=3
records=240
if [[ ${1:-} =~ ^[0-9]+$ ]]; then workers=$1; shift; fi
if [[ ${1:-} =~ ^[0-9]+$ ]]; then records=$1; shift; fi

scripts/kafka.sh ping >/dev/null || { echo "no broker: run scripts/kafka.sh start" >&2; exit 1; }
if [[ -z ${FAUST_RS:-} && ! -x target/release/faust-rs ]]; then
    cargo build --release --quiet
fi

exec python3 bench/load.py --workers "$workers" --records "$records" "$@"
