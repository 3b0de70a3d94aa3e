//! Reference server for `bench/run.js`: an Engine.IO v4 echo server written
//! with engineioxide (pure Rust, no JavaScript), so the benchmark shows how
//! far a server without a JS thread gets on the same machine in the same
//! interleaved run as eio-rs and npm engine.io.
//!
//!   eio-reference [--ping-interval MS]
//!
//! It echoes every text and binary message, with engineioxide's default
//! configuration except `pingInterval`. It listens on 127.0.0.1, port 0, and
//! prints `{"port":N,"pid":P}` once listening. Control on stdin: each line
//! read is answered with one line `{"clients":N}` (open sessions); EOF exits.
//!
//! Tokio runs ONE worker thread, and every connection runs on it: on a
//! 2-core machine the load generator needs the other core, and one worker
//! used less CPU per message than two in our measurements, so it is the
//! fairer bound.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use engineioxide::config::EngineIoConfig;
use engineioxide::handler::EngineIoHandler;
use engineioxide::service::EngineIoService;
use engineioxide::{DisconnectReason, Socket, Str};
use hyper_util::rt::TokioIo;

#[derive(Debug, Default)]
struct Echo {
    clients: AtomicUsize,
}

impl EngineIoHandler for Echo {
    type Data = ();

    fn on_connect(self: Arc<Self>, _socket: Arc<Socket<()>>) {
        self.clients.fetch_add(1, Ordering::Relaxed);
    }

    fn on_disconnect(&self, _socket: Arc<Socket<()>>, _reason: DisconnectReason) {
        self.clients.fetch_sub(1, Ordering::Relaxed);
    }

    fn on_message(self: &Arc<Self>, msg: Str, socket: Arc<Socket<()>>) {
        let _ = socket.emit(msg);
    }

    fn on_binary(self: &Arc<Self>, data: Bytes, socket: Arc<Socket<()>>) {
        let _ = socket.emit_binary(data);
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("eio-reference: {msg}");
    std::process::exit(2);
}

fn main() {
    let mut config = EngineIoConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ping-interval" => {
                let ms = args.next().and_then(|v| v.parse().ok());
                let ms = ms.unwrap_or_else(|| fail("--ping-interval needs milliseconds"));
                config.ping_interval = Duration::from_millis(ms);
            }
            _ => fail(&format!("unknown argument {a}")),
        }
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("tokio runtime: {e}")));
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap_or_else(|e| fail(&format!("bind: {e}")));
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();

    let handler = Arc::new(Echo::default());
    let svc = EngineIoService::with_config(handler.clone(), config);
    // Spawned, not block_on: the accept loop runs on the worker thread too.
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors, most likely: back off.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let svc = svc.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });

    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{{\"port\":{port},\"pid\":{}}}", std::process::id());
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let n = handler.clients.load(Ordering::Relaxed);
        if line.is_err() || writeln!(out, "{{\"clients\":{n}}}").is_err() || out.flush().is_err() {
            break;
        }
    }
    // EOF (the driver is gone): exit without waiting for open sessions.
    std::process::exit(0);
}
