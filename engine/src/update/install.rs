//! Swapping an application's executable: stage, verify, replace atomically
//! keeping the previous one, and put the new one on trial until it says it
//! is healthy.
//!
//! Files beside the executable `APP`:
//!
//! | file | what |
//! |---|---|
//! | `APP` | the running executable |
//! | `APP.previous` | the one before the last update, for rollback |
//! | `APP.staged` | a new executable being verified (only during [`Installer::apply`]) |
//! | `APP.previous.tmp`, `APP.previous.old` | the next and the last previous one (only during [`Installer::apply`]) |
//! | `APP.update-state` | the trial: which version, its hash, how many starts |
//! | `APP.update-history` | versions rolled back here (never installed again), and the version last marked healthy |
//!
//! Every step is ordered so that a crash at any point leaves a working
//! `APP`: the new file is written and synced under the `.staged` name, a
//! copy of the current executable under `.previous.tmp`, the trial is
//! recorded, the copy becomes `.previous`, and only then is `.staged`
//! renamed over `APP` (one atomic rename; a running process keeps its open
//! file). A crash before that rename leaves the old `APP` and a trial that
//! [`Installer::startup`] recognises as never started (the hash of `APP` is
//! not the trial's) and clears, with the temporaries.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tracing::warn;

use crate::content::Hash;

/// Starts a new version gets to call [`Installer::mark_healthy`] by default.
///
/// ```
/// use swarm_engine::update::{DEFAULT_TRIAL_STARTS, Startup};
///
/// # use swarm_engine::Hash;
/// # use swarm_engine::update::Installer;
/// # let dir = tempfile::tempdir()?;
/// # let exe = dir.path().join("app");
/// # std::fs::write(&exe, b"app 1.0")?;
/// # let new = dir.path().join("app-1.1");
/// # std::fs::write(&new, b"app 1.1")?;
/// let installer = Installer::new(&exe);
/// installer.apply(&new, Hash::of(b"app 1.1"), "1.1")?;
/// // The new version starts DEFAULT_TRIAL_STARTS times without calling
/// // `mark_healthy`; the next start rolls it back.
/// for start in 1..=DEFAULT_TRIAL_STARTS {
///     assert!(matches!(installer.startup()?, Startup::Trial { start: s, .. } if s == start));
/// }
/// assert!(matches!(installer.startup()?, Startup::RolledBack { .. }));
/// assert_eq!(std::fs::read(&exe)?, b"app 1.0");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const DEFAULT_TRIAL_STARTS: u32 = 3;

/// Rolled-back versions remembered by [`Installer::failed_versions`]; the
/// oldest is forgotten first.
///
/// ```
/// use swarm_engine::update::MAX_FAILED_VERSIONS;
///
/// // Enough to ride out a run of bad releases; see `Installer::failed_versions`.
/// assert_eq!(MAX_FAILED_VERSIONS, 16);
/// ```
pub const MAX_FAILED_VERSIONS: usize = 16;

/// Installs new versions of one executable and rolls them back.
///
/// ```
/// use swarm_engine::update::Startup;
///
/// # use swarm_engine::Hash;
/// # use swarm_engine::update::Installer;
/// # let dir = tempfile::tempdir()?;
/// # let exe = dir.path().join("app");
/// # std::fs::write(&exe, b"app 1.0")?;
/// # let new = dir.path().join("app-1.1");
/// # std::fs::write(&new, b"app 1.1")?;
/// let installer = Installer::new(&exe);
/// installer.apply(&new, Hash::of(b"app 1.1"), "1.1")?;
/// // The next start of the application:
/// match installer.startup()? {
///     Startup::Trial { version, start, of } => {
///         assert_eq!((version.as_str(), start, of), ("1.1", 1, 3));
///         // ... it started fine:
///         installer.mark_healthy()?;
///     }
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(installer.startup()?, Startup::Normal);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Installer {
    exe: PathBuf,
    trial_starts: u32,
    /// How long a version on trial has to report healthy.
    deadline: Option<std::time::Duration>,
    /// The step at which tests make an I/O operation fail.
    #[cfg(test)]
    fail_at: Option<&'static str>,
}

/// What [`Installer::startup`] found.
///
/// ```
/// use swarm_engine::update::Startup;
///
/// # use swarm_engine::Hash;
/// # use swarm_engine::update::Installer;
/// # let dir = tempfile::tempdir()?;
/// # let exe = dir.path().join("app");
/// # std::fs::write(&exe, b"app 1.0")?;
/// # let new = dir.path().join("app-1.1");
/// # std::fs::write(&new, b"app 1.1")?;
/// let installer = Installer::new(&exe).trial_starts(1);
/// assert_eq!(installer.startup()?, Startup::Normal); // nothing on trial
/// installer.apply(&new, Hash::of(b"app 1.1"), "1.1")?;
/// assert_eq!(
///     installer.startup()?,
///     Startup::Trial { version: "1.1".into(), start: 1, of: 1 }
/// );
/// // It never called `mark_healthy`: the next start rolls it back.
/// assert_eq!(installer.startup()?, Startup::RolledBack { failed: "1.1".into() });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// No update on trial.
    Normal,
    /// This version is on trial: this is its `start`th start of at most
    /// `of`. Call [`Installer::mark_healthy`] once it works.
    Trial {
        /// The version on trial.
        version: String,
        /// Starts so far, this one included.
        start: u32,
        /// Starts it gets.
        of: u32,
    },
    /// The version on trial used up its starts without being marked
    /// healthy: the previous executable is back in place, and the version
    /// is remembered as failed ([`Installer::failed_versions`]). The
    /// process is still the failed version; it should exit (or re-execute
    /// itself) so the previous one runs.
    RolledBack {
        /// The version that failed.
        failed: String,
    },
}

/// Installing or rolling back failed. The executable in place is left as it
/// was, and nothing staged remains.
///
/// ```
/// use swarm_engine::update::InstallError;
///
/// # use swarm_engine::Hash;
/// # use swarm_engine::update::Installer;
/// # let dir = tempfile::tempdir()?;
/// # let exe = dir.path().join("app");
/// # std::fs::write(&exe, b"app 1.0")?;
/// # let new = dir.path().join("app-1.1");
/// # std::fs::write(&new, b"app 1.1")?;
/// let installer = Installer::new(&exe);
/// // The file is not what was verified: nothing is installed.
/// let err = installer.apply(&new, Hash::of(b"what was verified"), "1.1").unwrap_err();
/// assert!(matches!(err, InstallError::Tampered { .. }));
/// assert_eq!(std::fs::read(&exe)?, b"app 1.0");
/// // Nothing was ever replaced, so there is nothing to roll back to.
/// assert!(matches!(installer.rollback(), Err(InstallError::NoPrevious(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The staged copy does not have the expected hash (changed on disk
    /// since it was verified, or a failing disk).
    #[error(
        "the staged executable {path} has hash {actual}, not {expected}; nothing was installed"
    )]
    Tampered {
        /// The staged file.
        path: PathBuf,
        /// The hash it should have.
        expected: Hash,
        /// The hash it has.
        actual: Hash,
    },
    /// There is no previous version to roll back to.
    #[error("no previous version of {0} to roll back to")]
    NoPrevious(PathBuf),
    /// A file operation failed (disk full, permissions, …).
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// To which file.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
}

/// The trial state on disk (postcard, after a one-byte version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Trial {
    version: String,
    hash: [u8; 32],
    starts: u32,
    /// When it was put in place, Unix seconds. Appended: a build that
    /// predates it reads the fields before and ignores this one.
    since: u64,
}

/// The trial state as builds before `since` wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TrialWithoutSince {
    version: String,
    hash: [u8; 32],
    starts: u32,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

const STATE_VERSION: u8 = 1;

/// What updates did on this machine (postcard, after a one-byte version).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct History {
    /// The version last marked healthy, so that a rollback later knows
    /// what it undoes. Only believed while `APP` still has its hash.
    installed: Option<Installed>,
    /// Versions rolled back, oldest first, at most [`MAX_FAILED_VERSIONS`].
    failed: Vec<Failed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Installed {
    version: String,
    hash: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Failed {
    version: String,
    /// The executable's hash, to tell what exactly failed.
    hash: [u8; 32],
    why: Why,
}

/// Why a version was rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Why {
    /// It used up its trial starts without [`Installer::mark_healthy`].
    NeverHealthy,
    /// [`Installer::rollback`] was called.
    Requested,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NeverHealthy => "after it failed to start",
            Self::Requested => "on request",
        })
    }
}

const HISTORY_VERSION: u8 = 1;

impl Installer {
    /// An installer for the executable at `exe`.
    ///
    /// ```
    /// use std::path::Path;
    /// use swarm_engine::update::Installer;
    ///
    /// let installer = Installer::new("/opt/app/bin/app");
    /// assert_eq!(installer.exe(), Path::new("/opt/app/bin/app"));
    /// ```
    pub fn new(exe: impl Into<PathBuf>) -> Self {
        Self {
            exe: exe.into(),
            trial_starts: DEFAULT_TRIAL_STARTS,
            deadline: None,
            #[cfg(test)]
            fail_at: None,
        }
    }

    /// An installer for the running executable.
    ///
    /// ```
    /// use swarm_engine::update::Installer;
    ///
    /// let installer = Installer::current()?;
    /// assert_eq!(installer.exe(), std::env::current_exe()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn current() -> io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?))
    }

    /// Starts a new version gets before it is rolled back (at least 1).
    ///
    /// ```
    /// use swarm_engine::update::Startup;
    ///
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::update::Installer;
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0")?;
    /// # let new = dir.path().join("app-1.1");
    /// # std::fs::write(&new, b"app 1.1")?;
    /// // A service restarted by its supervisor gets five tries.
    /// let installer = Installer::new(&exe).trial_starts(5);
    /// installer.apply(&new, Hash::of(b"app 1.1"), "1.1")?;
    /// assert!(matches!(installer.startup()?, Startup::Trial { of: 5, .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trial_starts(mut self, n: u32) -> Self {
        self.trial_starts = n.max(1);
        self
    }

    /// Give a version on trial `deadline` from when it was put in place to
    /// report healthy, besides its starts: past it, the next
    /// [`Self::startup`] (or [`Self::check_deadline`], for a process that
    /// runs long) rolls it back.
    ///
    /// ```
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::update::{Installer, Startup};
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0")?;
    /// # let new = dir.path().join("app-1.1");
    /// # std::fs::write(&new, b"app 1.1")?;
    /// let installer = Installer::new(&exe).health_deadline(std::time::Duration::ZERO);
    /// installer.apply(&new, Hash::of(b"app 1.1"), "1.1")?;
    /// // Started, but never healthy within the deadline: rolled back.
    /// assert_eq!(installer.check_deadline()?, Some(Startup::RolledBack { failed: "1.1".into() }));
    /// assert_eq!(std::fs::read(&exe)?, b"app 1.0");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn health_deadline(mut self, deadline: std::time::Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// For a long-running process on trial: if its health deadline
    /// ([`Self::health_deadline`]) has passed without
    /// [`Self::mark_healthy`], roll it back now and say so (the process
    /// should then exit so that the previous version runs). `None`: not on
    /// trial, no deadline, or still in time.
    pub fn check_deadline(&self) -> Result<Option<Startup>, InstallError> {
        let Some(trial) = self.read_state()? else {
            return Ok(None);
        };
        if !self.overdue(&trial) {
            return Ok(None);
        }
        if hash_file(&self.exe)?.as_bytes() != &trial.hash {
            return Ok(None);
        }
        let failed = Installed {
            version: trial.version.clone(),
            hash: trial.hash,
        };
        self.roll_back(Some(failed), Why::NeverHealthy)?;
        Ok(Some(Startup::RolledBack {
            failed: trial.version,
        }))
    }

    fn overdue(&self, trial: &Trial) -> bool {
        self.deadline
            .is_some_and(|d| unix_now() >= trial.since.saturating_add(d.as_secs()))
    }

    /// Make the I/O operation at `step` fail (see [`Self::fault`]).
    #[cfg(test)]
    pub(super) fn fail_at(mut self, step: &'static str) -> Self {
        self.fail_at = Some(step);
        self
    }

    /// An error where a test asked for one; nothing otherwise.
    fn fault(&self, step: &'static str) -> io::Result<()> {
        #[cfg(test)]
        if self.fail_at == Some(step) {
            return Err(io::Error::other(format!("injected failure at {step}")));
        }
        let _ = step;
        Ok(())
    }

    /// The executable this installer manages.
    ///
    /// ```
    /// use std::path::Path;
    /// use swarm_engine::update::Installer;
    ///
    /// let installer = Installer::new("/usr/local/bin/tool");
    /// assert_eq!(installer.exe(), Path::new("/usr/local/bin/tool"));
    /// ```
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    fn beside(&self, suffix: &str) -> PathBuf {
        let mut name = self.exe.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.exe.with_file_name(name)
    }

    /// Where the previous executable is kept.
    ///
    /// ```
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::update::Installer;
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0")?;
    /// # let new = dir.path().join("app-1.1");
    /// # std::fs::write(&new, b"app 1.1")?;
    /// let installer = Installer::new(&exe);
    /// assert_eq!(installer.previous_path(), dir.path().join("app.previous"));
    /// installer.apply(&new, Hash::of(b"app 1.1"), "1.1")?;
    /// assert_eq!(std::fs::read(installer.previous_path())?, b"app 1.0");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn previous_path(&self) -> PathBuf {
        self.beside(".previous")
    }

    /// Where the versions rolled back on this machine are kept. Deleting
    /// the file makes them eligible for installing again.
    ///
    /// ```
    /// use std::path::Path;
    /// use swarm_engine::update::Installer;
    ///
    /// let installer = Installer::new("/opt/app/bin/app");
    /// assert_eq!(
    ///     installer.history_path(),
    ///     Path::new("/opt/app/bin/app.update-history")
    /// );
    /// ```
    pub fn history_path(&self) -> PathBuf {
        self.beside(".update-history")
    }

    fn staged_path(&self) -> PathBuf {
        self.beside(".staged")
    }

    /// The previous executable of before an update, until the update is in
    /// place.
    fn backup_path(&self) -> PathBuf {
        self.beside(".previous.old")
    }

    pub(super) fn state_path(&self) -> PathBuf {
        self.beside(".update-state")
    }

    /// Install the executable at `new` (e.g. exported from a verified
    /// release) as `version`: copy it beside the current one, check that
    /// the copy hashes to `expected`, keep the current one as
    /// [`Self::previous_path`], put the new one on trial, and rename it
    /// into place. On error the current executable, the previous one and
    /// the trial are as they were, and nothing staged remains.
    ///
    /// ```
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::update::Installer;
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0")?;
    /// # let new = dir.path().join("app-1.1");
    /// # std::fs::write(&new, b"app 1.1")?;
    /// let installer = Installer::new(&exe);
    /// installer.apply(&new, Hash::of(b"app 1.1"), "1.1")?;
    /// assert_eq!(std::fs::read(&exe)?, b"app 1.1");
    /// assert!(installer.on_trial()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn apply(&self, new: &Path, expected: Hash, version: &str) -> Result<(), InstallError> {
        let staged = self.staged_path();
        // The leftover of a crashed install. Anything else in the way (a
        // directory) is not ours to remove: creating the file says so.
        let _ = fs::remove_file(&staged);
        let r = self
            .stage(new, &staged, expected)
            .and_then(|()| self.swap(&staged, expected, version));
        if r.is_err() {
            let _ = fs::remove_file(&staged);
        }
        r
    }

    fn stage(&self, new: &Path, staged: &Path, expected: Hash) -> Result<(), InstallError> {
        let mode = fs::metadata(&self.exe)
            .map_err(io_err("cannot read", &self.exe))?
            .permissions();
        let mut src = fs::File::open(new).map_err(io_err("cannot open", new))?;
        // A new file: never write through whatever was at that name.
        let mut dst = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(staged)
            .and_then(|f| self.fault("create").map(|()| f))
            .map_err(io_err("cannot create", staged))?;
        copy(&mut src, new, &mut dst, staged)?;
        self.fault("write")
            .map_err(io_err("cannot write", staged))?;
        dst.sync_all()
            .and_then(|()| self.fault("sync"))
            .map_err(io_err("cannot sync", staged))?;
        drop(dst);
        fs::set_permissions(staged, mode)
            .and_then(|()| self.fault("permissions"))
            .map_err(io_err("cannot set permissions on", staged))?;
        // Verify the copy that will run, not the source.
        let actual = hash_file(staged)?;
        if actual != expected {
            return Err(InstallError::Tampered {
                path: staged.to_owned(),
                expected,
                actual,
            });
        }
        Ok(())
    }

    /// Keep the current executable as the previous one, record the trial
    /// and rename `staged` into place. On error everything but `staged` is
    /// put back as it was.
    fn swap(&self, staged: &Path, expected: Hash, version: &str) -> Result<(), InstallError> {
        let before = self.read_state()?;
        // A copy: the running process may still need its file, and a link
        // would share it.
        let previous = self.previous_path();
        let keep = tmp_beside(&previous);
        let trial = Trial {
            version: version.to_owned(),
            hash: *expected.as_bytes(),
            starts: 0,
            since: unix_now(),
        };
        let r = copy_synced(&self.exe, &keep)
            .and_then(|()| {
                self.fault("copy previous")
                    .map_err(io_err("cannot copy to", &keep))
            })
            .and_then(|()| {
                // Atomic: on error the state of before is still there.
                self.fault("state")
                    .map_err(io_err("cannot replace", &self.state_path()))?;
                self.write_state(&trial)
            });
        if let Err(e) = r {
            let _ = fs::remove_file(&keep);
            return Err(e);
        }
        // The previous one of before stays linked under `.previous.old`
        // until the new one is in place, to be put back if that fails (on a
        // file system without hard links it cannot be).
        let backup = self.backup_path();
        let _ = fs::remove_file(&backup);
        let had_previous = previous.exists();
        let backed_up = had_previous && fs::hard_link(&previous, &backup).is_ok();
        let r = self
            .fault("keep previous")
            .and_then(|()| fs::rename(&keep, &previous))
            .map_err(io_err("cannot replace", &previous))
            .and_then(|()| {
                self.fault("swap")
                    .and_then(|()| fs::rename(staged, &self.exe))
                    .map_err(io_err("cannot move the new executable to", &self.exe))
            });
        if let Err(e) = r {
            let _ = fs::remove_file(&keep);
            if backed_up {
                let _ = fs::rename(&backup, &previous);
                // Still there if `previous` was not replaced: a rename
                // between two links to one file does nothing.
                let _ = fs::remove_file(&backup);
            } else if !had_previous {
                let _ = fs::remove_file(&previous);
            }
            if let Err(e) = self.restore_state(before) {
                // Harmless: `startup` clears a trial whose executable is
                // not in place.
                warn!("cannot restore the update state: {e}");
            }
            return Err(e);
        }
        let _ = fs::remove_file(&backup);
        if let Err(e) = sync_dir(&self.exe) {
            // The rename is done; it may just not survive a power loss, and
            // a trial without its executable is cleared at the next start.
            warn!("{e}: the update is in place but may not be durable yet");
        }
        Ok(())
    }

    fn restore_state(&self, before: Option<Trial>) -> Result<(), InstallError> {
        match before {
            Some(trial) => self.write_state(&trial),
            None => self.clear_state(),
        }
    }

    /// Call first thing at every start. Counts a start of a version on
    /// trial, and rolls it back once it has used up its starts without
    /// [`Self::mark_healthy`], remembering it as failed so it is not
    /// installed again. Clears a trial whose swap never happened (a crash
    /// between staging and the rename), and the leftovers of an install.
    ///
    /// ```
    /// use swarm_engine::update::Startup;
    ///
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::update::Installer;
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0")?;
    /// # let new = dir.path().join("app-1.1");
    /// # std::fs::write(&new, b"app 1.1")?;
    /// let installer = Installer::new(&exe);
    /// installer.apply(&new, Hash::of(b"app 1.1"), "1.1")?;
    /// match installer.startup()? {
    ///     // Version 1.1 did not call `mark_healthy` in time: 1.0 is back. Exit,
    ///     // so the supervisor starts it.
    ///     Startup::RolledBack { failed } => eprintln!("{failed} failed; restarting"),
    ///     Startup::Trial { start, of, .. } => println!("trial start {start} of {of}"),
    ///     Startup::Normal => {}
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn startup(&self) -> Result<Startup, InstallError> {
        for leftover in [
            self.staged_path(),
            tmp_beside(&self.previous_path()),
            self.backup_path(),
        ] {
            let _ = fs::remove_file(leftover);
        }
        let Some(mut trial) = self.read_state()? else {
            return Ok(Startup::Normal);
        };
        if hash_file(&self.exe)?.as_bytes() != &trial.hash {
            // Not the version on trial: the swap did not happen (or
            // someone replaced the file since). Nothing is on trial.
            self.clear_state()?;
            return Ok(Startup::Normal);
        }
        trial.starts += 1;
        if trial.starts > self.trial_starts || (trial.starts > 1 && self.overdue(&trial)) {
            let failed = Installed {
                version: trial.version.clone(),
                hash: trial.hash,
            };
            self.roll_back(Some(failed), Why::NeverHealthy)?;
            return Ok(Startup::RolledBack {
                failed: trial.version,
            });
        }
        self.write_state(&trial)?;
        Ok(Startup::Trial {
            version: trial.version,
            start: trial.starts,
            of: self.trial_starts,
        })
    }

    /// The version on trial works: keep it. The previous executable stays
    /// for a manual [`Self::rollback`].
    ///
    /// ```
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::update::Installer;
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0")?;
    /// # let new = dir.path().join("app-1.1");
    /// # std::fs::write(&new, b"app 1.1")?;
    /// let installer = Installer::new(&exe);
    /// installer.apply(&new, Hash::of(b"app 1.1"), "1.1")?;
    /// installer.startup()?;
    /// installer.mark_healthy()?;
    /// assert!(!installer.on_trial()?);
    /// // The previous version stays for a manual rollback.
    /// assert!(installer.previous_path().exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mark_healthy(&self) -> Result<(), InstallError> {
        match self.read_state() {
            Ok(Some(trial)) => {
                let kept = Installed {
                    version: trial.version,
                    hash: trial.hash,
                };
                let r = self.read_history().and_then(|mut h| {
                    h.installed = Some(kept);
                    self.write_history(&h)
                });
                if let Err(e) = r {
                    warn!("{e}: a later rollback will not remember which version it undid");
                }
            }
            Ok(None) => return Ok(()),
            // Damaged: clearing it is what was asked for.
            Err(_) => {}
        }
        self.clear_state()
    }

    /// Whether a version is on trial.
    ///
    /// ```
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::update::Installer;
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0")?;
    /// # let new = dir.path().join("app-1.1");
    /// # std::fs::write(&new, b"app 1.1")?;
    /// let installer = Installer::new(&exe);
    /// assert!(!installer.on_trial()?);
    /// installer.apply(&new, Hash::of(b"app 1.1"), "1.1")?;
    /// assert!(installer.on_trial()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_trial(&self) -> Result<bool, InstallError> {
        Ok(self.read_state()?.is_some())
    }

    /// Put the previous executable back (atomically) and end any trial.
    /// The version rolled back, if this installer put it in place (it is on
    /// trial, or was the last marked healthy), is remembered as failed
    /// ([`Self::failed_versions`]) so that it is not installed again.
    ///
    /// ```
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::update::Installer;
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0")?;
    /// # let new = dir.path().join("app-1.1");
    /// # std::fs::write(&new, b"app 1.1")?;
    /// let installer = Installer::new(&exe);
    /// installer.apply(&new, Hash::of(b"app 1.1"), "1.1")?;
    /// installer.startup()?;
    /// installer.mark_healthy()?;
    /// // 1.1 turns out to be bad after all.
    /// installer.rollback()?;
    /// assert_eq!(std::fs::read(&exe)?, b"app 1.0");
    /// assert_eq!(installer.failed_versions()?, ["1.1"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rollback(&self) -> Result<(), InstallError> {
        if !self.previous_path().exists() {
            return Err(InstallError::NoPrevious(self.exe.clone()));
        }
        // Bookkeeping never stands in the way of a rollback.
        let failed = self.in_place().unwrap_or_else(|e| {
            warn!("{e}: rolling back without remembering the version");
            None
        });
        self.roll_back(failed, Why::Requested)
    }

    fn roll_back(&self, failed: Option<Installed>, why: Why) -> Result<(), InstallError> {
        let rolled = self.roll_back_to_previous(failed, why);
        crate::metrics::update(crate::metrics::UpdateStep::Rollback, rolled.is_ok());
        rolled
    }

    fn roll_back_to_previous(
        &self,
        failed: Option<Installed>,
        why: Why,
    ) -> Result<(), InstallError> {
        let previous = self.previous_path();
        if !previous.exists() {
            return Err(InstallError::NoPrevious(self.exe.clone()));
        }
        // Remember first: a crash in the middle must not forget it.
        if let Err(e) = self.remember_failed(failed, why) {
            warn!("{e}: the version rolled back may be offered again");
        }
        // Copy rather than rename, so a second rollback is still possible
        // and `APP.previous` survives a crash in the middle.
        atomic_copy(&previous, &self.exe)?;
        self.clear_state()
    }

    /// The version in place, if this installer put it there.
    fn in_place(&self) -> Result<Option<Installed>, InstallError> {
        let candidate = match self.read_state()? {
            Some(t) => Some(Installed {
                version: t.version,
                hash: t.hash,
            }),
            None => self.read_history()?.installed,
        };
        let Some(c) = candidate else {
            return Ok(None);
        };
        // A trial whose swap never happened, or a file replaced since.
        Ok((hash_file(&self.exe)?.as_bytes() == &c.hash).then_some(c))
    }

    fn remember_failed(&self, failed: Option<Installed>, why: Why) -> Result<(), InstallError> {
        let mut h = self.read_history()?;
        if failed.is_none() && h.installed.is_none() {
            return Ok(());
        }
        // After the rollback the version in place is not one we know.
        h.installed = None;
        if let Some(f) = failed {
            h.failed.retain(|x| x.version != f.version);
            h.failed.push(Failed {
                version: f.version,
                hash: f.hash,
                why,
            });
            let excess = h.failed.len().saturating_sub(MAX_FAILED_VERSIONS);
            h.failed.drain(..excess);
        }
        self.write_history(&h)
    }

    /// Versions rolled back on this machine, oldest first (at most
    /// [`MAX_FAILED_VERSIONS`]): by [`Self::startup`] because they never
    /// got healthy, or by [`Self::rollback`]. The
    /// [`Updater`](super::Updater) does not install them again; a newer
    /// version is taken as usual. Delete [`Self::history_path`] to forget
    /// them.
    ///
    /// ```
    /// # use swarm_engine::Hash;
    /// use swarm_engine::update::Installer;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let exe = dir.path().join("app");
    /// # std::fs::write(&exe, b"app 1.0")?;
    /// # let new = dir.path().join("app-1.1");
    /// # std::fs::write(&new, b"app 1.1")?;
    /// let installer = Installer::new(&exe).trial_starts(1);
    /// installer.apply(&new, Hash::of(b"app 1.1"), "1.1")?;
    /// installer.startup()?; // on trial
    /// installer.startup()?; // never marked healthy: rolled back
    /// for version in installer.failed_versions()? {
    ///     eprintln!("version {version} was rolled back here");
    /// }
    /// assert_eq!(installer.failed_versions()?, ["1.1"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failed_versions(&self) -> Result<Vec<String>, InstallError> {
        Ok(self
            .read_history()?
            .failed
            .into_iter()
            .map(|f| f.version)
            .collect())
    }

    /// Why `version` was rolled back on this machine, if it was.
    pub(super) fn rolled_back(&self, version: &str) -> Result<Option<Why>, InstallError> {
        Ok(self
            .read_history()?
            .failed
            .iter()
            .find(|f| f.version == version)
            .map(|f| f.why))
    }

    fn read_state(&self) -> Result<Option<Trial>, InstallError> {
        let read = |_: ()| {
            read_versioned(
                &self.state_path(),
                STATE_VERSION,
                "damaged update state",
                "unknown update state format",
            )
        };
        match read(()) {
            Ok(t) => Ok(t),
            // Written before `since` existed: the deadline counts from now.
            Err(e) => match read_versioned::<TrialWithoutSince>(
                &self.state_path(),
                STATE_VERSION,
                "damaged update state",
                "unknown update state format",
            ) {
                Ok(Some(t)) => Ok(Some(Trial {
                    version: t.version,
                    hash: t.hash,
                    starts: t.starts,
                    since: unix_now(),
                })),
                Ok(None) => Ok(None),
                Err(_) => Err(e),
            },
        }
    }

    fn write_state(&self, trial: &Trial) -> Result<(), InstallError> {
        write_versioned(&self.state_path(), STATE_VERSION, trial)
    }

    fn clear_state(&self) -> Result<(), InstallError> {
        let path = self.state_path();
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("cannot remove", &path)(e)),
        }
    }

    fn read_history(&self) -> Result<History, InstallError> {
        Ok(read_versioned(
            &self.history_path(),
            HISTORY_VERSION,
            "damaged update history",
            "unknown update history format",
        )?
        .unwrap_or_default())
    }

    fn write_history(&self, h: &History) -> Result<(), InstallError> {
        write_versioned(&self.history_path(), HISTORY_VERSION, h)
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> InstallError + 'a {
    move |source| InstallError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// A postcard value after a one-byte format version; `None` if there is no
/// file.
fn read_versioned<T: DeserializeOwned>(
    path: &Path,
    version: u8,
    damaged: &'static str,
    unknown: &'static str,
) -> Result<Option<T>, InstallError> {
    // State files are a few hundred bytes; a larger one is not ours.
    const MAX_STATE: u64 = 64 << 10;
    let mut bytes = Vec::new();
    match fs::File::open(path)
        .and_then(|f| io::Read::read_to_end(&mut f.take(MAX_STATE + 1), &mut bytes))
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("cannot read", path)(e)),
    }
    if bytes.len() as u64 > MAX_STATE {
        return Err(io_err(damaged, path)(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_STATE} bytes"),
        )));
    }
    match bytes.split_first() {
        Some((&v, rest)) if v == version => postcard::from_bytes(rest).map(Some).map_err(|e| {
            io_err(damaged, path)(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
        }),
        _ => Err(io_err(unknown, path)(io::Error::new(
            io::ErrorKind::InvalidData,
            "not written by this version",
        ))),
    }
}

fn write_versioned<T: Serialize>(path: &Path, version: u8, value: &T) -> Result<(), InstallError> {
    let mut bytes = vec![version];
    bytes.extend(
        postcard::to_allocvec(value)
            .map_err(|e| io_err("cannot encode", path)(io::Error::other(e.to_string())))?,
    );
    atomic_write(path, &bytes)
}

/// Copy `src` to `dst`, naming the file whose side failed.
fn copy(
    src: &mut fs::File,
    from: &Path,
    dst: &mut fs::File,
    to: &Path,
) -> Result<(), InstallError> {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("cannot read", from)(e)),
        };
        dst.write_all(&buf[..n])
            .map_err(io_err("cannot write", to))?;
    }
}

/// BLAKE3 of a whole file (the same as its blob hash in a manifest).
fn hash_file(path: &Path) -> Result<Hash, InstallError> {
    let f = fs::File::open(path).map_err(io_err("cannot open", path))?;
    let mut h = blake3::Hasher::new();
    h.update_reader(f).map_err(io_err("cannot read", path))?;
    Ok(h.finalize().into())
}

/// `to` becomes a synced copy of `from`, with its permissions.
fn copy_synced(from: &Path, to: &Path) -> Result<(), InstallError> {
    fs::copy(from, to).map_err(io_err("cannot copy to", to))?;
    fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(io_err("cannot sync", to))
}

/// `to` becomes a copy of `from` in one rename, with `from`'s permissions.
fn atomic_copy(from: &Path, to: &Path) -> Result<(), InstallError> {
    let tmp = tmp_beside(to);
    let r = copy_synced(from, &tmp).and_then(|()| {
        fs::rename(&tmp, to).map_err(io_err("cannot replace", to))?;
        sync_dir(to)
    });
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), InstallError> {
    let tmp = tmp_beside(path);
    let r = (|| {
        let mut f = fs::File::create(&tmp).map_err(io_err("cannot create", &tmp))?;
        f.write_all(bytes).map_err(io_err("cannot write", &tmp))?;
        f.sync_all().map_err(io_err("cannot sync", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("cannot replace", path))?;
        sync_dir(path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

fn tmp_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn sync_dir(path: &Path) -> Result<(), InstallError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("cannot sync the directory of", path))
}
