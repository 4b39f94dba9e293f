use super::*;
use crate::net::SecretKey;

fn peer(n: u8, addrs: &[&str]) -> TicketPeer {
    TicketPeer {
        id: SecretKey::from_bytes(&[n; 32]).node_id(),
        addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn spec_block(name: &str) -> String {
    let spec = include_str!("../../../wire-spec/ticket.md");
    let open = format!("<!-- {name} -->");
    let body = &spec[spec.find(&open).unwrap() + open.len()..];
    let a = body.find("```").unwrap() + 3;
    let b = a + body[a..].find("```").unwrap();
    body[a..b].split_whitespace().collect()
}

use crate::testutil::spec_release;

fn root_ticket() -> Ticket {
    Ticket {
        target: TicketTarget::Root(Hash::of(b"root")),
        peers: vec![peer(3, &["192.0.2.7:7411", "[2001:db8::7]:7411"])],
    }
}

/// The vectors of wire-spec/ticket.md §4.
#[test]
fn spec_vectors() {
    let t = root_ticket();
    assert_eq!(hex(&t.to_bytes()), spec_block("ticket-vector-root-bytes"));
    assert_eq!(t.to_string(), spec_block("ticket-vector-root"));
    assert_eq!(
        spec_block("ticket-vector-root").parse::<Ticket>().unwrap(),
        t
    );
    let r = Ticket {
        target: TicketTarget::Release(Box::new(spec_release())),
        peers: vec![peer(3, &["192.0.2.7:7411"])],
    };
    assert_eq!(r.to_string(), spec_block("ticket-vector-release"));
    assert_eq!(
        spec_block("ticket-vector-release")
            .parse::<Ticket>()
            .unwrap(),
        r
    );
    assert_eq!(r.root(), Hash::of(b"root"));
}

#[test]
fn every_single_character_typo_is_a_typo_never_a_forgery() {
    for t in [
        root_ticket().to_string(),
        Ticket {
            target: TicketTarget::Release(Box::new(spec_release())),
            peers: vec![],
        }
        .to_string(),
    ] {
        let body = TICKET_PREFIX.len();
        for i in body..t.len() {
            for c in [b'a', b'q', b'7', b'2'] {
                let mut b = t.clone().into_bytes();
                if b[i] == c {
                    continue;
                }
                b[i] = c;
                let e = String::from_utf8(b).unwrap().parse::<Ticket>().unwrap_err();
                assert_eq!(e, TicketError::Typo, "position {i} as {}", c as char);
            }
            // A character lost, or one added.
            let lost = format!("{}{}", &t[..i], &t[i + 1..]);
            assert!(
                matches!(lost.parse::<Ticket>(), Err(TicketError::Typo)),
                "lost at {i}"
            );
            let added = format!("{}a{}", &t[..i], &t[i..]);
            assert!(
                matches!(added.parse::<Ticket>(), Err(TicketError::Typo)),
                "added at {i}"
            );
        }
        // Upper case and surrounding whitespace are read as the same ticket.
        let upper = format!("  {}\n", t.to_uppercase());
        assert!(upper.parse::<Ticket>().is_ok());
    }
}

#[test]
fn garbage_and_truncated_tickets_get_their_own_errors() {
    let t = root_ticket().to_string();
    assert_eq!("".parse::<Ticket>(), Err(TicketError::NotATicket));
    assert_eq!("swr1abc".parse::<Ticket>(), Err(TicketError::NotATicket));
    assert_eq!("swt1".parse::<Ticket>(), Err(TicketError::Typo));
    assert_eq!(
        format!("{}0{}", &t[..10], &t[11..]).parse::<Ticket>(),
        Err(TicketError::BadCharacter)
    );
    assert_eq!(
        format!("{t}!").parse::<Ticket>(),
        Err(TicketError::BadCharacter)
    );
    for cut in [5, 20, t.len() / 2, t.len() - 1] {
        assert!(
            matches!(t[..cut].parse::<Ticket>(), Err(TicketError::Typo)),
            "cut at {cut}"
        );
    }
    let long = format!("swt1{}", "a".repeat(MAX_TICKET));
    assert!(matches!(
        long.parse::<Ticket>(),
        Err(TicketError::TooLong(_))
    ));
}

/// A body with a good checksum made around `body`.
fn sealed(mut body: Vec<u8>) -> Vec<u8> {
    let sum = checksum(&body);
    body.extend_from_slice(&sum);
    body
}

#[test]
fn well_sealed_nonsense_is_refused_by_what_is_wrong() {
    let root = Hash::of(b"root");
    let mut good = vec![KIND_ROOT];
    good.extend_from_slice(root.as_bytes());
    good.push(0);
    assert_eq!(
        Ticket::from_bytes(&sealed(good.clone())).unwrap().target,
        TicketTarget::Root(root)
    );
    let mut newer = good.clone();
    newer[0] = 9;
    assert_eq!(
        Ticket::from_bytes(&sealed(newer)),
        Err(TicketError::UnknownKind(9))
    );
    let mut extra = good.clone();
    extra.push(0);
    assert!(matches!(
        Ticket::from_bytes(&sealed(extra)),
        Err(TicketError::Malformed(_))
    ));
    let mut many = good.clone();
    *many.last_mut().unwrap() = 9;
    assert!(matches!(
        Ticket::from_bytes(&sealed(many)),
        Err(TicketError::Malformed(_))
    ));
    // A peer whose id is not a public key, and one with no address.
    let mut bad_id = good.clone();
    *bad_id.last_mut().unwrap() = 1;
    let mut not_a_key = [0u8; 32];
    not_a_key[0] = 2;
    bad_id.extend_from_slice(&not_a_key);
    bad_id.extend_from_slice(&[1, 4, 192, 0, 2, 7, 0x1c, 0xf3]);
    assert!(matches!(
        Ticket::from_bytes(&sealed(bad_id)),
        Err(TicketError::Malformed(_))
    ));
    let mut no_addr = good.clone();
    *no_addr.last_mut().unwrap() = 1;
    no_addr.extend_from_slice(SecretKey::from_bytes(&[3; 32]).node_id().as_bytes());
    no_addr.push(0);
    assert!(matches!(
        Ticket::from_bytes(&sealed(no_addr)),
        Err(TicketError::Malformed(_))
    ));
    // A release whose signature fails, sealed with a good checksum: that
    // is an altered release, and said so.
    let mut b = spec_release().to_bytes();
    let last = b.len() - 1;
    b[last] ^= 1;
    let mut forged = vec![KIND_RELEASE];
    forged.extend_from_slice(&(b.len() as u16).to_be_bytes());
    forged.extend_from_slice(&b);
    forged.push(0);
    let e = Ticket::from_bytes(&sealed(forged)).unwrap_err();
    assert_eq!(e, TicketError::Forged);
    assert!(e.to_string().contains("forged"), "{e}");
}

#[test]
fn peers_beyond_the_limits_are_left_out_and_the_rest_round_trip() {
    let addrs: Vec<String> = (1..=12).map(|p| format!("192.0.2.{p}:7411")).collect();
    let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let t = Ticket {
        target: TicketTarget::Root(Hash::of(b"r")),
        peers: (1..=10).map(|n| peer(n, &refs)).collect(),
    };
    let back: Ticket = t.to_string().parse().unwrap();
    assert_eq!(back.peers.len(), MAX_PEERS);
    assert!(back.peers.iter().all(|p| p.addrs.len() == MAX_ADDRS));
    assert_eq!(back.peer_addrs().len(), MAX_PEERS * MAX_ADDRS);
    assert_eq!(back.peers[0].addrs[..], t.peers[0].addrs[..MAX_ADDRS]);
    assert!(t.to_string().len() <= MAX_TICKET);
    // The limit wire-spec/ticket.md §1 states.
    assert_eq!(MAX_TICKET, 56_416);
}
