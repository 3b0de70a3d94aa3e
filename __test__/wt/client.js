"use strict";

// WebTransport for the tests, in Node: a child process running
// crates/wt-client (a WebTransport client driven by JSON lines; its
// README.md describes the protocol), wrapped as
//
// - `WebTransport`, the browser API as engine.io-client 6.6 and
//   @fails-components/webtransport use it, to install as
//   `globalThis.WebTransport`;
// - `WtProcess` / `connect()` / `quic()`: lower-level sessions and streams
//   for tests that send a server what no browser would.
//
// Several sessions share one child process. A process is killed (by its
// PID) on `close()`, and at the latest when this Node exits; while nothing
// is pending on it, it does not keep Node alive.

const { spawn, spawnSync } = require("node:child_process");
const { EventEmitter } = require("node:events");
const fs = require("node:fs");
const path = require("node:path");
const readline = require("node:readline");
const { ReadableStream, WritableStream } = require("node:stream/web");

const ROOT = path.join(__dirname, "..", "..");
const CRATE = path.join(ROOT, "crates", "wt-client");

/** Where cargo puts the debug binary (CARGO_TARGET_DIR is relative to the root). */
function binaryPath() {
  const target = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || "target");
  const exe = process.platform === "win32" ? "eio-wt-client.exe" : "eio-wt-client";
  return path.join(target, "debug", exe);
}

/** The newest modification time of the files under `dir`. */
function newest(dir) {
  let latest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(full));
    else latest = Math.max(latest, fs.statSync(full).mtimeMs);
  }
  return latest;
}

let built = false;

/** Builds the client with cargo if it is missing or older than its sources; returns its path. */
function ensureBinary() {
  const bin = binaryPath();
  if (built) return bin;
  let stale = true;
  try {
    const sources = Math.max(
      newest(path.join(CRATE, "src")),
      fs.statSync(path.join(CRATE, "Cargo.toml")).mtimeMs,
    );
    stale = fs.statSync(bin).mtimeMs < sources;
  } catch {
    // missing
  }
  if (stale) {
    // Cargo's stdout goes to our stderr: node:test reads a test file's stdout.
    const res = spawnSync("cargo", ["build", "-p", "eio-wt-client"], {
      cwd: ROOT,
      stdio: ["ignore", 2, "inherit"],
    });
    if (res.error) throw res.error;
    if (res.status !== 0) throw new Error(`cargo build -p eio-wt-client failed (${res.status})`);
  }
  built = true;
  return bin;
}

/** Bytes of a BufferSource (or a string, as UTF-8), without copying where possible. */
function toBuffer(data) {
  if (typeof data === "string") return Buffer.from(data);
  if (Buffer.isBuffer(data)) return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer || data instanceof SharedArrayBuffer) return Buffer.from(data);
  throw new TypeError("expected a BufferSource or a string");
}

const b64 = (data) => toBuffer(data).toString("base64");

/** A certificate hash (or a list) as the client takes it: hex strings. */
function hexHash(hash) {
  if (Array.isArray(hash)) return hash.map(hexHash);
  return typeof hash === "string" ? hash : toBuffer(hash).toString("hex");
}

/** An error from the client process: `event` holds the event that reported it. */
class WtError extends Error {
  constructor(message, event = {}) {
    super(message);
    this.name = "WtError";
    this.event = event;
    if (event.rejected !== undefined) this.rejected = event.rejected;
    if (event.status !== undefined) this.status = event.status;
    if (event.code !== undefined) this.code = event.code;
  }
}

/** Live processes, killed when this Node exits whatever the tests did. */
const live = new Set();
process.on("exit", () => {
  for (const proc of live) proc._kill();
});

/** One eio-wt-client child process, and the sessions it carries. */
class WtProcess extends EventEmitter {
  constructor() {
    super();
    this.child = spawn(ensureBinary(), [], { stdio: ["pipe", "pipe", "inherit"] });
    this.pid = this.child.pid;
    this.exited = false;
    this._next = 1;
    this._pending = new Map();
    this._sessions = new Map();
    this._open = 0; // sessions not yet closed
    this._quicClosed = [];
    this._quicWaiters = [];
    this._refs = true;
    live.add(this);
    this.exit = new Promise((resolve) => {
      // "close", not "exit": the last events on stdout come first.
      this.child.on("close", (code, signal) => {
        this.exited = true;
        live.delete(this);
        const err = new WtError(`eio-wt-client exited (${code ?? signal})`);
        for (const p of this._pending.values()) p.reject(err);
        this._pending.clear();
        for (const session of this._sessions.values()) {
          for (const stream of session._streams.values()) {
            stream._onEvent({ ev: "reset", message: err.message });
          }
          session._onEvent({ ev: "closed", code: null, reason: err.message, clean: false });
        }
        resolve({ code, signal });
      });
    });
    this.child.on("error", (err) => {
      // A child that could not start never emits "exit".
      if (this.pid !== undefined) return this.emit("warning", err);
      this.exited = true;
      live.delete(this);
      for (const p of this._pending.values()) p.reject(err);
      this._pending.clear();
    });
    // A write after the child died must not crash the tests (EPIPE).
    this.child.stdin.on("error", () => {});
    readline.createInterface({ input: this.child.stdout }).on("line", (line) => {
      let ev;
      try {
        ev = JSON.parse(line);
      } catch {
        return this.emit("warning", new Error(`eio-wt-client said: ${line}`));
      }
      this._onEvent(ev);
    });
    this._updateRef();
  }

  _onEvent(ev) {
    this.emit("event", ev);
    if (ev.id !== undefined && this._pending.has(ev.id)) {
      const p = this._pending.get(ev.id);
      this._pending.delete(ev.id);
      if (ev.ev === "error") p.reject(new WtError(ev.message, ev));
      else p.resolve(ev);
      this._updateRef();
      return;
    }
    if (ev.ev === "quic_closed") {
      const waiter = this._quicWaiters.shift();
      if (waiter) waiter(ev);
      else this._quicClosed.push(ev);
      return;
    }
    const session = ev.conn !== undefined && this._sessions.get(ev.conn);
    if (session) session._onEvent(ev);
    else if (ev.ev === "error") this.emit("warning", new WtError(ev.message, ev));
  }

  /** Holds Node open only while something waits on the child. */
  _updateRef() {
    const want = this._pending.size > 0 || this._open > 0 || this._quicWaiters.length > 0;
    if (want === this._refs || this.exited) return;
    this._refs = want;
    for (const handle of [this.child, this.child.stdout, this.child.stdin]) {
      if (want) handle.ref?.();
      else handle.unref?.();
    }
  }

  /** Sends a command without waiting for anything. */
  send(cmd) {
    if (this.exited) return;
    this.child.stdin.write(JSON.stringify(cmd) + "\n");
  }

  /** Sends a command with a fresh `id`; resolves with its reply, rejects with its error. */
  request(cmd) {
    if (this.exited) return Promise.reject(new WtError("eio-wt-client has exited"));
    const id = this._next++;
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject });
      this._updateRef();
      this.send({ ...cmd, id });
    });
  }

  /**
   * Opens a WebTransport session to `url`; resolves with a `Session` once it
   * is established, rejects with a WtError (`rejected` true when the server
   * refused the CONNECT) otherwise. `hash`: the hex SHA-256 of the server's
   * certificate (or a list of them); without it the certificate is not checked.
   */
  async connect(url, hash, opts = {}) {
    const conn = this._next++;
    const session = new Session(this, conn, url);
    this._sessions.set(conn, session);
    this._open++;
    this._updateRef();
    const cmd = { op: "connect", conn, url, ...opts };
    if (hash !== undefined && hash !== null) cmd.hash = hexHash(hash);
    try {
      await this.request(cmd);
    } catch (err) {
      this._sessions.delete(conn);
      session._release();
      throw err;
    }
    return session;
  }

  /** A session is over (it still gets its streams' last events). */
  _ended() {
    this._open--;
    this._updateRef();
  }

  /**
   * Opens `count` bare QUIC connections (ALPN h3, certificate unchecked) to
   * `addr` ("host:port") that never speak HTTP/3; resolves with
   * `{ opened, failed, error }` once every handshake has ended.
   */
  quic(addr, count = 1, opts = {}) {
    return this.request({ op: "quic", addr, count, ...opts });
  }

  /** How many of the bare QUIC connections are still open. */
  async quicStatus() {
    return (await this.request({ op: "quic_status" })).open;
  }

  /** Closes every bare QUIC connection; resolves with how many were open. */
  async quicDrop() {
    return (await this.request({ op: "quic_drop" })).count;
  }

  /**
   * Resolves with the next `quic_closed` event: all connections of one
   * `quic()` batch have closed (`{ count, by_peer, timed_out, local, reason }`).
   */
  quicClosed() {
    if (this._quicClosed.length) return Promise.resolve(this._quicClosed.shift());
    return new Promise((resolve) => {
      this._quicWaiters.push((ev) => {
        resolve(ev);
        this._updateRef();
      });
      this._updateRef();
    });
  }

  _kill() {
    if (this.exited) return;
    try {
      process.kill(this.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }

  /**
   * Ends the child: it closes its connections when its stdin ends; if it has
   * not exited after `ms`, it is killed by its PID. Resolves once it is gone.
   */
  async close(ms = 2000) {
    if (!this.exited) {
      this.child.stdin.end();
      const timer = setTimeout(() => this._kill(), ms);
      await this.exit;
      clearTimeout(timer);
    }
  }
}

/** A WebTransport session in the child process. */
class Session extends EventEmitter {
  constructor(proc, conn, url) {
    super();
    this.proc = proc;
    this.conn = conn;
    this.url = url;
    this._streams = new Map();
    this._datagrams = [];
    this._datagramWaiters = [];
    /**
     * Resolves with `{ code, reason, clean, via }` when the session has ended,
     * for any reason (`via`: "session", "quic", "local" or "error"; see the
     * client's README).
     */
    this.closed = new Promise((resolve) => (this._resolveClosed = resolve));
    this.closeInfo = null;
    this._released = false;
  }

  /** Stops holding Node open for this session, once. */
  _release() {
    if (this._released) return;
    this._released = true;
    this.proc._ended();
  }

  _onEvent(ev) {
    switch (ev.ev) {
      case "closed": {
        if (this.closeInfo) return;
        this.closeInfo = { code: ev.code, reason: ev.reason, clean: ev.clean, via: ev.via };
        for (const waiter of this._datagramWaiters.splice(0)) waiter.resolve(null);
        this._release();
        // Its streams' readers report their own ends, after their last data
        // (which may come after this event); this is only a safety net.
        setTimeout(() => {
          for (const stream of this._streams.values()) {
            stream._onEvent({ ev: "reset", message: `session closed: ${ev.reason}` });
          }
        }, 1000).unref();
        this.emit("closed", this.closeInfo);
        this._resolveClosed(this.closeInfo);
        break;
      }
      case "datagram": {
        const bytes = new Uint8Array(Buffer.from(ev.b64, "base64"));
        this.emit("datagram", bytes);
        const waiter = this._datagramWaiters.shift();
        if (waiter) waiter.resolve(bytes);
        else this._datagrams.push(bytes);
        break;
      }
      default: {
        const stream = ev.stream !== undefined && this._streams.get(ev.stream);
        if (stream) stream._onEvent(ev);
        else if (ev.ev === "error") this.emit("warning", new WtError(ev.message, ev));
      }
    }
  }

  /**
   * Opens a bidirectional stream; resolves with a `BiStream` once it is open.
   * `raw`: without the WebTransport stream header, to send the server bare
   * HTTP/3 frames.
   */
  async openBi({ raw = false } = {}) {
    const label = this.proc._next++;
    const stream = new BiStream(this, label);
    this._streams.set(label, stream);
    try {
      await this.proc.request({ op: "bi", conn: this.conn, stream: label, raw });
    } catch (err) {
      this._streams.delete(label);
      throw err;
    }
    return stream;
  }

  /** Sends a datagram; resolves once it is queued. */
  async sendDatagram(bytes) {
    await this.proc.request({ op: "datagram", conn: this.conn, b64: b64(bytes) });
  }

  /** Resolves with the next datagram received (a Uint8Array), or null once the session is closed. */
  nextDatagram() {
    if (this._datagrams.length) return Promise.resolve(this._datagrams.shift());
    if (this.closeInfo) return Promise.resolve(null);
    return new Promise((resolve) => this._datagramWaiters.push({ resolve }));
  }

  /**
   * Closes the session with a CLOSE_WEBTRANSPORT_SESSION capsule, as a
   * browser does, or (`abrupt`) with a QUIC CONNECTION_CLOSE carrying `code`;
   * resolves with `closed`'s value. Rejects if the client refuses the code
   * (a capsule's code has 32 bits).
   */
  async close(code = 0, reason = "", { abrupt = false } = {}) {
    if (!this.closeInfo) {
      try {
        await this.proc.request({ op: "close", conn: this.conn, code, reason, abrupt });
      } catch (err) {
        if (!this.closeInfo && !/not connected/.test(err.message)) throw err;
      }
    }
    return this.closed;
  }
}

/** One bidirectional stream: writes go in order; reads are chunks as they come. */
class BiStream extends EventEmitter {
  constructor(session, label) {
    super();
    this.session = session;
    this.label = label;
    this._chunks = [];
    this._readers = [];
    this._ended = false; // true at FIN; an Error once reset
    this.stoppedCode = null;
  }

  _cmd(op, fields = {}) {
    return this.session.proc.request({
      op,
      conn: this.session.conn,
      stream: this.label,
      ...fields,
    });
  }

  _onEvent(ev) {
    switch (ev.ev) {
      case "data":
        this._push(new Uint8Array(Buffer.from(ev.b64, "base64")));
        break;
      case "fin":
        this._end(true);
        break;
      case "reset":
        this._end(Object.assign(new WtError(ev.message, ev), { code: ev.code }));
        break;
      case "stopped":
        this.stoppedCode = ev.code;
        this.emit("stopped", ev.code);
        break;
      case "error":
        this.emit("warning", new WtError(ev.message, ev));
        break;
    }
  }

  _push(chunk) {
    const reader = this._readers.shift();
    if (reader) reader.resolve(chunk);
    else this._chunks.push(chunk);
  }

  _end(how) {
    if (this._ended) return;
    this._ended = how;
    for (const reader of this._readers.splice(0)) {
      if (how === true) reader.resolve(null);
      else reader.reject(how);
    }
  }

  /** Resolves with the next chunk, or null at the end; rejects if the stream was reset. */
  read() {
    if (this._chunks.length) return Promise.resolve(this._chunks.shift());
    if (this._ended === true) return Promise.resolve(null);
    if (this._ended) return Promise.reject(this._ended);
    return new Promise((resolve, reject) => this._readers.push({ resolve, reject }));
  }

  async *[Symbol.asyncIterator]() {
    for (let chunk; (chunk = await this.read()) !== null;) yield chunk;
  }

  /** Everything until the end of the stream, as one Buffer. */
  async readAll() {
    const chunks = [];
    for await (const chunk of this) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  /** Writes bytes (or a string); resolves once they are handed to QUIC. */
  async write(bytes) {
    await this._cmd("write", { b64: b64(bytes) });
  }

  /** Ends the send side (FIN). */
  async finish() {
    await this._cmd("finish");
  }

  /** Abandons the send side (RESET_STREAM with `code`). */
  async reset(code = 0) {
    await this._cmd("reset", { code });
  }

  /** Stops reading (STOP_SENDING with `code`); reads then fail. */
  async stop(code = 0) {
    await this._cmd("stop", { code });
    this._end(new WtError("reading was stopped"));
  }
}

let shared = null;

/** The process that `WebTransport` and the helpers below use unless given one. */
function sharedProcess() {
  if (!shared || shared.exited) shared = new WtProcess();
  return shared;
}

/** Kills the shared process, if any (for `after()` hooks). */
async function closeShared() {
  const proc = shared;
  shared = null;
  if (proc) await proc.close();
}

/** How long a failed write waits to learn that its session has ended. */
const WRITE_ERROR_GRACE = 500;

/** An error as a browser's WebTransport reports it. */
class WebTransportError extends Error {
  constructor(message = "", { source = "session", streamErrorCode = null } = {}) {
    super(message);
    this.name = "WebTransportError";
    this.source = source;
    this.streamErrorCode = streamErrorCode;
  }
}

function hexHashes(options) {
  const hashes = options?.serverCertificateHashes;
  if (!hashes) return undefined;
  const hex = [];
  for (const { algorithm, value } of hashes) {
    if (String(algorithm).toLowerCase() !== "sha-256") continue;
    hex.push(toBuffer(value).toString("hex"));
  }
  return hex;
}

/**
 * A promise whose rejection, and that of every promise chained from it with
 * `then`, counts as handled. engine.io-client calls `ready.then(...)` and
 * `createBidirectionalStream().then(...)` without a `catch`: a browser only
 * logs such a rejection, Node would end the test process.
 */
class QuietPromise extends Promise {
  then(onFulfilled, onRejected) {
    const derived = super.then(onFulfilled, onRejected);
    Promise.prototype.then.call(derived, undefined, () => {});
    return derived;
  }
}

const quiet = (promise) => {
  const q = new QuietPromise((resolve, reject) => promise.then(resolve, reject));
  Promise.prototype.then.call(q, undefined, () => {});
  return q;
};

/**
 * The WebTransport API (the parts engine.io and its tests use) over a child
 * process. Without `serverCertificateHashes` the server certificate is not
 * checked at all. `options.process` picks the WtProcess (default: shared).
 */
class WebTransport {
  constructor(url, options = {}) {
    const parsed = new URL(url);
    if (parsed.protocol !== "https:") {
      throw new SyntaxError(`WebTransport URLs are https: URLs, not ${parsed.protocol}`);
    }
    this.url = parsed.href;
    this._session = null;
    this._closing = null;
    this._proc = options.process || sharedProcess();
    const hashes = hexHashes(options);

    let datagrams;
    this.datagrams = {
      maxDatagramSize: 1024,
      readable: new ReadableStream({ start: (c) => (datagrams = c) }),
      writable: new WritableStream({
        write: async (chunk) => (await this.ready, this._session.sendDatagram(chunk)),
      }),
    };
    // The server may open streams; this client never accepts them.
    this.incomingBidirectionalStreams = new ReadableStream();
    this.incomingUnidirectionalStreams = new ReadableStream();

    let settle;
    this.closed = quiet(new Promise((resolve, reject) => (settle = { resolve, reject })));
    this.ready = quiet(
      this._proc.connect(this.url, hashes).then(
        (session) => {
          this._session = session;
          session.on("datagram", (bytes) => datagrams.enqueue(bytes));
          session.closed.then(({ code, reason, clean }) => {
            try {
              datagrams.close();
            } catch {
              // already closed
            }
            if (clean) settle.resolve({ closeCode: code ?? 0, reason });
            else settle.reject(new WebTransportError(reason));
          });
          if (this._closing) this._closeSession();
        },
        (err) => {
          const error = new WebTransportError(`Opening handshake failed: ${err.message}`);
          error.cause = err;
          settle.reject(error);
          datagrams.error(error);
          throw error;
        },
      ),
    );
  }

  /** Resolves with `{ readable, writable }` (WHATWG streams of Uint8Array). */
  createBidirectionalStream() {
    return quiet(this._createBidirectionalStream());
  }

  async _createBidirectionalStream() {
    await this.ready;
    const stream = await this._session.openBi();
    const readable = new ReadableStream({
      pull: async (controller) => {
        try {
          const chunk = await stream.read();
          if (chunk === null) controller.close();
          else controller.enqueue(chunk);
        } catch (err) {
          controller.error(new WebTransportError(err.message, { source: "stream" }));
        }
      },
      cancel: () => stream.stop(0).catch(() => {}),
    });
    // Writes that fail because the session is ending are dropped rather than
    // failed: an errored writable rejects engine.io-client's unobserved
    // pipeTo(). The failure may be reported before the session's end.
    const session = this._session;
    const unlessGone = async (err) => {
      if (this._closing) return;
      let timer;
      const late = new Promise((resolve) => (timer = setTimeout(resolve, WRITE_ERROR_GRACE)));
      await Promise.race([session.closed, late]);
      clearTimeout(timer);
      if (session.closeInfo === null) throw err;
    };
    const writable = new WritableStream({
      write: (chunk) => stream.write(chunk).catch(unlessGone),
      close: () => stream.finish().catch(unlessGone),
      abort: () => stream.reset(0).catch(() => {}),
    });
    return { readable, writable };
  }

  async createUnidirectionalStream() {
    throw new WebTransportError("unidirectional streams are not supported by this client");
  }

  /**
   * Closes the session with `closeCode` and `reason` (a capsule); `closed`
   * then resolves with them. As in browsers, the code is taken modulo 2^32
   * and the reason cut to 1024 bytes.
   */
  close({ closeCode = 0, reason = "" } = {}) {
    if (this._closing) return;
    const bytes = Buffer.from(String(reason)).subarray(0, 1024);
    this._closing = { closeCode: Number(closeCode) >>> 0, reason: bytes.toString() };
    if (this._session) this._closeSession();
  }

  _closeSession() {
    const { closeCode, reason } = this._closing;
    this._session.close(closeCode, reason).catch(() => {});
  }
}

/** `WtProcess#connect` on the shared process. */
const connect = (url, hash, opts) => sharedProcess().connect(url, hash, opts);
/** `WtProcess#quic` on the shared process. */
const quic = (addr, count, opts) => sharedProcess().quic(addr, count, opts);
const quicStatus = () => sharedProcess().quicStatus();
const quicDrop = () => sharedProcess().quicDrop();
const quicClosed = () => sharedProcess().quicClosed();

module.exports = {
  WebTransport,
  WebTransportError,
  WtProcess,
  WtError,
  Session,
  BiStream,
  binaryPath,
  ensureBinary,
  sharedProcess,
  closeShared,
  connect,
  quic,
  quicStatus,
  quicDrop,
  quicClosed,
};
