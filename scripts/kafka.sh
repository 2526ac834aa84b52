#!/usr/bin/env bash
# scripts/kafka.sh — install and run real Apache Kafka brokers (KRaft) on 127.0.0.1 for
# faust-rs's tests and demos: the tests' broker (one combined broker+controller, node 1, with
# plaintext and secured listeners), or a 3-node cluster for broker-failure drills. No Docker, no
# tarball: the jars come from Maven (org.apache.kafka:kafka_2.13) through the machine's own Maven
# settings.
#
# Usage: scripts/kafka.sh <command>
#   install      fetch the pinned Kafka jars into $KAFKA_HOME_DIR/<version>/libs (no-op when cached)
#   start        format storage if needed, start the broker in the background and return once
#                every listener answers (plaintext metadata, SCRAM over SASL_SSL, mTLS). No-op if
#                it runs already with the same configuration; restarted (saying so) if it was
#                started with another one, e.g. by an older kafka.sh
#   stop         stop the broker (TERM, then KILL after $KAFKA_STOP_TIMEOUT seconds)
#   restart      stop + start
#   status       exit 0 if running and answering, 1 if running but not answering, 3 if not running
#   ping         exit 0 if *any* broker answers metadata on 127.0.0.1:$KAFKA_PORT (ours or not)
#   logs         print the end of the broker log; `logs N` its last N lines; `logs -f` follows it
#   reset        stop and wipe data, logs and run files (keeps the jars, certificates, passwords)
#   clients-env  print KEY=value lines telling tests how to reach the secured listeners (paths
#                absolute; also written to $KAFKA_HOME_DIR/run/clients.env)
#   selftest     probe the running broker's secured listeners with Kafka's Java tools and kcat:
#                SCRAM and PLAIN logins, a wrong password, mTLS, an untrusted CA, user `limited`
#   cluster ...  a 3-node cluster: `scripts/kafka.sh cluster -h`
#
# The broker's listeners, all on 127.0.0.1:
#   $KAFKA_PORT             PLAINTEXT, principal User:ANONYMOUS (a super user)
#   $KAFKA_CONTROLLER_PORT  KRaft controller, PLAINTEXT (so is inter-broker traffic)
#   $KAFKA_SASL_SSL_PORT    SASL_SSL: SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN; users `faust` (a super
#                           user) and `limited` (DENY Create on the cluster and on every topic; all
#                           else allowed)
#   $KAFKA_MTLS_PORT        SSL, client certificate required; CN=faust-client,... → User:faust-client
#                           (a super user)
# StandardAuthorizer with allow.everyone.if.no.acl.found=true. Certificates (a test CA, the
# broker's, a client's, a second "untrusted" CA) are made once with keytool (openssl for the
# client's PEM key) in $KAFKA_HOME_DIR/tls, the users' passwords at random in
# $KAFKA_HOME_DIR/users; both are made again when missing. SCRAM users and ACLs are upserted
# on every start.
#
# Environment knobs:
#   KAFKA_VERSION          Kafka release to use (default below, see DEFAULT_KAFKA_VERSION);
#                          data formatted by a newer release may not start on an older one:
#                          `reset` after going back
#   KAFKA_PORT             plaintext client listener port on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener port (default 9093)
#   KAFKA_SASL_SSL_PORT    SASL_SSL listener port (default KAFKA_PORT + 2, i.e. 9094)
#   KAFKA_MTLS_PORT        mTLS (SSL) listener port (default KAFKA_PORT + 3, i.e. 9095)
#   KAFKA_HOME_DIR         cache/state dir (default <repo>/.kafka): <version>/libs, data/, logs/,
#                          run/, tls/, users/, cluster/
#   KAFKA_START_TIMEOUT    seconds to wait for the broker(s) to answer (default 120)
#   KAFKA_STOP_TIMEOUT     seconds to wait after TERM before KILL (default 30)
#   KAFKA_HEAP_OPTS        JVM heap flags of the broker (default "-Xms256m -Xmx1g")
#   KAFKA_CLUSTER_PORT, KAFKA_CLUSTER_CONTROLLER_PORT, KAFKA_CLUSTER_HEAP_OPTS: the cluster's,
#                          see `scripts/kafka.sh cluster -h`
#
# The readiness probes use kcat when it is installed (scripts/deps.sh installs it), otherwise
# Kafka's own tools from the same classpath. Either way a real Metadata request must be answered.
set -euo pipefail

DEFAULT_KAFKA_VERSION=4.4.0
KAFKA_VERSION=${KAFKA_VERSION:-$DEFAULT_KAFKA_VERSION}
LOG4J_VERSION=2.26.1
SLF4J_VERSION=2.0.17           # Kafka's POM says slf4j-api 1.7.36; log4j-slf4j2-impl needs 2.x
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

say() { printf 'kafka.sh: %s\n' "$*"; }
die() { printf 'kafka.sh: error: %s\n' "$*" >&2; exit 1; }

need_port() {
    if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 < 1 || $2 > 65535)); then
        die "$1 must be a TCP port number, not '$2'"
    fi
}

KAFKA_PORT=${KAFKA_PORT:-9092}
need_port KAFKA_PORT "$KAFKA_PORT"
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_SASL_SSL_PORT=${KAFKA_SASL_SSL_PORT:-$((KAFKA_PORT + 2))}
KAFKA_MTLS_PORT=${KAFKA_MTLS_PORT:-$((KAFKA_PORT + 3))}
KAFKA_CLUSTER_PORT=${KAFKA_CLUSTER_PORT:-19092}
need_port KAFKA_CLUSTER_PORT "$KAFKA_CLUSTER_PORT"
KAFKA_CLUSTER_CONTROLLER_PORT=${KAFKA_CLUSTER_CONTROLLER_PORT:-$((KAFKA_CLUSTER_PORT + 3))}
need_port KAFKA_CLUSTER_CONTROLLER_PORT "$KAFKA_CLUSTER_CONTROLLER_PORT"
for var in KAFKA_CONTROLLER_PORT KAFKA_SASL_SSL_PORT KAFKA_MTLS_PORT; do
    need_port "$var" "${!var}"
done
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}
KAFKA_CLUSTER_HEAP_OPTS=${KAFKA_CLUSTER_HEAP_OPTS:--Xms128m -Xmx512m}
KAFKA_CLUSTER_KRAFT=${KAFKA_CLUSTER_KRAFT:-dedicated}
[[ $KAFKA_CLUSTER_KRAFT == dedicated || $KAFKA_CLUSTER_KRAFT == combined ]] ||
    { echo "kafka.sh: error: KAFKA_CLUSTER_KRAFT must be dedicated or combined, not '$KAFKA_CLUSTER_KRAFT'" >&2; exit 2; }
CLUSTER_SIZE=3
# The node id of the dedicated controller (KAFKA_CLUSTER_KRAFT=dedicated).
CONTROLLER_NODE_ID=$((CLUSTER_SIZE + 1))

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAFKA_HOME_DIR=${KAFKA_HOME_DIR:-$REPO_ROOT/.kafka}
[[ $KAFKA_HOME_DIR == /* ]] || KAFKA_HOME_DIR=$PWD/$KAFKA_HOME_DIR # tests get absolute paths
VERSION_DIR=$KAFKA_HOME_DIR/$KAFKA_VERSION
LIBS_DIR=$VERSION_DIR/libs
MARKER=$VERSION_DIR/.installed
TOOLS_LOG4J_CONF=$KAFKA_HOME_DIR/run/tools-log4j2.xml
TLS_DIR=$KAFKA_HOME_DIR/tls
USERS_DIR=$KAFKA_HOME_DIR/users
CLUSTER_DIR=$KAFKA_HOME_DIR/cluster
CLIENTS_ENV=$KAFKA_HOME_DIR/run/clients.env
CLIENTS_DIR=$KAFKA_HOME_DIR/run/clients     # client configurations for kcat and Kafka's tools

SCRAM_USER=faust
LIMITED_USER=limited
MTLS_PRINCIPAL='faust-client'
STORE_PASSWORD_FILE=$TLS_DIR/store.password # of every PKCS#12 file in tls/

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
deadline_after() { awk -v a="$1" -v t="$2" 'BEGIN { printf "%d", a + t }'; }

# ---------------------------------------------------------------------------------------
# which broker: select_broker single (the tests' broker), select_broker N (cluster node N) or
# select_broker controller (the cluster's dedicated controller); sets NODE_KIND, NODE_ID,
# NODE_NAME, PORT (empty for the controller), CONTROLLER_PORT, HEAP_OPTS and the node's paths.

select_broker() {
    local home
    if [[ $1 == single ]]; then
        NODE_KIND=single NODE_ID=1 NODE_NAME=broker home=$KAFKA_HOME_DIR
        PORT=$KAFKA_PORT CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT HEAP_OPTS=$KAFKA_HEAP_OPTS
    elif [[ $1 == controller ]]; then
        NODE_KIND=controller NODE_ID=$CONTROLLER_NODE_ID NODE_NAME=controller
        home=$CLUSTER_DIR/controller PORT='' CONTROLLER_PORT=$KAFKA_CLUSTER_CONTROLLER_PORT
        HEAP_OPTS=$KAFKA_CLUSTER_HEAP_OPTS
    else
        NODE_KIND=cluster NODE_ID=$1 NODE_NAME="node $1" home=$CLUSTER_DIR/node-$1
        PORT=$((KAFKA_CLUSTER_PORT + $1 - 1))
        CONTROLLER_PORT=$((KAFKA_CLUSTER_CONTROLLER_PORT + $1 - 1))
        HEAP_OPTS=$KAFKA_CLUSTER_HEAP_OPTS
    fi
    DATA_DIR=$home/data
    LOG_DIR=$home/logs
    RUN_DIR=$home/run
    PID_FILE=$RUN_DIR/kafka.pid
    PROPS=$RUN_DIR/server.properties
    HASH_FILE=$RUN_DIR/server.properties.sha256 # the configuration the running broker started with
    LOG4J_CONF=$RUN_DIR/log4j2.xml
    BROKER_LOG=$LOG_DIR/server.log
    CONSOLE_LOG=$LOG_DIR/kafka.out
    BOOTSTRAP=127.0.0.1:$PORT
}

# The ports a broker listens on (a dedicated controller has no client port, a broker of a
# cluster with a dedicated controller no controller port).
broker_ports() {
    [[ -z $PORT ]] || printf '%s\n' "$PORT"
    [[ $NODE_KIND == cluster && $KAFKA_CLUSTER_KRAFT == dedicated ]] || printf '%s\n' "$CONTROLLER_PORT"
    if [[ $NODE_KIND == single ]]; then printf '%s\n' "$KAFKA_SASL_SSL_PORT" "$KAFKA_MTLS_PORT"; fi
}

# ---------------------------------------------------------------------------------------
# install

pom_xml() {
    cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by scripts/kafka.sh; only used to fetch the broker's runtime jars -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>faust-rs.local</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency><!-- TopicCommand, ConsumerGroupCommand, ConfigCommand, ... -->
      <groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
}

pom_hash() { pom_xml | sha256sum | cut -d' ' -f1; }

is_installed() {
    [[ -f $MARKER && -d $LIBS_DIR ]] && [[ $(cat "$MARKER") == "$(pom_hash)" ]] &&
        compgen -G "$LIBS_DIR/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null
}

cmd_install() {
    if is_installed; then
        say "Kafka $KAFKA_VERSION already installed in $LIBS_DIR"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (run scripts/deps.sh)"
    command -v java >/dev/null || die "java not found (run scripts/deps.sh)"
    local t0 tmp log
    t0=$(now)
    mkdir -p "$VERSION_DIR"
    tmp=$VERSION_DIR/libs.tmp
    log=$VERSION_DIR/install.log
    rm -rf "$tmp"
    pom_xml >"$VERSION_DIR/pom.xml"
    say "fetching org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its runtime jars via Maven ..."
    if ! mvn -B -f "$VERSION_DIR/pom.xml" "$DEPENDENCY_PLUGIN:copy-dependencies" \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$log" 2>&1; then
        grep -E '^\[(ERROR|WARNING)\]' "$log" | tail -n 20 >&2 || tail -n 20 "$log" >&2
        die "Maven could not fetch Kafka $KAFKA_VERSION (full log: $log)"
    fi
    [[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing after Maven run (log: $log)"
    rm -rf "$LIBS_DIR"
    mv "$tmp" "$LIBS_DIR"
    pom_hash >"$MARKER"
    say "installed Kafka $KAFKA_VERSION: $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars, $(du -sh "$LIBS_DIR" | cut -f1), in $(elapsed "$t0") s"
}

# Kafka's command-line tools (StorageTool, TopicCommand, ...) log warnings to stderr, never to a
# broker log.
write_tools_log4j() {
    [[ -f $TOOLS_LOG4J_CONF ]] && return 0
    # whole or not at all, as tools may start side by side (the name is fixed before `cat` forks)
    local tmp=$TOOLS_LOG4J_CONF.$BASHPID
    mkdir -p "$(dirname "$TOOLS_LOG4J_CONF")"
    cat >"$tmp" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="stderr" target="SYSTEM_ERR"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console>
  </Appenders>
  <Loggers><Root level="WARN"><AppenderRef ref="stderr"/></Root></Loggers>
</Configuration>
EOF
    mv -f "$tmp" "$TOOLS_LOG4J_CONF"
}

# kafka_tool CLASS ARGS...: runs one of Kafka's tools in a small JVM tuned for a short life,
# killed after $TOOL_TIMEOUT seconds if that is set (e.g. `TOOL_TIMEOUT=30 kafka_tool ...`).
kafka_tool() {
    local bound=()
    [[ -z ${TOOL_TIMEOUT:-} ]] || bound=(timeout "$TOOL_TIMEOUT")
    write_tools_log4j
    "${bound[@]}" java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$TOOLS_LOG4J_CONF" -cp "$LIBS_DIR/*" "$@"
}

# ---------------------------------------------------------------------------------------
# process bookkeeping (of the selected broker)

# Is $1 the pid of the selected broker (java kafka.Kafka $PROPS)?
is_our_broker() {
    local pid=$1 cmdline
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    [[ $cmdline == *kafka.Kafka* && $cmdline == *"$PROPS"* ]]
}

# Prints the pid of the selected broker if it runs, or fails (removing a stale pid file).
running_pid() {
    local pid
    [[ -f $PID_FILE ]] || return 1
    pid=$(cat "$PID_FILE" 2>/dev/null || true)
    if is_our_broker "$pid"; then
        echo "$pid"
        return 0
    fi
    rm -f "$PID_FILE"
    return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# metadata_brokers BOOTSTRAP [KCAT_CONF JAVA_PROPS]: the broker ids that a real Metadata request
# to BOOTSTRAP lists, one a line (nothing if it is not answered). The optional client
# configurations are for secured listeners; with JAVA_PROPS alone, Kafka's Java tools ask.
metadata_brokers() {
    local bootstrap=$1 kcat_conf=${2:-} java_props=${3:-}
    if command -v kcat >/dev/null && [[ -z $java_props || -n $kcat_conf ]]; then
        local conf=()
        [[ -z $kcat_conf ]] || conf=(-F "$kcat_conf")
        { timeout 15 kcat "${conf[@]}" -b "$bootstrap" -L -m 5 2>/dev/null || true; } |
            sed -n 's/^ *broker \([0-9]*\) at .*/\1/p'
    else
        is_installed || return 0
        local props=()
        [[ -z $java_props ]] || props=(--command-config "$java_props")
        { TOOL_TIMEOUT=30 kafka_tool org.apache.kafka.tools.BrokerApiVersionsCommand \
            --bootstrap-server "$bootstrap" "${props[@]}" 2>/dev/null || true; } |
            sed -n 's/^[^ ]* (id: \([0-9]*\) .*/\1/p'
    fi
}

# answers_metadata [MIN_BROKERS]: the selected broker answers metadata, listing itself and at
# least MIN_BROKERS brokers (default 1).
answers_metadata() {
    local ids
    port_open "$PORT" || return 1
    ids=$(metadata_brokers "$BOOTSTRAP")
    grep -qx "$NODE_ID" <<<"$ids" && (($(grep -c . <<<"$ids") >= ${1:-1}))
}

# The secured listeners of the tests' broker answer metadata: user faust with SCRAM-SHA-512 over
# SASL_SSL, and the client certificate over mTLS. SCRAM is checked with Kafka's Java tools, as
# librdkafka before 2.6.1 (Debian's kcat has 2.0.2) fails SCRAM against Kafka 4: it repeats the
# client nonce in its final message, which Kafka 4 rejects as invalid credentials.
secured_answer() {
    port_open "$KAFKA_SASL_SSL_PORT" && port_open "$KAFKA_MTLS_PORT" &&
        metadata_brokers "127.0.0.1:$KAFKA_SASL_SSL_PORT" '' "$CLIENTS_DIR/sasl-ssl.properties" |
        grep -x 1 >/dev/null &&
        metadata_brokers "127.0.0.1:$KAFKA_MTLS_PORT" "$CLIENTS_DIR/mtls.kcat.conf" \
            "$CLIENTS_DIR/mtls.properties" | grep -x 1 >/dev/null
}

# ---------------------------------------------------------------------------------------
# secrets and certificates (the tests' broker only)

# secret_file PATH: creates PATH (mode 600) holding a random password, no newline, unless it
# exists already.
secret_file() {
    [[ -s $1 ]] && return 0
    mkdir -p "$(dirname "$1")"
    chmod 700 "$(dirname "$1")"
    local secret
    secret=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
    (umask 077 && printf '%s' "$secret" >"$1.tmp") && mv -f "$1.tmp" "$1"
}

ensure_passwords() {
    secret_file "$USERS_DIR/$SCRAM_USER.password"
    secret_file "$USERS_DIR/$LIMITED_USER.password"
}

TLS_FILES=(ca.pem broker.p12 truststore.p12 client.p12 client.pem client.key untrusted-ca.pem store.password)

# wait_all PID...: waits for every PID; fails if one of them failed.
wait_all() {
    local pid rc=0
    for pid in "$@"; do wait "$pid" || rc=1; done
    return "$rc"
}

# keytool in a JVM tuned for a short life, with no prompt; PKCS#12 files.
kt() {
    keytool -J-Xmx128m -J-XX:+UseSerialGC -J-XX:TieredStopAtLevel=1 -noprompt -storetype PKCS12 "$@"
}

# The test CA, the broker's key store (cert for 127.0.0.1 and localhost, signed by the CA) and
# trust store, the client's certificate (PKCS#12 and PEM) and an unrelated CA; EC P-256 keys.
# Made once, in a temporary folder first so that a failure leaves no half-made set; keytool
# runs in two rounds of JVMs side by side (keys, then signatures).
ensure_tls() {
    local f missing=0
    for f in "${TLS_FILES[@]}"; do [[ -s $TLS_DIR/$f ]] || missing=1; done
    ((missing)) || return 0
    command -v keytool >/dev/null || die "keytool not found (it comes with Java; run scripts/deps.sh)"
    command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
    local t0 tmp log pids
    t0=$(now)
    tmp=$TLS_DIR.tmp
    log=$KAFKA_HOME_DIR/logs/tls.log
    rm -rf "$tmp"
    mkdir -p "$tmp" "$(dirname "$log")"
    chmod 700 "$tmp"
    : >"$log"
    secret_file "$tmp/store.password"
    local pass=(-storepass:file "$tmp/store.password")
    # keypair STORE ALIAS DNAME [EXT...]: a new key and self-signed certificate
    keypair() {
        local store=$1 alias=$2 dname=$3
        shift 3
        kt -genkeypair -keystore "$tmp/$store" "${pass[@]}" -alias "$alias" -dname "$dname" \
            -keyalg EC -groupname secp256r1 -validity 3650 "$@" >>"$log" 2>&1 &&
            if [[ $alias == *ca ]]; then
                kt -exportcert -keystore "$tmp/$store" "${pass[@]}" -alias "$alias" -rfc \
                    -file "$tmp/$alias.pem" >>"$log" 2>&1
            fi
    }
    # sign STORE ALIAS EXT...: the CA signs ALIAS's key (ALIAS.pem: the certificate alone); the
    # store gets the chain (certificate, CA)
    sign() {
        local store=$1 alias=$2
        shift 2
        kt -certreq -keystore "$tmp/$store" "${pass[@]}" -alias "$alias" 2>>"$log" |
            kt -gencert -keystore "$tmp/ca.p12" "${pass[@]}" -alias ca -rfc -validity 3650 "$@" \
                -outfile "$tmp/$alias.pem" >>"$log" 2>&1 &&
            cat "$tmp/$alias.pem" "$tmp/ca.pem" >"$tmp/$alias.chain.pem" &&
            kt -importcert -keystore "$tmp/$store" "${pass[@]}" -alias "$alias" \
                -file "$tmp/$alias.chain.pem" >>"$log" 2>&1
    }
    say "making a test CA and certificates in $TLS_DIR (keytool) ..."
    pids=()
    keypair ca.p12 ca "CN=faust-rs test CA,O=faust-rs" -ext bc:c -ext ku:c=keyCertSign,cRLSign &
    pids+=($!)
    keypair broker.p12 broker "CN=localhost,OU=broker,O=faust-rs" &
    pids+=($!)
    keypair client.p12 client "CN=$MTLS_PRINCIPAL,OU=tests,O=faust-rs" &
    pids+=($!)
    keypair untrusted-ca.p12 untrusted-ca "CN=faust-rs untrusted test CA,O=nobody" -ext bc:c &
    pids+=($!)
    wait_all "${pids[@]}" || die "keytool could not make the keys (see $log)"
    pids=()
    sign broker.p12 broker -ext SAN=ip:127.0.0.1,dns:localhost \
        -ext ku:c=digitalSignature,keyEncipherment -ext eku=serverAuth &
    pids+=($!)
    sign client.p12 client -ext ku:c=digitalSignature -ext eku=clientAuth &
    pids+=($!)
    kt -importcert -keystore "$tmp/truststore.p12" "${pass[@]}" -alias ca -file "$tmp/ca.pem" \
        >>"$log" 2>&1 &
    pids+=($!)
    wait_all "${pids[@]}" || die "keytool could not sign the certificates (see $log)"
    (
        umask 077
        openssl pkcs12 -in "$tmp/client.p12" -passin "file:$tmp/store.password" -nocerts -nodes \
            2>>"$log" | openssl pkey -out "$tmp/client.key" 2>>"$log"
    ) || die "openssl could not write the client's PEM key (see $log)"
    rm -f "$tmp"/*.chain.pem "$tmp/broker.pem" # (client.pem, the client's certificate, stays)
    chmod 600 "$tmp"/*
    chmod 644 "$tmp"/*.pem # certificates only; client.key stays 600
    rm -rf "$TLS_DIR"
    mv "$tmp" "$TLS_DIR"
    say "certificates made in $(elapsed "$t0") s"
}

# Client configurations for the secured listeners, for kcat (librdkafka properties) and for
# Kafka's Java tools; they hold passwords: mode 600.
write_client_files() {
    local password
    password=$(cat "$USERS_DIR/$SCRAM_USER.password")
    mkdir -p "$CLIENTS_DIR"
    chmod 700 "$CLIENTS_DIR"
    (
        umask 077
        cat >"$CLIENTS_DIR/mtls.kcat.conf" <<EOF
security.protocol=SSL
ssl.ca.location=$TLS_DIR/ca.pem
ssl.certificate.location=$TLS_DIR/client.pem
ssl.key.location=$TLS_DIR/client.key
EOF
        java_client_props SASL_SSL SCRAM-SHA-512 "$SCRAM_USER" "$password" \
            >"$CLIENTS_DIR/sasl-ssl.properties"
        java_client_props SSL >"$CLIENTS_DIR/mtls.properties"
    )
}

# java_client_props SASL_SSL MECHANISM USER PASSWORD [CA_PEM] | SSL [CA_PEM]: a client
# configuration for Kafka's Java tools.
java_client_props() {
    local protocol=$1 ca
    printf 'security.protocol=%s\n' "$protocol"
    if [[ $protocol == SASL_SSL ]]; then
        local module=org.apache.kafka.common.security.scram.ScramLoginModule
        [[ $2 == PLAIN ]] && module=org.apache.kafka.common.security.plain.PlainLoginModule
        printf 'sasl.mechanism=%s\n' "$2"
        printf 'sasl.jaas.config=%s required username="%s" password="%s";\n' "$module" "$3" "$4"
        ca=${5:-$TLS_DIR/ca.pem}
    else
        printf 'ssl.keystore.type=PKCS12\nssl.keystore.location=%s\n' "$TLS_DIR/client.p12"
        printf 'ssl.keystore.password=%s\n' "$(cat "$STORE_PASSWORD_FILE")"
        ca=${2:-$TLS_DIR/ca.pem}
    fi
    printf 'ssl.truststore.type=PEM\nssl.truststore.location=%s\n' "$ca"
}

# The KEY=value lines of `clients-env`.
clients_env() {
    cat <<EOF
FAUST_RS_TEST_BROKER=127.0.0.1:$KAFKA_PORT
FAUST_RS_TEST_SASL_SSL=127.0.0.1:$KAFKA_SASL_SSL_PORT
FAUST_RS_TEST_MTLS=127.0.0.1:$KAFKA_MTLS_PORT
FAUST_RS_TEST_CA=$TLS_DIR/ca.pem
FAUST_RS_TEST_UNTRUSTED_CA=$TLS_DIR/untrusted-ca.pem
FAUST_RS_TEST_SCRAM_USER=$SCRAM_USER
FAUST_RS_TEST_SCRAM_PASSWORD_FILE=$USERS_DIR/$SCRAM_USER.password
FAUST_RS_TEST_LIMITED_USER=$LIMITED_USER
FAUST_RS_TEST_LIMITED_PASSWORD_FILE=$USERS_DIR/$LIMITED_USER.password
FAUST_RS_TEST_CLIENT_CERT=$TLS_DIR/client.pem
FAUST_RS_TEST_CLIENT_KEY=$TLS_DIR/client.key
FAUST_RS_TEST_CLIENT_KEYSTORE=$TLS_DIR/client.p12
FAUST_RS_TEST_CLIENT_KEYSTORE_PASSWORD_FILE=$STORE_PASSWORD_FILE
EOF
}

write_clients_env() {
    mkdir -p "$(dirname "$CLIENTS_ENV")"
    clients_env >"$CLIENTS_ENV.tmp"
    mv -f "$CLIENTS_ENV.tmp" "$CLIENTS_ENV"
}

# Upserts the SCRAM users (both mechanisms, each start: the data may have been formatted
# before) and the ACLs of `limited`, with Kafka's ConfigCommand and AclCommand over the
# plaintext listener (User:ANONYMOUS is a super user), all JVMs side by side. Idempotent.
setup_security() {
    local job_dir user mechanism pids=() names=() i failed=()
    job_dir=$(mktemp -d "$RUN_DIR/security.XXXXXX")
    chmod 700 "$job_dir"
    # One call per user and mechanism: KRaft's controller refuses two changes of one user in one
    # AlterUserScramCredentials request ("A user credential cannot be altered twice in the same
    # request"). The password goes in a file, so that it is on no command line; values in such
    # a file take no brackets.
    for user in "$SCRAM_USER" "$LIMITED_USER"; do
        for mechanism in SCRAM-SHA-512 SCRAM-SHA-256; do
            (umask 077 && printf '%s=password=%s\n' "$mechanism" \
                "$(cat "$USERS_DIR/$user.password")" >"$job_dir/$user-$mechanism.scram")
            kafka_tool org.apache.kafka.tools.ConfigCommand --bootstrap-server "$BOOTSTRAP" \
                --alter --entity-type users --entity-name "$user" \
                --add-config-file "$job_dir/$user-$mechanism.scram" >"$job_dir/$user-$mechanism.out" 2>&1 &
            pids+=($!) names+=("$user-$mechanism")
        done
    done
    # With an ACL on a resource, allow.everyone.if.no.acl.found no longer applies to it, for
    # anyone who is not a super user: so `limited` is allowed All, then denied Create (a DENY wins).
    kafka_tool org.apache.kafka.tools.AclCommand --bootstrap-server "$BOOTSTRAP" --add \
        --allow-principal "User:$LIMITED_USER" --operation All --cluster --topic '*' \
        >"$job_dir/acl-allow.out" 2>&1 &
    pids+=($!) names+=(acl-allow)
    kafka_tool org.apache.kafka.tools.AclCommand --bootstrap-server "$BOOTSTRAP" --add \
        --deny-principal "User:$LIMITED_USER" --operation Create --cluster --topic '*' \
        >"$job_dir/acl-deny.out" 2>&1 &
    pids+=($!) names+=(acl-deny)
    for i in "${!pids[@]}"; do
        wait "${pids[i]}" || failed+=("${names[i]}")
    done
    if ((${#failed[@]})); then
        for i in "${failed[@]}"; do
            echo "--- $i:" >&2
            tail -n 20 "$job_dir/$i.out" | redact >&2
        done
        rm -rf "$job_dir"
        die "could not set up the SCRAM users / ACLs (${failed[*]})"
    fi
    rm -rf "$job_dir"
}

# Replaces the users' passwords with [redacted] in what it copies.
redact() {
    sed -e "s/$(cat "$USERS_DIR/$SCRAM_USER.password")/[redacted]/g" \
        -e "s/$(cat "$USERS_DIR/$LIMITED_USER.password")/[redacted]/g"
}

# ---------------------------------------------------------------------------------------
# config (of the selected broker)

# The cluster's controller quorum: the dedicated controller, or (combined) 1@127.0.0.1:PORT,2@...
cluster_voters() {
    if [[ $KAFKA_CLUSTER_KRAFT == dedicated ]]; then
        printf '%s' "$CONTROLLER_NODE_ID@127.0.0.1:$KAFKA_CLUSTER_CONTROLLER_PORT"
        return
    fi
    local n voters=()
    for ((n = 1; n <= CLUSTER_SIZE; n++)); do
        voters+=("$n@127.0.0.1:$((KAFKA_CLUSTER_CONTROLLER_PORT + n - 1))")
    done
    local IFS=,
    printf '%s' "${voters[*]}"
}

cluster_bootstrap() {
    local n list=()
    for ((n = 1; n <= CLUSTER_SIZE; n++)); do list+=("127.0.0.1:$((KAFKA_CLUSTER_PORT + n - 1))"); done
    local IFS=,
    printf '%s' "${list[*]}"
}

server_properties() {
    local rf=1 min_isr=1 partitions=1
    echo "# generated by scripts/kafka.sh — edit the script, not this file"
    case $NODE_KIND/$KAFKA_CLUSTER_KRAFT in
    controller/*) echo "process.roles=controller" ;;
    cluster/dedicated) echo "process.roles=broker" ;;
    *) echo "process.roles=broker,controller" ;;
    esac
    echo "node.id=$NODE_ID"
    if [[ $NODE_KIND == single ]]; then
        cat <<EOF
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT,MTLS://127.0.0.1:$KAFKA_MTLS_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT,MTLS://127.0.0.1:$KAFKA_MTLS_PORT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL
EOF
    else
        rf=$CLUSTER_SIZE min_isr=2 partitions=6
        echo "controller.quorum.voters=$(cluster_voters)"
        case $NODE_KIND/$KAFKA_CLUSTER_KRAFT in
        controller/*) echo "listeners=CONTROLLER://127.0.0.1:$CONTROLLER_PORT" ;;
        cluster/dedicated)
            echo "listeners=PLAINTEXT://127.0.0.1:$PORT"
            echo "advertised.listeners=PLAINTEXT://127.0.0.1:$PORT"
            ;;
        *)
            echo "listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT"
            echo "advertised.listeners=PLAINTEXT://127.0.0.1:$PORT"
            ;;
        esac
        echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    fi
    # a controller-only node has no broker listener to name
    [[ $NODE_KIND == controller ]] || echo "inter.broker.listener.name=PLAINTEXT"
    cat <<EOF
controller.listener.names=CONTROLLER
log.dirs=$DATA_DIR

# topics: replication factor $rf$([[ $NODE_KIND == single ]] && echo ' (one broker)'), internal topics with few partitions
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$min_isr
auto.create.topics.enable=true
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=$partitions
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=$partitions
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
share.coordinator.state.topic.num.partitions=$partitions

# fast groups for tests
# classic protocol: the client picks session.timeout.ms; allow small ones (e.g. 3000)
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
# KIP-848 (group.protocol=consumer): the broker decides session and heartbeat
group.consumer.min.session.timeout.ms=1000
group.consumer.session.timeout.ms=6000
group.consumer.min.heartbeat.interval.ms=100
group.consumer.heartbeat.interval.ms=500
EOF
    [[ $NODE_KIND == single ]] || return 0
    local store_password faust_password limited_password
    store_password=$(cat "$STORE_PASSWORD_FILE")
    faust_password=$(cat "$USERS_DIR/$SCRAM_USER.password")
    limited_password=$(cat "$USERS_DIR/$LIMITED_USER.password")
    cat <<EOF

# TLS (SASL_SSL and MTLS listeners): a certificate for 127.0.0.1 and localhost from the test CA
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/broker.p12
ssl.keystore.password=$store_password
ssl.key.password=$store_password
ssl.truststore.type=PKCS12
ssl.truststore.location=$TLS_DIR/truststore.p12
ssl.truststore.password=$store_password
# mTLS: a client certificate from the test CA is required; CN=faust-client,... → User:faust-client
listener.name.mtls.ssl.client.auth=required
listener.name.mtls.ssl.principal.mapping.rules=RULE:^CN=([^,]+),.*\$/\$1/,DEFAULT

# SASL: SCRAM users live in the metadata log (upserted by kafka.sh after each start); PLAIN
# users are the same two, with the same passwords, listed here
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SCRAM_USER="$faust_password" user_$LIMITED_USER="$limited_password";

# authorization: everything is allowed where no ACL says otherwise; ACLs only for \`limited\`
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=true
super.users=User:ANONYMOUS;User:$SCRAM_USER;User:$MTLS_PRINCIPAL
EOF
}

# The fingerprint of the selected broker's configuration: server.properties and, for the
# tests' broker, the key and trust stores it reads.
config_hash() {
    local files=("$PROPS")
    [[ $NODE_KIND == single ]] && files+=("$TLS_DIR/broker.p12" "$TLS_DIR/truststore.p12")
    cat "${files[@]}" | sha256sum | cut -d' ' -f1
}

# Writes the selected broker's configuration files (and, for the tests' broker, makes the
# passwords, certificates and client configurations it needs when missing).
write_config() {
    mkdir -p "$RUN_DIR" "$LOG_DIR" "$DATA_DIR"
    if [[ $NODE_KIND == single ]]; then
        ensure_passwords
        ensure_tls
        write_client_files
        write_clients_env
    fi
    # server.properties holds the PLAIN users' and the key store's passwords: mode 600
    : >"$PROPS.tmp"
    chmod 600 "$PROPS.tmp"
    server_properties >"$PROPS.tmp"
    mv -f "$PROPS.tmp" "$PROPS"
    cat >"$LOG4J_CONF" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by scripts/kafka.sh -->
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="server" fileName="$BROKER_LOG" filePattern="$BROKER_LOG.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="50 MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
  </Loggers>
</Configuration>
EOF
}

java_opts() {
    # shellcheck disable=SC2206  # HEAP_OPTS is a list of flags on purpose
    local heap=($HEAP_OPTS)
    printf '%s\n' "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
        -Djava.awt.headless=true -Dlog4j2.configurationFile="$LOG4J_CONF" \
        -Dkafka.logs.dir="$LOG_DIR"
}

# A new cluster id, as Kafka's Uuid.randomUuid() writes them (22 characters of URL-safe base64).
random_cluster_id() {
    local id=-
    while [[ $id == -* ]]; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    done
    printf '%s' "$id"
}

# format_storage [CLUSTER_ID]: formats the selected broker's data dir unless it is already.
format_storage() {
    [[ -f $DATA_DIR/meta.properties ]] && return 0
    local cid=${1:-$(random_cluster_id)}
    say "formatting $DATA_DIR (cluster id $cid)"
    kafka_tool kafka.tools.StorageTool format -t "$cid" -c "$PROPS" --ignore-formatted \
        >>"$CONSOLE_LOG" 2>&1 || { tail -n 20 "$CONSOLE_LOG" >&2; die "storage format of $NODE_NAME failed"; }
}

# ---------------------------------------------------------------------------------------
# starting and stopping (the selected broker)

file_size() { stat -c %s "$1" 2>/dev/null || echo 0; }
declare -A LOG_START=() # byte offset where this start attempt's output begins, by log file

# Shows the end of what this start attempt wrote to the selected broker's logs.
dump_logs() {
    local f start
    for f in "$BROKER_LOG" "$CONSOLE_LOG"; do
        [[ -f $f ]] || continue
        start=${LOG_START[$f]:-0}
        # a rolled-over log restarts at 0
        (($(file_size "$f") >= start)) || start=0
        echo "--- last lines of $f:" >&2
        tail -c +$((start + 1)) "$f" | tail -n 30 >&2
    done
}

# Refuses to start the selected broker where another process holds one of its ports.
check_ports_free() {
    local p busy=()
    for p in $(broker_ports); do
        if port_open "$p"; then busy+=("$p"); fi
    done
    ((${#busy[@]} == 0)) ||
        die "port(s) ${busy[*]} on 127.0.0.1 already in use by another process (not $NODE_NAME of $KAFKA_HOME_DIR); stop it or choose other ports (see -h)"
}

# launch: starts the selected broker (configured and formatted) in the background.
launch() {
    local opts pid f
    mapfile -t opts < <(java_opts)
    for f in "$BROKER_LOG" "$CONSOLE_LOG"; do LOG_START[$f]=$(file_size "$f"); done
    echo "=== $(date -Is) starting Kafka $KAFKA_VERSION" >>"$CONSOLE_LOG"
    # setsid: own session, so the broker outlives the shell that started it; no stdin.
    setsid nohup java "${opts[@]}" -cp "$LIBS_DIR/*" kafka.Kafka "$PROPS" \
        </dev/null >>"$CONSOLE_LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PID_FILE"
    config_hash >"$HASH_FILE"
    if [[ -n $PORT ]]; then
        say "started $NODE_NAME, Kafka $KAFKA_VERSION (pid $pid), waiting for $BOOTSTRAP to answer metadata ..."
    else
        say "started $NODE_NAME, Kafka $KAFKA_VERSION (pid $pid), on 127.0.0.1:$CONTROLLER_PORT"
    fi
}

# wait_ready T0 MIN_BROKERS SPEC...: polls (until $KAFKA_START_TIMEOUT s after T0) until every
# broker SPEC (see select_broker) answers metadata, listing itself and at least MIN_BROKERS
# brokers. Dies, showing the logs, if one exits or the time is up.
wait_ready() {
    local t0=$1 want=$2 deadline spec pending still
    shift 2
    pending=("$@")
    deadline=$(deadline_after "$t0" "$KAFKA_START_TIMEOUT")
    while :; do
        still=()
        for spec in "${pending[@]}"; do
            select_broker "$spec"
            if ! running_pid >/dev/null; then
                dump_logs
                die "$NODE_NAME exited during start-up"
            fi
            answers_metadata "$want" || still+=("$spec")
        done
        ((${#still[@]})) || return 0
        pending=("${still[@]}")
        if (($(date +%s) >= deadline)); then
            for spec in "${pending[@]}"; do
                select_broker "$spec"
                dump_logs
            done
            die "$NODE_NAME (pid $(running_pid)) did not answer metadata listing $want broker(s) within ${KAFKA_START_TIMEOUT}s; it is left running: see the logs above, or stop it"
        fi
        sleep 0.2
    done
}

# Polls until the secured listeners of the tests' broker answer (SCRAM credentials reach the
# broker through the metadata log a moment after ConfigCommand returns).
wait_secured() {
    local t0=$1 deadline
    deadline=$(deadline_after "$t0" "$KAFKA_START_TIMEOUT")
    until secured_answer; do
        running_pid >/dev/null || { dump_logs; die "broker exited during start-up"; }
        if (($(date +%s) >= deadline)); then
            dump_logs
            die "the SASL_SSL ($KAFKA_SASL_SSL_PORT) or mTLS ($KAFKA_MTLS_PORT) listener did not answer within ${KAFKA_START_TIMEOUT}s (client configurations: $CLIENTS_DIR)"
        fi
        sleep 0.2
    done
}

# stop_selected: TERM, wait up to $KAFKA_STOP_TIMEOUT s, then KILL.
stop_selected() {
    local pid deadline
    if ! pid=$(running_pid); then
        say "$NODE_NAME not running"
        return 0
    fi
    say "stopping $NODE_NAME (pid $pid) ..."
    kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$pid"
    say "$NODE_NAME stopped"
}

# wait_exit PID: waits for a broker sent TERM to exit; KILL after $KAFKA_STOP_TIMEOUT s.
wait_exit() {
    local pid=$1 deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$NODE_NAME (pid $pid) did not exit within ${KAFKA_STOP_TIMEOUT}s after TERM; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$PID_FILE"
}

# A running broker whose configuration is not the one just written is restarted: returns 0
# if it keeps running as it is, 1 if it was stopped (or was not running).
keep_if_current() {
    local pid
    pid=$(running_pid) || return 1
    if [[ -f $HASH_FILE && $(cat "$HASH_FILE") == "$(config_hash)" ]]; then
        return 0
    fi
    say "$NODE_NAME (pid $pid) runs with another configuration than kafka.sh now writes ($([[ -f $HASH_FILE ]] && echo 'it changed since its start' || echo 'started by an older kafka.sh')); restarting it"
    stop_selected
    return 1
}

# ---------------------------------------------------------------------------------------
# commands of the tests' broker

cmd_start() {
    local pid t0 t_all
    t0=$(now)
    t_all=$t0
    select_broker single
    is_installed || cmd_install
    write_config
    if keep_if_current; then
        pid=$(running_pid)
        say "already running (pid $pid, $BOOTSTRAP)"
        if ! answers_metadata; then
            say "... but not answering yet; waiting"
            wait_ready "$t0" 1 single
        fi
        if ! secured_answer; then
            say "... but the secured listeners do not answer; setting up their users again"
            setup_security
            wait_secured "$t0"
        fi
        say "ready: $BOOTSTRAP answers metadata (pid $pid)"
        return 0
    fi
    check_ports_free
    t0=$(now)
    format_storage
    launch
    wait_ready "$t0" 1 single
    local t1
    t1=$(now)
    setup_security
    wait_secured "$t1"
    say "ready: $BOOTSTRAP answers metadata, SASL_SSL 127.0.0.1:$KAFKA_SASL_SSL_PORT and mTLS 127.0.0.1:$KAFKA_MTLS_PORT too (pid $(running_pid)) after $(elapsed "$t_all") s (broker $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s, then users and ACLs $(elapsed "$t1") s)"
}

cmd_stop() {
    select_broker single
    stop_selected
}

cmd_status() {
    local pid
    select_broker single
    if ! pid=$(running_pid); then
        if port_open "$PORT"; then
            say "not running from this checkout ($KAFKA_HOME_DIR), but port $PORT is in use by another process"
        else
            say "not running"
        fi
        return 3
    fi
    local note=''
    if [[ ! -f $HASH_FILE ]]; then
        note=" (started by an older kafka.sh, without secured listeners: 'start' restarts it)"
    fi
    if answers_metadata; then
        say "running: pid $pid, Kafka $KAFKA_VERSION, $BOOTSTRAP answers metadata$note"
        return 0
    fi
    say "running: pid $pid, but $BOOTSTRAP does NOT answer metadata (starting up or unwell; see 'scripts/kafka.sh logs')$note"
    return 1
}

cmd_ping() {
    select_broker single
    answers_metadata
}

cmd_logs() {
    [[ -f $BROKER_LOG ]] || die "no log yet ($BROKER_LOG)"
    if [[ ${1:-} == -f ]]; then
        exec tail -n 50 -F "$BROKER_LOG"
    fi
    [[ ${1:-100} =~ ^[0-9]+$ ]] || die "logs: give a number of lines or -f, not '$1'"
    tail -n "${1:-100}" "$BROKER_LOG"
}

cmd_reset() {
    select_broker single
    stop_selected
    rm -rf "$DATA_DIR" "$LOG_DIR" "$RUN_DIR"
    say "wiped $DATA_DIR, $LOG_DIR and $RUN_DIR (jars, $TLS_DIR and $USERS_DIR kept)"
}

cmd_clients_env() {
    select_broker single
    ensure_passwords
    ensure_tls
    write_clients_env
    cat "$CLIENTS_ENV"
}

# ---------------------------------------------------------------------------------------
# selftest: the secured listeners, probed as a client would

SELFTEST_PASSED=0
SELFTEST_FAILED=0

# probe expect-ok|expect-fail|expect-output PATTERN DESCRIPTION COMMAND...: runs COMMAND (each
# process 60 s at most); it must succeed, or fail, or (whatever its exit status) print something
# matching PATTERN (an extended regex; '' matches anything).
probe() {
    local expect=$1 pattern=$2 what=$3 out rc=0 t0
    shift 3
    t0=$(now)
    if [[ $(type -t "$1") == function ]]; then
        out=$(TOOL_TIMEOUT=60 "$@" 2>&1) || rc=$?
    else
        out=$(timeout 60 "$@" 2>&1) || rc=$?
    fi
    local ok=0
    if [[ -z $pattern ]] || grep -Eq "$pattern" <<<"$out"; then
        case $expect in
        expect-ok) ((rc != 0)) || ok=1 ;;
        expect-fail) ((rc == 0)) || ok=1 ;;
        expect-output) ok=1 ;;
        esac
    fi
    if ((ok)); then
        SELFTEST_PASSED=$((SELFTEST_PASSED + 1))
        printf 'ok   %s (%s s)\n' "$what" "$(elapsed "$t0")"
    else
        SELFTEST_FAILED=$((SELFTEST_FAILED + 1))
        printf 'FAIL %s (exit %s, %s s)\n' "$what" "$rc" "$(elapsed "$t0")"
        printf '%s\n' "$out" | grep -v '^\s*at ' | tail -n 8 | sed 's/^/     | /'
    fi
}

cmd_selftest() {
    select_broker single
    running_pid >/dev/null || die "the broker is not running (scripts/kafka.sh start first)"
    keep_if_current_quiet || die "the running broker's configuration is outdated (scripts/kafka.sh start restarts it)"
    local t0 tmp faust limited sasl mtls topic denied f marker
    t0=$(now)
    tmp=$(mktemp -d "$RUN_DIR/selftest.XXXXXX")
    chmod 700 "$tmp"
    marker=selftest-$(date +%s)-$RANDOM
    topic=kafka-sh-$marker # a topic of this run, deleted at its end
    # shellcheck disable=SC2064  # expand now
    trap "selftest_cleanup '$tmp' '$topic'" EXIT
    faust=$(cat "$USERS_DIR/$SCRAM_USER.password")
    limited=$(cat "$USERS_DIR/$LIMITED_USER.password")
    sasl=127.0.0.1:$KAFKA_SASL_SSL_PORT
    mtls=127.0.0.1:$KAFKA_MTLS_PORT
    denied=$topic-denied
    java_client_props SASL_SSL SCRAM-SHA-512 "$SCRAM_USER" "$faust" >"$tmp/scram512.properties"
    java_client_props SASL_SSL SCRAM-SHA-256 "$SCRAM_USER" "$faust" >"$tmp/scram256.properties"
    java_client_props SASL_SSL PLAIN "$SCRAM_USER" "$faust" >"$tmp/plain.properties"
    java_client_props SASL_SSL SCRAM-SHA-512 "$SCRAM_USER" "wrong-$faust" >"$tmp/wrong.properties"
    java_client_props SASL_SSL SCRAM-SHA-512 "$LIMITED_USER" "$limited" >"$tmp/limited.properties"
    java_client_props SASL_SSL SCRAM-SHA-512 "$SCRAM_USER" "$faust" "$TLS_DIR/untrusted-ca.pem" \
        >"$tmp/untrusted.properties"
    java_client_props SSL >"$tmp/mtls.properties"
    java_client_props SSL "$TLS_DIR/untrusted-ca.pem" >"$tmp/mtls-untrusted.properties"
    for f in "$tmp"/*.properties; do
        # short timeouts, so that a refusal shows in seconds
        printf 'max.block.ms=10000\ndefault.api.timeout.ms=20000\nrequest.timeout.ms=10000\n' >>"$f"
    done
    # topics_as BOOTSTRAP CONFIG ARGS...: TopicCommand as a client with $tmp/CONFIG.properties
    topics_as() {
        kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$1" \
            --command-config "$tmp/$2.properties" "${@:3}"
    }
    # produce_as BOOTSTRAP CONFIG TOPIC TEXT: the console producer sends one record
    produce_as() {
        kafka_tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$1" \
            --command-config "$tmp/$2.properties" --topic "$3" <<<"$4"
    }
    local handshake='SSL handshake failed|SSLHandshakeException|PKIX'

    echo "# Kafka's Java clients ($KAFKA_VERSION)"
    probe expect-ok '' "SCRAM-SHA-512 over SASL_SSL: $SCRAM_USER creates topic $topic" \
        topics_as "$sasl" scram512 --create --topic "$topic" --partitions 1
    probe expect-ok '' "SCRAM-SHA-512 over SASL_SSL: $SCRAM_USER produces to $topic" \
        produce_as "$sasl" scram512 "$topic" "$marker-faust"
    probe expect-ok "^$SCRAM_USER-listed\$" "SCRAM-SHA-256 over SASL_SSL: $SCRAM_USER lists topics" \
        list_topics "$SCRAM_USER-listed" "$topic" "$sasl" "$tmp/scram256.properties"
    probe expect-ok "^plain-listed\$" "PLAIN over SASL_SSL: $SCRAM_USER lists topics" \
        list_topics plain-listed "$topic" "$sasl" "$tmp/plain.properties"
    probe expect-fail 'Authentication failed|SaslAuthenticationException' \
        "a wrong password is refused (SCRAM-SHA-512)" topics_as "$sasl" wrong --list
    probe expect-fail "$handshake" "SASL_SSL with the untrusted CA fails certificate verification" \
        topics_as "$sasl" untrusted --list
    probe expect-ok '' "mTLS: User:$MTLS_PRINCIPAL (a super user, so the DN was mapped) produces to $topic" \
        produce_as "$mtls" mtls "$topic" "$marker-mtls"
    probe expect-fail "$handshake" "mTLS with the untrusted CA fails certificate verification" \
        topics_as "$mtls" mtls-untrusted --list
    probe expect-fail 'TopicAuthorizationException|ClusterAuthorizationException|not authorized' \
        "$LIMITED_USER cannot create a topic" \
        topics_as "$sasl" limited --create --topic "$denied" --partitions 1
    probe expect-ok '' "$LIMITED_USER produces to the existing topic $topic" \
        produce_as "$sasl" limited "$topic" "$marker-limited"
    probe expect-ok "$marker-limited" "$LIMITED_USER consumes $topic in a group (and sees all three records)" \
        consume_all "$marker" "$sasl" "$tmp/limited.properties" "$topic"
    # (the console producer logs the failed send, and exits 0)
    probe expect-output 'TopicAuthorizationException' \
        "$LIMITED_USER cannot have a topic auto-created by producing to it" \
        produce_as "$sasl" limited "$denied" "$marker-denied"
    probe expect-ok "^absent\$" "... and $denied does not exist" \
        list_topics absent-check "$denied" "$BOOTSTRAP" ''

    if command -v kcat >/dev/null; then
        local rdkafka
        rdkafka=$(kcat -V 2>/dev/null | sed -n 's/.*librdkafka \([0-9][0-9.]*\).*/\1/p' | head -n 1)
        echo "# kcat (librdkafka ${rdkafka:-of unknown version})"
        # kcat_conf NAME LINES...: a librdkafka configuration in the temporary folder
        kcat_conf() {
            local name=$1
            shift
            printf '%s\n' "$@" >"$tmp/$name.conf"
        }
        local ca=ssl.ca.location=$TLS_DIR/ca.pem
        local scram=(security.protocol=SASL_SSL sasl.mechanisms=SCRAM-SHA-256
            "sasl.username=$SCRAM_USER")
        kcat_conf scram256 "${scram[@]}" "sasl.password=$faust" "$ca"
        kcat_conf plain security.protocol=SASL_SSL sasl.mechanisms=PLAIN \
            "sasl.username=$SCRAM_USER" "sasl.password=$faust" "$ca"
        kcat_conf wrong security.protocol=SASL_SSL sasl.mechanisms=PLAIN \
            "sasl.username=$SCRAM_USER" "sasl.password=wrong-$faust" "$ca"
        kcat_conf untrusted "${scram[@]}" "sasl.password=$faust" \
            "ssl.ca.location=$TLS_DIR/untrusted-ca.pem"
        kcat_conf mtls-pem security.protocol=SSL "$ca" "ssl.certificate.location=$TLS_DIR/client.pem" \
            "ssl.key.location=$TLS_DIR/client.key"
        kcat_conf mtls-p12 security.protocol=SSL "$ca" "ssl.keystore.location=$TLS_DIR/client.p12" \
            "ssl.keystore.password=$(cat "$STORE_PASSWORD_FILE")"
        kcat_conf mtls-none security.protocol=SSL "$ca"
        # kcat_as CONF BOOTSTRAP: metadata with $tmp/CONF.conf, waiting 4 s at most
        kcat_as() { kcat -F "$tmp/$1.conf" -b "$2" -L -m 4; }
        # librdkafka before 2.6.1 repeats the client nonce in SCRAM's final message, which Kafka 4
        # refuses as invalid credentials (fixed by confluentinc/librdkafka#4895)
        if [[ $(printf '%s\n' "${rdkafka:-0}" 2.6.1 | sort -V | head -n 1) == 2.6.1 ]]; then
            probe expect-ok "broker 1 at" "SCRAM-SHA-256 over SASL_SSL (CA PEM, hostname verified)" \
                kcat_as scram256 "$sasl"
        else
            echo "skip SCRAM: librdkafka ${rdkafka:-?} < 2.6.1 cannot log in with SCRAM to Kafka 4"
        fi
        probe expect-ok "broker 1 at" "PLAIN over SASL_SSL (CA PEM, hostname verified)" kcat_as plain "$sasl"
        probe expect-fail "Authentication failed|SASL authentication error" \
            "a wrong password is refused (PLAIN)" kcat_as wrong "$sasl"
        probe expect-fail "certificate verify failed" "the untrusted CA fails certificate verification" \
            kcat_as untrusted "$sasl"
        probe expect-ok "broker 1 at" "mTLS with the client's PEM certificate and key" kcat_as mtls-pem "$mtls"
        probe expect-ok "broker 1 at" "mTLS with the client's PKCS#12 key store" kcat_as mtls-p12 "$mtls"
        probe expect-fail "" "mTLS without a client certificate is refused" kcat_as mtls-none "$mtls"
    else
        echo "# kcat not installed: its probes skipped"
    fi
    selftest_cleanup "$tmp" "$topic"
    trap - EXIT
    echo "selftest: $SELFTEST_PASSED passed, $SELFTEST_FAILED failed (in $(elapsed "$t0") s)"
    ((SELFTEST_FAILED == 0))
}

# keep_if_current_quiet: the running broker started with the configuration kafka.sh writes now.
keep_if_current_quiet() {
    [[ -f $HASH_FILE && -f $PROPS ]] || return 1
    local running
    running=$(cat "$HASH_FILE")
    write_config
    [[ $running == "$(config_hash)" ]]
}

# selftest_cleanup TMP TOPIC: removes the temporary folder and deletes the run's topic.
selftest_cleanup() {
    rm -rf "$1"
    TOOL_TIMEOUT=60 kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
        --delete --if-exists --topic "$2" >/dev/null 2>&1 || say "could not delete topic $2"
}

# list_topics LABEL TOPIC BOOTSTRAP PROPS: prints LABEL if TOPIC is listed, "absent" if not.
list_topics() {
    local label=$1 topic=$2 bootstrap=$3 config=$4 args=() out
    [[ -z $config ]] || args=(--command-config "$config")
    out=$(kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
        "${args[@]}" --list) || return 1
    if grep -qx "$topic" <<<"$out"; then echo "$label"; else echo absent; fi
}

# consume_all MARKER BOOTSTRAP PROPS TOPIC: reads TOPIC from the start in a new group; prints
# the records; fails unless those of this selftest (faust, mtls, limited) are all there.
consume_all() {
    local marker=$1 out who
    out=$(kafka_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$2" \
        --command-config "$3" --topic "$4" --group "$4" --from-beginning --max-messages 3 \
        --timeout-ms 20000 2>/dev/null || true)
    printf '%s\n' "$out" | grep "^$marker" || true
    for who in faust mtls limited; do
        grep -qx "$marker-$who" <<<"$out" || { echo "missing: $marker-$who"; return 1; }
    done
}

# ---------------------------------------------------------------------------------------
# the 3-node cluster

cluster_usage() {
    cat <<EOF
Usage: scripts/kafka.sh cluster <command>   — a 3-broker KRaft cluster on 127.0.0.1 for
broker-failure drills and the multi-broker tests. Nodes 1..3 are brokers; the KRaft controller
is a process of its own (node 4), as Kafka advises for production: killing a broker never
kills the active controller too, which would add the controller's own election to Kafka's
recovery (2-4 s here). KAFKA_CLUSTER_KRAFT=combined makes nodes 1..3 combined
broker+controller (a quorum of 3 voters) instead; switching wipes the cluster. Plaintext;
state in \$KAFKA_HOME_DIR/cluster/{node-N,controller}/{data,logs,run}.
  start              start the nodes not running (the controller first); return once all three
                     brokers answer metadata and list 3 brokers
  stop               TERM the brokers at once, wait for them (KILL after \$KAFKA_STOP_TIMEOUT s),
                     then the controller
  status             each node's pid and whether it answers, the brokers in the metadata and the
                     bootstrap list; exit 0 if all 3 answer, 1 if some run, 3 if none
  kill N             kill -9 node N
  stop-node N        clean stop of node N (TERM, wait for its exit)
  start-node N       start node N, return once it answers metadata listing itself (back in the
                     cluster, unfenced)
  restart-node N     stop-node N + start-node N
  leader-of TOPIC P  print the node id leading partition P of TOPIC (exit 1 if none)
  coordinator-of G   print the node id of group G's coordinator
  logs N [LINES|-f]  the end of node N's broker log, or follow it
  reset              stop, and wipe \$KAFKA_HOME_DIR/cluster
Ports: node N's client port is \$KAFKA_CLUSTER_PORT + N - 1 (default 19092..19094); the
controller's is \$KAFKA_CLUSTER_CONTROLLER_PORT (default \$KAFKA_CLUSTER_PORT + 3, 19095;
combined: node N's is \$KAFKA_CLUSTER_CONTROLLER_PORT + N - 1, 19095..19097). Heap of each node: \$KAFKA_CLUSTER_HEAP_OPTS (default "-Xms128m -Xmx512m").
Replication factor 3 for new and internal topics (6 partitions for __consumer_offsets),
min.insync.replicas=2, broker.session.timeout.ms Kafka's default (9 s). Now: nodes
$(cluster_bootstrap), controller quorum $(cluster_voters).
EOF
}

need_node() {
    if ! [[ ${1:-} =~ ^[1-9][0-9]*$ ]] || (($1 > CLUSTER_SIZE)); then
        echo "kafka.sh: error: a node number 1..$CLUSTER_SIZE is needed, not '${1:-}'" >&2
        exit 2
    fi
}

# The cluster's id, made once (all nodes are formatted with it).
cluster_id() {
    local file=$CLUSTER_DIR/cluster.id
    if [[ ! -s $file ]]; then
        mkdir -p "$CLUSTER_DIR"
        random_cluster_id >"$file"
    fi
    cat "$file"
}

# The cluster's processes: the dedicated controller (if any) first, then the brokers.
cluster_nodes() {
    local n
    [[ $KAFKA_CLUSTER_KRAFT == combined ]] || echo controller
    for ((n = 1; n <= CLUSTER_SIZE; n++)); do echo "$n"; done
}

# A cluster formatted for the other KRaft shape (KAFKA_CLUSTER_KRAFT) cannot be started as this
# one: its metadata log names other voters. Wipes it when nothing of it runs.
reshape_if_needed() {
    local file=$CLUSTER_DIR/kraft was spec
    if [[ -f $file ]]; then
        was=$(cat "$file")
    elif [[ -f $CLUSTER_DIR/node-1/data/meta.properties ]]; then
        was=combined # formatted before the shape was recorded: the only shape there was
    else
        was=$KAFKA_CLUSTER_KRAFT
    fi
    if [[ $was != "$KAFKA_CLUSTER_KRAFT" ]]; then
        for spec in controller $(seq 1 "$CLUSTER_SIZE"); do
            select_broker "$spec"
            ! running_pid >/dev/null || die "the cluster runs as KRaft '$was', not '$KAFKA_CLUSTER_KRAFT': stop it first"
        done
        say "the cluster was formatted as KRaft '$was': wiping it for '$KAFKA_CLUSTER_KRAFT'"
        rm -rf "$CLUSTER_DIR"
    fi
    mkdir -p "$CLUSTER_DIR"
    echo "$KAFKA_CLUSTER_KRAFT" >"$file"
}

cluster_start() {
    local t0 n to_start=() pids=()
    t0=$(now)
    is_installed || cmd_install
    reshape_if_needed
    for n in $(cluster_nodes); do
        select_broker "$n"
        write_config
        if ! keep_if_current; then # not running, or stopped since its configuration changed
            check_ports_free
            to_start+=("$n")
        fi
    done
    if ((${#to_start[@]})); then
        local cid
        cid=$(cluster_id)
        for n in "${to_start[@]}"; do # StorageTool JVMs side by side
            select_broker "$n"
            format_storage "$cid" &
            pids+=($!)
        done
        for n in "${pids[@]}"; do wait "$n" || die "formatting failed"; done
        for n in "${to_start[@]}"; do
            select_broker "$n"
            launch
        done
    else
        say "all $CLUSTER_SIZE nodes already running"
    fi
    local all=()
    for ((n = 1; n <= CLUSTER_SIZE; n++)); do all+=("$n"); done
    wait_ready "$t0" "$CLUSTER_SIZE" "${all[@]}"
    say "ready: $CLUSTER_SIZE brokers, bootstrap $(cluster_bootstrap) (after $(elapsed "$t0") s)"
}

# TERM the brokers at once and wait for them; then the dedicated controller, which their
# controlled shutdown needs.
cluster_stop() {
    local n pid pids=() nodes=() stopped=0
    for ((n = 1; n <= CLUSTER_SIZE; n++)); do
        select_broker "$n"
        if pid=$(running_pid); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid") nodes+=("$n")
        fi
    done
    if ((${#pids[@]})); then
        say "stopping node(s) ${nodes[*]} ..."
        for n in "${!pids[@]}"; do
            select_broker "${nodes[n]}"
            wait_exit "${pids[n]}"
        done
        stopped=1
    fi
    select_broker controller
    if running_pid >/dev/null; then
        stop_selected
        stopped=1
    fi
    if ((stopped)); then say "stopped"; else say "no node running"; fi
}

cluster_status() {
    local n pid running=0 answering=0 ids=''
    for ((n = 1; n <= CLUSTER_SIZE; n++)); do
        select_broker "$n"
        if pid=$(running_pid); then
            running=$((running + 1))
            if answers_metadata; then
                answering=$((answering + 1))
                say "node $n: pid $pid, $BOOTSTRAP answers metadata (controller port $CONTROLLER_PORT)"
                [[ -n $ids ]] || ids=$(metadata_brokers "$BOOTSTRAP" | sort -n | paste -sd, -)
            else
                say "node $n: pid $pid, $BOOTSTRAP does NOT answer metadata"
            fi
        else
            say "node $n: not running ($BOOTSTRAP)"
        fi
    done
    [[ -z $ids ]] || say "brokers in the metadata: $ids"
    if [[ $KAFKA_CLUSTER_KRAFT == dedicated ]]; then
        select_broker controller
        if pid=$(running_pid); then
            say "controller (node $NODE_ID): pid $pid, 127.0.0.1:$CONTROLLER_PORT"
        else
            say "controller (node $NODE_ID): not running"
        fi
    fi
    say "bootstrap: $(cluster_bootstrap)"
    ((answering == CLUSTER_SIZE)) && return 0
    ((running > 0)) && return 1
    return 3
}

cluster_kill() {
    local pid
    select_broker "$1"
    pid=$(running_pid) || die "node $1 is not running"
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$PID_FILE"
    say "node $1 (pid $pid) killed (SIGKILL)"
}

cluster_start_node() {
    local t0
    t0=$(now)
    is_installed || cmd_install
    select_broker "$1"
    write_config
    if keep_if_current; then
        say "node $1 already running (pid $(running_pid))"
    else
        check_ports_free
        format_storage "$(cluster_id)"
        launch
    fi
    wait_ready "$t0" 1 "$1"
    say "node $1 is back: $BOOTSTRAP answers metadata listing it (after $(elapsed "$t0") s)"
}

# partition_leaders TOPIC: "PARTITION LEADER" lines for TOPIC, from the metadata of any node of
# the cluster that answers (leader -1: none). Nothing if the topic does not exist.
partition_leaders() {
    if command -v kcat >/dev/null; then
        { timeout 15 kcat -b "$(cluster_bootstrap)" -L -t "$1" -m 5 2>/dev/null || true; } |
            sed -n 's/^ *partition \([0-9]*\), leader \(-\{0,1\}[0-9]*\),.*/\1 \2/p'
    else
        { TOOL_TIMEOUT=60 kafka_tool org.apache.kafka.tools.TopicCommand \
            --bootstrap-server "$(cluster_bootstrap)" --describe --topic "$1" 2>/dev/null || true; } |
            sed -n 's/.*Partition: \([0-9]*\)[[:space:]]*Leader: \(-\{0,1\}[0-9]*\).*/\1 \2/p'
    fi
}

# leader_of TOPIC PARTITION: prints the leader's node id, or dies.
leader_of() {
    local topic=$1 partition=$2 leader
    leader=$(partition_leaders "$topic" | awk -v p="$partition" '$1 == p { print $2 }')
    [[ -n $leader ]] || die "no partition $partition of topic '$topic' in the cluster's metadata"
    [[ $leader != -1 ]] || die "partition $partition of '$topic' has no leader now"
    echo "$leader"
}

# java_string_hash STRING: Java's String.hashCode() (over UTF-16 code units), a signed 32-bit int.
java_string_hash() {
    local h=0 unit
    for unit in $(printf '%s' "$1" | iconv -f UTF-8 -t UTF-16BE | od -An -v -tu2 --endian=big); do
        h=$(((h * 31 + unit) & 0xFFFFFFFF))
    done
    ((h < 2 ** 31)) || h=$((h - 2 ** 32))
    echo "$h"
}

# coordinator-of GROUP: the leader of the partition of __consumer_offsets that holds GROUP,
# abs(GROUP.hashCode()) % its partition count (Kafka's GroupCoordinatorService.partitionFor):
# what FindCoordinator answers, for groups that exist or not, without a JVM.
coordinator_of() {
    local group=$1 leaders count hash partition
    leaders=$(partition_leaders __consumer_offsets)
    count=$(grep -c . <<<"$leaders" || true)
    ((count > 0)) || die "__consumer_offsets does not exist yet (no group has used the cluster)"
    hash=$(java_string_hash "$group")
    if ((hash == -2 ** 31)); then hash=0; fi # Kafka's Utils.abs
    partition=$(((hash < 0 ? -hash : hash) % count))
    leader_of __consumer_offsets "$partition"
}

cmd_cluster() {
    local sub=${1:-}
    shift || true
    case $sub in
    start) cluster_start ;;
    stop) cluster_stop ;;
    status) cluster_status ;;
    kill) need_node "${1:-}" && cluster_kill "$1" ;;
    stop-node) need_node "${1:-}" && select_broker "$1" && stop_selected ;;
    start-node) need_node "${1:-}" && cluster_start_node "$1" ;;
    restart-node) need_node "${1:-}" && select_broker "$1" && stop_selected && cluster_start_node "$1" ;;
    leader-of)
        (($# == 2)) || { cluster_usage >&2; exit 2; }
        [[ $2 =~ ^[0-9]+$ ]] || die "leader-of: a partition number is needed, not '$2'"
        leader_of "$1" "$2"
        ;;
    coordinator-of)
        (($# == 1)) || { cluster_usage >&2; exit 2; }
        coordinator_of "$1"
        ;;
    logs) need_node "${1:-}" && select_broker "$1" && shift && cmd_logs "$@" ;;
    reset)
        cluster_stop
        rm -rf "$CLUSTER_DIR"
        say "wiped $CLUSTER_DIR"
        ;;
    -h | --help | help) cluster_usage ;;
    *)
        cluster_usage >&2
        exit 2
        ;;
    esac
}

# ---------------------------------------------------------------------------------------

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

main() {
    local cmd=${1:-}
    shift || true
    case $cmd in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop && cmd_start ;;
    status) cmd_status ;;
    ping) cmd_ping ;;
    logs) select_broker single && cmd_logs "$@" ;;
    reset) cmd_reset ;;
    clients-env) cmd_clients_env ;;
    selftest) cmd_selftest ;;
    cluster) cmd_cluster "$@" ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
