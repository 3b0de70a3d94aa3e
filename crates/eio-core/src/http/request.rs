//! The parts of an HTTP request the engine and the application look at,
//! independent of the front end that received it.

use std::borrow::Cow;
use std::net::SocketAddr;

/// A request as engine.io's `req` exposes it: method, url, headers, peer,
/// and the parsed query (`req._query`).
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// The front end's number for this request, so the application can keep
    /// its own request object across hook calls and `socket.request`.
    pub id: u64,
    /// Whether the application keeps its own object for this request until
    /// [`Event::RequestDone`](super::Event::RequestDone) (bridged requests).
    pub held_by_app: bool,
    /// `GET`, `POST`, ... (the common ones without an allocation).
    pub method: Cow<'static, str>,
    /// The request target as received (path and query).
    pub url: String,
    /// `"1.1"` or `"1.0"`.
    pub http_version: &'static str,
    /// Header names in lower case, values decoded as Latin-1 as Node does,
    /// in the order received.
    headers: Fields,
    /// The peer, when the front end knows it.
    pub remote: Option<SocketAddr>,
    /// Whether it came over TLS (Node's `req.socket.encrypted`).
    pub encrypted: bool,
    /// The query string, decoded as `URLSearchParams` does.
    query: Fields,
}

/// Name/value pairs kept in one string: a polling request is built and
/// dropped per message, and one allocation per field adds up.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    text: String,
    /// Per pair, where its name and its value end in `text`; each name
    /// starts where the previous value ended.
    ends: Vec<(u32, u32)>,
}

impl Fields {
    /// Room for `pairs` pairs of `bytes` bytes in all.
    pub fn with_capacity(pairs: usize, bytes: usize) -> Self {
        Fields {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(pairs),
        }
    }

    /// Appends a pair.
    pub fn push(&mut self, name: &str, value: &str) {
        self.text.push_str(name);
        let name_end = self.text.len() as u32;
        self.text.push_str(value);
        self.ends.push((name_end, self.text.len() as u32));
    }

    /// Appends a pair whose name is lowered (ASCII) and whose value bytes
    /// are decoded as Latin-1, as Node's HTTP parser does.
    pub fn push_header(&mut self, name: &str, value: &[u8]) {
        let name_end = self.push_lowered_name(name);
        push_latin1(&mut self.text, value);
        self.ends.push((name_end, self.text.len() as u32));
    }

    /// Appends a pair whose name is lowered (ASCII); the value is already
    /// decoded (a header Node parsed).
    pub fn push_lowered(&mut self, name: &str, value: &str) {
        let name_end = self.push_lowered_name(name);
        self.text.push_str(value);
        self.ends.push((name_end, self.text.len() as u32));
    }

    fn push_lowered_name(&mut self, name: &str) -> u32 {
        self.text
            .extend(name.chars().map(|c| c.to_ascii_lowercase()));
        self.text.len() as u32
    }

    /// The value of the last pair named `name` (as `Object.fromEntries`
    /// keeps it for a query).
    pub fn last(&self, name: &str) -> Option<&str> {
        self.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The pairs, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &str)> + '_ {
        (0..self.ends.len()).map(|i| {
            let start = if i == 0 {
                0
            } else {
                self.ends[i - 1].1 as usize
            };
            let (name_end, end) = self.ends[i];
            (
                &self.text[start..name_end as usize],
                &self.text[name_end as usize..end as usize],
            )
        })
    }
}

impl RequestInfo {
    /// Builds the info and parses the query of `url`.
    pub fn new(
        method: impl Into<String>,
        url: impl Into<String>,
        http_version: &'static str,
        headers: Vec<(String, String)>,
        remote: Option<SocketAddr>,
    ) -> Self {
        let bytes = headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        let mut fields = Fields::with_capacity(headers.len(), bytes);
        for (k, v) in &headers {
            fields.push(k, v);
        }
        Self::with_fields(
            method_name(method.into()),
            url.into(),
            http_version,
            fields,
            remote,
        )
    }

    /// [`RequestInfo::new`] with the headers already as [`Fields`] (lower-case
    /// names), as the native front end builds them.
    pub fn with_fields(
        method: Cow<'static, str>,
        url: String,
        http_version: &'static str,
        headers: Fields,
        remote: Option<SocketAddr>,
    ) -> Self {
        let query = parse_query(&url);
        RequestInfo {
            id: 0,
            held_by_app: false,
            method,
            url,
            http_version,
            headers,
            remote,
            encrypted: false,
            query,
        }
    }

    /// A query parameter; the last one wins, as with `Object.fromEntries`.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.last(key)
    }

    /// A header by lower-case name (the first one).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// Every header, in the order received (lower-case names).
    pub fn headers(&self) -> impl DoubleEndedIterator<Item = (&str, &str)> + '_ {
        self.headers.iter()
    }

    /// The peer address as Node prints it (`::ffff:127.0.0.1` on a dual-stack socket).
    pub fn remote_address(&self) -> String {
        self.remote.map(|a| a.ip().to_string()).unwrap_or_default()
    }

    /// The path part of the url.
    pub fn path(&self) -> &str {
        self.url.split('?').next().unwrap_or("")
    }
}

/// The method, without an allocation for the common ones.
pub fn method_name(method: impl AsRef<str> + Into<String>) -> Cow<'static, str> {
    const KNOWN: [&str; 7] = ["GET", "POST", "OPTIONS", "HEAD", "PUT", "DELETE", "PATCH"];
    match KNOWN.iter().find(|m| **m == method.as_ref()) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(method.into()),
    }
}

/// Decodes the query of a request target the way `new URL(url).searchParams` does.
pub fn parse_query(url: &str) -> Fields {
    let Some(q) = url.split_once('?').map(|(_, q)| q) else {
        return Fields::default();
    };
    let q = q.split('#').next().unwrap_or("");
    let (mut pairs, mut plain) = (1, true);
    for b in q.bytes() {
        pairs += usize::from(b == b'&');
        plain &= b != b'%' && b != b'+';
    }
    let mut fields = Fields::with_capacity(pairs, q.len());
    if plain {
        // Nothing to decode, as in every request an Engine.IO client makes:
        // the pairs go in as they are, without the decoder's per-pair scans.
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            fields.push(k, v);
        }
    } else {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            fields.push(&k, &v);
        }
    }
    fields
}

/// Appends header bytes decoded as Latin-1, as Node's HTTP parser does.
fn push_latin1(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.is_ascii() => out.push_str(s),
        _ => out.extend(bytes.iter().map(|&b| b as char)),
    }
}

/// Whether a header value holds a character Node would refuse
/// (`checkInvalidHeaderChar`): controls other than tab, and DEL.
pub fn has_invalid_header_char(value: &str) -> bool {
    value
        .chars()
        .any(|c| (c < ' ' && c != '\t') || c == '\x7f' || (c as u32) > 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs = Vec<(String, String)>;

    /// The pairs of query `q` from `parse_query`, and from the decoder.
    fn both_ways(q: &str) -> (Pairs, Pairs) {
        let got = parse_query(&format!("/p?{q}"))
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let q = q.split('#').next().unwrap();
        let want = form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        (got, want)
    }

    #[test]
    fn plain_queries_split_as_the_decoder_splits_them() {
        for q in [
            "EIO=4&transport=polling&t=PZ1x2&sid=abc_-DEF123",
            "a&&b=1&c=&=d&e=f=g&&",
            "",
            "&",
            "x",
            "é=ü&ü",
            "a=1#frag&b=2",
        ] {
            let (got, want) = both_ways(q);
            assert_eq!(got, want, "{q:?}");
        }
    }

    proptest::proptest! {
        /// The split for plain queries and the decoder agree on any query.
        #[test]
        fn any_query_parses_as_the_decoder_does(
            q in "[a-z0-9=&%+#é_.-]{0,40}",
        ) {
            let (got, want) = both_ways(&q);
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn query_like_url_search_params() {
        let r = RequestInfo::new(
            "GET",
            "/engine.io/?EIO=4&transport=polling&t=a%20b+c&EIO=3",
            "1.1",
            vec![],
            None,
        );
        assert_eq!(r.query("transport"), Some("polling"));
        assert_eq!(r.query("t"), Some("a b c"));
        assert_eq!(r.query("EIO"), Some("3"));
        assert_eq!(r.query("sid"), None);
        assert_eq!(r.path(), "/engine.io/");
    }

    #[test]
    fn headers_keep_order_and_decode_latin1() {
        let mut f = Fields::default();
        f.push_header("X-Name", b"caf\xe9");
        f.push_header("accept", b"*/*");
        f.push_header("x-name", b"");
        // A value Node already decoded is kept as it is.
        f.push_lowered("User-Agent", "\u{e9}\u{2713}");
        let r = RequestInfo::with_fields(method_name("GET"), "/".into(), "1.1", f, None);
        let all: Vec<_> = r.headers().collect();
        assert_eq!(
            all,
            [
                ("x-name", "caf\u{e9}"),
                ("accept", "*/*"),
                ("x-name", ""),
                ("user-agent", "\u{e9}\u{2713}")
            ]
        );
        assert_eq!(r.header("x-name"), Some("caf\u{e9}"));
        assert_eq!(r.header("nope"), None);
        assert!(matches!(r.method, Cow::Borrowed("GET")));
        assert_eq!(method_name("BREW"), "BREW");
    }

    #[test]
    fn invalid_header_chars() {
        assert!(!has_invalid_header_char("http://a.com\tok"));
        assert!(has_invalid_header_char("http://a.com\n"));
        assert!(has_invalid_header_char("\x7f"));
    }
}
