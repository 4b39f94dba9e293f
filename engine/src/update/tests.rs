//! The installer on real files in a temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::content::Hash;
use crate::net::EndpointConfig;
use crate::node::Node;
use crate::release::{PolicyError, Release, SecretKey, SignedRelease};
use crate::store::{AcceptError, Store};

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
        .filter(|n| n.ends_with(".staged") || n.ends_with(".tmp") || n.ends_with(".old"))
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
    use crate::store::AddOptions;

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
            rollout: Default::default(),
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
    let err = updater.check_token(&old.to_token()).unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::Refused(AcceptError::Policy(PolicyError::Rollback {
                got: 0,
                seen: 1,
                ..
            }))
        ),
        "{err}"
    );
    node.shutdown().await;
    publisher.shutdown().await;
}

const V3: &[u8] = b"#!/bin/sh\necho v3\n";

/// Every file in the app's directory with its bytes.
fn snapshot(a: &App) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(a.exe.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_version_that_never_gets_healthy_is_remembered_as_failed() {
    let a = app();
    let inst = Installer::new(&a.exe).trial_starts(1);
    assert!(inst.failed_versions().unwrap().is_empty());
    inst.apply(&a.v2, Hash::of(V2), "2.0.0").unwrap();
    assert!(matches!(inst.startup().unwrap(), Startup::Trial { .. }));
    assert!(matches!(
        inst.startup().unwrap(),
        Startup::RolledBack { .. }
    ));
    assert_eq!(inst.failed_versions().unwrap(), ["2.0.0"]);
    assert!(inst.history_path().exists());
    // Remembered across instances (it is on disk), and not again on the
    // next start.
    assert_eq!(inst.startup().unwrap(), Startup::Normal);
    assert_eq!(Installer::new(&a.exe).failed_versions().unwrap(), ["2.0.0"]);
}

#[test]
fn an_explicit_rollback_remembers_the_version_on_trial_or_last_kept() {
    let a = app();
    let inst = Installer::new(&a.exe);
    // On trial.
    inst.apply(&a.v2, Hash::of(V2), "2.0.0").unwrap();
    inst.rollback().unwrap();
    assert_eq!(fs::read(&a.exe).unwrap(), V1);
    assert_eq!(inst.failed_versions().unwrap(), ["2.0.0"]);
    // A second rollback undoes no version of ours: nothing new.
    inst.rollback().unwrap();
    assert_eq!(inst.failed_versions().unwrap(), ["2.0.0"]);
    // Marked healthy, then rolled back by hand.
    let v3 = a.exe.with_file_name("download-v3");
    fs::write(&v3, V3).unwrap();
    inst.apply(&v3, Hash::of(V3), "3.0.0").unwrap();
    assert!(matches!(inst.startup().unwrap(), Startup::Trial { .. }));
    inst.mark_healthy().unwrap();
    assert_eq!(inst.startup().unwrap(), Startup::Normal);
    // Again, at the next start: with no trial it must not forget 3.0.0.
    inst.mark_healthy().unwrap();
    inst.rollback().unwrap();
    assert_eq!(fs::read(&a.exe).unwrap(), V1);
    assert_eq!(inst.failed_versions().unwrap(), ["2.0.0", "3.0.0"]);
}

#[test]
fn a_trial_whose_swap_never_happened_is_not_remembered_as_failed() {
    let a = app();
    let inst = Installer::new(&a.exe);
    inst.apply(&a.v2, Hash::of(V2), "2.0.0").unwrap();
    // The crash before the rename: the old executable is in place.
    fs::write(&a.exe, V1).unwrap();
    inst.rollback().unwrap();
    assert!(inst.failed_versions().unwrap().is_empty());
    assert!(!inst.on_trial().unwrap());
}

#[test]
fn failed_versions_are_bounded_and_a_repeat_moves_to_the_end() {
    let a = app();
    let inst = Installer::new(&a.exe);
    let n = MAX_FAILED_VERSIONS + 2;
    for i in 0..n {
        inst.apply(&a.v2, Hash::of(V2), &format!("2.0.{i}"))
            .unwrap();
        inst.rollback().unwrap();
    }
    let want: Vec<String> = (2..n).map(|i| format!("2.0.{i}")).collect();
    assert_eq!(inst.failed_versions().unwrap(), want);
    inst.apply(&a.v2, Hash::of(V2), "2.0.5").unwrap();
    inst.rollback().unwrap();
    let failed = inst.failed_versions().unwrap();
    assert_eq!(failed.len(), MAX_FAILED_VERSIONS);
    assert_eq!(failed.iter().filter(|v| *v == "2.0.5").count(), 1);
    assert_eq!(failed.last().unwrap(), "2.0.5");
}

#[test]
fn a_damaged_history_never_stands_in_the_way_of_a_rollback() {
    let a = app();
    let inst = Installer::new(&a.exe);
    inst.apply(&a.v2, Hash::of(V2), "2.0.0").unwrap();
    fs::write(inst.history_path(), b"\x01\xff\xff").unwrap();
    let err = inst.failed_versions().unwrap_err();
    assert!(err.to_string().contains("damaged update history"), "{err}");
    assert!(err.to_string().contains("app.update-history"), "{err}");
    inst.rollback().unwrap();
    assert_eq!(fs::read(&a.exe).unwrap(), V1);
    assert!(!inst.on_trial().unwrap());
}

/// Each I/O step of `apply` made to fail in turn, from three starting
/// points: the directory is left exactly as it was, and a later install
/// works.
#[test]
fn every_failing_step_of_apply_leaves_everything_as_it_was() {
    let steps = [
        ("create", "app.staged"),
        ("write", "app.staged"),
        ("sync", "app.staged"),
        ("permissions", "app.staged"),
        ("copy previous", "app.previous.tmp"),
        ("state", "app.update-state"),
        ("keep previous", "app.previous"),
        ("swap", "app"),
    ];
    for (step, file) in steps {
        for start in ["fresh", "with a previous", "v2 on trial"] {
            let a = app();
            let v3 = a.exe.with_file_name("download-v3");
            fs::write(&v3, V3).unwrap();
            match start {
                "fresh" => {}
                "with a previous" => {
                    fs::write(a.exe.with_file_name("app.previous"), b"v0").unwrap()
                }
                _ => Installer::new(&a.exe)
                    .apply(&a.v2, Hash::of(V2), "2.0.0")
                    .unwrap(),
            }
            let before = snapshot(&a);
            let inst = Installer::new(&a.exe).fail_at(step);
            let err = inst.apply(&v3, Hash::of(V3), "3.0.0").unwrap_err();
            let InstallError::Io { path, .. } = &err else {
                panic!("{step}, {start}: {err}");
            };
            assert_eq!(path.file_name().unwrap(), file, "{step}, {start}: {err}");
            let source = std::error::Error::source(&err).unwrap().to_string();
            assert!(source.contains(step), "{step}, {start}: {source}");
            assert_eq!(snapshot(&a), before, "{step}, {start}");
            assert!(
                leftovers(&a).is_empty(),
                "{step}, {start}: {:?}",
                leftovers(&a)
            );
            Installer::new(&a.exe)
                .apply(&v3, Hash::of(V3), "3.0.0")
                .unwrap();
            assert_eq!(fs::read(&a.exe).unwrap(), V3, "{step}, {start}");
        }
    }
}

#[test]
fn staging_onto_a_directory_in_the_way_fails_names_it_and_installs_nothing() {
    let a = app();
    let staged = a.exe.with_file_name("app.staged");
    fs::create_dir(&staged).unwrap();
    let inst = Installer::new(&a.exe);
    let err = inst.apply(&a.v2, Hash::of(V2), "2.0.0").unwrap_err();
    assert!(
        matches!(&err, InstallError::Io { what: "cannot create", path, .. } if *path == staged),
        "{err}"
    );
    assert!(err.to_string().contains("app.staged"), "{err}");
    assert_eq!(fs::read(&a.exe).unwrap(), V1);
    assert!(!inst.previous_path().exists());
    assert!(!inst.on_trial().unwrap());
    assert!(inst.failed_versions().unwrap().is_empty());
    // Not ours, so left alone, and nothing written into it.
    assert_eq!(fs::read_dir(&staged).unwrap().count(), 0);
    assert!(
        leftovers(&a).iter().all(|n| n == "app.staged"),
        "{:?}",
        leftovers(&a)
    );
}

#[test]
fn a_download_that_cannot_be_read_leaves_no_staged_copy() {
    let a = app();
    // A directory opens, but reading it fails: after the staged file was
    // created.
    let dir = a.exe.with_file_name("download-dir");
    fs::create_dir(&dir).unwrap();
    let inst = Installer::new(&a.exe);
    let err = inst.apply(&dir, Hash::of(V2), "2.0.0").unwrap_err();
    assert!(
        matches!(&err, InstallError::Io { what: "cannot read", path, .. } if *path == dir),
        "{err}"
    );
    assert_eq!(fs::read(&a.exe).unwrap(), V1);
    assert!(!inst.previous_path().exists());
    assert!(!inst.on_trial().unwrap());
    assert!(leftovers(&a).is_empty(), "{:?}", leftovers(&a));
}

/// A node for checking tokens (no DHT, no peers).
async fn token_node() -> Node {
    let loopback = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    Node::spawn(Store::memory().unwrap(), loopback)
        .await
        .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn signed(key: &SecretKey, name: &str, version: &str, seq: u64) -> Release {
    Release {
        publisher: key.public(),
        name: name.into(),
        channel: "stable".into(),
        version: version.parse().unwrap(),
        seq,
        root: Hash::of(b"the release"),
        size: 11,
        created: now(),
        expires: None,
        rollout: Default::default(),
    }
}

/// An application at 1.0.0, a publisher key, and an updater for it that
/// takes releases as tokens.
async fn token_updater() -> (App, SecretKey, Node, Updater) {
    let a = app();
    let key = SecretKey::generate().unwrap();
    let node = token_node().await;
    let updater = Updater::new(
        node.clone(),
        token_config(&key, "1.0.0"),
        Installer::new(&a.exe),
    );
    (a, key, node, updater)
}

fn token_config(key: &SecretKey, current: &str) -> UpdateConfig {
    UpdateConfig {
        publishers: vec![key.public()],
        name: "app".into(),
        channel: "stable".into(),
        current: current.parse().unwrap(),
        artifact: None,
        pin: None,
        allow_downgrade: false,
    }
}

#[tokio::test]
async fn a_version_rolled_back_here_is_not_installed_again_but_a_newer_one_is() {
    let a = app();
    let inst = Installer::new(&a.exe).trial_starts(1);
    inst.apply(&a.v2, Hash::of(V2), "2.0.0").unwrap();
    inst.startup().unwrap();
    assert!(matches!(
        inst.startup().unwrap(),
        Startup::RolledBack { .. }
    ));
    let key = SecretKey::generate().unwrap();
    let node = token_node().await;
    let updater = Updater::new(node.clone(), token_config(&key, "1.0.0"), inst);
    let v2 = signed(&key, "app", "2.0.0", 1).sign(&key).unwrap();
    let err = updater.check_token(&v2.to_token()).unwrap_err();
    assert!(matches!(err, UpdateError::NotAnUpdate(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(
            "release 2.0.0 was rolled back on this machine after it failed to start; \
             waiting for a newer version"
        ),
        "{msg}"
    );
    assert!(msg.contains("app.update-history"), "{msg}");
    // A fixed version is taken.
    let v201 = signed(&key, "app", "2.0.1", 2).sign(&key).unwrap();
    let update = updater.check_token(&v201.to_token()).unwrap().unwrap();
    assert_eq!(update.version(), &semver::Version::new(2, 0, 1));
    node.shutdown().await;
}

#[tokio::test]
async fn an_expired_release_is_refused_and_says_it_expired() {
    let (_a, key, node, updater) = token_updater().await;
    let mut r = signed(&key, "app", "2.0.0", 1);
    r.created = now() - 1000;
    r.expires = Some(now() - 10);
    let err = updater
        .check_token(&r.sign(&key).unwrap().to_token())
        .unwrap_err();
    assert!(
        matches!(
            &err,
            UpdateError::Refused(AcceptError::Policy(PolicyError::Expired { version, .. }))
                if version == "2.0.0"
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("release app 2.0.0 expired"),
        "{err}"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_release_of_another_application_is_refused() {
    let (_a, key, node, updater) = token_updater().await;
    let other = signed(&key, "other", "2.0.0", 1).sign(&key).unwrap();
    let err = updater.check_token(&other.to_token()).unwrap_err();
    assert!(
        matches!(
            &err,
            UpdateError::Refused(AcceptError::Policy(PolicyError::WrongName { want, got }))
                if want == "app" && got == "other"
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(r#"this release is for "other", not "app""#),
        "{err}"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_tampered_or_damaged_token_is_refused() {
    let (_a, key, node, updater) = token_updater().await;
    let token = signed(&key, "app", "2.0.0", 1)
        .sign(&key)
        .unwrap()
        .to_token();
    assert!(updater.check_token(&token).unwrap().is_some());
    // One character of the signature changed (well inside it: the last
    // character also carries padding bits).
    let mut tampered = token.clone().into_bytes();
    let i = tampered.len() - 20;
    tampered[i] = if tampered[i] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(matches!(
        SignedRelease::from_token(&tampered),
        Err(crate::release::ReleaseError::BadSignature)
    ));
    let err = updater.check_token(&tampered).unwrap_err();
    assert!(matches!(err, UpdateError::NotAnUpdate(_)), "{err}");
    assert!(
        err.to_string()
            .contains("not a release token: the signature does not match"),
        "{err}"
    );
    // A character outside the alphabet.
    let damaged = format!("{}1{}", &token[..40], &token[41..]);
    let err = updater.check_token(&damaged).unwrap_err();
    assert!(matches!(err, UpdateError::NotAnUpdate(_)), "{err}");
    assert!(
        err.to_string()
            .contains("not a release token: token is damaged"),
        "{err}"
    );
    node.shutdown().await;
}

/// Issue 18, done when: an application running v1 updates to v2 through
/// the swarm by a patch from its installed executable, moving about a
/// tenth of the bytes, and ends with v2 byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_updates_itself_by_a_patch_from_the_installed_version() {
    use crate::store::PublishOptions;

    // Two builds of a program of 2 MiB: the same code, shifted and patched.
    let v1: Vec<u8> = crate::testutil::data(90, 32 * 1024).repeat(64);
    let mut v2 = v1.clone();
    v2.splice(300_000..300_000, crate::testutil::data(91, 20_000));
    for i in (0..v2.len()).step_by(7_001) {
        v2[i] ^= 0x42;
    }
    let a = app();
    fs::write(&a.exe, &v1).unwrap();

    // The publisher: v1, then v2 with a patch from v1.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::memory().unwrap();
    let key = SecretKey::generate().unwrap();
    let publish = |bytes: &[u8], v: &str, from: Vec<Hash>| {
        let d = dir.path().join(v);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("app"), bytes).unwrap();
        let mut opts = PublishOptions::new("app", v.parse().unwrap());
        opts.delta_from = from;
        store.publish(&key, &[d.join("app")], &opts).unwrap()
    };
    let p1 = publish(&v1, "1.0.0", vec![]);
    let p2 = publish(&v2, "2.0.0", vec![p1.added.root]);
    assert_eq!(p2.patches.len(), 1);
    let loopback = || EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    let publisher = Node::spawn(store, loopback()).await.unwrap();
    let addr = crate::net::PeerAddr {
        id: Some(publisher.id()),
        addr: publisher.endpoint().local_addr().unwrap(),
    };

    // The application, running v1, with an empty store.
    let node = Node::spawn(Store::memory().unwrap(), loopback())
        .await
        .unwrap();
    let updater = Updater::new(
        node.clone(),
        UpdateConfig {
            publishers: vec![key.public()],
            name: "app".into(),
            channel: "stable".into(),
            current: semver::Version::new(1, 0, 0),
            artifact: None,
            pin: None,
            allow_downgrade: false,
        },
        Installer::new(&a.exe),
    );
    let update = updater
        .check_token(&p2.release.to_token())
        .unwrap()
        .expect("v2 is an update");
    let downloaded = updater.download(&update, vec![addr]).await.unwrap();
    assert_eq!(downloaded.patched().files, 1);
    let whole = v2.len() as u64;
    assert!(
        downloaded.received() < whole / 5,
        "{} bytes moved for a file of {whole}",
        downloaded.received()
    );
    assert!(fs::read(downloaded.path()).unwrap() == v2);
    updater.apply(&downloaded).unwrap();
    drop(downloaded);
    assert!(
        fs::read(&a.exe).unwrap() == v2,
        "the installed file is not v2"
    );
    node.shutdown().await;
    publisher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_through_a_dht_nobody_answers_says_so() {
    // Nothing listens where it bootstraps from: the check, which asks at
    // once, finds nothing, then tells a dead DHT from an empty one.
    let a = app();
    let key = SecretKey::generate().unwrap();
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let dht = crate::discovery::DhtConfig {
        bootstrap: vec![addr.to_string()],
        request_timeout: Some(std::time::Duration::from_millis(200)),
        bind: Some(std::net::Ipv4Addr::LOCALHOST),
        ..crate::discovery::DhtConfig::default()
    };
    let node = Node::builder()
        .memory()
        .listen(([127, 0, 0, 1], 0).into())
        .dht(dht)
        .spawn()
        .await
        .unwrap();
    let updater = Updater::new(node, token_config(&key, "1.0.0"), Installer::new(&a.exe));
    assert!(matches!(
        updater.check().await,
        Err(UpdateError::NotBootstrapped)
    ));
}

mod staged {
    //! Staged rollout, the verification delay and `watch()`, with releases
    //! gossiped between real nodes over QUIC on 127.0.0.1 (no DHT).

    use std::time::Duration;

    use super::*;
    use crate::release::rollout::Step;
    use crate::store::PublishOptions;

    async fn node() -> Node {
        Node::builder()
            .listen(([127, 0, 0, 1], 0).into())
            .no_dht()
            .spawn()
            .await
            .unwrap()
    }

    pub(super) fn updater(node: &Node, key: &SecretKey, exe: &std::path::Path) -> Updater {
        let config = UpdateConfig {
            publishers: vec![key.public()],
            name: "app".into(),
            channel: "stable".into(),
            current: semver::Version::new(1, 0, 0),
            artifact: None,
            pin: None,
            allow_downgrade: false,
        };
        Updater::new(node.clone(), config, Installer::new(exe))
    }

    async fn publish(
        node: &Node,
        key: &SecretKey,
        version: &str,
        dir: &std::path::Path,
        tune: impl FnOnce(&mut PublishOptions),
    ) -> SignedRelease {
        let path = dir.join(format!("app-{version}"));
        fs::write(&path, format!("#!/bin/sh\necho {version}\n")).unwrap();
        let mut opts = PublishOptions::new("app", version.parse().unwrap());
        tune(&mut opts);
        node.publish(key, &[path], &opts).await.unwrap().release
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_staged_release_says_when_and_a_critical_one_skips_schedule_and_delay() {
        let a = app();
        let key = SecretKey::from_seed(&[31; 32]);
        let publisher = node().await;
        let client = node().await;
        let u =
            updater(&client, &key, &a.exe).verification_delay(Some(Duration::from_secs(6 * 3600)));
        // Nobody at first, everyone after a day.
        let staged = publish(&publisher, &key, "1.1.0", a.exe.parent().unwrap(), |o| {
            o.rollout.steps = vec![
                Step {
                    after: 0,
                    permille: 0,
                },
                Step {
                    after: 86_400,
                    permille: 1000,
                },
            ];
        })
        .await;
        let e = u.consider(staged.clone(), false).unwrap_err();
        let from = staged.release().created + 86_400;
        assert!(
            matches!(e, UpdateError::Staged { from: Some(t), .. } if t == from),
            "{e}"
        );
        assert!(e.to_string().contains("staged: offered to you from"), "{e}");
        // Given by hand, the schedule does not apply.
        assert!(u.check_token(&staged.to_token()).unwrap().is_some());
        // No schedule, but younger than the delay.
        let young = publish(&publisher, &key, "1.2.0", a.exe.parent().unwrap(), |_| {}).await;
        let e = u.consider(young.clone(), false).unwrap_err();
        assert!(matches!(e, UpdateError::Delayed { .. }), "{e}");
        // Critical: both skipped.
        let critical = publish(&publisher, &key, "1.3.0", a.exe.parent().unwrap(), |o| {
            o.rollout.steps = vec![Step {
                after: 86_400,
                permille: 1,
            }];
            o.rollout.critical = true;
        })
        .await;
        assert!(u.consider(critical.clone(), false).unwrap().is_some());
        // A pinned client stays pinned, critical or not.
        let pinned = {
            let mut p = updater(&client, &key, &a.exe);
            p.config_mut().pin = Some("~1.2".parse().unwrap());
            p
        };
        let e = pinned.consider(critical, false).unwrap_err();
        assert!(matches!(e, UpdateError::NotAnUpdate(_)), "{e}");
        // The install id stays, so the cohort does.
        assert_eq!(u.install_id().unwrap(), u.install_id().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_yields_what_gossip_brings_once_it_is_acceptable() {
        let a = app();
        let key = SecretKey::from_seed(&[32; 32]);
        let publisher = node().await;
        let client = node().await;
        let u =
            updater(&client, &key, &a.exe).verification_delay(Some(Duration::from_secs(86_400)));
        let mut watch = u.watch(Duration::from_secs(3600), vec![publisher.addr().unwrap()]);
        // Wait for the kept connection (and the Follow on it).
        for _ in 0..500 {
            if publisher.endpoint().open_connections() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let dir = a.exe.parent().unwrap().to_path_buf();
        // Held back a day by the delay: not yielded.
        let held = publish(&publisher, &key, "1.1.0", &dir, |_| {}).await;
        let early = tokio::time::timeout(Duration::from_millis(500), watch.next()).await;
        assert!(early.is_err(), "a delayed release was yielded");
        // Gossip brought it, checked and recorded, all the same.
        let seen = client
            .store()
            .release_seen(&key.public(), "app", "stable")
            .unwrap();
        assert_eq!(seen.map(|s| s.seq), Some(held.release().seq));
        // A critical one comes through at once.
        let fix = publish(&publisher, &key, "1.1.1", &dir, |o| {
            o.rollout.critical = true
        })
        .await;
        let got = tokio::time::timeout(Duration::from_secs(20), watch.next())
            .await
            .expect("the critical release")
            .expect("still watching");
        assert_eq!(got.release, fix);
        // And it can be downloaded and applied as any update.
        let downloaded = u
            .download(&got, vec![publisher.addr().unwrap()])
            .await
            .unwrap();
        u.apply(&downloaded).unwrap();
        assert_eq!(fs::read(&a.exe).unwrap(), b"#!/bin/sh\necho 1.1.1\n");
    }
}

#[test]
fn a_version_past_its_health_deadline_is_rolled_back_at_its_next_start() {
    let a = app();
    let inst = Installer::new(&a.exe)
        .trial_starts(5)
        .health_deadline(std::time::Duration::ZERO);
    inst.apply(&a.v2, Hash::of(V2), "2.0.0").unwrap();
    // The first start is its trial run, whatever the clock says.
    assert!(matches!(
        inst.startup().unwrap(),
        Startup::Trial { start: 1, .. }
    ));
    // It never said it was healthy, and its time is up: starts to spare
    // do not save it.
    assert_eq!(
        inst.startup().unwrap(),
        Startup::RolledBack {
            failed: "2.0.0".into()
        }
    );
    assert_eq!(fs::read(&a.exe).unwrap(), V1);
    // A generous deadline changes nothing while it is in time.
    let b = app();
    let inst = Installer::new(&b.exe).health_deadline(std::time::Duration::from_secs(3600));
    inst.apply(&b.v2, Hash::of(V2), "2.0.0").unwrap();
    assert_eq!(inst.check_deadline().unwrap(), None);
    assert!(matches!(
        inst.startup().unwrap(),
        Startup::Trial { start: 1, .. }
    ));
    assert!(matches!(
        inst.startup().unwrap(),
        Startup::Trial { start: 2, .. }
    ));
}

#[test]
fn a_trial_recorded_by_an_older_build_is_still_read() {
    let a = app();
    let inst = Installer::new(&a.exe).trial_starts(2);
    inst.apply(&a.v2, Hash::of(V2), "2.0.0").unwrap();
    // The state as builds before the deadline wrote it: no `since`.
    #[derive(serde::Serialize)]
    struct Old {
        version: String,
        hash: [u8; 32],
        starts: u32,
    }
    let old = Old {
        version: "2.0.0".into(),
        hash: *Hash::of(V2).as_bytes(),
        starts: 1,
    };
    let mut bytes = vec![1u8];
    bytes.extend(postcard::to_allocvec(&old).unwrap());
    fs::write(inst.state_path(), bytes).unwrap();
    assert!(matches!(
        inst.startup().unwrap(),
        Startup::Trial {
            start: 2,
            of: 2,
            ..
        }
    ));
    assert!(matches!(
        inst.startup().unwrap(),
        Startup::RolledBack { .. }
    ));
}

mod auto {
    //! `Updater::auto_update` under the settings users give it.

    use std::time::Duration;

    use super::*;
    use crate::store::PublishOptions;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn security_only_with_auto_restart_applies_the_critical_release_alone() {
        let a = app();
        let key = SecretKey::from_seed(&[33; 32]);
        let loopback: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
        let publisher = Node::builder()
            .listen(loopback)
            .no_dht()
            .spawn()
            .await
            .unwrap();
        let client = Node::builder()
            .listen(loopback)
            .no_dht()
            .spawn()
            .await
            .unwrap();
        let u = super::staged::updater(&client, &key, &a.exe);
        let auto = AutoUpdate {
            security_only: true,
            auto_restart: true,
            ..AutoUpdate::default()
        };
        let mut events = u.auto_update(&auto, vec![publisher.addr().unwrap()]);
        for _ in 0..500 {
            if publisher.endpoint().open_connections() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let dir = a.exe.parent().unwrap();
        let publish = |version: &str, critical: bool| {
            let path = dir.join(format!("app-{version}"));
            fs::write(&path, format!("#!/bin/sh\necho {version}\n")).unwrap();
            let mut opts = PublishOptions::new("app", version.parse().unwrap());
            opts.rollout.critical = critical;
            (path, opts)
        };
        let (p, o) = publish("1.1.0", false);
        publisher.publish(&key, &[p], &o).await.unwrap();
        let (p, o) = publish("1.1.1", true);
        publisher.publish(&key, &[p], &o).await.unwrap();
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("an event")
            .expect("still running");
        match event {
            AutoEvent::Applied(u) => assert_eq!(u.version(), &semver::Version::new(1, 1, 1)),
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::read(&a.exe).unwrap(), b"#!/bin/sh\necho 1.1.1\n");
        // Disabled: nothing at all.
        let off = AutoUpdate {
            enabled: false,
            ..AutoUpdate::default()
        };
        let mut none = u.auto_update(&off, Vec::new());
        assert!(none.next().await.is_none());
    }
}
