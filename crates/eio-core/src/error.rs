//! Errors and close reasons, typed once and mapped at each edge (HTTP
//! response, `connection_error` event, `close` event).

use std::fmt;

/// engine.io's request error codes (`Server.errors`), sent to clients as
/// `{"code": N, "message": "..."}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 0: the `transport` query parameter names no enabled transport.
    UnknownTransport = 0,
    /// 1: the `sid` names no live session.
    UnknownSid = 1,
    /// 2: a handshake that is not a GET.
    BadHandshakeMethod = 2,
    /// 3: anything else the server cannot accept.
    BadRequest = 3,
    /// 4: refused by the application (`allowRequest`).
    Forbidden = 4,
    /// 5: an `EIO` revision the server does not speak.
    UnsupportedProtocolVersion = 5,
    /// 6 (eio-rs): a handshake while the engine drains (`engine.drain()`),
    /// answered 503 so that a load balancer tries another server.
    ServerDraining = 6,
}

impl ErrorCode {
    /// Every code, in order.
    pub const ALL: [ErrorCode; 7] = [
        ErrorCode::UnknownTransport,
        ErrorCode::UnknownSid,
        ErrorCode::BadHandshakeMethod,
        ErrorCode::BadRequest,
        ErrorCode::Forbidden,
        ErrorCode::UnsupportedProtocolVersion,
        ErrorCode::ServerDraining,
    ];

    /// engine.io's name for the code (the keys of `Server.errors`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::UnknownTransport => "UNKNOWN_TRANSPORT",
            ErrorCode::UnknownSid => "UNKNOWN_SID",
            ErrorCode::BadHandshakeMethod => "BAD_HANDSHAKE_METHOD",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::UnsupportedProtocolVersion => "UNSUPPORTED_PROTOCOL_VERSION",
            ErrorCode::ServerDraining => "SERVER_DRAINING",
        }
    }

    /// engine.io's message for the code (`Server.errorMessages`).
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::UnknownTransport => "Transport unknown",
            ErrorCode::UnknownSid => "Session ID unknown",
            ErrorCode::BadHandshakeMethod => "Bad handshake method",
            ErrorCode::BadRequest => "Bad request",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::UnsupportedProtocolVersion => "Unsupported protocol version",
            ErrorCode::ServerDraining => "Server draining",
        }
    }

    /// The HTTP status engine.io answers with: 403 for `Forbidden`, else
    /// 400 (and 503 while draining).
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::Forbidden => 403,
            ErrorCode::ServerDraining => 503,
            _ => 400,
        }
    }

    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A refused request: the code, the message to send (engine.io lets
/// `allowRequest` replace it) and the `context` of the `connection_error`
/// event, as a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestError {
    /// The error code.
    pub code: ErrorCode,
    /// The message sent in the response body.
    pub message: String,
    /// The `context` object of the `connection_error` event.
    pub context: serde_json::Value,
}

impl RequestError {
    /// An error with engine.io's default message and the given context.
    pub fn new(code: ErrorCode, context: serde_json::Value) -> Self {
        RequestError {
            code,
            message: code.message().to_string(),
            context,
        }
    }

    /// What the client is told: the context's `message` when there is one
    /// (`allowRequest` can give it), else the code's message.
    pub fn client_message(&self) -> &str {
        self.context
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or(&self.message)
    }

    /// The JSON body engine.io sends for a refused polling request.
    pub fn body(&self) -> String {
        serde_json::json!({ "code": self.code.code(), "message": self.client_message() })
            .to_string()
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code.code())
    }
}

impl std::error::Error for RequestError {}

/// Why a session closed: the first argument of engine.io's `close` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the transport (close packet, or the connection ended).
    TransportClose,
    /// The transport failed (overlapping polls, premature disconnect, bad frames).
    TransportError,
    /// No pong (v4) or ping (v3) in time.
    PingTimeout,
    /// The server closed the session (`socket.close()`, `server.close()`).
    ForcedClose,
    /// The client sent something that is not Engine.IO.
    ParseError,
}

impl CloseReason {
    /// Every reason, in order.
    pub const ALL: [CloseReason; 5] = [
        CloseReason::TransportClose,
        CloseReason::TransportError,
        CloseReason::PingTimeout,
        CloseReason::ForcedClose,
        CloseReason::ParseError,
    ];

    /// engine.io's string for the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport close",
            CloseReason::TransportError => "transport error",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ForcedClose => "forced close",
            CloseReason::ParseError => "parse error",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_engine_io() {
        let e = RequestError::new(ErrorCode::UnknownSid, serde_json::json!({"sid": "x"}));
        assert_eq!(e.body(), r#"{"code":1,"message":"Session ID unknown"}"#);
        assert_eq!(ErrorCode::Forbidden.status(), 403);
        assert_eq!(ErrorCode::UnsupportedProtocolVersion.status(), 400);
    }

    #[test]
    fn all_codes_in_order() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(code.code() as usize, i);
        }
        for (i, reason) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
        }
        assert_eq!(ErrorCode::ServerDraining.status(), 503);
    }
}
