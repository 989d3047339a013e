//! Any bytes through the relationship text parser (`doc:1#viewer@user:a`,
//! with caveats and expirations): nothing may panic, a parsed tuple must
//! pass validation, and its printed form must parse back to the same tuple.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verdict_storage::Tuple;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(tuple) = Tuple::parse(text) else {
        return;
    };
    tuple.validate().expect("a parsed tuple must validate");
    let printed = tuple.to_string();
    let again = Tuple::parse(&printed).expect("a printed tuple must parse");
    assert_eq!(again, tuple, "print/parse round trip changed the tuple ({printed})");
});
