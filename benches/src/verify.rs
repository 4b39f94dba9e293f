//! `bench-verify`: what each integrity check of issue #12 costs, measured on the library in
//! this process, against the anchors that bound it.
//!
//! On a real disk (tmpfs is refused), for a blob of `--size-mib` (default 1 GiB), medians over
//! `--reps`, every run printed:
//!
//! - resume re-verify: `Store::partial(hash, size)` on a freshly opened store that holds the
//!   blob complete (it re-hashes every group the record claims, on every core), against
//!   single-threaded BLAKE3 of the same stored file (the anchor: "BLAKE3 at ~3 GB/s"), and
//!   against a second `partial` in the same process (nothing left to check: what the previous
//!   main paid);
//! - serve-side verify: `Store::encode_ranges_with(hash, all, sink, false)` the first time
//!   after the store opens (verifies as it reads), the second time (remembered, no hash) and
//!   with `verify = true` (always hashes); the seeder CPU each costs per GiB;
//! - hand-over re-verify: `Store::export` with `release: true` of an unpinned root holding the
//!   blob (what `swarm fetch -o DIR` does after the download) against a plain hard link of the
//!   stored file: the time the re-verify adds to a hand-over;
//! - add change detection: `Store::add_paths` of `--small-files` files of 4 KiB (so a per-file
//!   cost shows), per file, and the two calls the check added to every file (`fstat` of the
//!   open file, `stat` of its path) timed on their own, per file.
//!
//! The page cache is hot by default: the stored file is read through, untimed, before each
//! timed run. `--cold` drops it (`sync; echo 3 > /proc/sys/vm/drop_caches`, needs root) before
//! each timed run instead, so every one reads from the disk. CPU seconds are this process's
//! (all threads), from `/proc/self/stat`, 10 ms resolution.
//!
//! This measures the new code only; the A/B against the previous main is `--baseline` of
//! bench-local and bench-net, which run the binaries.
//!
//! ```text
//! cargo build --release -p swarm-benches
//! target/release/bench-verify [--size-mib 1024] [--reps 3] [--small-files 10000] [--cold]
//! ```

use std::env;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use swarm_benches::MIB;
use swarm_benches::args::{self, Flags};
use swarm_benches::disk::{
    self, Scratch, blake3_file, cpu_secs, drop_caches, largest_data_file, remove_dir, settle, warm,
};
use swarm_benches::report::{Table, fmt_rate_gib, median};
use swarm_engine::Hash;
use swarm_engine::content::all;
use swarm_engine::store::{ExportOptions, Store};

const USAGE: &str = "\
usage: bench-verify [--size-mib N] [--reps N] [--small-files N] [--cold] [--dir DIR]
                    [--timeout-secs N]

  --size-mib N       size of the blob in MiB [default: 1024]
  --reps N           repetitions of every measurement; the median is reported [default: 3]
  --small-files N    files of 4 KiB for the add change-detection case; 0 skips it
                     [default: 10000]
  --cold             drop the page cache before every timed run (needs root) instead of
                     reading the stored file through first
  --dir DIR          where to create the scratch directory; must be on a real disk, not tmpfs
                     [default: $TMPDIR, else /var/tmp]
  --timeout-secs N   accepted for symmetry with the other benchmarks; nothing here waits

Build first: cargo build --release -p swarm-benches";

const GIB: f64 = (1u64 << 30) as f64;
const SMALL_FILE: usize = 4 << 10;
const DEFAULT_SMALL_FILES: usize = 10_000;

/// The flags of bench-verify beyond the shared ones.
#[derive(Debug, Default)]
struct VerifyFlags {
    small_files: Option<usize>,
    cold: bool,
}

impl VerifyFlags {
    fn take(&mut self, name: &str, value: &mut args::Value<'_>) -> Result<bool> {
        match name {
            "--small-files" => {
                let v = value()?;
                let n = v
                    .parse()
                    .ok()
                    .with_context(|| format!("--small-files wants a whole number, got {v:?}"))?;
                ensure!(n <= 1_000_000, "--small-files must be at most 1000000");
                self.small_files = Some(n);
            }
            "--cold" => self.cold = true,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

struct Verify {
    small_files: usize,
    cold: bool,
}

type Settings = args::Settings<Verify>;

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(flags) = Flags::parse(&args, USAGE, VerifyFlags::take)? else {
        return Ok(());
    };
    let settings = Settings::in_process(flags, |f| Verify {
        small_files: f.small_files.unwrap_or(DEFAULT_SMALL_FILES),
        cold: f.cold,
    })?;
    run(&settings)
}

// ---------------------------------------------------------------------------------------------
// Timing.

/// One timed run: wall clock, and this process's CPU seconds (all threads) if readable.
#[derive(Clone, Copy)]
struct Sample {
    secs: f64,
    cpu: Option<f64>,
}

fn timed<R>(f: impl FnOnce() -> Result<R>) -> Result<(R, Sample)> {
    let cpu0 = cpu_secs("self");
    let start = Instant::now();
    let r = f()?;
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs("self").zip(cpu0).map(|(b, a)| b - a);
    Ok((r, Sample { secs, cpu }))
}

/// The runs of one figure, printed as they come.
struct Series {
    label: &'static str,
    bytes: u64,
    runs: Vec<Sample>,
}

impl Series {
    fn new(label: &'static str, bytes: u64) -> Self {
        Series {
            label,
            bytes,
            runs: Vec::new(),
        }
    }

    fn push(&mut self, rep: usize, reps: usize, s: Sample) {
        let cpu = s.cpu.map_or_else(|| "n/a".into(), |c| format!("{c:.2} s"));
        println!(
            "rep {}/{reps}  {:<56} {:9.4} s {:>12}  CPU {cpu}",
            rep + 1,
            self.label,
            s.secs,
            fmt_rate_gib(self.bytes, s.secs)
        );
        self.runs.push(s);
    }

    fn secs(&self) -> Vec<f64> {
        self.runs.iter().map(|r| r.secs).collect()
    }

    fn median_secs(&self) -> f64 {
        median(&self.secs())
    }

    /// Median CPU seconds; NaN if none was readable.
    fn median_cpu(&self) -> f64 {
        median(&self.runs.iter().filter_map(|r| r.cpu).collect::<Vec<_>>())
    }

    /// Its median and rate; under 1 ms (a hard link, a check already done) in µs, where a
    /// rate would say nothing.
    fn row(&self, t: &mut Table) {
        let m = self.median_secs();
        if m < 0.001 {
            t.info(self.label, format!("{:.1} µs", m * 1e6));
        } else {
            t.time(self.label, self.bytes, &self.secs(), "n/a");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The benchmark.

/// What every measurement shares.
struct Ctx<'a> {
    s: &'a Settings,
    dir: PathBuf,
    input: PathBuf,
    /// A store holding the blob complete and pinned, its directory, the blob's data file.
    store_dir: PathBuf,
    data_file: PathBuf,
    hash: Hash,
}

impl Ctx<'_> {
    /// Puts the page cache in the state asked for, untimed: `path` read through (hot), or
    /// everything dropped (cold).
    fn cache(&self, path: &Path) -> Result<()> {
        if self.s.more.cold {
            drop_caches()
        } else {
            warm(path)
        }
    }
}

fn run(s: &Settings) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: bench-verify is a debug build; every figure will be low");
    }
    let small = (s.more.small_files * SMALL_FILE) as u64;
    // At most: input, the kept store, a hand-over store, the small files and their store.
    let fs_type = disk::check_parent(&s.parent, 3 * s.size + 4 * small + 256 * MIB)?;
    if s.more.cold {
        // Fail now, not after minutes of setup.
        drop_caches()?;
    }
    let scratch = Scratch::create(&s.parent, "swarm-bench-verify")?;
    let dir = scratch.dir.clone();
    s.print_header("bench-verify");
    println!("scratch: {} ({fs_type})", dir.display());
    println!(
        "page cache: {}",
        if s.more.cold {
            "cold: sync; echo 3 > /proc/sys/vm/drop_caches before every timed run"
        } else {
            "hot: the stored file is read through, untimed, before every timed run"
        }
    );

    let input = dir.join("input.bin");
    let t = Instant::now();
    disk::write_test_file(&input, s.size)?;
    settle();
    println!(
        "test file written in {:.2} s (xorshift64, synced)",
        t.elapsed().as_secs_f64()
    );
    let store_dir = disk::fresh_dir(dir.join("store"))?;
    let (root, hash) = add_file(&store_dir, &input)?;
    settle();
    let data_file = largest_data_file(&store_dir)?;
    println!("store: blob {hash}, root {root}\n");
    let ctx = Ctx {
        s,
        dir,
        input,
        store_dir,
        data_file,
        hash,
    };

    let mut t = Table::new(8, 56, fmt_rate_gib);
    let anchor = bench_resume(&ctx, &mut t)?;
    bench_serve(&ctx, &mut t)?;
    bench_hand_over(&ctx, &mut t, anchor)?;
    bench_add(&ctx, &mut t)?;
    println!();
    t.print();
    drop(ctx);
    drop(scratch);
    Ok(())
}

/// A store at `dir` holding `file` pinned: its root and the file's blob.
fn add_file(dir: &Path, file: &Path) -> Result<(Hash, Hash)> {
    let store = Store::open(dir)?;
    let added = store.add_paths(&[file.to_owned()], &Default::default())?;
    let manifest = store.manifest(&added.root)?;
    let entry = manifest.entries().first().context("an empty manifest")?;
    Ok((added.root, entry.hash))
}

/// Resume re-verify and the single-threaded BLAKE3 anchor, alternating which goes first.
/// Returns the anchor's median seconds.
fn bench_resume(ctx: &Ctx, t: &mut Table) -> Result<f64> {
    let (s, size) = (ctx.s, ctx.s.size);
    let mut anchor = Series::new("A  blake3::Hasher, 1 thread, the stored file", size);
    let mut first = Series::new("   Store::partial, fresh open (re-verifies)", size);
    let mut again = Series::new("   Store::partial again, same process (checked)", size);
    for rep in 0..s.reps {
        for step in 0..2 {
            if (rep + step) % 2 == 0 {
                ctx.cache(&ctx.data_file)?;
                let (_, sample) = timed(|| blake3_file(&ctx.data_file))?;
                anchor.push(rep, s.reps, sample);
                continue;
            }
            ctx.cache(&ctx.data_file)?;
            let store = Store::open(&ctx.store_dir)?;
            let (pb, sample) = timed(|| Ok(store.partial(ctx.hash, size)?))?;
            ensure!(
                pb.is_complete(),
                "the stored blob no longer counts as complete"
            );
            drop(pb);
            first.push(rep, s.reps, sample);
            let (pb, sample) = timed(|| Ok(store.partial(ctx.hash, size)?))?;
            ensure!(
                pb.is_complete(),
                "the stored blob no longer counts as complete"
            );
            again.push(rep, s.reps, sample);
        }
    }
    t.area("resume");
    anchor.row(t);
    first.row(t);
    again.row(t);
    let a = anchor.median_secs();
    t.info(
        "   re-verify / anchor A (time)",
        format!("{:.2}x", first.median_secs() / a),
    );
    t.info(
        "   added per GiB: wall, CPU",
        format!(
            "{:.3} s, {:.3} s",
            (first.median_secs() - again.median_secs()) / (size as f64 / GIB),
            (first.median_cpu() - again.median_cpu()) / (size as f64 / GIB)
        ),
    );
    Ok(a)
}

/// Serving: the first time after the store opens, the second time, and `verify = true`.
fn bench_serve(ctx: &Ctx, t: &mut Table) -> Result<()> {
    let (s, size) = (ctx.s, ctx.s.size);
    let mut first = Series::new("B  encode_ranges_with(all, false), first after open", size);
    let mut cached = Series::new("   encode_ranges_with(all, false), second (no hash)", size);
    let mut always = Series::new("   encode_ranges_with(all, true), always hashes", size);
    for rep in 0..s.reps {
        ctx.cache(&ctx.data_file)?;
        let store = Store::open(&ctx.store_dir)?;
        let encode = |verify| -> Result<()> {
            Ok(store.encode_ranges_with(&ctx.hash, &all(), io::sink(), verify)?)
        };
        first.push(rep, s.reps, timed(|| encode(false))?.1);
        // Cold: every run reads from the disk; hot: the first left the file cached.
        if s.more.cold {
            drop_caches()?;
        }
        cached.push(rep, s.reps, timed(|| encode(false))?.1);
        if s.more.cold {
            drop_caches()?;
        }
        always.push(rep, s.reps, timed(|| encode(true))?.1);
    }
    let gib = size as f64 / GIB;
    let extra = |a: &Series, b: &Series| {
        format!(
            "{:.3} s wall, {:.3} s CPU",
            (a.median_secs() - b.median_secs()) / gib,
            (a.median_cpu() - b.median_cpu()) / gib
        )
    };
    t.area("serve");
    first.row(t);
    cached.row(t);
    always.row(t);
    t.info(
        "   first / second (time)",
        format!("{:.2}x", first.median_secs() / cached.median_secs()),
    );
    t.info(
        "   seeder CPU per GiB served: first, second",
        format!(
            "{:.3} s, {:.3} s",
            first.median_cpu() / gib,
            cached.median_cpu() / gib
        ),
    );
    t.info("   first − second, per GiB", extra(&first, &cached));
    t.info("   always − second, per GiB", extra(&always, &cached));
    Ok(())
}

/// Hand-over: `export` with `release` of an unpinned root against a hard link.
fn bench_hand_over(ctx: &Ctx, t: &mut Table, anchor: f64) -> Result<()> {
    let (s, size) = (ctx.s, ctx.s.size);
    let mut export = Series::new("C  export, release: true (re-verifies, links out)", size);
    let mut link = Series::new("   ln STORED DEST (hard link, the anchor)", size);
    let mut linked = 0;
    for rep in 0..s.reps {
        // Untimed: a store holding the blob under an unpinned root, as a one-off fetch
        // leaves it (add, then unpin: the data streams in rather than sits in memory).
        let store_dir = disk::fresh_dir(ctx.dir.join(format!("handover-{rep}")))?;
        let (root, hash) = add_file(&store_dir, &ctx.input)?;
        ensure!(hash == ctx.hash, "the hand-over store holds another blob");
        ensure!(
            Store::open(&store_dir)?.unpin(&root)?,
            "the root was not pinned"
        );
        let stored = largest_data_file(&store_dir)?;
        let ino = fs::metadata(&stored)?.ino();
        let out = disk::fresh_dir(ctx.dir.join(format!("handover-out-{rep}")))?;
        settle();
        // The link first: the hand-over takes the file out of the store, so
        // it cannot come before (and a link changes nothing to alternate for).
        for step in 0..2 {
            if step == 0 {
                ctx.cache(&stored)?;
                let dest = ctx.dir.join("ln-dest.bin");
                let (_, sample) = timed(|| Ok(fs::hard_link(&stored, &dest)?))?;
                fs::remove_file(&dest)?;
                link.push(rep, s.reps, sample);
                continue;
            }
            ctx.cache(&stored)?;
            let store = Store::open(&store_dir)?;
            let opts = ExportOptions {
                release: true,
                ..ExportOptions::default()
            };
            let (done, sample) = timed(|| Ok(store.export(&root, &out, &opts)?))?;
            ensure!(
                done.bytes == size,
                "the hand-over wrote {} bytes",
                done.bytes
            );
            let file = out.join(ctx.input.file_name().unwrap_or_default());
            if fs::metadata(&file)?.ino() == ino {
                linked += 1;
            }
            export.push(rep, s.reps, sample);
        }
        remove_dir(&out)?;
        remove_dir(&store_dir)?;
        settle();
    }
    t.area("handover");
    export.row(t);
    link.row(t);
    let added = export.median_secs() - link.median_secs();
    t.info(
        "   export − ln: what it adds to fetch -o DIR",
        format!("{added:.3} s, {:.3} s/GiB", added / (size as f64 / GIB)),
    );
    t.info(
        "   export − ln / anchor A (time)",
        format!("{:.2}x", added / anchor),
    );
    t.info(
        "   exports that linked the stored file out",
        format!("{linked} of {}", s.reps),
    );
    Ok(())
}

/// `add_paths` of many small files, per file, and the two stat calls it added, per file.
fn bench_add(ctx: &Ctx, t: &mut Table) -> Result<()> {
    let (s, n) = (ctx.s, ctx.s.more.small_files);
    if n == 0 {
        return Ok(());
    }
    let src = disk::fresh_dir(ctx.dir.join("small"))?;
    let paths = disk::write_small_files(&src, n, SMALL_FILE)?;
    settle();
    let bytes = (n * SMALL_FILE) as u64;
    let mut add = Series::new("D  add_paths of the small files (fresh store)", bytes);
    let mut open = Series::new("   open + close of each file", bytes);
    let mut stats = Series::new("   open + fstat + stat(path) + close of each", bytes);
    for rep in 0..s.reps {
        // The files stay hot: this is about what each costs, not the disk.
        let store_dir = disk::fresh_dir(ctx.dir.join(format!("small-store-{rep}")))?;
        let store = Store::open(&store_dir)?;
        let (added, sample) =
            timed(|| Ok(store.add_paths(std::slice::from_ref(&src), &Default::default())?))?;
        ensure!(
            added.files == n as u64,
            "add_paths stored {} files",
            added.files
        );
        add.push(rep, s.reps, sample);
        drop(store);
        remove_dir(&store_dir)?;
        settle();
        for step in 0..2 {
            let with_stats = (rep + step) % 2 == 1;
            let (_, sample) = timed(|| {
                for p in &paths {
                    let f = File::open(p)?;
                    if with_stats {
                        // What the change check added: the open file, then its path.
                        std::hint::black_box(f.metadata()?);
                        std::hint::black_box(fs::metadata(p)?);
                    }
                }
                Ok(())
            })?;
            match with_stats {
                true => stats.push(rep, s.reps, sample),
                false => open.push(rep, s.reps, sample),
            }
        }
    }
    let per_file = |secs: f64| secs / n as f64 * 1e6;
    t.area("add");
    add.row(t);
    t.info(
        "   per file",
        format!("{:.1} µs", per_file(add.median_secs())),
    );
    open.row(t);
    stats.row(t);
    let extra = per_file(stats.median_secs() - open.median_secs());
    t.info("   fstat + stat, per file", format!("{extra:.2} µs"));
    t.info(
        "   their share of add_paths per file",
        format!("{:.2} %", extra / per_file(add.median_secs()) * 100.0),
    );
    remove_dir(&src)?;
    Ok(())
}
