//! The engine: configuration, the session registry, request verification and
//! the handshake. Transports call into it; the application reads its
//! [`EventQueue`] and calls [`Session`] methods.

mod driver;
mod events;
mod heartbeat;
mod hooks;
pub mod log;
mod session;
pub mod stats;

pub use self::driver::MessageRef;
pub(crate) use self::driver::{Driver, Role, ServerClose};
pub use self::events::{Event, EventQueue, Handle, Listen};
pub use self::hooks::{HookCall, HookReply, HookSet, MiddlewareOutcome};
pub(crate) use self::session::Outbox;
pub use self::session::{ReadyState, Session};
pub use crate::error::{CloseReason, ErrorCode, RequestError};
pub use crate::http::{has_invalid_header_char, method_name, parse_query, Fields, RequestInfo};

use self::log::{debug, Scope};
use self::stats::{Counter, Counters, Stats};
use crate::http::{Headers, HttpResponse};
pub use crate::protocol::ws::deflate::{DeflateConfig, WindowBits};
use crate::protocol::{PacketData, Protocol, Str};
use base64::Engine as _;
use parking_lot::RwLock;
use rand::RngCore;
use serde_json::json;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The transports a server can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// HTTP long-polling (and JSONP for v3).
    Polling,
    /// WebSocket.
    WebSocket,
    /// WebTransport (HTTP/3): one bidirectional stream of framed packets.
    WebTransport,
}

impl TransportKind {
    /// Every transport, in order.
    pub const ALL: [TransportKind; 3] = [
        TransportKind::Polling,
        TransportKind::WebSocket,
        TransportKind::WebTransport,
    ];

    /// engine.io's name for it.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Polling => "polling",
            TransportKind::WebSocket => "websocket",
            TransportKind::WebTransport => "webtransport",
        }
    }

    /// Whether a session on this transport may move to `to` (engine.io's
    /// `upgradesTo`; a WebSocket session may also move to WebTransport,
    /// which engine.io does not offer).
    pub fn upgrades_to(self, to: TransportKind) -> bool {
        use TransportKind::*;
        matches!(
            (self, to),
            (Polling, WebSocket) | (Polling, WebTransport) | (WebSocket, WebTransport)
        )
    }

    /// The transport for a `transport=` query value.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "polling" => Some(TransportKind::Polling),
            "websocket" => Some(TransportKind::WebSocket),
            "webtransport" => Some(TransportKind::WebTransport),
            _ => None,
        }
    }
}

/// Server options, as engine.io names and defaults them.
#[derive(Debug, Clone)]
pub struct Config {
    /// `pingInterval`: time between server pings (v4).
    pub ping_interval: Duration,
    /// `pingTimeout`: time allowed for the pong.
    pub ping_timeout: Duration,
    /// `upgradeTimeout`: time allowed to complete a transport upgrade.
    pub upgrade_timeout: Duration,
    /// `maxHttpBufferSize`: the largest polling body or WebSocket message.
    pub max_http_buffer_size: usize,
    /// Whether `transports` includes `polling`.
    pub polling: bool,
    /// Whether `transports` includes `websocket`.
    pub websocket: bool,
    /// Whether `transports` includes `webtransport` (off by default, as in
    /// engine.io).
    pub webtransport: bool,
    /// `allowUpgrades`.
    pub allow_upgrades: bool,
    /// `allowEIO3`.
    pub allow_eio3: bool,
    /// `initialPacket`: a message sent right after the open packet.
    pub initial_packet: Option<PacketData>,
    /// How long a polling session waits for a poll to deliver the close
    /// packet before closing anyway (engine.io: 30 s).
    pub polling_close_timeout: Duration,
    /// `httpCompression`: the size from which polling responses are
    /// compressed, or `None` when it is off.
    pub http_compression: Option<usize>,
    /// `maxBufferedBytes` (an eio-rs option): the most message data a
    /// session may hold for a client that does not read; over it the session
    /// closes with `transport error` ("write buffer full"). `None`, the
    /// default, is unbounded, as in engine.io.
    pub max_buffered_bytes: Option<usize>,
    /// `perMessageDeflate`: offered to WebSocket clients when set.
    pub per_message_deflate: Option<DeflateConfig>,
    /// `requestTimeout` (an eio-rs option, Node's `server.requestTimeout`):
    /// the time the native listener allows a request to arrive whole,
    /// headers and body; past it the answer is 408 and the connection is
    /// closed. `None` (the option set to 0) disables it. Only the native
    /// listener applies it: with `attach()`, the user's Node server does.
    pub request_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            upgrade_timeout: Duration::from_millis(10_000),
            max_http_buffer_size: 1_000_000,
            polling: true,
            websocket: true,
            webtransport: false,
            allow_upgrades: true,
            allow_eio3: false,
            initial_packet: None,
            polling_close_timeout: Duration::from_secs(30),
            http_compression: Some(1024),
            max_buffered_bytes: None,
            per_message_deflate: None,
            request_timeout: Some(Duration::from_secs(300)),
        }
    }
}

impl Config {
    /// Whether `kind` is enabled.
    pub fn enabled(&self, kind: TransportKind) -> bool {
        match kind {
            TransportKind::Polling => self.polling,
            TransportKind::WebSocket => self.websocket,
            TransportKind::WebTransport => self.webtransport,
        }
    }

    /// The upgrades offered to a session that starts on `kind`: the
    /// enabled transports it may move to. Only polling sessions are offered
    /// any: engine.io-client's WebSocket transport cannot pause, so a
    /// client that probed from it would never finish the upgrade (a
    /// WebSocket session still moves to WebTransport when a client asks).
    pub fn upgrades(&self, kind: TransportKind) -> Vec<&'static str> {
        if !self.allow_upgrades || kind != TransportKind::Polling {
            return Vec::new();
        }
        TransportKind::ALL
            .into_iter()
            .filter(|to| kind.upgrades_to(*to) && self.enabled(*to))
            .map(TransportKind::name)
            .collect()
    }
}

/// Sessions whose buffered packets a runtime task will flush (see
/// [`Engine::release_flushes`]).
#[derive(Debug, Default)]
struct Deferred {
    sessions: parking_lot::Mutex<Vec<Arc<Session>>>,
}

/// How many sessions one worker flushes in a row before the rest of a
/// burst goes to other workers.
const FLUSH_CHUNK: usize = 256;

/// What [`Engine::verify`] found a request to be.
#[derive(Debug)]
pub enum Verified {
    /// A new session on this transport.
    Handshake(TransportKind),
    /// A request for a live session.
    Existing(Arc<Session>, TransportKind),
}

#[derive(Default)]
pub(crate) struct Registry {
    by_sid: HashMap<Arc<str>, Arc<Session>>,
    pub(crate) by_handle: HashMap<Handle, Arc<Session>, BuildHasherDefault<HandleHasher>>,
}

/// Hashes a [`Handle`] with one multiplication. Every send from JS looks its
/// session up by handle (SipHash was 2% of a broadcast's CPU in perf), and
/// handles are numbers the engine hands out in sequence, so no client can
/// choose keys that collide. The odd multiplier keeps the low bits (the
/// bucket) distinct for consecutive handles and fills the high ones.
#[derive(Default)]
pub(crate) struct HandleHasher(u64);

impl std::hash::Hasher for HandleHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for a `Handle`; any other key still
        // hashes correctly, byte by byte.
        for &b in bytes {
            self.write_u64(self.0 ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) struct EngineInner {
    pub(crate) config: Config,
    /// Sessions waiting for [`Engine::release_flushes`].
    deferred: Deferred,
    pub(crate) events: Arc<EventQueue>,
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) registry: RwLock<Registry>,
    next_id: AtomicU64,
    closed: AtomicBool,
    /// New sessions are refused (see [`Engine::drain`]).
    draining: AtomicBool,
    pub(crate) counters: Arc<Counters>,
    hooks: HookSet,
    pending: hooks::PendingHooks,
    pub(crate) heartbeats: Arc<heartbeat::Heartbeats>,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.heartbeats.stop();
    }
}

/// A request the engine still owes the application a `RequestDone` for
/// (when the application's hooks saw it): dropping the guard settles it, so
/// no path out of a front end or transport can forget to.
#[must_use = "dropping it tells the application the request is done"]
pub struct OpenRequest {
    /// `None` once [`OpenRequest::defer`] handed the debt on.
    engine: Option<Engine>,
    info: Arc<RequestInfo>,
}

impl OpenRequest {
    /// The request.
    pub fn info(&self) -> &Arc<RequestInfo> {
        &self.info
    }

    /// Disarms the guard: the caller now owes [`Engine::request_done`]
    /// itself. For a long-lived future, where the guard's engine handle
    /// would cost every idle connection its size.
    pub(crate) fn defer(mut self) -> Arc<RequestInfo> {
        self.engine = None;
        self.info.clone()
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        if let Some(engine) = &self.engine {
            engine.request_done(&self.info);
        }
    }
}

impl std::fmt::Debug for OpenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("OpenRequest").field(&self.info.id).finish()
    }
}

/// An Engine.IO server, independent of how requests reach it. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("clients", &self.clients_count())
            .finish()
    }
}

impl Engine {
    /// An engine with `config`, reporting to `events`, spawning on `rt`.
    pub fn new(config: Config, events: Arc<EventQueue>, rt: tokio::runtime::Handle) -> Self {
        let heartbeats = Arc::new(heartbeat::Heartbeats::new(
            config.ping_interval,
            config.ping_timeout,
        ));
        let engine = Engine {
            inner: Arc::new(EngineInner {
                config,
                events,
                rt,
                registry: RwLock::new(Registry::default()),
                next_id: AtomicU64::new(1),
                closed: AtomicBool::new(false),
                draining: AtomicBool::new(false),
                counters: Arc::new(Counters::default()),
                hooks: HookSet::default(),
                pending: hooks::PendingHooks::default(),
                heartbeats: heartbeats.clone(),
                deferred: Deferred::default(),
            }),
        };
        let weak = Arc::downgrade(&engine.inner);
        engine.inner.rt.spawn(heartbeat::run(heartbeats, weak));
        engine
    }

    /// The options.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The event queue.
    pub fn events(&self) -> &Arc<EventQueue> {
        &self.inner.events
    }

    /// The runtime the engine's tasks run on.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.inner.rt
    }

    /// A live session by handle.
    pub fn session(&self, handle: Handle) -> Option<Arc<Session>> {
        self.inner.registry.read().by_handle.get(&handle).cloned()
    }

    /// Queues one message for each of `handles` that is still open, as
    /// [`Session::send_later`] with `frame` (a broadcast: one encoding, many
    /// sessions; JS gathers a tick's worth of Socket.IO's per-client sends
    /// into one call). Each session keeps its own order. Returns how many
    /// sessions took the message.
    pub fn send_to_each(
        &self,
        handles: impl IntoIterator<Item = Handle>,
        data: &PacketData,
        frame: &bytes::Bytes,
    ) -> usize {
        // Looked up first, sent after: a send may close its session, which
        // takes the registry's write lock.
        let sessions: Vec<Arc<Session>> = {
            let reg = self.inner.registry.read();
            handles
                .into_iter()
                .filter_map(|h| reg.by_handle.get(&h).cloned())
                .collect()
        };
        sessions
            .iter()
            .filter(|s| s.send_later(data.clone(), true, false, Some(frame.clone())))
            .count()
    }

    /// A live session by sid.
    pub fn session_by_sid(&self, sid: &str) -> Option<Arc<Session>> {
        self.inner.registry.read().by_sid.get(sid).cloned()
    }

    /// How many sessions are open.
    pub fn clients_count(&self) -> usize {
        self.inner.registry.read().by_handle.len()
    }

    /// Every live session, cloned out of the registry: the caller may take
    /// their locks, which must never be taken under the registry's (closing
    /// takes them in the other order).
    fn sessions(&self) -> Vec<Arc<Session>> {
        self.inner
            .registry
            .read()
            .by_handle
            .values()
            .cloned()
            .collect()
    }

    /// Closes every session (engine.io's `server.close()`: `close(true)` on
    /// each). The engine keeps serving new requests afterwards, as engine.io
    /// does; front ends stop routing to it.
    pub fn close(&self) {
        debug!(self, Scope::Engine, "closing all open clients");
        self.inner.closed.store(true, Ordering::Relaxed);
        for s in self.sessions() {
            s.close_by_server(true);
        }
    }

    /// Queues a debug line for the application (see [`log`]).
    pub fn log(&self, scope: Scope, text: String) {
        self.inner.events.log(scope, text);
    }

    /// Adds `n` to one of the engine's counters.
    pub fn count(&self, counter: Counter, n: u64) {
        self.inner.counters.add(counter, n);
    }

    /// Refuses new sessions from now on (503, `SERVER_DRAINING`), while
    /// the open ones go on: a server leaving a pool lets its clients finish
    /// or move. The application decides when to close what is left.
    pub fn drain(&self) {
        debug!(self, Scope::Engine, "draining: refusing new sessions");
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    /// Whether [`Engine::drain`] was called.
    pub fn draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }

    /// The engine's figures now: its counters, and the open sessions and
    /// the bytes they hold, counted as they are read.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::read(&self.inner.counters);
        let mut open = [[0u64; 2]; TransportKind::ALL.len()];
        for s in &self.sessions() {
            let (kind, held) = s.gauge();
            let p = usize::from(s.protocol == Protocol::V4);
            open[kind as usize][p] += 1;
            stats.buffered_bytes += held as u64;
        }
        for kind in TransportKind::ALL {
            for (p, protocol) in [Protocol::V3, Protocol::V4].into_iter().enumerate() {
                stats
                    .sessions
                    .push((kind, protocol, open[kind as usize][p]));
            }
        }
        stats.runtime_threads = self.inner.rt.metrics().num_workers() as u64;
        stats.draining = self.draining();
        stats
    }

    /// Keeps `session` for the runtime task [`Engine::release_flushes`]
    /// starts: the sessions a busy thread sends to are flushed by one wake.
    pub(crate) fn flush_later(&self, session: Arc<Session>) {
        self.inner.deferred.sessions.lock().push(session);
    }

    /// Hands the sessions [`Session::send_later`] left since the last call
    /// to the runtime, which flushes them. The thread that sends later must
    /// call this once it is done sending for now (the binding: when the JS
    /// tick that sent ends, and before each batch of events): until then
    /// their packets wait.
    pub fn release_flushes(&self) {
        let mut batch = {
            let mut sessions = self.inner.deferred.sessions.lock();
            if sessions.is_empty() {
                return;
            }
            std::mem::take(&mut *sessions)
        };
        let rt = &self.inner.rt;
        // Large bursts are shared among the workers (sessions are
        // independent: their order among themselves does not matter).
        while batch.len() > FLUSH_CHUNK {
            let chunk = batch.split_off(batch.len() - FLUSH_CHUNK);
            rt.spawn(async move { chunk.iter().for_each(|s| s.flush_now()) });
        }
        rt.spawn(async move { batch.iter().for_each(|s| s.flush_now()) });
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn forget(&self, session: &Session) {
        let mut reg = self.inner.registry.write();
        reg.by_handle.remove(&session.handle);
        reg.by_sid.remove(&session.sid);
    }

    /// Checks a request as engine.io's `verify()` does, in the same order.
    pub fn verify(&self, req: &RequestInfo, upgrade: bool) -> Result<Verified, RequestError> {
        let transport_name = req.query("transport").unwrap_or("");
        let transport = TransportKind::from_name(transport_name)
            .filter(|k| self.config().enabled(*k))
            .ok_or_else(|| {
                debug!(
                    self,
                    Scope::Engine,
                    "unknown transport \"{transport_name}\""
                );
                RequestError::new(
                    ErrorCode::UnknownTransport,
                    json!({ "transport": req.query("transport") }),
                )
            })?;

        if let Some(origin) = req.header("origin") {
            if has_invalid_header_char(origin) {
                debug!(self, Scope::Engine, "origin header invalid");
                return Err(RequestError::new(
                    ErrorCode::BadRequest,
                    json!({ "name": "INVALID_ORIGIN", "origin": origin }),
                ));
            }
        }

        if let Some(sid) = req.query("sid") {
            let session = self.session_by_sid(sid).ok_or_else(|| {
                debug!(self, Scope::Engine, "unknown sid \"{sid}\"");
                RequestError::new(ErrorCode::UnknownSid, json!({ "sid": sid }))
            })?;
            let previous = session.transport_kind();
            if !upgrade && previous != transport {
                debug!(
                    self,
                    Scope::Engine,
                    "bad request: unexpected transport without upgrade"
                );
                return Err(RequestError::new(
                    ErrorCode::BadRequest,
                    json!({
                        "name": "TRANSPORT_MISMATCH",
                        "transport": transport.name(),
                        "previousTransport": previous.name(),
                    }),
                ));
            }
            if !upgrade {
                debug!(
                    self,
                    Scope::Engine,
                    "setting new request for existing client"
                );
            }
            return Ok(Verified::Existing(session, transport));
        }

        // RFC 8441: over HTTP/2 a WebSocket opens with an extended CONNECT.
        if req.method != "GET" && !(upgrade && req.method == "CONNECT") {
            return Err(RequestError::new(
                ErrorCode::BadHandshakeMethod,
                json!({ "method": req.method }),
            ));
        }
        if transport == TransportKind::WebSocket && !upgrade {
            debug!(self, Scope::Engine, "invalid transport upgrade");
            return Err(RequestError::new(
                ErrorCode::BadRequest,
                json!({ "name": "TRANSPORT_HANDSHAKE_ERROR" }),
            ));
        }
        if self.draining() {
            return Err(RequestError::new(ErrorCode::ServerDraining, json!({})));
        }
        Ok(Verified::Handshake(transport))
    }

    /// The hooks the application has set.
    pub fn hooks(&self) -> &HookSet {
        &self.inner.hooks
    }

    /// Asks the application and waits for its answer (`None` if it can no
    /// longer answer).
    pub async fn call_hook(&self, call: HookCall) -> Option<HookReply> {
        let id = self.next_id();
        let rx = self.inner.pending.register(id);
        self.inner.events.push(Event::Hook { id, call });
        rx.await.ok()
    }

    /// The application's answer to hook call `id`. False if nothing waits for it.
    pub fn reply_hook(&self, id: u64, reply: HookReply) -> bool {
        self.inner.pending.reply(id, reply)
    }

    /// engine.io's path to a transport: the middlewares (unless the front end
    /// already ran them), `verify()`, and `allowRequest` for handshakes.
    pub async fn admit(
        &self,
        req: &Arc<RequestInfo>,
        upgrade: bool,
        run_middlewares: bool,
    ) -> Admission {
        let mut headers = Vec::new();
        // The front end that ran the middlewares logged these already.
        if run_middlewares {
            debug!(
                self,
                Scope::Engine,
                "handling \"{}\" http request \"{}\"{}",
                req.method,
                req.url,
                if upgrade { " (upgrade)" } else { "" }
            );
            if !self.hooks().has(HookSet::MIDDLEWARES) {
                debug!(self, Scope::Engine, "no middleware to apply, skipping");
            }
        }
        if run_middlewares && self.hooks().has(HookSet::MIDDLEWARES) {
            let call = HookCall::Middlewares {
                request: req.clone(),
                upgrade,
            };
            match self.call_hook(call).await {
                Some(HookReply::Middlewares(MiddlewareOutcome::Continue(h))) => headers = h,
                Some(HookReply::Middlewares(MiddlewareOutcome::Responded(res))) => {
                    return Admission::Respond(res)
                }
                _ => {
                    return Admission::Refused(
                        RequestError::new(
                            ErrorCode::BadRequest,
                            json!({ "name": "MIDDLEWARE_FAILURE" }),
                        ),
                        headers,
                    )
                }
            }
        }
        let verified = match self.verify(req, upgrade) {
            Ok(v) => v,
            Err(e) => return Admission::Refused(e, headers),
        };
        if matches!(verified, Verified::Handshake(_)) && self.hooks().has(HookSet::ALLOW_REQUEST) {
            let call = HookCall::AllowRequest {
                request: req.clone(),
            };
            match self.call_hook(call).await {
                Some(HookReply::AllowRequest(Ok(()))) => {}
                Some(HookReply::AllowRequest(Err(message))) => {
                    let e = RequestError::new(ErrorCode::Forbidden, json!({ "message": message }));
                    return Admission::Refused(e, headers);
                }
                _ => {
                    let e = RequestError::new(ErrorCode::Forbidden, json!({ "message": null }));
                    return Admission::Refused(e, headers);
                }
            }
        }
        Admission::Proceed { verified, headers }
    }

    /// engine.io's `handshake()` checks: the protocol revision, then the id
    /// (`generateId`, when the application overrides it).
    pub async fn handshake_id(
        &self,
        req: &Arc<RequestInfo>,
    ) -> Result<(Protocol, String), RequestError> {
        let protocol = self.handshake_protocol(req)?;
        if !self.hooks().has(HookSet::GENERATE_ID) {
            return Ok((protocol, generate_sid()));
        }
        let call = HookCall::GenerateId {
            request: req.clone(),
        };
        match self.call_hook(call).await {
            Some(HookReply::GenerateId(Some(id))) => Ok((protocol, id)),
            _ => Err(RequestError::new(
                ErrorCode::BadRequest,
                json!({ "name": "ID_GENERATION_ERROR" }),
            )),
        }
    }

    /// The protocol revision a handshake asks for, if the server speaks it.
    pub fn handshake_protocol(&self, req: &RequestInfo) -> Result<Protocol, RequestError> {
        let protocol = if req.query("EIO") == Some("4") {
            Protocol::V4
        } else {
            Protocol::V3
        };
        if protocol == Protocol::V3 && !self.config().allow_eio3 {
            debug!(self, Scope::Engine, "unsupported protocol version");
            return Err(RequestError::new(
                ErrorCode::UnsupportedProtocolVersion,
                json!({ "protocol": 3 }),
            ));
        }
        Ok(protocol)
    }

    /// A request that is now the engine's to answer: the application is
    /// told it is done (see [`Engine::request_done`]) when the returned
    /// guard is dropped, on whichever path the request leaves by.
    pub fn open_request(&self, info: Arc<RequestInfo>) -> OpenRequest {
        OpenRequest {
            engine: Some(self.clone()),
            info,
        }
    }

    /// Tells the application that a request which went through hooks is
    /// answered, so it can forget its request object.
    pub fn request_done(&self, req: &RequestInfo) {
        if req.held_by_app || self.hooks().any() {
            self.inner
                .events
                .push(Event::RequestDone { request: req.id });
        }
    }

    /// Lets the application change response headers (`initial_headers` and
    /// `headers`), when it listens.
    pub async fn response_headers(
        &self,
        req: &Arc<RequestInfo>,
        sid: &Arc<str>,
        initial: bool,
        headers: Headers,
    ) -> Headers {
        if !self.hooks().has(HookSet::HEADERS) {
            return headers;
        }
        let call = HookCall::Headers {
            request: req.clone(),
            sid: sid.clone(),
            initial,
            headers,
        };
        match self.call_hook(call).await {
            Some(HookReply::Headers(h)) => h,
            _ => Vec::new(),
        }
    }

    /// Reports a refused request to the application.
    pub fn report_error(&self, req: Arc<RequestInfo>, error: RequestError) {
        self.count(Counter::Refused(error.code), 1);
        debug!(
            self,
            Scope::Engine,
            "refused \"{}\" http request \"{}\": {} (code {} {})",
            req.method,
            req.url,
            error.message,
            error.code.code(),
            error.code.name()
        );
        self.inner.events.push(Event::ConnectionError {
            request: req,
            error,
        });
    }

    /// Opens a session: registers it, queues the open packet (and the
    /// initial packet), starts its heartbeat and tells the application.
    pub(crate) fn open_session(
        &self,
        req: Arc<RequestInfo>,
        protocol: Protocol,
        sid: String,
        driver: Box<dyn Driver>,
    ) -> Arc<Session> {
        let transport = driver.kind();
        let handle = self.next_id();
        self.count(Counter::Handshake, 1);
        debug!(
            self,
            Scope::Engine,
            "handshaking client \"{sid}\" ({}, EIO {})",
            transport.name(),
            protocol.number()
        );
        let sid: Arc<str> = Arc::from(sid);
        let session = Session::new(self, handle, sid.clone(), protocol, &req, driver);
        {
            let mut reg = self.inner.registry.write();
            reg.by_sid.insert(sid.clone(), session.clone());
            reg.by_handle.insert(handle, session.clone());
        }
        let cfg = self.config();
        let open = json!({
            "sid": &*sid,
            "upgrades": cfg.upgrades(transport),
            "pingInterval": cfg.ping_interval.as_millis() as u64,
            "pingTimeout": cfg.ping_timeout.as_millis() as u64,
            "maxPayload": cfg.max_http_buffer_size,
        });
        session.queue_open(Str::from(open.to_string()), cfg.initial_packet.clone());
        session.start_heartbeat();
        self.inner.events.push(Event::Connection {
            handle,
            sid,
            protocol,
            transport: transport.name(),
            request: req,
        });
        session
    }
}

/// How [`Engine::admit`] decided.
#[derive(Debug)]
pub enum Admission {
    /// Go on to the transport; `headers` were set by the middlewares.
    Proceed {
        /// What the request is.
        verified: Verified,
        /// Headers the middlewares set on the response.
        headers: Headers,
    },
    /// A middleware answered the request.
    Respond(HttpResponse),
    /// Refused, with engine.io's error and the headers the middlewares set
    /// (CORS headers, for example, still go out with the error).
    Refused(RequestError, Headers),
}

/// A session id as engine.io's `base64id` makes them: 15 bytes from a CSPRNG
/// (120 bits), base64 with `/` and `+` replaced by `_` and `-`.
pub fn generate_sid() -> String {
    let mut bytes = [0u8; 15];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(config: Config) -> (tokio::runtime::Runtime, Engine) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = Engine::new(config, EventQueue::new(|| {}), rt.handle().clone());
        (rt, e)
    }

    fn req(method: &str, url: &str) -> RequestInfo {
        RequestInfo::new(method, url, "1.1", vec![], None)
    }

    #[test]
    fn consecutive_handles_land_in_distinct_buckets() {
        use std::hash::BuildHasher;
        let hasher = BuildHasherDefault::<HandleHasher>::default();
        for start in [1u64, 1 << 20, u64::MAX - 4096] {
            let mut buckets: Vec<u64> = (start..start + 1024)
                .map(|h| hasher.hash_one(h) & 1023)
                .collect();
            buckets.sort_unstable();
            buckets.dedup();
            assert_eq!(buckets.len(), 1024);
        }
    }

    #[test]
    fn sids_are_20_url_safe_chars() {
        let a = generate_sid();
        assert_eq!(a.len(), 20);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a, generate_sid());
    }

    #[test]
    fn verify_follows_engine_io_order() {
        let (_rt, e) = engine(Config::default());
        let code = |r: &RequestInfo, up| e.verify(r, up).unwrap_err().code;
        assert_eq!(
            code(&req("GET", "/e/?transport=tobi"), false),
            ErrorCode::UnknownTransport
        );
        assert_eq!(
            code(&req("GET", "/e/?transport=constructor"), false),
            ErrorCode::UnknownTransport
        );
        assert_eq!(
            code(&req("GET", "/e/?transport=polling&sid=nope"), false),
            ErrorCode::UnknownSid
        );
        assert_eq!(
            code(&req("POST", "/e/?transport=polling&EIO=4"), false),
            ErrorCode::BadHandshakeMethod
        );
        assert_eq!(
            code(&req("GET", "/e/?transport=websocket&EIO=4"), false),
            ErrorCode::BadRequest
        );
        assert!(matches!(
            e.verify(&req("GET", "/e/?transport=polling&EIO=4"), false),
            Ok(Verified::Handshake(TransportKind::Polling))
        ));
    }

    #[test]
    fn handshake_checks_the_protocol_revision() {
        let (rt, e) = engine(Config::default());
        let v3 = Arc::new(req("GET", "/e/?transport=polling&EIO=3"));
        let err = rt.block_on(e.handshake_id(&v3)).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedProtocolVersion);
        assert_eq!(err.context, json!({"protocol": 3}));
        let none = Arc::new(req("GET", "/e/?transport=polling"));
        assert!(rt.block_on(e.handshake_id(&none)).is_err());
        let v4 = Arc::new(req("GET", "/e/?transport=polling&EIO=4"));
        let (protocol, sid) = rt.block_on(e.handshake_id(&v4)).unwrap();
        assert_eq!(protocol, Protocol::V4);
        assert_eq!(sid.len(), 20);

        let (rt, e) = engine(Config {
            allow_eio3: true,
            ..Config::default()
        });
        assert_eq!(rt.block_on(e.handshake_id(&v3)).unwrap().0, Protocol::V3);
    }

    #[test]
    fn hooks_wait_for_the_application() {
        let (rt, e) = engine(Config::default());
        e.hooks().set(HookSet::ALLOW_REQUEST | HookSet::GENERATE_ID);
        let r = Arc::new(req("GET", "/e/?transport=polling&EIO=4"));
        let e2 = e.clone();
        // The application answers every hook call it is given.
        let answer = std::thread::spawn(move || {
            let mut answered = 0;
            while answered < 2 {
                for ev in e2.events().drain() {
                    if let Event::Hook { id, call } = ev {
                        let reply = match call {
                            HookCall::AllowRequest { .. } => HookReply::AllowRequest(Ok(())),
                            HookCall::GenerateId { .. } => {
                                HookReply::GenerateId(Some("mine".into()))
                            }
                            other => panic!("unexpected {other:?}"),
                        };
                        assert!(e2.reply_hook(id, reply));
                        answered += 1;
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        let admitted = rt.block_on(e.admit(&r, false, true));
        assert!(matches!(
            admitted,
            Admission::Proceed {
                verified: Verified::Handshake(_),
                ..
            }
        ));
        let (_, sid) = rt.block_on(e.handshake_id(&r)).unwrap();
        assert_eq!(sid, "mine");
        answer.join().unwrap();
    }

    #[test]
    fn stats_list_every_transport() {
        let (_rt, e) = engine(Config::default());
        let s = e.stats();
        for kind in TransportKind::ALL {
            for p in [Protocol::V3, Protocol::V4] {
                assert!(s.sessions.contains(&(kind, p, 0)), "{kind:?} {p:?}");
            }
        }
    }

    #[test]
    fn upgrades_are_offered_to_polling_sessions_only() {
        let (_rt, e) = engine(Config {
            webtransport: true,
            ..Config::default()
        });
        let cfg = e.config();
        assert_eq!(
            cfg.upgrades(TransportKind::Polling),
            ["websocket", "webtransport"]
        );
        assert!(cfg.upgrades(TransportKind::WebSocket).is_empty());
        assert!(TransportKind::WebSocket.upgrades_to(TransportKind::WebTransport));
        assert!(!TransportKind::WebTransport.upgrades_to(TransportKind::WebSocket));
    }

    #[test]
    fn disabled_transport_is_unknown() {
        let (_rt, e) = engine(Config {
            websocket: false,
            ..Config::default()
        });
        let err = e
            .verify(&req("GET", "/e/?transport=websocket&EIO=4"), true)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::UnknownTransport);
        assert_eq!(err.context, json!({"transport": "websocket"}));
    }
}
