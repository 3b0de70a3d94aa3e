//! A WebTransport session over HTTP/3, one per QUIC connection, done by hand
//! on quinn. wtransport's client would do, but it keeps the status of a
//! refused CONNECT to itself and cannot close a session with a capsule; the
//! tests need both.

use crate::h3::{self, ReadError};
use crate::out::Out;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use wtransport::proto::frame::Frame;
use wtransport::proto::headers::Headers;
use wtransport::proto::session::SessionRequest;
use wtransport::quinn;
use wtransport::tls::Sha256Digest;

/// How long a graceful close waits for the server before closing QUIC anyway.
const CLOSE_GRACE: Duration = Duration::from_millis(1000);

pub struct ConnSetup {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub hashes: Option<Vec<Sha256Digest>>,
    pub timeout: Duration,
    pub keepalive: Option<Duration>,
    pub idle: Option<Duration>,
    /// Writes only this many bytes of the control stream (its type and the
    /// start of SETTINGS) before the CONNECT, the rest after it: SETTINGS
    /// cut in two around the request, as the network may deliver it.
    pub settings_split: Option<usize>,
}

/// Why a session could not be opened.
pub struct ConnectError {
    pub message: String,
    /// The HTTP status of a refused CONNECT.
    pub status: Option<u16>,
    /// The application code of a QUIC close by the server during the handshake.
    pub code: Option<u64>,
}

fn fail(message: impl Into<String>) -> ConnectError {
    ConnectError {
        message: message.into(),
        status: None,
        code: None,
    }
}

fn lost(e: quinn::ConnectionError) -> ConnectError {
    let code = match &e {
        quinn::ConnectionError::ApplicationClosed(close) => Some(close.error_code.into_inner()),
        _ => None,
    };
    ConnectError {
        message: e.to_string(),
        status: None,
        code,
    }
}

/// TLS 1.3 with ALPN "h3" that accepts the certificates with these SHA-256
/// hashes (as browsers' serverCertificateHashes do), or any certificate.
pub fn quic_config(
    hashes: Option<&[Sha256Digest]>,
    idle: Option<Duration>,
    keepalive: Option<Duration>,
) -> Result<quinn::ClientConfig, String> {
    use wtransport::tls::client::{
        build_default_tls_config, NoServerVerification, ServerHashVerification,
    };
    use wtransport::tls::rustls::client::danger::ServerCertVerifier;
    use wtransport::tls::rustls::RootCertStore;

    let verifier: Arc<dyn ServerCertVerifier> = match hashes {
        Some(hashes) => Arc::new(ServerHashVerification::new(hashes.iter().cloned())),
        None => Arc::new(NoServerVerification::new()),
    };
    let tls = build_default_tls_config(Arc::new(RootCertStore::empty()), Some(verifier));
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| format!("TLS setup: {e}"))?;
    let mut transport = quinn::TransportConfig::default();
    let idle = idle
        .map(quinn::IdleTimeout::try_from)
        .transpose()
        .map_err(|_| "\"idle_ms\" is out of range")?;
    transport.max_idle_timeout(idle);
    transport.keep_alive_interval(keepalive);
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// A client endpoint (its own UDP socket) of the family of `addr`.
pub fn endpoint_for(addr: SocketAddr) -> Result<quinn::Endpoint, String> {
    let bind: SocketAddr = if addr.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    quinn::Endpoint::client(bind).map_err(|e| format!("cannot bind a UDP socket: {e}"))
}

pub struct Session {
    pub quic: quinn::Connection,
    pub endpoint: quinn::Endpoint,
    /// The CONNECT stream's id, which names the session on the wire.
    pub id: u64,
    connect_send: tokio::sync::Mutex<quinn::SendStream>,
    /// Our control stream: HTTP/3 treats its end as a connection error.
    _control: Mutex<quinn::SendStream>,
    /// The code and reason of our own close, once asked for.
    local_close: Mutex<Option<(u64, String)>>,
}

/// Opens a QUIC connection and a WebTransport session on it. On success,
/// also returns the receive side of the CONNECT stream, for [`watch`].
pub async fn connect(setup: &ConnSetup) -> Result<(Arc<Session>, quinn::RecvStream), ConnectError> {
    let url = url::Url::parse(&setup.url).map_err(|e| fail(format!("invalid URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(fail("invalid URL: WebTransport URLs are https: URLs"));
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let (addr, server_name) = match url.host() {
        Some(url::Host::Ipv4(ip)) => (SocketAddr::from((ip, port)), ip.to_string()),
        Some(url::Host::Ipv6(ip)) => (SocketAddr::from((ip, port)), ip.to_string()),
        Some(url::Host::Domain(name)) => {
            let mut addrs = tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| fail(format!("cannot resolve {name}: {e}")))?;
            let addr = addrs
                .next()
                .ok_or_else(|| fail(format!("cannot resolve {name}")))?;
            (addr, name.to_owned())
        }
        None => return Err(fail("invalid URL: no host")),
    };
    let mut request =
        SessionRequest::new(&setup.url).map_err(|e| fail(format!("invalid URL: {e}")))?;
    for (key, value) in &setup.headers {
        request
            .insert(key, value)
            .map_err(|_| fail(format!("header \"{key}\" is reserved")))?;
    }

    let config = quic_config(setup.hashes.as_deref(), setup.idle, setup.keepalive).map_err(fail)?;
    let endpoint = endpoint_for(addr).map_err(fail)?;
    let quic = endpoint
        .connect_with(config, addr, &server_name)
        .map_err(|e| fail(e.to_string()))?
        .await
        .map_err(lost)?;
    match handshake(&quic, &endpoint, request, setup.settings_split).await {
        Ok(done) => Ok(done),
        Err(e) => {
            quic.close(h3::H3_NO_ERROR.into(), b"");
            Err(e)
        }
    }
}

/// The HTTP/3 part: SETTINGS both ways, then the extended CONNECT.
async fn handshake(
    quic: &quinn::Connection,
    endpoint: &quinn::Endpoint,
    request: SessionRequest,
    settings_split: Option<usize>,
) -> Result<(Arc<Session>, quinn::RecvStream), ConnectError> {
    let lost_or = |e: &dyn std::fmt::Display| match quic.close_reason() {
        Some(reason) => lost(reason),
        None => fail(e.to_string()),
    };

    let (settings_tx, mut settings_rx) = watch::channel(false);
    tokio::spawn(serve_uni(quic.clone(), settings_tx));

    // The same SETTINGS as wtransport's client.
    let mut control = quic.open_uni().await.map_err(lost)?;
    let bytes = h3::control_stream_start();
    let split = settings_split.unwrap_or(bytes.len()).min(bytes.len());
    control
        .write_all(&bytes[..split])
        .await
        .map_err(|e| lost_or(&e))?;

    // Extended CONNECT needs the server's SETTINGS first.
    if settings_rx.wait_for(|got| *got).await.is_err() {
        return Err(match quic.close_reason() {
            Some(reason) => lost(reason),
            None => fail("the server's control stream ended before its SETTINGS"),
        });
    }

    let (mut send, mut recv) = quic.open_bi().await.map_err(lost)?;
    let headers = request.headers().generate_frame();
    send.write_all(&h3::frame(h3::FRAME_HEADERS, headers.payload()))
        .await
        .map_err(|e| lost_or(&e))?;
    control
        .write_all(&bytes[split..])
        .await
        .map_err(|e| lost_or(&e))?;
    let status = loop {
        match h3::read_frame(&mut recv).await {
            Ok(Some((h3::FRAME_HEADERS, payload))) => {
                let frame = Frame::new_headers(Cow::Owned(payload));
                let headers = Headers::with_frame(&frame)
                    .map_err(|e| fail(format!("bad CONNECT response headers: {e}")))?;
                break headers.get(":status").unwrap_or("").to_owned();
            }
            // Unknown and reserved frame types are to be ignored.
            Ok(Some(_)) => continue,
            Ok(None) => {
                return Err(fail(
                    "the server ended the CONNECT stream without a response",
                ))
            }
            Err(ReadError::Lost) => return Err(lost_or(&"connection lost")),
            Err(e) => return Err(fail(format!("reading the CONNECT response: {e}"))),
        }
    };
    match status.parse::<u16>() {
        Ok(200..=299) => {}
        Ok(code) => {
            return Err(ConnectError {
                message: format!("the server answered the CONNECT with status {code}"),
                status: Some(code),
                code: None,
            })
        }
        Err(_) => return Err(fail(format!("bad CONNECT response status \"{status}\""))),
    }

    let session = Session {
        quic: quic.clone(),
        endpoint: endpoint.clone(),
        id: u64::from(send.id()),
        connect_send: tokio::sync::Mutex::new(send),
        _control: Mutex::new(control),
        local_close: Mutex::new(None),
    };
    Ok((Arc::new(session), recv))
}

/// Reads the streams that the server opens: its control stream (whose
/// SETTINGS `settings` waits for), QPACK streams, WebTransport streams. All
/// are read to their end, so that none holds flow-control credit.
async fn serve_uni(quic: quinn::Connection, settings: watch::Sender<bool>) {
    let settings = Arc::new(settings);
    while let Ok(mut recv) = quic.accept_uni().await {
        let settings = settings.clone();
        tokio::spawn(async move {
            match h3::read_varint(&mut recv, true).await {
                Ok(Some(h3::STREAM_CONTROL)) => {
                    if let Ok(Some((h3::FRAME_SETTINGS, _))) = h3::read_frame(&mut recv).await {
                        settings.send_replace(true);
                    }
                    while let Ok(Some(_)) = h3::read_frame(&mut recv).await {}
                }
                _ => h3::drain(&mut recv).await,
            }
        });
    }
}

impl Session {
    /// Opens a bidirectional stream. Unless `raw`, it starts with the
    /// WebTransport stream header, sent at once so that the server sees the
    /// stream before any data.
    pub async fn open_bi(
        &self,
        raw: bool,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), String> {
        let (mut send, recv) = self.quic.open_bi().await.map_err(|e| e.to_string())?;
        if !raw {
            let mut header = Vec::new();
            h3::put_varint(&mut header, h3::FRAME_WEBTRANSPORT_STREAM);
            h3::put_varint(&mut header, self.id);
            send.write_all(&header).await.map_err(|e| e.to_string())?;
        }
        Ok((send, recv))
    }

    pub fn send_datagram(&self, payload: &[u8]) -> Result<(), String> {
        let mut datagram = Vec::with_capacity(payload.len() + 8);
        h3::put_varint(&mut datagram, self.id / 4);
        datagram.extend_from_slice(payload);
        self.quic
            .send_datagram(datagram.into())
            .map_err(|e| e.to_string())
    }

    /// Closes the session: with a CLOSE_WEBTRANSPORT_SESSION capsule and a
    /// FIN on the CONNECT stream, as a browser does, or with an immediate
    /// QUIC CONNECTION_CLOSE carrying `code` when `abrupt`.
    pub fn close(self: &Arc<Self>, code: u64, reason: String, abrupt: bool) -> Result<(), String> {
        let capsule_code = match (abrupt, u32::try_from(code)) {
            (true, _) => None,
            (false, Ok(code)) => Some(code),
            (false, Err(_)) => return Err("a session close code has 32 bits".into()),
        };
        let quic_code = quinn::VarInt::from_u64(code).map_err(|_| "\"code\" is above 2^62-1")?;
        if let Ok(mut local) = self.local_close.lock() {
            local.get_or_insert((code, reason.clone()));
        }
        let Some(capsule_code) = capsule_code else {
            self.quic.close(quic_code, reason.as_bytes());
            return Ok(());
        };
        let session = self.clone();
        tokio::spawn(async move {
            {
                let mut send = session.connect_send.lock().await;
                let capsule = h3::close_capsule(capsule_code, reason.as_bytes());
                if send.write_all(&capsule).await.is_ok() {
                    let _ = send.finish();
                }
            }
            // The server should now end its side, which ends the session; if
            // it does not, the connection goes anyway.
            if tokio::time::timeout(CLOSE_GRACE, session.quic.closed())
                .await
                .is_err()
            {
                session.quic.close(h3::H3_NO_ERROR.into(), b"");
            }
        });
        Ok(())
    }
}

/// How the CONNECT stream ended.
enum End {
    Capsule(u64, String),
    Fin,
    Reset(u64),
    Lost,
    Malformed(String),
}

async fn read_connect_stream(recv: &mut quinn::RecvStream) -> End {
    let mut capsules = Vec::new();
    loop {
        match h3::read_frame(recv).await {
            Ok(Some((h3::FRAME_DATA, payload))) => {
                capsules.extend_from_slice(&payload);
                while let Some((kind, body, used)) = h3::parse_capsule(&capsules) {
                    if kind == h3::CAPSULE_CLOSE_SESSION {
                        let code = body
                            .get(..4)
                            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                        let reason = String::from_utf8_lossy(body.get(4..).unwrap_or(&[]));
                        return End::Capsule(code.into(), reason.into_owned());
                    }
                    capsules.drain(..used);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => return End::Fin,
            Err(ReadError::Reset(code)) => return End::Reset(code),
            Err(ReadError::Lost) => return End::Lost,
            Err(ReadError::Malformed(what)) => return End::Malformed(what),
        }
    }
}

/// Announces the session's datagrams, then how it ended (see the README for
/// `via`). Its one session being over, the connection is closed too.
pub async fn watch(
    out: Out,
    conn_v: Value,
    session: Arc<Session>,
    mut connect_recv: quinn::RecvStream,
) {
    let datagrams = {
        let (out, conn_v, quic) = (out.clone(), conn_v.clone(), session.quic.clone());
        let qsid = session.id / 4;
        tokio::spawn(async move {
            while let Ok(datagram) = quic.read_datagram().await {
                if let Some((id, len)) = h3::get_varint(&datagram) {
                    if id == qsid {
                        let b64 = crate::b64(&datagram[len..]);
                        out.emit("datagram", None, json!({ "conn": conn_v, "b64": b64 }));
                    }
                }
            }
        })
    };
    let end = read_connect_stream(&mut connect_recv).await;
    // Read before closing: a local close would replace the peer's reason.
    let quic_reason = session.quic.close_reason();
    session.quic.close(h3::H3_NO_ERROR.into(), b"");
    let _ = tokio::time::timeout(Duration::from_secs(1), datagrams).await;

    let local = session.local_close.lock().ok().and_then(|l| l.clone());
    let (code, reason, via) = match (end, local) {
        (_, Some((code, reason))) => (Value::from(code), reason, "local"),
        (End::Capsule(code, reason), None) => (Value::from(code), reason, "session"),
        (End::Fin, None) => (Value::from(0), String::new(), "session"),
        (End::Reset(code), None) => (
            Value::Null,
            format!("the server reset the CONNECT stream (code {code})"),
            "error",
        ),
        (End::Malformed(what), None) => (Value::Null, format!("CONNECT stream: {what}"), "error"),
        (End::Lost, None) => match quic_reason {
            Some(quinn::ConnectionError::ApplicationClosed(close)) => (
                Value::from(close.error_code.into_inner()),
                String::from_utf8_lossy(&close.reason).into_owned(),
                "quic",
            ),
            Some(quinn::ConnectionError::LocallyClosed) => {
                (Value::Null, "closed locally".into(), "local")
            }
            Some(e) => (Value::Null, e.to_string(), "error"),
            None => (Value::Null, "connection lost".into(), "error"),
        },
    };
    let fields = json!({
        "conn": conn_v,
        "code": code,
        "reason": reason,
        "clean": via != "error",
        "via": via,
    });
    out.emit("closed", None, fields);
}
