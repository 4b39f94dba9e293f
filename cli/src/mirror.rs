//! `swarm mirror`: write a root, or a signed release of one, as the static
//! layout of `wire-spec/mirror.md` for any web server or CDN to serve.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use swarm_engine::api::{self, MirrorRequest};

use crate::control::{On, block};
use crate::{bytes, plural};

pub(crate) struct MirrorArgs<'a> {
    pub(crate) target: &'a str,
    pub(crate) dir: &'a Path,
    pub(crate) trust: &'a [String],
}

/// On the store, or through the node that holds it: the same checks, the
/// same layout, the same output.
pub(crate) fn run(on: &On, a: MirrorArgs<'_>, json: bool) -> Result<ExitCode> {
    let req = MirrorRequest {
        target: a.target.to_owned(),
        dir: std::path::absolute(a.dir).context("cannot find the current directory")?,
        trust: a.trust.to_vec(),
    };
    let done = match on {
        On::Store(store, _) => {
            let bar = crate::bar(json, "mirroring");
            let done = api::ops::mirror(
                store,
                &req,
                crate::release::now(),
                Some(crate::progress_fn(&bar)),
            );
            bar.finish_and_clear();
            done?
        }
        On::Node(c) => block(c.mirror(&req))??,
    };
    if json {
        println!(
            "{}",
            json!({
                "root": done.root,
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
