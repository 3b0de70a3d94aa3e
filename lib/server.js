"use strict";

const { EventEmitter } = require("events");
const { BindingEngine } = require("../binding");
const { EngineRequest } = require("./request");
const { Socket, LISTEN } = require("./socket");

// Event kinds of the native batches (src/events.rs).
const CONNECTION = 0;
const MESSAGE = 1;
const CLOSE = 2;
const UPGRADING = 3;
const UPGRADE = 4;
const DRAIN = 5;
const CONNECTION_ERROR = 6;
const PACKET = 7;
const PACKET_CREATE = 8;
const HEARTBEAT = 9;
const LISTENER_CLOSED = 10;
const UPGRADE_ABORTED = 11;

const errors = {
  UNKNOWN_TRANSPORT: 0,
  UNKNOWN_SID: 1,
  BAD_HANDSHAKE_METHOD: 2,
  BAD_REQUEST: 3,
  FORBIDDEN: 4,
  UNSUPPORTED_PROTOCOL_VERSION: 5,
};

const errorMessages = {
  0: "Transport unknown",
  1: "Session ID unknown",
  2: "Bad handshake method",
  3: "Bad request",
  4: "Forbidden",
  5: "Unsupported protocol version",
};

/** engine.io's `_computePath`. */
function computePath(options) {
  let path = (options.path || "/engine.io").replace(/\/$/, "");
  if (options.addTrailingSlash !== false) path += "/";
  return path;
}

/**
 * An Engine.IO server whose transports run in Rust. Same options, events and
 * methods as engine.io's `Server`.
 */
class Server extends EventEmitter {
  /**
   * @param {object} [opts] engine.io's ServerOptions (and AttachOptions)
   */
  constructor(opts = {}) {
    super();
    this.clients = {};
    this.clientsCount = 0;
    this.middlewares = [];
    this.opts = Object.assign(
      {
        wsEngine: "eio-rs",
        pingTimeout: 20000,
        pingInterval: 25000,
        upgradeTimeout: 10000,
        maxHttpBufferSize: 1e6,
        transports: ["polling", "websocket"],
        allowUpgrades: true,
        httpCompression: { threshold: 1024 },
        cors: false,
        allowEIO3: false,
      },
      opts,
    );
    if (opts.cookie) {
      this.opts.cookie = Object.assign(
        { name: "io", path: "/", httpOnly: true, sameSite: "lax" },
        opts.cookie,
      );
    }
    if (opts.perMessageDeflate) {
      this.opts.perMessageDeflate = Object.assign({ threshold: 1024 }, opts.perMessageDeflate);
    }
    // engine.io exposes its `ws` server; here the WebSocket server is native.
    this.ws = Object.freeze({ native: true, close() {} });
    this._sockets = new Map();
    this._listenCounts = new Map();
    this._listeners = new Map();
    this._native = new BindingEngine(bindingOptions(this.opts), () => this._drain());
    this.on("newListener", (event) => this._listenerAdded(event));
    this.on("removeListener", (event) => this._listenerRemoved(event));
  }

  /**
   * Adds an Express-style middleware.
   * @param {(req, res, next) => void} fn
   */
  use(fn) {
    this.middlewares.push(fn);
  }

  /** Returns the transports a session on `transport` may upgrade to. */
  upgrades(transport) {
    if (!this.opts.allowUpgrades) return [];
    return transport === "polling" ? ["websocket"] : [];
  }

  /** Closes every session (`close(true)` on each). */
  close() {
    this._native.close();
    return this;
  }

  /** @see engine.io's `generateId` */
  generateId() {
    return undefined;
  }

  attach() {
    throw notImplemented("attach() to a Node http.Server");
  }

  handleRequest() {
    throw notImplemented("handleRequest()");
  }

  handleUpgrade() {
    throw notImplemented("handleUpgrade()");
  }

  _listenerAdded(event) {
    const flag = LISTEN[event];
    if (!flag) return;
    const n = (this._listenCounts.get(flag) || 0) + 1;
    this._listenCounts.set(flag, n);
    if (n === 1) this._updateMask();
  }

  _listenerRemoved(event) {
    const flag = LISTEN[event];
    if (!flag) return;
    const n = (this._listenCounts.get(flag) || 0) - 1;
    this._listenCounts.set(flag, Math.max(0, n));
    if (n <= 0) this._updateMask();
  }

  _updateMask() {
    let mask = 0;
    for (const [flag, n] of this._listenCounts) if (n > 0) mask |= flag;
    this._native.setListening(mask);
  }

  /** Runs the events of one native batch. */
  _drain() {
    const ev = this._native.takeEvents();
    let i = 0;
    while (i < ev.length) {
      const kind = ev[i];
      try {
        switch (kind) {
          case CONNECTION: {
            const [, handle, sid, protocol, transport, req] = ev.slice(i, i + 6);
            i += 6;
            this._onConnection(handle, sid, protocol, transport, new EngineRequest(req));
            break;
          }
          case MESSAGE: {
            const socket = this._sockets.get(ev[i + 1]);
            const data = ev[i + 2];
            i += 3;
            if (socket) {
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
            this._onClose(handle, reason, description);
            break;
          }
          case UPGRADING:
          case UPGRADE: {
            const socket = this._sockets.get(ev[i + 1]);
            const name = ev[i + 2];
            i += 3;
            if (socket) kind === UPGRADING ? socket._onUpgrading(name) : socket._onUpgrade(name);
            break;
          }
          case DRAIN: {
            const socket = this._sockets.get(ev[i + 1]);
            const callbacks = ev[i + 2];
            i += 3;
            if (socket) socket._onDrain(callbacks);
            break;
          }
          case CONNECTION_ERROR: {
            const req = new EngineRequest(ev[i + 1]);
            const code = ev[i + 2];
            const message = ev[i + 3];
            const context = JSON.parse(ev[i + 4]);
            i += 5;
            this.emit("connection_error", { req, code, message, context });
            break;
          }
          case PACKET:
          case PACKET_CREATE: {
            const socket = this._sockets.get(ev[i + 1]);
            const packet = { type: ev[i + 2] };
            if (ev[i + 3] !== null) packet.data = ev[i + 3];
            i += 4;
            if (socket) socket.emit(kind === PACKET ? "packet" : "packetCreate", packet);
            break;
          }
          case UPGRADE_ABORTED: {
            const socket = this._sockets.get(ev[i + 1]);
            i += 2;
            if (socket) socket._onUpgradeAborted();
            break;
          }
          case HEARTBEAT: {
            const socket = this._sockets.get(ev[i + 1]);
            i += 2;
            if (socket) socket.emit("heartbeat");
            break;
          }
          case LISTENER_CLOSED: {
            const id = ev[i + 1];
            i += 2;
            const onClosed = this._listeners.get(id);
            this._listeners.delete(id);
            if (onClosed) onClosed();
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

  _onConnection(handle, sid, protocol, transport, req) {
    const socket = new Socket(this, handle, sid, protocol, transport, req);
    this._sockets.set(handle, socket);
    this.clients[sid] = socket;
    this.clientsCount++;
    this.emit("connection", socket);
  }

  _onClose(handle, reason, description) {
    const socket = this._sockets.get(handle);
    if (!socket) return;
    this._sockets.delete(handle);
    delete this.clients[socket.id];
    this.clientsCount--;
    socket._onClose(reason, description);
    for (const event of Object.keys(LISTEN)) {
      for (let n = socket.listenerCount(event); n > 0; n--) this._listenerRemoved(event);
    }
  }
}

function rethrow(err) {
  process.nextTick(() => {
    throw err;
  });
}

function notImplemented(what) {
  const err = new Error(`eio-rs: ${what} is not implemented yet`);
  err.code = "ERR_EIO_NOT_IMPLEMENTED";
  return err;
}

function bindingOptions(opts) {
  const initial = opts.initialPacket;
  return {
    pingInterval: Number(opts.pingInterval),
    pingTimeout: Number(opts.pingTimeout),
    upgradeTimeout: Number(opts.upgradeTimeout),
    maxHttpBufferSize: Number(opts.maxHttpBufferSize),
    transports: Array.from(opts.transports || []),
    allowUpgrades: opts.allowUpgrades !== false,
    allowEio3: !!opts.allowEIO3,
    initialPacket:
      initial === undefined || initial === null
        ? undefined
        : Buffer.isBuffer(initial)
          ? initial
          : String(initial),
    path: computePath(opts),
    destroyUpgrade: opts.destroyUpgrade !== false,
    destroyUpgradeTimeout: Number(opts.destroyUpgradeTimeout || 1000),
  };
}

Server.errors = errors;
Server.errorMessages = errorMessages;

module.exports = { Server, computePath };
