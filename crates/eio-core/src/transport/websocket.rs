//! The WebSocket transport: one task per connection reads frames, writes
//! what the session buffers, and runs the upgrade of a polling session.

use super::upgrade::{self, upgrade_timer, Step, UpgradeTimer, UpgradeTimers};
use super::ws::{DirectSink, Ready, WsIo};
use crate::engine::log::{self, debug, Scope};
use crate::engine::stats::{Counter, Counters};
use crate::engine::{
    Admission, Engine, RequestError, RequestInfo, Session, TransportKind, Verified,
};
use crate::engine::{
    CloseReason, Driver, MessageRef, OpenRequest, Outbox, ReadyState, Role, ServerClose,
};
use crate::http::HttpResponse;
use crate::protocol::ws::deflate::{self, Agreed, Deflater, Inflater};
use crate::protocol::ws::frame::{self, Decoder, Incoming, OP_BINARY, OP_PONG, OP_TEXT};
use crate::protocol::ws::Violation;
use crate::protocol::{
    decode_packet, v3, DecodeError, Packet, PacketData, PacketType, Protocol, Str, WsFrame,
};
use crate::transport::Headers;
use bytes::Bytes;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

/// What an upgrade request turned out to be, decided before the 101.
#[derive(Debug)]
enum Ticket {
    /// A new session that starts on WebSocket, with its id.
    Handshake {
        /// The protocol revision.
        protocol: Protocol,
        /// The id the session will have.
        sid: String,
    },
    /// A polling session that wants to upgrade.
    Upgrade(Arc<Session>),
    /// Accepted, then closed at once (engine.io does this for upgrade
    /// requests whose transport does not handle upgrades).
    Close,
}

/// Why an upgrade request gets no 101.
#[derive(Debug)]
enum Refusal {
    /// A middleware ended the response: the connection is destroyed.
    Destroy,
    /// engine.io's error: a 400 with the message, and `connection_error`.
    Error(RequestError),
}

/// How a WebSocket is opened on its HTTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// HTTP/1.1 `GET` with `Upgrade: websocket`, answered 101 (RFC 6455).
    Upgrade,
    /// HTTP/2 extended `CONNECT` with `:protocol: websocket`, answered 200
    /// on the stream (RFC 8441); the front end checked the method and the
    /// protocol.
    Connect,
}

/// What a front end does with an upgrade request, decided here once for
/// both front ends.
#[derive(Debug)]
pub enum UpgradeAnswer {
    /// Write [`Switch::response`] (the 101), then hand the connection to
    /// [`serve`].
    Switch(Switch),
    /// Write this response (engine.io's 400) and close the connection.
    Refuse(HttpResponse),
    /// End the connection with no answer: a middleware ended it.
    Destroy,
}

/// An accepted upgrade, waiting for its connection.
#[derive(Debug)]
pub struct Switch {
    /// The 101: the WebSocket headers, then the application's.
    pub response: HttpResponse,
    ticket: Ticket,
    request: OpenRequest,
    deflate: Option<Agreed>,
}

/// Answers an upgrade request: engine.io's checks (middlewares, `verify`,
/// `allowRequest`, `generateId`, `headers`), then `ws`'s, with a refusal
/// reported to the application. `ran_middlewares` carries the headers of
/// middlewares the front end already ran (the Node bridge runs them on the
/// real request); with `None` the engine runs them. The application is
/// told the request is done when the answer (or the connection it
/// switches) no longer needs it, however the front end leaves.
pub async fn answer_upgrade(
    engine: &Engine,
    info: Arc<RequestInfo>,
    ran_middlewares: Option<Headers>,
    opening: Opening,
) -> UpgradeAnswer {
    let request = engine.open_request(info);
    let info = request.info().clone();
    let (ticket, extra) = match prepare(engine, &info, ran_middlewares).await {
        Ok(t) => t,
        Err(Refusal::Destroy) => return UpgradeAnswer::Destroy,
        Err(Refusal::Error(error)) => {
            let res = HttpResponse::upgrade_refused(error.client_message());
            drop(request);
            engine.report_error(info, error);
            return UpgradeAnswer::Refuse(res);
        }
    };
    let accept = match accept(engine, &info, opening) {
        Ok(a) => a,
        Err(body) => return UpgradeAnswer::Refuse(HttpResponse::upgrade_refused(body)),
    };
    let mut headers: Headers = accept
        .headers()
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    headers.extend(extra);
    UpgradeAnswer::Switch(Switch {
        response: HttpResponse {
            status: match opening {
                Opening::Upgrade => 101,
                Opening::Connect => 200,
            },
            headers,
            body: Bytes::new(),
        },
        ticket,
        request,
        deflate: accept.deflate,
    })
}

/// Runs engine.io's checks on an upgrade request (middlewares, `verify`,
/// `allowRequest`, `generateId`) and returns the ticket and the extra
/// headers of the 101: the middlewares' as the `headers` listeners left them.
async fn prepare(
    engine: &Engine,
    req: &Arc<RequestInfo>,
    ran_middlewares: Option<Headers>,
) -> Result<(Ticket, Headers), Refusal> {
    let run = ran_middlewares.is_none();
    let (verified, headers) = match engine.admit(req, true, run).await {
        Admission::Proceed { verified, headers } => (verified, ran_middlewares.unwrap_or(headers)),
        Admission::Respond(_) => return Err(Refusal::Destroy),
        Admission::Refused(e, _) => return Err(Refusal::Error(e)),
    };
    let ticket = match verified {
        Verified::Handshake(TransportKind::WebSocket) => {
            let (protocol, sid) = engine.handshake_id(req).await.map_err(Refusal::Error)?;
            Ticket::Handshake { protocol, sid }
        }
        Verified::Existing(session, TransportKind::WebSocket) => Ticket::Upgrade(session),
        _ => Ticket::Close,
    };
    let sid: Arc<str> = match &ticket {
        Ticket::Handshake { sid, .. } => Arc::from(sid.as_str()),
        Ticket::Upgrade(s) => s.sid.clone(),
        Ticket::Close => Arc::from(""),
    };
    let initial = req.query("sid").is_none();
    let headers = engine.response_headers(req, &sid, initial, headers).await;
    Ok((ticket, headers))
}

/// The answer to a valid RFC 6455 upgrade request: the headers of the 101.
#[derive(Debug)]
struct Accept {
    /// `Sec-WebSocket-Accept` (none over HTTP/2, which has no key).
    pub key: Option<String>,
    /// permessage-deflate, when configured and offered.
    pub deflate: Option<Agreed>,
}

impl Accept {
    /// The WebSocket headers of the 101, before the application's.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::with_capacity(4);
        if let Some(key) = &self.key {
            h.push(("Upgrade", "websocket".to_string()));
            h.push(("Connection", "Upgrade".to_string()));
            h.push(("Sec-WebSocket-Accept", key.clone()));
        }
        if let Some(d) = &self.deflate {
            h.push(("Sec-WebSocket-Extensions", d.header_value()));
        }
        h
    }
}

/// Checks an upgrade request as `ws` does after engine.io's checks (GET,
/// `Upgrade: websocket`, version 13, a key; the extension offer when
/// `perMessageDeflate` is on). `Err` is the body of the 400.
fn accept(engine: &Engine, req: &RequestInfo, opening: Opening) -> Result<Accept, &'static str> {
    let version = req.header("sec-websocket-version") == Some("13");
    let key = match opening {
        Opening::Upgrade => {
            let upgrade = req
                .header("upgrade")
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
            let key = req
                .header("sec-websocket-key")
                .map(str::trim)
                .filter(|k| !k.is_empty());
            let (true, true, Some(key)) = (req.method == "GET" && upgrade, version, key) else {
                return Err("Bad Request");
            };
            Some(accept_key(key))
        }
        Opening::Connect if version => None,
        Opening::Connect => return Err("Bad Request"),
    };
    let deflate = match &engine.config().per_message_deflate {
        Some(config) => {
            let offers: Vec<&str> = req
                .headers()
                .filter(|(k, _)| *k == "sec-websocket-extensions")
                .map(|(_, v)| v)
                .collect();
            if offers.is_empty() {
                None
            } else {
                deflate::negotiate(&offers.join(", "), config)
                    .map_err(|_| deflate::BAD_EXTENSIONS)?
            }
        }
        None => None,
    };
    Ok(Accept { key, deflate })
}

/// RFC 6455's `Sec-WebSocket-Accept`: base64 of SHA-1 of the key and GUID.
fn accept_key(key: &str) -> String {
    use base64::Engine as _;
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

/// How long a closing connection waits for the client's close frame before
/// it lets go of the socket.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Serves an accepted WebSocket until it ends, on the connection its 101
/// went out on. `head` holds bytes that arrived with the upgrade request.
pub fn serve(
    engine: Engine,
    switch: Switch,
    io: WsIo,
    head: Bytes,
) -> impl std::future::Future<Output = ()> + Send {
    // Taken apart here, outside the connection's future: an async fn keeps
    // its arguments for its whole life, and the 101 (sent already) would
    // make every idle connection's task bigger.
    let Switch {
        response,
        ticket,
        request,
        deflate,
    } = switch;
    drop(response);
    // A new session's request is done after its `connection` event, which
    // `serve_connection` reports itself; any other's now.
    let req = match ticket {
        Ticket::Handshake { .. } => request.defer(),
        _ => request.info().clone(),
    };
    serve_connection(engine, ticket, req, io, head, deflate)
}

async fn serve_connection(
    engine: Engine,
    ticket: Ticket,
    req: Arc<RequestInfo>,
    io: WsIo,
    head: Bytes,
    deflate: Option<Agreed>,
) {
    let link = WsLink::new(engine.next_id());
    // engine.io: `!req._query.b64`, so an empty `b64=` still means binary.
    let supports_binary = req.query("b64").is_none_or(|v| v.is_empty());
    let mut conn = Connection {
        engine: &engine,
        session: None,
        link: &link,
        candidate: false,
        probed: false,
        supports_binary,
        io,
        decoder: Decoder::new(
            engine.config().max_http_buffer_size,
            deflate.as_ref().map(Inflater::new),
        ),
        deflater: match (&deflate, &engine.config().per_message_deflate) {
            (Some(agreed), Some(config)) => Some(Deflater::new(agreed, config)),
            _ => None,
        },
        out: Vec::new(),
        zbuf: Vec::new(),
        items: Vec::new(),
    };
    let protocol = match &ticket {
        Ticket::Handshake { protocol, .. } => Some(*protocol),
        Ticket::Upgrade(session) => Some(session.protocol),
        Ticket::Close => None,
    };
    if let (Some(sink), None, Some(protocol)) = (conn.io.direct_sink(), &conn.deflater, protocol) {
        let direct = Direct {
            sink,
            protocol,
            supports_binary,
            counters: engine.inner.counters.clone(),
        };
        let _ = link.direct.set(Box::new(direct));
    }
    match ticket {
        Ticket::Close => return Box::pin(conn.close(1005)).await,
        Ticket::Handshake { protocol, sid } => {
            let driver = WsDriver::boxed(&link);
            let s = engine.open_session(req.clone(), protocol, sid, driver);
            // After `connection`, so the application hands the same request
            // object from its hooks to `socket.request` (owed since `serve`
            // deferred it).
            engine.request_done(&req);
            conn.session = Some(s);
        }
        Ticket::Upgrade(session) => {
            if !session.upgrade_begin(WsDriver::boxed(&link)) {
                return Box::pin(conn.close(1005)).await;
            }
            conn.session = Some(session);
            conn.candidate = true;
        }
    }
    // The request is not needed past the handshake: let it go now rather
    // than for the connection's life.
    drop(req);
    // A panic in this connection's code ends this session alone.
    let end = AssertUnwindSafe(conn.run(head))
        .catch_unwind()
        .await
        .unwrap_or(End::Panic);
    // Boxed: the ending runs once, and should not size the task that
    // waits on an idle connection.
    Box::pin(conn.end(end)).await;
}

/// How a connection ended.
enum End {
    /// The session (or the aborted upgrade) closed the socket.
    Closed,
    /// The client sent a close frame (its payload, to echo).
    Remote(Bytes),
    /// The client's stream ended without a close frame.
    Eof,
    /// Frames `ws` would refuse: closed with the violation's code.
    Violation(Violation),
    /// An I/O error.
    Io(String),
    /// A bug: this connection's code panicked.
    Panic,
}

struct Connection<'a> {
    engine: &'a Engine,
    session: Option<Arc<Session>>,
    link: &'a Arc<WsLink>,
    candidate: bool,
    /// The candidate answered the probe: upgrade ticks run.
    probed: bool,
    /// v3 clients that asked for `b64` get binary as base64 text.
    supports_binary: bool,
    io: WsIo,
    decoder: Decoder,
    deflater: Option<Deflater>,
    /// Frames being written.
    out: Vec<u8>,
    /// Compressed payloads before they are framed.
    zbuf: Vec<u8>,
    /// What the last read decoded.
    items: Vec<Incoming>,
}

impl Connection<'_> {
    fn session(&self) -> &Arc<Session> {
        self.session.as_ref().expect("set before run")
    }

    async fn run(&mut self, head: Bytes) -> End {
        let mut timers = self
            .candidate
            .then(|| UpgradeTimers::new(self.engine.config().upgrade_timeout));
        if !head.is_empty() {
            let n = head.len() as u64;
            self.engine
                .count(Counter::BytesIn(TransportKind::WebSocket), n);
            let r = self.decoder.feed(&head, &mut self.items);
            drop(head);
            if let Some(end) = Box::pin(self.handle(r)).await {
                return end;
            }
        }
        // A fresh session has its open packet buffered already.
        self.link.notify.notify_one();
        loop {
            if !self.candidate {
                timers = None;
            }
            tokio::select! {
                _ = self.link.notify.notified() => {
                    // Boxed, like `handle` below: an idle connection's task
                    // then holds neither's state (about 500 bytes).
                    if let Some(end) = Box::pin(self.write_batch()).await {
                        return end;
                    }
                }
                ready = self.io.ready() => {
                    let ready: Ready = match ready {
                        Ok(r) => r,
                        Err(e) => return End::Io(e.to_string()),
                    };
                    let (decoder, items) = (&mut self.decoder, &mut self.items);
                    let counters = &self.engine.inner.counters;
                    let fed = self.io.take(ready, |bytes| {
                        let n = bytes.len() as u64;
                        counters.add(Counter::BytesIn(TransportKind::WebSocket), n);
                        (!bytes.is_empty()).then(|| decoder.feed(bytes, items))
                    });
                    let r = match fed {
                        Err(e) => return End::Io(e.to_string()),
                        Ok(None) => continue,
                        Ok(Some(None)) => return End::Eof,
                        Ok(Some(Some(r))) => r,
                    };
                    if let Some(end) = Box::pin(self.handle(r)).await {
                        return end;
                    }
                }
                timer = upgrade_timer(&mut timers, self.probed) => match timer {
                    UpgradeTimer::Expired => {
                        self.session().upgrade_abort(self.link.id);
                        return End::Closed;
                    }
                    UpgradeTimer::Tick => self.session().upgrade_tick(self.link.id),
                },
            }
        }
    }

    /// Acts on what the last read decoded, in order, then on the
    /// violation that stopped decoding, if any.
    async fn handle(&mut self, decoded: Result<(), Violation>) -> Option<End> {
        let items = std::mem::take(&mut self.items);
        for item in items {
            if log::enabled(Scope::Ws) {
                match &item {
                    Incoming::Text(s) => debug!(self.session(), Scope::Ws, "received \"{s}\""),
                    Incoming::Binary(b) => debug!(
                        self.session(),
                        Scope::Ws,
                        "received \"<Buffer {} bytes>\"",
                        b.len()
                    ),
                    _ => {}
                }
            }
            let packet = match item {
                Incoming::Text(s) => match decode_text(s, self.session().protocol) {
                    Ok(Some(p)) => p,
                    Ok(None) => continue,
                    Err(_) => {
                        if self.candidate {
                            self.session().upgrade_abort(self.link.id);
                            return Some(End::Closed);
                        }
                        self.session().on_parse_error();
                        continue;
                    }
                },
                Incoming::Binary(b) => match binary_packet(b, self.session().protocol) {
                    Some(p) => p,
                    None => continue,
                },
                Incoming::Ping(payload) => {
                    // `ws` answers pings itself.
                    let (rest, callbacks) = ws_claim(self.session(), self.link.id);
                    self.out = rest;
                    frame::encode_frame(&mut self.out, OP_PONG, false, &payload);
                    let written = self.flush().await;
                    ws_release(self.session(), self.link.id, callbacks);
                    if let Err(e) = written {
                        return Some(End::Io(e.to_string()));
                    }
                    continue;
                }
                Incoming::Pong => continue,
                Incoming::Close(_, payload) => return Some(End::Remote(payload)),
            };
            if self.candidate {
                // Boxed: a few packets per upgrade should not size every
                // connection's task.
                if let Some(end) = Box::pin(self.upgrade_step(packet)).await {
                    return Some(end);
                }
                continue;
            }
            self.session().on_packet(packet, TransportKind::WebSocket);
        }
        // `items` is dropped here rather than kept: an idle connection holds
        // no buffers between reads.
        decoded.err().map(End::Violation)
    }

    /// Writes what the session has buffered for this connection.
    async fn write_batch(&mut self) -> Option<End> {
        match ws_batch(self.session(), self.link.id) {
            WsBatch::Idle => None,
            WsBatch::Close => Some(End::Closed),
            WsBatch::Rest { bytes, callbacks } => {
                self.out = bytes;
                if let Err(e) = self.flush().await {
                    return Some(End::Io(e.to_string()));
                }
                ws_release(self.session(), self.link.id, callbacks);
                // Whatever came meanwhile, or the session's end.
                self.link.notify.notify_one();
                None
            }
            WsBatch::Write {
                packets,
                frames,
                callbacks,
                close,
                more,
            } => {
                for (p, frame) in with_frames(&packets, &frames) {
                    let frame = frame.filter(|_| self.deflater.is_none());
                    let encoded = match frame {
                        Some(f) => {
                            self.out.extend_from_slice(f);
                            Ok(())
                        }
                        None => self.encode(p),
                    };
                    if let Err(e) = encoded {
                        return Some(End::Io(e.to_string()));
                    }
                }
                if let Err(e) = self.flush().await {
                    // A write after the client's close is its close.
                    return Some(match e.kind() {
                        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                            End::Eof
                        }
                        _ => End::Io(e.to_string()),
                    });
                }
                ws_release(self.session(), self.link.id, callbacks);
                if close {
                    return Some(End::Closed);
                }
                if more {
                    self.link.notify.notify_one();
                }
                None
            }
        }
    }

    /// Appends `p` as one frame to the output, compressed when agreed.
    fn encode(&mut self, p: &Packet) -> std::io::Result<()> {
        let protocol = self.session().protocol;
        encode_packet(
            &mut self.out,
            &mut self.zbuf,
            p,
            protocol,
            self.supports_binary,
            self.deflater.as_mut(),
        )
    }

    /// Writes the output buffer, then lets it go: an idle connection holds
    /// no buffers between writes.
    async fn flush(&mut self) -> std::io::Result<()> {
        let r = self.io.write_all(&self.out).await;
        if r.is_ok() {
            let n = self.out.len() as u64;
            self.engine
                .count(Counter::BytesOut(TransportKind::WebSocket), n);
        }
        self.out = Vec::new();
        self.zbuf = Vec::new();
        r
    }

    /// One packet of the upgrade dance: `2probe` → `3probe`, then `5`.
    async fn upgrade_step(&mut self, packet: Packet) -> Option<End> {
        let id = self.link.id;
        match upgrade::step(self.session(), id, &packet) {
            Step::Pong => {
                debug!(
                    self.session(),
                    Scope::Socket,
                    "got probe ping packet, sending pong"
                );
                let written = match self.encode(&upgrade::probe_pong()) {
                    Ok(()) => self.flush().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = written {
                    self.session().upgrade_abort(id);
                    return Some(End::Io(e.to_string()));
                }
                if !self.session().upgrade_probed(id) {
                    return Some(End::Closed);
                }
                self.probed = true;
                None
            }
            Step::Upgraded => {
                self.candidate = false;
                None
            }
            Step::End => Some(End::Closed),
        }
    }

    /// Reports how the connection ended to its session and closes it.
    async fn end(&mut self, end: End) {
        let session = self.session().clone();
        let id = self.link.id;
        match end {
            End::Closed => self.close(1005).await,
            End::Remote(payload) => {
                // `ws` echoes the client's close frame.
                session.transport_ended(id, None);
                self.close_with_payload(&payload).await;
            }
            End::Eof => session.transport_ended(id, None),
            End::Violation(v) => {
                session.transport_ended(id, Some(v.to_string()));
                self.close(v.code()).await;
            }
            End::Io(e) => session.transport_ended(id, Some(e)),
            End::Panic => {
                session.transport_ended(id, Some("internal error".into()));
                // Tell the client, but read nothing more from a connection
                // whose code just failed.
                self.close_then(1011, false).await;
            }
        }
    }

    /// Sends a close frame with `code` (1005: none), then lets the
    /// connection go once the client answers or [`CLOSE_LINGER`] passes.
    async fn close(&mut self, code: u16) {
        self.close_then(code, true).await;
    }

    /// Sends a close frame with `code` and ends our side; with `linger`,
    /// reads until the client closes too (or [`CLOSE_LINGER`] passes).
    async fn close_then(&mut self, code: u16, linger: bool) {
        if let Some(session) = &self.session {
            debug!(session, Scope::Ws, "closing");
        }
        self.out = self.claim();
        frame::encode_close(&mut self.out, code);
        if self.flush().await.is_err() {
            return;
        }
        self.io.shutdown().await;
        if linger {
            self.linger().await;
        }
    }

    /// Takes the socket from direct writes for the ending; returns the end
    /// of a frame a direct write began, which must precede the close frame.
    fn claim(&self) -> Vec<u8> {
        match &self.session {
            Some(s) => ws_claim(s, self.link.id).0,
            None => Vec::new(),
        }
    }

    /// Echoes a client's close frame and lets the connection go at once:
    /// both close frames are through, so closing sends a plain FIN (no
    /// linger, no shutdown first).
    async fn close_with_payload(&mut self, payload: &[u8]) {
        self.out = self.claim();
        frame::encode_frame(&mut self.out, frame::OP_CLOSE, false, payload);
        let _ = self.flush().await;
    }

    /// Reads until the client closes too, so our end does not reset a
    /// connection whose close frame is still on its way.
    async fn linger(&mut self) {
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            loop {
                let Ok(ready) = self.io.ready().await else {
                    return;
                };
                match self.io.take(ready, |b| b.is_empty()) {
                    Ok(Some(true)) | Err(_) => return,
                    _ => {}
                }
            }
        })
        .await;
    }
}

/// Appends `p` as one frame to `out`, compressed (through `zbuf`) when
/// `deflater` is there and wants it.
fn encode_packet(
    out: &mut Vec<u8>,
    zbuf: &mut Vec<u8>,
    p: &Packet,
    protocol: Protocol,
    supports_binary: bool,
    deflater: Option<&mut Deflater>,
) -> std::io::Result<()> {
    let (opcode, payload) = match (protocol, &p.data) {
        // The common case, framed without building the text first.
        (Protocol::V4, PacketData::Text(s)) if deflater.is_none() => {
            v4_text_head(out, p.kind, s.len());
            out.extend_from_slice(s.as_bytes());
            return Ok(());
        }
        _ => match wire_frame(p, protocol, supports_binary) {
            WsFrame::Text(s) => (OP_TEXT, s.into_bytes()),
            WsFrame::Binary(b) => (OP_BINARY, b),
        },
    };
    match deflater {
        Some(d) if d.wants(payload.len()) => {
            zbuf.clear();
            d.compress(&payload, zbuf)?;
            frame::encode_frame(out, opcode, true, zbuf);
        }
        _ => frame::encode_frame(out, opcode, false, &payload),
    }
    Ok(())
}

/// The start of an uncompressed v4 text frame carrying a `kind` packet
/// with `len` bytes of text: the frame header and the packet type, which
/// the text then follows (framed without building the packet's string).
fn v4_text_head(out: &mut Vec<u8>, kind: PacketType, len: usize) {
    frame::encode_header(out, OP_TEXT, false, 1 + len);
    out.push(kind.as_char() as u8);
}

/// Writes what the application sends straight to the connection's far end
/// (see [`DirectWrite`]); frames are built in a buffer per thread.
struct Direct {
    sink: Arc<dyn DirectSink>,
    protocol: Protocol,
    supports_binary: bool,
    /// The engine's, for the bytes written here.
    counters: Arc<Counters>,
}

impl Direct {
    /// Writes `head` then `body`; counts what the sink took (the task
    /// counts the rest when it writes it).
    fn write(&self, head: &[u8], body: &[u8]) -> std::io::Result<Vec<u8>> {
        let rest = self.sink.write(head, body)?;
        let taken = (head.len() + body.len() - rest.len()) as u64;
        self.counters
            .add(Counter::BytesOut(TransportKind::WebSocket), taken);
        Ok(rest)
    }
}

thread_local! {
    static FRAMES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl DirectWrite for Direct {
    fn write_now(&self, packets: &[Packet], frames: &[(usize, Bytes)]) -> std::io::Result<Vec<u8>> {
        FRAMES.with(|buf| {
            let mut out = buf.borrow_mut();
            out.clear();
            let mut unused = Vec::new();
            for (p, frame) in with_frames(packets, frames) {
                match frame {
                    Some(f) => out.extend_from_slice(f),
                    None => encode_packet(
                        &mut out,
                        &mut unused,
                        p,
                        self.protocol,
                        self.supports_binary,
                        None,
                    )?,
                }
            }
            let rest = self.write(&out, &[])?;
            // Keep a thread's buffer from holding on to one large message.
            if out.capacity() > 64 * 1024 {
                *out = Vec::new();
            }
            Ok(rest)
        })
    }

    fn write_message(&self, data: MessageRef<'_>) -> Option<std::io::Result<Vec<u8>>> {
        if self.protocol != Protocol::V4 {
            return None;
        }
        let mut head = Vec::with_capacity(11);
        let payload = match data {
            MessageRef::Text(s) => {
                v4_text_head(&mut head, PacketType::Message, s.len());
                s.as_bytes()
            }
            // A v4 client that asked for base64 gets `b<base64>` text.
            MessageRef::Binary(_) if !self.supports_binary => return None,
            MessageRef::Binary(b) => {
                frame::encode_header(&mut head, OP_BINARY, false, b.len());
                b
            }
        };
        Some(self.write(&head, payload))
    }
}

/// Each packet of a batch with the application's own frame for it, if it
/// gave one: one walk over both, since `frames` is in packet order.
fn with_frames<'a>(
    packets: &'a [Packet],
    frames: &'a [(usize, Bytes)],
) -> impl Iterator<Item = (&'a Packet, Option<&'a Bytes>)> {
    let mut frames = frames.iter().peekable();
    packets.iter().enumerate().map(move |(i, p)| {
        let frame = frames.next_if(|(at, _)| *at == i).map(|(_, f)| f);
        (p, frame)
    })
}

/// A text frame as a packet; `Ok(None)` for v3 frames engine.io ignores.
fn decode_text(s: Str, protocol: Protocol) -> Result<Option<Packet>, DecodeError> {
    match protocol {
        Protocol::V4 => decode_packet(s).map(Some),
        Protocol::V3 => v3::decode_packet_v3(s),
    }
}

/// A binary frame as a packet: all data in v4, a type byte then data in v3.
fn binary_packet(b: Bytes, protocol: Protocol) -> Option<Packet> {
    match protocol {
        Protocol::V4 => Some(Packet::binary(b)),
        Protocol::V3 => v3::decode_binary_packet_v3(b),
    }
}

fn wire_frame(p: &Packet, protocol: Protocol, supports_binary: bool) -> WsFrame {
    match protocol {
        Protocol::V4 => p.to_ws_frame_with(supports_binary),
        Protocol::V3 => v3::encode_packet_ws_v3(p, supports_binary),
    }
}

// ---- the driver -----------------------------------------------------------

/// The link between a session and the task that owns a WebSocket: the task
/// sleeps on `notify` and asks the session what to do when woken.
pub(crate) struct WsLink {
    pub(crate) id: u64,
    pub(crate) notify: Notify,
    /// Set when the socket can be written from any thread: the driver then
    /// writes what is sent right away, without waking the task.
    pub(crate) direct: OnceLock<Box<dyn DirectWrite>>,
}

impl std::fmt::Debug for WsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsLink")
            .field("id", &self.id)
            .field("direct", &self.direct.get().is_some())
            .finish()
    }
}

impl WsLink {
    pub(crate) fn new(id: u64) -> Arc<Self> {
        Arc::new(WsLink {
            id,
            notify: Notify::new(),
            direct: OnceLock::new(),
        })
    }
}

/// A WebSocket written without blocking from whichever thread sends: a
/// message then costs one write system call on the sending thread instead
/// of a hand-off to the connection's task and back.
pub(crate) trait DirectWrite: Send + Sync {
    /// Writes `packets` as frames as far as the socket takes them now, and
    /// returns the bytes it did not take (empty: all written), or an error
    /// when the connection is broken.
    fn write_now(&self, packets: &[Packet], frames: &[(usize, Bytes)]) -> std::io::Result<Vec<u8>>;

    /// Writes one `message` packet from borrowed data, without building a
    /// packet (no copy before the kernel's); as [`DirectWrite::write_now`],
    /// or `None` when this connection frames messages some other way.
    fn write_message(&self, data: MessageRef<'_>) -> Option<std::io::Result<Vec<u8>>>;
}

/// WebSocket as a session's transport (or upgrade candidate). The socket
/// has one writer at a time: the sending thread, directly, while `busy` is
/// false; the connection's task while it is true.
#[derive(Debug)]
pub(crate) struct WsDriver {
    link: Arc<WsLink>,
    /// The task has a write in flight: nothing may be written directly
    /// until it is done (frames must not interleave).
    busy: bool,
    /// Bytes a direct write left over, with the callbacks they carried: the
    /// task writes them first. Boxed: rare, and every idle session holds
    /// the field.
    rest: Option<Box<(Vec<u8>, Option<u32>)>>,
}

impl WsDriver {
    pub(crate) fn boxed(link: &Arc<WsLink>) -> Box<dyn Driver> {
        Box::new(WsDriver {
            link: link.clone(),
            busy: false,
            rest: None,
        })
    }

    /// What a direct write left: the task takes over the socket.
    fn hand_to_task(
        &mut self,
        written: std::io::Result<Vec<u8>>,
        callbacks: Option<u32>,
        out: &Outbox<'_>,
    ) -> bool {
        match written {
            Ok(rest) if rest.is_empty() => {
                out.drained(callbacks);
                true
            }
            // The socket is full (or broken: the task finds out and ends
            // the session): the task writes the rest when it can.
            Ok(rest) => {
                self.busy = true;
                self.rest = Some(Box::new((rest, callbacks)));
                self.link.notify.notify_one();
                false
            }
            Err(_) => {
                self.busy = true;
                self.link.notify.notify_one();
                false
            }
        }
    }
}

impl Driver for WsDriver {
    fn kind(&self) -> TransportKind {
        TransportKind::WebSocket
    }

    fn id(&self) -> u64 {
        self.link.id
    }

    fn writable(&self) -> bool {
        !self.busy
    }

    fn held(&self) -> usize {
        self.rest.as_ref().map_or(0, |r| r.0.len())
    }

    /// Writes the buffer straight to the socket when it can be written from
    /// here and the task has nothing in flight; otherwise wakes the task.
    fn flush(&mut self, out: &mut Outbox<'_>) {
        let link = self.link.clone();
        let direct = match link.direct.get() {
            Some(d) if !self.busy => d,
            _ => return link.notify.notify_one(),
        };
        // The handshake goes alone, as its own frame(s), then the rest.
        while !out.is_empty() {
            let taken = out.take(false);
            let written = direct.write_now(&taken.packets, &taken.frames);
            if !self.hand_to_task(written, taken.callbacks, out) {
                return;
            }
        }
    }

    fn send_now(
        &mut self,
        data: MessageRef<'_>,
        callback: bool,
        out: &mut Outbox<'_>,
    ) -> Option<()> {
        if self.busy {
            return None;
        }
        let link = self.link.clone();
        let written = link.direct.get()?.write_message(data)?;
        self.hand_to_task(written, Some(u32::from(callback)), out);
        Some(())
    }

    fn writes_directly(&self) -> bool {
        !self.busy && self.link.direct.get().is_some()
    }

    fn close_requested(&mut self, _: bool, _: &mut Outbox<'_>) -> ServerClose {
        ServerClose::Now
    }

    /// The task writes what is left, then the close frame.
    fn closed(&mut self, _: CloseReason, _: &mut Outbox<'_>) {
        self.link.notify.notify_one();
    }

    fn pause(&mut self, _: &mut Outbox<'_>) {}

    fn wake(&self) {
        self.link.notify.notify_one();
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// What a WebSocket task should do when woken.
enum WsBatch {
    /// Write these packets; `close` says whether to close the socket
    /// afterwards, `more` that packets are left for another batch.
    Write {
        packets: Vec<Packet>,
        /// Pre-encoded frames, by index in `packets`.
        frames: Vec<(usize, Bytes)>,
        callbacks: Option<u32>,
        close: bool,
        more: bool,
    },
    /// Write these bytes, which a direct write left over, before anything
    /// else; they carried `callbacks`.
    Rest {
        bytes: Vec<u8>,
        callbacks: Option<u32>,
    },
    /// Nothing to write.
    Idle,
    /// Close the socket: the session ended or no longer uses it.
    Close,
}

/// What the task of connection `id` should do now.
fn ws_batch(session: &Session, id: u64) -> WsBatch {
    session.drive(id, |role: Role<'_, WsDriver>, out| match role {
        Role::Current(d) => {
            if let Some((bytes, callbacks)) = d.rest.take().map(|r| *r) {
                return WsBatch::Rest { bytes, callbacks };
            }
            let close = out.ready() == ReadyState::Closed;
            if out.is_empty() || (!out.acked() && !close) {
                d.busy = false;
                return if close { WsBatch::Close } else { WsBatch::Idle };
            }
            // The handshake goes alone, as its own frame(s), like engine.io's.
            let taken = out.take(close);
            d.busy = true;
            WsBatch::Write {
                packets: taken.packets,
                frames: taken.frames,
                callbacks: taken.callbacks,
                close,
                more: !out.is_empty(),
            }
        }
        Role::Candidate if out.ready() != ReadyState::Closed => WsBatch::Idle,
        _ => WsBatch::Close,
    })
}

/// The task of connection `id` is about to write on its own (a pong, a
/// close frame): no direct write may start until [`ws_release`], and bytes
/// a direct write left over (the end of a frame already begun on the wire)
/// must go first. Returns them and the callbacks they carried.
fn ws_claim(session: &Session, id: u64) -> (Vec<u8>, Option<u32>) {
    session.drive(id, |role: Role<'_, WsDriver>, _| match role {
        Role::Current(d) => {
            d.busy = true;
            d.rest.take().map(|r| *r).unwrap_or_default()
        }
        _ => (Vec::new(), None),
    })
}

/// The task of connection `id` wrote what it claimed or what [`ws_batch`]
/// gave it, carrying `callbacks` send callbacks; what was sent meanwhile
/// may now be written directly again.
fn ws_release(session: &Session, id: u64, callbacks: Option<u32>) {
    session.drive(id, |role: Role<'_, WsDriver>, out| {
        out.drained(callbacks);
        if let Role::Current(d) = role {
            d.busy = false;
            if out.ready() != ReadyState::Closed && !out.is_empty() && out.acked() {
                d.flush(out);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{CloseReason, Config, Event, EventQueue};
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

    /// A stream that panics on its next read once `armed` is set: a stand-in
    /// for a bug anywhere in a connection's code.
    struct Faulty {
        inner: DuplexStream,
        armed: Arc<AtomicBool>,
    }

    impl AsyncRead for Faulty {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let r = Pin::new(&mut self.inner).poll_read(cx, buf);
            if r.is_ready() && self.armed.load(Ordering::SeqCst) {
                panic!("injected fault");
            }
            r
        }
    }

    impl AsyncWrite for Faulty {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// A client end: writes masked frames, reads the server's frames.
    struct Client {
        io: DuplexStream,
        buf: Vec<u8>,
    }

    impl Client {
        async fn send(&mut self, opcode: u8, payload: &[u8]) {
            let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8, 1, 2, 3, 4];
            let mut p = payload.to_vec();
            frame::unmask(&mut p, [1, 2, 3, 4]);
            f.extend(p);
            self.io.write_all(&f).await.unwrap();
        }

        /// The next server frame as (opcode, payload); `None` at the end.
        async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
            loop {
                if self.buf.len() >= 2 {
                    let len = (self.buf[1] & 0x7F) as usize;
                    assert!(len < 126, "small frames only");
                    if self.buf.len() >= 2 + len {
                        let f = (self.buf[0] & 0x0F, self.buf[2..2 + len].to_vec());
                        self.buf.drain(..2 + len);
                        return Some(f);
                    }
                }
                let mut chunk = [0u8; 256];
                let n = self.io.read(&mut chunk).await.unwrap();
                if n == 0 {
                    return None;
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }
    }

    /// Opens a WebSocket session over an in-memory stream.
    fn open(engine: &Engine, sid: &str) -> (Client, Arc<AtomicBool>) {
        let (client, server) = tokio::io::duplex(4096);
        let armed = Arc::new(AtomicBool::new(false));
        let io = WsIo::other(Faulty {
            inner: server,
            armed: armed.clone(),
        });
        spawn_session(engine, io, sid);
        (
            Client {
                io: client,
                buf: Vec::new(),
            },
            armed,
        )
    }

    /// A runtime engine with the default configuration.
    fn test_engine() -> Engine {
        Engine::new(
            Config::default(),
            EventQueue::new(|| {}),
            tokio::runtime::Handle::current(),
        )
    }

    /// Serves a new v4 WebSocket session with id `sid` on `io`.
    fn spawn_session(engine: &Engine, io: WsIo, sid: &str) {
        let url = "/engine.io/?EIO=4&transport=websocket";
        let req = Arc::new(RequestInfo::new("GET", url, "1.1", vec![], None));
        let switch = Switch {
            response: HttpResponse::empty(101),
            ticket: Ticket::Handshake {
                protocol: Protocol::V4,
                sid: sid.into(),
            },
            request: engine.open_request(req),
            deflate: None,
        };
        tokio::spawn(serve(engine.clone(), switch, io, Bytes::new()));
    }

    /// Collects events until `done` holds (for at most 5 s), acknowledging
    /// new sessions as the JS side does.
    async fn events_until(engine: &Engine, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let mut evs = Vec::new();
        for _ in 0..500 {
            for ev in engine.events().drain() {
                if let Event::Connection { handle, .. } = &ev {
                    engine.session(*handle).unwrap().ack_open();
                }
                evs.push(ev);
            }
            if done(&evs) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        evs
    }

    async fn messages_until(engine: &Engine, n: usize) -> Vec<String> {
        messages(&events_until(engine, |evs| messages(evs).len() >= n).await)
    }

    fn messages(evs: &[Event]) -> Vec<String> {
        evs.iter()
            .filter_map(|e| match e {
                Event::Message {
                    data: PacketData::Text(t),
                    ..
                } => Some(t.to_string()),
                _ => None,
            })
            .collect()
    }

    /// Reads `n` whole server frames (any length) from a TCP client, as
    /// (opcode, payload).
    async fn read_frames(
        io: &mut tokio::net::TcpStream,
        buf: &mut Vec<u8>,
        n: usize,
    ) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        while frames.len() < n {
            loop {
                if buf.len() >= 2 {
                    let (len, head) = match buf[1] & 0x7F {
                        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                        127 if buf.len() >= 10 => (
                            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                            10,
                        ),
                        l @ 0..=125 => (l as usize, 2),
                        _ => (usize::MAX, 0),
                    };
                    if len != usize::MAX && buf.len() >= head + len {
                        frames.push((buf[0] & 0x0F, buf[head..head + len].to_vec()));
                        buf.drain(..head + len);
                        break;
                    }
                }
                let mut chunk = vec![0u8; 64 * 1024];
                let got = io.read(&mut chunk).await.unwrap();
                assert!(got > 0, "connection ended after {} frames", frames.len());
                buf.extend_from_slice(&chunk[..got]);
            }
        }
        frames
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn direct_writes_keep_order_when_the_socket_is_full() {
        let engine = test_engine();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        spawn_session(&engine, WsIo::tcp(server), "cccccccccccccccccccc");
        let opened = events_until(&engine, |evs| !evs.is_empty()).await;
        let Event::Connection { handle, .. } = &opened[0] else {
            panic!("{opened:?}")
        };
        let session = engine.session(*handle).unwrap();
        let mut buf = Vec::new();
        assert_eq!(read_frames(&mut client, &mut buf, 1).await[0].1[0], b'0');
        // Far more than the socket buffers hold while the client does not
        // read: some go straight out, some are left over, the rest queue.
        let n = 400;
        // Borrowed and owned sends mixed: both paths keep one order.
        for i in 0..n {
            let text = format!("{i:05}{}", "x".repeat(20_000));
            let sent = match i % 2 {
                0 => session.send_now(crate::engine::MessageRef::Text(&text), true),
                _ => None,
            };
            if sent.is_none() {
                assert!(session.send(PacketData::Text(Str::from(text)), false, true));
            }
        }
        // A ping while frames are half written: its pong must not land in
        // the middle of one.
        let mut ping = vec![0x89, 0x82, 1, 2, 3, 4];
        let mut payload = b"hi".to_vec();
        frame::unmask(&mut payload, [1, 2, 3, 4]);
        ping.extend(payload);
        client.write_all(&ping).await.unwrap();
        let frames = read_frames(&mut client, &mut buf, n + 1).await;
        let pongs: Vec<_> = frames.iter().filter(|f| f.0 == frame::OP_PONG).collect();
        assert_eq!(pongs, [&(frame::OP_PONG, b"hi".to_vec())]);
        let texts: Vec<_> = frames.iter().filter(|f| f.0 == OP_TEXT).collect();
        assert_eq!(texts.len(), n);
        for (i, (_, f)) in texts.iter().enumerate() {
            assert_eq!(
                &f[..6],
                format!("4{i:05}").as_bytes(),
                "frame {i} out of order"
            );
            assert_eq!(f.len(), 1 + 5 + 20_000);
        }
        // Every send callback was reported.
        let evs = events_until(&engine, |evs| {
            evs.iter()
                .map(|e| match e {
                    Event::Drain { callbacks, .. } => *callbacks as usize,
                    _ => 0,
                })
                .sum::<usize>()
                == n
        })
        .await;
        let reported: usize = evs
            .iter()
            .map(|e| match e {
                Event::Drain { callbacks, .. } => *callbacks as usize,
                _ => 0,
            })
            .sum();
        assert_eq!(reported, n);
    }

    /// A socket that takes only the first `take` bytes of each write.
    struct HalfSocket {
        take: std::sync::atomic::AtomicUsize,
        written: std::sync::Mutex<Vec<Vec<u8>>>,
    }

    impl DirectWrite for HalfSocket {
        fn write_now(
            &self,
            packets: &[Packet],
            _frames: &[(usize, Bytes)],
        ) -> std::io::Result<Vec<u8>> {
            let mut out = Vec::new();
            for p in packets {
                let mut z = Vec::new();
                encode_packet(&mut out, &mut z, p, Protocol::V4, true, None)?;
            }
            let n = self.take.load(Ordering::SeqCst).min(out.len());
            self.written.lock().unwrap().push(out[..n].to_vec());
            Ok(out[n..].to_vec())
        }

        fn write_message(&self, _: MessageRef<'_>) -> Option<std::io::Result<Vec<u8>>> {
            None
        }
    }

    /// A shared socket, so the test keeps a handle on what was written.
    impl<T: DirectWrite> DirectWrite for Arc<T> {
        fn write_now(&self, p: &[Packet], f: &[(usize, Bytes)]) -> std::io::Result<Vec<u8>> {
            (**self).write_now(p, f)
        }

        fn write_message(&self, m: MessageRef<'_>) -> Option<std::io::Result<Vec<u8>>> {
            (**self).write_message(m)
        }
    }

    #[tokio::test]
    async fn the_task_writes_the_rest_of_a_direct_write_before_its_own_frames() {
        let engine = test_engine();
        let link = WsLink::new(engine.next_id());
        let socket = Arc::new(HalfSocket {
            take: usize::MAX.into(),
            written: Default::default(),
        });
        let _ = link.direct.set(Box::new(socket.clone()));
        let req = Arc::new(RequestInfo::new(
            "GET",
            "/engine.io/?EIO=4",
            "1.1",
            vec![],
            None,
        ));
        let driver = WsDriver::boxed(&link);
        let session = engine.open_session(req, Protocol::V4, "dddd".into(), driver);
        // The handshake is written directly, whole, once the application
        // has seen the connection.
        session.ack_open();
        let handshake = socket.written.lock().unwrap().pop().unwrap();
        assert_eq!(handshake[2], b'0');
        socket.take.store(3, Ordering::SeqCst);

        let text = |s: &str| PacketData::Text(Str::from(s.to_string()));
        assert!(session.send(text("hello"), false, true));
        // 3 bytes of "\x81\x06" + "4hello" went out; the rest waits.
        assert_eq!(
            socket.written.lock().unwrap().as_slice(),
            [vec![0x81, 6, b'4']]
        );
        // Now sends queue instead of interleaving with the half frame.
        assert!(session.send(text("next"), false, false));
        assert_eq!(socket.written.lock().unwrap().len(), 1);
        // The task's own frame (a pong) must follow the rest of "hello".
        let (rest, callbacks) = ws_claim(&session, link.id);
        assert_eq!(rest, b"hello");
        assert_eq!(callbacks, Some(1));
        ws_release(&session, link.id, callbacks);
        // Released: the queued "next" goes out directly, after all of that.
        let written = socket.written.lock().unwrap().clone();
        assert_eq!(written.len(), 2);
        assert_eq!(written[1], vec![0x81, 5, b'4']);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_in_one_connection_closes_only_its_session() {
        let engine = test_engine();
        let (mut a, armed) = open(&engine, "aaaaaaaaaaaaaaaaaaaa");
        let (mut b, _) = open(&engine, "bbbbbbbbbbbbbbbbbbbb");
        let opened = events_until(&engine, |evs| {
            evs.iter()
                .filter(|e| matches!(e, Event::Connection { .. }))
                .count()
                == 2
        })
        .await;
        let b_handle = opened
            .iter()
            .find_map(|e| match e {
                Event::Connection { handle, sid, .. } if sid.starts_with('b') => Some(*handle),
                _ => None,
            })
            .expect("b's connection event");
        assert_eq!(a.next().await.unwrap().1[0], b'0');
        assert_eq!(b.next().await.unwrap().1[0], b'0');
        a.send(1, b"4before").await;
        assert_eq!(messages_until(&engine, 1).await, ["before"]);

        armed.store(true, Ordering::SeqCst);
        a.send(1, b"4boom").await;
        let evs = events_until(&engine, |evs| {
            evs.iter().any(|e| matches!(e, Event::Close { .. }))
        })
        .await;
        let closes: Vec<_> = evs
            .iter()
            .filter_map(|e| match e {
                Event::Close {
                    reason,
                    description,
                    ..
                } => Some((*reason, description.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            closes,
            [(CloseReason::TransportError, Some("internal error".into()))]
        );
        // Its client is told (1011) and the connection ends.
        let close = a.next().await.unwrap();
        assert_eq!(close, (frame::OP_CLOSE, 1011u16.to_be_bytes().to_vec()));
        assert_eq!(engine.clients_count(), 1);

        // The other session goes on, both ways.
        b.send(1, b"4still here").await;
        assert_eq!(messages_until(&engine, 1).await, ["still here"]);
        let text = PacketData::Text(Str::from("pong".to_string()));
        engine.session(b_handle).unwrap().send(text, false, false);
        assert_eq!(b.next().await.unwrap(), (frame::OP_TEXT, b"4pong".to_vec()));
    }
}
