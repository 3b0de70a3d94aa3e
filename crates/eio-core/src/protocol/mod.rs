//! Engine.IO packet and payload codecs.
//!
//! This module knows nothing of sockets, tasks or Node: it turns packets into
//! bytes and back, for protocol v4 (and v3 in [`v3`], with the JSONP framing
//! of polling in [`jsonp`]). The engine feeds it what the transports read and
//! sends what it returns.
//!
//! Every decoder mirrors what engine.io does with the same bytes, malformed
//! ones included, because clients in the wild depend on those quirks.

pub mod h3;
pub mod jsonp;
mod node_b64;
mod packet;
mod payload;
pub mod pool;
mod str;
pub mod stream;
pub mod v3;
pub mod ws;

#[cfg(test)]
mod prop_tests;

pub use self::jsonp::Framing;
pub use self::packet::{
    decode_packet, decode_ws_frame, DecodeError, Packet, PacketData, PacketType, WsFrame,
};
pub use self::payload::{decode_payload, encode_payload, PayloadDecoder, SEPARATOR};
pub use self::str::Str;

/// The Engine.IO protocol revision a session speaks (`EIO=` in the query).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Engine.IO v3 (Socket.IO v2 clients): client-initiated heartbeat.
    V3 = 3,
    /// Engine.IO v4 (Socket.IO v3+ clients): server-initiated heartbeat.
    V4 = 4,
}

impl Protocol {
    /// The number clients send as `EIO=`.
    pub fn number(self) -> u8 {
        self as u8
    }
}
