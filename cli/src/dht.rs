//! The DHT side of the commands: settings from the flags, resolving
//! PUBKEY/NAME[@CHANNEL] pointers, putting a published release pointer.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;
use swarm_engine::discovery::{Dht, DhtConfig};
use swarm_engine::release::{SecretKey, SignedRelease};

/// The DHT settings the flags ask for; `None` with --no-dht. The socket
/// binds `bind`, else the IP of `listen` when it names one (a node on
/// 127.0.0.1 keeps its DHT there too), else every interface.
pub(crate) fn config(
    bootstrap: &[String],
    no_dht: bool,
    server: bool,
    bind: Option<std::net::SocketAddrV4>,
    listen: Option<std::net::SocketAddr>,
) -> Option<DhtConfig> {
    if no_dht {
        return None;
    }
    let from_listen = match listen {
        Some(std::net::SocketAddr::V4(a)) if !a.ip().is_unspecified() => Some(*a.ip()),
        _ => None,
    };
    let mut c = DhtConfig {
        server,
        bind: bind.map(|b| *b.ip()).or(from_listen),
        port: bind.map_or(0, |b| b.port()),
        ..Default::default()
    };
    if !bootstrap.is_empty() {
        c.bootstrap = bootstrap.to_vec();
    }
    Some(c)
}

/// How to turn the DHT back on, as the user turned it off: the flag, or
/// the environment (`SWARM_NO_DHT`), or both.
pub(crate) fn how_to_enable() -> &'static str {
    let flag = std::env::args_os().any(|a| a == "--no-dht");
    let env = std::env::var_os("SWARM_NO_DHT").is_some_and(|v| {
        let v = v.to_string_lossy().to_ascii_lowercase();
        !matches!(v.trim(), "" | "0" | "false" | "no" | "off" | "n" | "f")
    });
    match (flag, env) {
        (true, true) => "remove --no-dht and unset SWARM_NO_DHT",
        (false, true) => "unset SWARM_NO_DHT (it turns the DHT off)",
        _ => "remove --no-dht",
    }
}

/// A `PUBKEY/NAME[@CHANNEL]` pointer.
pub(crate) type Pointer = swarm_engine::release::Pointer;

/// Whether `s` looks like a pointer rather than a token or a root.
pub(crate) fn is_pointer(s: &str) -> bool {
    Pointer::looks_like(s)
}

pub(crate) fn parse_pointer(s: &str) -> Result<Pointer> {
    Ok(s.parse()?)
}

/// Join the DHT and wait for it to be usable.
pub(crate) async fn join(config: &DhtConfig) -> Result<Dht> {
    let dht = Dht::spawn(config)?;
    if !dht.bootstrapped().await {
        bail!(
            "could not join the DHT through {} (use --bootstrap HOST:PORT, or --no-dht with --peer)",
            config.bootstrap.join(", ")
        );
    }
    Ok(dht)
}

/// Look a pointer up: the newest signed release under it.
pub(crate) async fn lookup(config: &DhtConfig, p: &Pointer) -> Result<SignedRelease> {
    let dht = join(config).await?;
    // The whole lookup: a fetch or `swarm resolve` wants the newest, not
    // the first answer.
    dht.resolve_newest(&p.publisher, &p.name, &p.channel)
        .await
        .with_context(|| {
            format!(
                "no release of {}@{} by {} was found on the DHT",
                p.name, p.channel, p.publisher
            )
        })
}

/// `swarm resolve PUBKEY/NAME[@CHANNEL]`.
pub(crate) fn resolve(config: Option<DhtConfig>, pointer: &str, json: bool) -> Result<ExitCode> {
    let config = config.with_context(|| format!("resolve needs the DHT; {}", how_to_enable()))?;
    let p = parse_pointer(pointer)?;
    let rt = tokio::runtime::Runtime::new()?;
    let signed = rt.block_on(lookup(&config, &p))?;
    let r = signed.release();
    if json {
        println!(
            "{}",
            json!({
                "token": signed.to_token(),
                "name": r.name,
                "channel": r.channel,
                "version": r.version.to_string(),
                "seq": r.seq,
                "root": r.root.to_hex(),
                "size": r.size,
            })
        );
    } else {
        println!("{}", signed.to_token());
        eprintln!(
            "{} {} on {} (seq {}), root {}",
            r.name, r.version, r.channel, r.seq, r.root
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One joined DHT node for a command that reads a pointer, then puts one.
pub(crate) struct Session {
    rt: tokio::runtime::Runtime,
    dht: Dht,
}

impl Session {
    /// Join for publishing; `None` (with a warning) when the DHT is off or
    /// cannot be joined: publishing locally still works.
    pub(crate) fn open_for_publish(config: Option<DhtConfig>) -> Option<Self> {
        let config = config?;
        eprintln!(
            "reading and putting the release pointer on the DHT through {} (--no-dht skips this)",
            config.bootstrap.join(", ")
        );
        let rt = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("warning: cannot use the DHT: {e}");
                return None;
            }
        };
        match rt.block_on(join(&config)) {
            Ok(dht) => Some(Self { rt, dht }),
            Err(e) => {
                eprintln!(
                    "warning: the DHT is unreachable, so the sequence comes from this store only \
                     and no pointer is put: {e:#}"
                );
                None
            }
        }
    }

    /// The newest release the DHT holds for (publisher, name, channel).
    pub(crate) fn newest(
        &self,
        publisher: &swarm_engine::release::PublicKey,
        name: &str,
        channel: &str,
    ) -> Option<SignedRelease> {
        self.rt
            .block_on(self.dht.resolve_newest(publisher, name, channel))
    }

    /// Put `signed` as the pointer, and read it back.
    pub(crate) fn put(&self, signed: &SignedRelease, key: &SecretKey) -> Result<()> {
        self.rt.block_on(self.dht.put_release(signed, key))?;
        Ok(())
    }
}
