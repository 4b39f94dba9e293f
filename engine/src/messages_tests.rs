//! The engine's error messages are shown by programs that embed it, so they
//! never name the `swarm` binary's flags or commands (the CLI adds those
//! hints itself).

use std::path::PathBuf;

use crate::Hash;
use crate::node::FetchError;
use crate::release::{PolicyError, ReleaseError, SecretKey};
use crate::store::{ExportError, OpenError, ReadError, Store, StoreError};

#[test]
fn no_engine_error_names_a_cli_flag_or_command() {
    let hash = Hash::of(b"blob");
    let path = PathBuf::from("/srv/out/app.bin");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let _held = Store::open(dir.path()).expect("a new store opens");
    let locked = Store::open(dir.path()).expect_err("a store opens once");
    let messages = [
        FetchError::NoPeers.to_string(),
        FetchError::NoneFound.to_string(),
        ExportError::Exists(path.clone()).to_string(),
        ExportError::Corrupt {
            path: path.clone(),
            hash,
        }
        .to_string(),
        ExportError::Missing(hash).to_string(),
        ExportError::Read(ReadError::Corrupt(hash)).to_string(),
        locked.to_string(),
        OpenError::NotAStore {
            path: "/srv".into(),
            found: "notes.txt".into(),
        }
        .to_string(),
        StoreError::BadRecord(hash).to_string(),
        ReadError::Corrupt(hash).to_string(),
        ReadError::Incomplete(hash).to_string(),
        ReleaseError::BadKey("hello".into()).to_string(),
        ReleaseError::SecretGivenAsPublic.to_string(),
        ReleaseError::BadSecretKey.to_string(),
        PolicyError::Untrusted {
            publisher: SecretKey::from_seed(&[1; 32]).public(),
            name: "app".into(),
        }
        .to_string(),
    ];
    assert!(matches!(locked, OpenError::Locked(_)), "{locked}");
    for msg in messages {
        assert!(!msg.contains("--"), "names a flag: {msg}");
        assert!(!msg.contains("`swarm "), "names a command: {msg}");
    }
}
