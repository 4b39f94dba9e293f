//! `bench-local`: the single-machine bars of issue #2, measured in one run on this machine.
//!
//! - import: `swarm add` against `cp FILE DEST && sync` (target: at most 1.5x);
//! - export: `swarm export` against a plain `cp` of the stored blob (target: at most 1.5x);
//! - BLAKE3 in-process on one thread, to show hashing is not the bottleneck;
//! - peak RSS of `swarm add` and `swarm export` (target: at most 64 MiB);
//! - a design check: the same bytes written into redb as 16 KiB values, which is why the store
//!   keeps blobs larger than 16 KiB in plain files beside the database;
//! - small files: `swarm add DIR` of 10,000 files of 4 KiB against `cp -r DIR DEST && sync`,
//!   so that a per-file cost (such as add's two fstat calls a file) shows, per file.
//!
//! With `--baseline PATH` (the previous main), every `swarm` measurement runs with both
//! binaries, A B, B A, … from rep to rep, on the same input, and an A/B section reports the
//! medians of each and new / baseline.
//!
//! Anchors and ours run in alternating order, `--reps` times each; the median is reported.
//!
//! ```text
//! cargo build --release -p swarm-cli -p swarm-benches
//! target/release/bench-local [--size-mib 1024] [--reps 3] [--dir DIR] [--swarm PATH]
//!                            [--baseline PATH] [--small-files 10000]
//! ```

use std::env;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use redb::{Builder, ReadableDatabase, ReadableTable, TableDefinition};
use swarm_benches::ab::{self, Side, copy_binary, describe_binary};
use swarm_benches::args::{self, Flags};
use swarm_benches::disk::{
    self, IO_BUF, Scratch, blake3_file, largest_data_file, read_full, remove_dir, remove_file,
    settle,
};
use swarm_benches::proc::{Proc, measure, time};
use swarm_benches::report::{Bar, Table, fmt_kib, fmt_rate_mib, median, ratio_of_medians};
use swarm_benches::{MIB, parse_root};

const USAGE: &str = "\
usage: bench-local [--size-mib N] [--reps N] [--dir DIR] [--swarm PATH] [--baseline PATH]
                   [--small-files N] [--timeout-secs N]

  --size-mib N       size of the test file in MiB [default: 1024]
  --reps N           repetitions of every measurement; the median is reported [default: 3]
  --dir DIR          where to create the scratch directory; must be on a real disk, not tmpfs
                     [default: $TMPDIR, else /var/tmp]
  --swarm PATH       the swarm binary [default: target/release/swarm in this workspace]
  --baseline PATH    a second swarm binary (the previous main) for an A/B: every swarm add and
                     swarm export runs with both, alternating which goes first from rep to rep,
                     and an A/B section reports the medians of each and new / baseline
  --small-files N    files of 4 KiB in the small-files case (swarm add DIR against cp -r);
                     0 skips it [default: 10000]
  --timeout-secs N   give up on any single command after this long [default: 600]

Build first: cargo build --release -p swarm-cli -p swarm-benches";

/// Hidden subcommand: the redb design check runs in a child so its peak RSS can be watched.
const REDB_CHILD: &str = "__redb-child";

/// The bars of issue #2.
const TARGET_RATIO: f64 = 1.5;
const TARGET_RSS_MIB: u64 = 64;

/// The redb design check: 16 KiB values (one chunk group), a commit every 64 MiB.
const REDB_DATA: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("data");
const REDB_VALUE: usize = 16 << 10;
const REDB_COMMIT_EVERY: u64 = 64 << 20;
const REDB_CACHE: usize = 16 << 20;

/// The small-files case: this many bytes a file, distinct contents.
const SMALL_FILE: usize = 4 << 10;
const DEFAULT_SMALL_FILES: usize = 10_000;

/// The flags of bench-local beyond the shared ones.
#[derive(Debug, Default)]
struct LocalFlags {
    baseline: Option<PathBuf>,
    small_files: Option<usize>,
}

impl LocalFlags {
    /// Takes `name` if it is one of bench-local's own flags.
    fn take(&mut self, name: &str, value: &mut args::Value<'_>) -> Result<bool> {
        match name {
            "--baseline" => self.baseline = Some(value()?.into()),
            "--small-files" => {
                let v = value()?;
                let n = v
                    .parse()
                    .ok()
                    .with_context(|| format!("--small-files wants a whole number, got {v:?}"))?;
                ensure!(n <= 1_000_000, "--small-files must be at most 1000000");
                self.small_files = Some(n);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// What bench-local settles beyond the shared settings.
struct Local {
    /// The previous main, canonical, if an A/B was asked for.
    baseline: Option<PathBuf>,
    small_files: usize,
}

type Settings = args::Settings<Local>;

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(REDB_CHILD) {
        return redb_child(&args[1..]);
    }
    let Some(flags) = Flags::parse(&args, USAGE, LocalFlags::take)? else {
        return Ok(());
    };
    let baseline = flags.more.baseline.clone().map(ab::baseline).transpose()?;
    let small_files = flags.more.small_files.unwrap_or(DEFAULT_SMALL_FILES);
    let settings = Settings::from_flags(flags, |_| Local {
        baseline,
        small_files,
    })?;
    run(&settings)
}

/// The binaries every `swarm` command runs: copies in the scratch directory, so a rebuild
/// during the run changes nothing.
struct Bins {
    new: PathBuf,
    base: Option<PathBuf>,
}

impl Bins {
    fn get(&self, side: Side) -> &Path {
        match (side, &self.base) {
            (Side::Base, Some(b)) => b,
            _ => &self.new,
        }
    }

    fn has_base(&self) -> bool {
        self.base.is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// The benchmark.

fn run(s: &Settings) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: bench-local is a debug build; the BLAKE3 and redb figures will be low");
    }
    // At most: input, the kept stores (two with a baseline), one scratch copy (file, store or
    // redb) and an export; the small files are 4 KiB each, a few copies of them.
    let small = (s.more.small_files * SMALL_FILE) as u64;
    let fs_type = disk::check_parent(&s.parent, 5 * s.size + 6 * small + 256 * MIB)?;
    let scratch = Scratch::create(&s.parent, "swarm-bench")?;
    let dir = &scratch.dir;

    s.print_header("bench-local");
    println!("scratch: {} ({fs_type})", dir.display());
    let bins = Bins {
        new: copy_binary(&s.swarm, dir, "swarm-new")?,
        base: match &s.more.baseline {
            Some(b) => Some(copy_binary(b, dir, "swarm-base")?),
            None => None,
        },
    };
    println!(
        "swarm:   {} ({}), run from a copy",
        s.swarm.display(),
        describe_binary(&s.swarm)
    );
    if let Some(b) = &s.more.baseline {
        println!(
            "baseline: {} ({}), run from a copy; A/B alternating from rep to rep",
            b.display(),
            describe_binary(b)
        );
    }

    let input = dir.join("input.bin");
    let t = Instant::now();
    disk::write_test_file(&input, s.size)?;
    settle();
    let secs = t.elapsed().as_secs_f64();
    println!("test file written in {secs:.2} s (xorshift64, synced)\n");

    // BLAKE3 first: the file is fresh in the page cache, so this is hashing, not the disk.
    let mut hash = Vec::with_capacity(s.reps);
    let mut input_hash = None;
    for _ in 0..s.reps {
        let start = Instant::now();
        let h = blake3_file(&input)?;
        hash.push(start.elapsed().as_secs_f64());
        input_hash = Some(h);
    }
    let input_hash = input_hash.context("no BLAKE3 run")?;

    let import = bench_import(s, &bins, dir, &input)?;
    let export = bench_export(s, &bins, dir, &import, input_hash)?;
    let gnu_time = gnu_time_cross_check(s, &bins, dir, &input, &import)?;
    let small = bench_small_files(s, &bins, dir)?;
    let (cat_plain, cat_swarm) = bench_cat(s, &bins, &import)?;
    let mut table = report(s.size, &hash, &import, &export, &gnu_time, small.as_ref());
    table.area("cat");
    table.time("cat DATAFILE > /dev/null", s.size, &cat_plain, "page cache");
    table.time(
        "swarm cat ROOT > /dev/null (verified)",
        s.size,
        &cat_swarm,
        "page cache",
    );
    table.ratio(
        "swarm cat / cat (issue #17 bar)",
        ratio_of_medians(&cat_swarm, &cat_plain),
        Bar::AtMost(1.2),
    );
    table.print();

    drop(scratch);
    Ok(())
}

/// `cat` of the stored data file and `swarm cat` of the root, both to
/// /dev/null and from the page cache, alternating: seconds per rep.
fn bench_cat(s: &Settings, bins: &Bins, import: &Import) -> Result<(Vec<f64>, Vec<f64>)> {
    let data = largest_data_file(&import.store)?;
    let (mut plain, mut ours) = (Vec::new(), Vec::new());
    // Warm the page cache once, so that neither pays for the disk.
    std::io::copy(&mut File::open(&data)?, &mut std::io::sink())?;
    for rep in 0..s.reps {
        for step in 0..2 {
            let devnull = || File::create("/dev/null");
            if (rep + step) % 2 == 0 {
                let mut cmd = Command::new("cat");
                cmd.arg(&data).stdout(devnull()?);
                plain.push(time(&mut cmd, s.timeout)?);
            } else {
                let mut cmd = Command::new(bins.get(Side::New));
                cmd.arg("--store")
                    .arg(&import.store)
                    .args(["cat", &import.root])
                    .stdout(devnull()?);
                ours.push(time(&mut cmd, s.timeout)?);
            }
        }
    }
    Ok((plain, ours))
}

/// Seconds and peak RSS (KiB) of one binary's runs of a command, one entry per rep.
#[derive(Default)]
struct Timed {
    secs: Vec<f64>,
    rss: Vec<u64>,
}

impl Timed {
    fn push(&mut self, secs: f64, peak_kib: Option<u64>) {
        self.secs.push(secs);
        self.rss.extend(peak_kib);
    }
}

/// What the import phase measured: seconds and peak RSS (KiB), one entry per rep.
struct Import {
    cp_sync: Vec<f64>,
    add: Vec<f64>,
    add_rss: Vec<u64>,
    /// The baseline's `swarm add`, empty without one.
    base_add: Timed,
    redb_write: Vec<f64>,
    redb_read: Vec<f64>,
    redb_rss: Vec<u64>,
    redb_file_size: u64,
    /// The first rep's store, kept for the export phase, and its root.
    store: PathBuf,
    root: String,
    /// The same, made by the baseline: each binary exports from a store it wrote.
    base_store: Option<PathBuf>,
}

/// `cp FILE DEST && sync`, `swarm add` (with each binary) and the redb design check, in
/// rotating order.
fn bench_import(s: &Settings, bins: &Bins, dir: &Path, input: &Path) -> Result<Import> {
    let mut cp_sync = Vec::with_capacity(s.reps);
    let mut add = Timed::default();
    let mut base_add = Timed::default();
    let mut redb_write = Vec::with_capacity(s.reps);
    let mut redb_read = Vec::with_capacity(s.reps);
    let mut redb_rss = Vec::with_capacity(s.reps);
    let mut redb_file_size = 0;
    let mut kept: Option<(PathBuf, String)> = None;
    let mut base_store = None;
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
                    cp_sync.push(time(&mut cmd, s.timeout)?);
                    remove_file(&dest)?;
                }
                1 => {
                    for (i, &side) in Side::order(rep, bins.has_base()).iter().enumerate() {
                        if i > 0 {
                            settle();
                        }
                        let store = dir.join(format!("store-{}-{rep}", side.label()));
                        let mut cmd = add_cmd(bins.get(side), &store, input);
                        let r = measure(&mut cmd, s.timeout, None, false)?;
                        let root = parse_root(&r.stdout)?;
                        let first = kept.get_or_insert_with(|| (store.clone(), root.clone()));
                        ensure!(
                            first.1 == root,
                            "swarm add gave two roots: {}, {root}",
                            first.1
                        );
                        match side {
                            Side::New => add.push(r.secs, r.peak_kib),
                            Side::Base => base_add.push(r.secs, r.peak_kib),
                        }
                        // Keep the first store each binary made, for the export phase.
                        let keep = match side {
                            Side::New => first.0 == store,
                            Side::Base => base_store.is_none(),
                        };
                        if keep && side == Side::Base {
                            base_store = Some(store);
                        } else if !keep {
                            remove_dir(&store)?;
                        }
                    }
                }
                _ => {
                    let db = dir.join("design.redb");
                    let mut cmd = Command::new(env::current_exe()?);
                    cmd.arg(REDB_CHILD).arg(input).arg(&db);
                    let r = measure(&mut cmd, s.timeout, None, false)?;
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
        add: add.secs,
        add_rss: add.rss,
        base_add,
        redb_write,
        redb_read,
        redb_rss,
        redb_file_size,
        store,
        root,
        base_store,
    })
}

/// What the export phase measured, one entry per rep.
struct Export {
    cp: Vec<f64>,
    export: Vec<f64>,
    export_rss: Vec<u64>,
    /// The baseline's `swarm export` of its own store, empty without one.
    base_export: Timed,
}

/// Plain `cp` of the stored blob against `swarm export` (with each binary), alternating which
/// goes first.
fn bench_export(
    s: &Settings,
    bins: &Bins,
    dir: &Path,
    import: &Import,
    input_hash: blake3::Hash,
) -> Result<Export> {
    // The anchor copies the blob file the store holds, so both read the same bytes.
    let stored = largest_data_file(&import.store)?;
    let dest = dir.join("export-dest.bin");
    let mut cp = Vec::with_capacity(s.reps);
    let mut export = Timed::default();
    let mut base_export = Timed::default();
    for rep in 0..s.reps {
        for step in 0..2 {
            if (rep + step) % 2 == 0 {
                let mut cmd = Command::new("cp");
                cmd.arg("--").arg(&stored).arg(&dest);
                cp.push(time(&mut cmd, s.timeout)?);
                remove_file(&dest)?;
                settle();
                continue;
            }
            for &side in Side::order(rep, bins.has_base()) {
                let store = match side {
                    Side::New => &import.store,
                    Side::Base => import.base_store.as_ref().context("no baseline store")?,
                };
                let mut cmd = export_cmd(bins.get(side), store, &import.root, &dest);
                let r = measure(&mut cmd, s.timeout, None, false)?;
                match side {
                    Side::New => export.push(r.secs, r.peak_kib),
                    Side::Base => base_export.push(r.secs, r.peak_kib),
                }
                if rep == 0 {
                    // A benchmark of a broken export would be worthless: check it once, untimed.
                    let got = blake3_file(&dest)?;
                    ensure!(
                        got == input_hash,
                        "swarm export ({}) wrote different bytes",
                        side.label()
                    );
                }
                remove_file(&dest)?;
                settle();
            }
        }
    }
    Ok(Export {
        cp,
        export: export.secs,
        export_rss: export.rss,
        base_export,
    })
}

/// What the small-files case measured, one entry per rep.
struct Small {
    files: usize,
    cp_sync: Vec<f64>,
    add: Timed,
    base_add: Timed,
}

/// `cp -r DIR DEST && sync` against `swarm add DIR` (with each binary) of `--small-files`
/// files of 4 KiB, distinct contents, hot in the page cache: what each file costs.
fn bench_small_files(s: &Settings, bins: &Bins, dir: &Path) -> Result<Option<Small>> {
    let files = s.more.small_files;
    if files == 0 {
        return Ok(None);
    }
    let src = disk::fresh_dir(dir.join("small"))?;
    let t = Instant::now();
    disk::write_small_files(&src, files, SMALL_FILE)?;
    settle();
    println!(
        "small files: {files} x {} KiB written in {:.2} s",
        SMALL_FILE >> 10,
        t.elapsed().as_secs_f64()
    );
    let mut small = Small {
        files,
        cp_sync: Vec::with_capacity(s.reps),
        add: Timed::default(),
        base_add: Timed::default(),
    };
    let mut first_root: Option<String> = None;
    for rep in 0..s.reps {
        for step in 0..2 {
            if (rep + step) % 2 == 0 {
                let dest = dir.join("small-cp");
                let mut cmd = Command::new("sh");
                cmd.arg("-c")
                    .arg(r#"cp -r -- "$1" "$2" && sync"#)
                    .arg("sh")
                    .arg(&src)
                    .arg(&dest);
                small.cp_sync.push(time(&mut cmd, s.timeout)?);
                remove_dir(&dest)?;
                settle();
                continue;
            }
            for &side in Side::order(rep, bins.has_base()) {
                let store = dir.join(format!("small-store-{}-{rep}", side.label()));
                let mut cmd = add_cmd(bins.get(side), &store, &src);
                let r = measure(&mut cmd, s.timeout, None, false)?;
                let root = parse_root(&r.stdout)?;
                let first = first_root.get_or_insert_with(|| root.clone());
                ensure!(
                    *first == root,
                    "swarm add DIR gave two roots: {first}, {root}"
                );
                match side {
                    Side::New => small.add.push(r.secs, r.peak_kib),
                    Side::Base => small.base_add.push(r.secs, r.peak_kib),
                }
                remove_dir(&store)?;
                settle();
            }
        }
    }
    remove_dir(&src)?;
    Ok(Some(small))
}

/// Max RSS (KiB) of one more `swarm add` and `swarm export`, as GNU time reports it.
struct GnuTime {
    add: Option<u64>,
    export: Option<u64>,
}

/// A second opinion on the `VmHWM` poller, which can miss a peak in a child's last 2 ms.
fn gnu_time_cross_check(
    s: &Settings,
    bins: &Bins,
    dir: &Path,
    input: &Path,
    i: &Import,
) -> Result<GnuTime> {
    let fresh = dir.join("store-gnu-time");
    let add = gnu_time_max_rss(add_cmd(&bins.new, &fresh, input), s.timeout)?;
    remove_dir(&fresh)?;
    settle();
    let dest = dir.join("export-gnu-time.bin");
    let export = gnu_time_max_rss(export_cmd(&bins.new, &i.store, &i.root, &dest), s.timeout)?;
    remove_file(&dest)?;
    Ok(GnuTime { add, export })
}

fn report(
    size: u64,
    hash: &[f64],
    i: &Import,
    e: &Export,
    gnu: &GnuTime,
    small: Option<&Small>,
) -> Table {
    let add = median(&i.add);
    let export = median(&e.export);
    let mut t = Table::new(7, 44, fmt_rate_mib);
    let at_most = Bar::AtMost(TARGET_RATIO);
    // The bar applies to the highest of the runs; with none, there is no bar to show.
    let rss = |t: &mut Table, figure: &str, runs: &[u64]| match runs {
        [] => t.info(figure, "n/a".into()),
        _ => t.rss_bar(figure, runs, TARGET_RSS_MIB),
    };

    t.area("import");
    t.time("A  cp FILE DEST && sync", size, &i.cp_sync, "n/a");
    t.time("   swarm add FILE (fresh store)", size, &i.add, "n/a");
    let add_a = add / median(&i.cp_sync);
    t.ratio("   swarm add / anchor A", Some(add_a), at_most);

    t.area("export");
    t.time("B  cp STORED DEST2 (no sync)", size, &e.cp, "n/a");
    t.time("   swarm export ROOT -o DEST2", size, &e.export, "n/a");
    let export_b = export / median(&e.cp);
    t.ratio("   swarm export / anchor B", Some(export_b), at_most);

    t.area("hash");
    t.time(
        "blake3 in-process, 1 thread, 1 MiB reads",
        size,
        hash,
        "n/a",
    );
    t.info(
        "   blake3 time / swarm add time",
        format!("{:.2}x", median(hash) / add),
    );

    t.area("memory");
    rss(&mut t, "peak RSS swarm add (VmHWM poll)", &i.add_rss);
    rss(
        &mut t,
        "peak RSS swarm add (GNU time %M)",
        gnu.add.as_slice(),
    );
    rss(&mut t, "peak RSS swarm export (VmHWM poll)", &e.export_rss);
    rss(
        &mut t,
        "peak RSS swarm export (GNU time %M)",
        gnu.export.as_slice(),
    );

    t.area("design");
    t.time(
        "redb 16 KiB values: write + commits",
        size,
        &i.redb_write,
        "n/a",
    );
    // The design check's bar is the other way round: redb must be the slower one.
    let redb_add = median(&i.redb_write) / add;
    t.ratio("   redb write / swarm add", Some(redb_add), Bar::Above(1.0));
    t.time(
        "redb 16 KiB values: read in order",
        size,
        &i.redb_read,
        "n/a",
    );
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
    let redb_rss = i.redb_rss.iter().copied().max();
    t.info(
        "peak RSS redb child (VmHWM poll)",
        redb_rss.map_or("n/a".into(), fmt_kib),
    );

    if let Some(small) = small {
        report_small(&mut t, small);
    }
    if !i.base_add.secs.is_empty() {
        report_ab(&mut t, size, i, e, small);
    }
    t
}

/// Per-file figures of the small-files case.
fn report_small(t: &mut Table, small: &Small) {
    let bytes = (small.files * SMALL_FILE) as u64;
    let per_file = |runs: &[f64]| format!("{:.1} µs", median(runs) / small.files as f64 * 1e6);
    t.area("small");
    t.info(
        "DIR: files of 4 KiB, distinct, hot in cache",
        small.files.to_string(),
    );
    t.time("C  cp -r DIR DEST && sync", bytes, &small.cp_sync, "n/a");
    t.info("   per file", per_file(&small.cp_sync));
    t.time(
        "   swarm add DIR (fresh store)",
        bytes,
        &small.add.secs,
        "n/a",
    );
    t.info("   per file", per_file(&small.add.secs));
    t.info(
        "   swarm add DIR / anchor C",
        ratio_of_medians(&small.add.secs, &small.cp_sync)
            .map_or("n/a".into(), |r| format!("{r:.2}x")),
    );
}

/// The A/B section: each swarm measurement with both binaries, and new / baseline.
fn report_ab(t: &mut Table, size: u64, i: &Import, e: &Export, small: Option<&Small>) {
    let ratio = |new: &[f64], base: &[f64]| {
        ratio_of_medians(new, base).map_or("n/a".into(), |r| format!("{r:.3}x"))
    };
    let rss = |runs: &[u64]| {
        let max = runs.iter().copied().max();
        max.map_or("n/a".into(), |k| fmt_kib(k).trim().to_owned())
    };
    t.area("A/B");
    t.time("swarm add FILE, new", size, &i.add, "n/a");
    t.time("swarm add FILE, baseline", size, &i.base_add.secs, "n/a");
    t.info("   add: new / baseline", ratio(&i.add, &i.base_add.secs));
    t.info(
        "   add / anchor A: new, baseline (≤ 1.5x)",
        format!(
            "{}, {}",
            ratio(&i.add, &i.cp_sync),
            ratio(&i.base_add.secs, &i.cp_sync)
        ),
    );
    t.info(
        "   peak RSS add: new, baseline",
        format!("{}, {}", rss(&i.add_rss), rss(&i.base_add.rss)),
    );
    t.time("swarm export ROOT -o DEST2, new", size, &e.export, "n/a");
    t.time(
        "swarm export ROOT -o DEST2, baseline",
        size,
        &e.base_export.secs,
        "n/a",
    );
    t.info(
        "   export: new / baseline",
        ratio(&e.export, &e.base_export.secs),
    );
    t.info(
        "   export / anchor B: new, baseline (≤ 1.5x)",
        format!(
            "{}, {}",
            ratio(&e.export, &e.cp),
            ratio(&e.base_export.secs, &e.cp)
        ),
    );
    t.info(
        "   peak RSS export: new, baseline",
        format!("{}, {}", rss(&e.export_rss), rss(&e.base_export.rss)),
    );
    if let Some(small) = small {
        let bytes = (small.files * SMALL_FILE) as u64;
        let n = small.files as f64;
        t.time(
            "swarm add DIR (small files), new",
            bytes,
            &small.add.secs,
            "n/a",
        );
        t.time(
            "swarm add DIR (small files), baseline",
            bytes,
            &small.base_add.secs,
            "n/a",
        );
        t.info(
            "   add DIR: new / baseline",
            ratio(&small.add.secs, &small.base_add.secs),
        );
        let extra = (median(&small.add.secs) - median(&small.base_add.secs)) / n * 1e6;
        t.info(
            "   add DIR: new − baseline, per file",
            format!("{extra:+.1} µs"),
        );
    }
}

fn add_cmd(swarm: &Path, store: &Path, input: &Path) -> Command {
    let mut cmd = Command::new(swarm);
    cmd.arg("--store").arg(store).arg("add").arg(input);
    cmd
}

fn export_cmd(swarm: &Path, store: &Path, root: &str, dest: &Path) -> Command {
    let mut cmd = Command::new(swarm);
    cmd.arg("--store")
        .arg(store)
        .arg("export")
        .arg(root)
        .arg("-o")
        .arg(dest);
    cmd
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
    let mut child = Proc::spawn(&mut wrapped, false)?;
    let status = child.wait(timeout)?;
    child.drain(Duration::from_secs(2));
    if !status.success() {
        return Err(child.failure(&format!("failed ({status})")));
    }
    Ok(child
        .stderr()
        .lines()
        .find_map(|l| l.strip_prefix("bench-local-maxrss="))
        .and_then(|v| v.trim().parse().ok()))
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
