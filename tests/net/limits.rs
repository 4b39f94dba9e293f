//! `swarm fetch` checks its destination before it connects to anyone
//! (issue 12): an existing file without `--force`, or a place inside the
//! store, is refused at once, not after the whole download.

use crate::common::*;
use crate::{failure, fetch_run, tempdir};

/// Nothing listens there: a fetch that got as far as connecting would fail
/// for that instead (after the connect timeout).
const NOBODY: &str = "127.0.0.1:1";

/// Regression: the destination was checked only after the download, so
/// a long fetch ended in "already exists", and `-o STORE/...` wrote into
/// the store.
#[test]
fn fetch_refuses_a_bad_destination_before_connecting() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    // Make the store exist, as it does after any use.
    swarm_ok(&store, args!["gc"]);
    let root = blob_hash(b"a root nobody serves");

    let taken = tmp.path().join("taken.bin");
    write_file(&taken, b"keep me", 0o644);
    let run = fetch_run(&store, &root, &[NOBODY], args!["-o", taken], false);
    let msg = failure(&run);
    assert!(msg.contains(&taken.display().to_string()), "{msg}");
    assert!(msg.contains("already exists"), "{msg}");
    assert!(!msg.contains(NOBODY), "it connected first: {msg}");
    assert_eq!(std::fs::read(&taken).expect("kept"), b"keep me");

    for inside in [store.join("swarm.redb"), store.join("out")] {
        let run = fetch_run(
            &store,
            &root,
            &[NOBODY],
            args!["-o", inside, "--force"],
            false,
        );
        let msg = failure(&run);
        assert!(msg.contains("inside the store"), "{msg}");
        assert!(!msg.contains(NOBODY), "it connected first: {msg}");
    }
    assert!(!store.join("out").exists());
    assert_check_ok(&store);
}
