use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::node::Node;
use crate::store::Store;

async fn node_at(dir: &Path) -> Node {
    let store = Store::open(dir).expect("store");
    Node::builder()
        .store(store)
        .listen(([127, 0, 0, 1], 0).into())
        .no_dht()
        .spawn()
        .await
        .expect("node")
}

/// A node on `dir/store` with its API on `dir`'s socket, and a client.
async fn served(dir: &Path) -> (Node, ApiServer, Client) {
    let node = node_at(&dir.join("store")).await;
    let socket = socket_path(dir);
    let server = serve(node.clone(), ApiConfig::new(&socket)).await.unwrap();
    (node, server, Client::new(&socket))
}

/// One raw request; returns the status code and the body.
async fn raw(socket: &Path, request: &[u8]) -> (u16, String) {
    let mut s = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (code, body)
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn every_operation_through_the_api_replies_as_the_same_operation_on_a_stopped_store() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(files.join("sub")).unwrap();
    std::fs::write(files.join("a.bin"), vec![3u8; 300_000]).unwrap();
    std::fs::write(files.join("sub/b.txt"), b"bee").unwrap();
    let other = dir.path().join("other.bin");
    std::fs::write(&other, vec![9u8; 70_000]).unwrap();

    let node = node_at(&dir.path().join("live")).await;
    let socket = socket_path(&dir.path().join("live"));
    let _server = serve(node, ApiConfig::new(&socket)).await.unwrap();
    let api = Client::new(&socket);
    let local = Store::open(dir.path().join("stopped")).unwrap();

    let add = AddRequest {
        paths: vec![files.clone()],
        name: Some("release".into()),
    };
    let added = api.add(&add).await.unwrap();
    assert_eq!(added, ops::add(&local, &add, None).unwrap());
    assert_eq!((added.files, added.size), (2, 300_003));
    let add2 = AddRequest {
        paths: vec![other],
        name: None,
    };
    assert_eq!(
        api.add(&add2).await.unwrap(),
        ops::add(&local, &add2, None).unwrap()
    );

    let strip = |mut p: PinsReply| {
        p.pins.iter_mut().for_each(|p| p.created = 0);
        p
    };
    let pins = strip(api.pins().await.unwrap());
    assert_eq!(pins, strip(ops::pins(&local).unwrap()));
    assert_eq!(pins.pins.len(), 2);

    let rm = RmRequest { root: added.root };
    assert_eq!(api.rm(&rm).await.unwrap(), ops::rm(&local, &rm).unwrap());
    // A second rm is refused the same way on both.
    let refused = api.rm(&rm).await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::Refused { status: 422, message } if message.contains("is not pinned")),
        "{refused}"
    );
    assert!(matches!(ops::rm(&local, &rm), Err(OpError::NotPinned(_))));
    let gc = api.gc().await.unwrap();
    assert_eq!(gc, ops::gc(&local, &Default::default()).unwrap());
    assert!(
        gc.blobs >= 2,
        "the unpinned release's blobs are freed: {gc:?}"
    );
    assert_eq!(strip(api.pins().await.unwrap()).pins.len(), 1);

    let check = api.check().await.unwrap();
    assert_eq!(check, ops::check(&local).unwrap());
    assert!(check.ok);

    let key = crate::release::SecretKey::from_seed(&[5; 32]).public();
    let trust = TrustAddRequest {
        public_key: key.to_string(),
        name: Some("builds".into()),
    };
    assert_eq!(
        api.trust_add(&trust).await.unwrap(),
        ops::trust_add(&local, &trust).unwrap()
    );
    assert_eq!(api.trusted().await.unwrap().trusted[0].name, "builds");
    let untrust = TrustRmRequest {
        public_key: key.to_string(),
    };
    assert_eq!(
        api.trust_rm(&untrust).await.unwrap(),
        ops::trust_rm(&local, &untrust).unwrap()
    );
    assert!(api.trusted().await.unwrap().trusted.is_empty());
}

#[tokio::test]
async fn the_socket_is_owner_only_and_a_stale_one_is_replaced_but_a_live_one_is_not() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_path(dir.path());
    // What a killed node leaves: a socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());

    let node = node_at(&dir.path().join("store")).await;
    let server = serve(node.clone(), ApiConfig::new(&socket)).await.unwrap();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    assert_eq!(
        Client::new(&socket).status().await.unwrap().node_id,
        node.id().to_string()
    );
    // Nothing of the private directory it was made in is left.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");

    let again = serve(node, ApiConfig::new(&socket)).await.unwrap_err();
    assert!(matches!(again, ServeError::InUse(_)), "{again}");
    assert!(Client::new(&socket).status().await.is_ok());

    drop(server);
    assert!(!socket.exists(), "a stopped server removes its socket");
    let gone = Client::new(&socket).status().await.unwrap_err();
    assert!(matches!(gone, ClientError::NotRunning { .. }), "{gone}");
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(&dir.path().join("store")).await;
    let socket = socket_path(dir.path());
    let _server = serve(node, ApiConfig::new(&socket)).await.unwrap();

    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (post("/v1/add", "{\"paths\": [\"/x\""), 400, "not the JSON"),
        (post("/v1/add", "{\"paths\": \"/x\"}"), 400, "not the JSON"),
        (post("/v1/add", "{\"paths\": [], \"nme\": 1}"), 400, "unknown field"),
        (post("/v1/add", "{\"paths\": [\"rel/a\"]}"), 400, "relative path"),
        (post("/v1/add", "{\"paths\": [\"/no/such/file\"]}"), 422, "/no/such/file"),
        // Short for no pinned root, or no pin's name: the store's state.
        (post("/v1/rm", "{\"root\": \"abc\"}"), 422, "abc"),
        (post("/v1/rm", "{\"root\": \"a b c\"}"), 400, "a b c"),
        (post("/v1/trust/add", "{\"public_key\": \"swpk1zz\"}"), 400, "not a publisher key"),
        (post("/v1/nope", ""), 404, "no route /v1/nope"),
        (
            b"GET /v1/add HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            405,
            "takes POST",
        ),
        (
            format!(
                "POST /v1/add HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                MAX_BODY + 1
            )
            .into_bytes(),
            413,
            "over",
        ),
    ];
    for (req, code, says) in cases {
        let (got, body) = raw(&socket, &req).await;
        let shown = String::from_utf8_lossy(&req[..req.len().min(80)]).into_owned();
        assert_eq!(got, code, "{shown}: {body}");
        let e: ErrorReply = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert!(e.error.contains(says), "{shown}: {}", e.error);
    }

    // A body sent in chunks past the bound, with no length declared.
    let mut s = tokio::net::UnixStream::connect(&socket).await.unwrap();
    s.write_all(b"POST /v1/add HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = vec![b' '; 64 << 10];
    let mut refused = false;
    for _ in 0..(MAX_BODY / chunk.len() + 4) {
        let head = format!("{:x}\r\n", chunk.len());
        if s.write_all(head.as_bytes()).await.is_err()
            || s.write_all(&chunk).await.is_err()
            || s.write_all(b"\r\n").await.is_err()
        {
            refused = true;
            break;
        }
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    assert!(refused || text.starts_with("HTTP/1.1 413"), "{text}");

    // A client that leaves mid-body, and one that sends garbage.
    let mut s = tokio::net::UnixStream::connect(&socket).await.unwrap();
    s.write_all(b"POST /v1/add HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pa")
        .await
        .unwrap();
    drop(s);
    let (code, _) = raw(&socket, b"\x16\x03\x01 not http at all\r\n\r\n").await;
    assert!(code == 0 || code == 400, "{code}");

    let status = Client::new(&socket).status().await.unwrap();
    assert!(status.pins.is_empty());
}

/// The number after `series ` in Prometheus text, 0 if absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

const TOKEN: &str = "a-token-of-thirty-two-characters";

#[tokio::test]
async fn over_tcp_every_route_but_the_page_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(&dir.path().join("store")).await;
    let socket = socket_path(dir.path());
    let loopback: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();

    // Refused before anything listens: a reachable address, a short token.
    let open: std::net::SocketAddr = ([0, 0, 0, 0], 0).into();
    let e = serve(node.clone(), ApiConfig::new(&socket).tcp(open, TOKEN))
        .await
        .unwrap_err();
    assert!(matches!(e, ServeError::NotLoopback(_)), "{e}");
    assert!(e.to_string().contains("not loopback"), "{e}");
    let e = serve(node.clone(), ApiConfig::new(&socket).tcp(loopback, "short"))
        .await
        .unwrap_err();
    assert!(matches!(e, ServeError::WeakToken(5)), "{e}");
    assert!(!socket.exists(), "nothing was started");

    let server = serve(node.clone(), ApiConfig::new(&socket).tcp(loopback, TOKEN))
        .await
        .unwrap();
    let base = format!("http://{}", server.tcp_addr().expect("tcp"));
    let http = reqwest::Client::new();
    for (route, post) in [("/v1/status", false), ("/metrics", false), ("/v1/gc", true)] {
        let url = format!("{base}{route}");
        let req = |r: reqwest::RequestBuilder| async move { r.send().await.unwrap() };
        let call = || {
            if post {
                http.post(&url)
            } else {
                http.get(&url)
            }
        };
        let none = req(call()).await;
        assert_eq!(none.status(), 401, "{route} without a token");
        assert_eq!(none.headers()["www-authenticate"], "Bearer");
        let wrong = req(call().bearer_auth("a-token-of-thirty-two-characterZ")).await;
        assert_eq!(wrong.status(), 401, "{route} with a wrong token");
        let prefix = req(call().bearer_auth(&TOKEN[..20])).await;
        assert_eq!(prefix.status(), 401, "{route} with part of the token");
        let ok = req(call().bearer_auth(TOKEN)).await;
        assert_eq!(ok.status(), 200, "{route} with the token");
    }
    let body = http
        .get(format!("{base}/v1/pins"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let e: ErrorReply = serde_json::from_str(&body).unwrap();
    assert!(e.error.contains("Bearer"), "{}", e.error);
    // The page holds no data: it loads without the token, and is locked
    // against being framed or pulling anything from elsewhere.
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"plot\""));
    // The only URL in it is the SVG namespace, which is a name, not a fetch.
    let urls = html.replace("http://www.w3.org/2000/svg", "");
    assert!(
        !urls.contains("http://") && !urls.contains("https://"),
        "no external assets"
    );
    assert!(
        !html.contains(" src=") && !html.contains("<link"),
        "no external assets"
    );
    // The Unix socket needs no token: its mode is the access control.
    assert!(Client::new(&socket).status().await.is_ok());
}

#[tokio::test]
async fn metrics_status_and_peers_count_what_a_fetcher_was_served() {
    let dir = tempfile::tempdir().unwrap();
    let seed = node_at(&dir.path().join("seed")).await;
    let socket = socket_path(&dir.path().join("seed"));
    let _server = serve(seed.clone(), ApiConfig::new(&socket)).await.unwrap();
    let api = Client::new(&socket);
    let file = dir.path().join("a.bin");
    std::fs::write(&file, crate::testutil::data(5, 3 << 20)).unwrap();
    let added = api
        .add(&AddRequest {
            paths: vec![file],
            name: None,
        })
        .await
        .unwrap();
    let before = api.metrics().await.unwrap();

    let fetcher = node_at(&dir.path().join("fetcher")).await;
    let peer = seed.addr().unwrap();
    let opts = crate::node::FetchOptions {
        peers: vec![peer.clone()],
        ..Default::default()
    };
    let root: crate::Hash = added.root.parse().unwrap();
    fetcher.fetch(root, opts).await.expect("fetch");
    // A root the seed does not hold: refused as not held.
    let unknown = crate::Hash::of(b"nobody has this");
    let opts = crate::node::FetchOptions {
        peers: vec![peer],
        ..Default::default()
    };
    assert!(fetcher.fetch(unknown, opts).await.is_err());

    let after = api.metrics().await.unwrap();
    let grew = |series: &str| metric(&after, series) - metric(&before, series);
    assert!(grew("swarm_bytes_up_total") >= (3 << 20) as f64, "{after}");
    assert!(
        grew("swarm_requests_total{result=\"served\"}") >= 1.0,
        "{after}"
    );
    assert!(
        grew("swarm_requests_total{result=\"not_held\"}") >= 1.0,
        "{after}"
    );
    assert!(
        grew("swarm_bytes_down_total{source=\"peer\"}") >= (3 << 20) as f64,
        "{after}"
    );
    assert!(
        grew("swarm_fetches_total{event=\"completed\"}") >= 1.0,
        "{after}"
    );
    assert!(
        grew("swarm_fetches_total{event=\"failed\"}") >= 1.0,
        "{after}"
    );
    assert!(metric(&after, "swarm_pins") == 1.0, "{after}");
    assert!(
        after.contains("# TYPE swarm_dht_op_seconds histogram"),
        "{after}"
    );

    let status = api.status().await.unwrap();
    let pin = &status.pins[0];
    assert_eq!(pin.pin.root, added.root);
    assert!(pin.bytes_up >= 3 << 20, "{pin:?}");
    assert_eq!(pin.peers, 1, "one fetcher: {pin:?}");
    assert!(status.totals.bytes_up >= 3 << 20);
    assert_eq!(status.limits.upload_limit, None);
    // The fetcher is still connected to the seed, and shows as a peer.
    let peers = api.peers().await.unwrap();
    let id = fetcher.id().to_string();
    let p = peers.peers.iter().find(|p| p.id == id);
    assert!(p.is_some_and(|p| p.bytes_up >= 3 << 20), "{peers:?}");
}

#[tokio::test]
async fn a_fetch_through_the_api_pauses_resumes_and_cancels_by_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _server, api) = served(dir.path()).await;
    // A seed capped so that the fetch takes many seconds.
    let seed = Node::builder()
        .store(Store::open(dir.path().join("seed")).unwrap())
        .listen(([127, 0, 0, 1], 0).into())
        .no_dht()
        .upload_limit(Some(256 << 10))
        .spawn()
        .await
        .unwrap();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, crate::testutil::data(7, 4 << 20)).unwrap();
    let added = seed.add(&[&file]).await.unwrap();
    let req = FetchRequest {
        target: added.root.to_hex(),
        peers: vec![seed.addr().unwrap().to_string()],
        ..Default::default()
    };
    let fetching = {
        let api = api.clone();
        tokio::spawn(async move { api.fetch(&req, |_| {}).await })
    };
    let mut id = None;
    for _ in 0..200 {
        if let Some(f) = api.status().await.unwrap().fetches.first() {
            id = Some(f.id);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let Some(id) = id else {
        // The fetch already failed: nothing to control.
        let r = fetching.await.unwrap();
        panic!("the fetch ended before it could be controlled: {r:?}");
    };
    assert!(api.fetch_pause(id).await.unwrap().paused);
    assert!(api.status().await.unwrap().fetches[0].paused);
    assert!(!api.fetch_resume(id).await.unwrap().paused);
    let gone = api.fetch_pause(id + 1000).await.unwrap_err();
    assert!(
        matches!(gone, ClientError::Refused { status: 404, .. }),
        "{gone}"
    );
    assert!(api.fetch_cancel(id).await.unwrap().cancelled);
    let ended = fetching.await.unwrap().unwrap_err();
    assert!(ended.to_string().contains("cancel"), "{ended}");

    // A fetch the embedding program starts is listed and controlled too.
    let direct = node.fetch(
        added.root,
        crate::node::FetchOptions {
            peers: vec![seed.addr().unwrap()],
            ..Default::default()
        },
    );
    let listed = api.status().await.unwrap().fetches;
    assert_eq!(listed.len(), 1, "the cancelled one is gone: {listed:?}");
    assert_eq!(listed[0].id, direct.id());
    assert!(listed[0].id > id && listed[0].label.is_none(), "{listed:?}");
    assert!(api.fetch_pause(direct.id()).await.unwrap().paused);
    assert!(direct.is_paused());
    drop(direct);
    let mut left = usize::MAX;
    for _ in 0..200 {
        left = api.status().await.unwrap().fetches.len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(left, 0, "a dropped handle's fetch leaves the list");
}

#[tokio::test]
async fn seed_pins_a_stored_root_and_stop_seeding_unpins_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, _server, api) = served(dir.path()).await;
    let file = dir.path().join("a.bin");
    std::fs::write(&file, crate::testutil::data(3, 100_000)).unwrap();
    let added = api
        .add(&AddRequest {
            paths: vec![file],
            name: None,
        })
        .await
        .unwrap();
    let rm = RmRequest {
        root: added.root.clone(),
    };
    assert!(api.stop_seeding(&rm).await.unwrap().removed);
    assert!(api.pins().await.unwrap().pins.is_empty());
    // Still stored (until gc): seeding it again pins it under the name.
    let req = SeedRequest {
        root: added.root.clone(),
        name: Some("again".into()),
    };
    let seeded = api.seed(&req).await.unwrap();
    assert_eq!((seeded.name.as_str(), seeded.announced), ("again", false));
    assert_eq!(api.pins().await.unwrap().pins[0].name, "again");
    // Refused: a root the store does not hold, and one that is not a root.
    let unknown = SeedRequest {
        root: crate::Hash::of(b"not stored").to_hex(),
        name: None,
    };
    let e = api.seed(&unknown).await.unwrap_err();
    assert!(matches!(e, ClientError::Refused { status: 422, .. }), "{e}");
    // A name no pin has is the store's state (422); something that is no
    // root, prefix or name at all is a bad request (400).
    let unnamed = SeedRequest {
        root: "xyz".into(),
        name: None,
    };
    let e = api.seed(&unnamed).await.unwrap_err();
    assert!(matches!(e, ClientError::Refused { status: 422, .. }), "{e}");
    let bad = SeedRequest {
        root: "not a root".into(),
        name: None,
    };
    let e = api.seed(&bad).await.unwrap_err();
    assert!(matches!(e, ClientError::Refused { status: 400, .. }), "{e}");
    // Stopping what is not pinned is refused, as rm is.
    api.stop_seeding(&rm).await.unwrap();
    let e = api.stop_seeding(&rm).await.unwrap_err();
    assert!(matches!(e, ClientError::Refused { status: 422, .. }), "{e}");
}

#[tokio::test]
async fn the_listed_pins_follow_every_change_however_it_was_made() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _server, api) = served(dir.path()).await;
    let names = |p: PinsReply| -> Vec<String> { p.pins.into_iter().map(|p| p.name).collect() };
    assert!(api.pins().await.unwrap().pins.is_empty());
    let store = node.store();
    let mut roots = Vec::new();
    // Each change is listed by the very next call: through the API, and
    // on the store directly (as a fetch or a follow pins), with no pause
    // for the node to encode the list again in the background.
    for i in 0..20u64 {
        let file = dir.path().join(format!("f{i}"));
        std::fs::write(&file, crate::testutil::data(i, 1000 + i as usize)).unwrap();
        let root = if i % 2 == 0 {
            let added = api
                .add(&AddRequest {
                    paths: vec![file],
                    name: Some(format!("p{i}")),
                })
                .await
                .unwrap();
            added.root.parse::<crate::Hash>().unwrap()
        } else {
            let opts = crate::store::AddOptions {
                name: Some(format!("p{i}")),
                ..Default::default()
            };
            store.add_paths(&[file], &opts).unwrap().root
        };
        roots.push(root);
        let mut listed = names(api.pins().await.unwrap());
        listed.sort();
        let mut want: Vec<String> = (0..=i).map(|j| format!("p{j}")).collect();
        want.sort();
        assert_eq!(listed, want, "after pin {i}");
    }
    assert!(store.unpin(&roots[3]).unwrap());
    assert!(!names(api.pins().await.unwrap()).contains(&"p3".to_string()));
    store.pin(&roots[3], "renamed").unwrap();
    assert!(names(api.pins().await.unwrap()).contains(&"renamed".to_string()));
    for (i, root) in roots.iter().enumerate() {
        if i % 2 == 0 {
            store.unpin(root).unwrap();
        } else {
            let rm = RmRequest {
                root: root.to_hex(),
            };
            assert!(api.rm(&rm).await.unwrap().removed);
        }
        assert_eq!(api.pins().await.unwrap().pins.len(), roots.len() - i - 1);
    }
}

#[test]
fn the_served_lines_name_the_roots_that_grew_busiest_first_and_only_those() {
    use super::server::{RootServed, served_since};
    use crate::Hash;
    let pin = |n: u8, up: u64, peers: u64| StatusPin {
        pin: PinEntry {
            root: Hash::from_bytes([n; 32]).to_hex(),
            name: format!("r{n}"),
            size: 1,
            files: 1,
            created: 0,
        },
        bytes_up: up,
        peers,
    };
    let none = std::collections::HashMap::new();
    let (grew, last) = served_since(&[pin(1, 0, 0), pin(2, 500, 1), pin(3, 900, 2)], &none);
    let names: Vec<&str> = grew.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["r3", "r2"], "busiest first; r1 sent nothing");
    assert_eq!(last.len(), 2);
    // Next interval: r2 unchanged, r3 sent 100 more, r1 started.
    let (grew, last) = served_since(&[pin(1, 40, 1), pin(2, 500, 1), pin(3, 1000, 2)], &last);
    assert_eq!(
        grew,
        [
            RootServed {
                name: "r3".into(),
                root: Hash::from_bytes([3; 32]),
                bytes: 100,
                total: 1000,
                peers: 2
            },
            RootServed {
                name: "r1".into(),
                root: Hash::from_bytes([1; 32]),
                bytes: 40,
                total: 40,
                peers: 1
            },
        ]
    );
    // Nothing grew: no lines; an unpinned root is forgotten.
    let (grew, last) = served_since(&[pin(1, 40, 1), pin(3, 1000, 2)], &last);
    assert!(grew.is_empty() && !last.contains_key(&Hash::from_bytes([2; 32])));
}

#[tokio::test]
async fn a_client_that_connected_first_makes_its_first_call_on_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_path(dir.path());
    let gone = Client::connect(&socket).unwrap_err();
    assert!(matches!(gone, ClientError::NotRunning { .. }), "{gone}");
    let node = node_at(&dir.path().join("store")).await;
    let _server = serve(node.clone(), ApiConfig::new(&socket)).await.unwrap();
    let api = Client::connect(&socket).unwrap();
    // The first call on the connection made, the next on a new one.
    assert_eq!(api.status().await.unwrap().node_id, node.id().to_string());
    assert!(api.pins().await.unwrap().pins.is_empty());
    let copy = api.clone();
    assert!(copy.pins().await.unwrap().pins.is_empty());
}

#[tokio::test]
async fn mirror_through_the_api_writes_the_layout_and_refuses_what_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _server, api) = served(dir.path()).await;
    let file = dir.path().join("a.bin");
    std::fs::write(&file, crate::testutil::data(3, 100_000)).unwrap();
    let root = node.add(&[&file]).await.unwrap().root;
    let out = dir.path().join("mirror");
    let req = |dir: &Path, target: &str, trust: &[&str]| MirrorRequest {
        target: target.to_owned(),
        dir: dir.to_owned(),
        trust: trust.iter().map(|s| s.to_string()).collect(),
    };
    let done = api.mirror(&req(&out, &root.to_hex(), &[])).await.unwrap();
    assert_eq!(done.root, root.to_hex());
    assert!(done.written >= 2 && done.written == done.files, "{done:?}");
    let blob = out
        .join("blobs")
        .join(&root.to_hex()[..2])
        .join(root.to_hex());
    assert!(blob.is_file(), "the manifest is served under its hash");
    let again = api.mirror(&req(&out, &root.to_hex(), &[])).await.unwrap();
    assert_eq!(again.written, 0, "a second run writes nothing: {again:?}");
    let key = crate::release::SecretKey::from_seed(&[4; 32])
        .public()
        .to_string();
    for (r, status) in [
        (req(Path::new("relative"), &root.to_hex(), &[]), 400),
        (req(&out, "not-a-root", &[]), 422),
        (req(&out, "not a root", &[]), 400),
        (req(&out, &root.to_hex(), &[&key]), 400),
        (req(&out, &crate::Hash::of(b"absent").to_hex(), &[]), 422),
        (
            req(&dir.path().join("store/inside"), &root.to_hex(), &[]),
            422,
        ),
    ] {
        let e = api.mirror(&r).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Refused { status: s, .. } if *s == status),
            "{r:?}: {e}"
        );
    }
}

#[test]
fn a_prefix_that_several_pinned_roots_share_is_refused_with_each_of_them() {
    let store = Store::memory().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Add small roots until two share their first 4 hex characters (about
    // 300 are needed on average: 16 bits).
    let mut seen: std::collections::HashMap<String, crate::Hash> = Default::default();
    let (a, b) = (0u64..5000)
        .find_map(|i| {
            let f = dir.path().join(format!("f{i}"));
            std::fs::write(&f, i.to_le_bytes()).unwrap();
            let r = store
                .add_paths(&[f], &crate::store::AddOptions::default())
                .unwrap()
                .root;
            let key = r.to_hex()[..ops::MIN_PREFIX].to_owned();
            seen.insert(key, r).map(|other| (other, r))
        })
        .expect("two roots with one 4-character prefix");
    let (ha, hb) = (a.to_hex(), b.to_hex());
    let shared = &ha[..ops::MIN_PREFIX];
    match ops::find_root(&store, shared) {
        Err(OpError::AmbiguousRoot { candidates, .. }) => {
            assert_eq!(candidates.len(), 2, "{candidates:?}");
            assert!(candidates.iter().any(|c| c.contains(&ha)));
            assert!(candidates.iter().any(|c| c.contains(&hb)));
        }
        other => panic!("{other:?}"),
    }
    // One more character tells them apart, unless they share it too.
    let n = (0..64)
        .find(|&i| ha.as_bytes()[i] != hb.as_bytes()[i])
        .unwrap();
    assert_eq!(ops::find_root(&store, &ha[..=n]).unwrap(), a);
    assert_eq!(ops::find_root(&store, &hb[..=n]).unwrap(), b);
    // And so does a suffix, as the docs shorten roots.
    let short = format!("{shared}…{}", &ha[60..]);
    if !hb.ends_with(&ha[60..]) {
        assert_eq!(ops::find_root(&store, &short).unwrap(), a);
    }
}
