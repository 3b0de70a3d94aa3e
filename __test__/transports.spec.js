"use strict";

// The real engine.io-client against the native listener, over each
// transport and across the upgrade.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { start, stop, once, client, collect } = require("./helpers");

function echo(engine) {
  engine.on("connection", (socket) => socket.on("message", (data) => socket.send(data)));
}

for (const transports of [["polling"], ["websocket"]]) {
  test(`${transports[0]}: text and binary both ways`, async () => {
    const { engine, port } = await start();
    echo(engine);
    const c = client(port, { transports });
    const [[socket]] = await Promise.all([once(engine, "connection"), once(c, "open")]);
    assert.equal(socket.transport.name, transports[0]);
    assert.equal(socket.protocol, 4);
    assert.equal(socket.readyState, "open");
    assert.equal(engine.clientsCount, 1);
    assert.equal(engine.clients[socket.id], socket);
    assert.equal(socket.request.method, "GET");
    assert.match(socket.request.url, /^\/engine\.io\/\?/);
    assert.equal(socket.request._query.EIO, "4");
    assert.match(socket.remoteAddress, /127\.0\.0\.1/);

    const replies = collect(c, "message", 3);
    c.send("héllo ✓");
    c.send(Buffer.from([0, 1, 2, 255]));
    c.send("");
    const [text, bin, empty] = await replies;
    assert.equal(text, "héllo ✓");
    assert.deepEqual(Buffer.from(bin), Buffer.from([0, 1, 2, 255]));
    // engine.io-parser reads a message packet with no data as undefined.
    assert.equal(empty, undefined);

    const serverGot = collect(socket, "message", 1);
    c.send(new Uint8Array([9, 8]).buffer);
    const [b] = await serverGot;
    assert.ok(Buffer.isBuffer(b));
    assert.deepEqual([...b], [9, 8]);

    c.close();
    const [reason] = await once(socket, "close");
    assert.equal(reason, "transport close");
    assert.equal(engine.clientsCount, 0);
    assert.equal(socket.readyState, "closed");
    await stop(engine);
  });
}

test("upgrade: polling to websocket, with a burst sent during the upgrade", async () => {
  const { engine, port } = await start();
  const N = 200;
  let upgraded;
  engine.on("connection", (socket) => {
    upgraded = once(socket, "upgrade");
    socket.on("upgrading", () => {
      for (let i = 0; i < N; i++) socket.send(`s${i}`);
    });
  });
  const c = client(port);
  const got = collect(c, "message", N, 10000);
  await once(c, "open");
  assert.equal(c.transport.name, "polling");
  // Messages from the client while it upgrades: none lost or reordered.
  const socket = Object.values(engine.clients)[0];
  const serverGot = collect(socket, "message", N, 10000);
  for (let i = 0; i < N; i++) c.send(`c${i}`);
  const [transport] = await upgraded;
  assert.equal(transport.name, "websocket");
  assert.equal(socket.upgraded, true);
  assert.equal(socket.transport.name, "websocket");
  assert.deepEqual(
    await got,
    Array.from({ length: N }, (_, i) => `s${i}`),
  );
  assert.deepEqual(
    await serverGot,
    Array.from({ length: N }, (_, i) => `c${i}`),
  );
  assert.equal(c.transport.name, "websocket");
  c.close();
  await once(socket, "close");
  await stop(engine);
});

test("send callbacks run once the packet reached the transport", async () => {
  const { engine, port } = await start();
  const c = client(port, { transports: ["websocket"] });
  const [[socket]] = await Promise.all([once(engine, "connection"), once(c, "open")]);
  const order = [];
  await new Promise((resolve) => {
    socket.send("a", () => order.push("a"));
    socket.send("b", {}, () => order.push("b"));
    socket.send("c", { compress: false }, (transport) => {
      order.push("c");
      assert.equal(transport.name, "websocket");
      resolve();
    });
  });
  assert.deepEqual(order, ["a", "b", "c"]);
  c.close();
  await stop(engine);
});

test("server.close() closes every session with 'forced close'", async () => {
  const { engine, port } = await start();
  const a = client(port, { transports: ["polling"] });
  const b = client(port, { transports: ["websocket"] });
  const [sockets] = await Promise.all([
    collect(engine, "connection", 2),
    once(a, "open"),
    once(b, "open"),
  ]);
  const closes = sockets.map((s) => once(s, "close"));
  const clientCloses = [once(a, "close"), once(b, "close")];
  engine.close();
  for (const [reason] of await Promise.all(closes)) assert.equal(reason, "forced close");
  await Promise.all(clientCloses);
  assert.equal(engine.clientsCount, 0);
  await stop(engine);
});

test("socket.close() from the server flushes what was sent first", async () => {
  for (const transports of [["polling"], ["websocket"]]) {
    const { engine, port } = await start();
    engine.on("connection", (socket) => {
      socket.send("bye");
      socket.close();
      assert.equal(socket.readyState, "closing");
    });
    const c = client(port, { transports });
    const [[msg]] = await Promise.all([once(c, "message"), once(c, "close")]);
    assert.equal(msg, "bye");
    await stop(engine);
  }
});

test("an upgrade that does not complete in upgradeTimeout is abandoned, the session goes on", async () => {
  const { engine, port } = await start({ upgradeTimeout: 100 });
  const c = client(port);
  c.on("upgrading", (transport) => {
    // Never send the upgrade packet.
    transport.send = () => {};
  });
  const upgrading = new Promise((resolve) =>
    engine.once("connection", (socket) => socket.once("upgrading", (t) => resolve([socket, t]))),
  );
  const [socket, candidate] = await upgrading;
  assert.equal(candidate.name, "websocket");
  await once(candidate, "close", 3000);
  assert.equal(socket.upgrading, false);
  assert.equal(socket.upgraded, false);
  assert.equal(socket.transport.name, "polling");
  assert.equal(socket.readyState, "open");
  // The client believes it upgraded (it was told nothing), so the server ends it.
  const closed = once(socket, "close");
  await stop(engine);
  assert.equal((await closed)[0], "forced close");
  c.close();
});

test("closing a socket during its upgrade closes the candidate transport too", async () => {
  const { engine, port } = await start();
  const upgrading = new Promise((resolve) =>
    engine.once("connection", (socket) => socket.once("upgrading", (t) => resolve([socket, t]))),
  );
  const c = client(port);
  const [socket, candidate] = await upgrading;
  const closed = once(candidate, "close");
  socket.close();
  await closed;
  c.close();
  await stop(engine);
});
