//! HTTP as the engine sees it, whatever the front end: the request
//! ([`RequestInfo`]) a front end makes from its own, and the response
//! ([`HttpResponse`]) it turns back into its own.

mod request;

pub use self::request::{has_invalid_header_char, method_name, parse_query, Fields, RequestInfo};
use crate::error::RequestError;
use bytes::Bytes;
use std::borrow::Cow;

/// One header: most names and many values are fixed strings, which then
/// cost no allocation per response.
pub type Header = (Cow<'static, str>, Cow<'static, str>);

/// Headers in order.
pub type Headers = Vec<Header>;

/// An HTTP response the engine wants sent, independent of the front end.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers in order; names as engine.io writes them.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A response with a body and a content type.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        // Room for the polling transport's `cache-control` too.
        let mut headers = Vec::with_capacity(2);
        headers.push(("Content-Type".into(), content_type.into()));
        HttpResponse {
            status,
            headers,
            body: body.into(),
        }
    }

    /// A response with no body and no headers.
    pub fn empty(status: u16) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// No answer: the front end destroys the connection (engine.io destroys
    /// a POST still being read when its session closes).
    pub fn abort() -> Self {
        HttpResponse::empty(0)
    }

    /// Whether this is [`HttpResponse::abort`].
    pub fn is_abort(&self) -> bool {
        self.status == 0
    }

    /// engine.io's answer to a refused request: 400/403 with a JSON body.
    pub fn refused(error: &RequestError) -> Self {
        HttpResponse::new(error.code.status(), "application/json", error.body())
    }

    /// engine.io's `abortUpgrade`: a 400 whose body is the message, after
    /// which the connection is closed.
    pub fn upgrade_refused(message: &str) -> Self {
        HttpResponse {
            status: 400,
            headers: vec![
                ("Connection".into(), "close".into()),
                ("Content-type".into(), "text/html".into()),
            ],
            body: Bytes::from(message.to_string()),
        }
    }

    /// The response as HTTP/1.1 bytes, for a connection written by hand
    /// (an upgrade the Node bridge handed over). A 1xx carries no
    /// `Content-Length`; a header that could split the response is left out.
    pub fn to_http1(&self) -> Vec<u8> {
        let reason = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", self.status);
        for (k, v) in &self.headers {
            if !k.contains(['\r', '\n']) && !v.contains(['\r', '\n']) {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        if self.status >= 200 {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Puts `base` (headers a middleware set) under this response's own
    /// headers: a name this response sets replaces the base's, as Node's
    /// `writeHead` overrides `setHeader`.
    pub fn under(mut self, mut base: Headers) -> Self {
        if base.is_empty() {
            return self;
        }
        base.retain(|(k, _)| !self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(k)));
        base.append(&mut self.headers);
        self.headers = base;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_upgrade_is_engine_ios_abort_upgrade() {
        let bytes = HttpResponse::upgrade_refused("Bad request").to_http1();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-type: text/html\r\n\
             Content-Length: 11\r\n\r\nBad request"
        );
    }

    #[test]
    fn a_101_has_no_length_and_no_header_that_splits_it() {
        let mut res = HttpResponse::empty(101);
        res.headers.push(("Upgrade".into(), "websocket".into()));
        res.headers
            .push(("X-Bad".into(), "a\r\nSet-Cookie: x".into()));
        assert_eq!(
            res.to_http1(),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
        );
    }
}
