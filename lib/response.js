"use strict";

const { EventEmitter } = require("events");

/**
 * The `res` middlewares get when the native listener received the request.
 * It records what they set, and what they send if they answer the request
 * themselves; the engine then writes the real response.
 */
class NativeResponse extends EventEmitter {
  constructor(req, onEnd) {
    super();
    this.req = req;
    this.statusCode = 200;
    this.statusMessage = undefined;
    this.headersSent = false;
    this.writableEnded = false;
    this.finished = false;
    this._headers = new Map();
    this._chunks = [];
    this._onEnd = onEnd;
  }

  setHeader(name, value) {
    this._headers.set(String(name).toLowerCase(), [String(name), value]);
    return this;
  }

  getHeader(name) {
    const entry = this._headers.get(String(name).toLowerCase());
    return entry && entry[1];
  }

  getHeaders() {
    const out = {};
    for (const [key, [, value]] of this._headers) out[key] = value;
    return out;
  }

  getHeaderNames() {
    return [...this._headers.keys()];
  }

  hasHeader(name) {
    return this._headers.has(String(name).toLowerCase());
  }

  removeHeader(name) {
    this._headers.delete(String(name).toLowerCase());
  }

  writeHead(statusCode, statusMessage, headers) {
    if (typeof statusMessage === "object") [statusMessage, headers] = [undefined, statusMessage];
    if (statusCode !== undefined) this.statusCode = statusCode;
    if (statusMessage !== undefined) this.statusMessage = statusMessage;
    if (headers) {
      if (Array.isArray(headers)) {
        for (let i = 0; i + 1 < headers.length; i += 2) this.setHeader(headers[i], headers[i + 1]);
      } else {
        for (const name of Object.keys(headers)) this.setHeader(name, headers[name]);
      }
    }
    return this;
  }

  write(chunk, encoding, callback) {
    if (typeof encoding === "function") callback = encoding;
    if (chunk !== undefined && chunk !== null) this._chunks.push(toBuffer(chunk, encoding));
    if (typeof callback === "function") process.nextTick(callback);
    return true;
  }

  end(chunk, encoding, callback) {
    if (typeof chunk === "function") [chunk, callback] = [undefined, chunk];
    if (typeof encoding === "function") [encoding, callback] = [undefined, encoding];
    if (this.writableEnded) return this;
    if (chunk !== undefined && chunk !== null) this._chunks.push(toBuffer(chunk, encoding));
    this.headersSent = true;
    this.writableEnded = true;
    this.finished = true;
    this._onEnd(this);
    this.emit("finish");
    if (typeof callback === "function") process.nextTick(callback);
    return this;
  }

  /** The headers as `[name, value, ...]`, arrays spread into several entries. */
  _flatHeaders() {
    return flattenHeaders(Object.fromEntries([...this._headers.values()]));
  }

  _body() {
    return Buffer.concat(this._chunks);
  }
}

function toBuffer(chunk, encoding) {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk);
  return Buffer.from(String(chunk), typeof encoding === "string" ? encoding : "utf8");
}

/** `{name: value | value[]}` as `[name, value, ...]`. */
function flattenHeaders(headers) {
  const flat = [];
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined || value === null) continue;
    if (Array.isArray(value)) for (const v of value) flat.push(name, String(v));
    else flat.push(name, String(value));
  }
  return flat;
}

module.exports = { NativeResponse, flattenHeaders };
