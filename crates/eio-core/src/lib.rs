//! The Engine.IO server core of eio-rs, free of Node.
//!
//! Layers, from the wire up:
//! - [`protocol`]: packet and payload codecs (no I/O);
//! - [`engine`]: sessions, heartbeats, upgrades and write buffers, with the
//!   events the application sees queued in batches;
//! - [`transport`]: HTTP long-polling and WebSocket, written once for every
//!   front end;
//! - [`server`]: the native front end, a hyper HTTP/1.1 listener.
//!
//! [`alloc`] is the split global allocator the Node binding installs.
//!
//! The Node binding (the `eio-rs` crate) only converts and forwards.

pub mod alloc;
pub mod engine;
pub mod protocol;
pub mod server;
pub mod transport;

pub use engine::{CloseReason, Config, Engine, ErrorCode, Event, EventQueue, RequestInfo};
