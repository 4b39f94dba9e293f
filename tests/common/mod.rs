//! Helpers shared by the end-to-end tests: run the real `swarm` binary
//! against a store, parse its `--json` output, build trees of files, and
//! compare trees byte by byte, modes included.

// Every test file that says `mod common;` compiles its own copy of this
// module and uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub(crate) const SWARM: &str = env!("CARGO_BIN_EXE_swarm");

/// `swarm --store STORE`, isolated from the environment's `SWARM_STORE`
/// and from the terminal.
pub(crate) fn swarm_cmd(store: &Path) -> Command {
    let mut c = Command::new(SWARM);
    c.arg("--store")
        .arg(store)
        .env_remove("SWARM_STORE")
        // Tests never touch the internet: no public DHT unless a test
        // points the binary at its own local one.
        .env("SWARM_NO_DHT", "1")
        .stdin(Stdio::null());
    c
}

/// One finished run of the binary.
#[derive(Debug)]
pub(crate) struct Run {
    /// The command line, for failure messages.
    pub(crate) cmd: String,
    /// Exit code; `None` if a signal ended it.
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout parsed as exactly one JSON value.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout of `{}` is not one JSON value ({e}):\n{self}",
                self.cmd
            )
        })
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\nexit: {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

/// Run `swarm --store STORE ARGS...` to completion.
pub(crate) fn swarm<I, S>(store: &Path, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut cmd = format!("swarm --store {}", store.display());
    for a in &args {
        let _ = write!(cmd, " {}", a.to_string_lossy());
    }
    let out = swarm_cmd(store)
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {SWARM}: {e}"));
    Run {
        cmd,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run and require exit status 0.
pub(crate) fn swarm_ok<I, S>(store: &Path, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let run = swarm(store, args);
    assert!(run.success(), "expected success:\n{run}");
    run
}

/// Run with `--json`, require success, return the parsed output.
pub(crate) fn swarm_json<I, S>(store: &Path, args: I) -> Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut all: Vec<std::ffi::OsString> = vec!["--json".into()];
    all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
    swarm_ok(store, all).json()
}

/// Run and require a clean failure: exit code 1 (not a panic's 101, not a
/// signal), nothing on stdout, and exactly one line on stderr, starting
/// with `error: `. Returns the message after `error: `.
pub(crate) fn swarm_err<I, S>(store: &Path, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let run = swarm(store, args);
    error_message(&run)
}

/// The checks of [`swarm_err`] on a run that already happened.
pub(crate) fn error_message(run: &Run) -> String {
    assert_no_panic(run);
    assert_eq!(run.code, Some(1), "expected exit code 1:\n{run}");
    assert!(run.stdout.is_empty(), "expected nothing on stdout:\n{run}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr:\n{run}");
    let msg = lines[0]
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("stderr does not start with `error: `:\n{run}"));
    assert!(!msg.trim().is_empty(), "empty error message:\n{run}");
    msg.to_owned()
}

/// The process did not panic.
pub(crate) fn assert_no_panic(run: &Run) {
    assert!(
        run.code != Some(101)
            && !run.stderr.contains("panicked")
            && !run.stderr.contains("RUST_BACKTRACE"),
        "swarm panicked:\n{run}"
    );
}

/// Whether `haystack` contains `needle`, ignoring ASCII case.
pub(crate) fn mentions(haystack: &str, needle: &str) -> bool {
    haystack
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

// ---------------------------------------------------------------------------
// Child processes, bounded in time.

/// A child process that is SIGKILLed and reaped when dropped, so a failing
/// test leaves nothing running.
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) child: Child,
}

impl Proc {
    pub(crate) fn spawn(cmd: &mut Command) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SWARM}: {e}"));
        Self { child }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if it has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll child process")
    }

    /// Wait up to `limit` for it to exit.
    pub(crate) fn wait_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `swarm --store STORE ARGS...` to completion, killed (and the test
/// failed) if it runs longer than `limit`.
pub(crate) fn swarm_within(store: &Path, args: &[OsString], limit: Duration) -> Run {
    let mut cmd = format!("swarm --store {}", store.display());
    for a in args {
        cmd.push(' ');
        cmd.push_str(&a.to_string_lossy());
    }
    let out = tempfile::tempfile().expect("temporary file for stdout");
    let err = tempfile::tempfile().expect("temporary file for stderr");
    let mut proc = Proc::spawn(
        swarm_cmd(store)
            .args(args)
            .stdout(out.try_clone().expect("clone file handle"))
            .stderr(err.try_clone().expect("clone file handle")),
    );
    let status = proc.wait_within(limit);
    let read = |mut f: fs::File| {
        let mut s = String::new();
        f.rewind().expect("rewind output file");
        f.read_to_string(&mut s).expect("read output file");
        s
    };
    let (stdout, stderr) = (read(out), read(err));
    let Some(status) = status else {
        drop(proc);
        panic!("`{cmd}` still running after {limit:?}; killed it\n--- stderr ---\n{stderr}");
    };
    Run {
        cmd,
        code: status.code(),
        stdout,
        stderr,
    }
}

// ---------------------------------------------------------------------------
// Nodes: `swarm node` children.

/// `swarm --store STORE [--json] node --listen 127.0.0.1:0`.
pub(crate) fn node_cmd(store: &Path, json: bool) -> Command {
    let mut cmd = swarm_cmd(store);
    if json {
        cmd.arg("--json");
    }
    cmd.args(["node", "--listen", "127.0.0.1:0"]);
    cmd
}

/// Where a node on `store` logs its stderr: `STORE.node-stderr`.
pub(crate) fn node_log(store: &Path) -> PathBuf {
    PathBuf::from(format!("{}.node-stderr", store.display()))
}

/// How a node's stderr log is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogMode {
    /// Created afresh: the log holds this run only.
    Truncate,
    /// Appended to: runs on one store share one log.
    Append,
}

/// A started `swarm node`: SIGKILLed and reaped when dropped.
#[derive(Debug)]
pub(crate) struct NodeChild {
    pub(crate) proc: Proc,
    /// Its stderr.
    pub(crate) log: PathBuf,
    /// The first lines it printed on stdout.
    pub(crate) lines: Vec<String>,
}

impl NodeChild {
    /// Spawn `cmd`, a `swarm node` command, with stdout piped and stderr
    /// to `log`, and wait up to `patience` for its first `want` lines on
    /// stdout. A node that never prints them fails the test (and is
    /// killed) instead of hanging it.
    pub(crate) fn spawn(
        cmd: &mut Command,
        log: &Path,
        mode: LogMode,
        want: usize,
        patience: Duration,
    ) -> Self {
        let stderr = match mode {
            LogMode::Truncate => fs::File::create(log).expect("create node log"),
            LogMode::Append => fs::File::options()
                .create(true)
                .append(true)
                .open(log)
                .expect("open node log"),
        };
        cmd.stdout(Stdio::piped()).stderr(stderr);
        let mut proc = Proc::spawn(cmd);
        let stdout = proc.child.stdout.take().expect("piped stdout");
        // Read the announcement on a thread, so the wait is bounded.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + patience;
        let mut lines = Vec::new();
        while lines.len() < want {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => lines.push(line),
                Err(e) => {
                    drop(proc);
                    panic!(
                        "swarm node (log {}) did not announce itself ({e}); stdout: {lines:?}\n\
                         --- stderr ---\n{}",
                        log.display(),
                        fs::read_to_string(log).unwrap_or_default()
                    );
                }
            }
        }
        Self {
            proc,
            log: log.to_owned(),
            lines,
        }
    }

    /// The first stdout line, parsed as `node --json` prints it.
    pub(crate) fn announcement(&self) -> Value {
        let line = &self.lines[0];
        serde_json::from_str(line).unwrap_or_else(|e| panic!("node --json printed {line:?}: {e}"))
    }

    /// The `addr` of the [`announcement`](Self::announcement).
    pub(crate) fn json_addr(&self) -> String {
        str_field(&self.announcement(), "addr").to_owned()
    }

    /// Its stderr so far.
    pub(crate) fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait up to `limit` until its stderr contains `until`.
    pub(crate) fn wait_for_log(&self, until: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.log_text();
            if text.contains(until) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the node did not log {until:?} within {limit:?}:\n{text}"
            );
            sleep(Duration::from_millis(100));
        }
    }
}

// ---------------------------------------------------------------------------
// The commands, through --json.

/// What `swarm add --json` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Added {
    pub(crate) root: String,
    pub(crate) size: u64,
    pub(crate) files: u64,
    pub(crate) new_bytes: u64,
}

/// `swarm add --json PATHS...`, required to succeed.
pub(crate) fn add<P: AsRef<Path>>(store: &Path, paths: &[P]) -> Added {
    let mut args: Vec<&OsStr> = vec![OsStr::new("add")];
    args.extend(paths.iter().map(|p| p.as_ref().as_os_str()));
    let v = swarm_json(store, args);
    let root = str_field(&v, "root").to_owned();
    assert!(is_root_hex(&root), "add printed a bad root: {v}");
    Added {
        root,
        size: u64_field(&v, "size"),
        files: u64_field(&v, "files"),
        new_bytes: u64_field(&v, "new_bytes"),
    }
}

/// `swarm export ROOT -o OUT [--force]`, required to succeed.
pub(crate) fn export(store: &Path, root: &str, out: &Path, force: bool) {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("export"),
        OsStr::new(root),
        OsStr::new("-o"),
        out.as_os_str(),
    ];
    if force {
        args.push(OsStr::new("--force"));
    }
    swarm_ok(store, args);
}

/// The roots `swarm ls --json` lists.
pub(crate) fn pinned_roots(store: &Path) -> Vec<String> {
    let v = swarm_json(store, ["ls"]);
    let pins = v["pins"]
        .as_array()
        .unwrap_or_else(|| panic!("ls --json has no pins array: {v}"));
    pins.iter()
        .map(|p| str_field(p, "root").to_owned())
        .collect()
}

/// `swarm gc --json`: (blobs, bytes) freed.
pub(crate) fn gc(store: &Path) -> (u64, u64) {
    let v = swarm_json(store, ["gc"]);
    (u64_field(&v, "blobs"), u64_field(&v, "bytes"))
}

/// `swarm check --json` must find nothing wrong.
pub(crate) fn assert_check_ok(store: &Path) {
    let run = swarm(store, ["--json", "check"]);
    assert!(run.success(), "check failed:\n{run}");
    let v = run.json();
    assert_eq!(v["ok"], Value::Bool(true), "check not ok:\n{run}");
    assert_eq!(
        v["problems"].as_array().map(Vec::len),
        Some(0),
        "check listed problems:\n{run}"
    );
}

/// Export `root` to a fresh directory and compare it with `original`, a
/// file or directory that was added on its own.
pub(crate) fn assert_exports_as(store: &Path, root: &str, original: &Path) {
    let out = tempfile::tempdir().expect("tempdir");
    export(store, root, out.path(), false);
    let name = original.file_name().expect("original has a file name");
    let exported = out.path().join(name);
    if original.is_dir() {
        assert_same_tree(original, &exported);
    } else {
        assert_same_file(original, &exported);
    }
    assert_eq!(
        dir_names(out.path()),
        vec![name.to_string_lossy().into_owned()],
        "export wrote more than the root's one top-level entry"
    );
}

pub(crate) fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {v}"))
}

pub(crate) fn u64_field(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer {key:?} in {v}"))
}

pub(crate) fn is_root_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The blob hash the store names a file's content by.
pub(crate) fn blob_hash(bytes: &[u8]) -> String {
    swarm_engine::Hash::of(bytes).to_hex()
}

// ---------------------------------------------------------------------------
// Making files.

/// `len` deterministic pseudo-random bytes (xorshift64*), distinct per seed.
pub(crate) fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Write `bytes` to `path` (creating parent directories) with `mode`.
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent directories");
    }
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    set_mode(path, mode);
}

pub(crate) fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Write a `len`-byte file quickly: one pseudo-random 1 MiB block, with
/// the block number stamped into each copy so no two blocks are equal.
pub(crate) fn write_big_file(path: &Path, len: u64, seed: u64) {
    const MIB: usize = 1 << 20;
    let mut block = pseudo_random(MIB, seed);
    let mut f = io::BufWriter::new(fs::File::create(path).expect("create big file"));
    let mut left = len;
    let mut i = 0u64;
    while left > 0 {
        block[..8].copy_from_slice(&i.to_le_bytes());
        let n = left.min(MIB as u64) as usize;
        f.write_all(&block[..n]).expect("write big file");
        left -= n as u64;
        i += 1;
    }
    f.flush().expect("flush big file");
}

/// One file of a tree to build: relative path, contents, mode.
pub(crate) type Spec<'a> = (&'a str, Vec<u8>, u32);

/// Create the files of `specs` under `root`.
pub(crate) fn make_tree(root: &Path, specs: &[Spec<'_>]) {
    for (rel, bytes, mode) in specs {
        write_file(&root.join(rel), bytes, *mode);
    }
}

/// Copy a directory tree (files and directories only).
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create copy");
    for e in fs::read_dir(from).expect("read dir to copy") {
        let e = e.expect("dir entry");
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&src, &dst);
        } else {
            fs::copy(&src, &dst).expect("copy file");
        }
    }
}

/// XOR the byte at `offset` of `path` with 0xff.
pub(crate) fn flip_byte(path: &Path, offset: u64) {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open file to corrupt");
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).expect("read byte to flip");
    b[0] ^= 0xff;
    f.write_all_at(&b, offset).expect("write flipped byte");
    f.sync_all().expect("sync corrupted file");
}

/// Whether file permissions stop this process from reading (false for root
/// or with CAP_DAC_OVERRIDE). Probes with a real mode-000 file in `scratch`.
pub(crate) fn permissions_block_reads(scratch: &Path) -> bool {
    let probe = scratch.join("permission-probe");
    write_file(&probe, b"x", 0o000);
    let blocked = fs::File::open(&probe).is_err();
    set_mode(&probe, 0o600);
    let _ = fs::remove_file(&probe);
    blocked
}

// ---------------------------------------------------------------------------
// Looking at results.

/// Names in a directory, sorted, hidden ones included; empty if missing.
pub(crate) fn dir_names(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

/// Every path under `dir` (recursively) whose name ends with `suffix`.
pub(crate) fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let e = e.expect("dir entry");
        let p = e.path();
        if e.file_type().expect("file type").is_dir() {
            out.extend(files_ending(&p, suffix));
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The blob data files of a store: DIR/blobs/ab/<hex>.data.
pub(crate) fn data_files(store: &Path) -> Vec<PathBuf> {
    files_ending(&store.join("blobs"), ".data")
}

/// The hash a blob file is named by.
pub(crate) fn file_stem(p: &Path) -> String {
    p.file_stem()
        .expect("blob file has a stem")
        .to_string_lossy()
        .into_owned()
}

/// Files left in DIR/tmp.
pub(crate) fn tmp_files(store: &Path) -> Vec<String> {
    dir_names(&store.join("tmp"))
}

/// Two files have the same bytes and the same permission bits.
pub(crate) fn assert_same_file(expected: &Path, actual: &Path) {
    let (me, ma) = (meta(expected), meta(actual));
    assert!(
        ma.file_type().is_file(),
        "{} is not a regular file",
        actual.display()
    );
    assert_eq!(
        me.permissions().mode() & 0o7777,
        ma.permissions().mode() & 0o7777,
        "mode of {} differs from {}",
        actual.display(),
        expected.display()
    );
    assert_same_bytes(expected, actual);
}

/// Two files have the same bytes; streams, so large files are fine.
pub(crate) fn assert_same_bytes(expected: &Path, actual: &Path) {
    let open = |p: &Path| {
        io::BufReader::with_capacity(
            1 << 20,
            fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display())),
        )
    };
    let (le, la) = (meta(expected).len(), meta(actual).len());
    assert_eq!(
        le,
        la,
        "{} has {la} bytes, {} has {le}",
        actual.display(),
        expected.display()
    );
    let (mut a, mut b) = (open(expected), open(actual));
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut off = 0u64;
    loop {
        let n = read_full(&mut a, &mut ba);
        let m = read_full(&mut b, &mut bb);
        assert_eq!(n, m, "{} changed length while compared", actual.display());
        if let Some(i) = (0..n).find(|&i| ba[i] != bb[i]) {
            panic!(
                "{} differs from {} at byte {}",
                actual.display(),
                expected.display(),
                off + i as u64
            );
        }
        if n == 0 {
            return;
        }
        off += n as u64;
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).expect("read while comparing") {
            0 => break,
            k => n += k,
        }
    }
    n
}

fn meta(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink(PathBuf),
    Other,
}

fn listing(root: &Path) -> BTreeMap<PathBuf, Kind> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Kind>) {
        for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let p = e.expect("dir entry").path();
            let rel = p.strip_prefix(root).expect("under root").to_owned();
            let ft = meta(&p).file_type();
            let kind = if ft.is_dir() {
                walk(root, &p, out);
                Kind::Dir
            } else if ft.is_file() {
                Kind::File
            } else if ft.is_symlink() {
                Kind::Symlink(fs::read_link(&p).expect("read link"))
            } else {
                Kind::Other
            };
            out.insert(rel, kind);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Two directory trees hold the same paths, and each file the same bytes
/// and permission bits. (Directory modes are not compared: manifests
/// record files only.)
pub(crate) fn assert_same_tree(expected: &Path, actual: &Path) {
    let (le, la) = (listing(expected), listing(actual));
    assert_eq!(
        le.iter().collect::<Vec<_>>(),
        la.iter().collect::<Vec<_>>(),
        "{} and {} hold different entries",
        expected.display(),
        actual.display()
    );
    for (rel, kind) in &le {
        if *kind == Kind::File {
            assert_same_file(&expected.join(rel), &actual.join(rel));
        }
    }
}

// ---------------------------------------------------------------------------
// A small filesystem of our own, to fill up.

/// A tmpfs mounted for one test; unmounted when dropped, even on panic.
/// Needs root (or CAP_SYS_ADMIN).
#[derive(Debug)]
pub(crate) struct Tmpfs {
    mountpoint: PathBuf,
}

impl Tmpfs {
    /// Mount a tmpfs of `size` (as `mount -o size=` takes it) on the
    /// existing directory `mountpoint`. Errs with mount's message.
    pub(crate) fn mount(mountpoint: &Path, size: &str) -> Result<Self, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(mountpoint)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Self {
            mountpoint: mountpoint.to_owned(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.mountpoint
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut c = Command::new("umount");
            if lazy {
                c.arg("-l");
            }
            c.arg(&self.mountpoint)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !umount(false) && !umount(true) {
            eprintln!("warning: could not unmount {}", self.mountpoint.display());
        }
    }
}

/// An argument list of mixed types (`&str`, `String`, paths), each
/// borrowed, for [`swarm`] and friends: `args!["export", root, "-o", out]`.
#[allow(unused_macros)] // not every test crate builds argument lists
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        vec![$(std::ffi::OsString::from(AsRef::<std::ffi::OsStr>::as_ref(&$a))),*]
    };
}
