#!/usr/bin/env bash
# scripts/test.sh — THE test command of faust-rs: `scripts/test.sh [cargo test args...]`.
#
# 1. scripts/deps.sh              machine packages (kcat, java 17+, mvn, C toolchain)
# 2. scripts/kafka.sh install     Kafka jars via Maven (no-op when cached in .kafka/)
# 3. scripts/kafka.sh start       a real broker on 127.0.0.1:${KAFKA_PORT:-9092} (no-op if running;
#                                 a broker already answering there from elsewhere is reused)
# 4. FAUST_RS_TEST_BROKER=127.0.0.1:$KAFKA_PORT and the FAUST_RS_TEST_* variables of
#    `scripts/kafka.sh clients-env` (its secured listeners: SASL_SSL, mTLS, CA, users, client
#    certificate) are exported, then: cargo test "$@"   (the run, after the build, is limited to
#    FAUST_RS_TEST_TIMEOUT, default 20m). A broker not started from this checkout gets
#    FAUST_RS_TEST_BROKER only: its secured listeners, if any, are unknown.
#
# 5. scripts/kafka.sh cluster start   the 3-node cluster (ports from KAFKA_CLUSTER_PORT, default
#    19092..19097; no-op if running), named in FAUST_RS_TEST_CLUSTER for tests/cluster.rs
#
# Exits with cargo's status. With CI=true a broker or cluster that this script started is stopped
# at the end; otherwise they are left running so that the next run starts in no time.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
export KAFKA_PORT=${KAFKA_PORT:-9092}

say() { printf 'test.sh: %s\n' "$*"; }

scripts/deps.sh
scripts/kafka.sh install

started_here=0
ours=1 # the broker is this checkout's
status=0
scripts/kafka.sh status >/dev/null 2>&1 || status=$?
if ((status == 3)) && scripts/kafka.sh ping; then
    say "a broker not started from this checkout answers on 127.0.0.1:$KAFKA_PORT; using it"
    ours=0
else
    ((status == 3)) && started_here=1
    scripts/kafka.sh start
fi

cluster_started_here=0
cluster_status=0
scripts/kafka.sh cluster status >/dev/null 2>&1 || cluster_status=$?
((cluster_status == 0)) || cluster_started_here=1

# shellcheck disable=SC2317  # called by the EXIT trap
finish() {
    if ((cluster_started_here)) && [[ ${CI:-} == true ]]; then
        scripts/kafka.sh cluster stop
    fi
    if ((started_here)) && [[ ${CI:-} == true ]]; then
        scripts/kafka.sh stop
    elif ((status != 3)) || ((started_here)); then
        say "broker and 3-node cluster left running for fast re-runs (scripts/kafka.sh stop, scripts/kafka.sh cluster stop)"
    fi
}
trap finish EXIT

scripts/kafka.sh cluster start
FAUST_RS_TEST_CLUSTER=$(scripts/kafka.sh cluster status | sed -n 's/^kafka.sh: bootstrap: *//p')
[[ -n $FAUST_RS_TEST_CLUSTER ]] || { say "scripts/kafka.sh cluster status named no bootstrap list"; exit 1; }
export FAUST_RS_TEST_CLUSTER

export FAUST_RS_TEST_BROKER=127.0.0.1:$KAFKA_PORT
if ((ours)); then
    # our broker: how to reach its secured listeners (KEY=value lines, paths absolute)
    clients_env=$(scripts/kafka.sh clients-env)
    while IFS='=' read -r key value; do
        [[ $key =~ ^FAUST_RS_TEST_[A-Z0-9_]+$ ]] || { say "unexpected line from kafka.sh clients-env: $key"; exit 1; }
        export "$key=$value"
    done <<<"$clients_env"
    say "secured listeners: SASL_SSL $FAUST_RS_TEST_SASL_SSL, mTLS $FAUST_RS_TEST_MTLS (FAUST_RS_TEST_* exported)"
fi
say "FAUST_RS_TEST_BROKER=$FAUST_RS_TEST_BROKER FAUST_RS_TEST_CLUSTER=$FAUST_RS_TEST_CLUSTER cargo test $*"
# Build first, without a deadline (a cold build compiles OpenSSL and librdkafka); then run the
# tests under one, so that a test that hangs fails the run with its name on screen (cargo test
# names a test running for over 60 s) instead of holding CI until its own time limit.
cargo test --no-run "$@"
rc=0
timeout --kill-after=30s "${FAUST_RS_TEST_TIMEOUT:-20m}" cargo test "$@" || rc=$?
if ((rc == 124)); then
    say "the tests did not finish within ${FAUST_RS_TEST_TIMEOUT:-20m} (FAUST_RS_TEST_TIMEOUT); see the test named above as running for over 60 seconds"
fi
exit "$rc"
