//! The Node binding of eio-rs: converts and forwards between JavaScript and
//! the `eio-core` engine. No transport logic lives here.
//!
//! - [`runtime`]: the tokio runtime the engines run on;
//! - [`options`]: JS options checked and turned into the core's config;
//! - [`engine`]: `BindingEngine`, the native half of the JS `Server`;
//! - [`registry`]: what an engine shares with its runtime, and this thread's
//!   table of engines by number;
//! - [`calls`]: the per-message and per-request calls, as plain functions;
//! - [`raw`]: plain N-API callbacks, for the call made per message sent;
//! - [`events`]: batches of core events turned into JS values;
//! - [`convert`]: conversions between JS values and the core's types;
//! - [`constants`]: the numbers and strings JS shares with the engine
//!   ([`named`] declares them).
//!
//! Imports go one way: `engine` uses `options`, `registry` and `convert`;
//! `calls` uses `registry`, `events`, `convert` and `raw`; `convert`, `registry`,
//! `raw` and `named` use no other module here.

#![deny(clippy::all)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod calls;
mod constants;
mod convert;
mod engine;
mod events;
mod named;
mod options;
mod raw;
mod registry;
mod runtime;

pub use calls::{
    engine_poll, engine_post_body, engine_release_sends, engine_take_events, upgrade_refusal,
};
pub use constants::constants;
pub use engine::{set_log_scopes, BindingEngine};

/// Adds the functions written as plain N-API callbacks (see `raw`) to the
/// module's exports.
#[napi_derive::napi(module_exports)]
pub fn plain_callbacks(
    mut exports: napi::bindgen_prelude::Object,
    env: napi::Env,
) -> napi::Result<()> {
    use napi::bindgen_prelude::JsObjectValue;
    let send = env.create_function::<(), bool>("engineSend", calls::engine_send)?;
    exports.set_named_property("engineSend", send)
}

/// Small blocks from jemalloc, message buffers from the system allocator
/// (see `eio_core::alloc` for why).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: eio_core::alloc::Split<tikv_jemallocator::Jemalloc, std::alloc::System> =
    eio_core::alloc::Split {
        small: tikv_jemallocator::Jemalloc,
        large: std::alloc::System,
    };
