#!/usr/bin/env bash
# Runs a real single-node Apache Kafka broker (KRaft, broker+controller in one
# JVM) on 127.0.0.1 for integration tests. No Docker: the jars come from Maven
# Central through tools/kafka/pom.xml and are cached under .build/kafka/libs.
#
# Usage:
#   tools/kafka/broker.sh start    # prints KAFKA_BOOTSTRAP=127.0.0.1:<port> on stdout
#   tools/kafka/broker.sh status   # exit 0 healthy, 1 running but not answering, 3 not running
#   tools/kafka/broker.sh stop     # idempotent
#   tools/kafka/broker.sh kill     # SIGKILL the broker (a crash); keeps its ports and data for restart
#   tools/kafka/broker.sh restart  # start the killed or stopped broker again on the same ports and data dir
#
#   eval "$(tools/kafka/broker.sh start)"; export KAFKA_BOOTSTRAP
#
# Environment knobs (all optional):
#   KAFKA_BUILD_DIR      cache + state root     (default <repo>/.build/kafka)
#   KAFKA_HEAP_OPTS      JVM heap flags         (default -Xms512m -Xmx1g)
#   KAFKA_START_TIMEOUT  readiness bound, s     (default 60)
#   KAFKA_STOP_TIMEOUT   SIGTERM grace, s       (default 30)
set -euo pipefail

KAFKA_VERSION=4.4.0 # keep in sync with kafka.version in pom.xml

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
POM="$SCRIPT_DIR/pom.xml"
LOG4J_CONF="$SCRIPT_DIR/log4j2.properties"
BUILD_DIR="${KAFKA_BUILD_DIR:-$REPO_ROOT/.build/kafka}"
LIBS="$BUILD_DIR/libs"
CURRENT="$BUILD_DIR/current.env" # points at the live run's state dir, pid and ports
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
READY_LINE="Kafka Server started"

log() { printf 'broker.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Seconds since $1 (an $EPOCHREALTIME value), one decimal.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

require_java() {
  command -v java >/dev/null 2>&1 ||
    die "java not found on PATH; Kafka $KAFKA_VERSION needs a JDK/JRE 17+ (e.g. apt-get install -y openjdk-17-jre-headless)"
  # Kafka 4.x brokers refuse to run on anything older than 17; say so up front
  # instead of letting the JVM die with an UnsupportedClassVersionError.
  local spec
  spec="$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ { v = $2 } END { print v }')"
  if [[ "$spec" =~ ^[0-9]+$ ]] && ((spec < 17)); then
    die "java $spec found; Kafka $KAFKA_VERSION needs Java 17 or newer"
  fi
}

require_mvn() {
  command -v mvn >/dev/null 2>&1 ||
    die "mvn not found on PATH; it is needed once to fetch the Kafka jars (e.g. apt-get install -y maven)"
}

# The jar folder is reused while it was built from the current pom.xml. The
# stamp is written last, so an interrupted download is never taken as complete.
ensure_libs() {
  local want have="" tmp t0
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  [[ -f "$LIBS/.complete" ]] && have="$(cat "$LIBS/.complete")"
  if [[ "$want" == "$have" ]]; then
    LIBS_NOTE="libs cached"
    return
  fi
  require_mvn
  log "resolving Kafka $KAFKA_VERSION jars into $LIBS (one-off)"
  t0=$EPOCHREALTIME
  tmp="$(mktemp -d "$BUILD_DIR/libs.tmp.XXXXXX")"
  # mvn -q still prints colour codes on stdout; keep stdout clean for the
  # KAFKA_BOOTSTRAP line and only show Maven's output when it fails.
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    die "maven could not resolve the Kafka jars (see above)"
  fi
  rm -f "$tmp.log"
  compgen -G "$tmp/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null ||
    die "kafka_2.13-$KAFKA_VERSION.jar missing after resolution; is pom.xml in sync with KAFKA_VERSION?"
  echo "$want" >"$tmp/.complete"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  LIBS_NOTE="libs resolved in $(since "$t0")s"
}

# Two distinct free loopback ports: broker listener and controller listener.
# Both sockets stay bound until both numbers are known, so they differ.
pick_ports() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()'
    return
  fi
  # No python: probe random ports below the kernel's ephemeral range.
  local p ports=()
  while ((${#ports[@]} < 2)); do
    p=$((20000 + RANDOM % 12000))
    [[ " ${ports[*]-} " == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then ports+=("$p"); fi
  done
  echo "${ports[@]}"
}

# True when $1 is alive and is the broker JVM of state dir $2 (guards against
# a recycled PID after a crash or reboot).
is_our_broker() {
  local pid="$1" dir="$2" cmd
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  cmd="$(ps -o args= -p "$pid" 2>/dev/null)" || return 1
  [[ "$cmd" == *kafka.Kafka* && "$cmd" == *"$dir"* ]]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Ready = the broker logged that it finished starting and it answers: a real
# metadata request when kcat is installed, otherwise an accepted TCP connect.
broker_answers() {
  local port="$1" logfile="$2"
  grep -q "$READY_LINE" "$logfile" 2>/dev/null || return 1
  if command -v kcat >/dev/null 2>&1; then
    timeout 10 kcat -b "127.0.0.1:$port" -L -m 5 >/dev/null 2>&1
  else
    port_open "$port"
  fi
}

load_current() {
  KAFKA_PID="" KAFKA_PORT="" KAFKA_CONTROLLER_PORT="" KAFKA_STATE_DIR=""
  [[ -f "$CURRENT" ]] || return 1
  # shellcheck disable=SC1090 # written by this script, plain KEY=value lines
  source "$CURRENT"
}

write_server_properties() {
  local file="$1" dir="$2" port="$3" ctl="$4"
  cat >"$file" <<EOF
# Generated by tools/kafka/broker.sh for a throwaway single-node test broker.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$ctl
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctl
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data

# One node: every internal topic must live with a single replica.
offsets.topic.replication.factor=1
offsets.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# The default 50 partitions make the first consumer-group join slow.
offsets.topic.num.partitions=1
group.initial.rebalance.delay.ms=0

num.network.threads=2
num.io.threads=2
auto.create.topics.enable=true
num.partitions=3
# Let compaction tests see the cleaner act within seconds.
log.cleaner.backoff.ms=1000
EOF
}


# Launches one broker; sets KAFKA_PID/KAFKA_PORT/... on success. Sets
# RETRY=1 instead when the ports were taken between picking and binding.
# (Not called as `launch_once || ...`: that would switch off set -e inside.)
launch_once() {
  local port="" ctl="" dir props logfile cid t0 deadline
  RETRY=0
  read -r port ctl < <(pick_ports)
  [[ -n "$port" && -n "$ctl" ]] || die "could not pick free ports"
  dir="$(mktemp -d "$BUILD_DIR/run-$(date +%Y%m%d-%H%M%S)-XXXX")"
  props="$dir/server.properties"
  logfile="$dir/broker.log"
  write_server_properties "$props" "$dir" "$port" "$ctl"

  t0=$EPOCHREALTIME
  cid="$(java -cp "$LIBS/*" -Dlog4j2.configurationFile="$LOG4J_CONF" \
    kafka.tools.StorageTool random-uuid 2>>"$dir/format.log")"
  java -cp "$LIBS/*" -Dlog4j2.configurationFile="$LOG4J_CONF" \
    kafka.tools.StorageTool format -t "$cid" -c "$props" --ignore-formatted \
    >>"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "formatting storage failed"; }
  FORMAT_SECS="$(since "$t0")"

  t0=$EPOCHREALTIME
  # stdin/stdout/stderr all redirected: otherwise `$(broker.sh start)` would
  # wait on the JVM holding its pipe. 9>&- keeps the start/stop lock out of it.
  # shellcheck disable=SC2086 # HEAP_OPTS is a list of JVM flags
  nohup java $HEAP_OPTS -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_CONF" \
    -cp "$LIBS/*" kafka.Kafka "$props" </dev/null >"$logfile" 2>&1 9>&- &
  KAFKA_PID=$!
  echo "$KAFKA_PID" >"$dir/broker.pid"
  KAFKA_PORT="$port" KAFKA_STATE_DIR="$dir"
  printf 'KAFKA_PID=%s\nKAFKA_PORT=%s\nKAFKA_CONTROLLER_PORT=%s\nKAFKA_STATE_DIR=%q\n' \
    "$KAFKA_PID" "$port" "$ctl" "$dir" >"$CURRENT"

  deadline=$((SECONDS + START_TIMEOUT))
  until broker_answers "$port" "$logfile"; do
    if ! kill -0 "$KAFKA_PID" 2>/dev/null; then
      if grep -q "Address already in use" "$logfile"; then
        log "port $port or $ctl was taken meanwhile; retrying with new ports"
        stop_broker >/dev/null
        RETRY=1
        return 0
      fi
      tail -n 40 "$logfile" >&2
      die "broker exited during startup (log above, kept in $dir)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 40 "$logfile" >&2
      die "broker not ready after ${START_TIMEOUT}s (log above, kept in $dir)"
    fi
    sleep 0.25
  done
  START_SECS="$(since "$t0")"
}

# Starts the JVM of state dir $KAFKA_STATE_DIR again, on the ports and data
# of its server.properties, and waits until it answers. The previous log is
# kept as broker.log.<n>, so the ready check sees only this start.
relaunch() {
  local dir="$KAFKA_STATE_DIR" logfile n=1 t0 deadline
  logfile="$dir/broker.log"
  while [[ -e "$logfile.$n" ]]; do n=$((n + 1)); done
  [[ -f "$logfile" ]] && mv "$logfile" "$logfile.$n"
  t0=$EPOCHREALTIME
  # shellcheck disable=SC2086 # HEAP_OPTS is a list of JVM flags
  nohup java $HEAP_OPTS -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_CONF" \
    -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" </dev/null >"$logfile" 2>&1 9>&- &
  KAFKA_PID=$!
  echo "$KAFKA_PID" >"$dir/broker.pid"
  printf 'KAFKA_PID=%s\nKAFKA_PORT=%s\nKAFKA_CONTROLLER_PORT=%s\nKAFKA_STATE_DIR=%q\n' \
    "$KAFKA_PID" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$dir" >"$CURRENT"
  deadline=$((SECONDS + START_TIMEOUT))
  until broker_answers "$KAFKA_PORT" "$logfile"; do
    if ! kill -0 "$KAFKA_PID" 2>/dev/null; then
      tail -n 40 "$logfile" >&2
      die "restarted broker exited during startup (log above, kept in $dir)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 40 "$logfile" >&2
      die "restarted broker not ready after ${START_TIMEOUT}s (log above, kept in $dir)"
    fi
    sleep 0.25
  done
  START_SECS="$(since "$t0")"
}

# The broker's own version line (AppInfoParser at INFO), else the jar name.
broker_version() {
  local v
  v="$(grep -m1 -o 'Kafka version: [^ ]*' "$KAFKA_STATE_DIR/broker.log" 2>/dev/null | cut -d' ' -f3)" || true
  echo "${v:-$KAFKA_VERSION (from jar name)}"
}

# A failed start must not leave a JVM behind; its state dir (with the log)
# stays until the next start sweeps it.
on_start_failure() {
  if load_current; then stop_broker keep-dir >/dev/null; fi
}

cmd_start() {
  local attempt
  if load_current && is_our_broker "$KAFKA_PID" "$KAFKA_STATE_DIR"; then
    if broker_answers "$KAFKA_PORT" "$KAFKA_STATE_DIR/broker.log"; then
      log "already running (pid $KAFKA_PID, kafka $(broker_version))"
      echo "KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT"
      return 0
    fi
    log "broker pid $KAFKA_PID is not answering; replacing it"
  fi
  stop_broker >/dev/null
  # Only one broker per checkout, so any other run-* dir is debris from a
  # crashed or killed start.
  rm -rf "$BUILD_DIR"/run-* "$BUILD_DIR"/libs.tmp.*

  require_java
  ensure_libs

  trap on_start_failure EXIT
  for attempt in 1 2 3; do
    launch_once
    ((RETRY)) || break
    ((attempt < 3)) || die "could not get free ports after 3 tries"
  done
  trap - EXIT

  log "kafka $(broker_version) ready in ${START_SECS}s (format ${FORMAT_SECS}s, $LIBS_NOTE), pid $KAFKA_PID, log $KAFKA_STATE_DIR/broker.log"
  echo "KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT"
}

# Stops the broker named in current.env (SIGTERM, then SIGKILL after
# KAFKA_STOP_TIMEOUT) and removes its state dir unless given "keep-dir".
# Prints a line only when it actually stopped something.
stop_broker() {
  local mode="${1:-}" ticks=0
  load_current || return 0
  if is_our_broker "$KAFKA_PID" "$KAFKA_STATE_DIR"; then
    kill -TERM "$KAFKA_PID" 2>/dev/null || true
    while is_our_broker "$KAFKA_PID" "$KAFKA_STATE_DIR" && ((ticks < STOP_TIMEOUT * 4)); do
      sleep 0.25
      ticks=$((ticks + 1))
    done
    if is_our_broker "$KAFKA_PID" "$KAFKA_STATE_DIR"; then
      log "broker pid $KAFKA_PID ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$KAFKA_PID" 2>/dev/null || true
      while kill -0 "$KAFKA_PID" 2>/dev/null; do sleep 0.1; done
    fi
    echo "stopped broker pid $KAFKA_PID"
  fi
  if [[ "$mode" != keep-dir && "$KAFKA_STATE_DIR" == "$BUILD_DIR"/run-* ]]; then
    rm -rf "$KAFKA_STATE_DIR"
  fi
  rm -f "$CURRENT"
}

cmd_stop() {
  local out
  out="$(stop_broker)"
  echo "${out:-broker not running}"
}

# kill: SIGKILL, as a crash or an OOM killer would; nothing is flushed. The
# state dir and current.env stay, so restart brings the broker back with
# its data on the same ports.
cmd_kill() {
  if ! load_current || ! is_our_broker "$KAFKA_PID" "$KAFKA_STATE_DIR"; then
    echo "broker not running"
    return 0
  fi
  kill -KILL "$KAFKA_PID" 2>/dev/null || true
  while kill -0 "$KAFKA_PID" 2>/dev/null; do sleep 0.05; done
  echo "killed broker pid $KAFKA_PID (data kept in $KAFKA_STATE_DIR)"
}

cmd_restart() {
  load_current || die "no broker state to restart (run start first)"
  [[ -f "$KAFKA_STATE_DIR/server.properties" ]] || die "state dir $KAFKA_STATE_DIR has no server.properties"
  if is_our_broker "$KAFKA_PID" "$KAFKA_STATE_DIR"; then
    log "broker pid $KAFKA_PID is still running; not restarting"
    echo "KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  require_java
  relaunch
  log "kafka restarted in ${START_SECS}s on 127.0.0.1:$KAFKA_PORT with the data of $KAFKA_STATE_DIR, pid $KAFKA_PID"
  echo "KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT"
}

cmd_status() {
  if ! load_current || ! is_our_broker "$KAFKA_PID" "$KAFKA_STATE_DIR"; then
    echo "not running"
    return 3
  fi
  if broker_answers "$KAFKA_PORT" "$KAFKA_STATE_DIR/broker.log"; then
    echo "running pid=$KAFKA_PID version=$(broker_version) KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT controller=127.0.0.1:$KAFKA_CONTROLLER_PORT state=$KAFKA_STATE_DIR"
    return 0
  fi
  echo "running pid=$KAFKA_PID but not answering on 127.0.0.1:$KAFKA_PORT (log: $KAFKA_STATE_DIR/broker.log)"
  return 1
}

main() {
  local cmd="${1:-}"
  case "$cmd" in
  start | stop | status | kill | restart) ;;
  *)
    echo "usage: $0 start|stop|status|kill|restart" >&2
    exit 2
    ;;
  esac
  mkdir -p "$BUILD_DIR"
  # The cache and run dirs must never be committed, whatever .gitignore says.
  [[ -f "$BUILD_DIR/.gitignore" ]] || echo '*' >"$BUILD_DIR/.gitignore"
  if [[ "$cmd" != status ]]; then
    # Serialise start/stop of this checkout's broker (parallel test jobs).
    exec 9>"$BUILD_DIR/.lock"
    flock -w 120 9 || die "another broker.sh start/stop holds $BUILD_DIR/.lock"
  fi
  "cmd_$cmd"
}

main "$@"
