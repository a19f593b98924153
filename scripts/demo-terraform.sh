#!/usr/bin/env bash
# make demo, part 4: the rollout declared with terraform (or tofu) apply
# against `coexist agent --dev`, under load through the client SDK:
#   apply 1: greeter 1.0.0;  apply 2: greeter 2.0.0 beside it;
#   the 1.x clients move to 2.x;  apply 3: greeter 1.x retired.
# No call fails, and the 2.0.0 container keeps its pid from apply 2 to the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/bin}
P=${DEMO_BASE_PORT:-17900}
REG=127.0.0.1:$P GW=127.0.0.1:$((P + 2))
TF=${TF_CLI:-$(command -v terraform || command -v tofu || echo "$(go env GOPATH)/bin/tofu")}
[ -x "$TF" ] || { echo "no terraform or tofu: run 'make tools'" >&2; exit 1; }
DIR=$(mktemp -d -t coexist-demo-tf.XXXXXX)
export COEXIST_MANAGEMENT_TOKEN=${COEXIST_MANAGEMENT_TOKEN:-demo-management-token-0123456789}
export COEXIST_ADDR=http://$REG COEXIST_TOKEN=$COEXIST_MANAGEMENT_TOKEN
PIDS=()

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2fs", b - a }'; }
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
pid_of() { curl -sf -H "Authorization: Bearer $COEXIST_TOKEN" "$COEXIST_ADDR/v1/containers" |
  jq -r --arg v "$1" '.[] | select(.services[0].version == $v and .status.state == "running") | .status.pid'; }

# No `init`: a dev override points the CLI at the provider in bin/.
cat >"$DIR/dev.tfrc" <<TFRC
provider_installation {
  dev_overrides {
    "coexist-dev/coexist" = "$BIN"
  }
  direct {}
}
TFRC
export TF_CLI_CONFIG_FILE=$DIR/dev.tfrc TF_IN_AUTOMATION=1

step "Starting coexist agent --dev (registry $REG, gateway $GW); the CLI is $("$TF" version | head -1)"
"$BIN/coexist" agent --dev --node-id demo-tf --http-addr "$REG" --raft-addr "127.0.0.1:$((P + 1))" \
  --gateway-addr "$GW" --port-range 21850-21899 --data-dir "$DIR/data" >"$DIR/agent.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
  curl -sf -H "Authorization: Bearer $COEXIST_TOKEN" "$COEXIST_ADDR/v1/nodes/demo-tf" | grep -q '"ready"' && break
  sleep 0.1
done

mkdir "$DIR/tf" && cp examples/rollout/*.tf "$DIR/tf/"
cd "$DIR/tf"
apply() { # apply NAME VARS...
  local name=$1; shift
  local t0; t0=$(now)
  "$TF" apply -auto-approve -no-color -var "greeter_command=$BIN/greeter" "$@" >"$DIR/$name.log" 2>&1 ||
    { cat "$DIR/$name.log"; exit 1; }
  grep -E '^(Apply complete|coexist_container|coexist_service_version)' "$DIR/$name.log" | sed 's/^/  /'
  echo "  ($name took $(since "$t0"))"
}
load() { # load CLIENT_VERSION OUT: starts a load generator; its pid is in $LOADPID
  "$BIN/coexist" load --client "web@$1" --rate 100 --quiet greeter /hello >"$2" 2>&1 &
  LOADPID=$!
  PIDS+=($LOADPID)
}

step "apply 1: greeter 1.0.0 (clients >= 1.0, < 2.0)"
apply apply1 -var with_v1=true -var with_v2=false
load 1.3.0 "$DIR/load1"; L1=$LOADPID
sleep 1

step "apply 2: greeter 2.0.0 (clients >= 2.0, < 3.0) beside it, while web@1.3.0 calls"
V1PID=$(pid_of 1.0.0)
apply apply2 -var with_v1=true -var with_v2=true
load 2.1.0 "$DIR/load2"; L2=$LOADPID
V2PID=$(pid_of 2.0.0)
sleep 1
echo "Both client generations are served, each by its own version:"
"$BIN/coexist" call --client web@1.3.0 greeter /hello | sed 's/^/  /'
"$BIN/coexist" call --client web@2.1.0 greeter /hello | sed 's/^/  /'
echo "  greeter 1.0.0 pid before apply 2: $V1PID, after: $(pid_of 1.0.0)"

step "The 1.x clients move to 2.x (web@1.3.0 stops, a second web@2.1.0 starts)"
load 2.1.0 "$DIR/load3"; L3=$LOADPID
kill -TERM "$L1"; wait "$L1" || { echo "web@1.3.0 saw failed calls:"; cat "$DIR/load1"; exit 1; }
sed 's/^/  /' "$DIR/load1"

step "apply 3: greeter 1.x retired (its container drains and stops, the version retires), under 2.x load"
apply apply3 -var with_v1=false -var with_v2=true
sleep 1
kill -TERM "$L2" "$L3"
wait "$L2" "$L3" || { echo "the 2.x load saw failed calls:"; cat "$DIR/load2" "$DIR/load3"; exit 1; }
sed 's/^/  /' "$DIR/load2" "$DIR/load3"
curl -sf -H "Authorization: Bearer $COEXIST_TOKEN" "$COEXIST_ADDR/v1/services/greeter" |
  jq -r '.versions[] | "  greeter@\(.version)  \(.state)"'

step "No call failed, and nothing that kept running was restarted"
echo "  greeter 2.0.0 pid after apply 2: $V2PID, at the end: $(pid_of 2.0.0)"
[ "$V2PID" = "$(pid_of 2.0.0)" ] || { echo "greeter 2.0.0 was restarted"; exit 1; }
"$TF" output -no-color containers | sed 's/^/  /'
for f in apply1 apply2 apply3; do printf '  %s: %s\n' "$f" "$(grep -o 'Apply complete.*' "$DIR/$f.log")"; done
