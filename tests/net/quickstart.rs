//! docs/quickstart.md, run as a test (issue 17): every command of its
//! `sh` blocks, in order, through the real binary, as written. Each block
//! runs on one "machine" (its own directory, home and store); a placeholder
//! the doc shows (`9c1d…e07a`, `<root>`, `swt1…`, …) is replaced by what
//! an earlier command printed. A command or placeholder this test does not
//! know fails it, so the doc cannot drift from what it runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::{NODE_PATIENCE, PATIENCE, tempdir};

const DOC: &str = include_str!("../../docs/quickstart.md");

/// The `sh` blocks: each a list of commands, comments and output removed.
fn blocks() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut lines = DOC.lines();
    while let Some(l) = lines.next() {
        if l.trim() != "```sh" {
            continue;
        }
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        let prompted = body.iter().any(|l| l.starts_with("$ "));
        let cmds = body
            .iter()
            .filter_map(|l| match prompted {
                true => l.strip_prefix("$ "),
                false => Some(*l),
            })
            .map(|l| strip_comment(l).trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        out.push(cmds);
    }
    out
}

/// The line without a trailing `# comment` (a `#` outside quotes, after a
/// space, or starting the line).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let b = line.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'"' => quoted = !quoted,
            b'#' if !quoted && (i == 0 || b[i - 1] == b' ') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Split as a shell would for these lines: spaces, and double quotes.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A machine: its directory (the working directory and home) and store.
struct Machine {
    dir: PathBuf,
    store: PathBuf,
}

impl Machine {
    fn new(root: &Path, name: &str) -> Self {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("create a machine directory");
        let store = dir.join(".store");
        Self { dir, store }
    }

    fn cmd(&self, args: &[String]) -> Command {
        let mut c = swarm_cmd(&self.store);
        c.current_dir(&self.dir)
            .env("HOME", &self.dir)
            .env("XDG_CONFIG_HOME", self.dir.join(".config"))
            .env("XDG_DATA_HOME", self.dir.join(".data"))
            .args(args);
        c
    }
}

#[test]
fn the_quickstart_runs_as_written() {
    let tmp = tempdir();
    let blocks = blocks();
    // Which machine runs each block, and whether the servers started so
    // far stop after it.
    let plan: &[(&str, bool)] = &[
        ("a", false), // build
        ("a", false), // add
        ("a", false), // export
        ("a", false), // ls, rm, gc, check
        ("a", false), // share
        ("b", true),  // fetch the ticket
        ("a", false), // add, node
        ("c", true),  // fetch --peer
        ("a", false), // keygen, node, publish
        ("d", false), // trust, fetch the ticket
        ("d", true),  // verify
        ("a", false), // keygen, root init and sign, publish --root, sign
    ];
    assert_eq!(
        blocks.len(),
        plan.len(),
        "docs/quickstart.md has {} sh blocks; this test knows {}: {blocks:#?}",
        blocks.len(),
        plan.len()
    );
    let mut machines: HashMap<&str, Machine> = HashMap::new();
    for name in ["a", "b", "c", "d"] {
        machines.insert(name, Machine::new(tmp.path(), name));
    }
    let a = &machines["a"].dir;
    make_tree(
        &a.join("site"),
        &[
            ("index.html", b"<h1>site</h1>".to_vec(), 0o644),
            ("img/logo.png", pseudo_random(70_000, 5), 0o644),
        ],
    );
    make_tree(
        &a.join("build"),
        &[("myapp", pseudo_random(300_000, 6), 0o755)],
    );
    let scratch = tmp.path().join("scratch");

    let mut seen: HashMap<&str, String> = HashMap::new();
    let mut servers: Vec<NodeChild> = Vec::new();
    for (cmds, (machine, stop_after)) in blocks.iter().zip(plan) {
        let m = &machines[machine];
        for line in cmds {
            let mut w = words(line);
            match w[0].as_str() {
                // The build steps: this test runs the binary cargo built.
                "cargo" if line == "cargo build --release -p swarm-cli" => continue,
                "export" if line.starts_with("export PATH=") => continue,
                "swarm" => {}
                _ => panic!("docs/quickstart.md runs {line:?}, which this test does not know"),
            }
            for word in w.iter_mut() {
                *word = substitute(word, &seen, &scratch)
                    .unwrap_or_else(|| panic!("{line:?}: no value yet for {word:?}"));
            }
            let args = w[1..].to_vec();
            if matches!(args[0].as_str(), "node" | "share") {
                let want = if args[0] == "node" { 3 } else { 1 };
                let log = tmp.path().join(format!("{machine}-{}.log", servers.len()));
                let s = NodeChild::spawn(
                    &mut m.cmd(&args),
                    &log,
                    LogMode::Truncate,
                    want,
                    NODE_PATIENCE,
                );
                if args[0] == "node" {
                    let id = s.lines[0]
                        .strip_prefix("node ")
                        .expect("node ID")
                        .to_owned();
                    let addr = s.lines[1]
                        .strip_prefix("listening on ")
                        .expect("addr")
                        .to_owned();
                    seen.insert("node-id", id);
                    seen.insert("addr", addr);
                } else {
                    seen.insert("ticket", s.lines[0].clone());
                }
                servers.push(s);
                continue;
            }
            let out = run(m.cmd(&args));
            assert!(
                out.0,
                "`{line}` on machine {machine} failed:\n{}\n{}",
                out.1, out.2
            );
            match (args[0].as_str(), args.get(1).map(String::as_str)) {
                ("add", Some("./site")) => {
                    let root = out.1.trim().to_owned();
                    assert!(is_root_hex(&root), "{out:?}");
                    seen.insert("root", root);
                }
                ("keygen", _) => {
                    seen.insert("key", out.1.trim().to_owned());
                }
                ("publish", _) => {
                    let ticket = out.1.trim().to_owned();
                    assert!(ticket.starts_with("swt1"), "{out:?}");
                    seen.insert("ticket", ticket);
                }
                ("sign", _) => {
                    assert!(out.1.trim().starts_with("swr2"), "{out:?}");
                    assert!(
                        out.2.contains("signed by 2 of the 2 keys it needs"),
                        "{out:?}"
                    );
                }
                ("verify", _) => {
                    let said = format!("{}{}", out.1, out.2);
                    assert!(said.contains("match") && !said.contains("NOT"), "{out:?}");
                }
                _ => {}
            }
        }
        if *stop_after {
            servers.clear();
        }
    }
    // What the doc says each step gives.
    assert_same_tree(&a.join("site"), &scratch.join("restore/site"));
    assert_same_tree(&a.join("site"), &machines["b"].dir.join("site-copy/site"));
    assert_same_tree(&a.join("site"), &machines["c"].dir.join("site-copy/site"));
    assert_same_tree(&a.join("build"), &machines["d"].dir.join("myapp/build"));
}

/// `word` with the doc's placeholder replaced; `None` for one whose value
/// no command has printed yet.
fn substitute(word: &str, seen: &HashMap<&str, String>, scratch: &Path) -> Option<String> {
    let get = |k: &str| seen.get(k).cloned();
    Some(match word {
        "9c1d…e07a" => {
            let r = get("root")?;
            format!("{}…{}", &r[..4], &r[60..])
        }
        "<root>" => get("root")?,
        "<node-id>@<host>:7411" => format!("{}@{}", get("node-id")?, get("addr")?),
        "<host>:7411" => get("addr")?,
        // Servers listen on loopback, on a port of their own.
        "0.0.0.0:7411" => "127.0.0.1:0".into(),
        "swt1…" => get("ticket")?,
        "swpk1…" => get("key")?,
        w if w.starts_with("/tmp/") => scratch.join(&w[5..]).display().to_string(),
        w if w.contains('…') || w.contains('<') => panic!("unknown placeholder {w:?}"),
        w => w.to_owned(),
    })
}

/// Run to completion, bounded: (success, stdout, stderr). Output goes to
/// files, so that no pipe fills up while the command runs.
fn run(mut cmd: Command) -> (bool, String, String) {
    use std::io::{Read, Seek};
    let out = tempfile::tempfile().expect("a file for stdout");
    let err = tempfile::tempfile().expect("a file for stderr");
    let mut proc = Proc::spawn(
        cmd.stdout(out.try_clone().expect("clone"))
            .stderr(err.try_clone().expect("clone")),
    );
    let status = proc
        .wait_within(PATIENCE)
        .unwrap_or_else(|| panic!("a quickstart command ran longer than {PATIENCE:?}"));
    let read = |mut f: std::fs::File| {
        let mut s = String::new();
        f.rewind().expect("rewind");
        f.read_to_string(&mut s).expect("read");
        s
    };
    (status.success(), read(out), read(err))
}
