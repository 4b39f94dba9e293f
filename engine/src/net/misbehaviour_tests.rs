//! One hostile peer per way of breaking the protocol, over real QUIC: each
//! is reported with its own `Misbehaviour` variant and dropped.

use std::time::Duration;

use super::stream;
use super::tests::{fetch_opts, hostile, one_file, quick, read_get};
use super::{Misbehaviour, RequestError};
use crate::content::Hash;
use crate::node::{FetchError, Node};
use crate::store::Store;
use crate::wire::{Found, Have, Message, WireRanges};

/// What a hostile peer does with each `Get` for the blob of `size` bytes,
/// given the honest encoding of what was asked.
#[derive(Clone, Copy, Debug)]
enum Lie {
    WrongSize,
    AnswerWithHave,
    Truncate,
    FlipAByte,
    SendTooMuch,
    Garbage,
}

async fn fetch_from_liar(lie: Lie) -> RequestError {
    let n = 600_000;
    let (src, _, blob, root, _d) = one_file(n);
    let size = n as u64;
    let peer = hostile(move |mut send, mut recv| {
        let src = src.clone();
        async move {
            let Some(get) = read_get(&mut send, &mut recv, size).await else {
                return;
            };
            let mut enc = Vec::new();
            src.encode_ranges(&get.hash, &get.ranges.to_chunk_ranges(), &mut enc)
                .unwrap();
            let found = Message::Found(Found { size });
            match lie {
                Lie::WrongSize => {
                    let wrong = Message::Found(Found { size: size + 1 });
                    let _ = stream::write_message(&mut send, &wrong).await;
                }
                Lie::AnswerWithHave => {
                    let have = Message::Have(Have {
                        hash: get.hash,
                        size,
                        groups: WireRanges::from_boundaries(vec![0]),
                    });
                    let _ = stream::write_message(&mut send, &have).await;
                }
                Lie::Truncate => {
                    let _ = stream::write_message(&mut send, &found).await;
                    let _ = send.write_all(&enc[..enc.len() / 3]).await;
                }
                Lie::FlipAByte => {
                    let last = enc.len() - 10;
                    enc[last] ^= 1;
                    let _ = stream::write_message(&mut send, &found).await;
                    let _ = send.write_all(&enc).await;
                }
                Lie::SendTooMuch => {
                    let _ = stream::write_message(&mut send, &found).await;
                    let _ = send.write_all(&enc).await;
                    let _ = send.write_all(&vec![0u8; 2 << 20]).await;
                }
                Lie::Garbage => {
                    let _ = send.write_all(&[0xff; 64]).await;
                }
            }
            let _ = send.finish();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    // The fetcher holds the manifest, so only the blob is asked of the liar.
    let store = Store::memory().unwrap();
    let (src2, _, blob2, _, _d2) = one_file(n);
    assert_eq!(blob, blob2);
    store
        .put_blob(&src2.read_blob(&root, 1 << 20).unwrap().unwrap())
        .unwrap();
    let fetcher = Node::spawn(store, quick()).await.unwrap();
    let err = fetcher
        .fetch(root, fetch_opts(vec![peer]))
        .await
        .unwrap_err();
    let FetchError::PeersFailed(mut failures) = err else {
        panic!("{lie:?}: {err}");
    };
    assert_eq!(failures.len(), 1, "{lie:?}: {failures:?}");
    failures.remove(0).error
}

fn hash_of(m: &Misbehaviour) -> Option<Hash> {
    match m {
        Misbehaviour::WrongSize { hash, .. }
        | Misbehaviour::BadData { hash, .. }
        | Misbehaviour::Truncated { hash, .. }
        | Misbehaviour::TooMuch { hash, .. } => Some(*hash),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_way_of_breaking_the_protocol_has_its_own_variant() {
    for lie in [
        Lie::WrongSize,
        Lie::AnswerWithHave,
        Lie::Truncate,
        Lie::FlipAByte,
        Lie::SendTooMuch,
        Lie::Garbage,
    ] {
        let err = fetch_from_liar(lie).await;
        assert!(err.is_misbehaviour(), "{lie:?}: {err}");
        let RequestError::Misbehaved(m) = &err else {
            unreachable!()
        };
        let ok = match lie {
            Lie::WrongSize => {
                matches!(m, Misbehaviour::WrongSize { claimed, actual, .. } if *claimed == *actual + 1)
            }
            Lie::AnswerWithHave => {
                matches!(
                    m,
                    Misbehaviour::Unexpected {
                        request: "Get",
                        got: "Have"
                    }
                )
            }
            Lie::Truncate => matches!(m, Misbehaviour::Truncated { .. }),
            Lie::FlipAByte => matches!(m, Misbehaviour::BadData { .. }),
            Lie::SendTooMuch => matches!(m, Misbehaviour::TooMuch { .. }),
            Lie::Garbage => matches!(m, Misbehaviour::Malformed(_)),
        };
        assert!(ok, "{lie:?} was reported as {m:?}");
        if let Some(h) = hash_of(m) {
            assert_ne!(h, Hash::of(b""), "{lie:?}: names the blob");
        }
    }
}

#[test]
fn our_own_faults_are_not_the_peers() {
    let local: RequestError = super::LocalFault::TooFragmented.into();
    assert!(!local.is_misbehaviour());
    let stream: RequestError = super::LocalFault::Stream("closed here".into()).into();
    assert!(!stream.is_misbehaviour());
}
