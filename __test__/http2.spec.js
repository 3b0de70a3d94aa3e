"use strict";

// listen() over TLS speaks HTTP/2 with clients that offer it (ALPN h2):
// long-polling multiplexed on one connection, and WebSocket over an HTTP/2
// stream (RFC 8441, extended CONNECT), driven here by Node's http2 client.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const http2 = require("node:http2");
const { listen } = require("..");
const { stop } = require("./helpers");
const {
  makeCert,
  request,
  get,
  post,
  connectHeaders,
  textFrame,
  frames,
  pollOnOneConnection,
} = require("./h2");

const { key, cert } = makeCert();

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

test("polling over HTTP/2: 50 sessions on one connection, held GETs blocking nobody", async () => {
  const { engine, client } = await startH2();
  const versions = new Set();
  engine.on("connection", (socket) => {
    versions.add(`${socket.request.httpVersion} ${socket.request.socket.encrypted}`);
    socket.on("message", (m) => socket.send(`echo ${m}`));
  });
  const echoes = await pollOnOneConnection(client, 50);
  assert.deepEqual(
    echoes,
    Array.from({ length: 50 }, (_, i) => `4echo m${i}`),
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
    client.request(connectHeaders(port, `/engine.io/?EIO=4&transport=websocket${query}`));
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
    request(client, connectHeaders(port, p, protocol)).catch((err) => ({ error: err.code }));
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
