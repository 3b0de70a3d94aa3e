//! The calls JS makes for every message and every polling request, as plain
//! functions taking the engine's number. A method of a napi-rs class pays
//! for unwrapping and checking its receiver and for tracking borrows (about
//! 200 ns a call here, against 30 ns for a plain function), and a returned
//! array pays about 100 ns per element: these calls take the engine from a
//! per-thread table and write their numeric results into a `Float64Array`
//! the engine shares with JS (`out`), returning at most one JS value.
//!
//! Engines are registered on the JS thread that created them, so each
//! worker thread has its own table.

use crate::engine::{packet_data, Shared};
use crate::events;
use crate::named::named;
use eio_core::engine::MessageRef;
use eio_core::server::bridge::PollRequest;
use eio_core::transport::polling::{self, PostTicket, Served};
use eio_core::transport::{Header, HttpResponse};
use napi::bindgen_prelude::{BufferSlice, Either, Float64Array, ToNapiValue, Unknown};
use napi::{Env, Result, Status};
use napi_derive::napi;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

/// An engine as the fast calls see it.
pub(crate) struct Fast {
    pub(crate) shared: Arc<Shared>,
    /// Keeps `out` alive (a reference to the JS array).
    _array: Float64Array,
    out: *mut f64,
    len: usize,
}

impl Fast {
    fn set(&self, i: usize, v: f64) {
        assert!(i < self.len);
        // SAFETY: `out` points at the `len` doubles of `_array`'s backing
        // store, kept alive by its reference; only this JS thread writes it.
        unsafe { *self.out.add(i) = v };
    }
}

thread_local! {
    static ENGINES: RefCell<Vec<Option<Rc<Fast>>>> = const { RefCell::new(Vec::new()) };
}

/// How many doubles `out` must hold.
pub(crate) const OUT_LEN: usize = 8;

/// Registers an engine for the fast calls; returns its number.
pub(crate) fn register(shared: Arc<Shared>, mut array: Float64Array) -> Result<u32> {
    if array.len() < OUT_LEN {
        return Err(napi::Error::new(
            Status::InvalidArg,
            format!("the shared array must hold {OUT_LEN} numbers"),
        ));
    }
    let len = array.len();
    // SAFETY: the pointer is used only on this thread, while `array` keeps
    // the JS array (and so its backing store) alive.
    let out = unsafe { array.as_mut() }.as_mut_ptr();
    let fast = Rc::new(Fast {
        shared,
        _array: array,
        out,
        len,
    });
    ENGINES.with(|e| {
        let mut e = e.borrow_mut();
        let id = match e.iter().position(Option::is_none) {
            Some(i) => {
                e[i] = Some(fast);
                i
            }
            None => {
                e.push(Some(fast));
                e.len() - 1
            }
        };
        Ok(id as u32)
    })
}

/// Forgets engine `id` (its JS object was collected).
pub(crate) fn unregister(id: u32) {
    ENGINES.with(|e| {
        if let Some(slot) = e.borrow_mut().get_mut(id as usize) {
            *slot = None;
        }
    });
}

fn engine(id: u32) -> Result<Rc<Fast>> {
    ENGINES
        .with(|e| e.borrow().get(id as usize).cloned().flatten())
        .ok_or_else(|| napi::Error::new(Status::InvalidArg, "no such engine"))
}

/// Every event queued since the last call, as one flat array (see
/// `events::to_js`). Call again after handling a non-empty batch, until one
/// is empty.
#[napi(catch_unwind)]
pub fn engine_take_events(env: &Env, engine_id: u32) -> Result<napi::bindgen_prelude::Array<'_>> {
    // A wake-up may still be on its way when the engine is dropped (Deno
    // drops it before the last one runs): a gone engine has nothing to say.
    let Ok(fast) = engine(engine_id) else {
        return env.create_array(0);
    };
    events::to_js(env, fast.shared.engine.events().drain())
}

/// Queues a message for a session. Returns false if the session is gone or
/// closing (engine.io drops the message then too).
#[napi(catch_unwind)]
pub fn engine_send(
    engine_id: u32,
    handle: f64,
    data: Either<String, BufferSlice>,
    compress: bool,
    callback: bool,
) -> Result<bool> {
    let fast = engine(engine_id)?;
    let Some(session) = fast.shared.engine.session(handle as u64) else {
        return Ok(false);
    };
    // Straight to the socket when it can be: no copy of the data.
    let borrowed = match &data {
        Either::A(s) => MessageRef::Text(s),
        Either::B(b) => MessageRef::Binary(b),
    };
    if let Some(sent) = session.send_now(borrowed, callback) {
        return Ok(sent);
    }
    let data = packet_data(data);
    Ok(session.send(data, compress, callback))
}

named! {
    /// What `enginePoll` did with a request (`out[0]`).
    pub(crate) mod served {
        RESPOND = 0;
        HELD = 1;
        READ_BODY = 2;
        NEEDS_HOOKS = 3;
    }
}

/// Serves a polling request a Node server parsed, on the JS thread when no
/// hook needs JS (see `Bridge::serve_now`). The engine reads only the
/// method, the url and four headers (the first of each): JS keeps the
/// request object for everything else.
///
/// Results in `out`: `[kind, id, events, ...]`, where `events` (0/1) says
/// whether events wait, which the caller must then drain right away
/// (`takeEvents` until empty), and by kind:
/// - 0, the answer: `out[3]` status, `out[4]` headers (see
///   `header_code`); returns the body, or `[body, headers]` when the
///   headers have no code;
/// - 1, a held GET: `out[3]` session, `out[4]` poll; answered by a
///   `RESPONSE` event (`bridgePollGone` if its client leaves first);
/// - 2, a POST: `out[3]` session, `out[4]` flags; its whole body goes to
///   `enginePostBody` (or `bridgePostFailed`);
/// - 3: served as with `bridgeRequest` (hooks need JS).
#[napi(catch_unwind)]
#[allow(clippy::too_many_arguments)]
pub fn engine_poll<'e>(
    env: &'e Env,
    engine_id: u32,
    method: String,
    url: String,
    origin: Option<String>,
    content_type: Option<String>,
    user_agent: Option<String>,
    accept_encoding: Option<String>,
) -> Result<Option<Unknown<'e>>> {
    let fast = engine(engine_id)?;
    let shared = &fast.shared;
    let req = PollRequest {
        method,
        url,
        origin,
        content_type,
        user_agent,
        accept_encoding,
    };
    let events = shared.engine.events();
    let was_held = events.hold();
    let (id, served) = shared.bridge.serve_now(&shared.engine, req);
    fast.set(1, id as f64);
    fast.set(2, events.unhold(was_held) as u8 as f64);
    match served {
        Served::Respond(res) => {
            fast.set(0, served::RESPOND.into());
            return respond(env, &fast, 3, res).map(Some);
        }
        Served::Held { session, poll } => {
            fast.set(0, served::HELD.into());
            fast.set(3, session as f64);
            fast.set(4, poll as f64);
        }
        Served::ReadBody(ticket) => {
            fast.set(0, served::READ_BODY.into());
            fast.set(3, ticket.session as f64);
            fast.set(4, ticket_flags(&ticket) as f64);
        }
        Served::NeedsHooks => fast.set(0, served::NEEDS_HOOKS.into()),
    }
    Ok(None)
}

/// The whole body of a POST `enginePoll` let read. Results in `out`:
/// `[status, headers, events]` (status 0: destroy the request; `events` as
/// for `enginePoll`); returns the body as `enginePoll` does.
#[napi(catch_unwind)]
pub fn engine_post_body<'e>(
    env: &'e Env,
    engine_id: u32,
    handle: f64,
    flags: u32,
    body: BufferSlice,
) -> Result<Unknown<'e>> {
    let fast = engine(engine_id)?;
    let events = fast.shared.engine.events();
    let was_held = events.hold();
    let body = bytes::Bytes::copy_from_slice(&body);
    let res = polling::post_body(&fast.shared.engine, ticket(handle, flags), body);
    fast.set(2, events.unhold(was_held) as u8 as f64);
    respond(env, &fast, 0, res)
}

/// Writes status and header code at `out[at]`, `out[at + 1]`; returns the
/// body, or `[body, headers]` when the headers have no code.
fn respond<'e>(env: &'e Env, fast: &Fast, at: usize, res: HttpResponse) -> Result<Unknown<'e>> {
    fast.set(at, res.status as f64);
    let body = events::buffer(env, res.body)?;
    match header_code(&res.headers) {
        Some(code) => {
            fast.set(at + 1, code as f64);
            body.into_unknown(env)
        }
        None => {
            fast.set(at + 1, -1.0);
            let mut pair = env.create_array(2)?;
            pair.set(0, &body)?;
            pair.set(1, events::flat(env, &res.headers)?)?;
            pair.into_unknown(env)
        }
    }
}

/// The headers the engine's own answers carry, by code (JS reads them
/// through `constants()`).
pub(crate) const HEADERS: [(&str, &str); 8] = [
    ("Content-Type", "text/plain; charset=UTF-8"),
    ("Content-Type", "application/octet-stream"),
    ("Content-Type", "text/html"),
    ("Content-Type", "application/json"),
    ("Content-Encoding", "gzip"),
    ("Content-Encoding", "deflate"),
    ("X-XSS-Protection", "0"),
    ("cache-control", "no-store"),
];

/// Headers made only of [`HEADERS`] (at most seven) as one number: their
/// indexes plus one, four bits each, the first in the lowest bits, so that
/// JS builds them from its own strings instead of getting new ones.
pub(crate) fn header_code(headers: &[Header]) -> Option<u32> {
    if headers.len() > 7 {
        return None;
    }
    let mut code = 0u32;
    for (i, (k, v)) in headers.iter().enumerate() {
        let index = HEADERS.iter().position(|(hk, hv)| hk == k && hv == v)?;
        code |= (index as u32 + 1) << (4 * i);
    }
    Some(code)
}

/// A POST ticket as one number for JS: bit 0 binary, bit 1 old IE.
pub(crate) fn ticket_flags(t: &PostTicket) -> u32 {
    t.binary as u32 | (t.old_ie as u32) << 1
}

pub(crate) fn ticket(handle: f64, flags: u32) -> PostTicket {
    PostTicket {
        session: handle as u64,
        binary: flags & 1 != 0,
        old_ie: flags & 2 != 0,
    }
}
