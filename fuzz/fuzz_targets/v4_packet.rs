//! v4 single packets (WebSocket frames): never panic, and whatever decodes
//! re-encodes to a frame that decodes to the same packet.
#![no_main]

use bytes::Bytes;
use eio_core::protocol::{decode_packet, decode_ws_frame, Str, WsFrame};
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
    if let Ok(p) = decode_ws_frame(frame) {
        for supports_binary in [true, false] {
            let again = decode_ws_frame(p.to_ws_frame_with(supports_binary));
            assert_eq!(again.as_ref(), Ok(&p));
        }
        let mut text = String::new();
        p.encode_text_into(&mut text);
        assert_eq!(decode_packet(Str::from(text)), Ok(p));
    }
});
