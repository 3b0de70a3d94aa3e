//! What the engine tells the application, queued in batches.
//!
//! Transports run on many threads; the application (JS) runs on one. Events
//! go into one queue per engine, and the waker runs only when the queue goes
//! from empty to non-empty, so a burst of messages costs one wake-up.

use crate::error::{CloseReason, RequestError};
use crate::http::RequestInfo;
use crate::protocol::{Packet, PacketData, Protocol};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// The engine-wide number of a session, used across the boundary instead of
/// the sid string.
pub type Handle = u64;

/// One thing that happened, for the application.
#[derive(Debug)]
pub enum Event {
    /// A session opened (engine.io's `connection`).
    Connection {
        /// The session.
        handle: Handle,
        /// Its public id.
        sid: Arc<str>,
        /// The protocol revision it speaks.
        protocol: Protocol,
        /// The transport it started on.
        transport: &'static str,
        /// The handshake request.
        request: Arc<RequestInfo>,
    },
    /// A `message` packet arrived.
    Message {
        /// The session.
        handle: Handle,
        /// Text or binary data.
        data: PacketData,
    },
    /// The session closed; the engine forgot it.
    Close {
        /// The session.
        handle: Handle,
        /// engine.io's reason.
        reason: CloseReason,
        /// Details, such as the transport error.
        description: Option<String>,
    },
    /// A WebSocket probe succeeded: the client is upgrading.
    Upgrading {
        /// The session.
        handle: Handle,
        /// The new transport's name.
        transport: &'static str,
    },
    /// A probed upgrade failed or timed out; the session goes on as it was.
    UpgradeAborted {
        /// The session.
        handle: Handle,
    },
    /// The client switched transports.
    Upgrade {
        /// The session.
        handle: Handle,
        /// The new transport's name.
        transport: &'static str,
    },
    /// Packets go to the transport (only while [`Listen::FLUSH`] is set).
    Flush {
        /// The session.
        handle: Handle,
        /// The packets.
        packets: Vec<Packet>,
    },
    /// Packets were handed to the transport; `callbacks` send callbacks are due.
    Drain {
        /// The session.
        handle: Handle,
        /// How many send callbacks the flushed packets carried.
        callbacks: u32,
    },
    /// A request was refused (engine.io's `connection_error`).
    ConnectionError {
        /// The refused request.
        request: Arc<RequestInfo>,
        /// The error.
        error: RequestError,
    },
    /// A packet arrived (only while [`Listen::PACKET`] is set).
    Packet {
        /// The session.
        handle: Handle,
        /// The packet.
        packet: Packet,
    },
    /// A packet was queued by the server (only while [`Listen::PACKET_CREATE`] is set).
    PacketCreate {
        /// The session.
        handle: Handle,
        /// The packet.
        packet: Packet,
    },
    /// A heartbeat completed (only while [`Listen::HEARTBEAT`] is set).
    Heartbeat {
        /// The session.
        handle: Handle,
    },
    /// The engine waits for the application (see [`HookCall`](super::HookCall)).
    Hook {
        /// The call's id, for [`Engine::reply_hook`](super::Engine::reply_hook).
        id: u64,
        /// What is asked.
        call: super::HookCall,
    },
    /// A request that went through hooks is answered; the application may
    /// forget what it kept for it.
    RequestDone {
        /// The request's id ([`RequestInfo::id`]).
        request: u64,
    },
    /// A response to a request the application handed over (the Node
    /// bridge), ready to be written.
    Response {
        /// The request's id ([`RequestInfo::id`]).
        request: u64,
        /// What to write.
        response: crate::http::HttpResponse,
    },
    /// Bytes for a connection the application carries (the byte bridge);
    /// empty with `end` when the engine is done with it.
    BridgeWrite {
        /// The connection's id.
        conn: u64,
        /// The bytes.
        data: bytes::Bytes,
        /// Whether the engine closed its side.
        end: bool,
    },
    /// A front end finished closing (its last connection ended).
    ListenerClosed {
        /// The front end's number, as its owner chose it.
        id: u64,
    },
    /// A debug line (only while its scope is on, see [`super::log`]).
    Log {
        /// engine.io's namespace for it.
        scope: super::log::Scope,
        /// The line.
        text: String,
    },
}

/// Which optional, per-packet events the application listens to. Each one
/// costs a crossing per packet, so they are produced only while wanted.
#[derive(Debug, Default)]
pub struct Listen(AtomicU32);

impl Listen {
    /// `packet` events.
    pub const PACKET: u32 = 1;
    /// `packetCreate` events.
    pub const PACKET_CREATE: u32 = 2;
    /// `heartbeat` events.
    pub const HEARTBEAT: u32 = 4;
    /// `drain` events after every flush (not only those with callbacks).
    pub const DRAIN: u32 = 8;
    /// `flush` events, with the packets.
    pub const FLUSH: u32 = 16;

    /// Each bit with the name of the Socket event it stands for.
    pub const NAMES: [(&'static str, u32); 5] = [
        ("packet", Self::PACKET),
        ("packetCreate", Self::PACKET_CREATE),
        ("heartbeat", Self::HEARTBEAT),
        ("drain", Self::DRAIN),
        ("flush", Self::FLUSH),
    ];

    /// Replaces the set of listened events.
    pub fn set(&self, mask: u32) {
        self.0.store(mask, Ordering::Relaxed);
    }

    /// Whether `flag` is listened to.
    pub fn has(&self, flag: u32) -> bool {
        self.0.load(Ordering::Relaxed) & flag != 0
    }
}

/// The engine's event queue: pushed from any thread, drained in batches.
pub struct EventQueue {
    queue: Mutex<Queued>,
    wake: Box<dyn Fn() + Send + Sync>,
    /// The optional events the application wants.
    pub listen: Listen,
}

#[derive(Default)]
struct Queued {
    events: Vec<Event>,
    /// The consumer will drain without being woken: it is handling a batch
    /// (it drains until it gets an empty one) or called [`EventQueue::hold`].
    held: bool,
}

impl std::fmt::Debug for EventQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventQueue")
            .field("len", &self.queue.lock().events.len())
            .finish()
    }
}

impl EventQueue {
    /// A queue that calls `wake` whenever a batch starts.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(EventQueue {
            queue: Mutex::new(Queued::default()),
            wake: Box::new(wake),
            listen: Listen::default(),
        })
    }

    /// Queues an event, waking the consumer if it is the first of a batch
    /// and the consumer is not about to drain anyway.
    pub fn push(&self, ev: Event) {
        let wake = {
            let mut q = self.queue.lock();
            q.events.push(ev);
            q.events.len() == 1 && !q.held
        };
        if wake {
            (self.wake)();
        }
    }

    /// Queues a debug line (see [`super::log::debug`]).
    pub fn log(&self, scope: super::log::Scope, text: String) {
        self.push(Event::Log { scope, text });
    }

    /// Takes every queued event, oldest first. The consumer must call again
    /// after handling a non-empty batch, until it gets an empty one: events
    /// queued while it handles a batch (the sends of its message handlers,
    /// say) then join the next batch without a wake-up.
    pub fn drain(&self) -> Vec<Event> {
        let mut q = self.queue.lock();
        let events = std::mem::take(&mut q.events);
        q.held = !events.is_empty();
        events
    }

    /// The consumer is about to make a call that may queue events, and will
    /// drain (until empty) right after it if [`EventQueue::unhold`] says
    /// so: those events do not wake it. Returns whether the queue was held
    /// already, for `unhold`.
    pub fn hold(&self) -> bool {
        std::mem::replace(&mut self.queue.lock().held, true)
    }

    /// Ends a [`EventQueue::hold`] (`was_held`: what it returned): whether
    /// events wait, which the consumer must then drain. When none does, the
    /// queue wakes the consumer again for the next event, unless it was held
    /// before.
    pub fn unhold(&self, was_held: bool) -> bool {
        let mut q = self.queue.lock();
        if q.events.is_empty() {
            q.held = was_held;
            false
        } else {
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn wakes_once_per_batch() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = wakes.clone();
        let q = EventQueue::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        for handle in 0..3 {
            q.push(Event::Heartbeat { handle });
        }
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert_eq!(q.drain().len(), 3);
        // Handling that batch: the consumer drains again without a wake.
        q.push(Event::Heartbeat { handle: 9 });
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert_eq!(q.drain().len(), 1);
        assert!(q.drain().is_empty());
        q.push(Event::Heartbeat { handle: 10 });
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
        assert_eq!(q.drain().len(), 1);
        assert!(q.drain().is_empty());
        // A held queue does not wake until an empty drain.
        assert!(!q.hold());
        q.push(Event::Heartbeat { handle: 11 });
        assert!(q.unhold(false));
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
        assert_eq!(q.drain().len(), 1);
        assert!(q.drain().is_empty());
        q.push(Event::Heartbeat { handle: 12 });
        assert_eq!(wakes.load(Ordering::SeqCst), 3);
        assert_eq!(q.drain().len(), 1);
        assert!(q.drain().is_empty());
        // A hold that queued nothing ends at once.
        assert!(!q.hold());
        assert!(!q.unhold(false));
        q.push(Event::Heartbeat { handle: 13 });
        assert_eq!(wakes.load(Ordering::SeqCst), 4);
    }
}
