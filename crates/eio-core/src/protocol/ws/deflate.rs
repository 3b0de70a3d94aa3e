//! permessage-deflate (RFC 7692): the `Sec-WebSocket-Extensions` offer
//! parsed and answered as `ws` answers it for engine.io's
//! `perMessageDeflate` option, and the raw-deflate contexts of a connection,
//! created at their first use, since most connections never send a large
//! message.

use super::Violation;
use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// A `*MaxWindowBits` option: a number, or `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowBits {
    /// A number of bits, 8 to 15.
    Bits(u8),
    /// `false`: the parameter is refused (server) or left out (client).
    Refuse,
}

/// engine.io's `perMessageDeflate` options (those of `ws`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// `threshold`: with `server_no_context_takeover`, smaller messages are
    /// sent uncompressed (engine.io: 1024).
    pub threshold: usize,
    /// `serverNoContextTakeover`.
    pub server_no_context_takeover: Option<bool>,
    /// `clientNoContextTakeover`.
    pub client_no_context_takeover: Option<bool>,
    /// `serverMaxWindowBits`.
    pub server_max_window_bits: Option<WindowBits>,
    /// `clientMaxWindowBits`.
    pub client_max_window_bits: Option<WindowBits>,
    /// `zlibDeflateOptions.level`, 0 to 9.
    pub level: Option<u32>,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            threshold: 1024,
            server_no_context_takeover: None,
            client_no_context_takeover: None,
            server_max_window_bits: None,
            client_max_window_bits: None,
            level: None,
        }
    }
}

/// The parameters agreed with a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agreed {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// The server's compression window.
    pub server_max_window_bits: Option<u8>,
    /// The client's compression window, when the answer names one.
    pub client_max_window_bits: Option<u8>,
}

impl Agreed {
    /// The `Sec-WebSocket-Extensions` value of the 101.
    pub fn header_value(&self) -> String {
        let mut v = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            v.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            v.push_str("; client_no_context_takeover");
        }
        if let Some(b) = self.server_max_window_bits {
            v.push_str(&format!("; server_max_window_bits={b}"));
        }
        if let Some(b) = self.client_max_window_bits {
            v.push_str(&format!("; client_max_window_bits={b}"));
        }
        v
    }
}

/// The 400 body `ws` answers a bad or unacceptable extension header with.
pub const BAD_EXTENSIONS: &str = "Invalid or unacceptable Sec-WebSocket-Extensions header";

/// A `Sec-WebSocket-Extensions` header that does not parse, or whose
/// permessage-deflate offers cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadExtensions;

impl std::fmt::Display for BadExtensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(BAD_EXTENSIONS)
    }
}

impl std::error::Error for BadExtensions {}

/// One parameter of an offer: its name and value (`None`: no value).
type Param = (String, Option<String>);

/// Answers the client's `Sec-WebSocket-Extensions` with `config`:
/// `Ok(None)` when it does not offer permessage-deflate, `Err` (a 400
/// with [`BAD_EXTENSIONS`]) when the header does not parse or no offer can
/// be accepted.
pub fn negotiate(header: &str, config: &DeflateConfig) -> Result<Option<Agreed>, BadExtensions> {
    let offers = parse_extensions(header)?;
    let offers: Vec<_> = offers
        .into_iter()
        .filter(|(name, _)| name == "permessage-deflate")
        .map(|(_, params)| normalize(params))
        .collect::<Result<_, _>>()
        .map_err(|_| BadExtensions)?;
    if offers.is_empty() {
        return Ok(None);
    }
    let acceptable = |o: &Offer| {
        let refuse = config.server_no_context_takeover == Some(false)
            && o.server_no_context_takeover
            || o.server_max_window_bits
                .is_some_and(|bits| match config.server_max_window_bits {
                    Some(WindowBits::Refuse) => true,
                    Some(WindowBits::Bits(mine)) => mine > bits,
                    None => false,
                })
            || match config.client_max_window_bits {
                Some(WindowBits::Bits(mine)) => match o.client_max_window_bits {
                    Some(ClientBits::Bits(theirs)) => mine > theirs,
                    Some(ClientBits::Any) => false,
                    None => true,
                },
                _ => false,
            };
        !refuse
    };
    let offer = offers.into_iter().find(acceptable).ok_or(BadExtensions)?;
    let mut agreed = Agreed {
        server_no_context_takeover: offer.server_no_context_takeover
            || config.server_no_context_takeover == Some(true),
        client_no_context_takeover: offer.client_no_context_takeover
            || config.client_no_context_takeover == Some(true),
        server_max_window_bits: offer.server_max_window_bits,
        client_max_window_bits: match offer.client_max_window_bits {
            Some(ClientBits::Bits(b)) => Some(b),
            _ => None,
        },
    };
    if let Some(WindowBits::Bits(b)) = config.server_max_window_bits {
        agreed.server_max_window_bits = Some(b);
    }
    match config.client_max_window_bits {
        Some(WindowBits::Bits(b)) => agreed.client_max_window_bits = Some(b),
        Some(WindowBits::Refuse) => agreed.client_max_window_bits = None,
        None => {}
    }
    Ok(Some(agreed))
}

#[derive(Debug, Clone, Copy)]
enum ClientBits {
    Any,
    Bits(u8),
}

#[derive(Debug, Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<ClientBits>,
}

/// `ws`'s `normalizeParams`: known parameters, each once, with valid values.
fn normalize(params: Vec<Param>) -> Result<Offer, BadExtensions> {
    let mut offer = Offer::default();
    let mut seen = Vec::with_capacity(params.len());
    for (key, value) in params {
        if seen.contains(&key) {
            return Err(BadExtensions);
        }
        let bits = |v: &str| match v.parse::<u8>() {
            Ok(n) if (8..=15).contains(&n) => Ok(n),
            _ => Err(BadExtensions),
        };
        match (key.as_str(), value.as_deref()) {
            ("client_max_window_bits", None) => {
                offer.client_max_window_bits = Some(ClientBits::Any)
            }
            ("client_max_window_bits", Some(v)) => {
                offer.client_max_window_bits = Some(ClientBits::Bits(bits(v)?))
            }
            ("server_max_window_bits", Some(v)) => offer.server_max_window_bits = Some(bits(v)?),
            ("client_no_context_takeover", None) => offer.client_no_context_takeover = true,
            ("server_no_context_takeover", None) => offer.server_no_context_takeover = true,
            _ => return Err(BadExtensions),
        }
        seen.push(key);
    }
    Ok(offer)
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Parses an extension list (RFC 7230 tokens, `;` parameters with token or
/// quoted values, `,` between offers), as strictly as `ws` does.
fn parse_extensions(header: &str) -> Result<Vec<(String, Vec<Param>)>, BadExtensions> {
    let b = header.as_bytes();
    let mut i = 0;
    let mut offers = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> Result<String, BadExtensions> {
        let start = *i;
        while *i < b.len() && is_tchar(b[*i]) {
            *i += 1;
        }
        if *i == start {
            return Err(BadExtensions);
        }
        Ok(header[start..*i].to_string())
    };
    loop {
        skip_ws(&mut i);
        let name = token(&mut i)?;
        let mut params = Vec::new();
        loop {
            skip_ws(&mut i);
            if i == b.len() || b[i] == b',' {
                break;
            }
            if b[i] != b';' {
                return Err(BadExtensions);
            }
            i += 1;
            skip_ws(&mut i);
            let key = token(&mut i)?;
            skip_ws(&mut i);
            let mut value = None;
            if i < b.len() && b[i] == b'=' {
                i += 1;
                skip_ws(&mut i);
                if i < b.len() && b[i] == b'"' {
                    i += 1;
                    let mut v = String::new();
                    loop {
                        match b.get(i) {
                            None => return Err(BadExtensions),
                            Some(b'"') => break,
                            Some(b'\\') => {
                                let c = *b.get(i + 1).ok_or(BadExtensions)?;
                                if !is_tchar(c) {
                                    return Err(BadExtensions);
                                }
                                v.push(c as char);
                                i += 2;
                            }
                            Some(&c) if is_tchar(c) => {
                                v.push(c as char);
                                i += 1;
                            }
                            Some(_) => return Err(BadExtensions),
                        }
                    }
                    i += 1;
                    if v.is_empty() {
                        return Err(BadExtensions);
                    }
                    value = Some(v);
                } else {
                    value = Some(token(&mut i)?);
                }
            }
            params.push((key, value));
        }
        offers.push((name, params));
        if i == b.len() {
            return Ok(offers);
        }
        i += 1; // ','
    }
}

/// The last four bytes of a sync flush, which RFC 7692 leaves off the wire.
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// The receive side: inflates compressed messages.
pub struct Inflater {
    d: Option<Box<Decompress>>,
    /// `client_no_context_takeover`: no window is kept between messages.
    reset_each: bool,
}

impl Inflater {
    /// The receive side for `agreed`.
    pub fn new(agreed: &Agreed) -> Self {
        Inflater {
            d: None,
            reset_each: agreed.client_no_context_takeover,
        }
    }

    /// Inflates one message; over `max` bytes (0: no limit) is 1009 and
    /// data that does not inflate is 1007, as in `ws`.
    pub fn inflate(&mut self, data: &[u8], max: usize) -> Result<Bytes, Violation> {
        // A window of 15 bits reads what any smaller window wrote.
        let d = self
            .d
            .get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, 15)));
        let mut out = Vec::with_capacity((data.len() * 2).clamp(64, 64 * 1024));
        let mut ended = false;
        for mut input in [data, &TAIL[..]] {
            while !ended {
                if out.len() == out.capacity() {
                    out.reserve(out.capacity());
                }
                let (in_before, out_before) = (d.total_in(), out.len());
                let status = d
                    .decompress_vec(input, &mut out, FlushDecompress::Sync)
                    .map_err(|_| Violation::InvalidData("invalid compressed data"))?;
                input = &input[(d.total_in() - in_before) as usize..];
                if max > 0 && out.len() > max {
                    self.d = None;
                    return Err(Violation::TooBig);
                }
                ended = status == Status::StreamEnd;
                let room_left = out.len() < out.capacity();
                let stalled = d.total_in() == in_before && out.len() == out_before;
                if room_left && (input.is_empty() || stalled) {
                    break;
                }
            }
        }
        if self.reset_each || ended {
            d.reset(false);
        }
        Ok(Bytes::from(out))
    }
}

/// The send side: compresses outgoing messages.
pub struct Deflater {
    c: Option<Box<Compress>>,
    window_bits: u8,
    level: Compression,
    /// `server_no_context_takeover`.
    reset_each: bool,
    threshold: usize,
}

impl Deflater {
    /// The send side for `agreed` under `config`.
    pub fn new(agreed: &Agreed, config: &DeflateConfig) -> Self {
        Deflater {
            c: None,
            // zlib cannot write raw deflate with a 256-byte window and uses
            // 512 bytes instead, as Node's zlib does for `ws`.
            window_bits: agreed.server_max_window_bits.unwrap_or(15).max(9),
            level: config
                .level
                .map_or(Compression::default(), |l| Compression::new(l.min(9))),
            reset_each: agreed.server_no_context_takeover,
            threshold: config.threshold,
        }
    }

    /// Whether a message of `len` bytes goes compressed: `ws` compresses
    /// every message while the context is kept, and only those of at least
    /// `threshold` bytes when it is reset after each one.
    pub fn wants(&self, len: usize) -> bool {
        !self.reset_each || len >= self.threshold
    }

    /// Appends `data` compressed (without the sync-flush tail) to `out`.
    pub fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), std::io::Error> {
        let bits = self.window_bits;
        let level = self.level;
        let c = self
            .c
            .get_or_insert_with(|| Box::new(Compress::new_with_window_bits(level, false, bits)));
        let start = out.len();
        out.reserve(data.len() / 2 + 64);
        let mut input = data;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity() - start + 64);
            }
            let before = c.total_in();
            c.compress_vec(input, out, FlushCompress::Sync)
                .map_err(std::io::Error::other)?;
            input = &input[(c.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        } else if out.len() == start {
            // zlib writes nothing for a second flush in a row; an empty
            // stored block is what the receiver's appended tail completes.
            out.push(0x00);
        }
        if self.reset_each {
            c.reset();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agree(header: &str, config: &DeflateConfig) -> Result<Option<String>, BadExtensions> {
        negotiate(header, config).map(|a| a.map(|a| a.header_value()))
    }

    #[test]
    fn answers_like_ws() {
        let d = DeflateConfig::default();
        // What ws and browsers offer.
        assert_eq!(
            agree("permessage-deflate; client_max_window_bits", &d),
            Ok(Some("permessage-deflate".into()))
        );
        assert_eq!(agree("x-webkit-deflate-frame", &d), Ok(None));
        assert_eq!(
            agree(
                "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
                &d
            ),
            Ok(Some(
                "permessage-deflate; server_no_context_takeover; client_max_window_bits=10".into()
            ))
        );
        assert_eq!(
            agree("permessage-deflate; server_max_window_bits=\"12\"", &d),
            Ok(Some("permessage-deflate; server_max_window_bits=12".into()))
        );
        // The first acceptable offer wins.
        let refuse = DeflateConfig {
            server_max_window_bits: Some(WindowBits::Refuse),
            ..d.clone()
        };
        assert_eq!(
            agree(
                "permessage-deflate; server_max_window_bits=10, permessage-deflate",
                &refuse
            ),
            Ok(Some("permessage-deflate".into()))
        );
        assert_eq!(
            agree("permessage-deflate; server_max_window_bits=10", &refuse),
            Err(BadExtensions)
        );
        let forced = DeflateConfig {
            server_no_context_takeover: Some(true),
            client_max_window_bits: Some(WindowBits::Bits(12)),
            ..d.clone()
        };
        assert_eq!(
            agree("permessage-deflate; client_max_window_bits", &forced),
            Ok(Some(
                "permessage-deflate; server_no_context_takeover; client_max_window_bits=12".into()
            ))
        );
        // A client that cannot limit its window is refused.
        assert_eq!(agree("permessage-deflate", &forced), Err(BadExtensions));
    }

    #[test]
    fn refuses_what_ws_refuses() {
        let d = DeflateConfig::default();
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate;",
            "permessage-deflate; a=\"\"",
            "permessage-deflate; a=\"unterminated",
            ", permessage-deflate",
            "permessage-deflate @",
        ] {
            assert_eq!(negotiate(bad, &d), Err(BadExtensions), "{bad}");
        }
    }

    #[test]
    fn round_trips_with_and_without_context() {
        for reset in [false, true] {
            let agreed = Agreed {
                server_no_context_takeover: reset,
                client_no_context_takeover: reset,
                server_max_window_bits: Some(8),
                ..Agreed::default()
            };
            let mut deflater = Deflater::new(&agreed, &DeflateConfig::default());
            let mut inflater = Inflater::new(&agreed);
            for msg in [
                &b"hello hello hello hello"[..],
                b"",
                &[42u8; 100_000],
                b"hello hello",
            ] {
                let mut wire = Vec::new();
                deflater.compress(msg, &mut wire).unwrap();
                assert_eq!(&inflater.inflate(&wire, 0).unwrap()[..], msg);
            }
        }
    }

    #[test]
    fn inflate_limits_and_rejects() {
        let agreed = Agreed::default();
        let mut deflater = Deflater::new(&agreed, &DeflateConfig::default());
        let mut wire = Vec::new();
        deflater.compress(&[0u8; 10_000], &mut wire).unwrap();
        assert!(wire.len() < 100);
        let mut inflater = Inflater::new(&agreed);
        assert_eq!(inflater.inflate(&wire, 9_999), Err(Violation::TooBig));
        assert_eq!(
            Inflater::new(&agreed)
                .inflate(&[0xff, 0xff, 0xff], 0)
                .unwrap_err()
                .code(),
            1007
        );
    }

    #[test]
    fn threshold_only_without_context_takeover() {
        let config = DeflateConfig::default();
        let kept = Deflater::new(&Agreed::default(), &config);
        assert!(kept.wants(1));
        let reset = Deflater::new(
            &Agreed {
                server_no_context_takeover: true,
                ..Agreed::default()
            },
            &config,
        );
        assert!(!reset.wants(1023));
        assert!(reset.wants(1024));
    }
}
