#!/usr/bin/env bash
# Installs what building Verdict needs beyond the Rust toolchain and gcc:
# libclang (RocksDB's bindgen) and the rustfmt/clippy components.
set -euo pipefail

have_libclang() {
  [ -n "${LIBCLANG_PATH:-}" ] && return 0
  ls /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1
}

if ! have_libclang; then
  echo "ensure-deps: installing libclang-dev (needed by RocksDB's bindgen)" >&2
  sudo_cmd=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get install -y libclang-dev >/dev/null 2>&1 || {
    $sudo_cmd apt-get update >/dev/null 2>&1
    $sudo_cmd apt-get install -y libclang-dev >/dev/null
  }
fi

if command -v rustup >/dev/null; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
      rustup component add "$component" >/dev/null 2>&1 || true
    fi
  done
fi
