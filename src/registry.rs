//! The engines of this JS thread: what each `BindingEngine` shares with its
//! runtime ([`Shared`]), and the per-thread table the plain calls of
//! `calls` find an engine in by number ([`Fast`]). Engines are registered
//! on the JS thread that created them, so each worker thread has its own
//! table.

use eio_core::engine::Engine;
use eio_core::server::bridge::Bridge;
use eio_core::server::native::NativeServer;
use eio_core::server::webtransport::WtEndpoint;
use napi::bindgen_prelude::Float64Array;
use napi::{Result, Status};
use parking_lot::Mutex;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

/// What a `BindingEngine` shares with the tasks and callbacks of its engine.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) listeners: Mutex<HashMap<u64, NativeServer>>,
    pub(crate) bridge: Arc<Bridge>,
    /// The WebTransport endpoint, while the `webtransport` option has one
    /// open.
    pub(crate) webtransport: Mutex<Option<WtEndpoint>>,
    /// The last pre-encoded frame sent: a broadcast hands the same frame to
    /// every session, which then share one copy.
    pub(crate) last_frame: Mutex<bytes::Bytes>,
}

impl Shared {
    /// `frame` as bytes the engine keeps: the last frame again when it is
    /// the same.
    pub(crate) fn frame(&self, frame: &[u8]) -> bytes::Bytes {
        let mut last = self.last_frame.lock();
        if *last != frame {
            *last = bytes::Bytes::copy_from_slice(frame);
        }
        last.clone()
    }

    /// Stops every listener and closes every session (env teardown).
    pub(crate) fn shutdown(&self) {
        for (_, l) in self.listeners.lock().drain() {
            drop(l.close());
        }
        if let Some(wt) = self.webtransport.lock().take() {
            wt.close();
        }
        self.engine.close();
    }
}

/// An engine as the plain calls see it.
pub(crate) struct Fast {
    pub(crate) shared: Arc<Shared>,
    /// Keeps `out` alive (a reference to the JS array).
    _array: Float64Array,
    out: *mut f64,
    len: usize,
}

impl Fast {
    /// Writes `out[i]`.
    pub(crate) fn set(&self, i: usize, v: f64) {
        assert!(i < self.len);
        // SAFETY: `out` points at the `len` doubles of `_array`'s backing
        // store, kept alive by its reference; only this JS thread writes it.
        unsafe { *self.out.add(i) = v };
    }
}

thread_local! {
    static ENGINES: RefCell<Vec<Option<Rc<Fast>>>> = const { RefCell::new(Vec::new()) };
}

/// How many doubles `out` must hold.
pub(crate) const OUT_LEN: usize = 8;

/// Registers an engine for the fast calls; returns its number.
pub(crate) fn register(shared: Arc<Shared>, mut array: Float64Array) -> Result<u32> {
    if array.len() < OUT_LEN {
        return Err(napi::Error::new(
            Status::InvalidArg,
            format!("the shared array must hold {OUT_LEN} numbers"),
        ));
    }
    let len = array.len();
    // SAFETY: the pointer stays valid for as long as `Fast` holds it:
    // - it is taken through `napi_get_typedarray_info`, for which V8 moves
    //   a small array's data off the JS heap into a backing store of its
    //   own, which the garbage collector never moves;
    // - `_array` holds a reference to the array, so the backing store lives
    //   as long as the `Fast` that holds the pointer;
    // - the array is lib/server.js's private `_out`, made for this engine and
    //   never transferred or detached, and `Fast::set` checks every index
    //   against `len`;
    // - only this JS thread (the one that registered the engine) calls the
    //   functions that write through it, one at a time.
    let out = unsafe { array.as_mut() }.as_mut_ptr();
    let fast = Rc::new(Fast {
        shared,
        _array: array,
        out,
        len,
    });
    ENGINES.with(|e| {
        let mut e = e.borrow_mut();
        let id = match e.iter().position(Option::is_none) {
            Some(i) => {
                e[i] = Some(fast);
                i
            }
            None => {
                e.push(Some(fast));
                e.len() - 1
            }
        };
        Ok(id as u32)
    })
}

/// Forgets engine `id` (its JS object was collected).
pub(crate) fn unregister(id: u32) {
    ENGINES.with(|e| {
        if let Some(slot) = e.borrow_mut().get_mut(id as usize) {
            *slot = None;
        }
    });
}

/// The engine registered as `id` on this thread.
pub(crate) fn engine(id: u32) -> Result<Rc<Fast>> {
    ENGINES
        .with(|e| e.borrow().get(id as usize).cloned().flatten())
        .ok_or_else(|| napi::Error::new(Status::InvalidArg, "no such engine"))
}
