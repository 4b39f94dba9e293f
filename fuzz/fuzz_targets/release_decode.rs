//! Arbitrary bytes into the signed-release and root decoders (tokens and
//! chain files come from users, pointers and roots from the DHT). Decoding
//! must never panic. Whatever decodes is canonical: it re-encodes to
//! exactly the input, so one release has one token. A format 1 release
//! that decodes carries a valid signature; a format 2 one is checked by the
//! policy against its root, which must not panic either.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use swarm_engine::release::{ChainFile, Policy, SignedRelease, SignedRoot, Want};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = SignedRelease::from_bytes(data) {
        assert_eq!(r.to_bytes(), data, "a decoded release re-encodes differently");
        assert_eq!(SignedRelease::from_token(&r.to_token()).ok(), Some(r.clone()));
        // Trusted, so the chain and signature checks run.
        let mut p = Policy::default();
        p.trust(r.release().publisher, "fuzz");
        let _ = p.check_trust(&r, &Want::default(), &BTreeMap::new());
    }
    if let Ok(root) = SignedRoot::from_bytes(data) {
        assert_eq!(root.to_bytes(), data, "a decoded root re-encodes differently");
        let _ = root.verify(None);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = SignedRelease::from_token(s);
        let _ = ChainFile::parse(s);
    }
});
