"use strict";

// attach() mode: the user's Node server parses requests; the engine in Rust
// answers them. Plain TCP upgrades are taken over by the engine (their file
// descriptor is duplicated, then Node's socket is destroyed), so WebSocket
// frames never pass through JS; TLS upgrades and WebSockets over HTTP/2
// streams (RFC 8441) are carried as bytes.

const http2 = require("node:http2");
const binding = require("../binding");
const debug = require("./debug");
const { NativeResponse } = require("./response");
const {
  // What `enginePoll` did with a request; NEEDS_HOOKS is the default case.
  served: { RESPOND: SERVED_RESPOND, HELD: SERVED_HELD, READ_BODY: SERVED_READ_BODY },
  responseHeaders,
} = require("./constants");

/**
 * Hands a polling request to the engine, which serves it on this thread
 * when no hook needs JS: the answer comes back from the call, or (a held
 * GET) as a RESPONSE event; a POST's body is read here and handed over
 * whole. The events the engine queues meanwhile are drained right after
 * each call, so a POST's messages reach the handlers, and the answer of
 * the GET their sends release is written, with no wake-up in between.
 */
function bridgeRequest(server, req, res) {
  const native = server._native;
  const out = server._out;
  const h = engineHeaders(req.rawHeaders || flatten(req.headers || {}));
  let body;
  try {
    body = binding.enginePoll(server._id, req.method, req.url, h[0], h[1], h[2], h[3]);
  } catch (err) {
    server._drain();
    throw err;
  }
  const kind = out[0];
  const id = out[1];
  const events = out[2];
  server._requests.set(id, req);
  switch (kind) {
    case SERVED_RESPOND: {
      const status = out[3];
      const headers = out[4];
      if (events) server._drain();
      server._requestDone(id);
      writeAnswer(res, status, headers, body);
      return;
    }
    case SERVED_HELD: {
      const handle = out[3];
      const poll = out[4];
      server._responses.set(id, res);
      res.on("close", () => {
        if (!server._responses.delete(id)) return;
        server._requestDone(id);
        native.bridgePollGone(handle, poll);
      });
      // A handshake's answer waits for the connection handlers, run here.
      if (events) server._drain();
      return;
    }
    case SERVED_READ_BODY: {
      const handle = out[3];
      const flags = out[4];
      if (events) server._drain();
      readBody(server, req, res, id, handle, flags);
      return;
    }
    default:
      // Hooks need JS: the engine serves it on its runtime. Its answer
      // may come while the events below are handled (once they answered
      // its hooks), so the response is known before they are.
      bridgeAsync(server, req, res, id);
      if (events) server._drain();
  }
}

/** Reads a POST's body and hands it to the engine whole (engine.io's `onDataRequest`). */
function readBody(server, req, res, id, handle, flags) {
  const native = server._native;
  const limit = server.opts.maxHttpBufferSize;
  // engine.io's polling transport exposes the request carrying data
  // while its packets are handled (`transport.dataReq`).
  const socket = server._sockets.get(handle);
  const transport = socket && socket._transportName() === "polling" ? socket.transport : null;
  if (transport) transport.dataReq = req;
  let chunks = [];
  let size = 0;
  const cleanup = () => {
    req.removeListener("data", onData);
    req.removeListener("end", onEnd);
    req.removeListener("close", onClose);
    chunks = null;
    if (transport && transport.dataReq === req) transport.dataReq = null;
    server._requestDone(id);
  };
  const onData = (chunk) => {
    if (typeof chunk === "string") chunk = Buffer.from(chunk);
    size += chunk.length;
    if (size > limit) {
      cleanup();
      native.bridgePostFailed(handle, flags, true);
      res.writeHead(413).end();
      return;
    }
    chunks.push(chunk);
  };
  const onEnd = () => {
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
    const out = server._out;
    let answer;
    let status = 0;
    let headers;
    try {
      answer = binding.enginePostBody(server._id, handle, flags, body);
      status = out[0];
      headers = out[1];
    } finally {
      // The messages reach the handlers before the answer goes, as in
      // engine.io, and while `transport.dataReq` is set.
      if (answer === undefined || out[2]) server._drain();
      cleanup();
    }
    if (status === 0) res.destroy();
    else writeAnswer(res, status, headers, answer);
  };
  const onClose = () => {
    cleanup();
    native.bridgePostFailed(handle, flags, false);
  };
  req.on("data", onData);
  req.on("end", onEnd);
  req.on("close", onClose);
}

/** A bridged request served on the engine's runtime (hooks need JS). */
function bridgeAsync(server, req, res, id) {
  const native = server._native;
  server._responses.set(id, res);
  const sid = req._query.sid;
  const socket = req.method === "POST" && Object.hasOwn(server.clients, sid) && server.clients[sid];
  if (socket && socket.transport.name === "polling") {
    const transport = socket.transport;
    transport.dataReq = req;
    res.on("finish", () => transport.dataReq === req && (transport.dataReq = null));
    res.on("close", () => transport.dataReq === req && (transport.dataReq = null));
  }
  req.on("data", (chunk) =>
    native.bridgeBody(id, typeof chunk === "string" ? Buffer.from(chunk) : chunk),
  );
  req.on("end", () => native.bridgeBodyEnd(id));
  res.on("close", () => {
    if (server._responses.delete(id)) native.bridgeAbort(id);
  });
}

/**
 * Handles an Engine.IO upgrade from a Node server.
 * @param {import("http").IncomingMessage} req
 * @param {import("stream").Duplex} socket
 * @param {Buffer} head
 */
function handleUpgrade(server, req, socket, head) {
  debug.engine('handling "%s" http request "%s" (upgrade)', req.method, req.url);
  server.prepare(req);
  const res = upgradeResponse(req, socket);
  server._applyMiddlewares(req, res, (err) => {
    if (err) return server._middlewareFailed(req, () => abortUpgrade(socket, "Bad request"));
    if (res.writableEnded) return;
    // Some middlewares (express-session) set their headers on writeHead().
    res.writeHead();
    const native = server._native;
    const fd = takeoverFd(socket);
    const id = native.bridgeUpgrade(
      nodeRequest(req),
      fd,
      Buffer.from(head || []),
      res._flatHeaders(),
    );
    server._requests.set(id, req);
    socket.on("error", () => {});
    if (fd !== undefined) {
      // The engine owns a duplicate of the descriptor now.
      socket.destroy();
      return;
    }
    carry(server, id, socket);
  });
}

/**
 * Carries the bytes of upgraded connection `id` both ways: what `duplex`
 * reads goes to the engine, and BRIDGE_WRITE events are written to it
 * (`server._carried`). `onClose` runs once it closes.
 */
function carry(server, id, duplex, onClose) {
  const native = server._native;
  server._carried.set(id, duplex);
  duplex.on("data", (chunk) => native.bridgeData(id, chunk));
  duplex.on("end", () => native.bridgeEnd(id));
  duplex.on("close", () => {
    server._carried.delete(id);
    if (onClose) onClose();
    native.bridgeEnd(id);
  });
}

/** The parts of a Node request the engine reads. */
function nodeRequest(req) {
  const socket = req.socket || req.connection || {};
  return {
    method: req.method,
    url: req.url,
    httpVersion: req.httpVersion || "1.1",
    rawHeaders: req.rawHeaders || flatten(req.headers || {}),
    remoteAddress: socket.remoteAddress || "",
    remotePort: socket.remotePort || 0,
  };
}

function flatten(headers) {
  const flat = [];
  for (const name of Object.keys(headers)) {
    const v = headers[name];
    if (Array.isArray(v)) for (const x of v) flat.push(name, String(x));
    else if (v !== undefined) flat.push(name, String(v));
  }
  return flat;
}

/** `[name, value, ...]` as a writeHead() object; repeated names become arrays. */
function headerObject(flat) {
  const out = {};
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const k = flat[i];
    const v = flat[i + 1];
    if (!(k in out)) out[k] = v;
    else if (Array.isArray(out[k])) out[k].push(v);
    else out[k] = [out[k], v];
  }
  return out;
}

/**
 * Writes an engine answer: `flat` headers as `[name, value, ...]`. A 200
 * carries its Content-Length, as engine.io's polling answers do.
 */
function writeResponse(res, status, flat, body) {
  if (res.writableEnded || res.destroyed) return;
  if (status === 200 && !hasHeader(flat, "content-length"))
    flat.push("Content-Length", body.length);
  res.writeHead(status, flat);
  res.end(body);
}

// The headers of the engine's own answers, by code.
const HEADER_NAMES = responseHeaders.map(([name]) => name);
const HEADER_VALUES = responseHeaders.map(([, value]) => value);

/** Headers as `[name, value, ...]` from a header code (four bits each) or as they are. */
function headerList(headers) {
  if (typeof headers !== "number") return headers;
  const flat = [];
  for (let code = headers; code > 0; code = Math.floor(code / 16)) {
    const i = (code % 16) - 1;
    flat.push(HEADER_NAMES[i], HEADER_VALUES[i]);
  }
  return flat;
}

/**
 * Writes the answer of a fast call: `headers` is a header code, or -1 when
 * `answer` is `[body, [name, value, ...]]`.
 */
function writeAnswer(res, status, headers, answer) {
  if (headers === -1) writeResponse(res, status, answer[1], answer[0]);
  else writeResponse(res, status, headerList(headers), answer);
}

/**
 * The headers the engine reads from a polling request, the first of each
 * name: `[origin, content-type, user-agent, accept-encoding]`.
 */
function engineHeaders(raw) {
  const out = [undefined, undefined, undefined, undefined];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    let slot;
    switch (name.length) {
      case 6:
        slot = 0;
        break;
      case 12:
        slot = 1;
        break;
      case 10:
        slot = 2;
        break;
      case 15:
        slot = 3;
        break;
      default:
        continue;
    }
    if (out[slot] === undefined && name.toLowerCase() === ENGINE_HEADERS[slot])
      out[slot] = raw[i + 1];
  }
  return out;
}

const ENGINE_HEADERS = ["origin", "content-type", "user-agent", "accept-encoding"];

function hasHeader(flat, lower) {
  for (let i = 0; i < flat.length; i += 2) if (flat[i].toLowerCase() === lower) return true;
  return false;
}

/** The descriptor of a plain TCP socket the engine can take over, if any. */
function takeoverFd(socket) {
  if (socket.encrypted || process.platform === "win32") return undefined;
  const handle = socket._handle;
  if (!handle || typeof handle.fd !== "number" || handle.fd < 0) return undefined;
  // Only TCP handles: pipes and other streams are carried as bytes.
  if (handle.constructor && handle.constructor.name !== "TCP") return undefined;
  return handle.fd;
}

/** engine.io's answer to a refused request (middleware failure). */
function abortRequest(res, code, message) {
  res.writeHead(code === 4 ? 403 : 400, { "Content-Type": "application/json" });
  res.end(JSON.stringify({ code, message }));
}

/** engine.io's answer to a refused upgrade. */
function abortUpgrade(socket, message) {
  socket.on("error", () => {});
  if (socket.writable) {
    socket.write(binding.upgradeRefusal(message));
  }
  socket.destroy();
}

/** The `res` middlewares get for an upgrade: headers go into the 101; end() destroys. */
function upgradeResponse(req, socket) {
  return new NativeResponse(req, () => socket.destroy());
}

// Headers HTTP/2 forbids (RFC 9113 8.2.2); Node throws on them.
const CONNECTION_SPECIFIC = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
]);

/**
 * A WebSocket over an HTTP/2 stream (RFC 8441): an extended CONNECT with
 * `:protocol: websocket`, which Node's compatibility API emits as
 * `connect` (req, res). The middlewares get the real `res`; the engine
 * decides, its answer comes as a RESPONSE event (see `answerConnect`), and
 * then the stream's bytes are carried both ways like a TLS socket's.
 */
function handleConnect(server, req, res) {
  debug.engine('handling "%s" http request "%s" (upgrade)', req.method, req.url);
  server.prepare(req);
  const stream = req.stream;
  server._applyMiddlewares(req, res, (err) => {
    if (err) {
      return server._middlewareFailed(req, () => {
        if (!res.headersSent) res.writeHead(400, { "content-type": "text/html" });
        res.end("Bad request");
      });
    }
    if (res.headersSent || res.writableEnded) return;
    const native = server._native;
    const id = native.bridgeUpgrade(
      nodeRequest(req),
      undefined,
      Buffer.alloc(0),
      flatten(res.getHeaders()),
      true,
    );
    server._requests.set(id, req);
    res._eioConnect = stream;
    server._responses.set(id, res);
    stream.on("error", () => {});
    carry(server, id, stream, () => server._responses.delete(id));
  });
}

/** The engine's answer to an extended CONNECT: 200 keeps the stream for the WebSocket. */
function answerConnect(res, status, flat, body) {
  const stream = res._eioConnect;
  if (stream.destroyed) return;
  if (status === 0) return stream.close(http2.constants.NGHTTP2_CANCEL);
  if (status !== 200) return writeResponse(res, status, flat, body);
  const headers = { ":status": 200 };
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = String(flat[i]).toLowerCase();
    if (!CONNECTION_SPECIFIC.has(name)) headers[name] = flat[i + 1];
  }
  stream.respond(headers);
}

module.exports = {
  bridgeRequest,
  handleUpgrade,
  handleConnect,
  answerConnect,
  nodeRequest,
  flatten,
  writeResponse,
  writeAnswer,
  headerList,
  engineHeaders,
  headerObject,
  takeoverFd,
  abortRequest,
  abortUpgrade,
  upgradeResponse,
};
