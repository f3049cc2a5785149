#!/usr/bin/env bash
# Local infrastructure for calsync without Docker: a real Apache Kafka (KRaft, single combined
# broker+controller node) and a real PostgreSQL cluster, both owned by this repository.
#
#   deploy/local/infra.sh up       start both (idempotent), wait until ready, print settings
#   deploy/local/infra.sh down     stop both (graceful, then forced after a timeout)
#   deploy/local/infra.sh status   show what runs; exit 0 only if both are up
#   deploy/local/infra.sh env      print the connection settings (KEY=value lines)
#   deploy/local/infra.sh clean    down, then delete .run/ (data and logs; .cache/ is kept)
#   deploy/local/infra.sh pg-stop | pg-start | kafka-stop | kafka-start
#                                  one server only (failure tests stop and start them under load)
#
# Progress goes to stderr; stdout carries only the KEY=value settings, so
# `eval "$(deploy/local/infra.sh up)"` works. See deploy/local/README.md.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

# ---------------------------------------------------------------------------------------------
# Settings: caller's environment > .env at repo root > defaults.
# ---------------------------------------------------------------------------------------------
SETTINGS=(KAFKA_HOST KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_HEAP_OPTS
  PGHOST PGPORT PGUSER PGPASSWORD CALSYNC_DATABASES PG_BINDIR INFRA_TIMEOUT)

if [[ -f "$ROOT/.env" ]]; then
  declare -A _from_env=()
  for _v in "${SETTINGS[@]}"; do
    if [[ -n "${!_v+x}" ]]; then _from_env[$_v]="${!_v}"; fi
  done
  set -a
  # shellcheck disable=SC1091
  . "$ROOT/.env"
  set +a
  for _v in "${!_from_env[@]}"; do printf -v "$_v" '%s' "${_from_env[$_v]}"; done
  unset _v _from_env
fi

KAFKA_HOST="${KAFKA_HOST:-127.0.0.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx512m}"
PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
PGUSER="${PGUSER:-calsync}"
PGPASSWORD="${PGPASSWORD:-calsync}" # development only
CALSYNC_DATABASES="${CALSYNC_DATABASES:-connector sync_worker availability calsync_test}"
PG_BINDIR="${PG_BINDIR:-}"
INFRA_TIMEOUT="${INFRA_TIMEOUT:-90}" # seconds, per readiness wait

KAFKA_VERSION=4.1.1
CACHE_DIR="$ROOT/.cache"
RUN_DIR="$ROOT/.run"

KAFKA_POM="$SCRIPT_DIR/kafka/pom.xml"
KAFKA_LIBS="$CACHE_DIR/kafka/libs-$KAFKA_VERSION"
KAFKA_LIBS_MARKER="$KAFKA_LIBS/.complete"
KAFKA_RUN="$RUN_DIR/kafka"
KAFKA_DATA="$KAFKA_RUN/data"
KAFKA_LOGS="$KAFKA_RUN/logs"
KAFKA_PID="$KAFKA_RUN/kafka.pid"
KAFKA_PROPS="$KAFKA_RUN/server.properties"
KAFKA_LOG4J="$KAFKA_RUN/log4j2.xml"
KAFKA_TOOLS_LOG4J="$KAFKA_RUN/log4j2-tools.xml"
KAFKA_FORMATTED="$KAFKA_RUN/formatted.env"
# Every JVM we start carries this marker, so a pid is only trusted if it is really ours.
KAFKA_MARKER="-Dcalsync.infra.root=$ROOT"

PG_RUN="$RUN_DIR/postgres"
PG_DATA="$PG_RUN/data"
PG_SOCKET_DIR="$PG_RUN/socket"
PG_LOG="$PG_RUN/postgres.log"
PG_SYSTEM_USER=postgres
PG_SUPERUSER=postgres # bootstrap superuser inside the cluster (local socket, trust)

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
log() { printf '[infra] %s\n' "$*" >&2; }
die() {
  printf '[infra] ERROR: %s\n' "$*" >&2
  exit 1
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# port_open HOST PORT: something accepts TCP connections there.
port_open() {
  # shellcheck disable=SC2016 # $1/$2 expand in the inner shell
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# Who listens on a port (best effort, for error messages).
port_owner() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null | sed 's/^/    /' || true
  fi
}

# tail_log FILE: show the end of a log on stderr.
tail_log() {
  if [[ -f "$1" ]]; then
    printf '[infra] ---- last lines of %s ----\n' "$1" >&2
    tail -n 40 "$1" >&2 || true
    printf '[infra] ----\n' >&2
  fi
}

# Percent-encode for use in a URL userinfo/path.
urlencode() {
  local s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [a-zA-Z0-9.~_-]) out+="$c" ;;
      *) out+="$(printf '%%%02X' "'$c")" ;;
    esac
  done
  printf '%s' "$out"
}

# Quote a value for KEY=value output only when needed (spaces, shell specials).
quote_value() {
  if [[ "$1" =~ ^[A-Za-z0-9_.,:/@%+=-]*$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

print_env() {
  local db var
  local user pass
  user="$(urlencode "$PGUSER")"
  pass="$(urlencode "$PGPASSWORD")"
  printf 'KAFKA_HOST=%s\n' "$(quote_value "$KAFKA_HOST")"
  printf 'KAFKA_PORT=%s\n' "$(quote_value "$KAFKA_PORT")"
  printf 'KAFKA_CONTROLLER_PORT=%s\n' "$(quote_value "$KAFKA_CONTROLLER_PORT")"
  printf 'CALSYNC_KAFKA_BOOTSTRAP=%s\n' "$(quote_value "$KAFKA_HOST:$KAFKA_PORT")"
  # Tells tests that this script owns the servers, so they may stop and start them.
  printf 'CALSYNC_LOCAL_INFRA=%s\n' "$(quote_value "$SCRIPT_DIR/infra.sh")"
  printf 'PGHOST=%s\n' "$(quote_value "$PGHOST")"
  printf 'PGPORT=%s\n' "$(quote_value "$PGPORT")"
  printf 'PGUSER=%s\n' "$(quote_value "$PGUSER")"
  printf 'PGPASSWORD=%s\n' "$(quote_value "$PGPASSWORD")"
  printf 'CALSYNC_DATABASES=%s\n' "$(quote_value "$CALSYNC_DATABASES")"
  for db in $CALSYNC_DATABASES; do
    var="$(printf '%s' "$db" | tr '[:lower:]-' '[:upper:]_')_DATABASE_URL"
    printf '%s=%s\n' "$var" "$(quote_value "postgresql://$user:$pass@$PGHOST:$PGPORT/$db")"
  done
}

validate_settings() {
  local p
  for p in KAFKA_PORT KAFKA_CONTROLLER_PORT PGPORT INFRA_TIMEOUT; do
    [[ "${!p}" =~ ^[0-9]+$ ]] || die "$p must be a number, got '${!p}'"
  done
  [[ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"
  [[ "$PGUSER" =~ ^[a-z_][a-z0-9_]*$ ]] || die "PGUSER must be a plain lower-case identifier, got '$PGUSER'"
  for p in $CALSYNC_DATABASES; do
    [[ "$p" =~ ^[a-z_][a-z0-9_]*$ ]] || die "database names must be plain lower-case identifiers, got '$p'"
  done
}

# ---------------------------------------------------------------------------------------------
# Kafka
# ---------------------------------------------------------------------------------------------
ensure_java_maven() {
  local missing=()
  command -v java >/dev/null 2>&1 || missing+=(default-jdk-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  if ((${#missing[@]})); then
    if is_root && command -v apt-get >/dev/null 2>&1; then
      log "installing ${missing[*]} (apt-get)"
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    else
      die "missing ${missing[*]}: install a Java 17+ JDK and Maven (Debian: apt-get install default-jdk-headless maven)"
    fi
  fi
  local major
  major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p')"
  [[ -n "$major" && "$major" -ge 17 ]] || die "Kafka $KAFKA_VERSION needs Java 17 or newer (found: ${major:-unknown})"
}

ensure_kafka_libs() {
  if [[ -f "$KAFKA_LIBS_MARKER" ]] && [[ "$(cat "$KAFKA_LIBS_MARKER")" == "$(sha256sum <"$KAFKA_POM" | cut -d' ' -f1)" ]]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || ensure_java_maven
  log "fetching Kafka $KAFKA_VERSION jars with Maven into ${KAFKA_LIBS#"$ROOT"/}"
  local tmp="$KAFKA_LIBS.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if ! mvn -B -q -f "$KAFKA_POM" dependency:copy-dependencies \
    -DoutputDirectory="$tmp" -DincludeScope=runtime >"$CACHE_DIR/kafka/mvn.log" 2>&1; then
    tail_log "$CACHE_DIR/kafka/mvn.log"
    rm -rf "$tmp"
    die "mvn dependency:copy-dependencies failed"
  fi
  sha256sum <"$KAFKA_POM" | cut -d' ' -f1 >"$tmp/.complete"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
}

# The pid of our broker, if it runs (pid file + /proc cmdline carries our marker).
kafka_pid() {
  local pid
  [[ -f "$KAFKA_PID" ]] || return 1
  pid="$(cat "$KAFKA_PID" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$KAFKA_MARKER" || return 1
  printf '%s\n' "$pid"
}

write_kafka_config() {
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
  cat >"$KAFKA_PROPS" <<EOF
# Generated by deploy/local/infra.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$KAFKA_DATA
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
EOF

  cat >"$KAFKA_LOG4J" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/local/infra.sh. Broker: INFO to file, WARN and above to the console. -->
<Configuration status="WARN">
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT">
      <ThresholdFilter level="WARN" onMatch="ACCEPT" onMismatch="DENY"/>
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
    <RollingFile name="FILE" fileName="$KAFKA_LOGS/server.log" filePattern="$KAFKA_LOGS/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="50MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO">
      <AppenderRef ref="STDOUT"/>
      <AppenderRef ref="FILE"/>
    </Root>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.common.config" level="WARN"/>
    <Logger name="org.apache.kafka.common.utils.AppInfoParser" level="WARN"/>
  </Loggers>
</Configuration>
EOF

  cat >"$KAFKA_TOOLS_LOG4J" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/local/infra.sh. Command-line tools: warnings only, to stderr. -->
<Configuration status="WARN">
  <Appenders>
    <Console name="STDERR" target="SYSTEM_ERR">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="WARN">
      <AppenderRef ref="STDERR"/>
    </Root>
  </Loggers>
</Configuration>
EOF
}

# kafka_tool CLASS ARGS...: run a Kafka command-line class from the cached jars (small, fast JVM).
kafka_tool() {
  local cls="$1"
  shift
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$KAFKA_TOOLS_LOG4J" -cp "$KAFKA_LIBS/*" "$cls" "$@"
}

format_kafka_storage() {
  local want="host=$KAFKA_HOST controller_port=$KAFKA_CONTROLLER_PORT"
  if [[ -f "$KAFKA_DATA/meta.properties" ]]; then
    if [[ -f "$KAFKA_FORMATTED" && "$(cat "$KAFKA_FORMATTED")" != "$want" ]]; then
      die "Kafka storage in ${KAFKA_DATA#"$ROOT"/} was formatted for $(cat "$KAFKA_FORMATTED"); the controller endpoint is part of the stored voter set. Run '$0 clean' to start over, or restore the old KAFKA_HOST/KAFKA_CONTROLLER_PORT."
    fi
    return 0
  fi
  local cluster_id
  cluster_id="$(kafka_tool kafka.tools.StorageTool random-uuid)"
  log "formatting Kafka storage (cluster id $cluster_id)"
  rm -rf "$KAFKA_DATA"
  mkdir -p "$KAFKA_DATA"
  if ! kafka_tool kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$KAFKA_PROPS" \
    >"$KAFKA_LOGS/format.log" 2>&1; then
    tail_log "$KAFKA_LOGS/format.log"
    die "kafka-storage format failed"
  fi
  printf '%s\n' "$want" >"$KAFKA_FORMATTED"
}

kafka_ready() {
  local out
  out="$(timeout 30 java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    "-Dlog4j2.configurationFile=$KAFKA_TOOLS_LOG4J" -cp "$KAFKA_LIBS/*" \
    org.apache.kafka.tools.BrokerApiVersionsCommand \
    --bootstrap-server "$KAFKA_HOST:$KAFKA_PORT" 2>/dev/null)" || return 1
  [[ "$out" == *"(id: 1 "* ]]
}

# The process we started still runs, whatever it has exec'd into so far: right after the spawn
# it is still the subshell/setsid/nohup on its way to java, so its cmdline may not name Kafka
# yet. (kill -0 alone would also accept an unreaped zombie, hence the state field.)
process_running() {
  local state
  state="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [[ -n "$state" && "$state" != "Z" ]]
}

kafka_wait_ready() {
  local pid="$1" deadline=$((SECONDS + INFRA_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! process_running "$pid"; then
      tail_log "$KAFKA_LOGS/kafka.out"
      tail_log "$KAFKA_LOGS/server.log"
      die "Kafka exited during startup (logs above, in ${KAFKA_LOGS#"$ROOT"/})"
    fi
    # Cheap check first, then a real client round trip (ApiVersions against the broker).
    if port_open "$KAFKA_HOST" "$KAFKA_PORT" && kafka_ready; then
      return 0
    fi
    sleep 0.5
  done
  tail_log "$KAFKA_LOGS/server.log"
  die "Kafka did not become ready within ${INFRA_TIMEOUT}s (pid $pid still running; '$0 down' stops it)"
}

kafka_up() {
  local pid
  if pid="$(kafka_pid)"; then
    if kafka_ready; then
      log "Kafka already running (pid $pid) on $KAFKA_HOST:$KAFKA_PORT"
      return 0
    fi
    if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
      log "Kafka (pid $pid) is running but not answering yet; waiting"
    else
      log "Kafka (pid $pid) runs but not on $KAFKA_HOST:$KAFKA_PORT yet; waiting (if you changed KAFKA_PORT, run '$0 down' first)"
    fi
    kafka_wait_ready "$pid"
    return 0
  fi
  rm -f "$KAFKA_PID"

  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$KAFKA_HOST" "$port"; then
      port_owner "$port" >&2
      die "port $KAFKA_HOST:$port is in use by a process that is not this repo's Kafka. Stop it or pick free ports, e.g. KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 $0 up"
    fi
  done

  ensure_java_maven
  ensure_kafka_libs
  write_kafka_config
  format_kafka_storage

  log "starting Kafka $KAFKA_VERSION (KRaft broker+controller) on $KAFKA_HOST:$KAFKA_PORT"
  # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS is a list of JVM flags
  (cd "$KAFKA_RUN" && exec setsid nohup java $KAFKA_HEAP_OPTS -server "$KAFKA_MARKER" \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$KAFKA_LOG4J" "-Dkafka.logs.dir=$KAFKA_LOGS" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
    >"$KAFKA_LOGS/kafka.out" 2>&1 </dev/null) &
  pid=$!
  printf '%s\n' "$pid" >"$KAFKA_PID"
  kafka_wait_ready "$pid"
  log "Kafka ready (pid $pid)"
}

# wait_gone PID SECONDS: true once the process is gone.
wait_gone() {
  local pid="$1" deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  ! kill -0 "$pid" 2>/dev/null
}

kafka_down() {
  local pid
  if ! pid="$(kafka_pid)"; then
    rm -f "$KAFKA_PID"
    log "Kafka not running"
    return 0
  fi
  log "stopping Kafka (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" 60; then
    log "Kafka did not stop within 60s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "could not kill Kafka pid $pid"
  fi
  rm -f "$KAFKA_PID"
  log "Kafka stopped"
}

kafka_status() {
  local pid
  if pid="$(kafka_pid)"; then
    if kafka_ready; then
      log "Kafka: running, ready (pid $pid, $KAFKA_HOST:$KAFKA_PORT)"
      return 0
    fi
    log "Kafka: running (pid $pid) but not answering on $KAFKA_HOST:$KAFKA_PORT"
    return 1
  fi
  if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    log "Kafka: not ours, but something listens on $KAFKA_HOST:$KAFKA_PORT"
  else
    log "Kafka: stopped"
  fi
  return 1
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------
find_pg_bindir() {
  local d
  if [[ -n "$PG_BINDIR" ]]; then
    [[ -x "$PG_BINDIR/initdb" ]] || die "PG_BINDIR=$PG_BINDIR has no initdb"
    return 0
  fi
  if command -v pg_config >/dev/null 2>&1; then
    d="$(pg_config --bindir 2>/dev/null || true)"
    if [[ -n "$d" && -x "$d/initdb" && -x "$d/postgres" ]]; then
      PG_BINDIR="$d"
      return 0
    fi
  fi
  d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1 || true)"
  if [[ -n "$d" && -x "$d/initdb" && -x "$d/postgres" ]]; then
    PG_BINDIR="$d"
    return 0
  fi
  return 1
}

ensure_postgres_installed() {
  find_pg_bindir && return 0
  if ! is_root || ! command -v apt-get >/dev/null 2>&1; then
    die "PostgreSQL server binaries not found. Install them (Debian/Ubuntu: sudo apt-get install postgresql postgresql-contrib) or set PG_BINDIR to the folder holding initdb/pg_ctl/postgres."
  fi
  log "installing PostgreSQL (apt-get install postgresql postgresql-contrib)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # Keep Debian from creating and starting its own 'main' cluster on 5432: ours is the only one.
  apt-get install -y -qq postgresql-common >&2
  if [[ -f /etc/postgresql-common/createcluster.conf ]]; then
    sed -ri 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf
  fi
  apt-get install -y -qq postgresql postgresql-contrib >&2
  find_pg_bindir || die "PostgreSQL installed, but no initdb found under /usr/lib/postgresql/*/bin"
}

# run_pg CMD...: run a server-side command as the PostgreSQL system user when we are root
# (initdb and postgres refuse to run as root), else as ourselves.
run_pg() {
  if is_root; then
    (cd "$PG_RUN" && runuser -u "$PG_SYSTEM_USER" -- "$@")
  else
    (cd "$PG_RUN" && "$@")
  fi
}

prepare_pg_dirs() {
  mkdir -p "$PG_RUN" "$PG_SOCKET_DIR"
  # The socket path must fit in sockaddr_un (107 bytes).
  ((${#PG_SOCKET_DIR} + 20 < 107)) || die "socket path too long: $PG_SOCKET_DIR/.s.PGSQL.$PGPORT (move the checkout to a shorter path)"
  if ! is_root; then
    return 0
  fi
  if ! id -u "$PG_SYSTEM_USER" >/dev/null 2>&1; then
    log "creating system user $PG_SYSTEM_USER"
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash --user-group "$PG_SYSTEM_USER"
  fi
  chown "$PG_SYSTEM_USER:" "$PG_RUN" "$PG_SOCKET_DIR"
  chmod 0700 "$PG_RUN"
  chmod 0755 "$PG_SOCKET_DIR"
  [[ ! -e "$PG_DATA" ]] || chown -R "$PG_SYSTEM_USER:" "$PG_DATA"
  # Every parent of .run/postgres must be traversable by that user.
  local d="$RUN_DIR"
  chmod o+x "$RUN_DIR"
  while [[ "$d" != "/" ]]; do
    if ! runuser -u "$PG_SYSTEM_USER" -- test -x "$d"; then
      die "user $PG_SYSTEM_USER cannot enter $d (needed to reach ${PG_RUN}); run: chmod o+x '$d'"
    fi
    d="$(dirname "$d")"
  done
  runuser -u "$PG_SYSTEM_USER" -- test -w "$PG_RUN" || die "user $PG_SYSTEM_USER cannot write $PG_RUN"
}

pg_init_cluster() {
  [[ -f "$PG_DATA/PG_VERSION" ]] && return 0
  log "initdb ${PG_DATA#"$ROOT"/} ($("$PG_BINDIR/postgres" --version))"
  rm -rf "$PG_DATA"
  local pwfile="$PG_RUN/.pwfile"
  (umask 077 && printf '%s\n' "$PGPASSWORD" >"$pwfile")
  if is_root; then chown "$PG_SYSTEM_USER:" "$pwfile"; fi
  if ! run_pg "$PG_BINDIR/initdb" -D "$PG_DATA" -U "$PG_SUPERUSER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
    >"$PG_RUN/initdb.log" 2>&1; then
    rm -f "$pwfile"
    tail_log "$PG_RUN/initdb.log"
    die "initdb failed"
  fi
  rm -f "$pwfile"
  printf "\ninclude_if_exists = 'calsync.conf'\n" | run_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

pg_write_config() {
  # Rewritten on every start, so PGHOST/PGPORT changes apply.
  run_pg tee "$PG_DATA/calsync.conf" >/dev/null <<EOF
# Generated by deploy/local/infra.sh on every start; edit the script, not this file.
listen_addresses = '$PGHOST'
port = $PGPORT
unix_socket_directories = '$PG_SOCKET_DIR'
max_connections = 200
shared_buffers = 256MB
password_encryption = 'scram-sha-256'
# Durability stays at the defaults (fsync, synchronous_commit, full_page_writes): crash tests rely on it.
EOF
}

# The postmaster pid, if our cluster runs.
pg_pid() {
  local pid
  [[ -f "$PG_DATA/postmaster.pid" ]] || return 1
  pid="$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [[ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" == */postgres ]] || return 1
  printf '%s\n' "$pid"
}

# The port our running cluster listens on (4th line of postmaster.pid).
pg_running_port() { sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null; }

pg_tcp_query() {
  PGPASSWORD="$PGPASSWORD" PGCONNECT_TIMEOUT=5 "$PG_BINDIR/psql" -X -q -A -t \
    -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d "$1" -c "$2"
}

pg_wait_ready() {
  local deadline=$((SECONDS + INFRA_TIMEOUT))
  while ((SECONDS < deadline)); do
    if "$PG_BINDIR/pg_isready" -q -h "$PGHOST" -p "$PGPORT" -t 2; then
      return 0
    fi
    if ! pg_pid >/dev/null; then
      tail_log "$PG_LOG"
      die "PostgreSQL exited during startup (log: ${PG_LOG#"$ROOT"/})"
    fi
    sleep 0.5
  done
  tail_log "$PG_LOG"
  die "PostgreSQL did not become ready within ${INFRA_TIMEOUT}s"
}

pg_bootstrap() {
  local db sql pw_lit
  pw_lit="'${PGPASSWORD//\'/\'\'}'"
  local -x PGOPTIONS="-c client_min_messages=warning"
  local psql_local=("$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PGPORT" -U "$PG_SUPERUSER")
  sql="DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PGUSER') THEN
    CREATE ROLE \"$PGUSER\" LOGIN SUPERUSER;
  END IF;
END \$\$;
ALTER ROLE \"$PGUSER\" LOGIN SUPERUSER PASSWORD $pw_lit;"
  "${psql_local[@]}" -d postgres -c "$sql" >/dev/null || die "could not create role $PGUSER"
  # Databases created later from template1 (e.g. per-test databases) get btree_gist too.
  "${psql_local[@]}" -d template1 -c "CREATE EXTENSION IF NOT EXISTS btree_gist" >/dev/null ||
    die "could not create extension btree_gist (Debian: install postgresql-contrib)"
  for db in $CALSYNC_DATABASES; do
    if [[ -z "$("${psql_local[@]}" -d postgres -A -t -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]]; then
      log "creating database $db"
      "${psql_local[@]}" -d postgres -c "CREATE DATABASE \"$db\" OWNER \"$PGUSER\"" >/dev/null ||
        die "could not create database $db"
    fi
    "${psql_local[@]}" -d "$db" -c "CREATE EXTENSION IF NOT EXISTS btree_gist" >/dev/null ||
      die "could not create extension btree_gist in $db (Debian: install postgresql-contrib)"
  done
}

pg_verify_tcp() {
  local db
  for db in $CALSYNC_DATABASES; do
    [[ "$(pg_tcp_query "$db" "SELECT current_user || '@' || current_database()")" == "$PGUSER@$db" ]] ||
      die "password login as $PGUSER to $db over TCP ($PGHOST:$PGPORT) failed"
  done
}

pg_up() {
  local pid running_port
  ensure_postgres_installed
  if pid="$(pg_pid)"; then
    running_port="$(pg_running_port)"
    if [[ "$running_port" != "$PGPORT" ]]; then
      die "our PostgreSQL (pid $pid) runs on port $running_port, but PGPORT=$PGPORT; run '$0 down' first"
    fi
    log "PostgreSQL already running (pid $pid) on $PGHOST:$PGPORT"
    pg_wait_ready
  else
    if port_open "$PGHOST" "$PGPORT"; then
      port_owner "$PGPORT" >&2
      die "port $PGHOST:$PGPORT is in use by a process that is not this repo's PostgreSQL (a system cluster? see pg_lsclusters). Stop it or use another port, e.g. PGPORT=55432 $0 up"
    fi
    prepare_pg_dirs
    pg_init_cluster
    pg_write_config
    log "starting PostgreSQL on $PGHOST:$PGPORT"
    : >"$PG_LOG" 2>/dev/null || true
    if is_root; then chown "$PG_SYSTEM_USER:" "$PG_LOG"; fi
    if ! run_pg setsid "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$INFRA_TIMEOUT" start >/dev/null; then
      tail_log "$PG_LOG"
      die "pg_ctl start failed"
    fi
    pg_wait_ready
  fi
  pg_bootstrap
  pg_verify_tcp
  log "PostgreSQL ready (pid $(pg_pid || echo '?'); databases: $CALSYNC_DATABASES)"
}

pg_down() {
  local pid
  if ! pid="$(pg_pid)"; then
    log "PostgreSQL not running"
    return 0
  fi
  find_pg_bindir || die "PostgreSQL runs (pid $pid) but its binaries are gone; kill it by pid"
  log "stopping PostgreSQL (pid $pid)"
  if ! run_pg "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1; then
    log "fast shutdown did not finish within 30s; immediate shutdown"
    run_pg "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -m immediate -w -t 15 stop >/dev/null 2>&1 || true
  fi
  if ! wait_gone "$pid" 5; then
    log "killing PostgreSQL pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "could not kill PostgreSQL pid $pid"
  fi
  log "PostgreSQL stopped"
}

pg_status() {
  local pid
  if pid="$(pg_pid)"; then
    find_pg_bindir || true
    if [[ -n "$PG_BINDIR" ]] && pg_tcp_query postgres "SELECT 1" >/dev/null 2>&1; then
      log "PostgreSQL: running, ready (pid $pid, $PGHOST:$(pg_running_port))"
      return 0
    fi
    log "PostgreSQL: running (pid $pid, port $(pg_running_port)) but no password login on $PGHOST:$PGPORT"
    return 1
  fi
  if port_open "$PGHOST" "$PGPORT"; then
    log "PostgreSQL: not ours, but something listens on $PGHOST:$PGPORT"
  else
    log "PostgreSQL: stopped"
  fi
  return 1
}

# ---------------------------------------------------------------------------------------------
# Fail before starting anything if a port we need is held by someone else.
preflight_ports() {
  local port
  if ! kafka_pid >/dev/null; then
    for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
      if port_open "$KAFKA_HOST" "$port"; then
        port_owner "$port" >&2
        die "port $KAFKA_HOST:$port is in use by a process that is not this repo's Kafka. Stop it or pick free ports, e.g. KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 $0 up"
      fi
    done
  fi
  if ! pg_pid >/dev/null && port_open "$PGHOST" "$PGPORT"; then
    port_owner "$PGPORT" >&2
    die "port $PGHOST:$PGPORT is in use by a process that is not this repo's PostgreSQL (a system cluster? see pg_lsclusters). Stop it or use another port, e.g. PGPORT=55432 $0 up"
  fi
}

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  local cmd="${1:-}"
  case "$cmd" in
    up)
      validate_settings
      mkdir -p "$CACHE_DIR/kafka" "$RUN_DIR"
      preflight_ports
      pg_up
      kafka_up
      print_env
      ;;
    down)
      local rc=0
      kafka_down || rc=1
      pg_down || rc=1
      return "$rc"
      ;;
    status)
      local rc=0
      kafka_status || rc=1
      pg_status || rc=1
      return "$rc"
      ;;
    env)
      validate_settings
      print_env
      ;;
    pg-stop) pg_down ;;
    pg-start)
      validate_settings
      pg_up
      ;;
    kafka-stop) kafka_down ;;
    kafka-start)
      validate_settings
      kafka_up
      ;;
    clean)
      kafka_down
      pg_down
      log "removing ${RUN_DIR#"$ROOT"/}/ (kept ${CACHE_DIR#"$ROOT"/}/)"
      rm -rf "$RUN_DIR"
      ;;
    *) usage ;;
  esac
}

main "$@"
