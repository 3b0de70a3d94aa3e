"use strict";

// Per-packet events, the order of `connection` and the client's `open`, and
// polling compression.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const zlib = require("node:zlib");
const { start, stop, once, client, handshake } = require("./helpers");

test("the connection handlers run before the client sees open", async () => {
  for (const transports of [["polling"], ["websocket"]]) {
    const { engine, port } = await start();
    let handled = false;
    engine.on("connection", (socket) => {
      handled = true;
      socket.send("first");
    });
    const c = client(port, { transports });
    const message = once(c, "message");
    await once(c, "open");
    assert.equal(handled, true, transports[0]);
    assert.equal((await message)[0], "first");
    c.close();
    await stop(engine);
  }
});

test("flush, drain, packet, packetCreate and heartbeat events", async () => {
  const { engine, port } = await start({ pingInterval: 50, pingTimeout: 1000 });
  const c = client(port, { transports: ["websocket"] });
  const [socket] = await once(engine, "connection");
  // Pings flush too (pingInterval is short here): wait for the flush of our message.
  const isOurs = (buf) => buf.some((p) => p.type === "message" && p.data === "aaaa");
  const flushed = new Promise((resolve) => {
    const on = (buf) => {
      assert.ok(Array.isArray(buf));
      if (isOurs(buf)) {
        socket.off("flush", on);
        resolve();
      }
    };
    socket.on("flush", on);
  });
  const serverFlush = new Promise((resolve) => {
    const on = (sock, buf) => {
      assert.equal(sock, socket);
      if (isOurs(buf)) {
        engine.off("flush", on);
        resolve();
      }
    };
    engine.on("flush", on);
  });
  const drained = once(socket, "drain");
  const created = once(socket, "packetCreate");
  socket.send("aaaa");
  const [packet] = await created;
  // Announced synchronously by send(), with engine.io's options.
  assert.deepEqual(packet, { type: "message", options: { compress: true }, data: "aaaa" });
  await within(flushed, "socket flush");
  await within(serverFlush, "server flush");
  await drained;
  const incoming = once(socket, "packet");
  c.send("bbb");
  assert.deepEqual((await incoming)[0], { type: "message", data: "bbb" });
  await once(socket, "heartbeat");
  c.close();
  await stop(engine);
});

/** Rejects if `promise` takes longer than `ms`, so a missing event fails instead of hanging. */
function within(promise, what, ms = 5000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function get(port, path, headers) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, headers }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ res, body: Buffer.concat(chunks) }));
      })
      .on("error", reject);
  });
}

test("polling responses are compressed above the threshold, as the client prefers", async () => {
  const { engine, port, url } = await start({ transports: ["polling"] });
  const big = "x".repeat(2000);
  engine.on("connection", (socket) => {
    socket.send(big);
    socket.send("small", { compress: false });
  });
  const { open } = await handshake(url);
  const path = `/engine.io/?EIO=4&transport=polling&sid=${open.sid}`;
  const gz = await get(port, path, { "Accept-Encoding": "gzip, deflate" });
  assert.equal(gz.res.headers["content-encoding"], "gzip");
  assert.equal(zlib.gunzipSync(gz.body).toString(), `4${big}\x1e4small`);

  const sock = engine.clients[open.sid];
  sock.send(big);
  const df = await get(port, path, { "Accept-Encoding": "deflate" });
  assert.equal(df.res.headers["content-encoding"], "deflate");
  assert.equal(zlib.inflateSync(df.body).toString(), `4${big}`);

  sock.send(big, { compress: false });
  const off = await get(port, path, { "Accept-Encoding": "gzip" });
  assert.equal(off.res.headers["content-encoding"], undefined);

  sock.send("short");
  const below = await get(port, path, { "Accept-Encoding": "gzip" });
  assert.equal(below.res.headers["content-encoding"], undefined);
  assert.equal(below.body.toString(), "4short");
  await stop(engine);

  const { engine: e2, url: url2, port: port2 } = await start({ httpCompression: false });
  e2.on("connection", (socket) => socket.send(big));
  const h2 = await handshake(url2);
  const none = await get(port2, `/engine.io/?EIO=4&transport=polling&sid=${h2.open.sid}`, {
    "Accept-Encoding": "gzip",
  });
  assert.equal(none.res.headers["content-encoding"], undefined);
  await stop(e2);
});
