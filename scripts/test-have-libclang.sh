#!/usr/bin/env bash
# Tests scripts/have-libclang.sh against fake directory trees: each case
# builds a tree, runs the detection with VERDICT_DEPS_ROOT pointing at it,
# and compares the exit status with what bindgen would find.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
detect="$here/have-libclang.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0

# expect NAME WANT(present|missing) [VAR=VALUE ...] -- FILES...
expect() {
  local name="$1" want="$2"; shift 2
  local envs=()
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  local root="$work/$name"
  mkdir -p "$root"
  local file
  for file in "$@"; do
    mkdir -p "$root/$(dirname "$file")"
    : >"$root/$file"
  done
  local got=missing
  if env -u LIBCLANG_PATH -u LD_LIBRARY_PATH VERDICT_DEPS_ROOT="$root" \
      "${envs[@]/\{root\}/$root}" "$detect" 2>/dev/null; then
    got=present
  fi
  if [ "$got" = "$want" ]; then
    echo "ok   $name: $got"
  else
    echo "FAIL $name: want $want, got $got"
    failures=$((failures + 1))
  fi
}

expect only-libclang-cpp missing -- usr/lib/llvm-14/lib/libclang-cpp.so.14
expect libclang-cpp-unversioned missing -- usr/lib/llvm-14/lib/libclang-cpp.so
expect empty-tree missing -- usr/lib/x86_64-linux-gnu/libc.so.6
expect libclang-so-1 present -- usr/lib/llvm-14/lib/libclang.so.1
expect libclang-versioned present -- usr/lib/llvm-14/lib/libclang-14.0.6.so
expect debian-multiarch present -- usr/lib/x86_64-linux-gnu/libclang-14.so.1
expect local-llvm present -- usr/local/llvm17/lib/libclang.so
expect beside-cpp present -- usr/lib/llvm-14/lib/libclang-cpp.so.14 usr/lib/llvm-14/lib/libclang.so
expect not-searched missing -- opt/llvm/lib/libclang.so
expect libclang-path-dir present 'LIBCLANG_PATH={root}/opt/llvm/lib' -- opt/llvm/lib/libclang.so
expect libclang-path-file present 'LIBCLANG_PATH={root}/opt/llvm/lib/libclang.so.1' -- opt/llvm/lib/libclang.so.1
expect libclang-path-empty missing 'LIBCLANG_PATH={root}/opt/none' -- opt/none/README
expect libclang-path-only-cpp missing 'LIBCLANG_PATH={root}/opt/llvm/lib' -- opt/llvm/lib/libclang-cpp.so.14

if [ "$failures" -ne 0 ]; then
  echo "have-libclang: $failures case(s) failed" >&2
  exit 1
fi
echo "have-libclang: all cases pass"
