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
