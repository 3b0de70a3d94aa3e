use super::{decode_packet, DecodeError, Packet, Str};

/// The record separator between packets of a v4 polling payload.
pub const SEPARATOR: char = '\x1e';

/// Encodes packets as one v4 polling payload: text encodings joined by `\x1e`.
pub fn encode_payload(packets: &[Packet]) -> String {
    let cap = packets.iter().map(|p| p.data.len() * 4 / 3 + 4).sum();
    let mut out = String::with_capacity(cap);
    for (i, p) in packets.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        p.encode_text_into(&mut out);
    }
    out
}

/// Iterates the packets of a v4 polling payload, in order.
///
/// engine.io hands every packet before a malformed one to the session, then
/// an error; callers stop at the first `Err`.
pub struct PayloadDecoder {
    rest: Option<Str>,
}

impl Iterator for PayloadDecoder {
    type Item = Result<Packet, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest.take()?;
        let part = match rest.as_str().find(SEPARATOR) {
            Some(i) => {
                self.rest = Some(rest.slice_from(i + 1));
                rest.slice(0, i)
            }
            None => rest,
        };
        let item = decode_packet(part);
        if item.is_err() {
            self.rest = None;
        }
        Some(item)
    }
}

/// Decodes a v4 polling payload (see [`PayloadDecoder`]).
pub fn decode_payload(s: Str) -> PayloadDecoder {
    PayloadDecoder { rest: Some(s) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{PacketData, PacketType};
    use bytes::Bytes;

    #[test]
    fn round_trip() {
        let packets = vec![
            Packet::text(PacketType::Message, "hello"),
            Packet::binary(Bytes::from_static(&[1, 2, 3, 4])),
            Packet::empty(PacketType::Ping),
        ];
        let enc = encode_payload(&packets);
        assert_eq!(enc, "4hello\x1ebAQIDBA==\x1e2");
        let dec: Vec<_> = decode_payload(Str::from(enc))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(dec, packets);
    }

    #[test]
    fn stops_at_first_error() {
        let dec: Vec<_> = decode_payload(Str::from("4a\x1ex\x1e4b")).collect();
        assert_eq!(dec.len(), 2);
        assert!(matches!(&dec[0], Ok(p) if p.data == PacketData::Text(Str::from("a"))));
        assert!(dec[1].is_err());
    }

    fn dec(s: &str) -> Vec<Result<Packet, DecodeError>> {
        decode_payload(Str::from(s)).collect()
    }

    #[test]
    fn encodes_like_engine_io_parser() {
        assert_eq!(encode_payload(&[]), "");
        assert_eq!(
            encode_payload(&[Packet::text(PacketType::Message, "")]),
            "4"
        );
        assert_eq!(
            encode_payload(&[
                Packet::text(PacketType::Open, "{\"sid\":\"a\"}"),
                Packet::text(PacketType::Message, "h\u{e9}\u{1f600}"),
                Packet::binary(Bytes::new()),
                Packet::empty(PacketType::Noop),
            ]),
            "0{\"sid\":\"a\"}\x1e4h\u{e9}\u{1f600}\x1eb\x1e6"
        );
    }

    #[test]
    fn decodes_edge_cases() {
        let m = |s: &str| Ok(Packet::text(PacketType::Message, s));
        assert_eq!(dec("4"), vec![Ok(Packet::empty(PacketType::Message))]);
        assert_eq!(
            dec("4\x1e4"),
            vec![Ok(Packet::empty(PacketType::Message)); 2]
        );
        assert_eq!(dec("4a:b\x1e4\u{1f600}"), vec![m("a:b"), m("\u{1f600}")]);
        assert_eq!(dec("b"), vec![Ok(Packet::binary(Bytes::new()))]);
        assert_eq!(
            dec("b!\x1e4x"),
            vec![Ok(Packet::binary(Bytes::new())), m("x")]
        );
        // A v3-style length prefix is not a v4 packet type.
        assert_eq!(
            dec("6:4hello"),
            vec![Ok(Packet::text(PacketType::Noop, ":4hello"))]
        );
    }

    #[test]
    fn empty_parts_are_errors() {
        // split() keeps empty strings, and "" is not a packet.
        assert_eq!(dec("4a\x1e"), vec![m_ok("a"), Err(DecodeError::Empty)]);
        assert_eq!(dec("\x1e4a"), vec![Err(DecodeError::Empty)]);
        assert_eq!(
            dec("4a\x1e\x1e4b"),
            vec![m_ok("a"), Err(DecodeError::Empty)]
        );
        assert_eq!(dec("\x1e"), vec![Err(DecodeError::Empty)]);
    }

    fn m_ok(s: &str) -> Result<Packet, DecodeError> {
        Ok(Packet::text(PacketType::Message, s))
    }

    #[test]
    fn empty_payload_is_an_error() {
        let dec: Vec<_> = decode_payload(Str::new()).collect();
        assert_eq!(dec, vec![Err(DecodeError::Empty)]);
    }
}
