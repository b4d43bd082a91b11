#!/usr/bin/env bash
# Smoke test against a real Kafka broker, checked with kcat, a client we did
# not write. `make smoke-kcat` starts the broker (tools/kafka/broker.sh),
# builds .build/bin/ and calls this script with KAFKA_BOOTSTRAP exported.
#
# It starts the Leadspace simulator, a development schema registry
# (`enricher registry`) and `enricher run` (configured only by ENRICHER_*
# variables), creates the topics, seeds one tenant's control events and
# SMOKE_PROFILES demo profiles, writes one garbage value with kcat, and then
# checks with kcat alone that:
#   - the garbage value reached enrichment-dlq under its own key, with
#     __connect.errors.topic/partition/offset naming its source record;
#   - every seeded profile has an enriched-company record, and nothing else does;
#   - enriched-company values are in the Confluent wire format (magic byte 0)
#     with a schema id the registry knows, registered for enriched-company-value.
#
# Environment (all optional but KAFKA_BOOTSTRAP):
#   KAFKA_BOOTSTRAP   host:port of the broker (required)
#   SMOKE_PROFILES    profiles to seed (default 200)
#   SMOKE_TENANT      tenant of the seeded data (default smoke)
#   SMOKE_TIMEOUT     seconds to wait for the outputs (default 120)
#   SMOKE_ADMIN_KEY   admin key that signs (seed) and verifies (run) control
#                     events (default: a random one; empty: unsigned events)
#   SMOKE_KEEP_LOGS   1: keep the work dir with the logs even on success
set -euo pipefail

: "${KAFKA_BOOTSTRAP:?KAFKA_BOOTSTRAP is not set; run via make smoke-kcat or eval \"\$(tools/kafka/broker.sh start)\"}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.build/bin"
PROFILES="${SMOKE_PROFILES:-200}"
TENANT="${SMOKE_TENANT:-smoke}"
TIMEOUT="${SMOKE_TIMEOUT:-120}"
GARBAGE_KEY="$TENANT/garbage"
ADMIN_KEY="${SMOKE_ADMIN_KEY-smoke-admin-key-$RANDOM$RANDOM}"
# Topic names: the service's defaults (enricher run -h).
T_PROFILES=profile-unified
T_ENRICHED=enriched-company
T_DLQ=enrichment-dlq
B="$KAFKA_BOOTSTRAP"

# Only this script configures the commands it starts.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^ENRICHER_' || true)

T0=$EPOCHREALTIME
WORK="$(mktemp -d "${TMPDIR:-/tmp}/kcat-smoke.XXXXXX")"
PIDS=()
OK=0

log() { printf 'kcat-smoke: %s\n' "$*" >&2; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

fail() {
  log "FAIL: $*"
  local f
  for f in "$WORK"/*.log; do
    [[ -s "$f" ]] || continue
    printf -- '--- last lines of %s\n' "$(basename "$f")" >&2
    tail -n 15 "$f" >&2
  done
  exit 1
}

# Stops what this script started, newest first, by pid.
cleanup() {
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid="${PIDS[i]}"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if ((OK)) && [[ "${SMOKE_KEEP_LOGS:-0}" != 1 ]]; then
    rm -rf "$WORK"
  else
    log "logs kept in $WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in kcat curl awk; do
  command -v "$tool" >/dev/null || fail "$tool not found on PATH"
done
[[ -x "$BIN/enricher" && -x "$BIN/leadspace-sim" ]] || fail "$BIN/enricher and $BIN/leadspace-sim missing; run make build"

# wait_for FILE REGEX WHAT: prints the first match of REGEX in FILE (a log of
# a process started above) once it appears, or fails after 30 s.
wait_for() {
  local file="$1" re="$2" what="$3" pid="$4" m deadline=$((SECONDS + 30))
  while :; do
    m="$(grep -o -m1 -E "$re" "$file" 2>/dev/null || true)"
    [[ -n "$m" ]] && { echo "$m"; return; }
    kill -0 "$pid" 2>/dev/null || fail "$what exited before it was up"
    ((SECONDS < deadline)) || fail "$what not up after 30s"
    sleep 0.1
  done
}

# consume TOPIC FORMAT [kcat args...]: the whole topic, from the beginning.
consume() {
  local topic="$1" fmt="$2"
  shift 2
  kcat -b "$B" -C -q -t "$topic" -o beginning -e -f "$fmt" "$@" 2>"$WORK/kcat.err" ||
    fail "kcat could not read $topic: $(tail -n 3 "$WORK/kcat.err")"
}

# 0. The broker answers kcat, and this tenant has no data there yet (a
# reused broker would make the counts meaningless).
kcat -b "$B" -L -m 10 >/dev/null 2>"$WORK/kcat.err" || fail "broker $B does not answer kcat -L: $(tail -n 3 "$WORK/kcat.err")"
# (kcat -L without -t: asking for one topic could auto-create it.)
if kcat -b "$B" -L -m 10 2>/dev/null | awk -v t="\"$T_PROFILES\"" '$1 == "topic" && $2 == t { n++ } END { exit !n }'; then
  if consume "$T_PROFILES" '%k\n' | awk -v t="$TENANT/" 'index($0, t) == 1 { n++ } END { exit !n }'; then
    fail "$T_PROFILES on $B already holds keys of tenant $TENANT; use a fresh broker or another SMOKE_TENANT"
  fi
fi

# 1. Leadspace simulator, with the tenant's program token.
TOKEN="smoke-token-$RANDOM$RANDOM"
"$BIN/leadspace-sim" --addr 127.0.0.1:0 --token "$TOKEN" --latency 20ms >"$WORK/leadspace-sim.log" 2>&1 &
PIDS+=($!)
LS_URL="$(wait_for "$WORK/leadspace-sim.log" 'http://127\.0\.0\.1:[0-9]+' "leadspace-sim" "${PIDS[-1]}")"

# 2. Development schema registry.
"$BIN/enricher" registry --addr 127.0.0.1:0 >"$WORK/registry.log" 2>&1 &
PIDS+=($!)
REGISTRY="$(wait_for "$WORK/registry.log" 'http://127\.0\.0\.1:[0-9]+' "enricher registry" "${PIDS[-1]}")"
log "leadspace simulator $LS_URL, schema registry $REGISTRY, kafka $B"

# 3. Topics, then the tenant's control events and profiles.
"$BIN/enricher" topics create --brokers "$B" --partitions 6 --replication-factor 1 >"$WORK/topics.log" 2>&1 ||
  fail "enricher topics create failed"
ENRICHER_ADMIN_KEY="$ADMIN_KEY" "$BIN/enricher" seed --brokers "$B" --schema-registry-url "$REGISTRY" --tenant "$TENANT" --profiles "$PROFILES" \
  --token-ref env:LEADSPACE_TOKEN_DEMO --bad-events 0 >"$WORK/seed.log" 2>&1 || fail "enricher seed failed"
log "$(cat "$WORK/seed.log")"

# 4. The service, configured by environment only.
T_RUN=$EPOCHREALTIME
env LEADSPACE_TOKEN_DEMO="$TOKEN" \
  ENRICHER_BROKERS="$B" \
  ENRICHER_SCHEMA_REGISTRY_URL="$REGISTRY" \
  ENRICHER_LEADSPACE_URL="$LS_URL" \
  ENRICHER_HTTP_ADDR=127.0.0.1:0 \
  ENRICHER_LOG_FORMAT=json \
  ENRICHER_GROUP="leadspace-enricher-smoke" \
  ENRICHER_ADMIN_KEY="$ADMIN_KEY" \
  "$BIN/enricher" run >"$WORK/enricher.log" 2>&1 &
PIDS+=($!)
RUN_PID="${PIDS[-1]}"
HTTP="$(wait_for "$WORK/enricher.log" '"msg":"serving metrics and probes","addr":"[^"]+"' "enricher run" "$RUN_PID")"
HTTP="http://${HTTP##*\"addr\":\"}"
HTTP="${HTTP%\"}"
deadline=$((SECONDS + 60))
until curl -fsS "$HTTP/readyz" >/dev/null 2>&1; do
  kill -0 "$RUN_PID" 2>/dev/null || fail "enricher run exited before it was ready"
  ((SECONDS < deadline)) || fail "enricher run not ready ($HTTP/readyz) after 60s"
  sleep 0.2
done
log "enricher ready at $HTTP in $(since "$T_RUN")s"

# 5. A value no decoder accepts, written by kcat.
printf 'not avro' | kcat -b "$B" -P -t "$T_PROFILES" -k "$GARBAGE_KEY" 2>"$WORK/kcat.err" ||
  fail "kcat could not produce to $T_PROFILES: $(tail -n 3 "$WORK/kcat.err")"
read -r G_PART G_OFF < <(consume "$T_PROFILES" '%k %p %o\n' | awk -v k="$GARBAGE_KEY" '$1 == k { print $2, $3 }' | tail -n 1) ||
  fail "the garbage record with key $GARBAGE_KEY is not on $T_PROFILES"
log "garbage value written to $T_PROFILES partition $G_PART offset $G_OFF"

# 6. Wait for the outputs: one dead letter for the garbage, one
# enriched-company record per seeded profile.
# (awk, not grep, filters: no match is not an error under pipefail.)
tenant_keys() { awk -v t="$TENANT/" -v g="$GARBAGE_KEY" 'index($0, t) == 1 && $0 != g'; }
want_keys() { consume "$T_PROFILES" '%k\n' | tenant_keys | sort -u; }
got_keys() { consume "$T_ENRICHED" '%k\n' | tenant_keys | sort -u; }
dlq_reasons() {
  consume "$T_DLQ" '%k\t%h\n' | awk -F'\t' -v t="$TENANT/" 'index($1, t) == 1 {
    r = "?"; n = split($2, hs, ","); for (i = 1; i <= n; i++) if (index(hs[i], "enricher.errors.reason=") == 1) r = substr(hs[i], 24)
    c[r]++ } END { for (r in c) printf "%s=%d ", r, c[r] }'
}
dlq_line() { consume "$T_DLQ" '%k\t%h\n' | awk -F'\t' -v k="$GARBAGE_KEY" '$1 == k' | tail -n 1; }
want_keys >"$WORK/want.keys"
N_IN=$(wc -l <"$WORK/want.keys")
((N_IN == PROFILES)) || fail "$T_PROFILES holds $N_IN distinct keys of tenant $TENANT, seeded $PROFILES"
T_WAIT=$EPOCHREALTIME
deadline=$((SECONDS + TIMEOUT))
while :; do
  got_keys >"$WORK/got.keys"
  N_OUT=$(wc -l <"$WORK/got.keys")
  DLQ="$(dlq_line)"
  if ((N_OUT >= N_IN)) && [[ -n "$DLQ" ]]; then break; fi
  kill -0 "$RUN_PID" 2>/dev/null || fail "enricher run exited while processing ($N_OUT of $N_IN outputs)"
  ((SECONDS < deadline)) || fail "after ${TIMEOUT}s: $N_OUT of $N_IN enriched-company keys; dead letter for $GARBAGE_KEY: ${DLQ:-none}; dead letters of tenant $TENANT by reason: $(dlq_reasons)"
  sleep 1
done
OUT_SECS="$(since "$T_WAIT")"

# 7a. The dead letter names its source record (Kafka Connect's headers).
header() { awk -v RS=, -v h="$1" 'index($0, h "=") == 1 { print substr($0, length(h) + 2); exit }' <<<"$2"; }
DLQ_HEADERS="${DLQ#*$'\t'}"
H_TOPIC="$(header __connect.errors.topic "$DLQ_HEADERS")"
H_PART="$(header __connect.errors.partition "$DLQ_HEADERS")"
H_OFF="$(header __connect.errors.offset "$DLQ_HEADERS")"
H_STAGE="$(header __connect.errors.stage "$DLQ_HEADERS")"
[[ "$H_TOPIC" == "$T_PROFILES" ]] || fail "dead letter __connect.errors.topic is '$H_TOPIC', want $T_PROFILES (headers: $DLQ)"
[[ "$H_PART" == "$G_PART" ]] || fail "dead letter __connect.errors.partition is '$H_PART', want $G_PART (headers: $DLQ)"
[[ "$H_OFF" == "$G_OFF" ]] || fail "dead letter __connect.errors.offset is '$H_OFF', want $G_OFF (headers: $DLQ)"
[[ "${H_STAGE,,}" == decode ]] || fail "dead letter __connect.errors.stage is '$H_STAGE', want DECODE"
N_DLQ=$(consume "$T_DLQ" '%k\n' | awk -v t="$TENANT/" 'index($0, t) == 1' | wc -l)
((N_DLQ == 1)) || fail "$N_DLQ dead letters for tenant $TENANT, want exactly 1 (the garbage value)"

# 7b. Exactly the seeded keys were enriched, and the garbage was not.
if grep -qxF "$GARBAGE_KEY" "$WORK/got.keys"; then fail "$GARBAGE_KEY has an enriched-company record"; fi
if ! diff -q "$WORK/want.keys" "$WORK/got.keys" >/dev/null; then
  fail "input and enriched keys differ: $(diff "$WORK/want.keys" "$WORK/got.keys" | grep -c '^[<>]') keys, e.g. $(diff "$WORK/want.keys" "$WORK/got.keys" | grep -m3 '^[<>]' | tr '\n' ' ')"
fi
N_RECORDS=$(consume "$T_ENRICHED" '%k\n' | awk -v t="$TENANT/" 'index($0, t) == 1' | wc -l)

# 7c. Confluent wire format: magic byte 0 and a schema id the registry knows,
# registered for <topic>-value. kcat's pack string 'b I' reads a signed byte
# and an unsigned 32-bit integer (big-endian is kcat's default), prints them
# separated by the space between, and skips the Avro body after them.
consume "$T_ENRICHED" '%k %s\n' -s value='b I' | awk -v t="$TENANT/" 'index($1, t) == 1 { print $2, $3 }' >"$WORK/wire"
[[ -s "$WORK/wire" ]] || fail "kcat -s value='b I' printed nothing for $T_ENRICHED"
BAD_MAGIC=$(awk '$1 != "0"' "$WORK/wire" | wc -l)
((BAD_MAGIC == 0)) || fail "$BAD_MAGIC enriched-company values do not start with magic byte 0 (e.g. $(awk '$1 != "0"' "$WORK/wire" | head -n 1))"
IDS="$(awk '{ print $2 }' "$WORK/wire" | sort -un | tr '\n' ' ')"
SUBJECT_IDS="$(curl -fsS "$REGISTRY/subjects/$T_ENRICHED-value/versions" | tr -d '[]' | tr ',' '\n' |
  while read -r v; do curl -fsS "$REGISTRY/subjects/$T_ENRICHED-value/versions/$v" | grep -o '"id":[0-9]*' | cut -d: -f2; done)" ||
  fail "registry $REGISTRY has no subject $T_ENRICHED-value"
for id in $IDS; do
  body="$(curl -fsS "$REGISTRY/schemas/ids/$id")" || fail "schema id $id of $T_ENRICHED is unknown to the registry"
  grep -q 'EnrichedCompany' <<<"$body" || fail "schema id $id is not the EnrichedCompany schema: ${body:0:200}"
  grep -qx "$id" <<<"$SUBJECT_IDS" || fail "schema id $id is not registered under $T_ENRICHED-value (ids: $SUBJECT_IDS)"
done

OK=1
printf 'kcat-smoke: PASS  %d profiles -> %d enriched-company keys (%d records, schema id %s) + 1 dead letter (%s[%s]@%s); outputs in %ss, total %ss\n' \
  "$N_IN" "$(wc -l <"$WORK/got.keys")" "$N_RECORDS" "${IDS% }" "$H_TOPIC" "$H_PART" "$H_OFF" "$OUT_SECS" "$(since "$T0")"
