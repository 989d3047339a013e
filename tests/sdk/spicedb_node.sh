#!/usr/bin/env bash
# Runs SpiceDB's official Node client (@authzed/authzed-node on npm, pinned
# below) against a running Verdict: tests/sdk/spicedb_node_test.mjs.
#
#   VERDICT_ENDPOINT=127.0.0.1:50051 tests/sdk/spicedb_node.sh
#
# The package is installed once into $VERDICT_SDK_NODE_DIR (default:
# ~/.cache/verdict-sdk/node-authzed-<version>).
# Exit status 77 means "skipped": node/npm missing or the npm registry unreachable.
set -euo pipefail

AUTHZED_NODE_VERSION="1.6.1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${VERDICT_SDK_NODE_DIR:-${HOME:-/tmp}/.cache/verdict-sdk/node-authzed-${AUTHZED_NODE_VERSION}}"
pkg="$dir/node_modules/@authzed/authzed-node/package.json"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "skipped: $tool not found" >&2
    exit 77
  fi
done
installed() {
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$pkg" 2>/dev/null || true
}
if [ "$(installed)" != "$AUTHZED_NODE_VERSION" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  echo '{"name":"verdict-sdk-node","private":true}' >"$dir/package.json"
  if ! (cd "$dir" && npm install --no-audit --no-fund --loglevel=error \
        "@authzed/authzed-node@${AUTHZED_NODE_VERSION}" >&2); then
    rm -rf "$dir"
    echo "skipped: npm could not install @authzed/authzed-node@${AUTHZED_NODE_VERSION} (registry unreachable?)" >&2
    exit 77
  fi
fi
if [ "$(installed)" != "$AUTHZED_NODE_VERSION" ]; then
  echo "$dir has @authzed/authzed-node $(installed), want $AUTHZED_NODE_VERSION" >&2
  exit 1
fi
VERDICT_NODE_MODULES="$dir" exec node "$here/spicedb_node_test.mjs"
