#!/usr/bin/env bash
# make demo, part 2: `coexist agent --dev` runs a one-server registry, the
# node agent and its gateway. greeter 1.0.0 and 2.0.0 run side by side; a
# 1.x client and a 2.x client each get their own version through the
# gateway; greeter 1.1.0 is added and 1.0.0 retired while both clients call,
# with no failed call and no other container restarted.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}
P=${DEMO_BASE_PORT:-17800}
REG=127.0.0.1:$P GW=127.0.0.1:$((P + 80))
DIR=$(mktemp -d -t coexist-demo-agent.XXXXXX)
export COEXIST_MANAGEMENT_TOKEN=${COEXIST_MANAGEMENT_TOKEN:-demo-management-token-0123456789}
export COEXIST_ADDR=http://$REG COEXIST_TOKEN=$COEXIST_MANAGEMENT_TOKEN
PIDS=()

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
api() { curl -sS --fail-with-body -X "$1" -H "Authorization: Bearer $COEXIST_TOKEN" ${3:+-H 'Content-Type: application/json' -d "$3"} "$COEXIST_ADDR$2"; }
wait_for() {
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $what" >&2; tail -30 "$DIR/agent.log" >&2; exit 1
}
state_is() { [ "$(api GET "/v1/containers/$1" | jq -r '.status.state // ""')" = "$2" ]; }
version_is() { [ "$(api GET /v1/services/greeter | jq -r ".versions[] | select(.version==\"$1\") | .state")" = "$2" ]; }
pid_of() { api GET "/v1/containers/$1" | jq -r '.status.pid'; }
container() { # container ID VERSION
  api PUT "/v1/containers/$1?cas=0" "{\"node\": \"demo-node\", \"services\": [{\"service\": \"greeter\", \"version\": \"$2\"}],
    \"config\": {\"command\": \"$BIN/greeter\", \"args\": [\"--version\", \"$2\"]},
    \"health\": {\"http\": \"/healthz\", \"interval\": \"500ms\"}, \"drain_timeout\": \"10s\"}" >/dev/null
}
hello() { # hello CLIENT_VERSION
  curl -sS -D "$DIR/h" -H "Coexist-Client: web" -H "Coexist-Client-Version: $1" "http://$GW/greeter/hello?name=web-$1"
  printf '   <- %s\n' "$(grep -i '^coexist-served-by' "$DIR/h" | tr -d '\r')"
}

step "Starting coexist agent --dev (registry $REG, gateway $GW)"
"$BIN/coexist" agent --dev --node-id demo-node --http-addr "$REG" --raft-addr "127.0.0.1:$((P + 1))" \
  --gateway-addr "$GW" --port-range 21900-21949 --data-dir "$DIR/data" --log-level info >"$DIR/agent.log" 2>&1 &
PIDS+=($!)
node_ready() { [ "$(api GET /v1/nodes/demo-node | jq -r .status)" = ready ]; }
wait_for "the dev agent" node_ready

step "Declaring greeter 1.0.0 (clients 1.x) and 2.0.0 (clients 2.x), each in its own container"
api PUT /v1/services/greeter/versions/1.0.0 '{"clients": ">= 1.0, < 2.0"}' | jq -c '{version, clients, state}'
api PUT /v1/services/greeter/versions/2.0.0 '{"clients": ">= 2.0, < 3.0"}' | jq -c '{version, clients, state}'
container greeter-v1 1.0.0
container greeter-v2 2.0.0
wait_for "greeter-v1 running" state_is greeter-v1 running
wait_for "greeter-v2 running" state_is greeter-v2 running
api GET /v1/containers | jq -r '.[] | "  \(.id): \(.services[0].service)@\(.services[0].version) \(.status.state) pid \(.status.pid) at \(.status.endpoint)"'

step "Each client gets its own version through the gateway"
hello 1.3.0
hello 2.1.0
echo "A 3.x client has no compatible version:"
hello 3.0.0 || true

step "The same through the Go SDK (coexist call and coexist route use package client)"
"$BIN/coexist" call --client web@1.3.0 greeter /hello
echo
"$BIN/coexist" call --client web@2.1.0 greeter /hello
echo
"$BIN/coexist" route --client web@2.1.0 greeter
echo "A client that requires greeter ~> 1.5 finds none, and says why:"
"$BIN/coexist" route --client web@1.3.0 --require 'greeter=~> 1.5' greeter || true

V2PID=$(pid_of greeter-v2)
step "Under load through the SDK (web@1.3.0 and web@2.1.0, 100 calls/s each): add greeter 1.1.0, then retire 1.0.0"
"$BIN/coexist" load --client web@1.3.0 --rate 100 --quiet greeter /hello >"$DIR/load1" 2>&1 &
L1=$!; PIDS+=($L1)
"$BIN/coexist" load --client web@2.1.0 --rate 100 --quiet greeter /hello >"$DIR/load2" 2>&1 &
L2=$!; PIDS+=($L2)
sleep 1
api PUT /v1/services/greeter/versions/1.1.0 '{"clients": ">= 1.0, < 2.0"}' >/dev/null
container greeter-v1-1 1.1.0
wait_for "greeter-v1-1 running" state_is greeter-v1-1 running
echo "greeter 1.1.0 is running; new 1.x calls go to it:"
hello 1.3.0
sleep 1
api DELETE /v1/services/greeter/versions/1.0.0 | jq -c '{version, state}'
wait_for "greeter 1.0.0 retired" version_is 1.0.0 retired
wait_for "greeter-v1 stopped" state_is greeter-v1 stopped
echo "greeter 1.0.0 drained, retired, and its container stopped:"
api GET /v1/services/greeter | jq -r '.versions[] | "  greeter@\(.version)  \(.state)"'
sleep 1
kill -TERM "$L1" "$L2"; wait "$L1" "$L2" || { echo "a load generator saw failed calls:"; cat "$DIR/load1" "$DIR/load2"; exit 1; }
cat "$DIR/load1" "$DIR/load2" | sed 's/^/  /'

step "No other container was restarted"
echo "  greeter-v2 pid before: $V2PID, after: $(pid_of greeter-v2)"
[ "$V2PID" = "$(pid_of greeter-v2)" ] || { echo "greeter-v2 was restarted"; exit 1; }
api GET /v1/containers | jq -r '.[] | "  \(.id): \(.services[0].service)@\(.services[0].version) \(.status.state) pid \(.status.pid)"'
step "The fleet as an operator sees it, from the CLI (the same is in the web UI at http://$REG/ui/)"
"$BIN/coexist" services show greeter | sed 's/^/  /'
"$BIN/coexist" containers list | sed 's/^/  /'
echo "  the last lines greeter-v2 wrote (coexist containers logs, through its node's agent):"
"$BIN/coexist" containers logs greeter-v2 --tail 3 | sed 's/^/    /'
"$BIN/coexist" census | sed 's/^/  /'
if [ -n "${DEMO_KEEP:-}" ]; then
  echo "DEMO_KEEP is set: the dev agent keeps running. Open http://$REG/ui/ and paste the demo's"
  echo "COEXIST_MANAGEMENT_TOKEN, or use the CLI with COEXIST_ADDR=$COEXIST_ADDR. Press Enter to stop it."
  read -r _
fi

step "Stopping the dev agent (with --dev it stops its containers too)"
