//! Plain N-API callbacks, for the one call JS makes per message sent
//! (`engineSend`). napi-rs's generated wrapper costs that call more than its
//! work: it opens a "native borrow scope" (an allocation and thread-local
//! pushes) and reads a string in two passes (its UTF-8 length, then its
//! bytes) into a zeroed allocation. [`Args`] reads arguments straight from
//! N-API, and [`Args::with_str`] reads a string in one pass into a buffer
//! this thread reuses; [`callback`] keeps panics and errors from crossing
//! into JS as anything but a thrown `Error`.

use napi::{sys, Error, JsError, Result, Status};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

/// Strings up to this many UTF-16 units are read in one pass into the
/// thread's reused buffer (which needs three bytes a unit at most); longer
/// ones are measured first, so that the buffer does not grow to three
/// times the largest message ever sent.
const ONE_PASS_UNITS: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The arguments of a call, read as the callee needs them.
pub(crate) struct Args<const N: usize> {
    env: sys::napi_env,
    argv: [sys::napi_value; N],
}

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::from(status), what.to_owned()))
    }
}

impl<const N: usize> Args<N> {
    /// The first `N` arguments (missing ones read as `undefined`).
    ///
    /// # Safety
    /// `env` and `info` must be those N-API passed the running callback.
    pub(crate) unsafe fn new(env: sys::napi_env, info: sys::napi_callback_info) -> Result<Self> {
        let mut argc = N;
        let mut argv = [ptr::null_mut(); N];
        // SAFETY: `argv` has room for `argc` values, as N-API requires.
        let status = unsafe {
            sys::napi_get_cb_info(
                env,
                info,
                &mut argc,
                argv.as_mut_ptr(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        check(status, "reading the arguments")?;
        Ok(Args { env, argv })
    }

    /// Argument `i` read by an N-API getter (`get`), which is called with
    /// the env, the value and where to write the result.
    fn read<T: Default>(
        &self,
        i: usize,
        what: &str,
        get: impl FnOnce(sys::napi_env, sys::napi_value, &mut T) -> sys::napi_status,
    ) -> Result<T> {
        let mut v = T::default();
        check(get(self.env, self.argv[i], &mut v), what)?;
        Ok(v)
    }

    /// Argument `i` as an unsigned 32-bit number.
    pub(crate) fn u32(&self, i: usize) -> Result<u32> {
        // SAFETY: `read` passes a value of this call, in its env.
        self.read(i, "expected a number", |e, v, r| unsafe {
            sys::napi_get_value_uint32(e, v, r)
        })
    }

    /// Argument `i` as a number.
    pub(crate) fn f64(&self, i: usize) -> Result<f64> {
        // SAFETY: as in `u32`.
        self.read(i, "expected a number", |e, v, r| unsafe {
            sys::napi_get_value_double(e, v, r)
        })
    }

    /// Argument `i` as a boolean.
    pub(crate) fn bool(&self, i: usize) -> Result<bool> {
        // SAFETY: as in `u32`.
        self.read(i, "expected a boolean", |e, v, r| unsafe {
            sys::napi_get_value_bool(e, v, r)
        })
    }

    /// Whether argument `i` is a string.
    pub(crate) fn is_string(&self, i: usize) -> Result<bool> {
        // SAFETY: as in `u32`.
        let t = self.read(i, "reading a type", |e, v, r| unsafe {
            sys::napi_typeof(e, v, r)
        })?;
        Ok(t == sys::ValueType::napi_string)
    }

    /// Argument `i`, a Buffer (or another `ArrayBufferView` of bytes), as
    /// the bytes it views, for as long as the call lasts.
    pub(crate) fn bytes(&self, i: usize) -> Result<&[u8]> {
        let mut data = ptr::null_mut();
        let mut len = 0;
        // SAFETY: as in `u32`.
        let status =
            unsafe { sys::napi_get_buffer_info(self.env, self.argv[i], &mut data, &mut len) };
        check(status, "expected a string or a Buffer")?;
        if len == 0 {
            return Ok(&[]);
        }
        // SAFETY: N-API gives the view's bytes, which the argument keeps
        // alive for the call; nothing runs JS while the slice is in use.
        Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
    }

    /// Calls `f` with argument `i`, a string, as UTF-8 (lone surrogates as
    /// U+FFFD, as N-API writes them).
    pub(crate) fn with_str<R>(&self, i: usize, f: impl FnOnce(&str) -> R) -> Result<R> {
        let (env, value) = (self.env, self.argv[i]);
        let mut units = 0;
        // SAFETY: as in `u32`; without a buffer, N-API gives the length in
        // UTF-16 units (no pass over the string).
        let status =
            unsafe { sys::napi_get_value_string_utf16(env, value, ptr::null_mut(), 0, &mut units) };
        check(status, "expected a string")?;
        if units > ONE_PASS_UNITS {
            let mut len = 0;
            // SAFETY: as above; without a buffer N-API gives the UTF-8 length.
            let status = unsafe {
                sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &mut len)
            };
            check(status, "expected a string")?;
            let mut buf = Vec::with_capacity(len + 1);
            let s = write_utf8(env, value, &mut buf)?;
            return Ok(f(s));
        }
        SCRATCH.with(|scratch| {
            // A reentrant call (none makes one today) gets its own buffer.
            let mut own = Vec::new();
            let mut guard = scratch.try_borrow_mut();
            let buf = match guard.as_deref_mut() {
                Ok(buf) => buf,
                Err(_) => &mut own,
            };
            buf.clear();
            // Each UTF-16 unit is at most three bytes of UTF-8 (a pair of
            // surrogates, two units, is four), and one for N-API's NUL.
            buf.reserve(units * 3 + 1);
            let s = write_utf8(env, value, buf)?;
            Ok(f(s))
        })
    }
}

/// Writes string `value` into `buf`'s spare capacity (which must hold all
/// of it and a NUL) and returns it.
fn write_utf8(env: sys::napi_env, value: sys::napi_value, buf: &mut Vec<u8>) -> Result<&str> {
    let mut written = 0;
    // SAFETY: N-API writes at most `capacity` bytes (its NUL included)
    // into the buffer's spare capacity.
    let status = unsafe {
        sys::napi_get_value_string_utf8(
            env,
            value,
            buf.as_mut_ptr().cast(),
            buf.capacity(),
            &mut written,
        )
    };
    check(status, "expected a string")?;
    // SAFETY: N-API wrote `written` bytes; with room for the whole string
    // they are complete UTF-8 (V8 writes lone surrogates as U+FFFD).
    unsafe {
        buf.set_len(written);
        Ok(std::str::from_utf8_unchecked(buf))
    }
}

/// `b` as a JS boolean.
pub(crate) fn boolean(env: sys::napi_env, b: bool) -> Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    // SAFETY: `env` is the running callback's.
    let status = unsafe { sys::napi_get_boolean(env, b, &mut v) };
    check(status, "making a boolean")?;
    Ok(v)
}

/// Runs the body of a plain callback: an error becomes a thrown JS `Error`,
/// and so does a panic (with its message), which must not unwind into
/// N-API.
///
/// # Safety
/// `env` must be the running callback's.
pub(crate) unsafe fn callback(
    env: sys::napi_env,
    name: &str,
    body: impl FnOnce() -> Result<sys::napi_value>,
) -> sys::napi_value {
    let err = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => return v,
        Ok(Err(err)) => err,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Error::new(
                Status::GenericFailure,
                format!("eio-rs: {name} panicked: {what}"),
            )
        }
    };
    // SAFETY: `env` is the running callback's (the caller's promise).
    unsafe { JsError::from(err).throw_into(env) };
    ptr::null_mut()
}
