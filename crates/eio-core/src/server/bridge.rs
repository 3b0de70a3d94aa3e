//! The bridge front end: requests and upgrades that another HTTP server (the
//! user's Node server) parsed. Polling bodies arrive as chunks; upgraded
//! connections arrive as a socket the engine now owns (a duplicated file
//! descriptor) or as a byte stream the application carries (TLS, and the
//! stream of an HTTP/2 extended CONNECT, RFC 8441).

use crate::engine::{method_name, Engine, Event, EventQueue, Fields, RequestInfo};
use crate::protocol::stream::frame_parts;
use crate::transport::polling::{self, Served};
use crate::transport::websocket::{self, Opening, UpgradeAnswer};
use crate::transport::webtransport::{self, Admitted, WtIo};
use crate::transport::ws::{DirectSink, WsIo};
use crate::transport::Headers;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// A request body fed chunk by chunk; it ends when the sender is dropped.
#[derive(Debug)]
pub struct ChannelBody {
    rx: mpsc::UnboundedReceiver<Bytes>,
}

impl ChannelBody {
    /// A body and the sender that feeds it.
    pub fn new() -> (mpsc::UnboundedSender<Bytes>, Self) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, ChannelBody { rx })
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Serves an upgrade request on a connection the engine now owns: checks it
/// (hooks but middlewares, which the bridge ran), writes the 101 or
/// engine.io's 400, then runs the WebSocket. `head` is what the HTTP server
/// read past the request headers.
pub async fn serve_upgrade(
    engine: Engine,
    info: Arc<RequestInfo>,
    mut stream: WsIo,
    head: Vec<u8>,
    extra: Headers,
    opening: Opening,
) {
    let id = info.id;
    let answer = websocket::answer_upgrade(&engine, info, Some(extra), opening).await;
    if opening == Opening::Connect {
        // An HTTP/2 stream: the answer goes to the application as a
        // response (`:status` and headers are not bytes of the stream),
        // then the stream carries the WebSocket.
        let response = match &answer {
            UpgradeAnswer::Switch(s) => s.response.clone(),
            UpgradeAnswer::Refuse(res) => res.clone(),
            UpgradeAnswer::Destroy => crate::http::HttpResponse::empty(0),
        };
        engine.events().push(Event::Response {
            request: id,
            response,
        });
        match answer {
            UpgradeAnswer::Switch(switch) => {
                websocket::serve(engine, switch, stream, Bytes::from(head)).await
            }
            _ => stream.shutdown().await,
        }
        return;
    }
    match answer {
        UpgradeAnswer::Switch(switch) => {
            if stream.write_all(&switch.response.to_http1()).await.is_ok() {
                websocket::serve(engine, switch, stream, Bytes::from(head)).await;
            }
        }
        UpgradeAnswer::Refuse(res) => {
            let _ = stream.write_all(&res.to_http1()).await;
            stream.shutdown().await;
        }
        UpgradeAnswer::Destroy => {}
    }
}

/// Requests and connections in flight through the bridge.
#[derive(Default)]
pub struct Bridge {
    bodies: Mutex<HashMap<u64, mpsc::UnboundedSender<Bytes>>>,
    tasks: Mutex<HashMap<u64, AbortHandle>>,
    conns: Mutex<HashMap<u64, mpsc::UnboundedSender<Bytes>>>,
}

/// The request as Node parsed it.
pub struct NodeRequest {
    /// `req.method`.
    pub method: String,
    /// `req.url`.
    pub url: String,
    /// `req.httpVersion`.
    pub http_version: String,
    /// `rawHeaders`: `[name, value, ...]`.
    pub raw_headers: Vec<String>,
    /// The peer's address.
    pub remote_address: String,
    /// The peer's port.
    pub remote_port: u32,
}

/// The parts of a polling request the engine reads, when the application
/// keeps the request itself (the bridge: hooks, `socket.request` and
/// `connection_error` get Node's own request object).
pub struct PollRequest {
    /// `req.method`.
    pub method: String,
    /// `req.url`.
    pub url: String,
    /// The first `Origin` header, for `verify()`.
    pub origin: Option<String>,
    /// The first `Content-Type` header (binary POST bodies).
    pub content_type: Option<String>,
    /// The first `User-Agent` header (engine.io's IE workaround).
    pub user_agent: Option<String>,
    /// The first `Accept-Encoding` header (`httpCompression`).
    pub accept_encoding: Option<String>,
}

impl PollRequest {
    fn into_info(self, id: u64) -> RequestInfo {
        let mut headers = Fields::default();
        for (k, v) in [
            ("origin", self.origin),
            ("content-type", self.content_type),
            ("user-agent", self.user_agent),
            ("accept-encoding", self.accept_encoding),
        ] {
            if let Some(v) = v {
                headers.push(k, &v);
            }
        }
        let method = method_name(self.method);
        let mut info = RequestInfo::with_fields(method, self.url, "1.1", headers, None);
        info.id = id;
        info.held_by_app = true;
        info
    }
}

impl NodeRequest {
    fn into_info(self, id: u64) -> RequestInfo {
        let mut headers = Fields::default();
        for pair in self.raw_headers.chunks_exact(2) {
            headers.push_lowered(&pair[0], &pair[1]);
        }
        let remote = self
            .remote_address
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.remote_port as u16));
        let version = if self.http_version == "1.0" {
            "1.0"
        } else {
            "1.1"
        };
        let method = method_name(self.method);
        let mut info = RequestInfo::with_fields(method, self.url, version, headers, remote);
        info.id = id;
        info.held_by_app = true;
        info
    }
}

impl Bridge {
    /// Starts serving a polling request; returns its id. Its response comes
    /// as an [`Event::Response`].
    pub fn request(self: &Arc<Self>, engine: &Engine, req: NodeRequest) -> u64 {
        let id = engine.next_id();
        let info = Arc::new(req.into_info(id));
        self.spawn_request(engine, info);
        id
    }

    fn spawn_request(self: &Arc<Self>, engine: &Engine, info: Arc<RequestInfo>) {
        let id = info.id;
        let (tx, body) = ChannelBody::new();
        self.bodies.lock().insert(id, tx);
        let bridge = self.clone();
        let e = engine.clone();
        let mut tasks = self.tasks.lock();
        let task = engine.runtime().spawn(async move {
            let response = polling::handle(&e, info, body, false).await;
            bridge.bodies.lock().remove(&id);
            bridge.tasks.lock().remove(&id);
            e.events().push(Event::Response {
                request: id,
                response,
            });
        });
        tasks.insert(id, task.abort_handle());
    }

    /// Serves a polling request on the caller's thread when no hook needs
    /// the application (see [`polling::serve_now`]); returns its id and what
    /// came of it. A held GET's answer comes as an [`Event::Response`]. With
    /// [`Served::NeedsHooks`], the request is being served as with
    /// [`Bridge::request`]: feed its body with [`Bridge::body`].
    pub fn serve_now(self: &Arc<Self>, engine: &Engine, req: PollRequest) -> (u64, Served) {
        let id = engine.next_id();
        let info = Arc::new(req.into_info(id));
        let events = engine.events().clone();
        let served = polling::serve_now(engine, &info, move |response| {
            events.push(Event::Response {
                request: id,
                response,
            })
        });
        if let Served::NeedsHooks = served {
            self.spawn_request(engine, info);
        }
        (id, served)
    }

    /// A chunk of a request body.
    pub fn body(&self, id: u64, chunk: Bytes) {
        if let Some(tx) = self.bodies.lock().get(&id) {
            let _ = tx.send(chunk);
        }
    }

    /// The request body ended.
    pub fn body_end(&self, id: u64) {
        self.bodies.lock().remove(&id);
    }

    /// The client went away before the response: drop the request, which
    /// closes a held poll's session with `transport error`, as engine.io does.
    pub fn abort(&self, id: u64) {
        self.bodies.lock().remove(&id);
        if let Some(task) = self.tasks.lock().remove(&id) {
            task.abort();
        }
    }

    /// Takes over an upgraded plain TCP socket: duplicates `fd`, so Node may
    /// destroy its handle while the connection stays open for the engine.
    #[cfg(unix)]
    pub fn upgrade_fd(
        &self,
        engine: &Engine,
        req: NodeRequest,
        fd: i32,
        head: Vec<u8>,
        extra: Headers,
    ) -> std::io::Result<u64> {
        use std::os::fd::FromRawFd;
        // SAFETY: `fd` is the open descriptor of Node's socket; dup gives the
        // engine its own descriptor for the same connection.
        let dup = unsafe { libc::dup(fd) };
        if dup < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `dup` is a fresh descriptor that nothing else owns.
        let std = unsafe { std::net::TcpStream::from_raw_fd(dup) };
        std.set_nonblocking(true)?;
        let stream = {
            let _enter = engine.runtime().enter();
            tokio::net::TcpStream::from_std(std)?
        };
        let _ = stream.set_nodelay(true);
        let id = engine.next_id();
        let info = Arc::new(req.into_info(id));
        engine.runtime().spawn(serve_upgrade(
            engine.clone(),
            info,
            WsIo::tcp(stream),
            head,
            extra,
            Opening::Upgrade,
        ));
        Ok(id)
    }

    /// Serves an upgraded connection whose bytes JS carries (TLS and other
    /// streams that have no descriptor to take over). Bytes from the client
    /// come through [`Bridge::data`]; bytes to it as [`Event::BridgeWrite`].
    /// With [`Opening::Connect`] (an HTTP/2 stream), the answer comes as an
    /// [`Event::Response`] for the application to send as the stream's
    /// headers (status 0: destroy the stream), before any byte.
    pub fn upgrade_bytes(
        &self,
        engine: &Engine,
        req: NodeRequest,
        head: Vec<u8>,
        extra: Headers,
        opening: Opening,
    ) -> u64 {
        let id = engine.next_id();
        let info = Arc::new(req.into_info(id));
        let engine_side = self.carry(engine, id);
        let sink = engine_side.out.clone();
        engine.runtime().spawn(serve_upgrade(
            engine.clone(),
            info,
            WsIo::carried(engine_side, sink),
            head,
            extra,
            opening,
        ));
        id
    }

    /// Serves the first bidirectional stream of a WebTransport session the
    /// application handed over (engine.io's `onWebTransportSession`), whose
    /// bytes JS carries as with [`Bridge::upgrade_bytes`]; the end of the
    /// bytes to it means "close the session". Its first packet must come
    /// within `within`. There is no request to check: the session's request
    /// is a `CONNECT` of the engine's `path`, which JS shows as none.
    pub fn webtransport(&self, engine: &Engine, path: &str, within: Duration) -> u64 {
        let id = engine.next_id();
        let url = format!("{path}?EIO=4&transport=webtransport");
        let mut info = RequestInfo::new("CONNECT", url, "3", Vec::new(), None);
        info.id = id;
        info.held_by_app = true;
        info.encrypted = true;
        let request = engine.open_request(Arc::new(info));
        let io = Box::new(CarriedWt {
            io: self.carry(engine, id),
        });
        let deadline = tokio::time::Instant::now() + within;
        engine.runtime().spawn(webtransport::serve(
            engine.clone(),
            request,
            Admitted::Handed,
            None,
            io,
            deadline,
        ));
        id
    }

    /// The engine's end of carried connection `id`: bytes from
    /// [`Bridge::data`] come out of it, and what is written to it goes to
    /// the application as [`Event::BridgeWrite`].
    fn carry(&self, engine: &Engine, id: u64) -> Carried {
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        self.conns.lock().insert(id, tx);
        Carried {
            rx,
            pending: Bytes::new(),
            out: Arc::new(CarriedOut {
                events: engine.events().clone(),
                id,
                ended: AtomicBool::new(false),
            }),
        }
    }
    /// Bytes from the client of a carried connection.
    pub fn data(&self, id: u64, chunk: Bytes) {
        if let Some(tx) = self.conns.lock().get(&id) {
            let _ = tx.send(chunk);
        }
    }

    /// The client side of a carried connection ended.
    pub fn end(&self, id: u64) {
        self.conns.lock().remove(&id);
    }
}

/// The engine's end of a connection JS carries: it reads the chunks
/// [`Bridge::data`] sends (the end: when [`Bridge::end`] drops the sender)
/// and turns each write into an [`Event::BridgeWrite`] at once, with no
/// task or pipe between the connection's task and JS.
struct Carried {
    rx: mpsc::UnboundedReceiver<Bytes>,
    /// What a read had no room for.
    pending: Bytes,
    out: Arc<CarriedOut>,
}

/// The way out of a carried connection, shared by its task and the threads
/// that write to it directly (the application's sends).
struct CarriedOut {
    events: Arc<EventQueue>,
    id: u64,
    /// The end was reported to JS (shutdown, or the connection dropped):
    /// nothing may follow it.
    ended: AtomicBool,
}

impl CarriedOut {
    fn write(&self, data: Bytes) -> std::io::Result<()> {
        if self.ended.load(Ordering::Acquire) {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        self.events.push(Event::BridgeWrite {
            conn: self.id,
            data,
            end: false,
        });
        Ok(())
    }

    fn end(&self) {
        if !self.ended.swap(true, Ordering::AcqRel) {
            self.events.push(Event::BridgeWrite {
                conn: self.id,
                data: Bytes::new(),
                end: true,
            });
        }
    }
}

impl DirectSink for CarriedOut {
    /// JS takes everything: nothing is left over.
    fn write(&self, head: &[u8], body: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut data = Vec::with_capacity(head.len() + body.len());
        data.extend_from_slice(head);
        data.extend_from_slice(body);
        CarriedOut::write(self, Bytes::from(data))?;
        Ok(Vec::new())
    }
}

impl AsyncRead for Carried {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => this.pending = chunk,
                // The sender is gone: the client's side ended.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Carried {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = self.out.write(Bytes::copy_from_slice(data));
        Poll::Ready(written.map(|()| data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.out.end();
        Poll::Ready(Ok(()))
    }
}

impl Drop for Carried {
    fn drop(&mut self) {
        self.out.end();
    }
}

/// A handed-over WebTransport stream, carried by JS: read from the
/// carried bytes; written as one event per header and per payload, the
/// chunks engine.io writes to such a stream.
struct CarriedWt {
    io: Carried,
}

impl WtIo for CarriedWt {
    fn read(&mut self) -> BoxFuture<'_, std::io::Result<Option<Bytes>>> {
        async move {
            let mut buf = bytes::BytesMut::with_capacity(8 * 1024);
            let n = self.io.read_buf(&mut buf).await?;
            Ok((n > 0).then(|| buf.freeze()))
        }
        .boxed()
    }

    fn write_all<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, std::io::Result<()>> {
        let written =
            frame_parts(data).try_for_each(|part| self.io.out.write(Bytes::copy_from_slice(part)));
        std::future::ready(written).boxed()
    }

    /// The end of the carried bytes (after what was written): JS finishes
    /// the stream and closes the session.
    fn close(&mut self) -> BoxFuture<'_, ()> {
        async move {
            let _ = self.io.shutdown().await;
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried(rx: mpsc::UnboundedReceiver<Bytes>, events: &Arc<EventQueue>) -> Carried {
        Carried {
            rx,
            pending: Bytes::new(),
            out: Arc::new(CarriedOut {
                events: events.clone(),
                id: 7,
                ended: AtomicBool::new(false),
            }),
        }
    }

    fn writes(events: &EventQueue) -> Vec<(Vec<u8>, bool)> {
        events
            .drain()
            .into_iter()
            .map(|e| match e {
                Event::BridgeWrite { data, end, .. } => (data.to_vec(), end),
                other => panic!("unexpected event {other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_carried_connection_reads_what_js_sends_and_writes_events() {
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        let events = EventQueue::new(|| {});
        let mut io = carried(rx, &events);
        tx.send(Bytes::from_static(b"hello world")).unwrap();
        // A chunk larger than the read's room is read over several reads.
        let mut buf = [0u8; 4];
        assert_eq!(io.read(&mut buf).await.unwrap(), 4);
        assert_eq!(&buf, b"hell");
        let mut rest = Vec::new();
        drop(tx);
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"o world");

        io.write_all(b"frame").await.unwrap();
        // A direct write (from the sending thread) is one event, whole.
        let sink: Arc<dyn DirectSink> = io.out.clone();
        assert!(sink.write(b"he", b"ad").unwrap().is_empty());
        io.shutdown().await.unwrap();
        assert!(io.write_all(b"late").await.is_err());
        assert!(sink.write(b"late", b"").is_err());
        drop(io);
        // The writes, then one end: the drop after the shutdown adds none.
        assert_eq!(
            writes(&events),
            [
                (b"frame".to_vec(), false),
                (b"head".to_vec(), false),
                (vec![], true)
            ]
        );
    }

    #[tokio::test]
    async fn a_carried_connection_dropped_without_shutdown_still_ends() {
        let (_tx, rx) = mpsc::unbounded_channel::<Bytes>();
        let events = EventQueue::new(|| {});
        let io = carried(rx, &events);
        drop(io);
        assert_eq!(writes(&events), [(vec![], true)]);
    }
}
