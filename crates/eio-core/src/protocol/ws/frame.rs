//! RFC 6455 framing, server side: masked client frames in, whole messages
//! out; unmasked server frames written. No I/O here, so the unit tests and
//! the fuzz target drive it with plain byte slices.
//!
//! The checks, their order and their close codes follow `ws` (engine.io's
//! WebSocket server): 1002 for frames that break the protocol, 1007 for text
//! that is not UTF-8, 1009 for messages over the limit.

use super::deflate::Inflater;
use super::Violation;
use crate::protocol::{pool, Str};
use bytes::{Bytes, BytesMut};

/// Continuation frame.
pub const OP_CONTINUATION: u8 = 0x0;
/// Text frame.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame.
pub const OP_PING: u8 = 0x9;
/// Pong frame.
pub const OP_PONG: u8 = 0xA;

/// What the client sent: a whole data message or a control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A text message, checked as UTF-8.
    Text(Str),
    /// A binary message.
    Binary(Bytes),
    /// A ping, to be answered with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// A close frame: its code (1005 when it has none) and its payload, to
    /// echo back as `ws` does.
    Close(u16, Bytes),
}

/// A data message being assembled from fragments.
struct Fragmented {
    binary: bool,
    compressed: bool,
    data: Vec<u8>,
}

/// Turns the bytes of a connection into [`Incoming`] items.
pub struct Decoder {
    /// The start of an incomplete frame, kept between reads; empty and
    /// unallocated while the connection is idle.
    pending: BytesMut,
    /// The length of the frame `pending` starts, once its header is in.
    pending_frame: usize,
    message: Option<Fragmented>,
    /// The largest message, as `maxHttpBufferSize`; 0 is no limit (`ws`).
    max_message: usize,
    inflater: Option<Inflater>,
}

/// A parsed frame header.
struct Header {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    mask: [u8; 4],
    header_len: usize,
    payload_len: usize,
}

impl Decoder {
    /// A decoder for messages up to `max_message` bytes (0: no limit), with
    /// the receive side of permessage-deflate when it was negotiated.
    pub fn new(max_message: usize, inflater: Option<Inflater>) -> Self {
        Decoder {
            pending: BytesMut::new(),
            pending_frame: 0,
            message: None,
            max_message,
            inflater,
        }
    }

    /// Bytes this decoder holds between reads (an incomplete frame and the
    /// fragments of an incomplete message).
    pub fn buffered(&self) -> usize {
        self.pending.len() + self.message.as_ref().map_or(0, |m| m.data.len())
    }

    /// Decodes what `input` completes, pushing items to `out` in order.
    /// After an error the connection must close with the error's code.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Incoming>) -> Result<(), Violation> {
        if self.pending.is_empty() {
            let used = self.parse(input, out)?;
            if used < input.len() {
                let rest = &input[used..];
                let mut pending = BytesMut::with_capacity(rest.len().max(self.pending_frame));
                pending.extend_from_slice(rest);
                self.pending = pending;
            }
            return Ok(());
        }
        if self.pending_frame > self.pending.len() {
            // Most of a large frame still to come: take what completes it
            // and parse the rest straight from `input`.
            let need = self.pending_frame - self.pending.len();
            let take = need.min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            if take < need {
                return Ok(());
            }
            let buf = std::mem::take(&mut self.pending);
            let used = self.parse(&buf, out)?;
            debug_assert_eq!(used, buf.len());
            return self.feed(&input[take..], out);
        }
        self.pending.extend_from_slice(input);
        let buf = std::mem::take(&mut self.pending);
        let used = self.parse(&buf, out)?;
        if used < buf.len() {
            let rest = &buf[used..];
            if used == 0 {
                self.pending = buf;
            } else {
                let mut pending = BytesMut::with_capacity(rest.len().max(self.pending_frame));
                pending.extend_from_slice(rest);
                self.pending = pending;
            }
        }
        Ok(())
    }

    /// Decodes whole frames from the front of `buf`; returns the bytes used.
    fn parse(&mut self, buf: &[u8], out: &mut Vec<Incoming>) -> Result<usize, Violation> {
        let mut pos = 0;
        self.pending_frame = 0;
        while let Some(h) = self.header(&buf[pos..])? {
            let end = h.header_len + h.payload_len;
            let frame = &buf[pos..];
            if frame.len() < end {
                self.pending_frame = end;
                break;
            }
            self.frame(&h, &frame[h.header_len..end], out)?;
            pos += end;
        }
        Ok(pos)
    }

    /// Parses and checks the header at the start of `b`; `None` until it
    /// is all there.
    fn header(&self, b: &[u8]) -> Result<Option<Header>, Violation> {
        if b.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (b[0], b[1]);
        let fin = b0 & 0x80 != 0;
        let rsv1 = b0 & 0x40 != 0;
        let opcode = b0 & 0x0F;
        if b0 & 0x30 != 0 {
            return Err(protocol("RSV2 and RSV3 must be clear"));
        }
        if rsv1 && self.inflater.is_none() {
            return Err(protocol("RSV1 must be clear"));
        }
        let short_len = (b1 & 0x7F) as usize;
        match opcode {
            OP_CONTINUATION => {
                if rsv1 {
                    return Err(protocol("RSV1 must be clear"));
                }
                if self.message.is_none() {
                    return Err(protocol("invalid opcode 0"));
                }
            }
            OP_TEXT | OP_BINARY => {
                if self.message.is_some() {
                    return Err(Violation::Protocol(format!("invalid opcode {opcode}")));
                }
            }
            OP_CLOSE | OP_PING | OP_PONG => {
                if !fin {
                    return Err(protocol("FIN must be set"));
                }
                if rsv1 {
                    return Err(protocol("RSV1 must be clear"));
                }
                if short_len > 125 || (opcode == OP_CLOSE && short_len == 1) {
                    return Err(Violation::Protocol(format!(
                        "invalid payload length {short_len}"
                    )));
                }
            }
            _ => return Err(Violation::Protocol(format!("invalid opcode {opcode}"))),
        }
        if b1 & 0x80 == 0 {
            return Err(protocol("MASK must be set"));
        }
        let (payload_len, len_bytes) = match short_len {
            126 => {
                if b.len() < 4 {
                    return Ok(None);
                }
                (u16::from_be_bytes([b[2], b[3]]) as u64, 2)
            }
            127 => {
                if b.len() < 10 {
                    return Ok(None);
                }
                let n = u64::from_be_bytes(b[2..10].try_into().expect("8 bytes"));
                // `ws` refuses lengths JS numbers cannot hold.
                if n > (1 << 53) - 1 {
                    return Err(Violation::TooBig);
                }
                (n, 8)
            }
            n => (n as u64, 0),
        };
        let header_len = 2 + len_bytes + 4;
        if b.len() < header_len {
            return Ok(None);
        }
        if opcode < OP_CLOSE && self.max_message > 0 {
            let so_far = self.message.as_ref().map_or(0, |m| m.data.len()) as u64;
            if so_far + payload_len > self.max_message as u64 {
                return Err(Violation::TooBig);
            }
        }
        let payload_len = usize::try_from(payload_len).map_err(|_| Violation::TooBig)?;
        let mask = b[2 + len_bytes..header_len].try_into().expect("4 bytes");
        Ok(Some(Header {
            fin,
            rsv1,
            opcode,
            mask,
            header_len,
            payload_len,
        }))
    }

    /// Handles one whole frame whose header passed [`Decoder::header`].
    fn frame(
        &mut self,
        h: &Header,
        payload: &[u8],
        out: &mut Vec<Incoming>,
    ) -> Result<(), Violation> {
        match h.opcode {
            OP_CLOSE => {
                let data = unmasked(payload, h.mask);
                out.push(close_frame(Bytes::from(data))?);
            }
            OP_PING => out.push(Incoming::Ping(Bytes::from(unmasked(payload, h.mask)))),
            OP_PONG => out.push(Incoming::Pong),
            OP_CONTINUATION => {
                let m = self.message.as_mut().expect("checked by header()");
                let start = m.data.len();
                m.data.extend_from_slice(payload);
                unmask(&mut m.data[start..], h.mask);
                if h.fin {
                    let m = self.message.take().expect("present");
                    let item = self.complete(m.binary, m.compressed, m.data)?;
                    out.push(item);
                }
            }
            _ => {
                let binary = h.opcode == OP_BINARY;
                let data = unmasked(payload, h.mask);
                if h.fin {
                    let item = self.complete(binary, h.rsv1, data)?;
                    out.push(item);
                } else {
                    self.message = Some(Fragmented {
                        binary,
                        compressed: h.rsv1,
                        data,
                    });
                }
            }
        }
        Ok(())
    }

    /// A whole message: inflated if compressed, checked if text.
    fn complete(
        &mut self,
        binary: bool,
        compressed: bool,
        data: Vec<u8>,
    ) -> Result<Incoming, Violation> {
        let data = if compressed {
            let inflater = self.inflater.as_mut().expect("checked by header()");
            inflater.inflate(&data, self.max_message)?
        } else {
            Bytes::from(data)
        };
        if binary {
            Ok(Incoming::Binary(data))
        } else {
            Str::from_utf8(data)
                .map(Incoming::Text)
                .map_err(|_| Violation::InvalidData("invalid UTF-8 sequence"))
        }
    }
}

fn protocol(message: &str) -> Violation {
    Violation::Protocol(message.to_string())
}

/// `ws`'s rule for close codes a peer may send.
fn valid_close_code(code: u16) -> bool {
    ((1000..=1014).contains(&code) && !matches!(code, 1004..=1006)) || (3000..=4999).contains(&code)
}

fn close_frame(data: Bytes) -> Result<Incoming, Violation> {
    if data.is_empty() {
        return Ok(Incoming::Close(1005, data));
    }
    let code = u16::from_be_bytes([data[0], data[1]]);
    if !valid_close_code(code) {
        return Err(Violation::Protocol(format!("invalid status code {code}")));
    }
    if std::str::from_utf8(&data[2..]).is_err() {
        return Err(Violation::InvalidData("invalid UTF-8 sequence"));
    }
    Ok(Incoming::Close(code, data))
}

/// A copy of `payload` with the mask removed, made in one pass: copying
/// first and unmasking in place read and wrote a 16 KiB message twice.
fn unmasked(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let len = payload.len();
    let mut data = pool::take(len);
    let wide = wide_mask(mask);
    let mut to = data.spare_capacity_mut()[..len].chunks_exact_mut(8);
    let mut from = payload.chunks_exact(8);
    for (d, s) in (&mut to).zip(&mut from) {
        let v = u64::from_ne_bytes(s.try_into().expect("8 bytes")) ^ wide;
        for (d, b) in d.iter_mut().zip(v.to_ne_bytes()) {
            d.write(b);
        }
    }
    let rest = to.into_remainder().iter_mut().zip(from.remainder());
    for (i, (d, b)) in rest.enumerate() {
        d.write(b ^ mask[i & 3]);
    }
    // SAFETY: the loops wrote all `len` bytes, which the capacity holds.
    unsafe { data.set_len(len) };
    data
}

/// The mask repeated to eight bytes.
fn wide_mask(mask: [u8; 4]) -> u64 {
    u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ])
}

/// Removes (or applies) a frame mask in place, eight bytes at a time.
pub fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let wide = wide_mask(mask);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().expect("8 bytes")) ^ wide;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Appends an unmasked, unfragmented server frame to `out`.
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, rsv1: bool, payload: &[u8]) {
    encode_header(out, opcode, rsv1, payload.len());
    out.extend_from_slice(payload);
}

/// Appends the header of a server frame whose payload of `len` bytes the
/// caller appends next.
pub fn encode_header(out: &mut Vec<u8>, opcode: u8, rsv1: bool, len: usize) {
    out.reserve(len + 10);
    out.push(0x80 | if rsv1 { 0x40 } else { 0 } | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if len <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends a close frame with `code` and no reason; 1005 sends an empty
/// close frame, as `ws`'s `close()` does without a code.
pub fn encode_close(out: &mut Vec<u8>, code: u16) {
    if code == 1005 {
        encode_frame(out, OP_CLOSE, false, &[]);
    } else {
        encode_frame(out, OP_CLOSE, false, &code.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    pub(crate) fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![first];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        let mut p = payload.to_vec();
        unmask(&mut p, mask);
        out.extend_from_slice(&p);
        out
    }

    const M: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn decode(max: usize, input: &[u8]) -> (Vec<Incoming>, Result<(), Violation>) {
        let mut d = Decoder::new(max, None);
        let mut out = Vec::new();
        let r = d.feed(input, &mut out);
        (out, r)
    }

    fn text(s: &str) -> Incoming {
        Incoming::Text(Str::from(s.to_string()))
    }

    #[test]
    fn rfc_example_masked_hello() {
        // RFC 6455 §5.7: a single-frame masked text message "Hello".
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(decode(0, &bytes), (vec![text("Hello")], Ok(())));
    }

    #[test]
    fn every_split_point_gives_the_same_messages() {
        let mut input = client_frame(0x81, b"4hello", M);
        input.extend(client_frame(0x82, &[7u8; 300], M));
        input.extend(client_frame(0x01, b"4frag", M));
        input.extend(client_frame(0x89, b"p", M));
        input.extend(client_frame(0x80, b"mented", M));
        input.extend(client_frame(0x82, &vec![9u8; 70_000], M));
        let expected = vec![
            text("4hello"),
            Incoming::Binary(Bytes::from(vec![7u8; 300])),
            Incoming::Ping(Bytes::from_static(b"p")),
            text("4fragmented"),
            Incoming::Binary(Bytes::from(vec![9u8; 70_000])),
        ];
        for split in (0..input.len()).step_by(97).chain([1, 2, 3, 13, 14]) {
            let mut d = Decoder::new(0, None);
            let mut out = Vec::new();
            d.feed(&input[..split], &mut out).unwrap();
            d.feed(&input[split..], &mut out).unwrap();
            assert_eq!(out, expected, "split at {split}");
            assert_eq!(d.buffered(), 0);
        }
        // One byte at a time.
        let mut d = Decoder::new(0, None);
        let mut out = Vec::new();
        for b in &input {
            d.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(out, expected);
    }

    #[test]
    fn idle_decoder_holds_no_buffer() {
        let mut d = Decoder::new(0, None);
        let mut out = Vec::new();
        d.feed(&client_frame(0x81, b"4x", M), &mut out).unwrap();
        assert_eq!(d.pending.capacity(), 0);
    }

    #[test]
    fn protocol_violations_have_ws_messages_and_codes() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0x81, 0x01, b'a'], "MASK must be set"),
            (client_frame(0x83, b"", M), "invalid opcode 3"),
            (client_frame(0x8B, b"", M), "invalid opcode 11"),
            (client_frame(0x80, b"x", M), "invalid opcode 0"),
            (client_frame(0xC1, b"x", M), "RSV1 must be clear"),
            (client_frame(0xA1, b"x", M), "RSV2 and RSV3 must be clear"),
            (client_frame(0x91, b"x", M), "RSV2 and RSV3 must be clear"),
            (client_frame(0x09, b"", M), "FIN must be set"),
            (
                client_frame(0x89, &[0u8; 126], M),
                "invalid payload length 126",
            ),
            (client_frame(0x88, b"\x03", M), "invalid payload length 1"),
            (
                client_frame(0x88, &999u16.to_be_bytes(), M),
                "invalid status code 999",
            ),
            (
                client_frame(0x88, &1005u16.to_be_bytes(), M),
                "invalid status code 1005",
            ),
        ];
        for (input, message) in cases {
            let (_, r) = decode(0, &input);
            assert_eq!(r, Err(Violation::Protocol(message.into())), "{message}");
            assert_eq!(r.unwrap_err().code(), 1002);
        }
        let mut start_twice = client_frame(0x01, b"a", M);
        start_twice.extend(client_frame(0x81, b"b", M));
        assert_eq!(decode(0, &start_twice).1, Err(protocol("invalid opcode 1")));
    }

    #[test]
    fn valid_close_codes_are_reported() {
        for code in [1000u16, 1001, 1003, 1007, 1014, 3000, 4999] {
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(b"bye");
            let (out, r) = decode(0, &client_frame(0x88, &payload, M));
            assert_eq!(r, Ok(()));
            assert_eq!(out, vec![Incoming::Close(code, Bytes::from(payload))]);
        }
        let (out, _) = decode(0, &client_frame(0x88, b"", M));
        assert_eq!(out, vec![Incoming::Close(1005, Bytes::new())]);
    }

    #[test]
    fn invalid_utf8_is_1007() {
        let (_, r) = decode(0, &client_frame(0x81, &[0xff, 0xfe], M));
        assert_eq!(r.unwrap_err().code(), 1007);
        // Split inside a character across fragments is fine.
        let mut input = client_frame(0x01, &"é".as_bytes()[..1], M);
        input.extend(client_frame(0x80, &"é".as_bytes()[1..], M));
        assert_eq!(decode(0, &input), (vec![text("é")], Ok(())));
        let mut bad_reason = 1000u16.to_be_bytes().to_vec();
        bad_reason.push(0xff);
        assert_eq!(
            decode(0, &client_frame(0x88, &bad_reason, M))
                .1
                .unwrap_err()
                .code(),
            1007
        );
    }

    #[test]
    fn size_limit_applies_to_the_header_and_across_fragments() {
        assert_eq!(decode(10, &client_frame(0x82, &[0; 10], M)).1, Ok(()));
        // Refused from the header alone: the payload never has to arrive.
        let whole = client_frame(0x82, &[0; 11], M);
        assert_eq!(decode(10, &whole[..8]).1, Err(Violation::TooBig));
        let mut frags = client_frame(0x02, &[0; 6], M);
        frags.extend(client_frame(0x80, &[0; 5], M));
        assert_eq!(decode(10, &frags).1, Err(Violation::TooBig));
        // 64-bit lengths JS could not represent.
        let mut huge = vec![0x82, 0xFF];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(decode(0, &huge).1, Err(Violation::TooBig));
        // 0 is no limit, as in ws.
        assert_eq!(decode(0, &client_frame(0x82, &[0; 100_000], M)).1, Ok(()));
    }

    #[test]
    fn control_frames_interleave_with_fragments() {
        let mut input = client_frame(0x02, b"ab", M);
        input.extend(client_frame(0x8A, b"", M));
        input.extend(client_frame(0x80, b"cd", M));
        let (out, r) = decode(0, &input);
        assert_eq!(r, Ok(()));
        assert_eq!(
            out,
            vec![
                Incoming::Pong,
                Incoming::Binary(Bytes::from_static(b"abcd"))
            ]
        );
    }

    #[test]
    fn encodes_every_length_form() {
        for len in [0usize, 125, 126, 65_535, 65_536] {
            let mut out = Vec::new();
            encode_frame(&mut out, OP_BINARY, false, &vec![1u8; len]);
            let header = out.len() - len;
            assert_eq!(
                header,
                if len < 126 {
                    2
                } else if len < 65_536 {
                    4
                } else {
                    10
                }
            );
            assert_eq!(out[0], 0x82);
        }
        let mut out = Vec::new();
        encode_close(&mut out, 1009);
        assert_eq!(out, vec![0x88, 0x02, 0x03, 0xF1]);
        out.clear();
        encode_close(&mut out, 1005);
        assert_eq!(out, vec![0x88, 0x00]);
    }

    proptest::proptest! {
        /// Any bytes, split anywhere: the same items and the same outcome
        /// as in one read (the property the `ws_frames` fuzz target checks).
        #[test]
        fn decoding_does_not_depend_on_reads(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            split in 0usize..600,
        ) {
            let split = split.min(data.len());
            let (whole, whole_result) = decode(1000, &data);
            let mut d = Decoder::new(1000, None);
            let mut parts = Vec::new();
            let mut result = d.feed(&data[..split], &mut parts);
            if result.is_ok() {
                result = d.feed(&data[split..], &mut parts);
            }
            proptest::prop_assert_eq!(parts, whole);
            proptest::prop_assert_eq!(result, whole_result);
        }

        /// Valid frames built from arbitrary messages decode to those messages.
        #[test]
        fn masked_messages_round_trip(
            msgs in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 1..8),
            split in 0usize..3000,
        ) {
            let mut input = Vec::new();
            for m in &msgs {
                input.extend(client_frame(0x82, m, M));
            }
            let split = split.min(input.len());
            let mut d = Decoder::new(0, None);
            let mut out = Vec::new();
            d.feed(&input[..split], &mut out).unwrap();
            d.feed(&input[split..], &mut out).unwrap();
            let expected: Vec<_> = msgs.into_iter().map(|m| Incoming::Binary(Bytes::from(m))).collect();
            proptest::prop_assert_eq!(out, expected);
        }
    }

    #[test]
    fn unmask_matches_bytewise_xor() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut fast = data.clone();
            unmask(&mut fast, M);
            let slow: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ M[i % 4]).collect();
            assert_eq!(fast, slow);
            assert_eq!(unmasked(&data, M), slow);
        }
    }
}
