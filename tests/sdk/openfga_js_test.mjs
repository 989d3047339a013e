// OpenFGA's JS SDK (@openfga/sdk, pinned in openfga.sh) against Verdict.
//
// Drives the openfga.v1 HTTP API end to end with the SDK's OpenFgaClient, as
// an OpenFGA user would: stores, a model, tuples, every query (streamed
// ListObjects too), changes, assertions, and the errors the SDK surfaces.
// Prints "N passed, 0 failed".
//
//   VERDICT_HTTP=127.0.0.1:PORT NODE_PATH=... node openfga_js_test.mjs

import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(process.env.VERDICT_JS_SDK_DIR + "/");
const { OpenFgaClient, FgaApiValidationError, FgaApiNotFoundError } = require("@openfga/sdk");

const API = "http://" + process.env.VERDICT_HTTP;
// No retries: an error must surface as the server sent it.
const retryParams = { maxRetry: 0 };

const MODEL = {
  schema_version: "1.1",
  type_definitions: [
    { type: "user" },
    {
      type: "group",
      relations: { member: { this: {} } },
      metadata: { relations: { member: { directly_related_user_types: [{ type: "user" }] } } },
    },
    {
      type: "document",
      relations: {
        owner: { this: {} },
        viewer: { union: { child: [{ this: {} }, { computedUserset: { relation: "owner" } }] } },
      },
      metadata: {
        relations: {
          owner: { directly_related_user_types: [{ type: "user" }] },
          viewer: {
            directly_related_user_types: [
              { type: "user" },
              { type: "user", wildcard: {} },
              { type: "group", relation: "member" },
            ],
          },
        },
      },
    },
  ],
};

const state = {};
const client = (extra = {}) => new OpenFgaClient({ apiUrl: API, retryParams, ...extra });
const fga = () => client({ storeId: state.store, authorizationModelId: state.model });

async function expectError(fn, cls, status, code) {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e?.constructor?.name}: ${e}`);
    assert.equal(e.statusCode, status, String(e));
    assert.equal(e.apiErrorCode, code, String(e));
    return;
  }
  assert.fail(`expected HTTP ${status} ${code}`);
}

const tests = {
  async createAndGetStore() {
    const s = await client().createStore({ name: "verdict js sdk test" });
    assert.equal(s.id.length, 26);
    assert.equal(s.name, "verdict js sdk test");
    state.store = s.id;
    const got = await client({ storeId: s.id }).getStore();
    assert.equal(got.name, "verdict js sdk test");
    const listed = await client().listStores();
    assert.ok(listed.stores.some((x) => x.id === s.id));
  },
  async writeAndReadModel() {
    const c = client({ storeId: state.store });
    const r = await c.writeAuthorizationModel(MODEL);
    assert.equal(r.authorization_model_id.length, 26);
    state.model = r.authorization_model_id;
    const latest = await c.readLatestAuthorizationModel();
    assert.equal(latest.authorization_model.id, state.model);
    const doc = latest.authorization_model.type_definitions.find((t) => t.type === "document");
    assert.equal(doc.relations.viewer.union.child[1].computedUserset.relation, "owner");
  },
  async writeTuplesAndCheck() {
    const c = fga();
    await c.writeTuples([
      { user: "user:anne", relation: "owner", object: "document:roadmap" },
      { user: "group:eng#member", relation: "viewer", object: "document:roadmap" },
      { user: "user:bob", relation: "member", object: "group:eng" },
      { user: "user:*", relation: "viewer", object: "document:public" },
    ]);
    const check = async (user, relation, object) => (await c.check({ user, relation, object })).allowed;
    assert.equal(await check("user:anne", "viewer", "document:roadmap"), true);
    assert.equal(await check("user:bob", "viewer", "document:roadmap"), true);
    assert.equal(await check("user:carl", "viewer", "document:roadmap"), false);
    assert.equal(await check("user:carl", "viewer", "document:public"), true);
    const contextual = await c.check({
      user: "user:carl",
      relation: "owner",
      object: "document:roadmap",
      contextualTuples: [{ user: "user:carl", relation: "owner", object: "document:roadmap" }],
    });
    assert.equal(contextual.allowed, true);
  },
  async batchCheck() {
    const r = await fga().batchCheck({
      checks: [
        { user: "user:anne", relation: "owner", object: "document:roadmap", correlationId: "a" },
        { user: "user:carl", relation: "owner", object: "document:roadmap", correlationId: "c" },
      ],
    });
    const got = Object.fromEntries(r.result.map((x) => [x.correlationId, x.allowed]));
    assert.deepEqual(got, { a: true, c: false });
  },
  async listObjectsAndUsers() {
    const c = fga();
    const objs = await c.listObjects({ user: "user:bob", relation: "viewer", type: "document" });
    assert.deepEqual([...objs.objects].sort(), ["document:public", "document:roadmap"]);
    const users = await c.listUsers({
      object: { type: "document", id: "roadmap" },
      relation: "viewer",
      user_filters: [{ type: "user" }],
    });
    const ids = users.users.filter((u) => u.object).map((u) => u.object.id).sort();
    assert.deepEqual(ids, ["anne", "bob"]);
  },
  async streamedListObjects() {
    const got = [];
    for await (const r of fga().streamedListObjects({ user: "user:anne", relation: "viewer", type: "document" })) {
      got.push(r.object);
    }
    assert.deepEqual(got.sort(), ["document:public", "document:roadmap"]);
  },
  async expand() {
    const r = await fga().expand({ relation: "owner", object: "document:roadmap" });
    assert.deepEqual(r.tree.root.leaf.users.users, ["user:anne"]);
  },
  async assertions() {
    const c = fga();
    await c.writeAssertions([
      { user: "user:anne", relation: "viewer", object: "document:roadmap", expectation: true },
      { user: "user:carl", relation: "owner", object: "document:roadmap", expectation: false },
    ]);
    const r = await c.readAssertions();
    assert.equal(r.authorization_model_id, state.model);
    const got = r.assertions.map((a) => [a.tuple_key.user, a.expectation]);
    assert.deepEqual(got, [["user:anne", true], ["user:carl", false]]);
  },
  async readAndDelete() {
    const c = fga();
    const r = await c.read({ object: "document:roadmap" });
    const keys = r.tuples.map((t) => `${t.key.user} ${t.key.relation}`).sort();
    assert.deepEqual(keys, ["group:eng#member viewer", "user:anne owner"]);
    await c.deleteTuples([{ user: "user:anne", relation: "owner", object: "document:roadmap" }]);
    assert.equal((await c.check({ user: "user:anne", relation: "viewer", object: "document:roadmap" })).allowed, false);
  },
  async readChanges() {
    const c = fga();
    const r = await c.readChanges({ type: "document" });
    const ops = r.changes.map((ch) => `${ch.operation} ${ch.tuple_key.user} ${ch.tuple_key.relation}`);
    assert.ok(ops.includes("TUPLE_OPERATION_WRITE user:anne owner"), ops.join(", "));
    assert.equal(ops[ops.length - 1], "TUPLE_OPERATION_DELETE user:anne owner");
    const again = await c.readChanges({ type: "document" }, { continuationToken: r.continuation_token });
    assert.deepEqual(again.changes, []);
    assert.equal(again.continuation_token, r.continuation_token);
  },
  async errors() {
    const c = fga();
    await expectError(
      () => c.check({ user: "user:anne", relation: "viewer", object: "folder:x" }),
      FgaApiValidationError, 400, "validation_error");
    await expectError(
      () => c.listObjects({ user: "user:anne", relation: "viewer", type: "folder" }),
      FgaApiValidationError, 400, "type_not_found");
    await expectError(
      () => c.writeTuples([{ user: "user:bob", relation: "member", object: "group:eng" }]),
      FgaApiValidationError, 400, "write_failed_due_to_invalid_input");
    await expectError(
      () => client({ storeId: "01ARZ3NDEKTSV4RRFFQ69G5FAV" }).getStore(),
      FgaApiNotFoundError, 404, "store_id_not_found");
  },
  async deleteStore() {
    const c = client({ storeId: state.store });
    await c.deleteStore();
    await expectError(() => c.getStore(), FgaApiNotFoundError, 404, "store_id_not_found");
  },
};

let passed = 0;
let failed = 0;
for (const [name, t] of Object.entries(tests)) {
  try {
    await t();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}`);
    console.log(e?.stack ?? String(e));
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
