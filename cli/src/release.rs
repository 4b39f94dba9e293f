//! Release commands: keygen, publish, verify, trust, and resolving a fetch
//! target that is a signed-root token.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::json;
use swarm_engine::Hash;
use swarm_engine::api;
use swarm_engine::release::{SecretKey, SignedRelease, Want};
use swarm_engine::store::{Store, manifest_of};

use crate::plural;

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where `keygen` writes and `publish` reads by default.
pub(crate) fn default_key_path() -> Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "swarm")
        .context("cannot find a home directory; pass the key file path explicitly")?;
    Ok(dirs.config_dir().join("publisher.key"))
}

pub(crate) fn keygen(output: Option<PathBuf>, json: bool) -> Result<ExitCode> {
    let path = match output {
        Some(p) => p,
        None => default_key_path()?,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let key = SecretKey::generate().context("the system random source failed")?;
    let mut f = crate::files::create_new(
        &path,
        0o600,
        "refusing to overwrite a key (move it away first, or use -o)",
    )?;
    writeln!(
        f,
        "# swarm publisher key for {}; keep it secret\n{}",
        key.public(),
        key.to_text()
    )?;
    f.sync_all()?;
    print_public(&key, &path, json);
    if !json {
        eprintln!("wrote the secret key to {} (mode 0600)", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// A key file's public key, as `keygen` and `key show` print it.
fn print_public(key: &SecretKey, path: &Path, json: bool) {
    if json {
        println!(
            "{}",
            json!({ "public_key": key.public().to_string(), "key_file": path })
        );
    } else {
        println!("{}", key.public());
    }
}

/// `swarm key show [FILE]`: the public key of a key file.
pub(crate) fn show_key(file: Option<PathBuf>, json: bool) -> Result<ExitCode> {
    let path = match file {
        Some(p) => p,
        None => default_key_path()?,
    };
    let key = read_key(&path)?;
    print_public(&key, &path, json);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn read_key(path: &Path) -> Result<SecretKey> {
    if !path.exists() {
        bail!(
            "there is no key file {} (create one with `swarm keygen`)",
            path.display()
        );
    }
    let text = crate::files::read_secret(path, "key file")?;
    SecretKey::from_text(&text).with_context(|| path.display().to_string())
}

/// "30d", "12h", "90m", "3600s" or "3600" to seconds: positive, and
/// refused rather than wrapped when it does not fit in 64 bits.
pub(crate) fn parse_duration(s: &str) -> Result<u64> {
    let n = swarm_engine::release::rollout::parse_seconds(s).map_err(|e| anyhow::anyhow!(e))?;
    if n == 0 {
        bail!("duration {:?} is zero; give a positive duration", s.trim());
    }
    Ok(n)
}

pub(crate) struct PublishArgs {
    pub(crate) paths: Vec<PathBuf>,
    pub(crate) key: Option<PathBuf>,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) channel: String,
    pub(crate) expires: Option<String>,
    pub(crate) delta_from: Vec<String>,
    pub(crate) root: Option<PathBuf>,
    pub(crate) pointer_key: Option<PathBuf>,
    pub(crate) seq: Option<u64>,
    pub(crate) allow_downgrade: bool,
    pub(crate) rollout: Option<String>,
    pub(crate) critical: bool,
}

pub(crate) fn publish(
    on: &crate::control::On,
    a: PublishArgs,
    json: bool,
    dht: Option<swarm_engine::discovery::DhtConfig>,
) -> Result<ExitCode> {
    use crate::control::{On, block};
    let key_path = match a.key {
        Some(k) => k,
        None => default_key_path()?,
    };
    // Read here, as the caller: the node need not be able to read it.
    let key = read_key(&key_path)?;
    let created = now();
    let expires = match &a.expires {
        Some(d) => Some(created.checked_add(parse_duration(d)?).with_context(|| {
            format!("--expires {d}: the expiry would be past the end of time (2^64 s)")
        })?),
        None => None,
    };
    if let Some(text) = &a.rollout {
        swarm_engine::release::rollout::parse_schedule(text)
            .map_err(|e| anyhow::anyhow!("--rollout {text:?}: {e}"))?;
    }
    let chain = match &a.root {
        Some(p) => Some(crate::roots::read_chain_file(p)?),
        None => None,
    };
    let pointer_key = match &a.pointer_key {
        Some(p) => Some(read_key(p)?.to_text()),
        None => None,
    };
    let mut req = api::PublishRequest {
        paths: api::ops::absolute_paths(&a.paths).context("cannot find the current directory")?,
        key: key.to_text(),
        name: a.name,
        version: a.version,
        channel: a.channel,
        created,
        expires,
        delta_from: a.delta_from,
        chain,
        pointer_key,
        seq: a.seq,
        after: None,
        allow_downgrade: a.allow_downgrade,
        rollout: a.rollout,
        critical: a.critical,
    };
    let r = match on {
        On::Store(store, _) => {
            // The newest on the DHT first: a second publishing machine
            // takes the sequence after it.
            let session = crate::dht::Session::open_for_publish(dht);
            if let Some(s) = &session {
                let publisher = api::ops::publisher_of(&req)?;
                match s.newest(&publisher, &req.name, &req.channel) {
                    Some(newest) => req.after = Some(newest.to_token()),
                    None => eprintln!(
                        "the DHT holds no release of {}@{} yet: the sequence comes from this store",
                        req.name, req.channel
                    ),
                }
            }
            let done = api::ops::publish(store, &req)?;
            let mut r = done.reply;
            match (api::ops::not_for_dht(&r), &session) {
                (Some(why), Some(_)) => r.dht_error = Some(why),
                (Some(_), None) => {}
                (None, Some(s)) => match s.put(&done.release, &done.key) {
                    Ok(()) => r.dht = true,
                    Err(e) => r.dht_error = Some(format!("{e:#}")),
                },
                (None, None) => {}
            }
            r
        }
        On::Node(c) => block(c.publish(&req))??,
    };
    if let Some(e) = &r.dht_error {
        eprintln!("warning: the release pointer was not put on the DHT: {e}");
    }
    // Sequence 1 with no DHT to ask: only this store was consulted.
    if r.seq == 1 && a.seq.is_none() && !r.dht && r.dht_error.is_none() && !json {
        eprintln!(
            "note: without the DHT, the sequence came from this store alone: it signed sequence \
             1 of {}@{}. If another machine published it before, publish again with --seq N \
             above that machine's, or fetchers report equivocation",
            r.name, r.channel
        );
    }
    if json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", r.ticket);
    if r.dht {
        eprintln!(
            "put the release pointer on the DHT: `swarm fetch {}/{}@{}` finds it",
            r.publisher, r.name, r.channel
        );
    }
    eprintln!(
        "published {} {} on {} (seq {}), {} file{}, root {}",
        r.name,
        r.version,
        r.channel,
        r.seq,
        r.files,
        plural(r.files),
        r.root
    );
    if r.signatures < r.threshold {
        eprintln!(
            "signed by {} of the {} keys it needs: fetchers refuse it until the other signers \
             each run `swarm sign TOKEN --key FILE` on it (token: {} characters)",
            r.signatures,
            r.threshold,
            r.token.len()
        );
    }
    for p in &r.patches {
        eprintln!(
            "patch for {} from {}…: {} instead of {} ({:.1} %)",
            p.path,
            &p.from[..12],
            crate::bytes(p.bytes),
            crate::bytes(p.file_bytes),
            100.0 * p.bytes as f64 / p.file_bytes.max(1) as f64
        );
    }
    if matches!(on, On::Store(..)) {
        eprintln!(
            "the ticket names no peer, as no node runs on this store: serve it with `swarm node` \
             (fetchers then add --peer HOST:PORT), or publish while the node runs and the ticket \
             carries its addresses"
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) struct VerifyArgs {
    pub(crate) token: String,
    pub(crate) path: Option<PathBuf>,
    pub(crate) trust: Vec<String>,
}

pub(crate) fn verify(on: &crate::control::On, a: VerifyArgs, json: bool) -> Result<ExitCode> {
    let signed = SignedRelease::from_token(&a.token)?;
    // The policy's verdict, from the store or the node that holds it.
    let req = api::VerifyRequest {
        token: a.token.clone(),
        trust: a.trust.clone(),
    };
    let describe = |e: &(dyn std::error::Error + 'static)| crate::hints::describe_chain(e);
    let verdict = match on {
        crate::control::On::Store(store, _) => api::ops::verify(store, &req, now(), &describe)?,
        crate::control::On::Node(c) => crate::control::block(c.verify(&req))??,
    };
    let r = signed.release();
    let label = verdict.trusted_as.clone();
    let verdict = match verdict.policy_error {
        None => Ok(()),
        Some(e) => Err(anyhow::anyhow!(e)),
    };
    let matches = match &a.path {
        Some(p) => {
            let m = manifest_of(std::slice::from_ref(p))?;
            Some((m.root() == r.root && m.total_size() == r.size, m.root()))
        }
        None => None,
    };
    if json {
        println!(
            "{}",
            json!({
                "valid": verdict.is_ok() && matches.is_none_or(|(ok, _)| ok),
                "signature": "ok",
                "signatures": signed.signer_count(),
                "root_version": signed.root_version(),
                "trusted": label.is_some(),
                "publisher": r.publisher.to_string(),
                "name": r.name,
                "channel": r.channel,
                "version": r.version.to_string(),
                "seq": r.seq,
                "root": r.root.to_hex(),
                "size": r.size,
                "created": r.created,
                "expires": r.expires,
                "rollout": (!r.rollout.steps.is_empty())
                    .then(|| swarm_engine::release::rollout::schedule_text(&r.rollout.steps)),
                "critical": r.rollout.critical,
                "token_length": a.token.trim().len(),
                "policy_error": verdict.as_ref().err().map(|e| e.to_string()),
                "path_matches": matches.map(|(ok, _)| ok),
            })
        );
    } else {
        println!(
            "release   {} {} on {} (seq {})",
            r.name, r.version, r.channel, r.seq
        );
        println!("root      {}", r.root);
        println!("size      {} bytes", r.size);
        println!(
            "publisher {} ({})",
            r.publisher,
            label
                .as_deref()
                .map_or("NOT TRUSTED".to_owned(), |l| format!("trusted as {l}"))
        );
        println!("created   unix {}", r.created);
        if let Some(e) = r.expires {
            println!("expires   unix {e}");
        }
        if !r.rollout.steps.is_empty() {
            println!(
                "rollout   {} (share of clients @ time after created)",
                swarm_engine::release::rollout::schedule_text(&r.rollout.steps)
            );
        }
        if r.rollout.critical {
            println!("critical  yes: offered to everyone at once, no verification delay");
        }
        match signed.root_version() {
            None => println!("signature valid"),
            Some(v) => println!(
                "signatures {} carried, under root version {v} of the publisher{}",
                signed.signer_count(),
                if verdict.is_ok() {
                    ": enough, and valid"
                } else {
                    ""
                }
            ),
        }
        if let Some((ok, root)) = matches {
            if ok {
                println!("files     match the root");
            } else {
                println!("files     DO NOT match (they hash to {root})");
            }
        }
    }
    if json {
        // The report above says why; one JSON object on stdout.
        let ok = verdict.is_ok() && matches.is_none_or(|(ok, _)| ok);
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    verdict?;
    if let (Some(p), Some((false, root))) = (&a.path, matches) {
        bail!(
            "the files at {} do not match this release: they hash to {root}, the release says {}",
            p.display(),
            r.root
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What `swarm fetch` was asked for: a root, or a token checked against
/// the policy (and recorded as the newest seen) before anything is fetched.
pub(crate) fn resolve_target(
    store: &Store,
    target: &str,
    trust: &[String],
    want: Want,
) -> Result<(Hash, Option<SignedRelease>)> {
    Ok(api::ops::resolve_target(
        store,
        target,
        trust,
        &want,
        now(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_refuse_zero_and_overflow_instead_of_wrapping() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_duration("3600").unwrap(), 3600);
        assert_eq!(parse_duration("18446744073709551615s").unwrap(), u64::MAX);
        for (bad, why) in [
            ("0s", "zero"),
            ("0", "zero"),
            ("18446744073709551616s", "too large"),
            ("18446744073709551615m", "too large"),
            ("30500000000000000w", "too large"),
            ("", "not a duration"),
            ("5y", "units"),
            ("-5s", "not a duration"),
        ] {
            let err = format!("{:#}", parse_duration(bad).unwrap_err());
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
