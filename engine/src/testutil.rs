//! Helpers shared by the engine's tests.

/// `n` deterministic, incompressible-looking bytes (xorshift64), by seed.
pub(crate) fn data(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The signed release of wire-spec/release.md §6 (seed `07` × 32), which
/// other specs' vectors embed.
pub(crate) fn spec_release() -> crate::release::SignedRelease {
    let k = crate::release::SecretKey::from_seed(&[7; 32]);
    crate::release::Release {
        publisher: k.public(),
        name: "myapp".into(),
        channel: "stable".into(),
        version: semver::Version::new(1, 2, 3),
        seq: 3,
        root: crate::Hash::of(b"root"),
        size: 123_456,
        created: 1_800_000_000,
        expires: Some(1_900_000_000),
        rollout: Default::default(),
    }
    .sign(&k)
    .expect("the spec's release signs")
}
