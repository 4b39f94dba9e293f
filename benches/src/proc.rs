//! Child processes. Each one is owned by a [`Proc`], which kills it on drop (at the end, on an
//! error and on a panic), and every wait has a deadline.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::disk::{cpu_secs, vm_hwm_kib};

/// How often a child's `VmHWM` and exit are polled; also the resolution of every timing.
pub const POLL: Duration = Duration::from_millis(2);
/// How long a stopped child gets to exit on its own before it is killed.
const GRACE: Duration = Duration::from_secs(5);
/// How many lines of a child's output an error message quotes.
const TAIL: usize = 30;

/// Which of a child's outputs a line came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stream {
    Out,
    Err,
}

/// A running child whose stdout and stderr are read, line by line, on their own threads.
pub struct Proc {
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
    pub fn spawn(cmd: &mut Command, hold_stdin: bool) -> Result<Self> {
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set so far (KiB), while the child runs.
    pub fn vm_hwm_kib(&self) -> Option<u64> {
        match self.exited {
            None => vm_hwm_kib(self.pid()),
            Some(_) => None,
        }
    }

    /// CPU seconds (user + system, all threads) so far, while the child runs.
    pub fn cpu_secs(&self) -> Option<f64> {
        match self.exited {
            None => cpu_secs(&self.pid().to_string()),
            Some(_) => None,
        }
    }

    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait()?;
        }
        Ok(self.exited)
    }

    /// The next line the child prints (stdout or stderr), waiting up to `timeout` (zero: only
    /// one already printed). `None` if none came, or none ever will (both pipes closed). The
    /// line is kept, as every line is, for [`Proc::stdout`], [`Proc::stderr`] and errors.
    pub fn next_line(&mut self, timeout: Duration) -> Option<(Stream, String)> {
        let (stream, line) = self.lines.recv_timeout(timeout).ok()?;
        self.keep(stream, line.clone());
        Some((stream, line))
    }

    /// Waits until `pick` accepts a line of the child's output (stdout or stderr).
    pub fn wait_for<T>(
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
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
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
    pub fn stop(&mut self, signal: &str) -> bool {
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
    pub fn kill(&mut self) {
        if self.exited.is_none() {
            // Best effort: it may have exited a moment ago.
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// Collects what the child has printed so far, waiting up to `timeout` for its pipes to
    /// close once it has exited.
    pub fn drain(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((stream, line)) => self.keep(stream, line),
                Err(_) => return,
            }
        }
    }

    pub fn stdout(&self) -> String {
        self.out.join("\n")
    }

    pub fn stderr(&self) -> String {
        self.err.join("\n")
    }

    fn keep(&mut self, stream: Stream, line: String) {
        match stream {
            Stream::Out => self.out.push(line),
            Stream::Err => self.err.push(line),
        }
    }

    /// An error: what the child is, `why`, and the last lines it printed.
    pub fn failure(&mut self, why: &str) -> anyhow::Error {
        let tail = self.tail();
        if tail.is_empty() {
            anyhow!("{} {why}, printing nothing", self.what)
        } else {
            anyhow!("{} {why}:\n{}", self.what, tail.trim_end())
        }
    }

    /// The last lines of both streams, for error messages.
    pub fn tail(&mut self) -> String {
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
pub struct Measured {
    /// Wall clock from spawn to exit.
    pub secs: f64,
    /// Highest `VmHWM` seen, in KiB; `None` if not polled or never readable.
    pub peak_kib: Option<u64>,
    pub stdout: String,
    /// Whether the child was SIGKILLed at `kill_at` rather than exiting on its own.
    pub killed: bool,
}

/// Runs `cmd` to completion, timing it and sampling its `VmHWM` every [`POLL`]. With
/// `kill_at`, SIGKILLs it at that point if it is still running. A non-zero exit is an error
/// unless `allow_failure`.
pub fn measure(
    cmd: &mut Command,
    timeout: Duration,
    kill_at: Option<Duration>,
    allow_failure: bool,
) -> Result<Measured> {
    watch(cmd, timeout, true, kill_at, allow_failure)
}

/// Runs `cmd` to completion and returns how long it took, in seconds, without looking at its
/// memory. A non-zero exit is an error.
pub fn time(cmd: &mut Command, timeout: Duration) -> Result<f64> {
    Ok(watch(cmd, timeout, false, None, false)?.secs)
}

/// [`measure`], sampling `VmHWM` only if `poll_rss`.
fn watch(
    cmd: &mut Command,
    timeout: Duration,
    poll_rss: bool,
    kill_at: Option<Duration>,
    allow_failure: bool,
) -> Result<Measured> {
    let start = Instant::now();
    let mut p = Proc::spawn(cmd, false)?;
    let mut peak_kib = None;
    let mut killed = false;
    let status = loop {
        if poll_rss && let Some(kib) = p.vm_hwm_kib() {
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

/// `swarm --store STORE` with the DHT off, ignoring the environment's `SWARM_STORE`.
pub fn swarm_cmd(bin: &Path, store: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--store")
        .arg(store)
        .env("SWARM_NO_DHT", "1")
        .env_remove("SWARM_STORE");
    c
}
