//! Caveat context JSON from clients (check/lookup requests and relationship
//! writes): any JSON object, against caveats with every parameter type, must
//! give an answer or a typed error — never a panic, and never an answer
//! that ignores a context the write path refused.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use verdict::engine::{CheckRequest, Engine, EngineConfig};
use verdict::schema::{compile, SchemaLimits};
use verdict_storage::{
    MemStore, ObjectRef, RelationStore, Revision, SubjectRef, Tenant, Tuple, TupleCaveat,
    WriteBatch,
};

const SCHEMA: &str = r#"
caveat every_type(num int, big uint, ratio double, flag bool, label string, raw bytes,
                  stamp timestamp, span duration, addr ipaddress, tags list<string>,
                  attrs map<int>, anything any) {
    (num > 3 && big < 10u && ratio < 0.5 && flag) || label.startsWith("a") ||
    size(raw) > 2 || stamp > timestamp("2020-01-01T00:00:00Z") || span > duration("1h") ||
    addr.in_cidr("10.0.0.0/8") || "x" in tags || attrs["k"] == 1 || anything == 7
}

definition user {}

definition doc {
    relation viewer: user with every_type
    permission view = viewer
}
"#;

fn engine_and_store() -> &'static (Engine, MemStore) {
    static STATE: OnceLock<(Engine, MemStore)> = OnceLock::new();
    STATE.get_or_init(|| {
        let compiled = compile(SCHEMA, &SchemaLimits::default()).expect("fuzz schema compiles");
        let engine = Engine::new(Arc::new(compiled.schema), EngineConfig::default())
            .expect("fuzz schema's caveat compiles");
        let store = MemStore::new();
        let mut tuple = Tuple::parse("doc:1#viewer@user:alice").expect("tuple");
        tuple.caveat = Some(TupleCaveat {
            name: "every_type".into(),
            context: Map::new(),
        });
        store
            .apply(&Tenant::default_tenant(), Revision(1), &WriteBatch::new().touch(tuple))
            .expect("seed tuple applies");
        (engine, store)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Object(context)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (engine, store) = engine_and_store();
    // The write path's check: must not panic on any object.
    let _ = engine.check_caveat_context("every_type", &context);
    let snapshot = store
        .snapshot(&Tenant::default_tenant(), Revision(1))
        .expect("snapshot");
    let mut request = CheckRequest::new(
        ObjectRef::new("doc", "1"),
        "view",
        SubjectRef::direct("user", "alice"),
    );
    request.context = context;
    let _ = engine.check(&snapshot, &request);
    let _ = engine.lookup_resources(
        &snapshot,
        "doc",
        "view",
        &SubjectRef::direct("user", "alice"),
        &request.context,
        request.now,
        None,
        100,
    );
});
