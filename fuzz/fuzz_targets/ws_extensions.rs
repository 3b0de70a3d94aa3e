//! `Sec-WebSocket-Extensions` offers: never panic, and an accepted offer
//! answers with a header that itself parses as an acceptable offer.
#![no_main]

use eio_core::protocol::ws::deflate::{negotiate, DeflateConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data);
    let config = DeflateConfig::default();
    if let Ok(Some(agreed)) = negotiate(&header, &config) {
        let answer = agreed.header_value();
        assert!(negotiate(&answer, &config).is_ok(), "{answer}");
    }
});
