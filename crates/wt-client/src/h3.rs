//! The few HTTP/3 and WebTransport wire pieces that the session layer needs
//! on top of quinn: varints, frames and capsules (RFC 9000, 9114, 9297 and
//! draft-ietf-webtrans-http3). wtransport-proto covers QPACK and SETTINGS.

use wtransport::quinn;

pub const FRAME_DATA: u64 = 0x00;
pub const FRAME_HEADERS: u64 = 0x01;
pub const FRAME_SETTINGS: u64 = 0x04;
/// Starts a WebTransport bidirectional stream (followed by the session id).
pub const FRAME_WEBTRANSPORT_STREAM: u64 = 0x41;

pub const STREAM_CONTROL: u64 = 0x00;

pub const CAPSULE_CLOSE_SESSION: u64 = 0x2843;

/// H3_NO_ERROR, to close a connection whose session is over.
pub const H3_NO_ERROR: u32 = 0x100;

/// The largest frame this client reads: control and CONNECT streams carry
/// only small frames, and a bigger one would be a server bug or an attack.
pub const MAX_FRAME: usize = 64 * 1024;

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

/// Why reading a stream stopped short.
#[derive(Debug)]
pub enum ReadError {
    /// The peer reset the stream with this code.
    Reset(u64),
    /// The connection is gone (see its close reason).
    Lost,
    /// The bytes make no sense (a frame cut short, or too large).
    Malformed(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Reset(code) => write!(f, "stream reset by the server (code {code})"),
            ReadError::Lost => f.write_str("connection lost"),
            ReadError::Malformed(what) => f.write_str(what),
        }
    }
}

fn read_error(e: quinn::ReadError) -> ReadError {
    match e {
        quinn::ReadError::Reset(code) => ReadError::Reset(code.into_inner()),
        quinn::ReadError::ConnectionLost(_) => ReadError::Lost,
        other => ReadError::Malformed(other.to_string()),
    }
}

/// Fills `buf`; false if the stream ended before its first byte.
async fn fill(
    recv: &mut quinn::RecvStream,
    buf: &mut [u8],
    at_start: bool,
) -> Result<bool, ReadError> {
    match recv.read_exact(buf).await {
        Ok(()) => Ok(true),
        Err(quinn::ReadExactError::FinishedEarly(0)) if at_start => Ok(false),
        Err(quinn::ReadExactError::FinishedEarly(_)) => Err(ReadError::Malformed(
            "the stream ended inside a frame".into(),
        )),
        Err(quinn::ReadExactError::ReadError(e)) => Err(read_error(e)),
    }
}

/// Reads a varint; `None` if the stream ended cleanly before it (when `at_start`).
pub async fn read_varint(
    recv: &mut quinn::RecvStream,
    at_start: bool,
) -> Result<Option<u64>, ReadError> {
    let mut buf = [0u8; 8];
    if !fill(recv, &mut buf[..1], at_start).await? {
        return Ok(None);
    }
    let len = 1usize << (buf[0] >> 6);
    fill(recv, &mut buf[1..len], false).await?;
    Ok(get_varint(&buf[..len]).map(|(v, _)| v))
}

/// Reads one frame: its type and payload; `None` at a clean end of stream.
pub async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Option<(u64, Vec<u8>)>, ReadError> {
    let Some(kind) = read_varint(recv, true).await? else {
        return Ok(None);
    };
    let len = read_varint(recv, false).await?.unwrap_or(0);
    if len > MAX_FRAME as u64 {
        return Err(ReadError::Malformed(format!(
            "a frame of {len} bytes is too large"
        )));
    }
    let mut payload = vec![0u8; len as usize];
    fill(recv, &mut payload, false).await?;
    Ok(Some((kind, payload)))
}

/// Reads a stream to its end, dropping what it says.
pub async fn drain(recv: &mut quinn::RecvStream) {
    let mut buf = vec![0u8; 4096];
    while let Ok(Some(_)) = recv.read(&mut buf).await {}
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
