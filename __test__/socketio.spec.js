"use strict";

// Socket.IO on top of eio-rs, the two ways users put it there: `io.bind()`
// to an engine they made, and `new Server(httpServer)` with the module
// `engine.io` resolved to eio-rs (what an npm alias does).

const { test } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const path = require("node:path");
const Module = require("node:module");
const { io: ioc } = require("socket.io-client");
const eio = require("..");
const { once } = require("./helpers");

/**
 * Socket.IO's own Server class, loaded with `require("engine.io")` answered
 * by eio-rs, as `"engine.io": "npm:eio-rs"` in a package.json would do.
 */
function aliasedSocketIo() {
  const sioDir = path.dirname(require.resolve("socket.io/package.json"));
  const eioPath = require.resolve("engine.io", { paths: [sioDir] });
  const saved = new Map();
  for (const key of Object.keys(require.cache)) {
    if (key.startsWith(sioDir + path.sep) || key === eioPath) {
      saved.set(key, require.cache[key]);
      delete require.cache[key];
    }
  }
  const alias = new Module(eioPath);
  alias.filename = eioPath;
  alias.loaded = true;
  alias.exports = eio;
  require.cache[eioPath] = alias;
  try {
    return require("socket.io").Server;
  } finally {
    // Later plain `require("socket.io")` calls get the real engine.io again.
    for (const key of Object.keys(require.cache)) {
      if (key.startsWith(sioDir + path.sep) || key === eioPath) delete require.cache[key];
    }
    for (const [key, mod] of saved) require.cache[key] = mod;
  }
}

function listen(server) {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(server.address().port)),
  );
}

/** Connects a Socket.IO client and resolves once it is connected. */
async function connect(url, opts = {}) {
  const socket = ioc(url, { forceNew: true, reconnection: false, ...opts });
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  return socket;
}

/** Emits `event` with `args` and resolves with every argument of the ack. */
function ack(client, event, ...args) {
  return new Promise((resolve, reject) =>
    client
      .timeout(5000)
      .emit(event, ...args, (err, ...reply) => (err ? reject(err) : resolve(reply))),
  );
}

/** The three set-ups every behaviour below is checked with. */
const setups = {
  "io.bind() to listen()": async () => {
    const { Server } = require("socket.io");
    const engine = eio.listen(0, { path: "/socket.io/" });
    await once(engine.httpServer, "listening");
    const io = new Server();
    io.bind(engine);
    const url = `http://127.0.0.1:${engine.httpServer.address().port}`;
    const close = () =>
      new Promise((resolve) => {
        io.close();
        engine.close();
        engine.httpServer.close(() => resolve());
      });
    return { io, url, close };
  },
  "io.bind() to attach()": async () => {
    const { Server } = require("socket.io");
    const httpServer = http.createServer();
    const engine = eio.attach(httpServer, { path: "/socket.io/" });
    const io = new Server();
    io.bind(engine);
    const url = `http://127.0.0.1:${await listen(httpServer)}`;
    // A bound Socket.IO server does not own the HTTP server.
    const close = () =>
      new Promise((resolve) => {
        io.close();
        httpServer.close(() => resolve());
      });
    return { io, url, close };
  },
  "new Server(httpServer) with engine.io aliased": async () => {
    const Server = aliasedSocketIo();
    const httpServer = http.createServer();
    const io = new Server(httpServer);
    assert.ok(io.engine instanceof eio.Server, "Socket.IO runs on eio-rs");
    const url = `http://127.0.0.1:${await listen(httpServer)}`;
    return { io, url, close: () => new Promise((resolve) => io.close(() => resolve())) };
  },
};

for (const [name, setup] of Object.entries(setups)) {
  test(`Socket.IO, ${name}: handshake, acks with binary, rooms, both disconnect sides`, async () => {
    const { io, url, close } = await setup();
    const clients = [];
    try {
      const seen = [];
      io.on("connection", (socket) => {
        seen.push(socket);
        socket.on("echo", (...args) => args.pop()(...args));
        socket.on("join", (room, ack) => {
          socket.join(room);
          ack();
        });
      });

      // Polling first, then the upgrade; and straight WebSocket.
      const a = await connect(url, { query: { token: "abc" } });
      const b = await connect(url, { transports: ["websocket"] });
      const c = await connect(url, { transports: ["polling"] });
      clients.push(a, b, c);
      assert.equal(seen.length, 3);
      assert.equal(io.engine.clientsCount, 3);

      const hs = seen[0].handshake;
      assert.equal(hs.query.token, "abc");
      assert.equal(hs.query.EIO, "4");
      // Read after the polling handshake's connection may have closed, and
      // after the WebSocket's was handed to the engine.
      for (const s of seen) assert.match(s.handshake.address, /127\.0\.0\.1/);
      assert.equal(hs.headers.host, url.slice("http://".length));
      assert.equal(seen[0].conn.protocol, 4);

      // The client reports its upgrade when it sends the upgrade packet, the
      // server when that packet arrives.
      if (seen[0].conn.transport.name !== "websocket") await once(seen[0].conn, "upgrade");
      assert.equal(seen[0].conn.transport.name, "websocket");
      assert.equal(a.io.engine.transport.name, "websocket");

      // An ack carrying text, a number, an object and two Buffers, on every transport.
      const bin = Buffer.from([0, 1, 2, 253, 254, 255]);
      for (const client of [a, b, c]) {
        const reply = await ack(client, "echo", "héllo", 42, { k: [1, 2] }, bin, {
          nested: Buffer.from("x"),
        });
        assert.deepEqual(reply, ["héllo", 42, { k: [1, 2] }, bin, { nested: Buffer.from("x") }]);
      }

      // A room broadcast goes out as one pre-encoded frame per WebSocket
      // (`wsPreEncodedFrame`) and encoded as usual over polling.
      for (const client of [a, b, c]) await ack(client, "join", "room");
      const news = Promise.all([a, b, c].map((s) => once(s, "news")));
      io.to("room").emit("news", "extra", { n: 1 });
      for (const args of await news) assert.deepEqual(args, ["extra", { n: 1 }]);
      const binNews = Promise.all([a, b, c].map((s) => once(s, "bin")));
      io.to("room").emit("bin", bin);
      for (const [got] of await binNews) assert.deepEqual(Buffer.from(got), bin);

      // The server ends one session, a client ends another, a transport drops the third.
      const serverSide = once(seen[0], "disconnect");
      const clientSide = once(a, "disconnect");
      seen[0].disconnect(true);
      assert.deepEqual((await clientSide)[0], "io server disconnect");
      assert.equal((await serverSide)[0], "server namespace disconnect");

      const byClient = once(seen[1], "disconnect");
      b.disconnect();
      assert.equal((await byClient)[0], "client namespace disconnect");

      const dropped = once(seen[2], "disconnect");
      c.io.engine.close();
      assert.equal((await dropped)[0], "transport close");

      for (let i = 0; io.engine.clientsCount > 0 && i < 100; i++)
        await once(io.engine, "close", 1000).catch(() => {});
      assert.equal(io.engine.clientsCount, 0);
    } finally {
      for (const s of clients) s.disconnect();
      await close();
    }
  });
}

test("Socket.IO on eio-rs: namespace middleware errors reach the client, other namespaces go on", async () => {
  const { io, url, close } = await setups["io.bind() to listen()"]();
  try {
    io.of("/admin").use((socket, next) =>
      next(socket.handshake.auth.token === "ok" ? undefined : new Error("not authorized")),
    );
    io.of("/admin").on("connection", (socket) => socket.emit("welcome", socket.nsp.name));

    const denied = ioc(`${url}/admin`, {
      forceNew: true,
      reconnection: false,
      auth: { token: "no" },
    });
    const [err] = await once(denied, "connect_error");
    assert.equal(err.message, "not authorized");
    denied.disconnect();

    const admitted = ioc(`${url}/admin`, {
      forceNew: true,
      reconnection: false,
      auth: { token: "ok" },
    });
    assert.deepEqual(await once(admitted, "welcome"), ["/admin"]);
    admitted.disconnect();
  } finally {
    await close();
  }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits (boundedly) until `socket`'s transport is writable. */
async function writable(socket) {
  for (let i = 0; !socket.conn.transport.writable && i < 200; i++) await sleep(5);
  assert.equal(socket.conn.transport.writable, true, socket.conn.transport.name);
}

test("Socket.IO on eio-rs: volatile packets are dropped while the transport is busy, as with engine.io", async () => {
  const { io, url, close } = await setups["io.bind() to listen()"]();
  const clients = [];
  try {
    for (const transports of [["websocket"], ["polling"]]) {
      const connected = once(io, "connection");
      const client = await connect(url, { transports });
      clients.push(client);
      const [socket] = await connected;
      const got = [];
      client.on("ev", (n) => got.push(n));
      await writable(socket);
      // Two in a row: the first makes the transport busy until the next
      // tick (WebSocket) or the next poll (polling), so the second is lost.
      socket.volatile.emit("ev", 1);
      socket.volatile.emit("ev", 2);
      // A regular packet is never dropped, and queues behind the busy transport.
      socket.emit("ev", 3);
      for (let i = 0; got.length < 2 && i < 200; i++) await sleep(5);
      assert.deepEqual(got, [1, 3], transports[0]);
      // Once the transport is free again (polling: the next poll came), a
      // volatile packet goes out.
      await writable(socket);
      socket.volatile.emit("ev", 4);
      assert.deepEqual(await once(client, "ev"), [4]);
    }
  } finally {
    for (const c of clients) c.disconnect();
    await close();
  }
});

test("Socket.IO on eio-rs: packetCreate carries the send options, synchronously", async () => {
  const { io, url, close } = await setups["io.bind() to listen()"]();
  const client = await connect(url, { transports: ["websocket"] });
  try {
    const [socket] = io.sockets.sockets.values();
    const created = [];
    socket.conn.on("packetCreate", (packet) => created.push(packet));
    socket.compress(false).emit("a", 1);
    // Announced before emit() returned, with the options Socket.IO passed.
    assert.equal(created.length, 1);
    assert.equal(created[0].type, "message");
    assert.equal(created[0].options.compress, false);
    assert.equal(created[0].data, '2["a",1]');
    io.emit("b");
    // A broadcast hands each WebSocket the frame it encoded once.
    assert.ok(Array.isArray(created[1].options.wsPreEncodedFrame));
    assert.equal(created[1].options.compress, true);
    await once(client, "b");
  } finally {
    client.disconnect();
    await close();
  }
});

test("Socket.IO on eio-rs: broadcasts written off the JS thread keep each client's order, and their send callbacks", async () => {
  for (const name of Object.keys(setups)) {
    const { io, url, close } = await setups[name]();
    const clients = [];
    try {
      for (let i = 0; i < 20; i++) clients.push(await connect(url, { transports: ["websocket"] }));
      const got = clients.map(() => []);
      clients.forEach((c, i) => c.onAny((ev, n) => got[i].push(`${ev}${n}`)));
      const sockets = [...io.sockets.sockets.values()];
      sockets.slice(0, 10).forEach((s) => s.join("half"));
      let drained = 0;
      for (const s of sockets) s.conn.on("drain", () => drained++);
      // Broadcasts (one pre-encoded frame for all) interleaved in one tick
      // with each socket's own packets and with a broadcast to a room:
      // every client must see them in the order they were sent.
      for (let n = 0; n < 5; n++) {
        io.emit("all", n);
        for (const s of sockets) s.emit("own", n);
        io.to("half").emit("half", n);
      }
      const want = (i) =>
        [0, 1, 2, 3, 4].flatMap((n) => [`all${n}`, `own${n}`, ...(i < 10 ? [`half${n}`] : [])]);
      for (let i = 0; i < 400 && got.some((g, k) => g.length < want(k).length); i++) await sleep(5);
      const index = new Map(sockets.map((s, i) => [s.id, i]));
      for (const c of clients) {
        const i = index.get(c.id);
        assert.deepEqual(got[clients.indexOf(c)], want(i), `${name}: client ${i}`);
      }
      // Every write reached its socket: each one drained at least once.
      assert.ok(drained >= sockets.length, `${name}: ${drained} drains`);
    } finally {
      for (const c of clients) c.disconnect();
      await close();
    }
  }
});
