use super::*;

fn subject(name: &str) -> Subject {
    Subject {
        publisher: [9; 32],
        name: name.into(),
        channel: "stable".into(),
    }
}

/// A node of its own per connection, unless a test says otherwise.
fn who(conn: ConnId) -> [u8; 32] {
    [conn as u8; 32]
}

fn record(i: u32) -> Hash {
    Hash::of(&i.to_le_bytes())
}

/// A node following `app`, with peers 1..=n up, each following `app`.
fn node(n: usize, now: Instant) -> Gossip {
    let mut g = Gossip::default();
    g.follow_local(vec![subject("app")]);
    for c in 1..=n {
        g.peer_up(c, who(c), now);
        assert!(!g.peer_follows(c, vec![subject("app")], now).0);
    }
    g
}

#[test]
fn an_accepted_record_goes_to_the_followers_that_lack_it_once() {
    let now = Instant::now();
    let mut g = node(3, now);
    g.peer_up(4, who(4), now); // follows nothing
    g.peer_follows(4, vec![subject("other")], now);
    assert_eq!(
        g.received(1, now, record(1), &subject("app")),
        Verdict::Check
    );
    let fwd = g.checked(Some(1), &subject("app"), record(1), Checked::Newer, 5);
    // Not back to its sender, not to a peer that does not follow it.
    assert_eq!(fwd.to, vec![2, 3]);
    assert_eq!(fwd.hops, 4);
    // Peer 2 crosses it back (it accepted the record from elsewhere at
    // the same time): a duplicate, not checked again, not a strike.
    assert_eq!(
        g.received(2, now, record(1), &subject("app")),
        Verdict::Drop(Dropped::Duplicate)
    );
    // Originating a record already seen sends nothing.
    assert_eq!(g.originate(&subject("app"), record(1)), None);
    assert_eq!(g.stats().accepted, 1);
    assert_eq!(g.stats().sent, 2);
}

#[test]
fn hops_run_out() {
    let now = Instant::now();
    let mut g = node(2, now);
    assert_eq!(
        g.received(1, now, record(1), &subject("app")),
        Verdict::Check
    );
    let fwd = g.checked(Some(1), &subject("app"), record(1), Checked::Newer, 0);
    assert!(fwd.to.is_empty(), "a record with no hops left stops here");
    assert_eq!(
        g.received(1, now, record(2), &subject("app")),
        Verdict::Check
    );
    let fwd = g.checked(Some(1), &subject("app"), record(2), Checked::Newer, 1);
    assert_eq!((fwd.to, fwd.hops), (vec![2], 0));
    // A hop count over the limit (a decoder refuses it; here, clamped).
    assert_eq!(
        g.received(1, now, record(3), &subject("app")),
        Verdict::Check
    );
    let fwd = g.checked(Some(1), &subject("app"), record(3), Checked::Newer, 200);
    assert_eq!(fwd.hops, MAX_HOPS - 1);
}

#[test]
fn records_nobody_here_follows_are_dropped_unchecked() {
    let now = Instant::now();
    let mut g = node(1, now);
    assert_eq!(
        g.received(1, now, record(1), &subject("other")),
        Verdict::Drop(Dropped::Unwanted)
    );
    // From a connection that never came up as a gossip peer.
    assert_eq!(
        g.received(7, now, record(2), &subject("app")),
        Verdict::Drop(Dropped::Unwanted)
    );
    assert_eq!(g.stats().dropped(Dropped::Unwanted), 2);
}

#[test]
fn a_peer_that_sends_one_record_forever_is_banned() {
    let now = Instant::now();
    let mut g = node(1, now);
    assert_eq!(
        g.received(1, now, record(1), &subject("app")),
        Verdict::Check
    );
    let limit = Limits::default().strikes;
    let mut verdicts = Vec::new();
    for i in 1..=limit {
        // Spread out, so that the rate limit is not what stops it.
        let t = now + Duration::from_secs(u64::from(i));
        verdicts.push(g.received(1, t, record(1), &subject("app")));
    }
    assert!(
        verdicts[..verdicts.len() - 1]
            .iter()
            .all(|v| *v == Verdict::Drop(Dropped::Duplicate))
    );
    assert_eq!(verdicts.last(), Some(&Verdict::Ban(Dropped::Duplicate)));
    assert!(!g.is_peer(1));
    assert_eq!(g.stats().banned, 1);
}

#[test]
fn a_flood_is_rate_limited_then_banned_and_other_peers_still_get_through() {
    let now = Instant::now();
    let mut g = node(2, now);
    let limits = Limits::default();
    let mut checked = 0;
    let mut verdict = Verdict::Check;
    // All at one instant: the burst, then strikes until the ban.
    for i in 0..1000 {
        verdict = g.received(1, now, record(i), &subject(&format!("x{i}")));
        if let Verdict::Ban(_) = verdict {
            break;
        }
        if verdict == Verdict::Check {
            checked += 1;
        }
    }
    assert_eq!(verdict, Verdict::Ban(Dropped::PeerRate));
    assert_eq!(checked, 0, "none of it was for a subject followed here");
    assert_eq!(
        g.stats().dropped(Dropped::PeerRate),
        u64::from(limits.strikes)
    );
    // The burst, less the token its `Follow` took.
    assert_eq!(
        g.stats().dropped(Dropped::Unwanted),
        u64::from(limits.peer_burst - 1)
    );
    // Peer 2 was not slowed by peer 1's flood.
    assert_eq!(
        g.received(2, now, record(5000), &subject("app")),
        Verdict::Check
    );
}

#[test]
fn a_publisher_is_checked_at_its_rate_and_a_dropped_copy_can_come_again() {
    let now = Instant::now();
    let limits = Limits::default();
    let mut g = node(40, now);
    // Old records of one publisher replayed by many peers, each once.
    let mut checks = 0;
    for c in 1..=(limits.publisher_burst as usize + 5) {
        if g.received(c, now, record(c as u32), &subject("app")) == Verdict::Check {
            checks += 1;
            g.checked(
                Some(c),
                &subject("app"),
                record(c as u32),
                Checked::Refused,
                3,
            );
        }
    }
    assert_eq!(checks, limits.publisher_burst);
    assert_eq!(g.stats().dropped(Dropped::PublisherRate), 5);
    // The newest, dropped for the publisher's rate, gets through later
    // from another peer: it was not remembered as seen.
    let newest = record(10_000);
    assert_eq!(
        g.received(30, now, newest, &subject("app")),
        Verdict::Drop(Dropped::PublisherRate)
    );
    let later = now + limits.publisher_every;
    assert_eq!(
        g.received(31, later, newest, &subject("app")),
        Verdict::Check
    );
}

#[test]
fn refusals_strike_the_sender() {
    let now = Instant::now();
    let mut g = Gossip::new(Limits {
        strikes: 3,
        publisher_burst: 100,
        ..Limits::default()
    });
    g.follow_local(vec![subject("app")]);
    g.peer_up(1, who(1), now);
    let mut bans = Vec::new();
    for i in 0..3 {
        assert_eq!(
            g.received(1, now, record(i), &subject("app")),
            Verdict::Check
        );
        bans.push(
            g.checked(Some(1), &subject("app"), record(i), Checked::Refused, 3)
                .ban,
        );
    }
    assert_eq!(bans, [None, None, Some(1)]);
    assert_eq!(g.stats().dropped(Dropped::Refused), 3);
    // An undecodable record bans at once.
    g.peer_up(2, who(2), now);
    assert_eq!(g.invalid(2), Verdict::Ban(Dropped::Invalid));
    assert!(!g.is_peer(2));
}

#[test]
fn local_follows_change_only_when_they_differ_and_are_capped_in_a_follow() {
    let mut g = Gossip::default();
    assert!(g.follow_local(vec![subject("a"), subject("b")]));
    assert!(!g.follow_local(vec![subject("b"), subject("a")]));
    let many: Vec<Subject> = (0..100).map(|i| subject(&format!("n{i:03}"))).collect();
    assert!(g.follow_local(many));
    assert_eq!(g.local().len(), crate::wire::MAX_FOLLOWS);
    assert!(g.follows(&subject("n099")));
}

#[test]
fn a_peer_that_begins_to_follow_is_offered_what_it_lacks_once() {
    let now = Instant::now();
    let mut g = node(1, now);
    g.peer_up(2, who(2), now);
    let (ban, added) = g.peer_follows(2, vec![subject("app"), subject("b")], now);
    assert!(!ban);
    assert_eq!(added, vec![subject("app"), subject("b")]);
    assert!(g.offer(2, record(1)));
    assert!(!g.offer(2, record(1)), "offered once");
    // The same list again adds nothing.
    assert!(
        g.peer_follows(2, vec![subject("app"), subject("b")], now)
            .1
            .is_empty()
    );
    // A peer that sent a record is not offered it back.
    assert_eq!(
        g.received(1, now, record(2), &subject("app")),
        Verdict::Check
    );
    assert!(!g.offer(1, record(2)));
}

#[test]
fn a_node_with_two_connections_is_sent_a_record_once() {
    let now = Instant::now();
    let mut g = node(1, now);
    // Connections 2 and 3 both go to node 7 (a kept one, and a fetch's).
    for c in [2, 3] {
        g.peer_up(c, [7; 32], now);
        g.peer_follows(c, vec![subject("app")], now);
    }
    assert_eq!(
        g.received(1, now, record(1), &subject("app")),
        Verdict::Check
    );
    let fwd = g.checked(Some(1), &subject("app"), record(1), Checked::Newer, 3);
    assert_eq!(fwd.to, vec![2]);
    // Nor offered it on the other connection.
    assert!(!g.offer(3, record(1)));
    // Once both are gone, a new connection to it starts afresh.
    g.peer_down(2);
    g.peer_down(3);
    g.peer_up(4, [7; 32], now);
    assert!(g.offer(4, record(1)));
}

#[test]
fn a_record_the_checker_had_no_room_for_is_checked_when_it_comes_again() {
    let now = Instant::now();
    let mut g = node(2, now);
    assert_eq!(
        g.received(1, now, record(1), &subject("app")),
        Verdict::Check
    );
    g.unchecked(record(1));
    assert_eq!(
        g.received(2, now, record(1), &subject("app")),
        Verdict::Check
    );
    assert_eq!(g.stats().dropped(Dropped::Busy), 1);
}
