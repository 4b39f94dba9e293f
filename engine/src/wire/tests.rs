use proptest::prelude::*;

use super::*;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn h() -> Hash {
    Hash::of(b"abc")
}

/// The vectors of wire-spec/wire.md §5, by name.
fn vectors() -> Vec<(&'static str, Message)> {
    vec![
        (
            "hello",
            Message::Hello(Hello {
                min_version: 1,
                max_version: 1,
                agent: "swarm/0.1.0".into(),
            }),
        ),
        (
            "have",
            Message::Have(Have {
                hash: h(),
                size: 100_000,
                groups: WireRanges::from_boundaries(vec![0, 3, 5]),
            }),
        ),
        (
            "hello-v2",
            Message::Hello(Hello {
                min_version: 1,
                max_version: 2,
                agent: "swarm/0.1.0".into(),
            }),
        ),
        (
            "pushed",
            Message::Peers(Peers {
                hash: h(),
                addrs: vec!["10.0.0.7:7411".parse().unwrap()],
            }),
        ),
        (
            "get",
            Message::Get(Get {
                hash: h(),
                ranges: WireRanges::from_boundaries(vec![0, 16, 300]),
            }),
        ),
        ("found", Message::Found(Found { size: 100_000 })),
        (
            "error",
            Message::Error(ErrorMsg {
                code: ErrorCode::NotFound,
                text: "no such blob".into(),
            }),
        ),
        ("ask", Message::Ask(Ask { hash: h() })),
        (
            "hello-v3",
            Message::Hello(Hello {
                min_version: 1,
                max_version: 3,
                agent: "swarm/0.1.0".into(),
            }),
        ),
        (
            "follow",
            Message::Follow(Follow {
                subjects: vec![Subject {
                    publisher: [7; 32],
                    name: "app".into(),
                    channel: "stable".into(),
                }],
            }),
        ),
        (
            "release",
            Message::Release(ReleaseMsg {
                hops: 12,
                record: release_vector(),
            }),
        ),
        ("askpeers", Message::AskPeers(Ask { hash: h() })),
        (
            "peers",
            Message::Peers(Peers {
                hash: h(),
                addrs: vec![
                    "127.0.0.1:7411".parse().unwrap(),
                    "[::1]:443".parse().unwrap(),
                ],
            }),
        ),
    ]
}

/// The record of wire-spec/release.md §6, as its binary form.
fn release_vector() -> Vec<u8> {
    crate::testutil::spec_release().to_bytes()
}

#[test]
fn gossip_messages_are_bounded() {
    let subject = |i: usize| Subject {
        publisher: [1; 32],
        name: format!("n{i}"),
        channel: "stable".into(),
    };
    let follow = |n: usize| {
        Message::Follow(Follow {
            subjects: (0..n).map(subject).collect(),
        })
    };
    assert!(Message::decode_frame(&follow(MAX_FOLLOWS).encode()).is_ok());
    assert!(matches!(
        Message::decode_frame(&follow(MAX_FOLLOWS + 1).encode()),
        Err(WireError::TooMany {
            what: "follow subjects",
            ..
        })
    ));
    let twice = Message::Follow(Follow {
        subjects: vec![subject(1), subject(1)],
    });
    assert!(Message::decode_frame(&twice.encode()).is_err());
    let long = Message::Follow(Follow {
        subjects: vec![Subject {
            name: "n".repeat(MAX_SUBJECT_NAME + 1),
            ..subject(0)
        }],
    });
    assert!(Message::decode_frame(&long.encode()).is_err());
    let release = |hops, record| Message::Release(ReleaseMsg { hops, record });
    assert!(Message::decode_frame(&release(MAX_HOPS, vec![1]).encode()).is_ok());
    assert!(Message::decode_frame(&release(MAX_HOPS + 1, vec![1]).encode()).is_err());
    assert!(Message::decode_frame(&release(1, Vec::new()).encode()).is_err());
    // A record as large as a message allows: refused by the length prefix.
    let huge = release(1, vec![1; MAX_MESSAGE]).encode();
    assert!(matches!(
        Message::decode_frame(&huge),
        Err(WireError::TooLarge(_))
    ));
}

#[test]
fn spec_vectors() {
    let spec = include_str!("../../../wire-spec/wire.md");
    for (name, msg) in vectors() {
        let open = format!("<!-- vector-{name} -->");
        let start = spec
            .find(&open)
            .unwrap_or_else(|| panic!("vector {name} missing from wire.md"))
            + open.len();
        let body = &spec[start..];
        let open_fence = body.find("```").unwrap() + 3;
        let close_fence = open_fence + body[open_fence..].find("```").unwrap();
        let want: String = body[open_fence..close_fence]
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .collect();
        let got = msg.encode();
        assert_eq!(hex(&got), want, "vector {name}");
        assert_eq!(
            Message::decode_frame(&got).unwrap(),
            Some((msg, got.len())),
            "vector {name}"
        );
    }
}

#[test]
fn limits_are_enforced_before_allocation() {
    // A length prefix over the limit is refused from the prefix alone.
    assert_eq!(
        Message::decode_frame(&[0x81, 0x80, 0x02]),
        Err(WireError::TooLarge(0x8001))
    );
    assert_eq!(
        frame_len(&[0xff, 0xff, 0xff, 0xff, 0x0f])
            .unwrap_err()
            .code(),
        ErrorCode::TooLarge
    );
    assert_eq!(
        Message::decode_frame(&[0x80, 0x00]),
        Err(WireError::BadLength)
    );
    // Incomplete input asks for more.
    assert_eq!(Message::decode_frame(&[]), Ok(None));
    assert_eq!(Message::decode_frame(&[0x05, 0x03]), Ok(None));
    // Too many ranges.
    let get = Message::Get(Get {
        hash: h(),
        ranges: WireRanges::from_boundaries((0..600).collect()),
    });
    let err = Message::decode_frame(&get.encode()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooManyRanges);
    // Unsorted and empty ranges.
    for b in [vec![5, 5], vec![6, 2], vec![]] {
        let get = Message::Get(Get {
            hash: h(),
            ranges: WireRanges::from_boundaries(b),
        });
        assert_eq!(
            Message::decode_frame(&get.encode()).unwrap_err().code(),
            ErrorCode::ProtocolViolation
        );
    }
    // Unknown message type.
    assert!(matches!(
        Message::decode_frame(&[0x01, 0x09]),
        Err(WireError::Malformed(_))
    ));
    // Trailing bytes inside a frame.
    let mut f = Message::Found(Found { size: 1 }).encode();
    f[0] += 1;
    f.push(0);
    assert_eq!(Message::decode_frame(&f), Err(WireError::Trailing(1)));
    // Over-long text.
    let e = Message::Error(ErrorMsg {
        code: ErrorCode::Internal,
        text: "x".repeat(300),
    });
    assert!(matches!(
        Message::decode_frame(&e.encode()),
        Err(WireError::TextTooLong { .. })
    ));
}

#[test]
fn unknown_error_codes_survive() {
    let e = Message::Error(ErrorMsg {
        code: ErrorCode::Unknown(999),
        text: String::new(),
    });
    let (d, _) = Message::decode_frame(&e.encode()).unwrap().unwrap();
    assert_eq!(d, e);
    for c in 0..12 {
        assert_eq!(ErrorCode::from_u16(c).to_u16(), c);
    }
}

#[test]
fn ranges_map_to_chunk_ranges_and_back() {
    let w = WireRanges::from_boundaries(vec![0, 16, 32, 48, 300]);
    let r = w.to_chunk_ranges();
    assert_eq!(WireRanges::from_chunk_ranges(&r), w);
}

fn ranges(max: usize) -> impl Strategy<Value = WireRanges> {
    prop::collection::btree_set(any::<u64>(), 1..max)
        .prop_map(|s| WireRanges::from_boundaries(s.into_iter().collect()))
}

fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash::from_bytes)
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), "[ -~]{0,64}").prop_map(|(a, b, agent)| Message::Hello(
            Hello {
                min_version: a,
                max_version: b,
                agent
            }
        )),
        (hash(), any::<u64>(), ranges(40)).prop_map(|(hash, size, groups)| Message::Have(Have {
            hash,
            size,
            groups
        })),
        (hash(), ranges(40)).prop_map(|(hash, ranges)| Message::Get(Get { hash, ranges })),
        any::<u64>().prop_map(|size| Message::Found(Found { size })),
        (any::<u16>(), "[ -~]{0,200}").prop_map(|(c, text)| Message::Error(ErrorMsg {
            code: ErrorCode::from_u16(c),
            text
        })),
        hash().prop_map(|hash| Message::Ask(Ask { hash })),
        hash().prop_map(|hash| Message::AskPeers(Ask { hash })),
        (
            hash(),
            // The wire carries IP and port; IPv6 scope ids and flow labels
            // are local to a host and not sent (wire.md §3.8).
            prop::collection::vec(
                any::<std::net::SocketAddr>()
                    .prop_map(|a| std::net::SocketAddr::new(a.ip(), a.port())),
                0..20,
            ),
        )
            .prop_map(|(hash, addrs)| Message::Peers(Peers { hash, addrs })),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(msg in message()) {
        let bytes = msg.encode();
        prop_assert_eq!(Message::decode_frame(&bytes).unwrap(), Some((msg, bytes.len())));
    }

    #[test]
    fn concatenated_frames_split_exactly(a in message(), b in message()) {
        let mut bytes = a.encode();
        let first = bytes.len();
        bytes.extend(b.encode());
        let (m, n) = Message::decode_frame(&bytes).unwrap().unwrap();
        prop_assert_eq!((m, n), (a, first));
        prop_assert_eq!(Message::decode_frame(&bytes[n..]).unwrap().unwrap().0, b);
        // Every strict prefix of a frame is "need more", never an error or a message.
        for cut in 0..first {
            prop_assert_eq!(Message::decode_frame(&bytes[..cut]), Ok(None));
        }
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Message::decode_frame(&bytes);
        let _ = Message::decode_body(&bytes);
    }
}
