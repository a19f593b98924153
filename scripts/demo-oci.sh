#!/usr/bin/env bash
# make demo, part 3: the same kind of upgrade with images. `coexist agent
# --dev` runs greeter 1.0.0 from its OCI image (bin/images/greeter, packed by
# `make build` with `coexist image pack`) in a runc container with limits;
# greeter 1.1.0's image is added and 1.0.0 retired while a 1.x client calls
# at 200 calls/s: no call fails.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}
IMAGES=$BIN/images/greeter
P=${DEMO_BASE_PORT:-17850}
REG=127.0.0.1:$P GW=127.0.0.1:$((P + 2))
export COEXIST_MANAGEMENT_TOKEN=${COEXIST_MANAGEMENT_TOKEN:-demo-management-token-0123456789}
export COEXIST_ADDR=http://$REG COEXIST_TOKEN=$COEXIST_MANAGEMENT_TOKEN

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
if ! command -v runc >/dev/null || [ "$(id -u)" != 0 ]; then
  step "SKIPPED: the oci demo needs runc (make runc) and root"
  exit 0
fi
[ -f "$IMAGES/index.json" ] || { echo "no image layout at $IMAGES: run 'make build'" >&2; exit 1; }

DIR=$(mktemp -d -t coexist-demo-oci.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
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
image_container() { # image_container ID VERSION: greeter VERSION from its image
  api PUT "/v1/containers/$1?cas=0" "{\"node\": \"demo-oci\", \"services\": [{\"service\": \"greeter\", \"version\": \"$2\"}],
    \"driver\": \"oci\", \"config\": {\"image\": \"oci:$IMAGES:$2\"}, \"resources\": {\"memory\": \"64MiB\", \"cpu\": \"0.5\"},
    \"health\": {\"http\": \"/healthz\", \"interval\": \"500ms\"}, \"drain_timeout\": \"10s\"}" >/dev/null
}
show() { # show ID: pid, its own pid namespace, the image it runs
  api GET "/v1/containers/$1" | jq -r '"  \(.id): \(.services[0].service)@\(.services[0].version) \(.status.state) pid \(.status.pid) from \(.config.image) (memory \(.resources.memory), cpu \(.resources.cpu))"'
  local pid; pid=$(api GET "/v1/containers/$1" | jq -r .status.pid)
  echo "  pid namespace of $1: $(readlink "/proc/$pid/ns/pid"), the host's: $(readlink /proc/self/ns/pid)"
}
hello() { # hello CLIENT_VERSION
  curl -sS -D "$DIR/h" -H "Coexist-Client: web" -H "Coexist-Client-Version: $1" "http://$GW/greeter/hello?name=web-$1"
  printf '   <- %s, %s\n' "$(grep -i '^coexist-served-by' "$DIR/h" | tr -d '\r')" "$(grep -i '^greeter-version' "$DIR/h" | tr -d '\r')"
}

step "Starting coexist agent --dev (registry $REG, gateway $GW) with the oci driver ($(runc --version | head -1))"
"$BIN/coexist" agent --dev --node-id demo-oci --http-addr "$REG" --raft-addr "127.0.0.1:$((P + 1))" \
  --gateway-addr "$GW" --port-range 21800-21849 --data-dir "$DIR/data" --log-level info >"$DIR/agent.log" 2>&1 &
PIDS+=($!)
node_ready() { [ "$(api GET /v1/nodes/demo-oci | jq -r .status)" = ready ]; }
wait_for "the dev agent" node_ready

step "Declaring greeter 1.0.0 in a container from image oci:$IMAGES:1.0.0"
api PUT /v1/services/greeter/versions/1.0.0 '{"clients": ">= 1.0, < 2.0"}' | jq -c '{version, clients, state}'
image_container greeter-img-1 1.0.0
wait_for "greeter-img-1 running" state_is greeter-img-1 running
show greeter-img-1
hello 1.3.0

step "Under load (web@1.3.0, 200 calls/s through the SDK): add greeter 1.1.0 from its image, then retire 1.0.0"
"$BIN/coexist" load --client web@1.3.0 --rate 200 --quiet greeter /hello >"$DIR/load" 2>&1 &
L=$!; PIDS+=($L)
sleep 1
api PUT /v1/services/greeter/versions/1.1.0 '{"clients": ">= 1.0, < 2.0"}' >/dev/null
image_container greeter-img-2 1.1.0
wait_for "greeter-img-2 running" state_is greeter-img-2 running
show greeter-img-2
echo "greeter 1.1.0 is running; new 1.x calls go to it:"
hello 1.3.0
sleep 1
api DELETE /v1/services/greeter/versions/1.0.0 | jq -c '{version, state}'
wait_for "greeter 1.0.0 retired" version_is 1.0.0 retired
wait_for "greeter-img-1 stopped" state_is greeter-img-1 stopped
echo "greeter 1.0.0 drained, retired, and its container stopped (runc deleted it):"
api GET /v1/containers | jq -r '.[] | "  \(.id): \(.services[0].service)@\(.services[0].version) \(.status.state)"'
sleep 1
kill -TERM "$L"; wait "$L" || { echo "the load generator saw failed calls:"; cat "$DIR/load"; exit 1; }
sed 's/^/  /' "$DIR/load"
echo "Each image was unpacked once into the agent's cache:"
grep -o 'image unpacked.*' "$DIR/agent.log" | sed -E 's/^/  /; s/ digest=sha256:([0-9a-f]{12})[0-9a-f]*/ digest=sha256:\1…/'
step "Stopping the dev agent (with --dev it stops its containers too)"
