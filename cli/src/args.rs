//! What the flags say. `main.rs` turns them into engine calls.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// swarm: a content-addressed swarm engine. Stores files under their BLAKE3
/// root hash, verifies every 16 KiB, and moves them between peers over QUIC,
/// found through the BitTorrent DHT, tickets, or HTTP mirrors.
#[derive(Debug, Parser)]
#[command(name = "swarm", version, propagate_version = true)]
pub(crate) struct Cli {
    /// Store directory [default: $SWARM_STORE, else the platform data directory]
    #[arg(long, global = true, env = "SWARM_STORE", value_name = "DIR")]
    pub(crate) store: Option<PathBuf>,

    /// Print one JSON object on stdout instead of text (fields in docs/cli.md)
    #[arg(long, global = true)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The DHT flags, on the commands that use the DHT.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct DhtArgs {
    /// DHT bootstrap node, HOST:PORT (repeatable, or comma-separated in
    /// SWARM_BOOTSTRAP) [default: the public mainline routers]
    #[arg(
        long = "bootstrap",
        env = "SWARM_BOOTSTRAP",
        value_delimiter = ',',
        value_name = "HOST:PORT"
    )]
    pub(crate) bootstrap: Vec<String>,

    /// Do not use the DHT (the BitTorrent mainline DHT, public by default)
    #[arg(
        long,
                env = "SWARM_NO_DHT",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub(crate) no_dht: bool,

    /// The IPv4 address (and port) the DHT's UDP socket binds
    /// [default: the IP of --listen when it names one, else every interface]
    #[arg(
        long,
                env = "SWARM_DHT_BIND",
        value_name = "IP[:PORT]",
        value_parser = parse_dht_bind
    )]
    pub(crate) dht_bind: Option<std::net::SocketAddrV4>,
}

/// `--listen`: an IP address and port, or a host name that resolves to
/// one (`localhost:7411`), as `--peer` takes; IPv4 first.
pub(crate) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bad =
        || format!("{s:?} is not HOST:PORT, e.g. 0.0.0.0:7411, 127.0.0.1:0 or localhost:7411");
    if !s.contains(':') {
        return Err(bad());
    }
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(s)
        .map_err(|e| format!("{}: {e}", bad()))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(bad)
}

/// `--dht-bind`: an IPv4 address, with an optional port (0 or none picks one).
pub(crate) fn parse_dht_bind(s: &str) -> Result<std::net::SocketAddrV4, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<std::net::Ipv4Addr>() {
        return Ok(std::net::SocketAddrV4::new(ip, 0));
    }
    s.parse().map_err(|_| {
        format!("{s:?} is not an IPv4 address or IPv4:PORT (the DHT runs on IPv4), e.g. 192.0.2.7 or 192.0.2.7:6881")
    })
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Import files and directories, pin the result, print its root
    Add {
        /// Files or directories; each is stored under its own name
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Name of the pin [default: the first path's file name]
        #[arg(long)]
        name: Option<String>,
    },
    /// List pinned roots; with TARGET, the files of a root or release
    /// (fetching only its manifest if it is not stored); with --partial,
    /// the downloads stored incompletely
    Ls {
        /// A root (hex, a prefix, a pin's name), a token, a ticket, or a
        /// publisher's latest release (PUBKEY/NAME[@CHANNEL], from the DHT)
        #[arg(value_name = "TARGET", conflicts_with = "partial")]
        target: Option<String>,
        /// List partial blobs (interrupted or running downloads) with their
        /// progress instead
        #[arg(long)]
        partial: bool,
        /// A peer to fetch the manifest from when it is not stored,
        /// HOST:PORT or NODEID@HOST:PORT (repeatable)
        #[arg(long = "peer", value_name = "ADDR", requires = "target")]
        peers: Vec<String>,
        #[command(flatten)]
        dht: DhtArgs,
    },
    /// Write one stored file to stdout, every 16 KiB verified before it is
    /// written
    Cat {
        /// ROOT[/PATH]: a root (hex, a prefix, a pin's name, a token or a
        /// ticket) and the file's path in it; the path may be left out
        /// for a root of one file
        #[arg(value_name = "TARGET[/PATH]")]
        target: String,
    },
    /// Show what the node running on this store is doing
    Status,
    /// Write the files of a root out, verifying every byte
    Export {
        /// The root: 64 hex characters, a pin's name, or a prefix of a
        /// pinned root
        root: String,
        /// Destination: a directory, or the file name for a single-file root
        #[arg(short, long, value_name = "PATH", default_value = ".")]
        output: PathBuf,
        /// Overwrite files that already exist
        #[arg(long)]
        force: bool,
        /// Remove what the root does not list from the directories it
        /// writes, so that they match it exactly (as rsync --delete);
        /// without it such files stay and are listed
        #[arg(long)]
        delete: bool,
    },
    /// Write a root or a signed release as a static mirror that any web
    /// server or CDN serves as it is (layout in wire-spec/mirror.md)
    Mirror {
        /// A root (64 hex characters), or a signed-root token (swr1…)
        /// checked against the trust policy and written as the latest
        /// release of its name and channel
        target: String,
        /// The mirror directory, created if needed; many roots share one
        dir: PathBuf,
        /// Trust this publisher for this check (repeatable): its key, its
        /// chain file, or its first root's fingerprint (swrf1…)
        #[arg(long = "trust", value_name = "KEY|CHAINFILE|FINGERPRINT")]
        trust: Vec<String>,
    },
    /// Unpin a root (its content is freed by `swarm gc`)
    Rm {
        /// The root: 64 hex characters, a pin's name, or a prefix of a
        /// pinned root
        root: String,
    },
    /// Delete everything no pin references and report what was freed.
    /// Interrupted downloads written to in the last week are kept, to
    /// resume
    Gc {
        /// Delete interrupted downloads too, however recent (a running
        /// download's are always kept)
        #[arg(long)]
        partial: bool,
        /// Keep interrupted downloads written to within this long: 7d,
        /// 12h, 90m [default: 7d]
        #[arg(long, value_name = "DURATION", conflicts_with = "partial")]
        keep_partial_for: Option<String>,
    },
    /// Re-verify every stored blob; exits non-zero if anything is corrupt
    Check {
        /// First rebuild a damaged store's database from its blob files,
        /// and report what was recovered and lost; the old database is
        /// moved aside, never deleted
        #[arg(long)]
        repair: bool,
    },
    /// Serve everything in the store to peers until stopped (SIGINT/SIGTERM)
    Node {
        /// Address to listen on (UDP) [default: the config's, else 0.0.0.0:7411]
        #[arg(long, value_name = "HOST:PORT", value_parser = parse_listen)]
        listen: Option<SocketAddr>,
        /// A TOML config file (docs/operations.md); flags override it
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Super-seed: tell each fetcher only of pieces nobody has been
        /// given yet, so this node sends about one copy of a release and
        /// its fetchers pass pieces among themselves. `auto` (the default):
        /// `on` when the upload is capped, for releases this node did not
        /// fetch. `--super-seed` alone is `on`; a fetcher that cannot reach
        /// the others then waits longer
        #[arg(long, value_name = "on|auto|off", num_args = 0..=1, default_missing_value = "on")]
        super_seed: Option<swarm_engine::net::SuperSeedMode>,
        /// Serve the control API (and the dashboard) on TCP too, besides
        /// STORE/api.sock; requests need the token of --api-token-file.
        /// Loopback only, unless --api-allow-remote
        #[arg(long, value_name = "HOST:PORT")]
        api: Option<SocketAddr>,
        /// The file holding the TCP API's bearer token (at least 16 bytes)
        #[arg(long, value_name = "FILE")]
        api_token_file: Option<PathBuf>,
        /// Let --api take an address other machines can reach
        #[arg(long)]
        api_allow_remote: bool,
        /// Every SECS, log at info what each root served since the last
        /// time, and a summary line; 0 for never [default: the config's,
        /// else 60]
        #[arg(long, value_name = "SECS")]
        log_served: Option<u64>,
        #[command(flatten)]
        limits: Limits,
        #[command(flatten)]
        dht: DhtArgs,
    },
    /// Add files, print a ticket for them, and serve them until stopped
    /// (SIGINT/SIGTERM): `swarm fetch TICKET` on another machine needs
    /// nothing else
    Share {
        /// Files or directories, as for `swarm add`
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Name of the pin [default: the first path's file name]
        #[arg(long)]
        name: Option<String>,
        /// Address to serve from (UDP) [default: 0.0.0.0, any port]; the
        /// ticket carries it, or with 0.0.0.0 this machine's addresses
        #[arg(long, value_name = "HOST:PORT", value_parser = parse_listen)]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        limits: Limits,
        #[command(flatten)]
        dht: DhtArgs,
    },
    /// Fetch a root or a signed release from peers, verifying every 16 KiB, then export it
    Fetch {
        /// A ticket (swt1…, from `swarm share`: what to fetch and who
        /// serves it); a signed-root token (swr1…); a publisher's latest
        /// release (PUBKEY/NAME[@CHANNEL], looked up on the DHT); or a bare
        /// root. Releases are checked against the trust and rollback
        /// policy first
        #[arg(value_name = "TARGET")]
        root: String,
        /// Trust this publisher for this fetch (repeatable): its key, its
        /// chain file, or its first root's fingerprint (swrf1…)
        #[arg(long = "trust", value_name = "KEY|CHAINFILE|FINGERPRINT")]
        trust: Vec<String>,
        /// Refuse a release whose name is not this
        #[arg(long)]
        name: Option<String>,
        /// Refuse a release whose channel is not this
        #[arg(long)]
        channel: Option<String>,
        /// A peer to fetch from: HOST:PORT or NODEID@HOST:PORT (repeatable;
        /// peers announcing the root on the DHT are added)
        #[arg(long = "peer", value_name = "ADDR")]
        peers: Vec<String>,
        /// An HTTP(S) mirror written by `swarm mirror`, its base URL
        /// (repeatable; drawn from together with the peers, every byte
        /// verified)
        #[arg(long = "mirror", value_name = "URL")]
        mirrors: Vec<String>,
        /// Also trust this CA certificate (PEM) for HTTPS mirrors
        #[arg(long = "mirror-ca", value_name = "FILE")]
        mirror_ca: Vec<PathBuf>,
        /// Where to export the files (as for `swarm export`)
        #[arg(short, long, value_name = "PATH", default_value = ".")]
        output: PathBuf,
        /// Overwrite files that already exist
        #[arg(long)]
        force: bool,
        /// Remove what the release does not list from the directories it
        /// writes (as for `swarm export --delete`)
        #[arg(long, conflicts_with_all = ["no_export", "seed"])]
        delete: bool,
        /// Keep a pinned copy in the store (to serve it), and export a copy
        #[arg(long, conflicts_with_all = ["no_export", "seed"])]
        keep: bool,
        /// Fetch only the files this glob selects (repeatable): a path in
        /// the root, a directory for all under it, `*`/`?` within a
        /// component, `**` across; `swarm ls TARGET` lists them
        #[arg(long = "path", value_name = "GLOB", conflicts_with_all = ["keep", "no_export", "seed", "delete"])]
        paths: Vec<String>,
        /// Fetch into the store only, pinned; do not export
        #[arg(long, conflicts_with_all = ["output", "seed"])]
        no_export: bool,
        /// Fetch into the store, pinned, then keep serving it until stopped
        /// (SIGINT/SIGTERM), as a node would; no export
        #[arg(long, conflicts_with = "output")]
        seed: bool,
        /// Address to fetch and serve from (UDP) [default: 0.0.0.0, any port]
        #[arg(long, value_name = "HOST:PORT", value_parser = parse_listen)]
        listen: Option<SocketAddr>,
        /// Progress on stderr: a bar (when stderr is a terminal), JSON lines
        /// twice a second (fields in docs/cli.md), or nothing
        #[arg(long, value_enum, default_value = "auto")]
        progress: ProgressStyle,
        #[command(flatten)]
        limits: Limits,
        #[command(flatten)]
        dht: DhtArgs,
    },
    /// Create a publisher key file (mode 0600) and print its public key
    Keygen {
        /// Where to write it [default: the platform config dir's swarm/publisher.key]
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Publisher key files: `swarm key show [FILE]` prints a key file's
    /// public key
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Add and pin content, sign a release of it, print the signed-root token
    #[command(disable_version_flag = true)]
    Publish {
        /// Files or directories, as for `swarm add`
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Publisher key file [default: as for `swarm keygen`]
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Release name (a-z, 0-9, '.', '_', '-')
        #[arg(long)]
        name: String,
        /// Semantic version, e.g. 1.4.0
        #[arg(long = "version", value_name = "VER")]
        version: String,
        /// Channel
        #[arg(long, default_value = "stable")]
        channel: String,
        /// Refuse the release after this long: 30d, 12h, 90m, 3600s
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// An earlier release stored here (root, prefix or pin name) to make
        /// patches from, for each file that changed (repeatable, up to 8)
        #[arg(long = "delta-from", value_name = "TARGET")]
        delta_from: Vec<String>,
        /// The publisher's chain file (`swarm root init`): sign a threshold
        /// release under its newest root, --key being one of its keys;
        /// the others add theirs with `swarm sign`
        #[arg(long = "root", value_name = "FILE")]
        root: Option<PathBuf>,
        /// The key that signs the DHT pointer of a --root publisher (its
        /// pointer key), when it is not --key
        #[arg(long = "pointer-key", value_name = "FILE", requires = "root")]
        pointer_key: Option<PathBuf>,
        /// The sequence number to sign [default: one past the newest of this
        /// store's record and the DHT pointer]; refused unless past both
        #[arg(long, value_name = "N")]
        seq: Option<u64>,
        /// Publish a version not above the newest published on the channel
        /// (fetchers take the highest sequence as the newest)
        #[arg(long)]
        allow_downgrade: bool,
        /// Stage the rollout: SHARE@AFTER steps, e.g. 10%@0,50%@6h,100%@1d
        /// (a client's turn comes from its install id; signed with the rest)
        #[arg(long, value_name = "SCHEDULE")]
        rollout: Option<String>,
        /// Mark it critical: offered to everyone at once, and applied
        /// without a verification delay (a security fix)
        #[arg(long)]
        critical: bool,
        #[command(flatten)]
        dht: DhtArgs,
    },
    /// Add your signature to a threshold release (swr2…) and print the
    /// token with it; once it has enough, put it on the DHT
    Sign {
        /// The release token
        token: String,
        /// Your key file, a key of the release's root [default: as for
        /// `swarm keygen`]
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// The publisher's chain file [default: the roots the token carries,
        /// else those this store knows]
        #[arg(long = "root", value_name = "FILE")]
        root: Option<PathBuf>,
        /// The publisher's pointer key: with it, a release that has enough
        /// signatures goes on the DHT
        #[arg(long = "pointer-key", value_name = "FILE")]
        pointer_key: Option<PathBuf>,
        #[command(flatten)]
        dht: DhtArgs,
    },
    /// A publisher's roots of trust: keys with a threshold, rotated in
    /// numbered versions, kept in a chain file (wire-spec/release.md §7)
    Root {
        #[command(subcommand)]
        command: RootCommand,
    },
    /// Check a signed-root token and print the release; with PATH, check local files match it
    Verify {
        /// The token (swr1…)
        token: String,
        /// Files or a directory to compare with the release's root
        path: Option<PathBuf>,
        /// Trust this publisher for this check (repeatable): its key, its
        /// chain file, or its first root's fingerprint (swrf1…)
        #[arg(long = "trust", value_name = "KEY|CHAINFILE|FINGERPRINT")]
        trust: Vec<String>,
    },
    /// Print the newest release token a publisher has put on the DHT
    Resolve {
        /// PUBKEY/NAME or PUBKEY/NAME@CHANNEL (channel defaults to stable)
        pointer: String,
        #[command(flatten)]
        dht: DhtArgs,
    },
    /// Manage the publishers this store trusts
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
    /// Run a self-contained demonstration in a scratch directory (ignores --store)
    Demo,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Print the public key (swpk1…) of a publisher key file, to give to
    /// those who trust your releases
    Show {
        /// The key file [default: as for `swarm keygen`]
        file: Option<PathBuf>,
    },
}

/// `swarm root …`.
#[derive(Debug, Subcommand)]
pub(crate) enum RootCommand {
    /// Start a chain file with version 1 of a root: the keys and how many of
    /// them must sign; each key then signs it with `swarm root sign`
    Init {
        /// A signing key: its public key (swpk1…) or its key file
        /// (repeatable, up to 16)
        #[arg(long = "key", value_name = "KEY", required = true)]
        keys: Vec<String>,
        /// How many of the keys must sign a release (and the next root)
        #[arg(long)]
        threshold: u8,
        /// The pointer key that names the publisher and signs its DHT
        /// pointer: a public key or a key file (`swarm keygen` makes one)
        #[arg(long, value_name = "KEY")]
        pointer: String,
        /// Refuse this root as the newest after this long: 365d, 12w
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// The chain file to create
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Add the next version of the root to a chain file: new keys or a new
    /// threshold (leave a key out to revoke it); a threshold of the current
    /// keys and of the new ones then sign it with `swarm root sign`
    Rotate {
        /// The chain file
        file: PathBuf,
        /// A key of the new version (repeatable; give all of them)
        #[arg(long = "key", value_name = "KEY", required = true)]
        keys: Vec<String>,
        /// Its threshold
        #[arg(long)]
        threshold: u8,
        /// Refuse it as the newest after this long
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Sign the newest root of a chain file with your key
    Sign {
        /// The chain file
        file: PathBuf,
        /// Your key file [default: as for `swarm keygen`]
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Print a chain file's roots: versions, keys, thresholds, signatures
    Show {
        /// The chain file
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TrustCommand {
    /// Trust a publisher: its key (swpk1…), its chain file (trusting its
    /// first root, and following it to the newest), or the fingerprint of
    /// its first root (swrf1…, from `swarm root show`)
    Add {
        /// The public key, a chain file, or a root fingerprint
        key: String,
        /// A label for it
        #[arg(long)]
        name: Option<String>,
    },
    /// Stop trusting a publisher key
    Rm {
        /// The public key
        key: String,
    },
    /// List trusted publisher keys
    Ls,
}

/// How `swarm fetch` shows progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProgressStyle {
    /// A bar when stderr is a terminal, else nothing.
    Auto,
    /// One JSON object per line on stderr, twice a second.
    Json,
    /// Nothing.
    None,
}

/// Rate and connection limits, for `node` and `fetch`.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Limits {
    /// Most bytes per second sent to all peers together, e.g. 20MiB, 500K
    /// [default: the config's, else no limit]
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub(crate) upload_limit: Option<u64>,
    /// Most bytes per second received from all peers together
    /// [default: the config's, else no limit]
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub(crate) download_limit: Option<u64>,
    /// Most incoming connections at once, 1 to 1000000 [default: the
    /// config's, else 256]
    #[arg(long, value_name = "N", value_parser = parse_max_connections)]
    pub(crate) max_connections: Option<u64>,
    /// Most peers one fetch uses at once, 1 to 1000 [default: the config's, else 8]
    #[arg(long, value_name = "N", value_parser = parse_max_peers)]
    pub(crate) max_peers: Option<u64>,
    /// Memory for one connection's data in flight, 256KiB to 1GiB: its
    /// receive window and the most a fetch asks of one peer at once; about
    /// two round trips at the link's rate fill it [default: the config's,
    /// else 4MiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_window)]
    pub(crate) window: Option<u64>,
}

/// A window size (`--window`), e.g. 4MiB.
pub(crate) fn parse_window(s: &str) -> Result<u64, String> {
    let bad = || format!("not a size: {s:?} (expected e.g. 4MiB, 512KiB)");
    if s.trim().ends_with("/s") {
        return Err(bad());
    }
    let n = parse_rate(s).map_err(|_| bad())?;
    use swarm_engine::net::{MAX_WINDOW, MIN_WINDOW};
    if !(MIN_WINDOW..=MAX_WINDOW).contains(&n) {
        return Err(format!("{s:?} is outside 256KiB to 1GiB"));
    }
    Ok(n)
}

/// Most connections a node may be told to accept.
pub(crate) const MAX_CONNECTIONS: u64 = 1_000_000;
/// Most peers a fetch may be told to use.
pub(crate) const MAX_PEERS: u64 = 1000;

/// A connection limit: 0 would refuse everyone.
pub(crate) fn check_max_connections(n: u64) -> Result<u64, String> {
    match n {
        0 => Err("must be at least 1 (0 would refuse every connection)".into()),
        n if n > MAX_CONNECTIONS => Err(format!("{n} is more than the {MAX_CONNECTIONS} allowed")),
        n => Ok(n),
    }
}

/// A peer limit: 0 would fetch from nobody.
pub(crate) fn check_max_peers(n: u64) -> Result<u64, String> {
    match n {
        0 => Err("must be at least 1 (0 would fetch from nobody)".into()),
        n if n > MAX_PEERS => Err(format!("{n} is more than the {MAX_PEERS} allowed")),
        n => Ok(n),
    }
}

fn parse_count(s: &str) -> Result<u64, String> {
    s.trim().parse::<u64>().map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow => format!("{s:?} is too large"),
        _ => format!("not a whole number: {s:?}"),
    })
}

fn parse_max_connections(s: &str) -> Result<u64, String> {
    check_max_connections(parse_count(s)?)
}

fn parse_max_peers(s: &str) -> Result<u64, String> {
    check_max_peers(parse_count(s)?)
}

/// A rate in bytes per second: a number with an optional unit (K, M, G
/// are powers of 1000; KiB, MiB, GiB of 1024) and an optional "/s".
pub(crate) fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("not a rate: {s:?} (expected e.g. 20MiB, 500K, 1000000)");
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KB" | "k" | "kB" => 1e3,
        "M" | "MB" => 1e6,
        "G" | "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let v = n * mult;
    if !(1.0..1e15).contains(&v) {
        return Err(format!("rate {s:?} is out of range"));
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::{parse_max_connections, parse_max_peers, parse_rate};

    #[test]
    fn super_seed_alone_is_on_and_takes_a_mode() {
        use clap::Parser;
        use swarm_engine::net::SuperSeedMode;
        let mode = |args: &[&str]| {
            let cli = super::Cli::try_parse_from(["swarm", "node"].iter().chain(args))
                .map_err(|e| e.to_string())?;
            match cli.command {
                super::Command::Node { super_seed, .. } => Ok(super_seed),
                other => Err(format!("{other:?}")),
            }
        };
        assert_eq!(mode(&[]), Ok(None));
        assert_eq!(mode(&["--super-seed"]), Ok(Some(SuperSeedMode::On)));
        assert_eq!(
            mode(&["--super-seed", "--listen", "127.0.0.1:1"]),
            Ok(Some(SuperSeedMode::On))
        );
        assert_eq!(mode(&["--super-seed=off"]), Ok(Some(SuperSeedMode::Off)));
        assert_eq!(
            mode(&["--super-seed", "auto"]),
            Ok(Some(SuperSeedMode::Auto))
        );
        let err = mode(&["--super-seed=sometimes"]).unwrap_err();
        assert!(err.contains("on, auto, off"), "{err}");
    }

    #[test]
    fn limits_refuse_zero_and_overflow() {
        assert_eq!(parse_max_connections("1"), Ok(1));
        assert_eq!(parse_max_peers("1000"), Ok(1000));
        for bad in ["0", "-1", "18446744073709551616", "1000001", "many"] {
            assert!(parse_max_connections(bad).is_err(), "{bad}");
        }
        for bad in ["0", "1001", "99999999999999999999"] {
            assert!(parse_max_peers(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_rate("20MiB"), Ok(20 << 20));
        assert_eq!(parse_rate("20MiB/s"), Ok(20 << 20));
        assert_eq!(parse_rate("500K"), Ok(500_000));
        assert_eq!(parse_rate("1.5M"), Ok(1_500_000));
        assert_eq!(parse_rate("4096"), Ok(4096));
        for bad in [
            "",
            "fast",
            "20 parsecs",
            "-1M",
            "0",
            "0.1",
            "1e3",
            "99999999999999999999G",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
