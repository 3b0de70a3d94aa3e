"use strict";

// attach() to Node's http2.createSecureServer(): polling through Node's
// compatibility API, and WebSocket over an HTTP/2 stream (RFC 8441), which
// Node emits as `connect` and the engine serves, its bytes carried by JS.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const http2 = require("node:http2");
const { Socket: ClientSocket } = require("engine.io-client");
const { Server } = require("..");
const { once } = require("./helpers");
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

/** A Node http2 server with an engine attached, and an http2 client session to it. */
async function start(t, { serverOptions = {}, engineOptions = {}, before } = {}) {
  const server = http2.createSecureServer({ key, cert, allowHTTP1: true, ...serverOptions });
  if (before) before(server);
  const engine = new Server(engineOptions);
  engine.attach(server);
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  const client = http2.connect(`https://127.0.0.1:${port}`, { ca: cert });
  client.on("error", () => {});
  await new Promise((r) => client.once("remoteSettings", r));
  t.after(async () => {
    client.close();
    engine.close();
    await new Promise((r) => server.close(r));
  });
  return { server, engine, client, port };
}

const base = "/engine.io/?EIO=4&transport=polling";

test("polling through Node's http2 API: 20 sessions on one connection", async (t) => {
  const { engine, client } = await start(t);
  const versions = new Set();
  engine.on("connection", (socket) => {
    versions.add(socket.request.httpVersion);
    socket.on("message", (m) => socket.send(`echo ${m}`));
  });
  const echoes = await pollOnOneConnection(client, 20);
  assert.deepEqual(
    echoes,
    Array.from({ length: 20 }, (_, i) => `4echo m${i}`),
  );
  assert.deepEqual([...versions], ["2.0"]);
});

test("WebSocket over HTTP/2 (RFC 8441) through attach(): a new session, and an upgrade", async (t) => {
  const { engine, client, port } = await start(t);
  assert.equal(client.remoteSettings.enableConnectProtocol, true, "attach() announces it");
  const seen = [];
  const closed = [];
  engine.on("connection", (socket) => {
    seen.push(`${socket.request.method} ${socket.request.httpVersion} ${socket.transport.name}`);
    socket.on("upgrade", (tr) => seen.push(`upgrade ${tr.name}`));
    socket.on("message", (m) => socket.send(`echo ${m}`));
    socket.on("close", (reason) => closed.push(reason));
  });
  const connect = (query) =>
    client.request(connectHeaders(port, `/engine.io/?EIO=4&transport=websocket${query}`));

  const ws = connect("");
  const [head] = await once(ws, "response");
  assert.equal(head[":status"], 200);
  const next = frames(ws);
  assert.match(await next(), /^0\{"sid":/);
  ws.write(textFrame("4hello"));
  assert.equal(await next(), "4echo hello");
  ws.close();

  const { sid } = JSON.parse((await get(client, base)).body.slice(1));
  const up = connect(`&sid=${sid}`);
  const nextUp = frames(up);
  up.write(textFrame("2probe"));
  assert.equal(await nextUp(), "3probe");
  up.write(textFrame("5"));
  up.write(textFrame("4after"));
  assert.equal(await nextUp(), "4echo after");
  assert.deepEqual(seen, ["CONNECT 2.0 websocket", "GET 2.0 polling", "upgrade websocket"]);
  up.close();
  for (let i = 0; i < 500 && closed.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(closed, ["transport close", "transport close"]);
  assert.equal(engine.clientsCount, 0);
});

test("HTTP/2 CONNECT refused: unknown sid, a foreign :protocol, a middleware's error; others' CONNECTs untouched", async (t) => {
  const theirs = [];
  const { engine, client, port } = await start(t, {
    before: (server) =>
      server.on("connect", (req, res) => {
        theirs.push(req.url);
        res.writeHead(204).end();
      }),
  });
  const errors = [];
  engine.on("connection_error", (e) => errors.push(e.code));
  const connect = (p, protocol) =>
    request(client, connectHeaders(port, p, protocol)).catch((err) => ({ error: err.code }));
  const unknown = await connect("/engine.io/?EIO=4&transport=websocket&sid=nope");
  assert.equal(unknown.status, 400);
  const foreign = await connect("/engine.io/?EIO=4&transport=websocket", "foo");
  assert.equal(foreign.status, 400);
  assert.deepEqual(JSON.parse(foreign.body), { code: 2, message: "Bad handshake method" });
  const elsewhere = await connect("/elsewhere");
  assert.equal(elsewhere.status, 204);
  assert.deepEqual(theirs, ["/elsewhere"]);
  assert.deepEqual(errors, [Server.errors.UNKNOWN_SID, Server.errors.BAD_HANDSHAKE_METHOD]);

  engine.use((req, res, next) => next(req.httpVersion === "2.0" ? new Error("no") : undefined));
  const refused = await connect("/engine.io/?EIO=4&transport=websocket");
  assert.equal(refused.status, 400);
  assert.equal(refused.body, "Bad request");
  assert.equal(engine.clientsCount, 0);
});

test("allowHTTP1: engine.io-client over https/1.1 polls and upgrades to a WebSocket", async (t) => {
  const { engine, port } = await start(t);
  engine.on("connection", (socket) => socket.on("message", (m) => socket.send(`echo ${m}`)));
  const c = new ClientSocket(`https://127.0.0.1:${port}`, { ca: cert });
  await once(c, "upgrade");
  assert.equal(c.transport.name, "websocket");
  c.send("over h1");
  const [m] = await once(c, "message");
  assert.equal(m, "echo over h1");
  const [socket] = Object.values(engine.clients);
  assert.equal(socket.request.httpVersion, "1.1");
  c.close();
});
