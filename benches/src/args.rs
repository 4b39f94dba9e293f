//! The flags both benchmarks take, then validated settings; each adds flags of its own.

use std::env;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::MIB;
use crate::disk::mem_total_kib;

/// What the flags say: the shared ones, and `more` of the benchmark's own.
#[derive(Debug, Default)]
pub struct Flags<T> {
    pub size_mib: Option<u64>,
    pub reps: Option<usize>,
    pub dir: Option<PathBuf>,
    pub swarm: Option<PathBuf>,
    pub timeout_secs: Option<u64>,
    pub more: T,
}

/// Gets the value of the flag at hand, from `--name=value` or the next argument.
pub type Value<'a> = dyn FnMut() -> Result<String> + 'a;

impl<T: Default> Flags<T> {
    /// Parses `args`; a flag that is not one of the shared ones goes to `more`, which says
    /// whether it knew it. `Ok(None)` means help was asked for, and `usage` has been printed;
    /// an error ends with `usage`.
    pub fn parse(
        args: &[String],
        usage: &str,
        more: impl FnMut(&mut T, &str, &mut Value<'_>) -> Result<bool>,
    ) -> Result<Option<Self>> {
        match Self::parse_flags(args, more) {
            Ok(Some(flags)) => Ok(Some(flags)),
            Ok(None) => {
                println!("{usage}");
                Ok(None)
            }
            Err(e) => bail!("{e:#}\n\n{usage}"),
        }
    }

    fn parse_flags(
        args: &[String],
        mut more: impl FnMut(&mut T, &str, &mut Value<'_>) -> Result<bool>,
    ) -> Result<Option<Self>> {
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
                _ => {
                    if !more(&mut flags.more, name, &mut value)? {
                        bail!("unknown argument {arg:?}");
                    }
                }
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

/// The validated settings both benchmarks share, and `more` of the benchmark's own.
#[derive(Debug)]
pub struct Settings<T> {
    /// Size of the test file, bytes.
    pub size: u64,
    pub reps: usize,
    /// Where the scratch directory goes.
    pub parent: PathBuf,
    /// The swarm binary, canonical.
    pub swarm: PathBuf,
    /// For any single command.
    pub timeout: Duration,
    pub more: T,
}

impl<T> Settings<T> {
    /// Checks the shared flags and fills in their defaults; `more` turns the benchmark's own
    /// flags into its own settings.
    pub fn from_flags<F>(f: Flags<F>, more: impl FnOnce(F) -> T) -> Result<Self> {
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
        Ok(Settings {
            size: size_mib * MIB,
            reps,
            parent,
            swarm: swarm.canonicalize()?,
            timeout,
            more: more(f.more),
        })
    }

    /// [`Settings::from_flags`] for a benchmark that runs the engine in-process, not a `swarm`
    /// binary: `--swarm` is refused and `swarm` is this program.
    pub fn in_process<F>(mut f: Flags<F>, more: impl FnOnce(F) -> T) -> Result<Self> {
        ensure!(
            f.swarm.is_none(),
            "--swarm: this benchmark runs the engine in-process, not a swarm binary"
        );
        f.swarm = Some(env::current_exe()?);
        Self::from_flags(f, more)
    }

    /// The first line of the output: `NAME: N MiB file, …` and the machine.
    pub fn print_header(&self, name: &str) {
        println!(
            "{name}: {} MiB file, {} rep(s), median reported; {} cpu(s), {} MiB RAM",
            self.size / MIB,
            self.reps,
            thread::available_parallelism().map_or(0, |n| n.get()),
            mem_total_kib().map_or(0, |k| k >> 10),
        );
    }
}
