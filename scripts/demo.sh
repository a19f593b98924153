#!/usr/bin/env bash
# make demo: a 3-server coexist registry on loopback. It declares service
# versions, kills the leader with SIGKILL, shows a new leader taking writes,
# restarts the killed server from its data dir and shows it caught up, then
# stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin/coexist}
BASE_PORT=${DEMO_BASE_PORT:-17700}
DIR=$(mktemp -d -t coexist-demo.XXXXXX)
export COEXIST_MANAGEMENT_TOKEN=${COEXIST_MANAGEMENT_TOKEN:-demo-management-token-0123456789}
export COEXIST_TOKEN=$COEXIST_MANAGEMENT_TOKEN
declare -A PIDS

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
http_port() { echo $((BASE_PORT + 2 * ($1 - 1))); }
raft_port() { echo $((BASE_PORT + 2 * ($1 - 1) + 1)); }
url() { echo "http://127.0.0.1:$(http_port "$1")"; }

cleanup() {
  for i in "${!PIDS[@]}"; do kill "${PIDS[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

start() { # start N [extra flags...]
  local i=$1; shift
  "$BIN" server --node-id "s$i" --http-addr "127.0.0.1:$(http_port "$i")" \
    --raft-addr "127.0.0.1:$(raft_port "$i")" --data-dir "$DIR/s$i" --log-level warn "$@" \
    >>"$DIR/s$i.log" 2>&1 &
  PIDS[$i]=$!
}

api() { # api METHOD SERVER PATH [BODY]
  local m=$1 s=$2 p=$3 body=${4:-}
  curl -sS --fail-with-body -X "$m" -H "Authorization: Bearer $COEXIST_TOKEN" \
    ${body:+-H 'Content-Type: application/json' -d "$body"} "$(url "$s")$p"
}

wait_for() { # wait_for DESCRIPTION COMMAND...
  local what=$1; shift
  for _ in $(seq 1 200); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $what" >&2
  for f in "$DIR"/*.log; do echo "--- $f"; tail -20 "$f"; done >&2
  exit 1
}

peers_are() { [ "$(curl -sf "$(url "$1")/v1/status/peers" | jq length)" = "$2" ]; }
leader_of() { curl -sf "$(url "$1")/v1/status/leader" | jq -r .id; }
has_leader() { [ -n "$(leader_of "$1")" ]; }

step "Starting a 3-server cluster on loopback (data in $DIR)"
start 1 --bootstrap
wait_for "s1 to lead" has_leader 1
start 2 --join "$(url 1)"
start 3 --join "$(url 1)"
wait_for "3 peers" peers_are 1 3
COEXIST_ADDR=$(url 1) "$BIN" status

step "Declaring greeter 1.0.0 (clients 1.x) and 2.0.0 (clients 2.x)"
api PUT 1 /v1/services/greeter/versions/1.0.0 '{"clients": ">= 1.0, < 2.0", "description": "first"}' | jq -c '{service, version, clients, state, modify_index}'
api PUT 2 /v1/services/greeter/versions/2.0.0 '{"clients": ">= 2.0, < 3.0"}' | jq -c '{service, version, clients, state, modify_index}'
echo "(the second write went to s2, a follower or the leader: followers forward writes)"
echo "A bad range is refused with the field named:"
api PUT 1 /v1/services/greeter/versions/3.0.0 '{"clients": ">= banana"}' 2>/dev/null || true
echo

LEADER=$(leader_of 1)
L=${LEADER#s}
step "Killing the leader $LEADER (pid ${PIDS[$L]}) with SIGKILL"
kill -9 "${PIDS[$L]}"; wait "${PIDS[$L]}" 2>/dev/null || true; unset "PIDS[$L]"
SURVIVOR=1; [ "$L" = 1 ] && SURVIVOR=2
new_leader() { local l; l=$(leader_of "$SURVIVOR"); [ -n "$l" ] && [ "$l" != "$LEADER" ]; }
wait_for "a new leader" new_leader
echo "new leader: $(leader_of "$SURVIVOR")"

step "The new leader takes writes: declaring greeter 1.1.0 and orders 1.4.2"
api PUT "$SURVIVOR" /v1/services/greeter/versions/1.1.0 '{"clients": ">= 1.0, < 2.0"}' | jq -c '{service, version, state, modify_index}'
api PUT "$SURVIVOR" /v1/services/orders/versions/1.4.2 '{"clients": "~> 1.4"}' | jq -c '{service, version, state, modify_index}'

step "Restarting $LEADER from its data dir (its --bootstrap flag is ignored: Raft state exists)"
start "$L" --bootstrap
caught_up() { [ "$(curl -sf -H "Authorization: Bearer $COEXIST_TOKEN" "$(url "$L")/v1/services/orders?stale" | jq -r '.versions[0].version')" = "1.4.2" ]; }
wait_for "$LEADER to catch up" caught_up
echo "$LEADER now serves, from its own replica (?stale), what was written while it was down:"
curl -sf -H "Authorization: Bearer $COEXIST_TOKEN" -D "$DIR/h" "$(url "$L")/v1/services?stale" \
  | jq -r '.[] | .name as $n | .versions[] | "  \($n)@\(.version)  clients \(.clients)  \(.state)"'
grep -i '^x-coexist' "$DIR/h" | sed 's/^/  /'

step "Retiring greeter 1.0.0: it drains and, with no container holding it, is retired"
api DELETE "$SURVIVOR" /v1/services/greeter/versions/1.0.0 | jq -c '{version, state}'
retired() { [ "$(api GET "$SURVIVOR" /v1/services/greeter | jq -r '.versions[] | select(.version=="1.0.0") | .state')" = retired ]; }
wait_for "greeter 1.0.0 retired" retired
api GET "$SURVIVOR" /v1/services/greeter | jq -r '.versions[] | "  greeter@\(.version)  \(.state)"'

step "Cluster status"
COEXIST_ADDR=$(url "$SURVIVOR") "$BIN" status
step "Stopping everything (SIGTERM: a leader hands over leadership before it exits)"
