//! Arbitrary bytes into the signed-release decoder (tokens come from users
//! and, later, from the DHT). Decoding must never panic; whatever decodes
//! carries a valid signature and is canonical: it re-encodes to exactly the
//! input, so one release has one token.

#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_engine::release::SignedRelease;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = SignedRelease::from_bytes(data) {
        assert_eq!(r.to_bytes(), data, "a decoded release re-encodes differently");
        assert_eq!(SignedRelease::from_token(&r.to_token()).ok(), Some(r));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = SignedRelease::from_token(s);
    }
});
