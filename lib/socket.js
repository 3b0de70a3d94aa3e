"use strict";

const { EventEmitter } = require("events");
const { EngineRequest } = require("./request");
const { engineSend, engineReleaseSends } = require("../binding");

// Optional per-packet events: they cross from Rust only while listened to.
const LISTEN = { ...require("./constants").listen };

/**
 * The transport a socket uses, as engine.io exposes it. The transport runs
 * in Rust; this object carries its name and the events applications read.
 */
class Transport extends EventEmitter {
  constructor(socket, name) {
    super();
    this.name = name;
    this.sid = socket.id;
    this.protocol = socket.protocol;
    this._socket = socket;
    this._readyState = "open";
    // `headers` listeners make the engine ask JS for response headers.
    this.on("newListener", onTransportListenerAdded);
    this.on("removeListener", onTransportListenerRemoved);
  }

  get readyState() {
    return this._readyState;
  }

  get handlesUpgrades() {
    return this.name === "websocket";
  }

  /**
   * Whether a packet sent now would go out at once (Socket.IO drops its
   * `volatile` packets otherwise). As with engine.io, it is false from a
   * send until the next tick: engine.io's transport becomes writable again
   * when the socket's write callback runs.
   */
  get writable() {
    const socket = this._socket;
    if (this._readyState !== "open" || socket._transportName() !== this.name) return false;
    if (socket._sentEpoch === epoch) return false;
    return socket.server._native.socketWritable(socket._handle);
  }

  _close() {
    if (this._readyState === "closed") return;
    this._readyState = "closed";
    this.emit("close");
  }
}

// Sends made in the current tick (see `Transport#writable`): a counter that
// moves on once per tick that sends, instead of a callback per send.
let epoch = 0;
let epochEnding = false;
// The engines (by id) that have sends left for later this tick.
const sendsLater = new Set();
// Binary data longer than this is written from the JS thread even when it
// is busy: the worker needs its own copy of it (a string is copied into the
// engine either way), and above about 8 KiB that copy costs more CPU than
// the write saves the event loop (measured in a WebSocket echo: at 4 KiB
// handing it over is cheaper in both, at 16 KiB it is 25% more CPU per
// message).
const DIRECT_BINARY_BYTES = 8 * 1024;

function endEpoch() {
  epoch++;
  epochEnding = false;
  flushFanOut();
  if (sendsLater.size) {
    try {
      for (const id of sendsLater) engineReleaseSends(id);
    } finally {
      sendsLater.clear();
    }
  }
}

function endEpochSoon() {
  epochEnding = true;
  process.nextTick(endEpoch);
}

// A Socket.IO broadcast calls `send()` once per client with the same data
// and the same `wsPreEncodedFrame`: those sends are gathered here and handed
// to the engine in one call (`sendPreEncodedToEach`) when anything else is
// sent or closed, or when the tick ends. Each session keeps its order:
// whatever a send puts behind them flushes them first.
const fanOut = {
  server: null,
  wire: null,
  frame: null,
  handles: new Float64Array(1024),
  count: 0,
};

/** Adds a session to the broadcast being gathered, or starts another. */
function gather(server, handle, wire, frame) {
  if (fanOut.server !== server || fanOut.wire !== wire || fanOut.frame !== frame) {
    flushFanOut();
    fanOut.server = server;
    fanOut.wire = wire;
    fanOut.frame = frame;
  }
  if (fanOut.count === fanOut.handles.length) {
    const bigger = new Float64Array(fanOut.count * 2);
    bigger.set(fanOut.handles);
    fanOut.handles = bigger;
  }
  fanOut.handles[fanOut.count++] = handle;
}

/** Hands the broadcast gathered so far to the engine. */
function flushFanOut() {
  const n = fanOut.count;
  if (n === 0) return;
  const { server, wire, frame } = fanOut;
  fanOut.count = 0;
  fanOut.server = fanOut.wire = fanOut.frame = null;
  server._native.sendPreEncodedToEach(fanOut.handles.subarray(0, n), wire, frameBytes(frame));
}

/** `socket.request`: the handshake request, made when first read. */
const REQUEST = {
  get() {
    if (typeof this._request === "string") this._request = new EngineRequest(this._request);
    return this._request;
  },
  set(req) {
    this._request = req;
  },
  configurable: true,
  enumerable: false,
};

/**
 * An Engine.IO session, as engine.io's `Socket`: the state and buffers live
 * in Rust, this object forwards calls and re-emits events.
 */
class Socket extends EventEmitter {
  /**
   * @param {import("./server").Server} server
   * @param {number} handle the session's handle in the engine
   * @param {string} id
   * @param {number} protocol
   * @param {string} transportName
   * @param {object|string} request the request, or the packed request
   *   (see `EngineRequest`) it is made from when first read
   */
  constructor(server, handle, id, protocol, transportName, request) {
    super();
    this.id = id;
    this.server = server;
    this.protocol = protocol;
    this.upgrading = false;
    this.upgraded = false;
    this._handle = handle;
    this._readyState = "open";
    // `_drainNo` (the server's `_drain` call that last handed this socket a
    // packet) and `_sentEpoch` (the tick of its last send) are set when
    // first needed: declared here, they raised the idle-memory benchmark's
    // RSS per session from about 3.6 to 3.9 KiB.
    // What only some applications read is made when first read: an idle
    // session costs little JS memory.
    this._request = request;
    // An own property, so that `delete socket.request` leaves a socket
    // without a request, as engine.io's plain field does (Socket.IO
    // simulates a WebTransport session so). One shared descriptor: every
    // socket keeps the same shape, and no slot is added per socket.
    Object.defineProperty(this, "request", REQUEST);
    this._transport = transportName;
    this._packetsFn = null;
    this._upgradingTransport = null;
  }

  // Listeners for the optional per-packet events are counted by the
  // server (they decide which events cross from Rust): these overrides do
  // it without a `newListener` listener on every socket. `once` and
  // `prependOnceListener` go through `on`/`prependListener`, and a `once`
  // wrapper removes itself through `removeListener`.
  addListener(event, listener) {
    super.addListener(event, listener);
    this.server._listenerAdded(event);
    return this;
  }

  prependListener(event, listener) {
    super.prependListener(event, listener);
    this.server._listenerAdded(event);
    return this;
  }

  removeListener(event, listener) {
    const before = this.listenerCount(event);
    super.removeListener(event, listener);
    if (this.listenerCount(event) < before) this.server._listenerRemoved(event);
    return this;
  }

  removeAllListeners(event) {
    for (const name of event === undefined ? this.eventNames() : [event]) {
      for (let n = this.listenerCount(name); n > 0; n--) this.server._listenerRemoved(name);
    }
    return super.removeAllListeners(...arguments);
  }

  get remoteAddress() {
    // Kept at the handshake for a Node request (see Server#_onConnection).
    if (this._remoteAddress !== undefined) return this._remoteAddress;
    const req = this.request;
    return req ? req.connection.remoteAddress : undefined;
  }

  _transportName() {
    const t = this._transport;
    return typeof t === "string" ? t : t.name;
  }

  /** The current transport. */
  get transport() {
    if (typeof this._transport === "string") this._transport = new Transport(this, this._transport);
    return this._transport;
  }

  set transport(transport) {
    this._transport = transport;
  }

  /** Send callbacks not yet due, oldest first (engine.io's name). */
  get packetsFn() {
    return this._packetsFn || (this._packetsFn = []);
  }

  set packetsFn(fns) {
    this._packetsFn = fns;
  }

  /**
   * engine.io keeps flushed-but-unsent callbacks apart; here the engine
   * reports them together with packetsFn, so this is always empty.
   */
  get sentCallbackFn() {
    return [];
  }

  get readyState() {
    return this._readyState;
  }

  set readyState(state) {
    this._readyState = state;
  }

  /** Packets waiting for the transport. */
  get writeBuffer() {
    flushFanOut();
    const state = this.server._native.socketState(this._handle);
    return new Array(state ? state.buffered : 0).fill(undefined);
  }

  /**
   * Sends a message.
   * @param {string|Buffer|ArrayBuffer|ArrayBufferView} data
   * @param {{compress?: boolean}} [options]
   * @param {(transport: Transport) => void} [callback] called once the
   *   message was handed to the transport
   */
  send(data, options, callback) {
    if (typeof options === "function") {
      callback = options;
      options = undefined;
    }
    if (this._readyState === "closing" || this._readyState === "closed") return this;
    const hasCallback = typeof callback === "function";
    const compress = !options || options.compress !== false;
    if (this._events.packetCreate !== undefined) {
      // As engine.io: announced before it is queued, with the caller's
      // options (Socket.IO reads `compress` and `wsPreEncodedFrame` there).
      options = options || {};
      options.compress = compress;
      const packet = { type: "message", options };
      if (data) packet.data = data;
      this.emit("packetCreate", packet);
    }
    const first = !epochEnding;
    this._sentEpoch = epoch;
    if (first) endEpochSoon();
    const server = this.server;
    const frame = options && options.wsPreEncodedFrame;
    const websocket = this._transportName() === "websocket";
    // As engine.io: a pre-encoded frame is used on a WebSocket without
    // permessage-deflate.
    const preEncoded = frame !== undefined && !server.opts.perMessageDeflate && websocket;
    const wire = toWire(data);
    // A busy event loop (running the engine's events, or sending to
    // several sessions in one tick) leaves its WebSocket writes to the
    // runtime's workers, handed over in one wake at the end of the tick; a
    // lone send from an idle loop is written at once, and so is large
    // binary data. Pre-encoded frames are Socket.IO's broadcasts: always
    // left.
    const later =
      preEncoded ||
      ((!first || server._draining) &&
        (typeof wire === "string" || wire.length <= DIRECT_BINARY_BYTES) &&
        // Only a WebSocket writes from the calling thread.
        websocket);
    if (later) sendsLater.add(server._id);
    if (preEncoded && !hasCallback) {
      gather(server, this._handle, wire, frame);
      return this;
    }
    flushFanOut();
    const sent = preEncoded
      ? server._native.sendPreEncoded(this._handle, wire, frameBytes(frame), hasCallback)
      : engineSend(server._id, this._handle, wire, compress, hasCallback, later);
    if (sent && hasCallback) this.packetsFn.push(callback);
    return this;
  }

  /** Alias of {@link Socket#send}. */
  write(data, options, callback) {
    return this.send(data, options, callback);
  }

  /**
   * Closes the session: what is buffered is sent first, unless `discard`.
   * @param {boolean} [discard]
   */
  close(discard) {
    flushFanOut();
    if (discard && (this._readyState === "open" || this._readyState === "closing")) {
      this.server._native.closeSocket(this._handle, true);
      return this;
    }
    if (this._readyState !== "open") return this;
    this._readyState = "closing";
    this.server._native.closeSocket(this._handle, false);
    return this;
  }

  _onDrain(callbacks) {
    if (callbacks > 0) {
      const due = this.packetsFn.splice(0, callbacks);
      for (const fn of due) fn(this.transport);
    }
    // A transport nobody has read has no listeners either.
    if (typeof this._transport !== "string") this._transport.emit("drain");
    this.emit("drain");
    this.server.emit("drain", this);
  }

  _onUpgrading(name) {
    this.upgrading = true;
    this._upgradingTransport = new Transport(this, name);
    this.emit("upgrading", this._upgradingTransport);
  }

  _onUpgradeAborted() {
    const candidate = this._upgradingTransport;
    this.upgrading = false;
    this._upgradingTransport = null;
    if (candidate) candidate._close();
  }

  _onUpgrade(name) {
    const previous = this.transport;
    this.upgrading = false;
    this.upgraded = true;
    this.transport = this._upgradingTransport || new Transport(this, name);
    this._upgradingTransport = null;
    previous._close();
    this.emit("upgrade", this.transport);
  }

  _onClose(reason, description) {
    if (this._readyState === "closed") return;
    this._readyState = "closed";
    this._packetsFn = null;
    if (typeof this._transport !== "string") this._transport._close();
    this._onUpgradeAborted();
    let desc;
    if (description != null) {
      desc = new Error(description);
      desc.type = "TransportError";
    }
    this.emit("close", reason, desc);
  }
}

// Listener bookkeeping, shared by every transport (`this` is the emitter).
function onTransportListenerAdded(event) {
  if (event === "headers") this._socket.server._listenerAdded(event);
}
function onTransportListenerRemoved(event) {
  if (event === "headers") this._socket.server._listenerRemoved(event);
}

// `wsPreEncodedFrame` is what ws's `Sender.frame()` returns: a list of
// Buffers. A broadcast hands the same list to every session: it is joined
// once.
let lastFrame = null;
let lastFrameBytes = null;
function frameBytes(frame) {
  if (Buffer.isBuffer(frame)) return frame;
  if (frame !== lastFrame) {
    lastFrameBytes = Buffer.concat(Array.isArray(frame) ? frame : [frame]);
    lastFrame = frame;
  }
  return lastFrameBytes;
}

// engine.io-parser sends anything that is not binary as `String(data || "")`.
function toWire(data) {
  if (typeof data === "string") return data;
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return String(data || "");
}

Socket.prototype.on = Socket.prototype.addListener;
Socket.prototype.off = Socket.prototype.removeListener;

module.exports = { Socket, Transport, LISTEN, flushFanOut };
