//! The WebSocket transport: one task per connection reads frames, writes
//! what the session buffers, and runs the upgrade of a polling session.

use crate::engine::WsLink;
use crate::engine::{
    Admission, Engine, RequestError, RequestInfo, Session, TransportKind, Verified, WsBatch,
};
use crate::protocol::{decode_packet, v3, Packet, PacketData, PacketType, Protocol, Str, WsFrame};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// What an upgrade request turned out to be, decided before the 101.
#[derive(Debug)]
pub enum Ticket {
    /// A new session that starts on WebSocket, with its id.
    Handshake {
        /// The protocol revision.
        protocol: Protocol,
        /// The id the session will have.
        sid: String,
    },
    /// A polling session that wants to upgrade.
    Upgrade(Arc<Session>),
    /// Accepted, then closed at once (engine.io does this for upgrade
    /// requests whose transport does not handle upgrades).
    Close,
}

/// Why an upgrade request gets no 101.
#[derive(Debug)]
pub enum Refusal {
    /// A middleware ended the response: the connection is destroyed.
    Destroy,
    /// engine.io's error: a 400 with the message, and `connection_error`.
    Error(RequestError),
}

/// Runs engine.io's checks on an upgrade request (middlewares, `verify`,
/// `allowRequest`, `generateId`) and returns the ticket and the extra
/// headers of the 101: the middlewares' as the `headers` listeners left them.
/// `ran_middlewares` carries the headers of middlewares the front end
/// already ran (the Node bridge runs them on the real request); with `None`
/// the engine runs them.
pub async fn prepare(
    engine: &Engine,
    req: &Arc<RequestInfo>,
    ran_middlewares: Option<Vec<(String, String)>>,
) -> Result<(Ticket, Vec<(String, String)>), Refusal> {
    let run = ran_middlewares.is_none();
    let (verified, headers) = match engine.admit(req, true, run).await {
        Admission::Proceed { verified, headers } => (verified, ran_middlewares.unwrap_or(headers)),
        Admission::Respond(_) => return Err(Refusal::Destroy),
        Admission::Refused(e, _) => return Err(Refusal::Error(e)),
    };
    let ticket = match verified {
        Verified::Handshake(TransportKind::WebSocket) => {
            let (protocol, sid) = engine.handshake_id(req).await.map_err(Refusal::Error)?;
            Ticket::Handshake { protocol, sid }
        }
        Verified::Existing(session, TransportKind::WebSocket) => Ticket::Upgrade(session),
        _ => Ticket::Close,
    };
    let sid: Arc<str> = match &ticket {
        Ticket::Handshake { sid, .. } => Arc::from(sid.as_str()),
        Ticket::Upgrade(s) => s.sid.clone(),
        Ticket::Close => Arc::from(""),
    };
    let initial = req.query("sid").is_none();
    let headers = engine.response_headers(req, &sid, initial, headers).await;
    Ok((ticket, headers))
}

/// The `Sec-WebSocket-Accept` for a valid RFC 6455 upgrade request (GET,
/// `Upgrade: websocket`, version 13, a key), or `None`.
pub fn accept_key(req: &RequestInfo) -> Option<String> {
    let upgrade = req
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version = req.header("sec-websocket-version") == Some("13");
    let key = req
        .header("sec-websocket-key")
        .filter(|k| !k.trim().is_empty())?;
    (req.method == "GET" && upgrade && version).then(|| {
        tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.trim().as_bytes())
    })
}

/// The WebSocket settings for `engine`: messages up to `maxHttpBufferSize`,
/// and small buffers, since most connections are idle most of the time.
pub fn config(engine: &Engine) -> WebSocketConfig {
    let max = engine.config().max_http_buffer_size;
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// Serves an accepted WebSocket until it ends.
pub async fn serve<S>(
    engine: Engine,
    ticket: Ticket,
    req: Arc<RequestInfo>,
    mut ws: WebSocketStream<S>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let link = WsLink::new(engine.next_id());
    // engine.io: `!req._query.b64`, so an empty `b64=` still means binary.
    let req_supports_binary = req.query("b64").is_none_or(|v| v.is_empty());
    if !matches!(ticket, Ticket::Handshake { .. }) {
        engine.request_done(&req);
    }
    let (session, candidate) = match ticket {
        Ticket::Close => {
            let _ = ws.close(None).await;
            return;
        }
        Ticket::Handshake { protocol, sid } => {
            let kind = TransportKind::WebSocket;
            let s = engine.open_session(req.clone(), kind, protocol, sid, Some(link.clone()));
            // After `connection`, so the application hands the same request
            // object from its hooks to `socket.request`.
            engine.request_done(&req);
            (s, false)
        }
        Ticket::Upgrade(session) => {
            if !session.upgrade_begin(link.clone()) {
                let _ = ws.close(None).await;
                return;
            }
            (session, true)
        }
    };
    let end = Connection {
        engine: &engine,
        session: &session,
        link: &link,
        candidate,
        supports_binary: req_supports_binary,
    }
    .run(&mut ws)
    .await;
    match end {
        End::Closed => {}
        End::Error(e) => session.ws_ended(link.id, Some(e)),
        End::Remote => session.ws_ended(link.id, None),
        End::TooLarge => {
            // ws (engine.io's WebSocket server) sends 1009 with no reason.
            let frame = CloseFrame {
                code: CloseCode::Size,
                reason: Utf8Bytes::from_static(""),
            };
            let _ = ws.close(Some(frame)).await;
            session.ws_ended(link.id, Some("message too big".into()));
        }
        End::Protocol(e) => {
            let frame = CloseFrame {
                code: CloseCode::Protocol,
                reason: Utf8Bytes::from_static(""),
            };
            let _ = ws.close(Some(frame)).await;
            session.ws_ended(link.id, Some(e));
        }
        End::InvalidData(e) => {
            let frame = CloseFrame {
                code: CloseCode::Invalid,
                reason: Utf8Bytes::from_static(""),
            };
            let _ = ws.close(Some(frame)).await;
            session.ws_ended(link.id, Some(e));
        }
    }
}

enum End {
    /// The session (or the aborted upgrade) closed the socket.
    Closed,
    /// The client closed the socket.
    Remote,
    /// A message over `maxHttpBufferSize`.
    TooLarge,
    /// Frames that break RFC 6455.
    Protocol(String),
    /// A text message that is not UTF-8 (close code 1007).
    InvalidData(String),
    /// An I/O error.
    Error(String),
}

struct Connection<'a> {
    engine: &'a Engine,
    session: &'a Arc<Session>,
    link: &'a Arc<WsLink>,
    candidate: bool,
    /// v3 clients that asked for `b64` get binary as base64 text.
    supports_binary: bool,
}

impl Connection<'_> {
    async fn run<S>(mut self, ws: &mut WebSocketStream<S>) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = tokio::time::Instant::now() + self.engine.config().upgrade_timeout;
        // A fresh session has its open packet buffered already.
        self.link.notify.notify_one();
        loop {
            tokio::select! {
                _ = self.link.notify.notified() => {
                    match self.session.ws_batch(self.link.id) {
                        WsBatch::Idle => {}
                        WsBatch::Close => {
                            let _ = ws.close(None).await;
                            return End::Closed;
                        }
                        WsBatch::Write { packets, callbacks, close, more } => {
                            for p in &packets {
                                if let Err(e) = ws.feed(frame(p, self.session.protocol, self.supports_binary)).await {
                                    // A write after the client's close is its close, not an error.
                                    return error_end(e);
                                }
                            }
                            if let Err(e) = ws.flush().await {
                                return error_end(e);
                            }
                            self.session.ws_written(callbacks);
                            if close {
                                let _ = ws.close(None).await;
                                return End::Closed;
                            }
                            if more {
                                self.link.notify.notify_one();
                            }
                        }
                    }
                }
                msg = ws.next() => {
                    let msg = match msg {
                        None => return End::Remote,
                        Some(Ok(m)) => m,
                        Some(Err(e)) => return error_end(e),
                    };
                    let packet = match msg {
                        Message::Text(t) => {
                            // SAFETY: tungstenite validated the text frame as UTF-8.
                            let s = unsafe { Str::from_utf8_unchecked(Bytes::from(t)) };
                            match decode_text(s, self.session.protocol) {
                                Ok(Some(p)) => p,
                                Ok(None) => continue,
                                Err(()) => {
                                    if self.candidate {
                                        self.session.upgrade_abort(self.link.id);
                                        let _ = ws.close(None).await;
                                        return End::Closed;
                                    }
                                    self.session.on_parse_error();
                                    continue;
                                }
                            }
                        }
                        Message::Binary(b) => match binary_packet(b, self.session.protocol) {
                            Some(p) => p,
                            None => continue,
                        },
                        Message::Close(_) => {
                            // tungstenite answers the close; keep reading until it ends.
                            let _ = ws.flush().await;
                            continue;
                        }
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                            let _ = ws.flush().await;
                            continue;
                        }
                    };
                    if self.candidate {
                        match self.upgrade_step(ws, packet).await {
                            Some(end) => return end,
                            None => continue,
                        }
                    }
                    self.session.on_packet(packet);
                }
                _ = tokio::time::sleep_until(deadline), if self.candidate => {
                    self.session.upgrade_abort(self.link.id);
                    let _ = ws.close(None).await;
                    return End::Closed;
                }
            }
        }
    }

    /// One packet of the upgrade dance: `2probe` → `3probe`, then `5`.
    async fn upgrade_step<S>(&mut self, ws: &mut WebSocketStream<S>, packet: Packet) -> Option<End>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let id = self.link.id;
        match (packet.kind, &packet.data) {
            (PacketType::Ping, PacketData::Text(t)) if t == "probe" => {
                let pong = frame(
                    &Packet::text(PacketType::Pong, "probe"),
                    self.session.protocol,
                    self.supports_binary,
                );
                if let Err(e) = ws.send(pong).await {
                    self.session.upgrade_abort(id);
                    return Some(End::Error(e.to_string()));
                }
                if !self.session.upgrade_probed(id) {
                    let _ = ws.close(None).await;
                    return Some(End::Closed);
                }
                None
            }
            (PacketType::Upgrade, _) => {
                if !self.session.upgrade_complete(id) {
                    let _ = ws.close(None).await;
                    return Some(End::Closed);
                }
                self.candidate = false;
                None
            }
            _ => {
                self.session.upgrade_abort(id);
                let _ = ws.close(None).await;
                Some(End::Closed)
            }
        }
    }
}

fn error_end(e: WsError) -> End {
    match e {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => End::TooLarge,
        WsError::Protocol(p) => End::Protocol(p.to_string()),
        WsError::Utf8(_) => End::InvalidData("invalid UTF-8".into()),
        WsError::ConnectionClosed | WsError::AlreadyClosed => End::Remote,
        e => End::Error(e.to_string()),
    }
}

/// A text frame as a packet; `Ok(None)` for v3 frames engine.io ignores.
fn decode_text(s: Str, protocol: Protocol) -> Result<Option<Packet>, ()> {
    match protocol {
        Protocol::V4 => decode_packet(s).map(Some).map_err(|_| ()),
        Protocol::V3 => v3::decode_packet_v3(s).map_err(|_| ()),
    }
}

/// A binary frame as a packet: all data in v4, a type byte then data in v3.
fn binary_packet(b: Bytes, protocol: Protocol) -> Option<Packet> {
    match protocol {
        Protocol::V4 => Some(Packet::binary(b)),
        Protocol::V3 => v3::decode_binary_packet_v3(b),
    }
}

fn frame(p: &Packet, protocol: Protocol, supports_binary: bool) -> Message {
    let f = match protocol {
        Protocol::V4 => p.to_ws_frame(),
        Protocol::V3 => v3::encode_packet_ws_v3(p, supports_binary),
    };
    match f {
        // SAFETY: `Str` is UTF-8 by construction.
        WsFrame::Text(s) => {
            Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(s.into_bytes()) })
        }
        WsFrame::Binary(b) => Message::Binary(b),
    }
}
