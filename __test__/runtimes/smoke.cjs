"use strict";

// The runtime smoke suite: the same checks, unchanged, under Node, Bun and
// Deno (scripts/runtimes.js runs it under each). No test framework: one line
// per check, `ok - name` or `not ok - name: error`, then `N passed, M failed`;
// the exit code is 1 when a check fails. Every check has its own time bound
// and the whole run a hard one, so it never hangs.
//
//   node __test__/runtimes/smoke.cjs
//   bun __test__/runtimes/smoke.cjs
//   deno run -A __test__/runtimes/smoke.cjs
//
// Environment:
//   EIO_RS_PACKAGE  the module to test (a path, or a name require() resolves
//                   from here), e.g. an installed node_modules/eio-rs;
//                   the repository root by default.
//   SMOKE_FILTER    run only the checks whose name contains this text.
//
// Everything is on 127.0.0.1 with ephemeral ports. The clients are the npm
// packages engine.io-client, engine.io-client-v3 and socket.io-client.

const assert = require("node:assert");
const http = require("node:http");
const path = require("node:path");
const { spawn } = require("node:child_process");

const PACKAGE = process.env.EIO_RS_PACKAGE
  ? /^[./]|^[A-Za-z]:[\\/]/.test(process.env.EIO_RS_PACKAGE)
    ? path.resolve(process.env.EIO_RS_PACKAGE)
    : process.env.EIO_RS_PACKAGE
  : path.join(__dirname, "..", "..");

/** The whole run, checks and clean-ups included, must end within this. */
const HARD_TIMEOUT_MS = 60_000;
/** The default bound of one check. */
const CHECK_MS = 5_000;
/** How long the child process of the exit check may live. */
const EXIT_MS = 10_000;

const ENGINE_PATH = "/engine.io";
/** Every byte value, for the binary round trips. */
const BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);
const TEXT = "héllo wörld ✓ \u{1F600}";

function runtimeName() {
  if (typeof globalThis.Deno !== "undefined") return `deno ${globalThis.Deno.version.deno}`;
  if (process.versions.bun) return `bun ${process.versions.bun}`;
  return `node ${process.versions.node}`;
}

// ---------------------------------------------------------------------------
// Helpers

/** Rejects with `what` after `ms` unless `promise` settles first. */
function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The first argument of the next `event` on `emitter` (Node or component-emitter style). */
function once(emitter, event, ms = 3_000) {
  return within(
    new Promise((resolve) => emitter.once(event, (arg) => resolve(arg))),
    ms,
    `"${event}" event`,
  );
}

/** The first arguments of the next `n` `event`s on `emitter`. */
function collect(emitter, event, n, ms = 3_000) {
  const got = [];
  return within(
    new Promise((resolve) => {
      const on = (arg) => {
        got.push(arg);
        if (got.length === n) {
          emitter.off(event, on);
          resolve(got);
        }
      };
      emitter.on(event, on);
    }),
    ms,
    `${n} "${event}" events`,
  ).catch((err) => {
    err.message += ` (got ${got.length})`;
    throw err;
  });
}

/** Bytes of a Buffer, ArrayBuffer or typed array, as a Buffer. */
function bytes(data) {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new Error(`expected binary data, got ${describe(data)}`);
}

function describe(data) {
  if (data === null || typeof data !== "object") return `${typeof data} ${String(data)}`;
  return Object.prototype.toString.call(data);
}

function assertBytes(data, what) {
  const got = bytes(data);
  assert.ok(
    Buffer.compare(got, Buffer.from(BYTES)) === 0,
    `${what}: got ${got.length} bytes, not the 256 sent`,
  );
}

/** A listen(0) engine, closed (with its listener) when the check ends. */
function startListen(t, opts = {}) {
  return within(
    new Promise((resolve, reject) => {
      const engine = eio.listen(0, opts, () => {
        resolve({ engine, port: engine.httpServer.address().port });
      });
      engine.httpServer.once("error", reject);
      t.defer(() => closeListen(engine), "listen() close");
    }),
    CHECK_MS,
    "listen(0)",
  );
}

function closeListen(engine) {
  return new Promise((resolve) => {
    engine.close();
    if (engine.httpServer.listening) engine.httpServer.close(() => resolve());
    else resolve();
  });
}

/** A Node http server with an attached engine, on 127.0.0.1. */
function startAttach(t, handler, opts = {}) {
  const server = http.createServer(handler);
  const engine = eio.attach(server, opts);
  t.defer(
    () =>
      new Promise((resolve) => {
        engine.close();
        if (typeof server.closeAllConnections === "function") server.closeAllConnections();
        server.close(() => resolve());
      }),
    "attach() close",
  );
  return within(
    new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve({ server, engine, port: server.address().port }));
    }),
    CHECK_MS,
    "http server listen",
  );
}

/**
 * Watches an engine's `connection` events; `next()` resolves with the next
 * server socket's record: the socket, promises of its `upgrade` and `close`
 * (reason), and what it received. Listeners are set in the `connection`
 * handler itself, so no event of a batch is missed. Echoes by default.
 * One watcher per engine: later calls return the first one's `next`.
 */
const accepting = new WeakMap();
function accept(engine, { echo = true } = {}) {
  if (accepting.has(engine)) return accepting.get(engine);
  const ready = [];
  const waiting = [];
  engine.on("connection", (socket) => {
    const rec = { socket, received: [] };
    rec.upgraded = new Promise((resolve) => socket.once("upgrade", resolve));
    rec.closed = new Promise((resolve) => socket.once("close", (reason) => resolve(reason)));
    socket.on("message", (data) => {
      rec.received.push(data);
      if (echo) socket.send(data);
    });
    const w = waiting.shift();
    if (w) w(rec);
    else ready.push(rec);
  });
  const next = (ms = 3_000) =>
    ready.length
      ? Promise.resolve(ready.shift())
      : within(new Promise((resolve) => waiting.push(resolve)), ms, "server connection");
  accepting.set(engine, next);
  return next;
}

/** An engine.io-client socket, closed when the check ends. */
function eioClient(t, port, opts = {}) {
  const socket = new EioClient(`ws://127.0.0.1:${port}`, { path: ENGINE_PATH, ...opts });
  socket.on("error", () => {});
  socket.opened = once(socket, "open", 3_000);
  socket.opened.catch(() => {});
  t.defer(() => socket.close(), "client close");
  return socket;
}

/**
 * Sends text, a Buffer and an ArrayBuffer and checks the echoes; checks the
 * server got the text as a string and the binary as Buffers.
 */
async function echoRoundTrip(client, rec) {
  const before = rec.received.length;
  const echoes = collect(client, "message", 3);
  client.send(TEXT);
  client.send(Buffer.from(BYTES));
  client.send(BYTES.buffer.slice(0));
  const [text, buf, ab] = await echoes;
  assert.strictEqual(text, TEXT, "text echo");
  assertBytes(buf, "Buffer echo");
  assertBytes(ab, "ArrayBuffer echo");
  const [sText, sBuf, sAb] = rec.received.slice(before);
  assert.strictEqual(sText, TEXT, "server received the text");
  assert.ok(Buffer.isBuffer(sBuf), `server received ${describe(sBuf)} for a Buffer`);
  assert.ok(Buffer.isBuffer(sAb), `server received ${describe(sAb)} for an ArrayBuffer`);
  assertBytes(sBuf, "server's Buffer");
}

/** Connects `opts` to an engine and echoes; checks the transport each side ends on. */
async function connectAndEcho(t, engine, port, opts, transport) {
  const next = accept(engine);
  const client = eioClient(t, port, opts);
  const clientUpgraded = opts.transports ? null : once(client, "upgrade", 3_000);
  await client.opened;
  const rec = await next();
  if (transport === "websocket" && !opts.transports) {
    // Polling first, then the upgrade: both sides report it.
    await within(rec.upgraded, 3_000, 'server socket "upgrade" event');
    const clientTransport = await clientUpgraded;
    assert.strictEqual(clientTransport.name, "websocket", "client transport after upgrade");
    assert.strictEqual(rec.socket.upgraded, true, "socket.upgraded");
  }
  assert.strictEqual(rec.socket.transport.name, transport, "server socket.transport.name");
  assert.strictEqual(client.transport.name, transport, "client transport.name");
  await echoRoundTrip(client, rec);
  return { client, rec };
}

/** A raw WebSocket (the `ws` package) to an engine, never answering pings. */
function rawWebSocket(t, url) {
  const WebSocket = require("ws");
  const ws = new WebSocket(url);
  ws.on("error", () => {});
  t.defer(() => ws.terminate(), "raw WebSocket close");
  return ws;
}

// ---------------------------------------------------------------------------
// The checks

const checks = [];
/** Adds a check. `opts.ms`: its time bound. */
const check = (name, fn, opts = {}) => checks.push({ name, fn, ms: opts.ms || CHECK_MS });

for (const transport of ["polling", "websocket"]) {
  check(`listen(0): ${transport} only, text and binary echo`, async (t) => {
    const { engine, port } = await startListen(t);
    await connectAndEcho(t, engine, port, { transports: [transport] }, transport);
  });
}

check("listen(0): polling then upgrade to websocket, echo after the upgrade", async (t) => {
  const { engine, port } = await startListen(t);
  await connectAndEcho(t, engine, port, {}, "websocket");
});

for (const transport of ["polling", "websocket"]) {
  check(`listen(0): server socket.close() over ${transport} → "forced close"`, async (t) => {
    const { engine, port } = await startListen(t);
    const next = accept(engine);
    const client = eioClient(t, port, { transports: [transport] });
    await client.opened;
    const rec = await next();
    const clientClosed = once(client, "close");
    rec.socket.close();
    assert.strictEqual(await within(rec.closed, 3_000, "server close"), "forced close");
    await clientClosed;
    assert.strictEqual(engine.clientsCount, 0, "clientsCount");
  });

  check(`listen(0): client close over ${transport} → "transport close"`, async (t) => {
    const { engine, port } = await startListen(t);
    const next = accept(engine);
    const client = eioClient(t, port, { transports: [transport] });
    await client.opened;
    const rec = await next();
    client.close();
    assert.strictEqual(await within(rec.closed, 3_000, "server close"), "transport close");
    assert.strictEqual(engine.clientsCount, 0, "clientsCount");
  });
}

check('listen(0): a polling client that never polls → "ping timeout"', async (t) => {
  const { engine, port } = await startListen(t, { pingInterval: 100, pingTimeout: 100 });
  const next = accept(engine);
  // The session cannot time out before pingInterval + pingTimeout after this.
  const started = Date.now();
  const res = await fetch(`http://127.0.0.1:${port}${ENGINE_PATH}/?EIO=4&transport=polling`);
  const body = await res.text();
  assert.strictEqual(res.status, 200, `handshake status (${body})`);
  const open = JSON.parse(body.slice(1));
  assert.strictEqual(open.pingInterval, 100);
  const rec = await next();
  assert.strictEqual(rec.socket.id, open.sid);
  assert.strictEqual(await within(rec.closed, 3_000, "server close"), "ping timeout");
  assert.ok(Date.now() - started >= 150, `closed after ${Date.now() - started} ms`);
});

check('listen(0): a WebSocket client that never answers pings → "ping timeout"', async (t) => {
  const { engine, port } = await startListen(t, { pingInterval: 100, pingTimeout: 100 });
  const next = accept(engine);
  const started = Date.now();
  const ws = rawWebSocket(t, `ws://127.0.0.1:${port}${ENGINE_PATH}/?EIO=4&transport=websocket`);
  const frames = [];
  ws.on("message", (data) => frames.push(String(data)));
  const rec = await next();
  const wsClosed = once(ws, "close");
  assert.strictEqual(await within(rec.closed, 3_000, "server close"), "ping timeout");
  // The server closes the connection after its last frame.
  await wsClosed;
  assert.ok(frames[0] && frames[0].startsWith("0{"), `open packet first, got ${frames[0]}`);
  assert.ok(frames.includes("2"), `a ping was sent (${frames.join(" ")})`);
  assert.ok(Date.now() - started >= 150, `closed after ${Date.now() - started} ms`);
});

check("attach(http.createServer()): polling, websocket and upgrade echo", async (t) => {
  const { engine, port } = await startAttach(t, (req, res) => res.end("user"));
  await connectAndEcho(t, engine, port, { transports: ["polling"] }, "polling");
  await connectAndEcho(t, engine, port, { transports: ["websocket"] }, "websocket");
  await connectAndEcho(t, engine, port, {}, "websocket");
});

check("attach(http.createServer()): other requests reach the user's handler", async (t) => {
  const seen = [];
  const { port } = await startAttach(t, (req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`user ${req.method} ${req.url} ${body}`);
    });
  });
  const base = `http://127.0.0.1:${port}`;
  let res = await fetch(`${base}/hello?x=1`);
  assert.strictEqual(res.status, 200);
  assert.strictEqual(await res.text(), "user GET /hello?x=1 ");
  res = await fetch(`${base}/api`, { method: "POST", body: "data" });
  assert.strictEqual(await res.text(), "user POST /api data");
  // The engine's path is the engine's.
  res = await fetch(`${base}${ENGINE_PATH}/?EIO=4&transport=polling`);
  const body = await res.text();
  assert.strictEqual(res.status, 200);
  assert.ok(body.startsWith("0{"), `handshake answer ${body}`);
  res = await fetch(`${base}${ENGINE_PATH}/?EIO=4&transport=nope`);
  assert.strictEqual(res.status, 400);
  assert.deepStrictEqual(await res.json(), { code: 0, message: "Transport unknown" });
  assert.deepStrictEqual(seen, ["GET /hello?x=1", "POST /api"]);
});

check(
  "attach(http.createServer()): socket.remoteAddress once the handshake's connection closed",
  async (t) => {
    const { engine, port } = await startAttach(t, (req, res) => res.end("user"));
    const next = accept(engine);
    // A polling handshake on a connection of its own, closed after the answer.
    const body = await new Promise((resolve, reject) => {
      const req = http.get(
        { host: "127.0.0.1", port, path: `${ENGINE_PATH}/?EIO=4&transport=polling`, agent: false },
        (res) => {
          let data = "";
          res.setEncoding("utf8");
          res.on("data", (d) => (data += d));
          res.on("end", () => resolve(data));
        },
      );
      req.on("error", reject);
    });
    assert.ok(body.startsWith("0{"), `handshake answer ${body}`);
    const rec = await next();
    const conn = rec.socket.request.socket;
    if (!conn.destroyed) await once(conn, "close");
    // engine.io keeps the address its Socket read when the session opened
    // (Bun forgets a closed connection's remoteAddress).
    const address = rec.socket.remoteAddress;
    assert.ok(address === "127.0.0.1", `socket.remoteAddress is ${address}, not 127.0.0.1`);
  },
);

for (const transport of ["polling", "websocket"]) {
  check(`allowEIO3: engine.io-client v3 over ${transport}, echo`, async (t) => {
    const EioV3 = require("engine.io-client-v3");
    const { engine, port } = await startListen(t, { allowEIO3: true });
    const next = accept(engine);
    const client = new EioV3(`ws://127.0.0.1:${port}`, {
      path: `${ENGINE_PATH}/`,
      transports: [transport],
    });
    client.on("error", () => {});
    t.defer(() => client.close(), "v3 client close");
    await once(client, "open");
    const rec = await next();
    assert.strictEqual(rec.socket.protocol, 3, "socket.protocol");
    assert.strictEqual(rec.socket.transport.name, transport);
    const echoes = collect(client, "message", 2);
    client.send(TEXT);
    client.send(Buffer.from(BYTES));
    const [text, buf] = await echoes;
    assert.strictEqual(text, TEXT);
    assertBytes(buf, "Buffer echo");
    assert.ok(Buffer.isBuffer(rec.received[1]), "server received a Buffer");
  });
}

/** A Socket.IO server bound to a listen() engine, and a way to connect clients. */
async function socketIo(t) {
  const { Server } = require("socket.io");
  const { io: ioc } = require("socket.io-client");
  const { engine, port } = await startListen(t, { path: "/socket.io/" });
  const io = new Server();
  io.bind(engine);
  t.defer(() => io.close(), "io.close()");
  const connect = async (opts = {}) => {
    const socket = ioc(`http://127.0.0.1:${port}`, {
      forceNew: true,
      reconnection: false,
      ...opts,
    });
    t.defer(() => socket.disconnect(), "socket.io client disconnect");
    await within(
      new Promise((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("connect_error", reject);
      }),
      3_000,
      "socket.io connect",
    );
    return socket;
  };
  return { io, engine, connect };
}

check("Socket.IO on listen() (io.bind): emit with ack round-trips", async (t) => {
  const { io, engine, connect } = await socketIo(t);
  io.on("connection", (socket) => {
    socket.on("echo", (...args) => args.pop()(...args));
  });
  const client = await connect();
  assert.ok(engine.clientsCount === 1, "one engine session");
  const bin = Buffer.from(BYTES);
  const reply = await client.timeout(3_000).emitWithAck("echo", TEXT, 42, { k: [1, 2] }, bin);
  assert.strictEqual(reply, TEXT);
  // All arguments: an ack with several values.
  const all = await within(
    new Promise((resolve) =>
      client.emit("echo", TEXT, 42, { k: [1, 2] }, bin, (...a) => resolve(a)),
    ),
    3_000,
    "ack",
  );
  assert.deepStrictEqual(all.slice(0, 3), [TEXT, 42, { k: [1, 2] }]);
  assertBytes(all[3], "binary ack argument");
});

check("Socket.IO on listen() (io.bind): a room broadcast reaches its members only", async (t) => {
  const { io, connect } = await socketIo(t);
  io.on("connection", (socket) => {
    socket.on("join", (room, ack) => {
      socket.join(room);
      ack();
    });
  });
  // Polling then upgrade, WebSocket only, polling only.
  const clients = [
    await connect(),
    await connect({ transports: ["websocket"] }),
    await connect({ transports: ["polling"] }),
  ];
  const logs = clients.map((client) => {
    const log = [];
    client.onAny((event, ...args) => log.push([event, ...args]));
    return log;
  });
  await clients[0].timeout(3_000).emitWithAck("join", "room");
  await clients[1].timeout(3_000).emitWithAck("join", "room");
  await clients[2].timeout(3_000).emitWithAck("join", "elsewhere");
  const after = Promise.all(clients.map((client) => once(client, "after")));
  io.to("room").emit("news", "extra", { n: 1 });
  // Sent after the broadcast, on the same sessions: whoever gets "after"
  // has already had "news" if it was to have it.
  io.emit("after");
  await after;
  assert.deepStrictEqual(logs[0], [["news", "extra", { n: 1 }], ["after"]], "member 1");
  assert.deepStrictEqual(logs[1], [["news", "extra", { n: 1 }], ["after"]], "member 2");
  assert.deepStrictEqual(logs[2], [["after"]], "non-member");
});

check(
  "process exits by itself after engine.close() and httpServer.close()",
  async () => {
    const child = spawn(process.execPath, [__filename, "--exit-child"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: process.env,
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const started = Date.now();
    let code;
    try {
      code = await within(
        new Promise((resolve, reject) => {
          child.on("error", reject);
          child.on("exit", (c, signal) => resolve(c === null ? signal : c));
        }),
        EXIT_MS,
        `exit of ${path.basename(process.execPath)} child`,
      );
    } catch (err) {
      child.kill("SIGKILL");
      err.message += `; its output: ${JSON.stringify(out.trim())}`;
      throw err;
    }
    assert.strictEqual(code, 0, `exit code; output: ${out.trim()}`);
    assert.ok(out.includes("closed"), `child output: ${out.trim()}`);
    return `${Date.now() - started} ms`;
  },
  { ms: EXIT_MS + 2_000 },
);

/** The child of the exit check: listen, connect, close everything, print "closed". */
function exitChild() {
  const { Socket } = require("engine.io-client");
  const engine = eio.listen(0, () => {
    const { port } = engine.httpServer.address();
    const url = `ws://127.0.0.1:${port}`;
    const a = new Socket(url, { transports: ["websocket"] });
    const b = new Socket(url, { transports: ["polling"] });
    const c = new Socket(url);
    let open = 0;
    const onOpen = () => {
      if (++open < 3) return;
      engine.close();
      engine.httpServer.close(() => console.log("closed"));
    };
    for (const s of [a, b, c]) {
      s.on("open", onOpen);
      s.on("error", (err) => console.log("client error", err && err.message));
    }
  });
  engine.httpServer.on("error", (err) => {
    console.log("listen error", err.message);
    process.exitCode = 1;
  });
}

// ---------------------------------------------------------------------------
// The run

/** This runtime's name: node, bun or deno. */
const RUNTIME = runtimeName().split(" ")[0];

/** Runs one check; resolves with whether it passed. */
async function runCheck({ name, fn, ms }) {
  const cleanups = [];
  const t = { defer: (f, what) => cleanups.push({ f, what }) };
  const errors = [];
  let note;
  try {
    note = await within(
      Promise.resolve().then(() => fn(t)),
      ms,
      "the check",
    );
  } catch (err) {
    errors.push(err);
  }
  for (const { f, what } of cleanups.reverse()) {
    try {
      await within(Promise.resolve().then(f), 3_000, what);
    } catch (err) {
      errors.push(new Error(`clean-up: ${err.message}`));
    }
  }
  if (errors.length === 0) {
    console.log(`ok - ${name}${typeof note === "string" ? ` (${note})` : ""}`);
    return true;
  }
  const message = errors
    .map((e) => (e && e.message ? e.message : String(e)).replace(/\s*\n\s*/g, " "))
    .join("; ");
  console.log(`not ok - ${name}: ${message}`);
  return false;
}

let eio;
let EioClient;
let finished = false;
/** The check in progress, for the hard timeout's message. */
let current = null;

function finish(passed, failed) {
  finished = true;
  const code = failed > 0 ? 1 : 0;
  process.stdout.write(`${passed} passed, ${failed} failed\n`, () => process.exit(code));
  // If the write never calls back, exit anyway.
  setTimeout(() => process.exit(code), 1_000).unref();
}

async function main() {
  let passed = 0;
  let failed = 0;
  const hard = setTimeout(() => {
    console.log(
      `not ok - the whole run: still going after ${HARD_TIMEOUT_MS} ms` +
        (current ? ` (in "${current}")` : ""),
    );
    finish(passed, failed + 1);
  }, HARD_TIMEOUT_MS);
  process.on("exit", (code) => {
    if (!finished) {
      console.log(`not ok - the whole run: the process exited (${code}) before the end`);
      console.log(`${passed} passed, ${failed + 1} failed`);
      process.exitCode = 1;
    }
  });
  process.on("unhandledRejection", (err) => {
    console.log(`# unhandled rejection: ${err && err.stack ? err.stack : err}`);
  });

  console.log(`# ${runtimeName()} (process.version ${process.version}), eio-rs from ${PACKAGE}`);
  try {
    eio = require(PACKAGE);
    ({ Socket: EioClient } = require("engine.io-client"));
    console.log(`ok - require(eio-rs) under ${RUNTIME}`);
    passed++;
  } catch (err) {
    console.log(`not ok - require(eio-rs): ${String(err && err.message).replace(/\n/g, " ")}`);
    clearTimeout(hard);
    return finish(passed, failed + 1);
  }

  const filter = process.env.SMOKE_FILTER;
  for (const c of checks) {
    if (filter && !c.name.includes(filter)) continue;
    current = c.name;
    if (await runCheck(c)) passed++;
    else failed++;
    // Let closed sockets' last events drain between checks.
    await sleep(10);
  }
  clearTimeout(hard);
  finish(passed, failed);
}

if (process.argv.includes("--exit-child")) {
  eio = require(PACKAGE);
  exitChild();
} else {
  main();
}
