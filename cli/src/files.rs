//! Small files the user names (key and config files): read with a bound
//! before anything is allocated for them, and a secret key only if nobody
//! else can read it.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use swarm_engine::store::Store;

/// Largest publisher key file read: `keygen` writes about 130 bytes.
pub(crate) const MAX_KEY_FILE: u64 = 4 << 10;
/// Largest `swarm node --config` file read.
pub(crate) const MAX_CONFIG_FILE: u64 = 1 << 20;

/// Create `path`, which must not exist yet, with `mode`; an existing one
/// is refused, with `hint` saying what to do.
pub(crate) fn create_new(path: &Path, mode: u32, hint: &str) -> Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} already exists; {hint}", path.display())
        } else {
            anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
        }
    })
}

/// The text of `path`, refused once it is over `limit` bytes: at most
/// `limit + 1` bytes are ever read. `what` names the file in messages.
pub(crate) fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<String> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    read_open(file, path, limit, what)
}

/// The text of a secret key file, refused if its mode lets the group or
/// others read it (as ssh refuses such keys), or if it is over
/// [`MAX_KEY_FILE`].
pub(crate) fn read_secret(path: &Path, what: &str) -> Result<String> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    // The mode of the file opened, not of whatever the path names later.
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
    if mode & 0o077 != 0 {
        bail!(
            "the {what} {} has mode {mode:04o}: others can read it; a secret key must be \
             readable by its owner only: run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    read_open(file, path, MAX_KEY_FILE, what)
}

/// Refuse an export destination before any work starts: one inside the
/// store (writing there would damage it), or, without `force`, an existing
/// file (export refuses it only after the download).
pub(crate) fn check_output(out: &Path, store: &Store, force: bool) -> Result<()> {
    Ok(store.check_export_target(out, force)?)
}

fn read_open(file: std::fs::File, path: &Path, limit: u64, what: &str) -> Result<String> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    if bytes.len() as u64 > limit {
        bail!(
            "the {what} {} is larger than {limit} bytes; is it the right file?",
            path.display()
        );
    }
    String::from_utf8(bytes)
        .with_context(|| format!("the {what} {} is not UTF-8 text", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_big_file_is_refused_after_reading_one_byte_too_many() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![b'a'; 11]).unwrap();
        let err = read_bounded(&p, 10, "test file").unwrap_err();
        assert!(
            format!("{err:#}").contains("larger than 10 bytes"),
            "{err:#}"
        );
        assert_eq!(read_bounded(&p, 11, "test file").unwrap().len(), 11);
        // A device that never ends is refused as quickly.
        let err = read_bounded(Path::new("/dev/zero"), 10, "test file").unwrap_err();
        assert!(format!("{err:#}").contains("/dev/zero"), "{err:#}");
    }

    #[test]
    fn an_existing_file_needs_force_and_a_directory_never_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let err = format!("{:#}", check_output(&file, &store, false).unwrap_err());
        assert!(err.contains("already exists"), "{err}");
        check_output(&file, &store, true).unwrap();
        check_output(dir.path(), &store, false).unwrap();
        check_output(&dir.path().join("new"), &store, false).unwrap();
        let inside = dir.path().join("store");
        let err = format!("{:#}", check_output(&inside, &store, true).unwrap_err());
        assert!(err.contains("inside the store"), "{err}");
    }

    #[test]
    fn a_key_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "swsk1x\n").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o666] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = format!("{:#}", read_secret(&p, "key file").unwrap_err());
            assert!(err.contains(&format!("mode {mode:04o}")), "{err}");
            assert!(err.contains(&format!("chmod 600 {}", p.display())), "{err}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_secret(&p, "key file").unwrap(), "swsk1x\n");
        }
    }
}
