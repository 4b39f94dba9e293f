//! Child processes. Each one is owned by a [`Proc`], which kills it on drop (at the end, on an
//! error and on a panic), and every wait has a deadline.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

use super::disk::vm_hwm_kib;

/// How often a child's `VmHWM` and exit are polled; also the resolution of every timing.
pub(crate) const POLL: Duration = Duration::from_millis(2);
/// How long a stopped child gets to exit on its own before it is killed.
const GRACE: Duration = Duration::from_secs(5);
/// How many lines of a child's output an error message quotes.
const TAIL: usize = 30;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

/// A running child whose stdout and stderr are read, line by line, on their own threads.
pub(crate) struct Proc {
    what: String,
    child: Child,
    /// Kept open so a child that waits for stdin to close (the namespace holder) stays up.
    _stdin: Option<ChildStdin>,
    lines: Receiver<(Stream, String)>,
    out: Vec<String>,
    err: Vec<String>,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` with stdin closed (or, if `hold_stdin`, an open pipe nobody writes to).
    pub(crate) fn spawn(cmd: &mut Command, hold_stdin: bool) -> Result<Self> {
        let stdin = if hold_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        cmd.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = describe(cmd);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("could not start {what}"))?;
        let (tx, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            read_lines(out, Stream::Out, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            read_lines(err, Stream::Err, tx);
        }
        let stdin = child.stdin.take();
        Ok(Proc {
            what,
            child,
            _stdin: stdin,
            lines,
            out: Vec::new(),
            err: Vec::new(),
            exited: None,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set so far (KiB), while the child runs.
    pub(crate) fn vm_hwm_kib(&self) -> Option<u64> {
        match self.exited {
            None => vm_hwm_kib(self.pid()),
            Some(_) => None,
        }
    }

    pub(crate) fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait()?;
        }
        Ok(self.exited)
    }

    /// Waits until `pick` accepts a line of the child's output (stdout or stderr).
    pub(crate) fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let why = format!("printed nothing expected within {} s", timeout.as_secs());
                return Err(self.failure(&why));
            }
            match self.lines.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok((stream, line)) => {
                    let found = pick(&line);
                    self.keep(stream, line);
                    if let Some(found) = found {
                        return Ok(found);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.try_wait()? {
                        self.drain(Duration::from_millis(200));
                        return Err(self.failure(&format!("exited ({status})")));
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait(GRACE)?;
                    return Err(self.failure(&format!("exited ({status})")));
                }
            }
        }
    }

    /// Waits for the child to exit; kills it and fails after `timeout`.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if start.elapsed() > timeout {
                self.kill();
                bail!("{} did not exit within {} s", self.what, timeout.as_secs());
            }
            thread::sleep(POLL);
        }
    }

    /// Asks the child to stop with `signal` (e.g. "TERM", "INT"); kills it if it does not
    /// exit within a few seconds. Returns whether it exited on its own.
    pub(crate) fn stop(&mut self, signal: &str) -> bool {
        if matches!(self.try_wait(), Ok(Some(_))) {
            return true;
        }
        // Safe against pid reuse: the child is not reaped yet, so its pid is still ours.
        let sent = Command::new("kill")
            .arg("-s")
            .arg(signal)
            .arg(self.pid().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if sent && self.wait(GRACE).is_ok() {
            return true;
        }
        self.kill();
        false
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(&mut self) {
        if self.exited.is_none() {
            // Best effort: it may have exited a moment ago.
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// Collects what the child has printed so far, waiting up to `timeout` for its pipes to
    /// close once it has exited.
    pub(crate) fn drain(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((stream, line)) => self.keep(stream, line),
                Err(_) => return,
            }
        }
    }

    pub(crate) fn stdout(&self) -> String {
        self.out.join("\n")
    }

    fn keep(&mut self, stream: Stream, line: String) {
        match stream {
            Stream::Out => self.out.push(line),
            Stream::Err => self.err.push(line),
        }
    }

    /// An error: what the child is, `why`, and the last lines it printed.
    pub(crate) fn failure(&mut self, why: &str) -> anyhow::Error {
        let tail = self.tail();
        if tail.is_empty() {
            anyhow!("{} {why}, printing nothing", self.what)
        } else {
            anyhow!("{} {why}:\n{}", self.what, tail.trim_end())
        }
    }

    /// The last lines of both streams, for error messages.
    pub(crate) fn tail(&mut self) -> String {
        while let Ok((stream, line)) = self.lines.try_recv() {
            self.keep(stream, line);
        }
        let mut text = String::new();
        for (name, lines) in [("stdout", &self.out), ("stderr", &self.err)] {
            let skip = lines.len().saturating_sub(TAIL);
            for line in &lines[skip..] {
                text.push_str(&format!("  {name}: {line}\n"));
            }
        }
        text
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `r` line by line (bytes, lossily decoded) into `tx` until it closes.
fn read_lines<R: Read + Send + 'static>(r: R, stream: Stream, tx: Sender<(Stream, String)>) {
    thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    // Progress bars redraw with '\r'; the last state is the one that counts.
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end().rsplit('\r').next().unwrap_or_default();
                    if tx.send((stream, line.to_owned())).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        // Tickets and magnet links are long; the start says enough.
        if arg.chars().count() > 60 {
            parts.push(format!("{}…", arg.chars().take(40).collect::<String>()));
        } else {
            parts.push(arg.into_owned());
        }
    }
    parts.join(" ")
}

/// What [`measure`] saw.
pub(crate) struct Measured {
    /// Wall clock from spawn to exit.
    pub(crate) secs: f64,
    /// Highest `VmHWM` seen, in KiB; `None` if never readable.
    pub(crate) peak_kib: Option<u64>,
    pub(crate) stdout: String,
    /// Whether the child was SIGKILLed at `kill_at` rather than exiting on its own.
    pub(crate) killed: bool,
}

/// Runs `cmd` to completion, timing it and sampling its `VmHWM` every [`POLL`]. With
/// `kill_at`, SIGKILLs it at that point if it is still running. A non-zero exit is an error
/// unless `allow_failure`.
pub(crate) fn measure(
    cmd: &mut Command,
    timeout: Duration,
    kill_at: Option<Duration>,
    allow_failure: bool,
) -> Result<Measured> {
    let start = Instant::now();
    let mut p = Proc::spawn(cmd, false)?;
    let mut peak_kib = None;
    let mut killed = false;
    let status = loop {
        if let Some(kib) = p.vm_hwm_kib() {
            peak_kib = Some(peak_kib.map_or(kib, |k: u64| k.max(kib)));
        }
        if let Some(status) = p.try_wait()? {
            break status;
        }
        let elapsed = start.elapsed();
        if kill_at.is_some_and(|at| elapsed >= at) {
            p.kill();
            killed = true;
            break p.try_wait()?.context("a killed child has no status")?;
        }
        if elapsed > timeout {
            p.kill();
            return Err(p.failure(&format!("took longer than {} s", timeout.as_secs())));
        }
        thread::sleep(POLL);
    };
    let secs = start.elapsed().as_secs_f64();
    p.drain(Duration::from_secs(2));
    if !(killed || allow_failure || status.success()) {
        return Err(p.failure(&format!("failed ({status})")));
    }
    Ok(Measured {
        secs,
        peak_kib,
        stdout: p.stdout(),
        killed,
    })
}

/// Where the networked children run: the host's network, or a network namespace of their own
/// that holds nothing but loopback, so no anchor can reach beyond 127.0.0.1 whatever it tries
/// (sendme's n0 preset publishes to a DNS server and probes for port mappings; rqbit may try
/// UPnP and trackers).
pub(crate) enum Net {
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
    pub(crate) fn namespace() -> Result<Self> {
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
    pub(crate) fn command(&self, program: impl AsRef<OsStr>) -> Command {
        match self {
            Net::Host => Command::new(program),
            Net::Namespace { enter, .. } => {
                let mut cmd = Command::new(&enter[0]);
                cmd.args(&enter[1..]).arg(program);
                cmd
            }
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Net::Host => "host network (--host-network)".into(),
            Net::Namespace { how, .. } => {
                format!("own network namespace, loopback only (unshare --net, {how})")
            }
        }
    }

    /// A `/proc/sys/net/…` value as the programs in this network see it (some are per
    /// namespace), e.g. `core/rmem_max`.
    pub(crate) fn sysctl(&self, key: &str) -> Option<String> {
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
    pub(crate) fn free_port(&mut self) -> Result<u16> {
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
