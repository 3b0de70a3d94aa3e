//! The native listener: hyper HTTP/1.1 on the engine's runtime, in clear or
//! over TLS. Requests under the engine path go to the transports;
//! everything else gets 501, as from the Node server engine.io's `listen()`
//! creates.

use super::tls::Tls;
use crate::engine::{method_name, parse_query, CloseReason, Engine, Fields, RequestInfo};
use crate::transport::websocket::UpgradeAnswer;
use crate::transport::ws::WsIo;
use crate::transport::{polling, websocket, HttpResponse};
use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{HeaderName, HeaderValue};
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::borrow::Cow;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// Routing options shared by the front ends (engine.io's `AttachOptions`).
#[derive(Debug, Clone)]
pub struct RouteOptions {
    /// The request path prefix, normalized (`/engine.io/`) by the JS
    /// facade's `computePath`, engine.io's `_computePath`.
    pub path: String,
    /// Whether to end upgrade requests outside the path.
    pub destroy_upgrade: bool,
    /// How long to wait before ending them.
    pub destroy_upgrade_timeout: Duration,
}

impl RouteOptions {
    /// Whether a request target belongs to the engine (engine.io compares
    /// the start of `req.url` with the path).
    pub fn matches(&self, url: &str) -> bool {
        url.starts_with(&self.path)
    }
}

impl Default for RouteOptions {
    fn default() -> Self {
        RouteOptions {
            path: "/engine.io/".into(),
            destroy_upgrade: true,
            destroy_upgrade_timeout: Duration::from_millis(1000),
        }
    }
}

/// How long a client may take to send its request headers (Node: 60 s).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The most a request head may take (Node's `--max-http-header-size`).
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// A listening native server.
#[derive(Debug)]
pub struct NativeServer {
    addr: SocketAddr,
    tls: Option<Arc<Tls>>,
    shutdown: watch::Sender<bool>,
    connections: Arc<Connections>,
    /// Signalled once the accept loop dropped the listening socket.
    unbound: parking_lot::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

#[derive(Debug, Default)]
struct Connections {
    live: AtomicUsize,
    idle: Notify,
}

struct ConnGuard(Arc<Connections>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl NativeServer {
    /// Binds `host:port` (all interfaces, IPv6 and IPv4, when `host` is
    /// `None`) and serves `engine` there, over `tls` when given. Binding
    /// happens now, so errors such as `EADDRINUSE` reach the caller.
    pub fn bind(
        engine: Engine,
        routes: RouteOptions,
        host: Option<&str>,
        port: u16,
        tls: Option<Tls>,
    ) -> io::Result<Self> {
        let tls = tls.map(Arc::new);
        let std_listener = bind_std(host, port)?;
        let addr = std_listener.local_addr()?;
        let (shutdown, rx) = watch::channel(false);
        let connections = Arc::new(Connections::default());
        let rt = engine.runtime().clone();
        let listener = {
            let _enter = rt.enter();
            TcpListener::from_std(std_listener)?
        };
        // The accept loop counts as a connection, so `close()` resolves only
        // once the listening socket is dropped and the port can be bound again.
        connections.live.fetch_add(1, Ordering::AcqRel);
        let guard = ConnGuard(connections.clone());
        let conns = connections.clone();
        let (unbound_tx, unbound) = std::sync::mpsc::channel();
        let listening = Listening {
            listener: Some(listener),
            unbound: unbound_tx,
            _guard: guard,
        };
        let front = Front {
            engine,
            routes: Arc::new(routes),
            tls: tls.clone(),
        };
        rt.spawn(accept_loop(front, listening, rx, conns));
        Ok(NativeServer {
            addr,
            tls,
            shutdown,
            connections,
            unbound: parking_lot::Mutex::new(Some(unbound)),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listener's TLS, when it has one (for `setSecureContext`).
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_deref()
    }

    /// Stops accepting, ends idle keep-alive connections and lets requests
    /// in flight finish. Resolves when no HTTP connection is left (upgraded
    /// WebSockets belong to their sessions and do not count).
    ///
    /// The port is released before this returns, as with Node's
    /// `server.close()`, so it can be bound again right away.
    pub fn close(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let _ = self.shutdown.send(true);
        if let Some(unbound) = self.unbound.lock().take() {
            let _ = unbound.recv_timeout(Duration::from_secs(1));
        }
        let conns = self.connections.clone();
        async move {
            loop {
                let idle = conns.idle.notified();
                if conns.live.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        }
    }
}

fn bind_std(host: Option<&str>, port: u16) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addrs: Vec<SocketAddr> = match host {
        None => vec![
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), port),
        ],
        Some(h) => {
            use std::net::ToSocketAddrs;
            (h, port).to_socket_addrs()?.collect()
        }
    };
    let mut last = io::Error::new(io::ErrorKind::AddrNotAvailable, "no address to bind");
    for addr in addrs {
        let socket = match Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        {
            Ok(s) => s,
            Err(e) => {
                last = e;
                continue;
            }
        };
        if addr.is_ipv6() && host.is_none() {
            let _ = socket.set_only_v6(false);
        }
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        match socket.bind(&addr.into()).and_then(|_| socket.listen(511)) {
            Ok(()) => return Ok(socket.into()),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The listening socket and what must happen when it is dropped.
struct Listening {
    /// Always `Some` until dropped.
    listener: Option<TcpListener>,
    unbound: std::sync::mpsc::Sender<()>,
    _guard: ConnGuard,
}

impl Drop for Listening {
    fn drop(&mut self) {
        // Close the socket before telling `close()` the port is free.
        drop(self.listener.take());
        let _ = self.unbound.send(());
    }
}

/// What every connection of a listener shares.
#[derive(Clone)]
struct Front {
    engine: Engine,
    routes: Arc<RouteOptions>,
    tls: Option<Arc<Tls>>,
}

async fn accept_loop(
    front: Front,
    listening: Listening,
    mut shutdown: watch::Receiver<bool>,
    conns: Arc<Connections>,
) {
    let Some(listener) = listening.listener.as_ref() else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            // Out of descriptors and the like: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        conns.live.fetch_add(1, Ordering::AcqRel);
        let guard = ConnGuard(conns.clone());
        tokio::spawn(serve_connection(
            front.clone(),
            stream,
            remote,
            shutdown.clone(),
            guard,
        ));
    }
}

/// Serves one accepted connection: the TLS handshake first when the
/// listener has TLS (bounded by `handshakeTimeout`, and by a shutdown),
/// then HTTP.
async fn serve_connection(
    front: Front,
    stream: TcpStream,
    remote: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    guard: ConnGuard,
) {
    let Some(tls) = front.tls.clone() else {
        return serve_http(front, stream, remote, Wire::Clear, shutdown, guard).await;
    };
    let handshake = tokio::time::timeout(tls.handshake_timeout(), tls.acceptor().accept(stream));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            // A failed or slow handshake ends the connection alone.
            Ok(Err(_)) | Err(_) => return,
        },
        _ = shutdown.changed() => return,
    };
    // ALPN: HTTP/2 when the client offered it (browsers do), else HTTP/1.1.
    let wire = if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        Wire::Http2
    } else {
        Wire::Tls
    };
    serve_http(front, stream, remote, wire, shutdown, guard).await;
}

/// How a connection's requests arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// HTTP/1.1 in clear.
    Clear,
    /// HTTP/1.1 over TLS.
    Tls,
    /// HTTP/2 over TLS (ALPN `h2`).
    Http2,
}

/// Drives a hyper connection until it ends, shutting it down gracefully
/// when the listener closes.
macro_rules! until_closed {
    ($conn:expr, $shutdown:expr) => {{
        let mut conn = std::pin::pin!($conn);
        if *$shutdown.borrow() {
            conn.as_mut().graceful_shutdown();
        }
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = $shutdown.changed() => conn.as_mut().graceful_shutdown(),
        }
        let _ = conn.await;
    }};
}

async fn serve_http<S>(
    front: Front,
    stream: S,
    remote: SocketAddr,
    wire: Wire,
    mut shutdown: watch::Receiver<bool>,
    _guard: ConnGuard,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Front { engine, routes, .. } = front;
    let svc = service_fn(move |req: Request<Incoming>| {
        let engine = engine.clone();
        let routes = routes.clone();
        // A cheap copy (reference counted): the sid is read only on a panic.
        let uri = req.uri().clone();
        let served = route(engine.clone(), routes, req, remote, wire != Wire::Clear);
        async move { guarded(&engine, &uri, served).await }
    });
    if wire == Wire::Http2 {
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // RFC 8441: WebSocket over a stream of this connection.
            .enable_connect_protocol()
            // Node's defaults, and the limits that the HTTP/2 floods made
            // known (rapid reset, CONTINUATION, SETTINGS) call for: h2
            // bounds pending resets, header lists and SETTINGS itself.
            .max_concurrent_streams(100)
            .max_header_list_size(MAX_HEADER_BYTES as u32)
            .max_pending_accept_reset_streams(20)
            .max_local_error_reset_streams(1024)
            .serve_connection(TokioIo::new(stream), svc);
        until_closed!(conn, shutdown);
        return;
    }
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        // Node's limit: 16 KiB of headers (431 above). The head size is
        // checked on its own too, so that a long request target gets 431 as
        // with Node, not hyper's 414. Up to hyper's 100 fields (431 above;
        // Node keeps 2000 and drops the rest): any other count makes hyper
        // allocate and fill room for that many on the heap for every
        // request, which cost a tenth of a polling server's CPU at 2000.
        .max_buf_size(MAX_HEADER_BYTES)
        .max_header_size(MAX_HEADER_BYTES)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    until_closed!(conn, shutdown);
}

type Body = Full<Bytes>;

/// Serves a request; a panic while doing so answers 500 and closes the
/// session the request names with `transport error`, instead of taking the
/// connection task (or, in engine.io, the process) down with it.
async fn guarded(
    engine: &Engine,
    uri: &http::Uri,
    served: impl Future<Output = Result<Response<Body>, io::Error>>,
) -> Result<Response<Body>, io::Error> {
    match AssertUnwindSafe(served).catch_unwind().await {
        Ok(res) => res,
        Err(_) => {
            let url = uri.path_and_query().map_or("", |p| p.as_str());
            let query = parse_query(url);
            if let Some(session) = query.last("sid").and_then(|sid| engine.session_by_sid(sid)) {
                session.close(CloseReason::TransportError, Some("internal error".into()));
            }
            Ok(Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .header(header::CONNECTION, "close")
                .body(Full::new(Bytes::new()))
                .expect("static response parts are valid"))
        }
    }
}

/// What a request is, from its headers: engine.io hands a request with
/// `Connection: upgrade` to its upgrade handler, like Node's `upgrade` event;
/// over HTTP/2, an extended CONNECT for `websocket` (RFC 8441) is one too.
fn is_upgrade(req: &Request<Incoming>) -> bool {
    if req.version() == http::Version::HTTP_2 {
        return is_ws_connect(req);
    }
    req.headers().contains_key(header::UPGRADE)
        && req.headers().get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// An RFC 8441 WebSocket: `CONNECT` with `:protocol` `websocket`.
fn is_ws_connect(req: &Request<Incoming>) -> bool {
    req.method() == http::Method::CONNECT
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// The request as the engine and the application see it.
pub fn request_info<B>(req: &Request<B>, remote: Option<SocketAddr>) -> RequestInfo {
    let url = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let map = req.headers();
    let bytes = map.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    let mut headers = Fields::with_capacity(map.len(), bytes);
    for (k, v) in map {
        headers.push_header(k.as_str(), v.as_bytes());
    }
    let version = match req.version() {
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2.0",
        _ => "1.1",
    };
    let method = method_name(req.method().as_str());
    RequestInfo::with_fields(method, url, version, headers, remote)
}

async fn route(
    engine: Engine,
    routes: Arc<RouteOptions>,
    req: Request<Incoming>,
    remote: SocketAddr,
    encrypted: bool,
) -> Result<Response<Body>, io::Error> {
    let url = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let upgrade = is_upgrade(&req);
    if !routes.matches(url) {
        if upgrade {
            // Node ends upgrades nobody handles; engine.io waits a little first.
            if routes.destroy_upgrade {
                tokio::time::sleep(routes.destroy_upgrade_timeout).await;
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "unhandled upgrade",
                ));
            }
            return std::future::pending().await;
        }
        return Ok(to_hyper(HttpResponse::new(
            501,
            "text/plain",
            "Not Implemented",
        )));
    }
    let mut info = request_info(&req, Some(remote));
    info.id = engine.next_id();
    info.encrypted = encrypted;
    let info = Arc::new(info);
    if upgrade {
        return upgrade_websocket(engine, info, req).await;
    }
    // A timeout too far away for the clock is none at all.
    let deadline = engine
        .config()
        .request_timeout
        .and_then(|t| tokio::time::Instant::now().checked_add(t));
    let res = match deadline {
        // Only a body can keep a request from being complete once its
        // headers are read: a GET's is empty, however long its poll is held.
        Some(deadline) if req.method() == http::Method::POST => {
            let (body, expired) = TimedBody::new(req.into_body(), deadline);
            let res = polling::handle(&engine, info, body, true).await;
            if expired.load(Ordering::Acquire) {
                // The read failed as an aborted body does (the session closed
                // with `transport error`); the client gets Node's answer.
                return Ok(request_timeout());
            }
            res
        }
        _ => polling::handle(&engine, info, req.into_body(), true).await,
    };
    if res.is_abort() {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "request aborted",
        ));
    }
    Ok(to_hyper(res))
}

/// A request body that must be whole by a deadline (Node's
/// `requestTimeout`). Past the deadline, a read that would wait fails
/// instead and sets the shared flag; data already there is still read.
struct TimedBody {
    inner: Incoming,
    deadline: tokio::time::Instant,
    /// Made on the first read that has to wait.
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    expired: Arc<AtomicBool>,
}

impl TimedBody {
    /// The native listener counts `requestTimeout` from when hyper hands
    /// over the request, its headers read (Node counts from their first
    /// byte; hyper bounds the headers with `HEADER_READ_TIMEOUT`).
    fn new(inner: Incoming, deadline: tokio::time::Instant) -> (Self, Arc<AtomicBool>) {
        let expired = Arc::new(AtomicBool::new(false));
        let body = TimedBody {
            inner,
            deadline,
            sleep: None,
            expired: expired.clone(),
        };
        (body, expired)
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = String;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, String>>> {
        use std::future::Future;
        use std::task::Poll;
        let this = self.get_mut();
        if let Poll::Ready(frame) = std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(|e| e.to_string())));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.expired.store(true, Ordering::Release);
        Poll::Ready(Some(Err("request timeout".into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Node's answer to a request not whole within `requestTimeout`; the
/// connection is closed after it.
fn request_timeout() -> Response<Body> {
    Response::builder()
        .status(StatusCode::REQUEST_TIMEOUT)
        .header(header::CONNECTION, "close")
        .body(Full::new(Bytes::new()))
        .expect("static response parts are valid")
}

async fn upgrade_websocket(
    engine: Engine,
    info: Arc<RequestInfo>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, io::Error> {
    let framing = if is_ws_connect(&req) {
        websocket::Opening::Connect
    } else {
        websocket::Opening::Upgrade
    };
    let switch = match websocket::answer_upgrade(&engine, info, None, framing).await {
        UpgradeAnswer::Switch(s) => s,
        UpgradeAnswer::Refuse(res) => return Ok(to_hyper(res)),
        UpgradeAnswer::Destroy => {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "ended by a middleware",
            ))
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let response = switching(&switch.response);
    // Boxed: what a task captures it keeps for its whole life, and the
    // connection's task serves an idle WebSocket for hours.
    let switch = Box::new(switch);
    tokio::spawn(async move {
        // A client gone before the switch: dropping `switch` settles the request.
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        // Our own connections are TCP: read without a buffer per connection.
        let (io, head) = match upgraded.downcast::<TokioIo<TcpStream>>() {
            // A copy of what hyper read ahead, so its read buffer is freed.
            Ok(parts) => (
                WsIo::tcp(parts.io.into_inner()),
                Bytes::copy_from_slice(&parts.read_buf),
            ),
            Err(upgraded) => (WsIo::other(TokioIo::new(upgraded)), Bytes::new()),
        };
        websocket::serve(engine, *switch, io, head).await;
    });
    Ok(response)
}

/// The 101 for hyper; engine.io's 400 if a header cannot be sent (one the
/// application's `headers` listener set, say).
fn switching(res: &HttpResponse) -> Response<Body> {
    let status = StatusCode::from_u16(res.status).unwrap_or(StatusCode::SWITCHING_PROTOCOLS);
    let mut builder = Response::builder().status(status);
    for (k, v) in &res.headers {
        builder = builder.header(&**k, &**v);
    }
    builder
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|_| to_hyper(HttpResponse::upgrade_refused("Bad Request")))
}

/// Converts an engine response for hyper; fixed header values are not
/// copied. A header hyper refuses turns the response into a 500.
pub fn to_hyper(res: HttpResponse) -> Response<Body> {
    let mut out = Response::new(Full::new(res.body));
    *out.status_mut() =
        StatusCode::from_u16(res.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    headers.reserve(res.headers.len());
    for (k, v) in res.headers {
        let value = match v {
            // What `from_static` accepts, checked here so that it cannot panic.
            Cow::Borrowed(v) if v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) => {
                Ok(HeaderValue::from_static(v))
            }
            Cow::Borrowed(v) => HeaderValue::from_str(v),
            Cow::Owned(v) => HeaderValue::from_maybe_shared(Bytes::from(v)),
        };
        match (HeaderName::from_bytes(k.as_bytes()), value) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => {
                let mut failed = Response::new(Full::new(Bytes::new()));
                *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                return failed;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Config, Event, EventQueue};
    use crate::protocol::Protocol;

    #[tokio::test]
    async fn a_panic_while_serving_answers_500_and_closes_only_that_session() {
        let engine = Engine::new(
            Config::default(),
            EventQueue::new(|| {}),
            tokio::runtime::Handle::current(),
        );
        let open = |sid: &str| {
            let req = Arc::new(RequestInfo::new(
                "GET",
                "/engine.io/?EIO=4",
                "1.1",
                vec![],
                None,
            ));
            engine.open_session(
                req,
                Protocol::V4,
                sid.into(),
                polling::PollingDriver::boxed(),
            )
        };
        let (_a, _b) = (open("aaaa"), open("bbbb"));
        engine.events().drain();

        let uri = http::Uri::from_static("/engine.io/?EIO=4&transport=polling&sid=aaaa");
        let res = guarded(&engine, &uri, async { panic!("injected fault") })
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let closes: Vec<_> = engine
            .events()
            .drain()
            .into_iter()
            .filter_map(|e| match e {
                Event::Close {
                    reason,
                    description,
                    ..
                } => Some((reason, description)),
                _ => None,
            })
            .collect();
        assert_eq!(
            closes,
            [(CloseReason::TransportError, Some("internal error".into()))]
        );
        assert!(engine.session_by_sid("aaaa").is_none());
        assert!(engine.session_by_sid("bbbb").is_some());

        // Without a panic the answer passes through.
        let ok = guarded(&engine, &http::Uri::from_static("/"), async {
            Ok(Response::new(Full::new(Bytes::from_static(b"fine"))))
        })
        .await
        .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
    }
}
