use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

fn release(k: &SecretKey, seq: u64) -> Release {
    Release {
        publisher: k.public(),
        name: "myapp".into(),
        channel: "stable".into(),
        version: semver::Version::new(1, 2, seq),
        seq,
        root: Hash::of(b"root"),
        size: 123_456,
        created: 1_800_000_000,
        expires: Some(1_900_000_000),
        rollout: Default::default(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn spec_block(name: &str) -> String {
    let spec = include_str!("../../../wire-spec/release.md");
    let open = format!("<!-- {name} -->");
    let body = &spec[spec.find(&open).unwrap() + open.len()..];
    let a = body.find("```").unwrap() + 3;
    let b = a + body[a..].find("```").unwrap();
    body[a..b].split_whitespace().collect()
}

/// The vector of wire-spec/release.md §5.
#[test]
fn spec_vector() {
    let k = key(7);
    let signed = release(&k, 3).sign(&k).unwrap();
    assert_eq!(hex(&signed.to_bytes()), spec_block("release-vector-bytes"));
    assert_eq!(signed.to_token(), spec_block("release-vector-token"));
    assert_eq!(k.public().to_string(), spec_block("release-vector-key"));
    assert_eq!(
        SignedRelease::from_token(&signed.to_token()).unwrap(),
        signed
    );
}

/// The vector of wire-spec/release.md §6.1.
#[test]
fn spec_vector_rollout() {
    use super::rollout::{Step, cohort};
    let k = key(7);
    let mut r = release(&k, 3);
    r.rollout.steps = vec![
        Step {
            after: 0,
            permille: 100,
        },
        Step {
            after: 86_400,
            permille: 1000,
        },
    ];
    r.rollout.critical = true;
    let signed = r.clone().sign(&k).unwrap();
    assert_eq!(hex(&signed.to_bytes()), spec_block("rollout-vector-bytes"));
    assert_eq!(
        cohort(&[0; 32], &r).to_string(),
        spec_block("rollout-vector-cohort")
    );
    assert_eq!(
        SignedRelease::from_bytes(&signed.to_bytes()).unwrap(),
        signed
    );
}

#[test]
fn tokens_round_trip_and_stay_small() {
    let k = key(1);
    let mut r = release(&k, 9);
    r.name = "n".repeat(MAX_NAME);
    r.channel = "c".repeat(MAX_CHANNEL);
    r.version = "1.0.0-alpha.1+build.5".parse().unwrap();
    r.seq = u64::MAX;
    r.size = u64::MAX;
    let s = r.sign(&k).unwrap();
    assert!(s.to_bytes().len() < MAX_BINARY, "{}", s.to_bytes().len());
    assert_eq!(SignedRelease::from_token(&s.to_token()).unwrap(), s);
}

#[test]
fn every_flipped_bit_is_refused() {
    let k = key(2);
    let bytes = release(&k, 1).sign(&k).unwrap().to_bytes();
    for i in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[i / 8] ^= 1 << (i % 8);
        assert!(
            SignedRelease::from_bytes(&b).is_err(),
            "bit {i} flipped was accepted"
        );
    }
    for cut in 0..bytes.len() {
        assert!(
            SignedRelease::from_bytes(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn bad_tokens_get_clear_errors() {
    let k = key(3);
    let t = release(&k, 1).sign(&k).unwrap().to_token();
    assert_eq!(
        SignedRelease::from_token("hello"),
        Err(ReleaseError::NotAToken)
    );
    assert_eq!(
        SignedRelease::from_token(&format!("{t}!")),
        Err(ReleaseError::BadEncoding)
    );
    assert!(matches!(
        SignedRelease::from_token(&"a".repeat(MAX_TOKEN + 1)),
        Err(ReleaseError::TokenTooLong(_))
    ));
    assert!(SignedRelease::from_token(&t[..t.len() - 7]).is_err());
    // A different key's signature over the same record.
    let mut r = release(&k, 1);
    r.publisher = key(4).public();
    assert!(r.sign(&k).is_err(), "signing with another key's identity");
}

#[test]
fn secret_key_text_round_trips() {
    let k = key(5);
    let text = format!("# swarm publisher key\n{}\n", k.to_text());
    assert_eq!(SecretKey::from_text(&text).unwrap().public(), k.public());
    assert!(matches!(
        SecretKey::from_text("nonsense"),
        Err(ReleaseError::BadSecretKey)
    ));
    let pk: PublicKey = k.public().to_string().parse().unwrap();
    assert_eq!(pk, k.public());
    assert!("swpk1abc".parse::<PublicKey>().is_err());
}

type Seen = BTreeMap<(PublicKey, String, String), super::Seen>;

fn policy(k: &SecretKey) -> Policy {
    let mut p = Policy {
        now: 1_850_000_000,
        ..Default::default()
    };
    p.trust(k.public(), "me");
    p
}

#[test]
fn policy_refuses_each_way_a_release_can_be_wrong() {
    let k = key(6);
    let p = policy(&k);
    let good = release(&k, 5).sign(&k).unwrap();
    let none = Seen::new();
    p.check(&good, &Want::default(), &none).unwrap();

    let stranger = key(9);
    let other = release(&stranger, 5).sign(&stranger).unwrap();
    let err = p.check(&other, &Want::default(), &none).unwrap_err();
    assert!(matches!(err, PolicyError::Untrusted { .. }));
    assert!(
        err.to_string()
            .contains("add that key to the trusted publishers"),
        "{err}"
    );

    let mut expired = release(&k, 5);
    expired.expires = Some(1_840_000_000);
    let expired = expired.sign(&k).unwrap();
    assert!(matches!(
        p.check(&expired, &Want::default(), &none),
        Err(PolicyError::Expired { .. })
    ));

    let want_other = Want {
        name: Some("otherapp".into()),
        channel: None,
    };
    assert!(matches!(
        p.check(&good, &want_other, &none),
        Err(PolicyError::WrongName { .. })
    ));
    let want_beta = Want {
        name: None,
        channel: Some("beta".into()),
    };
    assert!(matches!(
        p.check(&good, &want_beta, &none),
        Err(PolicyError::WrongChannel { .. })
    ));

    let mut seen = Seen::new();
    let newer = release(&k, 7).sign(&k).unwrap();
    seen.insert(
        (k.public(), "myapp".into(), "stable".into()),
        super::Seen {
            seq: 7,
            record: newer.record_hash(),
        },
    );
    assert!(matches!(
        p.check(&good, &Want::default(), &seen),
        Err(PolicyError::Rollback {
            got: 5,
            seen: 7,
            ..
        })
    ));
    // The same record again is fine (a re-fetch); another with seq 7 is not.
    p.check(&newer, &Want::default(), &seen).unwrap();
    let mut twin = release(&k, 7);
    twin.root = Hash::of(b"another root");
    let twin = twin.sign(&k).unwrap();
    assert!(matches!(
        p.check(&twin, &Want::default(), &seen),
        Err(PolicyError::Equivocation { seq: 7, .. })
    ));
    // A rollback check is per channel: beta's sequence does not affect stable.
    let mut beta = release(&k, 1);
    beta.channel = "beta".into();
    p.check(&beta.sign(&k).unwrap(), &Want::default(), &seen)
        .unwrap();
}

proptest! {
    #[test]
    fn garbage_tokens_never_panic(s in "swr1[a-z2-7]{0,600}") {
        let _ = SignedRelease::from_token(&s);
    }

    #[test]
    fn garbage_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = SignedRelease::from_bytes(&b);
    }
}

#[test]
fn upper_case_tokens_and_keys_are_accepted_and_secrets_never_echoed() {
    let k = key(8);
    let s = release(&k, 1).sign(&k).unwrap();
    assert_eq!(
        SignedRelease::from_token(&s.to_token().to_uppercase()).unwrap(),
        s
    );
    assert!(is_token(&s.to_token().to_uppercase()));
    assert!(!is_token(&Hash::of(b"x").to_hex()));
    let upper: PublicKey = k.public().to_string().to_uppercase().parse().unwrap();
    assert_eq!(upper, k.public());
    let err = k.to_text().parse::<PublicKey>().unwrap_err();
    assert_eq!(err, ReleaseError::SecretGivenAsPublic);
    assert!(!err.to_string().contains(&k.to_text()[5..15]));
}

/// The threshold vectors of wire-spec/release.md §10: a first root of
/// 2 of 3 keys, and a release under it signed by two of them.
fn threshold_vector() -> (SignedRoot, SignedRelease) {
    let [a, b, c] = [key(1), key(2), key(3)];
    let pointer = key(9);
    let mut root = Root::new(
        pointer.public(),
        vec![a.public(), b.public(), c.public()],
        2,
    )
    .unwrap()
    .unsigned()
    .unwrap();
    root.sign(&a, None).unwrap();
    root.sign(&b, None).unwrap();
    let chain = Chain::start(root.clone()).unwrap();
    let mut r = release(&pointer, 3);
    r.publisher = pointer.public();
    let mut signed = r.sign_threshold(&a, &chain).unwrap();
    signed.cosign(&c, chain.newest()).unwrap();
    (root, signed)
}

#[test]
fn spec_vector_threshold() {
    let (root, signed) = threshold_vector();
    if std::env::var_os("SWARM_PRINT_VECTORS").is_some() {
        println!("root-bytes {}", hex(&root.to_bytes()));
        println!("root-token {}", root.to_token());
        println!("root-fingerprint {}", root.fingerprint_text());
        println!("release-bytes {}", hex(&signed.to_pointer_bytes()));
        println!("release-token {}", signed.to_token());
        println!(
            "keys {} {} {} {}",
            key(1).public(),
            key(2).public(),
            key(3).public(),
            key(9).public()
        );
    }
    assert_eq!(hex(&root.to_bytes()), spec_block("root-vector-bytes"));
    assert_eq!(root.to_token(), spec_block("root-vector-token"));
    assert_eq!(
        root.fingerprint_text(),
        spec_block("root-vector-fingerprint")
    );
    assert_eq!(
        hex(&signed.to_pointer_bytes()),
        spec_block("threshold-vector-bytes")
    );
    assert_eq!(signed.to_token(), spec_block("threshold-vector-token"));
    let back = SignedRelease::from_token(&signed.to_token()).unwrap();
    assert_eq!(back, signed);
    assert_eq!(back.chain(), std::slice::from_ref(&root));
    let chain = Chain::start(root).unwrap();
    assert_eq!(back.signers(chain.newest()).unwrap().len(), 2);
}
