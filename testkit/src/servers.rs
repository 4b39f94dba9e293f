//! Real web servers from the system, started on 127.0.0.1 for one test or
//! benchmark: nginx (Debian's `nginx-light`) and Python's `http.server`;
//! and headless Chromium, to load a page the way a user's browser does.
//! When one is not installed, [`Missing`] says so with the install hint,
//! and the caller prints it as SKIPPED.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A server program that is not installed.
#[derive(Debug)]
pub struct Missing(pub String);

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A server process; killed when dropped.
pub struct Process {
    child: Child,
    addr: SocketAddr,
    dir: Option<PathBuf>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Process {
    /// The base URL, with a trailing `/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id (to read its resource use).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()])
        .collect();
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// A free port on 127.0.0.1 (free a moment ago).
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_listening(child: &mut Child, addr: SocketAddr, what: &str) -> std::io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            return Err(std::io::Error::other(format!("{what} exited: {status}")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(std::io::Error::other(format!(
        "{what} did not start listening on {addr}"
    )))
}

/// A scratch directory of our own under the system temp directory.
fn scratch(what: &str) -> std::io::Result<PathBuf> {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "swarm-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// nginx serving `root` on 127.0.0.1: static files with its own Range
/// handling (206, multipart ranges, 416), sendfile, keep-alive. With
/// `limit_rate`, each response is capped to that many bytes per second.
pub fn nginx(root: &Path, limit_rate: Option<u64>) -> Result<std::io::Result<Process>, Missing> {
    let Some(bin) = find(&["nginx"]) else {
        return Err(Missing(
            "nginx is not installed (apt-get install nginx-light)".into(),
        ));
    };
    Ok(start_nginx(&bin, root, limit_rate))
}

fn start_nginx(bin: &Path, root: &Path, limit_rate: Option<u64>) -> std::io::Result<Process> {
    let dir = scratch("nginx")?;
    let port = free_port()?;
    let d = dir.display();
    let rate = limit_rate
        .map(|r| format!("limit_rate {r};"))
        .unwrap_or_default();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 512; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         sendfile on;\n  tcp_nopush on;\n  keepalive_requests 100000;\n  default_type application/octet-stream;\n\
         server {{ listen 127.0.0.1:{port}; root {root}; {rate} }}\n}}\n",
        root = root.display(),
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    let mut child = Command::new(bin)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if let Err(e) = wait_listening(&mut child, addr, "nginx") {
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        let _ = child.kill();
        return Err(std::io::Error::other(format!("{e}: {log}")));
    }
    Ok(Process {
        child,
        addr,
        dir: Some(dir),
    })
}

/// Python's `http.server` serving `root` on 127.0.0.1: it ignores Range
/// and answers every GET with 200 and the whole file.
pub fn python_http(root: &Path) -> Result<std::io::Result<Process>, Missing> {
    let Some(bin) = find(&["python3"]) else {
        return Err(Missing(
            "python3 is not installed (apt-get install python3)".into(),
        ));
    };
    Ok((|| {
        let port = free_port()?;
        let mut child = Command::new(bin)
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_listening(&mut child, addr, "python3 -m http.server")?;
        Ok(Process {
            child,
            addr,
            dir: None,
        })
    })())
}

/// Load `url` in headless Chromium (Debian's `chromium`), let its scripts
/// run for `budget_ms` of virtual time, and return the DOM it ends with.
/// Bounded: Chromium is killed after a minute.
pub fn chromium_dom(url: &str, budget_ms: u64) -> Result<std::io::Result<String>, Missing> {
    let bin = chromium()?;
    Ok(run_chromium(&bin, url, budget_ms))
}

/// Where Chromium is installed, or why it is missing.
pub fn chromium() -> Result<PathBuf, Missing> {
    find(&["chromium", "chromium-browser", "google-chrome"])
        .ok_or_else(|| Missing("chromium is not installed (apt-get install chromium)".into()))
}

fn run_chromium(bin: &Path, url: &str, budget_ms: u64) -> std::io::Result<String> {
    let dir = scratch("chromium")?;
    let out = dir.join("dom.html");
    let file = std::fs::File::create(&out)?;
    let mut child = Command::new(bin)
        .args([
            "--headless",
            // CI runs as root, where Chromium's sandbox cannot start.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--dump-dom")
        .arg(url)
        // Its own scratch files go with the profile, and are removed.
        .env("TMPDIR", &dir)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
            return Err(std::io::Error::other("chromium ran for over a minute"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = std::fs::read_to_string(&out);
    let _ = std::fs::remove_dir_all(&dir);
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "chromium exited with {status}"
        )));
    }
    dom
}
