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
//! | `APP.update-state` | the trial: which version, its hash, how many starts |
//!
//! Every step is ordered so that a crash at any point leaves a working
//! `APP`: the new file is written and synced under the `.staged` name, the
//! previous executable is kept under `.previous`, the trial is recorded,
//! and only then is `.staged` renamed over `APP` (one atomic rename; a
//! running process keeps its open file). A crash before the rename leaves
//! the old `APP` and a trial that [`Installer::startup`] recognises as
//! never started (the hash of `APP` is not the trial's) and clears.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::content::Hash;

/// Starts a new version gets to call [`Installer::mark_healthy`] by default.
pub const DEFAULT_TRIAL_STARTS: u32 = 3;

/// Installs new versions of one executable and rolls them back.
#[derive(Debug, Clone)]
pub struct Installer {
    exe: PathBuf,
    trial_starts: u32,
}

/// What [`Installer::startup`] found.
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
    /// healthy: the previous executable is back in place. The process is
    /// still the failed version; it should exit (or re-execute itself) so
    /// the previous one runs.
    RolledBack {
        /// The version that failed.
        failed: String,
    },
}

/// Installing or rolling back failed. The executable in place is left as it
/// was, and nothing staged remains.
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
}

const STATE_VERSION: u8 = 1;

impl Installer {
    /// An installer for the executable at `exe`.
    pub fn new(exe: impl Into<PathBuf>) -> Self {
        Self {
            exe: exe.into(),
            trial_starts: DEFAULT_TRIAL_STARTS,
        }
    }

    /// An installer for the running executable.
    pub fn current() -> io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?))
    }

    /// Starts a new version gets before it is rolled back (at least 1).
    pub fn trial_starts(mut self, n: u32) -> Self {
        self.trial_starts = n.max(1);
        self
    }

    /// The executable this installer manages.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    fn beside(&self, suffix: &str) -> PathBuf {
        let mut name = self.exe.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.exe.with_file_name(name)
    }

    /// Where the previous executable is kept.
    pub fn previous_path(&self) -> PathBuf {
        self.beside(".previous")
    }

    fn staged_path(&self) -> PathBuf {
        self.beside(".staged")
    }

    fn state_path(&self) -> PathBuf {
        self.beside(".update-state")
    }

    /// Install the executable at `new` (e.g. exported from a verified
    /// release) as `version`: copy it beside the current one, check that
    /// the copy hashes to `expected`, keep the current one as
    /// [`Self::previous_path`], put the new one on trial, and rename it
    /// into place. On error the current executable is untouched and the
    /// staged copy removed.
    pub fn apply(&self, new: &Path, expected: Hash, version: &str) -> Result<(), InstallError> {
        let staged = self.staged_path();
        let r = self.stage(new, &staged, expected);
        if r.is_err() {
            let _ = fs::remove_file(&staged);
            return r;
        }
        // Keep the current executable for rollback (a copy: the running
        // process may still need its file, and a link would share it).
        let previous = self.previous_path();
        let r = atomic_copy(&self.exe, &previous).and_then(|()| {
            self.write_state(&Trial {
                version: version.to_owned(),
                hash: *expected.as_bytes(),
                starts: 0,
            })
        });
        if let Err(e) = r {
            let _ = fs::remove_file(&staged);
            return Err(e);
        }
        fs::rename(&staged, &self.exe)
            .map_err(io_err("cannot move the new executable to", &self.exe))?;
        sync_dir(&self.exe)
    }

    fn stage(&self, new: &Path, staged: &Path, expected: Hash) -> Result<(), InstallError> {
        let mode = fs::metadata(&self.exe)
            .map_err(io_err("cannot read", &self.exe))?
            .permissions();
        let mut src = fs::File::open(new).map_err(io_err("cannot open", new))?;
        let mut dst = fs::File::create(staged).map_err(io_err("cannot create", staged))?;
        io::copy(&mut src, &mut dst).map_err(io_err("cannot write", staged))?;
        dst.sync_all().map_err(io_err("cannot sync", staged))?;
        drop(dst);
        fs::set_permissions(staged, mode).map_err(io_err("cannot set permissions on", staged))?;
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

    /// Call first thing at every start. Counts a start of a version on
    /// trial, and rolls it back once it has used up its starts without
    /// [`Self::mark_healthy`]. Clears a trial whose swap never happened
    /// (a crash between staging and the rename), and any staged leftover.
    pub fn startup(&self) -> Result<Startup, InstallError> {
        let _ = fs::remove_file(self.staged_path());
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
        if trial.starts > self.trial_starts {
            self.rollback()?;
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
    pub fn mark_healthy(&self) -> Result<(), InstallError> {
        self.clear_state()
    }

    /// Whether a version is on trial.
    pub fn on_trial(&self) -> Result<bool, InstallError> {
        Ok(self.read_state()?.is_some())
    }

    /// Put the previous executable back (atomically) and end any trial.
    pub fn rollback(&self) -> Result<(), InstallError> {
        let previous = self.previous_path();
        if !previous.exists() {
            return Err(InstallError::NoPrevious(self.exe.clone()));
        }
        // Copy rather than rename, so a second rollback is still possible
        // and `APP.previous` survives a crash in the middle.
        atomic_copy(&previous, &self.exe)?;
        self.clear_state()
    }

    fn read_state(&self) -> Result<Option<Trial>, InstallError> {
        let path = self.state_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot read", &path)(e)),
        };
        match bytes.split_first() {
            Some((&STATE_VERSION, rest)) => postcard::from_bytes(rest).map(Some).map_err(|e| {
                io_err("damaged update state", &path)(io::Error::new(
                    io::ErrorKind::InvalidData,
                    e.to_string(),
                ))
            }),
            _ => Err(io_err("unknown update state format", &path)(
                io::Error::new(io::ErrorKind::InvalidData, "not written by this version"),
            )),
        }
    }

    fn write_state(&self, trial: &Trial) -> Result<(), InstallError> {
        let path = self.state_path();
        let mut bytes = vec![STATE_VERSION];
        bytes.extend(
            postcard::to_allocvec(trial)
                .map_err(|e| io_err("cannot encode", &path)(io::Error::other(e.to_string())))?,
        );
        atomic_write(&path, &bytes)
    }

    fn clear_state(&self) -> Result<(), InstallError> {
        let path = self.state_path();
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("cannot remove", &path)(e)),
        }
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> InstallError + 'a {
    move |source| InstallError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// BLAKE3 of a whole file (the same as its blob hash in a manifest).
fn hash_file(path: &Path) -> Result<Hash, InstallError> {
    let f = fs::File::open(path).map_err(io_err("cannot open", path))?;
    let mut h = blake3::Hasher::new();
    h.update_reader(f).map_err(io_err("cannot read", path))?;
    Ok(h.finalize().into())
}

/// `to` becomes a copy of `from` in one rename, with `from`'s permissions.
fn atomic_copy(from: &Path, to: &Path) -> Result<(), InstallError> {
    let tmp = tmp_beside(to);
    let r = (|| {
        fs::copy(from, &tmp).map_err(io_err("cannot copy to", &tmp))?;
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err("cannot sync", &tmp))?;
        fs::rename(&tmp, to).map_err(io_err("cannot replace", to))?;
        sync_dir(to)
    })();
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
