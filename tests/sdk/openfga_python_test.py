"""OpenFGA's Python SDK (openfga-sdk, pinned in openfga.sh) against Verdict.

Drives the openfga.v1 HTTP API end to end with the SDK's synchronous
client, as an OpenFGA user would: stores, a model, tuples, every query,
changes, and the errors the SDK surfaces. Prints "N passed, 0 failed".

    VERDICT_HTTP=127.0.0.1:PORT python3 openfga_python_test.py
"""

import os
import sys
import traceback

from openfga_sdk import (
    ClientConfiguration,
    CreateStoreRequest,
    FgaObject,
    ReadRequestTupleKey,
    UserTypeFilter,
)
from openfga_sdk.client.models import (
    ClientBatchCheckItem,
    ClientBatchCheckRequest,
    ClientCheckRequest,
    ClientExpandRequest,
    ClientListObjectsRequest,
    ClientReadChangesRequest,
    ClientTuple,
    ClientWriteRequest,
)
from openfga_sdk.client.models.list_users_request import ClientListUsersRequest
from openfga_sdk.exceptions import ApiException
from openfga_sdk.sync import OpenFgaClient

API = "http://" + os.environ["VERDICT_HTTP"]

MODEL = {
    "schema_version": "1.1",
    "type_definitions": [
        {"type": "user"},
        {
            "type": "group",
            "relations": {"member": {"this": {}}},
            "metadata": {"relations": {"member": {"directly_related_user_types": [{"type": "user"}]}}},
        },
        {
            "type": "document",
            "relations": {
                "owner": {"this": {}},
                "viewer": {
                    "union": {
                        "child": [{"this": {}}, {"computedUserset": {"relation": "owner"}}]
                    }
                },
            },
            "metadata": {
                "relations": {
                    "owner": {"directly_related_user_types": [{"type": "user"}]},
                    "viewer": {
                        "directly_related_user_types": [
                            {"type": "user"},
                            {"type": "user", "wildcard": {}},
                            {"type": "group", "relation": "member"},
                        ]
                    },
                }
            },
        },
    ],
}

state = {}


def client(**kw):
    return OpenFgaClient(ClientConfiguration(api_url=API, **kw))


def fga():
    return client(store_id=state["store"], authorization_model_id=state.get("model"))


def test_create_and_get_store():
    with client() as c:
        s = c.create_store(CreateStoreRequest(name="verdict sdk test"))
        assert len(s.id) == 26, s
        assert s.name == "verdict sdk test"
        state["store"] = s.id
    with client(store_id=state["store"]) as c:
        got = c.get_store()
        assert got.id == state["store"] and got.name == "verdict sdk test", got
        listed = c.list_stores()
        assert state["store"] in [x.id for x in listed.stores], listed


def test_write_and_read_model():
    with client(store_id=state["store"]) as c:
        r = c.write_authorization_model(MODEL)
        assert len(r.authorization_model_id) == 26
        state["model"] = r.authorization_model_id
        latest = c.read_latest_authorization_model()
        m = latest.authorization_model
        assert m.id == state["model"], latest
        assert sorted(t.type for t in m.type_definitions) == ["document", "group", "user"]
        viewer = [t for t in m.type_definitions if t.type == "document"][0].relations["viewer"]
        assert viewer.union.child[1].computed_userset.relation == "owner"
        models = c.read_authorization_models()
        assert [x.id for x in models.authorization_models] == [state["model"]]


def test_write_tuples_and_check():
    with fga() as c:
        c.write(
            ClientWriteRequest(
                writes=[
                    ClientTuple("user:anne", "owner", "document:roadmap"),
                    ClientTuple("group:eng#member", "viewer", "document:roadmap"),
                    ClientTuple("user:bob", "member", "group:eng"),
                    ClientTuple("user:*", "viewer", "document:public"),
                ]
            )
        )
        assert c.check(ClientCheckRequest("user:anne", "viewer", "document:roadmap")).allowed is True
        assert c.check(ClientCheckRequest("user:bob", "viewer", "document:roadmap")).allowed is True
        assert c.check(ClientCheckRequest("user:carl", "viewer", "document:roadmap")).allowed is False
        assert c.check(ClientCheckRequest("user:carl", "viewer", "document:public")).allowed is True
        assert c.check(ClientCheckRequest("user:bob", "owner", "document:roadmap")).allowed is False


def test_batch_check():
    with fga() as c:
        r = c.batch_check(
            ClientBatchCheckRequest(
                checks=[
                    ClientBatchCheckItem("user:anne", "owner", "document:roadmap", correlation_id="a"),
                    ClientBatchCheckItem("user:carl", "owner", "document:roadmap", correlation_id="c"),
                ]
            )
        )
        got = {x.correlation_id: x.allowed for x in r.result}
        assert got == {"a": True, "c": False}, r


def test_list_objects_and_users():
    with fga() as c:
        objs = c.list_objects(ClientListObjectsRequest("user:bob", "viewer", "document"))
        assert sorted(objs.objects) == ["document:public", "document:roadmap"], objs
        objs = c.list_objects(ClientListObjectsRequest("user:anne", "viewer", "document"))
        assert sorted(objs.objects) == ["document:public", "document:roadmap"], objs
        users = c.list_users(
            ClientListUsersRequest(
                object=FgaObject(type="document", id="roadmap"),
                relation="viewer",
                user_filters=[UserTypeFilter(type="user")],
            )
        )
        ids = sorted(u.object.id for u in users.users if u.object)
        assert ids == ["anne", "bob"], users


def test_streamed_list_objects():
    with fga() as c:
        got = sorted(
            r.object
            for r in c.streamed_list_objects(ClientListObjectsRequest("user:anne", "viewer", "document"))
        )
        assert got == ["document:public", "document:roadmap"], got


def test_expand():
    with fga() as c:
        tree = c.expand(ClientExpandRequest("owner", "document:roadmap")).tree
        assert tree.root.leaf.users.users == ["user:anne"], tree


def test_read_and_delete():
    with fga() as c:
        r = c.read(ReadRequestTupleKey(object="document:roadmap"))
        keys = sorted((t.key.user, t.key.relation) for t in r.tuples)
        assert keys == [("group:eng#member", "viewer"), ("user:anne", "owner")], keys
        c.write(ClientWriteRequest(deletes=[ClientTuple("user:anne", "owner", "document:roadmap")]))
        assert c.check(ClientCheckRequest("user:anne", "viewer", "document:roadmap")).allowed is False


def test_read_changes():
    with fga() as c:
        r = c.read_changes(ClientReadChangesRequest(type="document"))
        ops = [(ch.operation, ch.tuple_key.user, ch.tuple_key.relation) for ch in r.changes]
        assert ("TUPLE_OPERATION_WRITE", "user:anne", "owner") in ops, ops
        assert ops[-1] == ("TUPLE_OPERATION_DELETE", "user:anne", "owner"), ops
        assert all(ch.tuple_key.relation != "viewer_fgadirect" for ch in r.changes)
        again = c.read_changes(
            ClientReadChangesRequest(type="document"), {"continuation_token": r.continuation_token}
        )
        assert again.changes == [] and again.continuation_token == r.continuation_token, again


def expect_error(fn, status, code):
    try:
        fn()
    except ApiException as e:
        assert e.status == status, (e.status, e.body)
        assert code in str(e), str(e)
        return
    raise AssertionError(f"expected HTTP {status} {code}")


def test_errors():
    with fga() as c:
        expect_error(
            lambda: c.check(ClientCheckRequest("user:anne", "viewer", "folder:x")), 400, "validation_error"
        )
        expect_error(
            lambda: c.list_objects(ClientListObjectsRequest("user:anne", "viewer", "folder")), 400, "type_not_found"
        )
        expect_error(
            lambda: c.write(ClientWriteRequest(writes=[ClientTuple("user:bob", "member", "group:eng")])),
            400,
            "write_failed_due_to_invalid_input",
        )
        expect_error(
            lambda: c.write(ClientWriteRequest(writes=[ClientTuple("group:eng#member", "owner", "document:x")])),
            400,
            "validation_error",
        )
    with client(store_id="01ARZ3NDEKTSV4RRFFQ69G5FAV") as c:
        expect_error(lambda: c.get_store(), 404, "store_id_not_found")


def test_delete_store():
    with client(store_id=state["store"]) as c:
        c.delete_store()
        expect_error(lambda: c.get_store(), 404, "store_id_not_found")


def main():
    tests = [v for k, v in globals().items() if k.startswith("test_")]
    passed = failed = 0
    for t in tests:
        try:
            t()
            passed += 1
            print(f"ok   {t.__name__}")
        except Exception:  # noqa: BLE001 - report every failure
            failed += 1
            print(f"FAIL {t.__name__}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
