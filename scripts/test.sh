#!/usr/bin/env bash
# The test command from README.md: every unit, property, end-to-end and
# conformance test in the workspace (release profile: the same build as the run command, so RocksDB compiles once).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
exec cargo test --release --workspace "$@"
