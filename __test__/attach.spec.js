"use strict";

// attach() to the user's Node server: polling through the bridge, WebSocket
// taken over by the engine (plain TCP) or carried as bytes (TLS).

const { test } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const https = require("node:https");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { execFileSync } = require("node:child_process");
const express = require("express");
const { attach, Server } = require("..");
const { once, collect } = require("./helpers");
const { Socket: ClientSocket } = require("engine.io-client");

function listen(server) {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(server.address().port)),
  );
}

function close(server) {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A throwaway self-signed certificate, made with openssl. */
function selfSigned(dir) {
  const keyPath = path.join(dir, "key.pem");
  const certPath = path.join(dir, "cert.pem");
  const subject = ["-subj", "/CN=localhost", "-keyout", keyPath, "-out", certPath];
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", ...subject],
    {
      stdio: "ignore",
    },
  );
  return { key: fs.readFileSync(keyPath), cert: fs.readFileSync(certPath) };
}

function connections(server) {
  return new Promise((resolve, reject) =>
    server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
  );
}

async function echoRoundTrip(engine, url, transports, opts = {}) {
  const c = new ClientSocket(url, { transports, ...opts });
  const [[socket]] = await Promise.all([once(engine, "connection"), once(c, "open")]);
  const replies = collect(c, "message", 2);
  c.send("text ✓");
  c.send(Buffer.from([1, 2, 3]));
  const [text, bin] = await replies;
  assert.equal(text, "text ✓");
  assert.deepEqual([...Buffer.from(bin)], [1, 2, 3]);
  return { c, socket };
}

/** Echo round trips over TLS, polling then WebSocket; `carried`: Node keeps the WebSocket's connection. */
async function tlsRoundTrips(server, engine, port, { carried = false } = {}) {
  for (const transports of [["polling"], ["websocket"]]) {
    const { c, socket } = await echoRoundTrip(engine, `wss://127.0.0.1:${port}`, transports, {
      rejectUnauthorized: false,
    });
    if (carried && transports[0] === "websocket") assert.equal(await connections(server), 1);
    c.close();
    await once(socket, "close");
  }
}

function echo(engine) {
  engine.on("connection", (socket) => socket.on("message", (m) => socket.send(m)));
}

test("attach to http.Server: other requests keep their listeners; polling and websocket work", async () => {
  const server = http.createServer((req, res) => res.end("mine"));
  const engine = attach(server);
  assert.ok(engine instanceof Server);
  echo(engine);
  const port = await listen(server);
  const other = await fetch(`http://127.0.0.1:${port}/hello`);
  assert.equal(await other.text(), "mine");
  const refused = await fetch(`http://127.0.0.1:${port}/engine.io/?transport=tobi`);
  assert.equal(refused.status, 400);
  assert.deepEqual(await refused.json(), { code: 0, message: "Transport unknown" });
  for (const transports of [["polling"], ["websocket"]]) {
    const { c, socket } = await echoRoundTrip(engine, `ws://127.0.0.1:${port}`, transports);
    assert.equal(socket.transport.name, transports[0]);
    assert.equal(socket.request.headers.host, `127.0.0.1:${port}`);
    assert.ok(socket.request instanceof http.IncomingMessage, "socket.request is Node's request");
    c.close();
    assert.equal((await once(socket, "close"))[0], "transport close");
  }
  await close(server);
});

test("attach: the engine takes over plain TCP WebSockets, so Node holds no connection", async () => {
  const server = http.createServer();
  const engine = attach(server);
  echo(engine);
  const port = await listen(server);
  const { c, socket } = await echoRoundTrip(engine, `ws://127.0.0.1:${port}`, ["websocket"]);
  assert.equal(await connections(server), 0);
  socket.send("still here");
  assert.equal((await once(c, "message"))[0], "still here");
  c.close();
  await once(socket, "close");
  await close(server);
});

test("attach to an Express app: middlewares and routes keep working, upgrade included", async () => {
  const app = express();
  app.get("/hello", (req, res) => res.send("express"));
  const server = http.createServer(app);
  const engine = attach(server, { path: "/rt" });
  echo(engine);
  engine.use((req, res, next) => {
    res.setHeader("x-mw", req._query.transport);
    next();
  });
  const port = await listen(server);
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/hello`)).text(), "express");
  const hs = await fetch(`http://127.0.0.1:${port}/rt/?EIO=4&transport=polling`);
  assert.equal(hs.headers.get("x-mw"), "polling");
  const c = new ClientSocket(`ws://127.0.0.1:${port}`, { path: "/rt" });
  const upgraded = new Promise((resolve) =>
    engine.once("connection", (socket) => socket.once("upgrade", resolve)),
  );
  await upgraded;
  c.send("after upgrade");
  assert.equal((await once(c, "message"))[0], "after upgrade");
  c.close();
  engine.close();
  await close(server);
});

test("attach to https.Server: TLS WebSockets are carried as bytes", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eio-rs-tls-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const server = https.createServer(selfSigned(dir));
  const engine = attach(server);
  echo(engine);
  const port = await listen(server);
  await tlsRoundTrips(server, engine, port, { carried: true });
  await close(server);
});

test("attach to http2.createSecureServer({ allowHTTP1: true }) serves HTTP/1.1 clients", async (t) => {
  const http2 = require("node:http2");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eio-rs-h2-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const server = http2.createSecureServer({ allowHTTP1: true, ...selfSigned(dir) });
  const engine = attach(server);
  echo(engine);
  const port = await listen(server);
  await tlsRoundTrips(server, engine, port);
  await close(server);
});

test("attach: unhandled upgrades are destroyed after destroyUpgradeTimeout, unless destroyUpgrade is false", async () => {
  const net = require("node:net");
  for (const [opts, ends] of [
    [{ destroyUpgradeTimeout: 50 }, true],
    [{ destroyUpgrade: false, destroyUpgradeTimeout: 50 }, false],
  ]) {
    const server = http.createServer();
    attach(server, opts);
    const serverSides = [];
    server.on("upgrade", (req, socket) => serverSides.push(socket));
    const port = await listen(server);
    const sock = net.connect(port, "127.0.0.1");
    await once(sock, "connect");
    sock.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: IRC/6.9\r\n\r\n");
    const ended = await Promise.race([
      once(sock, "end").then(() => true),
      new Promise((r) => setTimeout(() => r(false), 300)),
    ]);
    assert.equal(ended, ends);
    sock.destroy();
    for (const socket of serverSides) socket.destroy();
    await close(server);
  }
});

test("a held poll through the bridge is answered when the server sends", async () => {
  const server = http.createServer();
  const engine = attach(server);
  const port = await listen(server);
  const conn = once(engine, "connection");
  const hs = await (
    await fetch(`http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling`)
  ).text();
  const sid = JSON.parse(hs.slice(1)).sid;
  const [socket] = await conn;
  const poll = fetch(`http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling&sid=${sid}`);
  setTimeout(() => socket.send("late"), 50);
  assert.equal(await (await poll).text(), "4late");
  const post = await fetch(
    `http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling&sid=${sid}`,
    {
      method: "POST",
      body: "4a\x1e4b",
    },
  );
  assert.equal(await post.text(), "ok");
  engine.close();
  await close(server);
});

test("a bridged request served on the runtime is answered when its answer comes while JS drains events", async (t) => {
  // A `headers` listener sends every request through the runtime (a hook
  // needs JS). Here the answer of such a GET comes while JS is still
  // draining the events queued before it was handed over; it must not be
  // lost (it was, when the request was registered only after that drain).
  const spin = (ms) => {
    for (const end = Date.now() + ms; Date.now() < end;);
  };
  let armed = null;
  let other;
  const server = http.createServer((req, res) => {
    if (armed && req.method === "GET" && req.url.includes(armed)) {
      // Events wait when the engine gets the GET: `other`'s drain (its
      // message went straight to its WebSocket), whose slow handler lets
      // the runtime queue the GET's headers hook.
      armed = null;
      other.send("queued before");
    }
    engine.handleRequest(req, res);
  });
  server.on("upgrade", (req, socket, head) => engine.handleUpgrade(req, socket, head));
  const engine = new Server();
  let slowHeaders = false;
  engine.on("headers", () => {
    // Queues one more slow event right after the hook is answered, so that
    // the GET's answer comes while JS is still draining.
    if (slowHeaders) {
      slowHeaders = false;
      other.send("queued after");
    }
  });
  const port = await listen(server);
  t.after(async () => {
    engine.close();
    server.closeAllConnections();
    await close(server);
  });
  const url = `http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling`;
  const open = async () => {
    const conn = once(engine, "connection");
    const hs = await (await fetch(url)).text();
    const sid = JSON.parse(hs.slice(1)).sid;
    const [socket] = await conn;
    return { sid, socket };
  };
  const a = await open();
  const conn = once(engine, "connection");
  const wsClient = new ClientSocket(`ws://127.0.0.1:${port}`, { transports: ["websocket"] });
  t.after(() => wsClient.close());
  [other] = await conn;
  other.on("drain", () => spin(50));
  a.socket.send("waiting");
  armed = a.sid;
  slowHeaders = true;
  const res = await Promise.race([
    fetch(`${url}&sid=${a.sid}`).then((r) => r.text()),
    new Promise((resolve) => setTimeout(() => resolve("no answer"), 2000)),
  ]);
  assert.equal(res, "4waiting");
});

test("req._query is engine.io's: the query the url had when the request came in", async () => {
  const server = http.createServer();
  const engine = attach(server);
  echo(engine);
  const seen = [];
  engine.use((req, res, next) => {
    // A middleware that rewrites the url does not change the query the
    // engine prepared, as with engine.io.
    req.url = req.url.replace("transport=polling", "transport=polling&extra=1");
    seen.push({ ...req._query });
    seen.push(Object.keys(req).includes("_query"));
    req._query = { replaced: "yes" };
    seen.push(req._query.replaced);
    next();
  });
  const port = await listen(server);
  const hs = await fetch(`http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling&a=%20b`);
  assert.equal(hs.status, 200);
  assert.deepEqual(seen, [{ EIO: "4", transport: "polling", a: " b" }, true, "yes"]);
  // A query something set before the engine saw the request is kept.
  const other = http.createServer((req, res) => {
    req._query = { from: "connect" };
    engine.handleRequest(req, res);
  });
  seen.length = 0;
  const port2 = await listen(other);
  await fetch(`http://127.0.0.1:${port2}/engine.io/?EIO=4&transport=polling`);
  assert.deepEqual(seen[0], { from: "connect" });
  engine.close();
  await close(server);
  await close(other);
});

/** Sends a raw WebSocket upgrade for `path` and resolves with every byte of the answer. */
function rawUpgrade(port, path) {
  return new Promise((resolve, reject) => {
    const net = require("node:net");
    const socket = net.connect(port, "127.0.0.1", () =>
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      ),
    );
    let got = "";
    socket.setTimeout(5000, () => socket.destroy(new Error("no answer")));
    socket.on("data", (d) => (got += d));
    socket.on("error", reject);
    socket.on("close", () => resolve(got));
  });
}

test("refused upgrades get engine.io's exact answer, from a middleware or from the engine", async () => {
  const server = http.createServer();
  const engine = attach(server);
  engine.use((req, res, next) => next(req._query.fail ? new Error("boom") : undefined));
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  const abort = (message) =>
    "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-type: text/html\r\n" +
    `Content-Length: ${message.length}\r\n\r\n${message}`;
  // The bridge's middlewares failed (answered from JS).
  assert.equal(
    await rawUpgrade(port, "/engine.io/?EIO=4&transport=websocket&fail=1"),
    abort("Bad request"),
  );
  // The engine refused it (an unknown sid; answered from Rust on the taken-over socket).
  assert.equal(
    await rawUpgrade(port, "/engine.io/?EIO=4&transport=websocket&sid=nope"),
    abort("Session ID unknown"),
  );
  engine.close();
  await new Promise((r) => server.close(r));
});
