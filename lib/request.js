"use strict";

// What `socket.request` and `connection_error`'s `req` look like when the
// native listener received the request: the parts of Node's IncomingMessage
// that applications and Socket.IO read.

/**
 * Parses a query the way engine.io fills `req._query`.
 * @param {string} url
 */
function parseQuery(url) {
  return Object.fromEntries(new URL(url, "https://socket.io").searchParams.entries());
}

const PREPARED_URL = Symbol("eio-rs prepared url");

/** Replaces the lazy `_query` with a plain property holding `value`. */
function settle(req, value) {
  Object.defineProperty(req, "_query", {
    value,
    writable: true,
    configurable: true,
    enumerable: true,
  });
  return value;
}

// `_query` as engine.io's prepare() fills it, parsed on first read: the
// engine parses the query itself, so most polling requests never need it in
// JS (the URL parse cost about 5 µs a request in attach() polling). It is
// the query of the url the request had when it was prepared, as with
// engine.io.
const LAZY_QUERY = {
  get() {
    return settle(this, parseQuery(this[PREPARED_URL]));
  },
  set(value) {
    settle(this, value);
  },
  configurable: true,
  enumerable: true,
};

/** Gives `req` engine.io's `_query`, parsed when first read. */
function lazyQuery(req) {
  req[PREPARED_URL] = req.url;
  Object.defineProperty(req, "_query", LAZY_QUERY);
}

class EngineRequest {
  /**
   * @param {string} packed lines: method, url, httpVersion, remoteAddress,
   *   remotePort, "1" when over TLS (else empty), then header names and
   *   values (see `pack` in src/events.rs)
   */
  constructor(packed) {
    const lines = packed.split("\n");
    const [method, url, httpVersion, remoteAddress, remotePort, encrypted] = lines;
    this.method = method;
    this.url = url;
    this.httpVersion = httpVersion;
    this.rawHeaders = lines.slice(6);
    this.headers = joinHeaders(this.rawHeaders);
    const socket = {
      remoteAddress,
      remotePort: Number(remotePort),
      remoteFamily: remoteAddress.includes(":") ? "IPv6" : "IPv4",
      encrypted: encrypted === "1",
    };
    this.socket = socket;
    this.connection = socket;
    this._query = parseQuery(url);
  }
}

// Node's rules for repeated headers: set-cookie stays an array, cookie is
// joined with "; ", the rest with ", ".
function joinHeaders(raw) {
  const headers = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    if (!(name in headers)) {
      headers[name] = name === "set-cookie" ? [value] : value;
    } else if (name === "set-cookie") {
      headers[name].push(value);
    } else {
      headers[name] += (name === "cookie" ? "; " : ", ") + value;
    }
  }
  return headers;
}

module.exports = { EngineRequest, parseQuery, lazyQuery };
