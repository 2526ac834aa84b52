#!/usr/bin/env bash
# scripts/deps.sh — make sure the machine has what faust-rs's tests and demos need:
#   kcat            (Debian package; a Kafka CLI used for demos and the broker readiness probe)
#   java 17+        (runs the Kafka broker; Debian openjdk-17-jre-headless if missing; its
#                   keytool makes the test broker's certificates)
#   openssl         (the test client's PEM private key, from its PKCS#12 key store)
#   mvn             (fetches the broker's jars; Debian maven if missing)
#   gcc, g++, make  (rdkafka-sys builds librdkafka from source)
#   cmake           (librdkafka is built with CMake: its own configure misses the static libcurl)
#   perl            (openssl-src builds OpenSSL from source, to be linked statically)
#   ShellCheck      (CI lints every shell script: Debian package shellcheck)
#   jq, curl        (the cluster scripts read `check --json-output` and the workers' HTTP)
#   PyYAML          (scripts/check-manifests.sh parses the Kubernetes manifests; pip)
#   cargo           (checked only; install Rust with rustup)
# Missing Debian packages are installed with apt-get (one `apt-get update` first), which
# needs root. Idempotent and silent when everything is present.
set -euo pipefail

say() { printf 'deps.sh: %s\n' "$*"; }
die() { printf 'deps.sh: error: %s\n' "$*" >&2; exit 1; }

java_major() {
    # `java -version` prints e.g.: openjdk version "17.0.15" 2025-04-15  (or "1.8.0_392")
    local v
    v=$(java -version 2>&1 | awk -F'"' '/version/ { print $2; exit }')
    v=${v#1.}
    echo "${v%%[.+-]*}"
}

missing=()
command -v kcat >/dev/null || missing+=(kcat)
if ! command -v java >/dev/null || (($(java_major) < 17)); then
    missing+=(openjdk-17-jre-headless)
fi
command -v mvn >/dev/null || missing+=(maven)
command -v openssl >/dev/null || missing+=(openssl)
command -v gcc >/dev/null || missing+=(gcc)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
command -v cmake >/dev/null || missing+=(cmake)
command -v perl >/dev/null || missing+=(perl)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v jq >/dev/null || missing+=(jq)
command -v curl >/dev/null || missing+=(curl)

if ((${#missing[@]})); then
    say "installing missing Debian packages: ${missing[*]}"
    ((EUID == 0)) || die "need root to apt-get install ${missing[*]} (or install them yourself)"
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp)
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "apt-get failed for: ${missing[*]}"
    fi
    rm -f "$log"
fi

command -v kcat >/dev/null || die "kcat still missing after apt-get install"
command -v java >/dev/null || die "java not found; the Kafka 4.x broker needs Java 17+"
major=$(java_major)
((major >= 17)) || die "java $major found on PATH, but the Kafka 4.x broker needs Java 17+ (fix PATH or JAVA_HOME)"
command -v mvn >/dev/null || die "mvn (Apache Maven) not found"
command -v cargo >/dev/null || die "cargo not found; install Rust (rustup) first"
if ! python3 -c 'import yaml' 2>/dev/null; then
    say "installing PyYAML for python3"
    python3 -m pip install --quiet pyyaml >/dev/null || die "pip could not install PyYAML"
fi
exit 0
