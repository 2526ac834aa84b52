#!/usr/bin/env bash
# bench/kstreams/build.sh — build the Kafka Streams side of bench/pipeline.sh with Maven:
# target/kstreams-pipeline.jar and its runtime classpath in target/lib/ (kafka-streams 4.4.0,
# jackson-databind, slf4j-simple; pinned in pom.xml). Does nothing when the jar is newer than
# pom.xml and every source file. Run it as `bench/kstreams/build.sh [--force]`.
#
# Environment: MVN (Maven command; default mvn), the machine's own Maven settings for where
# artifacts come from.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
jar=$here/target/kstreams-pipeline.jar
mvn=${MVN:-mvn}

case ${1:-} in
    -h | --help) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --force) rm -f "$jar" ;;
    "") ;;
    *) echo "build.sh: unknown argument '$1' (see -h)" >&2; exit 2 ;;
esac

if [[ -f $jar && -d $here/target/lib ]] &&
    [[ -z $(find "$here/pom.xml" "$here/src" -type f -newer "$jar" -print -quit) ]]; then
    exit 0
fi

command -v "$mvn" >/dev/null || { echo "build.sh: $mvn not found (run scripts/deps.sh)" >&2; exit 1; }
command -v java >/dev/null || { echo "build.sh: java not found (run scripts/deps.sh)" >&2; exit 1; }
echo "build.sh: building $jar with Maven ..." >&2
log=$here/target/build.log
mkdir -p "$here/target"
rm -rf "$here/target/lib"
if ! "$mvn" -B -q -f "$here/pom.xml" package >"$log" 2>&1; then
    grep -E '^\[(ERROR|WARNING)\]' "$log" | tail -n 20 >&2 || tail -n 20 "$log" >&2
    echo "build.sh: Maven build failed (full log: $log)" >&2
    exit 1
fi
[[ -f $jar ]] || { echo "build.sh: $jar missing after the Maven run (log: $log)" >&2; exit 1; }
touch "$jar" # newer than its sources even when Maven kept an up-to-date jar
