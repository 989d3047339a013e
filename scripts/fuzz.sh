#!/usr/bin/env bash
# Builds a cargo-fuzz target with libFuzzer's coverage instrumentation on
# the stable toolchain and runs it.
#   scripts/fuzz.sh schema_compile [libFuzzer args, e.g. -max_total_time=600]
# (Equivalent to `cargo fuzz run`, which needs nightly or RUSTC_BOOTSTRAP=1.)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
target="${1:?usage: scripts/fuzz.sh TARGET [libfuzzer args]}"
shift
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
triple="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --target "$triple" --bin "$target"
mkdir -p "corpus/$target" artifacts
dir="${CARGO_TARGET_DIR:-target}"
# corpus/TARGET grows (git-ignored); seeds/TARGET is the small committed corpus.
seeds=()
[ -d "seeds/$target" ] && seeds=("seeds/$target")
exec "$dir/$triple/release/$target" -artifact_prefix=artifacts/ "corpus/$target" "${seeds[@]}" "$@"
