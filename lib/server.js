"use strict";

const { EventEmitter } = require("events");
const binding = require("../binding");
const { BindingEngine } = binding;
const { EngineRequest } = require("./request");
const { Socket, LISTEN } = require("./socket");
const { NativeResponse, flattenHeaders } = require("./response");
const bridge = require("./bridge");
const { lazyQuery } = require("./request");
const constants = require("./constants");

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
  },
  // What `enginePoll` did with a request; NEEDS_HOOKS is the default case.
  served: { RESPOND: SERVED_RESPOND, HELD: SERVED_HELD, READ_BODY: SERVED_READ_BODY },
  // Hook kinds (HOOK events) and the mask bits that turn them on.
  hook: {
    MIDDLEWARES: HOOK_MIDDLEWARES,
    ALLOW_REQUEST: HOOK_ALLOW_REQUEST,
    GENERATE_ID: HOOK_GENERATE_ID,
    HEADERS: HOOK_HEADERS,
  },
} = constants;
// Plain objects for what is read at run time or handed to users (engine.io's
// Server.errors and Server.errorMessages).
const HOOKS = { ...constants.hookSet };
const errors = { ...constants.errors };
const errorMessages = { ...constants.errorMessages };

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
    this._requests = new Map();
    this._responses = new Map();
    this._draining = false;
    this._doneLater = [];
    // Which `_drain` call is running (see `_closeAfterTicks`).
    this._drainNo = 0;
    this._closesLater = [];
    this._carried = new Map();
    this._headerListeners = 0;
    // The numeric results of the fast calls (src/fast.rs).
    this._out = new Float64Array(8);
    this._native = new BindingEngine(bindingOptions(this.opts), () => this._drain(), this._out);
    this._id = this._native.id;
    this.on("newListener", (event) => this._listenerAdded(event));
    this.on("removeListener", (event) => this._listenerRemoved(event));
    if (this.opts.cors) this.use(require("cors")(this.opts.cors));
    this._updateHooks();
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
    return transport === "polling" ? ["websocket"] : [];
  }

  /** Closes every session (`close(true)` on each). */
  close() {
    this._native.close();
    return this;
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
    server.on("request", (req, res) => {
      if (check(req)) {
        this.handleRequest(req, res);
      } else {
        for (const listener of listeners) listener.call(server, req, res);
      }
    });
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
    this.prepare(req);
    req.res = res;
    this._applyMiddlewares(req, res, (err) => {
      if (err) return this._middlewareFailed(req, () => bridge.abortRequest(res, 3, "Bad request"));
      this._bridgeRequest(req, res);
    });
  }

  /**
   * Hands a polling request to the engine, which serves it on this thread
   * when no hook needs JS: the answer comes back from the call, or (a held
   * GET) as a RESPONSE event; a POST's body is read here and handed over
   * whole. The events the engine queues meanwhile are drained right after
   * each call, so a POST's messages reach the handlers, and the answer of
   * the GET their sends release is written, with no wake-up in between.
   */
  _bridgeRequest(req, res) {
    const native = this._native;
    const out = this._out;
    const h = bridge.engineHeaders(req.rawHeaders || bridge.flatten(req.headers || {}));
    let body;
    try {
      body = binding.enginePoll(this._id, req.method, req.url, h[0], h[1], h[2], h[3]);
    } catch (err) {
      this._drain();
      throw err;
    }
    const kind = out[0];
    const id = out[1];
    const events = out[2];
    this._requests.set(id, req);
    switch (kind) {
      case SERVED_RESPOND: {
        const status = out[3];
        const headers = out[4];
        if (events) this._drain();
        this._requestDone(id);
        bridge.writeAnswer(res, status, headers, body);
        return;
      }
      case SERVED_HELD: {
        const handle = out[3];
        const poll = out[4];
        this._responses.set(id, res);
        res.on("close", () => {
          if (!this._responses.delete(id)) return;
          this._requestDone(id);
          native.bridgePollGone(handle, poll);
        });
        // A handshake's answer waits for the connection handlers, run here.
        if (events) this._drain();
        return;
      }
      case SERVED_READ_BODY: {
        const handle = out[3];
        const flags = out[4];
        if (events) this._drain();
        this._readBody(req, res, id, handle, flags);
        return;
      }
      default:
        // Hooks need JS: the engine serves it on its runtime. Its answer
        // may come while the events below are handled (once they answered
        // its hooks), so the response is known before they are.
        this._bridgeAsync(req, res, id);
        if (events) this._drain();
    }
  }

  /** Reads a POST's body and hands it to the engine whole (engine.io's `onDataRequest`). */
  _readBody(req, res, id, handle, flags) {
    const native = this._native;
    const limit = this.opts.maxHttpBufferSize;
    // engine.io's polling transport exposes the request carrying data
    // while its packets are handled (`transport.dataReq`).
    const socket = this._sockets.get(handle);
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
      this._requestDone(id);
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
      const out = this._out;
      let answer;
      let status = 0;
      let headers;
      try {
        answer = binding.enginePostBody(this._id, handle, flags, body);
        status = out[0];
        headers = out[1];
      } finally {
        // The messages reach the handlers before the answer goes, as in
        // engine.io, and while `transport.dataReq` is set.
        if (answer === undefined || out[2]) this._drain();
        cleanup();
      }
      if (status === 0) res.destroy();
      else bridge.writeAnswer(res, status, headers, answer);
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
  _bridgeAsync(req, res, id) {
    const native = this._native;
    this._responses.set(id, res);
    const sid = req._query.sid;
    const socket = req.method === "POST" && Object.hasOwn(this.clients, sid) && this.clients[sid];
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
      if (this._responses.delete(id)) native.bridgeAbort(id);
    });
  }

  /** A request served on the JS thread is answered: forget it (after the batch being handled). */
  _requestDone(id) {
    if (this._draining) this._doneLater.push(id);
    else this._requests.delete(id);
  }

  /**
   * Handles an Engine.IO upgrade from a Node server.
   * @param {import("http").IncomingMessage} req
   * @param {import("stream").Duplex} socket
   * @param {Buffer} head
   */
  handleUpgrade(req, socket, head) {
    this.prepare(req);
    const res = bridge.upgradeResponse(req, socket);
    this._applyMiddlewares(req, res, (err) => {
      if (err) return this._middlewareFailed(req, () => bridge.abortUpgrade(socket, "Bad request"));
      if (res.writableEnded) return;
      // Some middlewares (express-session) set their headers on writeHead().
      res.writeHead();
      const native = this._native;
      const fd = bridge.takeoverFd(socket);
      const id = native.bridgeUpgrade(
        bridge.nodeRequest(req),
        fd,
        Buffer.from(head || []),
        res._flatHeaders(),
      );
      this._requests.set(id, req);
      socket.on("error", () => {});
      if (fd !== undefined) {
        // The engine owns a duplicate of the descriptor now.
        socket.destroy();
        return;
      }
      this._carried.set(id, socket);
      socket.on("data", (chunk) => native.bridgeData(id, chunk));
      socket.on("end", () => native.bridgeEnd(id));
      socket.on("close", () => {
        this._carried.delete(id);
        native.bridgeEnd(id);
      });
    });
  }

  _middlewareFailed(req, abort) {
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

  /**
   * Runs the queued native events, batch after batch until none is left (the
   * engine does not wake JS for events queued meanwhile). Not reentrant: a
   * call from an event handler leaves the events to the loop already running.
   */
  _drain() {
    if (this._draining) return;
    this._draining = true;
    this._drainNo++;
    try {
      for (;;) {
        const ev = binding.engineTakeEvents(this._id);
        if (ev.length === 0) break;
        this._dispatch(ev);
      }
    } finally {
      this._draining = false;
      const done = this._doneLater;
      if (done.length) {
        for (const id of done) this._requests.delete(id);
        done.length = 0;
      }
    }
  }

  /** Runs the events of one native batch. */
  _dispatch(ev) {
    let i = 0;
    while (i < ev.length) {
      const kind = ev[i];
      try {
        switch (kind) {
          case CONNECTION: {
            const [, handle, sid, protocol, transport, req] = ev.slice(i, i + 6);
            i += 6;
            this._onConnection(handle, sid, protocol, transport, this._lazyRequest(req));
            break;
          }
          case MESSAGE: {
            const socket = this._sockets.get(ev[i + 1]);
            const data = ev[i + 2];
            i += 3;
            if (socket) {
              socket._drainNo = this._drainNo;
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
            const socket = this._sockets.get(handle);
            if (socket && socket._drainNo === this._drainNo) {
              this._closeAfterTicks(handle, reason, description);
            } else {
              this._onClose(handle, reason, description);
            }
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
          case FLUSH: {
            const socket = this._sockets.get(ev[i + 1]);
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
              this.emit("flush", socket, packets);
            }
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
            const req = this._request(ev[i + 1]);
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
            // engine.io's sendPacket() gives every packet it creates options.
            if (kind === PACKET_CREATE) packet.options = { compress: true };
            if (ev[i + 3] !== undefined) packet.data = ev[i + 3];
            i += 4;
            if (!socket) break;
            if (kind === PACKET) socket._drainNo = this._drainNo;
            socket.emit(kind === PACKET ? "packet" : "packetCreate", packet);
            break;
          }
          case HOOK: {
            const [, id, hook, raw, extra] = ev.slice(i, i + 5);
            i += 5;
            const req = this._request(raw);
            this._requests.set(raw[1], req);
            this._onHook(id, hook, req, extra);
            break;
          }
          case REQUEST_DONE: {
            this._requests.delete(ev[i + 1]);
            i += 2;
            break;
          }
          case RESPONSE: {
            const id = ev[i + 1];
            const status = ev[i + 2];
            const headers = ev[i + 3];
            const body = ev[i + 4];
            i += 5;
            const res = this._responses.get(id);
            if (res) {
              this._responses.delete(id);
              this._requestDone(id);
              if (status === 0) {
                // No answer: the engine dropped the request (its session closed).
                res.destroy();
              } else {
                bridge.writeResponse(res, status, bridge.headerList(headers), body);
              }
            }
            break;
          }
          case BRIDGE_WRITE: {
            const socket = this._carried.get(ev[i + 1]);
            const data = ev[i + 2];
            i += 3;
            if (socket) data === null ? socket.end() : socket.write(data);
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

  /** The request object for a native request: the one hooks saw, if any. */
  _request(raw) {
    return this._requests.get(raw[1]) || new EngineRequest(raw[0]);
  }

  /**
   * The request object a hook already made, or the packed request that
   * `socket.request` is made from when first read.
   */
  _lazyRequest(raw) {
    return this._requests.get(raw[1]) || raw[0];
  }

  _onHook(id, hook, req, extra) {
    const native = this._native;
    switch (hook) {
      case HOOK_MIDDLEWARES:
        return this._nativeMiddlewares(id, req);
      case HOOK_ALLOW_REQUEST: {
        let answered = false;
        return this.opts.allowRequest(req, (message, success) => {
          if (answered) return;
          answered = true;
          const msg = message === undefined || message === null ? undefined : String(message);
          native.replyAllowRequest(id, !!success, msg);
        });
      }
      case HOOK_GENERATE_ID:
        return new Promise((resolve) => resolve(this.generateId(req))).then(
          (sid) => native.replyGenerateId(id, String(sid)),
          () => native.replyGenerateId(id, undefined),
        );
      case HOOK_HEADERS: {
        const [sid, initial, flat] = extra;
        const headers = {};
        for (let k = 0; k < flat.length; k += 2) headers[flat[k]] = flat[k + 1];
        if (initial && this.opts.cookie && req._query.transport === "polling") {
          const { serialize } = require("cookie");
          headers["Set-Cookie"] = [serialize(this.opts.cookie.name, sid, this.opts.cookie)];
        }
        try {
          if (initial) this.emit("initial_headers", headers, req);
          this.emit("headers", headers, req);
          const socket = Object.hasOwn(this.clients, sid) && this.clients[sid];
          if (socket) socket.transport.emit("headers", headers, req);
        } finally {
          native.replyHeaders(id, flattenHeaders(headers));
        }
        return;
      }
    }
  }

  /** engine.io's `_applyMiddlewares` for a request the native listener received. */
  _nativeMiddlewares(id, req) {
    const native = this._native;
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
    this._applyMiddlewares(req, res, finish);
  }

  /** Runs the middlewares in order, as engine.io does. */
  _applyMiddlewares(req, res, callback) {
    const list = this.middlewares;
    if (list.length === 0) return callback();
    const apply = (i) => {
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
    if (typeof req !== "string" && req.connection) {
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
  }
}

function rethrow(err) {
  process.nextTick(() => {
    throw err;
  });
}

/** engine.io's default ids are made natively; this marks "not overridden". */
function defaultGenerateId() {
  return undefined;
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
    maxBufferedBytes:
      opts.maxBufferedBytes === undefined || opts.maxBufferedBytes === null
        ? undefined
        : Number(opts.maxBufferedBytes),
    perMessageDeflate: perMessageDeflate(opts.perMessageDeflate),
    requestTimeout:
      opts.requestTimeout === undefined || opts.requestTimeout === null
        ? undefined
        : Number(opts.requestTimeout),
    httpCompressionThreshold: opts.httpCompression
      ? Number(opts.httpCompression.threshold !== undefined ? opts.httpCompression.threshold : 1024)
      : undefined,
  };
}

/** `ws`'s permessage-deflate options, as the binding takes them. */
function perMessageDeflate(pmd) {
  if (!pmd) return undefined;
  const bits = (v) => (v === undefined || v === null ? undefined : v === false ? 0 : Number(v));
  const zlib = pmd.zlibDeflateOptions || {};
  return {
    threshold: Number(pmd.threshold !== undefined ? pmd.threshold : 1024),
    serverNoContextTakeover:
      pmd.serverNoContextTakeover === undefined ? undefined : !!pmd.serverNoContextTakeover,
    clientNoContextTakeover:
      pmd.clientNoContextTakeover === undefined ? undefined : !!pmd.clientNoContextTakeover,
    serverMaxWindowBits: bits(pmd.serverMaxWindowBits),
    clientMaxWindowBits: bits(pmd.clientMaxWindowBits),
    level: zlib.level === undefined ? undefined : Number(zlib.level),
  };
}

Server.errors = errors;
Server.errorMessages = errorMessages;

module.exports = { Server, computePath };
