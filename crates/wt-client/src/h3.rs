//! The HTTP/3 and WebTransport wire pieces the session layer needs on top
//! of quinn: eio-core's own, which its WebTransport endpoint uses too.

pub use eio_core::protocol::h3::*;
pub use eio_core::server::h3::{control_stream_start, drain, read_frame, read_varint, ReadError};
