// Drives Verdict through SpiceDB's official Node client
// (`@authzed/authzed-node`, pinned in spicedb_node.sh): every
// PermissionsService / SchemaService / WatchService RPC the SDK exposes,
// errors included (gRPC code + google.rpc.ErrorInfo reason).
//
// Environment:
//   VERDICT_NODE_MODULES   the directory holding node_modules (required)
//   VERDICT_ENDPOINT       host:port of a `verdict serve --insecure-no-auth`
//                          or `verdict serve-testing` (required)
//   VERDICT_SERVE_TESTING  set when VERDICT_ENDPOINT is serve-testing: two
//                          tokens must then see isolated tenants
//   VERDICT_AUTH_ENDPOINT / VERDICT_PRESHARED_KEY  a `verdict serve
//                          --grpc-preshared-key` (optional: the auth tests)
//
// Prints one line per test and `sdk: N passed, M failed`; exits 1 on any failure.

import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.VERDICT_NODE_MODULES, "package.json"));
const { v1 } = require("@authzed/authzed-node");
const grpc = require("@grpc/grpc-js");

const ENDPOINT = process.env.VERDICT_ENDPOINT;
const TESTING = !!process.env.VERDICT_SERVE_TESTING;
const TOKEN = "verdict-node-sdk-test";

const SCHEMA = `
definition user {}

definition group {
    relation member: user | group#member
}

caveat only_if(flag bool) {
    flag
}

definition doc {
    relation owner: user
    relation viewer: user | user:* | group#member | user with only_if
    relation banned: user
    permission edit = owner
    permission view = (viewer + owner) - banned
}
`;

function client(token = TOKEN, endpoint = ENDPOINT) {
  return v1.NewClient(token, endpoint, v1.ClientSecurity.INSECURE_PLAINTEXT_CREDENTIALS);
}

const FULL = v1.Consistency.create({ requirement: { oneofKind: "fullyConsistent", fullyConsistent: true } });
const P = v1.CheckPermissionResponse_Permissionship;
const OP = v1.RelationshipUpdate_Operation;

function obj(text) {
  const [objectType, objectId] = text.split(":");
  return v1.ObjectReference.create({ objectType, objectId });
}
function subj(text) {
  const [o, rel] = text.split("#");
  return v1.SubjectReference.create({ object: obj(o), optionalRelation: rel ?? "" });
}
function rel(text, caveat) {
  const i = text.indexOf("#");
  const [resource, rest] = [text.slice(0, i), text.slice(i + 1)];
  const [relation, subject] = rest.split("@");
  const r = v1.Relationship.create({ resource: obj(resource), relation, subject: subj(subject) });
  if (caveat) {
    r.optionalCaveat = v1.ContextualizedCaveat.create({ caveatName: caveat });
  }
  return r;
}
function update(operation, text, caveat) {
  return v1.RelationshipUpdate.create({ operation, relationship: rel(text, caveat) });
}

// --- google.rpc.Status / ErrorInfo, decoded by hand (the SDK does not export ErrorInfo).
function fields(buf) {
  const out = [];
  let i = 0;
  const varint = () => {
    let v = 0, shift = 0, b;
    do { b = buf[i++]; v += (b & 0x7f) * 2 ** shift; shift += 7; } while (b & 0x80);
    return v;
  };
  while (i < buf.length) {
    const key = varint();
    const no = Math.floor(key / 8), wire = key & 7;
    if (wire === 0) out.push([no, varint()]);
    else if (wire === 2) { const n = varint(); out.push([no, buf.subarray(i, i + n)]); i += n; }
    else if (wire === 5) { i += 4; }
    else if (wire === 1) { i += 8; }
    else throw new Error(`wire type ${wire}`);
  }
  return out;
}
const text = (b) => Buffer.from(b).toString("utf8");
function errorInfo(err) {
  const bin = err.metadata?.get("grpc-status-details-bin")?.[0];
  if (!bin) return null;
  for (const [no, any] of fields(bin)) {
    if (no !== 3) continue;
    const f = fields(any);
    const url = f.find(([n]) => n === 1);
    const value = f.find(([n]) => n === 2);
    if (url && text(url[1]).endsWith("google.rpc.ErrorInfo") && value) {
      const info = fields(value[1]);
      const get = (n) => { const x = info.find(([m]) => m === n); return x ? text(x[1]) : ""; };
      return { reason: get(1), domain: get(2) };
    }
  }
  return null;
}

async function expectError(promise, code, reason, contains) {
  try {
    await promise;
  } catch (err) {
    if (err.code !== code) throw new Error(`want code ${code}, got ${err.code}: ${err.details}`);
    if (reason) {
      const info = errorInfo(err);
      if (!info || info.reason !== reason || info.domain !== "authzed.com")
        throw new Error(`want reason ${reason}, got ${JSON.stringify(info)}: ${err.details}`);
    }
    if (contains && !String(err.details).includes(contains))
      throw new Error(`message \`${err.details}\` should contain \`${contains}\``);
    return err;
  }
  throw new Error(`want error code ${code}, got success`);
}

function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

async function check(c, resource, permission, subject, context) {
  const req = v1.CheckPermissionRequest.create({
    consistency: FULL, resource: obj(resource), permission, subject: subj(subject),
  });
  if (context) req.context = v1.createStructFromObject(context);
  const r = await c.promises.checkPermission(req);
  assert(r.checkedAt?.token, "checkedAt token");
  return r.permissionship;
}

/** Calls `rpc` and accepts UNIMPLEMENTED (returns null) for RPCs still being built. */
async function optional(rpc) {
  try {
    return await rpc();
  } catch (err) {
    if (err.code === grpc.status.UNIMPLEMENTED) return null;
    throw err;
  }
}

const C = client();
const tests = {
  async read_schema_before_any_write_is_not_found() {
    await expectError(C.promises.readSchema(v1.ReadSchemaRequest.create({})), grpc.status.NOT_FOUND);
  },
  async write_schema_errors() {
    await expectError(
      C.promises.writeSchema(v1.WriteSchemaRequest.create({ schema: "definition user {" })),
      grpc.status.INVALID_ARGUMENT, "ERROR_REASON_SCHEMA_PARSE_ERROR");
  },
  async write_and_read_schema() {
    const w = await C.promises.writeSchema(v1.WriteSchemaRequest.create({ schema: SCHEMA }));
    assert(w.writtenAt?.token, "writtenAt");
    const r = await C.promises.readSchema(v1.ReadSchemaRequest.create({}));
    assert(r.schemaText.includes("definition doc"), r.schemaText);
    assert(r.readAt?.token, "readAt");
  },
  async write_relationships_and_check() {
    const w = await C.promises.writeRelationships(v1.WriteRelationshipsRequest.create({
      updates: [
        update(OP.TOUCH, "doc:1#viewer@group:eng#member"),
        update(OP.TOUCH, "group:eng#member@user:alice"),
        update(OP.TOUCH, "group:eng#member@user:mallory"),
        update(OP.TOUCH, "doc:1#banned@user:mallory"),
        update(OP.TOUCH, "doc:1#owner@user:olga"),
        update(OP.TOUCH, "doc:2#viewer@user:cav", "only_if"),
        update(OP.TOUCH, "doc:pub#viewer@user:*"),
      ],
    }));
    assert(w.writtenAt?.token, "writtenAt");
    assert(await check(C, "doc:1", "view", "user:alice") === P.HAS_PERMISSION, "alice views");
    assert(await check(C, "doc:1", "view", "user:mallory") === P.NO_PERMISSION, "mallory banned");
    assert(await check(C, "doc:1", "edit", "user:olga") === P.HAS_PERMISSION, "olga edits");
    assert(await check(C, "doc:pub", "view", "user:anyone") === P.HAS_PERMISSION, "wildcard");
    assert(await check(C, "doc:2", "view", "user:cav") === P.CONDITIONAL_PERMISSION, "caveat w/o context");
    assert(await check(C, "doc:2", "view", "user:cav", { flag: true }) === P.HAS_PERMISSION, "caveat true");
    assert(await check(C, "doc:2", "view", "user:cav", { flag: false }) === P.NO_PERMISSION, "caveat false");
  },
  async write_relationship_errors() {
    await expectError(
      C.promises.writeRelationships(v1.WriteRelationshipsRequest.create({
        updates: [update(OP.CREATE, "group:eng#member@user:alice")],
      })),
      grpc.status.ALREADY_EXISTS);
    await expectError(
      C.promises.writeRelationships(v1.WriteRelationshipsRequest.create({
        updates: [update(OP.TOUCH, "nosuch:1#viewer@user:alice")],
      })),
      grpc.status.FAILED_PRECONDITION, "ERROR_REASON_UNKNOWN_DEFINITION");
    await expectError(
      C.promises.writeRelationships(v1.WriteRelationshipsRequest.create({
        updates: [update(OP.TOUCH, "doc:1#viewer@group:eng")],
      })),
      grpc.status.INVALID_ARGUMENT);
  },
  async check_errors() {
    await expectError(
      C.promises.checkPermission(v1.CheckPermissionRequest.create({
        resource: obj("doc:1"), permission: "nosuch", subject: subj("user:alice"),
      })),
      grpc.status.FAILED_PRECONDITION, "ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION");
    await expectError(
      C.promises.checkPermission(v1.CheckPermissionRequest.create({
        resource: obj("doc:1"), permission: "view", subject: subj("user:alice"),
        consistency: v1.Consistency.create({ requirement: { oneofKind: "atLeastAsFresh", atLeastAsFresh: v1.ZedToken.create({ token: "garbage" }) } }),
      })),
      grpc.status.INVALID_ARGUMENT);
  },
  async check_bulk_permissions() {
    const item = (s) => v1.CheckBulkPermissionsRequestItem.create({ resource: obj("doc:1"), permission: "view", subject: subj(s) });
    const r = await C.promises.checkBulkPermissions(v1.CheckBulkPermissionsRequest.create({
      consistency: FULL, items: [item("user:alice"), item("user:mallory")],
    }));
    const got = r.pairs.map((p) => p.response.oneofKind === "item" ? p.response.item.permissionship : "error");
    assert(JSON.stringify(got) === JSON.stringify([P.HAS_PERMISSION, P.NO_PERMISSION]), JSON.stringify(got));
  },
  async expand_permission_tree() {
    const r = await C.promises.expandPermissionTree(v1.ExpandPermissionTreeRequest.create({
      consistency: FULL, resource: obj("doc:1"), permission: "viewer",
    }));
    assert(r.treeRoot && r.expandedAt?.token, JSON.stringify(r));
  },
  async lookup_resources() {
    const r = await C.promises.lookupResources(v1.LookupResourcesRequest.create({
      consistency: FULL, resourceObjectType: "doc", permission: "view", subject: subj("user:alice"),
    }));
    const ids = r.map((x) => x.resourceObjectId).sort();
    assert(JSON.stringify(ids) === JSON.stringify(["1", "pub"]), JSON.stringify(ids));
  },
  async lookup_subjects() {
    const r = await C.promises.lookupSubjects(v1.LookupSubjectsRequest.create({
      consistency: FULL, resource: obj("doc:1"), permission: "view", subjectObjectType: "user",
    }));
    const ids = r.map((x) => x.subject.subjectObjectId).sort();
    assert(ids.includes("alice") && ids.includes("olga") && !ids.includes("mallory"), JSON.stringify(ids));
  },
  async read_relationships_with_limit_and_cursor() {
    const filter = v1.RelationshipFilter.create({ resourceType: "group" });
    const first = await C.promises.readRelationships(v1.ReadRelationshipsRequest.create({
      consistency: FULL, relationshipFilter: filter, optionalLimit: 1,
    }));
    assert(first.length === 1, `one per page, got ${first.length}`);
    const rest = await C.promises.readRelationships(v1.ReadRelationshipsRequest.create({
      consistency: FULL, relationshipFilter: filter, optionalLimit: 1, optionalCursor: first[0].afterResultCursor,
    }));
    assert(rest.length === 1, `the next page, got ${rest.length}`);
    assert(JSON.stringify(rest[0].relationship) !== JSON.stringify(first[0].relationship), "a new relationship");
    await expectError(
      C.promises.readRelationships(v1.ReadRelationshipsRequest.create({
        consistency: FULL, relationshipFilter: v1.RelationshipFilter.create({ resourceType: "doc" }),
        optionalLimit: 1, optionalCursor: first[0].afterResultCursor,
      })),
      grpc.status.INVALID_ARGUMENT, "ERROR_REASON_INVALID_CURSOR");
  },
  async delete_relationships() {
    await C.promises.writeRelationships(v1.WriteRelationshipsRequest.create({
      updates: [update(OP.TOUCH, "doc:del#viewer@user:a"), update(OP.TOUCH, "doc:del#viewer@user:b")],
    }));
    const r = await C.promises.deleteRelationships(v1.DeleteRelationshipsRequest.create({
      relationshipFilter: v1.RelationshipFilter.create({ resourceType: "doc", optionalResourceId: "del" }),
    }));
    assert(r.deletedAt?.token, "deletedAt");
    assert(await check(C, "doc:del", "view", "user:a") === P.NO_PERMISSION, "deleted");
  },
  async import_and_export_bulk() {
    const loaded = await new Promise((resolve, reject) => {
      const stream = C.importBulkRelationships((err, resp) => (err ? reject(err) : resolve(resp)));
      stream.write(v1.ImportBulkRelationshipsRequest.create({ relationships: [rel("doc:imp1#viewer@user:i")] }));
      stream.write(v1.ImportBulkRelationshipsRequest.create({ relationships: [rel("doc:imp2#viewer@user:i")] }));
      stream.end();
    });
    assert(String(loaded.numLoaded) === "2", JSON.stringify(loaded));
    const pages = await C.promises.exportBulkRelationships(v1.ExportBulkRelationshipsRequest.create({
      consistency: FULL,
      optionalRelationshipFilter: v1.RelationshipFilter.create({ resourceType: "doc", optionalResourceIdPrefix: "imp" }),
    }));
    const n = pages.reduce((a, p) => a + p.relationships.length, 0);
    assert(n === 2, `exported ${n}`);
  },
  async watch() {
    const got = await new Promise((resolve, reject) => {
      const stream = C.watch(v1.WatchRequest.create({ optionalObjectTypes: ["doc"] }));
      const timer = setTimeout(() => { stream.cancel(); reject(new Error("no watch update in 20s")); }, 20000);
      stream.on("data", (resp) => {
        if (resp.updates?.length) { clearTimeout(timer); stream.cancel(); resolve(resp); }
      });
      stream.on("error", (err) => { if (err.code !== grpc.status.CANCELLED) { clearTimeout(timer); reject(err); } });
      setTimeout(() => {
        C.promises.writeRelationships(v1.WriteRelationshipsRequest.create({
          updates: [update(OP.TOUCH, "doc:watched#viewer@user:w")],
        })).catch(reject);
      }, 300);
    });
    const u = got.updates[0];
    assert(u.operation === OP.TOUCH && u.relationship.resource.objectId === "watched", JSON.stringify(u));
    assert(got.changesThrough?.token, "changesThrough");
  },
  async reflect_and_schema_rpcs() {
    const reflected = await C.promises.reflectSchema(v1.ReflectSchemaRequest.create({}));
    assert(reflected.definitions.some((d) => d.name === "doc"), "doc reflected");
    const computable = await optional(() => C.promises.computablePermissions(v1.ComputablePermissionsRequest.create({
      consistency: FULL, definitionName: "group", relationName: "member",
    })));
    if (computable) assert(Array.isArray(computable.permissions), "computable permissions");
    const dependent = await optional(() => C.promises.dependentRelations(v1.DependentRelationsRequest.create({
      consistency: FULL, definitionName: "doc", permissionName: "view",
    })));
    if (dependent) assert(dependent.relations.length > 0, "dependent relations");
    const diff = await optional(() => C.promises.diffSchema(v1.DiffSchemaRequest.create({
      consistency: FULL, comparisonSchema: SCHEMA + "\ndefinition extra {}\n",
    })));
    if (diff) assert(diff.diffs.length > 0, "a diff");
  },
  async tokens_and_tenants() {
    const other = client("some-other-token");
    if (TESTING) {
      // serve-testing: every token is its own, empty tenant.
      await expectError(other.promises.readSchema(v1.ReadSchemaRequest.create({})), grpc.status.NOT_FOUND);
      await other.promises.writeSchema(v1.WriteSchemaRequest.create({ schema: SCHEMA }));
      assert(await check(other, "doc:1", "view", "user:alice") === P.NO_PERMISSION, "isolated data");
      assert(await check(C, "doc:1", "view", "user:alice") === P.HAS_PERMISSION, "own data kept");
    } else {
      // --insecure-no-auth: an unknown token is the default tenant.
      const r = await other.promises.readSchema(v1.ReadSchemaRequest.create({}));
      assert(r.schemaText.includes("definition doc"), "default tenant");
    }
    other.close();
  },
};

async function authTests() {
  const endpoint = process.env.VERDICT_AUTH_ENDPOINT;
  const key = process.env.VERDICT_PRESHARED_KEY;
  if (!endpoint || !key) return {};
  return {
    async preshared_key_missing_wrong_and_right() {
      const wrong = client("wrong-key", endpoint);
      await expectError(wrong.promises.readSchema(v1.ReadSchemaRequest.create({})), grpc.status.PERMISSION_DENIED, null, "invalid preshared key");
      const good = client(key, endpoint);
      await good.promises.writeSchema(v1.WriteSchemaRequest.create({ schema: SCHEMA }));
      const r = await good.promises.readSchema(v1.ReadSchemaRequest.create({}));
      assert(r.schemaText.includes("definition doc"), "schema");
      wrong.close();
      good.close();
    },
  };
}

let passed = 0, failed = 0;
for (const [name, fn] of [...Object.entries(tests), ...Object.entries(await authTests())]) {
  const started = Date.now();
  try {
    await fn();
    passed++;
    console.log(`PASS ${name} (${((Date.now() - started) / 1000).toFixed(2)}s)`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${err?.stack ?? err}`);
  }
}
C.close();
console.log(`sdk: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
