//! WebTransport's stream framing: never panics, however the bytes are cut
//! into chunks, and the packets decoded before any error re-encode to bytes
//! that decode to the same packets.
#![no_main]

use eio_core::protocol::stream::{encode_stream_packet, StreamDecoder};
use eio_core::protocol::PacketData;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let mut decoder = StreamDecoder::new(1 << 16);
    let mut packets = Vec::new();
    let (a, b) = data.split_at(usize::from(cut).min(data.len()));
    if decoder.feed(a, &mut packets).is_ok() {
        let _ = decoder.feed(b, &mut packets);
    }
    // An empty binary message cannot be framed (a zero length is refused,
    // as engine.io-parser refuses it), so it does not round-trip.
    packets.retain(|p| !matches!(&p.data, PacketData::Binary(b) if b.is_empty()));
    let mut wire = Vec::new();
    for p in &packets {
        encode_stream_packet(&mut wire, p);
    }
    let mut again = Vec::new();
    StreamDecoder::new(1 << 16).feed(&wire, &mut again).unwrap();
    assert_eq!(again, packets);
});
