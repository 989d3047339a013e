#!/usr/bin/env bash
# Installs what building Verdict needs beyond the Rust toolchain and gcc:
# libclang (RocksDB's bindgen) and the rustfmt/clippy components.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
have_libclang() { "$here/have-libclang.sh"; }

if ! have_libclang; then
  echo "ensure-deps: installing libclang-dev (needed by RocksDB's bindgen)" >&2
  sudo_cmd=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo_cmd="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get install -y libclang-dev >/dev/null 2>&1 || {
    $sudo_cmd apt-get update >/dev/null 2>&1
    $sudo_cmd apt-get install -y libclang-dev >/dev/null
  }
  if ! have_libclang; then
    echo "ensure-deps: libclang-dev installed but no libclang.so found where bindgen looks" >&2
    exit 1
  fi
fi

if command -v rustup >/dev/null; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
      rustup component add "$component" >/dev/null 2>&1 || true
    fi
  done
fi
