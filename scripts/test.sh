#!/usr/bin/env bash
# The test command from README.md: every unit, property, end-to-end and
# conformance test in the workspace (debug profile).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
exec cargo test --workspace "$@"
