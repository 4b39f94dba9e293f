//! Roots of trust and threshold signing: `swarm root init|rotate|sign|show`
//! and `swarm sign TOKEN`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;
use swarm_engine::release::{
    Chain, ChainFile, MAX_CHAIN_BYTES, PublicKey, Root, SignedRelease, SignedRoot,
};

use crate::args::RootCommand;
use crate::release::{default_key_path, now, parse_duration, read_key};

/// A key on the command line: a public key (`swpk1…`) or a key file, of
/// which the public half is taken.
fn public_key_arg(s: &str) -> Result<PublicKey> {
    if s.trim().starts_with(swarm_engine::release::PUBLIC_PREFIX) {
        return Ok(s.parse()?);
    }
    let path = Path::new(s);
    if path.is_file() {
        return Ok(read_key(path)?.public());
    }
    Ok(s.parse()?)
}

fn read_text(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read the chain file {}", path.display()))?;
    // A chain file is small: refuse a huge one before reading it.
    if meta.len() > 2 * MAX_CHAIN_BYTES as u64 {
        bail!(
            "{} is {} bytes: larger than any chain file ({} bytes at most)",
            path.display(),
            meta.len(),
            2 * MAX_CHAIN_BYTES
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_file(path: &Path) -> Result<ChainFile> {
    ChainFile::parse(&read_text(path)?).with_context(|| format!("chain file {}", path.display()))
}

/// A complete chain file's text, for `publish --root` and the API: every
/// root signed by its thresholds.
pub(crate) fn read_chain_file(path: &Path) -> Result<String> {
    let file = read_file(path)?;
    if let Some(p) = &file.pending {
        let r = p.root();
        bail!(
            "the newest root in {} (version {}) has {} of the signatures it needs; sign it first \
             (`swarm root sign {} --key FILE` by {} of its keys{})",
            path.display(),
            r.version,
            p.signature_count(),
            path.display(),
            r.threshold,
            if r.version > 1 {
                " and by a threshold of the version before"
            } else {
                ""
            }
        );
    }
    if file.chain.is_none() {
        bail!("{} holds no root", path.display());
    }
    Ok(file.to_text())
}

fn write_file(path: &Path, file: &ChainFile, create: bool) -> Result<()> {
    let text = format!(
        "# swarm chain of roots (wire-spec/release.md §8.3): oldest first, one per line\n{}",
        file.to_text()
    );
    if create {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        let mut f = opts.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!(
                    "{} already exists; refusing to overwrite it",
                    path.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
            }
        })?;
        std::io::Write::write_all(&mut f, text.as_bytes())?;
        f.sync_all()?;
        return Ok(());
    }
    // Replaced whole, so that a crash leaves the old file or the new.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

fn expiry(d: &Option<String>) -> Result<Option<u64>> {
    d.as_ref()
        .map(|d| {
            now()
                .checked_add(parse_duration(d)?)
                .with_context(|| format!("--expires {d} is past the end of time"))
        })
        .transpose()
}

fn keys(list: &[String]) -> Result<Vec<PublicKey>> {
    list.iter()
        .map(|k| {
            // Never echo what may be a secret key.
            let shown = if k.trim().to_ascii_lowercase().starts_with("swsk") {
                "(a secret key)"
            } else {
                k.as_str()
            };
            public_key_arg(k).with_context(|| format!("--key {shown}"))
        })
        .collect()
}

pub(crate) fn root(command: RootCommand, json: bool) -> Result<ExitCode> {
    match command {
        RootCommand::Init {
            keys: k,
            threshold,
            pointer,
            expires,
            output,
        } => {
            let mut r = Root::new(public_key_arg(&pointer)?, keys(&k)?, threshold)?;
            r.expires = expiry(&expires)?;
            let file = ChainFile {
                chain: None,
                pending: Some(r.unsigned()?),
            };
            write_file(&output, &file, true)?;
            eprintln!(
                "wrote version 1 ({threshold} of {} keys) to {}: now {threshold} of the keys sign \
                 it, each with `swarm root sign {} --key FILE`",
                k.len(),
                output.display(),
                output.display()
            );
            show(&output, json)
        }
        RootCommand::Rotate {
            file,
            keys: k,
            threshold,
            expires,
        } => {
            let mut f = read_file(&file)?;
            if let Some(p) = &f.pending {
                bail!(
                    "root version {} in {} is not signed yet: finish it, or remove its line, first",
                    p.root().version,
                    file.display()
                );
            }
            let chain = f.chain.as_ref().context("the chain file holds no root")?;
            let prev = chain.newest().clone();
            let mut r = prev.next(keys(&k)?, threshold)?;
            r.expires = expiry(&expires)?;
            f.pending = Some(r.unsigned()?);
            write_file(&file, &f, false)?;
            eprintln!(
                "added version {} to {}: {} of the current keys and {threshold} of the new ones \
                 sign it, each with `swarm root sign {} --key FILE`",
                prev.version + 1,
                file.display(),
                prev.threshold,
                file.display()
            );
            show(&file, json)
        }
        RootCommand::Sign { file, key } => {
            let key = read_key(&match key {
                Some(k) => k,
                None => default_key_path()?,
            })?;
            let mut f = read_file(&file)?;
            let Some(mut p) = f.pending.take() else {
                bail!(
                    "every root in {} is signed by enough keys already; `swarm root rotate` adds \
                     the next",
                    file.display()
                );
            };
            let prev = f.chain.as_ref().map(|c| c.newest().clone());
            p.sign(&key, prev.as_ref())?;
            let done = p.verify(prev.as_ref());
            match (&mut f.chain, &done) {
                (None, Ok(())) => f.chain = Some(Chain::start(p)?),
                (Some(c), Ok(())) => {
                    c.extend(std::slice::from_ref(&p))?;
                }
                (_, Err(_)) => f.pending = Some(p),
            }
            write_file(&file, &f, false)?;
            match done {
                Ok(()) => eprintln!("signed; the root is complete"),
                Err(e) => eprintln!("signed; {e}"),
            }
            show(&file, json)
        }
        RootCommand::Show { file } => show(&file, json),
    }
}

fn describe(r: &SignedRoot, prev: Option<&Root>) -> serde_json::Value {
    let root = r.root();
    let signers = r.signers(prev).unwrap_or_default();
    json!({
        "version": root.version,
        "threshold": root.threshold,
        "keys": root.keys.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "expires": root.expires,
        "signed_by": signers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "complete": r.verify(prev).is_ok(),
        "fingerprint": r.fingerprint_text(),
    })
}

fn show(path: &Path, json: bool) -> Result<ExitCode> {
    let f = read_file(path)?;
    let mut roots: Vec<serde_json::Value> = Vec::new();
    let mut prev: Option<Root> = None;
    let pointer = f
        .chain
        .as_ref()
        .map(Chain::pointer)
        .or(f.pending.as_ref().map(|p| p.root().pointer));
    if let Some(c) = &f.chain {
        if c.anchor().is_none() {
            prev = Some(Root::implicit(c.pointer()));
        }
        for r in c.roots() {
            roots.push(describe(r, prev.as_ref()));
            prev = Some(r.root().clone());
        }
    }
    if let Some(p) = &f.pending {
        roots.push(describe(p, prev.as_ref()));
    }
    let first = f
        .chain
        .as_ref()
        .and_then(|c| c.roots().next())
        .or(f.pending.as_ref().filter(|p| p.root().version == 1))
        .map(SignedRoot::fingerprint_text);
    if json {
        println!(
            "{}",
            json!({
                "pointer": pointer.map(|p| p.to_string()),
                "first_root_fingerprint": first,
                "roots": roots,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(p) = pointer {
        println!("publisher {p}");
    }
    if let Some(f) = &first {
        println!("first root fingerprint {f} (what `swarm trust add` pins)");
    }
    for r in &roots {
        println!(
            "root version {}: {} of {} keys{}, {}",
            r["version"],
            r["threshold"],
            r["keys"].as_array().map_or(0, Vec::len),
            r["expires"]
                .as_u64()
                .map_or(String::new(), |e| format!(", expires unix {e}")),
            if r["complete"].as_bool() == Some(true) {
                "signed".to_owned()
            } else {
                format!(
                    "NOT YET SIGNED by enough keys ({} signed)",
                    r["signed_by"].as_array().map_or(0, Vec::len)
                )
            }
        );
        for k in r["keys"].as_array().into_iter().flatten() {
            let signed = r["signed_by"].as_array().is_some_and(|s| s.contains(k));
            println!(
                "  {} {}",
                k.as_str().unwrap_or_default(),
                if signed { "signed" } else { "" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--trust` values: a key or a fingerprint as given, a chain file as its
/// text (the API takes the text, as a node may run elsewhere).
pub(crate) fn trust_args(given: Vec<String>) -> Result<Vec<String>> {
    given
        .into_iter()
        .map(|t| {
            let path = Path::new(&t);
            let text_like = t.starts_with("swp") || t.starts_with("swrf") || t.starts_with("swsk");
            if !text_like && path.is_file() {
                read_chain_file(path)
            } else {
                Ok(t)
            }
        })
        .collect()
}

pub(crate) struct SignArgs {
    pub(crate) token: String,
    pub(crate) key: Option<PathBuf>,
    pub(crate) root: Option<PathBuf>,
    pub(crate) pointer_key: Option<PathBuf>,
}

/// `swarm sign TOKEN`: add this key's signature to a threshold release.
pub(crate) fn sign(
    on: &crate::control::On,
    a: SignArgs,
    json: bool,
    dht: Option<swarm_engine::discovery::DhtConfig>,
) -> Result<ExitCode> {
    let key = read_key(&match a.key {
        Some(k) => k,
        None => default_key_path()?,
    })?;
    let mut signed = SignedRelease::from_token(&a.token)?;
    let Some(root_version) = signed.root_version() else {
        bail!(
            "this is a single-key release (swr1…): it is signed by its publisher key alone and \
             takes no more signatures"
        );
    };
    let publisher = signed.release().publisher;
    // The root it is signed under: from the chain file, the roots it
    // carries, or the chain this store knows.
    let chain = match &a.root {
        Some(p) => Chain::from_text(&read_chain_file(p)?)?,
        None => {
            let known = match on {
                crate::control::On::Store(s, _) => s
                    .roots()?
                    .into_iter()
                    .find(|(k, _)| *k == publisher)
                    .map(|(_, c)| c),
                crate::control::On::Node(_) => None,
            };
            let carried = signed.chain();
            match (carried.first(), known) {
                (Some(first), _) if first.root().version == 1 => {
                    let mut c = Chain::start(first.clone())?;
                    c.extend(&carried[1..])?;
                    c
                }
                (_, Some(mut c)) => {
                    c.extend(carried)?;
                    c
                }
                _ => bail!(
                    "the token carries no first root and this store knows no chain for {publisher}: \
                     pass the publisher's chain file with --root"
                ),
            }
        }
    };
    let newest = chain.newest();
    if chain.pointer() != publisher || newest.version != root_version {
        bail!(
            "the release is signed under root version {root_version} of {publisher}; the chain \
             given is at version {} of {}",
            newest.version,
            chain.pointer()
        );
    }
    signed.cosign(&key, newest)?;
    let signers = signed
        .signers(newest)
        .map_err(|e| anyhow::anyhow!("the token's signatures do not verify: {e}"))?;
    let signed = signed.with_chain(&chain);
    let need = usize::from(newest.threshold);
    let complete = signers.len() >= need;
    // This machine signed this sequence: it never signs another under it.
    if let crate::control::On::Store(s, _) = on {
        s.record_signed(&signed, Some(&chain))?;
    }
    let mut dht_put = false;
    let mut dht_error = None;
    if complete {
        let pointer_key = match &a.pointer_key {
            Some(p) => Some(read_key(p)?),
            None => (key.public() == publisher).then(|| key.clone()),
        };
        match (crate::dht::Session::open_for_publish(dht), pointer_key) {
            (Some(s), Some(pk)) => match s.put(&signed, &pk) {
                Ok(()) => dht_put = true,
                Err(e) => dht_error = Some(format!("{e:#}")),
            },
            (Some(_), None) => {
                dht_error =
                    Some("no pointer key: pass --pointer-key FILE to put it on the DHT".to_owned());
            }
            (None, _) => {}
        }
    }
    let token = signed.to_token();
    if json {
        println!(
            "{}",
            json!({
                "token": token,
                "token_length": token.len(),
                "signatures": signers.len(),
                "threshold": need,
                "complete": complete,
                "signed_by": signers.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "dht": dht_put,
                "dht_error": dht_error,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("{token}");
    if let Some(e) = &dht_error {
        eprintln!("warning: the release pointer was not put on the DHT: {e}");
    }
    let r = signed.release();
    if complete {
        eprintln!(
            "{} {} is signed by {} of the {need} keys it needs: fetchers accept it (token: {} \
             characters){}",
            r.name,
            r.version,
            signers.len(),
            token.len(),
            if dht_put {
                "; its pointer is on the DHT"
            } else {
                ""
            }
        );
    } else {
        eprintln!(
            "{} {} is signed by {} of the {need} keys it needs; pass the token to the next signer",
            r.name,
            r.version,
            signers.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
