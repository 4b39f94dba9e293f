//! The `swarm node` config file (TOML). Layer two of the arguments: flags
//! override it, and the result is validated before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// What a config file may say. Every field is optional.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeConfig {
    /// The store directory.
    pub(crate) store: Option<PathBuf>,
    /// UDP address to serve on.
    pub(crate) listen: Option<SocketAddr>,
    /// DHT bootstrap nodes, HOST:PORT.
    #[serde(default)]
    pub(crate) bootstrap: Vec<String>,
    /// Turn the DHT off.
    #[serde(default)]
    pub(crate) no_dht: bool,
    /// The DHT socket's IPv4 address and optional port (`--dht-bind`).
    pub(crate) dht_bind: Option<String>,
    /// Static peers to fetch seeded releases from (HOST:PORT or ID@HOST:PORT).
    #[serde(default)]
    pub(crate) peers: Vec<String>,
    /// HTTP(S) mirrors to fetch seeded releases from too (base URLs).
    #[serde(default)]
    pub(crate) mirrors: Vec<String>,
    /// Publisher keys to trust for what `seed` lists (swpk1…).
    #[serde(default)]
    pub(crate) trust: Vec<String>,
    /// Releases to fetch, keep and serve: tokens (swr1…) or publisher
    /// pointers (PUBKEY/NAME[@CHANNEL]), re-resolved periodically.
    #[serde(default)]
    pub(crate) seed: Vec<String>,
    /// Upload cap for all peers together, e.g. "20MiB".
    pub(crate) upload_limit: Option<String>,
    /// Download cap for all peers together.
    pub(crate) download_limit: Option<String>,
    /// Most incoming connections at once.
    pub(crate) max_connections: Option<u64>,
    /// Most peers one fetch uses at once.
    pub(crate) max_peers: Option<u64>,
    /// Memory for one connection's data in flight (`--window`), e.g. "4MiB".
    pub(crate) window: Option<String>,
    /// When to super-seed complete blobs (`--super-seed`): "on", "auto"
    /// or "off", or true (on) or false (off).
    #[serde(default, deserialize_with = "super_seed_mode")]
    pub(crate) super_seed: Option<swarm_engine::net::SuperSeedMode>,
    /// The control API on TCP too (`--api`), HOST:PORT.
    pub(crate) api: Option<SocketAddr>,
    /// Its bearer token's file (`--api-token-file`).
    pub(crate) api_token_file: Option<PathBuf>,
    /// Let `api` be an address other machines can reach.
    #[serde(default)]
    pub(crate) api_allow_remote: bool,
    /// How often, in seconds, to log what each root served
    /// (`--log-served`); 0 for never.
    pub(crate) log_served: Option<u64>,
    /// `[auto_update]`: how the `seed` pointers are followed (enabled,
    /// security_only, check_every_secs, verification_delay_secs; the
    /// application settings auto_restart and background_download are
    /// accepted and do nothing for a node).
    pub(crate) auto_update: Option<swarm_engine::update::AutoUpdate>,
}

/// `super_seed`: a mode's name, or a boolean as earlier versions took.
fn super_seed_mode<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<swarm_engine::net::SuperSeedMode>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Setting {
        Bool(bool),
        Name(String),
    }
    Ok(Some(match Setting::deserialize(d)? {
        Setting::Bool(on) => on.into(),
        Setting::Name(s) => s.parse().map_err(serde::de::Error::custom)?,
    }))
}

impl NodeConfig {
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let text = crate::files::read_bounded(path, crate::files::MAX_CONFIG_FILE, "config file")?;
        Self::parse(&text).with_context(|| format!("in the config file {}", path.display()))
    }

    fn parse(text: &str) -> Result<Self> {
        let c: Self = toml::from_str(text)?;
        for s in &c.seed {
            let t = s.trim();
            anyhow::ensure!(
                swarm_engine::release::is_token(t) || crate::dht::is_pointer(t),
                "seed entry {t:?} is neither a token (swr1…) nor a pointer (PUBKEY/NAME[@CHANNEL])"
            );
        }
        for k in &c.trust {
            k.parse::<swarm_engine::release::PublicKey>()?;
        }
        for p in &c.peers {
            p.parse::<swarm_engine::net::PeerAddr>()?;
        }
        for m in &c.mirrors {
            m.parse::<swarm_engine::mirror::MirrorUrl>()
                .map_err(|e| anyhow::anyhow!("mirrors: {e}"))?;
        }
        for (key, v) in [
            ("upload_limit", &c.upload_limit),
            ("download_limit", &c.download_limit),
        ] {
            if let Some(v) = v {
                crate::args::parse_rate(v).map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
            }
        }
        if let Some(n) = c.max_connections {
            crate::args::check_max_connections(n)
                .map_err(|e| anyhow::anyhow!("max_connections: {e}"))?;
        }
        if let Some(n) = c.max_peers {
            crate::args::check_max_peers(n).map_err(|e| anyhow::anyhow!("max_peers: {e}"))?;
        }
        if let Some(w) = &c.window {
            crate::args::parse_window(w).map_err(|e| anyhow::anyhow!("window: {e}"))?;
        }
        if let Some(b) = &c.dht_bind {
            crate::args::parse_dht_bind(b).map_err(|e| anyhow::anyhow!("dht_bind: {e}"))?;
        }
        Ok(c)
    }

    /// The limits: flags, else this file's, else none.
    pub(crate) fn limits(&self, flags: &crate::args::Limits) -> crate::args::Limits {
        let rate = |v: &Option<String>| v.as_deref().and_then(|v| crate::args::parse_rate(v).ok());
        crate::args::Limits {
            upload_limit: flags.upload_limit.or_else(|| rate(&self.upload_limit)),
            download_limit: flags.download_limit.or_else(|| rate(&self.download_limit)),
            max_connections: flags.max_connections.or(self.max_connections),
            max_peers: flags.max_peers.or(self.max_peers),
            window: flags.window.or_else(|| {
                self.window
                    .as_deref()
                    .and_then(|w| crate::args::parse_window(w).ok())
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let key = swarm_engine::release::SecretKey::from_seed(&[1; 32]).public();
        let text = format!(
            r#"
store = "/var/lib/swarm"
listen = "0.0.0.0:7411"
bootstrap = ["127.0.0.1:6881"]
peers = ["127.0.0.1:7412"]
mirrors = ["https://cdn.example.com/myapp"]
trust = ["{key}"]
seed = ["{key}/myapp@stable"]
upload_limit = "20MiB"
max_peers = 4
window = "4MiB"
"#
        );
        let c = NodeConfig::parse(&text).unwrap();
        assert_eq!(c.listen, Some("0.0.0.0:7411".parse().unwrap()));
        assert_eq!(c.seed.len(), 1);
        assert_eq!(c.mirrors, ["https://cdn.example.com/myapp"]);
        assert!(!c.no_dht);
        let l = c.limits(&crate::args::Limits::default());
        assert_eq!(l.upload_limit, Some(20 << 20));
        assert_eq!(l.max_peers, Some(4));
        assert_eq!(l.window, Some(4 << 20));
        let flags = crate::args::Limits {
            upload_limit: Some(1000),
            ..Default::default()
        };
        assert_eq!(c.limits(&flags).upload_limit, Some(1000));
    }

    #[test]
    fn mistakes_are_refused_with_the_reason() {
        let err = NodeConfig::parse("lisen = \"0.0.0.0:1\"").unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
        let err = NodeConfig::parse("seed = [\"nonsense\"]").unwrap_err();
        assert!(format!("{err:#}").contains("neither a token"), "{err:#}");
        let err = NodeConfig::parse("trust = [\"swpk1nope\"]").unwrap_err();
        assert!(format!("{err:#}").contains("publisher key"), "{err:#}");
        let err = NodeConfig::parse("upload_limit = \"fast\"").unwrap_err();
        assert!(format!("{err:#}").contains("upload_limit"), "{err:#}");
        for (text, key) in [
            ("max_connections = 0", "max_connections"),
            ("max_connections = 18446744073709551615", "max_connections"),
            ("max_peers = 0", "max_peers"),
            ("max_peers = 100000", "max_peers"),
            ("upload_limit = \"0\"", "upload_limit"),
            ("download_limit = \"99999999PiB\"", "download_limit"),
            ("mirrors = [\"ftp://example.com/\"]", "mirrors"),
            ("window = \"4KiB\"", "window"),
            ("window = \"2GiB\"", "window"),
            ("window = \"4MiB/s\"", "window"),
        ] {
            let err = format!("{:#}", NodeConfig::parse(text).unwrap_err());
            assert!(err.contains(key), "{text}: {err}");
        }
        assert_eq!(NodeConfig::parse("").unwrap(), NodeConfig::default());
    }

    #[test]
    fn auto_update_maps_onto_how_seeds_are_followed() {
        let key = swarm_engine::release::SecretKey::from_seed(&[1; 32]).public();
        let text = format!(
            r#"
seed = ["{key}/myapp"]
[auto_update]
security_only = true
check_every_secs = 600
verification_delay_secs = 21600
"#
        );
        let c = NodeConfig::parse(&text).unwrap();
        let seeding = crate::net::Seeding::from_config(&c, None).unwrap();
        let f = seeding.follow();
        assert_eq!(f.every, std::time::Duration::from_secs(600));
        assert_eq!(f.delay, Some(std::time::Duration::from_secs(6 * 3600)));
        assert!(f.critical_only && f.pointers);
        // Without the table, the node follows as it always did.
        let plain = NodeConfig::parse(&format!("seed = [\"{key}/myapp\"]")).unwrap();
        let f = crate::net::Seeding::from_config(&plain, None)
            .unwrap()
            .follow();
        assert_eq!((f.delay, f.critical_only), (None, false));
        let err = format!(
            "{:#}",
            NodeConfig::parse("[auto_update]\nenable = true").unwrap_err()
        );
        assert!(err.contains("enable"), "{err}");
    }

    #[test]
    fn super_seed_takes_a_mode_or_a_boolean() {
        use swarm_engine::net::SuperSeedMode;
        for (text, mode) in [
            ("super_seed = \"auto\"", SuperSeedMode::Auto),
            ("super_seed = \"off\"", SuperSeedMode::Off),
            ("super_seed = \"on\"", SuperSeedMode::On),
            // As earlier versions took it.
            ("super_seed = true", SuperSeedMode::On),
            ("super_seed = false", SuperSeedMode::Off),
        ] {
            assert_eq!(
                NodeConfig::parse(text).unwrap().super_seed,
                Some(mode),
                "{text}"
            );
        }
        assert_eq!(NodeConfig::parse("").unwrap().super_seed, None);
        let err = format!(
            "{:#}",
            NodeConfig::parse("super_seed = \"always\"").unwrap_err()
        );
        assert!(
            err.contains("super_seed") && err.contains("on, auto, off"),
            "{err}"
        );
    }
}
