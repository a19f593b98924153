#!/usr/bin/env bash
# Generates the provider docs (docs/index.md, docs/resources/, docs/data-sources/)
# with tfplugindocs, offline: the provider's schema comes from a Terraform-
# compatible CLI (terraform or tofu) through a dev override, never from a
# download.
#
#   scripts/provider-docs.sh           regenerate docs/
#   scripts/provider-docs.sh --check   regenerate into a temporary copy and fail
#                                      when docs/ differs from it
#
# Environment: TF_CLI (the CLI; default terraform or tofu on PATH, else
# $(go env GOPATH)/bin/tofu from `make tools`), TFPLUGINDOCS (default
# bin/tfplugindocs, built from tools/go.mod when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
GO=${GO:-go}
CHECK=0
case "${1:-}" in
  --check) CHECK=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

TF=${TF_CLI:-$(command -v terraform || command -v tofu || echo "$($GO env GOPATH)/bin/tofu")}
if [ ! -x "$TF" ]; then
  echo "provider-docs: no terraform or tofu found: run 'make tools' (it builds OpenTofu) or set TF_CLI" >&2
  exit 1
fi
TFPLUGINDOCS=${TFPLUGINDOCS:-$ROOT/bin/tfplugindocs}
if [ ! -x "$TFPLUGINDOCS" ]; then
  echo "provider-docs: building tfplugindocs (pinned in tools/go.mod)"
  $GO build -C tools -o "$TFPLUGINDOCS" github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs
fi

WORK=$(mktemp -d -t coexist-provider-docs.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# 1. The provider's schema, through a dev override: no init, no registry.
mkdir -p "$WORK/plugins" "$WORK/schema"
$GO build -o "$WORK/plugins/terraform-provider-coexist" .
cat >"$WORK/dev.tfrc" <<TFRC
provider_installation {
  dev_overrides {
    "registry.terraform.io/hashicorp/coexist" = "$WORK/plugins"
  }
  direct {}
}
TFRC
cat >"$WORK/schema/main.tf" <<'TF'
terraform {
  required_providers {
    coexist = {
      source = "registry.terraform.io/hashicorp/coexist"
    }
  }
}
TF
(cd "$WORK/schema" && TF_CLI_CONFIG_FILE="$WORK/dev.tfrc" "$TF" providers schema -json >"$WORK/schema.json" 2>"$WORK/schema.err") || {
  cat "$WORK/schema.err" >&2
  exit 1
}

# 2. tfplugindocs on a copy of examples/, so that it never touches the
# hand-written docs (docs/api.md, docs/design-notes.md).
mkdir -p "$WORK/site"
cp -R examples "$WORK/site/examples"
"$TFPLUGINDOCS" generate --provider-dir "$WORK/site" --provider-name coexist \
  --providers-schema "$WORK/schema.json" >"$WORK/generate.log" 2>&1 || {
  cat "$WORK/generate.log" >&2
  exit 1
}

GENERATED=(index.md resources data-sources)
if [ "$CHECK" = 1 ]; then
  status=0
  for p in "${GENERATED[@]}"; do
    diff -ru "docs/$p" "$WORK/site/docs/$p" || status=1
  done
  if [ "$status" != 0 ]; then
    echo "provider-docs: docs/ differs from what tfplugindocs generates: run 'make docs' and commit the result" >&2
    exit 1
  fi
  echo "provider-docs: docs/ is up to date"
else
  mkdir -p docs
  for p in "${GENERATED[@]}"; do
    rm -rf "docs/$p"
    cp -R "$WORK/site/docs/$p" "docs/$p"
  done
  echo "provider-docs: wrote docs/index.md, docs/resources/, docs/data-sources/"
fi
