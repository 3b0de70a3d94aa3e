//! v3 WebSocket frames: never panic, and every packet decoded re-encodes to
//! a frame, binary or base64, that decodes to the same packet.
#![no_main]

use bytes::Bytes;
use eio_core::protocol::{v3, Str, WsFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let frame = if kind & 1 == 0 {
        WsFrame::Text(Str::from(String::from_utf8_lossy(rest).into_owned()))
    } else {
        WsFrame::Binary(Bytes::copy_from_slice(rest))
    };
    if let Ok(Some(p)) = v3::decode_ws_frame_v3(frame) {
        for supports_binary in [true, false] {
            let again = v3::decode_ws_frame_v3(v3::encode_packet_ws_v3(&p, supports_binary));
            assert_eq!(again, Ok(Some(p.clone())));
        }
    }
});
