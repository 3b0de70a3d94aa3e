"use strict";

// listen() over TLS speaks HTTP/2 with clients that offer it (ALPN h2):
// long-polling multiplexed on one connection, and WebSocket over an HTTP/2
// stream (RFC 8441, extended CONNECT), driven here by Node's http2 client.

const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const http2 = require("node:http2");
const os = require("node:os");
const path = require("node:path");
const { listen } = require("..");
const { stop } = require("./helpers");

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eio-rs-h2-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
execFileSync(
  "openssl",
  [
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "1",
    ],
    ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
    ["-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem")],
  ].flat(),
  { stdio: "ignore" },
);
const key = fs.readFileSync(path.join(dir, "key.pem"));
const cert = fs.readFileSync(path.join(dir, "cert.pem"));

function startH2(opts = {}) {
  return new Promise((resolve, reject) => {
    const engine = listen(0, { key, cert, ...opts }, () => {
      const port = engine.httpServer.address().port;
      const client = http2.connect(`https://127.0.0.1:${port}`, { ca: cert });
      client.on("error", () => {});
      resolve({ engine, port, client });
    });
    engine.httpServer.once("error", reject);
  });
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

test("polling over HTTP/2: 50 sessions on one connection, held GETs blocking nobody", async () => {
  const { engine, client } = await startH2();
  const versions = new Set();
  engine.on("connection", (socket) => {
    versions.add(`${socket.request.httpVersion} ${socket.request.socket.encrypted}`);
    socket.on("message", (m) => socket.send(`echo ${m}`));
  });
  const base = "/engine.io/?EIO=4&transport=polling";
  const sids = await Promise.all(
    Array.from({ length: 50 }, async () => {
      const res = await get(client, base);
      assert.equal(res.status, 200);
      return JSON.parse(res.body.slice(1)).sid;
    }),
  );
  // Every session holds a GET on the same connection; each POST still goes
  // through, and releases its own session's GET with the echo.
  const echoes = await Promise.all(
    sids.map(async (sid, i) => {
      const held = get(client, `${base}&sid=${sid}`);
      const posted = await post(client, `${base}&sid=${sid}`, `4m${i}`);
      assert.equal(posted.status, 200);
      return (await held).body;
    }),
  );
  assert.deepEqual(
    echoes,
    sids.map((_, i) => `4echo m${i}`),
  );
  assert.deepEqual([...versions], ["2.0 true"]);
  client.close();
  await stop(engine);
});

test("WebSocket over HTTP/2 (RFC 8441): a new session, and the upgrade of a polling one", async () => {
  const { engine, port, client } = await startH2();
  const seen = [];
  engine.on("connection", (socket) => {
    seen.push(`${socket.request.method} ${socket.transport.name}`);
    socket.on("upgrade", (t) => seen.push(`upgrade ${t.name}`));
    socket.on("message", (m) => socket.send(`echo ${m}`));
  });
  await new Promise((r) => client.once("remoteSettings", r));
  assert.equal(client.remoteSettings.enableConnectProtocol, true);
  const connect = (query) =>
    client.request({
      ":method": "CONNECT",
      ":protocol": "websocket",
      ":scheme": "https",
      ":authority": `127.0.0.1:${port}`,
      ":path": `/engine.io/?EIO=4&transport=websocket${query}`,
      "sec-websocket-version": "13",
    });
  // A session that starts on WebSocket.
  const ws = connect("");
  const [head] = await new Promise((r) => ws.once("response", (...a) => r(a)));
  assert.equal(head[":status"], 200);
  const next = frames(ws);
  assert.match(await next(), /^0\{"sid":/);
  ws.write(textFrame("4hello"));
  assert.equal(await next(), "4echo hello");
  ws.close();
  // A polling session upgraded to a WebSocket on the same HTTP/2 connection.
  const open = await get(client, "/engine.io/?EIO=4&transport=polling");
  const { sid } = JSON.parse(open.body.slice(1));
  const up = connect(`&sid=${sid}`);
  const nextUp = frames(up);
  up.write(textFrame("2probe"));
  assert.equal(await nextUp(), "3probe");
  up.write(textFrame("5"));
  up.write(textFrame("4after"));
  assert.equal(await nextUp(), "4echo after");
  assert.deepEqual(seen, ["CONNECT websocket", "GET polling", "upgrade websocket"]);
  up.close();
  client.close();
  await stop(engine);
});

test("HTTP/2 bad input: a foreign :protocol, a CONNECT elsewhere, a body over maxHttpBufferSize", async () => {
  const { engine, port, client } = await startH2({
    maxHttpBufferSize: 100,
    destroyUpgradeTimeout: 50,
  });
  await new Promise((r) => client.once("remoteSettings", r));
  const connect = (protocol, p) =>
    request(client, {
      ":method": "CONNECT",
      ":protocol": protocol,
      ":scheme": "https",
      ":authority": `127.0.0.1:${port}`,
      ":path": p,
      "sec-websocket-version": "13",
    }).catch((err) => ({ error: err.code }));
  // Not a WebSocket: a request engine.io refuses (code 2, not a GET).
  const foreign = await connect("foo", "/engine.io/?EIO=4&transport=websocket");
  assert.equal(foreign.status, 400);
  assert.deepEqual(JSON.parse(foreign.body), { code: 2, message: "Bad handshake method" });
  // Outside the engine path: ended, as engine.io ends an unhandled upgrade.
  const elsewhere = await connect("websocket", "/elsewhere");
  assert.notEqual(elsewhere.status, 200);
  // A POST body over the limit: 413, the session goes on.
  const base = "/engine.io/?EIO=4&transport=polling";
  const { sid } = JSON.parse((await get(client, base)).body.slice(1));
  const big = await post(client, `${base}&sid=${sid}`, `4${"x".repeat(200)}`);
  assert.equal(big.status, 413);
  assert.equal(engine.clientsCount, 1);
  client.close();
  await stop(engine);
});
