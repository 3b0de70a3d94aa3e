//! HTTP long-polling: the handshake GET, the held GET that carries packets to
//! the client, and the POST that carries packets from it. A session whose
//! handshake had a `j` parameter polls over JSONP instead (see [`Framing`]).

use super::HttpResponse;
use crate::engine::log::{debug, Scope};
use crate::engine::stats::Counter;
use crate::engine::{
    Admission, CloseReason, Engine, RequestInfo, Session, TransportKind, Verified,
};
use crate::engine::{Driver, Handle, HookSet, MessageRef, Outbox, ReadyState, ServerClose};
use crate::protocol::{decode_payload, encode_payload, jsonp, v3};
use crate::protocol::{DecodeError, Framing, Packet, PacketType, Protocol, Str};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use std::sync::Arc;

/// Why a request body could not be read whole.
#[derive(Debug)]
pub enum BodyError {
    /// Over `maxHttpBufferSize`.
    TooLarge,
    /// The client went away or sent a broken body.
    Aborted(String),
}

/// Reads a body, refusing it as soon as it grows past `limit` so that no
/// more than `limit` plus one chunk is ever held.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Aborted(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Serves one polling request (handshake, GET or POST) for `engine`.
/// `run_middlewares` is false when the front end already ran them (the Node
/// bridge runs them on the real request).
pub async fn handle<B>(
    engine: &Engine,
    req: Arc<RequestInfo>,
    body: B,
    run_middlewares: bool,
) -> HttpResponse
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let res = handle_inner(engine, &req, body, run_middlewares).await;
    engine.request_done(&req);
    res
}

async fn handle_inner<B>(
    engine: &Engine,
    req: &Arc<RequestInfo>,
    body: B,
    run_middlewares: bool,
) -> HttpResponse
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let (verified, mw_headers) = match engine.admit(req, false, run_middlewares).await {
        Admission::Proceed { verified, headers } => (verified, headers),
        Admission::Respond(res) => return res,
        Admission::Refused(error, headers) => {
            let res = HttpResponse::refused(&error);
            engine.report_error(req.clone(), error);
            return res.under(headers);
        }
    };
    let res = match verified {
        Verified::Handshake(_) => match engine.handshake_id(req).await {
            Err(error) => {
                let res = HttpResponse::refused(&error);
                engine.report_error(req.clone(), error);
                res
            }
            Ok((protocol, sid)) => {
                let session =
                    engine.open_session(req.clone(), protocol, sid, PollingDriver::boxed());
                let res = poll(engine, &session, req).await;
                with_headers(engine, req, &session, true, res).await
            }
        },
        Verified::Existing(session, _) => {
            let res = match &*req.method {
                "GET" => poll(engine, &session, req).await,
                "POST" => data(engine, &session, req, body).await,
                _ => HttpResponse::empty(500),
            };
            with_headers(engine, req, &session, false, res).await
        }
    };
    res.under(mw_headers)
}

/// engine.io's transport headers on a successful answer: `cache-control`,
/// the IE XSS workaround, then the application's `headers` listeners.
async fn with_headers(
    engine: &Engine,
    req: &Arc<RequestInfo>,
    session: &Session,
    initial: bool,
    mut res: HttpResponse,
) -> HttpResponse {
    if res.status != 200 {
        return res;
    }
    transport_headers(&mut res, old_ie(req));
    res.headers = engine
        .response_headers(req, &session.sid, initial, std::mem::take(&mut res.headers))
        .await;
    res
}

/// Whether the client is an old Internet Explorer (engine.io then sends
/// `X-XSS-Protection: 0`).
fn old_ie(req: &RequestInfo) -> bool {
    req.header("user-agent")
        .is_some_and(|ua| ua.contains(";MSIE") || ua.contains("Trident/"))
}

/// The headers engine.io's polling transport adds to a 200 before the
/// `headers` listeners see them.
fn transport_headers(res: &mut HttpResponse, old_ie: bool) {
    if res.status != 200 {
        return;
    }
    if old_ie {
        res.headers.push(("X-XSS-Protection".into(), "0".into()));
    }
    res.headers
        .push(("cache-control".into(), "no-store".into()));
}

/// Marks a held GET as abandoned if its future is dropped before it is
/// answered: the front end drops it when the client disconnects.
struct HeldPoll<'a> {
    session: &'a Arc<Session>,
    id: u64,
    armed: bool,
}

impl Drop for HeldPoll<'_> {
    fn drop(&mut self) {
        if self.armed {
            poll_abandoned(self.session, self.id);
        }
    }
}

/// How the packets answering one GET are written: the session's framing,
/// and the compression the client accepts (engine.io's `httpCompression`).
#[derive(Clone)]
struct PollAnswer {
    protocol: Protocol,
    framing: Framing,
    /// The threshold and the encoding, when compression is on and the
    /// client accepts gzip or deflate.
    compression: Option<(usize, &'static str)>,
    /// Where the bytes written are counted and `engine:polling` lines go.
    engine: Engine,
}

impl PollAnswer {
    fn new(engine: &Engine, session: &Session, req: &RequestInfo) -> Self {
        let compression = engine.config().http_compression.and_then(|threshold| {
            let encoding = req.header("accept-encoding").and_then(preferred_encoding)?;
            Some((threshold, encoding))
        });
        PollAnswer {
            protocol: session.protocol,
            framing: session.framing.clone(),
            compression,
            engine: engine.clone(),
        }
    }

    fn respond(&self, batch: &Batch) -> HttpResponse {
        let res = payload_response(self.protocol, &self.framing, &batch.packets);
        debug!(
            self.engine,
            Scope::Polling,
            "writing \"{}\"",
            shown(&res.body)
        );
        let res = match self.compression {
            Some((threshold, encoding)) if batch.compress && res.body.len() >= threshold => {
                debug!(self.engine, Scope::Polling, "compressing");
                compress(res, encoding)
            }
            _ => res,
        };
        let sent = res.body.len() as u64;
        self.engine
            .count(Counter::BytesOut(TransportKind::Polling), sent);
        res
    }
}

async fn poll(engine: &Engine, session: &Arc<Session>, req: &RequestInfo) -> HttpResponse {
    let (tx, rx) = tokio::sync::oneshot::channel();
    match get(engine, session, req, move |res| {
        let _ = tx.send(res);
    }) {
        Got::Now(res) => res,
        Got::Held(id) => {
            let mut held = HeldPoll {
                session,
                id,
                armed: true,
            };
            let res = rx.await;
            held.armed = false;
            res.unwrap_or_else(|_| HttpResponse::empty(400))
        }
    }
}

/// What [`get`] did with a GET.
enum Got {
    /// Its answer, now.
    Now(HttpResponse),
    /// It is held, with this id; its answer goes to the `answer` function.
    Held(u64),
}

/// A GET for `session`, on either front end's path: answered now, or held
/// until the session has packets for it (or can no longer answer it with
/// packets: 400). `answer` gets the held GET's response, from whatever
/// thread releases it, under the session's lock.
fn get(
    engine: &Engine,
    session: &Session,
    req: &RequestInfo,
    answer: impl FnOnce(HttpResponse) + Send + 'static,
) -> Got {
    let id = engine.next_id();
    let how = PollAnswer::new(engine, session, req);
    let held = how.clone();
    let waiter = Waiter::new(move |batch: Option<Batch>| {
        answer(match batch {
            Some(batch) => held.respond(&batch),
            None => HttpResponse::empty(400),
        })
    });
    match poll_start(session, id, waiter) {
        PollStart::Ready(batch) => Got::Now(how.respond(&batch)),
        PollStart::Wait(id) => Got::Held(id),
        PollStart::Overlap => Got::Now(HttpResponse::empty(400)),
        PollStart::Closed => Got::Now(unknown_sid(session)),
    }
}

/// engine.io's answer to a request for a session that is gone.
fn unknown_sid(session: &Session) -> HttpResponse {
    HttpResponse::refused(&crate::engine::RequestError::new(
        crate::engine::ErrorCode::UnknownSid,
        serde_json::json!({ "sid": &*session.sid }),
    ))
}

/// engine.io's `httpCompression`: the body in `encoding` (gzip or deflate).
fn compress(mut res: HttpResponse, encoding: &'static str) -> HttpResponse {
    use flate2::write::{GzEncoder, ZlibEncoder};
    use std::io::Write;
    let out = Vec::with_capacity(res.body.len() / 2);
    let level = flate2::Compression::default();
    let body = if encoding == "gzip" {
        let mut e = GzEncoder::new(out, level);
        e.write_all(&res.body).and_then(|_| e.finish())
    } else {
        let mut e = ZlibEncoder::new(out, level);
        e.write_all(&res.body).and_then(|_| e.finish())
    };
    match body {
        Ok(b) => {
            res.body = Bytes::from(b);
            res.headers
                .push(("Content-Encoding".into(), encoding.into()));
            res
        }
        Err(_) => HttpResponse::empty(500),
    }
}

/// `gzip` or `deflate`, whichever the client ranks higher in
/// `Accept-Encoding` (earlier wins a tie, `*` stands for both), if any.
pub fn preferred_encoding(header: &str) -> Option<&'static str> {
    let mut best: Option<(&'static str, f32, usize)> = None;
    for (pos, part) in header.split(',').enumerate() {
        let mut it = part.split(';');
        let name = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|v| v.trim().parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        let candidates: &[&'static str] = match name.as_str() {
            "gzip" => &["gzip"],
            "deflate" => &["deflate"],
            "*" => &["gzip", "deflate"],
            _ => &[],
        };
        for &c in candidates {
            if q > 0.0 && best.is_none_or(|(_, bq, _)| q > bq) {
                best = Some((c, q, pos));
            }
        }
    }
    best.map(|(c, _, _)| c)
}

/// The response carrying `packets` to the client: a v4 payload, a v3
/// string payload, or a v3 binary payload when the client supports binary
/// and there is binary data; for JSONP, the string payload wrapped in
/// `___eio[<j>]("...");`. engine.io sends JSONP scripts with the content
/// type of string payloads too.
pub fn payload_response(protocol: Protocol, framing: &Framing, packets: &[Packet]) -> HttpResponse {
    const TEXT: &str = "text/plain; charset=UTF-8";
    if let Some(j) = &framing.jsonp {
        let payload = match protocol {
            Protocol::V4 => encode_payload(packets),
            Protocol::V3 => v3::encode_payload_string(packets),
        };
        return HttpResponse::new(200, TEXT, jsonp::jsonp_response(j, &payload));
    }
    let (content_type, body): (&str, Bytes) = match protocol {
        Protocol::V4 => (TEXT, encode_payload(packets).into()),
        Protocol::V3 => {
            let payload = v3::encode_payload(packets, framing.supports_binary);
            let ct = payload.content_type();
            let body = match payload {
                v3::Payload::Text(s) => Bytes::from(s),
                v3::Payload::Binary(b) => b,
            };
            (ct, body)
        }
    };
    HttpResponse::new(200, content_type, body)
}

async fn data<B>(
    engine: &Engine,
    session: &Arc<Session>,
    req: &RequestInfo,
    body: B,
) -> HttpResponse
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let binary = match data_start(session, req) {
        Ok(binary) => binary,
        Err(res) => return res,
    };
    let limit = engine.config().max_http_buffer_size;
    let read = tokio::select! {
        r = read_body(body, limit) => r,
        // engine.io destroys a POST still being read when the session closes.
        _ = session.closed() => {
            post_end(session);
            return HttpResponse::abort();
        }
    };
    post_end(session);
    match read {
        Ok(bytes) => data_read(session, binary, bytes),
        Err(BodyError::TooLarge) => HttpResponse::empty(413),
        Err(BodyError::Aborted(e)) => {
            session.close(CloseReason::TransportError, Some(e));
            HttpResponse::empty(400)
        }
    }
}

/// The checks before a POST's body is read: `Ok(binary)` (whether the body
/// is a v3 binary payload) once the session counts the POST as being read,
/// or the answer that refuses it.
fn data_start(session: &Session, req: &RequestInfo) -> Result<bool, HttpResponse> {
    let binary = req.header("content-type") == Some("application/octet-stream");
    if binary && session.protocol == Protocol::V4 {
        session.close(CloseReason::TransportError, Some("invalid content".into()));
        return Err(HttpResponse::empty(400));
    }
    if !post_start(session) {
        return Err(HttpResponse::empty(400));
    }
    Ok(binary)
}

/// A body as a log line shows it: text as is, anything else by its size.
fn shown(body: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(body) {
        Ok(s) => s.into(),
        Err(_) => format!("<Buffer {} bytes>", body.len()).into(),
    }
}

/// Hands a POST body read whole to the session; the answer is `ok`.
fn data_read(session: &Session, binary: bool, bytes: Bytes) -> HttpResponse {
    debug!(session, Scope::Polling, "received \"{}\"", shown(&bytes));
    session.count(Counter::BytesIn(TransportKind::Polling), bytes.len() as u64);
    let protocol = session.protocol;
    match (binary, session.framing.clone().jsonp.is_some()) {
        // Only v3 gets here with a binary body.
        (true, false) => feed(session, v3::decode_payload_binary(bytes)),
        // engine.io's JSONP transport parses a binary body as a form, and
        // `querystring.parse` finds no field in a Buffer: nothing to read.
        (true, true) => {}
        (false, false) => feed_text(session, protocol, lossy_utf8(bytes)),
        (false, true) => {
            // No `d` field (or several): engine.io ignores the body and
            // still answers `ok`.
            if let Ok(d) = jsonp::decode_jsonp_body(lossy_utf8(bytes).as_str()) {
                feed_text(session, protocol, Str::from(d));
            }
        }
    }
    HttpResponse::new(200, "text/html", "ok")
}

// ---- serving on the caller's thread -------------------------------------

/// What [`serve_now`] did with a request.
#[derive(Debug)]
pub enum Served {
    /// The answer, to write now.
    Respond(HttpResponse),
    /// A GET is held; its answer goes to the `answer` function given to
    /// [`serve_now`]. If its client goes away first, call [`poll_gone`].
    Held {
        /// The session.
        session: Handle,
        /// The GET's number in the session.
        poll: u64,
    },
    /// A POST whose body may be read now: hand it to [`post_body`] when it
    /// is whole, or call [`post_failed`].
    ReadBody(PostTicket),
    /// The request needs hooks answered by the application (`allowRequest`,
    /// `generateId`, `headers`): serve it with [`handle`] instead.
    NeedsHooks,
}

/// A POST whose body is being read (see [`Served::ReadBody`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostTicket {
    /// The session.
    pub session: Handle,
    /// Whether the body is a v3 binary payload.
    pub binary: bool,
    /// Whether the client is an old Internet Explorer.
    pub old_ie: bool,
}

/// Serves a polling request whose middlewares the front end ran, without
/// waiting: the engine part of engine.io's `handleRequest` done on the
/// caller's thread (the Node bridge calls it on the JS thread). Needs no
/// runtime; events are queued as usual. `answer` is called at most once, with
/// the answer of a held GET, from whatever thread releases it (under the
/// session's lock: it must not call into the session).
pub fn serve_now(
    engine: &Engine,
    req: &Arc<RequestInfo>,
    answer: impl FnOnce(HttpResponse) + Send + 'static,
) -> Served {
    if engine.hooks().has(HookSet::HEADERS) {
        return Served::NeedsHooks;
    }
    let verified = match engine.verify(req, false) {
        Ok(v) => v,
        Err(error) => {
            let res = HttpResponse::refused(&error);
            engine.report_error(req.clone(), error);
            return Served::Respond(res);
        }
    };
    match verified {
        Verified::Handshake(_) => {
            if engine
                .hooks()
                .has(HookSet::ALLOW_REQUEST | HookSet::GENERATE_ID)
            {
                return Served::NeedsHooks;
            }
            let protocol = match engine.handshake_protocol(req) {
                Ok(p) => p,
                Err(error) => {
                    let res = HttpResponse::refused(&error);
                    engine.report_error(req.clone(), error);
                    return Served::Respond(res);
                }
            };
            let sid = crate::engine::generate_sid();
            let session = engine.open_session(req.clone(), protocol, sid, PollingDriver::boxed());
            poll_now(engine, &session, req, answer)
        }
        Verified::Existing(session, _) => match &*req.method {
            "GET" => poll_now(engine, &session, req, answer),
            "POST" => match data_start(&session, req) {
                Ok(binary) => Served::ReadBody(PostTicket {
                    session: session.handle,
                    binary,
                    old_ie: old_ie(req),
                }),
                Err(res) => Served::Respond(res),
            },
            _ => Served::Respond(HttpResponse::empty(500)),
        },
    }
}

fn poll_now(
    engine: &Engine,
    session: &Arc<Session>,
    req: &RequestInfo,
    answer: impl FnOnce(HttpResponse) + Send + 'static,
) -> Served {
    let ie = old_ie(req);
    let got = get(engine, session, req, move |mut res| {
        transport_headers(&mut res, ie);
        answer(res)
    });
    match got {
        Got::Now(mut res) => {
            transport_headers(&mut res, ie);
            Served::Respond(res)
        }
        Got::Held(poll) => Served::Held {
            session: session.handle,
            poll,
        },
    }
}

/// The client of held GET `poll` went away before its answer: as when the
/// front end drops a held request, the session closes with `transport error`.
pub fn poll_gone(engine: &Engine, session: Handle, poll: u64) {
    if let Some(s) = engine.session(session) {
        poll_abandoned(&s, poll);
    }
}

/// The whole body of a POST that [`serve_now`] let read. The answer is
/// `ok`, 413 over `maxHttpBufferSize`, or [`HttpResponse::abort`] when the
/// session closed while the body was read (engine.io destroys the request).
pub fn post_body(engine: &Engine, ticket: PostTicket, body: Bytes) -> HttpResponse {
    let Some(session) = engine.session(ticket.session) else {
        return HttpResponse::abort();
    };
    post_end(&session);
    if body.len() > engine.config().max_http_buffer_size {
        return HttpResponse::empty(413);
    }
    let mut res = data_read(&session, ticket.binary, body);
    transport_headers(&mut res, ticket.old_ie);
    res
}

/// Why a POST's body was not read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostFailure {
    /// It grew past `maxHttpBufferSize`: the front end answers 413 and the
    /// session goes on.
    TooLarge,
    /// The client went away: the session closes with `transport error`.
    Aborted,
}

/// A POST that [`serve_now`] let read ended without a whole body.
pub fn post_failed(engine: &Engine, ticket: PostTicket, why: PostFailure) {
    let Some(session) = engine.session(ticket.session) else {
        return;
    };
    post_end(&session);
    if why == PostFailure::Aborted {
        session.close(
            CloseReason::TransportError,
            Some("data request connection closed prematurely".into()),
        );
    }
}

/// A body as Node's `setEncoding("utf8")` reads it: invalid sequences
/// become U+FFFD.
fn lossy_utf8(bytes: Bytes) -> Str {
    match Str::from_utf8(bytes.clone()) {
        Ok(s) => s,
        Err(_) => Str::from(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

/// Hands the packets of a string payload to the session.
fn feed_text(session: &Session, protocol: Protocol, payload: Str) {
    match protocol {
        Protocol::V4 => feed(session, decode_payload(payload)),
        Protocol::V3 => feed(session, v3::decode_payload_string(payload)),
    }
}

/// Hands the packets of a polling payload to the session, in order, as
/// engine.io's polling transport does:
/// - a `close` packet closes the session with `transport close` (the
///   transport closes itself; the socket never sees the packet, so there
///   is no `packet` event for it), and nothing after it is read (parser-v3
///   stops there; after v4's, the socket is closed and ignores the rest);
/// - an undecodable part closes the session with `parse error`, unless the
///   session is already closing (engine.io's socket ignores packets then);
/// - once the session is closed or has moved to another transport (the
///   upgrade completed while this body was read), the rest is dropped, as
///   engine.io no longer listens to the discarded polling transport.
fn feed(session: &Session, packets: impl Iterator<Item = Result<Packet, DecodeError>>) {
    for item in packets {
        if session.ready_state() == ReadyState::Closed
            || session.transport_kind() != TransportKind::Polling
        {
            return;
        }
        match item {
            Ok(p) if p.kind == PacketType::Close => {
                return session.close(CloseReason::TransportClose, None)
            }
            Ok(p) => session.on_packet(p, TransportKind::Polling),
            Err(_) => {
                if session.ready_state() == ReadyState::Open {
                    session.on_parse_error();
                }
                return;
            }
        }
    }
}

// ---- the driver -----------------------------------------------------------

/// What answers a held GET: a function called exactly once, with the
/// packets, or with `None` if the GET can no longer be answered with packets
/// (the session was dropped while it was held). The async front end's
/// function sends to the request's task; the bridge's answers the request
/// on the spot. It runs under the session's lock.
struct Waiter(Option<Box<dyn FnOnce(Option<Batch>) + Send>>);

impl Waiter {
    fn new(f: impl FnOnce(Option<Batch>) + Send + 'static) -> Self {
        Waiter(Some(Box::new(f)))
    }

    fn send(mut self, batch: Batch) {
        if let Some(f) = self.0.take() {
            f(Some(batch));
        }
    }

    /// Forgets the GET without answering it (its client went away).
    fn forget(mut self) {
        self.0 = None;
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(None);
        }
    }
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waiter")
    }
}

/// Packets for one answer, and whether they may be compressed.
#[derive(Debug)]
struct Batch {
    packets: Vec<Packet>,
    compress: bool,
}

impl Batch {
    /// A lone control packet (noop, close), never compressed.
    fn control(kind: PacketType) -> Self {
        Batch {
            packets: vec![Packet::empty(kind)],
            compress: false,
        }
    }
}

/// Polling as its session's transport: the held GET, whether a POST is
/// being read, and engine.io's `shouldClose`.
#[derive(Debug, Default)]
pub(crate) struct PollingDriver {
    /// The held GET: its id and where to send the packets that answer it.
    get: Option<(u64, Waiter)>,
    /// A POST is being read.
    post: bool,
    /// The next poll carries the close packet, then the session closes.
    should_close: bool,
}

impl PollingDriver {
    /// A driver for a new session.
    pub(crate) fn boxed() -> Box<dyn Driver> {
        Box::new(PollingDriver::default())
    }
}

impl Driver for PollingDriver {
    fn kind(&self) -> TransportKind {
        TransportKind::Polling
    }

    fn id(&self) -> u64 {
        0
    }

    fn writable(&self) -> bool {
        self.get.is_some()
    }

    fn flush(&mut self, out: &mut Outbox<'_>) {
        // (No poll waits while a close is pending: the close answers the
        // next one.)
        if let Some((_, tx)) = self.get.take() {
            let taken = out.take(false);
            tx.send(Batch {
                packets: taken.packets,
                compress: taken.compress,
            });
            out.drained(taken.callbacks);
        }
    }

    fn send_now(&mut self, _: MessageRef<'_>, _: bool, _: &mut Outbox<'_>) -> Option<()> {
        None
    }

    fn close_requested(&mut self, discard: bool, _: &mut Outbox<'_>) -> ServerClose {
        if let Some((_, tx)) = self.get.take() {
            tx.send(Batch::control(PacketType::Close));
            ServerClose::Now
        } else if discard {
            ServerClose::Now
        } else {
            // The next poll takes the buffer, if any; the one after it (or
            // this one, if nothing is buffered) a noop and the close
            // packet, as with engine.io.
            self.should_close = true;
            ServerClose::Later
        }
    }

    fn closed(&mut self, reason: CloseReason, out: &mut Outbox<'_>) {
        if let Some((_, tx)) = self.get.take() {
            // The client closed: release its poll as engine.io does (noop);
            // otherwise tell it the session is over.
            let kind = if reason == CloseReason::TransportClose {
                PacketType::Noop
            } else {
                PacketType::Close
            };
            tx.send(Batch::control(kind));
        }
        out.discard();
    }

    fn pause(&mut self, out: &mut Outbox<'_>) {
        if let Some((_, tx)) = self.get.take() {
            debug!(
                out.session(),
                Scope::Socket,
                "writing a noop packet to polling for fast upgrade"
            );
            tx.send(Batch::control(PacketType::Noop));
        }
    }

    fn wake(&self) {}

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// What a GET finds when it arrives.
enum PollStart {
    /// Answer right away with these packets.
    Ready(Batch),
    /// The GET is held: its waiter gets the packets; the id identifies it.
    Wait(u64),
    /// Another GET is held: 400, and the session closed with `transport error`.
    Overlap,
    /// The session is gone.
    Closed,
}

/// A GET arrived for `session`; `waiter` answers it if it must wait
/// (otherwise it is forgotten, never called).
fn poll_start(session: &Session, id: u64, waiter: Waiter) -> PollStart {
    let mut waiter = Some(waiter);
    let start = session
        .drive_current(|p: &mut PollingDriver, out| {
            if out.ready() == ReadyState::Closed {
                return PollStart::Closed;
            }
            if p.get.is_some() {
                debug!(out.session(), Scope::Polling, "request overlap");
                out.close(
                    CloseReason::TransportError,
                    Some("overlap from client".into()),
                );
                return PollStart::Overlap;
            }
            // With nothing to send (while upgrading too: then the next
            // upgrade tick answers it with a noop), the poll waits.
            if !out.acked() || (out.is_empty() && !p.should_close) {
                if let Some(w) = waiter.take() {
                    p.get = Some((id, w));
                }
                debug!(out.session(), Scope::Polling, "setting request");
                return PollStart::Wait(id);
            }
            if p.should_close && out.is_empty() {
                // engine.io's `shouldClose`: the close goes in a poll of its
                // own, after a noop, once the buffer went out.
                p.should_close = false;
                out.close(CloseReason::ForcedClose, None);
                return PollStart::Ready(Batch {
                    packets: vec![
                        Packet::empty(PacketType::Noop),
                        Packet::empty(PacketType::Close),
                    ],
                    compress: false,
                });
            }
            let taken = out.take(false);
            out.drained(taken.callbacks);
            PollStart::Ready(Batch {
                packets: taken.packets,
                compress: taken.compress,
            })
        })
        .unwrap_or(PollStart::Closed);
    if let Some(w) = waiter {
        w.forget();
    }
    start
}

/// A held GET ended without an answer: the client went away.
fn poll_abandoned(session: &Session, id: u64) {
    session.drive_current(|p: &mut PollingDriver, out| {
        if p.get.as_ref().is_some_and(|(g, _)| *g == id) {
            if let Some((_, w)) = p.get.take() {
                w.forget();
            }
            out.close(
                CloseReason::TransportError,
                Some("poll connection closed prematurely".into()),
            );
        }
    });
}

/// A POST starts; false when another is being read (the session then
/// closed with `transport error`).
fn post_start(session: &Session) -> bool {
    session
        .drive_current(|p: &mut PollingDriver, out| {
            if p.post {
                out.close(
                    CloseReason::TransportError,
                    Some("data request overlap from client".into()),
                );
                return false;
            }
            p.post = true;
            true
        })
        .unwrap_or(true)
}

/// A POST ended.
fn post_end(session: &Session) {
    session.drive_current(|p: &mut PollingDriver, _| p.post = false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Config, Event, EventQueue, Handle, Listen};
    use crate::protocol::PacketData;
    use http_body_util::Full;
    use std::cell::RefCell;

    #[test]
    fn encoding_follows_client_preference() {
        assert_eq!(preferred_encoding("gzip, deflate"), Some("gzip"));
        assert_eq!(preferred_encoding("deflate, gzip"), Some("deflate"));
        assert_eq!(preferred_encoding("gzip;q=0.5, deflate"), Some("deflate"));
        assert_eq!(preferred_encoding("br"), None);
        assert_eq!(preferred_encoding("gzip;q=0"), None);
        assert_eq!(preferred_encoding("*"), Some("gzip"));
    }

    fn framing(url: &str) -> Framing {
        let req = RequestInfo::new("GET", url, "1.1", vec![], None);
        Framing::of(req.query("j"), req.query("b64"))
    }

    #[test]
    fn framing_follows_the_handshake_query() {
        let xhr = |supports_binary| Framing {
            jsonp: None,
            supports_binary,
        };
        let jsonp = |j: &str| Framing {
            jsonp: Some(j.into()),
            supports_binary: false,
        };
        assert_eq!(framing("/e/?EIO=3&transport=polling"), xhr(true));
        assert_eq!(framing("/e/?EIO=3&b64=1"), xhr(false));
        assert_eq!(framing("/e/?EIO=3&b64=true"), xhr(false));
        // `!req._query.b64`: an empty value is falsy.
        assert_eq!(framing("/e/?EIO=3&b64="), xhr(true));
        assert_eq!(framing("/e/?EIO=3&b64"), xhr(true));
        // JSONP whenever `j` is there, whatever its value or the protocol.
        assert_eq!(framing("/e/?EIO=3&j=0&b64=1"), jsonp("0"));
        assert_eq!(framing("/e/?EIO=3&j=12"), jsonp("12"));
        assert_eq!(framing("/e/?EIO=4&j=3"), jsonp("3"));
        assert_eq!(framing("/e/?EIO=3&j="), jsonp(""));
        assert_eq!(framing("/e/?EIO=3&j=1%5D)%3Balert(2)"), jsonp("12"));
        // The last value wins, as with `Object.fromEntries`.
        assert_eq!(framing("/e/?j=1&j=2"), jsonp("2"));
        assert_eq!(framing("/e/?J=1"), xhr(true));
    }

    fn bin(b: &'static [u8]) -> Packet {
        Packet::binary(Bytes::from_static(b))
    }

    fn body(res: &HttpResponse) -> &str {
        std::str::from_utf8(&res.body).unwrap()
    }

    fn content_type(res: &HttpResponse) -> &str {
        res.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map_or("", |(_, v)| &**v)
    }

    #[test]
    fn payload_responses() {
        let packets = [Packet::text(PacketType::Message, "h\"i"), bin(&[1, 2, 3])];
        let res = payload_response(Protocol::V3, &framing("/?j=4&b64=1"), &packets);
        assert_eq!(body(&res), "___eio[4](\"4:4h\\\"i6:b4AQID\");");
        assert_eq!(content_type(&res), "text/plain; charset=UTF-8");
        // JSONP payloads are strings even when the client did not ask for
        // base64.
        let res = payload_response(Protocol::V3, &framing("/?j=4"), &packets);
        assert_eq!(body(&res), "___eio[4](\"4:4h\\\"i6:b4AQID\");");
        let res = payload_response(Protocol::V4, &framing("/?j=0"), &packets);
        assert_eq!(body(&res), "___eio[0](\"4h\\\"i\\u001ebAQID\");");
        assert_eq!(content_type(&res), "text/plain; charset=UTF-8");

        let res = payload_response(Protocol::V3, &framing("/"), &packets);
        assert_eq!(content_type(&res), "application/octet-stream");
        assert_eq!(res.body, v3::encode_payload_binary(&packets));
        let res = payload_response(Protocol::V3, &framing("/?b64=1"), &packets);
        assert_eq!(body(&res), "4:4h\"i6:b4AQID");
        assert_eq!(content_type(&res), "text/plain; charset=UTF-8");
        let res = payload_response(Protocol::V4, &framing("/"), &packets);
        assert_eq!(body(&res), "4h\"i\u{1e}bAQID");
    }

    /// An engine with no front end: requests go straight to [`handle`], and
    /// the events are kept for the test to read.
    struct Harness {
        rt: tokio::runtime::Runtime,
        engine: Engine,
        events: RefCell<Vec<Event>>,
    }

    impl Harness {
        fn new() -> Self {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let config = Config {
                allow_eio3: true,
                http_compression: None,
                ..Config::default()
            };
            let engine = Engine::new(config, EventQueue::new(|| {}), rt.handle().clone());
            Harness {
                rt,
                engine,
                events: RefCell::new(Vec::new()),
            }
        }

        /// Moves the queued events to `events`, letting new sessions send
        /// their handshake as the application does once its handlers ran.
        fn pump(&self) {
            for ev in self.engine.events().drain() {
                if let Event::Connection { handle, .. } = &ev {
                    self.engine.session(*handle).unwrap().ack_open();
                }
                self.events.borrow_mut().push(ev);
            }
        }

        /// Serves one request that the engine answers without waiting for
        /// the client.
        fn request(
            &self,
            method: &str,
            url: &str,
            content_type: Option<&str>,
            body: impl Into<Bytes>,
        ) -> HttpResponse {
            let headers = content_type
                .map(|ct| vec![("content-type".to_owned(), ct.to_owned())])
                .unwrap_or_default();
            let req = Arc::new(RequestInfo::new(method, url, "1.1", headers, None));
            let fut = handle(&self.engine, req, Full::new(body.into()), true);
            let res = self.rt.block_on(async {
                let mut fut = std::pin::pin!(fut);
                for _ in 0..1000 {
                    tokio::select! {
                        biased;
                        res = &mut fut => return res,
                        _ = tokio::task::yield_now() => self.pump(),
                    }
                }
                panic!("{method} {url} was not answered");
            });
            self.pump();
            res
        }

        /// Opens a session with a handshake GET; returns its handle, sid and
        /// the handshake response.
        fn handshake(&self, query: &str) -> (Handle, String, HttpResponse) {
            let res = self.request("GET", &format!("/engine.io/?{query}"), None, "");
            assert_eq!(res.status, 200, "{:?}", res);
            let (handle, sid) = self
                .events
                .borrow()
                .iter()
                .rev()
                .find_map(|ev| match ev {
                    Event::Connection { handle, sid, .. } => Some((*handle, sid.to_string())),
                    _ => None,
                })
                .expect("a connection event");
            (handle, sid, res)
        }

        fn session(&self, handle: Handle) -> Arc<Session> {
            self.engine.session(handle).expect("an open session")
        }

        /// The messages received and the close reason, in order, since the
        /// last call.
        fn take(&self) -> (Vec<PacketData>, Option<CloseReason>) {
            let mut messages = Vec::new();
            let mut close = None;
            for ev in self.events.borrow_mut().drain(..) {
                match ev {
                    Event::Message { data, .. } => messages.push(data),
                    Event::Close { reason, .. } => close = Some(reason),
                    _ => {}
                }
            }
            (messages, close)
        }
    }

    fn text(s: &str) -> PacketData {
        PacketData::Text(Str::from(s))
    }

    fn binary(b: &'static [u8]) -> PacketData {
        PacketData::Binary(Bytes::from_static(b))
    }

    #[test]
    fn v3_jsonp_session() {
        let h = Harness::new();
        let (handle, sid, res) = h.handshake("EIO=3&transport=polling&j=0&b64=1");
        assert_eq!(content_type(&res), "text/plain; charset=UTF-8");
        let script = body(&res);
        assert!(script.starts_with("___eio[0](\""), "{script}");
        assert!(script.ends_with("\");"), "{script}");
        assert!(script.contains(&format!(":0{{\\\"sid\\\":\\\"{sid}\\\"")));
        assert_eq!(h.take(), (vec![], None));

        // Packets come in the `d` field of a form.
        let url = format!("/engine.io/?EIO=3&transport=polling&sid={sid}&j=0");
        let form = Some("application/x-www-form-urlencoded");
        let res = h.request("POST", &url, form, "d=6%3A4hello10%3Ab4AQIDBA%3D%3D");
        assert_eq!((res.status, body(&res)), (200, "ok"));
        assert_eq!(content_type(&res), "text/html");
        assert_eq!(h.take(), (vec![text("hello"), binary(&[1, 2, 3, 4])], None));
        // A body without `d` is ignored, and still answered `ok`.
        let res = h.request("POST", &url, form, "x=6%3A4hello");
        assert_eq!((res.status, body(&res)), (200, "ok"));
        assert_eq!(h.take(), (vec![], None));
        // So is a binary body.
        let res = h.request(
            "POST",
            &url,
            Some("application/octet-stream"),
            &b"\x00\x02\xff4a"[..],
        );
        assert_eq!((res.status, body(&res)), (200, "ok"));
        assert_eq!(h.take(), (vec![], None));
        // Escaped newlines are restored.
        let res = h.request("POST", &url, form, "d=4%3A4a%5Cnb");
        assert_eq!(res.status, 200);
        assert_eq!(h.take(), (vec![text("a\nb")], None));

        // Polls stay JSONP with base64 binary, `j` or not: engine.io chose
        // the transport at the handshake.
        let s = h.session(handle);
        s.send(binary(&[1, 2, 3]), false, false);
        s.send(text("\u{2028}"), false, false);
        let res = h.request(
            "GET",
            &format!("/engine.io/?EIO=3&transport=polling&sid={sid}"),
            None,
            "",
        );
        assert_eq!(body(&res), "___eio[0](\"6:b4AQID2:4\\u2028\");");
        assert_eq!(content_type(&res), "text/plain; charset=UTF-8");

        let res = h.request("POST", &url, form, "d=1%3A16%3A4hello");
        assert_eq!((res.status, body(&res)), (200, "ok"));
        assert_eq!(h.take(), (vec![], Some(CloseReason::TransportClose)));
    }

    #[test]
    fn v4_jsonp_session() {
        let h = Harness::new();
        let (handle, sid, res) = h.handshake("EIO=4&transport=polling&j=7");
        let script = body(&res);
        assert!(script.starts_with("___eio[7](\"0{"), "{script}");
        let url = format!("/engine.io/?EIO=4&transport=polling&sid={sid}&j=7");
        let form = Some("application/x-www-form-urlencoded");
        let res = h.request("POST", &url, form, "d=4hi%1EbAQI%3D");
        assert_eq!((res.status, body(&res)), (200, "ok"));
        assert_eq!(h.take(), (vec![text("hi"), binary(&[1, 2])], None));
        h.session(handle).send(binary(&[1]), false, false);
        let res = h.request("GET", &url, None, "");
        assert_eq!(body(&res), "___eio[7](\"bAQ==\");");
        // v4 refuses binary bodies, JSONP or not.
        let res = h.request("POST", &url, Some("application/octet-stream"), "x");
        assert_eq!(res.status, 400);
        assert_eq!(h.take(), (vec![], Some(CloseReason::TransportError)));
    }

    #[test]
    fn v3_binary_payloads_both_ways() {
        let h = Harness::new();
        let (handle, sid, res) = h.handshake("EIO=3&transport=polling");
        assert!(body(&res).contains(&format!("\"sid\":\"{sid}\"")));
        let url = format!("/engine.io/?EIO=3&transport=polling&sid={sid}");
        let octets = Some("application/octet-stream");
        let res = h.request(
            "POST",
            &url,
            octets,
            &b"\x00\x06\xff4hello\x01\x04\xff\x04\x01\x02\x03"[..],
        );
        assert_eq!((res.status, body(&res)), (200, "ok"));
        assert_eq!(h.take(), (vec![text("hello"), binary(&[1, 2, 3])], None));

        let s = h.session(handle);
        s.send(text("a"), false, false);
        s.send(binary(&[9]), false, false);
        let res = h.request("GET", &url, None, "");
        assert_eq!(content_type(&res), "application/octet-stream");
        assert_eq!(&res.body[..], b"\x00\x02\xff4a\x01\x02\xff\x04\x09");

        // A close packet ends the payload.
        let res = h.request("POST", &url, octets, &b"\x00\x01\xff1\x00\x02\xff4a"[..]);
        assert_eq!(res.status, 200);
        assert_eq!(h.take(), (vec![], Some(CloseReason::TransportClose)));
    }

    #[test]
    fn base64_is_chosen_at_the_handshake() {
        let h = Harness::new();
        // engine.io-client sends `b64=1` on the handshake only.
        let (handle, sid, _) = h.handshake("EIO=3&transport=polling&b64=1");
        h.session(handle).send(binary(&[1, 2, 3]), false, false);
        let url = format!("/engine.io/?EIO=3&transport=polling&sid={sid}");
        let res = h.request("GET", &url, None, "");
        assert_eq!(content_type(&res), "text/plain; charset=UTF-8");
        assert_eq!(body(&res), "6:b4AQID");
    }

    #[test]
    fn close_packets_end_string_payloads() {
        let h = Harness::new();
        h.engine.events().listen.set(Listen::PACKET);
        let (_, sid, _) = h.handshake("EIO=3&transport=polling");
        let url = format!("/engine.io/?EIO=3&transport=polling&sid={sid}");
        let res = h.request("POST", &url, None, "2:4a1:12:4b");
        assert_eq!((res.status, body(&res)), (200, "ok"));
        // The close packet closes the transport: the socket never sees it.
        let packets: Vec<PacketType> = h
            .events
            .borrow()
            .iter()
            .filter_map(|ev| match ev {
                Event::Packet { packet, .. } => Some(packet.kind),
                _ => None,
            })
            .collect();
        assert_eq!(packets, [PacketType::Message]);
        assert_eq!(
            h.take(),
            (vec![text("a")], Some(CloseReason::TransportClose))
        );

        let (_, sid, _) = h.handshake("EIO=4&transport=polling");
        let url = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
        let res = h.request("POST", &url, None, "4a\u{1e}1\u{1e}4b");
        assert_eq!((res.status, body(&res)), (200, "ok"));
        assert_eq!(
            h.take(),
            (vec![text("a")], Some(CloseReason::TransportClose))
        );
    }

    #[test]
    fn malformed_v3_payloads_are_parse_errors() {
        let h = Harness::new();
        let (_, sid, _) = h.handshake("EIO=3&transport=polling");
        let url = format!("/engine.io/?EIO=3&transport=polling&sid={sid}");
        let res = h.request("POST", &url, None, "6:4hello:");
        assert_eq!(res.status, 200);
        assert_eq!(
            h.take(),
            (vec![text("hello")], Some(CloseReason::ParseError))
        );

        let (_, sid, _) = h.handshake("EIO=3&transport=polling");
        let url = format!("/engine.io/?EIO=3&transport=polling&sid={sid}");
        let octets = Some("application/octet-stream");
        let res = h.request("POST", &url, octets, &b"\x00\x02\xff4\xff"[..]);
        assert_eq!(res.status, 200);
        assert_eq!(h.take(), (vec![], Some(CloseReason::ParseError)));
    }
}
