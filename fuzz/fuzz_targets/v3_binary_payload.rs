//! v3 binary payloads: never panic, and the packets decoded before any
//! error re-encode to a binary payload that decodes to the same packets.
#![no_main]

use bytes::Bytes;
use eio_core::protocol::v3;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let packets: Vec<_> = v3::decode_payload_binary(Bytes::copy_from_slice(data))
        .map_while(Result::ok)
        .collect();
    let again: Vec<_> = v3::decode_payload_binary(v3::encode_payload_binary(&packets)).collect();
    assert_eq!(again, packets.into_iter().map(Ok).collect::<Vec<_>>());
});
