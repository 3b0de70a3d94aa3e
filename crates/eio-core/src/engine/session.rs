//! One Engine.IO session: its state machine, write buffer, heartbeat and
//! upgrade. Transports feed it packets and take what it has to send; every
//! way a session ends goes through [`Session::close`].

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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
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

/// The link between a session and the task that owns a WebSocket: the task
/// sleeps on `notify` and asks the session what to do when woken.
pub(crate) struct WsLink {
    pub(crate) id: u64,
    pub(crate) notify: Notify,
    /// Set when the socket can be written from any thread: the session then
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

/// Message data the caller still owns.
#[derive(Debug, Clone, Copy)]
pub enum MessageRef<'a> {
    /// Text.
    Text(&'a str),
    /// Binary data.
    Binary(&'a [u8]),
    /// A whole WebSocket frame, encoded by the application (engine.io's
    /// `wsPreEncodedFrame`), written as it is.
    Frame(&'a [u8]),
}

/// Where the packets that answer a held GET go: a channel its request task
/// awaits, or a function that answers it at once (the bridge's requests,
/// served on the JS thread with no task). The function runs under the
/// session's lock; it is called with `None` if the GET can no longer be
/// answered with packets (the session was dropped while it was held).
pub(crate) enum PollWaiter {
    Channel(oneshot::Sender<Batch>),
    Callback(CallbackWaiter),
}

/// A [`PollWaiter::Callback`]: calls its function exactly once.
pub(crate) struct CallbackWaiter(Option<Box<dyn FnOnce(Option<Batch>) + Send>>);

impl CallbackWaiter {
    pub(crate) fn new(f: impl FnOnce(Option<Batch>) + Send + 'static) -> Self {
        CallbackWaiter(Some(Box::new(f)))
    }
}

impl Drop for CallbackWaiter {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(None);
        }
    }
}

impl PollWaiter {
    fn send(self, batch: Batch) {
        match self {
            PollWaiter::Channel(tx) => {
                let _ = tx.send(batch);
            }
            PollWaiter::Callback(mut w) => {
                if let Some(f) = w.0.take() {
                    f(Some(batch));
                }
            }
        }
    }

    /// Forgets the GET without answering it (its client went away).
    fn forget(self) {
        if let PollWaiter::Callback(mut w) = self {
            w.0 = None;
        }
    }
}

impl std::fmt::Debug for PollWaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PollWaiter::Channel(_) => "Channel",
            PollWaiter::Callback(_) => "Callback",
        })
    }
}

#[derive(Debug, Default)]
pub(crate) struct PollingState {
    /// The held GET: its id and where to send the packets that answer it.
    get: Option<(u64, PollWaiter)>,
    /// A POST is being read.
    post: bool,
    /// The next poll carries the close packet, then the session closes.
    should_close: bool,
}

#[derive(Debug)]
enum Slot {
    Polling(PollingState),
    WebSocket(Arc<WsLink>),
}

#[derive(Debug)]
enum Upgrade {
    None,
    /// A WebSocket connected and may probe.
    Pending(Arc<WsLink>),
    /// The probe succeeded: every poll is answered with a noop.
    Probed(Arc<WsLink>),
}

#[derive(Debug)]
struct State {
    ready: ReadyState,
    slot: Slot,
    upgrade: Upgrade,
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
    /// The WebSocket task has a write in flight: nothing may be written
    /// directly until it is done (frames must not interleave).
    ws_busy: bool,
    /// Bytes a direct write left over, with the callbacks they carried: the
    /// task writes them first.
    ws_rest: Option<(Vec<u8>, Option<u32>)>,
    /// A ping went out and its pong has not come back (v4).
    awaiting_pong: bool,
    tasks: Vec<AbortHandle>,
}

/// The transport a slot holds.
fn slot_kind(slot: &Slot) -> TransportKind {
    match slot {
        Slot::Polling(_) => TransportKind::Polling,
        Slot::WebSocket(_) => TransportKind::WebSocket,
    }
}

/// What [`Session::take_batch`] takes: the packets, their pre-encoded
/// frames, whether they may be compressed, and the send callbacks they
/// carry (`None` for the handshake alone).
type TakenBatch = (Vec<Packet>, Vec<(usize, Bytes)>, bool, Option<u32>);

/// Packets for one write, and whether they may be compressed.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) packets: Vec<Packet>,
    pub(crate) compress: bool,
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

/// What a GET finds when it arrives.
pub(crate) enum PollStart {
    /// Answer right away with these packets.
    Ready(Batch),
    /// The GET is held: its waiter gets the packets; the id identifies it.
    Wait(u64),
    /// Another GET is held: 400, and the session closed with `transport error`.
    Overlap,
    /// The session is gone.
    Closed,
}

/// What a WebSocket task should do when woken.
pub(crate) enum WsBatch {
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
        transport: TransportKind,
        ws: Option<Arc<WsLink>>,
    ) -> Arc<Self> {
        let slot = match (transport, ws) {
            (TransportKind::WebSocket, Some(link)) => Slot::WebSocket(link),
            _ => Slot::Polling(PollingState::default()),
        };
        Arc::new(Session {
            handle,
            sid,
            protocol,
            framing: Framing::of(request.query("j"), request.query("b64")),
            engine: Arc::downgrade(&engine.inner),
            state: Mutex::new(State {
                ready: ReadyState::Open,
                slot,
                upgrade: Upgrade::None,
                upgraded: false,
                buffer: Vec::new(),
                buffer_callbacks: 0,
                buffer_bytes: 0,
                buffer_compress: false,
                acked: false,
                open_packets: 0,
                frames: Vec::new(),
                ws_busy: false,
                ws_rest: None,
                awaiting_pong: false,
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
        let rest = st.ws_rest.as_ref().map_or(0, |(r, _)| r.len());
        (slot_kind(&st.slot), st.buffer_bytes + rest)
    }

    fn listens(&self, flag: u32) -> bool {
        self.engine
            .upgrade()
            .is_some_and(|e| e.events.listen.has(flag))
    }

    /// The transport currently in use.
    pub fn transport_kind(&self) -> TransportKind {
        slot_kind(&self.state.lock().slot)
    }

    /// The ready state.
    pub fn ready_state(&self) -> ReadyState {
        self.state.lock().ready
    }

    /// Whether the session moved to another transport.
    pub fn upgraded(&self) -> bool {
        self.state.lock().upgraded
    }

    /// Whether an upgrade is under way.
    pub fn upgrading(&self) -> bool {
        !matches!(self.state.lock().upgrade, Upgrade::None)
    }

    /// How many packets wait for the transport.
    pub fn buffered(&self) -> usize {
        self.state.lock().buffer.len()
    }

    /// engine.io's `transport.writable`: a packet sent now would go out at
    /// once. Polling: a GET is waiting. WebSocket: nothing is queued or in
    /// flight. (Socket.IO drops a `volatile` packet when this is false.)
    pub fn writable(&self) -> bool {
        let st = self.state.lock();
        if st.ready != ReadyState::Open || !st.buffer.is_empty() {
            return false;
        }
        match &st.slot {
            Slot::Polling(p) => p.get.is_some(),
            Slot::WebSocket(_) => !st.ws_busy,
        }
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

    /// Queues a `message` packet (engine.io's `socket.send`). Returns false
    /// when the session is closing or closed, where engine.io drops it too.
    pub fn send(&self, data: PacketData, compress: bool, callback: bool) -> bool {
        let packet = Packet {
            kind: PacketType::Message,
            data,
        };
        self.queue(packet, compress, callback, None, false)
    }

    /// [`Session::send`] with a frame the application encoded itself
    /// (engine.io's `wsPreEncodedFrame`): a WebSocket without compression
    /// writes it instead of encoding `data`; polling encodes `data`.
    pub fn send_pre_encoded(&self, data: PacketData, frame: Bytes, callback: bool) -> bool {
        let packet = Packet {
            kind: PacketType::Message,
            data,
        };
        self.queue(packet, true, callback, Some(frame), false)
    }

    /// [`Session::send`] for data the caller still owns, written to the
    /// socket at once when nothing is queued or in flight before it (a
    /// WebSocket written from the calling thread, with no `flush` listener,
    /// which needs the packet). `None` when that is not the
    /// case: the caller then sends an owned copy with [`Session::send`].
    pub fn send_now(&self, data: MessageRef<'_>, callback: bool) -> Option<bool> {
        let mut st = self.state.lock();
        if st.ready != ReadyState::Open {
            return Some(false);
        }
        if !st.acked || st.open_packets > 0 || !st.buffer.is_empty() || st.ws_busy {
            return None;
        }
        let Slot::WebSocket(link) = &st.slot else {
            return None;
        };
        let engine = self.engine.upgrade()?;
        if engine.events.listen.has(Listen::FLUSH) {
            return None;
        }
        let link = link.clone();
        let direct = link.direct.get()?;
        debug!(self, Scope::Socket, "sending packet \"message\" ({})", {
            match data {
                MessageRef::Text(t) => t.to_string(),
                MessageRef::Binary(b) | MessageRef::Frame(b) => {
                    format!("<Buffer {} bytes>", b.len())
                }
            }
        });
        let written = direct.write_message(data)?;
        engine
            .counters
            .add(Counter::MessageOut(TransportKind::WebSocket), 1);
        let callbacks = Some(u32::from(callback));
        match written {
            Ok(rest) if rest.is_empty() => self.drained(callbacks),
            Ok(rest) => {
                st.ws_busy = true;
                st.ws_rest = Some((rest, callbacks));
                link.notify.notify_one();
            }
            Err(_) => {
                st.ws_busy = true;
                link.notify.notify_one();
            }
        }
        Some(true)
    }

    pub(crate) fn send_packet(&self, packet: Packet, callback: bool) -> bool {
        self.queue(packet, true, callback, None, true)
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
        let mut st = self.state.lock();
        if st.ready != ReadyState::Open {
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
        st.buffer_bytes += packet.data.len();
        if let Some(frame) = frame {
            let at = st.buffer.len();
            st.frames.push((at, frame));
        }
        st.buffer.push(packet);
        st.buffer_compress |= compress;
        if callback {
            st.buffer_callbacks += 1;
        }
        if self.max_buffered.is_some_and(|max| st.buffer_bytes > max) {
            // A client that does not read: drop what it would never get.
            st.buffer.clear();
            st.frames.clear();
            st.buffer_bytes = 0;
            st.buffer_callbacks = 0;
            let why = Some("write buffer full".to_string());
            self.close_locked(&mut st, CloseReason::TransportError, why);
            return false;
        }
        self.flush(&mut st);
        true
    }

    /// The application has run its `connection` handlers: the handshake
    /// may go out now.
    pub fn ack_open(&self) {
        let mut st = self.state.lock();
        if !st.acked {
            st.acked = true;
            self.flush(&mut st);
        }
    }

    pub(crate) fn queue_open(&self, open: Str, initial: Option<PacketData>) {
        debug!(self, Scope::Socket, "sending packet \"open\" ({open})");
        let mut st = self.state.lock();
        st.buffer.push(Packet::text(PacketType::Open, open));
        if let Some(data) = initial {
            st.buffer.push(Packet {
                kind: PacketType::Message,
                data,
            });
        }
        st.open_packets = st.buffer.len();
        self.flush(&mut st);
    }

    /// Takes what the next write carries: the handshake packets alone when
    /// they are still pending and `whole` is false (polling), else the whole
    /// buffer. Returns the packets, whether they may be compressed, and the
    /// send callbacks they carry, or `None` for the handshake alone, which
    /// engine.io writes before any handler can see it (no flush, no drain).
    fn take_batch(&self, st: &mut State, whole: bool) -> TakenBatch {
        let open = std::mem::take(&mut st.open_packets);
        if open > 0 && !whole && open < st.buffer.len() {
            let packets: Vec<Packet> = st.buffer.drain(..open).collect();
            st.buffer_bytes -= packets.iter().map(|p| p.data.len()).sum::<usize>();
            for f in &mut st.frames {
                f.0 -= open;
            }
            return (packets, Vec::new(), false, None);
        }
        debug!(self, Scope::Socket, "flushing buffer to transport");
        st.buffer_bytes = 0;
        let packets = std::mem::take(&mut st.buffer);
        let frames = std::mem::take(&mut st.frames);
        let compress = std::mem::take(&mut st.buffer_compress);
        let callbacks = std::mem::take(&mut st.buffer_callbacks);
        if let Some(engine) = self.engine.upgrade() {
            let messages = packets
                .iter()
                .filter(|p| p.kind == PacketType::Message)
                .count();
            let kind = slot_kind(&st.slot);
            engine
                .counters
                .add(Counter::MessageOut(kind), messages as u64);
            if open == 0 && engine.events.listen.has(Listen::FLUSH) {
                engine.events.push(Event::Flush {
                    handle: self.handle,
                    packets: packets.clone(),
                });
            }
        }
        (
            packets,
            frames,
            compress,
            (open == 0 || callbacks > 0).then_some(callbacks),
        )
    }

    /// Hands the buffer to the transport if it can take it.
    fn flush(&self, st: &mut State) {
        if st.ready == ReadyState::Closed || st.buffer.is_empty() || !st.acked {
            return;
        }
        match &mut st.slot {
            // Also while upgrading, as engine.io does: what the application
            // sends then (Socket.IO's CONNECT answer, typically) goes out
            // in the poll rather than after the upgrade.
            Slot::Polling(p) => {
                // (No poll waits while a close is pending: the close
                // answers the next one.)
                if let Some((_, tx)) = p.get.take() {
                    let (packets, _, compress, callbacks) = self.take_batch(st, false);
                    tx.send(Batch { packets, compress });
                    self.drained(callbacks);
                }
            }
            Slot::WebSocket(link) => {
                let link = link.clone();
                self.flush_ws(st, &link);
            }
        }
    }

    /// Writes the buffer straight to the socket when it can be written from
    /// here and the task has nothing in flight; otherwise wakes the task.
    fn flush_ws(&self, st: &mut State, link: &Arc<WsLink>) {
        let direct = match link.direct.get() {
            Some(d) if !st.ws_busy => d,
            _ => return link.notify.notify_one(),
        };
        // The handshake goes alone, as its own frame(s), then the rest.
        while !st.buffer.is_empty() {
            let (packets, frames, _, callbacks) = self.take_batch(st, false);
            match direct.write_now(&packets, &frames) {
                Ok(rest) if rest.is_empty() => self.drained(callbacks),
                // The socket is full (or broken: the task finds out and ends
                // the session): the task writes the rest when it can.
                Ok(rest) => {
                    st.ws_busy = true;
                    st.ws_rest = Some((rest, callbacks));
                    return link.notify.notify_one();
                }
                Err(_) => {
                    st.ws_busy = true;
                    return link.notify.notify_one();
                }
            }
        }
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

    // ---- polling ------------------------------------------------------

    /// A GET arrived for this session; `waiter` answers it if it must wait
    /// (otherwise it is forgotten, never called).
    pub(crate) fn poll_start(&self, id: u64, waiter: PollWaiter) -> PollStart {
        let mut waiter = Some(waiter);
        let start = self.poll_start_with(id, &mut waiter);
        if let Some(w) = waiter {
            w.forget();
        }
        start
    }

    fn poll_start_with(&self, id: u64, waiter: &mut Option<PollWaiter>) -> PollStart {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if st.ready == ReadyState::Closed {
            return PollStart::Closed;
        }
        let Slot::Polling(p) = &mut st.slot else {
            return PollStart::Closed;
        };
        if p.get.is_some() {
            debug!(self, Scope::Polling, "request overlap");
            self.close_locked(
                st,
                CloseReason::TransportError,
                Some("overlap from client".into()),
            );
            return PollStart::Overlap;
        }
        // With nothing to send (while upgrading too: then the next upgrade
        // tick answers it with a noop), the poll waits.
        if !st.acked || (st.buffer.is_empty() && !p.should_close) {
            if let Some(w) = waiter.take() {
                p.get = Some((id, w));
            }
            debug!(self, Scope::Polling, "setting request");
            return PollStart::Wait(id);
        }
        if p.should_close && st.buffer.is_empty() {
            // engine.io's `shouldClose`: the close goes in a poll of its
            // own, after a noop, once the buffer went out.
            p.should_close = false;
            self.close_locked(st, CloseReason::ForcedClose, None);
            return PollStart::Ready(Batch {
                packets: vec![
                    Packet::empty(PacketType::Noop),
                    Packet::empty(PacketType::Close),
                ],
                compress: false,
            });
        }
        let (packets, _, compress, callbacks) = self.take_batch(st, false);
        self.drained(callbacks);
        PollStart::Ready(Batch { packets, compress })
    }

    /// A held GET ended without an answer: the client went away.
    pub(crate) fn poll_abandoned(&self, id: u64) {
        let mut st = self.state.lock();
        if let Slot::Polling(p) = &mut st.slot {
            if p.get.as_ref().is_some_and(|(g, _)| *g == id) {
                if let Some((_, w)) = p.get.take() {
                    w.forget();
                }
                self.close_locked(
                    &mut st,
                    CloseReason::TransportError,
                    Some("poll connection closed prematurely".into()),
                );
            }
        }
    }

    /// A POST starts; false when another is being read (the session then
    /// closed with `transport error`).
    pub(crate) fn post_start(&self) -> bool {
        let mut st = self.state.lock();
        if let Slot::Polling(p) = &mut st.slot {
            if p.post {
                self.close_locked(
                    &mut st,
                    CloseReason::TransportError,
                    Some("data request overlap from client".into()),
                );
                return false;
            }
            p.post = true;
        }
        true
    }

    /// A POST ended.
    pub(crate) fn post_end(&self) {
        if let Slot::Polling(p) = &mut self.state.lock().slot {
            p.post = false;
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
                    if !st.awaiting_pong {
                        // engine.io ignores a pong nobody asked for.
                        return;
                    }
                    st.awaiting_pong = false;
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

    // ---- websocket ----------------------------------------------------

    /// What the WebSocket task `id` should do now.
    pub(crate) fn ws_batch(&self, id: u64) -> WsBatch {
        let mut st = self.state.lock();
        match &st.slot {
            Slot::WebSocket(link) if link.id == id => {
                if let Some((bytes, callbacks)) = st.ws_rest.take() {
                    return WsBatch::Rest { bytes, callbacks };
                }
                let close = st.ready == ReadyState::Closed;
                if st.buffer.is_empty() || (!st.acked && !close) {
                    st.ws_busy = false;
                    return if close { WsBatch::Close } else { WsBatch::Idle };
                }
                // The handshake goes alone, as its own frame(s), like engine.io's.
                let (packets, frames, _, callbacks) = self.take_batch(&mut st, close);
                let more = !st.buffer.is_empty();
                st.ws_busy = true;
                WsBatch::Write {
                    packets,
                    frames,
                    callbacks,
                    close,
                    more,
                }
            }
            _ => match &st.upgrade {
                Upgrade::Pending(l) | Upgrade::Probed(l)
                    if l.id == id && st.ready != ReadyState::Closed =>
                {
                    WsBatch::Idle
                }
                _ => WsBatch::Close,
            },
        }
    }

    /// The connection's task `id` is about to write on its own (a pong, a
    /// close frame): no direct write may start until
    /// [`Session::ws_release`], and bytes a direct write left over (the end
    /// of a frame already begun on the wire) must go first. Returns them and
    /// the callbacks they carried.
    pub(crate) fn ws_claim(&self, id: u64) -> (Vec<u8>, Option<u32>) {
        let mut st = self.state.lock();
        if !matches!(&st.slot, Slot::WebSocket(l) if l.id == id) {
            return (Vec::new(), None);
        }
        st.ws_busy = true;
        st.ws_rest.take().unwrap_or_default()
    }

    /// The task `id` wrote what it claimed or what [`Session::ws_batch`]
    /// gave it, carrying `callbacks` send callbacks; what was sent meanwhile
    /// may now be written directly again.
    pub(crate) fn ws_release(&self, id: u64, callbacks: Option<u32>) {
        self.drained(callbacks);
        let mut st = self.state.lock();
        if matches!(&st.slot, Slot::WebSocket(l) if l.id == id) {
            st.ws_busy = false;
            self.flush(&mut st);
        }
    }

    /// A WebSocket wants to upgrade this session. False when the session is
    /// closed, already upgrading or already upgraded (engine.io closes it).
    pub(crate) fn upgrade_begin(&self, link: Arc<WsLink>) -> bool {
        let mut st = self.state.lock();
        let refused = if st.ready == ReadyState::Closed {
            Some("upgrade attempt for closed client")
        } else if !matches!(st.upgrade, Upgrade::None) {
            Some("transport has already been trying to upgrade")
        } else if st.upgraded || !matches!(st.slot, Slot::Polling(_)) {
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
            "might upgrade socket transport from \"polling\" to \"websocket\""
        );
        st.upgrade = Upgrade::Pending(link);
        true
    }

    /// The candidate answered the probe; from now on
    /// [`Session::upgrade_tick`] releases polls with a noop.
    pub(crate) fn upgrade_probed(&self, id: u64) -> bool {
        let mut st = self.state.lock();
        let link = match &st.upgrade {
            Upgrade::Pending(l) if l.id == id => l.clone(),
            Upgrade::Probed(l) if l.id == id => return true,
            _ => return false,
        };
        st.upgrade = Upgrade::Probed(link);
        self.emit(Event::Upgrading {
            handle: self.handle,
            transport: TransportKind::WebSocket.name(),
        });
        true
    }

    /// engine.io's upgrade check, every 100 ms after the probe: a held poll
    /// is answered with a noop, so the client can pause polling. Not at the
    /// probe itself: until the first tick, a close still reaches the client
    /// over its poll, as with engine.io.
    pub(crate) fn upgrade_tick(&self, id: u64) {
        let mut st = self.state.lock();
        if !matches!(&st.upgrade, Upgrade::Probed(l) if l.id == id) {
            return;
        }
        if let Slot::Polling(p) = &mut st.slot {
            if let Some((_, tx)) = p.get.take() {
                debug!(
                    self,
                    Scope::Socket,
                    "writing a noop packet to polling for fast upgrade"
                );
                tx.send(Batch::control(PacketType::Noop));
            }
        }
    }

    /// The client sent the upgrade packet: the WebSocket becomes the transport.
    pub(crate) fn upgrade_complete(&self, id: u64) -> bool {
        let mut st = self.state.lock();
        let link = match &st.upgrade {
            Upgrade::Pending(l) | Upgrade::Probed(l) if l.id == id => l.clone(),
            _ => return false,
        };
        if st.ready == ReadyState::Closed {
            return false;
        }
        debug!(self, Scope::Socket, "got upgrade packet - upgrading");
        st.upgrade = Upgrade::None;
        if let Slot::Polling(p) = &mut st.slot {
            if let Some((_, tx)) = p.get.take() {
                tx.send(Batch::control(PacketType::Noop));
            }
        }
        st.slot = Slot::WebSocket(link.clone());
        st.upgraded = true;
        self.count(Counter::UpgradeDone, 1);
        self.emit(Event::Upgrade {
            handle: self.handle,
            transport: TransportKind::WebSocket.name(),
        });
        if st.ready == ReadyState::Closing {
            // close() was called while upgrading: close over the new transport.
            self.close_locked(&mut st, CloseReason::ForcedClose, None);
        }
        link.notify.notify_one();
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
        let probed = match &st.upgrade {
            Upgrade::Pending(l) if l.id == id => false,
            Upgrade::Probed(l) if l.id == id => true,
            _ => return,
        };
        debug!(
            self,
            Scope::Socket,
            "client did not complete upgrade - closing transport"
        );
        self.count(Counter::UpgradeFailed, 1);
        st.upgrade = Upgrade::None;
        if probed {
            self.emit(Event::UpgradeAborted {
                handle: self.handle,
            });
        }
    }

    /// The transport `id` failed or ended. Only the session's current
    /// transport closes the session.
    pub(crate) fn ws_ended(&self, id: u64, error: Option<String>) {
        let mut st = self.state.lock();
        let current = matches!(&st.slot, Slot::WebSocket(l) if l.id == id);
        if current {
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
        if st.ready == ReadyState::Closed || !self.heartbeat_current(generation) {
            return;
        }
        if self.protocol == Protocol::V3 || st.awaiting_pong {
            return self.close_locked(&mut st, CloseReason::PingTimeout, None);
        }
        // Armed before the ping goes out, so a quick pong finds it waiting.
        debug!(
            self,
            Scope::Socket,
            "writing ping packet - expecting pong within {}ms",
            self.ping.1.as_millis()
        );
        st.awaiting_pong = true;
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
        if st.ready == ReadyState::Closed {
            return;
        }
        debug!(
            self,
            Scope::Socket,
            "readyState updated from {} to closed ({reason}{}{})",
            st.ready.as_str(),
            if description.is_some() { ": " } else { "" },
            description.as_deref().unwrap_or("")
        );
        st.ready = ReadyState::Closed;
        self.closed_flag.store(true, Ordering::Release);
        self.closed_notify.notify_waiters();
        for task in st.tasks.drain(..) {
            task.abort();
        }
        match &mut st.slot {
            Slot::Polling(p) => {
                if let Some((_, tx)) = p.get.take() {
                    // The client closed: release its poll as engine.io does
                    // (noop); otherwise tell it the session is over.
                    let kind = if reason == CloseReason::TransportClose {
                        PacketType::Noop
                    } else {
                        PacketType::Close
                    };
                    tx.send(Batch::control(kind));
                }
                st.buffer.clear();
                st.frames.clear();
                st.buffer_bytes = 0;
                st.buffer_callbacks = 0;
            }
            // The WebSocket task writes what is left, then the close frame.
            Slot::WebSocket(link) => link.notify.notify_one(),
        }
        if let Upgrade::Pending(l) | Upgrade::Probed(l) =
            std::mem::replace(&mut st.upgrade, Upgrade::None)
        {
            l.notify.notify_one();
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
        match st.ready {
            ReadyState::Closed => return,
            ReadyState::Closing if !discard => return,
            _ => {}
        }
        debug!(
            self,
            Scope::Socket,
            "readyState updated from {} to closing",
            st.ready.as_str()
        );
        st.ready = ReadyState::Closing;
        if !st.acked {
            // Called from a `connection` handler: the handshake goes first,
            // as it already has in engine.io by then.
            st.acked = true;
            self.flush(&mut st);
        }
        self.close_transport(&mut st, discard);
    }

    fn close_transport(&self, st: &mut State, discard: bool) {
        debug!(
            self,
            Scope::Socket,
            "closing the transport (discard? {discard})"
        );
        match &mut st.slot {
            Slot::WebSocket(_) => self.close_locked(st, CloseReason::ForcedClose, None),
            Slot::Polling(p) => {
                if let Some((_, tx)) = p.get.take() {
                    tx.send(Batch::control(PacketType::Close));
                    self.close_locked(st, CloseReason::ForcedClose, None);
                } else if discard {
                    self.close_locked(st, CloseReason::ForcedClose, None);
                } else {
                    // The next poll takes the buffer, if any; the one after
                    // it (or this one, if nothing is buffered) a noop and
                    // the close packet, as with engine.io.
                    p.should_close = true;
                    self.close_later(st);
                }
            }
        }
    }

    /// Closes anyway if no poll comes to take the close packet in time.
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
