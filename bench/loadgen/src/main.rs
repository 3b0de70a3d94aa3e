//! Engine.IO v4 load generator for `bench/run.js`.
//!
//! It speaks the protocol itself (no engine.io-client): WebSocket sessions
//! (`/engine.io/?EIO=4&transport=websocket`, open packet `0{...}`, pings `2`
//! answered with pongs `3`, messages `4<text>` or binary frames) and HTTP
//! long-polling sessions over raw HTTP/1.1 keep-alive connections, and
//! WebTransport sessions (HTTP/3 over QUIC, with wtransport: one
//! bidirectional stream per session carrying engine.io-parser's stream
//! framing, the client's open packet first). It only connects to 127.0.0.1.
//!
//! Every scenario runs for a bounded time. One message is in flight per
//! connection and every echo is checked byte for byte.
//!
//! Control protocol with the driver: JSON lines on stdout. A line
//! `{"ev":"mark",...}` waits for one line (`ok`) on stdin, so the driver can
//! sample the server process (CPU time, RSS) or run its GC at that point.
//! The last line is `{"ev":"result",...}`; in WebSocket echo it carries the
//! round trips (send to echo) of the messages of the measured window:
//! `rtt_count`, `p50_us`, `p99_us`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines, Stdin};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{client_async, WebSocketStream};

type Ws = WebSocketStream<Io>;

/// A connection to the server: plain TCP, or TLS when `--ca` is given.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Io::Plain($s) => {
                let $s = std::pin::Pin::new($s);
                $e
            }
            Io::Tls($s) => {
                let $s = std::pin::Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl tokio::io::AsyncRead for Io {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl tokio::io::AsyncWrite for Io {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}

/// TLS client settings (trusting the one certificate of `--ca`), per ALPN.
static TLS: std::sync::OnceLock<(tokio_rustls::TlsConnector, tokio_rustls::TlsConnector)> =
    std::sync::OnceLock::new();

fn tls_setup(ca_path: &str) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_path).map_err(|e| format!("--ca: {e}"))? {
        roots
            .add(cert.map_err(|e| format!("--ca: {e}"))?)
            .map_err(|e| format!("--ca: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = |alpn: &[u8]| -> Result<tokio_rustls::TlsConnector, String> {
        let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        c.alpn_protocols = vec![alpn.to_vec()];
        Ok(tokio_rustls::TlsConnector::from(Arc::new(c)))
    };
    let _ = TLS.set((config(b"http/1.1")?, config(b"h2")?));
    Ok(())
}

/// Connects to the server (loopback), over TLS when set up, offering `h2`
/// or `http/1.1`.
async fn connect(port: u16, h2: bool) -> Result<Io, String> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    let Some((http1, http2)) = TLS.get() else {
        return Ok(Io::Plain(stream));
    };
    let connector = if h2 { http2 } else { http1 };
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("an IP address");
    let tls = connector
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    Ok(Io::Tls(Box::new(tls)))
}

const USAGE: &str = "usage: eio-loadgen <ws-echo|wt-echo|poll-echo|conn-rate|idle|broadcast> --port P \
[--path /engine.io/] [--conns N] [--size BYTES] [--binary] [--warmup-ms MS] [--duration-ms MS] \
[--concurrency N] [--steps N,N,...] [--count K] [--threads T] [--timeout-ms MS] \
[--ca CERT.pem (TLS)] [--h2 (poll-echo over HTTP/2, with --ca)] \
[--sio (broadcast: Socket.IO clients of the main namespace)] [--receivers N (broadcast: sessions each reaches)] \
[--wt (idle: WebTransport sessions)]; wt-echo and --wt: --port is the server's UDP port";

#[derive(Clone, Debug)]
struct Args {
    mode: String,
    port: u16,
    path: String,
    conns: usize,
    size: usize,
    binary: bool,
    warmup_ms: u64,
    duration_ms: u64,
    concurrency: usize,
    steps: Vec<usize>,
    count: u64,
    threads: usize,
    timeout_ms: u64,
    /// A PEM certificate to trust: connect over TLS (wss, https).
    ca: Option<String>,
    /// Polling over HTTP/2 (with `--ca`): sessions share connections.
    h2: bool,
    /// Broadcast: each session is a Socket.IO client of `/`, and the
    /// broadcasts are its `b` events.
    sio: bool,
    /// Broadcast: how many sessions each broadcast reaches (default: all).
    receivers: Option<usize>,
    /// Idle: WebTransport sessions (`--port` is then the UDP port).
    wt: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or_else(|| USAGE.to_string())?;
    let mut a = Args {
        mode,
        port: 0,
        path: "/engine.io/".into(),
        conns: 100,
        size: 64,
        binary: false,
        warmup_ms: 2000,
        duration_ms: 5000,
        concurrency: 100,
        steps: Vec::new(),
        count: 100,
        threads: 0,
        timeout_ms: 10_000,
        ca: None,
        h2: false,
        sio: false,
        receivers: None,
        wt: false,
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |s: String| {
            s.parse::<u64>()
                .map_err(|e| format!("bad number {s:?}: {e}"))
        };
        match flag.as_str() {
            "--port" => a.port = num(val()?)? as u16,
            "--path" => a.path = val()?,
            "--conns" => a.conns = num(val()?)? as usize,
            "--size" => a.size = num(val()?)? as usize,
            "--binary" => a.binary = true,
            "--warmup-ms" => a.warmup_ms = num(val()?)?,
            "--duration-ms" => a.duration_ms = num(val()?)?,
            "--concurrency" => a.concurrency = num(val()?)?.max(1) as usize,
            "--steps" => {
                a.steps = val()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| num(s.to_string()).map(|n| n as usize))
                    .collect::<Result<_, _>>()?
            }
            "--count" => a.count = num(val()?)?,
            "--threads" => a.threads = num(val()?)? as usize,
            "--timeout-ms" => a.timeout_ms = num(val()?)?,
            "--ca" => a.ca = Some(val()?),
            "--h2" => a.h2 = true,
            "--sio" => a.sio = true,
            "--receivers" => a.receivers = Some(num(val()?)? as usize),
            "--wt" => a.wt = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    if a.port == 0 {
        return Err(format!("--port is required\n{USAGE}"));
    }
    if !a.path.ends_with('/') {
        a.path.push('/');
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    raise_nofile();
    if let Some(ca) = &args.ca {
        if let Err(e) = tls_setup(ca) {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
    let threads = if args.threads > 0 {
        args.threads
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    };
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    let code = rt.block_on(async move {
        match run(args).await {
            Ok(()) => 0,
            Err(e) => {
                emit(&format!("{{\"ev\":\"fatal\",\"error\":{}}}", json_str(&e)));
                1
            }
        }
    });
    // Sessions still open are closed by the kernel; do not wait for tasks.
    std::process::exit(code);
}

/// Raises the soft fd limit to the hard one (idle scenarios hold 8000+ sockets).
fn raise_nofile() {
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

/// CLOCK_MONOTONIC in ns: the same clock as Node's `process.hrtime.bigint()`.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn emit(line: &str) {
    let out = std::io::stdout();
    let mut out = out.lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// The stdin side of the control protocol.
struct Ctl {
    lines: Lines<BufReader<Stdin>>,
}

impl Ctl {
    fn new() -> Self {
        Ctl {
            lines: BufReader::new(tokio::io::stdin()).lines(),
        }
    }

    /// Emits a mark and waits for the driver's `ok`.
    async fn mark(&mut self, name: &str, extra: &str) -> Result<(), String> {
        let sep = if extra.is_empty() { "" } else { "," };
        emit(&format!(
            "{{\"ev\":\"mark\",\"name\":{}{sep}{extra}}}",
            json_str(name)
        ));
        match self.lines.next_line().await {
            Ok(Some(l)) if l.trim() == "ok" => Ok(()),
            Ok(Some(l)) => Err(format!("driver answered {l:?} to mark {name}")),
            Ok(None) => Err("driver closed stdin".into()),
            Err(e) => Err(format!("stdin: {e}")),
        }
    }
}

/// Counters shared by the connection tasks.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    count: AtomicU64,
    pings: AtomicU64,
    errors: AtomicU64,
    closed: AtomicU64,
    opened: AtomicU64,
    /// Set between the `start` and `end` marks: the WebSocket echo workers
    /// time each message then (send to echo) into `rtt`.
    measuring: AtomicBool,
    rtt: RttHistogram,
}

/// Round-trip times in µs, a log-bucket histogram the workers share: exact
/// below 64 µs, then 64 buckets per power of two (at most 1.6% wide).
struct RttHistogram {
    buckets: Box<[AtomicU64]>,
}

/// Sub-buckets per power of two (2^RTT_SUB_BITS).
const RTT_SUB_BITS: u32 = 6;
/// Longest time told apart: 2^RTT_MAX_BITS µs (about 12 days).
const RTT_MAX_BITS: u32 = 40;

impl Default for RttHistogram {
    fn default() -> Self {
        let n = (1usize << RTT_SUB_BITS) * (RTT_MAX_BITS - RTT_SUB_BITS + 1) as usize;
        RttHistogram {
            buckets: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl RttHistogram {
    fn index(us: u64) -> usize {
        let sub = 1u64 << RTT_SUB_BITS;
        let us = us.min((1u64 << RTT_MAX_BITS) - 1);
        if us < sub {
            return us as usize;
        }
        let e = 63 - us.leading_zeros();
        let shift = e - RTT_SUB_BITS;
        (sub + u64::from(shift) * sub + ((us >> shift) - sub)) as usize
    }

    /// The middle of bucket `i`, in µs.
    fn value(i: usize) -> f64 {
        let sub = 1usize << RTT_SUB_BITS;
        if i < sub {
            return i as f64;
        }
        let shift = (i - sub) / sub;
        let low = ((sub + (i - sub) % sub) as u64) << shift;
        low as f64 + ((1u64 << shift) as f64 - 1.0) / 2.0
    }

    fn record(&self, us: u64) {
        self.buckets[Self::index(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// (count, p50 µs, p99 µs), or None when nothing was recorded.
    fn summary(&self) -> Option<(u64, f64, f64)> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let at = |q: f64| {
            let want = ((q * total as f64).ceil() as u64).max(1);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= want {
                    return Self::value(i);
                }
            }
            Self::value(counts.len() - 1)
        };
        Some((total, at(0.50), at(0.99)))
    }
}

impl Shared {
    fn error(&self, what: String) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if n < 10 {
            eprintln!("eio-loadgen: {what}");
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    match args.mode.as_str() {
        "ws-echo" => ws_echo(args).await,
        "wt-echo" => wt_echo(args).await,
        "poll-echo" => poll_echo(args).await,
        "conn-rate" => conn_rate(args).await,
        "idle" => idle(args).await,
        "broadcast" => broadcast(args).await,
        m => Err(format!("unknown mode {m}\n{USAGE}")),
    }
}

// ---------------------------------------------------------------- WebSocket

async fn ws_open(port: u16, path: &str) -> Result<Ws, String> {
    let stream = connect(port, false).await?;
    let scheme = if TLS.get().is_some() { "wss" } else { "ws" };
    let url = format!("{scheme}://127.0.0.1:{port}{path}?EIO=4&transport=websocket");
    let (mut ws, _) = client_async(url, stream)
        .await
        .map_err(|e| format!("websocket handshake: {e}"))?;
    match ws.next().await {
        Some(Ok(Message::Text(t)))
            if t.as_str().starts_with("0{") && t.as_str().contains("\"sid\"") =>
        {
            Ok(ws)
        }
        Some(Ok(m)) => Err(format!("expected the open packet, got {}", describe(&m))),
        Some(Err(e)) => Err(format!("reading the open packet: {e}")),
        None => Err("closed before the open packet".into()),
    }
}

fn describe(m: &Message) -> String {
    match m {
        Message::Text(t) => {
            let s = t.as_str();
            if s.len() > 40 {
                format!(
                    "text {:?}... ({} B)",
                    &s[..s.char_indices().nth(40).map_or(s.len(), |c| c.0)],
                    s.len()
                )
            } else {
                format!("text {s:?}")
            }
        }
        Message::Binary(b) => format!("binary ({} B)", b.len()),
        Message::Close(c) => format!("close {c:?}"),
        other => format!("{other:?}"),
    }
}

/// Connects an open session to Socket.IO's main namespace (`40`, answered
/// `40{"sid":…}`).
async fn sio_connect(mut ws: Ws) -> Result<Ws, String> {
    ws.send(Message::Text(Utf8Bytes::from_static("40")))
        .await
        .map_err(|e| format!("socket.io connect: {e}"))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().starts_with("40") => return Ok(ws),
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                ws.send(Message::Text(Utf8Bytes::from_static("3")))
                    .await
                    .map_err(|e| format!("pong: {e}"))?;
            }
            Some(Ok(m)) => {
                return Err(format!(
                    "expected socket.io's CONNECT, got {}",
                    describe(&m)
                ))
            }
            Some(Err(e)) => return Err(format!("reading socket.io's CONNECT: {e}")),
            None => return Err("closed before socket.io's CONNECT".into()),
        }
    }
}

/// Opens `n` sessions with at most `concurrency` handshakes in flight.
async fn open_many(args: &Args, n: usize, shared: &Arc<Shared>) -> Result<Vec<Ws>, String> {
    let port = args.port;
    let path = args.path.clone();
    let sio = args.sio;
    open_many_with(args, n, shared, "websocket", move || {
        let path = path.clone();
        async move {
            let ws = ws_open(port, &path).await?;
            if sio {
                sio_connect(ws).await
            } else {
                Ok(ws)
            }
        }
    })
    .await
}

/// Opens `n` sessions with `open`, at most `concurrency` of them in flight,
/// each within `--timeout-ms`.
async fn open_many_with<T, F, Fut>(
    args: &Args,
    n: usize,
    shared: &Arc<Shared>,
    what: &'static str,
    open: F,
) -> Result<Vec<T>, String>
where
    T: Send + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>> + Send + 'static,
{
    let sem = Arc::new(Semaphore::new(args.concurrency));
    let mut set = JoinSet::new();
    for _ in 0..n {
        let sem = sem.clone();
        let timeout = Duration::from_millis(args.timeout_ms);
        let open = open();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            match tokio::time::timeout(timeout, open).await {
                Ok(r) => r,
                Err(_) => Err(format!("{what} open timed out")),
            }
        });
    }
    let mut out = Vec::with_capacity(n);
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(s)) => {
                shared.opened.fetch_add(1, Ordering::Relaxed);
                out.push(s)
            }
            Ok(Err(e)) => {
                shared.error(e.clone());
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(format!("task: {e}"));
            }
        }
    }
    match first_err {
        Some(e) => Err(format!(
            "{} of {n} sessions failed to open; first: {e}",
            n - out.len()
        )),
        None => Ok(out),
    }
}

/// Fills `buf` with the filler of every message: printable ASCII for text,
/// bytes that are not valid UTF-8 for binary (binary frames must stay binary).
fn init_payload(buf: &mut [u8], binary: bool) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = if binary {
            (i.wrapping_mul(31) % 251) as u8 | 0x80
        } else {
            b"abcdefghijklmnopqrstuvwxyz0123456789"[i % 36]
        };
    }
}

/// Writes the header of message `seq` of connection `id` (24 ASCII chars)
/// over the start of the payload, so that every message is distinct.
fn stamp_payload(buf: &mut [u8], id: usize, seq: u64) {
    let head = format!("{id:08x}:{seq:014x}:");
    let n = head.len().min(buf.len());
    buf[..n].copy_from_slice(&head.as_bytes()[..n]);
}

async fn ws_echo_worker(id: usize, mut ws: Ws, args: Args, shared: Arc<Shared>) {
    let mut payload = vec![0u8; args.size];
    init_payload(&mut payload, args.binary);
    let mut seq = 0u64;
    let res: Result<(), String> = async {
        while !shared.stop.load(Ordering::Relaxed) {
            stamp_payload(&mut payload, id, seq);
            let msg = if args.binary {
                Message::Binary(Bytes::copy_from_slice(&payload))
            } else {
                let mut s = String::with_capacity(args.size + 1);
                s.push('4');
                s.push_str(std::str::from_utf8(&payload).unwrap());
                Message::Text(Utf8Bytes::from(s))
            };
            // Timed only when sent inside the measured window (and checked
            // again at the echo): two clock reads per message.
            let timed = shared.measuring.load(Ordering::Relaxed);
            let sent = Instant::now();
            ws.send(msg).await.map_err(|e| format!("send: {e}"))?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let s = t.as_str();
                        if s == "2" {
                            shared.pings.fetch_add(1, Ordering::Relaxed);
                            ws.send(Message::Text(Utf8Bytes::from_static("3")))
                                .await
                                .map_err(|e| format!("pong: {e}"))?;
                            continue;
                        }
                        if !args.binary
                            && s.len() == args.size + 1
                            && s.as_bytes()[0] == b'4'
                            && s.as_bytes()[1..] == payload[..]
                        {
                            break;
                        }
                        return Err(format!(
                            "conn {id} seq {seq}: echo mismatch: got {}",
                            describe(&Message::Text(t))
                        ));
                    }
                    Some(Ok(Message::Binary(b))) => {
                        if args.binary && b[..] == payload[..] {
                            break;
                        }
                        return Err(format!(
                            "conn {id} seq {seq}: binary echo mismatch ({} B, expected {} B)",
                            b.len(),
                            payload.len()
                        ));
                    }
                    Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => continue,
                    Some(Ok(m)) => {
                        return Err(format!("conn {id} seq {seq}: unexpected {}", describe(&m)))
                    }
                    Some(Err(e)) => return Err(format!("conn {id} seq {seq}: read: {e}")),
                    None => return Err(format!("conn {id} seq {seq}: closed by the server")),
                }
            }
            if timed && shared.measuring.load(Ordering::Relaxed) {
                shared.rtt.record(sent.elapsed().as_micros() as u64);
            }
            shared.count.fetch_add(1, Ordering::Relaxed);
            seq += 1;
        }
        Ok(())
    }
    .await;
    if let Err(e) = res {
        shared.error(e);
    }
    shared.closed.fetch_add(1, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
}

/// Warm-up, then the measured window between the `start` and `end` marks.
/// Returns (count in window, window seconds).
async fn measured_window(
    ctl: &mut Ctl,
    args: &Args,
    shared: &Shared,
) -> Result<(u64, f64, u64), String> {
    tokio::time::sleep(Duration::from_millis(args.warmup_ms)).await;
    ctl.mark("start", "").await?;
    shared.measuring.store(true, Ordering::Relaxed);
    let c0 = shared.count.load(Ordering::Relaxed);
    let p0 = shared.pings.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(args.duration_ms)).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let c1 = shared.count.load(Ordering::Relaxed);
    let p1 = shared.pings.load(Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    ctl.mark("end", "").await?;
    Ok((c1 - c0, secs, p1 - p0))
}

async fn stop_workers(shared: &Shared, set: &mut JoinSet<()>) {
    shared.stop.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while set.join_next().await.is_some() {}
    })
    .await;
}

/// The measured window of an echo run, then its result line.
async fn echo_result(
    ctl: &mut Ctl,
    args: &Args,
    shared: &Shared,
    set: &mut JoinSet<()>,
) -> Result<(), String> {
    let (count, secs, pings) = measured_window(ctl, args, shared).await?;
    stop_workers(shared, set).await;
    // Round trips, where the workers time them (WebSocket echo).
    let rtt = match shared.rtt.summary() {
        Some((n, p50, p99)) => {
            format!(",\"rtt_count\":{n},\"p50_us\":{p50:.1},\"p99_us\":{p99:.1}")
        }
        None => String::new(),
    };
    emit(&format!(
        "{{\"ev\":\"result\",\"count\":{count},\"secs\":{secs:.6},\"pings\":{pings},\"total\":{},\"errors\":{},\"conns\":{}{rtt}}}",
        shared.count.load(Ordering::Relaxed),
        shared.errors.load(Ordering::Relaxed),
        args.conns
    ));
    Ok(())
}

async fn ws_echo(args: Args) -> Result<(), String> {
    let shared = Arc::new(Shared::default());
    let mut ctl = Ctl::new();
    let conns = open_many(&args, args.conns, &shared).await?;
    let mut set = JoinSet::new();
    for (id, ws) in conns.into_iter().enumerate() {
        set.spawn(ws_echo_worker(id, ws, args.clone(), shared.clone()));
    }
    echo_result(&mut ctl, &args, &shared, &mut set).await
}

// ------------------------------------------------------------- WebTransport

/// QUIC endpoints (UDP sockets) the WebTransport sessions share, in turn: a
/// few, so that the load generator's receive work is spread over its
/// threads, not one per session (each holds a large receive buffer).
const WT_ENDPOINTS: usize = 16;

/// Longest WebTransport packet accepted (the echo's are 16 KiB at most).
const WT_MAX_PACKET: u64 = 16 << 20;

/// The client endpoints, handed out in turn.
struct WtPool {
    endpoints: Vec<Arc<wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>>>,
    next: AtomicU64,
}

impl WtPool {
    fn new(sessions: usize) -> Result<Self, String> {
        let mut endpoints = Vec::new();
        for _ in 0..sessions.clamp(1, WT_ENDPOINTS) {
            // Any certificate: the server's is self-signed, made for the run.
            let config = wtransport::ClientConfig::builder()
                .with_bind_address(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
                .with_no_cert_validation()
                // The server's limit (its heartbeat, and at least 30 s) decides.
                .max_idle_timeout(None)
                .map_err(|e| format!("QUIC idle timeout: {e}"))?
                .build();
            let ep =
                wtransport::Endpoint::client(config).map_err(|e| format!("QUIC endpoint: {e}"))?;
            endpoints.push(Arc::new(ep));
        }
        Ok(WtPool {
            endpoints,
            next: AtomicU64::new(0),
        })
    }

    fn pick(&self) -> Arc<wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        self.endpoints[i % self.endpoints.len()].clone()
    }
}

/// An Engine.IO session over WebTransport: one bidirectional stream carrying
/// engine.io-parser's stream framing (a length header, its first bit set for
/// binary payloads, then the payload).
struct Wt {
    conn: wtransport::Connection,
    send: wtransport::SendStream,
    recv: wtransport::RecvStream,
    buf: BytesMut,
    _endpoint: Arc<wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>>,
}

/// A packet's length header.
fn wt_header(out: &mut Vec<u8>, len: usize, binary: bool) {
    let flag = if binary { 0x80 } else { 0 };
    if len < 126 {
        out.push(flag | len as u8);
    } else if len < 65536 {
        out.push(flag | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(flag | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// One framed packet: `(binary, payload)`, or None until more bytes came.
fn wt_parse(buf: &mut BytesMut) -> Result<Option<(bool, Bytes)>, String> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (head, len) = match first & 0x7f {
        126 if buf.len() >= 3 => (3, u16::from_be_bytes([buf[1], buf[2]]) as u64),
        127 if buf.len() >= 9 => (9, u64::from_be_bytes(buf[1..9].try_into().unwrap())),
        126 | 127 => return Ok(None),
        n => (1, n as u64),
    };
    if len > WT_MAX_PACKET {
        return Err(format!("webtransport packet of {len} B"));
    }
    if buf.len() < head + len as usize {
        return Ok(None);
    }
    buf.advance(head);
    Ok(Some((
        first & 0x80 != 0,
        buf.split_to(len as usize).freeze(),
    )))
}

fn wt_describe(binary: bool, p: &[u8]) -> String {
    if binary {
        return format!("binary ({} B)", p.len());
    }
    let s = String::from_utf8_lossy(&p[..p.len().min(40)]);
    if p.len() > 40 {
        format!("text {s:?}... ({} B)", p.len())
    } else {
        format!("text {s:?}")
    }
}

impl Wt {
    /// Opens a session and its stream, sends the open packet and reads the
    /// server's.
    async fn open(
        endpoint: Arc<wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>>,
        port: u16,
        path: &str,
    ) -> Result<Self, String> {
        let url = format!("https://127.0.0.1:{port}{path}?EIO=4&transport=webtransport");
        let conn = endpoint
            .connect(url)
            .await
            .map_err(|e| format!("webtransport session: {e}"))?;
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| format!("webtransport stream: {e}"))?
            .await
            .map_err(|e| format!("webtransport stream: {e}"))?;
        let mut wt = Wt {
            conn,
            send,
            recv,
            buf: BytesMut::with_capacity(64 * 1024),
            _endpoint: endpoint,
        };
        wt.write(&[0x01, b'0']).await?;
        match wt.read().await? {
            (false, p) if p.starts_with(b"0{") && find(&p, b"\"sid\"").is_some() => Ok(wt),
            (binary, p) => Err(format!(
                "expected the open packet, got {}",
                wt_describe(binary, &p)
            )),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.send
            .write_all(bytes)
            .await
            .map_err(|e| format!("webtransport write: {e}"))
    }

    /// The next packet.
    async fn read(&mut self) -> Result<(bool, Bytes), String> {
        loop {
            if let Some(p) = wt_parse(&mut self.buf)? {
                return Ok(p);
            }
            if self.buf.capacity() - self.buf.len() < 16 * 1024 {
                self.buf.reserve(64 * 1024);
            }
            match self.recv.read_buf(&mut self.buf).await {
                Ok(0) => return Err("webtransport stream closed by the server".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("webtransport read: {e}")),
            }
        }
    }

    /// Answers a ping (`2`) with a pong; false for any other packet.
    async fn pong(&mut self, shared: &Shared, binary: bool, p: &[u8]) -> Result<bool, String> {
        if binary || p != b"2" {
            return Ok(false);
        }
        shared.pings.fetch_add(1, Ordering::Relaxed);
        self.write(&[0x01, b'3']).await?;
        Ok(true)
    }

    fn close(&self) {
        self.conn.close(wtransport::VarInt::from_u32(0), b"");
    }
}

async fn wt_open_many(
    args: &Args,
    n: usize,
    shared: &Arc<Shared>,
    pool: &Arc<WtPool>,
) -> Result<Vec<Wt>, String> {
    let port = args.port;
    let path = args.path.clone();
    let pool = pool.clone();
    open_many_with(args, n, shared, "webtransport", move || {
        let endpoint = pool.pick();
        let path = path.clone();
        async move { Wt::open(endpoint, port, &path).await }
    })
    .await
}

async fn wt_echo_worker(id: usize, mut wt: Wt, args: Args, shared: Arc<Shared>) {
    let mut payload = vec![0u8; args.size];
    init_payload(&mut payload, args.binary);
    // The packet as framed: header, `4` for text, then the payload.
    let mut frame = Vec::with_capacity(args.size + 10);
    let res: Result<(), String> = async {
        let mut seq = 0u64;
        while !shared.stop.load(Ordering::Relaxed) {
            stamp_payload(&mut payload, id, seq);
            frame.clear();
            if args.binary {
                wt_header(&mut frame, payload.len(), true);
            } else {
                wt_header(&mut frame, payload.len() + 1, false);
                frame.push(b'4');
            }
            frame.extend_from_slice(&payload);
            wt.write(&frame).await?;
            loop {
                let (binary, p) = wt
                    .read()
                    .await
                    .map_err(|e| format!("conn {id} seq {seq}: {e}"))?;
                if wt.pong(&shared, binary, &p).await? {
                    continue;
                }
                let echoed = if args.binary {
                    binary && p[..] == payload[..]
                } else {
                    !binary && p.len() == args.size + 1 && p[0] == b'4' && p[1..] == payload[..]
                };
                if echoed {
                    break;
                }
                return Err(format!(
                    "conn {id} seq {seq}: echo mismatch: got {} (expected {} B)",
                    wt_describe(binary, &p),
                    payload.len()
                ));
            }
            shared.count.fetch_add(1, Ordering::Relaxed);
            seq += 1;
        }
        Ok(())
    }
    .await;
    if let Err(e) = res {
        shared.error(e);
    }
    shared.closed.fetch_add(1, Ordering::Relaxed);
    wt.close();
}

async fn wt_echo(args: Args) -> Result<(), String> {
    let shared = Arc::new(Shared::default());
    let mut ctl = Ctl::new();
    let pool = Arc::new(WtPool::new(args.conns)?);
    let conns = wt_open_many(&args, args.conns, &shared, &pool).await?;
    let mut set = JoinSet::new();
    for (id, wt) in conns.into_iter().enumerate() {
        set.spawn(wt_echo_worker(id, wt, args.clone(), shared.clone()));
    }
    echo_result(&mut ctl, &args, &shared, &mut set).await
}

/// An idle WebTransport session: answers pings, nothing else expected.
async fn wt_idle_session(mut wt: Wt, shared: Arc<Shared>) {
    let res: Result<(), String> = async {
        loop {
            let (binary, p) = wt.read().await?;
            if !wt.pong(&shared, binary, &p).await? {
                return Err(format!("idle session got {}", wt_describe(binary, &p)));
            }
        }
    }
    .await;
    if let Err(e) = res {
        if !shared.stop.load(Ordering::Relaxed) {
            shared.error(e);
        }
    }
    shared.closed.fetch_add(1, Ordering::Relaxed);
}

// ------------------------------------------------------------ connection rate

async fn conn_rate_worker(args: Args, shared: Arc<Shared>) {
    let timeout = Duration::from_millis(args.timeout_ms);
    while !shared.stop.load(Ordering::Relaxed) {
        let r = tokio::time::timeout(timeout, async {
            let mut ws = ws_open(args.port, &args.path).await?;
            ws.close(None).await.map_err(|e| format!("close: {e}"))?;
            // Wait for the server's close frame / EOF.
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(_))) => continue,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => break,
                }
            }
            Ok::<(), String>(())
        })
        .await;
        match r {
            Ok(Ok(())) => {
                shared.count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                shared.error(e);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => shared.error("open/close cycle timed out".into()),
        }
    }
}

async fn conn_rate(args: Args) -> Result<(), String> {
    let shared = Arc::new(Shared::default());
    let mut ctl = Ctl::new();
    let mut set = JoinSet::new();
    for _ in 0..args.conns {
        set.spawn(conn_rate_worker(args.clone(), shared.clone()));
    }
    let (count, secs, _) = measured_window(&mut ctl, &args, &shared).await?;
    stop_workers(&shared, &mut set).await;
    emit(&format!(
        "{{\"ev\":\"result\",\"count\":{count},\"secs\":{secs:.6},\"total\":{},\"errors\":{},\"conns\":{}}}",
        shared.count.load(Ordering::Relaxed),
        shared.errors.load(Ordering::Relaxed),
        args.conns
    ));
    Ok(())
}

// -------------------------------------------------------------- idle sessions

/// An idle session: answers pings, reports broadcasts (`4B<seq>:<t0 ns>:xxx`).
async fn idle_session(
    mut ws: Ws,
    shared: Arc<Shared>,
    bcast: Option<(usize, mpsc::UnboundedSender<(u64, u64)>)>,
) {
    let res: Result<(), String> = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let s = t.as_str();
                    if s == "2" {
                        shared.pings.fetch_add(1, Ordering::Relaxed);
                        ws.send(Message::Text(Utf8Bytes::from_static("3")))
                            .await
                            .map_err(|e| format!("pong: {e}"))?;
                    } else if let (Some((size, tx)), Some(rest)) = (&bcast, broadcast_body(s)) {
                        let now = mono_ns();
                        let (seq, t0) = parse_broadcast(rest, *size).ok_or_else(|| {
                            format!("bad broadcast {}", describe(&Message::Text(t.clone())))
                        })?;
                        let _ = tx.send((seq, now.saturating_sub(t0)));
                    } else {
                        return Err(format!("idle session got {}", describe(&Message::Text(t))));
                    }
                }
                Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => {}
                Some(Ok(m)) => return Err(format!("idle session got {}", describe(&m))),
                Some(Err(e)) => return Err(format!("idle session read: {e}")),
                None => return Err("idle session closed by the server".into()),
            }
        }
    }
    .await;
    if let Err(e) = res {
        if !shared.stop.load(Ordering::Relaxed) {
            shared.error(e);
        }
    }
    shared.closed.fetch_add(1, Ordering::Relaxed);
}

/// What follows `B` in a broadcast: an Engine.IO message `4B…`, or a
/// Socket.IO event `42["b","B…"]` (the data needs no JSON escape).
fn broadcast_body(s: &str) -> Option<&str> {
    let data = s.strip_prefix('4')?;
    let data = match data.strip_prefix("2[\"b\",\"") {
        Some(event) => event.strip_suffix("\"]")?,
        None => data,
    };
    data.strip_prefix('B')
}

/// `<seq>:<t0>:` followed by `x` up to `size` characters (the message, minus `4`).
fn parse_broadcast(rest: &str, size: usize) -> Option<(u64, u64)> {
    // The message is "B" + rest, `size` chars in all.
    if rest.len() + 1 != size {
        return None;
    }
    let mut parts = rest.splitn(3, ':');
    let seq = parts.next()?.parse().ok()?;
    let t0 = parts.next()?.parse().ok()?;
    let pad = parts.next()?;
    if !pad.bytes().all(|b| b == b'x') {
        return None;
    }
    Some((seq, t0))
}

/// Opens sessions in steps (`--steps`), marking each step (the driver runs
/// the server's GC and reads its RSS there), then optionally holds them for
/// a measured window (heartbeat CPU).
async fn idle(args: Args) -> Result<(), String> {
    let shared = Arc::new(Shared::default());
    let mut ctl = Ctl::new();
    let steps = if args.steps.is_empty() {
        vec![args.conns]
    } else {
        args.steps.clone()
    };
    let wt_pool = if args.wt {
        let most = steps.iter().copied().max().unwrap_or(1);
        Some(Arc::new(WtPool::new(most)?))
    } else {
        None
    };
    let mut open = 0usize;
    let mut set = JoinSet::new();
    for &target in &steps {
        if target > open {
            let t = Instant::now();
            if let Some(pool) = &wt_pool {
                for wt in wt_open_many(&args, target - open, &shared, pool).await? {
                    set.spawn(wt_idle_session(wt, shared.clone()));
                }
            } else {
                for ws in open_many(&args, target - open, &shared).await? {
                    set.spawn(idle_session(ws, shared.clone(), None));
                }
            }
            open = target;
            let errors = shared.errors.load(Ordering::Relaxed);
            if errors > 0 {
                return Err(format!("{errors} errors while opening"));
            }
            ctl.mark(
                "step",
                &format!(
                    "\"sessions\":{open},\"open_ms\":{}",
                    t.elapsed().as_millis()
                ),
            )
            .await?;
        }
    }
    let (mut pings, mut secs) = (0, 0.0);
    if args.duration_ms > 0 {
        let (_, s, p) = measured_window(&mut ctl, &args, &shared).await?;
        pings = p;
        secs = s;
    }
    let lost = shared.closed.load(Ordering::Relaxed);
    shared.stop.store(true, Ordering::Relaxed);
    emit(&format!(
        "{{\"ev\":\"result\",\"sessions\":{open},\"pings\":{pings},\"secs\":{secs:.6},\"closed\":{lost},\"errors\":{}}}",
        shared.errors.load(Ordering::Relaxed)
    ));
    Ok(())
}

/// Opens `--conns` sessions, marks `ready`, then reports each broadcast once
/// every session got it: `{"ev":"bcast","seq":S,"max_us":..,"p50_us":..}`.
async fn broadcast(args: Args) -> Result<(), String> {
    let shared = Arc::new(Shared::default());
    let mut ctl = Ctl::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, u64)>();
    let conns = open_many(&args, args.conns, &shared).await?;
    let n = args.receivers.unwrap_or(conns.len());
    let mut set = JoinSet::new();
    for ws in conns {
        set.spawn(idle_session(
            ws,
            shared.clone(),
            Some((args.size, tx.clone())),
        ));
    }
    drop(tx);
    ctl.mark("ready", &format!("\"sessions\":{}", set.len()))
        .await?;
    let mut pending: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut done = 0u64;
    let mut maxes = Vec::new();
    let per = Duration::from_millis(args.timeout_ms);
    while done < args.count {
        let (seq, lat) = match tokio::time::timeout(per, rx.recv()).await {
            Ok(Some(x)) => x,
            Ok(None) => return Err("every session closed".into()),
            Err(_) => {
                let got: Vec<_> = pending.iter().map(|(k, v)| (*k, v.len())).collect();
                return Err(format!(
                    "broadcast {done} not received by every session in {per:?} (received: {got:?}, errors {})",
                    shared.errors.load(Ordering::Relaxed)
                ));
            }
        };
        let v = pending.entry(seq).or_default();
        v.push(lat);
        if v.len() == n {
            let mut v = pending.remove(&seq).unwrap();
            v.sort_unstable();
            let max = *v.last().unwrap();
            let p50 = v[v.len() / 2];
            let p99 = v[(v.len() * 99 / 100).min(v.len() - 1)];
            maxes.push(max);
            emit(&format!(
                "{{\"ev\":\"bcast\",\"seq\":{seq},\"max_us\":{:.1},\"p50_us\":{:.1},\"p99_us\":{:.1},\"min_us\":{:.1}}}",
                max as f64 / 1e3,
                p50 as f64 / 1e3,
                p99 as f64 / 1e3,
                v[0] as f64 / 1e3
            ));
            done += 1;
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    maxes.sort_unstable();
    let med = maxes.get(maxes.len() / 2).copied().unwrap_or(0);
    emit(&format!(
        "{{\"ev\":\"result\",\"sessions\":{n},\"broadcasts\":{done},\"median_max_us\":{:.1},\"errors\":{}}}",
        med as f64 / 1e3,
        shared.errors.load(Ordering::Relaxed)
    ));
    Ok(())
}

// ------------------------------------------------------------ HTTP polling

/// A minimal HTTP/1.1 keep-alive client connection.
struct Http {
    stream: Io,
    buf: BytesMut,
    host: String,
}

impl Http {
    async fn connect(port: u16) -> Result<Self, String> {
        let stream = connect(port, false).await?;
        Ok(Http {
            stream,
            buf: BytesMut::with_capacity(8192),
            host: format!("127.0.0.1:{port}"),
        })
    }

    async fn write_get(&mut self, path: &str) -> Result<(), String> {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\n\r\n",
            self.host
        );
        self.stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write GET: {e}"))
    }

    async fn write_post(&mut self, path: &str, body: &[u8]) -> Result<(), String> {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.stream
            .write_all(&req)
            .await
            .map_err(|e| format!("write POST: {e}"))
    }

    async fn fill(&mut self) -> Result<(), String> {
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err("connection closed by the server".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// Reads one response: (status, body).
    async fn read_response(&mut self) -> Result<(u16, Bytes), String> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.buf.len() > 64 * 1024 {
                return Err("response head too large".into());
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| "non-UTF-8 response head")?
            .to_string();
        self.buf.advance(head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut len = None;
        let mut chunked = false;
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                let (k, v) = (k.trim(), v.trim());
                if k.eq_ignore_ascii_case("content-length") {
                    len = Some(
                        v.parse::<usize>()
                            .map_err(|_| format!("bad content-length {v:?}"))?,
                    );
                } else if k.eq_ignore_ascii_case("transfer-encoding")
                    && v.to_ascii_lowercase().contains("chunked")
                {
                    chunked = true;
                }
            }
        }
        if chunked {
            let mut body = BytesMut::new();
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    self.fill().await?;
                };
                let size_str =
                    std::str::from_utf8(&self.buf[..line_end]).map_err(|_| "bad chunk size")?;
                let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16)
                    .map_err(|_| format!("bad chunk size {size_str:?}"))?;
                self.buf.advance(line_end + 2);
                while self.buf.len() < size + 2 {
                    self.fill().await?;
                }
                body.extend_from_slice(&self.buf[..size]);
                self.buf.advance(size + 2);
                if size == 0 {
                    // No trailers expected (the final CRLF was consumed above).
                    break;
                }
            }
            Ok((status, body.freeze()))
        } else {
            let len = len.unwrap_or(0);
            while self.buf.len() < len {
                self.fill().await?;
            }
            Ok((status, self.buf.split_to(len).freeze()))
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

struct PollSession {
    get: Http,
    post: Http,
    path: String,
}

impl PollSession {
    async fn open(port: u16, base: &str) -> Result<Self, String> {
        let mut post = Http::connect(port).await?;
        post.write_get(&format!("{base}?EIO=4&transport=polling"))
            .await?;
        let (status, body) = post.read_response().await?;
        let text = String::from_utf8_lossy(&body);
        if status != 200 || !text.starts_with("0{") {
            return Err(format!("polling handshake: {status} {text:?}"));
        }
        let sid = text
            .split("\"sid\":\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .ok_or_else(|| format!("no sid in {text:?}"))?
            .to_string();
        let path = format!("{base}?EIO=4&transport=polling&sid={sid}");
        let get = Http::connect(port).await?;
        Ok(PollSession { get, post, path })
    }

    async fn post(&mut self, body: &[u8]) -> Result<(), String> {
        self.post.write_post(&self.path, body).await?;
        let (status, resp) = self.post.read_response().await?;
        if status != 200 || &resp[..] != b"ok" {
            return Err(format!(
                "POST answered {status} {:?}",
                String::from_utf8_lossy(&resp)
            ));
        }
        Ok(())
    }
}

async fn poll_echo_worker(id: usize, mut s: PollSession, args: Args, shared: Arc<Shared>) {
    let mut payload = vec![0u8; args.size + 1];
    init_payload(&mut payload[1..], false);
    payload[0] = b'4';
    let mut seq = 0u64;
    let res: Result<(), String> = async {
        // One GET always pending.
        s.get.write_get(&s.path).await?;
        while !shared.stop.load(Ordering::Relaxed) {
            stamp_payload(&mut payload[1..], id, seq);
            s.post(&payload).await?;
            let mut got = false;
            while !got {
                let (status, body) = s.get.read_response().await?;
                if status != 200 {
                    return Err(format!(
                        "conn {id}: GET answered {status} {:?}",
                        String::from_utf8_lossy(&body)
                    ));
                }
                s.get.write_get(&s.path).await?;
                for _ in 0..poll_packets(&body, &payload, &mut got, &shared, id, seq)? {
                    s.post(b"3").await?;
                }
            }
            shared.count.fetch_add(1, Ordering::Relaxed);
            seq += 1;
        }
        Ok(())
    }
    .await;
    if let Err(e) = res {
        shared.error(e);
    }
    shared.closed.fetch_add(1, Ordering::Relaxed);
}

/// Reads the packets of one GET's answer: sets `got` when the echo of
/// `payload` is there; returns how many pings need a pong.
fn poll_packets(
    body: &[u8],
    payload: &[u8],
    got: &mut bool,
    shared: &Shared,
    id: usize,
    seq: u64,
) -> Result<usize, String> {
    let mut pings = 0;
    for packet in body.split(|&b| b == 0x1e) {
        match packet {
            b"2" => {
                shared.pings.fetch_add(1, Ordering::Relaxed);
                pings += 1;
            }
            b"6" => {}
            p if p == payload && !*got => *got = true,
            p => {
                return Err(format!(
                    "conn {id} seq {seq}: polling echo mismatch: got {:?}",
                    String::from_utf8_lossy(&p[..p.len().min(60)])
                ))
            }
        }
    }
    Ok(pings)
}

// ------------------------------------------------------ polling over HTTP/2

/// Sessions per HTTP/2 connection: each holds a GET and sends POSTs, within
/// the 100 concurrent streams servers allow.
const H2_SESSIONS_PER_CONN: usize = 25;

/// One HTTP/2 request; `body`: a POST's.
fn h2_send(
    h2: &mut h2::client::SendRequest<Bytes>,
    port: u16,
    path: &str,
    body: Option<&[u8]>,
) -> Result<h2::client::ResponseFuture, String> {
    let req = http::Request::builder()
        .method(if body.is_some() { "POST" } else { "GET" })
        .uri(format!("https://127.0.0.1:{port}{path}"))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(())
        .map_err(|e| e.to_string())?;
    let (res, mut stream) = h2
        .send_request(req, body.is_none())
        .map_err(|e| format!("h2 request: {e}"))?;
    if let Some(b) = body {
        stream
            .send_data(Bytes::copy_from_slice(b), true)
            .map_err(|e| format!("h2 body: {e}"))?;
    }
    Ok(res)
}

/// A response's status and whole body.
async fn h2_read(res: h2::client::ResponseFuture) -> Result<(u16, Bytes), String> {
    let res = res.await.map_err(|e| format!("h2 response: {e}"))?;
    let status = res.status().as_u16();
    let mut body = res.into_body();
    let mut out = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| format!("h2 body: {e}"))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    Ok((status, out.freeze()))
}

async fn h2_request(
    h2: &mut h2::client::SendRequest<Bytes>,
    port: u16,
    path: &str,
    body: Option<&[u8]>,
) -> Result<(u16, Bytes), String> {
    let ready = h2.clone().ready().await.map_err(|e| format!("h2: {e}"))?;
    *h2 = ready;
    h2_read(h2_send(h2, port, path, body)?).await
}

async fn h2_connect(port: u16) -> Result<h2::client::SendRequest<Bytes>, String> {
    let io = connect(port, true).await?;
    let (send, conn) = h2::client::handshake(io)
        .await
        .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

async fn h2_poll_worker(
    id: usize,
    mut h2: h2::client::SendRequest<Bytes>,
    args: Args,
    shared: Arc<Shared>,
) {
    let port = args.port;
    let mut payload = vec![0u8; args.size + 1];
    init_payload(&mut payload[1..], false);
    payload[0] = b'4';
    let mut seq = 0u64;
    let res: Result<(), String> = async {
        let base = format!("{}?EIO=4&transport=polling", args.path);
        let (status, body) = h2_request(&mut h2, port, &base, None).await?;
        let text = String::from_utf8_lossy(&body);
        let sid = text
            .split("\"sid\":\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .filter(|_| status == 200)
            .ok_or_else(|| format!("polling handshake: {status} {text:?}"))?;
        let path = format!("{base}&sid={sid}");
        // One GET always pending.
        let mut get = h2_send(&mut h2, port, &path, None)?;
        while !shared.stop.load(Ordering::Relaxed) {
            stamp_payload(&mut payload[1..], id, seq);
            let (status, ok) = h2_request(&mut h2, port, &path, Some(&payload)).await?;
            if status != 200 || &ok[..] != b"ok" {
                return Err(format!("POST answered {status}"));
            }
            let mut got = false;
            while !got {
                let (status, body) = h2_read(get).await?;
                if status != 200 {
                    return Err(format!("conn {id}: GET answered {status}"));
                }
                get = h2_send(&mut h2, port, &path, None)?;
                for _ in 0..poll_packets(&body, &payload, &mut got, &shared, id, seq)? {
                    h2_request(&mut h2, port, &path, Some(b"3")).await?;
                }
            }
            shared.count.fetch_add(1, Ordering::Relaxed);
            seq += 1;
        }
        Ok(())
    }
    .await;
    // Once stopped, the workers drop their fresh GETs together: HTTP/2 resets
    // those streams, and a server that has not yet taken them may answer the
    // burst of resets with GOAWAY (hyper's rapid-reset guard). That is the
    // end of the run, not an error in it.
    if let Err(e) = res {
        if !shared.stop.load(Ordering::Relaxed) {
            shared.error(e);
        }
    }
    shared.closed.fetch_add(1, Ordering::Relaxed);
}

async fn poll_echo(args: Args) -> Result<(), String> {
    if args.h2 {
        return poll_echo_h2(args).await;
    }
    let shared = Arc::new(Shared::default());
    let mut ctl = Ctl::new();
    let mut sessions = Vec::with_capacity(args.conns);
    for _ in 0..args.conns {
        let s = tokio::time::timeout(
            Duration::from_millis(args.timeout_ms),
            PollSession::open(args.port, &args.path),
        )
        .await
        .map_err(|_| "polling handshake timed out".to_string())??;
        sessions.push(s);
    }
    let mut set = JoinSet::new();
    for (id, s) in sessions.into_iter().enumerate() {
        set.spawn(poll_echo_worker(id, s, args.clone(), shared.clone()));
    }
    echo_result(&mut ctl, &args, &shared, &mut set).await
}

async fn poll_echo_h2(args: Args) -> Result<(), String> {
    if TLS.get().is_none() {
        return Err("--h2 needs --ca (HTTP/2 over TLS)".into());
    }
    let shared = Arc::new(Shared::default());
    let mut ctl = Ctl::new();
    let mut set = JoinSet::new();
    let mut conn = None;
    for id in 0..args.conns {
        if id % H2_SESSIONS_PER_CONN == 0 {
            let c = tokio::time::timeout(
                Duration::from_millis(args.timeout_ms),
                h2_connect(args.port),
            )
            .await
            .map_err(|_| "HTTP/2 connection timed out".to_string())??;
            conn = Some(c);
        }
        let h2 = conn.clone().expect("set above");
        set.spawn(h2_poll_worker(id, h2, args.clone(), shared.clone()));
    }
    echo_result(&mut ctl, &args, &shared, &mut set).await
}
