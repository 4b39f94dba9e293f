//! Simulation tests of the partial mesh (connection limits, lookups, peer
//! exchange, churn, late joiners) and of super-seeding, at a few hundred
//! peers with small blobs: each runs in well under a second in a debug
//! build. Figures are printed (`--nocapture`); assertions are on virtual
//! time and counts only.

use std::collections::BTreeSet;
use std::time::Duration;

use super::sim::{Leave, MIB, Mesh, MeshConfig, NodeSpec, Outcome, Report, Sim, SimConfig, mix};
use super::{BlobSpec, Config, SuperSeedConfig, Swarm};
use crate::store::GroupSet;

/// One seed (node 0) and `peers` leechers with uploads of 1-8 MiB/s (one
/// in twenty at 40), downloads of 10-40 MiB/s, round trips of 20-300 ms
/// and up to 1 % loss, all joining in the first second.
fn fleet(seed: u64, peers: usize) -> Vec<NodeSpec> {
    let mut rng = seed;
    let mut next = move |n: u64| {
        rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(rng) % n
    };
    let mut nodes = vec![NodeSpec::seed(40 * MIB).latency_ms(10)];
    for _ in 0..peers {
        let up = if next(20) == 0 {
            40 * MIB
        } else {
            (1 + next(8)) * MIB
        };
        let spec = NodeSpec::leecher(up)
            .down((10 + next(30)) * MIB)
            .latency_ms(5 + next(70))
            .loss(next(10) as f64 / 1000.0)
            .join_at(Duration::from_millis(next(1000)));
        nodes.push(spec);
    }
    nodes
}

fn partial(seed: u64, mesh: MeshConfig) -> SimConfig {
    let mut cfg = SimConfig::new(vec![8 * MIB], seed);
    cfg.mesh = Mesh::Partial(mesh);
    cfg.streaming = true;
    cfg
}

fn run(cfg: SimConfig, nodes: Vec<NodeSpec>) -> Report {
    let r = Sim::new(cfg, nodes).run();
    assert_eq!(r.violations(), Vec::<String>::new());
    for (i, n) in r.leechers() {
        let distinct: BTreeSet<u32> = n.order.iter().copied().collect();
        assert_eq!(distinct.len(), n.order.len(), "node {i}: a piece twice");
        assert_eq!(n.requests_to_banned, 0);
    }
    r
}

fn summary(name: &str, r: &Report) {
    let mut times: Vec<f64> = r
        .leechers()
        .filter_map(|(_, n)| Some((n.completed? - n.joined?).as_secs_f64()))
        .collect();
    times.sort_by(f64::total_cmp);
    let at = |q: usize| times.get((times.len() * q / 100).min(times.len().saturating_sub(1)));
    eprintln!(
        "{name}: {:?} at {:.2}s, {} events; {} completed, p50 {:.2?} p100 {:.2?} s; seed sent \
         {:.2} copies; duplicates {:.2}%",
        r.outcome,
        r.end.as_secs_f64(),
        r.events,
        times.len(),
        at(50),
        times.last(),
        r.seed_uploaded() as f64 / r.total_bytes as f64,
        100.0 * r.duplicate_bytes() as f64 / r.received_bytes().max(1) as f64,
    );
}

#[test]
fn everyone_completes_within_the_connection_limits() {
    let mesh = MeshConfig {
        max_out: 4,
        max_conns: 12,
        ..MeshConfig::default()
    };
    let r = run(partial(1, mesh), fleet(1, 150));
    summary("partial mesh, 4 out, 12 in all", &r);
    assert_eq!(r.outcome, Outcome::Complete);
    for (i, n) in r.nodes.iter().enumerate() {
        assert!(n.max_peers <= 12, "node {i}: {} connections", n.max_peers);
        assert!(n.max_out <= 4, "node {i}: {} dialed", n.max_out);
        if !n.seed {
            assert!(n.completed.is_some(), "node {i}");
            // It filled its dials.
            assert_eq!(n.max_out, 4, "node {i}");
        }
    }
    // A partial mesh: the seed met a few of the 150, the rest got the
    // data from each other.
    assert!(r.nodes[0].max_peers <= 12);
    let direct: u32 = r
        .leechers()
        .filter(|(_, n)| n.received.contains_key(&0))
        .count() as u32;
    eprintln!("  {direct} of 150 received from the seed directly");
    assert!(direct < 75, "{direct}");
}

#[test]
fn a_late_joiner_finds_peers_through_lookups_and_exchange() {
    let mut nodes = fleet(2, 100);
    let late = nodes.len() as u32;
    nodes.push(
        NodeSpec::leecher(4 * MIB)
            .down(20 * MIB)
            .join_at(Duration::from_secs(5)),
    );
    // Lookups of 3 peers, the next one 5 s later: the joiner's other
    // connections can only come from exchange.
    let mesh = MeshConfig {
        lookup_peers: 3,
        lookup_backoff: Duration::from_secs(5),
        ..MeshConfig::default()
    };
    let r = run(partial(2, mesh), nodes);
    summary("a late joiner", &r);
    assert_eq!(r.outcome, Outcome::Complete);
    let n = &r.nodes[late as usize];
    let joined = n.joined.expect("joined");
    let done = n.completed.expect("the late joiner completed");
    eprintln!(
        "  late joiner: done {:.2}s after joining; {} lookups, {} connections from lookups, {} \
         from exchange",
        (done - joined).as_secs_f64(),
        n.lookups,
        n.by_lookup,
        n.by_pex
    );
    assert!(n.lookups >= 1);
    assert!(n.by_lookup >= 1, "no connection from a lookup");
    assert!(n.by_pex >= 1, "no connection from an exchange");
    assert_eq!(n.max_out, 8);
}

#[test]
fn churn_with_a_seed_present_completes() {
    let mut nodes = fleet(3, 150);
    let mut rng = 3u64;
    let mut leaving = BTreeSet::new();
    for (i, spec) in nodes.iter_mut().enumerate().skip(1) {
        rng = mix(rng.wrapping_add(i as u64));
        // A third leave at some time in the first 4 s, completed or not.
        if rng.is_multiple_of(3) {
            spec.leave = Some(Leave::At(Duration::from_millis(500 + rng % 3500)));
            leaving.insert(i as u32);
        }
    }
    let r = run(partial(3, MeshConfig::default()), nodes);
    summary("churn, a third leave", &r);
    assert_eq!(r.outcome, Outcome::Complete);
    let (mut stayed, mut dials) = (0, 0);
    for (i, n) in r.leechers() {
        if leaving.contains(&i) {
            continue;
        }
        assert!(
            n.completed.is_some(),
            "node {i} stayed and did not complete"
        );
        stayed += 1;
        dials += n.by_lookup + n.by_pex;
    }
    let left_early = r
        .leechers()
        .filter(|(i, n)| leaving.contains(i) && n.completed.is_none())
        .count();
    eprintln!("  {left_early} left before completing; {dials} dials by {stayed} that stayed");
    assert!(left_early > 0);
    // Slots that leavers freed were filled again.
    assert!(dials > 8 * stayed, "{dials} dials");
}

#[test]
fn super_seeding_sends_about_one_copy() {
    let with_mode = |super_seed: Option<SuperSeedConfig>| {
        let mut cfg = partial(4, MeshConfig::default());
        cfg.super_seed = super_seed;
        let r = run(cfg, fleet(4, 150));
        assert_eq!(r.outcome, Outcome::Complete);
        r
    };
    let plain = with_mode(None);
    let superseed = with_mode(Some(SuperSeedConfig::default()));
    let auto = with_mode(Some(SuperSeedConfig {
        auto: true,
        ..SuperSeedConfig::default()
    }));
    summary("an ordinary seed", &plain);
    summary("a super-seed", &superseed);
    summary("a super-seed, auto", &auto);
    let copies = |r: &Report| r.seed_uploaded() as f64 / r.total_bytes as f64;
    assert!(copies(&superseed) <= 1.1, "{:.2}", copies(&superseed));
    assert!(copies(&superseed) >= 1.0);
    // The fast seed, announcing everything, is asked for far more.
    assert!(copies(&plain) >= 2.0, "{:.2}", copies(&plain));
    // Auto super-seeds until every piece is out, then serves as usual.
    assert!(copies(&auto) >= copies(&superseed));
}

#[test]
fn same_seed_same_digest_in_a_partial_mesh() {
    let go = |seed: u64| {
        let mut cfg = partial(seed, MeshConfig::default());
        cfg.super_seed = Some(SuperSeedConfig::default());
        let mut nodes = fleet(seed, 200);
        nodes[7].leave = Some(Leave::At(Duration::from_secs(1)));
        nodes[9].leave = Some(Leave::AfterDone(Duration::from_millis(100)));
        run(cfg, nodes)
    };
    let (a, b, c) = (go(5), go(5), go(6));
    eprintln!(
        "digests {:016x} {:016x} {:016x}; {} events",
        a.digest, b.digest, c.digest, a.events
    );
    assert_eq!(a.outcome, Outcome::Complete);
    assert_eq!((a.digest, a.events), (b.digest, b.events));
    for ((_, x), (_, y)) in a.leechers().zip(b.leechers()) {
        assert_eq!(x.order, y.order);
        assert_eq!(x.completed, y.completed);
    }
    assert_ne!(a.digest, c.digest);
}

#[test]
fn the_only_holder_of_a_piece_is_asked_for_it_first() {
    // Peer 1 announced piece 5 and nobody else has it; what else it has is
    // unknown (its `Have` was cut short), so any other piece may be asked
    // of it on the chance. The piece only it holds comes first.
    let blobs = [BlobSpec {
        size: 16 * 16 * crate::content::GROUP_SIZE,
        present: GroupSet::new(),
    }];
    for seed in 0..16 {
        let mut s = Swarm::<u32>::new(&blobs, Config::default(), seed);
        s.add_peer(1);
        s.add_peer(2);
        let mut fifth = GroupSet::new();
        fifth.insert(5 * 16, 6 * 16);
        s.peer_has(&1, 0, &fifth);
        s.peer_may_have_more(&1, 0);
        let got = s.poll_requests(&1, Duration::ZERO);
        assert_eq!(got[0].piece.0, 5, "seed {seed}: {got:?}");
    }
}

/// The latest completion, from each leecher's join.
fn last_done(r: &Report) -> Duration {
    r.leechers()
        .filter_map(|(_, n)| Some(n.completed? - n.joined?))
        .max()
        .unwrap_or_default()
}

#[test]
fn serving_the_neediest_first_brings_the_last_peer_in_sooner() {
    // The model of a serving order (not what the engine's serving does
    // yet): with two upload slots, the requester holding fewest pieces
    // first, and its most wanted piece first.
    let mesh = MeshConfig {
        max_out: 4,
        max_conns: 12,
        ..MeshConfig::default()
    };
    let mut in_turn = partial(11, mesh);
    in_turn.upload_slots = Some(2);
    in_turn.super_seed = Some(SuperSeedConfig::default());
    let mut neediest = in_turn.clone();
    neediest.serve_order = super::sim::ServeOrder::Neediest { reciprocity: 0.5 };
    let a = run(in_turn, fleet(11, 150));
    let b = run(neediest, fleet(11, 150));
    summary("in turn", &a);
    summary("neediest first", &b);
    assert_eq!(
        (a.outcome, b.outcome),
        (Outcome::Complete, Outcome::Complete)
    );
    assert!(
        last_done(&b) < last_done(&a),
        "neediest first {:?}, in turn {:?}",
        last_done(&b),
        last_done(&a)
    );
}
