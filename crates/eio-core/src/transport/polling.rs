//! HTTP long-polling: the handshake GET, the held GET that carries packets to
//! the client, and the POST that carries packets from it.

use super::HttpResponse;
use crate::engine::{Admission, Engine, RequestInfo, Session, TransportKind, Verified};
use crate::engine::{PollStart, ReadyState};
use crate::protocol::{decode_payload, encode_payload, v3, Packet, Protocol, Str};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use std::sync::Arc;

/// Why a request body could not be read whole.
#[derive(Debug)]
pub enum BodyError {
    /// Over `maxHttpBufferSize`.
    TooLarge,
    /// The client went away or sent a broken body.
    Aborted(String),
}

/// Reads a body, refusing it as soon as it grows past `limit` so that no
/// more than `limit` plus one chunk is ever held.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Aborted(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Serves one polling request (handshake, GET or POST) for `engine`.
/// `run_middlewares` is false when the front end already ran them (the Node
/// bridge runs them on the real request).
pub async fn handle<B>(
    engine: &Engine,
    req: Arc<RequestInfo>,
    body: B,
    run_middlewares: bool,
) -> HttpResponse
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let res = handle_inner(engine, &req, body, run_middlewares).await;
    engine.request_done(&req);
    res
}

#[cfg(test)]
mod tests {
    use super::preferred_encoding;

    #[test]
    fn encoding_follows_client_preference() {
        assert_eq!(preferred_encoding("gzip, deflate"), Some("gzip"));
        assert_eq!(preferred_encoding("deflate, gzip"), Some("deflate"));
        assert_eq!(preferred_encoding("gzip;q=0.5, deflate"), Some("deflate"));
        assert_eq!(preferred_encoding("br"), None);
        assert_eq!(preferred_encoding("gzip;q=0"), None);
        assert_eq!(preferred_encoding("*"), Some("gzip"));
    }
}

async fn handle_inner<B>(
    engine: &Engine,
    req: &Arc<RequestInfo>,
    body: B,
    run_middlewares: bool,
) -> HttpResponse
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let (verified, mw_headers) = match engine.admit(req, false, run_middlewares).await {
        Admission::Proceed { verified, headers } => (verified, headers),
        Admission::Respond(res) => return res,
        Admission::Refused(error, headers) => {
            let res = HttpResponse::refused(&error);
            engine.report_error(req.clone(), error);
            return res.under(headers);
        }
    };
    let res = match verified {
        Verified::Handshake(_) => match engine.handshake_id(req).await {
            Err(error) => {
                let res = HttpResponse::refused(&error);
                engine.report_error(req.clone(), error);
                res
            }
            Ok((protocol, sid)) => {
                let session =
                    engine.open_session(req.clone(), TransportKind::Polling, protocol, sid, None);
                let res = poll(engine, &session, req).await;
                with_headers(engine, req, &session, true, res).await
            }
        },
        Verified::Existing(session, _) => {
            let res = match req.method.as_str() {
                "GET" => poll(engine, &session, req).await,
                "POST" => data(engine, &session, req, body).await,
                _ => HttpResponse::empty(500),
            };
            with_headers(engine, req, &session, false, res).await
        }
    };
    res.under(mw_headers)
}

/// engine.io's transport headers on a successful answer: `cache-control`,
/// the IE XSS workaround, then the application's `headers` listeners.
async fn with_headers(
    engine: &Engine,
    req: &Arc<RequestInfo>,
    session: &Session,
    initial: bool,
    mut res: HttpResponse,
) -> HttpResponse {
    if res.status != 200 {
        return res;
    }
    if let Some(ua) = req.header("user-agent") {
        if ua.contains(";MSIE") || ua.contains("Trident/") {
            res.headers.push(("X-XSS-Protection".into(), "0".into()));
        }
    }
    res.headers
        .push(("cache-control".into(), "no-store".into()));
    res.headers = engine
        .response_headers(req, &session.sid, initial, std::mem::take(&mut res.headers))
        .await;
    res
}

/// Marks a held GET as abandoned if its future is dropped before it is
/// answered: the front end drops it when the client disconnects.
struct HeldPoll<'a> {
    session: &'a Arc<Session>,
    id: u64,
    armed: bool,
}

impl Drop for HeldPoll<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.session.poll_abandoned(self.id);
        }
    }
}

async fn poll(engine: &Engine, session: &Arc<Session>, req: &RequestInfo) -> HttpResponse {
    let id = engine.next_id();
    let batch = match session.poll_start(id) {
        PollStart::Ready(batch) => batch,
        PollStart::Wait(id, rx) => {
            let mut held = HeldPoll {
                session,
                id,
                armed: true,
            };
            let batch = rx.await;
            held.armed = false;
            match batch {
                Ok(b) => b,
                Err(_) => return HttpResponse::empty(400),
            }
        }
        PollStart::Overlap => return HttpResponse::empty(400),
        PollStart::Closed => {
            return HttpResponse::refused(&crate::engine::RequestError::new(
                crate::engine::ErrorCode::UnknownSid,
                serde_json::json!({ "sid": &*session.sid }),
            ))
        }
    };
    let res = payload_response(session.protocol, req.query("b64").is_none(), &batch.packets);
    match engine.config().http_compression {
        Some(threshold) if batch.compress && res.body.len() >= threshold => compress(res, req),
        _ => res,
    }
}

/// engine.io's `httpCompression`: gzip or deflate, as the client prefers.
fn compress(mut res: HttpResponse, req: &RequestInfo) -> HttpResponse {
    use flate2::write::{GzEncoder, ZlibEncoder};
    use std::io::Write;
    let Some(encoding) = req.header("accept-encoding").and_then(preferred_encoding) else {
        return res;
    };
    let out = Vec::with_capacity(res.body.len() / 2);
    let level = flate2::Compression::default();
    let body = if encoding == "gzip" {
        let mut e = GzEncoder::new(out, level);
        e.write_all(&res.body).and_then(|_| e.finish())
    } else {
        let mut e = ZlibEncoder::new(out, level);
        e.write_all(&res.body).and_then(|_| e.finish())
    };
    match body {
        Ok(b) => {
            res.body = Bytes::from(b);
            res.headers
                .push(("Content-Encoding".into(), encoding.into()));
            res
        }
        Err(_) => HttpResponse::empty(500),
    }
}

/// `gzip` or `deflate`, whichever the client ranks higher in
/// `Accept-Encoding` (earlier wins a tie, `*` stands for both), if any.
pub fn preferred_encoding(header: &str) -> Option<&'static str> {
    let mut best: Option<(&'static str, f32, usize)> = None;
    for (pos, part) in header.split(',').enumerate() {
        let mut it = part.split(';');
        let name = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|v| v.trim().parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        let candidates: &[&'static str] = match name.as_str() {
            "gzip" => &["gzip"],
            "deflate" => &["deflate"],
            "*" => &["gzip", "deflate"],
            _ => &[],
        };
        for &c in candidates {
            if q > 0.0 && best.is_none_or(|(_, bq, _)| q > bq) {
                best = Some((c, q, pos));
            }
        }
    }
    best.map(|(c, _, _)| c)
}

/// The response carrying `packets` to the client. v3 clients that did not
/// ask for base64 (`b64`) get binary payloads when there is binary data.
pub fn payload_response(
    protocol: Protocol,
    supports_binary: bool,
    packets: &[Packet],
) -> HttpResponse {
    let (content_type, body): (&str, Bytes) = match protocol {
        Protocol::V4 => ("text/plain; charset=UTF-8", encode_payload(packets).into()),
        Protocol::V3 => {
            let payload = v3::encode_payload(packets, supports_binary);
            let ct = payload.content_type();
            let body = match payload {
                v3::Payload::Text(s) => Bytes::from(s),
                v3::Payload::Binary(b) => b,
            };
            (ct, body)
        }
    };
    HttpResponse::new(200, content_type, body)
}

async fn data<B>(
    engine: &Engine,
    session: &Arc<Session>,
    req: &RequestInfo,
    body: B,
) -> HttpResponse
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let binary = req.header("content-type") == Some("application/octet-stream");
    if binary && session.protocol == Protocol::V4 {
        session.close(
            crate::engine::CloseReason::TransportError,
            Some("invalid content".into()),
        );
        return HttpResponse::empty(400);
    }
    if !session.post_start() {
        return HttpResponse::empty(400);
    }
    let read = read_body(body, engine.config().max_http_buffer_size).await;
    session.post_end();
    let bytes = match read {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return HttpResponse::empty(413),
        Err(BodyError::Aborted(e)) => {
            session.close(crate::engine::CloseReason::TransportError, Some(e));
            return HttpResponse::empty(400);
        }
    };
    let text = match String::from_utf8(bytes.to_vec()) {
        Ok(s) => Str::from(s),
        Err(e) => Str::from(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    };
    feed(session, session.protocol, text);
    HttpResponse::new(200, "text/html", "ok")
}

/// Hands the packets of a polling payload to the session, in order.
fn feed(session: &Session, protocol: Protocol, payload: Str) {
    match protocol {
        Protocol::V4 => {
            for item in decode_payload(payload) {
                if session.ready_state() == ReadyState::Closed {
                    return;
                }
                match item {
                    Ok(p) => session.on_packet(p),
                    Err(_) => return session.on_parse_error(),
                }
            }
        }
        Protocol::V3 => {
            for item in v3::decode_payload_string(payload) {
                if session.ready_state() == ReadyState::Closed {
                    return;
                }
                match item {
                    Ok(p) => session.on_packet(p),
                    Err(_) => return session.on_parse_error(),
                }
            }
        }
    }
}
