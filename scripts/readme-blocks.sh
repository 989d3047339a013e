#!/usr/bin/env bash
# Runs the README's copyable blocks (Quickstart, three-node cluster, TLS and
# keys, the relation-rename migration) against the built binary, the way a
# new user would, and checks what the README says they print.
#
# Every command this script runs through `cmd` must appear verbatim in
# README.md (the script fails otherwise), so the README cannot drift away
# from what was tried. Servers bind the README's fixed loopback ports and
# are killed when the script exits; all files land in a temporary directory.
#
#   scripts/readme-blocks.sh [DIR_WITH_VERDICT_BINARY]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin_dir="${1:-${CARGO_TARGET_DIR:-$root/target}/release}"
if [ ! -x "$bin_dir/verdict" ]; then
  echo "readme-blocks: no verdict binary in $bin_dir (build with cargo build --release)" >&2
  exit 1
fi
export PATH="$bin_dir:$PATH"
unset VERDICT_ENDPOINT VERDICT_TENANT VERDICT_TOKEN VERDICT_TLS_CA VERDICT_CLUSTER_KEY

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ln -s "$root/schema-examples" "$work/schema-examples"
cd "$work"

fail() { echo "readme-blocks: FAIL: $*" >&2; exit 1; }
# The command must be a line (or part of one) of README.md; then run it.
cmd() {
  grep -qF -- "$1" "$root/README.md" || fail "not in README.md verbatim: $1"
  echo "\$ $1" >&2
  eval "$1"
}
# Runs a README command and checks its output contains `want`.
expect() {
  local want="$1" line="$2" out
  out="$(cmd "$line" 2>&1)" || fail "exit $? from: $line"$'\n'"$out"
  printf '%s\n' "$out" | sed 's/^/    /' >&2
  grep -qF -- "$want" <<<"$out" || fail "expected '$want' from: $line"
}
wait_ready() {
  local url="$1" i
  for i in $(seq 1 200); do
    if curl -fsk "$url" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "no answer from $url"
}

echo "== Quickstart" >&2
verdict serve --insecure-no-auth >serve.log 2>&1 &
pids+=($!)
wait_ready http://127.0.0.1:8080/readyz
expect "" 'verdict schema write schema-examples/document-sharing.yaml'
cmd 'Z=$(verdict rel import schema-examples/document-sharing.yaml | tail -1)'
[ -n "$Z" ] || fail "rel import printed no zookie"
expect ALLOWED 'verdict check '\''document:rfc_storage#view@user:carol'\'' --consistency "at-least:$Z"'
expect DENIED 'verdict check '\''document:rfc_storage#view@user:bob'\'' --consistency "at-least:$Z" --explain'
expect handbook 'verdict lookup-resources document view user:alice --consistency "at-least:$Z"'
expect '*' 'verdict lookup-subjects document:handbook view user --consistency "at-least:$Z"'
expect document:handbook 'verdict expand '\''document:handbook#view'\'' --consistency "at-least:$Z"'
expect document:rfc_storage 'verdict rel read '\''document:rfc_storage'\'' --consistency "at-least:$Z"'
cmd 'Z=$(verdict rel write '\''document:launch_plan#viewer@user:erin'\'' | tail -1)'
expect ALLOWED 'verdict check '\''document:launch_plan#view@user:erin'\'' --consistency "at-least:$Z" --json'
expect "" 'verdict rel delete '\''document:launch_plan#viewer@user:erin'\'''
out="$(timeout 3 verdict watch --from "$Z" 2>&1 || true)"
grep -qF 'document:launch_plan#viewer@user:erin' <<<"$out" || fail "watch --from \$Z did not show the delete: $out"
grep -qF 'verdict watch --from "$Z"' "$root/README.md" || fail "README lost the watch line"
cmd 'verdict rel export > backup.txt'
grep -q 'document:rfc_storage' backup.txt || fail "backup.txt lacks the imported tuples"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

echo "== Three-node cluster" >&2
cmd 'IC=1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003'
serve_line='verdict serve --data-dir data$i --node-id $i --raft-addr 127.0.0.1:700$i \'
grep -qF -- "$serve_line" "$root/README.md" || fail "README lost the cluster serve line"
for i in 1 2 3; do
  verdict serve --data-dir data$i --node-id $i --raft-addr 127.0.0.1:700$i \
    --grpc-addr 127.0.0.1:5005$i --http-addr 127.0.0.1:808$i \
    --initial-cluster $IC --cluster-key s3cret --insecure-no-auth >node$i.log 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do wait_ready "http://127.0.0.1:808$i/readyz"; done
cmd 'export VERDICT_CLUSTER_KEY=s3cret'
for _ in $(seq 1 100); do
  verdict cluster status --raft-endpoint 127.0.0.1:7002 2>/dev/null | grep -q 'leader' && break
  sleep 0.1
done
expect leader 'verdict cluster status --raft-endpoint 127.0.0.1:7002'
cmd 'S=$(verdict schema write schema-examples/document-sharing.yaml --endpoint 127.0.0.1:50052 | tail -1)'
cmd 'verdict schema read --consistency "at-least:$S" --endpoint 127.0.0.1:50053 > /dev/null'
cmd 'Z=$(verdict rel write '\''document:launch_plan#viewer@user:erin'\'' --endpoint 127.0.0.1:50053 | tail -1)'
expect ALLOWED 'verdict check '\''document:launch_plan#view@user:erin'\'' --consistency "at-least:$Z" --endpoint 127.0.0.1:50051'
join_line='verdict serve --data-dir data4 --node-id 4 --raft-addr 127.0.0.1:7004 --grpc-addr 127.0.0.1:50054 \'
grep -qF -- "$join_line" "$root/README.md" || fail "README lost the join line"
verdict serve --data-dir data4 --node-id 4 --raft-addr 127.0.0.1:7004 --grpc-addr 127.0.0.1:50054 \
  --http-addr 127.0.0.1:8084 --join 127.0.0.1:7001 --cluster-key s3cret --insecure-no-auth >node4.log 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do
  verdict cluster status --raft-endpoint 127.0.0.1:7001 2>/dev/null | grep -q '^ *4\b.*voter' && break
  sleep 0.1
done
# The joined node serves the data it caught up on (not a README line).
verdict check 'document:launch_plan#view@user:erin' --consistency "at-least:$Z" --endpoint 127.0.0.1:50054 \
  | grep -q ALLOWED || fail "the fourth node did not catch up"
expect "" 'verdict cluster remove --id 4 --raft-endpoint 127.0.0.1:7001'
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
unset VERDICT_CLUSTER_KEY

echo "== Changing your schema safely" >&2
fresh_node() {
  verdict serve --insecure-no-auth --data-dir "$work/$1" >"$work/$1.log" 2>&1 &
  pids+=($!)
  wait_ready http://127.0.0.1:8080/readyz
}
fresh_node migrate-steps
(
  cmd 'cp -r schema-examples/rename-relation rename && cd rename'
  expect "" 'verdict schema write v1.zed'
  expect "" "verdict rel write 'document:readme#reader@user:alice' 'document:plan#reader@user:bob' 'document:readme#owner@user:carol'"
  expect '- relation document#reader' 'verdict schema diff live v3-viewer-only.zed'
  expect 'decisions: 3 simulated, 2 flipped' 'verdict schema plan v3-viewer-only.zed --checks checks.txt'
  out="$(verdict schema apply v3-viewer-only.zed --checks checks.txt 2>&1)" && fail "apply of v3 was not refused"
  grep -qF 'FAILED_PRECONDITION: the new schema changes 2 of 3 simulated decisions' <<<"$out" || fail "v3 refused for another reason: $out"
  expect 'decisions: 3 simulated, 0 flipped' 'verdict schema plan v2-add-viewer.zed --checks checks.txt'
  expect 'schema version 2' 'verdict schema apply v2-add-viewer.zed --expect-version 1 --checks checks.txt --comment add-viewer'
  expect 'copied 2 relationship(s)' 'verdict rel copy --from document#reader --to document#viewer --delete-source'
  expect 'decisions: 3 simulated, 0 flipped' 'verdict schema plan v3-viewer-only.zed --checks checks.txt'
  expect 'schema version 3' 'verdict schema apply v3-viewer-only.zed --expect-version 2 --checks checks.txt --comment drop-reader'
  expect 'drop-reader' 'verdict schema history'
)
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()
rm -rf rename
fresh_node migrate-file
(
  cmd 'cp -r schema-examples/rename-relation rename && cd rename'
  expect "" 'verdict schema write v1.zed'
  expect "" "verdict rel write 'document:readme#reader@user:alice' 'document:plan#reader@user:bob' 'document:readme#owner@user:carol'"
  expect 'migration complete: schema version 3' 'verdict migrate run rename-reader.yaml'
  expect 'migration already complete (3 steps)' 'verdict migrate run rename-reader.yaml'
  # Not a README line: the migrated data still answers as before.
  verdict check 'document:readme#view@user:alice' --consistency full | grep -q ALLOWED \
    || fail "alice lost view after the migration"
)
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

echo "== Running securely" >&2
tls_gen='openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost -keyout key.pem -out cert.pem \'
grep -qF -- "$tls_gen" "$root/README.md" || fail "README lost the certificate line"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost -keyout key.pem -out cert.pem \
  -addext subjectAltName=IP:127.0.0.1,DNS:localhost -addext basicConstraints=critical,CA:FALSE 2>/dev/null
cmd 'cp cert.pem ca.pem'
cmd 'ADMIN=$(openssl rand -hex 24)'
secure_line='verdict serve --admin-key "$ADMIN" --tls-cert cert.pem --tls-key key.pem \'
grep -qF -- "$secure_line" "$root/README.md" || fail "README lost the secure serve line"
verdict serve --admin-key "$ADMIN" --tls-cert cert.pem --tls-key key.pem \
  --tenant-rate-limit 500/s --decision-log decisions.jsonl >secure.log 2>&1 &
pids+=($!)
wait_ready https://127.0.0.1:8080/readyz
cmd 'export VERDICT_TOKEN="$ADMIN" VERDICT_TLS_CA=ca.pem'
expect "" 'verdict tenant create acme'
cmd 'KEY=$(verdict key create --tenant acme)'
[[ "$KEY" == vk_* ]] || fail "key create printed '$KEY', not a vk_ token"
expect acme 'verdict key list --tenant acme'
expect "" 'VERDICT_TOKEN=$KEY verdict schema write --tenant acme schema-examples/document-sharing.yaml'
expect imported 'VERDICT_TOKEN=$KEY verdict rel import --tenant acme schema-examples/document-sharing.yaml'
expect ALLOWED 'VERDICT_TOKEN=$KEY verdict check --tenant acme '\''document:rfc_storage#view@user:carol'\'' --consistency full'
expect revoked 'verdict key revoke "$(verdict key list --tenant acme | cut -f1)"'
out="$(VERDICT_TOKEN=$KEY verdict check --tenant acme 'document:rfc_storage#view@user:carol' --consistency full 2>&1)" \
  && fail "a revoked key still checks"
grep -qF UNAUTHENTICATED <<<"$out" || fail "a revoked key got: $out"
grep -q '"tenant":"acme"' decisions.jsonl || fail "the decision log has no acme check"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()
unset VERDICT_TOKEN VERDICT_TLS_CA

echo "readme-blocks: ok" >&2
