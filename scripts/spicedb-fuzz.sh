#!/usr/bin/env bash
# Differential fuzzer against the real SpiceDB (tests/integration/spicedb_fuzz.rs).
#   scripts/spicedb-fuzz.sh                      seeded smoke run (CI: seed 23, 120 cases)
#   scripts/spicedb-fuzz.sh --seed 7 --cases 5000 [--out DIR]   a long run
# Installs the peers first (../shared/peers/setup.sh, idempotent); skips,
# saying so, when ../shared/peers is absent. Failing cases are written as
# validation files to DIR (default: target/tmp/spicedb-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
peers="${VERDICT_PEERS_DIR:-../shared/peers}"
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) export VERDICT_FUZZ_SEED="$2"; shift 2 ;;
    --cases) export VERDICT_FUZZ_CASES="$2"; shift 2 ;;
    --out) export VERDICT_FUZZ_OUT="$2"; shift 2 ;;
    *) echo "usage: $0 [--seed N] [--cases N] [--out DIR]" >&2; exit 2 ;;
  esac
done
if [ ! -x "$peers/setup.sh" ]; then
  echo "skipped: $peers not found (the SpiceDB peer lives in ../shared/peers)"
  exit 0
fi
"$peers/setup.sh" >/dev/null
export VERDICT_PEERS_DIR="$(cd "$peers" && pwd)"
exec cargo test --release --workspace --test integration -- spicedb_fuzz:: --nocapture
