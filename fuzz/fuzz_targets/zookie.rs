//! Consistency tokens from clients: any text, and any bytes wrapped in
//! base64url (so the fuzzer reaches past the base64 layer), must decode to an
//! error or to a revision that re-encodes to the same token.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use verdict::zookie::ZookieCodec;

fuzz_target!(|data: &[u8]| {
    let codec = ZookieCodec::new(0x5eed_cafe);
    let mut tokens = vec![base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)];
    if let Ok(text) = std::str::from_utf8(data) {
        tokens.push(text.to_string());
    }
    for token in tokens {
        if let Ok(revision) = codec.decode(&token) {
            let again = codec.encode(revision);
            assert_eq!(codec.decode(&again), Ok(revision));
            // Another cluster must never accept it.
            assert!(ZookieCodec::new(1).decode(&token).is_err());
        }
    }
});
