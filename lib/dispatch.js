"use strict";

// The native event dispatch: the engine's events, a batch per call (laid
// out by src/events.rs: their values in a flat array that ends with a
// Float64Array of their numbers), turned into the engine.io events of the
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

/**
 * Runs the events of one native batch: `ev` holds each event's values in
 * order and ends with a Float64Array of their numbers (the kind first).
 */
function dispatch(server, ev) {
  const nums = ev[ev.length - 1];
  let j = 0; // in nums
  let i = 0; // in ev
  while (j < nums.length) {
    const kind = nums[j];
    try {
      switch (kind) {
        case CONNECTION: {
          const handle = nums[j + 1];
          const protocol = nums[j + 2];
          const sid = ev[i];
          const transport = ev[i + 1];
          const req = ev[i + 2];
          j += 3;
          i += 3;
          server._onConnection(handle, sid, protocol, transport, lazyRequest(server, req));
          break;
        }
        case MESSAGE: {
          const socket = server._sockets.get(nums[j + 1]);
          const data = ev[i];
          j += 2;
          i += 1;
          if (socket) {
            socket._drainNo = server._drainNo;
            socket.emit("data", data);
            socket.emit("message", data);
          }
          break;
        }
        case CLOSE: {
          const handle = nums[j + 1];
          const reason = ev[i];
          const description = ev[i + 1];
          j += 2;
          i += 2;
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
          const socket = server._sockets.get(nums[j + 1]);
          const name = ev[i];
          j += 2;
          i += 1;
          if (socket) kind === UPGRADING ? socket._onUpgrading(name) : socket._onUpgrade(name);
          break;
        }
        case FLUSH: {
          const socket = server._sockets.get(nums[j + 1]);
          const flat = ev[i];
          j += 2;
          i += 1;
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
          const socket = server._sockets.get(nums[j + 1]);
          const callbacks = nums[j + 2];
          j += 3;
          if (socket) socket._onDrain(callbacks);
          break;
        }
        case CONNECTION_ERROR: {
          const code = nums[j + 1];
          const raw = ev[i];
          const message = ev[i + 1];
          const context = ev[i + 2];
          j += 2;
          i += 3;
          server.emit("connection_error", {
            req: request(server, raw),
            code,
            message,
            context: JSON.parse(context),
          });
          break;
        }
        case PACKET:
        case PACKET_CREATE: {
          const socket = server._sockets.get(nums[j + 1]);
          const packet = { type: ev[i] };
          // engine.io's sendPacket() gives every packet it creates options.
          if (kind === PACKET_CREATE) packet.options = { compress: true };
          if (ev[i + 1] !== undefined) packet.data = ev[i + 1];
          j += 2;
          i += 2;
          if (!socket) break;
          if (kind === PACKET) socket._drainNo = server._drainNo;
          socket.emit(kind === PACKET ? "packet" : "packetCreate", packet);
          break;
        }
        case HOOK: {
          const id = nums[j + 1];
          const hook = nums[j + 2];
          const raw = ev[i];
          const extra = ev[i + 1];
          j += 3;
          i += 2;
          const req = request(server, raw);
          server._requests.set(raw[1], req);
          onHook(server, id, hook, req, extra);
          break;
        }
        case REQUEST_DONE: {
          server._requests.delete(nums[j + 1]);
          j += 2;
          break;
        }
        case RESPONSE: {
          const id = nums[j + 1];
          const status = nums[j + 2];
          const headers = ev[i];
          const body = ev[i + 1];
          j += 3;
          i += 2;
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
          const socket = server._carried.get(nums[j + 1]);
          const data = ev[i];
          j += 2;
          i += 1;
          if (socket) data === null ? socket.end() : socket.write(data);
          break;
        }
        case UPGRADE_ABORTED: {
          const socket = server._sockets.get(nums[j + 1]);
          j += 2;
          if (socket) socket._onUpgradeAborted();
          break;
        }
        case HEARTBEAT: {
          const socket = server._sockets.get(nums[j + 1]);
          j += 2;
          if (socket) socket.emit("heartbeat");
          break;
        }
        case LISTENER_CLOSED: {
          const id = nums[j + 1];
          j += 2;
          const onClosed = server._listeners.get(id);
          server._listeners.delete(id);
          if (onClosed) onClosed();
          break;
        }
        case LOG: {
          debug.print(nums[j + 1], ev[i]);
          j += 2;
          i += 1;
          break;
        }
        default:
          // A layout this facade cannot read: stop rather than misread.
          return rethrow(new Error(`eio-rs: unknown native event ${kind}`));
      }
    } catch (err) {
      // Each case advanced `i` and `j` before calling user code, so a
      // throwing handler behaves as in engine.io (an uncaught exception)
      // while the rest of the batch is still delivered.
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
