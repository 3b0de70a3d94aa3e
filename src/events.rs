//! Turns a batch of core events into one flat JS array, so a whole batch
//! crosses the boundary in one call. Layout per event: a kind number, then
//! fields that depend on the kind (read by `dispatch` in lib/dispatch.js).

use crate::convert::{buffer, flat, header_code};
use crate::named::named;
use eio_core::engine::{Event, HookCall, RequestInfo};
use eio_core::protocol::{pool, Packet, PacketData};
use napi::bindgen_prelude::{Array, BufferSlice, Null};
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
}

impl<'e> Writer<'e> {
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

/// Encodes `events` into a flat array.
pub fn to_js(env: &Env, events: Vec<Event>) -> Result<Array<'_>> {
    let arr = env.create_array(0)?;
    let mut w = Writer { env, arr, i: 0 };
    for ev in events {
        match ev {
            Event::Connection {
                handle,
                sid,
                protocol,
                transport,
                request,
            } => {
                w.push(kind::CONNECTION)?;
                w.push(handle as f64)?;
                w.push(&*sid)?;
                w.push(protocol.number() as u32)?;
                w.push(transport)?;
                w.request(&request)?;
            }
            Event::Message { handle, data } => {
                w.push(kind::MESSAGE)?;
                w.push(handle as f64)?;
                w.data(data)?;
            }
            Event::Close {
                handle,
                reason,
                description,
            } => {
                w.push(kind::CLOSE)?;
                w.push(handle as f64)?;
                w.push(reason.as_str())?;
                w.push(description)?;
            }
            Event::Upgrading { handle, transport } => {
                w.push(kind::UPGRADING)?;
                w.push(handle as f64)?;
                w.push(transport)?;
            }
            Event::UpgradeAborted { handle } => {
                w.push(kind::UPGRADE_ABORTED)?;
                w.push(handle as f64)?;
            }
            Event::Upgrade { handle, transport } => {
                w.push(kind::UPGRADE)?;
                w.push(handle as f64)?;
                w.push(transport)?;
            }
            Event::Flush { handle, packets } => {
                w.push(kind::FLUSH)?;
                w.push(handle as f64)?;
                let arr = env.create_array(packets.len() as u32 * 2)?;
                let mut list = Writer { env, arr, i: 0 };
                for p in packets {
                    list.packet(p)?;
                }
                w.push(list.arr)?;
            }
            Event::Drain { handle, callbacks } => {
                w.push(kind::DRAIN)?;
                w.push(handle as f64)?;
                w.push(callbacks)?;
            }
            Event::ConnectionError { request, error } => {
                w.push(kind::CONNECTION_ERROR)?;
                w.request(&request)?;
                w.push(error.code.code() as u32)?;
                w.push(error.message.as_str())?;
                w.push(error.context.to_string())?;
            }
            Event::Packet { handle, packet } => {
                w.push(kind::PACKET)?;
                w.push(handle as f64)?;
                w.packet(packet)?;
            }
            Event::PacketCreate { handle, packet } => {
                w.push(kind::PACKET_CREATE)?;
                w.push(handle as f64)?;
                w.packet(packet)?;
            }
            Event::Heartbeat { handle } => {
                w.push(kind::HEARTBEAT)?;
                w.push(handle as f64)?;
            }
            Event::Hook { id, call } => {
                w.push(kind::HOOK)?;
                w.push(id as f64)?;
                match call {
                    HookCall::Middlewares { request, upgrade } => {
                        w.push(hook::MIDDLEWARES)?;
                        w.request(&request)?;
                        w.push(upgrade)?;
                    }
                    HookCall::AllowRequest { request } => {
                        w.push(hook::ALLOW_REQUEST)?;
                        w.request(&request)?;
                        w.push(Null)?;
                    }
                    HookCall::GenerateId { request } => {
                        w.push(hook::GENERATE_ID)?;
                        w.request(&request)?;
                        w.push(Null)?;
                    }
                    HookCall::Headers {
                        request,
                        sid,
                        initial,
                        headers,
                    } => {
                        w.push(hook::HEADERS)?;
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
                w.push(kind::REQUEST_DONE)?;
                w.push(request as f64)?;
            }
            Event::Response { request, response } => {
                w.push(kind::RESPONSE)?;
                w.push(request as f64)?;
                w.push(response.status as u32)?;
                // A number when the headers are the engine's own (see
                // `fast::header_code`), else `[name, value, ...]`.
                match header_code(&response.headers) {
                    Some(code) => w.push(code)?,
                    None => w.push(flat(env, &response.headers)?)?,
                }
                w.push(&buffer(env, response.body)?)?;
            }
            Event::BridgeWrite { conn, data, end } => {
                w.push(kind::BRIDGE_WRITE)?;
                w.push(conn as f64)?;
                if end {
                    w.push(Null)?;
                } else {
                    let b = BufferSlice::from_data(env, Vec::from(data))?;
                    w.push(&b)?;
                }
            }
            Event::ListenerClosed { id } => {
                w.push(kind::LISTENER_CLOSED)?;
                w.push(id as f64)?;
            }
            Event::Log { scope, text } => {
                w.push(kind::LOG)?;
                w.push(scope.bit())?;
                w.push(text)?;
            }
        }
    }
    Ok(w.arr)
}
