"use strict";

// attach() mode: the user's Node server parses requests; the engine in Rust
// answers them. Plain TCP upgrades are taken over by the engine (their file
// descriptor is duplicated, then Node's socket is destroyed), so WebSocket
// frames never pass through JS; TLS upgrades are carried as bytes.

const { NativeResponse } = require("./response");

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
const HEADER_NAMES = require("./constants").responseHeaders.map(([name]) => name);
const HEADER_VALUES = require("./constants").responseHeaders.map(([, value]) => value);

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
    socket.write(
      "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-type: text/html\r\n" +
        `Content-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`,
    );
  }
  socket.destroy();
}

/** The `res` middlewares get for an upgrade: headers go into the 101; end() destroys. */
function upgradeResponse(req, socket) {
  return new NativeResponse(req, () => socket.destroy());
}

module.exports = {
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
