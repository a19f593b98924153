#!/usr/bin/env bash
# The provider's quickstart, end to end with the real CLI (terraform or tofu)
# and the provider binary through a dev override: `coexist agent --dev`, then
# examples/quickstart applied (greeter 1.x and 2.x side by side), both client
# generations called through the gateway, greeter 1.x upgraded to 1.1.0 under
# load (make-before-break: no failed call), and everything destroyed.
# It prints how long each apply took.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
GO=${GO:-go}
BIN=${BIN:-$ROOT/bin}
P=${QUICKSTART_BASE_PORT:-17950}
REG=127.0.0.1:$P GW=127.0.0.1:$((P + 2))
TF=${TF_CLI:-$(command -v terraform || command -v tofu || echo "$($GO env GOPATH)/bin/tofu")}
[ -x "$TF" ] || { echo "no terraform or tofu: run 'make tools'" >&2; exit 1; }
DIR=$(mktemp -d -t coexist-quickstart.XXXXXX)
export COEXIST_MANAGEMENT_TOKEN=${COEXIST_MANAGEMENT_TOKEN:-quickstart-management-token-0123}
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

step "Building coexist, greeter and terraform-provider-coexist into $BIN"
mkdir -p "$BIN"
$GO build -o "$BIN/coexist" ./cmd/coexist
$GO build -o "$BIN/greeter" ./examples/greeter
$GO build -o "$BIN/terraform-provider-coexist" .

step "Starting coexist agent --dev (registry $REG, gateway $GW)"
"$BIN/coexist" agent --dev --node-id quickstart --http-addr "$REG" --raft-addr "127.0.0.1:$((P + 1))" \
  --gateway-addr "$GW" --port-range 21950-21999 --data-dir "$DIR/data" >"$DIR/agent.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
  curl -sf -H "Authorization: Bearer $COEXIST_TOKEN" "$COEXIST_ADDR/v1/nodes/quickstart" | grep -q '"ready"' && break
  sleep 0.1
done

# No `init`: the dev override points the CLI at the provider just built.
cat >"$DIR/dev.tfrc" <<TFRC
provider_installation {
  dev_overrides {
    "coexist-dev/coexist" = "$BIN"
  }
  direct {}
}
TFRC
export TF_CLI_CONFIG_FILE=$DIR/dev.tfrc TF_IN_AUTOMATION=1
mkdir "$DIR/tf" && cp examples/quickstart/*.tf "$DIR/tf/"
cd "$DIR/tf"
tf() { "$TF" "$@" -no-color 2> >(grep -v -e 'Provider development overrides' -e '^ *- coexist-dev' -e 'development overrides are in effect' -e 'The behavior may therefore' -e 'with published releases' -e '^[│╷╵ ]*$' >&2); }

step "terraform apply: greeter 1.0.0 and 2.0.0, each in its own container ($(basename "$TF"))"
t0=$(now)
tf apply -auto-approve -var "greeter_command=$BIN/greeter" >"$DIR/apply1.log"
apply1=$(since "$t0")
grep -E '^(Apply complete|coexist_)' "$DIR/apply1.log" | sed 's/^/  /'
tf output -json routes
echo "apply (declare -> healthy, routes read): $apply1"

step "Each client generation gets its own version through the gateway"
for v in 1.3.0 2.1.0; do
  printf '  client %s: ' "$v"
  curl -sS -H "Coexist-Client: quickstart" -H "Coexist-Client-Version: $v" "http://$GW/greeter/hello?name=quickstart"
done

step "Upgrade greeter 1.x to 1.1.0 under load (web@1.3.0 and web@2.1.0, 100 calls/s each)"
"$BIN/coexist" load --gateway "$GW" --client web@1.3.0 --rate 100 --quiet greeter /hello >"$DIR/load1" 2>&1 &
L1=$!; PIDS+=($L1)
"$BIN/coexist" load --gateway "$GW" --client web@2.1.0 --rate 100 --quiet greeter /hello >"$DIR/load2" 2>&1 &
L2=$!; PIDS+=($L2)
sleep 1
t0=$(now)
tf apply -auto-approve -var "greeter_command=$BIN/greeter" -var greeter_1_version=1.1.0 >"$DIR/apply2.log"
apply2=$(since "$t0")
grep -E '^(Apply complete|coexist_)' "$DIR/apply2.log" | sed 's/^/  /'
sleep 1
kill -TERM "$L1" "$L2"
wait "$L1" "$L2" || { echo "the load generators saw failed calls:"; cat "$DIR/load1" "$DIR/load2"; exit 1; }
sed 's/^/  /' "$DIR/load1" "$DIR/load2"
tf output -json routes
echo "upgrade apply (new version and container healthy, old ones drained and retired): $apply2"

step "terraform destroy"
t0=$(now)
tf destroy -auto-approve -var "greeter_command=$BIN/greeter" -var greeter_1_version=1.1.0 >"$DIR/destroy.log"
grep -E '^(Destroy complete)' "$DIR/destroy.log" | sed 's/^/  /'
echo "destroy (containers drained and stopped, versions retired): $(since "$t0")"

printf '\nquickstart timings: apply %s, upgrade %s\n' "$apply1" "$apply2"
