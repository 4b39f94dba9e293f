//! `bench-trust`: what checking a threshold release costs (issue #19), in
//! this process: a 3-of-5 publisher whose root was rotated 10 times, and a
//! release signed by 3 of the newest keys.
//!
//! - a fresh fetcher that pinned only the first root: decode the token,
//!   walk the 10 rotations it carries, check the release (the bar: under
//!   2 ms);
//! - the same when every rotation replaces all five keys (each step then
//!   carries 3 old and 3 new signatures: the worst case for 3 of 5);
//! - a fetcher that already knows the newest root: the release's 3
//!   signatures only;
//! - a format 1 release by one key, for comparison;
//!
//! and the token lengths: 3 signatures alone, with the first root, with
//! the whole chain.
//!
//! ```text
//! cargo build --release -p swarm-benches
//! target/release/bench-trust [--reps 2000]
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use swarm_benches::report::median;
use swarm_engine::Hash;
use swarm_engine::release::{
    Chain, Policy, PublicKey, Release, Root, SecretKey, SignedRelease, Want,
};

const STEPS: usize = 10;
const BAR_MS: f64 = 2.0;

fn release(publisher: PublicKey) -> Release {
    Release {
        publisher,
        name: "my-app".into(),
        channel: "stable".into(),
        version: semver::Version::new(4, 2, 0),
        seq: 42,
        root: Hash::of(b"manifest"),
        size: 31_300_000,
        created: 1_800_000_000,
        expires: Some(1_900_000_000),
        rollout: Default::default(),
    }
}

/// A 3-of-5 chain of `STEPS` rotations; `shift` keys replaced per step.
fn chain(keys: &[SecretKey], pointer: PublicKey, shift: usize) -> Result<Chain> {
    let set =
        |step: usize| -> Vec<usize> { (0..5).map(|i| (i + step * shift) % keys.len()).collect() };
    let public = |idx: &[usize]| idx.iter().map(|&i| keys[i].public()).collect::<Vec<_>>();
    let mut first = Root::new(pointer, public(&set(0)), 3)?.unsigned()?;
    for &i in &set(0)[..3] {
        first.sign(&keys[i], None)?;
    }
    let mut chain = Chain::start(first)?;
    for step in 1..=STEPS {
        let (old, new) = (set(step - 1), set(step));
        let prev = chain.newest().clone();
        let mut next = prev.next(public(&new), 3)?.unsigned()?;
        // Keys in both sets sign first: each counts for both thresholds.
        let mut signers: Vec<usize> = old.iter().copied().filter(|i| new.contains(i)).collect();
        signers.truncate(3);
        signers.extend(old.iter().copied().filter(|i| !new.contains(i)));
        signers.truncate(3);
        let in_new = signers.iter().filter(|i| new.contains(i)).count();
        signers.extend(
            new.iter()
                .copied()
                .filter(|i| !old.contains(i))
                .take(3 - in_new),
        );
        for &i in &signers {
            next.sign(&keys[i], Some(&prev))?;
        }
        chain.extend(&[next])?;
    }
    Ok(chain)
}

fn signed_by_3(keys: &[SecretKey], chain: &Chain) -> Result<SignedRelease> {
    let newest = chain.newest().clone();
    let signers: Vec<&SecretKey> = keys
        .iter()
        .filter(|k| newest.keys.contains(&k.public()))
        .take(3)
        .collect();
    let mut s = release(chain.pointer()).sign_threshold(signers[0], chain)?;
    for k in &signers[1..] {
        s.cosign(k, &newest)?;
    }
    Ok(s)
}

/// Median microseconds of `f` over `reps` runs.
fn time(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut runs = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        runs.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(median(&runs))
}

fn main() -> Result<()> {
    let mut reps = 2000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reps" => {
                reps = args
                    .next()
                    .context("--reps takes a number")?
                    .parse()
                    .context("--reps takes a number")?;
            }
            "-h" | "--help" => {
                println!("usage: bench-trust [--reps N]  (median of N runs of each check)");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}; try --help"),
        }
    }
    let keys: Vec<SecretKey> = (1..=60u8).map(|s| SecretKey::from_seed(&[s; 32])).collect();
    let pointer = SecretKey::from_seed(&[200; 32]).public();
    let want = Want::default();
    let seen: BTreeMap<(PublicKey, String, String), swarm_engine::release::Seen> = BTreeMap::new();
    let policy_of = |first: &Chain| -> Result<Policy> {
        let mut p = Policy {
            now: 1_800_000_100,
            ..Policy::default()
        };
        p.trust(pointer, "pinned");
        let v1 = first.roots().next().context("a first root")?.clone();
        p.roots.insert(pointer, Chain::start(v1)?);
        Ok(p)
    };
    println!(
        "bench-trust: a 3-of-5 publisher, {STEPS} rotations, a release signed by 3; median of {reps} runs"
    );
    let mut over = false;
    for (label, shift) in [
        ("one key replaced per rotation", 1),
        ("all five replaced per rotation", 5),
    ] {
        let c = chain(&keys, pointer, shift)?;
        let s = signed_by_3(&keys, &c)?;
        let token = s.to_token();
        let fresh = policy_of(&c)?;
        let mut knows = fresh.clone();
        knows.roots.insert(pointer, c.clone());
        let sigs: usize = c.roots().map(|r| r.signature_count()).sum::<usize>() + s.signer_count();
        let walk = time(reps, || {
            let t = SignedRelease::from_token(&token)?;
            let learned = fresh.check_trust(&t, &want, &seen)?;
            anyhow::ensure!(learned.is_some_and(|l| l.newest().version == 11));
            Ok(())
        })?;
        let bare = s.to_pointer_bytes();
        let known = time(reps, || {
            let t = SignedRelease::from_bytes(&bare)?;
            knows.check_trust(&t, &want, &seen)?;
            Ok(())
        })?;
        let ms = walk / 1000.0;
        over |= ms >= BAR_MS;
        println!(
            "  {label}: fresh fetcher (decode + {STEPS} rotations + release, {sigs} signatures) \
             {ms:.3} ms ({:.2}x the {BAR_MS} ms bar, {}); newest root known: {:.3} ms",
            ms / BAR_MS,
            if ms < BAR_MS { "PASS" } else { "MISS" },
            known / 1000.0
        );
        println!(
            "    token {} characters with all 11 roots; {} with 3 signatures and no roots",
            token.len(),
            "swr2".len() + (bare.len() * 8).div_ceil(5)
        );
    }
    // Token lengths a user meets: 3 signatures with the first root only.
    let mut first = Root::new(
        pointer,
        keys[..5].iter().map(SecretKey::public).collect(),
        3,
    )?
    .unsigned()?;
    for k in &keys[..3] {
        first.sign(k, None)?;
    }
    let c1 = Chain::start(first)?;
    let s1 = signed_by_3(&keys, &c1)?;
    println!(
        "  3-of-5 release with its first root: token {} characters ({} bytes); pointer value {} \
         bytes bencoded (BEP 44 allows 1000)",
        s1.to_token().len(),
        s1.to_bytes().len(),
        swarm_engine::discovery::bencoded_len(&s1.to_pointer_bytes())
    );
    let single_key = SecretKey::from_seed(&[201; 32]);
    let single = release(single_key.public()).sign(&single_key)?;
    let single_token = single.to_token();
    let mut p1 = Policy {
        now: 1_800_000_100,
        ..Policy::default()
    };
    p1.trust(single_key.public(), "v1");
    let one = time(reps, || {
        let t = SignedRelease::from_token(&single_token)?;
        p1.check_trust(&t, &want, &seen)?;
        Ok(())
    })?;
    println!(
        "  format 1, one key: {:.3} ms; token {} characters",
        one / 1000.0,
        single_token.len()
    );
    if over {
        println!("  result: MISS (a fresh fetcher's check is over {BAR_MS} ms)");
    } else {
        println!("  result: PASS (every check under {BAR_MS} ms)");
    }
    Ok(())
}
