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
