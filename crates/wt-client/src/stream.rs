//! One bidirectional stream: a task that writes it in command order, and
//! one that reads it into events.

use crate::out::Out;
use crate::session::Session;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::mpsc;
use wtransport::quinn::{self, VarInt};

/// Size of one read from a stream: one `data` event carries at most this.
const READ_CHUNK: usize = 64 * 1024;

pub enum WriteOp {
    Write(Vec<u8>, Option<Value>),
    Finish(Option<Value>),
    Reset(VarInt, Option<Value>),
}

pub type CodeQueue = mpsc::UnboundedSender<(VarInt, Option<Value>)>;

/// The connection task's handles on one stream: the send side's commands in
/// order, and stops for the receive side, which are independent of them.
pub struct StreamCtl {
    pub ops: mpsc::UnboundedSender<WriteOp>,
    pub stop: CodeQueue,
}

pub struct StreamQueues {
    ops: mpsc::UnboundedReceiver<WriteOp>,
    stop: mpsc::UnboundedReceiver<(VarInt, Option<Value>)>,
}

impl StreamCtl {
    pub fn new() -> (StreamCtl, StreamQueues) {
        let (ops_tx, ops) = mpsc::unbounded_channel();
        let (stop_tx, stop) = mpsc::unbounded_channel();
        let ctl = StreamCtl {
            ops: ops_tx,
            stop: stop_tx,
        };
        (ctl, StreamQueues { ops, stop })
    }
}

#[derive(Clone)]
pub struct StreamIds {
    pub conn: Value,
    pub stream: Value,
}

impl StreamIds {
    fn fields(&self) -> Value {
        json!({ "conn": self.conn, "stream": self.stream })
    }

    fn with(&self, name: &str, value: Value) -> Value {
        let mut fields = self.fields();
        fields[name] = value;
        fields
    }
}

/// Opens a bidirectional stream (`raw`: without the WebTransport header),
/// starts its reader, then writes it.
pub async fn stream_task(
    out: Out,
    session: Arc<Session>,
    raw: bool,
    ids: StreamIds,
    id: Option<Value>,
    queues: StreamQueues,
) {
    let (send, recv) = match session.open_bi(raw).await {
        Ok(pair) => pair,
        Err(message) => {
            out.error(id.as_ref(), ids.with("op", "bi".into()), message);
            return;
        }
    };
    out.emit("bi", id.as_ref(), ids.fields());
    tokio::spawn(read_stream(out.clone(), ids.clone(), recv, queues.stop));
    write_stream(out, ids, send, queues.ops).await;
}

/// Applies the send side's commands in order. A write blocked by flow
/// control keeps taking commands, so that a later reset can still cut it
/// short (what a test of a server that stops reading needs).
async fn write_stream(
    out: Out,
    ids: StreamIds,
    mut send: quinn::SendStream,
    mut ops: mpsc::UnboundedReceiver<WriteOp>,
) {
    let fail = |id: Option<Value>, op: &str, message: String| {
        out.error(id.as_ref(), ids.with("op", op.into()), message)
    };
    let mut queued: VecDeque<WriteOp> = VecDeque::new();
    let mut watch_stop = true;
    // Set once the send side is finished or reset, to name it in later errors.
    let mut ended: Option<&str> = None;
    loop {
        let op = match queued.pop_front() {
            Some(op) => op,
            None => tokio::select! {
                op = ops.recv() => match op {
                    Some(op) => op,
                    None => return,
                },
                stopped = send.stopped(), if watch_stop => {
                    watch_stop = false;
                    if let Ok(Some(code)) = stopped {
                        out.emit("stopped", None, ids.with("code", code.into_inner().into()));
                    }
                    continue;
                }
            },
        };
        match op {
            WriteOp::Write(_, id) if ended.is_some() => {
                fail(
                    id,
                    "write",
                    format!("stream already {}", ended.unwrap_or("")),
                );
            }
            WriteOp::Write(data, id) => {
                let mut reset = None;
                let written = {
                    let write = send.write_all(&data);
                    tokio::pin!(write);
                    loop {
                        tokio::select! {
                            biased;
                            written = &mut write => break Some(written),
                            op = ops.recv(), if reset.is_none() => match op {
                                Some(WriteOp::Reset(code, id)) => {
                                    reset = Some((code, id));
                                    break None;
                                }
                                Some(op) => queued.push_back(op),
                                None => return,
                            },
                        }
                    }
                };
                match written {
                    Some(Ok(())) => out.ok(id.as_ref(), "write", ids.fields()),
                    Some(Err(e)) => fail(id, "write", e.to_string()),
                    None => fail(
                        id,
                        "write",
                        "stream reset before the write completed".into(),
                    ),
                }
                if let Some((code, reset_id)) = reset {
                    // What was queued behind the blocked write came before the reset.
                    for op in queued.drain(..) {
                        let (id, op) = match op {
                            WriteOp::Write(_, id) => (id, "write"),
                            WriteOp::Finish(id) => (id, "finish"),
                            WriteOp::Reset(_, id) => (id, "reset"),
                        };
                        fail(id, op, "stream reset before this command".into());
                    }
                    queued.push_back(WriteOp::Reset(code, reset_id));
                }
            }
            WriteOp::Finish(id) => match send.finish() {
                Ok(()) => {
                    ended = Some("finished");
                    out.ok(id.as_ref(), "finish", ids.fields());
                }
                Err(_) => fail(
                    id,
                    "finish",
                    format!("stream already {}", ended.unwrap_or("closed")),
                ),
            },
            WriteOp::Reset(code, id) => match send.reset(code) {
                Ok(()) => {
                    ended = Some("reset");
                    out.ok(id.as_ref(), "reset", ids.fields());
                }
                Err(_) => fail(
                    id,
                    "reset",
                    format!("stream already {}", ended.unwrap_or("closed")),
                ),
            },
        }
    }
}

async fn read_stream(
    out: Out,
    ids: StreamIds,
    mut recv: quinn::RecvStream,
    mut stops: mpsc::UnboundedReceiver<(VarInt, Option<Value>)>,
) {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut stops_open = true;
    let stop = loop {
        tokio::select! {
            read = recv.read(&mut buf) => match read {
                Ok(Some(n)) => {
                    out.emit("data", None, ids.with("b64", crate::b64(&buf[..n]).into()));
                }
                Ok(None) => {
                    out.emit("fin", None, ids.fields());
                    return;
                }
                Err(e) => {
                    let mut fields = ids.with("message", e.to_string().into());
                    if let quinn::ReadError::Reset(code) = e {
                        fields["code"] = code.into_inner().into();
                    }
                    out.emit("reset", None, fields);
                    return;
                }
            },
            stop = stops.recv(), if stops_open => match stop {
                Some(stop) => break stop,
                None => stops_open = false,
            },
        }
    };
    let (code, id) = stop;
    match recv.stop(code) {
        Ok(()) => out.ok(id.as_ref(), "stop", ids.fields()),
        Err(e) => out.error(id.as_ref(), ids.with("op", "stop".into()), e.to_string()),
    }
}
