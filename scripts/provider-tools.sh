#!/usr/bin/env bash
# make tools: what the provider's tests and docs need, built offline.
#
# - A Terraform-compatible CLI: terraform or tofu on PATH is used as it is;
#   otherwise OpenTofu is built from its Go module into $(go env GOPATH)/bin/tofu
#   (no binary is downloaded; the module comes through the Go module proxy).
# - tfplugindocs, pinned in tools/go.mod, built into bin/tfplugindocs.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
TOFU_VERSION=${TOFU_VERSION:-v1.12.6}
# Always $(go env GOPATH)/bin, whatever GOBIN says: the demo, the docs
# script and the acceptance tests look for tofu there.
GOBIN=$($GO env GOPATH)/bin
BIN=${BIN:-$PWD/bin}

if cli=$(command -v terraform || command -v tofu); then
  echo "tools: Terraform-compatible CLI: $cli"
elif [ -x "$GOBIN/tofu" ]; then
  echo "tools: Terraform-compatible CLI: $GOBIN/tofu"
else
  echo "building OpenTofu $TOFU_VERSION from its Go module (6–8 minutes the first time)"
  # Outside this module, so that its go.mod and go.sum are left alone.
  (cd "$(mktemp -d)" && $GO mod download "github.com/opentofu/opentofu@$TOFU_VERSION")
  mkdir -p "$GOBIN"
  # `go install ...@version` refuses OpenTofu (its go.mod has replace
  # directives); building inside the module cache works.
  (cd "$($GO env GOMODCACHE)/github.com/opentofu/opentofu@$TOFU_VERSION" &&
    $GO build -trimpath -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" -o "$GOBIN/tofu" ./cmd/tofu)
  echo "tools: built $(TF_CLI_CONFIG_FILE=/dev/null "$GOBIN/tofu" version | head -1) at $GOBIN/tofu"
fi

if [ ! -x "$BIN/tfplugindocs" ] || [ tools/go.mod -nt "$BIN/tfplugindocs" ] || [ tools/go.sum -nt "$BIN/tfplugindocs" ]; then
  mkdir -p "$BIN"
  $GO build -C tools -o "$BIN/tfplugindocs" github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs
fi
echo "tools: tfplugindocs: $BIN/tfplugindocs"
