//! engine.io-parser's stream framing, which WebTransport uses: one
//! bidirectional stream carries every packet, each behind a length header.
//!
//! The header is one byte for lengths under 126, `126` then a big-endian
//! u16, or `127` then a big-endian u64, as in WebSocket frames. Bit `0x80`
//! of the first byte marks binary: the payload is then raw bytes (a
//! `message`); otherwise it is UTF-8 `<type><data>`.

use super::{decode_packet, Packet, PacketData, Str};
use bytes::{Buf, Bytes, BytesMut};
use std::fmt;

/// Bit of the first header byte that marks a binary payload.
const BINARY: u8 = 0x80;

/// Appends `p`, framed, to `out`.
pub fn encode_stream_packet(out: &mut Vec<u8>, p: &Packet) {
    match &p.data {
        PacketData::Binary(b) => {
            encode_header(out, b.len(), true);
            out.extend_from_slice(b);
        }
        PacketData::Empty => {
            encode_header(out, 1, false);
            out.push(p.kind.as_char() as u8);
        }
        PacketData::Text(s) => {
            encode_header(out, 1 + s.len(), false);
            out.push(p.kind.as_char() as u8);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

fn encode_header(out: &mut Vec<u8>, len: usize, binary: bool) {
    let flag = if binary { BINARY } else { 0 };
    if len < 126 {
        out.push(len as u8 | flag);
    } else if len < 65536 {
        out.push(126 | flag);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127 | flag);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// The parts of bytes [`encode_stream_packet`] wrote, in order: each
/// packet's header, then its payload. engine.io-parser's encoder stream
/// hands them on as two chunks, and readers of a WebTransport stream (some
/// tests among them) see its chunks as written. Stops at bytes that do not
/// hold a whole packet.
pub fn frame_parts(mut buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut payload: Option<&[u8]> = None;
    std::iter::from_fn(move || {
        if let Some(p) = payload.take() {
            return Some(p);
        }
        let head: usize = match *buf.first()? & 0x7f {
            126 => 3,
            127 => 9,
            _ => 1,
        };
        let len = match head {
            1 => usize::from(buf[0] & 0x7f),
            3 => usize::from(u16::from_be_bytes(buf.get(1..3)?.try_into().ok()?)),
            _ => usize::try_from(u64::from_be_bytes(buf.get(1..9)?.try_into().ok()?)).ok()?,
        };
        let end = head.checked_add(len).filter(|e| *e <= buf.len())?;
        let (header, rest) = buf.split_at(head);
        let (body, rest) = rest.split_at(end - head);
        buf = rest;
        payload = Some(body);
        Some(header)
    })
}

/// Why a stream can no longer be read: engine.io-parser yields its `error`
/// packet for each, which closes the session with `parse error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    /// A header announced an empty packet.
    Empty,
    /// A header announced more than `maxHttpBufferSize` bytes (or more than
    /// JavaScript's safe integers, which engine.io-parser refuses).
    TooLarge,
    /// A text packet of no known type.
    UnknownType,
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamError::Empty => "empty packet",
            StreamError::TooLarge => "packet over maxHttpBufferSize",
            StreamError::UnknownType => "unknown packet type",
        })
    }
}

impl std::error::Error for StreamError {}

/// Where the decoder is within the current packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Length16,
    Length64,
    Payload,
}

/// Reads framed packets from the chunks of a stream, as engine.io-parser's
/// `createPacketDecoderStream(maxPayload)` does; keeps only the bytes of
/// an incomplete packet between chunks.
#[derive(Debug)]
pub struct StreamDecoder {
    max: usize,
    state: State,
    binary: bool,
    expected: usize,
    buf: BytesMut,
    failed: Option<StreamError>,
}

impl StreamDecoder {
    /// A decoder that refuses packets over `max` bytes.
    pub fn new(max: usize) -> Self {
        StreamDecoder {
            max,
            state: State::Header,
            binary: false,
            expected: 0,
            buf: BytesMut::new(),
            failed: None,
        }
    }

    /// Bytes of an incomplete packet held.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether bytes of a packet are pending: the stream ending now would
    /// cut one short.
    pub fn mid_packet(&self) -> bool {
        self.state != State::Header || !self.buf.is_empty()
    }

    /// Appends the packets `chunk` completes to `out`. After an error the
    /// stream is unreadable: every later call returns it again.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Packet>) -> Result<(), StreamError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        self.buf.extend_from_slice(chunk);
        let r = self.run(out);
        if let Err(e) = r {
            self.failed = Some(e);
            self.buf = BytesMut::new();
        } else if self.buf.is_empty() && self.buf.capacity() > 64 * 1024 {
            // An idle stream holds no large buffer between packets.
            self.buf = BytesMut::new();
        }
        r
    }

    fn run(&mut self, out: &mut Vec<Packet>) -> Result<(), StreamError> {
        loop {
            match self.state {
                State::Header => {
                    if self.buf.is_empty() {
                        return Ok(());
                    }
                    let b = self.buf.get_u8();
                    self.binary = b & BINARY != 0;
                    self.expected = usize::from(b & 0x7f);
                    self.state = match self.expected {
                        126 => State::Length16,
                        127 => State::Length64,
                        _ => State::Payload,
                    };
                }
                State::Length16 => {
                    if self.buf.len() < 2 {
                        return Ok(());
                    }
                    self.expected = usize::from(self.buf.get_u16());
                    self.state = State::Payload;
                }
                State::Length64 => {
                    if self.buf.len() < 8 {
                        return Ok(());
                    }
                    let n = self.buf.get_u64();
                    // engine.io-parser reads a JavaScript number.
                    if n > (1 << 53) - 1 {
                        return Err(StreamError::TooLarge);
                    }
                    self.expected = usize::try_from(n).unwrap_or(usize::MAX);
                    self.state = State::Payload;
                }
                State::Payload => {
                    if self.buf.len() < self.expected {
                        // Room for the rest of the packet in one go.
                        self.buf.reserve(self.expected - self.buf.len());
                        return Ok(());
                    }
                    let data = self.buf.split_to(self.expected).freeze();
                    out.push(self.packet(data)?);
                    self.state = State::Header;
                }
            }
            // engine.io-parser's check, after every step (so the length of
            // the packet just read is checked again, harmlessly).
            if self.expected == 0 {
                return Err(StreamError::Empty);
            }
            if self.expected > self.max {
                return Err(StreamError::TooLarge);
            }
        }
    }

    fn packet(&self, data: Bytes) -> Result<Packet, StreamError> {
        if self.binary {
            return Ok(Packet::binary(data));
        }
        // TextDecoder's way: invalid UTF-8 becomes U+FFFD.
        let text = match Str::from_utf8(data.clone()) {
            Ok(s) => s,
            Err(_) => Str::from(String::from_utf8_lossy(&data).into_owned()),
        };
        // Not empty (checked above), so only an unknown type fails.
        decode_packet(text).map_err(|_| StreamError::UnknownType)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::PacketType;

    fn decode_all(bytes: &[u8], max: usize) -> (Vec<Packet>, Result<(), StreamError>) {
        let mut d = StreamDecoder::new(max);
        let mut out = Vec::new();
        let r = d.feed(bytes, &mut out);
        (out, r)
    }

    #[test]
    fn headers_match_engine_io_parser() {
        let mut out = Vec::new();
        encode_stream_packet(&mut out, &Packet::empty(PacketType::Open));
        assert_eq!(out, [1, b'0']);
        out.clear();
        encode_stream_packet(&mut out, &Packet::text(PacketType::Message, "hello"));
        assert_eq!(out, b"\x064hello");
        out.clear();
        encode_stream_packet(&mut out, &Packet::binary(Bytes::from_static(&[1, 2, 3])));
        assert_eq!(out, [0x83, 1, 2, 3]);
        out.clear();
        encode_stream_packet(&mut out, &Packet::binary(Bytes::from(vec![0; 200])));
        assert_eq!(&out[..3], [126 | 0x80, 0, 200]);
        out.clear();
        encode_stream_packet(&mut out, &Packet::binary(Bytes::from(vec![0; 70_000])));
        assert_eq!(&out[..9], [255, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn round_trips_byte_by_byte() {
        let packets = vec![
            Packet::empty(PacketType::Open),
            Packet::text(PacketType::Message, "héllo"),
            Packet::binary(Bytes::from(vec![7; 300])),
            Packet::text(PacketType::Message, "x".repeat(70_000)),
            Packet::text(PacketType::Ping, "probe"),
        ];
        let mut wire = Vec::new();
        for p in &packets {
            encode_stream_packet(&mut wire, p);
        }
        let mut d = StreamDecoder::new(1 << 20);
        let mut out = Vec::new();
        for b in &wire {
            d.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(out, packets);
        assert!(!d.mid_packet());
    }

    #[test]
    fn refuses_what_engine_io_parser_refuses() {
        // An empty packet.
        assert_eq!(decode_all(&[0], 100).1, Err(StreamError::Empty));
        // Over the limit, refused at the header, before any payload.
        assert_eq!(decode_all(&[0x80 | 101], 100).1, Err(StreamError::TooLarge));
        assert_eq!(
            decode_all(&[126, 0x10, 0], 1000).1,
            Err(StreamError::TooLarge)
        );
        // Past JavaScript's safe integers.
        assert_eq!(
            decode_all(&[127, 0, 0x20, 0, 0, 0, 0, 0, 0], usize::MAX).1,
            Err(StreamError::TooLarge)
        );
        // Packets before the bad one are delivered; nothing after it.
        let (out, r) = decode_all(b"\x024a\x00\x024b", 100);
        assert_eq!(out, vec![Packet::text(PacketType::Message, "a")]);
        assert_eq!(r, Err(StreamError::Empty));
        let mut d = StreamDecoder::new(100);
        let mut out = Vec::new();
        assert!(d.feed(&[0], &mut out).is_err());
        assert_eq!(d.feed(b"\x024a", &mut out), Err(StreamError::Empty));
        assert!(out.is_empty());
    }

    #[test]
    fn text_is_decoded_as_text_decoder_does() {
        // Invalid UTF-8 becomes U+FFFD; `b` is base64 binary.
        let (out, r) = decode_all(b"\x024\xff\x05bAQI=", 100);
        r.unwrap();
        assert_eq!(
            out,
            vec![
                Packet::text(PacketType::Message, "\u{fffd}"),
                Packet::binary(Bytes::from_static(&[1, 2])),
            ]
        );
        // An unknown type is engine.io-parser's error packet.
        assert_eq!(decode_all(b"\x019", 100).1, Err(StreamError::UnknownType));
    }

    #[test]
    fn parts_are_headers_and_payloads() {
        let mut wire = Vec::new();
        encode_stream_packet(&mut wire, &Packet::text(PacketType::Pong, "probe"));
        encode_stream_packet(&mut wire, &Packet::binary(Bytes::from(vec![9; 300])));
        let parts: Vec<&[u8]> = frame_parts(&wire).collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], [6]);
        assert_eq!(parts[1], b"3probe");
        assert_eq!(parts[2], [0x80 | 126, 1, 44]);
        assert_eq!(parts[3].len(), 300);
        assert_eq!(frame_parts(&[5, b'4']).count(), 0);
    }

    #[test]
    fn holds_only_an_incomplete_packet() {
        let mut d = StreamDecoder::new(1 << 20);
        let mut out = Vec::new();
        d.feed(&[126, 1, 0, b'4'], &mut out).unwrap();
        assert!(d.mid_packet());
        assert_eq!(d.buffered(), 1);
        d.feed(&vec![b'a'; 255], &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(d.buffered(), 0);
    }
}
