//! JSONP polling (a `j` query parameter), for old browsers without CORS:
//! engine.io answers a poll with a script calling `___eio[<j>]("<payload>")`
//! and reads posted packets from the `d` field of a form-encoded body.
//!
//! Both directions reproduce engine.io's `polling-jsonp.ts`: Node's
//! `querystring.parse` for the body, with its quirks, and
//! `JSON.stringify` plus U+2028/U+2029 escaping for the script.

use std::borrow::Cow;
use std::fmt;

/// The callback index engine.io writes between the brackets: the ASCII
/// digits of the `j` parameter, everything else dropped. engine.io does not
/// reject other values; a `j` without digits gives `___eio[](`, which fails
/// harmlessly in the browser. Dropping every non-digit is what keeps the
/// query from writing script.
pub fn jsonp_index(j: &str) -> String {
    j.chars().filter(char::is_ascii_digit).collect()
}

/// The body of a JSONP poll response carrying an encoded payload (v4, or a
/// v3 string payload): `___eio[<digits of j>]("<payload>");`.
///
/// The payload is written as `JSON.stringify` does, then U+2028 and U+2029
/// are escaped too, since JSON allows them raw but older JavaScript engines
/// end a string literal at them.
pub fn jsonp_response(j: &str, payload: &str) -> String {
    let mut out = String::with_capacity(payload.len() + payload.len() / 8 + 16);
    out.push_str("___eio[");
    out.extend(j.chars().filter(char::is_ascii_digit));
    out.push_str("](");
    push_script_string(&mut out, payload);
    out.push_str(");");
    out
}

/// Appends `s` as a double-quoted string literal, as `JSON.stringify`
/// writes it (short escapes where JSON has them, `\u00xx` in lower case for
/// other control characters) plus `\u2028` and `\u2029`.
fn push_script_string(out: &mut String, s: &str) {
    out.push('"');
    let mut plain_from = 0;
    for (i, c) in s.char_indices() {
        let escape: Cow<'static, str> = match c {
            '"' => "\\\"".into(),
            '\\' => "\\\\".into(),
            '\n' => "\\n".into(),
            '\r' => "\\r".into(),
            '\t' => "\\t".into(),
            '\u{8}' => "\\b".into(),
            '\u{c}' => "\\f".into(),
            '\u{0}'..='\u{1f}' => format!("\\u{:04x}", c as u32).into(),
            '\u{2028}' => "\\u2028".into(),
            '\u{2029}' => "\\u2029".into(),
            _ => continue,
        };
        out.push_str(&s[plain_from..i]);
        out.push_str(&escape);
        plain_from = i + c.len_utf8();
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

/// Why a JSONP POST body carries no payload. engine.io ignores such a body:
/// no packet, no error, and the POST is still answered `ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonpBodyError {
    /// No `d` field among the first 1000 fields.
    NoData,
    /// More than one `d` field (Node then parses `d` as an array, which
    /// engine.io does not read).
    RepeatedData,
}

impl fmt::Display for JsonpBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonpBodyError::NoData => "no d field in JSONP body",
            JsonpBodyError::RepeatedData => "repeated d field in JSONP body",
        })
    }
}

impl std::error::Error for JsonpBodyError {}

/// The payload of a JSONP POST body: the `d` field of the form, with the
/// client's newline escaping undone (`\n` becomes a newline, `\\n` becomes
/// `\n`). The result goes to the protocol's payload decoder.
///
/// The body is the request body decoded as UTF-8 the way Node does (invalid
/// sequences become U+FFFD, as [`String::from_utf8_lossy`] does).
pub fn decode_jsonp_body(body: &str) -> Result<String, JsonpBodyError> {
    let mut values = form_values(body, "d");
    if values.len() > 1 {
        return Err(JsonpBodyError::RepeatedData);
    }
    let d = values.pop().ok_or(JsonpBodyError::NoData)?;
    Ok(unescape_newlines(&d))
}

/// Undoes the JSONP client's newline escaping with the two regular
/// expression passes of `polling-jsonp.ts`: first `\n` (not preceded by
/// another backslash) becomes a newline, then `\\n` becomes `\n`.
fn unescape_newlines(s: &str) -> String {
    let mut once = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        once.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("\\\\n") {
            once.push_str("\\\\n");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("\\n") {
            once.push('\n');
            rest = after;
        } else {
            once.push('\\');
            rest = &tail[1..];
        }
    }
    once.push_str(rest);
    once.replace("\\\\n", "\\n")
}

/// How many `&`-separated fields Node's `querystring.parse` reads by default.
const MAX_KEYS: usize = 1000;

/// The values of field `name` in a form body, as Node's
/// `querystring.parse(body)` finds them.
fn form_values(body: &str, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    parse_form(body, |key, key_encoded, value, value_encoded| {
        let key = if key_encoded && !key.is_empty() {
            qs_unescape(key)
        } else {
            Cow::Borrowed(key)
        };
        if key == name {
            found.push(if value_encoded && !value.is_empty() {
                qs_unescape(value).into_owned()
            } else {
                value.to_owned()
            });
        }
    });
    found
}

/// Node's `querystring.parse` loop with the default separators, calling
/// `add(key, key_encoded, value, value_encoded)` per field. `+` is already
/// a space in `key` and `value`; `*_encoded` says whether Node would
/// percent-decode the string. The control flow is kept as in Node, because
/// it decides that flag in surprising ways (a `%xx` in an encoded key marks
/// the value encoded too), and the flag changes the result when decoding
/// fails.
fn parse_form(qs: &str, mut add: impl FnMut(&str, bool, &str, bool)) {
    if qs.is_empty() {
        return;
    }
    let b = qs.as_bytes();
    let mut pairs = MAX_KEYS;
    let mut last_pos = 0;
    let mut eq_seen = false;
    let mut key = String::new();
    let mut value = String::new();
    let mut key_encoded = false;
    let mut value_encoded = false;
    let mut encode_check = 0u8;
    // Bytes stand in for JavaScript's code units: every byte this loop
    // compares with is ASCII, and the bytes of other characters are neither
    // separators nor hex digits, as their code units are not.
    for (i, &code) in b.iter().enumerate() {
        if code == b'&' {
            if !eq_seen {
                if last_pos < i {
                    key.push_str(&qs[last_pos..i]);
                } else if key.is_empty() {
                    // An empty field still counts towards the limit.
                    pairs -= 1;
                    if pairs == 0 {
                        return;
                    }
                    last_pos = i + 1;
                    continue;
                }
            } else if last_pos < i {
                value.push_str(&qs[last_pos..i]);
            }
            add(&key, key_encoded, &value, value_encoded);
            pairs -= 1;
            if pairs == 0 {
                return;
            }
            key_encoded = false;
            value_encoded = false;
            key.clear();
            value.clear();
            encode_check = 0;
            last_pos = i + 1;
            eq_seen = false;
            continue;
        }
        if !eq_seen {
            if code == b'=' {
                eq_seen = true;
                if last_pos < i {
                    key.push_str(&qs[last_pos..i]);
                }
                encode_check = 0;
                last_pos = i + 1;
                continue;
            }
            if !key_encoded {
                if code == b'%' {
                    encode_check = 1;
                    continue;
                }
                if encode_check > 0 {
                    if code.is_ascii_hexdigit() {
                        encode_check += 1;
                        if encode_check == 3 {
                            key_encoded = true;
                        }
                        continue;
                    }
                    encode_check = 0;
                }
            }
            if code == b'+' {
                if last_pos < i {
                    key.push_str(&qs[last_pos..i]);
                }
                key.push(' ');
                last_pos = i + 1;
                continue;
            }
        }
        if code == b'+' {
            if last_pos < i {
                value.push_str(&qs[last_pos..i]);
            }
            value.push(' ');
            last_pos = i + 1;
        } else if !value_encoded {
            if code == b'%' {
                encode_check = 1;
            } else if encode_check > 0 {
                if code.is_ascii_hexdigit() {
                    // Node's counter grows without bound here (hex digits
                    // after an encoded key's `%xx`) and never equals 3
                    // again; saturating keeps that without overflowing.
                    encode_check = encode_check.saturating_add(1);
                    if encode_check == 3 {
                        value_encoded = true;
                    }
                } else {
                    encode_check = 0;
                }
            }
        }
    }
    if last_pos < b.len() {
        if eq_seen {
            value.push_str(&qs[last_pos..]);
        } else {
            key.push_str(&qs[last_pos..]);
        }
    } else if !eq_seen && key.is_empty() {
        return;
    }
    add(&key, key_encoded, &value, value_encoded);
}

/// Node's `querystring.unescape`: `decodeURIComponent`, or if that throws,
/// a byte-wise decoding read back as lossy UTF-8.
fn qs_unescape(s: &str) -> Cow<'_, str> {
    match decode_uri_component(s) {
        Some(v) => v,
        None => Cow::Owned(unescape_buffer(s)),
    }
}

fn hex_value(c: u16) -> Option<u8> {
    char::from_u32(c as u32)
        .and_then(|c| c.to_digit(16))
        .map(|d| d as u8)
}

/// `decodeURIComponent`, `None` where it throws: a `%` without two hex
/// digits, or escapes that do not form UTF-8. Percent-decoding to bytes and
/// then validating is equivalent, because unescaped characters are whole
/// UTF-8 sequences and so cannot complete or continue an escaped one.
fn decode_uri_component(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('%') {
        return Some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex_value(*b.get(i + 1)? as u16)?;
            let lo = hex_value(*b.get(i + 2)? as u16)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// Node's `querystring.unescapeBuffer(s, true).toString()`: works on UTF-16
/// code units and keeps only the low byte of each unescaped one, so any
/// non-ASCII character is mangled, then decodes the bytes as lossy UTF-8.
fn unescape_buffer(s: &str) -> String {
    let units: Vec<u16> = s.encode_utf16().collect();
    let mut out = Vec::with_capacity(units.len());
    let mut i = 0;
    while i < units.len() {
        let mut c = units[i];
        if c == u16::from(b'+') {
            out.push(b' ');
            i += 1;
            continue;
        }
        if c == u16::from(b'%') && i + 2 < units.len() {
            i += 1;
            c = units[i];
            match hex_value(c) {
                None => {
                    out.push(b'%');
                    continue;
                }
                Some(hi) => {
                    i += 1;
                    match hex_value(units[i]) {
                        None => {
                            out.push(b'%');
                            i -= 1;
                        }
                        Some(lo) => c = u16::from(hi << 4 | lo),
                    }
                }
            }
        }
        out.push(c as u8);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How a polling session's transport writes and reads payloads. engine.io
/// fixes both when it creates the transport, from the handshake request's
/// query (`transports/index.ts`, `transport.ts`), so later requests of the
/// session cannot change them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    /// JSONP (engine.io's `JSONP` transport): the callback index, the ASCII
    /// digits of `j`. engine.io picks JSONP whenever `j` is in the query,
    /// even empty, whatever the protocol revision; `None` is XHR polling.
    pub jsonp: Option<String>,
    /// Whether v3 binary data may go out as a binary payload: the client did
    /// not send a non-empty `b64` (engine.io's `!req._query.b64`), and the
    /// transport is not JSONP.
    pub supports_binary: bool,
}

impl Framing {
    /// The framing of the polling transport a handshake request creates.
    ///
    ///
    /// JSONP never sends binary payloads. engine.io would, for a JSONP
    /// client without `b64`, write `JSON.stringify` of a `Buffer` into the
    /// script, which no client can read; every JSONP client sends `b64=1`,
    /// so base64 strings are the one useful answer.
    /// `j` and `b64` are the handshake query's parameters of those names.
    pub fn of(j: Option<&str>, b64: Option<&str>) -> Self {
        let jsonp = j.map(jsonp_index);
        let b64 = b64.is_some_and(|v| !v.is_empty());
        Framing {
            supports_binary: !b64 && jsonp.is_none(),
            jsonp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keeps_only_ascii_digits() {
        assert_eq!(jsonp_index("3"), "3");
        assert_eq!(jsonp_index("12"), "12");
        assert_eq!(jsonp_index(""), "");
        assert_eq!(jsonp_index("1]);alert(1);//"), "11");
        assert_eq!(jsonp_index("\u{661}\u{ff11}4"), "4");
    }

    #[test]
    fn response_wraps_the_payload() {
        assert_eq!(jsonp_response("0", "1:3"), "___eio[0](\"1:3\");");
        assert_eq!(jsonp_response("x", "4hi"), "___eio[](\"4hi\");");
        assert_eq!(
            jsonp_response("7", "4\"q\"\\"),
            "___eio[7](\"4\\\"q\\\"\\\\\");"
        );
    }

    #[test]
    fn response_escapes_like_json_stringify() {
        let cases: &[(&str, &str)] = &[
            ("a\nb\r\t", "\"a\\nb\\r\\t\""),
            ("\u{8}\u{c}", "\"\\b\\f\""),
            ("\u{0}\u{1}\u{1e}\u{1f}", "\"\\u0000\\u0001\\u001e\\u001f\""),
            ("\u{7f}\u{e9}\u{1f600}", "\"\u{7f}\u{e9}\u{1f600}\""),
            ("\u{2028}x\u{2029}", "\"\\u2028x\\u2029\""),
            ("</script>", "\"</script>\""),
            ("", "\"\""),
        ];
        for (input, want) in cases {
            let mut out = String::new();
            push_script_string(&mut out, input);
            assert_eq!(&out, want, "input {input:?}");
        }
    }

    #[test]
    fn reads_the_d_field() {
        assert_eq!(decode_jsonp_body("d=4hello").as_deref(), Ok("4hello"));
        assert_eq!(decode_jsonp_body("d=5%3A4hello").as_deref(), Ok("5:4hello"));
        assert_eq!(decode_jsonp_body("a=1&d=2%3Ahi&b").as_deref(), Ok("2:hi"));
        assert_eq!(decode_jsonp_body("d=a+b").as_deref(), Ok("a b"));
        assert_eq!(decode_jsonp_body("d=a%2Bb").as_deref(), Ok("a+b"));
        assert_eq!(decode_jsonp_body("d=").as_deref(), Ok(""));
        assert_eq!(decode_jsonp_body("d").as_deref(), Ok(""));
        assert_eq!(decode_jsonp_body("d=x=y").as_deref(), Ok("x=y"));
        assert_eq!(decode_jsonp_body("%64=x").as_deref(), Ok("x"));
        assert_eq!(decode_jsonp_body("d=%C3%A9").as_deref(), Ok("\u{e9}"));
        assert_eq!(decode_jsonp_body("d=\u{e9}").as_deref(), Ok("\u{e9}"));
    }

    #[test]
    fn missing_or_repeated_d_is_ignored() {
        assert_eq!(decode_jsonp_body(""), Err(JsonpBodyError::NoData));
        assert_eq!(decode_jsonp_body("x=1"), Err(JsonpBodyError::NoData));
        assert_eq!(decode_jsonp_body("D=1"), Err(JsonpBodyError::NoData));
        assert_eq!(
            decode_jsonp_body("d=1&d=2"),
            Err(JsonpBodyError::RepeatedData)
        );
        assert_eq!(
            decode_jsonp_body("d=1&%64=2"),
            Err(JsonpBodyError::RepeatedData)
        );
        // Only the first 1000 fields are read, empty ones included.
        let late = format!("{}d=x", "&".repeat(1000));
        assert_eq!(decode_jsonp_body(&late), Err(JsonpBodyError::NoData));
        let in_time = format!("{}d=x", "&".repeat(999));
        assert_eq!(decode_jsonp_body(&in_time).as_deref(), Ok("x"));
    }

    #[test]
    fn malformed_escapes_follow_node() {
        // No valid %xx: the value is kept as it is.
        assert_eq!(decode_jsonp_body("d=100%").as_deref(), Ok("100%"));
        assert_eq!(decode_jsonp_body("d=%zz").as_deref(), Ok("%zz"));
        // A valid %xx next to a broken one: decodeURIComponent throws, and
        // Node falls back to byte-wise decoding.
        assert_eq!(decode_jsonp_body("d=%41%").as_deref(), Ok("A%"));
        assert_eq!(decode_jsonp_body("d=%41%4").as_deref(), Ok("A%4"));
        assert_eq!(decode_jsonp_body("d=%41%zz").as_deref(), Ok("A%zz"));
        // ...where escapes that are not UTF-8 become U+FFFD and non-ASCII
        // characters lose all but their low byte.
        assert_eq!(decode_jsonp_body("d=%FF").as_deref(), Ok("\u{fffd}"));
        assert_eq!(
            decode_jsonp_body("d=%FF\u{e9}").as_deref(),
            Ok("\u{fffd}\u{fffd}")
        );
        assert_eq!(
            decode_jsonp_body("d=%FF\u{141}").as_deref(),
            Ok("\u{fffd}A")
        );
    }

    #[test]
    fn long_hex_runs_after_an_encoded_key() {
        // Found by fuzzing: the encoding counter used to overflow.
        let body = format!("%64{}=x&d=%41", "3".repeat(600));
        assert_eq!(decode_jsonp_body(&body).as_deref(), Ok("A"));
        let body = format!("%64%41{}=x", "3".repeat(600));
        assert_eq!(decode_jsonp_body(&body), Err(JsonpBodyError::NoData));
    }

    #[test]
    fn undoes_newline_escaping() {
        let cases: &[(&str, &str)] = &[
            ("a\\nb", "a\nb"),
            ("a\\\\nb", "a\\nb"),
            ("a\\\\\\nb", "a\\\\nb"),
            ("\\", "\\"),
            ("\\x", "\\x"),
            ("\\n\\n", "\n\n"),
            ("n\\", "n\\"),
        ];
        for (input, want) in cases {
            assert_eq!(&unescape_newlines(input), want, "input {input:?}");
        }
        assert_eq!(decode_jsonp_body("d=4a%5Cnb").as_deref(), Ok("4a\nb"));
    }
}
