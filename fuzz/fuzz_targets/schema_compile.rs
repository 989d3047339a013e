//! Any bytes through the schema parser, compiler and formatter: nothing may
//! panic, and formatting a schema that parses must parse again to the same
//! canonical text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verdict::schema::{self, SchemaLimits};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = SchemaLimits::default();
    let _ = schema::compile(text, &limits);
    if let Ok(formatted) = schema::format(text, &limits) {
        let again = schema::format(&formatted, &limits).expect("formatted schema must parse");
        assert_eq!(again, formatted, "formatting is not idempotent");
    }
});
