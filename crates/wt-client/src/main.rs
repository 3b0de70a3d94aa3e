//! A WebTransport client scripted over JSON lines, so that the JS tests can
//! speak WebTransport (and misbehave at will) without a browser or a native
//! npm module. Commands come on stdin, events go to stdout, one JSON object a
//! line; `__test__/wt/client.js` wraps it. The protocol is described in
//! `README.md` next to this crate's `Cargo.toml`.
//!
//! Nothing here may panic on bad input: every mistake becomes an `error`
//! event, because a dead client would hide the server behaviour under test.

mod h3;
mod out;
mod quic;
mod session;
mod stream;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use out::Out;
use quic::{QuicOpts, QuicPool};
use serde_json::{json, Map, Value};
use session::{ConnSetup, Session};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use stream::{StreamCtl, StreamIds, WriteOp};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wtransport::quinn::VarInt;
use wtransport::tls::Sha256Digest;

/// How long the process lets connections say goodbye once stdin has closed.
const EXIT_GRACE: Duration = Duration::from_millis(1000);

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn main() {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("eio-wt-client: cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    let (out, writer) = Out::start();
    rt.block_on(run(out.clone()));
    out.stop();
    let _ = writer.join();
    // Blocking reads of stdin and stray tasks must not hold the exit.
    rt.shutdown_timeout(Duration::from_millis(100));
    std::process::exit(0);
}

async fn run(out: Out) {
    let mut client = Client::new(out.clone());
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(_) => client.command(&line),
            Err(e) => {
                out.error(None, json!({}), format!("cannot read stdin: {e}"));
                break;
            }
        }
    }
    client.shutdown().await;
}

/// A parsed command line: its fields, and its `id` to echo.
struct Cmd {
    obj: Map<String, Value>,
    id: Option<Value>,
}

impl Cmd {
    fn field(&self, name: &str) -> Result<&Value, String> {
        match self.obj.get(name) {
            Some(Value::Null) | None => Err(format!("missing \"{name}\"")),
            Some(v) => Ok(v),
        }
    }

    fn str(&self, name: &str) -> Result<&str, String> {
        self.field(name)?
            .as_str()
            .ok_or_else(|| format!("\"{name}\" must be a string"))
    }

    fn opt_str(&self, name: &str) -> Result<Option<&str>, String> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.str(name).map(Some),
        }
    }

    fn bool_or(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| format!("\"{name}\" must be a boolean")),
        }
    }

    fn u64_or(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| format!("\"{name}\" must be a non-negative integer")),
        }
    }

    /// A duration in milliseconds, at most a day: timers far in the future
    /// can overflow `Instant` arithmetic deep inside quinn.
    fn millis_or(&self, name: &str, default: u64) -> Result<Duration, String> {
        match self.u64_or(name, default)? {
            ms if ms <= 86_400_000 => Ok(Duration::from_millis(ms)),
            _ => Err(format!("\"{name}\" is above a day")),
        }
    }

    fn varint_or(&self, name: &str, default: u64) -> Result<VarInt, String> {
        let n = self.u64_or(name, default)?;
        VarInt::from_u64(n).map_err(|_| format!("\"{name}\" is above 2^62-1"))
    }

    /// A label chosen by the test (`conn`, `stream`): echoed as given, keyed by its JSON text.
    fn label(&self, name: &str) -> Result<(Value, String), String> {
        let v = self.field(name)?;
        match v {
            Value::Number(_) | Value::String(_) => Ok((v.clone(), v.to_string())),
            _ => Err(format!("\"{name}\" must be a number or a string")),
        }
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        match self.obj.get("b64") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => B64.decode(s).map_err(|e| format!("bad \"b64\": {e}")),
            Some(_) => Err("\"b64\" must be a base64 string".into()),
        }
    }
}

/// What the command loop hands to a connection's task, in command order.
enum ConnOp {
    Bi {
        stream: Value,
        key: String,
        raw: bool,
        id: Option<Value>,
    },
    Write {
        stream: Value,
        key: String,
        data: Vec<u8>,
        id: Option<Value>,
    },
    Finish {
        stream: Value,
        key: String,
        id: Option<Value>,
    },
    Reset {
        stream: Value,
        key: String,
        code: VarInt,
        id: Option<Value>,
    },
    Stop {
        stream: Value,
        key: String,
        code: VarInt,
        id: Option<Value>,
    },
    Datagram {
        data: Vec<u8>,
        id: Option<Value>,
    },
    Close {
        code: u64,
        reason: String,
        abrupt: bool,
        id: Option<Value>,
    },
}

struct Client {
    out: Out,
    conns: HashMap<String, mpsc::UnboundedSender<ConnOp>>,
    tasks: Vec<JoinHandle<()>>,
    quic: Arc<QuicPool>,
}

impl Client {
    fn new(out: Out) -> Self {
        Client {
            out,
            conns: HashMap::new(),
            tasks: Vec::new(),
            quic: Arc::new(QuicPool::default()),
        }
    }

    fn command(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let obj = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(obj)) => obj,
            Ok(_) => {
                return self
                    .out
                    .error(None, json!({}), "a command must be a JSON object")
            }
            Err(e) => return self.out.error(None, json!({}), format!("bad JSON: {e}")),
        };
        let id = obj.get("id").cloned();
        let cmd = Cmd { obj, id };
        if let Err(message) = self.dispatch(&cmd) {
            let mut fields = Map::new();
            for name in ["op", "conn", "stream"] {
                if let Some(v) = cmd.obj.get(name) {
                    fields.insert(name.into(), v.clone());
                }
            }
            self.out
                .error(cmd.id.as_ref(), Value::Object(fields), message);
        }
    }

    fn dispatch(&mut self, cmd: &Cmd) -> Result<(), String> {
        let id = cmd.id.clone();
        match cmd.str("op")? {
            "connect" => self.connect(cmd),
            "quic" => {
                let addr: SocketAddr = cmd
                    .str("addr")?
                    .parse()
                    .map_err(|e| format!("bad \"addr\": {e}"))?;
                let count = cmd.u64_or("count", 1)?;
                if count > 100_000 {
                    return Err("\"count\" is above 100000".into());
                }
                let opts = QuicOpts {
                    timeout: cmd.millis_or("timeout_ms", 10_000)?,
                    keepalive: cmd.millis_or("keepalive_ms", 2_000)?,
                    idle: cmd.millis_or("idle_ms", 120_000)?,
                    parallel: cmd.u64_or("parallel", 64)?.clamp(1, 10_000) as usize,
                };
                let (out, pool) = (self.out.clone(), self.quic.clone());
                tokio::spawn(quic::quic_batch(out, pool, addr, count as usize, opts, id));
                Ok(())
            }
            "quic_status" => {
                let open = self.quic.open();
                self.out
                    .emit("quic_status", id.as_ref(), json!({ "open": open }));
                Ok(())
            }
            "quic_drop" => {
                let count = self.quic.drop_all();
                self.out
                    .emit("quic_dropped", id.as_ref(), json!({ "count": count }));
                Ok(())
            }
            op @ ("bi" | "write" | "finish" | "reset" | "stop" | "datagram" | "close") => {
                let (_, conn_key) = cmd.label("conn")?;
                let op = self.conn_op(op, cmd)?;
                let tx = self
                    .conns
                    .get(&conn_key)
                    .ok_or_else(|| format!("no connection {conn_key}"))?;
                tx.send(op)
                    .map_err(|_| format!("connection {conn_key} is gone"))
            }
            other => Err(format!("unknown op \"{other}\"")),
        }
    }

    fn conn_op(&self, op: &str, cmd: &Cmd) -> Result<ConnOp, String> {
        let id = cmd.id.clone();
        let stream = || cmd.label("stream");
        Ok(match op {
            "bi" => {
                let (stream, key) = stream()?;
                let raw = cmd.bool_or("raw", false)?;
                ConnOp::Bi {
                    stream,
                    key,
                    raw,
                    id,
                }
            }
            "write" => {
                let (stream, key) = stream()?;
                let data = cmd.bytes()?;
                ConnOp::Write {
                    stream,
                    key,
                    data,
                    id,
                }
            }
            "finish" => {
                let (stream, key) = stream()?;
                ConnOp::Finish { stream, key, id }
            }
            "reset" | "stop" => {
                let (stream, key) = stream()?;
                let code = cmd.varint_or("code", 0)?;
                if op == "reset" {
                    ConnOp::Reset {
                        stream,
                        key,
                        code,
                        id,
                    }
                } else {
                    ConnOp::Stop {
                        stream,
                        key,
                        code,
                        id,
                    }
                }
            }
            "datagram" => ConnOp::Datagram {
                data: cmd.bytes()?,
                id,
            },
            _ => ConnOp::Close {
                code: cmd.u64_or("code", 0)?,
                reason: cmd.opt_str("reason")?.unwrap_or("").to_owned(),
                abrupt: cmd.bool_or("abrupt", false)?,
                id,
            },
        })
    }

    fn connect(&mut self, cmd: &Cmd) -> Result<(), String> {
        let (conn, key) = cmd.label("conn")?;
        if self.conns.contains_key(&key) {
            return Err(format!("connection {key} already exists"));
        }
        let hashes = match cmd.obj.get("hash") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(vec![parse_hash(s)?]),
            Some(Value::Array(list)) => Some(
                list.iter()
                    .map(|v| {
                        v.as_str()
                            .ok_or("\"hash\" must hold strings")
                            .map(parse_hash)
                    })
                    .collect::<Result<Result<Vec<_>, _>, _>>()??,
            ),
            Some(_) => return Err("\"hash\" must be a hex string or a list of them".into()),
        };
        let mut headers = Vec::new();
        match cmd.obj.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    let v = v.as_str().ok_or("\"headers\" values must be strings")?;
                    headers.push((k.clone(), v.to_owned()));
                }
            }
            Some(_) => return Err("\"headers\" must be an object".into()),
        }
        let setup = ConnSetup {
            url: cmd.str("url")?.to_owned(),
            headers,
            hashes,
            timeout: cmd.millis_or("timeout_ms", 10_000)?,
            keepalive: Some(cmd.millis_or("keepalive_ms", 0)?).filter(|d| !d.is_zero()),
            idle: Some(cmd.millis_or("idle_ms", 30_000)?).filter(|d| !d.is_zero()),
            settings_split: match cmd.u64_or("settings_split", 0)? {
                0 => None,
                n => Some(n as usize),
            },
        };
        let (tx, rx) = mpsc::unbounded_channel();
        self.conns.insert(key, tx);
        let task = tokio::spawn(conn_task(self.out.clone(), conn, setup, cmd.id.clone(), rx));
        self.tasks.push(task);
        Ok(())
    }

    /// Closes every connection (their tasks see their queues end), and gives
    /// them a moment so that the server sees a close rather than a timeout.
    async fn shutdown(self) {
        drop(self.conns);
        let quic = self.quic.clone();
        let all = async move {
            for task in self.tasks {
                let _ = task.await;
            }
            quic.drop_all();
            quic.wait_idle().await;
        };
        let _ = tokio::time::timeout(EXIT_GRACE, all).await;
    }
}

/// Reads a SHA-256 digest written in hex, colons and spaces allowed.
fn parse_hash(text: &str) -> Result<Sha256Digest, String> {
    let hex: Vec<u8> = text.bytes().filter(|b| !matches!(b, b':' | b' ')).collect();
    if hex.len() != 64 {
        return Err(format!("\"hash\" must be 64 hex digits, got {}", hex.len()));
    }
    let mut bytes = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).map_err(|_| "\"hash\" is not hex")?;
        bytes[i] = u8::from_str_radix(pair, 16).map_err(|_| "\"hash\" is not hex")?;
    }
    Ok(Sha256Digest::new(bytes))
}

/// Owns one WebTransport session: connects, then applies the commands for it
/// in order; ends (closing the session) when the command loop drops its queue.
async fn conn_task(
    out: Out,
    conn_v: Value,
    setup: ConnSetup,
    id: Option<Value>,
    mut rx: mpsc::UnboundedReceiver<ConnOp>,
) {
    let ids = json!({ "conn": conn_v });
    let (session, connect_recv) =
        match tokio::time::timeout(setup.timeout, session::connect(&setup)).await {
            Ok(Ok(connected)) => connected,
            Ok(Err(e)) => {
                let mut fields = json!({ "conn": conn_v, "rejected": e.status.is_some() });
                if let Some(status) = e.status {
                    fields["status"] = status.into();
                }
                if let Some(code) = e.code {
                    fields["code"] = code.into();
                }
                out.error(id.as_ref(), fields, e.message);
                return refuse_all(&out, &conn_v, rx).await;
            }
            Err(_) => {
                out.error(id.as_ref(), ids.clone(), "timed out connecting");
                return refuse_all(&out, &conn_v, rx).await;
            }
        };
    out.emit("ready", id.as_ref(), ids.clone());
    tokio::spawn(session::watch(
        out.clone(),
        conn_v.clone(),
        session.clone(),
        connect_recv,
    ));

    let mut streams: HashMap<String, StreamCtl> = HashMap::new();
    while let Some(op) = rx.recv().await {
        apply(&out, &conn_v, &session, &mut streams, op);
    }
    drop(streams);
    session.quic.close(h3::H3_NO_ERROR.into(), b"");
    session.endpoint.wait_idle().await;
}

fn apply(
    out: &Out,
    conn_v: &Value,
    session: &Arc<Session>,
    streams: &mut HashMap<String, StreamCtl>,
    op: ConnOp,
) {
    let ids = json!({ "conn": conn_v });
    match op {
        ConnOp::Bi {
            stream,
            key,
            raw,
            id,
        } => {
            if streams.contains_key(&key) {
                let fields = json!({ "conn": conn_v, "stream": stream, "op": "bi" });
                out.error(id.as_ref(), fields, format!("stream {key} already exists"));
                return;
            }
            let (ctl, queues) = StreamCtl::new();
            streams.insert(key, ctl);
            let ids = StreamIds {
                conn: conn_v.clone(),
                stream,
            };
            let task = stream::stream_task(out.clone(), session.clone(), raw, ids, id, queues);
            tokio::spawn(task);
        }
        ConnOp::Write {
            stream,
            key,
            data,
            id,
        } => {
            let sent = streams
                .get(&key)
                .map(|s| s.ops.send(WriteOp::Write(data, id.clone())));
            report_routing(out, conn_v, stream, &key, "write", id, sent);
        }
        ConnOp::Finish { stream, key, id } => {
            let sent = streams
                .get(&key)
                .map(|s| s.ops.send(WriteOp::Finish(id.clone())));
            report_routing(out, conn_v, stream, &key, "finish", id, sent);
        }
        ConnOp::Reset {
            stream,
            key,
            code,
            id,
        } => {
            let sent = streams
                .get(&key)
                .map(|s| s.ops.send(WriteOp::Reset(code, id.clone())));
            report_routing(out, conn_v, stream, &key, "reset", id, sent);
        }
        ConnOp::Stop {
            stream,
            key,
            code,
            id,
        } => {
            let sent = streams.get(&key).map(|s| s.stop.send((code, id.clone())));
            report_routing(out, conn_v, stream, &key, "stop", id, sent);
        }
        ConnOp::Datagram { data, id } => match session.send_datagram(&data) {
            Ok(()) => out.ok(id.as_ref(), "datagram", ids),
            Err(message) => {
                let fields = json!({ "conn": conn_v, "op": "datagram" });
                out.error(id.as_ref(), fields, message);
            }
        },
        ConnOp::Close {
            code,
            reason,
            abrupt,
            id,
        } => match session.close(code, reason, abrupt) {
            Ok(()) => out.ok(id.as_ref(), "close", ids),
            Err(message) => {
                let fields = json!({ "conn": conn_v, "op": "close" });
                out.error(id.as_ref(), fields, message);
            }
        },
    }
}

/// Answers the commands for a connection that never came up, until the process ends.
async fn refuse_all(out: &Out, conn_v: &Value, mut rx: mpsc::UnboundedReceiver<ConnOp>) {
    while let Some(op) = rx.recv().await {
        let (id, stream) = match op {
            ConnOp::Bi { id, stream, .. }
            | ConnOp::Write { id, stream, .. }
            | ConnOp::Finish { id, stream, .. }
            | ConnOp::Reset { id, stream, .. }
            | ConnOp::Stop { id, stream, .. } => (id, Some(stream)),
            ConnOp::Datagram { id, .. } | ConnOp::Close { id, .. } => (id, None),
        };
        let mut fields = json!({ "conn": conn_v });
        if let Some(stream) = stream {
            fields["stream"] = stream;
        }
        out.error(id.as_ref(), fields, "not connected");
    }
}

fn report_routing(
    out: &Out,
    conn_v: &Value,
    stream: Value,
    key: &str,
    op: &str,
    id: Option<Value>,
    sent: Option<Result<(), impl Sized>>,
) {
    let message = match sent {
        Some(Ok(())) => return,
        None => format!("no stream {key}"),
        Some(Err(_)) => match op {
            "stop" => format!("stream {key} is no longer reading"),
            _ => format!("stream {key} is gone"),
        },
    };
    let fields = json!({ "conn": conn_v, "stream": stream, "op": op });
    out.error(id.as_ref(), fields, message);
}
