//! `bench-local`: the single-machine bars of issue #2, measured in one run on this machine.
//!
//! - import: `swarm add` against `cp FILE DEST && sync` (target: at most 1.5x);
//! - export: `swarm export` against a plain `cp` of the stored blob (target: at most 1.5x);
//! - BLAKE3 in-process on one thread, to show hashing is not the bottleneck;
//! - peak RSS of `swarm add` and `swarm export` (target: at most 64 MiB);
//! - a design check: the same bytes written into redb as 16 KiB values, which is why the store
//!   keeps blobs larger than 16 KiB in plain files beside the database.
//!
//! Anchors and ours run in alternating order, `--reps` times each; the median is reported.
//!
//! ```text
//! cargo build --release -p swarm-cli -p swarm-benches
//! target/release/bench-local [--size-mib 1024] [--reps 3] [--dir DIR] [--swarm PATH]
//! ```

use std::env;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{self, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use redb::{Builder, ReadableDatabase, ReadableTable, TableDefinition};

const USAGE: &str = "\
usage: bench-local [--size-mib N] [--reps N] [--dir DIR] [--swarm PATH] [--timeout-secs N]

  --size-mib N       size of the test file in MiB [default: 1024]
  --reps N           repetitions of every measurement; the median is reported [default: 3]
  --dir DIR          where to create the scratch directory; must be on a real disk, not tmpfs
                     [default: $TMPDIR, else /var/tmp]
  --swarm PATH       the swarm binary [default: target/release/swarm in this workspace]
  --timeout-secs N   give up on any single command after this long [default: 600]

Build first: cargo build --release -p swarm-cli -p swarm-benches";

/// Hidden subcommand: the redb design check runs in a child so its peak RSS can be watched.
const REDB_CHILD: &str = "__redb-child";

/// The bars of issue #2.
const TARGET_RATIO: f64 = 1.5;
const TARGET_RSS_KIB: u64 = 64 << 10;

const IO_BUF: usize = 1 << 20;
const MIB: u64 = 1 << 20;
/// How often the child's `VmHWM` is sampled; also the resolution of every timing.
const POLL: Duration = Duration::from_millis(2);

/// The redb design check: 16 KiB values (one chunk group), a commit every 64 MiB.
const REDB_DATA: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("data");
const REDB_VALUE: usize = 16 << 10;
const REDB_COMMIT_EVERY: u64 = 64 << 20;
const REDB_CACHE: usize = 16 << 20;

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(REDB_CHILD) {
        return redb_child(&args[1..]);
    }
    let flags = match Flags::parse(&args) {
        Ok(Some(flags)) => flags,
        Ok(None) => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(e) => bail!("{e:#}\n\n{USAGE}"),
    };
    let settings = Settings::from_flags(flags)?;
    run(&settings)
}

// ---------------------------------------------------------------------------------------------
// Arguments: what the flags say, then validated settings.

#[derive(Debug, Default)]
struct Flags {
    size_mib: Option<u64>,
    reps: Option<usize>,
    dir: Option<PathBuf>,
    swarm: Option<PathBuf>,
    timeout_secs: Option<u64>,
}

impl Flags {
    /// `Ok(None)` means help was asked for.
    fn parse(args: &[String]) -> Result<Option<Self>> {
        let mut flags = Flags::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (arg.as_str(), None),
            };
            if matches!(name, "-h" | "--help") {
                return Ok(None);
            }
            let mut value = || -> Result<String> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => it
                        .next()
                        .cloned()
                        .with_context(|| format!("{name} needs a value")),
                }
            };
            match name {
                "--size-mib" => flags.size_mib = Some(parse_num(name, &value()?)?),
                "--reps" => flags.reps = Some(parse_num(name, &value()?)?),
                "--dir" => flags.dir = Some(value()?.into()),
                "--swarm" => flags.swarm = Some(value()?.into()),
                "--timeout-secs" => flags.timeout_secs = Some(parse_num(name, &value()?)?),
                _ => bail!("unknown argument {arg:?}"),
            }
        }
        Ok(Some(flags))
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T> {
    v.parse()
        .ok()
        .with_context(|| format!("{name} wants a whole number, got {v:?}"))
}

#[derive(Debug)]
struct Settings {
    size: u64,
    reps: usize,
    parent: PathBuf,
    swarm: PathBuf,
    timeout: Duration,
}

impl Settings {
    fn from_flags(f: Flags) -> Result<Self> {
        let size_mib = f.size_mib.unwrap_or(1024);
        ensure!(
            (1..=1 << 20).contains(&size_mib),
            "--size-mib must be between 1 and 1048576"
        );
        let reps = f.reps.unwrap_or(3);
        ensure!(
            (1..=100).contains(&reps),
            "--reps must be between 1 and 100"
        );
        let timeout = Duration::from_secs(f.timeout_secs.unwrap_or(600).max(1));
        let parent = match f.dir {
            Some(d) => d,
            None => env::var_os("TMPDIR")
                .filter(|t| !t.is_empty())
                .map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from),
        };
        ensure!(parent.is_dir(), "{} is not a directory", parent.display());
        // benches/ sits one level below the workspace root.
        let default_swarm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/swarm");
        let swarm = f.swarm.unwrap_or(default_swarm);
        ensure!(
            swarm.is_file(),
            "{} not found: run `cargo build --release -p swarm-cli -p swarm-benches` first, \
             or pass --swarm PATH",
            swarm.display()
        );
        let swarm = swarm.canonicalize()?;
        Ok(Settings {
            size: size_mib * MIB,
            reps,
            parent,
            swarm,
            timeout,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The benchmark.

fn run(s: &Settings) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: bench-local is a debug build; the BLAKE3 and redb figures will be low");
    }
    let fs_type = filesystem_type(&s.parent)?;
    if matches!(fs_type.as_str(), "tmpfs" | "ramfs") {
        bail!(
            "{} is on {fs_type}, which measures memory, not a disk: pass --dir on a real disk",
            s.parent.display()
        );
    }
    // At most: input, the kept store, one scratch copy (file, store or redb) and an export.
    let need = 4 * s.size + 256 * MIB;
    if let Some(avail) = available_bytes(&s.parent) {
        ensure!(
            avail >= need,
            "{} has {} MiB free, the run needs about {} MiB",
            s.parent.display(),
            avail / MIB,
            need / MIB
        );
    }
    let scratch = Scratch::create(&s.parent)?;
    let dir = &scratch.dir;

    println!(
        "bench-local: {} MiB file, {} rep(s), median reported; {} cpu(s), {} MiB RAM",
        s.size / MIB,
        s.reps,
        thread::available_parallelism().map_or(0, |n| n.get()),
        mem_total_kib().map_or(0, |k| k >> 10),
    );
    println!("scratch: {} ({fs_type})", dir.display());
    println!("swarm:   {}", s.swarm.display());

    let input = dir.join("input.bin");
    let t = Instant::now();
    write_test_file(&input, s.size)?;
    settle();
    let secs = t.elapsed().as_secs_f64();
    println!("test file written in {secs:.2} s (xorshift64, synced)\n");

    // BLAKE3 first: the file is fresh in the page cache, so this is hashing, not the disk.
    let mut hash = Vec::with_capacity(s.reps);
    let mut input_hash = None;
    for _ in 0..s.reps {
        let (secs, h) = blake3_file(&input)?;
        hash.push(secs);
        input_hash = Some(h);
    }
    let input_hash = input_hash.context("no BLAKE3 run")?;

    let import = bench_import(s, dir, &input)?;
    let export = bench_export(s, dir, &import, input_hash)?;
    let gnu_time = gnu_time_cross_check(s, dir, &input, &import)?;
    report(s.size, &hash, &import, &export, &gnu_time).print();

    drop(scratch);
    Ok(())
}

/// What the import phase measured: seconds and peak RSS (KiB), one entry per rep.
struct Import {
    cp_sync: Vec<f64>,
    add: Vec<f64>,
    add_rss: Vec<u64>,
    redb_write: Vec<f64>,
    redb_read: Vec<f64>,
    redb_rss: Vec<u64>,
    redb_file_size: u64,
    /// The first rep's store, kept for the export phase, and its root.
    store: PathBuf,
    root: String,
}

/// `cp FILE DEST && sync`, `swarm add` and the redb design check, in rotating order.
fn bench_import(s: &Settings, dir: &Path, input: &Path) -> Result<Import> {
    let mut cp_sync = Vec::with_capacity(s.reps);
    let mut add = Vec::with_capacity(s.reps);
    let mut add_rss = Vec::with_capacity(s.reps);
    let mut redb_write = Vec::with_capacity(s.reps);
    let mut redb_read = Vec::with_capacity(s.reps);
    let mut redb_rss = Vec::with_capacity(s.reps);
    let mut redb_file_size = 0;
    let mut kept: Option<(PathBuf, String)> = None;
    for rep in 0..s.reps {
        // Rotate so that none of the three always runs first (or right after another).
        for step in 0..3 {
            match (rep + step) % 3 {
                0 => {
                    let dest = dir.join("cp-dest.bin");
                    let mut cmd = Command::new("sh");
                    cmd.arg("-c")
                        .arg(r#"cp -- "$1" "$2" && sync"#)
                        .arg("sh")
                        .arg(input)
                        .arg(&dest);
                    cp_sync.push(measure(&mut cmd, s.timeout, false)?.secs);
                    remove_file(&dest)?;
                }
                1 => {
                    let store = dir.join(format!("store-{rep}"));
                    let r = measure(&mut add_cmd(s, &store, input), s.timeout, true)?;
                    let root = parse_root(&r.stdout)?;
                    add.push(r.secs);
                    add_rss.extend(r.peak_kib);
                    match &kept {
                        Some((_, first)) => {
                            ensure!(*first == root, "swarm add gave two roots: {first}, {root}");
                            remove_dir(&store)?;
                        }
                        None => kept = Some((store, root)),
                    }
                }
                _ => {
                    let db = dir.join("design.redb");
                    let mut cmd = Command::new(env::current_exe()?);
                    cmd.arg(REDB_CHILD).arg(input).arg(&db);
                    let r = measure(&mut cmd, s.timeout, true)?;
                    let (write, read) = parse_redb_child(&r.stdout)?;
                    redb_write.push(write);
                    redb_read.push(read);
                    redb_rss.extend(r.peak_kib);
                    redb_file_size = fs::metadata(&db)?.len();
                    remove_file(&db)?;
                }
            }
            settle();
        }
    }
    let (store, root) = kept.context("no swarm add ran")?;
    Ok(Import {
        cp_sync,
        add,
        add_rss,
        redb_write,
        redb_read,
        redb_rss,
        redb_file_size,
        store,
        root,
    })
}

/// What the export phase measured, one entry per rep.
struct Export {
    cp: Vec<f64>,
    export: Vec<f64>,
    export_rss: Vec<u64>,
}

/// Plain `cp` of the stored blob against `swarm export`, alternating which goes first.
fn bench_export(
    s: &Settings,
    dir: &Path,
    import: &Import,
    input_hash: blake3::Hash,
) -> Result<Export> {
    // The anchor copies the blob file the store holds, so both read the same bytes.
    let stored = largest_data_file(&import.store)?;
    let dest = dir.join("export-dest.bin");
    let mut cp = Vec::with_capacity(s.reps);
    let mut export = Vec::with_capacity(s.reps);
    let mut export_rss = Vec::with_capacity(s.reps);
    for rep in 0..s.reps {
        for step in 0..2 {
            if (rep + step) % 2 == 0 {
                let mut cmd = Command::new("cp");
                cmd.arg("--").arg(&stored).arg(&dest);
                cp.push(measure(&mut cmd, s.timeout, false)?.secs);
            } else {
                let mut cmd = export_cmd(s, &import.store, &import.root, &dest);
                let r = measure(&mut cmd, s.timeout, true)?;
                export.push(r.secs);
                export_rss.extend(r.peak_kib);
                if rep == 0 {
                    // A benchmark of a broken export would be worthless: check it once, untimed.
                    let (_, got) = blake3_file(&dest)?;
                    ensure!(got == input_hash, "swarm export wrote different bytes");
                }
            }
            remove_file(&dest)?;
            settle();
        }
    }
    Ok(Export {
        cp,
        export,
        export_rss,
    })
}

/// Max RSS (KiB) of one more `swarm add` and `swarm export`, as GNU time reports it.
struct GnuTime {
    add: Option<u64>,
    export: Option<u64>,
}

/// A second opinion on the `VmHWM` poller, which can miss a peak in a child's last 2 ms.
fn gnu_time_cross_check(s: &Settings, dir: &Path, input: &Path, i: &Import) -> Result<GnuTime> {
    let fresh = dir.join("store-gnu-time");
    let add = gnu_time_max_rss(add_cmd(s, &fresh, input), s.timeout)?;
    remove_dir(&fresh)?;
    settle();
    let dest = dir.join("export-gnu-time.bin");
    let export = gnu_time_max_rss(export_cmd(s, &i.store, &i.root, &dest), s.timeout)?;
    remove_file(&dest)?;
    Ok(GnuTime { add, export })
}

fn report(size: u64, hash: &[f64], i: &Import, e: &Export, gnu: &GnuTime) -> Table {
    let add = median(&i.add);
    let export = median(&e.export);
    let mut t = Table::default();

    t.area("import");
    t.time("A  cp FILE DEST && sync", size, &i.cp_sync);
    t.time("   swarm add FILE (fresh store)", size, &i.add);
    t.ratio("   swarm add / anchor A", add / median(&i.cp_sync));

    t.area("export");
    t.time("B  cp STORED DEST2 (no sync)", size, &e.cp);
    t.time("   swarm export ROOT -o DEST2", size, &e.export);
    t.ratio("   swarm export / anchor B", export / median(&e.cp));

    t.area("hash");
    t.time("blake3 in-process, 1 thread, 1 MiB reads", size, hash);
    t.info(
        "   blake3 time / swarm add time",
        format!("{:.2}x", median(hash) / add),
    );

    t.area("memory");
    t.rss("peak RSS swarm add (VmHWM poll)", &i.add_rss);
    t.rss("peak RSS swarm add (GNU time %M)", gnu.add.as_slice());
    t.rss("peak RSS swarm export (VmHWM poll)", &e.export_rss);
    t.rss("peak RSS swarm export (GNU time %M)", gnu.export.as_slice());

    t.area("design");
    t.time("redb 16 KiB values: write + commits", size, &i.redb_write);
    t.design("   redb write / swarm add", median(&i.redb_write) / add);
    t.time("redb 16 KiB values: read in order", size, &i.redb_read);
    let read = median(&i.redb_read) / export;
    t.info(
        "   redb read / swarm export (writes no file)",
        format!("{read:.2}x"),
    );
    let file = i.redb_file_size;
    let bloat = file as f64 / size as f64;
    t.info(
        "redb file size / data size",
        format!("{bloat:.3}x ({} MiB)", file / MIB),
    );
    let rss = max(&i.redb_rss).map_or("n/a".into(), fmt_kib);
    t.info("peak RSS redb child (VmHWM poll)", rss);
    t
}

fn add_cmd(s: &Settings, store: &Path, input: &Path) -> Command {
    let mut cmd = Command::new(&s.swarm);
    cmd.arg("--store").arg(store).arg("add").arg(input);
    cmd
}

fn export_cmd(s: &Settings, store: &Path, root: &str, dest: &Path) -> Command {
    let mut cmd = Command::new(&s.swarm);
    cmd.arg("--store")
        .arg(store)
        .arg("export")
        .arg(root)
        .arg("-o")
        .arg(dest);
    cmd
}

// ---------------------------------------------------------------------------------------------
// Output.

#[derive(Default)]
struct Table {
    area: &'static str,
    rows: Vec<[String; 6]>,
    misses: usize,
    bars: usize,
}

impl Table {
    /// Rows pushed from now on belong to `area`.
    fn area(&mut self, area: &'static str) {
        self.area = area;
    }

    fn push(&mut self, figure: &str, value: String, target: &str, result: &str) {
        let area = self.area.into();
        let row = [
            area,
            figure.into(),
            value,
            target.into(),
            result.into(),
            String::new(),
        ];
        self.rows.push(row);
    }

    fn runs(&mut self, runs: impl Iterator<Item = String>) {
        if let Some(row) = self.rows.last_mut() {
            row[5] = runs.collect::<Vec<_>>().join(" ");
        }
    }

    fn time(&mut self, figure: &str, bytes: u64, runs: &[f64]) {
        let m = median(runs);
        let value = format!("{m:8.3} s {:>12}", fmt_rate(bytes, m));
        self.push(figure, value, "", "");
        self.runs(runs.iter().map(|r| format!("{r:.3}")));
    }

    fn ratio(&mut self, figure: &str, ratio: f64) {
        let pass = ratio <= TARGET_RATIO;
        self.verdict(pass);
        let target = format!("≤ {TARGET_RATIO}x");
        self.push(figure, format!("{ratio:8.2}x"), &target, pass_miss(pass));
    }

    /// The design check's bar is the other way round: redb must be the slower one.
    fn design(&mut self, figure: &str, ratio: f64) {
        let pass = ratio > 1.0;
        self.verdict(pass);
        self.push(figure, format!("{ratio:8.2}x"), "> 1x", pass_miss(pass));
    }

    /// The bar applies to the highest of `runs` (KiB).
    fn rss(&mut self, figure: &str, runs: &[u64]) {
        let Some(kib) = max(runs) else {
            self.push(figure, "     n/a".into(), "", "");
            return;
        };
        let pass = kib <= TARGET_RSS_KIB;
        self.verdict(pass);
        let target = format!("≤ {} MiB", TARGET_RSS_KIB >> 10);
        self.push(figure, fmt_kib(kib), &target, pass_miss(pass));
        self.runs(runs.iter().map(|k| format!("{:.1}", *k as f64 / 1024.0)));
    }

    fn info(&mut self, figure: &str, value: String) {
        self.push(figure, format!("{value:>8}"), "", "");
    }

    fn verdict(&mut self, pass: bool) {
        self.bars += 1;
        if !pass {
            self.misses += 1;
        }
    }

    fn print(&self) {
        let head = [
            "area",
            "figure",
            "median / value",
            "target",
            "result",
            "each run",
        ];
        let [a, f, v, t, r, runs] = head;
        println!("{a:<7} {f:<44} {v:<23} {t:<9} {r:<6} {runs}");
        for [a, f, v, t, r, runs] in &self.rows {
            let line = format!("{a:<7} {f:<44} {v:<23} {t:<9} {r:<6} {runs}");
            println!("{}", line.trim_end());
        }
        let met = self.bars - self.misses;
        let note = if self.misses == 0 { "" } else { " (see MISS)" };
        println!("\n{met} of {} bars met{note}", self.bars);
    }
}

fn pass_miss(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

fn fmt_rate(bytes: u64, secs: f64) -> String {
    let mib_s = bytes as f64 / MIB as f64 / secs.max(1e-9);
    if mib_s >= 10_240.0 {
        format!("{:.1} GiB/s", mib_s / 1024.0)
    } else {
        format!("{mib_s:.0} MiB/s")
    }
}

fn fmt_kib(kib: u64) -> String {
    format!("{:6.1} MiB", kib as f64 / 1024.0)
}

fn median(runs: &[f64]) -> f64 {
    let mut v = runs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn max(v: &[u64]) -> Option<u64> {
    v.iter().copied().max()
}

// ---------------------------------------------------------------------------------------------
// Running children.

struct Measured {
    secs: f64,
    /// Highest `VmHWM` seen, in KiB; `None` if not polled or never readable.
    peak_kib: Option<u64>,
    stdout: String,
}

/// Runs `cmd` to completion, timing it and (if `poll_rss`) sampling its `VmHWM` every [`POLL`].
/// The child is polled rather than waited for so that it can be given up on after `timeout`.
fn measure(cmd: &mut Command, timeout: Duration, poll_rss: bool) -> Result<Measured> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start {what}"))?;
    // Readers on their own threads, so a chatty child never blocks on a full pipe.
    let out = child.stdout.take().map(read_in_background);
    let err = child.stderr.take().map(read_in_background);
    let pid = child.id();
    let mut peak_kib = None;
    let status = loop {
        if poll_rss && let Some(kib) = vm_hwm_kib(pid) {
            peak_kib = Some(peak_kib.map_or(kib, |p: u64| p.max(kib)));
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > timeout {
            // Best effort: the error below is what matters.
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} took longer than {} s", timeout.as_secs());
        }
        thread::sleep(POLL);
    };
    let secs = start.elapsed().as_secs_f64();
    let stdout = out.map(join_reader).unwrap_or_default();
    let stderr = err.map(join_reader).unwrap_or_default();
    ensure!(status.success(), "{what} failed ({status}):\n{stderr}");
    Ok(Measured {
        secs,
        peak_kib,
        stdout,
    })
}

fn read_in_background<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error only loses the child's output, which is for messages.
        let _ = r.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn join_reader(h: thread::JoinHandle<String>) -> String {
    h.join().unwrap_or_default()
}

/// The `VmHWM` line of `/proc/PID/status` (peak resident set, KiB). Gone once the child exits.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Max RSS (KiB) as GNU time reports it; `None` if `/usr/bin/time` is missing.
fn gnu_time_max_rss(cmd: Command, timeout: Duration) -> Result<Option<u64>> {
    let gnu_time = Path::new("/usr/bin/time");
    if !gnu_time.is_file() {
        return Ok(None);
    }
    let mut wrapped = Command::new(gnu_time);
    // A marker, so the figure cannot be confused with the child's own stderr.
    wrapped
        .arg("-f")
        .arg("bench-local-maxrss=%M")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    wrapped.stderr(Stdio::piped());
    let mut child = wrapped
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("could not start /usr/bin/time")?;
    let err = child.stderr.take().map(read_in_background);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("/usr/bin/time {:?} took too long", cmd.get_program());
        }
        thread::sleep(POLL);
    };
    let stderr = err.map(join_reader).unwrap_or_default();
    ensure!(status.success(), "/usr/bin/time {cmd:?} failed:\n{stderr}");
    Ok(stderr
        .lines()
        .find_map(|l| l.strip_prefix("bench-local-maxrss="))
        .and_then(|v| v.trim().parse().ok()))
}

fn parse_root(stdout: &str) -> Result<String> {
    let root = stdout.trim();
    ensure!(
        root.len() == 64 && root.bytes().all(|b| b.is_ascii_hexdigit()),
        "swarm add printed {root:?}, not a 64-hex root"
    );
    Ok(root.to_owned())
}

/// Flushes dirty pages (untimed) so the next measurement does not pay for the last one.
fn settle() {
    if let Err(e) = Command::new("sync").status() {
        eprintln!("warning: sync failed: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Files and the machine.

/// A scratch directory, removed on drop: at the end, on error and on panic.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn create(parent: &Path) -> Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = parent.join(format!("swarm-bench-{}-{nanos}", process::id()));
        fs::create_dir(&dir).with_context(|| format!("could not create {}", dir.display()))?;
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

fn remove_file(p: &Path) -> Result<()> {
    fs::remove_file(p).with_context(|| format!("could not remove {}", p.display()))
}

fn remove_dir(p: &Path) -> Result<()> {
    fs::remove_dir_all(p).with_context(|| format!("could not remove {}", p.display()))
}

/// Incompressible bytes from xorshift64, far faster than /dev/urandom.
fn write_test_file(path: &Path, size: u64) -> Result<()> {
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

/// Seconds to hash the file and its hash, one thread, 1 MiB reads.
fn blake3_file(path: &Path) -> Result<(f64, blake3::Hash)> {
    let start = Instant::now();
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; IO_BUF];
    let mut hasher = blake3::Hasher::new();
    loop {
        let n = read_full(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let hash = hasher.finalize();
    Ok((start.elapsed().as_secs_f64(), hash))
}

/// Fills `buf` unless the file ends first; returns how much was read (0 at the end).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
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

/// The store keeps each blob over 16 KiB as `blobs/xx/<hex>.data`; the test file is the largest.
fn largest_data_file(store: &Path) -> Result<PathBuf> {
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

/// The filesystem type of the mount that holds `dir`, from `/proc/mounts`.
fn filesystem_type(dir: &Path) -> Result<String> {
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
fn available_bytes(dir: &Path) -> Option<u64> {
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

fn mem_total_kib() -> Option<u64> {
    let info = fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The redb design check, run as a child of this binary.

/// `bench-local __redb-child FILE DB`: writes FILE into a fresh redb at DB as 16 KiB values
/// keyed by index, commits every 64 MiB (default durability), reads it back in key order, and
/// prints `WRITE_SECS READ_SECS`.
fn redb_child(args: &[String]) -> Result<()> {
    let [file, db_path] = args else {
        bail!("usage: bench-local {REDB_CHILD} FILE DB");
    };
    let expected = fs::metadata(file)?.len();

    let start = Instant::now();
    let db = Builder::new().set_cache_size(REDB_CACHE).create(db_path)?;
    let mut input = File::open(file)?;
    let mut buf = vec![0u8; IO_BUF];
    let mut index = 0u64;
    let mut since_commit = 0u64;
    let mut tx = db.begin_write()?;
    loop {
        let n = read_full(&mut input, &mut buf)?;
        if n == 0 {
            break;
        }
        {
            let mut table = tx.open_table(REDB_DATA)?;
            for value in buf[..n].chunks(REDB_VALUE) {
                table.insert(index, value)?;
                index += 1;
            }
        }
        since_commit += n as u64;
        if since_commit >= REDB_COMMIT_EVERY {
            tx.commit()?;
            tx = db.begin_write()?;
            since_commit = 0;
        }
    }
    tx.commit()?;
    let write = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let rtx = db.begin_read()?;
    let table = rtx.open_table(REDB_DATA)?;
    let mut total = 0u64;
    for (next, entry) in (0u64..).zip(table.iter()?) {
        let (key, value) = entry?;
        ensure!(
            key.value() == next,
            "redb returned key {} for {next}",
            key.value()
        );
        // redb has already read the whole page in to hand out this slice.
        total += value.value().len() as u64;
    }
    let read = start.elapsed().as_secs_f64();
    ensure!(
        total == expected,
        "redb read back {total} of {expected} bytes"
    );

    println!("{write} {read}");
    Ok(())
}

fn parse_redb_child(stdout: &str) -> Result<(f64, f64)> {
    let mut it = stdout.split_whitespace().map(str::parse::<f64>);
    match (it.next(), it.next()) {
        (Some(Ok(w)), Some(Ok(r))) => Ok((w, r)),
        _ => bail!("the redb child printed {stdout:?}"),
    }
}
