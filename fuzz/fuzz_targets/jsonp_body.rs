//! JSONP: decoding a form body never panics, and a response built from
//! any payload is one call whose argument reads back as that payload.
#![no_main]

use eio_core::protocol::jsonp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let payload = jsonp::decode_jsonp_body(&body).unwrap_or_else(|_| body.clone().into_owned());
    let script = jsonp::jsonp_response(&body, &payload);
    let open = script.find("](").expect("call opens");
    assert!(script.starts_with("___eio["));
    assert!(script[7..open].bytes().all(|b| b.is_ascii_digit()));
    assert!(script.ends_with(");"));
    let literal = &script[open + 2..script.len() - 2];
    assert!(!literal.contains(['\u{2028}', '\u{2029}', '\n', '\r']));
    let back: String = serde_json::from_str(literal).expect("argument is one JSON string");
    assert_eq!(back, payload);
});
