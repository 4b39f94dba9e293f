//! Files and the machine: the scratch directory, the test file, the filesystem under it.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{self, Command};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};

use crate::MIB;

/// Reads and writes of the test file go in pieces of this size.
pub const IO_BUF: usize = 1 << 20;

/// A scratch directory, removed on drop: at the end, on error and on panic.
pub struct Scratch {
    /// Absolute, because children run in other working directories.
    pub dir: PathBuf,
}

impl Scratch {
    /// Creates `PARENT/PREFIX-PID-NANOS`.
    pub fn create(parent: &Path, prefix: &str) -> Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = parent.join(format!("{prefix}-{}-{nanos}", process::id()));
        fs::create_dir(&dir).with_context(|| format!("could not create {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        Ok(Scratch { dir })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// Refuses a `parent` on tmpfs or ramfs (that measures memory, not a disk) or with less than
/// `need` bytes free; returns its filesystem type.
pub fn check_parent(parent: &Path, need: u64) -> Result<String> {
    let fs_type = filesystem_type(parent)?;
    if matches!(fs_type.as_str(), "tmpfs" | "ramfs") {
        bail!(
            "{} is on {fs_type}, which measures memory, not a disk: pass --dir on a real disk",
            parent.display()
        );
    }
    if let Some(avail) = available_bytes(parent) {
        ensure!(
            avail >= need,
            "{} has {} MiB free, the run needs about {} MiB",
            parent.display(),
            avail / MIB,
            need / MIB
        );
    }
    Ok(fs_type)
}

/// Creates `dir` (which must not exist yet) and returns it.
pub fn fresh_dir(dir: PathBuf) -> Result<PathBuf> {
    fs::create_dir(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    Ok(dir)
}

pub fn remove_file(p: &Path) -> Result<()> {
    fs::remove_file(p).with_context(|| format!("could not remove {}", p.display()))
}

pub fn remove_dir(p: &Path) -> Result<()> {
    fs::remove_dir_all(p).with_context(|| format!("could not remove {}", p.display()))
}

/// Incompressible bytes from xorshift64, far faster than /dev/urandom.
pub fn write_test_file(path: &Path, size: u64) -> Result<()> {
    let mut f =
        File::create(path).with_context(|| format!("could not create {}", path.display()))?;
    let mut buf = vec![0u8; IO_BUF];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(IO_BUF as u64))?;
        for word in buf[..n].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    Ok(())
}

/// BLAKE3 of a whole file, one thread, 1 MiB reads.
pub fn blake3_file(path: &Path) -> Result<blake3::Hash> {
    let mut f = File::open(path).with_context(|| format!("could not open {}", path.display()))?;
    let mut buf = vec![0u8; IO_BUF];
    let mut hasher = blake3::Hasher::new();
    loop {
        let n = read_full(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize())
}

/// Fills `buf` unless the file ends first; returns how much was read (0 at the end).
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Flushes dirty pages (untimed) so the next measurement does not pay for the last one.
pub fn settle() {
    let mut sync = Command::new("sync");
    if let Err(e) = crate::proc::time(&mut sync, Duration::from_secs(300)) {
        eprintln!("warning: sync: {e:#}");
    }
}

/// The filesystem type of the mount that holds `dir`, from `/proc/mounts`.
pub fn filesystem_type(dir: &Path) -> Result<String> {
    let dir = dir.canonicalize()?;
    let mounts = fs::read_to_string("/proc/mounts").context("could not read /proc/mounts")?;
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_dev), Some(mount), Some(fs_type)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let mount = unescape_mount(mount);
        // The longest mount point containing `dir` wins; later lines shadow earlier ones.
        if dir.starts_with(&mount) && best.as_ref().is_none_or(|(l, _)| mount.len() >= *l) {
            best = Some((mount.len(), fs_type.to_owned()));
        }
    }
    Ok(best.map_or_else(|| "unknown".into(), |(_, t)| t))
}

/// `/proc/mounts` writes space, tab, newline and backslash as octal escapes.
fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Free bytes on the filesystem of `dir`, from `df -Pk`; `None` if df is unavailable.
pub fn available_bytes(dir: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

pub fn mem_total_kib() -> Option<u64> {
    let info = fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The `VmHWM` line of `/proc/PID/status` (peak resident set, KiB). Gone once the process exits.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
