"use strict";

// engine.io's exact answers to requests it refuses, and the limits.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const net = require("node:net");
const { WebSocket } = require("ws");
const { start, stop, once, handshake } = require("./helpers");

async function refused(url, path, init, status, code, message) {
  const res = await fetch(url + path, init);
  assert.equal(res.status, status, path);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.deepEqual(await res.json(), { code, message });
}

test("each refused request gets engine.io's status, body and connection_error", async () => {
  const { engine, url } = await start();
  const errors = [];
  engine.on("connection_error", (e) => errors.push(e));
  await refused(url, "/engine.io/?EIO=4&transport=tobi", {}, 400, 0, "Transport unknown");
  await refused(url, "/engine.io/?EIO=4&transport=constructor", {}, 400, 0, "Transport unknown");
  await refused(
    url,
    "/engine.io/?EIO=4&transport=polling&sid=test",
    {},
    400,
    1,
    "Session ID unknown",
  );
  await refused(
    url,
    "/engine.io/?EIO=4&transport=polling",
    { method: "PUT" },
    400,
    2,
    "Bad handshake method",
  );
  await refused(url, "/engine.io/?EIO=4&transport=websocket", {}, 400, 3, "Bad request");
  await refused(
    url,
    "/engine.io/?EIO=3&transport=polling",
    {},
    400,
    5,
    "Unsupported protocol version",
  );
  await refused(url, "/engine.io/?transport=polling", {}, 400, 5, "Unsupported protocol version");

  assert.equal(errors.length, 7);
  assert.deepEqual(
    errors.map((e) => e.code),
    [0, 0, 1, 2, 3, 5, 5],
  );
  assert.deepEqual(errors[0].context, { transport: "tobi" });
  assert.deepEqual(errors[2].context, { sid: "test" });
  assert.deepEqual(errors[3].context, { method: "PUT" });
  assert.deepEqual(errors[4].context, { name: "TRANSPORT_HANDSHAKE_ERROR" });
  assert.deepEqual(errors[5].context, { protocol: 3 });
  assert.equal(errors[0].message, "Transport unknown");
  assert.equal(errors[0].req.method, "GET");
  assert.equal(errors[0].req._query.transport, "tobi");
  await stop(engine);
});

test("a transport mismatch without upgrade is a bad request", async () => {
  const { engine, url } = await start();
  const { open } = await handshake(url);
  const [err] = await Promise.all([
    once(engine, "connection_error"),
    refused(
      url,
      `/engine.io/?EIO=4&transport=websocket&sid=${open.sid}`,
      {},
      400,
      3,
      "Bad request",
    ),
  ]);
  assert.deepEqual(err[0].context, {
    name: "TRANSPORT_MISMATCH",
    transport: "websocket",
    previousTransport: "polling",
  });
  await stop(engine);
});

test("the handshake carries engine.io's open packet", async () => {
  const { engine, url } = await start({
    pingInterval: 300,
    pingTimeout: 200,
    maxHttpBufferSize: 1234,
  });
  const { res, open } = await handshake(url);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain; charset=UTF-8");
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.deepEqual(Object.keys(open), [
    "sid",
    "upgrades",
    "pingInterval",
    "pingTimeout",
    "maxPayload",
  ]);
  assert.equal(open.sid.length, 20);
  assert.deepEqual(open.upgrades, ["websocket"]);
  assert.equal(open.pingInterval, 300);
  assert.equal(open.pingTimeout, 200);
  assert.equal(open.maxPayload, 1234);
  await stop(engine);
});

test("no upgrades are offered when upgrades or websocket are off", async () => {
  for (const opts of [{ allowUpgrades: false }, { transports: ["polling"] }]) {
    const { engine, url } = await start(opts);
    const { open } = await handshake(url);
    assert.deepEqual(open.upgrades, []);
    await stop(engine);
  }
});

test("a polling body over maxHttpBufferSize gets 413", async () => {
  const { engine, url } = await start({ maxHttpBufferSize: 100 });
  const { open } = await handshake(url);
  const res = await fetch(`${url}/engine.io/?EIO=4&transport=polling&sid=${open.sid}`, {
    method: "POST",
    body: "4" + "x".repeat(200),
  });
  assert.equal(res.status, 413);
  const ok = await fetch(`${url}/engine.io/?EIO=4&transport=polling&sid=${open.sid}`, {
    method: "POST",
    body: "4" + "x".repeat(50),
  });
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), "ok");
  await stop(engine);
});

test("a websocket message over maxHttpBufferSize closes the session", async () => {
  const { engine, port } = await start({ maxHttpBufferSize: 100 });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/engine.io/?EIO=4&transport=websocket`);
  const [[socket]] = await Promise.all([once(engine, "connection"), once(ws, "open")]);
  const closed = once(socket, "close");
  const wsClosed = once(ws, "close");
  ws.send("4" + "x".repeat(500));
  const [reason] = await closed;
  assert.equal(reason, "transport error");
  const [wsCode] = await wsClosed;
  assert.equal(wsCode, 1009);
  await stop(engine);
});

test("requests outside the engine path get 501", async () => {
  const { engine, url } = await start();
  const res = await fetch(`${url}/`);
  assert.equal(res.status, 501);
  assert.equal(await res.text(), "Not Implemented");
  const res2 = await fetch(`${url}/engine.io?EIO=4&transport=polling`);
  assert.equal(res2.status, 501);
  await stop(engine);
});

test("a client that never answers pings is closed with 'ping timeout'", async () => {
  const { engine, url } = await start({ pingInterval: 50, pingTimeout: 50 });
  const conn = once(engine, "connection");
  await handshake(url);
  const [socket] = await conn;
  const [reason] = await once(socket, "close", 3000);
  assert.equal(reason, "ping timeout");
  assert.equal(engine.clientsCount, 0);
  await stop(engine);
});

test("overlapping polls get 400 and close the session with 'transport error'", async () => {
  const { engine, url } = await start();
  const conn = once(engine, "connection");
  const { open } = await handshake(url);
  const [socket] = await conn;
  const pollUrl = `${url}/engine.io/?EIO=4&transport=polling&sid=${open.sid}`;
  const first = fetch(pollUrl);
  await new Promise((r) => setTimeout(r, 50));
  const closed = once(socket, "close");
  const second = await fetch(pollUrl);
  assert.equal(second.status, 400);
  const [reason] = await closed;
  assert.equal(reason, "transport error");
  assert.equal(await (await first).text(), "1");
  await stop(engine);
});

test("a malformed polling payload closes the session with 'parse error'", async () => {
  const { engine, url } = await start();
  const conn = once(engine, "connection");
  const { open } = await handshake(url);
  const [socket] = await conn;
  const messages = [];
  socket.on("message", (m) => messages.push(m));
  const closed = once(socket, "close");
  const res = await fetch(`${url}/engine.io/?EIO=4&transport=polling&sid=${open.sid}`, {
    method: "POST",
    body: "4ok\x1e9bad",
  });
  assert.equal(res.status, 200);
  const [reason] = await closed;
  assert.equal(reason, "parse error");
  assert.deepEqual(messages, ["ok"]);
  await stop(engine);
});

test("a poll that disconnects closes the session with 'transport error'", async () => {
  const { engine, url, port } = await start();
  const conn = once(engine, "connection");
  const { open } = await handshake(url);
  const [socket] = await conn;
  const closed = once(socket, "close");
  const raw = net.connect(port, "127.0.0.1", () => {
    raw.write(
      `GET /engine.io/?EIO=4&transport=polling&sid=${open.sid} HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    setTimeout(() => raw.destroy(), 100);
  });
  const [reason] = await closed;
  assert.equal(reason, "transport error");
  await stop(engine);
});

test("maxBufferedBytes closes a session whose client does not read", async () => {
  const { engine, url, port } = await start({ maxBufferedBytes: 2 * 1024 * 1024 });
  // Polling: nobody polls, so everything stays buffered.
  const conn = once(engine, "connection");
  await handshake(url);
  const [polling] = await conn;
  const closed = once(polling, "close");
  const chunk = "x".repeat(1024 * 1024);
  polling.send(chunk);
  polling.send(chunk);
  assert.equal(polling.readyState, "open");
  polling.send(chunk);
  const [reason, description] = await closed;
  assert.equal(reason, "transport error");
  assert.equal(description.message, "write buffer full");

  // WebSocket: a client that never reads its socket.
  const net = require("node:net");
  const sock = net.connect(port, "127.0.0.1");
  await once(sock, "connect");
  const wsConn = once(engine, "connection");
  sock.write(
    "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      "Sec-WebSocket-Version: 13\r\n\r\n",
  );
  sock.pause();
  const [ws] = await wsConn;
  const wsClosed = once(ws, "close", 10000);
  const big = Buffer.alloc(256 * 1024, 1);
  for (let i = 0; i < 200 && ws.readyState === "open"; i++) {
    ws.send(big);
    await new Promise((r) => setImmediate(r));
  }
  const [wsReason, wsDescription] = await wsClosed;
  assert.equal(wsReason, "transport error");
  assert.equal(wsDescription.message, "write buffer full");
  sock.destroy();
  await stop(engine);
});
