//! The I/O of a WebSocket connection: the byte stream under it and its
//! reads (the framing and permessage-deflate are `protocol::ws`).
//!
//! Our own rather than a crate's so that an idle connection holds no read
//! buffer (a plain TCP socket is read into one buffer per runtime thread and
//! only an incomplete frame is kept), large messages take one read, and
//! permessage-deflate is negotiated as `ws` does.

use std::cell::RefCell;
use std::io::{self, Read};
use std::sync::Arc;
use tokio::io::Interest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Any stream a connection can run on besides plain TCP.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The byte stream under a WebSocket.
pub enum WsIo {
    /// A TCP socket, read into the runtime thread's buffer; shared, so
    /// that what the application sends can be written from its thread.
    Tcp(Arc<TcpStream>),
    /// Anything else (bridged TLS, ...), with a buffer of its own.
    Other {
        /// The stream.
        io: Box<dyn Stream>,
        /// Its read buffer, allocated at the first read.
        buf: Vec<u8>,
        /// Where the sending thread may write to it directly, if anywhere.
        sink: Option<Arc<dyn DirectSink>>,
    },
}

/// The far end of a connection that any thread may write to without
/// blocking and without the connection's task: a TCP socket, or the
/// application that carries a connection's bytes.
pub trait DirectSink: Send + Sync {
    /// Writes `head` then `body` as far as it takes them now; returns what
    /// it did not take, or an error when the connection is broken.
    fn write(&self, head: &[u8], body: &[u8]) -> io::Result<Vec<u8>>;
}

impl DirectSink for TcpStream {
    fn write(&self, head: &[u8], body: &[u8]) -> io::Result<Vec<u8>> {
        write_now_vectored(self, head, body)
    }
}

/// What [`WsIo::ready`] found.
pub enum Ready {
    /// The TCP socket is readable: [`WsIo::take`] reads it.
    Tcp,
    /// This many bytes are in the stream's own buffer.
    Read(usize),
}

/// Size of the read buffers: one read takes a 16 KiB message whole.
const READ_SIZE: usize = 64 * 1024;
/// Size of a stream's own buffer (bridged streams deliver smaller chunks).
const OTHER_READ_SIZE: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl WsIo {
    /// A connection on a TCP socket.
    pub fn tcp(stream: TcpStream) -> Self {
        WsIo::Tcp(Arc::new(stream))
    }

    /// A connection on any stream.
    pub fn other(io: impl Stream + 'static) -> Self {
        WsIo::Other {
            io: Box::new(io),
            buf: Vec::new(),
            sink: None,
        }
    }

    /// A connection on a stream whose far end `sink` also takes direct
    /// writes (a connection the application carries).
    pub fn carried(io: impl Stream + 'static, sink: Arc<dyn DirectSink>) -> Self {
        WsIo::Other {
            io: Box::new(io),
            buf: Vec::new(),
            sink: Some(sink),
        }
    }

    /// Where a sending thread may write directly, if anywhere.
    pub fn direct_sink(&self) -> Option<Arc<dyn DirectSink>> {
        match self {
            WsIo::Tcp(s) => Some(s.clone()),
            WsIo::Other { sink, .. } => sink.clone(),
        }
    }

    /// Waits until there is something to read. Cancel-safe, so it can race
    /// the session's writes in `select!`.
    pub async fn ready(&mut self) -> io::Result<Ready> {
        match self {
            // `poll_read_ready` keeps one waker per socket in place of the
            // last reader's: this also lets go of the HTTP connection task
            // that read the upgrade request, which `readable()` would leave
            // referenced (and allocated) for the connection's life.
            WsIo::Tcp(s) => std::future::poll_fn(|cx| s.poll_read_ready(cx))
                .await
                .map(|_| Ready::Tcp),
            WsIo::Other { io, buf, .. } => {
                if buf.is_empty() {
                    buf.resize(OTHER_READ_SIZE, 0);
                }
                io.read(buf).await.map(Ready::Read)
            }
        }
    }

    /// Hands what [`WsIo::ready`] found to `f`: `Some(f(bytes))`, where an
    /// empty slice is the end of the stream, or `None` when the socket had
    /// nothing after all.
    pub fn take<T>(&mut self, ready: Ready, f: impl FnOnce(&[u8]) -> T) -> io::Result<Option<T>> {
        match (self, ready) {
            (WsIo::Tcp(s), _) => SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                if scratch.is_empty() {
                    scratch.resize(READ_SIZE, 0);
                }
                // A short read drained the socket: tell tokio so (by
                // answering WouldBlock inside `try_io`), which saves the
                // read that would only find nothing. tokio keeps the
                // readiness if new data arrived meanwhile.
                let mut got = 0;
                let sock = socket2::SockRef::from(&**s);
                let r = s.try_io(Interest::READABLE, || {
                    let n = (&*sock).read(&mut scratch)?;
                    got = n;
                    if n > 0 && n < scratch.len() {
                        Err(io::ErrorKind::WouldBlock.into())
                    } else {
                        Ok(n)
                    }
                });
                match r {
                    Ok(n) => Ok(Some(f(&scratch[..n]))),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => {
                        Ok(Some(f(&scratch[..got])))
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                    Err(e) => Err(e),
                }
            }),
            (WsIo::Other { buf, .. }, Ready::Read(n)) => Ok(Some(f(&buf[..n]))),
            (WsIo::Other { .. }, Ready::Tcp) => Ok(None),
        }
    }

    /// Writes all of `data`.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            WsIo::Tcp(s) => write_all_shared(s, data).await,
            WsIo::Other { io, .. } => {
                io.write_all(data).await?;
                io.flush().await
            }
        }
    }

    /// Ends the writing side: the client sees the end after our close frame.
    pub async fn shutdown(&mut self) {
        match self {
            WsIo::Tcp(s) => {
                let _ = socket2::SockRef::from(&**s).shutdown(std::net::Shutdown::Write);
            }
            WsIo::Other { io, .. } => {
                let _ = io.shutdown().await;
            }
        }
    }
}

/// Writes all of `data` to a socket others may write to between our calls
/// (never while we are in one: the session serializes writers).
async fn write_all_shared(s: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match s.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes `head` then `body` as far as the socket takes them without
/// blocking, in one system call when it can; returns what it did not take.
pub fn write_now_vectored(s: &TcpStream, head: &[u8], body: &[u8]) -> io::Result<Vec<u8>> {
    let total = head.len() + body.len();
    let mut done = 0;
    while done < total {
        let slices = if done < head.len() {
            [io::IoSlice::new(&head[done..]), io::IoSlice::new(body)]
        } else {
            [
                io::IoSlice::new(&body[done - head.len()..]),
                io::IoSlice::new(&[]),
            ]
        };
        match s.try_write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    let mut rest = Vec::with_capacity(total - done);
    if done < head.len() {
        rest.extend_from_slice(&head[done..]);
        rest.extend_from_slice(body);
    } else {
        rest.extend_from_slice(&body[done - head.len()..]);
    }
    Ok(rest)
}
