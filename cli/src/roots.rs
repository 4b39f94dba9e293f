//! Roots of trust and threshold signing: `swarm root init|rotate|sign|show`
//! and `swarm sign TOKEN`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;
use swarm_engine::release::{Chain, ChainFile, MAX_CHAIN_BYTES, PublicKey, Root, SignedRoot};

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
    // A chain file is small: a huge one is refused before it is read.
    crate::files::read_bounded(path, 2 * MAX_CHAIN_BYTES as u64, "chain file")
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
        let mut f = crate::files::create_new(path, 0o644, "refusing to overwrite it")?;
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

/// `swarm sign TOKEN`: add this key's signature to a threshold release
/// (through the node when one runs on the store).
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
    let req = swarm_engine::api::SignRequest {
        token: a.token,
        key: key.to_text(),
        chain: match &a.root {
            Some(p) => Some(read_chain_file(p)?),
            None => None,
        },
        pointer_key: match &a.pointer_key {
            Some(p) => Some(read_key(p)?.to_text()),
            None => None,
        },
    };
    let r = match on {
        crate::control::On::Store(store, _) => {
            let done = swarm_engine::api::ops::sign(store, &req)?;
            let mut r = done.reply;
            match (done.pointer_key, r.complete) {
                (Some(pk), _) => {
                    if let Some(s) = crate::dht::Session::open_for_publish(dht) {
                        match s.put(&done.release, &pk) {
                            Ok(()) => r.dht = true,
                            Err(e) => r.dht_error = Some(format!("{e:#}")),
                        }
                    }
                }
                (None, true) if dht.is_some() => {
                    r.dht_error =
                        Some("no pointer key: pass --pointer-key FILE to put it on the DHT".into());
                }
                _ => {}
            }
            r
        }
        crate::control::On::Node(c) => crate::control::block(c.sign(&req))??,
    };
    if json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", r.token);
    if let Some(e) = &r.dht_error {
        eprintln!("warning: the release pointer was not put on the DHT: {e}");
    }
    if r.complete {
        eprintln!(
            "signed by {} of the {} keys it needs: fetchers accept it (token: {} characters){}",
            r.signatures,
            r.threshold,
            r.token_length,
            if r.dht {
                "; its pointer is on the DHT"
            } else {
                ""
            }
        );
    } else {
        eprintln!(
            "signed by {} of the {} keys it needs; pass the token to the next signer",
            r.signatures, r.threshold
        );
    }
    Ok(ExitCode::SUCCESS)
}
