//! Arbitrary bytes into `Manifest::decode`. Decoding must never panic, and the
//! encoding is canonical: anything that decodes re-encodes to exactly the
//! input bytes (otherwise two byte strings would name one manifest under two
//! different roots).

#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_engine::content::Manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Manifest::decode(data) else {
        return;
    };
    let bytes = m.encode();
    assert_eq!(Manifest::decode(&bytes), Ok(m.clone()), "re-decode differs");
    assert_eq!(
        bytes, data,
        "decoded manifest re-encodes to different bytes"
    );
});
