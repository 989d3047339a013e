#!/usr/bin/env bash
# Runs SpiceDB's official Python client (authzed on PyPI, pinned below)
# against a running Verdict: tests/sdk/spicedb_python_test.py.
#
#   VERDICT_ENDPOINT=127.0.0.1:50051 tests/sdk/spicedb_python.sh
#
# The venv is cached in $VERDICT_SDK_VENV (default: ~/.cache/verdict-sdk/py-authzed-<version>).
# Exit status 77 means "skipped": python3/venv missing or PyPI unreachable.
set -euo pipefail

AUTHZED_VERSION="1.25.0"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${VERDICT_SDK_VENV:-${HOME:-/tmp}/.cache/verdict-sdk/py-authzed-${AUTHZED_VERSION}}"

if ! command -v python3 >/dev/null 2>&1; then
  echo "skipped: python3 not found" >&2
  exit 77
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import authzed" >/dev/null 2>&1; then
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    echo "skipped: python3 -m venv failed" >&2
    exit 77
  fi
  if ! "$venv/bin/pip" install --quiet --disable-pip-version-check "authzed==${AUTHZED_VERSION}" >&2; then
    rm -rf "$venv"
    echo "skipped: pip could not install authzed==${AUTHZED_VERSION} (PyPI unreachable?)" >&2
    exit 77
  fi
fi
installed="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("authzed"))')"
if [ "$installed" != "$AUTHZED_VERSION" ]; then
  echo "venv has authzed $installed, want $AUTHZED_VERSION" >&2
  exit 1
fi
exec "$venv/bin/python" "$here/spicedb_python_test.py"
