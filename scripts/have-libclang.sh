#!/usr/bin/env bash
# Exits 0 when bindgen (through clang-sys) would find a libclang to load,
# 1 otherwise. Asks bindgen's own question rather than globbing loosely:
#   - LIBCLANG_PATH names a directory holding a libclang (or the file itself);
#   - otherwise a file named libclang.so, libclang-*.so, libclang.so.* or
#     libclang-*.so.* lies in one of the directories clang-sys searches
#     (llvm-config's libdir, LD_LIBRARY_PATH, /usr/local/llvm*/lib*,
#     /usr/local/lib*[/*[/*]], /usr/lib*[/*[/*]]).
# libclang-cpp* is the C++ interface library: bindgen cannot use it, and a
# fresh Debian machine ships /usr/lib/llvm-14/lib/libclang-cpp.so.14 without
# libclang itself, so it never counts.
#
# VERDICT_DEPS_ROOT (default: empty) is prefixed to every system directory,
# so tests can point the detection at a fake tree.
set -uo pipefail
shopt -s nullglob

root="${VERDICT_DEPS_ROOT:-}"
verbose="${1:-}"

is_libclang_name() {
  local name="$1"
  case "$name" in
    libclang-cpp*) return 1 ;;
    libclang.so | libclang-*.so | libclang.so.* | libclang-*.so.*) return 0 ;;
    *) return 1 ;;
  esac
}

dir_has_libclang() {
  local dir="$1" file
  [ -d "$dir" ] || return 1
  for file in "$dir"/libclang*; do
    if [ -f "$file" ] && is_libclang_name "$(basename "$file")"; then
      [ "$verbose" = "-v" ] && echo "libclang: $file"
      return 0
    fi
  done
  return 1
}

if [ -n "${LIBCLANG_PATH:-}" ]; then
  if [ -f "$LIBCLANG_PATH" ] && is_libclang_name "$(basename "$LIBCLANG_PATH")"; then
    exit 0
  fi
  dir_has_libclang "$LIBCLANG_PATH" && exit 0
  # clang-sys only looks in LIBCLANG_PATH when it is set; say why we go on.
  echo "have-libclang: LIBCLANG_PATH=$LIBCLANG_PATH holds no libclang" >&2
  exit 1
fi

candidates=()
if [ -z "$root" ] && command -v llvm-config >/dev/null 2>&1; then
  candidates+=("$(llvm-config --libdir 2>/dev/null)")
fi
if [ -n "${LD_LIBRARY_PATH:-}" ] && [ -z "$root" ]; then
  IFS=: read -r -a ld_dirs <<<"$LD_LIBRARY_PATH"
  candidates+=("${ld_dirs[@]}")
fi
for pattern in \
  "$root/usr/local/llvm*/lib*" \
  "$root/usr/local/lib*/*/*" "$root/usr/local/lib*/*" "$root/usr/local/lib*" \
  "$root/usr/lib*/*/*" "$root/usr/lib*/*" "$root/usr/lib*"; do
  # shellcheck disable=SC2206 # the pattern is meant to expand here
  expanded=($pattern)
  candidates+=("${expanded[@]}")
done

for dir in "${candidates[@]}"; do
  [ -n "$dir" ] && dir_has_libclang "$dir" && exit 0
done
exit 1
