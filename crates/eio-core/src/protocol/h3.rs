//! The HTTP/3 and WebTransport wire pieces that a WebTransport session
//! needs on top of QUIC: varints, frames and capsules (RFC 9000, 9114, 9297
//! and draft-ietf-webtrans-http3). QPACK and SETTINGS are wtransport-proto's.
//! No I/O: `server::h3` reads and writes them on quinn's streams, for the
//! endpoint and for the test client (`crates/wt-client`).

/// A DATA frame (capsules travel in these on a CONNECT stream).
pub const FRAME_DATA: u64 = 0x00;
/// A HEADERS frame (a QPACK field section).
pub const FRAME_HEADERS: u64 = 0x01;
/// A SETTINGS frame, the first on each control stream.
pub const FRAME_SETTINGS: u64 = 0x04;
/// Starts a WebTransport bidirectional stream (followed by the session id).
pub const FRAME_WEBTRANSPORT_STREAM: u64 = 0x41;

/// The type of a control stream (unidirectional).
pub const STREAM_CONTROL: u64 = 0x00;
/// The type of a QPACK encoder stream.
pub const STREAM_QPACK_ENCODER: u64 = 0x02;
/// The type of a QPACK decoder stream.
pub const STREAM_QPACK_DECODER: u64 = 0x03;
/// The type of a WebTransport unidirectional stream.
pub const STREAM_WEBTRANSPORT: u64 = 0x54;

/// CLOSE_WEBTRANSPORT_SESSION: its payload is a 32-bit code and a reason.
pub const CAPSULE_CLOSE_SESSION: u64 = 0x2843;

/// H3_NO_ERROR, to close a connection whose session is over.
pub const H3_NO_ERROR: u32 = 0x100;
/// H3_STREAM_CREATION_ERROR: a stream of a type not accepted here.
pub const H3_STREAM_CREATION_ERROR: u32 = 0x103;
/// H3_CLOSED_CRITICAL_STREAM: the peer's control stream ended.
pub const H3_CLOSED_CRITICAL_STREAM: u32 = 0x104;
/// H3_FRAME_UNEXPECTED: a frame where it is not allowed.
pub const H3_FRAME_UNEXPECTED: u32 = 0x105;
/// H3_MISSING_SETTINGS: a control stream that does not start with SETTINGS.
pub const H3_MISSING_SETTINGS: u32 = 0x10a;
/// H3_REQUEST_REJECTED: a request this server does not process.
pub const H3_REQUEST_REJECTED: u32 = 0x10b;
/// H3_MESSAGE_ERROR: a malformed request.
pub const H3_MESSAGE_ERROR: u32 = 0x10e;

/// The largest frame read: control and CONNECT streams carry only small
/// frames, and a bigger one would be a peer's bug or an attack.
pub const MAX_FRAME: usize = 64 * 1024;

/// Appends `v` as a QUIC varint.
pub fn put_varint(buf: &mut Vec<u8>, v: u64) {
    match v {
        0..=0x3f => buf.push(v as u8),
        0x40..=0x3fff => buf.extend_from_slice(&(0x4000 | v as u16).to_be_bytes()),
        0x4000..=0x3fff_ffff => buf.extend_from_slice(&(0x8000_0000 | v as u32).to_be_bytes()),
        _ => buf.extend_from_slice(
            &(0xc000_0000_0000_0000 | (v & 0x3fff_ffff_ffff_ffff)).to_be_bytes(),
        ),
    }
}

/// Reads a varint at the start of `buf`: its value and length.
pub fn get_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    let bytes = buf.get(..len)?;
    let mut v = u64::from(first & 0x3f);
    for b in &bytes[1..] {
        v = (v << 8) | u64::from(*b);
    }
    Some((v, len))
}

/// A frame: its type, its length, its payload.
pub fn frame(kind: u64, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(payload.len() + 16);
    put_varint(&mut buf, kind);
    put_varint(&mut buf, payload.len() as u64);
    buf.extend_from_slice(payload);
    buf
}

/// A CLOSE_WEBTRANSPORT_SESSION capsule in a DATA frame. The reason is not
/// capped at 1024 bytes as the draft asks: tests may want to send more.
pub fn close_capsule(code: u32, reason: &[u8]) -> Vec<u8> {
    let mut capsule = Vec::with_capacity(reason.len() + 16);
    put_varint(&mut capsule, CAPSULE_CLOSE_SESSION);
    put_varint(&mut capsule, 4 + reason.len() as u64);
    capsule.extend_from_slice(&code.to_be_bytes());
    capsule.extend_from_slice(reason);
    frame(FRAME_DATA, &capsule)
}

/// Splits the first complete capsule off `buf`: its type, its payload, and
/// how many bytes it took.
pub fn parse_capsule(buf: &[u8]) -> Option<(u64, &[u8], usize)> {
    let (kind, a) = get_varint(buf)?;
    let (len, b) = get_varint(&buf[a..])?;
    let start = a + b;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    Some((kind, buf.get(start..end)?, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [
            0,
            63,
            64,
            16383,
            16384,
            (1 << 30) - 1,
            1 << 30,
            (1 << 62) - 1,
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(get_varint(&buf), Some((v, buf.len())));
        }
        assert_eq!(get_varint(&[0x40]), None);
    }

    #[test]
    fn close_capsule_parses_back() {
        let data = close_capsule(7, b"bye");
        let (kind, payload, used) = parse_capsule(&data[2..]).unwrap();
        assert_eq!((data[0], data[1] as usize), (0, data.len() - 2));
        assert_eq!(
            (kind, payload, used),
            (
                CAPSULE_CLOSE_SESSION,
                &[0, 0, 0, 7, b'b', b'y', b'e'][..],
                data.len() - 2
            )
        );
        assert_eq!(parse_capsule(&data[2..data.len() - 1]), None);
    }
}
