//! Release gossip as a hostile peer could drive it: arbitrary control
//! messages from a few connections, decoded as the node decodes them and
//! fed to the gossip policy. Nothing may panic; no record is checked
//! twice; a banned connection gets nothing checked again.

#![no_main]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use swarm_engine::release::{SecretKey, SignedRelease};
use swarm_engine::release::gossip::{Checked, Gossip, Verdict};
use swarm_engine::wire::{Message, Subject};

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut g = Gossip::default();
    let followed = Subject {
        // The publisher of release.md §5's vector, the corpus seed.
        publisher: *SecretKey::from_seed(&[7; 32]).public().as_bytes(),
        name: "myapp".into(),
        channel: "stable".into(),
    };
    g.follow_local(vec![followed]);
    for c in 0..4 {
        // Connections 0 and 1 go to one node, as a kept and a fetch one may.
        g.peer_up(c, [(c / 2) as u8; 32], start);
    }
    let mut checked = HashSet::new();
    let mut banned = HashSet::new();
    let mut rest = data;
    let mut t = Duration::ZERO;
    // Each step: a byte for the connection and the time step, then a frame.
    while let Some((&op, tail)) = rest.split_first() {
        let conn = usize::from(op & 3);
        t += Duration::from_millis(u64::from(op >> 2) * 16);
        let now = start + t;
        let Ok(Some((msg, used))) = Message::decode_frame(tail) else {
            break;
        };
        rest = &tail[used..];
        match msg {
            Message::Follow(f) => {
                let (ban, _) = g.peer_follows(conn, f.subjects, now);
                if ban {
                    banned.insert(conn);
                }
            }
            Message::Release(r) => {
                let verdict = match SignedRelease::from_bytes(&r.record) {
                    Ok(s) => {
                        let r2 = s.release();
                        let subject = Subject {
                            publisher: *r2.publisher.as_bytes(),
                            name: r2.name.clone(),
                            channel: r2.channel.clone(),
                        };
                        let hash = s.record_hash();
                        let v = g.received(conn, now, hash, &subject);
                        if v == Verdict::Check {
                            assert!(!banned.contains(&conn), "checked from a banned peer");
                            assert!(checked.insert(hash), "a record checked twice");
                            let outcome = if op & 4 == 0 { Checked::Newer } else { Checked::Refused };
                            let fwd = g.checked(Some(conn), &subject, hash, outcome, r.hops);
                            assert!(!fwd.to.contains(&conn), "sent back to its sender");
                            if fwd.ban.is_some() {
                                banned.insert(conn);
                            }
                        }
                        v
                    }
                    Err(_) => g.invalid(conn),
                };
                if let Verdict::Ban(_) = verdict {
                    banned.insert(conn);
                }
            }
            _ => {}
        }
    }
});
