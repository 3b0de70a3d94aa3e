//! One Engine.IO session: engine.io's rules for its write buffer, heartbeat,
//! upgrade and close, over whichever transport carries it. The session
//! knows its transports only as [`Driver`]s; every way a session ends goes
//! through [`Session::close`].

use super::driver::{Driver, MessageRef, Role, ServerClose};
use super::events::{Event, Handle, Listen};
use super::log::{debug, Scope, Shown};
use super::stats::Counter;
use super::{Engine, TransportKind};
use crate::error::CloseReason;
use crate::http::RequestInfo;
use crate::protocol::Framing;
use crate::protocol::{Packet, PacketData, PacketType, Protocol, Str};
use bytes::Bytes;
use parking_lot::Mutex;
use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// engine.io's `socket.readyState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyState {
    /// Serving.
    Open,
    /// `close()` was called; waiting to flush.
    Closing,
    /// Gone.
    Closed,
}

impl ReadyState {
    /// engine.io's string.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadyState::Open => "open",
            ReadyState::Closing => "closing",
            ReadyState::Closed => "closed",
        }
    }
}

/// The session's own state: what engine.io's `Socket` keeps, with no
/// transport in it.
#[derive(Debug)]
struct Core {
    ready: ReadyState,
    upgraded: bool,
    buffer: Vec<Packet>,
    /// Send callbacks carried by the packets in `buffer`.
    buffer_callbacks: u32,
    /// The data bytes in `buffer`, for `maxBufferedBytes`.
    buffer_bytes: usize,
    /// Whether a packet in `buffer` may be compressed (engine.io compresses
    /// a polling payload when any of its packets allows it).
    buffer_compress: bool,
    /// Nothing is written before the application has run its `connection`
    /// handlers, so a client never sees `open` before the server does.
    acked: bool,
    /// How many packets at the head of `buffer` form the handshake (open and
    /// initial packet): the handshake poll carries only those, as in engine.io.
    open_packets: usize,
    /// Frames the application encoded itself (`wsPreEncodedFrame`), by
    /// index in `buffer`: a WebSocket writes them instead of encoding.
    frames: Vec<(usize, Bytes)>,
    /// A ping went out and its pong has not come back (v4).
    awaiting_pong: bool,
}

/// A transport that asked to take the session over.
#[derive(Debug)]
struct Candidate {
    driver: Box<dyn Driver>,
    /// It answered the probe: the current transport is paused.
    probed: bool,
}

#[derive(Debug)]
struct State {
    core: Core,
    transport: Box<dyn Driver>,
    /// Boxed: most sessions never upgrade, and every one holds the field.
    candidate: Option<Box<Candidate>>,
    tasks: Vec<AbortHandle>,
}

/// What one write carries, taken from the session's buffer by
/// [`Outbox::take`].
#[derive(Debug)]
pub(crate) struct Taken {
    /// The packets, in order.
    pub(crate) packets: Vec<Packet>,
    /// Frames the application encoded itself, by index in `packets`.
    pub(crate) frames: Vec<(usize, Bytes)>,
    /// Whether the packets may be compressed.
    pub(crate) compress: bool,
    /// The send callbacks they carry, for [`Outbox::drained`]; `None` for
    /// the handshake alone, which engine.io writes before any handler can
    /// see it (no flush, no drain).
    pub(crate) callbacks: Option<u32>,
}

/// A driver's view of its session while the session is locked: the
/// buffer to take from, and what the driver may ask of the session.
pub(crate) struct Outbox<'a> {
    session: &'a Session,
    core: &'a mut Core,
    kind: TransportKind,
    /// A close the driver asked for, run once it returns (the close path
    /// calls the driver itself).
    close: Option<(CloseReason, Option<String>)>,
}

impl Outbox<'_> {
    /// The session, for its id, protocol and log lines.
    pub(crate) fn session(&self) -> &Session {
        self.session
    }

    /// The session's ready state.
    pub(crate) fn ready(&self) -> ReadyState {
        self.core.ready
    }

    /// Whether the application has seen the connection (nothing is written
    /// before).
    pub(crate) fn acked(&self) -> bool {
        self.core.acked
    }

    /// Whether nothing waits to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.core.buffer.is_empty()
    }

    /// Takes what the next write carries: the handshake packets alone when
    /// they are still pending and `whole` is false, else the whole buffer.
    pub(crate) fn take(&mut self, whole: bool) -> Taken {
        let st = &mut *self.core;
        let open = std::mem::take(&mut st.open_packets);
        if open > 0 && !whole && open < st.buffer.len() {
            // (The handshake's packets are not in `buffer_bytes`: only what
            // the application sends counts against `maxBufferedBytes`.)
            let packets: Vec<Packet> = st.buffer.drain(..open).collect();
            for f in &mut st.frames {
                f.0 -= open;
            }
            return Taken {
                packets,
                frames: Vec::new(),
                compress: false,
                callbacks: None,
            };
        }
        debug!(self.session, Scope::Socket, "flushing buffer to transport");
        st.buffer_bytes = 0;
        let packets = std::mem::take(&mut st.buffer);
        let frames = std::mem::take(&mut st.frames);
        let compress = std::mem::take(&mut st.buffer_compress);
        let callbacks = std::mem::take(&mut st.buffer_callbacks);
        if let Some(engine) = self.session.engine.upgrade() {
            let messages = packets
                .iter()
                .filter(|p| p.kind == PacketType::Message)
                .count();
            engine
                .counters
                .add(Counter::MessageOut(self.kind), messages as u64);
            if open == 0 && engine.events.listen.has(Listen::FLUSH) {
                engine.events.push(Event::Flush {
                    handle: self.session.handle,
                    packets: packets.clone(),
                });
            }
        }
        Taken {
            packets,
            frames,
            compress,
            callbacks: (open == 0 || callbacks > 0).then_some(callbacks),
        }
    }

    /// Drops what is buffered: the client will never get it.
    pub(crate) fn discard(&mut self) {
        let st = &mut *self.core;
        st.buffer.clear();
        st.frames.clear();
        st.buffer_bytes = 0;
        st.buffer_callbacks = 0;
    }

    /// A write reached the transport: report the send callbacks it carried.
    pub(crate) fn drained(&self, callbacks: Option<u32>) {
        self.session.drained(callbacks);
    }

    /// Closes the session once the driver returns.
    pub(crate) fn close(&mut self, reason: CloseReason, description: Option<String>) {
        self.close.get_or_insert((reason, description));
    }
}

/// A live Engine.IO session.
#[derive(Debug)]
pub struct Session {
    /// The engine-wide handle, used by the application.
    pub handle: Handle,
    /// The public id (`sid`).
    pub sid: Arc<str>,
    /// The protocol revision.
    pub protocol: Protocol,
    /// How polling responses are framed, fixed by the handshake request
    /// (kept instead of the request, which a session does not need after
    /// its `connection` event).
    pub framing: Framing,
    engine: Weak<super::EngineInner>,
    state: Mutex<State>,
    /// `pingInterval` and `pingTimeout`, copied from the config.
    ping: (Duration, Duration),
    /// Mirrors `ready == Closed` for readers that must not take the lock.
    closed_flag: AtomicBool,
    /// Moves with every heartbeat deadline, under the state lock; older
    /// deadlines are stale. Atomic so that the heartbeat heap can drop stale
    /// entries without taking the state lock (`rearm` holds it while it
    /// takes the heap's).
    heartbeat_gen: AtomicU64,
    /// Wakes whatever waits for the session to end (a POST being read).
    closed_notify: Notify,
    /// `maxBufferedBytes`, copied from the (immutable) config.
    max_buffered: Option<usize>,
}

impl Session {
    pub(crate) fn new(
        engine: &Engine,
        handle: Handle,
        sid: Arc<str>,
        protocol: Protocol,
        request: &RequestInfo,
        transport: Box<dyn Driver>,
    ) -> Arc<Self> {
        Arc::new(Session {
            handle,
            sid,
            protocol,
            framing: Framing::of(request.query("j"), request.query("b64")),
            engine: Arc::downgrade(&engine.inner),
            state: Mutex::new(State {
                core: Core {
                    ready: ReadyState::Open,
                    upgraded: false,
                    buffer: Vec::new(),
                    buffer_callbacks: 0,
                    buffer_bytes: 0,
                    buffer_compress: false,
                    acked: false,
                    open_packets: 0,
                    frames: Vec::new(),
                    awaiting_pong: false,
                },
                transport,
                candidate: None,
                tasks: Vec::new(),
            }),
            ping: (engine.config().ping_interval, engine.config().ping_timeout),
            closed_flag: AtomicBool::new(false),
            heartbeat_gen: AtomicU64::new(0),
            closed_notify: Notify::new(),
            max_buffered: engine.config().max_buffered_bytes,
        })
    }

    fn engine(&self) -> Option<Engine> {
        self.engine.upgrade().map(|inner| Engine { inner })
    }

    fn emit(&self, ev: Event) {
        if let Some(e) = self.engine.upgrade() {
            e.events.push(ev);
        }
    }

    /// Queues a debug line for the application (see [`super::log`]).
    pub(crate) fn log(&self, scope: Scope, text: String) {
        if let Some(e) = self.engine.upgrade() {
            e.events.log(scope, text);
        }
    }

    /// Adds `n` to one of the engine's counters.
    pub(crate) fn count(&self, counter: Counter, n: u64) {
        if let Some(e) = self.engine.upgrade() {
            e.counters.add(counter, n);
        }
    }

    /// The transport and the bytes held for the client, for the engine's
    /// gauges.
    pub(crate) fn gauge(&self) -> (TransportKind, usize) {
        let st = self.state.lock();
        (
            st.transport.kind(),
            st.core.buffer_bytes + st.transport.held(),
        )
    }

    fn listens(&self, flag: u32) -> bool {
        self.engine
            .upgrade()
            .is_some_and(|e| e.events.listen.has(flag))
    }

    /// The transport currently in use.
    pub fn transport_kind(&self) -> TransportKind {
        self.state.lock().transport.kind()
    }

    /// The ready state.
    pub fn ready_state(&self) -> ReadyState {
        self.state.lock().core.ready
    }

    /// Whether the session moved to another transport.
    pub fn upgraded(&self) -> bool {
        self.state.lock().core.upgraded
    }

    /// Whether an upgrade is under way.
    pub fn upgrading(&self) -> bool {
        self.state.lock().candidate.is_some()
    }

    /// How many packets wait for the transport.
    pub fn buffered(&self) -> usize {
        self.state.lock().core.buffer.len()
    }

    /// engine.io's `transport.writable`: a packet sent now would go out at
    /// once. Polling: a GET is waiting. WebSocket: nothing is queued or in
    /// flight. (Socket.IO drops a `volatile` packet when this is false.)
    pub fn writable(&self) -> bool {
        let st = self.state.lock();
        st.core.ready == ReadyState::Open && st.core.buffer.is_empty() && st.transport.writable()
    }

    /// Whether the session is closed.
    pub fn is_closed(&self) -> bool {
        self.closed_flag.load(Ordering::Acquire)
    }

    /// Resolves once the session is closed.
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.closed_notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    // ---- drivers --------------------------------------------------------

    /// Runs `f` on the current transport with the session's buffer, then
    /// the close it asked for, if any.
    fn run<R>(&self, st: &mut State, f: impl FnOnce(&mut dyn Driver, &mut Outbox<'_>) -> R) -> R {
        let kind = st.transport.kind();
        let mut out = Outbox {
            session: self,
            core: &mut st.core,
            kind,
            close: None,
        };
        let r = f(st.transport.as_mut(), &mut out);
        if let Some((reason, description)) = out.close.take() {
            self.close_locked(st, reason, description);
        }
        r
    }

    /// Runs `f` on the driver of type `D` whose connection is `id`, as the
    /// session's transport or its upgrade candidate (or on neither), with
    /// the session's buffer; then the close it asked for, if any. How a
    /// transport's own code acts on its session.
    pub(crate) fn drive<D: Driver, R>(
        &self,
        id: u64,
        f: impl FnOnce(Role<'_, D>, &mut Outbox<'_>) -> R,
    ) -> R {
        let mut guard = self.state.lock();
        let candidate = matches!(&guard.candidate,
            Some(c) if c.driver.id() == id && (c.driver.as_ref() as &dyn Any).is::<D>());
        self.run(&mut guard, |t, out| {
            let role = if t.id() == id {
                t.as_any_mut()
                    .downcast_mut::<D>()
                    .map_or(Role::Gone, Role::Current)
            } else if candidate {
                Role::Candidate
            } else {
                Role::Gone
            };
            f(role, out)
        })
    }

    /// [`Session::drive`] for the current transport if it is a `D`, for
    /// transports without a connection of their own; `None` otherwise.
    pub(crate) fn drive_current<D: Driver, R>(
        &self,
        f: impl FnOnce(&mut D, &mut Outbox<'_>) -> R,
    ) -> Option<R> {
        let mut guard = self.state.lock();
        self.run(&mut guard, |t, out| {
            let d = t.as_any_mut().downcast_mut::<D>()?;
            Some(f(d, out))
        })
    }

    // ---- sending --------------------------------------------------------

    /// Queues a `message` packet (engine.io's `socket.send`). Returns false
    /// when the session is closing or closed, where engine.io drops it too.
    pub fn send(&self, data: PacketData, compress: bool, callback: bool) -> bool {
        let packet = Packet {
            kind: PacketType::Message,
            data,
        };
        self.queue(packet, compress, callback, None, false)
    }

    /// [`Session::send`] for data the caller still owns, written at once
    /// when nothing is queued or in flight before it and the transport can
    /// write from the calling thread (and no `flush` listener needs the
    /// packet). `None` when that is not the case: the caller then sends an
    /// owned copy with [`Session::send`].
    pub fn send_now(&self, data: MessageRef<'_>, callback: bool) -> Option<bool> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if st.core.ready != ReadyState::Open {
            return Some(false);
        }
        if !st.core.acked || st.core.open_packets > 0 || !st.core.buffer.is_empty() {
            return None;
        }
        let engine = self.engine.upgrade()?;
        if engine.events.listen.has(Listen::FLUSH) {
            return None;
        }
        let kind = st.transport.kind();
        self.run(st, |t, out| t.send_now(data, callback, out))?;
        debug!(self, Scope::Socket, "sending packet \"message\" ({})", {
            match data {
                MessageRef::Text(t) => t.to_string(),
                MessageRef::Binary(b) => {
                    format!("<Buffer {} bytes>", b.len())
                }
            }
        });
        engine.counters.add(Counter::MessageOut(kind), 1);
        Some(true)
    }

    pub(crate) fn send_packet(&self, packet: Packet, callback: bool) -> bool {
        self.queue(packet, true, callback, None, true)
    }

    /// [`Session::send`] for a caller whose thread is busy (the JS thread
    /// running a batch of events, or a loop sending to many sessions): a
    /// transport that would write from the calling thread (a WebSocket's
    /// system call) is left to a runtime worker instead, which flushes
    /// every session handed to it before [`Engine::release_flushes`] in
    /// one wake. Order is kept: the packet is in the buffer before this
    /// returns, and whatever is sent after it goes behind it. Other
    /// transports flush at once, as [`Session::send`] does: their flush
    /// only hands the packets to a task or a held request.
    ///
    /// `frame`: one the application encoded itself (engine.io's
    /// `wsPreEncodedFrame`), which a WebSocket without compression writes
    /// instead of encoding `data`, and polling ignores. A Socket.IO
    /// broadcast hands the same frame to each session in turn: those
    /// sessions are always left to the workers.
    ///
    /// [`Engine::release_flushes`]: super::Engine::release_flushes
    pub fn send_later(
        self: &Arc<Self>,
        data: PacketData,
        compress: bool,
        callback: bool,
        frame: Option<Bytes>,
    ) -> bool {
        let packet = Packet {
            kind: PacketType::Message,
            data,
        };
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let later = frame.is_some() || st.transport.writes_directly();
        // A buffer that holds something already has a flush coming: the
        // transport's own (a write in flight, a GET to come) or this one's.
        let idle = st.core.buffer.is_empty() && st.core.acked;
        if !self.buffer(st, packet, compress, callback, frame, false) {
            return false;
        }
        if !later {
            self.flush(st);
            return true;
        }
        drop(guard);
        if idle {
            if let Some(engine) = self.engine() {
                engine.flush_later(self.clone());
            }
        }
        true
    }

    /// Hands what is buffered to the transport, for
    /// [`Session::send_later`]'s flush.
    pub(crate) fn flush_now(&self) {
        self.flush(&mut self.state.lock());
    }

    /// Buffers `packet` and flushes. `announce`: emit `packetCreate` for
    /// it; the application's own messages are announced by the JS `send()`,
    /// synchronously and with their options, as engine.io does.
    fn queue(
        &self,
        packet: Packet,
        compress: bool,
        callback: bool,
        frame: Option<Bytes>,
        announce: bool,
    ) -> bool {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if !self.buffer(st, packet, compress, callback, frame, announce) {
            return false;
        }
        self.flush(st);
        true
    }

    /// Adds `packet` to the buffer; false when the session is closing or
    /// closed, or closed now because the buffer grew past `maxBufferedBytes`.
    fn buffer(
        &self,
        st: &mut State,
        packet: Packet,
        compress: bool,
        callback: bool,
        frame: Option<Bytes>,
        announce: bool,
    ) -> bool {
        if st.core.ready != ReadyState::Open {
            return false;
        }
        debug!(
            self,
            Scope::Socket,
            "sending packet \"{}\" ({})",
            packet.kind.name(),
            Shown(&packet.data)
        );
        if announce && self.listens(Listen::PACKET_CREATE) {
            self.emit(Event::PacketCreate {
                handle: self.handle,
                packet: packet.clone(),
            });
        }
        let core = &mut st.core;
        core.buffer_bytes += packet.data.len();
        if let Some(frame) = frame {
            let at = core.buffer.len();
            core.frames.push((at, frame));
        }
        core.buffer.push(packet);
        core.buffer_compress |= compress;
        if callback {
            core.buffer_callbacks += 1;
        }
        if self.max_buffered.is_some_and(|max| core.buffer_bytes > max) {
            // A client that does not read: drop what it would never get.
            core.buffer.clear();
            core.frames.clear();
            core.buffer_bytes = 0;
            core.buffer_callbacks = 0;
            let why = Some("write buffer full".to_string());
            self.close_locked(st, CloseReason::TransportError, why);
            return false;
        }
        true
    }

    /// The application has run its `connection` handlers: the handshake
    /// may go out now.
    pub fn ack_open(&self) {
        let mut st = self.state.lock();
        if !st.core.acked {
            st.core.acked = true;
            self.flush(&mut st);
        }
    }

    /// [`Session::ack_open`] from a busy thread (the JS thread, inside the
    /// engine's events): a transport that would write the handshake from
    /// the caller's thread leaves the write to a runtime worker, as
    /// [`Session::send_later`] does; it waits for
    /// [`Engine::release_flushes`]. What the `connection` handlers sent is
    /// behind it in the buffer and goes in the same flush.
    ///
    /// [`Engine::release_flushes`]: super::Engine::release_flushes
    pub fn ack_open_later(self: &Arc<Self>) {
        let mut st = self.state.lock();
        if st.core.acked {
            return;
        }
        st.core.acked = true;
        if !st.transport.writes_directly() {
            self.flush(&mut st);
            return;
        }
        drop(st);
        if let Some(engine) = self.engine() {
            engine.flush_later(self.clone());
        }
    }

    pub(crate) fn queue_open(&self, open: Str, initial: Option<PacketData>) {
        debug!(self, Scope::Socket, "sending packet \"open\" ({open})");
        let mut st = self.state.lock();
        st.core.buffer.push(Packet::text(PacketType::Open, open));
        if let Some(data) = initial {
            st.core.buffer.push(Packet {
                kind: PacketType::Message,
                data,
            });
        }
        st.core.open_packets = st.core.buffer.len();
        self.flush(&mut st);
    }

    /// Hands the buffer to the transport if it may take it. Also while
    /// upgrading, as engine.io does: what the application sends then
    /// (Socket.IO's CONNECT answer, typically) goes out over the current
    /// transport rather than after the upgrade.
    fn flush(&self, st: &mut State) {
        let core = &st.core;
        if core.ready == ReadyState::Closed || core.buffer.is_empty() || !core.acked {
            return;
        }
        self.run(st, |t, out| t.flush(out));
    }

    /// A batch reached the transport: report the callbacks it carried
    /// (nothing for the handshake alone).
    fn drained(&self, callbacks: Option<u32>) {
        let Some(callbacks) = callbacks else { return };
        if callbacks > 0 || self.listens(Listen::DRAIN) {
            self.emit(Event::Drain {
                handle: self.handle,
                callbacks,
            });
        }
    }

    // ---- incoming packets --------------------------------------------

    /// A packet arrived on the session's transport.
    pub(crate) fn on_packet(&self, packet: Packet, via: TransportKind) {
        if self.ready_state() != ReadyState::Open {
            debug!(self, Scope::Socket, "packet received with closed socket");
            return;
        }
        debug!(
            self,
            Scope::Socket,
            "received packet {}",
            packet.kind.name()
        );
        if self.listens(Listen::PACKET) {
            self.emit(Event::Packet {
                handle: self.handle,
                packet: packet.clone(),
            });
        }
        match packet.kind {
            PacketType::Ping => {
                debug!(self, Scope::Socket, "got ping");
                if self.protocol != Protocol::V3 {
                    return self.close(
                        CloseReason::TransportError,
                        Some("invalid heartbeat direction".into()),
                    );
                }
                // v3: the next ping is due within interval + timeout.
                let (interval, timeout) = self.ping;
                self.rearm(&mut self.state.lock(), interval + timeout);
                self.send_packet(Packet::empty(PacketType::Pong), false);
                self.heartbeat_event();
            }
            PacketType::Pong => {
                debug!(self, Scope::Socket, "got pong");
                if self.protocol == Protocol::V3 {
                    return self.close(
                        CloseReason::TransportError,
                        Some("invalid heartbeat direction".into()),
                    );
                }
                {
                    let mut st = self.state.lock();
                    if !st.core.awaiting_pong {
                        // engine.io ignores a pong nobody asked for.
                        return;
                    }
                    st.core.awaiting_pong = false;
                    self.rearm(&mut st, self.ping.0);
                }
                self.heartbeat_event();
            }
            PacketType::Message => {
                if let Some(e) = self.engine.upgrade() {
                    e.counters.add(Counter::MessageIn(via), 1);
                    e.events.push(Event::Message {
                        handle: self.handle,
                        data: packet.data,
                    });
                }
            }
            PacketType::Close => self.close(CloseReason::TransportClose, None),
            PacketType::Open | PacketType::Upgrade | PacketType::Noop => {}
        }
    }

    fn heartbeat_event(&self) {
        if self.listens(Listen::HEARTBEAT) {
            self.emit(Event::Heartbeat {
                handle: self.handle,
            });
        }
    }

    /// The client sent bytes that are not Engine.IO.
    pub(crate) fn on_parse_error(&self) {
        self.close(CloseReason::ParseError, None);
    }

    // ---- upgrade --------------------------------------------------------

    /// A transport (`driver`, connected and about to probe) wants to take
    /// this session over. False when the session is closed, already
    /// upgrading or already upgraded (engine.io closes the candidate).
    pub(crate) fn upgrade_begin(&self, driver: Box<dyn Driver>) -> bool {
        let mut st = self.state.lock();
        let from = st.transport.kind();
        let to = driver.kind();
        let refused = if st.core.ready == ReadyState::Closed {
            Some("upgrade attempt for closed client")
        } else if st.candidate.is_some() {
            Some("transport has already been trying to upgrade")
        } else if st.core.upgraded || !from.upgrades_to(to) {
            Some("transport had already been upgraded")
        } else {
            None
        };
        if let Some(why) = refused {
            debug!(self, Scope::Engine, "{why}");
            self.count(Counter::UpgradeFailed, 1);
            return false;
        }
        self.count(Counter::UpgradeStarted, 1);
        debug!(self, Scope::Engine, "upgrading existing transport");
        debug!(
            self,
            Scope::Socket,
            "might upgrade socket transport from \"{}\" to \"{}\"",
            from.name(),
            to.name()
        );
        st.candidate = Some(Box::new(Candidate {
            driver,
            probed: false,
        }));
        true
    }

    /// The candidate `id` answered the probe; from now on
    /// [`Session::upgrade_tick`] pauses the current transport.
    pub(crate) fn upgrade_probed(&self, id: u64) -> bool {
        let mut st = self.state.lock();
        let kind = match &mut st.candidate {
            Some(c) if c.driver.id() == id => {
                if c.probed {
                    return true;
                }
                c.probed = true;
                c.driver.kind()
            }
            _ => return false,
        };
        self.emit(Event::Upgrading {
            handle: self.handle,
            transport: kind.name(),
        });
        true
    }

    /// engine.io's upgrade check, every 100 ms after the probe: the current
    /// transport releases what the client waits on (a held poll gets a
    /// noop), so the client can pause it. Not at the probe itself: until
    /// the first tick, a close still reaches the client over its poll, as
    /// with engine.io.
    pub(crate) fn upgrade_tick(&self, id: u64) {
        let mut st = self.state.lock();
        if !matches!(&st.candidate, Some(c) if c.probed && c.driver.id() == id) {
            return;
        }
        self.run(&mut st, |t, out| t.pause(out));
    }

    /// The client sent the upgrade packet over candidate `id`: it becomes
    /// the transport.
    pub(crate) fn upgrade_complete(&self, id: u64) -> bool {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if !matches!(&st.candidate, Some(c) if c.driver.id() == id)
            || st.core.ready == ReadyState::Closed
        {
            return false;
        }
        debug!(self, Scope::Socket, "got upgrade packet - upgrading");
        let Some(candidate) = st.candidate.take() else {
            return false;
        };
        self.run(st, |t, out| t.pause(out));
        st.transport = candidate.driver;
        st.core.upgraded = true;
        self.count(Counter::UpgradeDone, 1);
        self.emit(Event::Upgrade {
            handle: self.handle,
            transport: st.transport.kind().name(),
        });
        if st.core.ready == ReadyState::Closing {
            // close() was called while upgrading: close over the new transport.
            self.close_locked(st, CloseReason::ForcedClose, None);
        }
        st.transport.wake();
        true
    }

    /// The upgrade failed or timed out; the session goes on as it was.
    pub(crate) fn upgrade_abort(&self, id: u64) {
        let mut st = self.state.lock();
        self.end_candidate(&mut st, id);
    }

    /// Forgets the upgrade candidate `id`, telling the application if it had
    /// seen the probe (it holds the candidate's transport since `upgrading`).
    fn end_candidate(&self, st: &mut State, id: u64) {
        let probed = match &st.candidate {
            Some(c) if c.driver.id() == id => c.probed,
            _ => return,
        };
        debug!(
            self,
            Scope::Socket,
            "client did not complete upgrade - closing transport"
        );
        self.count(Counter::UpgradeFailed, 1);
        st.candidate = None;
        if probed {
            self.emit(Event::UpgradeAborted {
                handle: self.handle,
            });
        }
    }

    /// The connection `id` failed (`error`) or ended. Only the session's
    /// current transport closes the session; a candidate's end is a failed
    /// upgrade.
    pub(crate) fn transport_ended(&self, id: u64, error: Option<String>) {
        let mut st = self.state.lock();
        if st.transport.id() == id {
            let reason = if error.is_some() {
                CloseReason::TransportError
            } else {
                CloseReason::TransportClose
            };
            self.close_locked(&mut st, reason, error);
        } else {
            self.end_candidate(&mut st, id);
        }
    }

    // ---- heartbeat ------------------------------------------------------

    /// Arms the first heartbeat deadline: the first ping (v4), or the
    /// latest moment for the client's first ping (v3).
    pub(crate) fn start_heartbeat(&self) {
        let (interval, timeout) = self.ping;
        let first = match self.protocol {
            Protocol::V4 => interval,
            Protocol::V3 => interval + timeout,
        };
        self.rearm(&mut self.state.lock(), first);
    }

    /// Moves the heartbeat deadline to `after` from now. Takes the state
    /// (unused) because the generation must move under its lock, where
    /// [`Session::heartbeat_due`] reads it.
    fn rearm(&self, _st: &mut State, after: Duration) {
        let generation = self.heartbeat_gen.fetch_add(1, Ordering::AcqRel) + 1;
        if let Some(engine) = self.engine.upgrade() {
            let when = tokio::time::Instant::now() + after;
            engine.heartbeats.schedule(when, self.handle, generation);
        }
    }

    /// Whether a heartbeat deadline of this `generation` is still the
    /// session's.
    pub(crate) fn heartbeat_current(&self, generation: u64) -> bool {
        self.heartbeat_gen.load(Ordering::Acquire) == generation
    }

    /// A heartbeat deadline passed: ping (v4), or close with `ping timeout`
    /// when the pong (v4) or the client's ping (v3) did not come.
    pub(crate) fn heartbeat_due(&self, generation: u64) {
        let mut st = self.state.lock();
        if st.core.ready == ReadyState::Closed || !self.heartbeat_current(generation) {
            return;
        }
        if self.protocol == Protocol::V3 || st.core.awaiting_pong {
            return self.close_locked(&mut st, CloseReason::PingTimeout, None);
        }
        // Armed before the ping goes out, so a quick pong finds it waiting.
        debug!(
            self,
            Scope::Socket,
            "writing ping packet - expecting pong within {}ms",
            self.ping.1.as_millis()
        );
        st.core.awaiting_pong = true;
        self.rearm(&mut st, self.ping.1);
        drop(st);
        self.send_packet(Packet::empty(PacketType::Ping), false);
    }

    // ---- closing --------------------------------------------------------

    /// Closes the session at once, for `reason`. Idempotent.
    pub fn close(&self, reason: CloseReason, description: Option<String>) {
        let mut st = self.state.lock();
        self.close_locked(&mut st, reason, description);
    }

    /// The one close path: state, transport, timers, registry, event.
    fn close_locked(&self, st: &mut State, reason: CloseReason, description: Option<String>) {
        if st.core.ready == ReadyState::Closed {
            return;
        }
        debug!(
            self,
            Scope::Socket,
            "readyState updated from {} to closed ({reason}{}{})",
            st.core.ready.as_str(),
            if description.is_some() { ": " } else { "" },
            description.as_deref().unwrap_or("")
        );
        st.core.ready = ReadyState::Closed;
        self.closed_flag.store(true, Ordering::Release);
        self.closed_notify.notify_waiters();
        for task in st.tasks.drain(..) {
            task.abort();
        }
        // The driver cannot ask for another close: the session is closed.
        self.run(st, |t, out| t.closed(reason, out));
        if let Some(c) = st.candidate.take() {
            c.driver.wake();
        }
        if let Some(engine) = self.engine() {
            engine.count(Counter::Close(reason), 1);
            engine.forget(self);
            engine.events().push(Event::Close {
                handle: self.handle,
                reason,
                description,
            });
        }
    }

    /// engine.io's `socket.close(discard)`: flush what is buffered, send the
    /// close packet, then close with `forced close`.
    pub fn close_by_server(&self, discard: bool) {
        let mut st = self.state.lock();
        match st.core.ready {
            ReadyState::Closed => return,
            ReadyState::Closing if !discard => return,
            _ => {}
        }
        debug!(
            self,
            Scope::Socket,
            "readyState updated from {} to closing",
            st.core.ready.as_str()
        );
        st.core.ready = ReadyState::Closing;
        if !st.core.acked {
            // Called from a `connection` handler: the handshake goes first,
            // as it already has in engine.io by then.
            st.core.acked = true;
            self.flush(&mut st);
        }
        debug!(
            self,
            Scope::Socket,
            "closing the transport (discard? {discard})"
        );
        match self.run(&mut st, |t, out| t.close_requested(discard, out)) {
            ServerClose::Now => self.close_locked(&mut st, CloseReason::ForcedClose, None),
            ServerClose::Later => self.close_later(&mut st),
        }
    }

    /// Closes anyway if the transport does not carry the close in time.
    fn close_later(&self, st: &mut State) {
        let Some(engine) = self.engine() else { return };
        let delay = engine.config().polling_close_timeout;
        let handle = self.handle;
        let rt = engine.runtime().clone();
        let task = rt.spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(s) = engine.session(handle) {
                s.close(CloseReason::ForcedClose, None);
            }
        });
        st.tasks.push(task.abort_handle());
    }
}

/// engine.io's session rules, checked over a stand-in transport: no socket,
/// no request, no running runtime.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Config, EventQueue};
    use std::any::Any;

    /// What the stand-in transport saw.
    #[derive(Debug, Default)]
    struct Wire {
        /// Each write, as the packet types it carried.
        writes: Vec<String>,
        pauses: usize,
        wakes: usize,
        closed: Option<CloseReason>,
    }

    /// A transport that writes whatever it is given when `open`, and
    /// records it.
    #[derive(Debug)]
    struct Fake {
        id: u64,
        kind: TransportKind,
        open: bool,
        later: bool,
        /// Claims to write from the caller's thread, as a WebSocket does.
        direct: bool,
        wire: Arc<Mutex<Wire>>,
    }

    impl Fake {
        fn boxed(id: u64, kind: TransportKind) -> (Box<dyn Driver>, Arc<Mutex<Wire>>) {
            let wire = Arc::new(Mutex::new(Wire::default()));
            let fake = Fake {
                id,
                kind,
                open: true,
                later: false,
                direct: false,
                wire: wire.clone(),
            };
            (Box::new(fake), wire)
        }
    }

    impl Driver for Fake {
        fn kind(&self) -> TransportKind {
            self.kind
        }
        fn id(&self) -> u64 {
            self.id
        }
        fn writable(&self) -> bool {
            self.open
        }
        fn flush(&mut self, out: &mut Outbox<'_>) {
            while self.open && !out.is_empty() {
                let taken = out.take(false);
                let kinds: String = taken.packets.iter().map(|p| p.kind.as_char()).collect();
                self.wire.lock().writes.push(kinds);
                out.drained(taken.callbacks);
            }
        }
        fn send_now(&mut self, _: MessageRef<'_>, _: bool, _: &mut Outbox<'_>) -> Option<()> {
            None
        }
        fn writes_directly(&self) -> bool {
            self.direct && self.open
        }
        fn close_requested(&mut self, discard: bool, _: &mut Outbox<'_>) -> ServerClose {
            if self.later && !discard {
                ServerClose::Later
            } else {
                ServerClose::Now
            }
        }
        fn closed(&mut self, reason: CloseReason, _: &mut Outbox<'_>) {
            self.wire.lock().closed = Some(reason);
        }
        fn pause(&mut self, _: &mut Outbox<'_>) {
            self.wire.lock().pauses += 1;
        }
        fn wake(&self) {
            self.wire.lock().wakes += 1;
        }
        fn as_any_mut(&mut self) -> &mut dyn Any {
            self
        }
    }

    struct Setup {
        // Driven only by `run_spawned`: the engine needs a handle to spawn on.
        rt: tokio::runtime::Runtime,
        engine: Engine,
    }

    fn setup(config: Config) -> Setup {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let engine = Engine::new(config, EventQueue::new(|| {}), rt.handle().clone());
        Setup { rt, engine }
    }

    impl Setup {
        /// Runs what the engine spawned until nothing is ready.
        fn run_spawned(&self) {
            self.rt.block_on(async {
                for _ in 0..8 {
                    tokio::task::yield_now().await;
                }
            });
        }

        fn open(&self, query: &str, driver: Box<dyn Driver>) -> Arc<Session> {
            let url = format!("/engine.io/?{query}");
            let req = Arc::new(RequestInfo::new("GET", &url, "1.1", vec![], None));
            let protocol = if query.contains("EIO=3") {
                Protocol::V3
            } else {
                Protocol::V4
            };
            let s = self
                .engine
                .open_session(req, protocol, "s".repeat(20), driver);
            self.engine.events().drain();
            s
        }

        fn events(&self) -> Vec<Event> {
            self.engine.events().drain()
        }

        /// The callbacks of each `drain` event since the last read.
        fn drains(&self) -> Vec<u32> {
            self.events()
                .iter()
                .filter_map(|e| match e {
                    Event::Drain { callbacks, .. } => Some(*callbacks),
                    _ => None,
                })
                .collect()
        }

        fn close_of(&self) -> Option<(CloseReason, Option<String>)> {
            self.events().into_iter().find_map(|e| match e {
                Event::Close {
                    reason,
                    description,
                    ..
                } => Some((reason, description)),
                _ => None,
            })
        }
    }

    fn text(s: &str) -> PacketData {
        PacketData::Text(Str::from(s.to_string()))
    }

    #[test]
    fn nothing_is_written_before_the_application_saw_the_connection() {
        let t = setup(Config::default());
        let (d, wire) = Fake::boxed(1, TransportKind::WebSocket);
        let s = t.open("EIO=4", d);
        assert!(s.send(text("early"), false, false));
        assert!(wire.lock().writes.is_empty());
        s.ack_open();
        // The handshake goes alone, then what was sent meanwhile.
        assert_eq!(wire.lock().writes, ["0", "4"]);
    }

    #[test]
    fn the_buffer_waits_for_the_transport_and_reports_its_callbacks() {
        let t = setup(Config::default());
        let (d, wire) = Fake::boxed(1, TransportKind::Polling);
        let s = t.open("EIO=4", d);
        s.ack_open();
        t.events();
        s.drive_current(|f: &mut Fake, _| f.open = false);
        assert!(!s.writable());
        assert!(s.send(text("a"), false, true));
        assert!(s.send(text("b"), false, true));
        assert!(s.send(text("c"), false, false));
        assert_eq!(s.buffered(), 3);
        assert!(t.drains().is_empty());
        s.drive_current(|f: &mut Fake, out| {
            f.open = true;
            f.flush(out);
        });
        assert_eq!(wire.lock().writes.last().unwrap(), "444");
        assert_eq!(t.drains(), [2]);
        assert!(s.writable());
    }

    #[test]
    fn a_frame_written_later_still_goes_before_what_is_sent_after_it() {
        let t = setup(Config::default());
        let (d, wire) = Fake::boxed(1, TransportKind::WebSocket);
        let s = t.open("EIO=4", d);
        s.ack_open();
        let frame = Bytes::from_static(b"\x81\x024a");
        assert!(s.send_later(text("a"), true, true, Some(frame)));
        // Left for a runtime worker: nothing written on this thread yet.
        assert_eq!(wire.lock().writes, ["0"]);
        assert_eq!(s.buffered(), 1);
        // What is sent next goes behind it, in the same write.
        assert!(s.send(text("b"), false, false));
        assert_eq!(wire.lock().writes, ["0", "44"]);
        // The worker's flush then finds nothing left.
        t.engine.release_flushes();
        t.run_spawned();
        assert_eq!(wire.lock().writes.len(), 2);
        assert_eq!(t.drains(), [1]);
    }

    #[test]
    fn sends_left_for_later_wait_for_the_release_then_go_in_one_write() {
        let t = setup(Config::default());
        let (d, wire) = Fake::boxed(1, TransportKind::WebSocket);
        let s = t.open("EIO=4", d);
        s.ack_open();
        s.drive_current(|f: &mut Fake, _| f.direct = true);
        assert!(s.send_later(text("a"), true, true, None));
        assert!(s.send_later(text("b"), true, false, None));
        // Nothing handed over yet: the runtime has nothing to do.
        t.run_spawned();
        assert_eq!(wire.lock().writes, ["0"]);
        assert_eq!(s.buffered(), 2);
        t.engine.release_flushes();
        t.run_spawned();
        assert_eq!(wire.lock().writes, ["0", "44"]);
        assert_eq!(t.drains(), [1]);
        // A second release has nothing left.
        t.engine.release_flushes();
        t.run_spawned();
        assert_eq!(wire.lock().writes.len(), 2);
    }

    #[test]
    fn a_broadcast_reaches_each_open_session_in_its_own_order() {
        let t = setup(Config::default());
        let (d1, ws) = Fake::boxed(1, TransportKind::WebSocket);
        let a = t.open("EIO=4", d1);
        let (d2, poll) = Fake::boxed(2, TransportKind::Polling);
        let b = t.open("EIO=4", d2);
        let (d3, _) = Fake::boxed(3, TransportKind::WebSocket);
        let gone = t.open("EIO=4", d3);
        for s in [&a, &b, &gone] {
            s.ack_open();
        }
        a.drive_current(|f: &mut Fake, _| f.direct = true);
        gone.close_by_server(true);
        t.events();
        assert!(a.send_later(text("first"), true, false, None));
        let frame = Bytes::from_static(b"\x81\x024x");
        let handles = [a.handle, b.handle, gone.handle, 999];
        assert_eq!(t.engine.send_to_each(handles, &text("x"), &frame), 2);
        // Both wait for the release; the WebSocket's message goes behind
        // what it had, and what is sent next goes behind it.
        assert_eq!(ws.lock().writes, ["0"]);
        assert_eq!(poll.lock().writes, ["0"]);
        assert_eq!((a.buffered(), b.buffered()), (2, 1));
        assert!(a.send(text("after"), false, false));
        assert_eq!(ws.lock().writes, ["0", "444"]);
        t.engine.release_flushes();
        t.run_spawned();
        assert_eq!(ws.lock().writes.len(), 2);
        assert_eq!(poll.lock().writes, ["0", "4"]);
    }

    #[test]
    fn a_handshake_acknowledged_later_waits_for_the_release_with_what_was_sent() {
        let t = setup(Config::default());
        let (d, wire) = Fake::boxed(1, TransportKind::WebSocket);
        let s = t.open("EIO=4", d);
        s.drive_current(|f: &mut Fake, _| f.direct = true);
        // Sent from a `connection` handler: behind the handshake.
        assert!(s.send_later(text("hi"), true, false, None));
        s.ack_open_later();
        t.run_spawned();
        assert!(wire.lock().writes.is_empty());
        t.engine.release_flushes();
        t.run_spawned();
        // The handshake alone, then the message (as with `ack_open`).
        assert_eq!(wire.lock().writes, ["0", "4"]);
        // Over a transport that does not write itself, it goes at once.
        let (d, poll) = Fake::boxed(2, TransportKind::Polling);
        let p = t.open("EIO=4", d);
        p.ack_open_later();
        assert_eq!(poll.lock().writes, ["0"]);
    }

    #[test]
    fn a_send_for_later_on_a_transport_that_does_not_write_itself_goes_at_once() {
        let t = setup(Config::default());
        let (d, wire) = Fake::boxed(1, TransportKind::Polling);
        let s = t.open("EIO=4", d);
        s.ack_open();
        assert!(s.send_later(text("a"), true, false, None));
        assert_eq!(wire.lock().writes, ["0", "4"]);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn a_send_for_later_to_a_closed_session_is_refused() {
        let t = setup(Config::default());
        let (d, _wire) = Fake::boxed(1, TransportKind::WebSocket);
        let s = t.open("EIO=4", d);
        s.ack_open();
        s.close_by_server(true);
        assert!(!s.send_later(text("a"), true, false, None));
    }

    #[test]
    fn max_buffered_bytes_closes_a_session_whose_client_does_not_read() {
        let t = setup(Config {
            max_buffered_bytes: Some(10),
            ..Config::default()
        });
        let (d, wire) = Fake::boxed(1, TransportKind::WebSocket);
        let s = t.open("EIO=4", d);
        s.ack_open();
        s.drive_current(|f: &mut Fake, _| f.open = false);
        assert!(s.send(text("0123456789"), false, false));
        assert!(!s.send(text("x"), false, false));
        assert!(s.is_closed());
        let why = Some("write buffer full".to_string());
        assert_eq!(t.close_of(), Some((CloseReason::TransportError, why)));
        assert_eq!(s.buffered(), 0);
        assert_eq!(wire.lock().closed, Some(CloseReason::TransportError));
        // Nothing is queued once closed.
        assert!(!s.send(text("late"), false, false));
    }

    #[test]
    fn heartbeats_go_one_way_per_protocol() {
        let t = setup(Config::default());
        let ping = || Packet::empty(PacketType::Ping);
        let pong = || Packet::empty(PacketType::Pong);
        // v4: the server pings; a client's ping is an error.
        let (d, _) = Fake::boxed(1, TransportKind::WebSocket);
        let s = t.open("EIO=4", d);
        s.on_packet(ping(), TransportKind::WebSocket);
        let why = Some("invalid heartbeat direction".to_string());
        assert_eq!(
            t.close_of(),
            Some((CloseReason::TransportError, why.clone()))
        );
        // v3: the client pings and gets a pong; a pong from it is an error.
        let (d, wire) = Fake::boxed(2, TransportKind::WebSocket);
        let s = t.open("EIO=3", d);
        s.ack_open();
        s.on_packet(ping(), TransportKind::WebSocket);
        assert_eq!(wire.lock().writes.last().unwrap(), "3");
        assert!(!s.is_closed());
        s.on_packet(pong(), TransportKind::WebSocket);
        assert_eq!(t.close_of(), Some((CloseReason::TransportError, why)));
    }

    #[test]
    fn a_missing_pong_is_a_ping_timeout() {
        let t = setup(Config::default());
        let (d, wire) = Fake::boxed(1, TransportKind::WebSocket);
        let s = t.open("EIO=4", d);
        s.ack_open();
        let generation = |s: &Session| s.heartbeat_gen.load(Ordering::Acquire);
        s.heartbeat_due(generation(&s));
        assert_eq!(wire.lock().writes.last().unwrap(), "2");
        // A stale deadline does nothing.
        s.heartbeat_due(generation(&s) - 1);
        assert!(!s.is_closed());
        // The pong re-arms; an unasked pong is ignored.
        s.on_packet(Packet::empty(PacketType::Pong), TransportKind::WebSocket);
        s.on_packet(Packet::empty(PacketType::Pong), TransportKind::WebSocket);
        assert!(!s.is_closed());
        s.heartbeat_due(generation(&s));
        s.heartbeat_due(generation(&s));
        assert_eq!(t.close_of(), Some((CloseReason::PingTimeout, None)));
    }

    #[test]
    fn an_upgrade_pauses_the_old_transport_only_after_the_probe() {
        let t = setup(Config::default());
        let (old, old_wire) = Fake::boxed(0, TransportKind::Polling);
        let s = t.open("EIO=4", old);
        s.ack_open();
        let (new, new_wire) = Fake::boxed(7, TransportKind::WebSocket);
        assert!(s.upgrade_begin(new));
        assert!(s.upgrading());
        // A second candidate is refused while one is under way.
        let (other, _) = Fake::boxed(8, TransportKind::WebSocket);
        assert!(!s.upgrade_begin(other));
        // Before the probe, ticks release nothing (a close still reaches
        // the client over its poll).
        s.upgrade_tick(7);
        assert_eq!(old_wire.lock().pauses, 0);
        assert!(s.upgrade_probed(7));
        assert!(t.events().iter().any(|e| matches!(
            e,
            Event::Upgrading {
                transport: "websocket",
                ..
            }
        )));
        s.upgrade_tick(7);
        assert_eq!(old_wire.lock().pauses, 1);
        // What is sent while upgrading goes over the old transport.
        assert!(s.send(text("during"), false, false));
        assert_eq!(old_wire.lock().writes.last().unwrap(), "4");
        assert!(s.upgrade_complete(7));
        assert_eq!(s.transport_kind(), TransportKind::WebSocket);
        assert!(s.upgraded() && !s.upgrading());
        assert_eq!(new_wire.lock().wakes, 1);
        assert!(t
            .events()
            .iter()
            .any(|e| matches!(e, Event::Upgrade { .. })));
        // Now the new transport writes, and the old one's end is no close.
        assert!(s.send(text("after"), false, false));
        assert_eq!(new_wire.lock().writes, ["4"]);
        s.transport_ended(0, None);
        assert!(!s.is_closed());
        // An upgraded session does not upgrade again.
        let (again, _) = Fake::boxed(9, TransportKind::WebSocket);
        assert!(!s.upgrade_begin(again));
    }

    #[test]
    fn a_failed_upgrade_leaves_the_session_as_it_was() {
        let t = setup(Config::default());
        let (old, _) = Fake::boxed(0, TransportKind::Polling);
        let s = t.open("EIO=4", old);
        let (new, _) = Fake::boxed(7, TransportKind::WebSocket);
        assert!(s.upgrade_begin(new));
        assert!(s.upgrade_probed(7));
        t.events();
        // The candidate's connection ends: an aborted upgrade, not a close.
        s.transport_ended(7, Some("reset".into()));
        assert!(!s.is_closed() && !s.upgrading());
        assert_eq!(s.transport_kind(), TransportKind::Polling);
        let evs = t.events();
        assert!(evs
            .iter()
            .any(|e| matches!(e, Event::UpgradeAborted { .. })));
        assert!(!evs.iter().any(|e| matches!(e, Event::Close { .. })));
        assert!(!s.upgrade_complete(7));
    }

    #[test]
    fn close_reasons_follow_what_ended_the_session() {
        let t = setup(Config::default());
        type Case = (fn(&Session), CloseReason, Option<&'static str>);
        let cases: [Case; 4] = [
            (
                |s| s.transport_ended(1, Some("broken".into())),
                CloseReason::TransportError,
                Some("broken"),
            ),
            (
                |s| s.transport_ended(1, None),
                CloseReason::TransportClose,
                None,
            ),
            (
                |s| s.on_packet(Packet::empty(PacketType::Close), TransportKind::WebSocket),
                CloseReason::TransportClose,
                None,
            ),
            (|s| s.on_parse_error(), CloseReason::ParseError, None),
        ];
        for (end, reason, why) in cases {
            let (d, wire) = Fake::boxed(1, TransportKind::WebSocket);
            let s = t.open("EIO=4", d);
            end(&s);
            assert_eq!(t.close_of(), Some((reason, why.map(String::from))));
            assert_eq!(wire.lock().closed, Some(reason));
            // The one close path runs once.
            s.close(CloseReason::ForcedClose, None);
            assert_eq!(t.close_of(), None);
        }
    }

    #[test]
    fn the_application_closes_now_or_when_the_transport_carries_it() {
        let t = setup(Config::default());
        let (d, _) = Fake::boxed(1, TransportKind::WebSocket);
        let s = t.open("EIO=4", d);
        s.close_by_server(false);
        assert_eq!(t.close_of(), Some((CloseReason::ForcedClose, None)));

        let (d, wire) = Fake::boxed(2, TransportKind::Polling);
        let s = t.open("EIO=4", d);
        s.drive_current(|f: &mut Fake, _| f.later = true);
        s.close_by_server(false);
        // The handshake went out first; the session waits for the transport.
        assert_eq!(wire.lock().writes, ["0"]);
        assert_eq!(s.ready_state(), ReadyState::Closing);
        assert!(!s.send(text("too late"), false, false));
        assert_eq!(t.close_of(), None);
        // A discarding close does not wait.
        s.close_by_server(true);
        assert_eq!(t.close_of(), Some((CloseReason::ForcedClose, None)));
    }
}
