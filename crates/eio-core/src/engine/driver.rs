//! What a session asks of the transport that carries it. The session keeps
//! engine.io's rules (the write buffer, the upgrade, heartbeats, the one
//! close path) and knows a transport only through [`Driver`]: polling and
//! WebSocket implement it in `transport/`, and a third transport is a third
//! implementation, not an edit to the session.

use super::session::Outbox;
use super::TransportKind;
use crate::error::CloseReason;
use std::any::Any;

/// A transport as its session sees it. Every method runs under the
/// session's lock, so a driver never races with the session's rules; it
/// must not call back into the session (it acts through [`Outbox`]).
pub(crate) trait Driver: Any + Send + std::fmt::Debug {
    /// Which transport this is.
    fn kind(&self) -> TransportKind;

    /// The connection this driver runs, to tell it from another of the
    /// same kind (an upgrade candidate, a later connection); 0 when the
    /// transport has no connection of its own (polling: each request is
    /// one).
    fn id(&self) -> u64;

    /// engine.io's `transport.writable`, asked when the session buffers
    /// nothing: a packet sent now would go out at once.
    fn writable(&self) -> bool;

    /// Bytes the driver holds for the client beyond the session's buffer
    /// (a frame a write began), for the engine's gauges.
    fn held(&self) -> usize {
        0
    }

    /// The session has packets for the client and the application has
    /// seen the connection: write them ([`Outbox::take`]) or arrange to.
    fn flush(&mut self, out: &mut Outbox<'_>);

    /// Writes one message from data the caller still owns, at once, with
    /// nothing queued before it (the session checked). `None` when this
    /// transport cannot right now: the session then queues a copy.
    fn send_now(
        &mut self,
        data: MessageRef<'_>,
        callback: bool,
        out: &mut Outbox<'_>,
    ) -> Option<()>;

    /// Whether [`Driver::send_now`] would write from the calling thread (a
    /// system call there): a busy caller then leaves the write to a
    /// runtime worker (see `Session::send_later`).
    fn writes_directly(&self) -> bool {
        false
    }

    /// The application closes the session (engine.io's
    /// `socket.close(discard)`), after what is buffered: whether the
    /// session closes now, or when the transport has carried the close.
    fn close_requested(&mut self, discard: bool, out: &mut Outbox<'_>) -> ServerClose;

    /// The session closed for `reason`: tell the client what this
    /// transport tells it, and let go of what the client waits on.
    fn closed(&mut self, reason: CloseReason, out: &mut Outbox<'_>);

    /// Another transport is taking over (its probe succeeded, engine.io's
    /// 100 ms check, or the upgrade completed): release what the client
    /// waits on here, so it can pause.
    fn pause(&mut self, out: &mut Outbox<'_>);

    /// The session's state changed in a way the driver's own task must
    /// see (it became the transport, or it is no longer wanted).
    fn wake(&self);

    /// For the driver's own code to get back its concrete type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// Message data the caller still owns.
#[derive(Debug, Clone, Copy)]
pub enum MessageRef<'a> {
    /// Text.
    Text(&'a str),
    /// Binary data.
    Binary(&'a [u8]),
}

/// What [`Driver::close_requested`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerClose {
    /// Close the session now (`forced close`).
    Now,
    /// The transport carries the close packet when the client next asks;
    /// the session closes then, or after `polling_close_timeout`.
    Later,
}

/// Which of a session's transports a driver is, for [`super::Session::drive`].
#[derive(Debug)]
pub(crate) enum Role<'a, D> {
    /// The transport in use.
    Current(&'a mut D),
    /// The upgrade candidate (its state is its own task's until it is
    /// the transport).
    Candidate,
    /// Neither: the session moved on (or never had it).
    Gone,
}
