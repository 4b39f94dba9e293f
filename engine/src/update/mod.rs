//! Self-update for applications that embed the engine.
//!
//! So far the local half: [`Installer`] stages a new executable, verifies
//! it, swaps it in atomically keeping the previous one, and puts it on
//! trial; a version that does not call [`Installer::mark_healthy`] within
//! its starts is rolled back by [`Installer::startup`]. Finding and
//! fetching the release (under the trust and rollback policy, through the
//! swarm) is the other half, still to come.
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

pub use self::install::{DEFAULT_TRIAL_STARTS, InstallError, Installer, Startup};
