//! `BindingEngine`: the native half of the JS `Server`. It owns one core
//! engine, its native listeners, and the one weak threadsafe function that
//! tells JS a batch of events is waiting.

use crate::convert::{packet_data, ticket};
use crate::options::{settings, tls_error, BindingOptions, TlsOptions};
use crate::registry::{self, Shared};
use crate::runtime::runtime;
use eio_core::engine::stats::{Counter, Stats};
use eio_core::engine::{
    Config, Engine, ErrorCode, Event, EventQueue, HookReply, MiddlewareOutcome, TransportKind,
};
use eio_core::server::bridge::{Bridge, NodeRequest};
use eio_core::server::native::{NativeServer, RouteOptions};
use eio_core::server::tls::Tls;
use eio_core::server::webtransport::{WtEndpoint, WtError, WtSettings};
use eio_core::transport::polling::{self, PostFailure};
use eio_core::transport::websocket::Opening;
use eio_core::transport::{Headers, HttpResponse};
use napi::bindgen_prelude::{BufferSlice, Either, Float64Array, Float64ArraySlice, Function};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Result, Status};
use napi_derive::napi;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// Called with no arguments when a batch of events is waiting. Weak: it
/// never keeps Node alive by itself (see `keepAlive`).
type Waker = ThreadsafeFunction<(), (), (), Status, false, true>;

/// Where a native listener is bound.
#[napi(object)]
pub struct ListenInfo {
    /// The listener's number, for `closeListener`.
    pub id: u32,
    /// The bound address (`::` for all interfaces).
    pub address: String,
    /// `IPv4` or `IPv6`.
    pub family: String,
    /// The bound port.
    pub port: u32,
}

/// A request as Node parsed it.
#[napi(object)]
pub struct BridgeRequest {
    /// `req.method`.
    pub method: String,
    /// `req.url`.
    pub url: String,
    /// `req.httpVersion`.
    pub http_version: String,
    /// `req.rawHeaders`.
    pub raw_headers: Vec<String>,
    /// `req.socket.remoteAddress`.
    pub remote_address: String,
    /// `req.socket.remotePort`.
    pub remote_port: u32,
}

impl From<BridgeRequest> for NodeRequest {
    fn from(r: BridgeRequest) -> Self {
        NodeRequest {
            method: r.method,
            url: r.url,
            http_version: r.http_version,
            raw_headers: r.raw_headers,
            remote_address: r.remote_address,
            remote_port: r.remote_port,
        }
    }
}

/// A session's state, for the JS `Socket` getters.
#[napi(object)]
pub struct SocketState {
    /// `open`, `closing` or `closed`.
    pub ready_state: String,
    /// `polling` or `websocket`.
    pub transport: String,
    /// Whether the session moved to another transport.
    pub upgraded: bool,
    /// Whether an upgrade is under way.
    pub upgrading: bool,
    /// Packets waiting for the transport.
    pub buffered: u32,
}

/// `engine.stats()`: plain nested objects keyed by engine.io's names.
fn stats_json(s: &Stats) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let mut sessions = Map::new();
    let mut total = 0;
    for (kind, protocol, n) in &s.sessions {
        total += n;
        let by = sessions
            .entry(kind.name())
            .or_insert_with(|| Value::Object(Map::new()));
        by[protocol.number().to_string()] = json!(n);
    }
    sessions.insert("total".into(), json!(total));
    let by_transport = |rows: &[(TransportKind, u64, u64)]| {
        let pick = |f: fn(&(TransportKind, u64, u64)) -> u64| {
            rows.iter()
                .map(|r| (r.0.name().to_string(), json!(f(r))))
                .collect::<Map<_, _>>()
        };
        json!({ "received": pick(|r| r.1), "sent": pick(|r| r.2) })
    };
    json!({
        "sessions": sessions,
        "handshakes": s.handshakes,
        "upgrades": {
            "started": s.upgrades_started,
            "completed": s.upgrades_done,
            "failed": s.upgrades_failed,
        },
        "closes": s.closes.iter().map(|(r, n)| (r.as_str().to_string(), json!(n))).collect::<Map<_, _>>(),
        "refused": s.refused.iter().map(|(c, n)| (c.name().to_string(), json!(n))).collect::<Map<_, _>>(),
        "messages": by_transport(&s.messages),
        "bytes": by_transport(&s.bytes),
        "bufferedBytes": s.buffered_bytes,
        "runtimeThreads": s.runtime_threads,
        "draining": s.draining,
    })
}

/// Turns on exactly the `debug` namespaces whose bits (`logScopes`) are set,
/// for every engine in this process (as `debug`'s switch is process-wide).
#[napi]
pub fn set_log_scopes(mask: u32) {
    eio_core::engine::log::set_enabled(mask);
}

/// The native engine behind a JS `Server`.
#[napi]
pub struct BindingEngine {
    shared: Arc<Shared>,
    routes: RouteOptions,
    waker: Arc<Waker>,
    next_listener: u64,
    kept_alive: bool,
    fast_id: u32,
}

impl Drop for BindingEngine {
    fn drop(&mut self) {
        registry::unregister(self.fast_id);
    }
}

#[napi]
impl BindingEngine {
    /// Creates the engine; `onEvents` is called (with no arguments) whenever
    /// `engineTakeEvents()` has something to return. `out` (8 numbers or
    /// more) receives the numeric results of the fast calls.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        options: BindingOptions,
        on_events: Function<(), ()>,
        out: Float64Array,
    ) -> Result<Self> {
        let (config, routes): (Config, RouteOptions) = options.try_into()?;
        let waker: Arc<Waker> = Arc::new(
            on_events
                .build_threadsafe_function::<()>()
                .callee_handled::<false>()
                .weak::<true>()
                .build()?,
        );
        let w = waker.clone();
        let queue = EventQueue::new(move || {
            w.call((), ThreadsafeFunctionCallMode::NonBlocking);
        });
        let engine = Engine::new(config, queue, runtime().handle().clone());
        let shared = Arc::new(Shared {
            engine,
            listeners: Mutex::new(HashMap::new()),
            bridge: Arc::new(Bridge::default()),
            webtransport: Mutex::new(None),
            last_frame: Mutex::default(),
        });
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        env.add_env_cleanup_hook(weak, |w| {
            if let Some(s) = w.upgrade() {
                s.shutdown();
            }
        })?;
        let fast_id = registry::register(shared.clone(), out)?;
        Ok(BindingEngine {
            shared,
            routes,
            waker,
            next_listener: 1,
            kept_alive: false,
            fast_id,
        })
    }

    fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// The engine's number for the fast calls (`engineTakeEvents`,
    /// `engineSend`, `enginePoll`, `enginePostBody`).
    #[napi(getter)]
    pub fn id(&self) -> u32 {
        self.fast_id
    }

    /// `engineSend` (src/calls.rs) with engine.io's `wsPreEncodedFrame`: a
    /// WebSocket writes the frame as it is, polling encodes the data.
    /// Always left for later (`engineReleaseSends`): a Socket.IO
    /// broadcast sends it to every client in one loop.
    #[napi(catch_unwind)]
    pub fn send_pre_encoded(
        &self,
        handle: f64,
        data: Either<String, BufferSlice>,
        frame: BufferSlice,
        callback: bool,
    ) -> bool {
        let Some(session) = self.engine().session(handle as u64) else {
            return false;
        };
        let data = packet_data(data);
        let frame = self.shared.frame(&frame);
        session.send_later(data, true, callback, Some(frame))
    }

    /// `sendPreEncoded` to many sessions at once: the sends of one
    /// Socket.IO broadcast, gathered over a tick (no callbacks). Returns how
    /// many sessions took the message.
    #[napi(catch_unwind)]
    pub fn send_pre_encoded_to_each(
        &self,
        handles: Float64ArraySlice,
        data: Either<String, BufferSlice>,
        frame: BufferSlice,
    ) -> u32 {
        let data = packet_data(data);
        let frame = self.shared.frame(&frame);
        let handles = handles.iter().map(|&h| h as u64);
        self.engine().send_to_each(handles, &data, &frame) as u32
    }

    /// The `connection` handlers ran: the session's handshake may go out.
    /// Called while JS runs the engine's events: a WebSocket's write is left
    /// to the runtime, which the end of the drain (`engineTakeEvents`)
    /// starts.
    #[napi(catch_unwind)]
    pub fn ack_open(&self, handle: f64) {
        if let Some(session) = self.engine().session(handle as u64) {
            session.ack_open_later();
        }
    }

    /// engine.io's `socket.close(discard)`.
    #[napi(catch_unwind)]
    pub fn close_socket(&self, handle: f64, discard: bool) {
        if let Some(session) = self.engine().session(handle as u64) {
            session.close_by_server(discard);
        }
    }

    /// A session's state, or null when it is gone.
    #[napi(catch_unwind)]
    pub fn socket_state(&self, handle: f64) -> Option<SocketState> {
        let s = self.engine().session(handle as u64)?;
        Some(SocketState {
            ready_state: s.ready_state().as_str().to_string(),
            transport: s.transport_kind().name().to_string(),
            upgraded: s.upgraded(),
            upgrading: s.upgrading(),
            buffered: s.buffered() as u32,
        })
    }

    /// Whether a packet sent on this session now would go out at once
    /// (engine.io's `transport.writable`).
    #[napi(catch_unwind)]
    pub fn socket_writable(&self, handle: f64) -> bool {
        self.engine()
            .session(handle as u64)
            .is_some_and(|s| s.writable())
    }

    /// How many sessions are open.
    #[napi(getter)]
    pub fn clients_count(&self) -> u32 {
        self.engine().clients_count() as u32
    }

    /// Closes every session (engine.io's `server.close()`).
    #[napi(catch_unwind)]
    pub fn close(&self) {
        self.engine().close();
    }

    /// Refuses new sessions from now on (503, `SERVER_DRAINING`).
    #[napi(catch_unwind)]
    pub fn drain(&self) {
        self.engine().drain();
    }

    /// Counts a request refused on the JS side (a middleware's error).
    #[napi(catch_unwind)]
    pub fn count_refused(&self, code: u32) {
        if let Some(&code) = ErrorCode::ALL.get(code as usize) {
            self.engine().count(Counter::Refused(code), 1);
        }
    }

    /// The engine's figures as JSON (`engine.stats()` parses it).
    #[napi(catch_unwind)]
    pub fn stats(&self) -> String {
        stats_json(&self.engine().stats()).to_string()
    }

    /// The engine's figures in Prometheus' text format (`engine.metrics()`).
    #[napi(catch_unwind)]
    pub fn metrics(&self) -> String {
        self.engine().stats().prometheus()
    }

    /// Hands over a polling request a Node server parsed; returns its id.
    /// Feed its body with `bridgeBody`/`bridgeBodyEnd`; the response comes as
    /// a `RESPONSE` event.
    #[napi(catch_unwind)]
    pub fn bridge_request(&self, req: BridgeRequest) -> f64 {
        self.shared.bridge.request(self.engine(), req.into()) as f64
    }

    /// A POST `enginePoll` let read ended without a whole body: `tooLarge`
    /// (JS answers 413), else its client went away.
    #[napi(catch_unwind)]
    pub fn bridge_post_failed(&self, handle: f64, flags: u32, too_large: bool) {
        let why = if too_large {
            PostFailure::TooLarge
        } else {
            PostFailure::Aborted
        };
        polling::post_failed(self.engine(), ticket(handle, flags), why);
    }

    /// The client of a GET `enginePoll` held went away before its answer.
    #[napi(catch_unwind)]
    pub fn bridge_poll_gone(&self, handle: f64, poll: f64) {
        polling::poll_gone(self.engine(), handle as u64, poll as u64);
    }

    /// A chunk of a bridged request's body.
    #[napi(catch_unwind)]
    pub fn bridge_body(&self, id: f64, chunk: BufferSlice) {
        self.shared
            .bridge
            .body(id as u64, bytes::Bytes::copy_from_slice(&chunk));
    }

    /// The end of a bridged request's body.
    #[napi]
    pub fn bridge_body_end(&self, id: f64) {
        self.shared.bridge.body_end(id as u64);
    }

    /// The client of a bridged request went away before the response.
    #[napi]
    pub fn bridge_abort(&self, id: f64) {
        self.shared.bridge.abort(id as u64);
    }

    /// Hands over an upgrade request. With `fd` (a plain TCP socket's
    /// descriptor), the engine takes the connection over and JS must destroy
    /// its socket; without, JS carries the bytes (`bridgeData`/`bridgeEnd`,
    /// `BRIDGE_WRITE` events). `headers` are what the middlewares set.
    /// `connect`: an HTTP/2 extended CONNECT (RFC 8441), whose answer comes
    /// as a `RESPONSE` event for the stream's headers, before any byte.
    #[napi(catch_unwind)]
    pub fn bridge_upgrade(
        &self,
        req: BridgeRequest,
        fd: Option<i32>,
        head: BufferSlice,
        headers: Vec<String>,
        connect: Option<bool>,
    ) -> Result<f64> {
        let head = head.to_vec();
        let extra = pairs(headers);
        let bridge = &self.shared.bridge;
        let opening = if connect == Some(true) {
            Opening::Connect
        } else {
            Opening::Upgrade
        };
        let id = match fd {
            #[cfg(unix)]
            Some(fd) => bridge
                .upgrade_fd(self.engine(), req.into(), fd, head, extra)
                .map_err(io_error)?,
            _ => bridge.upgrade_bytes(self.engine(), req.into(), head, extra, opening),
        };
        Ok(id as f64)
    }

    /// Bytes from the client of a carried upgraded connection.
    #[napi(catch_unwind)]
    pub fn bridge_data(&self, id: f64, chunk: BufferSlice) {
        self.shared
            .bridge
            .data(id as u64, bytes::Bytes::copy_from_slice(&chunk));
    }

    /// The client side of a carried upgraded connection ended.
    #[napi]
    pub fn bridge_end(&self, id: f64) {
        self.shared.bridge.end(id as u64);
    }

    /// Which hooks JS has set (bit mask, `HookSet` in the core).
    #[napi]
    pub fn set_hooks(&self, mask: u32) {
        self.engine().hooks().set(mask);
    }

    /// Answers a middlewares hook: `outcome` 0 = all called next (with the
    /// headers they set), 1 = one answered (status, headers, body), 2 = one failed.
    #[napi(catch_unwind)]
    pub fn reply_middlewares(
        &self,
        id: f64,
        outcome: u32,
        status: u32,
        headers: Vec<String>,
        body: Option<BufferSlice>,
    ) -> bool {
        let headers = pairs(headers);
        let outcome = match outcome {
            0 => MiddlewareOutcome::Continue(headers),
            1 => MiddlewareOutcome::Responded(HttpResponse {
                status: status as u16,
                headers,
                body: body
                    .map(|b| bytes::Bytes::copy_from_slice(&b))
                    .unwrap_or_default(),
            }),
            _ => MiddlewareOutcome::Failed,
        };
        self.engine()
            .reply_hook(id as u64, HookReply::Middlewares(outcome))
    }

    /// Answers `allowRequest`: refused with an optional message unless `ok`.
    #[napi(catch_unwind)]
    pub fn reply_allow_request(&self, id: f64, ok: bool, message: Option<String>) -> bool {
        let reply = if ok { Ok(()) } else { Err(message) };
        self.engine()
            .reply_hook(id as u64, HookReply::AllowRequest(reply))
    }

    /// Answers `generateId`: the id, or none when it failed.
    #[napi(catch_unwind)]
    pub fn reply_generate_id(&self, id: f64, sid: Option<String>) -> bool {
        self.engine()
            .reply_hook(id as u64, HookReply::GenerateId(sid))
    }

    /// Answers the `headers` hook with the final headers (`[name, value, ...]`).
    #[napi(catch_unwind)]
    pub fn reply_headers(&self, id: f64, headers: Vec<String>) -> bool {
        self.engine()
            .reply_hook(id as u64, HookReply::Headers(pairs(headers)))
    }

    /// Which optional per-packet events JS listens to (bit mask).
    #[napi]
    pub fn set_listening(&self, mask: u32) {
        self.engine().events().listen.set(mask);
    }

    /// Whether the event waker keeps Node's event loop alive: on while a
    /// native listener is open, as a listening Node server would.
    #[napi]
    pub fn keep_alive(&mut self, env: Env, on: bool) -> Result<()> {
        if on == self.kept_alive {
            return Ok(());
        }
        let raw = self.waker.raw();
        // SAFETY: called on the JS thread that owns `env`, with a live tsfn.
        let status = unsafe {
            if on {
                napi::sys::napi_ref_threadsafe_function(env.raw(), raw)
            } else {
                napi::sys::napi_unref_threadsafe_function(env.raw(), raw)
            }
        };
        if status != napi::sys::Status::napi_ok {
            return Err(napi::Error::new(
                Status::GenericFailure,
                "could not change the event waker's ref",
            ));
        }
        self.kept_alive = on;
        Ok(())
    }

    /// Starts a native listener on `host:port` (all interfaces when no host),
    /// over TLS when `tls` is given. Errors carry Node's codes
    /// (`EADDRINUSE`, ...), or name the TLS option at fault.
    #[napi(catch_unwind)]
    pub fn listen(
        &mut self,
        host: Option<String>,
        port: u32,
        tls: Option<TlsOptions>,
    ) -> Result<ListenInfo> {
        let port = u16::try_from(port)
            .map_err(|_| napi::Error::new(Status::InvalidArg, "option `port` must be 0..65535"))?;
        let tls = tls.as_ref().map(Tls::try_from).transpose()?;
        let server = NativeServer::bind(
            self.engine().clone(),
            self.routes.clone(),
            host.as_deref(),
            port,
            tls,
        )
        .map_err(io_error)?;
        let addr = server.local_addr();
        let id = self.next_listener;
        self.next_listener += 1;
        self.shared.listeners.lock().insert(id, server);
        Ok(ListenInfo {
            id: id as u32,
            address: addr.ip().to_string(),
            family: if addr.is_ipv6() { "IPv6" } else { "IPv4" }.into(),
            port: addr.port() as u32,
        })
    }

    /// Opens the engine's WebTransport endpoint (the `webtransport` option):
    /// HTTP/3 on UDP `host:port` (all interfaces when no host) with `tls`'s
    /// certificate. Errors as for `listen`.
    #[napi(catch_unwind)]
    pub fn listen_web_transport(
        &self,
        host: Option<String>,
        port: u32,
        tls: TlsOptions,
    ) -> Result<ListenInfo> {
        let port = u16::try_from(port).map_err(|_| {
            napi::Error::new(
                Status::InvalidArg,
                "option `webtransport.port` must be 0..65535",
            )
        })?;
        let settings = WtSettings {
            host,
            port,
            tls: settings(&tls)?,
        };
        let mut slot = self.shared.webtransport.lock();
        if let Some(old) = slot.take() {
            old.close();
        }
        let endpoint = WtEndpoint::bind(self.engine().clone(), self.routes.clone(), &settings)
            .map_err(|e| match e {
                WtError::Tls(e) => tls_error(e),
                WtError::Io(e) => io_error(e),
            })?;
        let addr = endpoint.local_addr();
        *slot = Some(endpoint);
        Ok(ListenInfo {
            id: 0,
            address: addr.ip().to_string(),
            family: if addr.is_ipv6() { "IPv6" } else { "IPv4" }.into(),
            port: addr.port() as u32,
        })
    }

    /// Closes the WebTransport endpoint and its sessions' connections; the
    /// port is free when this returns. False when none was open.
    #[napi(catch_unwind)]
    pub fn close_web_transport(&self) -> bool {
        match self.shared.webtransport.lock().take() {
            Some(endpoint) => {
                endpoint.close();
                true
            }
            None => false,
        }
    }

    /// The WebTransport endpoint's QUIC connections: `[open, pending]`,
    /// where pending ones have not yet opened their session's stream.
    #[napi(catch_unwind)]
    pub fn web_transport_connections(&self) -> Option<Vec<u32>> {
        let slot = self.shared.webtransport.lock();
        let e = slot.as_ref()?;
        Some(vec![e.connections() as u32, e.pending() as u32])
    }

    /// Takes the first bidirectional stream of a WebTransport session the
    /// application accepted itself (`onWebTransportSession`): JS carries its
    /// bytes (`bridgeData`/`bridgeEnd`, `BRIDGE_WRITE` events, whose end
    /// means "close the session"). Its first packet must come within
    /// `withinMs`. Returns the carried connection's number.
    #[napi(catch_unwind)]
    pub fn web_transport_session(&self, within_ms: f64) -> f64 {
        let within = std::time::Duration::from_millis(within_ms.max(0.0) as u64);
        let bridge = &self.shared.bridge;
        bridge.webtransport(self.engine(), &self.routes.path, within) as f64
    }

    /// Node's `server.setSecureContext()`: the TLS listener `id` uses `tls`
    /// for the connections that come after.
    #[napi(catch_unwind)]
    pub fn set_secure_context(&self, id: u32, tls: TlsOptions) -> Result<()> {
        let listeners = self.shared.listeners.lock();
        let Some(server) = listeners.get(&(id as u64)) else {
            return Err(napi::Error::new(Status::InvalidArg, "no such listener"));
        };
        let Some(current) = server.tls() else {
            return Err(napi::Error::new(
                Status::InvalidArg,
                "the listener has no TLS: listen() with `key` and `cert` first",
            ));
        };
        current.replace(&settings(&tls)?).map_err(tls_error)
    }

    /// Stops a listener; a `LISTENER_CLOSED` event follows once its last
    /// HTTP connection has ended.
    #[napi(catch_unwind)]
    pub fn close_listener(&self, id: u32) -> bool {
        let Some(server) = self.shared.listeners.lock().remove(&(id as u64)) else {
            return false;
        };
        let done = server.close();
        let events = self.engine().events().clone();
        runtime().spawn(async move {
            done.await;
            events.push(Event::ListenerClosed { id: id as u64 });
        });
        true
    }
}

/// `[name, value, name, value, ...]` as pairs.
fn pairs(flat: Vec<String>) -> Headers {
    let mut it = flat.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k.into(), v.into()));
    }
    out
}

/// An I/O error as Node reports it: the message and a `code` like `EADDRINUSE`.
fn io_error(e: std::io::Error) -> napi::Error {
    let code = match e.kind() {
        std::io::ErrorKind::AddrInUse => "EADDRINUSE",
        std::io::ErrorKind::AddrNotAvailable => "EADDRNOTAVAIL",
        std::io::ErrorKind::PermissionDenied => "EACCES",
        _ => "EIO",
    };
    napi::Error::new(Status::GenericFailure, format!("{code}: {e}"))
}
