"use strict";

// Shared by the HTTP/2 tests: a throwaway certificate, requests on a Node
// http2 client session, and the raw WebSocket frames an RFC 8441 client
// exchanges over a CONNECT stream.

const { execFileSync } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const http2 = require("node:http2");
const os = require("node:os");
const path = require("node:path");

/** A self-signed P-256 certificate for localhost and 127.0.0.1 (openssl). */
function makeCert() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eio-rs-h2-"));
  try {
    execFileSync(
      "openssl",
      [
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ["-nodes", "-days", "1", "-subj", "/CN=localhost"],
        ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        ["-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem")],
      ].flat(),
      { stdio: "ignore" },
    );
    return {
      key: fs.readFileSync(path.join(dir, "key.pem")),
      cert: fs.readFileSync(path.join(dir, "cert.pem")),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** One HTTP/2 request on `client`: resolves with its status, headers and body. */
function request(client, headers, body) {
  return new Promise((resolve, reject) => {
    const req = client.request(headers);
    const chunks = [];
    let head = {};
    req.on("response", (h) => (head = h));
    req.on("data", (d) => chunks.push(d));
    req.on("end", () =>
      resolve({ status: head[":status"], headers: head, body: Buffer.concat(chunks).toString() }),
    );
    req.on("error", reject);
    req.setTimeout(5000, () => req.close(http2.constants.NGHTTP2_CANCEL));
    req.end(body);
  });
}

const get = (client, p) => request(client, { ":path": p });
const post = (client, p, body) => request(client, { ":method": "POST", ":path": p }, body);

/** The headers of an RFC 8441 extended CONNECT for a WebSocket on `path`. */
function connectHeaders(port, p, protocol = "websocket") {
  return {
    ":method": "CONNECT",
    ":protocol": protocol,
    ":scheme": "https",
    ":authority": `127.0.0.1:${port}`,
    ":path": p,
    "sec-websocket-version": "13",
  };
}

/** A masked client text frame (payload under 126 bytes). */
function textFrame(text) {
  const payload = Buffer.from(text);
  const mask = crypto.randomBytes(4);
  const frame = Buffer.alloc(6 + payload.length);
  frame[0] = 0x81;
  frame[1] = 0x80 | payload.length;
  mask.copy(frame, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i] ^ mask[i % 4];
  return frame;
}

/** Reads the server's (unmasked, short) text frames from `stream`. */
function frames(stream) {
  const queue = [];
  const waiting = [];
  let buf = Buffer.alloc(0);
  stream.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + (buf[1] & 0x7f)) {
      const len = buf[1] & 0x7f;
      const text = buf.subarray(2, 2 + len).toString();
      buf = buf.subarray(2 + len);
      if (waiting.length) waiting.shift()(text);
      else queue.push(text);
    }
  });
  return () =>
    queue.length
      ? Promise.resolve(queue.shift())
      : new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("no frame")), 5000);
          waiting.push((t) => (clearTimeout(timer), resolve(t)));
        });
}

/**
 * Opens `n` polling sessions on one HTTP/2 connection, then has each hold a
 * GET while it POSTs `4m<i>` (the server echoes `echo <message>`); resolves
 * with the bodies of the held GETs, which must be the echoes: a held GET
 * blocks no other stream.
 */
async function pollOnOneConnection(client, n) {
  const base = "/engine.io/?EIO=4&transport=polling";
  const sids = await Promise.all(
    Array.from({ length: n }, async () => {
      const res = await get(client, base);
      if (res.status !== 200) throw new Error(`handshake answered ${res.status}`);
      return JSON.parse(res.body.slice(1)).sid;
    }),
  );
  return Promise.all(
    sids.map(async (sid, i) => {
      const held = get(client, `${base}&sid=${sid}`);
      const posted = await post(client, `${base}&sid=${sid}`, `4m${i}`);
      if (posted.status !== 200) throw new Error(`POST answered ${posted.status}`);
      return (await held).body;
    }),
  );
}

module.exports = {
  makeCert,
  request,
  get,
  post,
  connectHeaders,
  textFrame,
  frames,
  pollOnOneConnection,
};
