//! Every number and string that the JS facade and the engine must agree on,
//! handed to JS once by `constants()`: lib/constants.js reads them at load,
//! so none is written in both languages.

use crate::calls::served;
use crate::convert::HEADERS;
use crate::events::{hook, kind};
use eio_core::engine::log::Scope;
use eio_core::engine::{ErrorCode, HookSet, Listen};
use napi::bindgen_prelude::Object;
use napi::{Env, Result};
use napi_derive::napi;

fn table<'e>(env: &'e Env, names: &[(&str, u32)]) -> Result<Object<'e>> {
    let mut o = Object::new(env)?;
    for (name, value) in names {
        o.set(name, *value)?;
    }
    Ok(o)
}

/// The shared constants, by group:
/// - `event`: event kinds of a native batch; `hook`: hook kinds of a `HOOK`
///   event; `served`: what `enginePoll` did (`out[0]`);
/// - `hookSet`: the bits of `setHooks`; `listen`: the bits of `setListening`;
/// - `errors`, `errorMessages`: engine.io's `Server.errors` and
///   `Server.errorMessages`;
/// - `responseHeaders`: `[name, value]` of each header code;
/// - `logScopes`: the bit of each `debug` namespace, for `setLogScopes`.
#[napi]
pub fn constants(env: &Env) -> Result<Object<'_>> {
    let mut o = Object::new(env)?;
    o.set("event", table(env, kind::NAMES)?)?;
    o.set("hook", table(env, hook::NAMES)?)?;
    o.set("served", table(env, served::NAMES)?)?;
    o.set("hookSet", table(env, &HookSet::NAMES)?)?;
    o.set("listen", table(env, &Listen::NAMES)?)?;
    let mut errors = Object::new(env)?;
    let mut messages = Object::new(env)?;
    for code in ErrorCode::ALL {
        errors.set(code.name(), u32::from(code.code()))?;
        messages.set(code.code().to_string(), code.message())?;
    }
    o.set("errors", errors)?;
    o.set("errorMessages", messages)?;
    let mut headers = env.create_array(HEADERS.len() as u32)?;
    for (i, (name, value)) in HEADERS.iter().enumerate() {
        let mut pair = env.create_array(2)?;
        pair.set(0, *name)?;
        pair.set(1, *value)?;
        headers.set(i as u32, pair)?;
    }
    o.set("responseHeaders", headers)?;
    let mut scopes = Object::new(env)?;
    for scope in Scope::ALL {
        scopes.set(scope.name(), scope.bit())?;
    }
    o.set("logScopes", scopes)?;
    Ok(o)
}
