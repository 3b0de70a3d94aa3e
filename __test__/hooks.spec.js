"use strict";

// Hooks that need a JS answer: middlewares, allowRequest, generateId, the
// headers events, cookie and cors, in native mode.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { WebSocket } = require("ws");
const { start, stop, once, client, handshake } = require("./helpers");

test("middlewares run in order and their headers reach polling and the 101", async () => {
  const { engine, url, port } = await start();
  const seen = [];
  engine.use((req, res, next) => {
    seen.push(`a ${req._query.transport}`);
    res.setHeader("foo", "bar");
    next();
  });
  engine.use((req, res, next) => {
    seen.push("b");
    req.marked = true;
    next();
  });
  const conn = once(engine, "connection");
  const { res } = await handshake(url);
  assert.equal(res.headers.get("foo"), "bar");
  const [socket] = await conn;
  assert.equal(socket.request.marked, true, "socket.request is the request middlewares saw");
  const ws = new WebSocket(`ws://127.0.0.1:${port}/engine.io/?EIO=4&transport=websocket`);
  const [upgradeRes] = await once(ws, "upgrade");
  assert.equal(upgradeRes.headers.foo, "bar");
  ws.close();
  assert.deepEqual(seen, ["a polling", "b", "a websocket", "b"]);
  await stop(engine);
});

test("a middleware can answer the request itself, or fail it", async () => {
  const { engine, url } = await start();
  engine.use((req, res, next) => {
    if (req._query.deny) {
      res.writeHead(418, { "x-why": "teapot" });
      return res.end("no");
    }
    if (req._query.fail) return next(new Error("boom"));
    next();
  });
  const denied = await fetch(`${url}/engine.io/?EIO=4&transport=polling&deny=1`);
  assert.equal(denied.status, 418);
  assert.equal(denied.headers.get("x-why"), "teapot");
  assert.equal(await denied.text(), "no");
  const errs = [];
  engine.on("connection_error", (e) => errs.push(e));
  const failed = await fetch(`${url}/engine.io/?EIO=4&transport=polling&fail=1`);
  assert.equal(failed.status, 400);
  assert.deepEqual(await failed.json(), { code: 3, message: "Bad request" });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(errs[0].context, { name: "MIDDLEWARE_FAILURE" });
  assert.equal(engine.clientsCount, 0);
  await stop(engine);
});

test("allowRequest refuses with 403 and its message", async () => {
  const { engine, url } = await start({
    allowRequest: (req, fn) =>
      setTimeout(() => fn(req._query.ok ? null : "Thou shall not pass", !!req._query.ok), 5),
  });
  const errs = [];
  engine.on("connection_error", (e) => errs.push(e));
  const res = await fetch(`${url}/engine.io/?EIO=4&transport=polling`);
  assert.equal(res.status, 403);
  assert.deepEqual(await res.json(), { code: 4, message: "Thou shall not pass" });
  assert.equal(errs[0].message, "Forbidden");
  assert.equal(errs[0].context.message, "Thou shall not pass");
  const ok = await fetch(`${url}/engine.io/?EIO=4&transport=polling&ok=1`);
  assert.equal(ok.status, 200);
  await stop(engine);
});

test("generateId: sync, Promise, and a rejection refuses the handshake", async () => {
  const { engine, url, port } = await start();
  engine.generateId = (req) => (req._query.p ? Promise.resolve("from-promise") : "custom-id");
  const conn = once(engine, "connection");
  const a = await handshake(url);
  assert.equal(a.open.sid, "custom-id");
  const [socket] = await conn;
  assert.equal(socket.id, "custom-id");
  assert.equal(engine.clients["custom-id"], socket);
  const b = await handshake(url, "&p=1");
  assert.equal(b.open.sid, "from-promise");
  engine.generateId = () => Promise.reject(new Error("nope"));
  const errs = once(engine, "connection_error");
  const res = await fetch(`${url}/engine.io/?EIO=4&transport=polling`);
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { code: 3, message: "Bad request" });
  assert.equal((await errs)[0].context.name, "ID_GENERATION_ERROR");
  const c = client(port, { transports: ["websocket"] });
  const [err] = await once(c, "error");
  assert.ok(err);
  await stop(engine);
});

test("initial_headers and headers listeners change the real response", async () => {
  const { engine, url } = await start({ cookie: { name: "sticky", sameSite: "strict" } });
  const calls = [];
  engine.on("initial_headers", (headers, req) => {
    calls.push(`initial ${req.method}`);
    headers["x-initial"] = "1";
  });
  engine.on("headers", (headers) => {
    calls.push("headers");
    headers["x-every"] = "2";
  });
  const { res, open } = await handshake(url);
  assert.equal(res.headers.get("x-initial"), "1");
  assert.equal(res.headers.get("x-every"), "2");
  assert.equal(
    res.headers.get("set-cookie"),
    `sticky=${open.sid}; Path=/; HttpOnly; SameSite=Strict`,
  );
  const post = await fetch(`${url}/engine.io/?EIO=4&transport=polling&sid=${open.sid}`, {
    method: "POST",
    body: "4hi",
  });
  assert.equal(post.headers.get("x-every"), "2");
  assert.equal(post.headers.get("x-initial"), null);
  assert.equal(post.headers.get("set-cookie"), null);
  assert.deepEqual(calls, ["initial GET", "headers", "headers"]);
  await stop(engine);
});

test("cors: preflight and actual requests, and errors keep the CORS headers", async () => {
  const { engine, url } = await start({ cors: { origin: "http://engine.io", credentials: true } });
  const pre = await fetch(`${url}/engine.io/?EIO=4&transport=polling`, {
    method: "OPTIONS",
    headers: { Origin: "http://engine.io", "Access-Control-Request-Method": "GET" },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "http://engine.io");
  assert.equal(pre.headers.get("access-control-allow-credentials"), "true");
  const actual = await fetch(`${url}/engine.io/?EIO=4&transport=polling`, {
    headers: { Origin: "http://engine.io" },
  });
  assert.equal(actual.status, 200);
  assert.equal(actual.headers.get("access-control-allow-origin"), "http://engine.io");
  const bad = await fetch(`${url}/engine.io/?EIO=4&transport=websocket`, {
    headers: { Origin: "http://engine.io" },
  });
  assert.equal(bad.status, 400);
  assert.equal(bad.headers.get("access-control-allow-origin"), "http://engine.io");
  await stop(engine);
});
