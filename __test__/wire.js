"use strict";

// WebSocket bytes by hand, for tests that must send what no client library
// sends (bad frames, chosen extension offers) or see what the server wrote
// (close codes, the RSV1 bit of compressed frames).

const assert = require("node:assert/strict");
const net = require("node:net");
const crypto = require("node:crypto");
const { once } = require("./helpers");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Raw TCP clients of the running test; `destroyRaw()` ends them, pass or fail. */
const rawSockets = new Set();

function connect(port) {
  const sock = net.connect(port, "127.0.0.1");
  rawSockets.add(sock);
  sock.on("close", () => rawSockets.delete(sock));
  return sock;
}

function destroyRaw() {
  for (const sock of rawSockets) sock.destroy();
}

/** A client frame; masked unless told otherwise. `rsv` is RSV1..3 as 0b100..0b001. */
function wsFrame({ fin = true, rsv = 0, opcode, payload = Buffer.alloc(0), mask = true }) {
  const len = payload.length;
  const head = [(fin ? 0x80 : 0) | (rsv << 4) | opcode];
  const m = mask ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else if (len < 65536) head.push(m | 126, len >> 8, len & 0xff);
  else {
    const n = Buffer.alloc(8);
    n.writeBigUInt64BE(BigInt(len));
    head.push(m | 127, ...n);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = crypto.randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ key[i % 4]));
  return Buffer.concat([Buffer.from(head), key, masked]);
}

/** The server's frames in `buf` (unmasked), as `{ opcode, rsv1, payload }`. */
function parseFrames(buf) {
  const frames = [];
  let at = 0;
  while (at + 2 <= buf.length) {
    let len = buf[at + 1] & 0x7f;
    let p = at + 2;
    if (len === 126) {
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      len = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    if (p + len > buf.length) break;
    frames.push({
      opcode: buf[at] & 0x0f,
      rsv1: (buf[at] & 0x40) !== 0,
      payload: buf.subarray(p, p + len),
    });
    at = p + len;
  }
  return frames;
}

/** What the server wrote after the end of its response head. */
function afterHead(buf) {
  const end = buf.indexOf("\r\n\r\n");
  return end < 0 ? Buffer.alloc(0) : buf.subarray(end + 4);
}

/** The status code of the server's close frame, `null` for a close frame without one. */
function closeCode(frames) {
  const close = frames.find((f) => f.opcode === 0x8);
  assert.ok(close, "the server sent a close frame");
  return close.payload.length >= 2 ? close.payload.readUInt16BE(0) : null;
}

/** Sends a WebSocket upgrade request by hand; resolves with the socket once connected. */
async function sendUpgrade(port, headers = "") {
  const sock = connect(port);
  await once(sock, "connect");
  const key = crypto.randomBytes(16).toString("base64");
  sock.write(
    "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\n" +
      "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" +
      `Sec-WebSocket-Key: ${key}\r\n${headers}\r\n`,
  );
  const chunks = [];
  sock.on("data", (d) => chunks.push(d));
  return { sock, all: () => Buffer.concat(chunks) };
}

/**
 * A WebSocket session over a raw TCP socket, upgraded by hand. `head()` is
 * the server's response head, `bytes()` what it wrote after it; `ended`
 * resolves when the server closes the TCP connection. `headers` are extra
 * request header lines, each ending in CRLF.
 */
async function rawWebSocket(engine, port, headers = "") {
  const conn = once(engine, "connection");
  const { sock, all } = await sendUpgrade(port, headers);
  const ended = once(sock, "close");
  const [socket] = await conn;
  // The 101 and the open packet.
  for (let i = 0; i < 100 && parseFrames(afterHead(all())).length === 0; i++) await sleep(10);
  assert.match(all().toString("latin1"), /^HTTP\/1\.1 101 /);
  const head = () => all().toString("latin1").split("\r\n\r\n")[0];
  return { sock, socket, ended, head, bytes: () => afterHead(all()) };
}

module.exports = {
  connect,
  destroyRaw,
  wsFrame,
  parseFrames,
  afterHead,
  closeCode,
  sendUpgrade,
  rawWebSocket,
};
