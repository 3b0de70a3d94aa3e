//! Request queries: `parse_query` never panics, and gives the pairs the
//! form decoder gives (it splits queries with nothing to decode itself).
#![no_main]

use eio_core::engine::parse_query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let q = String::from_utf8_lossy(data);
    let got: Vec<(String, String)> = parse_query(&format!("/engine.io/?{q}"))
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let q = q.split('#').next().unwrap_or("");
    let want: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(got, want);
});
