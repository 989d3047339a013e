#!/usr/bin/env bash
# The run command from README.md: builds (release) and runs `verdict` with
# the given arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
exec cargo run --release --quiet -- "$@"
