use super::Str;
use base64::Engine as _;
use bytes::Bytes;
use std::fmt;

/// The Engine.IO packet types, numbered as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `0`: handshake data, sent by the server.
    Open,
    /// `1`: the transport is closing.
    Close,
    /// `2`: heartbeat request (server to client in v4, client to server in v3).
    Ping,
    /// `3`: heartbeat answer.
    Pong,
    /// `4`: application data.
    Message,
    /// `5`: the client switches to the new transport.
    Upgrade,
    /// `6`: no operation, used to release a pending poll.
    Noop,
}

impl PacketType {
    /// The wire digit of this type.
    pub fn as_char(self) -> char {
        (b'0' + self as u8) as char
    }

    /// The type for a wire digit.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            b'0' => PacketType::Open,
            b'1' => PacketType::Close,
            b'2' => PacketType::Ping,
            b'3' => PacketType::Pong,
            b'4' => PacketType::Message,
            b'5' => PacketType::Upgrade,
            b'6' => PacketType::Noop,
            _ => return None,
        })
    }

    /// The name engine.io uses in its `packet` events (`"message"`, `"ping"`...).
    pub fn name(self) -> &'static str {
        match self {
            PacketType::Open => "open",
            PacketType::Close => "close",
            PacketType::Ping => "ping",
            PacketType::Pong => "pong",
            PacketType::Message => "message",
            PacketType::Upgrade => "upgrade",
            PacketType::Noop => "noop",
        }
    }
}

/// What a packet carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PacketData {
    /// No data (`2`, `6`, ...).
    #[default]
    Empty,
    /// Text data.
    Text(Str),
    /// Binary data (only meaningful for `message` packets).
    Binary(Bytes),
}

impl PacketData {
    /// The length engine.io compares with `maxHttpBufferSize`: bytes for
    /// binary, UTF-8 bytes for text.
    pub fn len(&self) -> usize {
        match self {
            PacketData::Empty => 0,
            PacketData::Text(s) => s.len(),
            PacketData::Binary(b) => b.len(),
        }
    }

    /// Whether there is no data at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The packet type.
    pub kind: PacketType,
    /// The packet data.
    pub data: PacketData,
}

impl Packet {
    /// A packet with no data.
    pub const fn empty(kind: PacketType) -> Self {
        Packet {
            kind,
            data: PacketData::Empty,
        }
    }

    /// A packet with text data.
    pub fn text(kind: PacketType, s: impl Into<Str>) -> Self {
        Packet {
            kind,
            data: PacketData::Text(s.into()),
        }
    }

    /// A `message` packet carrying binary data.
    pub fn binary(data: Bytes) -> Self {
        Packet {
            kind: PacketType::Message,
            data: PacketData::Binary(data),
        }
    }

    /// Encodes the packet as one v4 WebSocket frame for a client that
    /// accepts binary frames (the usual case; see [`Packet::to_ws_frame_with`]).
    pub fn to_ws_frame(&self) -> WsFrame {
        self.to_ws_frame_with(true)
    }

    /// Encodes the packet as one v4 WebSocket frame.
    ///
    /// `supports_binary` is false when the client asked for `b64=1`; engine.io
    /// then sends binary data as a `b<base64>` text frame, as in payloads.
    pub fn to_ws_frame_with(&self, supports_binary: bool) -> WsFrame {
        match &self.data {
            PacketData::Binary(b) if supports_binary => WsFrame::Binary(b.clone()),
            PacketData::Binary(_) => {
                let mut out = String::new();
                self.encode_text_into(&mut out);
                WsFrame::Text(Str::from(out))
            }
            PacketData::Empty => WsFrame::Text(Str::from_static(type_str(self.kind))),
            PacketData::Text(s) => {
                let mut out = String::with_capacity(1 + s.len());
                out.push(self.kind.as_char());
                out.push_str(s);
                WsFrame::Text(Str::from(out))
            }
        }
    }

    /// Appends the polling text encoding of this packet (v4): the type digit
    /// and text, or `b` and base64 for binary.
    pub fn encode_text_into(&self, out: &mut String) {
        match &self.data {
            PacketData::Binary(b) => {
                out.push('b');
                base64::engine::general_purpose::STANDARD.encode_string(b, out);
            }
            PacketData::Empty => out.push(self.kind.as_char()),
            PacketData::Text(s) => {
                out.push(self.kind.as_char());
                out.push_str(s);
            }
        }
    }
}

fn type_str(kind: PacketType) -> &'static str {
    match kind {
        PacketType::Open => "0",
        PacketType::Close => "1",
        PacketType::Ping => "2",
        PacketType::Pong => "3",
        PacketType::Message => "4",
        PacketType::Upgrade => "5",
        PacketType::Noop => "6",
    }
}

/// A WebSocket frame's content, as the codec produces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsFrame {
    /// A text frame.
    Text(Str),
    /// A binary frame.
    Binary(Bytes),
}

/// Why bytes could not be read as a packet. engine.io turns each of these
/// into an `error` packet, which closes the session with `parse error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// An empty packet.
    Empty,
    /// A type digit outside `0`..`6`.
    UnknownType,
    /// A `b` packet whose base64 is invalid.
    ///
    /// No decoder in this crate returns it: engine.io decodes base64 with
    /// Node's lenient `Buffer.from(s, "base64")`, which never fails, and so
    /// do we. Kept so that code matching on it keeps compiling.
    InvalidBase64,
    /// A v3 payload whose length prefix is missing, malformed or too long.
    InvalidLength,
    /// Binary content where text was expected, or bytes that are not UTF-8.
    InvalidContent,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::Empty => "empty packet",
            DecodeError::UnknownType => "unknown packet type",
            DecodeError::InvalidBase64 => "invalid base64",
            DecodeError::InvalidLength => "invalid payload length",
            DecodeError::InvalidContent => "invalid content",
        })
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one text-encoded packet (a WebSocket text frame, or one part of a
/// v4 polling payload): a type digit and data, or `b` and base64.
///
/// Like engine.io-parser, a `b` packet always decodes: the base64 is read
/// the way Node reads it (invalid characters skipped, stop at `=`), so
/// `b!!` is an empty binary message rather than an error.
pub fn decode_packet(s: Str) -> Result<Packet, DecodeError> {
    let first = *s.as_bytes().first().ok_or(DecodeError::Empty)?;
    if first == b'b' {
        let bin = super::node_b64::decode_str(&s.as_str()[1..]);
        return Ok(Packet::binary(Bytes::from(bin)));
    }
    let kind = PacketType::from_byte(first).ok_or(DecodeError::UnknownType)?;
    let data = if s.len() > 1 {
        PacketData::Text(s.slice_from(1))
    } else {
        PacketData::Empty
    };
    Ok(Packet { kind, data })
}

/// Decodes one v4 WebSocket frame: text frames as [`decode_packet`], binary
/// frames as a `message` carrying the frame's bytes (v4 binary frames have no
/// type byte).
pub fn decode_ws_frame(frame: WsFrame) -> Result<Packet, DecodeError> {
    match frame {
        WsFrame::Text(s) => decode_packet(s),
        WsFrame::Binary(b) => Ok(Packet::binary(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Result<Packet, DecodeError> {
        decode_packet(Str::from(s))
    }

    #[test]
    fn decodes_every_type_digit() {
        let kinds = [
            PacketType::Open,
            PacketType::Close,
            PacketType::Ping,
            PacketType::Pong,
            PacketType::Message,
            PacketType::Upgrade,
            PacketType::Noop,
        ];
        for (i, kind) in kinds.into_iter().enumerate() {
            let digit = (b'0' + i as u8) as char;
            assert_eq!(kind.as_char(), digit);
            assert_eq!(PacketType::from_byte(digit as u8), Some(kind));
            assert_eq!(dec(&digit.to_string()).unwrap(), Packet::empty(kind));
            assert_eq!(dec(&format!("{digit}x")).unwrap(), Packet::text(kind, "x"));
        }
        assert_eq!(PacketType::from_byte(b'7'), None);
    }

    #[test]
    fn decodes_types_and_data() {
        let p = dec("4hello").unwrap();
        assert_eq!(p.kind, PacketType::Message);
        assert_eq!(p.data, PacketData::Text(Str::from("hello")));
        assert_eq!(dec("2").unwrap(), Packet::empty(PacketType::Ping));
        assert_eq!(
            dec("2probe").unwrap(),
            Packet::text(PacketType::Ping, "probe")
        );
    }

    #[test]
    fn empty_message_has_no_data() {
        // engine.io-parser returns `{type: "message"}` without `data` for "4".
        assert_eq!(dec("4").unwrap(), Packet::empty(PacketType::Message));
        // ...and encodes an empty string the same way, so "" does not survive.
        assert_eq!(
            Packet::text(PacketType::Message, "").to_ws_frame(),
            WsFrame::Text(Str::from("4"))
        );
    }

    #[test]
    fn keeps_unicode_and_separators_in_data() {
        assert_eq!(
            dec("4h\u{e9}\u{1f600}\u{2028}").unwrap(),
            Packet::text(PacketType::Message, "h\u{e9}\u{1f600}\u{2028}")
        );
        // A record separator is only special in payloads, not in one frame.
        assert_eq!(
            dec("4a\x1eb").unwrap(),
            Packet::text(PacketType::Message, "a\x1eb")
        );
        assert_eq!(dec("4 ").unwrap(), Packet::text(PacketType::Message, " "));
        assert_eq!(dec("44").unwrap(), Packet::text(PacketType::Message, "4"));
    }

    #[test]
    fn data_shares_the_input_buffer() {
        let input = Str::from("4shared");
        let p = decode_packet(input.clone()).unwrap();
        let PacketData::Text(t) = p.data else {
            panic!()
        };
        assert_eq!(t.as_ptr(), input[1..].as_ptr());
    }

    #[test]
    fn decodes_base64_binary() {
        assert_eq!(
            dec("bAQID").unwrap(),
            Packet::binary(Bytes::from_static(&[1, 2, 3]))
        );
        assert_eq!(dec("b").unwrap(), Packet::binary(Bytes::new()));
        assert_eq!(
            dec("bAQIDBA==").unwrap(),
            Packet::binary(Bytes::from_static(&[1, 2, 3, 4]))
        );
    }

    #[test]
    fn base64_is_as_lenient_as_node() {
        // Buffer.from("!!", "base64") is empty; engine.io delivers it.
        assert_eq!(dec("b!!").unwrap(), Packet::binary(Bytes::new()));
        // Missing padding, URL-safe alphabet, whitespace, junk after "=".
        assert_eq!(
            dec("bAQIDBA").unwrap(),
            Packet::binary(Bytes::from_static(&[1, 2, 3, 4]))
        );
        assert_eq!(
            dec("b-_-_").unwrap(),
            Packet::binary(Bytes::from_static(&[0xfb, 0xff, 0xbf]))
        );
        assert_eq!(
            dec("bAQ ID").unwrap(),
            Packet::binary(Bytes::from_static(&[1, 2, 3]))
        );
        assert_eq!(
            dec("bAQ==AQID").unwrap(),
            Packet::binary(Bytes::from_static(&[1]))
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(dec(""), Err(DecodeError::Empty));
        assert_eq!(dec("9x"), Err(DecodeError::UnknownType));
        assert_eq!(dec("7"), Err(DecodeError::UnknownType));
        assert_eq!(dec("x"), Err(DecodeError::UnknownType));
        assert_eq!(dec(" 4"), Err(DecodeError::UnknownType));
        assert_eq!(dec("B"), Err(DecodeError::UnknownType));
        assert_eq!(dec("\u{e9}"), Err(DecodeError::UnknownType));
        assert_eq!(dec("\u{ff14}"), Err(DecodeError::UnknownType));
    }

    #[test]
    fn ws_frames() {
        assert_eq!(
            Packet::text(PacketType::Message, "h\u{e9}").to_ws_frame(),
            WsFrame::Text(Str::from("4h\u{e9}"))
        );
        assert_eq!(
            Packet::empty(PacketType::Ping).to_ws_frame(),
            WsFrame::Text(Str::from("2"))
        );
        assert_eq!(
            Packet::binary(Bytes::from_static(b"\x00\x01")).to_ws_frame(),
            WsFrame::Binary(Bytes::from_static(b"\x00\x01"))
        );
        assert_eq!(
            Packet::binary(Bytes::from_static(b"\x00\x01")).to_ws_frame_with(false),
            WsFrame::Text(Str::from("bAAE="))
        );
        assert_eq!(
            Packet::text(PacketType::Pong, "probe").to_ws_frame_with(false),
            WsFrame::Text(Str::from("3probe"))
        );
    }

    #[test]
    fn decodes_ws_frames() {
        assert_eq!(
            decode_ws_frame(WsFrame::Binary(Bytes::from_static(b"\x02x"))).unwrap(),
            Packet::binary(Bytes::from_static(b"\x02x"))
        );
        assert_eq!(
            decode_ws_frame(WsFrame::Binary(Bytes::new())).unwrap(),
            Packet::binary(Bytes::new())
        );
        assert_eq!(
            decode_ws_frame(WsFrame::Text(Str::from("3probe"))).unwrap(),
            Packet::text(PacketType::Pong, "probe")
        );
        assert_eq!(
            decode_ws_frame(WsFrame::Text(Str::new())),
            Err(DecodeError::Empty)
        );
    }

    #[test]
    fn binary_ignores_the_packet_type_when_encoding() {
        // engine.io-parser only looks at the data when it is binary.
        let p = Packet {
            kind: PacketType::Ping,
            data: PacketData::Binary(Bytes::from_static(&[1])),
        };
        let mut out = String::new();
        p.encode_text_into(&mut out);
        assert_eq!(out, "bAQ==");
    }
}
