"use strict";

// engine.io's debug logs: DEBUG=engine* prints engine.io's namespaces with
// what engine.io says at the same moments, lines written in Rust included;
// debug.enable() at run time switches them; off, nothing is printed.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const path = require("node:path");
const util = require("node:util");
const createDebug = require("debug");
const { Server } = require("..");
const { Socket: ClientSocket } = require("engine.io-client");
const { start, stop, once, runNode } = require("./helpers");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs `script` in a fresh Node with `env` added, colours off. */
const run = (script, env) => runNode(script, { DEBUG_COLORS: "0", ...env });

// One session's life: polling handshake, upgrade to WebSocket, a message
// each way, a heartbeat, the client's close. Prints the sid on stdout.
const LIFE = `
  const { listen } = require(".");
  const { Socket } = require("engine.io-client");
  const engine = listen(0, { pingInterval: 200, pingTimeout: 1000 }, () => {
    const { port } = engine.httpServer.address();
    engine.on("connection", (s) => {
      console.log(s.id);
      s.on("message", (m) => s.send("echo " + m));
      s.on("heartbeat", () => s.heartbeats = (s.heartbeats || 0) + 1);
      s.on("close", () => setTimeout(() => { engine.close(); engine.httpServer.close(); }, 50));
    });
    const c = new Socket("http://127.0.0.1:" + port);
    c.on("upgrade", () => c.send("hi"));
    c.on("message", () => setTimeout(() => c.close(), 300));
  });
`;

/** The lines of `namespace` (ISO-dated, as debug prints without a TTY). */
function lines(err, namespace) {
  return err
    .split("\n")
    .map((l) => l.replace(/^\S+Z /, ""))
    .filter((l) => l.startsWith(namespace + " "))
    .map((l) => l.slice(namespace.length + 1));
}

test("DEBUG=engine* prints a session's life in engine.io's namespaces", async () => {
  const { code, out, err } = await run(LIFE, { DEBUG: "engine*" });
  assert.equal(code, 0, err);
  const sid = out.trim();
  assert.match(sid, /^[\w-]{20}$/);
  const engine = lines(err, "engine");
  assert.match(engine[0], /^handling "GET" http request "\/engine\.io\/\?EIO=4&transport=polling/);
  assert.ok(engine.includes(`handshaking client "${sid}" (polling, EIO 4)`), err);
  assert.ok(engine.includes("upgrading existing transport"), err);
  const socket = lines(err, "engine:socket");
  const inOrder = [
    'might upgrade socket transport from "polling" to "websocket"',
    "got probe ping packet, sending pong",
    "got upgrade packet - upgrading",
    "received packet message",
    'sending packet "message" (echo hi)',
    "writing ping packet - expecting pong within 1000ms",
    "got pong",
    "readyState updated from open to closed (transport close)",
  ];
  let at = -1;
  for (const line of inOrder) {
    const i = socket.indexOf(line, at + 1);
    assert.ok(i > at, `"${line}" after line ${at} of:\n${socket.join("\n")}`);
    at = i;
  }
  const polling = lines(err, "engine:polling");
  assert.ok(polling.includes("setting request"), err);
  assert.ok(
    polling.some((l) => l.startsWith(`writing "0{"sid":"${sid}"`)),
    err,
  );
  assert.ok(lines(err, "engine:ws").includes('received "4hi"'), err);
});

test("DEBUG picks namespaces: engine:ws alone prints only its lines", async () => {
  const { code, err } = await run(LIFE, { DEBUG: "engine:ws" });
  assert.equal(code, 0, err);
  const printed = err.split("\n").filter((l) => / engine/.test(l));
  assert.ok(printed.length > 0, err);
  for (const l of printed) assert.match(l, / engine:ws /);
});

test("without DEBUG nothing is printed", async () => {
  const { code, err } = await run(LIFE, {});
  assert.equal(code, 0, err);
  assert.equal(err, "");
});

/** Captures what `debug` prints, as [namespace, line] pairs. */
function capture() {
  const seen = [];
  const saved = createDebug.log;
  createDebug.log = function (...args) {
    seen.push([this.namespace, util.format(...args)]);
  };
  return { seen, restore: () => (createDebug.log = saved) };
}

test("debug.enable() at run time turns the engine's lines on and off", async () => {
  const { engine, port } = await start();
  const cap = capture();
  try {
    const quiet = new ClientSocket(`ws://127.0.0.1:${port}`, { transports: ["websocket"] });
    await once(quiet, "open");
    quiet.close();
    await sleep(100);
    assert.deepEqual(cap.seen, []);

    createDebug.enable("engine:socket,engine");
    const loud = new ClientSocket(`ws://127.0.0.1:${port}`, { transports: ["websocket"] });
    const [socket] = await once(engine, "connection");
    await once(loud, "open");
    loud.close();
    await once(socket, "close");
    await sleep(50);
    const engineLines = cap.seen.filter(([ns]) => ns === "engine").map(([, l]) => l);
    assert.ok(
      engineLines.some((l) => l.includes(`handshaking client "${socket.id}" (websocket, EIO 4)`)),
      engineLines.join("\n"),
    );
    assert.ok(
      cap.seen.some(([ns, l]) => ns === "engine:socket" && l.includes("readyState updated")),
      cap.seen.join("\n"),
    );
    assert.ok(cap.seen.every(([ns]) => ns === "engine" || ns === "engine:socket"));

    createDebug.disable();
    cap.seen.length = 0;
    const again = new ClientSocket(`ws://127.0.0.1:${port}`, { transports: ["websocket"] });
    await once(again, "open");
    again.close();
    await sleep(100);
    assert.deepEqual(cap.seen, []);
  } finally {
    createDebug.disable();
    cap.restore();
    await stop(engine);
  }
});

test("attach(): the bridge's requests log too, with engine.io's JS lines", async () => {
  const cap = capture();
  createDebug.enable("engine*");
  const server = http.createServer();
  const engine = new Server();
  engine.use((req, res, next) => next());
  engine.attach(server);
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  try {
    const { port } = server.address();
    const client = new ClientSocket(`http://127.0.0.1:${port}`, { transports: ["polling"] });
    const [socket] = await once(engine, "connection");
    await once(client, "open");
    client.send("over polling");
    await once(socket, "message");
    client.close();
    await once(socket, "close");
    await sleep(50);
    const text = cap.seen.map(([ns, l]) => `${ns} ${l}`).join("\n");
    assert.match(text, /engine intercepting request for path "\/engine\.io\/"/);
    assert.match(text, /engine applying middleware n°1/);
    assert.match(text, new RegExp(`engine handshaking client "${socket.id}" \\(polling, EIO 4\\)`));
    assert.match(text, /engine:polling received "4over polling"/);
    assert.match(text, /engine:socket readyState updated from open to closed \(transport close\)/);
  } finally {
    createDebug.disable();
    cap.restore();
    engine.close();
    await new Promise((r) => server.close(r));
  }
});
