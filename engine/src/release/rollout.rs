//! Staged rollout (wire-spec/release.md §2.1): what a release record may
//! say about who is offered it when, signed with the rest of it, and how a
//! client decides. Pure: the caller passes `now` and its install id.
//!
//! A schedule is a list of steps, each "from this many seconds after the
//! release was created, this share of clients (per mille)". A client's
//! place in line, its **cohort** (0–999), comes from its install id and the
//! release, so that the canaries of one release are not always the same
//! machines. A `critical` release skips the schedule and any verification
//! delay.
//!
//! ```
//! use std::time::Duration;
//! use swarm_engine::release::rollout::{Offer, Rollout, Step, offer};
//! # use swarm_engine::Hash;
//! # use swarm_engine::release::{Release, SecretKey};
//! # let key = SecretKey::from_seed(&[1; 32]);
//!
//! let mut release = Release {
//!     publisher: key.public(),
//!     name: "app".into(),
//!     channel: "stable".into(),
//!     version: semver::Version::new(2, 0, 0),
//!     seq: 7,
//!     root: Hash::of(b"manifest"),
//!     size: 1234,
//!     created: 1_800_000_000,
//!     expires: None,
//!     rollout: Rollout::default(),
//! };
//! // 10 % at once, everyone after a day.
//! release.rollout.steps = vec![Step { after: 0, permille: 100 }, Step { after: 86_400, permille: 1000 }];
//! let install = [5u8; 32];
//! match offer(&release, &install, release.created + 60, None) {
//!     Offer::Now => println!("a canary"),
//!     Offer::Staged { from } => assert_eq!(from, Some(release.created + 86_400)),
//!     Offer::Delayed { .. } => unreachable!("no delay asked for"),
//! }
//! // Critical: everyone, now, whatever the schedule and the delay.
//! release.rollout.critical = true;
//! let delay = Some(Duration::from_secs(6 * 3600));
//! assert_eq!(offer(&release, &install, release.created + 60, delay), Offer::Now);
//! ```

use std::time::Duration;

use super::{Release, ReleaseError};

/// Most steps in a schedule.
pub const MAX_STEPS: usize = 16;
/// Most extension records in one release record.
pub const MAX_EXTENSIONS: usize = 8;
/// Longest extension value, in bytes.
pub const MAX_EXTENSION: usize = 256;
/// Extension tag of the schedule (§2.1).
pub const TAG_SCHEDULE: u64 = 1;
/// Extension tag of the critical flag (§2.1).
pub const TAG_CRITICAL: u64 = 2;
/// The whole, in per mille.
pub const ALL: u16 = 1000;

/// One step of a schedule: from `after` seconds past the release's
/// `created`, `permille` of clients are offered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Seconds after `created`.
    pub after: u64,
    /// Clients offered it from then, per mille (0–1000).
    pub permille: u16,
}

/// What a release says about its rollout; the default says nothing
/// (everyone at once), and encodes to no bytes at all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rollout {
    /// The schedule, by ascending `after` and ascending `permille`; empty:
    /// everyone at once. Before the first step nobody is offered it; after
    /// the last, its share stays.
    pub steps: Vec<Step>,
    /// Offered to everyone at once, and applied without waiting out a
    /// verification delay (a security fix).
    pub critical: bool,
    /// Extension records this build does not know, `(tag, value)`, kept so
    /// the record re-encodes to the bytes that were signed.
    pub other: Vec<(u64, Vec<u8>)>,
}

impl Rollout {
    /// Whether it says nothing (the record then carries no extensions).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && !self.critical && self.other.is_empty()
    }

    /// The share offered `elapsed` seconds after creation, per mille.
    ///
    /// ```
    /// use swarm_engine::release::rollout::{Rollout, Step};
    ///
    /// let r = Rollout {
    ///     steps: vec![Step { after: 3600, permille: 100 }, Step { after: 7200, permille: 1000 }],
    ///     ..Rollout::default()
    /// };
    /// assert_eq!(r.share(0), 0);
    /// assert_eq!(r.share(3600), 100);
    /// assert_eq!(r.share(10_000), 1000);
    /// assert_eq!(Rollout::default().share(0), 1000);
    /// ```
    pub fn share(&self, elapsed: u64) -> u16 {
        if self.steps.is_empty() {
            return ALL;
        }
        self.steps
            .iter()
            .take_while(|s| s.after <= elapsed)
            .last()
            .map_or(0, |s| s.permille)
    }

    /// Check the rules of §2.1.
    pub(super) fn validate(&self) -> Result<(), ReleaseError> {
        let bad = |why: String| ReleaseError::BadField {
            field: "rollout",
            why,
        };
        if self.steps.len() > MAX_STEPS {
            return Err(bad(format!(
                "{} steps, at most {MAX_STEPS}",
                self.steps.len()
            )));
        }
        for w in self.steps.windows(2) {
            if w[1].after <= w[0].after || w[1].permille <= w[0].permille {
                return Err(bad(
                    "steps must go up in time and in share, each more than the one before".into(),
                ));
            }
        }
        if self.steps.iter().any(|s| s.permille > ALL) {
            return Err(bad("a step's share is over 1000 per mille".into()));
        }
        let known = usize::from(!self.steps.is_empty()) + usize::from(self.critical);
        if known + self.other.len() > MAX_EXTENSIONS {
            return Err(bad(format!("more than {MAX_EXTENSIONS} extension records")));
        }
        let mut last = 0;
        for (tag, value) in &self.other {
            if *tag <= TAG_CRITICAL || *tag <= last {
                return Err(bad(
                    "unknown extension tags must be above 2 and ascending".into()
                ));
            }
            if value.len() > MAX_EXTENSION {
                return Err(bad(format!("an extension of {} bytes", value.len())));
            }
            last = *tag;
        }
        Ok(())
    }

    /// The extension records, ascending by tag: `(tag, value)`.
    fn records(&self) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        if !self.steps.is_empty() {
            let mut v = Vec::new();
            super::put_varint(&mut v, self.steps.len() as u64);
            for s in &self.steps {
                super::put_varint(&mut v, s.after);
                super::put_varint(&mut v, u64::from(s.permille));
            }
            out.push((TAG_SCHEDULE, v));
        }
        if self.critical {
            out.push((TAG_CRITICAL, Vec::new()));
        }
        out.extend(self.other.iter().cloned());
        out
    }

    /// Append the extension area (§2.1): a count, then each record.
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        let records = self.records();
        super::put_varint(out, records.len() as u64);
        for (tag, value) in records {
            super::put_varint(out, tag);
            super::put_varint(out, value.len() as u64);
            out.extend_from_slice(&value);
        }
    }

    /// Read the extension area (§2.1).
    pub(super) fn read(r: &mut super::Reader<'_>) -> Result<Self, ReleaseError> {
        let bad = |why: &str| ReleaseError::BadField {
            field: "rollout",
            why: why.into(),
        };
        let count = r.varint()?;
        if count == 0 || count > MAX_EXTENSIONS as u64 {
            return Err(bad("an extension area holds 1 to 8 records"));
        }
        let mut out = Rollout::default();
        let mut last = 0;
        for _ in 0..count {
            let tag = r.varint()?;
            if tag <= last {
                return Err(bad("extension tags must be ascending"));
            }
            last = tag;
            let len = r.varint()?;
            if len > MAX_EXTENSION as u64 {
                return Err(bad("an extension over 256 bytes"));
            }
            let value = r.take(len as usize)?;
            match tag {
                TAG_SCHEDULE => {
                    let mut v = super::Reader { b: value, pos: 0 };
                    let n = v.varint()?;
                    if n == 0 || n > MAX_STEPS as u64 {
                        return Err(bad("a schedule has 1 to 16 steps"));
                    }
                    for _ in 0..n {
                        let after = v.varint()?;
                        let permille = u16::try_from(v.varint()?)
                            .map_err(|_| bad("a share over 1000 per mille"))?;
                        out.steps.push(Step { after, permille });
                    }
                    if v.pos != value.len() {
                        return Err(bad("bytes left over in the schedule"));
                    }
                }
                TAG_CRITICAL if value.is_empty() => out.critical = true,
                TAG_CRITICAL => return Err(bad("the critical flag has no value")),
                _ => out.other.push((tag, value.to_vec())),
            }
        }
        out.validate()?;
        Ok(out)
    }
}

/// A client's place in line for `release`, 0–999: from BLAKE3 of its
/// install id and the release's publisher, name, channel and sequence
/// (§2.1), so that it differs from release to release.
///
/// ```
/// # use swarm_engine::Hash;
/// # use swarm_engine::release::{Release, SecretKey, rollout::{Rollout, cohort}};
/// # let key = SecretKey::from_seed(&[1; 32]);
/// # let mut release = Release {
/// #     publisher: key.public(),
/// #     name: "app".into(),
/// #     channel: "stable".into(),
/// #     version: semver::Version::new(2, 0, 0),
/// #     seq: 7,
/// #     root: Hash::of(b"manifest"),
/// #     size: 1234,
/// #     created: 1_800_000_000,
/// #     expires: None,
/// #     rollout: Rollout::default(),
/// # };
/// let c = cohort(&[5; 32], &release);
/// assert!(c < 1000);
/// assert_eq!(c, cohort(&[5; 32], &release), "stable for one install and release");
/// ```
pub fn cohort(install: &[u8; 32], release: &Release) -> u16 {
    let mut h = blake3::Hasher::new_derive_key("swarm 2026 rollout cohort v1");
    h.update(install);
    h.update(release.publisher.as_bytes());
    for s in [&release.name, &release.channel] {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
    h.update(&release.seq.to_le_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.finalize().as_bytes()[..8]);
    (u64::from_le_bytes(b) % u64::from(ALL)) as u16
}

/// Whether a client may take a release now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Yes.
    Now,
    /// Not yet: its cohort is offered it from `from` (Unix seconds), or
    /// never under this schedule (`None`).
    Staged {
        /// When.
        from: Option<u64>,
    },
    /// Offered, but younger than the client's verification delay: it may
    /// be applied from `until` (Unix seconds).
    Delayed {
        /// When.
        until: u64,
    },
}

/// When the client with `install` is offered `release`, if ever.
pub fn offered_from(release: &Release, install: &[u8; 32]) -> Option<u64> {
    let r = &release.rollout;
    if r.critical || r.steps.is_empty() {
        return Some(release.created);
    }
    let c = cohort(install, release);
    r.steps
        .iter()
        .find(|s| s.permille > c)
        .map(|s| release.created.saturating_add(s.after))
}

/// Whether the client with `install`, at `now`, takes `release`: a
/// critical release at once; otherwise once its cohort is offered it and
/// (with a verification `delay`) once it is that old.
pub fn offer(release: &Release, install: &[u8; 32], now: u64, delay: Option<Duration>) -> Offer {
    if release.rollout.critical {
        return Offer::Now;
    }
    match offered_from(release, install) {
        Some(t) if t <= now => {}
        from => return Offer::Staged { from },
    }
    if let Some(d) = delay {
        let until = release.created.saturating_add(d.as_secs());
        if now < until {
            return Offer::Delayed { until };
        }
    }
    Offer::Now
}

/// Parse a schedule written as `SHARE@AFTER,…`: a share in per cent
/// (`10%`, `2.5%`) and a time after publishing (`0`, `90s`, `30m`, `6h`,
/// `1d`, `2w`), steps in order.
///
/// ```
/// use swarm_engine::release::rollout::{Step, parse_schedule, schedule_text};
///
/// let steps = parse_schedule("10%@0, 50%@6h, 100%@1d")?;
/// assert_eq!(steps[1], Step { after: 6 * 3600, permille: 500 });
/// assert_eq!(schedule_text(&steps), "10%@0s,50%@6h,100%@1d");
/// assert!(parse_schedule("50%@1d,10%@2d").is_err()); // the share must grow
/// # Ok::<(), String>(())
/// ```
pub fn parse_schedule(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (share, after) = part.split_once('@').ok_or_else(|| {
            format!("{part:?}: write each step as SHARE@AFTER, e.g. 10%@0 or 100%@1d")
        })?;
        let pct = share
            .trim()
            .strip_suffix('%')
            .ok_or_else(|| format!("{share:?}: a share is a percentage, e.g. 10%"))?
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("{share:?}: not a percentage"))?;
        if !(0.0..=100.0).contains(&pct) {
            return Err(format!("{share:?}: a share is between 0% and 100%"));
        }
        let permille = (pct * 10.0).round() as u16;
        steps.push(Step {
            after: parse_seconds(after.trim())?,
            permille,
        });
    }
    if steps.is_empty() {
        return Err("an empty schedule; e.g. 10%@0,100%@1d".into());
    }
    let r = Rollout {
        steps: steps.clone(),
        ..Rollout::default()
    };
    r.validate().map_err(|e| e.to_string())?;
    Ok(steps)
}

/// A length of time as people write it, `30d`, `12h`, `90m`, `3600s`,
/// `2w` or bare seconds, in seconds; refused rather than wrapped when it
/// does not fit in 64 bits. Zero is allowed (callers that need a positive
/// time say so).
///
/// ```
/// use swarm_engine::release::rollout::parse_seconds;
///
/// assert_eq!(parse_seconds("6h"), Ok(6 * 3600));
/// assert_eq!(parse_seconds("90"), Ok(90));
/// assert!(parse_seconds("5y").unwrap_err().contains("units"));
/// assert!(parse_seconds("18446744073709551615m").unwrap_err().contains("too large"));
/// ```
pub fn parse_seconds(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("not a duration: {s:?} (units: s, m, h, d, w)")),
    };
    let too_large = || format!("duration {s:?} is too large");
    let n: u64 = match num.parse() {
        Ok(n) => n,
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => return Err(too_large()),
        Err(_) => return Err(format!("not a duration: {s:?} (try 30d, 12h, 90m, 3600s)")),
    };
    n.checked_mul(mult).ok_or_else(too_large)
}

/// A schedule as [`parse_schedule`] reads it, in the largest whole units.
pub fn schedule_text(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| {
            let pct = f64::from(s.permille) / 10.0;
            let after = [(7 * 86_400, "w"), (86_400, "d"), (3600, "h"), (60, "m")]
                .iter()
                .find(|(m, _)| s.after > 0 && s.after % m == 0)
                .map_or(format!("{}s", s.after), |(m, u)| {
                    format!("{}{u}", s.after / m)
                });
            format!("{pct}%@{after}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
