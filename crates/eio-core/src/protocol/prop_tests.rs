//! Property tests for the codecs: what is encoded decodes to the same
//! packets, and no input makes a decoder panic.

use super::jsonp::{decode_jsonp_body, jsonp_response};
use super::v3;
use super::{
    decode_packet, decode_payload, decode_ws_frame, encode_payload, Packet, PacketData, PacketType,
    Str,
};
use base64::Engine as _;
use bytes::Bytes;
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = PacketType> {
    (0u8..7).prop_map(|n| PacketType::from_byte(b'0' + n).unwrap())
}

/// Text mixing the characters the codecs treat specially with any others.
fn text() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        ':',
        '\u{1e}',
        'b',
        '0',
        '4',
        '9',
        '\\',
        'n',
        '\n',
        '"',
        '%',
        '&',
        '=',
        '+',
        ' ',
        '\u{e9}',
        '\u{2028}',
        '\u{ffff}',
        '\u{1f600}',
    ]);
    prop::collection::vec(prop_oneof![special, any::<char>()], 0..24)
        .prop_map(|v| v.into_iter().collect())
}

/// Data that survives a round trip: engine.io encodes `""` as no data.
fn data() -> impl Strategy<Value = PacketData> {
    prop_oneof![
        Just(PacketData::Empty),
        text().prop_map(|s| if s.is_empty() {
            PacketData::Empty
        } else {
            PacketData::Text(Str::from(s))
        }),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|v| PacketData::Binary(Bytes::from(v))),
    ]
}

/// A v3 packet: any type with any data (v3 keeps the type of binary data).
fn packet_v3() -> impl Strategy<Value = Packet> {
    (kind(), data()).prop_map(|(kind, data)| Packet { kind, data })
}

/// A v4 packet: v4 binary data is always a message.
fn packet_v4() -> impl Strategy<Value = Packet> {
    packet_v3().prop_map(|mut p| {
        if matches!(p.data, PacketData::Binary(_)) {
            p.kind = PacketType::Message;
        }
        p
    })
}

/// Strings built mostly from the characters that steer the decoders.
fn wire_text() -> impl Strategy<Value = String> {
    let steering = prop::sample::select(vec![
        '0',
        '1',
        '2',
        '4',
        '6',
        '7',
        '9',
        ':',
        'b',
        'x',
        'e',
        '.',
        '-',
        '+',
        ' ',
        '\u{1e}',
        'A',
        'Q',
        '=',
        '/',
        '_',
        '%',
        '&',
        'd',
        '\\',
        'n',
        '\u{e9}',
        '\u{1f600}',
    ]);
    prop::collection::vec(prop_oneof![4 => steering, 1 => any::<char>()], 0..64)
        .prop_map(|v| v.into_iter().collect())
}

/// Bytes built mostly from the values binary payloads give meaning to.
fn wire_bytes() -> impl Strategy<Value = Vec<u8>> {
    let steering = prop::sample::select(vec![0u8, 1, 2, 3, 4, 6, 9, 10, 12, 255, b'4', b'b']);
    prop::collection::vec(prop_oneof![3 => steering, 1 => any::<u8>()], 0..96)
}

/// The JSONP client's escaping and form encoding of a payload.
fn jsonp_client_body(payload: &str) -> String {
    let escaped = payload.replace('\n', "\\n");
    let mut body = String::from("d=");
    for b in escaped.bytes() {
        if b.is_ascii_alphanumeric() {
            body.push(b as char);
        } else if b == b' ' {
            body.push('+');
        } else {
            body.push_str(&format!("%{b:02X}"));
        }
    }
    body
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn v4_payload_round_trips(packets in prop::collection::vec(packet_v4(), 1..8)) {
        // A separator inside text cannot survive a v4 payload, upstream too.
        let packets: Vec<Packet> = packets
            .into_iter()
            .filter(|p| !matches!(&p.data, PacketData::Text(s) if s.contains('\u{1e}')))
            .collect();
        prop_assume!(!packets.is_empty());
        let decoded: Vec<_> = decode_payload(Str::from(encode_payload(&packets))).collect();
        let want: Vec<_> = packets.into_iter().map(Ok).collect();
        prop_assert_eq!(decoded, want);
    }

    #[test]
    fn v4_ws_frames_round_trip(p in packet_v4(), supports_binary in any::<bool>()) {
        prop_assert_eq!(decode_ws_frame(p.to_ws_frame_with(supports_binary)), Ok(p));
    }

    #[test]
    fn v3_string_payload_round_trips(packets in prop::collection::vec(packet_v3(), 0..8)) {
        let decoded: Vec<_> = v3::decode_payload_string(v3::encode_payload_string(&packets)).collect();
        let want: Vec<_> = packets.into_iter().map(Ok).collect();
        prop_assert_eq!(decoded, want);
    }

    #[test]
    fn v3_binary_payload_round_trips(packets in prop::collection::vec(packet_v3(), 0..8)) {
        let decoded: Vec<_> = v3::decode_payload_binary(v3::encode_payload_binary(&packets)).collect();
        let want: Vec<_> = packets.into_iter().map(Ok).collect();
        prop_assert_eq!(decoded, want);
    }

    #[test]
    fn v3_ws_frames_round_trip(p in packet_v3(), supports_binary in any::<bool>()) {
        let frame = v3::encode_packet_ws_v3(&p, supports_binary);
        prop_assert_eq!(v3::decode_ws_frame_v3(frame), Ok(Some(p)));
    }

    #[test]
    fn v3_string_lengths_count_utf16(s in text()) {
        prop_assert_eq!(v3::utf16_len(&s), s.encode_utf16().count());
    }

    #[test]
    fn base64_decoding_agrees_with_the_strict_engine(data in prop::collection::vec(any::<u8>(), 0..64)) {
        let std = base64::engine::general_purpose::STANDARD.encode(&data);
        let p = decode_packet(Str::from(format!("b{std}"))).unwrap();
        prop_assert_eq!(&p.data, &PacketData::Binary(Bytes::from(data.clone())));
        // Node also reads unpadded and URL-safe base64.
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&data);
        let p = decode_packet(Str::from(format!("b{url}"))).unwrap();
        prop_assert_eq!(&p.data, &PacketData::Binary(Bytes::from(data)));
    }

    #[test]
    fn jsonp_body_round_trips(payload in text()) {
        // The client's escaping loses a backslash before a newline or an
        // "n", in engine.io too; leave those out.
        prop_assume!(!payload.contains('\\'));
        prop_assert_eq!(decode_jsonp_body(&jsonp_client_body(&payload)), Ok(payload));
    }

    #[test]
    fn jsonp_response_is_one_safe_call(j in wire_text(), payload in text()) {
        let out = jsonp_response(&j, &payload);
        let open = out.find("](").unwrap();
        prop_assert!(out.starts_with("___eio["));
        prop_assert!(out[7..open].bytes().all(|b| b.is_ascii_digit()));
        prop_assert!(out.ends_with(");"));
        let literal = &out[open + 2..out.len() - 2];
        let raw_breaks = ['\u{2028}', '\u{2029}', '\n', '\r'];
        prop_assert!(!literal.contains(raw_breaks), "raw line break in {:?}", literal);
        let back: String = serde_json::from_str(literal).unwrap();
        prop_assert_eq!(back, payload);
    }

    #[test]
    fn decoders_never_panic_on_text(s in wire_text()) {
        let _ = decode_packet(Str::from(s.as_str()));
        for item in decode_payload(Str::from(s.as_str())) {
            let _ = item;
        }
        let _ = v3::decode_packet_v3(Str::from(s.as_str()));
        for item in v3::decode_payload_string(s.as_str()) {
            let _ = item;
        }
        let _ = decode_jsonp_body(&s);
    }

    #[test]
    fn decoders_never_panic_on_bytes(b in wire_bytes()) {
        let b = Bytes::from(b);
        for item in v3::decode_payload_binary(b.clone()) {
            let _ = item;
        }
        let _ = v3::decode_binary_packet_v3(b.clone());
        let _ = decode_ws_frame(super::WsFrame::Binary(b));
    }

    #[test]
    fn v3_string_decoder_ends(s in wire_text()) {
        // Every item consumes input, so a payload cannot yield more items
        // than it has characters.
        prop_assert!(v3::decode_payload_string(s.as_str()).count() <= s.len() + 1);
    }

    #[test]
    fn stream_framing_round_trips_in_any_chunks(
        packets in prop::collection::vec(packet_v4(), 0..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        use super::stream::{encode_stream_packet, StreamDecoder};
        // An empty binary message cannot be framed (its zero length is
        // refused, as engine.io-parser refuses it).
        let packets: Vec<_> = packets
            .into_iter()
            .filter(|p| !matches!(&p.data, PacketData::Binary(b) if b.is_empty()))
            .collect();
        let mut wire = Vec::new();
        for p in &packets {
            encode_stream_packet(&mut wire, p);
        }
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        at.sort_unstable();
        let mut decoder = StreamDecoder::new(1 << 20);
        let mut out = Vec::new();
        let mut from = 0;
        for to in at.into_iter().chain([wire.len()]) {
            decoder.feed(&wire[from..to], &mut out).unwrap();
            from = to;
        }
        prop_assert_eq!(out, packets);
    }

    #[test]
    fn stream_decoder_never_panics(b in wire_bytes(), max in 0usize..300) {
        let mut out = Vec::new();
        let _ = super::stream::StreamDecoder::new(max).feed(&b, &mut out);
    }
}
