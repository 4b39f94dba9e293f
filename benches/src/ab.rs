//! A/B runs against a baseline binary (the previous main): which side runs first in a rep,
//! and the binaries copied into the scratch directory so a rebuild during the run changes
//! nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

/// Which binary of an A/B a run used.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Side {
    /// The binary under test (`--swarm`).
    New,
    /// The previous main (`--baseline`).
    Base,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::New => "new",
            Side::Base => "baseline",
        }
    }

    /// The sides to run in rep `rep`: only [`Side::New`] without a baseline, else A B, B A,
    /// A B … so that neither always goes first (and so always finds the page cache, the disk
    /// and the CPU clocks as the other left them).
    pub fn order(rep: usize, with_base: bool) -> &'static [Side] {
        match (with_base, rep % 2) {
            (false, _) => &[Side::New],
            (true, 0) => &[Side::New, Side::Base],
            (true, _) => &[Side::Base, Side::New],
        }
    }
}

/// Checks `--baseline PATH`: an executable file, returned canonical.
pub fn baseline(path: PathBuf) -> Result<PathBuf> {
    ensure!(
        path.is_file(),
        "--baseline {} is not a file: build the previous main first \
         (git worktree add /tmp/ab-base MAIN && cd /tmp/ab-base && \
         CARGO_TARGET_DIR=/tmp/ab-target cargo build --release -p swarm-cli)",
        path.display()
    );
    path.canonicalize()
        .with_context(|| format!("could not resolve {}", path.display()))
}

/// Copies the binary `src` to `dir/name` (mode kept) and returns the copy.
pub fn copy_binary(src: &Path, dir: &Path, name: &str) -> Result<PathBuf> {
    let dest = dir.join(name);
    fs::copy(src, &dest).with_context(|| format!("could not copy {}", src.display()))?;
    Ok(dest)
}

/// `swarm --version` and how long ago the file was built, for the header.
pub fn describe_binary(swarm: &Path) -> String {
    let version = Command::new(swarm)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "version unknown".into());
    let built = fs::metadata(swarm)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or_else(String::new, |age| {
            format!(", built {} min ago", age.as_secs() / 60)
        });
    format!("{version}{built}")
}
