//! Calls into the application that a request must wait for: middlewares,
//! `allowRequest`, `generateId` and the `headers` events. Each is made only
//! while the application has set it, so a server without hooks never waits
//! on JS. A call is an [`Event::Hook`](super::Event) with an id; the
//! application answers with [`Engine::reply_hook`](super::Engine::reply_hook).

use crate::http::RequestInfo;
use crate::http::{Headers, HttpResponse};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Which hooks the application has set (bit mask).
#[derive(Debug, Default)]
pub struct HookSet(AtomicU32);

impl HookSet {
    /// Middlewares registered with `use()`.
    pub const MIDDLEWARES: u32 = 1;
    /// The `allowRequest` option.
    pub const ALLOW_REQUEST: u32 = 2;
    /// An overridden `generateId`.
    pub const GENERATE_ID: u32 = 4;
    /// `headers` / `initial_headers` listeners, or the `cookie` option.
    pub const HEADERS: u32 = 8;

    /// Each bit with the name of what sets it in the JS facade.
    pub const NAMES: [(&'static str, u32); 4] = [
        ("middlewares", Self::MIDDLEWARES),
        ("allowRequest", Self::ALLOW_REQUEST),
        ("generateId", Self::GENERATE_ID),
        ("headers", Self::HEADERS),
    ];

    /// Replaces the set.
    pub fn set(&self, mask: u32) {
        self.0.store(mask, Ordering::Relaxed);
    }

    /// Whether any hook is set.
    pub fn any(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }

    /// Whether `flag` is set.
    pub fn has(&self, flag: u32) -> bool {
        self.0.load(Ordering::Relaxed) & flag != 0
    }
}

/// What the engine asks the application.
#[derive(Debug)]
pub enum HookCall {
    /// Run the middlewares on this request (`upgrade`: a WebSocket upgrade).
    Middlewares {
        /// The request.
        request: Arc<RequestInfo>,
        /// Whether it is an upgrade request.
        upgrade: bool,
    },
    /// Run `allowRequest` on this handshake.
    AllowRequest {
        /// The request.
        request: Arc<RequestInfo>,
    },
    /// Run `generateId` on this handshake.
    GenerateId {
        /// The request.
        request: Arc<RequestInfo>,
    },
    /// Emit `initial_headers` (for the handshake) and `headers` with these
    /// response headers; the answer is the headers as the listeners left them.
    Headers {
        /// The request.
        request: Arc<RequestInfo>,
        /// The session's id, for the `cookie` option.
        sid: Arc<str>,
        /// Whether this answers the handshake.
        initial: bool,
        /// The headers so far.
        headers: Headers,
    },
}

/// How the middlewares ended.
#[derive(Debug, PartialEq)]
pub enum MiddlewareOutcome {
    /// All called `next()`; these headers were set on the response.
    Continue(Headers),
    /// One answered the request itself.
    Responded(HttpResponse),
    /// One called `next(err)`.
    Failed,
}

/// The application's answer to a [`HookCall`].
#[derive(Debug, PartialEq)]
pub enum HookReply {
    /// To [`HookCall::Middlewares`].
    Middlewares(MiddlewareOutcome),
    /// To [`HookCall::AllowRequest`]: `Err(message)` refuses (403, code 4).
    AllowRequest(Result<(), Option<String>>),
    /// To [`HookCall::GenerateId`]: the id, or `None` when `generateId`
    /// threw or its promise was rejected (400, code 3).
    GenerateId(Option<String>),
    /// To [`HookCall::Headers`].
    Headers(Headers),
}

/// Calls waiting for their answer.
#[derive(Debug, Default)]
pub(crate) struct PendingHooks {
    waiting: Mutex<HashMap<u64, oneshot::Sender<HookReply>>>,
}

impl PendingHooks {
    pub(crate) fn register(&self, id: u64) -> oneshot::Receiver<HookReply> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().insert(id, tx);
        rx
    }

    pub(crate) fn reply(&self, id: u64, reply: HookReply) -> bool {
        match self.waiting.lock().remove(&id) {
            Some(tx) => tx.send(reply).is_ok(),
            None => false,
        }
    }
}
