//! Where the networked children run.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Result, bail, ensure};

use crate::proc::Proc;

/// Where the networked children run: the host's network, or a network namespace of their own
/// that holds nothing but loopback, so no anchor can reach beyond 127.0.0.1 whatever it tries
/// (sendme's n0 preset publishes to a DNS server and probes for port mappings; rqbit may try
/// UPnP and trackers).
pub enum Net {
    Host,
    Namespace {
        /// `cat` inside the namespace; it exits when its stdin (held here) closes.
        _holder: Proc,
        /// `nsenter …` arguments that run a program inside it.
        enter: Vec<String>,
        how: &'static str,
        /// Ports handed out for anchors that need fixed ones; below the ephemeral range, and
        /// nothing else runs in the namespace.
        next_port: u16,
    },
}

impl Net {
    pub fn namespace() -> Result<Self> {
        let setup = "ip link set lo up && echo ready && exec cat";
        let attempts: [(&str, &[&str]); 2] = [
            ("root", &["--net"]),
            ("user", &["--user", "--map-root-user", "--net"]),
        ];
        let mut errors = Vec::new();
        for (how, flags) in attempts {
            let mut cmd = Command::new("unshare");
            cmd.args(flags).args(["--", "sh", "-c", setup]);
            let attempt = Proc::spawn(&mut cmd, true).and_then(|mut holder| {
                holder.wait_for(Duration::from_secs(10), |l| (l == "ready").then_some(()))?;
                Ok(holder)
            });
            match attempt {
                Ok(holder) => {
                    let pid = holder.pid();
                    let mut enter = vec!["nsenter".to_owned()];
                    if how == "user" {
                        enter.push("--preserve-credentials".into());
                        enter.push(format!("--user=/proc/{pid}/ns/user"));
                    }
                    enter.push(format!("--net=/proc/{pid}/ns/net"));
                    enter.push("--".into());
                    return Ok(Net::Namespace {
                        _holder: holder,
                        enter,
                        how,
                        next_port: 24_000,
                    });
                }
                Err(e) => errors.push(format!("{how}: {e:#}")),
            }
        }
        bail!(
            "could not make a loopback-only network namespace (unshare --net, needs root or \
             user namespaces, and `ip`); pass --host-network to run on the host's network:\n{}",
            errors.join("\n")
        )
    }

    /// A command that runs `program` in this network.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        match self {
            Net::Host => Command::new(program),
            Net::Namespace { enter, .. } => {
                let mut cmd = Command::new(&enter[0]);
                cmd.args(&enter[1..]).arg(program);
                cmd
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Net::Host => "host network (--host-network)".into(),
            Net::Namespace { how, .. } => {
                format!("own network namespace, loopback only (unshare --net, {how})")
            }
        }
    }

    /// A `/proc/sys/net/…` value as the programs in this network see it (some are per
    /// namespace), e.g. `core/rmem_max`.
    pub fn sysctl(&self, key: &str) -> Option<String> {
        let out = self
            .command("cat")
            .arg(format!("/proc/sys/net/{key}"))
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let value = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !value.is_empty()).then_some(value)
    }

    /// A TCP/UDP port nobody in this network listens on.
    pub fn free_port(&mut self) -> Result<u16> {
        match self {
            Net::Host => {
                // Bound and released: a race with other programs is possible but unlikely.
                let l = TcpListener::bind("127.0.0.1:0")?;
                Ok(l.local_addr()?.port())
            }
            Net::Namespace { next_port, .. } => {
                let port = *next_port;
                ensure!(port < 32_000, "ran out of ports");
                *next_port += 1;
                Ok(port)
            }
        }
    }
}
