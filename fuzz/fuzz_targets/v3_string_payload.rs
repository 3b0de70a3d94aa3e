//! v3 string payloads: never panic, and the packets decoded before any
//! error re-encode (as string and as binary payloads) to the same packets.
#![no_main]

use eio_core::protocol::v3;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data).into_owned();
    let packets: Vec<_> = v3::decode_payload_string(input)
        .map_while(Result::ok)
        .collect();
    let want: Vec<_> = packets.iter().cloned().map(Ok).collect();
    let text: Vec<_> = v3::decode_payload_string(v3::encode_payload_string(&packets)).collect();
    assert_eq!(text, want);
    let binary: Vec<_> = v3::decode_payload_binary(v3::encode_payload_binary(&packets)).collect();
    assert_eq!(binary, want);
});
