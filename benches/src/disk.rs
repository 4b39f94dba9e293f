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

/// `n` files of `size` bytes in 100 subdirectories of `dir`, each a different xorshift64
/// stream, so that no two are stored once. Returns their paths.
pub fn write_small_files(dir: &Path, n: usize, size: usize) -> Result<Vec<PathBuf>> {
    let mut buf = vec![0u8; size];
    let mut paths = Vec::with_capacity(n);
    fs::create_dir_all(dir)?;
    for i in 0..n {
        let sub = dir.join(format!("d{:02}", i % 100));
        if i < 100 {
            fs::create_dir(&sub)?;
        }
        let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ (i as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        for word in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
        let p = sub.join(format!("f{i:07}.bin"));
        fs::write(&p, &buf)?;
        paths.push(p);
    }
    Ok(paths)
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

/// CPU time (user + system, all threads, dead ones included) of process `pid` (`"self"` for
/// this one), in seconds, from `/proc/PID/stat`; `None` once it is gone. Resolution: one clock
/// tick (10 ms on Linux).
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces; count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks() as f64)
}

/// `getconf CLK_TCK`, once; 100 (what Linux uses everywhere) if that fails.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// `sync; echo 3 > /proc/sys/vm/drop_caches`: the next read of any file comes from the disk.
/// Needs root.
pub fn drop_caches() -> Result<()> {
    settle();
    fs::write("/proc/sys/vm/drop_caches", "3\n")
        .context("could not drop the page cache (writing /proc/sys/vm/drop_caches needs root)")
}

/// Reads `path` through once (untimed), so the next read comes from the page cache.
pub fn warm(path: &Path) -> Result<()> {
    let mut f = File::open(path).with_context(|| format!("could not open {}", path.display()))?;
    let mut buf = vec![0u8; IO_BUF];
    while read_full(&mut f, &mut buf)? > 0 {}
    Ok(())
}

/// The store keeps each blob over 16 KiB as `blobs/xx/<hex>.data`; the test file is the largest.
pub fn largest_data_file(store: &Path) -> Result<PathBuf> {
    let mut best: Option<(u64, PathBuf)> = None;
    for shard in fs::read_dir(store.join("blobs"))? {
        let shard = shard?.path();
        if !shard.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&shard)? {
            let p = entry?.path();
            if p.extension().is_some_and(|e| e == "data") {
                let len = fs::metadata(&p)?.len();
                if best.as_ref().is_none_or(|(l, _)| len > *l) {
                    best = Some((len, p));
                }
            }
        }
    }
    best.map(|(_, p)| p)
        .with_context(|| format!("no blob .data file in {}", store.display()))
}
