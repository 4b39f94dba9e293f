//! What the benchmark programs share: their common flags, the scratch directory and the test
//! file, child processes timed and watched for peak memory and CPU time, A/B runs against a
//! baseline binary, the loopback-only network the networked ones run in, and the table each
//! prints at the end.

pub mod ab;
pub mod args;
pub mod disk;
pub mod netns;
pub mod proc;
pub mod report;

pub const MIB: u64 = 1 << 20;
/// Decimal megabytes, as issue #3 states its rates.
pub const MB: u64 = 1_000_000;

/// The root `swarm add` printed: 64 hex digits.
pub fn parse_root(stdout: &str) -> anyhow::Result<String> {
    let root = stdout.trim();
    anyhow::ensure!(
        root.len() == 64 && root.bytes().all(|b| b.is_ascii_hexdigit()),
        "swarm add printed {root:?}, not a 64-hex root"
    );
    Ok(root.to_owned())
}
