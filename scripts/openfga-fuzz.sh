#!/usr/bin/env bash
# Differential test against the real OpenFGA engine (tests/integration/openfga_differential.rs).
#   scripts/openfga-fuzz.sh                      seeded smoke run (seed 19, 60 cases)
#   scripts/openfga-fuzz.sh --seed 7 --cases 2000 [--out DIR]   a long run
# Installs the peers first (../shared/peers/setup.sh, idempotent); skips,
# saying so, when ../shared/peers is absent. Every case is written as an
# `fga model test` store file (Verdict's answers as the expectations) to DIR
# (default: a temporary directory, kept when a case fails).
set -euo pipefail
cd "$(dirname "$0")/.."
peers="${VERDICT_PEERS_DIR:-../shared/peers}"
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) export VERDICT_FGA_FUZZ_SEED="$2"; shift 2 ;;
    --cases) export VERDICT_FGA_FUZZ_CASES="$2"; shift 2 ;;
    --out) export VERDICT_FGA_FUZZ_OUT="$2"; shift 2 ;;
    *) echo "usage: $0 [--seed N] [--cases N] [--out DIR]" >&2; exit 2 ;;
  esac
done
if [ ! -x "$peers/setup.sh" ]; then
  echo "skipped: $peers not found (the OpenFGA peer lives in ../shared/peers)"
  exit 0
fi
"$peers/setup.sh" >/dev/null
export VERDICT_PEERS_DIR="$(cd "$peers" && pwd)"
exec cargo test --release --test integration openfga_differential:: -- --nocapture
