//! The raw-QUIC ceiling: quinn memory to memory, one bidirectional stream, no disk, no hashing.
//! Run as two processes of this binary, like the other contenders:
//!
//! ```text
//! bench-net __quinn-server --size BYTES [--quinn-defaults] [--timeout-secs N]
//!     prints `cert HEX` and `listening on ADDR`, serves one connection, prints `peak_kib N`
//! bench-net __quinn-client --addr ADDR --cert HEX --size BYTES [--quinn-defaults] [--timeout-secs N]
//!     asks for BYTES on one stream, reads them, prints `received BYTES in SECS s`
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub(crate) const SERVER: &str = "__quinn-server";
pub(crate) const CLIENT: &str = "__quinn-client";

const ALPN: &[u8] = b"bench-net-raw";
/// What the server writes per call: one buffer, sent again and again without copying.
const CHUNK: usize = 1 << 20;

struct Args {
    size: u64,
    defaults: bool,
    timeout: Duration,
    addr: Option<SocketAddr>,
    cert: Option<Vec<u8>>,
}

impl Args {
    fn parse(args: &[String]) -> Result<Self> {
        let mut a = Args {
            size: 0,
            defaults: false,
            timeout: Duration::from_secs(600),
            addr: None,
            cert: None,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--size" => a.size = value()?.parse().context("--size")?,
                "--quinn-defaults" => a.defaults = true,
                "--timeout-secs" => {
                    a.timeout = Duration::from_secs(value()?.parse().context("--timeout-secs")?);
                }
                "--addr" => a.addr = Some(value()?.parse().context("--addr")?),
                "--cert" => a.cert = Some(hex_decode(value()?)?),
                _ => bail!("unknown argument {arg:?}"),
            }
        }
        ensure!(a.size > 0, "--size is required");
        Ok(a)
    }
}

/// The engine's transport settings (engine/src/net/mod.rs, fn `transport`), or quinn's own.
/// Keep in step with the engine: this is the ceiling for our transport as configured.
fn transport(defaults: bool, keep_alive: bool) -> quinn::TransportConfig {
    let mut c = quinn::TransportConfig::default();
    if defaults {
        return c;
    }
    let idle = Duration::from_secs(30);
    c.max_concurrent_bidi_streams(65u32.into());
    c.max_concurrent_uni_streams(0u32.into());
    c.max_idle_timeout(idle.try_into().ok());
    c.stream_receive_window((4u32 << 20).into());
    c.receive_window((8u32 << 20).into());
    c.send_window(16 << 20);
    if keep_alive {
        c.keep_alive_interval(Some(idle / 3));
    }
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(8952);
    c.mtu_discovery_config(Some(mtu));
    c
}

/// Socket buffers the engine asks for (engine/src/net/mod.rs, `SOCKET_BUFFER`).
const SOCKET_BUFFER: usize = 8 << 20;

/// An endpoint on 127.0.0.1: with the engine's socket buffers, or as quinn binds by default.
fn endpoint(defaults: bool, server: Option<quinn::ServerConfig>) -> Result<quinn::Endpoint> {
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    if defaults {
        return Ok(match server {
            Some(config) => quinn::Endpoint::server(config, addr)?,
            None => quinn::Endpoint::client(addr)?,
        });
    }
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort, as in the engine: the kernel caps them at net.core.[rw]mem_max.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    let runtime = quinn::default_runtime().context("no async runtime")?;
    Ok(quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket.into(),
        runtime,
    )?)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // Multi-threaded, as `swarm` runs.
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub(crate) fn server(args: &[String]) -> Result<()> {
    let a = Args::parse(args)?;
    let rt = runtime()?;
    let r = rt.block_on(async {
        tokio::time::timeout(a.timeout, serve(&a))
            .await
            .context("the raw quinn server timed out")?
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    r?;
    // The parent cannot read this once the process has exited.
    if let Some(kib) = swarm_benches::disk::vm_hwm_kib(std::process::id()) {
        println!("peak_kib {kib}");
    }
    Ok(())
}

async fn serve(a: &Args) -> Result<()> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    config.transport_config(Arc::new(transport(a.defaults, false)));
    let endpoint = endpoint(a.defaults, Some(config))?;
    println!("cert {}", hex_encode(&cert));
    println!("listening on {}", endpoint.local_addr()?);

    let incoming = endpoint.accept().await.context("endpoint closed")?;
    let conn = incoming.await?;
    let (mut send, mut recv) = conn.accept_bi().await?;
    let mut request = [0u8; 8];
    recv.read_exact(&mut request).await?;
    let size = u64::from_le_bytes(request);
    ensure!(
        size == a.size,
        "the client asked for {size} bytes, not {}",
        a.size
    );

    let chunk = Bytes::from(pattern(CHUNK));
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(CHUNK as u64))?;
        send.write_chunk(chunk.slice(..n)).await?;
        left -= n as u64;
    }
    send.finish()?;
    // The client closes the connection once it has read everything.
    conn.closed().await;
    endpoint.wait_idle().await;
    Ok(())
}

pub(crate) fn client(args: &[String]) -> Result<()> {
    let a = Args::parse(args)?;
    let rt = runtime()?;
    let r = rt.block_on(async {
        tokio::time::timeout(a.timeout, fetch(&a))
            .await
            .context("the raw quinn client timed out")?
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    let (received, secs) = r?;
    println!("received {received} in {secs} s");
    Ok(())
}

async fn fetch(a: &Args) -> Result<(u64, f64)> {
    let addr = a.addr.context("--addr is required")?;
    let cert = a.cert.clone().context("--cert is required")?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(cert))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    config.transport_config(Arc::new(transport(a.defaults, true)));
    let mut endpoint = endpoint(a.defaults, None)?;
    endpoint.set_default_client_config(config);

    let start = Instant::now();
    let conn = endpoint.connect(addr, "localhost")?.await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(&a.size.to_le_bytes()).await?;
    send.finish()?;
    let mut received = 0u64;
    // In order, as any real reader needs; each chunk is dropped as it comes.
    while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
        received += chunk.bytes.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    ensure!(
        received == a.size,
        "received {received} of {} bytes",
        a.size
    );
    conn.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    Ok((received, secs))
}

/// Bytes that are not all zeros (QUIC does not compress, but be safe).
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut v = vec![0u8; len];
    for word in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
    }
    v
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Result<Vec<u8>> {
    ensure!(s.len().is_multiple_of(2), "odd-length hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).context("not hex"))
        .collect()
}
