"use strict";

const { EventEmitter } = require("events");
const { tlsOptions, tlsOptionError } = require("./options");
const webtransport = require("./webtransport");

/**
 * `engine.httpServer` for `listen()`: the listener is native (hyper on the
 * engine's runtime); this object behaves like the Node `http.Server`
 * engine.io's `listen()` returns, for what callers use of it.
 */
class NativeHttpServer extends EventEmitter {
  /**
   * @param {object} engine the Server
   * @param {object} [tls] Node's tls options (`key`, `cert`, ...): serve over TLS
   */
  constructor(engine, tls) {
    super();
    this._tls = tlsOptions(tls);
    this.listening = false;
    this._engine = engine;
    this._id = null;
    this._address = null;
    this._closing = 0;
    // engine.io closes the engine when its http server closes.
    this.on("close", () => engine.close());
  }

  /**
   * @param {number} [port]
   * @param {string} [host]
   * @param {() => void} [callback] once listening
   */
  listen(port, host, callback) {
    if (typeof port === "function") [port, host, callback] = [0, undefined, port];
    if (typeof host === "function") [host, callback] = [undefined, host];
    if (port !== null && typeof port === "object") ({ port, host } = port);
    if (typeof callback === "function") this.once("listening", callback);
    const native = this._engine._native;
    let info;
    try {
      info = native.listen(host || undefined, Number(port) || 0, this._tls);
    } catch (err) {
      // A certificate or key that cannot be used is the caller's mistake,
      // thrown at once as Node's tls.createServer() does.
      const tlsError = fromTlsError(err);
      if (tlsError) throw tlsError;
      const e = listenError(err, host, Number(port) || 0);
      process.nextTick(() => this.emit("error", e));
      return this;
    }
    this._id = info.id;
    this._address = { address: info.address, family: info.family, port: info.port };
    if (!this._engine._webTransport) {
      // WebTransport on the listener's port number (UDP), unless the
      // `webtransport` option names another.
      try {
        webtransport.open(this._engine, info.port, host || undefined);
      } catch (err) {
        process.nextTick(() => this.emit("error", err));
      }
    }
    this.listening = true;
    this._keepAlive();
    process.nextTick(() => this.emit("listening"));
    return this;
  }

  /** The bound address, or null when not listening. */
  address() {
    return this.listening ? Object.assign({}, this._address) : null;
  }

  /**
   * Stops accepting connections; `close` is emitted once the open HTTP
   * connections are done, and the engine's sessions are then closed.
   * @param {(err?: Error) => void} [callback]
   */
  close(callback) {
    if (!this.listening) {
      if (typeof callback === "function") {
        const err = new Error("Server is not running.");
        err.code = "ERR_SERVER_NOT_RUNNING";
        process.nextTick(callback, err);
      }
      return this;
    }
    if (typeof callback === "function") this.once("close", callback);
    this.listening = false;
    this._closing++;
    const engine = this._engine;
    engine._listeners.set(this._id, () => {
      this._closing--;
      this._keepAlive();
      this.emit("close");
    });
    // Releases the port before returning, so listen() may follow at once.
    engine._native.closeListener(this._id);
    return this;
  }

  /**
   * Node's `server.setSecureContext()`: the connections that come after use
   * the new key and certificate; open ones keep theirs.
   * @param {object} options `key`, `cert`, `ca`, ... as for `listen()`
   */
  setSecureContext(options) {
    const tls = tlsOptions(options);
    if (!tls) throw tlsOptionError("key", "setSecureContext() needs a key and a certificate");
    if (!this._tls) throw new Error("eio-rs: setSecureContext() on a listener without TLS");
    if (this.listening) {
      try {
        this._engine._native.setSecureContext(this._id, tls);
      } catch (err) {
        throw fromTlsError(err) || err;
      }
    }
    this._tls = tls;
  }

  /** A listening (or still closing) server keeps Node alive, as Node's own does. */
  _keepAlive() {
    this._engine._native.keepAlive(this.listening || this._closing > 0);
  }

  /** Node API compatibility: the native listener has no handle to unref. */
  ref() {
    return this;
  }

  unref() {
    return this;
  }
}

/** The binding's `ERR_EIO_TLS_OPTION:<option>:<message>` as an Error, or null. */
function fromTlsError(err) {
  const m = /^ERR_EIO_TLS_OPTION:([^:]+):(.*)$/s.exec(err && err.message);
  return m ? tlsOptionError(m[1], m[2]) : null;
}

/**
 * A failed bind as Node's `net.Server` reports it (`listen EADDRINUSE:
 * address already in use :::3000`, with `code`, `errno`, `syscall`,
 * `address`, `port`). In a cluster worker, where Node would have shared
 * the port, the message also says what to do instead.
 */
function listenError(err, host, port) {
  const m = /^(E[A-Z]+): (.*?)(?: \(os error \d+\))?$/.exec(err.message);
  const code = m ? m[1] : err.code;
  const address = host || "::";
  const text = m ? m[2].toLowerCase() : err.message;
  let message = `listen ${code}: ${text} ${address}:${port}`;
  if (code === "EADDRINUSE" && require("cluster").isWorker) {
    message +=
      ". eio-rs's listen() binds its port in Rust, so cluster workers cannot share it " +
      "as they share a Node server's: use attach() on a Node server with @socket.io/sticky, " +
      "or give each worker its own port behind a load balancer (see examples/cluster)";
  }
  const e = new Error(message);
  e.code = code;
  const errno = require("os").constants.errno[code];
  if (errno !== undefined) e.errno = -errno;
  e.syscall = "listen";
  e.address = address;
  e.port = port;
  return e;
}

module.exports = { NativeHttpServer };
