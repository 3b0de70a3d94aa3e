//! Conversions between JS values and the core's types, shared by the
//! binding's modules (a leaf: it imports none of them).

use eio_core::engine::MessageRef;
use eio_core::protocol::{pool, PacketData, Str};
use eio_core::transport::polling::PostTicket;
use eio_core::transport::Header;
use napi::bindgen_prelude::{Array, BufferSlice, Either};
use napi::{Env, Result};

/// A string or bytes from JS as a message's data (the bytes copied: the
/// packet may wait in the session's buffer).
pub(crate) fn packet_data<B: std::ops::Deref<Target = [u8]>>(
    data: Either<String, B>,
) -> PacketData {
    match data {
        Either::A(s) => PacketData::Text(Str::from(s)),
        Either::B(b) => PacketData::Binary(pool::copy(&b)),
    }
}

/// A message JS still owns, as data the engine keeps (copied).
pub(crate) fn owned(data: MessageRef<'_>) -> PacketData {
    match data {
        MessageRef::Text(s) => PacketData::Text(Str::from(s)),
        MessageRef::Binary(b) => PacketData::Binary(pool::copy(b)),
    }
}

/// Bytes as a Buffer: copied when small (cheaper than an external buffer
/// and its finalizer), handed over when large.
pub fn buffer(env: &Env, bytes: bytes::Bytes) -> Result<BufferSlice<'_>> {
    if bytes.len() <= 64 * 1024 {
        BufferSlice::copy_from(env, &bytes)
    } else {
        BufferSlice::from_data(env, Vec::from(bytes))
    }
}

/// Headers as `[name, value, name, value, ...]`.
pub fn flat<'e>(env: &'e Env, headers: &[Header]) -> Result<Array<'e>> {
    let mut h = env.create_array((headers.len() * 2) as u32)?;
    for (i, (k, v)) in headers.iter().enumerate() {
        h.set((i * 2) as u32, &**k)?;
        h.set((i * 2 + 1) as u32, &**v)?;
    }
    Ok(h)
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
