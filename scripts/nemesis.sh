#!/usr/bin/env bash
# Runs the nemesis (tests/integration/nemesis.rs) for longer than CI does:
#   scripts/nemesis.sh [--cycles N] [--seed N] [--nodes 3|5] [--no-pre-vote]
# Each cycle injects one fault for 2-5 s, then heals for 2-4 s (about 6 s
# a cycle: --cycles 100 is about ten minutes). --no-pre-vote runs the nodes
# with VERDICT_PRE_VOTE=off (openraft's election timer alone), to compare
# elections. Prints the summary: fault cycles by kind, operations
# acknowledged, each violation count.
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=100
seed=1
nodes=3
while [ $# -gt 0 ]; do
  case "$1" in
    --cycles) cycles="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --nodes) nodes="$2"; shift 2 ;;
    --no-pre-vote) export VERDICT_PRE_VOTE=off; shift ;;
    *) echo "usage: scripts/nemesis.sh [--cycles N] [--seed N] [--nodes 3|5] [--no-pre-vote]" >&2; exit 2 ;;
  esac
done
export VERDICT_NEMESIS_CYCLES="$cycles" VERDICT_NEMESIS_SEED="$seed" VERDICT_NEMESIS_NODES="$nodes"
exec cargo test --release --test integration nemesis:: -- --nocapture --test-threads 1
