//! The WebTransport transport: a session's packets on the first
//! bidirectional stream of an HTTP/3 WebTransport session, framed as
//! engine.io-parser's stream codec frames them ([`crate::protocol::stream`]).
//!
//! The stream comes from a front end as a [`WtIo`]: the native endpoint's
//! (`server/webtransport.rs`), or one the application hands over with
//! `onWebTransportSession` and Node carries as bytes. One task per stream
//! reads packets, writes what the session buffers, and runs the upgrade
//! when the stream joins a session that started on another transport.

use super::upgrade::{self, upgrade_timer, Step, UpgradeTimer, UpgradeTimers};
use crate::engine::log::{debug, Scope};
use crate::engine::stats::Counter;
use crate::engine::{
    generate_sid, CloseReason, Driver, Engine, MessageRef, OpenRequest, Outbox, ReadyState, Role,
    ServerClose, Session, TransportKind,
};
use crate::protocol::stream::{encode_stream_packet, StreamDecoder};
use crate::protocol::{Packet, PacketData, PacketType, Protocol};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::collections::VecDeque;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The HTTP/3 side of a WebTransport session: its first bidirectional
/// stream, and the session around it.
pub trait WtIo: Send {
    /// The next bytes of the stream; `None` at its end (the client
    /// finished it or closed the session). A reset stream is an error. No
    /// buffer is lent: an idle session holds none while it waits.
    fn read(&mut self) -> BoxFuture<'_, io::Result<Option<Bytes>>>;

    /// Writes all of `data` to the stream.
    fn write_all<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>>;

    /// Ends the session: finishes the stream, lets the client read what was
    /// written (for a bounded time), then closes the WebTransport session.
    fn close(&mut self) -> BoxFuture<'_, ()>;
}

/// How a stream's session was admitted, which decides where a new
/// session's id comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// Through the engine's checks on the CONNECT request (middlewares,
    /// `allowRequest`, `generateId`): a new session takes `new_sid`, the id
    /// made then. `None` when the request named a session (only its
    /// upgrade may follow).
    Checked {
        /// The id for a new session.
        new_sid: Option<String>,
    },
    /// Handed over by the application with no request to check (engine.io's
    /// `onWebTransportSession`): ids come from the engine, as in engine.io.
    Handed,
}

/// The most one read takes from a stream.
pub(crate) const READ_SIZE: usize = 64 * 1024;

/// How long closing waits for the client to read what was written.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Serves a WebTransport stream until it ends. Its first packet must come
/// before `deadline` and be an `open`: empty for a new session, or
/// `{"sid":"…"}` to upgrade that session (which must be `sid`, when the
/// CONNECT request named one). Anything else closes the WebTransport
/// session, as engine.io does.
pub async fn serve(
    engine: Engine,
    request: OpenRequest,
    admitted: Admitted,
    sid: Option<String>,
    io: Box<dyn WtIo>,
    deadline: Instant,
) {
    let link = Arc::new(WtLink {
        id: engine.next_id(),
        notify: Notify::new(),
    });
    let mut conn = Conn {
        engine: &engine,
        session: None,
        link: &link,
        candidate: false,
        probed: false,
        io,
        decoder: StreamDecoder::new(engine.config().max_http_buffer_size),
        pending: VecDeque::new(),
        out: Vec::new(),
    };
    let first = match tokio::time::timeout_at(deadline, conn.next_packet()).await {
        Ok(Ok(Some(p))) => p,
        Ok(Ok(None)) | Ok(Err(_)) => return conn.io.close().await,
        Err(_) => {
            debug!(
                &engine,
                Scope::Engine,
                "the client failed to send its WebTransport handshake in time"
            );
            return conn.io.close().await;
        }
    };
    let opened = match open_kind(&first, sid.as_deref()) {
        Some(o) => o,
        None => {
            debug!(&engine, Scope::Engine, "invalid WebTransport handshake");
            return conn.io.close().await;
        }
    };
    match opened {
        Opened::New => {
            let sid = match admitted {
                Admitted::Checked { new_sid: Some(sid) } => sid,
                Admitted::Checked { new_sid: None } => {
                    debug!(&engine, Scope::Engine, "invalid WebTransport handshake");
                    return conn.io.close().await;
                }
                Admitted::Handed => generate_sid(),
            };
            let driver = WtDriver::boxed(&link);
            // Done after `connection`, so the application hands the same
            // request object from its hooks to `socket.request`.
            let req = request.defer();
            let s = engine.open_session(req.clone(), Protocol::V4, sid, driver);
            engine.request_done(&req);
            conn.session = Some(s);
        }
        Opened::Upgrade(sid) => {
            let session = engine
                .session_by_sid(&sid)
                .filter(|s| s.protocol == Protocol::V4);
            let Some(session) = session else {
                debug!(&engine, Scope::Engine, "invalid WebTransport handshake");
                return conn.io.close().await;
            };
            if !session.upgrade_begin(WtDriver::boxed(&link)) {
                return conn.io.close().await;
            }
            conn.session = Some(session);
            conn.candidate = true;
            drop(request);
        }
    }
    let end = AssertUnwindSafe(conn.run())
        .catch_unwind()
        .await
        .unwrap_or(End::Panic);
    conn.end(end).await;
}

/// What a stream's first packet asks for.
enum Opened {
    New,
    Upgrade(String),
}

/// The first packet as engine.io reads it: `open`, with no data for a new
/// session or `{"sid":"…"}` for an upgrade (of `expected`, when the
/// CONNECT request named a session). `None`: not a handshake.
fn open_kind(first: &Packet, expected: Option<&str>) -> Option<Opened> {
    if first.kind != PacketType::Open {
        return None;
    }
    let sid = match &first.data {
        PacketData::Empty if expected.is_none() => return Some(Opened::New),
        PacketData::Text(t) => {
            let v: serde_json::Value = serde_json::from_str(t).ok()?;
            v.get("sid")?.as_str()?.to_string()
        }
        _ => return None,
    };
    match expected {
        Some(e) if e != sid => None,
        _ => Some(Opened::Upgrade(sid)),
    }
}

/// How a stream ended.
enum End {
    /// The session (or the aborted upgrade) let go of the stream.
    Closed,
    /// The client ended the stream or the session.
    Eof,
    /// The stream broke: reset, or a bad frame.
    Error(String),
    /// The client broke the framing.
    Parse,
    /// A bug: this stream's code panicked.
    Panic,
}

struct Conn<'a> {
    engine: &'a Engine,
    session: Option<Arc<Session>>,
    link: &'a Arc<WtLink>,
    candidate: bool,
    probed: bool,
    io: Box<dyn WtIo>,
    decoder: StreamDecoder,
    /// Packets read but not yet handled.
    pending: VecDeque<Packet>,
    /// Frames being written.
    out: Vec<u8>,
}

impl Conn<'_> {
    fn session(&self) -> &Arc<Session> {
        self.session.as_ref().expect("set before run")
    }

    /// Reads until a packet is complete; `None` at the end of the stream.
    async fn next_packet(&mut self) -> io::Result<Option<Packet>> {
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Ok(Some(p));
            }
            match self.read().await? {
                Read::Eof => return Ok(None),
                Read::Bytes => {}
                Read::Bad(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
    }

    /// Reads once and decodes what came into `pending`.
    async fn read(&mut self) -> io::Result<Read> {
        let Some(chunk) = self.io.read().await? else {
            return Ok(Read::Eof);
        };
        self.engine.count(
            Counter::BytesIn(TransportKind::WebTransport),
            chunk.len() as u64,
        );
        let mut packets = Vec::new();
        let r = self.decoder.feed(&chunk, &mut packets);
        self.pending.extend(packets);
        Ok(match r {
            Ok(()) => Read::Bytes,
            Err(e) => Read::Bad(e.to_string()),
        })
    }

    async fn run(&mut self) -> End {
        let mut timers = self
            .candidate
            .then(|| UpgradeTimers::new(self.engine.config().upgrade_timeout));
        // A new session has its open packet buffered already.
        self.link.notify.notify_one();
        let mut failed = None;
        let link = self.link;
        loop {
            // Packets of the last read first (and those that came with the
            // handshake).
            while let Some(p) = self.pending.pop_front() {
                if let Some(end) = self.handle(p).await {
                    return end;
                }
            }
            if let Some(e) = failed.take() {
                return e;
            }
            if !self.candidate {
                timers = None;
            }
            let probed = self.probed;
            tokio::select! {
                _ = link.notify.notified() => {
                    if let Some(end) = self.write_batch().await {
                        return end;
                    }
                }
                read = self.read() => match read {
                    Err(e) => return End::Error(e.to_string()),
                    Ok(Read::Eof) => failed = Some(if self.decoder.mid_packet() {
                        End::Error("stream ended inside a packet".into())
                    } else {
                        End::Eof
                    }),
                    Ok(Read::Bytes) => {}
                    // engine.io-parser's error packet: what came before it
                    // is delivered, then the session closes.
                    Ok(Read::Bad(_)) => failed = Some(End::Parse),
                },
                timer = upgrade_timer(&mut timers, probed) => match timer {
                    UpgradeTimer::Expired => {
                        self.session().upgrade_abort(self.link.id);
                        return End::Closed;
                    }
                    UpgradeTimer::Tick => self.session().upgrade_tick(self.link.id),
                },
            }
        }
    }

    /// Acts on one packet from the client.
    async fn handle(&mut self, packet: Packet) -> Option<End> {
        if self.candidate {
            return self.upgrade_step(packet).await;
        }
        self.session()
            .on_packet(packet, TransportKind::WebTransport);
        None
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
                encode_stream_packet(&mut self.out, &upgrade::probe_pong());
                if let Err(e) = self.flush().await {
                    self.session().upgrade_abort(id);
                    return Some(End::Error(e.to_string()));
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

    /// Writes what the session has buffered for this stream.
    async fn write_batch(&mut self) -> Option<End> {
        let (packets, callbacks, close, more) = match wt_batch(self.session(), self.link.id) {
            WtBatch::Idle => return None,
            WtBatch::Close => return Some(End::Closed),
            WtBatch::Write {
                packets,
                callbacks,
                close,
                more,
            } => (packets, callbacks, close, more),
        };
        for p in &packets {
            encode_stream_packet(&mut self.out, p);
        }
        drop(packets);
        if let Err(e) = self.flush().await {
            return Some(End::Error(e.to_string()));
        }
        wt_release(self.session(), self.link.id, callbacks);
        if close {
            return Some(End::Closed);
        }
        if more {
            self.link.notify.notify_one();
        }
        None
    }

    /// Writes the output, then lets it go: an idle stream holds no buffers.
    async fn flush(&mut self) -> io::Result<()> {
        let out = std::mem::take(&mut self.out);
        let r = self.io.write_all(&out).await;
        if r.is_ok() {
            self.engine.count(
                Counter::BytesOut(TransportKind::WebTransport),
                out.len() as u64,
            );
        }
        r
    }

    /// Reports how the stream ended to its session and closes the
    /// WebTransport session.
    async fn end(&mut self, end: End) {
        let session = self.session().clone();
        let id = self.link.id;
        match end {
            End::Closed => {}
            End::Eof => session.transport_ended(id, None),
            End::Error(e) => session.transport_ended(id, Some(e)),
            End::Parse if self.candidate => session.upgrade_abort(id),
            End::Parse => session.on_parse_error(),
            End::Panic => session.transport_ended(id, Some("internal error".into())),
        }
        // Whatever the session still had for this stream (a close
        // packet's predecessors) went out in the last batch.
        self.io.close().await;
    }
}

/// What one read brought.
enum Read {
    Bytes,
    Eof,
    Bad(String),
}

// ---- the driver -----------------------------------------------------------

/// The link between a session and the task that owns a WebTransport
/// stream: the task sleeps on `notify` and asks the session what to do when
/// woken.
#[derive(Debug)]
struct WtLink {
    id: u64,
    notify: Notify,
}

/// WebTransport as a session's transport (or upgrade candidate): the
/// stream's task writes everything; `busy` while it has a write in flight.
#[derive(Debug)]
struct WtDriver {
    link: Arc<WtLink>,
    busy: bool,
}

impl WtDriver {
    fn boxed(link: &Arc<WtLink>) -> Box<dyn Driver> {
        Box::new(WtDriver {
            link: link.clone(),
            busy: false,
        })
    }
}

impl Driver for WtDriver {
    fn kind(&self) -> TransportKind {
        TransportKind::WebTransport
    }

    fn id(&self) -> u64 {
        self.link.id
    }

    fn writable(&self) -> bool {
        !self.busy
    }

    fn flush(&mut self, _: &mut Outbox<'_>) {
        self.link.notify.notify_one();
    }

    /// The stream belongs to its task: the session queues the message.
    fn send_now(&mut self, _: MessageRef<'_>, _: bool, _: &mut Outbox<'_>) -> Option<()> {
        None
    }

    fn close_requested(&mut self, _: bool, _: &mut Outbox<'_>) -> ServerClose {
        ServerClose::Now
    }

    /// The task writes what is left, then closes the session.
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

/// What a stream's task should do when woken.
enum WtBatch {
    /// Write these packets; then close the session (`close`), or look for
    /// more (`more`).
    Write {
        packets: Vec<Packet>,
        callbacks: Option<u32>,
        close: bool,
        more: bool,
    },
    Idle,
    Close,
}

/// What the task of stream `id` should do now.
fn wt_batch(session: &Session, id: u64) -> WtBatch {
    session.drive(id, |role: Role<'_, WtDriver>, out| match role {
        Role::Current(d) => {
            let close = out.ready() == ReadyState::Closed;
            if out.is_empty() || (!out.acked() && !close) {
                d.busy = false;
                return if close { WtBatch::Close } else { WtBatch::Idle };
            }
            // The handshake goes alone, then the rest.
            let taken = out.take(close);
            d.busy = true;
            WtBatch::Write {
                packets: taken.packets,
                callbacks: taken.callbacks,
                close,
                more: !out.is_empty(),
            }
        }
        Role::Candidate if out.ready() != ReadyState::Closed => WtBatch::Idle,
        _ => WtBatch::Close,
    })
}

/// The task of stream `id` wrote a batch that carried `callbacks` send
/// callbacks.
fn wt_release(session: &Session, id: u64, callbacks: Option<u32>) {
    session.drive(id, |role: Role<'_, WtDriver>, out| {
        out.drained(callbacks);
        if let Role::Current(d) = role {
            d.busy = false;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(data: Option<&str>) -> Packet {
        match data {
            Some(d) => Packet::text(PacketType::Open, d),
            None => Packet::empty(PacketType::Open),
        }
    }

    #[test]
    fn the_first_packet_decides() {
        assert!(matches!(open_kind(&open(None), None), Some(Opened::New)));
        assert!(matches!(
            open_kind(&open(Some(r#"{"sid":"abc"}"#)), None),
            Some(Opened::Upgrade(s)) if s == "abc"
        ));
        assert!(matches!(
            open_kind(&open(Some(r#"{"sid":"abc"}"#)), Some("abc")),
            Some(Opened::Upgrade(_))
        ));
        // Not what the CONNECT request named, or no session at all.
        assert!(open_kind(&open(Some(r#"{"sid":"abc"}"#)), Some("xyz")).is_none());
        assert!(open_kind(&open(None), Some("abc")).is_none());
        // Not an open packet, or not its JSON.
        assert!(open_kind(&Packet::text(PacketType::Message, "hi"), None).is_none());
        assert!(open_kind(&open(Some("{")), None).is_none());
        assert!(open_kind(&open(Some(r#"{"sid":1}"#)), None).is_none());
        assert!(open_kind(&Packet::binary(bytes::Bytes::new()), None).is_none());
    }
}
