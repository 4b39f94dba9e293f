//! `swarm mirror`: write a root, or a signed release of one, as the static
//! layout of `wire-spec/mirror.md` for any web server or CDN to serve.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use swarm_engine::release::{SignedRelease, Want};
use swarm_engine::store::{MirrorOptions, Store};

use crate::{bytes, plural};

pub(crate) struct MirrorArgs<'a> {
    pub(crate) target: &'a str,
    pub(crate) dir: &'a Path,
    pub(crate) trust: &'a [String],
}

pub(crate) fn run(store: &Store, a: MirrorArgs<'_>, json: bool) -> Result<ExitCode> {
    let t = a.target.trim();
    // A token is checked like `swarm verify` checks it, before anything is
    // written: a mirror carries only releases this store would accept.
    let (root, release) = if swarm_engine::release::is_token(t) {
        let signed = SignedRelease::from_token(t)?;
        let policy = crate::release::policy(store, a.trust)?;
        store.check_release(&policy, &signed, &Want::default())?;
        (signed.release().root, Some(signed))
    } else {
        if !a.trust.is_empty() {
            anyhow::bail!("--trust applies to a signed-root token, not a bare root");
        }
        (t.parse()?, None)
    };
    let bar = crate::bar(json, "mirroring");
    let opts = MirrorOptions {
        release,
        progress: Some(crate::progress_fn(&bar)),
    };
    let done = store.write_mirror(&root, a.dir, &opts);
    bar.finish_and_clear();
    let done = done?;
    if json {
        println!(
            "{}",
            json!({
                "root": done.root.to_hex(),
                "dir": done.dir,
                "files": done.files,
                "bytes": done.bytes,
                "written": done.written,
                "written_bytes": done.written_bytes,
                "replaced": done.replaced,
                "latest": done.latest,
                "newer_kept": done.newer_kept,
            })
        );
    } else {
        eprintln!(
            "mirrored {} to {}: {} file{}, {} ({} written, {} replaced)",
            done.root,
            done.dir.display(),
            done.files,
            plural(done.files),
            bytes(done.bytes),
            done.written,
            done.replaced
        );
        if let Some(latest) = &done.latest {
            match done.newer_kept {
                Some(seq) => {
                    eprintln!("{latest} holds a newer release (seq {seq}) and was left as it is")
                }
                None => eprintln!("release token in {latest}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
