//! The WebTransport endpoint: HTTP/3 over QUIC on a UDP port, opened by the
//! `webtransport` option of `listen()` and `attach()` engines: quinn and
//! rustls, with our own HTTP/3 session layer ([`super::h3`], which says why
//! not wtransport's; wtransport-proto still encodes QPACK and SETTINGS).
//!
//! A session's CONNECT request goes through the engine's checks like any
//! other request (middlewares, `verify`, `allowRequest`); its first
//! bidirectional stream then goes to the WebTransport transport.

use super::h3::{self, AcceptError};
use super::native::RouteOptions;
use super::tls::{quic_server_config, TlsError, TlsSettings};
use crate::engine::log::{debug, Scope};
use crate::engine::{Admission, Engine, RequestError, RequestInfo, TransportKind, Verified};
use crate::error::ErrorCode;
use crate::http::{Fields, Headers};
use crate::protocol::Protocol;
use crate::transport::webtransport::{serve, Admitted, WtIo, CLOSE_LINGER, READ_SIZE};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::json;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use wtransport::quinn;

/// The `webtransport` option: where to listen, and the certificate.
#[derive(Debug, Clone, Default)]
pub struct WtSettings {
    /// The address to bind (all interfaces, IPv6 and IPv4, when `None`).
    pub host: Option<String>,
    /// The UDP port (0: any free one).
    pub port: u16,
    /// The certificate and key, as Node's TLS options give them.
    pub tls: TlsSettings,
}

/// Why the endpoint could not open.
#[derive(Debug)]
pub enum WtError {
    /// The certificate or key.
    Tls(TlsError),
    /// The UDP socket (`EADDRINUSE`, ...).
    Io(io::Error),
}

impl fmt::Display for WtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WtError::Tls(e) => e.fmt(f),
            WtError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for WtError {}

/// The most QUIC connections the endpoint lets be under way before their
/// session's first stream: past it, new ones are refused, so clients that
/// connect and never open a session cannot grow memory without bound.
pub const MAX_PENDING: usize = 4096;

/// An open WebTransport endpoint. Dropping it does not close it: call
/// [`WtEndpoint::close`].
pub struct WtEndpoint {
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    pending: Arc<AtomicUsize>,
    accept: tokio::task::AbortHandle,
    rt: tokio::runtime::Handle,
}

impl fmt::Debug for WtEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WtEndpoint")
            .field("addr", &self.addr)
            .finish()
    }
}

impl WtEndpoint {
    /// Binds the UDP port now (so errors reach the caller) and serves
    /// WebTransport sessions on the engine's path.
    pub fn bind(
        engine: Engine,
        routes: RouteOptions,
        settings: &WtSettings,
    ) -> Result<Self, WtError> {
        let tls = quic_server_config(&settings.tls).map_err(WtError::Tls)?;
        let addr = match settings.host.as_deref() {
            None => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), settings.port),
            Some(h) => {
                use std::net::ToSocketAddrs;
                (h, settings.port)
                    .to_socket_addrs()
                    .map_err(WtError::Io)?
                    .next()
                    .ok_or_else(|| {
                        WtError::Io(io::Error::new(
                            io::ErrorKind::AddrNotAvailable,
                            "no address to bind",
                        ))
                    })?
            }
        };
        let cfg = engine.config();
        // QUIC's own idle limit stays above the engine's heartbeat, which
        // is what decides that a client is gone.
        let idle = (cfg.ping_interval + cfg.ping_timeout + Duration::from_secs(5))
            .max(Duration::from_secs(30));
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| WtError::Io(io::Error::other(e.to_string())))?;
        let mut transport = quinn::TransportConfig::default();
        let idle = quinn::IdleTimeout::try_from(idle)
            .map_err(|e| WtError::Io(io::Error::other(e.to_string())))?;
        transport.max_idle_timeout(Some(idle));
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(Arc::new(transport));
        let socket = bind_udp(addr, settings.host.is_none()).map_err(WtError::Io)?;
        let rt = engine.runtime().clone();
        let endpoint = {
            let _enter = rt.enter();
            quinn::Endpoint::new(
                quinn::EndpointConfig::default(),
                Some(config),
                socket,
                Arc::new(quinn::TokioRuntime),
            )
            .map_err(WtError::Io)?
        };
        let addr = endpoint.local_addr().map_err(WtError::Io)?;
        let pending = Arc::new(AtomicUsize::new(0));
        let front = Arc::new(Front {
            engine,
            routes,
            pending: pending.clone(),
        });
        let accept = rt
            .spawn(accept_loop(endpoint.clone(), front))
            .abort_handle();
        Ok(WtEndpoint {
            endpoint,
            addr,
            pending,
            accept,
            rt,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// QUIC connections whose session has not yet opened its stream.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// QUIC connections open, sessions and handshakes alike.
    pub fn connections(&self) -> usize {
        self.endpoint.open_connections()
    }

    /// Stops accepting and closes every connection. Returns once the UDP
    /// port is free again (QUIC lets closed connections drain for a few
    /// round trips first), or after [`CLOSE_WAIT`] at worst.
    pub fn close(self) {
        self.accept.abort();
        self.endpoint.close(0u32.into(), b"server shutting down");
        let (done, freed) = std::sync::mpsc::channel();
        let endpoint = self.endpoint;
        let addr = self.addr;
        self.rt.spawn(async move {
            endpoint.wait_idle().await;
            // The last handle: quinn's driver ends and lets go of the
            // socket once it sees it, on its own task.
            drop(endpoint);
            let deadline = Instant::now() + CLOSE_WAIT;
            while Instant::now() < deadline && std::net::UdpSocket::bind(addr).is_err() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let _ = done.send(());
        });
        let _ = freed.recv_timeout(CLOSE_WAIT + Duration::from_millis(100));
    }
}

/// A UDP socket bound to `addr`; for all interfaces (`dual`), IPv6 that
/// takes IPv4 too.
fn bind_udp(addr: SocketAddr, dual: bool) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol as IpProtocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM,
        Some(IpProtocol::UDP),
    )?;
    if dual {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The longest [`WtEndpoint::close`] waits for the port to be free.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What every session of an endpoint shares.
struct Front {
    engine: Engine,
    routes: RouteOptions,
    pending: Arc<AtomicUsize>,
}

/// Counts a connection as pending until dropped.
struct Pending(Arc<AtomicUsize>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, front: Arc<Front>) {
    while let Some(incoming) = endpoint.accept().await {
        if front.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING {
            front.pending.fetch_sub(1, Ordering::AcqRel);
            incoming.refuse();
            continue;
        }
        let pending = Pending(front.pending.clone());
        let front = front.clone();
        tokio::spawn(async move {
            // A panic here ends this session alone.
            let _ = std::panic::AssertUnwindSafe(session(front, incoming, pending))
                .catch_unwind()
                .await;
        });
    }
}

/// One QUIC connection, from its handshake to the end of its session. The
/// CONNECT request and the first stream must come within `upgradeTimeout`
/// (engine.io's wait for the first stream); a connection given up on the
/// way is closed as its request or session is dropped.
async fn session(front: Arc<Front>, incoming: quinn::Incoming, pending: Pending) {
    let engine = &front.engine;
    let deadline = Instant::now() + engine.config().upgrade_timeout;
    let handshake = async {
        let quic = incoming.accept().map_err(AcceptError::Lost)?.await;
        h3::accept(quic.map_err(AcceptError::Lost)?).await
    };
    let request = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(r)) => r,
        Err(_) => {
            return debug!(
                engine,
                Scope::Engine,
                "the client failed to open a WebTransport session in time"
            )
        }
        Ok(Err(e)) => return debug!(engine, Scope::Engine, "WebTransport handshake failed: {e}"),
    };
    let info = request_info(&request);
    if !front.routes.matches(&info.url) {
        return request.reject(404, CLOSE_LINGER).await;
    }
    let info = Arc::new(info);
    let open = engine.open_request(info.clone());
    let (sid, admitted, headers) = match admit(engine, &info).await {
        Ok(a) => a,
        Err(refusal) => {
            // Reported first, so the application hears of it before the
            // client does.
            drop(open);
            if let Some(e) = refusal {
                engine.report_error(info, e);
            }
            return request.reject(403, CLOSE_LINGER).await;
        }
    };
    let mut session = match request.accept(h3_headers(headers)).await {
        Ok(s) => s,
        Err(e) => return debug!(engine, Scope::Engine, "WebTransport session failed: {e}"),
    };
    let Ok(Some((send, recv))) = tokio::time::timeout_at(deadline, session.stream()).await else {
        return debug!(
            engine,
            Scope::Engine,
            "the client failed to establish a bidirectional stream in the given period"
        );
    };
    drop(pending);
    let io = Box::new(NativeIo {
        session,
        send,
        recv,
    });
    serve(engine.clone(), open, admitted, sid, io, deadline).await;
}

/// engine.io's checks on the CONNECT request, then the id of the session
/// it may open (`generateId`) and the headers of the answer (the
/// middlewares', then the `initial_headers`/`headers` listeners' and the
/// cookie). `Ok`: the session the request names (for an upgrade), how it
/// was admitted, the headers. `Err`: refused, with the error to report
/// (none when a middleware answered).
///
/// engine.io-client names no session in the request even to upgrade (its
/// first packet does), so an id is made for every request that names
/// none, and dropped when the stream turns out to be an upgrade.
async fn admit(
    engine: &Engine,
    info: &Arc<RequestInfo>,
) -> Result<(Option<String>, Admitted, Headers), Option<RequestError>> {
    let (verified, headers) = match engine.admit(info, true, true).await {
        Admission::Proceed { verified, headers } => (verified, headers),
        Admission::Respond(_) => return Err(None),
        Admission::Refused(e, _) => return Err(Some(e)),
    };
    let (named, new_sid) = match verified {
        Verified::Handshake(TransportKind::WebTransport) => match engine.handshake_id(info).await {
            Ok((Protocol::V4, sid)) => (None, sid),
            // WebTransport exists in Engine.IO v4 only.
            Ok((Protocol::V3, _)) => {
                return Err(Some(RequestError::new(
                    ErrorCode::UnsupportedProtocolVersion,
                    json!({ "protocol": 3 }),
                )))
            }
            Err(e) => return Err(Some(e)),
        },
        Verified::Existing(session, TransportKind::WebTransport) => {
            (Some(session.sid.to_string()), String::new())
        }
        _ => {
            return Err(Some(RequestError::new(
                ErrorCode::BadRequest,
                json!({ "name": "TRANSPORT_MISMATCH", "transport": info.query("transport") }),
            )))
        }
    };
    let initial = named.is_none();
    let sid: Arc<str> = Arc::from(named.as_deref().unwrap_or(&new_sid));
    let headers = engine.response_headers(info, &sid, initial, headers).await;
    let admitted = Admitted::Checked {
        new_sid: initial.then_some(new_sid),
    };
    Ok((named, admitted, headers))
}

/// Response headers as HTTP/3 allows them: names in lower case, and none
/// of HTTP/1.1's connection-specific fields (a browser refuses an answer
/// that has either, RFC 9114 §4.2).
fn h3_headers(headers: Headers) -> Vec<(String, String)> {
    const CONNECTION_SPECIFIC: [&str; 5] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ];
    headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .filter(|(k, _)| !CONNECTION_SPECIFIC.contains(&k.as_str()))
        .collect()
}

/// The CONNECT request as the engine and the application see it: method
/// `CONNECT`, the path, the headers (with `host` for `:authority`).
fn request_info(request: &h3::Request) -> RequestInfo {
    let (remote, request) = (request.remote(), request.request());
    let map = request.headers().as_ref();
    let mut headers = Fields::with_capacity(map.len() + 1, 0);
    headers.push_lowered("host", request.authority());
    let mut names: Vec<&String> = map.keys().filter(|k| !k.starts_with(':')).collect();
    names.sort();
    for k in names {
        headers.push_lowered(k, &map[k]);
    }
    let mut info = RequestInfo::with_fields(
        "CONNECT".into(),
        with_defaults(request.path()),
        "3",
        headers,
        Some(remote),
    );
    info.encrypted = true;
    info
}

/// The request target with what engine.io-client leaves out: it opens
/// WebTransport on the bare engine path (no `EIO`, no `transport`, the sid
/// in its first packet), so a missing `transport` is `webtransport` and a
/// missing `EIO` is 4, the only revision WebTransport exists in.
fn with_defaults(path: &str) -> String {
    let query = crate::http::parse_query(path);
    let has = |key: &str| query.iter().any(|(k, _)| k == key);
    let mut url = path.to_string();
    for (key, value) in [("EIO", "4"), ("transport", "webtransport")] {
        if !has(key) {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(key);
            url.push('=');
            url.push_str(value);
        }
    }
    url
}

/// A native session's first stream.
struct NativeIo {
    session: h3::Session,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl WtIo for NativeIo {
    /// A chunk as QUIC holds it: no copy, and no buffer while waiting.
    fn read(&mut self) -> BoxFuture<'_, io::Result<Option<Bytes>>> {
        use quinn::ReadError;
        async move {
            match self.recv.read_chunk(READ_SIZE, true).await {
                Ok(chunk) => Ok(chunk.map(|c| c.bytes)),
                // The client closed the session: the stream ended with it.
                Err(ReadError::ConnectionLost(_)) | Err(ReadError::ClosedStream) => Ok(None),
                Err(e) => Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    e.to_string(),
                )),
            }
        }
        .boxed()
    }

    fn write_all<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        async move {
            self.send
                .write_all(data)
                .await
                .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e.to_string()))
        }
        .boxed()
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        async move {
            // What is written reaches the client before the connection
            // closes (its close would discard what is in flight).
            if self.send.finish().is_ok() {
                let _ = tokio::time::timeout(CLOSE_LINGER, self.send.stopped()).await;
            }
            self.session.close();
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_headers_are_lower_case_and_not_connection_specific() {
        let h: Headers = vec![
            ("Access-Control-Allow-Origin".into(), "*".into()),
            ("Connection".into(), "keep-alive".into()),
            ("Set-Cookie".into(), "io=x".into()),
        ];
        assert_eq!(
            h3_headers(h),
            [
                ("access-control-allow-origin".to_string(), "*".to_string()),
                ("set-cookie".to_string(), "io=x".to_string()),
            ]
        );
    }

    #[test]
    fn a_bare_path_is_a_webtransport_v4_request() {
        assert_eq!(
            with_defaults("/engine.io/"),
            "/engine.io/?EIO=4&transport=webtransport"
        );
        assert_eq!(
            with_defaults("/engine.io/?sid=x"),
            "/engine.io/?sid=x&EIO=4&transport=webtransport"
        );
        let given = "/engine.io/?EIO=3&transport=polling";
        assert_eq!(with_defaults(given), given);
    }
}
