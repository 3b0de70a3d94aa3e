//! Engine.IO protocol v3 (Socket.IO v2 clients), byte for byte as engine.io's
//! `parser-v3` encodes and decodes it on the server.
//!
//! Three encodings exist:
//! - the string payload of polling, `<length>:<packet>` repeated, where
//!   `<length>` counts UTF-16 code units (JavaScript's `string.length`) and
//!   binary packets travel as `b<type><base64>`;
//! - the binary payload of polling, sent to clients that did not ask for
//!   `b64=1` whenever a packet carries binary data: per packet a flag byte
//!   (0 text, 1 binary), the decimal digits of the length as bytes 0-9, a 255
//!   byte, then the packet with text as UTF-8 and binary as a type byte plus
//!   the data;
//! - WebSocket frames: text frames as in string payloads, binary frames as a
//!   type byte plus the data.
//!
//! parser-v3 can produce packets of no known type (`{type: undefined}`), for
//! instance from a binary frame whose first byte is 9. engine.io does not
//! treat them as errors: the socket ignores them, except that during an
//! upgrade probe any such packet makes engine.io give up the upgrade. Single
//! frame decoders therefore return `Ok(None)` for them; payload decoders skip
//! them, since polling never carries an upgrade probe.
//!
//! The engine must stop feeding a payload's packets to the session after a
//! `close` packet, as engine.io does.

use super::{node_b64, DecodeError, Packet, PacketData, PacketType, Str, WsFrame};
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt::Write as _;

/// The packet type whose number (not digit) is `n`, as binary encodings
/// carry it.
fn kind_from_number(n: u8) -> Option<PacketType> {
    n.checked_add(b'0').and_then(PacketType::from_byte)
}

/// JavaScript's `string.length` of `s`: UTF-16 code units.
pub fn utf16_len(s: &str) -> usize {
    s.bytes()
        .map(|b| match b {
            0x80..=0xbf => 0,
            0xf0..=0xff => 2,
            _ => 1,
        })
        .sum()
}

/// Appends the v3 text form of a packet: the type digit and text, or for
/// binary data `b`, the type digit and base64.
pub fn encode_packet_text_into(p: &Packet, out: &mut String) {
    match &p.data {
        PacketData::Binary(b) => {
            out.push('b');
            out.push(p.kind.as_char());
            base64::engine::general_purpose::STANDARD.encode_string(b, out);
        }
        PacketData::Empty => out.push(p.kind.as_char()),
        PacketData::Text(s) => {
            out.push(p.kind.as_char());
            out.push_str(s);
        }
    }
}

/// The `string.length` of a packet's v3 text form, without building it.
fn text_form_len(p: &Packet) -> usize {
    match &p.data {
        PacketData::Binary(b) => 2 + b.len().div_ceil(3) * 4,
        PacketData::Empty => 1,
        PacketData::Text(s) => 1 + utf16_len(s),
    }
}

/// Encodes packets as a v3 string payload: `<length>:<packet>` for each,
/// binary data as base64. No packets encode as `0:`, as engine.io sends.
pub fn encode_payload_string(packets: &[Packet]) -> String {
    if packets.is_empty() {
        return "0:".to_owned();
    }
    let cap = packets
        .iter()
        .map(|p| p.data.len() * 4 / 3 + 8)
        .sum::<usize>();
    let mut out = String::with_capacity(cap);
    for p in packets {
        // Writing to a String cannot fail.
        let _ = write!(out, "{}:", text_form_len(p));
        encode_packet_text_into(p, &mut out);
    }
    out
}

/// Appends a binary-payload length header: flag, decimal digits as bytes
/// 0-9, then 255.
fn put_length_header(out: &mut BytesMut, binary: bool, len: usize) {
    out.put_u8(binary as u8);
    for d in len.to_string().bytes() {
        out.put_u8(d - b'0');
    }
    out.put_u8(255);
}

/// Encodes packets as a v3 binary payload (parser-v3's
/// `encodePayloadAsBinary`). No packets encode as no bytes.
pub fn encode_payload_binary(packets: &[Packet]) -> Bytes {
    let cap = packets.iter().map(|p| p.data.len() + 8).sum::<usize>();
    let mut out = BytesMut::with_capacity(cap);
    for p in packets {
        match &p.data {
            PacketData::Binary(b) => {
                put_length_header(&mut out, true, 1 + b.len());
                out.put_u8(p.kind as u8);
                out.put_slice(b);
            }
            PacketData::Empty => {
                put_length_header(&mut out, false, 1);
                out.put_u8(p.kind.as_char() as u8);
            }
            PacketData::Text(s) => {
                // parser-v3 UTF-8-encodes text here, and counts its bytes.
                put_length_header(&mut out, false, 1 + s.len());
                out.put_u8(p.kind.as_char() as u8);
                out.put_slice(s.as_bytes());
            }
        }
    }
    out.freeze()
}

/// An encoded v3 polling payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A string payload, sent as `text/plain; charset=UTF-8`.
    Text(String),
    /// A binary payload, sent as `application/octet-stream`.
    Binary(Bytes),
}

impl Payload {
    /// The `Content-Type` engine.io's polling transport sends this with.
    pub fn content_type(&self) -> &'static str {
        match self {
            Payload::Text(_) => "text/plain; charset=UTF-8",
            Payload::Binary(_) => "application/octet-stream",
        }
    }
}

/// Encodes packets for a v3 polling response as engine.io chooses: binary
/// when the client supports binary (it did not send `b64`) and some packet
/// carries binary data, a string otherwise.
pub fn encode_payload(packets: &[Packet], supports_binary: bool) -> Payload {
    let has_binary = packets
        .iter()
        .any(|p| matches!(p.data, PacketData::Binary(_)));
    if supports_binary && has_binary {
        Payload::Binary(encode_payload_binary(packets))
    } else {
        Payload::Text(encode_payload_string(packets))
    }
}

/// Encodes a packet as one v3 WebSocket frame. Binary data goes in a binary
/// frame after a type byte, or, if the client asked for `b64=1`, as a
/// `b<type><base64>` text frame.
pub fn encode_packet_ws_v3(p: &Packet, supports_binary: bool) -> WsFrame {
    match &p.data {
        PacketData::Binary(b) if supports_binary => {
            let mut out = BytesMut::with_capacity(1 + b.len());
            out.put_u8(p.kind as u8);
            out.put_slice(b);
            WsFrame::Binary(out.freeze())
        }
        _ => {
            let mut out = String::with_capacity(text_form_len(p));
            encode_packet_text_into(p, &mut out);
            WsFrame::Text(Str::from(out))
        }
    }
}

/// Decodes the part after `b` of a base64 packet. parser-v3 looks its type
/// up without checking it, so anything but a digit 0-6 yields no packet.
fn decode_base64_packet(msg: &str) -> Option<Packet> {
    let kind = PacketType::from_byte(*msg.as_bytes().first()?)?;
    let data = node_b64::decode_str(&msg[1..]);
    Some(Packet {
        kind,
        data: PacketData::Binary(Bytes::from(data)),
    })
}

/// Decodes one v3 text packet: a WebSocket text frame, or one message of a
/// string payload. `Ok(None)` is a `b` packet of no known type (see the
/// module documentation).
pub fn decode_packet_v3(s: Str) -> Result<Option<Packet>, DecodeError> {
    let first = *s.as_bytes().first().ok_or(DecodeError::Empty)?;
    if first == b'b' {
        return Ok(decode_base64_packet(&s.as_str()[1..]));
    }
    let kind = PacketType::from_byte(first).ok_or(DecodeError::UnknownType)?;
    let data = if s.len() > 1 {
        PacketData::Text(s.slice_from(1))
    } else {
        PacketData::Empty
    };
    Ok(Some(Packet { kind, data }))
}

/// Decodes one v3 binary WebSocket frame: a type byte (0-6), then binary
/// data, which may be empty. Binary frames never fail to decode; a missing
/// or unknown type byte gives `None` (see the module documentation).
pub fn decode_binary_packet_v3(frame: Bytes) -> Option<Packet> {
    let kind = kind_from_number(*frame.first()?)?;
    Some(Packet {
        kind,
        data: PacketData::Binary(frame.slice(1..)),
    })
}

/// Decodes one v3 WebSocket frame of either kind.
pub fn decode_ws_frame_v3(frame: WsFrame) -> Result<Option<Packet>, DecodeError> {
    match frame {
        WsFrame::Text(s) => decode_packet_v3(s),
        WsFrame::Binary(b) => Ok(decode_binary_packet_v3(b)),
    }
}

/// Whether JavaScript's `Number()` trims `c` as white space.
fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// JavaScript's `Number(s)`: parser-v3 reads length prefixes with it, so
/// `" 6"`, `"6.0"`, `"0x6"` and `"6e0"` are all valid lengths of 6.
fn js_number(s: &str) -> f64 {
    let t = s.trim_matches(is_js_space);
    if t.is_empty() {
        return 0.0;
    }
    let b = t.as_bytes();
    if b.len() > 2 && b[0] == b'0' {
        let radix = match b[1] {
            b'x' | b'X' => 16,
            b'o' | b'O' => 8,
            b'b' | b'B' => 2,
            _ => 0,
        };
        if radix != 0 {
            let mut v = 0f64;
            for &c in &b[2..] {
                match (c as char).to_digit(radix) {
                    Some(d) => v = v * radix as f64 + d as f64,
                    None => return f64::NAN,
                }
            }
            return v;
        }
    }
    let (sign, body) = match b[0] {
        b'+' => (1.0, &t[1..]),
        b'-' => (-1.0, &t[1..]),
        _ => (1.0, t),
    };
    if body == "Infinity" {
        return sign * f64::INFINITY;
    }
    // Rust's float grammar is JavaScript's decimal grammar plus "inf" and
    // "nan" and a sign, which these checks exclude.
    let starts_well = body
        .as_bytes()
        .first()
        .is_some_and(|c| c.is_ascii_digit() || *c == b'.');
    let charset_ok = body
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !starts_well || !charset_ok {
        return f64::NAN;
    }
    body.parse::<f64>().map_or(f64::NAN, |v| sign * v)
}

/// Where the first `n` UTF-16 code units of a string end.
#[derive(Debug, PartialEq, Eq)]
enum Prefix {
    /// After this many bytes.
    Bytes(usize),
    /// Inside the surrogate pair of the character starting at this byte:
    /// the prefix ends with that pair's high surrogate, `high`.
    Split { at: usize, high: u16 },
}

/// Where the first `n` UTF-16 code units of `s` end.
fn utf16_prefix(s: &str, n: usize) -> Result<Prefix, DecodeError> {
    if n > s.len() {
        return Err(DecodeError::InvalidLength);
    }
    if s.as_bytes()[..n].is_ascii() {
        return Ok(Prefix::Bytes(n));
    }
    let mut units = 0;
    for (i, c) in s.char_indices() {
        if units == n {
            return Ok(Prefix::Bytes(i));
        }
        units += c.len_utf16();
        if units > n {
            let mut pair = [0u16; 2];
            c.encode_utf16(&mut pair);
            return Ok(Prefix::Split {
                at: i,
                high: pair[0],
            });
        }
    }
    if units == n {
        Ok(Prefix::Bytes(s.len()))
    } else {
        Err(DecodeError::InvalidLength)
    }
}

/// Decodes a message of a string payload whose length ends inside a
/// surrogate pair: `whole` holds its complete characters, `high` the lone
/// high surrogate JavaScript leaves at its end. A `b` packet still decodes
/// exactly (Node's base64 reads the surrogate's low byte); for text, which
/// a Rust string cannot end with a lone surrogate, U+FFFD stands in for it.
fn decode_split_message(whole: &str, high: u16) -> Result<Option<Packet>, DecodeError> {
    let Some(b64) = whole.strip_prefix('b') else {
        let mut s = String::with_capacity(whole.len() + 3);
        s.push_str(whole);
        s.push('\u{fffd}');
        return decode_packet_v3(Str::from(s));
    };
    // With nothing after `b`, the type is the surrogate itself: no type.
    let Some(kind) = b64.bytes().next().and_then(PacketType::from_byte) else {
        return Ok(None);
    };
    let units = b64[1..].encode_utf16().chain(std::iter::once(high));
    let data = node_b64::decode_units(units.map(|u| u as u8), b64.len());
    Ok(Some(Packet {
        kind,
        data: PacketData::Binary(Bytes::from(data)),
    }))
}

/// Iterates the packets of a v3 string payload (see
/// [`decode_payload_string`]).
#[derive(Debug, Clone)]
pub struct StringPayloadDecoder {
    input: Str,
    pos: usize,
    pending: Option<DecodeError>,
    done: bool,
}

impl StringPayloadDecoder {
    fn fail(&mut self, e: DecodeError) -> Option<Result<Packet, DecodeError>> {
        self.done = true;
        self.pending = None;
        Some(Err(e))
    }
}

impl Iterator for StringPayloadDecoder {
    type Item = Result<Packet, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.take() {
                return self.fail(e);
            }
            if self.done {
                return None;
            }
            let rest = &self.input.as_str()[self.pos..];
            let Some(colon) = rest.find(':') else {
                self.done = true;
                // Text after the last packet is a length with no packet.
                return (!rest.is_empty()).then_some(Err(DecodeError::InvalidLength));
            };
            let spelled = &rest[..colon];
            let n = js_number(spelled);
            // parser-v3 accepts a length only if the message it slices has
            // exactly that many code units: so a whole number, in range.
            if spelled.is_empty() || !(n >= 0.0 && n.fract() == 0.0) {
                return self.fail(DecodeError::InvalidLength);
            }
            let start = self.pos + colon + 1;
            // `n` is finite and whole; beyond usize it is past the end anyway.
            let n = if n > usize::MAX as f64 {
                usize::MAX
            } else {
                n as usize
            };
            let item = match utf16_prefix(&self.input.as_str()[start..], n) {
                Err(e) => return self.fail(e),
                Ok(Prefix::Bytes(len)) => {
                    self.pos = start + len;
                    if n == 0 {
                        continue;
                    }
                    decode_packet_v3(self.input.slice(start, start + len))
                }
                Ok(Prefix::Split { at, high }) => {
                    // parser-v3 then reads the low surrogate as the start of
                    // the next length, which can never be a number.
                    self.pos = start + at + 4;
                    self.pending = Some(DecodeError::InvalidLength);
                    decode_split_message(&self.input.as_str()[start..start + at], high)
                }
            };
            match item {
                Ok(Some(p)) => return Some(Ok(p)),
                Ok(None) => continue,
                Err(e) => return self.fail(e),
            }
        }
    }
}

/// Decodes a v3 string payload, as parser-v3's `decodePayload` does with a
/// string: packets come out in order; at the first malformed part comes one
/// error and then nothing, after the packets before it (engine.io has
/// already handed those to the session by then). An empty payload is an
/// error. Packets of no known type are skipped.
///
/// The caller decodes the request body as UTF-8 the way Node does (invalid
/// sequences become U+FFFD, as [`String::from_utf8_lossy`] does).
pub fn decode_payload_string(input: impl Into<Str>) -> StringPayloadDecoder {
    let input = input.into();
    StringPayloadDecoder {
        pending: input.is_empty().then_some(DecodeError::Empty),
        input,
        pos: 0,
        done: false,
    }
}

/// Decodes UTF-8 the way utf8.js (parser-v3's `utf8.decode`, non-strict)
/// does: as strictly as Rust, except that encoded surrogates (`ED A0 80` to
/// `ED BF BF`) become U+FFFD instead of failing.
fn utf8js_decode(b: Bytes) -> Option<Str> {
    if std::str::from_utf8(&b).is_ok() {
        // SAFETY: just checked.
        return Some(unsafe { Str::from_utf8_unchecked(b) });
    }
    let mut out = String::with_capacity(b.len() + 2);
    let mut rest = &b[..];
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return Some(Str::from(out));
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // SAFETY: `valid_up_to` bytes are UTF-8.
                out.push_str(unsafe { std::str::from_utf8_unchecked(good) });
                match bad {
                    [0xed, 0xa0..=0xbf, 0x80..=0xbf, ..] => {
                        out.push('\u{fffd}');
                        rest = &bad[3..];
                    }
                    _ => return None,
                }
            }
        }
    }
}

/// Decodes a string part of a binary payload. parser-v3 reads it as
/// Latin-1, sends `b` packets to the base64 decoder as they are, and
/// UTF-8-decodes the others.
fn decode_string_part(msg: Bytes) -> Result<Option<Packet>, DecodeError> {
    let first = *msg.first().ok_or(DecodeError::Empty)?;
    if first == b'b' {
        let Some(kind) = msg.get(1).and_then(|&c| PacketType::from_byte(c)) else {
            return Ok(None);
        };
        let data = node_b64::decode_latin1(&msg[2..]);
        return Ok(Some(Packet {
            kind,
            data: PacketData::Binary(Bytes::from(data)),
        }));
    }
    let text = utf8js_decode(msg).ok_or(DecodeError::InvalidContent)?;
    let kind = PacketType::from_byte(first).ok_or(DecodeError::UnknownType)?;
    let data = if text.len() > 1 {
        PacketData::Text(text.slice_from(1))
    } else {
        PacketData::Empty
    };
    Ok(Some(Packet { kind, data }))
}

/// The `Buffer.prototype.slice(start)` of Node for a non-negative start.
fn js_slice_from(b: &Bytes, start: usize) -> Bytes {
    b.slice(start.min(b.len())..)
}

/// Splits a binary payload into (is text, bytes) parts exactly as
/// parser-v3's `decodePayloadAsBinary` does, quirks included: it spells
/// each length byte in decimal and then skips as many bytes as that
/// spelling has characters, so a length byte of 10 or more shifts
/// everything after it.
fn split_binary_payload(input: Bytes) -> Result<Vec<(bool, Bytes)>, DecodeError> {
    let mut parts = Vec::new();
    let mut tail = input;
    while !tail.is_empty() {
        let is_text = tail[0] == 0;
        // `spelled` is the length of parser-v3's `strLen` string, `len` its
        // `parseInt` (None for NaN, saturated when huge).
        let mut spelled = 0usize;
        let mut len: Option<usize> = None;
        let mut i = 1;
        loop {
            // Past the end parser-v3 appends "undefined" until its 310
            // character limit trips, so no terminator is an error.
            let &b = tail.get(i).ok_or(DecodeError::InvalidLength)?;
            if b == 255 {
                break;
            }
            if spelled > 310 {
                return Err(DecodeError::InvalidLength);
            }
            let digits = b.to_string();
            spelled += digits.len();
            for d in digits.bytes() {
                let v = len.unwrap_or(0);
                len = Some(v.saturating_mul(10).saturating_add((d - b'0') as usize));
            }
            i += 1;
        }
        tail = js_slice_from(&tail, spelled + 1);
        let msg = match len {
            // slice(1, NaN) is empty and slice(NaN) is the whole buffer.
            None => Bytes::new(),
            Some(len) => {
                let start = 1.min(tail.len());
                let end = len.saturating_add(1).min(tail.len());
                let msg = if end > start {
                    tail.slice(start..end)
                } else {
                    Bytes::new()
                };
                tail = tail.slice(end..);
                msg
            }
        };
        parts.push((is_text, msg));
    }
    Ok(parts)
}

/// Iterates the packets of a v3 binary payload (see
/// [`decode_payload_binary`]).
#[derive(Debug)]
pub struct BinaryPayloadDecoder {
    parts: std::vec::IntoIter<(bool, Bytes)>,
    pending: Option<DecodeError>,
    done: bool,
}

impl Iterator for BinaryPayloadDecoder {
    type Item = Result<Packet, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.take() {
            self.done = true;
            return Some(Err(e));
        }
        while !self.done {
            let (is_text, msg) = self.parts.next()?;
            let item = if is_text {
                decode_string_part(msg)
            } else {
                Ok(decode_binary_packet_v3(msg))
            };
            match item {
                Ok(Some(p)) => return Some(Ok(p)),
                Ok(None) => continue,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// Decodes a v3 binary payload (a POST with `Content-Type:
/// application/octet-stream`), as parser-v3's `decodePayloadAsBinary` does.
///
/// parser-v3 splits the whole body before decoding any packet, so a
/// malformed length header anywhere yields one error and no packets. After
/// that, packets come out in order up to the first undecodable one, which
/// yields an error and ends the iteration. An empty body yields nothing.
/// Packets of no known type are skipped.
pub fn decode_payload_binary(input: Bytes) -> BinaryPayloadDecoder {
    match split_binary_payload(input) {
        Ok(parts) => BinaryPayloadDecoder {
            parts: parts.into_iter(),
            pending: None,
            done: false,
        },
        Err(e) => BinaryPayloadDecoder {
            parts: Vec::new().into_iter(),
            pending: Some(e),
            done: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> Packet {
        Packet::text(PacketType::Message, s)
    }

    fn bin(b: &'static [u8]) -> Packet {
        Packet::binary(Bytes::from_static(b))
    }

    fn dec_str(s: &str) -> Vec<Result<Packet, DecodeError>> {
        decode_payload_string(s).collect()
    }

    fn dec_bin(b: &'static [u8]) -> Vec<Result<Packet, DecodeError>> {
        decode_payload_binary(Bytes::from_static(b)).collect()
    }

    #[test]
    fn utf16_lengths() {
        assert_eq!(utf16_len(""), 0);
        assert_eq!(utf16_len("abc"), 3);
        assert_eq!(utf16_len("\u{e9}"), 1);
        assert_eq!(utf16_len("\u{20ac}"), 1);
        assert_eq!(utf16_len("\u{1f600}"), 2);
    }

    #[test]
    fn encodes_string_payloads() {
        assert_eq!(encode_payload_string(&[]), "0:");
        assert_eq!(encode_payload_string(&[msg("hello")]), "6:4hello");
        assert_eq!(encode_payload_string(&[msg("")]), "1:4");
        assert_eq!(
            encode_payload_string(&[Packet::empty(PacketType::Pong), msg("hi")]),
            "1:33:4hi"
        );
        // Lengths count UTF-16 code units, not bytes or characters.
        assert_eq!(encode_payload_string(&[msg("\u{e9}")]), "2:4\u{e9}");
        assert_eq!(encode_payload_string(&[msg("\u{1f600}")]), "3:4\u{1f600}");
        assert_eq!(encode_payload_string(&[bin(&[1, 2, 3])]), "6:b4AQID");
        assert_eq!(encode_payload_string(&[bin(&[])]), "2:b4");
        assert_eq!(encode_payload_string(&[bin(&[1])]), "6:b4AQ==");
        assert_eq!(
            encode_payload_string(&[Packet::text(PacketType::Open, "{\"sid\":\"x\"}")]),
            "12:0{\"sid\":\"x\"}"
        );
    }

    #[test]
    fn encodes_binary_payloads() {
        assert_eq!(encode_payload_binary(&[]), Bytes::new());
        assert_eq!(
            encode_payload_binary(&[msg("hello")]),
            Bytes::from_static(b"\x00\x06\xff4hello")
        );
        assert_eq!(
            encode_payload_binary(&[bin(&[1, 2, 3])]),
            Bytes::from_static(b"\x01\x04\xff\x04\x01\x02\x03")
        );
        // Text is UTF-8 here and its length counts bytes.
        assert_eq!(
            encode_payload_binary(&[msg("\u{e9}")]),
            Bytes::from_static(b"\x00\x03\xff4\xc3\xa9")
        );
        // Each decimal digit of the length is a byte.
        assert_eq!(
            encode_payload_binary(&[msg("12345678901")]),
            Bytes::from_static(b"\x00\x01\x02\xff412345678901")
        );
        assert_eq!(
            encode_payload_binary(&[Packet::empty(PacketType::Noop), bin(&[9])]),
            Bytes::from_static(b"\x00\x01\xff6\x01\x02\xff\x04\x09")
        );
    }

    #[test]
    fn chooses_the_payload_kind_like_engine_io() {
        let text_only = [msg("a")];
        let mixed = [msg("a"), bin(&[1])];
        assert_eq!(
            encode_payload(&text_only, true),
            Payload::Text("2:4a".into())
        );
        assert_eq!(
            encode_payload(&mixed, false),
            Payload::Text("2:4a6:b4AQ==".into())
        );
        let p = encode_payload(&mixed, true);
        assert_eq!(p, Payload::Binary(encode_payload_binary(&mixed)));
        assert_eq!(p.content_type(), "application/octet-stream");
        assert_eq!(
            encode_payload(&[], true).content_type(),
            "text/plain; charset=UTF-8"
        );
    }

    #[test]
    fn encodes_ws_frames() {
        assert_eq!(
            encode_packet_ws_v3(&msg("h\u{e9}"), true),
            WsFrame::Text(Str::from("4h\u{e9}"))
        );
        assert_eq!(
            encode_packet_ws_v3(&Packet::text(PacketType::Pong, "probe"), true),
            WsFrame::Text(Str::from("3probe"))
        );
        assert_eq!(
            encode_packet_ws_v3(&bin(&[1, 2]), true),
            WsFrame::Binary(Bytes::from_static(&[4, 1, 2]))
        );
        assert_eq!(
            encode_packet_ws_v3(&bin(&[1, 2]), false),
            WsFrame::Text(Str::from("b4AQI="))
        );
    }

    #[test]
    fn decodes_text_frames() {
        let d = |s: &str| decode_packet_v3(Str::from(s));
        assert_eq!(d("4hello"), Ok(Some(msg("hello"))));
        assert_eq!(d("4"), Ok(Some(Packet::empty(PacketType::Message))));
        assert_eq!(
            d("2probe"),
            Ok(Some(Packet::text(PacketType::Ping, "probe")))
        );
        assert_eq!(d("5"), Ok(Some(Packet::empty(PacketType::Upgrade))));
        assert_eq!(d(""), Err(DecodeError::Empty));
        assert_eq!(d("7"), Err(DecodeError::UnknownType));
        assert_eq!(d(" 4"), Err(DecodeError::UnknownType));
        // base64 packets carry their own type digit.
        assert_eq!(d("b4AQID"), Ok(Some(bin(&[1, 2, 3]))));
        assert_eq!(d("b4"), Ok(Some(bin(&[]))));
        assert_eq!(
            d("b2AQ"),
            Ok(Some(Packet {
                kind: PacketType::Ping,
                data: PacketData::Binary(Bytes::from_static(&[1]))
            }))
        );
        assert_eq!(d("b4!!"), Ok(Some(bin(&[]))));
        // ...and no valid digit means a packet of no type, not an error.
        assert_eq!(d("b"), Ok(None));
        assert_eq!(d("b9AQID"), Ok(None));
        assert_eq!(d("bAQID"), Ok(None));
    }

    #[test]
    fn decodes_binary_frames() {
        assert_eq!(
            decode_binary_packet_v3(Bytes::from_static(&[4, 1, 2])),
            Some(bin(&[1, 2]))
        );
        assert_eq!(
            decode_binary_packet_v3(Bytes::from_static(&[4])),
            Some(bin(&[]))
        );
        assert_eq!(
            decode_binary_packet_v3(Bytes::from_static(&[0, 0x7b])),
            Some(Packet {
                kind: PacketType::Open,
                data: PacketData::Binary(Bytes::from_static(b"{"))
            })
        );
        assert_eq!(decode_binary_packet_v3(Bytes::new()), None);
        assert_eq!(decode_binary_packet_v3(Bytes::from_static(&[7, 1])), None);
        assert_eq!(decode_binary_packet_v3(Bytes::from_static(b"4x")), None);
        assert_eq!(
            decode_ws_frame_v3(WsFrame::Binary(Bytes::from_static(&[2]))),
            Ok(Some(Packet {
                kind: PacketType::Ping,
                data: PacketData::Binary(Bytes::new())
            }))
        );
        assert_eq!(
            decode_ws_frame_v3(WsFrame::Text(Str::from("2"))),
            Ok(Some(Packet::empty(PacketType::Ping)))
        );
    }

    #[test]
    fn decodes_string_payloads() {
        assert_eq!(dec_str("6:4hello"), vec![Ok(msg("hello"))]);
        assert_eq!(
            dec_str("6:4hello1:2"),
            vec![Ok(msg("hello")), Ok(Packet::empty(PacketType::Ping))]
        );
        assert_eq!(dec_str("1:4"), vec![Ok(Packet::empty(PacketType::Message))]);
        assert_eq!(dec_str("2:4\u{e9}"), vec![Ok(msg("\u{e9}"))]);
        assert_eq!(dec_str("3:4\u{1f600}"), vec![Ok(msg("\u{1f600}"))]);
        assert_eq!(dec_str("6:b4AQID"), vec![Ok(bin(&[1, 2, 3]))]);
        // A colon inside a packet is data.
        assert_eq!(dec_str("4:4a:b"), vec![Ok(msg("a:b"))]);
        // Zero-length packets are skipped, and so are untyped ones.
        assert_eq!(dec_str("0:"), vec![]);
        assert_eq!(
            dec_str("0:0:1:2"),
            vec![Ok(Packet::empty(PacketType::Ping))]
        );
        assert_eq!(dec_str("1:b2:b9"), vec![]);
        // A close packet is returned like any other; the engine stops there.
        assert_eq!(
            dec_str("1:16:4hello"),
            vec![Ok(Packet::empty(PacketType::Close)), Ok(msg("hello"))]
        );
    }

    #[test]
    fn lengths_are_read_with_javascript_number() {
        for prefix in [
            "6",
            "06",
            "+6",
            "6.0",
            "6.",
            "0x6",
            "0X6",
            "0o6",
            "0b110",
            "6e0",
            "60e-1",
            " 6",
            "6\n",
            "\u{a0}6\u{3000}",
            "\u{feff}6",
        ] {
            assert_eq!(
                dec_str(&format!("{prefix}:4hello")),
                vec![Ok(msg("hello"))],
                "prefix {prefix:?}"
            );
        }
        for zero in ["0", "00", "-0", "+0", "0x0", ".0", " ", "\t", "0e9"] {
            assert_eq!(dec_str(&format!("{zero}:")), vec![], "prefix {zero:?}");
        }
        for bad in [
            "-6",
            "6.5",
            "x",
            "6x",
            "0x",
            "0x6g",
            "-0x6",
            "Infinity",
            "-Infinity",
            "1e400",
            "1_0",
            "++6",
            "+-6",
            "inf",
            "nan",
            "6 6",
            ".",
            "e6",
            "\u{180e}6",
        ] {
            assert_eq!(
                dec_str(&format!("{bad}:4hello")),
                vec![Err(DecodeError::InvalidLength)],
                "prefix {bad:?}"
            );
        }
    }

    #[test]
    fn string_payload_errors() {
        assert_eq!(dec_str(""), vec![Err(DecodeError::Empty)]);
        assert_eq!(dec_str(":"), vec![Err(DecodeError::InvalidLength)]);
        assert_eq!(dec_str("abc"), vec![Err(DecodeError::InvalidLength)]);
        assert_eq!(dec_str("7:4hello"), vec![Err(DecodeError::InvalidLength)]);
        assert_eq!(dec_str("1:x"), vec![Err(DecodeError::UnknownType)]);
        // Packets before the error come out first, as engine.io delivers them.
        assert_eq!(
            dec_str("6:4hello:"),
            vec![Ok(msg("hello")), Err(DecodeError::InvalidLength)]
        );
        assert_eq!(
            dec_str("5:4hello"),
            vec![Ok(msg("hell")), Err(DecodeError::InvalidLength)]
        );
        assert_eq!(
            dec_str("1:21:91:2"),
            vec![
                Ok(Packet::empty(PacketType::Ping)),
                Err(DecodeError::UnknownType)
            ]
        );
        // A length that ends inside a surrogate pair: engine.io hands on the
        // packet ending in half a pair, then fails on the other half.
        assert_eq!(
            dec_str("2:4\u{1f600}"),
            vec![Ok(msg("\u{fffd}")), Err(DecodeError::InvalidLength)]
        );
        assert_eq!(
            dec_str("2:b\u{1f600}1:2"),
            vec![Err(DecodeError::InvalidLength)]
        );
        assert_eq!(dec_str("1:\u{1f600}"), vec![Err(DecodeError::UnknownType)]);
        // Node's base64 reads the low byte of the high surrogate U+D800 (0)
        // and skips it; that of U+D83D is `=`, which ends the data.
        assert_eq!(
            dec_str("5:b4AQ\u{10000}"),
            vec![Ok(bin(&[1])), Err(DecodeError::InvalidLength)]
        );
        assert_eq!(
            dec_str("7:b4AQID\u{1f600}"),
            vec![Ok(bin(&[1, 2, 3])), Err(DecodeError::InvalidLength)]
        );
        assert_eq!(
            dec_str("7:b4AQ\u{1f600}ID"),
            vec![Ok(bin(&[1])), Err(DecodeError::InvalidLength)]
        );
    }

    #[test]
    fn decodes_binary_payloads() {
        assert_eq!(dec_bin(b""), vec![]);
        assert_eq!(dec_bin(b"\x00\x06\xff4hello"), vec![Ok(msg("hello"))]);
        assert_eq!(
            dec_bin(b"\x01\x04\xff\x04\x01\x02\x03"),
            vec![Ok(bin(&[1, 2, 3]))]
        );
        assert_eq!(
            dec_bin(b"\x00\x01\xff2\x01\x02\xff\x04\x09"),
            vec![Ok(Packet::empty(PacketType::Ping)), Ok(bin(&[9]))]
        );
        // Text parts are UTF-8, decoded by utf8.js: surrogates become U+FFFD.
        assert_eq!(dec_bin(b"\x00\x03\xff4\xc3\xa9"), vec![Ok(msg("\u{e9}"))]);
        assert_eq!(
            dec_bin(b"\x00\x04\xff4\xed\xa0\x80"),
            vec![Ok(msg("\u{fffd}"))]
        );
        assert_eq!(
            dec_bin(b"\x00\x02\xff4\xff"),
            vec![Err(DecodeError::InvalidContent)]
        );
        assert_eq!(
            dec_bin(b"\x00\x03\xff4\xc0\x80"),
            vec![Err(DecodeError::InvalidContent)]
        );
        // Base64 packets inside a binary payload.
        assert_eq!(dec_bin(b"\x00\x06\xffb4AQID"), vec![Ok(bin(&[1, 2, 3]))]);
        // Any flag but 0 means binary.
        assert_eq!(dec_bin(b"\x07\x02\xff\x04\x05"), vec![Ok(bin(&[5]))]);
        // Binary parts with no or an unknown type byte are skipped.
        assert_eq!(dec_bin(b"\x01\x00\xff\x01\x02\xff\x09\x01"), vec![]);
    }

    #[test]
    fn binary_payload_errors() {
        // No 255 terminator: parser-v3 reads "undefined" until its limit.
        assert_eq!(dec_bin(b"\x00\x01"), vec![Err(DecodeError::InvalidLength)]);
        assert_eq!(dec_bin(b"\x00"), vec![Err(DecodeError::InvalidLength)]);
        // A bad header anywhere means no packets at all.
        assert_eq!(
            dec_bin(b"\x00\x01\xff2\x00\x05"),
            vec![Err(DecodeError::InvalidLength)]
        );
        // Empty text parts and unknown type digits are errors.
        assert_eq!(dec_bin(b"\x00\x00\xff"), vec![Err(DecodeError::Empty)]);
        assert_eq!(
            dec_bin(b"\x00\x01\xff2\x00\x01\xff9\x00\x01\xff2"),
            vec![
                Ok(Packet::empty(PacketType::Ping)),
                Err(DecodeError::UnknownType)
            ]
        );
        // 311 digits are accepted, a length spelled longer is not.
        let mut long = vec![1u8];
        long.resize(312, 0);
        long.push(255);
        assert_eq!(decode_payload_binary(Bytes::from(long.clone())).count(), 0);
        long.insert(1, 0);
        assert_eq!(
            decode_payload_binary(Bytes::from(long)).collect::<Vec<_>>(),
            vec![Err(DecodeError::InvalidLength)]
        );
    }

    #[test]
    fn binary_payload_length_quirks() {
        // Header byte 12 spells "12", two characters, so parser-v3 slices
        // three bytes (flag and two "digits") off the front, lands after the
        // 255, and then drops one more byte where it expects the 255. The
        // length is 12 but only [4, 1, 2] is left: a message of [1, 2].
        assert_eq!(
            dec_bin(b"\x01\x0c\xff\x04\x04\x01\x02"),
            vec![Ok(bin(&[1, 2]))]
        );
        // An empty length (255 straight after the flag) is NaN: an empty part,
        // and the tail is not advanced past the 255.
        assert_eq!(
            dec_bin(b"\x00\xff\x01\xff\x02"),
            vec![Err(DecodeError::Empty)]
        );
        // A length past the end takes what is there.
        assert_eq!(dec_bin(b"\x00\x09\xff4hi"), vec![Ok(msg("hi"))]);
    }
}
