//! The WebSocket protocol, server side and with no I/O: RFC 6455 framing
//! ([`frame`]) and permessage-deflate ([`deflate`]). The connection that
//! drives them is `transport::ws`.

pub mod deflate;
pub mod frame;

use std::fmt;

/// Close code 1009, "message too big".
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Why the connection must close, with the close code sent to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// 1002: the frames break RFC 6455.
    Protocol(String),
    /// 1007: a text message or close reason that is not UTF-8, or
    /// compressed data that does not inflate.
    InvalidData(&'static str),
    /// 1009: a message over the limit.
    TooBig,
}

impl Violation {
    /// The close code `ws` sends for this violation.
    pub fn code(&self) -> u16 {
        match self {
            Violation::Protocol(_) => 1002,
            Violation::InvalidData(_) => 1007,
            Violation::TooBig => CLOSE_TOO_BIG,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Protocol(m) => f.write_str(m),
            Violation::InvalidData(m) => f.write_str(m),
            Violation::TooBig => f.write_str("Max payload size exceeded"),
        }
    }
}
