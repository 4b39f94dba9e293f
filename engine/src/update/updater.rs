//! Finding, fetching and installing a newer release of the application.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::install::{InstallError, Installer};
use crate::content::Hash;
use crate::metrics::{self, UpdateStep};
use crate::net::PeerAddr;
use crate::node::{FetchError, FetchOptions, Node};
use crate::release::rollout::{Offer, offer};
use crate::release::{Policy, PublicKey, SignedRelease, Want};
use crate::store::{AcceptError, ExportError, ExportOptions, ReadError, StoreError};

/// What an application updates itself from.
///
/// ```
/// use swarm_engine::release::SecretKey;
/// use swarm_engine::update::UpdateConfig;
///
/// let publisher = SecretKey::from_seed(&[7; 32]).public(); // printed by `swarm keygen`
/// let config = UpdateConfig {
///     publishers: vec![publisher],
///     name: "app".into(),
///     channel: "stable".into(),
///     current: env!("CARGO_PKG_VERSION").parse()?,
///     artifact: Some("app/bin/app".into()),
///     pin: Some(semver::VersionReq::parse("^0.1")?), // stay on 0.1.x
///     allow_downgrade: false,
/// };
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct UpdateConfig {
    /// Publisher keys trusted for this application (besides the store's).
    pub publishers: Vec<PublicKey>,
    /// The release name.
    pub name: String,
    /// The channel followed, e.g. `stable`.
    pub channel: String,
    /// The version running now.
    pub current: semver::Version,
    /// The executable's path inside the release (`app/bin/app`); `None`
    /// if the release is that one file.
    pub artifact: Option<String>,
    /// Only versions matching this are taken (version pinning).
    pub pin: Option<semver::VersionReq>,
    /// Take a release with a lower version than the current one (the
    /// publisher's sequence must still increase; only the version may go
    /// back, for a publisher withdrawing a bad release).
    pub allow_downgrade: bool,
}

/// A release newer than the running version, checked under the policy.
///
/// ```
/// # use std::net::SocketAddr;
/// # use swarm_engine::node::Node;
/// # use swarm_engine::release::SecretKey;
/// # use swarm_engine::store::PublishOptions;
/// # use swarm_engine::update::{Installer, UpdateConfig, Updater};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let exe = dir.path().join("app");
/// # std::fs::write(&exe, b"app 1.0.0")?;
/// # let key = SecretKey::from_seed(&[7; 32]);
/// # let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
/// # let publisher = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
/// # std::fs::create_dir(dir.path().join("build"))?;
/// # let build = dir.path().join("build/app");
/// # std::fs::write(&build, b"app 1.1.0")?;
/// # let opts = PublishOptions::new("app", semver::Version::new(1, 1, 0));
/// # let token = publisher.store().publish(&key, &[build], &opts)?.release.to_token();
/// # let node = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
/// # let config = UpdateConfig {
/// #     publishers: vec![key.public()],
/// #     name: "app".into(),
/// #     channel: "stable".into(),
/// #     current: semver::Version::new(1, 0, 0),
/// #     artifact: None,
/// #     pin: None,
/// #     allow_downgrade: false,
/// # };
/// # let updater = Updater::new(node.clone(), config, Installer::new(&exe));
/// let update = updater.check_token(&token)?.expect("1.1.0 is newer than 1.0.0");
/// assert_eq!(update.release.to_token(), token);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Update {
    /// The signed release.
    pub release: SignedRelease,
}

impl Update {
    /// Its version.
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use swarm_engine::node::Node;
    /// # use swarm_engine::release::SecretKey;
    /// # use swarm_engine::store::PublishOptions;
    /// # use swarm_engine::update::{Installer, UpdateConfig, Updater};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0.0")?;
    /// # let key = SecretKey::from_seed(&[7; 32]);
    /// # let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    /// # let publisher = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
    /// # std::fs::create_dir(dir.path().join("build"))?;
    /// # let build = dir.path().join("build/app");
    /// # std::fs::write(&build, b"app 1.1.0")?;
    /// # let opts = PublishOptions::new("app", semver::Version::new(1, 1, 0));
    /// # let token = publisher.store().publish(&key, &[build], &opts)?.release.to_token();
    /// # let node = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
    /// # let config = UpdateConfig {
    /// #     publishers: vec![key.public()],
    /// #     name: "app".into(),
    /// #     channel: "stable".into(),
    /// #     current: semver::Version::new(1, 0, 0),
    /// #     artifact: None,
    /// #     pin: None,
    /// #     allow_downgrade: false,
    /// # };
    /// # let updater = Updater::new(node.clone(), config, Installer::new(&exe));
    /// let update = updater.check_token(&token)?.expect("newer");
    /// assert_eq!(update.version(), &semver::Version::new(1, 1, 0));
    /// # Ok(())
    /// # }
    /// ```
    pub fn version(&self) -> &semver::Version {
        &self.release.release().version
    }
}

/// A fetched update, ready for [`Updater::apply`].
///
/// ```
/// # use std::net::SocketAddr;
/// # use swarm_engine::node::Node;
/// # use swarm_engine::release::SecretKey;
/// # use swarm_engine::store::PublishOptions;
/// # use swarm_engine::update::{Installer, UpdateConfig, Updater};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let exe = dir.path().join("app");
/// # std::fs::write(&exe, b"app 1.0.0")?;
/// # let key = SecretKey::from_seed(&[7; 32]);
/// # let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
/// # let publisher = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
/// # std::fs::create_dir(dir.path().join("build"))?;
/// # let build = dir.path().join("build/app");
/// # std::fs::write(&build, b"app 1.1.0")?;
/// # let opts = PublishOptions::new("app", semver::Version::new(1, 1, 0));
/// # let token = publisher.store().publish(&key, &[build], &opts)?.release.to_token();
/// # let node = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
/// # let config = UpdateConfig {
/// #     publishers: vec![key.public()],
/// #     name: "app".into(),
/// #     channel: "stable".into(),
/// #     current: semver::Version::new(1, 0, 0),
/// #     artifact: None,
/// #     pin: None,
/// #     allow_downgrade: false,
/// # };
/// # let updater = Updater::new(node.clone(), config, Installer::new(&exe));
/// let update = updater.check_token(&token)?.expect("newer");
/// let downloaded = updater.download(&update, vec![publisher.addr()?]).await?;
/// let dir = downloaded.path().parent().expect("a directory").to_owned();
/// // Dropped without being applied: the download directory goes too.
/// drop(downloaded);
/// assert!(!dir.exists());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Downloaded {
    update: Update,
    dir: PathBuf,
    file: PathBuf,
    hash: Hash,
    received: u64,
    patched: crate::node::Patched,
}

impl Downloaded {
    /// Bytes the download received from the network.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Files made by patches from what was installed or stored: fewer
    /// bytes moved than the release's size.
    pub fn patched(&self) -> crate::node::Patched {
        self.patched
    }

    /// The new executable, exported and verified.
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use swarm_engine::node::Node;
    /// # use swarm_engine::release::SecretKey;
    /// # use swarm_engine::store::PublishOptions;
    /// # use swarm_engine::update::{Installer, UpdateConfig, Updater};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0.0")?;
    /// # let key = SecretKey::from_seed(&[7; 32]);
    /// # let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    /// # let publisher = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
    /// # std::fs::create_dir(dir.path().join("build"))?;
    /// # let build = dir.path().join("build/app");
    /// # std::fs::write(&build, b"app 1.1.0")?;
    /// # let opts = PublishOptions::new("app", semver::Version::new(1, 1, 0));
    /// # let token = publisher.store().publish(&key, &[build], &opts)?.release.to_token();
    /// # let node = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
    /// # let config = UpdateConfig {
    /// #     publishers: vec![key.public()],
    /// #     name: "app".into(),
    /// #     channel: "stable".into(),
    /// #     current: semver::Version::new(1, 0, 0),
    /// #     artifact: None,
    /// #     pin: None,
    /// #     allow_downgrade: false,
    /// # };
    /// # let updater = Updater::new(node.clone(), config, Installer::new(&exe));
    /// let update = updater.check_token(&token)?.expect("newer");
    /// let downloaded = updater.download(&update, vec![publisher.addr()?]).await?;
    /// assert_eq!(std::fs::read(downloaded.path())?, b"app 1.1.0");
    /// // Beside the executable, so installing it is a rename.
    /// assert!(downloaded.path().starts_with(dir.path()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> &Path {
        &self.file
    }
}

impl Drop for Downloaded {
    /// Removes the download directory, whether the download was applied,
    /// abandoned, or failed half-way.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Updating failed; the running version is untouched.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::release::Release;
/// use swarm_engine::update::UpdateError;
///
/// # use std::net::SocketAddr;
/// # use swarm_engine::node::Node;
/// # use swarm_engine::release::SecretKey;
/// # use swarm_engine::store::PublishOptions;
/// # use swarm_engine::update::{Installer, UpdateConfig, Updater};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let exe = dir.path().join("app");
/// # std::fs::write(&exe, b"app 1.0.0")?;
/// # let key = SecretKey::from_seed(&[7; 32]);
/// # let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
/// # let publisher = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
/// # std::fs::create_dir(dir.path().join("build"))?;
/// # let build = dir.path().join("build/app");
/// # std::fs::write(&build, b"app 1.1.0")?;
/// # let opts = PublishOptions::new("app", semver::Version::new(1, 1, 0));
/// # let token = publisher.store().publish(&key, &[build], &opts)?.release.to_token();
/// # let node = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
/// # let config = UpdateConfig {
/// #     publishers: vec![key.public()],
/// #     name: "app".into(),
/// #     channel: "stable".into(),
/// #     current: semver::Version::new(1, 0, 0),
/// #     artifact: None,
/// #     pin: None,
/// #     allow_downgrade: false,
/// # };
/// # let updater = Updater::new(node.clone(), config, Installer::new(&exe));
/// // The publisher withdraws 1.0.0 for 0.9.0, but this application does not
/// // allow downgrades.
/// let older = Release {
///     publisher: key.public(),
///     name: "app".into(),
///     channel: "stable".into(),
///     version: semver::Version::new(0, 9, 0),
///     seq: 5,
///     root: Hash::of(b"manifest of 0.9.0"),
///     size: 9,
///     created: opts.created,
///     expires: None,
///     rollout: Default::default(),
/// }
/// .sign(&key)?;
/// let err = updater.check_token(&older.to_token()).unwrap_err();
/// assert!(matches!(err, UpdateError::NotAnUpdate(_)));
/// println!("{err}"); // release 0.9.0 is older than the running 1.0.0; …
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The node has no DHT to look releases up on.
    #[error("the node has no DHT: resolving a release pointer needs one")]
    NoDht,
    /// The DHT could not be joined, so whether there is an update is
    /// unknown.
    #[error(
        "could not join the DHT to look for updates; check the bootstrap nodes and the network"
    )]
    NotBootstrapped,
    /// The release is refused by the trust and rollback policy.
    #[error(transparent)]
    Refused(#[from] AcceptError),
    /// Not an update for this application (name, channel, version rules).
    #[error("{0}")]
    NotAnUpdate(String),
    /// Fetching it failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The release does not contain the executable.
    #[error("release {version} has no file {artifact}; the application's artifact path is wrong")]
    NoArtifact {
        /// The release's version.
        version: semver::Version,
        /// The path looked for.
        artifact: String,
    },
    /// The release's files disagree with its signed size.
    #[error(
        "release {0} says {1} bytes, but its manifest lists {2}: the publisher signed inconsistent data"
    )]
    SizeMismatch(semver::Version, u64, u64),
    /// Reading or exporting from the store failed.
    #[error("cannot export the update: {0}")]
    Export(String),
    /// Installing failed.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A staged rollout has not reached this install yet
    /// (`wire-spec/release.md` §2.1).
    #[error("release {version} is staged: {}", match from {
        Some(t) => format!("offered to you from {}", utc(*t)),
        None => "its schedule does not reach this install".into(),
    })]
    Staged {
        /// The release's version.
        version: semver::Version,
        /// When this install is offered it (Unix seconds), if ever.
        from: Option<u64>,
    },
    /// The release is younger than the verification delay.
    #[error("release {version} waits out the verification delay: it may be applied from {}", utc(*until))]
    Delayed {
        /// The release's version.
        version: semver::Version,
        /// When it may be applied (Unix seconds).
        until: u64,
    },
}

/// The updates [`Updater::watch`] finds; dropping it stops watching.
#[derive(Debug)]
pub struct UpdateWatch {
    rx: tokio::sync::mpsc::Receiver<Update>,
    tasks: Vec<tokio::task::AbortHandle>,
    _interest: crate::node::InterestGuard,
}

impl UpdateWatch {
    /// The next update, once it is acceptable; `None` if watching ended.
    pub async fn next(&mut self) -> Option<Update> {
        self.rx.recv().await
    }
}

impl Drop for UpdateWatch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// `every`, give or take a tenth.
fn jittered(every: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = getrandom::fill(&mut b).map_or(0.5, |()| f64::from(u16::from_le_bytes(b)) / 65_535.0);
    every.mul_f64(0.9 + 0.2 * r)
}

async fn watching(u: Updater, every: Duration, tx: tokio::sync::mpsc::Sender<Update>) {
    use tokio::sync::broadcast::error::RecvError;
    let mut heard = u.node.gossiped();
    let mut next_poll = tokio::time::Instant::now();
    // A release staged or delayed here, and when to look at it again.
    let mut pending: Option<(SignedRelease, tokio::time::Instant)> = None;
    let mut yielded: Option<u64> = None;
    let far = || tokio::time::Instant::now() + Duration::from_secs(365 * 86_400);
    loop {
        let candidate = tokio::select! {
            r = heard.recv() => match r {
                Ok(r) => Some(r),
                Err(RecvError::Lagged(_)) => {
                    next_poll = tokio::time::Instant::now();
                    None
                }
                Err(RecvError::Closed) => return,
            },
            () = tokio::time::sleep_until(next_poll), if u.node.dht().is_some() => {
                next_poll = tokio::time::Instant::now() + jittered(every);
                match u.newest_on_dht().await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::info!("looking for updates: {e}");
                        None
                    }
                }
            }
            () = tokio::time::sleep_until(pending.as_ref().map_or_else(far, |p| p.1)), if pending.is_some() => {
                pending.take().map(|p| p.0)
            }
        };
        let Some(r) = candidate else { continue };
        let c = &u.config;
        let about = r.release().name == c.name
            && r.release().channel == c.channel
            && c.publishers.contains(&r.release().publisher);
        if !about || yielded.is_some_and(|y| r.release().seq <= y) {
            continue;
        }
        if pending
            .as_ref()
            .is_some_and(|p| p.0.release().seq > r.release().seq)
        {
            continue;
        }
        let now = unix_now();
        let at = |t: u64| tokio::time::Instant::now() + Duration::from_secs(t.saturating_sub(now));
        match u.consider(r.clone(), false) {
            Ok(Some(update)) => {
                yielded = Some(r.release().seq);
                pending = None;
                if tx.send(update).await.is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(UpdateError::Staged { from: Some(t), .. }) => pending = Some((r, at(t))),
            Err(UpdateError::Delayed { until, .. }) => pending = Some((r, at(until))),
            Err(e) => tracing::info!("not taking release {}: {e}", r.release().version),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
///
/// ```
/// assert_eq!(swarm_engine::update::utc(1_800_000_000), "2027-01-15 08:00:00 UTC");
/// ```
pub fn utc(t: u64) -> String {
    let (days, secs) = (t / 86_400, t % 86_400);
    // Civil from days (Howard Hinnant's algorithm), days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Keeps an application up to date from the swarm.
///
/// ```
/// use std::net::SocketAddr;
/// use swarm_engine::node::Node;
/// use swarm_engine::release::SecretKey;
/// use swarm_engine::store::PublishOptions;
/// use swarm_engine::update::{Installer, UpdateConfig, Updater};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let exe = dir.path().join("app");
/// std::fs::write(&exe, b"app 1.0.0")?;
/// let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
///
/// // The publisher signs release 1.1.0 and seeds it.
/// let key = SecretKey::from_seed(&[7; 32]);
/// let publisher = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
/// std::fs::create_dir(dir.path().join("build"))?;
/// std::fs::write(dir.path().join("build/app"), b"app 1.1.0")?;
/// let opts = PublishOptions::new("app", semver::Version::new(1, 1, 0));
/// let published = publisher.store().publish(&key, &[dir.path().join("build/app")], &opts)?;
/// let token = published.release.to_token();
///
/// // The application, at 1.0.0, trusts the publisher's key.
/// let node = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
/// let config = UpdateConfig {
///     publishers: vec![key.public()],
///     name: "app".into(),
///     channel: "stable".into(),
///     current: semver::Version::new(1, 0, 0),
///     artifact: None, // the release is the executable alone
///     pin: None,
///     allow_downgrade: false,
/// };
/// let updater = Updater::new(node, config, Installer::new(&exe));
/// let update = updater.check_token(&token)?.expect("1.1.0 is newer");
/// let downloaded = updater.download(&update, vec![publisher.addr()?]).await?;
/// updater.apply(&downloaded)?;
/// assert_eq!(std::fs::read(&exe)?, b"app 1.1.0");
/// assert!(updater.installer().on_trial()?); // until 1.1.0 calls mark_healthy
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Updater {
    node: Node,
    config: UpdateConfig,
    installer: Installer,
    /// Apply a release only once it is this old, unless critical.
    delay: Option<Duration>,
}

impl Updater {
    /// An updater that fetches through `node` and installs with `installer`.
    ///
    /// ```
    /// use swarm_engine::node::Node;
    /// use swarm_engine::release::SecretKey;
    /// use swarm_engine::update::{Installer, UpdateConfig, Updater};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = Node::builder().memory().no_dht().spawn().await?;
    /// let config = UpdateConfig {
    ///     publishers: vec![SecretKey::from_seed(&[7; 32]).public()],
    ///     name: "app".into(),
    ///     channel: "stable".into(),
    ///     current: semver::Version::new(1, 0, 0),
    ///     artifact: None,
    ///     pin: None,
    ///     allow_downgrade: false,
    /// };
    /// let updater = Updater::new(node, config, Installer::new("/opt/app/app"));
    /// assert_eq!(updater.installer().exe(), std::path::Path::new("/opt/app/app"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(node: Node, config: UpdateConfig, installer: Installer) -> Self {
        Self {
            node,
            config,
            installer,
            delay: None,
        }
    }

    /// Take a release only once it is at least `delay` old (counted from
    /// its signed creation time), unless it is critical: a verification
    /// period in which a bad release can be withdrawn.
    pub fn verification_delay(mut self, delay: Option<Duration>) -> Self {
        self.delay = delay;
        self
    }

    #[cfg(test)]
    pub(crate) fn config_mut(&mut self) -> &mut UpdateConfig {
        &mut self.config
    }

    /// This install's stable random id, kept in the node's store: its
    /// place in every staged rollout comes from it (`release::rollout`).
    pub fn install_id(&self) -> Result<[u8; 32], StoreError> {
        self.node.store().secret("install-id", || {
            let mut b = [0u8; 32];
            getrandom::fill(&mut b)
                .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?;
            Ok(b)
        })
    }

    /// The installer (for [`Installer::startup`] and
    /// [`Installer::mark_healthy`]).
    ///
    /// ```
    /// use swarm_engine::update::Startup;
    ///
    /// # use std::net::SocketAddr;
    /// # use swarm_engine::node::Node;
    /// # use swarm_engine::release::SecretKey;
    /// # use swarm_engine::store::PublishOptions;
    /// # use swarm_engine::update::{Installer, UpdateConfig, Updater};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0.0")?;
    /// # let key = SecretKey::from_seed(&[7; 32]);
    /// # let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    /// # let publisher = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
    /// # std::fs::create_dir(dir.path().join("build"))?;
    /// # let build = dir.path().join("build/app");
    /// # std::fs::write(&build, b"app 1.1.0")?;
    /// # let opts = PublishOptions::new("app", semver::Version::new(1, 1, 0));
    /// # let token = publisher.store().publish(&key, &[build], &opts)?.release.to_token();
    /// # let node = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
    /// # let config = UpdateConfig {
    /// #     publishers: vec![key.public()],
    /// #     name: "app".into(),
    /// #     channel: "stable".into(),
    /// #     current: semver::Version::new(1, 0, 0),
    /// #     artifact: None,
    /// #     pin: None,
    /// #     allow_downgrade: false,
    /// # };
    /// # let updater = Updater::new(node.clone(), config, Installer::new(&exe));
    /// // First thing at every start of the application:
    /// if let Startup::RolledBack { .. } = updater.installer().startup()? {
    ///     std::process::exit(75); // the previous version is back: run it
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn installer(&self) -> &Installer {
        &self.installer
    }

    fn policy(&self) -> Result<Policy, StoreError> {
        let mut p = Policy {
            now: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            ..Default::default()
        };
        for k in &self.config.publishers {
            p.trust(*k, "application publisher");
        }
        self.node.store().policy(p)
    }

    fn want(&self) -> Want {
        Want {
            name: Some(self.config.name.clone()),
            channel: Some(self.config.channel.clone()),
        }
    }

    /// The newest release of the application on the DHT, if it is an
    /// update: signed by a configured publisher, for this name and channel,
    /// not expired, not older than one seen before, not a version rolled
    /// back on this machine ([`Installer::failed_versions`]), and (unless
    /// allowed) a higher version than the running one. `None`: up to date.
    ///
    /// ```
    /// use swarm_engine::update::UpdateError;
    ///
    /// # use std::net::SocketAddr;
    /// # use swarm_engine::node::Node;
    /// # use swarm_engine::release::SecretKey;
    /// # use swarm_engine::store::PublishOptions;
    /// # use swarm_engine::update::{Installer, UpdateConfig, Updater};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0.0")?;
    /// # let key = SecretKey::from_seed(&[7; 32]);
    /// # let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    /// # let publisher = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
    /// # std::fs::create_dir(dir.path().join("build"))?;
    /// # let build = dir.path().join("build/app");
    /// # std::fs::write(&build, b"app 1.1.0")?;
    /// # let opts = PublishOptions::new("app", semver::Version::new(1, 1, 0));
    /// # let token = publisher.store().publish(&key, &[build], &opts)?.release.to_token();
    /// # let node = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
    /// # let config = UpdateConfig {
    /// #     publishers: vec![key.public()],
    /// #     name: "app".into(),
    /// #     channel: "stable".into(),
    /// #     current: semver::Version::new(1, 0, 0),
    /// #     artifact: None,
    /// #     pin: None,
    /// #     allow_downgrade: false,
    /// # };
    /// # let updater = Updater::new(node.clone(), config, Installer::new(&exe));
    /// // This node was built with `no_dht()`: there is nowhere to look.
    /// assert!(matches!(updater.check().await, Err(UpdateError::NoDht)));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn check(&self) -> Result<Option<Update>, UpdateError> {
        let checked = self.check_dht().await;
        metrics::update(UpdateStep::Check, checked.is_ok());
        checked
    }

    async fn check_dht(&self) -> Result<Option<Update>, UpdateError> {
        // The last release verified in this store (by gossip, or a check
        // whose update was not applied): an update at once, no DHT.
        if let Some(u) = self.last_verified()? {
            return Ok(Some(u));
        }
        match self.newest_on_dht().await? {
            None => Ok(None),
            Some(s) => self.consider(s, false),
        }
    }

    /// The newest release this store has verified of the application, if
    /// it is an update that may be taken now.
    fn last_verified(&self) -> Result<Option<Update>, UpdateError> {
        let mut best: Option<SignedRelease> = None;
        for key in &self.config.publishers {
            let seen =
                self.node
                    .store()
                    .release_seen(key, &self.config.name, &self.config.channel)?;
            if let Some(s) = seen.and_then(|s| SignedRelease::from_token(&s.token).ok())
                && best
                    .as_ref()
                    .is_none_or(|b| b.release().seq < s.release().seq)
            {
                best = Some(s);
            }
        }
        Ok(best.and_then(|s| self.consider(s, false).ok().flatten()))
    }

    /// The newest release of the application the DHT answers with, not
    /// older than one seen here; not yet considered.
    async fn newest_on_dht(&self) -> Result<Option<SignedRelease>, UpdateError> {
        let dht = self.node.dht().ok_or(UpdateError::NoDht)?;
        // Asked at once, not after the DHT's own bootstrap lookup has run
        // its course (seconds): a lookup starts from the bootstrap nodes.
        // Only when nothing is found does it matter whether the DHT works.
        let mut best: Option<SignedRelease> = None;
        for key in &self.config.publishers {
            let seen = self
                .node
                .store()
                .release_seen(key, &self.config.name, &self.config.channel)?
                .map(|s| s.seq);
            if let Some(s) = dht
                .resolve(key, &self.config.name, &self.config.channel)
                .await
                // The first nodes to answer may not have the newest yet: an
                // older release than one seen is no update, not an attack.
                && seen.is_none_or(|q| s.release().seq >= q)
                && best
                    .as_ref()
                    .is_none_or(|b| b.release().seq < s.release().seq)
            {
                best = Some(s);
            }
        }
        if best.is_none() && !dht.bootstrapped().await {
            return Err(UpdateError::NotBootstrapped);
        }
        Ok(best)
    }

    /// Updates as they become acceptable, until the returned watch is
    /// dropped: releases peers gossip (wire-spec/wire.md §3.10; `peers`
    /// are kept connected for that, besides those met fetching), and the
    /// DHT asked about every `every` (give or take a tenth, so that a
    /// fleet does not ask all at once). Each is considered as
    /// [`Self::check`] does; one staged for later, or younger than the
    /// verification delay, is yielded when its time comes. A release is
    /// yielded once.
    ///
    /// ```no_run
    /// # async fn f(updater: swarm_engine::update::Updater) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut updates = updater.watch(std::time::Duration::from_secs(3600), Vec::new());
    /// while let Some(update) = updates.next().await {
    ///     let downloaded = updater.download(&update, Vec::new()).await?;
    ///     updater.apply(&downloaded)?;
    ///     break; // restart into it
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch(&self, every: Duration, peers: Vec<PeerAddr>) -> UpdateWatch {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let owner = format!("updater {}@{}", self.config.name, self.config.channel);
        let subjects = self
            .config
            .publishers
            .iter()
            .map(|k| crate::wire::Subject {
                publisher: *k.as_bytes(),
                name: self.config.name.clone(),
                channel: self.config.channel.clone(),
            })
            .collect();
        self.node
            .follow_gossip(&owner, subjects, self.config.publishers.clone());
        let kept = (!peers.is_empty()).then(|| self.node.keep_connected(peers).abort_handle());
        let task = tokio::spawn(watching(self.clone(), every, tx)).abort_handle();
        UpdateWatch {
            rx,
            tasks: [Some(task), kept].into_iter().flatten().collect(),
            _interest: crate::node::InterestGuard::new(self.node.clone(), owner),
        }
    }

    /// Whether the release in `token` (swr1…) is an update, under the same
    /// rules as [`Self::check`]; refusals are errors that say why.
    ///
    /// ```
    /// use swarm_engine::update::UpdateError;
    ///
    /// # use std::net::SocketAddr;
    /// # use swarm_engine::node::Node;
    /// # use swarm_engine::release::SecretKey;
    /// # use swarm_engine::store::PublishOptions;
    /// # use swarm_engine::update::{Installer, UpdateConfig, Updater};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0.0")?;
    /// # let key = SecretKey::from_seed(&[7; 32]);
    /// # let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    /// # let publisher = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
    /// # std::fs::create_dir(dir.path().join("build"))?;
    /// # let build = dir.path().join("build/app");
    /// # std::fs::write(&build, b"app 1.1.0")?;
    /// # let opts = PublishOptions::new("app", semver::Version::new(1, 1, 0));
    /// # let token = publisher.store().publish(&key, &[build], &opts)?.release.to_token();
    /// # let node = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
    /// # let config = UpdateConfig {
    /// #     publishers: vec![key.public()],
    /// #     name: "app".into(),
    /// #     channel: "stable".into(),
    /// #     current: semver::Version::new(1, 0, 0),
    /// #     artifact: None,
    /// #     pin: None,
    /// #     allow_downgrade: false,
    /// # };
    /// # let updater = Updater::new(node.clone(), config, Installer::new(&exe));
    /// // A token handed over by hand (say, pasted by an administrator).
    /// let update = updater.check_token(&token)?.expect("newer");
    /// assert_eq!(update.version(), &semver::Version::new(1, 1, 0));
    /// assert!(matches!(updater.check_token("swr1garbage"), Err(UpdateError::NotAnUpdate(_))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn check_token(&self, token: &str) -> Result<Option<Update>, UpdateError> {
        let s = SignedRelease::from_token(token.trim())
            .map_err(|e| UpdateError::NotAnUpdate(format!("not a release token: {e}")))?;
        self.consider(s, true)
    }

    /// Whether `s` is an update; `manual`: asked for by hand (a token
    /// given), which skips the rollout schedule and the delay.
    pub(crate) fn consider(
        &self,
        s: SignedRelease,
        manual: bool,
    ) -> Result<Option<Update>, UpdateError> {
        let policy = self.policy()?;
        self.node.store().check_release(&policy, &s, &self.want())?;
        let v = &s.release().version;
        let c = &self.config;
        if v == &c.current {
            return Ok(None);
        }
        // Installing it again would fail again, and roll back again, forever.
        if let Some(why) = self.installer.rolled_back(&v.to_string())? {
            return Err(UpdateError::NotAnUpdate(format!(
                "release {v} was rolled back on this machine {why}; waiting for a newer version \
                 (to try it again, delete {})",
                self.installer.history_path().display()
            )));
        }
        if v < &c.current && !c.allow_downgrade {
            return Err(UpdateError::NotAnUpdate(format!(
                "release {v} is older than the running {}; downgrades are not allowed",
                c.current
            )));
        }
        if let Some(req) = &c.pin
            && !req.matches(v)
        {
            return Err(UpdateError::NotAnUpdate(format!(
                "release {v} is outside the pinned versions {req}"
            )));
        }
        if !manual {
            let id = self.install_id()?;
            match offer(s.release(), &id, policy.now, self.delay) {
                Offer::Now => {}
                Offer::Staged { from } => {
                    return Err(UpdateError::Staged {
                        version: v.clone(),
                        from,
                    });
                }
                Offer::Delayed { until } => {
                    return Err(UpdateError::Delayed {
                        version: v.clone(),
                        until,
                    });
                }
            }
        }
        Ok(Some(Update { release: s }))
    }

    /// Fetch `update` through the swarm (peers from the DHT and `peers`),
    /// record it as seen (so an older one is refused from now on), keep it
    /// pinned (so this instance seeds it to others) and export the
    /// executable beside the installed one.
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use swarm_engine::node::Node;
    /// # use swarm_engine::release::SecretKey;
    /// # use swarm_engine::store::PublishOptions;
    /// # use swarm_engine::update::{Installer, UpdateConfig, Updater};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0.0")?;
    /// # let key = SecretKey::from_seed(&[7; 32]);
    /// # let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    /// # let publisher = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
    /// # std::fs::create_dir(dir.path().join("build"))?;
    /// # let build = dir.path().join("build/app");
    /// # std::fs::write(&build, b"app 1.1.0")?;
    /// # let opts = PublishOptions::new("app", semver::Version::new(1, 1, 0));
    /// # let token = publisher.store().publish(&key, &[build], &opts)?.release.to_token();
    /// # let node = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
    /// # let config = UpdateConfig {
    /// #     publishers: vec![key.public()],
    /// #     name: "app".into(),
    /// #     channel: "stable".into(),
    /// #     current: semver::Version::new(1, 0, 0),
    /// #     artifact: None,
    /// #     pin: None,
    /// #     allow_downgrade: false,
    /// # };
    /// # let updater = Updater::new(node.clone(), config, Installer::new(&exe));
    /// let update = updater.check_token(&token)?.expect("newer");
    /// let downloaded = updater.download(&update, vec![publisher.addr()?]).await?;
    /// assert_eq!(std::fs::read(downloaded.path())?, b"app 1.1.0");
    /// // Recorded as seen: an older release is refused from now on.
    /// let seen = node.store().release_seen(&key.public(), "app", "stable")?;
    /// assert_eq!(seen.map(|s| s.token), Some(token));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn download(
        &self,
        update: &Update,
        peers: Vec<PeerAddr>,
    ) -> Result<Downloaded, UpdateError> {
        let store = self.node.store().clone();
        let policy = self.policy()?;
        store.accept_release(&policy, &update.release, &self.want())?;
        let r = update.release.release();
        // The installed executable may be what a patch in the release
        // applies to: put its bytes where the fetch looks for bases. A
        // failure here only costs the delta.
        let (s, exe) = (store.clone(), self.installer.exe().to_owned());
        match tokio::task::spawn_blocking(move || s.put_file(&exe)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!("the installed executable is no base for a patch: {e}"),
            Err(e) => tracing::debug!("the installed executable is no base for a patch: {e}"),
        }
        let fetched = self
            .node
            .fetch(
                r.root,
                FetchOptions {
                    peers,
                    ..Default::default()
                },
            )
            .await?;
        if fetched.size != r.size {
            return Err(UpdateError::SizeMismatch(
                r.version.clone(),
                r.size,
                fetched.size,
            ));
        }
        let manifest = store.manifest(&r.root).map_err(export_err)?;
        let entry = match &self.config.artifact {
            Some(path) => manifest.entries().iter().find(|e| &e.path == path),
            None if manifest.entries().len() == 1 => manifest.entries().first(),
            None => None,
        }
        .ok_or_else(|| UpdateError::NoArtifact {
            version: r.version.clone(),
            artifact: self
                .config
                .artifact
                .clone()
                .unwrap_or_else(|| "(the release's only file)".into()),
        })?;
        // Export next to the executable, so installing is a rename on the
        // same file system.
        let mut dir_name = self
            .installer
            .exe()
            .file_name()
            .unwrap_or_default()
            .to_os_string();
        dir_name.push(format!(".download-{}", r.version));
        let dir = self.installer.exe().with_file_name(dir_name);
        let _ = std::fs::remove_dir_all(&dir);
        // From here on the directory is the download's: dropping it on any
        // error below removes the directory, leaving nothing half-done.
        if fetched.patched.files > 0 {
            tracing::info!(
                "update to {}: {} bytes moved instead of {} (a patch from the installed version)",
                r.version,
                fetched.received,
                fetched.size
            );
        }
        let downloaded = Downloaded {
            update: update.clone(),
            file: dir.join(&entry.path),
            dir,
            hash: entry.hash,
            received: fetched.received,
            patched: fetched.patched,
        };
        std::fs::create_dir_all(&downloaded.dir).map_err(|e| {
            UpdateError::Export(format!("cannot create {}: {e}", downloaded.dir.display()))
        })?;
        store
            .export(&r.root, &downloaded.dir, &ExportOptions::default())
            .map_err(|e: ExportError| UpdateError::Export(e.to_string()))?;
        Ok(downloaded)
    }

    /// Install a download (see [`Installer::apply`]): the new version runs
    /// from the next start, on trial until it calls
    /// [`Installer::mark_healthy`].
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use swarm_engine::node::Node;
    /// # use swarm_engine::release::SecretKey;
    /// # use swarm_engine::store::PublishOptions;
    /// # use swarm_engine::update::{Installer, UpdateConfig, Updater};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0.0")?;
    /// # let key = SecretKey::from_seed(&[7; 32]);
    /// # let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    /// # let publisher = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
    /// # std::fs::create_dir(dir.path().join("build"))?;
    /// # let build = dir.path().join("build/app");
    /// # std::fs::write(&build, b"app 1.1.0")?;
    /// # let opts = PublishOptions::new("app", semver::Version::new(1, 1, 0));
    /// # let token = publisher.store().publish(&key, &[build], &opts)?.release.to_token();
    /// # let node = Node::builder().memory().listen(loopback).no_dht().spawn().await?;
    /// # let config = UpdateConfig {
    /// #     publishers: vec![key.public()],
    /// #     name: "app".into(),
    /// #     channel: "stable".into(),
    /// #     current: semver::Version::new(1, 0, 0),
    /// #     artifact: None,
    /// #     pin: None,
    /// #     allow_downgrade: false,
    /// # };
    /// # let updater = Updater::new(node.clone(), config, Installer::new(&exe));
    /// let update = updater.check_token(&token)?.expect("newer");
    /// let downloaded = updater.download(&update, vec![publisher.addr()?]).await?;
    /// updater.apply(&downloaded)?;
    /// assert_eq!(std::fs::read(&exe)?, b"app 1.1.0");
    /// assert_eq!(std::fs::read(updater.installer().previous_path())?, b"app 1.0.0");
    /// # Ok(())
    /// # }
    /// ```
    pub fn apply(&self, downloaded: &Downloaded) -> Result<(), UpdateError> {
        let v = downloaded.update.version().to_string();
        let applied = self
            .installer
            .apply(&downloaded.file, downloaded.hash, &v)
            .map_err(UpdateError::from);
        metrics::update(UpdateStep::Install, applied.is_ok());
        applied
    }
}

fn export_err(e: ReadError) -> UpdateError {
    UpdateError::Export(e.to_string())
}
