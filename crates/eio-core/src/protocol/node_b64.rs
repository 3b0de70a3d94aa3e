//! Base64 decoding as Node's `Buffer.from(string, "base64")` does it.
//!
//! Both engine.io parsers decode `b...` packets with that call, which never
//! fails: it skips characters outside the alphabet, accepts the URL-safe
//! alphabet too, stops at the first `=`, and drops a trailing partial byte. A
//! client sending sloppy base64 gets a (possibly empty or shorter) binary
//! message, not a parse error, so the codec must decode the same way.
//!
//! Node reads the JavaScript string one UTF-16 code unit at a time and looks
//! each unit up by its low byte only, so `Ł` (U+0141) counts as `A` and the
//! high half of an emoji (U+D83D) counts as `=`. This module reproduces that
//! too, because the bytes a message carries must not depend on the server.

use base64::Engine as _;

const INVALID: u8 = 0xff;

/// Sextet value of each byte: both the standard and the URL-safe alphabet.
static SEXTETS: [u8; 256] = sextet_table();

const fn sextet_table() -> [u8; 256] {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'-' as usize] = 62;
    t[b'/' as usize] = 63;
    t[b'_' as usize] = 63;
    t
}

/// Decodes the low bytes of a string's code units (`units`) the way Node's
/// fallback decoder does: bytes are written as soon as two, three or four
/// sextets of a quantum are known.
pub(crate) fn decode_units(units: impl Iterator<Item = u8>, size_hint: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size_hint / 4 * 3 + 2);
    let mut hi = 0u8;
    let mut pos = 0u8;
    for c in units {
        let lo = SEXTETS[c as usize];
        if lo == INVALID {
            if c == b'=' {
                break;
            }
            continue;
        }
        match pos {
            0 => {}
            1 => out.push((hi << 2) | (lo >> 4)),
            2 => out.push(((hi & 0x0f) << 4) | (lo >> 2)),
            _ => out.push(((hi & 0x03) << 6) | lo),
        }
        hi = lo;
        pos = (pos + 1) & 3;
    }
    out
}

/// Decodes a JavaScript string as `Buffer.from(s, "base64")` would.
pub(crate) fn decode_str(s: &str) -> Vec<u8> {
    // Canonical base64 decodes identically on both paths; the strict engine
    // is just faster for the common case.
    if let Ok(v) = base64::engine::general_purpose::STANDARD.decode(s) {
        return v;
    }
    if s.is_ascii() {
        decode_units(s.bytes(), s.len())
    } else {
        // Truncating each UTF-16 unit to its low byte is what Node does.
        decode_units(s.encode_utf16().map(|u| u as u8), s.len())
    }
}

/// Decodes a Latin-1 string (one byte per code unit) as
/// `Buffer.from(s, "base64")` would; parser-v3 builds such strings from the
/// string parts of binary payloads.
pub(crate) fn decode_latin1(b: &[u8]) -> Vec<u8> {
    if let Ok(v) = base64::engine::general_purpose::STANDARD.decode(b) {
        return v;
    }
    decode_units(b.iter().copied(), b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(v: &[u8]) -> String {
        v.iter().map(|b| format!("{b:02x}")).collect()
    }

    // Expected values were produced by `Buffer.from(s, "base64")` on Node 20.
    #[test]
    fn matches_node_on_sloppy_input() {
        let cases: &[(&str, &str)] = &[
            ("QUJD", "414243"),
            ("QQ", "41"),
            ("QQ==", "41"),
            ("QR", "41"),
            ("Q", ""),
            ("QQ=A", "41"),
            ("Q!Q", "41"),
            ("QUJDR", "414243"),
            ("QUJDRU", "41424345"),
            ("-_-_", "fbffbf"),
            (" Q U J D ", "414243"),
            ("QUJD\n", "414243"),
            ("Q Q==", "41"),
            ("QQ==QUJD", "41"),
            ("=QUJD", ""),
            ("QUJD====", "414243"),
            ("QU=JD", "41"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(hex(&decode_str(input)), *want, "input {input:?}");
            assert_eq!(
                hex(&decode_latin1(input.as_bytes())),
                *want,
                "latin1 {input:?}"
            );
        }
    }

    #[test]
    fn truncates_utf16_units_like_node() {
        // U+0141 -> 0x41 'A'; U+013D -> 0x3D '=' (stops); U+D83D -> 0x3D.
        assert_eq!(hex(&decode_str("\u{141}")), "");
        assert_eq!(hex(&decode_str("QQ\u{141}\u{141}")), "410000");
        assert_eq!(hex(&decode_str("Q\u{13d}QUJD")), "");
        assert_eq!(hex(&decode_str("\u{1f600}QUJD")), "");
        assert_eq!(hex(&decode_str("QUJD\u{c1}")), "414243");
        assert_eq!(hex(&decode_str("\u{e9}")), "");
    }

    #[test]
    fn latin1_high_bytes_are_skipped() {
        assert_eq!(hex(&decode_latin1(b"QU\xc1JD")), "414243");
        assert_eq!(hex(&decode_latin1(b"QU\xbdJD")), "414243");
    }
}
