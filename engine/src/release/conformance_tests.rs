//! Roots of trust and threshold releases, table-driven after the
//! tuf-conformance classes (wire-spec/release.md §9 maps each class).

use std::collections::BTreeMap;

use super::*;
use crate::content::Hash;

const NOW: u64 = 1_800_000_100;

fn keys() -> Vec<SecretKey> {
    (1..=12u8).map(|s| SecretKey::from_seed(&[s; 32])).collect()
}

fn pointer() -> SecretKey {
    SecretKey::from_seed(&[99; 32])
}

fn pubs(k: &[SecretKey], idx: &[usize]) -> Vec<PublicKey> {
    idx.iter().map(|&i| k[i].public()).collect()
}

/// Version `prev + 1` (or 1) of `keys` with `threshold`, signed by `by`.
fn root(
    k: &[SecretKey],
    prev: Option<&Root>,
    idx: &[usize],
    threshold: u8,
    by: &[usize],
) -> SignedRoot {
    let r = match prev {
        None => Root::new(pointer().public(), pubs(k, idx), threshold),
        Some(p) => p.next(pubs(k, idx), threshold),
    }
    .expect("valid root");
    let mut s = r.unsigned().expect("unsigned");
    for &i in by {
        s.sign(&k[i], prev).expect("a key of either set");
    }
    s
}

fn release(seq: u64) -> Release {
    Release {
        publisher: pointer().public(),
        name: "app".into(),
        channel: "stable".into(),
        version: semver::Version::new(1, seq, 0),
        seq,
        root: Hash::of(&seq.to_le_bytes()),
        size: 1234,
        created: 1_800_000_000,
        expires: None,
        rollout: Default::default(),
    }
}

/// A release under `chain`'s newest root signed by `by`.
fn signed(k: &[SecretKey], chain: &Chain, by: &[usize], seq: u64) -> SignedRelease {
    let mut s = release(seq)
        .sign_threshold(&k[by[0]], chain)
        .expect("first signer");
    for &i in &by[1..] {
        s.cosign(&k[i], chain.newest()).expect("cosigner");
    }
    s
}

/// A fetcher that trusts `first` (and knows nothing later).
fn fetcher(first: &SignedRoot) -> Policy {
    let mut p = Policy {
        now: NOW,
        ..Policy::default()
    };
    p.trust(pointer().public(), "pinned");
    p.roots.insert(
        pointer().public(),
        Chain::start(first.clone()).expect("first root"),
    );
    p
}

fn no_seen() -> BTreeMap<(PublicKey, String, String), Seen> {
    BTreeMap::new()
}

fn check(p: &Policy, s: &SignedRelease) -> Result<Option<Chain>, PolicyError> {
    // Through the token, as a fetcher meets it.
    let s = SignedRelease::from_token(&s.to_token()).expect("token decodes");
    p.check_trust(&s, &Want::default(), &no_seen())
}

#[test]
fn thresholds_met_and_not_met() {
    let k = keys();
    // (keys, threshold, release signers, accepted)
    let table: &[(&[usize], u8, &[usize], bool)] = &[
        (&[0], 1, &[0], true),
        (&[0, 1, 2], 2, &[0, 1], true),
        (&[0, 1, 2], 2, &[2], false),
        (&[0, 1, 2, 3, 4], 3, &[0, 2, 4], true),
        (&[0, 1, 2, 3, 4], 3, &[3, 4], false),
        (&[0, 1, 2, 3, 4], 5, &[0, 1, 2, 3, 4], true),
        (&[0, 1, 2, 3, 4], 5, &[0, 1, 2, 3], false),
        (
            &[0, 1, 2, 3, 4, 5, 6, 7],
            8,
            &[0, 1, 2, 3, 4, 5, 6, 7],
            true,
        ),
    ];
    for &(idx, t, by, ok) in table {
        let v1 = root(&k, None, idx, t, &idx[..usize::from(t)]);
        let chain = Chain::start(v1.clone()).expect("v1");
        let s = signed(&k, &chain, by, 1);
        let got = check(&fetcher(&v1), &s);
        if ok {
            assert_eq!(got, Ok(None), "{t} of {idx:?} signed by {by:?}");
        } else {
            let Err(PolicyError::Threshold {
                have,
                need,
                missing,
                ..
            }) = &got
            else {
                panic!("{t} of {idx:?} signed by {by:?}: {got:?}");
            };
            assert_eq!((*have, *need), (by.len(), t));
            assert_eq!(missing.len(), idx.len() - by.len());
            let msg = got.unwrap_err().to_string();
            assert!(msg.contains("swarm sign"), "{msg}");
        }
    }
}

#[test]
fn a_root_whose_own_threshold_is_not_met_is_refused() {
    let k = keys();
    let r = Root::new(pointer().public(), pubs(&k, &[0, 1, 2]), 2).unwrap();
    let mut one = r.unsigned().unwrap();
    one.sign(&k[0], None).unwrap();
    assert!(matches!(
        Chain::start(one),
        Err(RootError::Threshold {
            have: 1,
            need: 2,
            which: "its own",
            ..
        })
    ));
}

#[test]
fn duplicate_keys_and_signatures_count_once_or_are_refused() {
    let k = keys();
    // A key listed twice.
    assert_eq!(
        Root::new(pointer().public(), pubs(&k, &[0, 0, 1]), 2),
        Err(RootError::DuplicateKey(k[0].public()))
    );
    // Listed twice in the bytes: the decoder refuses it as well.
    let good = root(&k, None, &[0, 1], 1, &[0]);
    let mut bytes = good.to_bytes();
    let first = 1 + 32 + 1 + 1 + 1 + 1; // format, pointer, version, expires, threshold, count
    let (a, b) = (first, first + 33);
    let copy = bytes[a..a + 33].to_vec();
    bytes[b..b + 33].copy_from_slice(&copy);
    assert!(matches!(
        SignedRoot::from_bytes(&bytes),
        Err(RootError::DuplicateKey(_))
    ));
    // One key signing twice cannot make 2 of 3: the same signature twice
    // does not even decode.
    let v1 = root(&k, None, &[0, 1, 2], 2, &[0, 1]);
    let chain = Chain::start(v1.clone()).unwrap();
    let once = signed(&k, &chain, &[0], 1);
    let mut bytes = once.to_pointer_bytes();
    let sig = bytes[bytes.len() - 65..].to_vec();
    let at = bytes.len() - 66;
    bytes[at] = 2; // two signatures
    bytes.extend_from_slice(&sig);
    assert!(matches!(
        SignedRelease::from_bytes(&bytes),
        Err(ReleaseError::BadField {
            field: "signatures",
            ..
        })
    ));
    assert!(matches!(
        once.clone().cosign(&k[0], chain.newest()),
        Err(ReleaseError::BadField { field: "key", .. })
    ));
    // A root signature by one key twice is refused too.
    let mut rb = v1.to_bytes();
    let n = rb.len();
    rb[n - 65] = rb[n - 130]; // the second signature's index := the first's
    assert!(matches!(
        SignedRoot::from_bytes(&rb),
        Err(RootError::DuplicateSignature { .. })
    ));
    // And a key cannot sign a root twice.
    let mut again = v1.clone();
    assert!(matches!(
        again.sign(&k[0], None),
        Err(RootError::AlreadySigned { .. })
    ));
}

#[test]
fn wrong_key_types_and_bad_thresholds_are_refused() {
    let k = keys();
    let good = root(&k, None, &[0, 1], 1, &[0]);
    let mut bytes = good.to_bytes();
    bytes[1 + 32 + 1 + 1 + 1 + 1] = 2; // the first key's type
    assert_eq!(SignedRoot::from_bytes(&bytes), Err(RootError::KeyType(2)));
    for t in [0u8, 3] {
        assert_eq!(
            Root::new(pointer().public(), pubs(&k, &[0, 1]), t),
            Err(RootError::BadThreshold {
                threshold: t,
                keys: 2
            })
        );
        let mut bytes = good.to_bytes();
        bytes[1 + 32 + 1 + 1] = t;
        assert!(matches!(
            SignedRoot::from_bytes(&bytes),
            Err(RootError::BadThreshold { .. })
        ));
    }
    assert_eq!(
        Root::new(pointer().public(), vec![], 1),
        Err(RootError::NoKeys)
    );
    let many: Vec<PublicKey> = (0..17u8)
        .map(|s| SecretKey::from_seed(&[s + 100; 32]).public())
        .collect();
    assert_eq!(
        Root::new(pointer().public(), many, 1),
        Err(RootError::TooManyKeys(17))
    );
    // A secret key where a public one belongs, and the other way round.
    assert_eq!(
        k[0].to_text().parse::<PublicKey>(),
        Err(ReleaseError::SecretGivenAsPublic)
    );
    assert!(matches!(
        SecretKey::from_text(&k[0].public().to_string()),
        Err(ReleaseError::BadSecretKey)
    ));
}

#[test]
fn rotations_through_intermediate_steps_are_followed_from_the_first_root() {
    let k = keys();
    // 3 of 5, then all five keys rotated out in two steps.
    let v1 = root(&k, None, &[0, 1, 2, 3, 4], 3, &[0, 1, 2]);
    let c1 = Chain::start(v1.clone()).unwrap();
    let v2 = root(
        &k,
        Some(c1.newest()),
        &[0, 1, 5, 6, 7],
        3,
        &[0, 1, 2, 5, 6, 7],
    );
    let mut c2 = c1.clone();
    c2.extend(std::slice::from_ref(&v2)).expect("v2");
    let v3 = root(
        &k,
        Some(c2.newest()),
        &[5, 6, 7, 8, 9],
        3,
        &[0, 1, 5, 6, 7, 8],
    );
    let mut c3 = c2.clone();
    c3.extend(std::slice::from_ref(&v3)).expect("v3");
    assert!(
        c3.newest()
            .keys
            .iter()
            .all(|x| !pubs(&k, &[0, 1, 2, 3, 4]).contains(x))
    );
    // A fetcher that pinned v1 follows both steps from the token alone.
    let s = signed(&k, &c3, &[7, 8, 9], 1);
    let learned = check(&fetcher(&v1), &s)
        .expect("accepted")
        .expect("learned");
    assert_eq!(learned.newest().version, 3);
    // The old keys can no longer sign: under v3 they have no index ...
    assert!(matches!(
        s.clone().cosign(&k[2], c3.newest()),
        Err(ReleaseError::BadField { field: "key", .. })
    ));
    // ... and under v1, once v3 is known, the release is superseded.
    let old = signed(&k, &c1, &[2, 3, 4], 2);
    let mut knows = fetcher(&v1);
    knows.roots.insert(pointer().public(), c3.clone());
    assert!(matches!(
        check(&knows, &old),
        Err(PolicyError::Superseded {
            signed_under: 1,
            current: 3,
            ..
        })
    ));
}

#[test]
fn a_rotation_not_signed_by_both_thresholds_is_refused() {
    let k = keys();
    let v1 = root(&k, None, &[0, 1, 2, 3, 4], 3, &[0, 1, 2]);
    let c1 = Chain::start(v1.clone()).unwrap();
    /// (new keys, new threshold, signers, which threshold fails)
    type Case<'a> = (&'a [usize], u8, &'a [usize], Option<&'a str>);
    let table: &[Case] = &[
        (&[5, 6, 7], 2, &[0, 1, 2, 5, 6], None),
        // Two of the old keys: not 3 of them.
        (&[5, 6, 7], 2, &[0, 1, 5, 6, 7], Some("previous root's")),
        // Only new keys: an attacker's own keys cannot rotate.
        (&[5, 6, 7], 3, &[5, 6, 7], Some("previous root's")),
        // Old keys only: the new keys have not accepted.
        (&[5, 6, 7], 2, &[0, 1, 2, 5], Some("its own")),
        // A key in both sets counts for both.
        (&[0, 1, 2], 3, &[0, 1, 2], None),
    ];
    for &(idx, t, by, fails) in table {
        let v2 = root(&k, Some(c1.newest()), idx, t, by);
        let mut c = c1.clone();
        let got = c.extend(std::slice::from_ref(&v2));
        match fails {
            None => assert_eq!(got, Ok(1), "{idx:?} by {by:?}"),
            Some(which) => {
                assert!(
                    matches!(&got, Err(RootError::Threshold { which: w, .. }) if *w == which),
                    "{idx:?} by {by:?}: {got:?}"
                );
                // Carried in a release, it is refused and nothing learned.
                let mut forged = c1.clone();
                forged.push_unverified(v2.clone());
                let s = signed(&k, &forged, &idx[..usize::from(t)], 1);
                assert!(
                    matches!(check(&fetcher(&v1), &s), Err(PolicyError::Chain { .. })),
                    "{idx:?} by {by:?}"
                );
            }
        }
    }
}

#[test]
fn root_rollback_forks_gaps_loops_and_expiry() {
    let k = keys();
    let v1 = root(&k, None, &[0, 1, 2], 2, &[0, 1]);
    let c1 = Chain::start(v1.clone()).unwrap();
    let v2 = root(&k, Some(c1.newest()), &[0, 1, 3], 2, &[0, 1]);
    let mut c2 = c1.clone();
    c2.extend(std::slice::from_ref(&v2)).unwrap();
    let v3 = root(&k, Some(c2.newest()), &[0, 1, 4], 2, &[0, 1]);
    // A gap, a loop, a repeat.
    let mut c = c1.clone();
    assert_eq!(
        c.extend(std::slice::from_ref(&v3)),
        Err(RootError::Gap { have: 1, got: 3 })
    );
    assert_eq!(
        c.extend(&[v2.clone(), v1.clone()]),
        Err(RootError::Order { after: 2, got: 1 })
    );
    assert_eq!(
        c.extend(&[v2.clone(), v2.clone()]),
        Err(RootError::Order { after: 2, got: 2 })
    );
    assert_eq!(c, c1, "nothing added on error");
    // A second, different version 2: a fork.
    let other = root(&k, Some(c1.newest()), &[0, 1, 5], 2, &[0, 1]);
    let mut c = c2.clone();
    assert_eq!(
        c.extend(std::slice::from_ref(&other)),
        Err(RootError::Fork(2))
    );
    // Known roots given again are skipped.
    assert_eq!(c.extend(&[v1.clone(), v2.clone()]), Ok(0));
    // Rollback: a fetcher that knows v2 meets a release under v1.
    let mut knows = fetcher(&v1);
    knows.roots.insert(pointer().public(), c2.clone());
    let old = signed(&k, &c1, &[0, 1], 1);
    assert!(matches!(
        check(&knows, &old),
        Err(PolicyError::Superseded { .. })
    ));
    // A release under a root newer than known, carrying no chain.
    let mut c3 = c2.clone();
    c3.extend(&[v3]).unwrap();
    let bare = SignedRelease::from_bytes(&signed(&k, &c3, &[0, 1], 1).to_pointer_bytes()).unwrap();
    assert!(matches!(
        knows.check_trust(&bare, &Want::default(), &no_seen()),
        Err(PolicyError::ChainMissing {
            signed_under: 3,
            known: 2,
            ..
        })
    ));
    // Expired: the newest root must be current; an old one need not be.
    let mut r2 = c1.newest().next(pubs(&k, &[0, 1, 3]), 2).unwrap();
    r2.expires = Some(NOW - 1);
    let mut e2 = r2.unsigned().unwrap();
    e2.sign(&k[0], Some(c1.newest())).unwrap();
    e2.sign(&k[1], Some(c1.newest())).unwrap();
    let mut ce = c1.clone();
    ce.extend(&[e2]).unwrap();
    let s = signed(&k, &ce, &[0, 1], 1);
    assert!(matches!(
        check(&fetcher(&v1), &s),
        Err(PolicyError::RootExpired {
            version: 2,
            ago: 1,
            ..
        })
    ));
    let v3 = root(&k, Some(ce.newest()), &[0, 1, 3], 2, &[0, 1]);
    ce.extend(&[v3]).unwrap();
    let s = signed(&k, &ce, &[0, 1], 1);
    assert!(
        check(&fetcher(&v1), &s).is_ok(),
        "an expired middle root is a valid step"
    );
}

#[test]
fn rotated_out_keys_mixed_publishers_and_frozen_releases_are_refused() {
    let k = keys();
    let v1 = root(&k, None, &[0, 1, 2], 2, &[0, 1]);
    let c1 = Chain::start(v1.clone()).unwrap();
    // Key 2 rotated out for key 3.
    let v2 = root(&k, Some(c1.newest()), &[0, 1, 3], 2, &[0, 1]);
    let mut c2 = c1.clone();
    c2.extend(&[v2]).unwrap();
    let fetch = fetcher(&v1);
    // The fetcher accepts a release under v2 and learns v2.
    let good = signed(&k, &c2, &[1, 3], 1);
    let learned = check(&fetch, &good).unwrap().expect("learned v2");
    // Key 2, rotated out, with key 0 under the old root: superseded.
    let mut knows = fetch.clone();
    knows.roots.insert(pointer().public(), learned);
    let by_old = signed(&k, &c1, &[0, 2], 2);
    assert!(matches!(
        check(&knows, &by_old),
        Err(PolicyError::Superseded { .. })
    ));
    // Key 2's signature grafted onto a v2 release (by index of key 3's
    // place): it does not verify.
    let alone = signed(&k, &c1, &[2], 3);
    let mut bytes = good.to_pointer_bytes();
    let graft = alone.to_pointer_bytes();
    let n = bytes.len();
    bytes[n - 64..].copy_from_slice(&graft[graft.len() - 64..]);
    let forged = SignedRelease::from_bytes(&bytes).unwrap().with_chain(&c2);
    assert!(matches!(
        knows.check_trust(&forged, &Want::default(), &no_seen()),
        Err(PolicyError::BadSignature { .. })
    ));
    // Mix and match: another publisher's chain under this pointer.
    let other_pointer = SecretKey::from_seed(&[77; 32]);
    let mut r = release(4);
    r.publisher = other_pointer.public();
    assert!(matches!(
        r.clone().sign_threshold(&k[0], &c2),
        Err(ReleaseError::BadField {
            field: "publisher",
            ..
        })
    ));
    // A single-key release by the pointer key, after the move to a root.
    let single = release(5).sign(&pointer()).unwrap();
    assert!(matches!(
        check(&knows, &single),
        Err(PolicyError::SingleKey {
            version: 2,
            threshold: 2,
            keys: 3,
            ..
        })
    ));
    // Freeze: an expired release under a current root.
    let mut frozen = release(6);
    frozen.expires = Some(NOW - 10);
    let mut s = frozen.sign_threshold(&k[0], &c2).unwrap();
    s.cosign(&k[1], c2.newest()).unwrap();
    assert!(matches!(
        check(&knows, &s),
        Err(PolicyError::Expired { ago: 10, .. })
    ));
}

#[test]
fn endless_data_is_capped() {
    let k = keys();
    // A chain of more than MAX_CHAIN roots.
    let v1 = root(&k, None, &[0], 1, &[0]);
    let mut c = Chain::start(v1).unwrap();
    let mut more = Vec::new();
    let mut prev = c.newest().clone();
    for _ in 0..MAX_CHAIN {
        let r = root(&k, Some(&prev), &[0], 1, &[0]);
        prev = r.root().clone();
        more.push(r);
    }
    assert_eq!(c.extend(&more), Ok(MAX_CHAIN));
    let r = root(&k, Some(&prev), &[0], 1, &[0]);
    assert_eq!(c.extend(&[r]), Err(RootError::TooLong));
    // A whole chain of the largest length, given again, is fine: its
    // roots are known.
    let whole: Vec<SignedRoot> = c.roots().cloned().collect();
    assert_eq!(whole.len(), MAX_CHAIN + 1);
    assert_eq!(c.extend(&whole), Ok(0));
    let mut too_many = whole.clone();
    too_many.push(whole[0].clone());
    assert_eq!(c.extend(&too_many), Err(RootError::TooLong));
    // Oversized inputs are refused before they are parsed.
    assert_eq!(
        SignedRoot::from_bytes(&vec![1; MAX_ROOT_BYTES + 1]),
        Err(RootError::TooLarge)
    );
    assert!(matches!(
        SignedRelease::from_bytes(&[&[FORMAT_THRESHOLD][..], &vec![0; MAX_BUNDLE]].concat()),
        Err(ReleaseError::TokenTooLong(_))
    ));
    let long = format!(
        "{TOKEN_PREFIX_THRESHOLD}{}",
        "a".repeat(MAX_TOKEN_THRESHOLD)
    );
    assert!(matches!(
        SignedRelease::from_token(&long),
        Err(ReleaseError::ThresholdTokenTooLong(_))
    ));
    // More signatures than a root has keys.
    let v1 = root(&k, None, &[0], 1, &[0]);
    let c = Chain::start(v1).unwrap();
    let mut bytes = signed(&k, &c, &[0], 1).to_pointer_bytes();
    let at = bytes.len() - 66;
    bytes.truncate(at);
    bytes.push(17);
    for i in 0..17u8 {
        bytes.push(i);
        bytes.extend_from_slice(&[0; 64]);
    }
    assert!(matches!(
        SignedRelease::from_bytes(&bytes),
        Err(ReleaseError::BadField {
            field: "signatures",
            ..
        })
    ));
}

#[test]
fn unknown_signers_are_named() {
    let k = keys();
    let v1 = root(&k, None, &[0, 1], 1, &[0]);
    let c = Chain::start(v1.clone()).unwrap();
    // A release signature by index 5 of a 2-key root.
    let mut bytes = signed(&k, &c, &[0], 1).to_pointer_bytes();
    let at = bytes.len() - 65;
    bytes[at] = 5;
    let s = SignedRelease::from_bytes(&bytes).unwrap();
    let err = fetcher(&v1)
        .check_trust(&s, &Want::default(), &no_seen())
        .unwrap_err();
    assert!(matches!(err, PolicyError::BadSignature { .. }), "{err}");
    assert!(err.to_string().contains("index 5"), "{err}");
    // A root signature by index 3 of a first root of 2 keys.
    let mut rb = v1.to_bytes();
    let at = rb.len() - 65;
    rb[at] = 3;
    let r = SignedRoot::from_bytes(&rb).unwrap();
    assert_eq!(
        Chain::start(r),
        Err(RootError::UnknownSigner {
            version: 1,
            index: 3
        })
    );
    // A key that is in neither set cannot sign.
    let mut u = Root::new(pointer().public(), pubs(&k, &[0]), 1)
        .unwrap()
        .unsigned()
        .unwrap();
    assert!(matches!(
        u.sign(&k[4], None),
        Err(RootError::NotASigner { .. })
    ));
}

#[test]
fn a_v1_key_is_a_root_of_one_key_and_can_rotate_to_a_threshold() {
    let k = keys();
    let old = pointer();
    // A format 1 release by a trusted key still passes, as before.
    let mut p = Policy {
        now: NOW,
        ..Policy::default()
    };
    p.trust(old.public(), "v1 key");
    let v1 = release(1).sign(&old).unwrap();
    assert_eq!(check(&p, &v1), Ok(None));
    // The key moves to 2 of 3: version 2 of its implicit root, signed by
    // the old key and two of the new.
    let base = Chain::from_key(old.public());
    let next = base.newest().next(pubs(&k, &[0, 1, 2]), 2).unwrap();
    let mut v2 = next.unsigned().unwrap();
    v2.sign(&old, Some(base.newest())).unwrap();
    v2.sign(&k[0], Some(base.newest())).unwrap();
    v2.sign(&k[1], Some(base.newest())).unwrap();
    let mut chain = base.clone();
    chain.extend(&[v2]).unwrap();
    let s = signed(&k, &chain, &[0, 2], 2);
    let learned = check(&p, &s).expect("accepted").expect("learned");
    assert_eq!(learned.newest().threshold, 2);
    // The chain text starts with the key, and reads back the same.
    let text = learned.to_text();
    assert!(text.starts_with(PUBLIC_PREFIX), "{text}");
    assert_eq!(Chain::from_text(&text), Ok(learned.clone()));
    // From then on the old key alone is refused.
    p.roots.insert(old.public(), learned);
    assert!(matches!(
        check(&p, &release(3).sign(&old).unwrap()),
        Err(PolicyError::SingleKey { .. })
    ));
}

#[test]
fn a_pinned_fingerprint_trusts_the_chain_that_starts_there() {
    let k = keys();
    let v1 = root(&k, None, &[0, 1, 2], 2, &[0, 1]);
    let c1 = Chain::start(v1.clone()).unwrap();
    let s = signed(&k, &c1, &[0, 1], 1);
    let mut p = Policy {
        now: NOW,
        ..Policy::default()
    };
    assert!(matches!(check(&p, &s), Err(PolicyError::Untrusted { .. })));
    let text = v1.fingerprint_text();
    assert!(text.starts_with(FINGERPRINT_PREFIX));
    let f = parse_fingerprint(&text)
        .expect("a fingerprint")
        .expect("valid");
    p.pins.insert(f, "pinned by fingerprint".into());
    let learned = check(&p, &s).unwrap().expect("learned the chain");
    assert_eq!(learned.anchor(), Some(v1.fingerprint()));
    // The fingerprint does not change as signatures are added.
    let mut more = v1.clone();
    more.sign(&k[2], None).unwrap();
    assert_eq!(more.fingerprint(), v1.fingerprint());
}

#[test]
fn nothing_is_recorded_for_a_refused_release() {
    let k = keys();
    let store = crate::store::Store::memory().unwrap();
    let v1 = root(&k, None, &[0, 1, 2], 2, &[0, 1]);
    let c1 = Chain::start(v1.clone()).unwrap();
    store.trust_chain(&c1, "2 of 3").unwrap();
    let v2 = root(&k, Some(c1.newest()), &[0, 1, 3], 2, &[0, 1]);
    let mut c2 = c1.clone();
    c2.extend(&[v2]).unwrap();
    let policy = store
        .policy(Policy {
            now: NOW,
            ..Policy::default()
        })
        .unwrap();
    // 1 of 2 under v2: refused; v2 is not learned, nothing seen.
    let short = signed(&k, &c2, &[3], 1);
    assert!(
        store
            .accept_release(&policy, &short, &Want::default())
            .is_err()
    );
    assert_eq!(
        store
            .release_seen(&pointer().public(), "app", "stable")
            .unwrap(),
        None
    );
    assert_eq!(store.roots().unwrap()[0].1.newest().version, 1);
    // 2 of 2: accepted, v2 kept for the next run.
    let good = signed(&k, &c2, &[1, 3], 1);
    store
        .accept_release(&policy, &good, &Want::default())
        .unwrap();
    assert_eq!(store.roots().unwrap()[0].1.newest().version, 2);
    let policy = store.policy(Policy::default()).unwrap();
    let old = signed(&k, &c1, &[0, 2], 2);
    assert!(matches!(
        store.accept_release(&policy, &old, &Want::default()),
        Err(crate::store::AcceptError::Policy(
            PolicyError::Superseded { .. }
        ))
    ));
}

#[test]
fn verifying_a_3_of_5_release_with_a_10_step_chain() {
    // The figure is measured in benches (bench-release); this checks the
    // same shape verifies.
    let k = keys();
    let v1 = root(&k, None, &[0, 1, 2, 3, 4], 3, &[0, 1, 2]);
    let mut c = Chain::start(v1.clone()).unwrap();
    for step in 0..10 {
        let idx: Vec<usize> = (0..5).map(|i| (i + step + 1) % 12).collect();
        let prev = c.newest().clone();
        let prev_signers: Vec<usize> = (0..12)
            .filter(|i| prev.keys.contains(&k[*i].public()))
            .take(3)
            .collect();
        let mut by: Vec<usize> = prev_signers.clone();
        by.extend(
            idx.iter()
                .copied()
                .filter(|i| !prev_signers.contains(i))
                .take(3),
        );
        let r = root(&k, Some(&prev), &idx, 3, &by);
        c.extend(&[r]).unwrap();
    }
    assert_eq!(c.newest().version, 11);
    let signers: Vec<usize> = (0..12)
        .filter(|i| c.newest().keys.contains(&k[*i].public()))
        .take(3)
        .collect();
    let s = signed(&k, &c, &signers, 1);
    assert!(check(&fetcher(&v1), &s).unwrap().is_some());
}

#[test]
fn a_bad_signature_deep_in_a_long_chain_is_found_and_named() {
    // Long enough that the signatures are checked on several threads.
    let k = keys();
    let v1 = root(&k, None, &[0, 1], 2, &[0, 1]);
    let mut c = Chain::start(v1).unwrap();
    let mut more = Vec::new();
    let mut prev = c.newest().clone();
    for _ in 0..8 {
        let r = root(&k, Some(&prev), &[0, 1], 2, &[0, 1]);
        prev = r.root().clone();
        more.push(r);
    }
    let mut bytes = more[5].to_bytes();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    let mut bad = more.clone();
    bad[5] = SignedRoot::from_bytes(&bytes).unwrap();
    let before = c.clone();
    assert!(matches!(
        c.extend(&bad),
        Err(RootError::BadSignature { version: 7, .. })
    ));
    assert_eq!(c, before, "nothing added");
    assert_eq!(c.extend(&more), Ok(8));
}

#[test]
fn a_pinned_publisher_does_not_roll_its_root_back() {
    let k = keys();
    let v1 = root(&k, None, &[0, 1], 2, &[0, 1]);
    let c1 = Chain::start(v1.clone()).unwrap();
    let v2 = root(&k, Some(c1.newest()), &[0, 2], 2, &[0, 1, 2]);
    let mut c2 = c1.clone();
    c2.extend(std::slice::from_ref(&v2)).unwrap();
    let mut p = Policy {
        now: NOW,
        ..Policy::default()
    };
    p.pins.insert(v1.fingerprint(), "pin".into());
    // Learned v2 from an earlier release (not trusted by key).
    p.roots.insert(pointer().public(), c2.clone());
    // A release under v1, carrying only v1: superseded, not accepted.
    let old = signed(&k, &c1, &[0, 1], 1);
    assert!(matches!(
        check(&p, &old),
        Err(PolicyError::Superseded { .. })
    ));
}
