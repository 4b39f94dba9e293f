//! Self-update for applications that embed the engine.
//!
//! [`Updater::check`] finds the newest release of the application on the
//! DHT under the trust and rollback policy and the version rules,
//! [`Updater::download`] fetches it through the swarm, and
//! [`Updater::apply`] hands the executable to the [`Installer`], which
//! stages and verifies it, swaps it in atomically keeping the previous one,
//! and puts it on trial: a version that does not call
//! [`Installer::mark_healthy`] within its starts is rolled back by
//! [`Installer::startup`]. A version rolled back is remembered beside the
//! executable ([`Installer::failed_versions`]) and not installed again; a
//! newer one is.
//!
//! ```no_run
//! use swarm_engine::update::{Installer, Startup};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let installer = Installer::current()?;
//! match installer.startup()? {
//!     Startup::RolledBack { failed } => {
//!         eprintln!("version {failed} did not start; the previous one is back");
//!         std::process::exit(75); // let the supervisor start the previous one
//!     }
//!     Startup::Trial { .. } | Startup::Normal => {}
//! }
//! // ... start up; once it works:
//! installer.mark_healthy()?;
//! # Ok(())
//! # }
//! ```

mod install;
#[cfg(test)]
mod tests;
mod updater;

pub use self::install::{
    DEFAULT_TRIAL_STARTS, InstallError, Installer, MAX_FAILED_VERSIONS, Startup,
};
mod auto;
pub use self::auto::{AutoEvent, AutoUpdate, AutoUpdater};
pub use self::updater::{Downloaded, Update, UpdateConfig, UpdateError, UpdateWatch, Updater, utc};
