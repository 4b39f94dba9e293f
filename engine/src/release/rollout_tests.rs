use super::*;
use crate::content::Hash;
use crate::release::{SecretKey, SignedRelease};

fn release(steps: Vec<Step>, critical: bool) -> Release {
    Release {
        publisher: SecretKey::from_seed(&[3; 32]).public(),
        name: "app".into(),
        channel: "stable".into(),
        version: semver::Version::new(2, 0, 0),
        seq: 11,
        root: Hash::of(b"manifest"),
        size: 1234,
        created: 1_800_000_000,
        expires: Some(1_900_000_000),
        rollout: Rollout {
            steps,
            critical,
            other: Vec::new(),
        },
    }
}

fn step(after: u64, permille: u16) -> Step {
    Step { after, permille }
}

fn install(i: u32) -> [u8; 32] {
    *blake3::hash(&i.to_le_bytes()).as_bytes()
}

#[test]
fn a_record_with_a_schedule_round_trips_and_one_without_keeps_its_bytes() {
    let key = SecretKey::from_seed(&[3; 32]);
    let plain = release(Vec::new(), false).sign(&key).unwrap();
    // No extension: the expiry flag byte is 01, and nothing follows it.
    let bytes = plain.to_bytes();
    assert_eq!(bytes[bytes.len() - 64 - 6], 1);
    let staged = release(vec![step(0, 100), step(3600, 1000)], true)
        .sign(&key)
        .unwrap();
    let back = SignedRelease::from_bytes(&staged.to_bytes()).unwrap();
    assert_eq!(back, staged);
    assert_eq!(back.release().rollout.steps.len(), 2);
    assert!(back.release().rollout.critical);
    // Signed: the schedule cannot be changed on the way.
    let mut forged = staged.to_bytes();
    let at = forged.len() - 64 - 3;
    forged[at] ^= 1;
    assert!(SignedRelease::from_bytes(&forged).is_err());
    // An extension this build does not know is kept and re-encoded.
    let mut future = release(vec![step(0, 500)], false);
    future.rollout.other.push((9, b"ab".to_vec()));
    let signed = future.sign(&key).unwrap();
    let back = SignedRelease::from_bytes(&signed.to_bytes()).unwrap();
    assert_eq!(back.release().rollout.other, vec![(9, b"ab".to_vec())]);
    assert_eq!(back.to_bytes(), signed.to_bytes());
}

#[test]
fn bad_schedules_are_refused_when_signing_and_when_reading() {
    let key = SecretKey::from_seed(&[3; 32]);
    for steps in [
        vec![step(0, 500), step(0, 600)],                 // not later
        vec![step(0, 500), step(10, 500)],                // not more
        vec![step(0, 1001)],                              // over the whole
        (0..17).map(|i| step(i, i as u16 + 1)).collect(), // too many
    ] {
        assert!(release(steps, false).sign(&key).is_err());
    }
    let mut low_tag = release(Vec::new(), false);
    low_tag.rollout.other.push((2, Vec::new()));
    assert!(low_tag.sign(&key).is_err());
    // An extension area claiming no records.
    let signed = release(vec![step(0, 10)], false).sign(&key).unwrap();
    let record = &signed.to_bytes()[..signed.to_bytes().len() - 64];
    let flag = record.len() - 1 - (1 + 1 + 1 + 1 + 1 + 1) - 5;
    assert_eq!(record[flag], 3, "expires and extensions");
}

#[test]
fn cohorts_are_spread_and_differ_between_releases() {
    let a = release(Vec::new(), false);
    let mut b = a.clone();
    b.seq += 1;
    let (mut same, mut low) = (0, 0);
    for i in 0..10_000 {
        let id = install(i);
        if cohort(&id, &a) == cohort(&id, &b) {
            same += 1;
        }
        if cohort(&id, &a) < 100 {
            low += 1;
        }
    }
    // About 1 in 1000 by chance, and about 10 % below 100.
    assert!(same < 50, "{same}");
    assert!((800..1200).contains(&low), "{low}");
}

#[test]
fn a_staged_client_waits_its_turn_and_is_told_when() {
    let r = release(vec![step(0, 100), step(3600, 500), step(7200, 1000)], false);
    let now = r.created + 10;
    let mut offered = 0;
    for i in 0..1000 {
        let id = install(i);
        match offer(&r, &id, now, None) {
            Offer::Now => offered += 1,
            Offer::Staged { from } => {
                let from = from.expect("everyone gets it by the last step");
                assert!(from == r.created + 3600 || from == r.created + 7200);
                assert_eq!(offer(&r, &id, from, None), Offer::Now);
                assert!(matches!(
                    offer(&r, &id, from - 1, None),
                    Offer::Staged { .. }
                ));
            }
            Offer::Delayed { .. } => unreachable!(),
        }
    }
    assert!((70..130).contains(&offered), "{offered}");
    // A schedule that stops at half: the other half is never offered it.
    let half = release(vec![step(0, 500)], false);
    let never = (0..1000)
        .filter(|i| offer(&half, &install(*i), u64::MAX, None) == Offer::Staged { from: None })
        .count();
    assert!((400..600).contains(&never), "{never}");
}

#[test]
fn the_verification_delay_holds_unless_critical() {
    let day = Duration::from_secs(86_400);
    let r = release(Vec::new(), false);
    let id = install(1);
    assert_eq!(
        offer(&r, &id, r.created + 60, Some(day)),
        Offer::Delayed {
            until: r.created + 86_400
        }
    );
    assert_eq!(offer(&r, &id, r.created + 86_400, Some(day)), Offer::Now);
    let critical = release(vec![step(3600, 10)], true);
    assert_eq!(
        offer(&critical, &id, critical.created, Some(day)),
        Offer::Now
    );
}
