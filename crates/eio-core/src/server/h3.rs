//! HTTP/3 for WebTransport on quinn: reading frames from QUIC streams, and
//! the server's side of a session (the SETTINGS both ways, the extended
//! CONNECT and its answer, the session's streams).
//!
//! Why our own: wtransport 0.7.2's connection driver reads the client's
//! control stream inside a `select!` loop that drops the read whenever
//! another branch is ready, and its frame read is not cancel safe. A
//! SETTINGS frame that arrives in two packets, with any stream or datagram
//! between them, lost the bytes read so far, and the rest was parsed as new
//! frames: the connection closed with H3_FRAME_UNEXPECTED or
//! H3_EXCESSIVE_LOAD (1 in 500 to 4000 sessions opened at once under load).
//! Here every stream is read by a task of its own, which nothing cancels
//! midway: a frame is read whole however it is cut.
//!
//! A connection carries one session (SETTINGS_WEBTRANSPORT_MAX_SESSIONS is
//! 1, as wtransport's): a second CONNECT is rejected, and of the session's
//! streams the first bidirectional one is the session's, the others are
//! refused. The connection is closed when the session is over, when the
//! client ends its CONNECT stream or control stream, or when the [`Request`]
//! or [`Session`] is dropped.

use crate::protocol::h3 as wire;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use wtransport::proto::frame::Frame;
use wtransport::proto::headers::Headers;
use wtransport::proto::session::SessionRequest;
use wtransport::proto::settings::Settings;
use wtransport::proto::varint::VarInt as ProtoVarInt;
use wtransport::quinn;

/// Why reading a stream stopped short.
#[derive(Debug)]
pub enum ReadError {
    /// The peer reset the stream with this code.
    Reset(u64),
    /// The connection is gone (see its close reason).
    Lost,
    /// The bytes make no sense (a frame cut short, or too large).
    Malformed(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Reset(code) => write!(f, "stream reset by the peer (code {code})"),
            ReadError::Lost => f.write_str("connection lost"),
            ReadError::Malformed(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for ReadError {}

fn read_error(e: quinn::ReadError) -> ReadError {
    match e {
        quinn::ReadError::Reset(code) => ReadError::Reset(code.into_inner()),
        quinn::ReadError::ConnectionLost(_) => ReadError::Lost,
        other => ReadError::Malformed(other.to_string()),
    }
}

/// Fills `buf`; false if the stream ended before its first byte.
async fn fill(
    recv: &mut quinn::RecvStream,
    buf: &mut [u8],
    at_start: bool,
) -> Result<bool, ReadError> {
    match recv.read_exact(buf).await {
        Ok(()) => Ok(true),
        Err(quinn::ReadExactError::FinishedEarly(0)) if at_start => Ok(false),
        Err(quinn::ReadExactError::FinishedEarly(_)) => Err(ReadError::Malformed(
            "the stream ended inside a frame".into(),
        )),
        Err(quinn::ReadExactError::ReadError(e)) => Err(read_error(e)),
    }
}

/// Reads a varint; `None` if the stream ended cleanly before it (when
/// `at_start`).
pub async fn read_varint(
    recv: &mut quinn::RecvStream,
    at_start: bool,
) -> Result<Option<u64>, ReadError> {
    let mut buf = [0u8; 8];
    if !fill(recv, &mut buf[..1], at_start).await? {
        return Ok(None);
    }
    let len = 1usize << (buf[0] >> 6);
    fill(recv, &mut buf[1..len], false).await?;
    Ok(wire::get_varint(&buf[..len]).map(|(v, _)| v))
}

/// Reads the rest of a frame whose type was read: its payload.
async fn read_payload(recv: &mut quinn::RecvStream) -> Result<Vec<u8>, ReadError> {
    let len = read_varint(recv, false).await?.unwrap_or(0);
    if len > wire::MAX_FRAME as u64 {
        return Err(ReadError::Malformed(format!(
            "a frame of {len} bytes is too large"
        )));
    }
    let mut payload = vec![0u8; len as usize];
    fill(recv, &mut payload, false).await?;
    Ok(payload)
}

/// Reads one frame: its type and payload; `None` at a clean end of stream.
pub async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Option<(u64, Vec<u8>)>, ReadError> {
    let Some(kind) = read_varint(recv, true).await? else {
        return Ok(None);
    };
    Ok(Some((kind, read_payload(recv).await?)))
}

/// Reads a stream to its end, dropping what it says.
pub async fn drain(recv: &mut quinn::RecvStream) {
    let mut buf = vec![0u8; 4096];
    while let Ok(Some(_)) = recv.read(&mut buf).await {}
}

/// The SETTINGS both sides of a WebTransport connection send (wtransport's
/// own, which browsers accept): no QPACK dynamic table, extended CONNECT,
/// WebTransport with HTTP/3 datagrams, one session.
fn settings() -> Settings {
    Settings::builder()
        .qpack_max_table_capacity(ProtoVarInt::from_u32(0))
        .qpack_blocked_streams(ProtoVarInt::from_u32(0))
        .enable_connect_protocol()
        .enable_webtransport()
        .enable_h3_datagrams()
        .webtransport_max_sessions(ProtoVarInt::from_u32(1))
        .build()
}

/// What a control stream starts with: its type, then the SETTINGS frame
/// of [`settings`].
pub fn control_stream_start() -> Vec<u8> {
    let mut bytes = Vec::new();
    wire::put_varint(&mut bytes, wire::STREAM_CONTROL);
    bytes.extend(wire::frame(
        wire::FRAME_SETTINGS,
        settings().generate_frame().payload(),
    ));
    bytes
}

/// Closes `quic` with an HTTP/3 error code.
fn close(quic: &quinn::Connection, code: u32) {
    quic.close(code.into(), b"");
}

/// Closes the connection when dropped: the tasks reading its streams hold
/// it open otherwise.
struct Closer(quinn::Connection);

impl Drop for Closer {
    fn drop(&mut self) {
        close(&self.0, 0);
    }
}

/// A bidirectional stream: both halves.
type BiStream = (quinn::SendStream, quinn::RecvStream);

/// Refuses a stream both ways (STOP_SENDING and RESET_STREAM with `code`).
fn refuse((mut send, mut recv): BiStream, code: u32) {
    let _ = recv.stop(code.into());
    let _ = send.reset(code.into());
}

/// Where the CONNECT request goes, taken by the first request stream.
type ConnectSlot = Arc<Mutex<Option<oneshot::Sender<(Headers, BiStream)>>>>;

/// A client's extended CONNECT, waiting for its answer.
pub(crate) struct Request {
    quic: quinn::Connection,
    request: SessionRequest,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    streams: mpsc::Receiver<(u64, BiStream)>,
    /// Our control stream: HTTP/3 treats its end as a connection error.
    control: quinn::SendStream,
    closer: Closer,
}

/// Why no request came.
#[derive(Debug)]
pub(crate) enum AcceptError {
    /// The connection closed (its reason).
    Lost(quinn::ConnectionError),
    /// The client's request or streams broke HTTP/3 (the connection is
    /// closed with this code).
    Protocol(u32, String),
}

impl fmt::Display for AcceptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcceptError::Lost(e) => e.fmt(f),
            AcceptError::Protocol(code, what) => write!(f, "{what} (H3 error {code:#x})"),
        }
    }
}

/// Serves HTTP/3 on a new connection until the client's SETTINGS and its
/// CONNECT request have come. The caller bounds the wait: dropping the
/// future closes the connection.
pub(crate) async fn accept(quic: quinn::Connection) -> Result<Request, AcceptError> {
    let closer = Closer(quic.clone());
    let lost = |quic: &quinn::Connection| match quic.close_reason() {
        Some(reason) => AcceptError::Lost(reason),
        None => AcceptError::Protocol(wire::H3_NO_ERROR, "the connection ended".into()),
    };
    let mut control = quic.open_uni().await.map_err(AcceptError::Lost)?;
    control
        .write_all(&control_stream_start())
        .await
        .map_err(|_| lost(&quic))?;

    let (settings_tx, mut settings_rx) = watch::channel(false);
    let (connect_tx, connect_rx) = oneshot::channel();
    let (streams_tx, streams) = mpsc::channel(1);
    tokio::spawn(serve_uni(quic.clone(), settings_tx));
    tokio::spawn(serve_bi(
        quic.clone(),
        Arc::new(Mutex::new(Some(connect_tx))),
        streams_tx,
    ));
    tokio::spawn(drop_datagrams(quic.clone()));

    let got = async {
        // Extended CONNECT needs the client's SETTINGS first.
        if settings_rx.wait_for(|got| *got).await.is_err() {
            return Err(lost(&quic));
        }
        let Ok((headers, (send, recv))) = connect_rx.await else {
            return Err(lost(&quic));
        };
        let request = SessionRequest::try_from(headers).map_err(|e| {
            AcceptError::Protocol(wire::H3_MESSAGE_ERROR, format!("bad CONNECT request: {e}"))
        })?;
        Ok((request, send, recv))
    };
    let (request, send, recv) = match got.await {
        Ok(got) => got,
        Err(e) => {
            if let AcceptError::Protocol(code, _) = &e {
                close(&quic, *code);
            }
            return Err(e);
        }
    };
    Ok(Request {
        quic,
        request,
        send,
        recv,
        streams,
        control,
        closer,
    })
}

/// Reads the streams the client opens: its control stream (whose SETTINGS
/// `settings` waits for, and whose end closes the connection), QPACK
/// streams (drained), WebTransport streams (refused: a session has one
/// bidirectional stream).
async fn serve_uni(quic: quinn::Connection, settings: watch::Sender<bool>) {
    let settings = Arc::new(settings);
    while let Ok(mut recv) = quic.accept_uni().await {
        let (quic, settings) = (quic.clone(), settings.clone());
        tokio::spawn(async move {
            match read_varint(&mut recv, true).await {
                Ok(Some(wire::STREAM_CONTROL)) => {
                    match read_frame(&mut recv).await {
                        Ok(Some((wire::FRAME_SETTINGS, _))) => {
                            settings.send_replace(true);
                        }
                        Err(ReadError::Lost) => return,
                        _ => return close(&quic, wire::H3_MISSING_SETTINGS),
                    }
                    // Later frames (GOAWAY, unknown ones) change nothing
                    // for one session; the stream must not end.
                    loop {
                        match read_frame(&mut recv).await {
                            Ok(Some(_)) => {}
                            Err(ReadError::Lost) => return,
                            _ => return close(&quic, wire::H3_CLOSED_CRITICAL_STREAM),
                        }
                    }
                }
                Ok(Some(wire::STREAM_QPACK_ENCODER | wire::STREAM_QPACK_DECODER)) => {
                    drain(&mut recv).await
                }
                Ok(Some(wire::STREAM_WEBTRANSPORT)) => {
                    let _ = recv.stop(0u32.into());
                }
                Ok(Some(_)) => {
                    let _ = recv.stop(wire::H3_STREAM_CREATION_ERROR.into());
                }
                Ok(None) | Err(_) => {}
            }
        });
    }
}

/// Reads the first bytes of each bidirectional stream the client opens: a
/// request (the CONNECT, once: `connect`), or a WebTransport stream (its
/// session id and the stream go to `streams`, which holds one at a time).
async fn serve_bi(
    quic: quinn::Connection,
    connect: ConnectSlot,
    streams: mpsc::Sender<(u64, BiStream)>,
) {
    while let Ok((send, mut recv)) = quic.accept_bi().await {
        let (quic, connect, streams) = (quic.clone(), connect.clone(), streams.clone());
        tokio::spawn(async move {
            let mut first = true;
            loop {
                match read_varint(&mut recv, first).await {
                    Ok(Some(wire::FRAME_WEBTRANSPORT_STREAM)) if first => {
                        match read_varint(&mut recv, false).await {
                            Ok(Some(id)) => {
                                if let Err(e) = streams.try_send((id, (send, recv))) {
                                    refuse(e.into_inner().1, 0);
                                }
                            }
                            _ => refuse((send, recv), 0),
                        }
                        return;
                    }
                    Ok(Some(wire::FRAME_HEADERS)) => {
                        let taken = connect.lock().ok().and_then(|mut c| c.take());
                        let Some(tx) = taken else {
                            return refuse((send, recv), wire::H3_REQUEST_REJECTED);
                        };
                        let headers = read_payload(&mut recv).await.ok().and_then(|payload| {
                            Headers::with_frame(&Frame::new_headers(payload.into())).ok()
                        });
                        match headers {
                            Some(headers) => {
                                let _ = tx.send((headers, (send, recv)));
                            }
                            None => close(&quic, wire::H3_MESSAGE_ERROR),
                        }
                        return;
                    }
                    // Frame types HTTP/3 defines (DATA, SETTINGS, ...) have
                    // no place before a request's HEADERS.
                    Ok(Some(kind)) if kind < 0x21 => {
                        return refuse((send, recv), wire::H3_FRAME_UNEXPECTED)
                    }
                    // Unknown and reserved ones are skipped (RFC 9114 §9).
                    Ok(Some(_)) => {
                        if read_payload(&mut recv).await.is_err() {
                            return;
                        }
                        first = false;
                    }
                    Ok(None) | Err(_) => return,
                }
            }
        });
    }
}

/// Reads and drops the client's datagrams (the session uses none), so
/// that they do not wait in quinn's buffer.
async fn drop_datagrams(quic: quinn::Connection) {
    while quic.read_datagram().await.is_ok() {}
}

impl Request {
    /// The request's headers (`:path`, `:authority` and the others).
    pub(crate) fn request(&self) -> &SessionRequest {
        &self.request
    }

    /// The client's address.
    pub(crate) fn remote(&self) -> SocketAddr {
        self.quic.remote_address()
    }

    /// Answers with `status` (an error) and ends the CONNECT stream; waits
    /// up to `linger` for the client to have it, then closes the
    /// connection.
    pub(crate) async fn reject(mut self, status: u16, linger: Duration) {
        let answer = answer(status, Vec::new());
        if self.send.write_all(&answer).await.is_ok() && self.send.finish().is_ok() {
            let _ = tokio::time::timeout(linger, self.send.stopped()).await;
        }
    }

    /// Answers 200 with `headers`: the session is open.
    pub(crate) async fn accept(
        mut self,
        headers: Vec<(String, String)>,
    ) -> Result<Session, quinn::WriteError> {
        self.send.write_all(&answer(200, headers)).await?;
        let id = u64::from(self.send.id());
        tokio::spawn(watch_connect(self.quic.clone(), self.send, self.recv));
        Ok(Session {
            id,
            streams: self.streams,
            _control: self.control,
            closer: self.closer,
        })
    }
}

/// A HEADERS frame with `:status` and `headers`.
fn answer(status: u16, headers: Vec<(String, String)>) -> Vec<u8> {
    let mut fields: Headers = headers.into_iter().collect();
    fields.insert(":status", status);
    wire::frame(wire::FRAME_HEADERS, fields.generate_frame().payload())
}

/// Reads the CONNECT stream of an open session: the client ends the
/// session with a CLOSE_WEBTRANSPORT_SESSION capsule, or by ending or
/// resetting the stream; the connection then closes. `send` stays open
/// until then (its end would end the session for the client).
async fn watch_connect(
    quic: quinn::Connection,
    _send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let mut capsules = Vec::new();
    loop {
        match read_frame(&mut recv).await {
            Ok(Some((wire::FRAME_DATA, payload))) => {
                capsules.extend_from_slice(&payload);
                while let Some((kind, _, used)) = wire::parse_capsule(&capsules) {
                    if kind == wire::CAPSULE_CLOSE_SESSION {
                        return close(&quic, 0);
                    }
                    capsules.drain(..used);
                }
                if capsules.len() > wire::MAX_FRAME {
                    return close(&quic, wire::H3_MESSAGE_ERROR);
                }
            }
            Ok(Some(_)) => {}
            Err(ReadError::Lost) => return,
            Ok(None) | Err(_) => return close(&quic, 0),
        }
    }
}

/// An open session.
pub(crate) struct Session {
    /// The CONNECT stream's id, which names the session on the wire.
    id: u64,
    streams: mpsc::Receiver<(u64, BiStream)>,
    _control: quinn::SendStream,
    closer: Closer,
}

impl Session {
    /// Closes the connection: the session is over.
    pub(crate) fn close(&self) {
        close(&self.closer.0, 0);
    }

    /// The session's bidirectional stream: the first the client opens for
    /// it. Streams that name another session are refused; so are those
    /// that come after it (`streams` is dropped with the session).
    pub(crate) async fn stream(&mut self) -> Option<BiStream> {
        while let Some((id, stream)) = self.streams.recv().await {
            if id == self.id {
                self.streams.close();
                return Some(stream);
            }
            refuse(stream, 0);
        }
        None
    }
}
