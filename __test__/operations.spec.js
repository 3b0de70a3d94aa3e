"use strict";

// What an operator uses: engine.stats() and engine.metrics() (Prometheus),
// and engine.drain() to take a server out of service without cutting its
// clients off.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const path = require("node:path");
const { spawn } = require("node:child_process");
const parsePrometheus = require("parse-prometheus-text-format");
const { WebSocket } = require("ws");
const { Socket: ClientSocket } = require("engine.io-client");
const { Server } = require("..");
const { start, stop, once, until, runNode } = require("./helpers");

/** Opens an engine.io-client socket and waits for its handshake. */
async function open(port, opts) {
  const c = new ClientSocket(`http://127.0.0.1:${port}`, opts);
  await once(c, "open");
  return c;
}

/** The value of one sample of `metrics()`, found by name and labels. */
function sample(text, name, labels = {}) {
  const family = parsePrometheus(text).find((f) => f.name === name);
  assert.ok(family, `no family ${name}`);
  const m = family.metrics.find((m) =>
    Object.entries(labels).every(([k, v]) => (m.labels || {})[k] === v),
  );
  assert.ok(m, `no ${name} sample with ${JSON.stringify(labels)}`);
  return Number(m.value);
}

test("stats() counts sessions, upgrades, messages, bytes, closes and refusals", async () => {
  const { engine, port, url } = await start({ pingInterval: 200, pingTimeout: 100 });
  try {
    const zero = engine.stats();
    assert.equal(zero.sessions.total, 0);
    assert.equal(zero.handshakes, 0);
    assert.equal(zero.runtimeThreads > 0, true);
    assert.deepEqual(Object.keys(zero.closes), [
      "transport close",
      "transport error",
      "ping timeout",
      "forced close",
      "parse error",
    ]);
    assert.deepEqual(Object.keys(zero.refused), Object.keys(Server.errors));

    engine.on("connection", (s) => s.on("message", (m) => s.send(m)));
    const polling = await open(port, { transports: ["polling"] });
    const ws = await open(port, { transports: ["websocket"] });
    const upgraded = await open(port);
    await once(upgraded, "upgrade");
    for (const c of [polling, ws, upgraded]) {
      c.send("0123456789");
      await once(c, "message");
    }
    let s = engine.stats();
    assert.equal(s.sessions.total, 3);
    assert.deepEqual(s.sessions.polling, { 3: 0, 4: 1 });
    assert.deepEqual(s.sessions.websocket, { 3: 0, 4: 2 });
    assert.equal(s.handshakes, 3);
    assert.deepEqual(s.upgrades, { started: 1, completed: 1, failed: 0 });
    assert.deepEqual(s.messages.received, { polling: 1, websocket: 2, webtransport: 0 });
    assert.deepEqual(s.messages.sent, { polling: 1, websocket: 2, webtransport: 0 });
    // At least the messages themselves went over the wire each way.
    assert.ok(s.bytes.received.polling >= 11, JSON.stringify(s.bytes));
    assert.ok(s.bytes.received.websocket >= 2 * 11, JSON.stringify(s.bytes));
    assert.ok(s.bytes.sent.polling >= 11, JSON.stringify(s.bytes));
    assert.ok(s.bytes.sent.websocket >= 2 * 11, JSON.stringify(s.bytes));

    // Refusals by code: an unknown sid, a bad transport.
    await fetch(`${url}/engine.io/?EIO=4&transport=polling&sid=nope`);
    await fetch(`${url}/engine.io/?EIO=4&transport=carrier-pigeon`);
    // Closes by reason: the client's close, the server's, a ping timeout.
    polling.close();
    engine.clients[ws.id].close();
    await until(() => engine.clientsCount === 1, "two closes");
    upgraded.close();
    await until(() => engine.clientsCount === 0, "the third close");
    // A raw WebSocket client that never answers a ping.
    const silent = new WebSocket(`ws://127.0.0.1:${port}/engine.io/?EIO=4&transport=websocket`);
    const [mute] = await once(engine, "connection");
    await once(mute, "close", 3000);
    silent.close();
    s = engine.stats();
    assert.equal(s.sessions.total, 0);
    assert.equal(s.refused.UNKNOWN_SID, 1);
    assert.equal(s.refused.UNKNOWN_TRANSPORT, 1);
    assert.equal(s.closes["ping timeout"], 1);
    assert.equal(s.closes["transport close"], 2);
    assert.equal(s.closes["forced close"], 1);
    for (const c of [polling, ws, upgraded]) c.close();
  } finally {
    await stop(engine);
  }
});

test("stats() shows what sessions hold for clients that do not read", async () => {
  const { engine, port } = await start();
  try {
    const polling = await open(port, { transports: ["polling"] });
    const [socket] = Object.values(engine.clients);
    // A polling client between polls: what is sent waits in the buffer.
    polling.transport.pause(() => {});
    await until(() => !socket.transport.writable, "the held poll to be answered");
    socket.send("x".repeat(1000));
    socket.send("y".repeat(500));
    assert.equal(engine.stats().bufferedBytes, 1500);
    polling.close();
  } finally {
    await stop(engine);
  }
});

test("metrics() is Prometheus text that agrees with stats()", async () => {
  const { engine, port } = await start();
  try {
    const c = await open(port, { transports: ["websocket"] });
    const text = engine.metrics();
    // Parsed by a Prometheus text parser: every family declared and typed.
    const families = parsePrometheus(text);
    for (const f of families) {
      assert.match(f.name, /^eio_[a-z_]+$/);
      assert.ok(f.help.length > 0, f.name);
      if (f.type === "COUNTER") assert.match(f.name, /_total$/);
      else assert.equal(f.type, "GAUGE", f.name);
    }
    assert.equal(sample(text, "eio_sessions", { transport: "websocket", protocol: "4" }), 1);
    assert.equal(sample(text, "eio_sessions", { transport: "polling", protocol: "4" }), 0);
    assert.equal(sample(text, "eio_handshakes_total"), 1);
    assert.equal(sample(text, "eio_refused_requests_total", { name: "UNKNOWN_SID" }), 0);
    assert.equal(sample(text, "eio_draining"), 0);
    assert.equal(sample(text, "eio_runtime_threads"), engine.stats().runtimeThreads);
    c.close();
  } finally {
    await stop(engine);
  }
});

test("attach(): a middleware's refusal is counted as BAD_REQUEST", async () => {
  const server = http.createServer();
  const engine = new Server();
  engine.use((req, res, next) => next(new Error("no")));
  engine.attach(server);
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  try {
    const { port } = server.address();
    const res = await fetch(`http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling`);
    assert.equal(res.status, 400);
    assert.equal(engine.stats().refused.BAD_REQUEST, 1);
  } finally {
    engine.close();
    await new Promise((r) => server.close(r));
  }
});

test("attach(): a draining engine answers handshakes 503 through the Node server", async () => {
  const server = http.createServer();
  const engine = new Server();
  engine.attach(server);
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  try {
    const { port } = server.address();
    const c = await open(port, { transports: ["polling"] });
    const drained = engine.drain();
    const res = await fetch(`http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling`);
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { code: 6, message: "Server draining" });
    c.close();
    assert.deepEqual(await drained, { closed: 1, forced: 0 });
  } finally {
    engine.close();
    await new Promise((r) => server.close(r));
  }
});

test("drain(): new handshakes get 503 while every transport's sessions go on", async () => {
  const { engine, port, url } = await start();
  try {
    engine.on("connection", (s) => s.on("message", (m) => s.send("echo " + m)));
    const clients = [
      await open(port, { transports: ["polling"] }),
      await open(port, { transports: ["websocket"] }),
      await open(port),
    ];
    await once(clients[2], "upgrade");
    const errors = [];
    engine.on("connection_error", (e) => errors.push(e));
    const drained = engine.drain();
    assert.equal(engine.stats().draining, true);

    // A new session: refused over polling and over WebSocket.
    const res = await fetch(`${url}/engine.io/?EIO=4&transport=polling`);
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { code: 6, message: "Server draining" });
    const refusedWs = new ClientSocket(`ws://127.0.0.1:${port}`, {
      transports: ["websocket"],
      reconnection: false,
    });
    await once(refusedWs, "error");
    await until(() => errors.length === 2, "both connection_error events");
    assert.equal(errors[0].code, Server.errors.SERVER_DRAINING);
    assert.equal(errors[0].message, "Server draining");
    assert.equal(engine.stats().refused.SERVER_DRAINING, 2);

    // The open sessions still work, each on its transport.
    for (const c of clients) {
      c.send("still here");
      const [m] = await once(c, "message");
      assert.equal(m, "echo still here");
    }
    let settled = false;
    drained.then(() => (settled = true));
    clients[0].close();
    clients[1].close();
    await until(() => engine.clientsCount === 1, "two closes");
    assert.equal(settled, false, "drain() resolved with a session open");
    clients[2].close();
    assert.deepEqual(await drained, { closed: 3, forced: 0 });
    assert.equal(engine.drain(), drained, "one drain per engine");
  } finally {
    await stop(engine);
  }
});

test("drain({ timeout }): the sessions left are closed when it passes", async () => {
  const { engine, port } = await start();
  try {
    const a = await open(port, { transports: ["websocket"] });
    const b = await open(port, { transports: ["polling"] });
    const reasons = [];
    for (const s of Object.values(engine.clients)) s.on("close", (r) => reasons.push(r));
    const result = await engine.drain({ timeout: 200 });
    assert.deepEqual(result, { closed: 0, forced: 2 });
    assert.deepEqual(reasons, ["forced close", "forced close"]);
    assert.equal(engine.clientsCount, 0);
    a.close();
    b.close();
  } finally {
    await stop(engine);
  }
});

test("a drained server's process exits by itself once its listener is closed", async () => {
  const script = `
    const { listen } = require(".");
    const { Socket } = require("engine.io-client");
    const engine = listen(0, async () => {
      const { port } = engine.httpServer.address();
      const ws = new Socket("ws://127.0.0.1:" + port, { transports: ["websocket"] });
      const poll = new Socket("http://127.0.0.1:" + port, { transports: ["polling"] });
      let open = 0;
      const onOpen = async () => {
        if (++open < 2) return;
        setTimeout(() => { ws.close(); poll.close(); }, 100);
        const r = await engine.drain({ timeout: 5000 });
        engine.httpServer.close(() => console.log("drained", JSON.stringify(r)));
      };
      ws.on("open", onOpen);
      poll.on("open", onOpen);
    });
  `;
  const { code, all: out } = await runNode(script, {}, 10000);
  assert.equal(code, 0, out);
  assert.match(out, /drained \{"closed":2,"forced":0\}/);
});

test("examples/metrics: one /metrics with prom-client's registry and the engine's", async (t) => {
  const child = spawn(
    process.execPath,
    [path.join(__dirname, "..", "examples", "metrics", "server.js"), "0", "0"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  t.after(() => child.exitCode === null && child.kill("SIGKILL"));
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  await until(() => /engine\.io on \d+/.test(out) && /metrics on \d+/.test(out), "both ports");
  const port = out.match(/engine\.io on (\d+)/)[1];
  const metricsPort = out.match(/metrics on (\d+)/)[1];
  const c = await open(port, { transports: ["websocket"] });
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type"), /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  assert.ok(sample(text, "process_cpu_user_seconds_total") >= 0);
  assert.equal(sample(text, "eio_sessions", { transport: "websocket", protocol: "4" }), 1);
  // SIGTERM drains (the gauge says so): the open session goes on until it
  // closes, then the process exits by itself.
  child.kill("SIGTERM");
  for (let draining = 0; draining !== 1;) {
    const r = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    draining = sample(await r.text(), "eio_draining");
  }
  c.close();
  const code = await new Promise((resolve) => child.on("exit", resolve));
  assert.equal(code, 0, out);
  assert.match(out, /drained: 1 closed, 0 forced/);
});
