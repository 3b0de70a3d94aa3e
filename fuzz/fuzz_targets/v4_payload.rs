//! v4 polling payloads: never panic, and the packets decoded before any
//! error re-encode to a payload that decodes to the same packets.
#![no_main]

use eio_core::protocol::{decode_payload, encode_payload, Str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = Str::from(String::from_utf8_lossy(data).into_owned());
    let packets: Vec<_> = decode_payload(input).map_while(Result::ok).collect();
    if packets.is_empty() {
        return;
    }
    let again: Vec<_> = decode_payload(Str::from(encode_payload(&packets))).collect();
    assert_eq!(again, packets.into_iter().map(Ok).collect::<Vec<_>>());
});
