//! The installer on real files in a temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::content::Hash;

struct App {
    _dir: tempfile::TempDir,
    exe: std::path::PathBuf,
    v2: std::path::PathBuf,
}

const V1: &[u8] = b"#!/bin/sh\necho v1\n";
const V2: &[u8] = b"#!/bin/sh\necho v2\n";

fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("app");
    fs::write(&exe, V1).unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    // The new version as exported from a release: elsewhere, other mode.
    let v2 = dir.path().join("download-v2");
    fs::write(&v2, V2).unwrap();
    App { _dir: dir, exe, v2 }
}

fn leftovers(a: &App) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(a.exe.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".staged") || n.ends_with(".tmp"))
        .collect();
    names.sort();
    names
}

#[test]
fn apply_swaps_keeps_the_previous_and_puts_the_new_one_on_trial() {
    let a = app();
    let inst = Installer::new(&a.exe);
    inst.apply(&a.v2, Hash::of(V2), "2.0.0").unwrap();
    assert_eq!(fs::read(&a.exe).unwrap(), V2);
    assert_eq!(fs::read(inst.previous_path()).unwrap(), V1);
    // Executable, like the one it replaced.
    let mode = fs::metadata(&a.exe).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
    assert!(leftovers(&a).is_empty(), "{:?}", leftovers(&a));
    // It runs, as the new version.
    let out = std::process::Command::new(&a.exe).output().unwrap();
    assert_eq!(out.stdout, b"v2\n");
    assert!(inst.on_trial().unwrap());
    assert_eq!(
        inst.startup().unwrap(),
        Startup::Trial {
            version: "2.0.0".into(),
            start: 1,
            of: DEFAULT_TRIAL_STARTS
        }
    );
    inst.mark_healthy().unwrap();
    assert_eq!(inst.startup().unwrap(), Startup::Normal);
    assert_eq!(fs::read(&a.exe).unwrap(), V2);
    // A manual rollback is still possible.
    inst.rollback().unwrap();
    assert_eq!(fs::read(&a.exe).unwrap(), V1);
}

#[test]
fn a_version_that_never_gets_healthy_is_rolled_back_after_its_starts() {
    let a = app();
    let inst = Installer::new(&a.exe).trial_starts(2);
    inst.apply(&a.v2, Hash::of(V2), "2.0.0").unwrap();
    assert!(matches!(
        inst.startup().unwrap(),
        Startup::Trial { start: 1, .. }
    ));
    // It crashes before mark_healthy, twice.
    assert!(matches!(
        inst.startup().unwrap(),
        Startup::Trial { start: 2, .. }
    ));
    assert_eq!(
        inst.startup().unwrap(),
        Startup::RolledBack {
            failed: "2.0.0".into()
        }
    );
    assert_eq!(fs::read(&a.exe).unwrap(), V1);
    assert!(!inst.on_trial().unwrap());
    // And the previous one starts normally from then on.
    assert_eq!(inst.startup().unwrap(), Startup::Normal);
}

#[test]
fn a_staged_copy_that_does_not_hash_right_installs_nothing() {
    let a = app();
    let inst = Installer::new(&a.exe);
    let err = inst
        .apply(&a.v2, Hash::of(b"something else"), "2.0.0")
        .unwrap_err();
    assert!(matches!(err, InstallError::Tampered { .. }), "{err}");
    assert!(err.to_string().contains("nothing was installed"), "{err}");
    assert_eq!(fs::read(&a.exe).unwrap(), V1);
    assert!(!inst.previous_path().exists());
    assert!(!inst.on_trial().unwrap());
    assert!(leftovers(&a).is_empty(), "{:?}", leftovers(&a));
}

#[test]
fn a_crash_between_staging_and_the_swap_leaves_the_old_version_running() {
    let a = app();
    let inst = Installer::new(&a.exe);
    inst.apply(&a.v2, Hash::of(V2), "2.0.0").unwrap();
    // Model the crash: the trial was recorded but the rename never
    // happened (the old executable is in place, a staged copy lingers).
    fs::write(&a.exe, V1).unwrap();
    fs::write(a.exe.with_file_name("app.staged"), V2).unwrap();
    assert_eq!(inst.startup().unwrap(), Startup::Normal);
    assert!(!inst.on_trial().unwrap());
    assert!(leftovers(&a).is_empty(), "{:?}", leftovers(&a));
    assert_eq!(fs::read(&a.exe).unwrap(), V1);
}

#[test]
fn rollback_without_a_previous_version_says_so() {
    let a = app();
    let err = Installer::new(&a.exe).rollback().unwrap_err();
    assert!(matches!(err, InstallError::NoPrevious(_)), "{err}");
    assert_eq!(fs::read(&a.exe).unwrap(), V1);
}

#[test]
fn a_damaged_state_file_is_an_error_not_a_guess() {
    let a = app();
    let inst = Installer::new(&a.exe);
    fs::write(a.exe.with_file_name("app.update-state"), b"\x01\xff\xff").unwrap();
    let err = inst.startup().unwrap_err();
    assert!(err.to_string().contains("damaged update state"), "{err}");
    assert_eq!(fs::read(&a.exe).unwrap(), V1);
}

#[test]
fn a_missing_download_is_an_error_and_changes_nothing() {
    let a = app();
    let inst = Installer::new(&a.exe);
    let err = inst
        .apply(&a.exe.with_file_name("nope"), Hash::of(V2), "2.0.0")
        .unwrap_err();
    assert!(err.to_string().contains("cannot open"), "{err}");
    assert_eq!(fs::read(&a.exe).unwrap(), V1);
    assert!(!inst.on_trial().unwrap());
    assert!(leftovers(&a).is_empty(), "{:?}", leftovers(&a));
}

/// A publisher puts v2 of an application on a local DHT; an instance
/// running v1 finds it, fetches it through the swarm, and installs it; the
/// version rules refuse what is not an update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_updates_itself_from_the_swarm() {
    use crate::discovery::{Dht, LocalDht};
    use crate::net::EndpointConfig;
    use crate::node::Node;
    use crate::release::{Release, SecretKey};
    use crate::store::{AddOptions, Store};

    let dht = LocalDht::start(8).unwrap();
    let cfg = dht.config();
    let loopback = || EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());

    // The publisher: v2 of the executable, released and announced.
    let a = app();
    let store = Store::memory().unwrap();
    let release_dir = a.exe.with_file_name("release");
    fs::create_dir(&release_dir).unwrap();
    fs::write(release_dir.join("app"), V2).unwrap();
    let added = store
        .add_paths(&[release_dir.join("app")], &AddOptions::default())
        .unwrap();
    let key = SecretKey::generate().unwrap();
    let release = |version: semver::Version, seq: u64, channel: &str| {
        Release {
            publisher: key.public(),
            name: "app".into(),
            channel: channel.into(),
            version,
            seq,
            root: added.root,
            size: added.size,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            expires: None,
        }
        .sign(&key)
        .unwrap()
    };
    let v2 = release(semver::Version::new(2, 0, 0), 1, "stable");
    let publisher = Node::spawn(store, loopback())
        .await
        .unwrap()
        .with_dht(Dht::spawn(&cfg).unwrap());
    publisher
        .dht()
        .unwrap()
        .put_release(&v2, &key)
        .await
        .unwrap();
    publisher.announce().await.unwrap();

    // The application, running v1.
    let node = Node::spawn(Store::memory().unwrap(), loopback())
        .await
        .unwrap()
        .with_dht(Dht::spawn(&cfg).unwrap());
    let config = |current: semver::Version| UpdateConfig {
        publishers: vec![key.public()],
        name: "app".into(),
        channel: "stable".into(),
        current,
        artifact: None,
        pin: None,
        allow_downgrade: false,
    };
    let updater = Updater::new(
        node.clone(),
        config(semver::Version::new(1, 0, 0)),
        Installer::new(&a.exe),
    );
    let update = updater.check().await.unwrap().expect("v2 is an update");
    assert_eq!(update.version(), &semver::Version::new(2, 0, 0));
    let downloaded = updater.download(&update, vec![]).await.unwrap();
    assert_eq!(fs::read(downloaded.path()).unwrap(), V2);
    updater.apply(&downloaded).unwrap();
    drop(downloaded);
    assert_eq!(fs::read(&a.exe).unwrap(), V2);
    assert!(matches!(
        updater.installer().startup().unwrap(),
        Startup::Trial { .. }
    ));
    assert!(leftovers(&a).is_empty(), "{:?}", leftovers(&a));

    // Once running v2 there is nothing to do.
    let same = Updater::new(
        node.clone(),
        config(semver::Version::new(2, 0, 0)),
        Installer::new(&a.exe),
    );
    assert!(same.check().await.unwrap().is_none());
    // A newer version running: v2 is a downgrade, refused unless allowed.
    let newer = Updater::new(
        node.clone(),
        config(semver::Version::new(3, 0, 0)),
        Installer::new(&a.exe),
    );
    let err = newer.check().await.unwrap_err();
    assert!(
        err.to_string().contains("downgrades are not allowed"),
        "{err}"
    );
    // Pinned to 1.x: v2 is outside.
    let mut pinned = config(semver::Version::new(1, 0, 0));
    pinned.pin = Some("^1".parse().unwrap());
    let err = Updater::new(node.clone(), pinned, Installer::new(&a.exe))
        .check()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pinned"), "{err}");
    // A release on another channel, given as a token, is refused.
    let beta = release(semver::Version::new(9, 0, 0), 2, "beta");
    let err = updater.check_token(&beta.to_token()).unwrap_err();
    assert!(matches!(err, UpdateError::Refused(_)), "{err}");
    // An older sequence than the one installed is refused (rollback).
    let old = release(semver::Version::new(2, 5, 0), 0, "stable");
    assert!(updater.check_token(&old.to_token()).is_err());
    node.shutdown().await;
    publisher.shutdown().await;
}
