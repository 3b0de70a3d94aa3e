//! The calls JS makes for every message and every polling request, as plain
//! functions taking the engine's number. A method of a napi-rs class pays
//! for unwrapping and checking its receiver and for tracking borrows (about
//! 200 ns a call here, against 30 ns for a plain function), and a returned
//! array pays about 100 ns per element: these calls take the engine from a
//! per-thread table and write their numeric results into a `Float64Array`
//! the engine shares with JS (`out`), returning at most one JS value.

use crate::convert::{self, header_code, ticket, ticket_flags};
use crate::events;
use crate::named::named;
use crate::raw;
use crate::registry::{engine, Fast};
use eio_core::engine::MessageRef;
use eio_core::server::bridge::PollRequest;
use eio_core::transport::polling::{self, Served};
use eio_core::transport::HttpResponse;
use napi::bindgen_prelude::{BufferSlice, ToNapiValue, Unknown};
use napi::{sys, Env, Result};
use napi_derive::napi;

/// Every event queued since the last call, as one array (see
/// `events::to_js`). Call again after handling a non-empty batch, until one
/// is empty. The sends the previous batch left for later
/// (`engineSend`'s `later`) go to the runtime first, in one wake.
#[napi(catch_unwind)]
pub fn engine_take_events(env: &Env, engine_id: u32) -> Result<napi::bindgen_prelude::Array<'_>> {
    // A wake-up may still be on its way when the engine is dropped (Deno
    // drops it before the last one runs): a gone engine has nothing to say.
    let Ok(fast) = engine(engine_id) else {
        return env.create_array(0);
    };
    fast.shared.engine.release_flushes();
    events::to_js(env, fast.shared.engine.events().drain())
}

/// Hands the sends left for later (`engineSend`'s `later`,
/// `sendPreEncoded`) to the runtime, in one wake: JS calls it when the tick
/// that made them ends.
#[napi(catch_unwind)]
pub fn engine_release_sends(engine_id: u32) {
    // A gone engine has no sessions left to flush.
    if let Ok(fast) = engine(engine_id) {
        fast.shared.engine.release_flushes();
    }
}

/// `engineSend(engineId, handle, data, compress, callback, later)`: queues
/// a message (`data`, a string or a Buffer) for a session. Returns false if
/// the session is gone or closing (engine.io drops the message then too).
/// `later`: the JS thread is busy (running events, or sending to many
/// sessions in one tick): a write it would make is left to a runtime
/// worker, which `engineReleaseSends` (or the next `engineTakeEvents`)
/// starts.
///
/// A plain N-API callback ([`raw`]): this is the one call JS makes per
/// message sent, and napi-rs's wrapper cost about as much as its work.
///
/// # Safety
/// Called by N-API only, with the env and info of the call.
pub(crate) unsafe extern "C" fn engine_send(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: N-API's own env and info for this call.
    unsafe {
        raw::callback(env, "engineSend", || {
            let args = raw::Args::<6>::new(env, info)?;
            raw::boolean(env, send(&args)?)
        })
    }
}

fn send(args: &raw::Args<6>) -> Result<bool> {
    let fast = engine(args.u32(0)?)?;
    let Some(session) = fast.shared.engine.session(args.f64(1)? as u64) else {
        return Ok(false);
    };
    let (compress, callback, later) = (args.bool(3)?, args.bool(4)?, args.bool(5)?);
    let send = |data: MessageRef<'_>| {
        if later {
            return session.send_later(convert::owned(data), compress, callback, None);
        }
        // Straight to the socket when it can be: no copy of the data.
        if let Some(sent) = session.send_now(data, callback) {
            return sent;
        }
        session.send(convert::owned(data), compress, callback)
    };
    if args.is_string(2)? {
        args.with_str(2, |s| send(MessageRef::Text(s)))
    } else {
        Ok(send(MessageRef::Binary(args.bytes(2)?)))
    }
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

/// engine.io's answer to a refused upgrade, as the bytes to write on the
/// socket (the JS bridge refuses upgrades its middlewares failed; the
/// engine's own refusals are written the same way).
#[napi]
pub fn upgrade_refusal(message: String) -> napi::bindgen_prelude::Buffer {
    HttpResponse::upgrade_refused(&message).to_http1().into()
}

/// Writes status and header code at `out[at]`, `out[at + 1]`; returns the
/// body, or `[body, headers]` when the headers have no code.
fn respond<'e>(env: &'e Env, fast: &Fast, at: usize, res: HttpResponse) -> Result<Unknown<'e>> {
    fast.set(at, res.status as f64);
    let body = convert::buffer(env, res.body)?;
    match header_code(&res.headers) {
        Some(code) => {
            fast.set(at + 1, code as f64);
            body.into_unknown(env)
        }
        None => {
            fast.set(at + 1, -1.0);
            let mut pair = env.create_array(2)?;
            pair.set(0, &body)?;
            pair.set(1, convert::flat(env, &res.headers)?)?;
            pair.into_unknown(env)
        }
    }
}
