//! Automatic updates, configured the way users expect from desktop and
//! fleet updaters: on or off, security fixes only, how often to look, and
//! whether to download and restart without asking. The same settings
//! drive an embedded [`Updater`] ([`Updater::auto_update`]) and a seeding
//! node's follow loop ([`AutoUpdate::follow`]; the `[auto_update]` table
//! of `swarm node --config`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::updater::{Downloaded, Update, UpdateWatch, Updater};
use crate::net::PeerAddr;

/// How an application (or a node) takes new releases.
///
/// ```
/// use swarm_engine::update::AutoUpdate;
///
/// let auto: AutoUpdate = toml_like(r#"{"security_only": true, "verification_delay_secs": 21600}"#);
/// assert!(auto.enabled && auto.security_only);
/// assert_eq!(auto.verification_delay().map(|d| d.as_secs()), Some(6 * 3600));
/// # fn toml_like(s: &str) -> AutoUpdate { serde_json::from_str(s).unwrap() }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoUpdate {
    /// Look for updates at all. Off: nothing is looked for or taken
    /// (a release given by hand still is).
    pub enabled: bool,
    /// Take only releases their publisher marked critical
    /// (`wire-spec/release.md` §2.1): security fixes.
    pub security_only: bool,
    /// How often to ask the DHT, in seconds (gossip brings releases as
    /// they come, in between). At least 60.
    pub check_every_secs: u64,
    /// Apply an update as soon as it is downloaded; the application then
    /// restarts into it. Off: it is downloaded and waits for the user.
    pub auto_restart: bool,
    /// Download an update as soon as it is offered. Off: it is reported,
    /// and downloaded when asked.
    pub background_download: bool,
    /// Take a release only once it is this many seconds old, unless it is
    /// critical (0: at once).
    pub verification_delay_secs: u64,
}

impl Default for AutoUpdate {
    fn default() -> Self {
        Self {
            enabled: true,
            security_only: false,
            check_every_secs: 3600,
            auto_restart: false,
            background_download: true,
            verification_delay_secs: 0,
        }
    }
}

impl AutoUpdate {
    /// The check interval, at least a minute.
    pub fn check_every(&self) -> Duration {
        Duration::from_secs(self.check_every_secs.max(60))
    }

    /// The verification delay, if any.
    pub fn verification_delay(&self) -> Option<Duration> {
        (self.verification_delay_secs > 0)
            .then(|| Duration::from_secs(self.verification_delay_secs))
    }

    /// A node's follow config under these settings: pointers looked at
    /// this often, releases taken once old enough (or critical), only
    /// critical ones when security-only, and none at all when disabled
    /// (tokens, which name one release, are still seeded).
    /// `auto_restart` and `background_download` are for applications.
    pub fn follow(&self, mut follow: crate::node::Follow) -> crate::node::Follow {
        follow.every = self.check_every();
        follow.delay = self.verification_delay();
        follow.critical_only = self.security_only;
        follow.pointers = self.enabled;
        follow
    }
}

/// What [`Updater::auto_update`] reports.
#[derive(Debug)]
#[non_exhaustive]
pub enum AutoEvent {
    /// An update is available (`background_download` off): download it
    /// with [`Updater::download`] when the user agrees.
    Available(Update),
    /// An update is downloaded (`auto_restart` off): apply it with
    /// [`Updater::apply`] when the user agrees.
    Ready(Downloaded),
    /// An update was applied (`auto_restart` on): restart into it.
    Applied(Update),
    /// Downloading or applying an update failed. The same release is not
    /// offered again; a newer one is.
    Failed(Update, String),
}

/// The running automatic updater; dropping it stops it.
#[derive(Debug)]
pub struct AutoUpdater {
    rx: tokio::sync::mpsc::Receiver<AutoEvent>,
    task: tokio::task::AbortHandle,
}

impl AutoUpdater {
    /// The next event; `None` once it stopped (disabled, or after
    /// `Applied`).
    pub async fn next(&mut self) -> Option<AutoEvent> {
        self.rx.recv().await
    }
}

impl Drop for AutoUpdater {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Updater {
    /// Keep the application up to date under `auto`: watch for releases
    /// ([`Self::watch`], gossip from `peers` and the DHT every
    /// `check_every`), keep only critical ones if `security_only`, wait
    /// out the verification delay, and download and apply as `auto` says.
    /// Disabled: nothing happens and the events end at once.
    pub fn auto_update(&self, auto: &AutoUpdate, peers: Vec<PeerAddr>) -> AutoUpdater {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let updater = self.clone().verification_delay(auto.verification_delay());
        let auto = auto.clone();
        let task = tokio::spawn(async move {
            if !auto.enabled {
                return;
            }
            let mut watch: UpdateWatch = updater.watch(auto.check_every(), peers.clone());
            while let Some(update) = watch.next().await {
                if auto.security_only && !update.release.release().rollout.critical {
                    tracing::info!(
                        "update {} is not critical; security_only is set",
                        update.version()
                    );
                    continue;
                }
                if !auto.background_download {
                    if tx.send(AutoEvent::Available(update)).await.is_err() {
                        return;
                    }
                    continue;
                }
                let downloaded = match updater.download(&update, peers.clone()).await {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = tx.send(AutoEvent::Failed(update, e.to_string())).await;
                        continue;
                    }
                };
                if !auto.auto_restart {
                    if tx.send(AutoEvent::Ready(downloaded)).await.is_err() {
                        return;
                    }
                    continue;
                }
                match updater.apply(&downloaded) {
                    Ok(()) => {
                        let _ = tx.send(AutoEvent::Applied(update)).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(AutoEvent::Failed(update, e.to_string())).await;
                    }
                }
            }
        })
        .abort_handle();
        AutoUpdater { rx, task }
    }
}
