//! The parts of an HTTP request the engine and the application look at,
//! independent of the front end that received it.

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
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target as received (path and query).
    pub url: String,
    /// `"1.1"` or `"1.0"`.
    pub http_version: &'static str,
    /// Header names in lower case, values decoded as Latin-1 as Node does,
    /// in the order received.
    pub headers: Vec<(String, String)>,
    /// The peer, when the front end knows it.
    pub remote: Option<SocketAddr>,
    /// The query string, decoded as `URLSearchParams` does.
    pub query: Vec<(String, String)>,
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
        let url = url.into();
        let query = parse_query(&url);
        RequestInfo {
            id: 0,
            held_by_app: false,
            method: method.into(),
            url,
            http_version,
            headers,
            remote,
            query,
        }
    }

    /// A query parameter; the last one wins, as with `Object.fromEntries`.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A header by lower-case name (the first one).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
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

/// Decodes the query of a request target the way `new URL(url).searchParams` does.
pub fn parse_query(url: &str) -> Vec<(String, String)> {
    let Some(q) = url.split_once('?').map(|(_, q)| q) else {
        return Vec::new();
    };
    let q = q.split('#').next().unwrap_or("");
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Decodes header bytes as Latin-1, as Node's HTTP parser does.
pub fn latin1(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.is_ascii() => s.to_string(),
        _ => bytes.iter().map(|&b| b as char).collect(),
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
    fn invalid_header_chars() {
        assert!(!has_invalid_header_char("http://a.com\tok"));
        assert!(has_invalid_header_char("http://a.com\n"));
        assert!(has_invalid_header_char("\x7f"));
    }
}
