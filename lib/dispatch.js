"use strict";

// The native event dispatch: the engine's events, one flat array per batch
// (laid out by src/events.rs), turned into the engine.io events of the
// Server and its Sockets; and the hooks that need an answer from JS.

const binding = require("../binding");
const { EngineRequest } = require("./request");
const { NativeResponse, flattenHeaders } = require("./response");
const bridge = require("./bridge");
const debug = require("./debug");
const {
  event: {
    CONNECTION,
    MESSAGE,
    CLOSE,
    UPGRADING,
    UPGRADE,
    DRAIN,
    CONNECTION_ERROR,
    PACKET,
    PACKET_CREATE,
    HEARTBEAT,
    LISTENER_CLOSED,
    UPGRADE_ABORTED,
    HOOK,
    REQUEST_DONE,
    RESPONSE,
    BRIDGE_WRITE,
    FLUSH,
    LOG,
  },
  hook: {
    MIDDLEWARES: HOOK_MIDDLEWARES,
    ALLOW_REQUEST: HOOK_ALLOW_REQUEST,
    GENERATE_ID: HOOK_GENERATE_ID,
    HEADERS: HOOK_HEADERS,
  },
} = require("./constants");

/**
 * Runs the queued native events, batch after batch until none is left (the
 * engine does not wake JS for events queued meanwhile). Not reentrant: a
 * call from an event handler leaves the events to the loop already running.
 */
function drain(server) {
  if (server._draining) return;
  server._draining = true;
  server._drainNo++;
  debug.sync();
  try {
    for (;;) {
      const ev = binding.engineTakeEvents(server._id);
      if (ev.length === 0) break;
      dispatch(server, ev);
    }
  } finally {
    server._draining = false;
    const done = server._doneLater;
    if (done.length) {
      for (const id of done) server._requests.delete(id);
      done.length = 0;
    }
  }
}

/** Runs the events of one native batch. */
function dispatch(server, ev) {
  let i = 0;
  while (i < ev.length) {
    const kind = ev[i];
    try {
      switch (kind) {
        case CONNECTION: {
          const [, handle, sid, protocol, transport, req] = ev.slice(i, i + 6);
          i += 6;
          server._onConnection(handle, sid, protocol, transport, lazyRequest(server, req));
          break;
        }
        case MESSAGE: {
          const socket = server._sockets.get(ev[i + 1]);
          const data = ev[i + 2];
          i += 3;
          if (socket) {
            socket._drainNo = server._drainNo;
            socket.emit("data", data);
            socket.emit("message", data);
          }
          break;
        }
        case CLOSE: {
          const handle = ev[i + 1];
          const reason = ev[i + 2];
          const description = ev[i + 3];
          i += 4;
          const socket = server._sockets.get(handle);
          if (socket && socket._drainNo === server._drainNo) {
            server._closeAfterTicks(handle, reason, description);
          } else {
            server._onClose(handle, reason, description);
          }
          break;
        }
        case UPGRADING:
        case UPGRADE: {
          const socket = server._sockets.get(ev[i + 1]);
          const name = ev[i + 2];
          i += 3;
          if (socket) kind === UPGRADING ? socket._onUpgrading(name) : socket._onUpgrade(name);
          break;
        }
        case FLUSH: {
          const socket = server._sockets.get(ev[i + 1]);
          const flat = ev[i + 2];
          i += 3;
          if (socket) {
            const packets = [];
            for (let k = 0; k < flat.length; k += 2) {
              const packet = { type: flat[k] };
              if (flat[k + 1] !== undefined) packet.data = flat[k + 1];
              packets.push(packet);
            }
            socket.emit("flush", packets);
            server.emit("flush", socket, packets);
          }
          break;
        }
        case DRAIN: {
          const socket = server._sockets.get(ev[i + 1]);
          const callbacks = ev[i + 2];
          i += 3;
          if (socket) socket._onDrain(callbacks);
          break;
        }
        case CONNECTION_ERROR: {
          const req = request(server, ev[i + 1]);
          const code = ev[i + 2];
          const message = ev[i + 3];
          const context = JSON.parse(ev[i + 4]);
          i += 5;
          server.emit("connection_error", { req, code, message, context });
          break;
        }
        case PACKET:
        case PACKET_CREATE: {
          const socket = server._sockets.get(ev[i + 1]);
          const packet = { type: ev[i + 2] };
          // engine.io's sendPacket() gives every packet it creates options.
          if (kind === PACKET_CREATE) packet.options = { compress: true };
          if (ev[i + 3] !== undefined) packet.data = ev[i + 3];
          i += 4;
          if (!socket) break;
          if (kind === PACKET) socket._drainNo = server._drainNo;
          socket.emit(kind === PACKET ? "packet" : "packetCreate", packet);
          break;
        }
        case HOOK: {
          const [, id, hook, raw, extra] = ev.slice(i, i + 5);
          i += 5;
          const req = request(server, raw);
          server._requests.set(raw[1], req);
          onHook(server, id, hook, req, extra);
          break;
        }
        case REQUEST_DONE: {
          server._requests.delete(ev[i + 1]);
          i += 2;
          break;
        }
        case RESPONSE: {
          const id = ev[i + 1];
          const status = ev[i + 2];
          const headers = ev[i + 3];
          const body = ev[i + 4];
          i += 5;
          const res = server._responses.get(id);
          if (res) {
            server._responses.delete(id);
            server._requestDone(id);
            if (res._eioConnect) {
              bridge.answerConnect(res, status, bridge.headerList(headers), body);
            } else if (status === 0) {
              // No answer: the engine dropped the request (its session closed).
              res.destroy();
            } else {
              bridge.writeResponse(res, status, bridge.headerList(headers), body);
            }
          }
          break;
        }
        case BRIDGE_WRITE: {
          const socket = server._carried.get(ev[i + 1]);
          const data = ev[i + 2];
          i += 3;
          if (socket) data === null ? socket.end() : socket.write(data);
          break;
        }
        case UPGRADE_ABORTED: {
          const socket = server._sockets.get(ev[i + 1]);
          i += 2;
          if (socket) socket._onUpgradeAborted();
          break;
        }
        case HEARTBEAT: {
          const socket = server._sockets.get(ev[i + 1]);
          i += 2;
          if (socket) socket.emit("heartbeat");
          break;
        }
        case LISTENER_CLOSED: {
          const id = ev[i + 1];
          i += 2;
          const onClosed = server._listeners.get(id);
          server._listeners.delete(id);
          if (onClosed) onClosed();
          break;
        }
        case LOG: {
          debug.print(ev[i + 1], ev[i + 2]);
          i += 3;
          break;
        }
        default:
          // A layout this facade cannot read: stop rather than misread.
          return rethrow(new Error(`eio-rs: unknown native event ${kind}`));
      }
    } catch (err) {
      // Each case advanced `i` before calling user code, so a throwing
      // handler behaves as in engine.io (an uncaught exception) while the
      // rest of the batch is still delivered.
      rethrow(err);
    }
  }
}

/** The request object for a native request: the one hooks saw, if any. */
function request(server, raw) {
  return server._requests.get(raw[1]) || new EngineRequest(raw[0]);
}

/**
 * The request object a hook already made, or the packed request that
 * `socket.request` is made from when first read.
 */
function lazyRequest(server, raw) {
  const held = server._requests.get(raw[1]);
  // null: a session with no request (one handed to onWebTransportSession).
  return held !== undefined ? held : raw[0];
}

function onHook(server, id, hook, req, extra) {
  const native = server._native;
  switch (hook) {
    case HOOK_MIDDLEWARES:
      return nativeMiddlewares(server, id, req);
    case HOOK_ALLOW_REQUEST: {
      let answered = false;
      return server.opts.allowRequest(req, (message, success) => {
        if (answered) return;
        answered = true;
        const msg = message === undefined || message === null ? undefined : String(message);
        native.replyAllowRequest(id, !!success, msg);
      });
    }
    case HOOK_GENERATE_ID:
      return new Promise((resolve) => resolve(server.generateId(req))).then(
        (sid) => native.replyGenerateId(id, String(sid)),
        () => native.replyGenerateId(id, undefined),
      );
    case HOOK_HEADERS: {
      const [sid, initial, flat] = extra;
      const headers = {};
      for (let k = 0; k < flat.length; k += 2) headers[flat[k]] = flat[k + 1];
      if (initial && server.opts.cookie && req._query.transport === "polling") {
        const { serialize } = require("cookie");
        headers["Set-Cookie"] = [serialize(server.opts.cookie.name, sid, server.opts.cookie)];
      }
      try {
        if (initial) server.emit("initial_headers", headers, req);
        server.emit("headers", headers, req);
        const socket = Object.hasOwn(server.clients, sid) && server.clients[sid];
        if (socket) socket.transport.emit("headers", headers, req);
      } finally {
        native.replyHeaders(id, flattenHeaders(headers));
      }
      return;
    }
  }
}

/** engine.io's `_applyMiddlewares` for a request the native listener received. */
function nativeMiddlewares(server, id, req) {
  const native = server._native;
  let done = false;
  const res = new NativeResponse(req, (r) => {
    if (done) return;
    done = true;
    native.replyMiddlewares(id, 1, r.statusCode, r._flatHeaders(), r._body());
  });
  const finish = (err) => {
    if (done) return;
    done = true;
    if (err) return native.replyMiddlewares(id, 2, 0, [], undefined);
    // Some middlewares (express-session) set headers on writeHead(), which
    // engine.io's real response calls; the engine writes it later here.
    res.writeHead();
    native.replyMiddlewares(id, 0, 0, res._flatHeaders(), undefined);
  };
  server._applyMiddlewares(req, res, finish);
}

function rethrow(err) {
  process.nextTick(() => {
    throw err;
  });
}

module.exports = { drain };
