"use strict";

const { EventEmitter } = require("events");
const { BindingEngine } = require("../binding");
const { Socket, LISTEN, flushFanOut } = require("./socket");
const bridge = require("./bridge");
const webtransport = require("./webtransport");
const { drain } = require("./dispatch");
const { withDefaults, bindingOptions, computePath } = require("./options");
const { lazyQuery } = require("./request");
const constants = require("./constants");
const debug = require("./debug");

// Plain objects for what is read at run time or handed to users (engine.io's
// Server.errors and Server.errorMessages).
const HOOKS = { ...constants.hookSet };
const errors = { ...constants.errors };
const errorMessages = { ...constants.errorMessages };

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
    debug.sync();
    this.clients = {};
    this.clientsCount = 0;
    this.middlewares = [];
    this.opts = withDefaults(opts);
    // engine.io exposes its `ws` server; here the WebSocket server is native.
    this.ws = Object.freeze({ native: true, close() {} });
    this._sockets = new Map();
    this._listenCounts = new Map();
    this._listeners = new Map();
    this._requests = new Map();
    this._responses = new Map();
    this._draining = false;
    this._doneLater = [];
    // engine.drain(): its promise, and the check run at every close.
    this._drained = null;
    this._drainCheck = null;
    // Which `_drain` call is running (see `_closeAfterTicks`).
    this._drainNo = 0;
    this._closesLater = [];
    this._carried = new Map();
    this._headerListeners = 0;
    // The numeric results of the plain calls (src/calls.rs).
    this._out = new Float64Array(8);
    this._native = new BindingEngine(bindingOptions(this.opts), () => this._drain(), this._out);
    this._id = this._native.id;
    this.on("newListener", (event) => this._listenerAdded(event));
    this.on("removeListener", (event) => this._listenerRemoved(event));
    if (this.opts.cors) this.use(require("cors")(this.opts.cors));
    this._updateHooks();
    // The `webtransport` option's endpoint (with `listen()`, the port may
    // come from the listener: see NativeHttpServer#listen).
    this._webTransport = null;
    webtransport.open(this);
  }

  /**
   * The address of the engine's WebTransport endpoint (UDP), like
   * `server.address()`, or null when it has none.
   * @returns {{ address: string, family: string, port: number } | null}
   */
  webTransportAddress() {
    return this._webTransport ? Object.assign({}, this._webTransport) : null;
  }

  /**
   * engine.io's `onWebTransportSession()`: serves a WebTransport session
   * accepted by the application's own HTTP/3 server.
   * @param {object} session a WebTransport session (WHATWG streams)
   * @returns {Promise<void>}
   */
  onWebTransportSession(session) {
    return webtransport.onSession(this, session);
  }

  /**
   * Adds an Express-style middleware, applied to every request and upgrade.
   * @param {(req, res, next) => void} fn
   */
  use(fn) {
    this.middlewares.push(fn);
    this._updateHooks();
  }

  /**
   * The session id for a new client; override it (sync or returning a
   * Promise) to choose ids. The default is engine.io's: 15 random bytes.
   * @param {object} req
   * @returns {string | PromiseLike<string> | undefined}
   */
  get generateId() {
    return this._generateId || defaultGenerateId;
  }

  set generateId(fn) {
    this._generateId = fn;
    if (this._native) this._updateHooks();
  }

  /** Tells the engine which hooks need a round trip to JS. */
  _updateHooks() {
    let mask = 0;
    if (this.middlewares.length) mask |= HOOKS.middlewares;
    if (typeof this.opts.allowRequest === "function") mask |= HOOKS.allowRequest;
    if (this.generateId !== defaultGenerateId) mask |= HOOKS.generateId;
    if (this._headerListeners > 0 || this.opts.cookie) mask |= HOOKS.headers;
    this._native.setHooks(mask);
  }

  /** Returns the transports a session on `transport` may upgrade to. */
  upgrades(transport) {
    if (!this.opts.allowUpgrades) return [];
    return transport === "polling" ? ["websocket", "webtransport"] : [];
  }

  /** Closes every session (`close(true)` on each). */
  close() {
    webtransport.close(this);
    // A broadcast gathered this tick reaches the buffers first, as each
    // send() would have.
    flushFanOut();
    this._native.close();
    return this;
  }

  /**
   * Stops taking new sessions while the open ones finish: from now on a
   * handshake is refused with 503 (`SERVER_DRAINING`, so a load balancer
   * tries another server), requests of open sessions are served as before.
   * Resolves when the last session has closed; if `timeout` (ms) passes
   * first, the sessions left are closed as by `close()`. Closing the HTTP
   * server is left to the caller.
   * @param {{ timeout?: number }} [options]
   * @returns {Promise<{ closed: number, forced: number }>} how many sessions
   *   closed by themselves, and how many the timeout closed
   */
  drain({ timeout } = {}) {
    this._native.drain();
    if (!this._drained) {
      const open = () => this.clientsCount + this._native.clientsCount;
      const before = this._native.clientsCount;
      this._drained = new Promise((resolve) => {
        let forced = 0;
        let timer = null;
        this._drainCheck = () => {
          if (open() > 0) return;
          clearTimeout(timer);
          this._drainCheck = null;
          resolve({ closed: Math.max(0, before - forced), forced });
        };
        if (timeout !== undefined && timeout !== Infinity) {
          timer = setTimeout(() => {
            forced = this._native.clientsCount;
            this.close();
          }, timeout);
        }
        this._drainCheck();
      });
    }
    return this._drained;
  }

  /** The engine's figures now: sessions, upgrades, closes, refusals, traffic. */
  stats() {
    return JSON.parse(this._native.stats());
  }

  /** `stats()` in Prometheus' text format, for a `/metrics` endpoint. */
  metrics() {
    return this._native.metrics();
  }

  /**
   * Captures the requests and upgrades under `path` of a Node http(s)
   * server, leaving every other request to the server's own listeners.
   * @param {import("http").Server} server
   * @param {object} [options] AttachOptions
   */
  attach(server, options = {}) {
    const path = computePath(options);
    const destroyUpgradeTimeout = options.destroyUpgradeTimeout || 1000;
    const check = (req) => path === req.url.slice(0, path.length);
    const listeners = server.listeners("request").slice(0);
    server.removeAllListeners("request");
    server.on("close", this.close.bind(this));
    debug.engine('intercepting request for path "%s"', path);
    server.on("request", (req, res) => {
      if (check(req)) {
        this.handleRequest(req, res);
      } else {
        for (const listener of listeners) listener.call(server, req, res);
      }
    });
    if (this.opts.transports.includes("websocket") && isHttp2Server(server)) {
      // WebSocket over HTTP/2 (RFC 8441): clients open it only where the
      // server announced SETTINGS_ENABLE_CONNECT_PROTOCOL; Node's compat
      // API then emits each extended CONNECT as `connect` (req, res).
      if (typeof server.updateSettings === "function") {
        server.updateSettings({ enableConnectProtocol: true });
      }
      const connectListeners = server.listeners("connect").slice(0);
      server.removeAllListeners("connect");
      server.on("connect", (req, res) => {
        if (check(req) && req.headers[":protocol"] === "websocket") {
          bridge.handleConnect(this, req, res);
        } else if (check(req)) {
          // Refused by the engine as engine.io refuses any non-GET handshake.
          this.handleRequest(req, res);
        } else if (connectListeners.length) {
          for (const listener of connectListeners) listener.call(server, req, res);
        } else {
          // What Node does when nobody listens to `connect`.
          server.emit("request", req, res);
        }
      });
    }
    if (this.opts.transports.includes("websocket")) {
      server.on("upgrade", (req, socket, head) => {
        if (check(req)) {
          this.handleUpgrade(req, socket, head);
        } else if (options.destroyUpgrade !== false) {
          // Node ends upgrades nobody handles; engine.io waits a little first.
          setTimeout(() => {
            if (socket.writable && socket.bytesWritten <= 0) {
              socket.on("error", () => {});
              socket.end();
            }
          }, destroyUpgradeTimeout);
        }
      });
    }
  }

  /** Fills `req._query`, unless something (connect) already did. */
  prepare(req) {
    if (!req._query) lazyQuery(req);
  }

  /**
   * Handles an Engine.IO HTTP request from a Node server.
   * @param {import("http").IncomingMessage} req
   * @param {import("http").ServerResponse} res
   */
  handleRequest(req, res) {
    debug.engine('handling "%s" http request "%s"', req.method, req.url);
    this.prepare(req);
    req.res = res;
    this._applyMiddlewares(req, res, (err) => {
      if (err) return this._middlewareFailed(req, () => bridge.abortRequest(res, 3, "Bad request"));
      bridge.bridgeRequest(this, req, res);
    });
  }

  /**
   * Handles an Engine.IO upgrade from a Node server.
   * @param {import("http").IncomingMessage} req
   * @param {import("stream").Duplex} socket
   * @param {Buffer} head
   */
  handleUpgrade(req, socket, head) {
    bridge.handleUpgrade(this, req, socket, head);
  }

  /** Runs the queued native events (lib/dispatch.js). */
  _drain() {
    drain(this);
  }

  /** A request served on the JS thread is answered: forget it (after the batch being handled). */
  _requestDone(id) {
    if (this._draining) this._doneLater.push(id);
    else this._requests.delete(id);
  }

  _middlewareFailed(req, abort) {
    this._native.countRefused(errors.BAD_REQUEST);
    this.emit("connection_error", {
      req,
      code: errors.BAD_REQUEST,
      message: errorMessages[errors.BAD_REQUEST],
      context: { name: "MIDDLEWARE_FAILURE" },
    });
    abort();
  }

  _listenerAdded(event) {
    if (event === "headers" || event === "initial_headers") {
      this._headerListeners++;
      if (this._headerListeners === 1) this._updateHooks();
      return;
    }
    const flag = LISTEN[event];
    if (!flag) return;
    const n = (this._listenCounts.get(flag) || 0) + 1;
    this._listenCounts.set(flag, n);
    if (n === 1) this._updateMask();
  }

  _listenerRemoved(event) {
    if (event === "headers" || event === "initial_headers") {
      this._headerListeners--;
      if (this._headerListeners === 0) this._updateHooks();
      return;
    }
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

  /** Runs the middlewares in order, as engine.io does. */
  _applyMiddlewares(req, res, callback) {
    const list = this.middlewares;
    if (list.length === 0) {
      debug.engine("no middleware to apply, skipping");
      return callback();
    }
    const apply = (i) => {
      debug.engine("applying middleware n°%d", i + 1);
      list[i](req, res, (err) => {
        if (err) return callback(err);
        if (i + 1 < list.length) apply(i + 1);
        else callback();
      });
    };
    apply(0);
  }

  _onConnection(handle, sid, protocol, transport, req) {
    const socket = new Socket(this, handle, sid, protocol, transport, req);
    // A Node request's peer address is kept now, while its connection is
    // open (engine.io reads it in the Socket constructor): a polling client
    // may close that connection before anything asks for
    // `socket.remoteAddress` (Socket.IO's handshake does), and Bun, unlike
    // Node, forgets it then.
    if (req && typeof req !== "string" && req.connection) {
      socket._remoteAddress = req.connection.remoteAddress;
    }
    this._sockets.set(handle, socket);
    this.clients[sid] = socket;
    this.clientsCount++;
    try {
      this.emit("connection", socket);
    } finally {
      // The handshake goes out only now, so that the client never sees
      // `open` before the `connection` handlers ran (as with engine.io).
      this._native.ackOpen(handle);
    }
  }

  /**
   * Closes a socket whose packets were handled earlier in this same drain,
   * once the work their handlers deferred has run. engine.io learns of a
   * closed connection in a later I/O callback than its last packets, so
   * what a `data` handler put off with `process.nextTick` (Socket.IO
   * handles every packet so, a DISCONNECT included) runs before `close`.
   */
  _closeAfterTicks(handle, reason, description) {
    const later = this._closesLater;
    later.push(handle, reason, description);
    if (later.length > 3) return;
    setImmediate(() => {
      this._closesLater = [];
      for (let i = 0; i < later.length; i += 3) this._onClose(later[i], later[i + 1], later[i + 2]);
    });
  }

  _onClose(handle, reason, description) {
    const socket = this._sockets.get(handle);
    if (!socket) return;
    // engine.io destroys a POST still being read when the session closes.
    const transport = socket._transport;
    const dataReq = typeof transport !== "string" && transport.dataReq;
    if (dataReq && !dataReq.complete) dataReq.destroy();
    this._sockets.delete(handle);
    delete this.clients[socket.id];
    this.clientsCount--;
    socket._onClose(reason, description);
    for (const event of Object.keys(LISTEN)) {
      for (let n = socket.listenerCount(event); n > 0; n--) this._listenerRemoved(event);
    }
    if (this._drainCheck) this._drainCheck();
  }
}

/** Whether `server` is Node's http2 server (secure or not), whose CONNECT streams may carry WebSockets. */
function isHttp2Server(server) {
  const name = server && server.constructor && server.constructor.name;
  return name === "Http2SecureServer" || name === "Http2Server";
}

/** engine.io's default ids are made natively; this marks "not overridden". */
function defaultGenerateId() {
  return undefined;
}

Server.errors = errors;
Server.errorMessages = errorMessages;

module.exports = { Server };
