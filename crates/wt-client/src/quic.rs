//! Bare QUIC connections (the `quic` command), held until dropped or closed
//! by the server: they complete the handshake (ALPN "h3") and then say
//! nothing, as a client that never speaks HTTP/3 would.

use crate::out::Out;
use crate::session;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wtransport::quinn;

#[derive(Default)]
pub struct QuicPool {
    conns: Mutex<Vec<quinn::Connection>>,
    endpoints: Mutex<Vec<quinn::Endpoint>>,
}

impl QuicPool {
    pub fn open(&self) -> usize {
        self.conns.lock().map_or(0, |conns| {
            conns.iter().filter(|c| c.close_reason().is_none()).count()
        })
    }

    pub fn drop_all(&self) -> usize {
        let conns = match self.conns.lock() {
            Ok(mut conns) => std::mem::take(&mut *conns),
            Err(_) => return 0,
        };
        let mut count = 0;
        for conn in conns {
            if conn.close_reason().is_none() {
                count += 1;
            }
            conn.close(quinn::VarInt::from_u32(0), b"dropped");
        }
        count
    }

    pub async fn wait_idle(&self) {
        let endpoints = self.endpoints.lock().map_or(Vec::new(), |e| e.clone());
        for endpoint in endpoints {
            endpoint.wait_idle().await;
        }
    }
}

pub struct QuicOpts {
    pub timeout: Duration,
    pub keepalive: Duration,
    pub idle: Duration,
    /// Handshakes in flight at once: a burst of a thousand Initial packets
    /// overflows the server's UDP receive buffer, and the lost ones then
    /// wait out retransmission timers.
    pub parallel: usize,
}

fn quic_client(addr: SocketAddr, opts: &QuicOpts) -> Result<quinn::Endpoint, String> {
    let nonzero = |d: Duration| Some(d).filter(|d| !d.is_zero());
    let config = session::quic_config(None, nonzero(opts.idle), nonzero(opts.keepalive))?;
    let mut endpoint = session::endpoint_for(addr)?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

/// How one `quic` batch's connections ended, so that a test can tell the
/// server closing them from its own idle timer.
#[derive(Default)]
struct BatchState {
    /// Set once the `quic` reply is out; `quic_closed` must not precede it.
    replied: bool,
    opened: usize,
    closed: usize,
    by_peer: usize,
    timed_out: usize,
    local: usize,
    first_reason: Option<String>,
}

impl BatchState {
    fn maybe_report(&self, out: &Out) {
        if self.replied && self.opened > 0 && self.closed == self.opened {
            let fields = json!({
                "count": self.closed,
                "by_peer": self.by_peer,
                "timed_out": self.timed_out,
                "local": self.local,
                "reason": self.first_reason,
            });
            out.emit("quic_closed", None, fields);
        }
    }
}

pub async fn quic_batch(
    out: Out,
    pool: Arc<QuicPool>,
    addr: SocketAddr,
    count: usize,
    opts: QuicOpts,
    id: Option<Value>,
) {
    let endpoint = match quic_client(addr, &opts) {
        Ok(endpoint) => endpoint,
        Err(message) => return out.error(id.as_ref(), json!({ "op": "quic" }), message),
    };
    if let Ok(mut endpoints) = pool.endpoints.lock() {
        endpoints.push(endpoint.clone());
    }
    let mut handshakes = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(opts.parallel));
    for _ in 0..count {
        let endpoint = endpoint.clone();
        let timeout = opts.timeout;
        let slots = slots.clone();
        handshakes.spawn(async move {
            let _slot = slots.acquire_owned().await.map_err(|e| e.to_string())?;
            let connecting = endpoint
                .connect(addr, "localhost")
                .map_err(|e| e.to_string())?;
            match tokio::time::timeout(timeout, connecting).await {
                Ok(Ok(conn)) => Ok(conn),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("handshake timed out".to_string()),
            }
        });
    }
    let mut opened = Vec::with_capacity(count);
    let mut failed = 0;
    let mut first_error = None;
    while let Some(joined) = handshakes.join_next().await {
        match joined {
            Ok(Ok(conn)) => opened.push(conn),
            Ok(Err(message)) => {
                failed += 1;
                first_error.get_or_insert(message);
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let batch = Arc::new(Mutex::new(BatchState {
        opened: opened.len(),
        ..Default::default()
    }));
    for conn in &opened {
        let (conn, batch, out) = (conn.clone(), batch.clone(), out.clone());
        tokio::spawn(async move {
            let error = conn.closed().await;
            let Ok(mut state) = batch.lock() else { return };
            state.closed += 1;
            match error {
                quinn::ConnectionError::LocallyClosed => state.local += 1,
                quinn::ConnectionError::TimedOut => state.timed_out += 1,
                other => {
                    state.by_peer += 1;
                    state.first_reason.get_or_insert(other.to_string());
                }
            }
            state.maybe_report(&out);
        });
    }
    let opened_count = opened.len();
    if let Ok(mut conns) = pool.conns.lock() {
        conns.extend(opened);
    }
    if let Ok(mut state) = batch.lock() {
        let fields = json!({ "opened": opened_count, "failed": failed, "error": first_error });
        out.emit("quic", id.as_ref(), fields);
        state.replied = true;
        state.maybe_report(&out);
    };
}
