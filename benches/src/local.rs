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
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use redb::{Builder, ReadableDatabase, ReadableTable, TableDefinition};
use swarm_benches::args::{self, Flags};
use swarm_benches::disk::{
    self, IO_BUF, Scratch, blake3_file, read_full, remove_dir, remove_file, settle,
};
use swarm_benches::proc::{Proc, measure, time};
use swarm_benches::report::{Bar, Table, fmt_kib, fmt_rate_mib, median};
use swarm_benches::{MIB, parse_root};

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
const TARGET_RSS_MIB: u64 = 64;

/// The redb design check: 16 KiB values (one chunk group), a commit every 64 MiB.
const REDB_DATA: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("data");
const REDB_VALUE: usize = 16 << 10;
const REDB_COMMIT_EVERY: u64 = 64 << 20;
const REDB_CACHE: usize = 16 << 20;

/// bench-local takes only the flags both benchmarks share.
type Settings = args::Settings<()>;

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(REDB_CHILD) {
        return redb_child(&args[1..]);
    }
    // No flags beyond the shared ones.
    let no_more = |_: &mut (), _: &str, _: &mut args::Value<'_>| Ok(false);
    let Some(flags) = Flags::parse(&args, USAGE, no_more)? else {
        return Ok(());
    };
    let settings = Settings::from_flags(flags, |()| ())?;
    run(&settings)
}

// ---------------------------------------------------------------------------------------------
// The benchmark.

fn run(s: &Settings) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: bench-local is a debug build; the BLAKE3 and redb figures will be low");
    }
    // At most: input, the kept store, one scratch copy (file, store or redb) and an export.
    let fs_type = disk::check_parent(&s.parent, 4 * s.size + 256 * MIB)?;
    let scratch = Scratch::create(&s.parent, "swarm-bench")?;
    let dir = &scratch.dir;

    s.print_header("bench-local");
    println!("scratch: {} ({fs_type})", dir.display());
    println!("swarm:   {}", s.swarm.display());

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
                    cp_sync.push(time(&mut cmd, s.timeout)?);
                    remove_file(&dest)?;
                }
                1 => {
                    let store = dir.join(format!("store-{rep}"));
                    let r = measure(&mut add_cmd(s, &store, input), s.timeout, None, false)?;
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
                cp.push(time(&mut cmd, s.timeout)?);
            } else {
                let mut cmd = export_cmd(s, &import.store, &import.root, &dest);
                let r = measure(&mut cmd, s.timeout, None, false)?;
                export.push(r.secs);
                export_rss.extend(r.peak_kib);
                if rep == 0 {
                    // A benchmark of a broken export would be worthless: check it once, untimed.
                    let got = blake3_file(&dest)?;
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
// Files.

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
