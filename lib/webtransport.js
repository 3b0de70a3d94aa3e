"use strict";

// WebTransport: the engine's own HTTP/3 endpoint (the `webtransport`
// option), and engine.io's `onWebTransportSession()` for sessions the
// application accepted itself (an `Http3Server` of
// @fails-components/webtransport). Either way the packets are read and
// written in Rust; JS only carries a handed-over session's bytes.

const { tlsOptions, tlsOptionError } = require("./options");
const debug = require("./debug");

/**
 * The `webtransport` option as the binding takes it: where to listen and
 * the certificate. Undefined when WebTransport is not served natively.
 * @param {object} opts the engine's options
 * @param {number} [fallbackPort] the listener's port, for `listen()`
 */
function endpointOptions(opts, fallbackPort) {
  const wt = opts.webtransport;
  if (!wt || !opts.transports.includes("webtransport")) return undefined;
  const port = wt.port === undefined ? fallbackPort : Number(wt.port);
  if (port === undefined) return undefined;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError("eio-rs: option `webtransport.port` must be a port number (0..65535)");
  }
  const tls = tlsOptions(wt);
  if (!tls) throw tlsOptionError("key", "`webtransport` needs a key and a certificate (PEM)");
  return { host: wt.host, port, tls };
}

/**
 * Opens the engine's WebTransport endpoint when its options ask for one.
 * Errors (a bad certificate, a port in use) are thrown.
 * @param {object} server the Server
 * @param {number} [fallbackPort]
 * @param {string} [fallbackHost]
 */
function open(server, fallbackPort, fallbackHost) {
  const o = endpointOptions(server.opts, fallbackPort);
  if (!o) return;
  let info;
  try {
    info = server._native.listenWebTransport(o.host || fallbackHost || undefined, o.port, o.tls);
  } catch (err) {
    const m = /^ERR_EIO_TLS_OPTION:([^:]+):(.*)$/s.exec(err && err.message);
    if (m) throw tlsOptionError(`webtransport.${m[1]}`, m[2]);
    const code = /^([A-Z]+): /.exec(err.message);
    const e = new Error(`eio-rs: WebTransport endpoint on UDP port ${o.port}: ${err.message}`);
    if (code) e.code = code[1];
    throw e;
  }
  server._webTransport = { address: info.address, family: info.family, port: info.port };
  debug.engine("WebTransport endpoint on UDP %s port %d", info.address, info.port);
}

/** Closes the engine's WebTransport endpoint, if open. */
function close(server) {
  if (!server._webTransport) return;
  server._webTransport = null;
  server._native.closeWebTransport();
}

/**
 * engine.io's `onWebTransportSession(session)`: serves a WebTransport
 * session (a WHATWG `WebTransport` session object) accepted by the
 * application. As in engine.io it is closed when a middleware is
 * registered (there is no request to run it on), and when it opens no
 * bidirectional stream within `upgradeTimeout`.
 * @param {object} server the Server
 * @param {object} session
 */
async function onSession(server, session) {
  if (server.middlewares.length > 0) {
    debug.engine("closing session since WebTransport is not compatible with middlewares");
    return closeQuietly(session);
  }
  const started = Date.now();
  const timeout = setTimeout(() => {
    debug.engine("the client failed to establish a bidirectional stream in the given period");
    closeQuietly(session);
  }, server.opts.upgradeTimeout);
  const streams = session.incomingBidirectionalStreams.getReader();
  let first;
  try {
    first = await streams.read();
  } catch {
    first = { done: true };
  }
  clearTimeout(timeout);
  if (first.done) return debug.engine("session is closed");
  const left = Math.max(0, server.opts.upgradeTimeout - (Date.now() - started));
  const native = server._native;
  const id = native.webTransportSession(left);
  // engine.io's socket.request is null for these sessions.
  server._requests.set(id, null);
  const stream = first.value;
  const writer = stream.writable.getWriter();
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    server._carried.delete(id);
    native.bridgeEnd(id);
  };
  server._carried.set(id, {
    write(data) {
      writer.write(data).catch(() => {});
    },
    // The engine is done with the session: what it wrote goes out first.
    end() {
      writer
        .close()
        .catch(() => {})
        .then(() => closeQuietly(session));
      end();
    },
  });
  session.closed.then(end, end);
  refuseMore(streams);
  const reader = stream.readable.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      native.bridgeData(id, value);
    }
  } catch (err) {
    debug.engine("error while reading the WebTransport stream: %s", err && err.message);
  }
  end();
}

/** Streams a client opens besides the first are cancelled. */
async function refuseMore(streams) {
  try {
    for (;;) {
      const { done, value } = await streams.read();
      if (done) return;
      value.readable.cancel().catch(() => {});
      value.writable.abort().catch(() => {});
    }
  } catch {
    // The session is gone.
  }
}

function closeQuietly(session) {
  try {
    const p = session.close();
    if (p && typeof p.catch === "function") p.catch(() => {});
  } catch {
    // Already closed.
  }
}

module.exports = { open, close, onSession };
