//! The Node binding of eio-rs: converts and forwards between JavaScript and
//! the `eio-core` engine. No transport logic lives here.
//!
//! - [`constants`]: the numbers and strings JS shares with the engine;
//! - [`runtime`]: the tokio runtime the engines run on;
//! - [`options`]: JS options checked and turned into the core's config;
//! - [`engine`]: `BindingEngine`, the native half of the JS `Server`;
//! - [`events`]: batches of core events turned into JS values;
//! - [`fast`]: the per-message and per-request calls, as plain functions.

#![deny(clippy::all)]

mod constants;
mod engine;
mod events;
mod fast;
mod named;
mod options;
mod runtime;

pub use constants::constants;
pub use engine::BindingEngine;
pub use fast::{engine_poll, engine_post_body, engine_send, engine_take_events};

/// Small blocks from jemalloc, message buffers from the system allocator
/// (see `eio_core::alloc` for why).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: eio_core::alloc::Split<tikv_jemallocator::Jemalloc, std::alloc::System> =
    eio_core::alloc::Split {
        small: tikv_jemallocator::Jemalloc,
        large: std::alloc::System,
    };
