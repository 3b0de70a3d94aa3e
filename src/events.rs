//! Turns a batch of core events into JS values, so a whole batch crosses
//! the boundary in one call. Each event is a kind number and fields that
//! depend on the kind (read by `dispatch` in lib/dispatch.js): its numbers
//! go into one `Float64Array` (written as memory, not as array elements one
//! call each), its other values into a flat array, which ends with that
//! `Float64Array`.

use crate::convert::{buffer, flat, header_code};
use crate::named::named;
use eio_core::engine::{Event, HookCall, RequestInfo};
use eio_core::protocol::{pool, Packet, PacketData};
use napi::bindgen_prelude::{Array, BufferSlice, Float64ArraySlice, Null};
use napi::{Env, Result};

named! {
    /// Event kinds: the first number of each event in a batch.
    pub mod kind {
        CONNECTION = 0;
        MESSAGE = 1;
        CLOSE = 2;
        UPGRADING = 3;
        UPGRADE = 4;
        DRAIN = 5;
        CONNECTION_ERROR = 6;
        PACKET = 7;
        PACKET_CREATE = 8;
        HEARTBEAT = 9;
        LISTENER_CLOSED = 10;
        UPGRADE_ABORTED = 11;
        HOOK = 12;
        REQUEST_DONE = 13;
        RESPONSE = 14;
        BRIDGE_WRITE = 15;
        FLUSH = 16;
        LOG = 17;
    }
}

named! {
    /// Hook kinds of a `HOOK` event.
    pub mod hook {
        MIDDLEWARES = 0;
        ALLOW_REQUEST = 1;
        GENERATE_ID = 2;
        HEADERS = 3;
    }
}

struct Writer<'e> {
    env: &'e Env,
    arr: Array<'e>,
    i: u32,
    nums: Vec<f64>,
}

impl<'e> Writer<'e> {
    /// A number of the event (its kind, a handle, a count).
    fn num(&mut self, n: impl Into<f64>) {
        self.nums.push(n.into());
    }

    fn push<T: napi::bindgen_prelude::ToNapiValue>(&mut self, v: T) -> Result<()> {
        self.arr.set(self.i, v)?;
        self.i += 1;
        Ok(())
    }

    /// Text as a string, binary as a Buffer, no data as undefined (as
    /// engine.io-parser reads a bare `4`).
    fn data(&mut self, data: PacketData) -> Result<()> {
        match data {
            PacketData::Empty => self.push(()),
            PacketData::Text(s) => self.push(s.as_str()),
            PacketData::Binary(b) => {
                let data = Vec::from(b);
                let buf = if data.capacity() >= pool::MIN {
                    // Large messages go back to the pool when JS is done.
                    let mut data = std::mem::ManuallyDrop::new(data);
                    let (ptr, len, cap) = (data.as_mut_ptr(), data.len(), data.capacity());
                    // SAFETY: the pointer, length and capacity are those of
                    // the Vec just taken apart, whose memory the finalizer
                    // alone owns from here on.
                    unsafe {
                        BufferSlice::from_external(
                            self.env,
                            ptr,
                            len,
                            (ptr, len, cap),
                            |_, (p, l, c)| pool::give(Vec::from_raw_parts(p, l, c)),
                        )
                    }?
                } else {
                    BufferSlice::from_data(self.env, data)?
                };
                self.push(&buf)
            }
        }
    }

    /// A packet as its type name and data.
    fn packet(&mut self, p: Packet) -> Result<()> {
        self.push(p.kind.name())?;
        self.data(p.data)
    }

    /// `[method, url, httpVersion, remoteAddress, remotePort, [name, value, ...], id]`
    /// A request as `[packed, id]`: one string of lines (method, url, HTTP
    /// version, remote address, remote port, then header names and values),
    /// so a request crosses as two JS values however many headers it has.
    /// Lines cannot clash with the data: header values never hold a line
    /// feed (both HTTP parsers refuse it).
    fn request(&mut self, r: &RequestInfo) -> Result<()> {
        let mut a = self.env.create_array(2)?;
        a.set(0, pack(r))?;
        a.set(1, r.id as f64)?;
        self.push(a)
    }
}

fn pack(r: &RequestInfo) -> String {
    let port = r.remote.map(|a| a.port()).unwrap_or(0);
    let mut out = String::with_capacity(
        64 + r.url.len()
            + r.headers()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>(),
    );
    for part in [&*r.method, r.url.as_str(), r.http_version] {
        out.push_str(part);
        out.push('\n');
    }
    out.push_str(&r.remote_address());
    out.push('\n');
    out.push_str(&port.to_string());
    out.push('\n');
    out.push_str(if r.encrypted { "1" } else { "" });
    for (k, v) in r.headers() {
        out.push('\n');
        out.push_str(k);
        out.push('\n');
        out.push_str(v);
    }
    out
}

/// Encodes `events`: their values, then the `Float64Array` of their
/// numbers; no events, an empty array.
pub fn to_js(env: &Env, events: Vec<Event>) -> Result<Array<'_>> {
    let arr = env.create_array(0)?;
    if events.is_empty() {
        return Ok(arr);
    }
    let mut w = Writer {
        env,
        arr,
        i: 0,
        // Two numbers per event for most: the kind and a handle.
        nums: Vec::with_capacity(events.len() * 2 + 1),
    };
    for ev in events {
        match ev {
            Event::Connection {
                handle,
                sid,
                protocol,
                transport,
                request,
            } => {
                w.num(kind::CONNECTION);
                w.num(handle as f64);
                w.push(&*sid)?;
                w.num(protocol.number() as u32);
                w.push(transport)?;
                w.request(&request)?;
            }
            Event::Message { handle, data } => {
                w.num(kind::MESSAGE);
                w.num(handle as f64);
                w.data(data)?;
            }
            Event::Close {
                handle,
                reason,
                description,
            } => {
                w.num(kind::CLOSE);
                w.num(handle as f64);
                w.push(reason.as_str())?;
                w.push(description)?;
            }
            Event::Upgrading { handle, transport } => {
                w.num(kind::UPGRADING);
                w.num(handle as f64);
                w.push(transport)?;
            }
            Event::UpgradeAborted { handle } => {
                w.num(kind::UPGRADE_ABORTED);
                w.num(handle as f64);
            }
            Event::Upgrade { handle, transport } => {
                w.num(kind::UPGRADE);
                w.num(handle as f64);
                w.push(transport)?;
            }
            Event::Flush { handle, packets } => {
                w.num(kind::FLUSH);
                w.num(handle as f64);
                let arr = env.create_array(packets.len() as u32 * 2)?;
                let mut list = Writer {
                    env,
                    arr,
                    i: 0,
                    nums: Vec::new(),
                };
                for p in packets {
                    list.packet(p)?;
                }
                w.push(list.arr)?;
            }
            Event::Drain { handle, callbacks } => {
                w.num(kind::DRAIN);
                w.num(handle as f64);
                w.num(callbacks);
            }
            Event::ConnectionError { request, error } => {
                w.num(kind::CONNECTION_ERROR);
                w.request(&request)?;
                w.num(error.code.code() as u32);
                w.push(error.message.as_str())?;
                w.push(error.context.to_string())?;
            }
            Event::Packet { handle, packet } => {
                w.num(kind::PACKET);
                w.num(handle as f64);
                w.packet(packet)?;
            }
            Event::PacketCreate { handle, packet } => {
                w.num(kind::PACKET_CREATE);
                w.num(handle as f64);
                w.packet(packet)?;
            }
            Event::Heartbeat { handle } => {
                w.num(kind::HEARTBEAT);
                w.num(handle as f64);
            }
            Event::Hook { id, call } => {
                w.num(kind::HOOK);
                w.num(id as f64);
                match call {
                    HookCall::Middlewares { request, upgrade } => {
                        w.num(hook::MIDDLEWARES);
                        w.request(&request)?;
                        w.push(upgrade)?;
                    }
                    HookCall::AllowRequest { request } => {
                        w.num(hook::ALLOW_REQUEST);
                        w.request(&request)?;
                        w.push(Null)?;
                    }
                    HookCall::GenerateId { request } => {
                        w.num(hook::GENERATE_ID);
                        w.request(&request)?;
                        w.push(Null)?;
                    }
                    HookCall::Headers {
                        request,
                        sid,
                        initial,
                        headers,
                    } => {
                        w.num(hook::HEADERS);
                        w.request(&request)?;
                        let mut extra = env.create_array(3)?;
                        extra.set(0, &*sid)?;
                        extra.set(1, initial)?;
                        extra.set(2, flat(env, &headers)?)?;
                        w.push(extra)?;
                    }
                }
            }
            Event::RequestDone { request } => {
                w.num(kind::REQUEST_DONE);
                w.num(request as f64);
            }
            Event::Response { request, response } => {
                w.num(kind::RESPONSE);
                w.num(request as f64);
                w.num(response.status as u32);
                // A number when the headers are the engine's own (see
                // `fast::header_code`), else `[name, value, ...]`.
                match header_code(&response.headers) {
                    Some(code) => w.push(code)?,
                    None => w.push(flat(env, &response.headers)?)?,
                }
                w.push(&buffer(env, response.body)?)?;
            }
            Event::BridgeWrite { conn, data, end } => {
                w.num(kind::BRIDGE_WRITE);
                w.num(conn as f64);
                if end {
                    w.push(Null)?;
                } else {
                    let b = BufferSlice::from_data(env, Vec::from(data))?;
                    w.push(&b)?;
                }
            }
            Event::ListenerClosed { id } => {
                w.num(kind::LISTENER_CLOSED);
                w.num(id as f64);
            }
            Event::Log { scope, text } => {
                w.num(kind::LOG);
                w.num(scope.bit());
                w.push(text)?;
            }
        }
    }
    let nums = Float64ArraySlice::copy_from(env, &w.nums)?;
    w.push(nums)?;
    Ok(w.arr)
}
