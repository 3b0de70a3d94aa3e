"use strict";

// Engine.IO protocol v3 (`allowEIO3`) with the real engine.io-client 3.x:
// XHR polling (binary and base64 payloads), JSONP polling, WebSocket, the
// upgrade, and the client-initiated heartbeat.

// As the upstream suite does for v3: hide Node's own WebSocket (a global
// from Node 22) so that engine.io-client 3.x uses the `ws` package.
global.WebSocket = null;

const { test } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const { Socket } = require("engine.io-client-v3");
const { attach } = require("..");
const { start, stop, once, collect } = require("./helpers");

function echo(engine) {
  engine.on("connection", (socket) => socket.on("message", (data) => socket.send(data)));
}

function v3client(port, opts = {}) {
  return new Socket(`ws://127.0.0.1:${port}`, opts);
}

/** Both ends of a new v3 session. */
async function connect(engine, port, opts) {
  const c = v3client(port, opts);
  const [[socket]] = await Promise.all([once(engine, "connection"), once(c, "open")]);
  return { c, socket };
}

/** Text and binary from the client, echoed back; binary from the server. */
async function exchange(c, socket) {
  const replies = collect(c, "message", 3);
  c.send("héllo ✓ 😀");
  c.send(Buffer.from([0, 1, 2, 255]));
  c.send("line\nbreak \\n");
  const [text, bin, lines] = await replies;
  assert.equal(text, "héllo ✓ 😀");
  assert.deepEqual([...Buffer.from(bin)], [0, 1, 2, 255]);
  assert.equal(lines, "line\nbreak \\n");

  const serverGot = collect(socket, "message", 2);
  c.send(new Uint8Array([9, 8]).buffer);
  c.send("x");
  const [b, x] = await serverGot;
  assert.ok(Buffer.isBuffer(b));
  assert.deepEqual([...b], [9, 8]);
  assert.equal(x, "x");
}

/** Closes the client and checks the server saw `transport close`. */
async function closeClient(c, socket, engine) {
  const closed = once(socket, "close");
  c.close();
  const [reason] = await closed;
  assert.equal(reason, "transport close");
  assert.equal(engine.clientsCount, 0);
}

test("v3 polling: text and binary both ways", async () => {
  const { engine, port } = await start({ allowEIO3: true });
  echo(engine);
  const { c, socket } = await connect(engine, port, { transports: ["polling"] });
  assert.equal(socket.protocol, 3);
  assert.equal(socket.transport.name, "polling");
  assert.equal(socket.request._query.EIO, "3");
  // engine.io-client 3.x has no XHR2 in Node, so it asks for base64 (binary
  // payloads are tested with plain HTTP below).
  assert.equal(socket.request._query.b64, "1");
  assert.equal(c.transport.name, "polling");
  await exchange(c, socket);
  await closeClient(c, socket, engine);
  await stop(engine);
});

test("v3 polling: binary payloads both ways", async () => {
  const { engine, url } = await start({ allowEIO3: true });
  const base = `${url}/engine.io/?EIO=3&transport=polling`;
  const connection = once(engine, "connection");
  const handshake = await (await fetch(base)).text();
  const [socket] = await connection;
  assert.match(handshake, new RegExp(`^\\d+:0\\{"sid":"${socket.id}"`));
  const sid = `${base}&sid=${encodeURIComponent(socket.id)}`;

  // Text and binary parts: flag, length digits, 255, then the packet.
  const messages = collect(socket, "message", 2);
  const post = await fetch(sid, {
    method: "POST",
    headers: { "content-type": "application/octet-stream" },
    body: Buffer.from([0, 3, 255, 0x34, 0x68, 0x69, 1, 3, 255, 4, 0, 255]),
  });
  assert.equal(post.status, 200);
  assert.equal(await post.text(), "ok");
  const [hi, bin] = await messages;
  assert.equal(hi, "hi");
  assert.ok(Buffer.isBuffer(bin));
  assert.deepEqual([...bin], [0, 255]);

  // With binary data to send, the poll answers with a binary payload.
  socket.send("é");
  socket.send(Buffer.from([7, 8]));
  const poll = await fetch(sid);
  assert.equal(poll.headers.get("content-type"), "application/octet-stream");
  assert.deepEqual(
    [...Buffer.from(await poll.arrayBuffer())],
    [0, 3, 255, 0x34, 0xc3, 0xa9, 1, 3, 255, 4, 7, 8],
  );

  // A close packet ends the payload and the session.
  const closed = once(socket, "close");
  const got = [];
  socket.on("message", (m) => got.push(m));
  await fetch(sid, {
    method: "POST",
    headers: { "content-type": "application/octet-stream" },
    body: Buffer.from([0, 1, 255, 0x31, 0, 2, 255, 0x34, 0x61]),
  });
  assert.equal((await closed)[0], "transport close");
  assert.deepEqual(got, []);
  await stop(engine);
});

test("v3 websocket: text and binary both ways", async () => {
  const { engine, port } = await start({ allowEIO3: true });
  echo(engine);
  const { c, socket } = await connect(engine, port, { transports: ["websocket"] });
  assert.equal(socket.protocol, 3);
  assert.equal(socket.transport.name, "websocket");
  await exchange(c, socket);
  await closeClient(c, socket, engine);
  await stop(engine);
});

test("v3 upgrade: polling to websocket", async () => {
  const { engine, port } = await start({ allowEIO3: true });
  echo(engine);
  let upgraded;
  engine.on("connection", (socket) => {
    upgraded = once(socket, "upgrade");
  });
  const c = v3client(port);
  const clientUpgraded = once(c, "upgrade");
  await once(c, "open");
  assert.equal(c.transport.name, "polling");
  const socket = Object.values(engine.clients)[0];
  assert.equal(socket.protocol, 3);
  const [transport] = await upgraded;
  assert.equal(transport.name, "websocket");
  await clientUpgraded;
  assert.equal(c.transport.name, "websocket");
  assert.equal(socket.upgraded, true);
  await exchange(c, socket);
  await closeClient(c, socket, engine);
  await stop(engine);
});

/**
 * Just enough of a browser DOM for engine.io-client 3.x's JSONP transport
 * in Node: a `<script>` added to the page is fetched and run, and a submitted
 * `<form>` is POSTed form-encoded, after which its `<iframe>` loads.
 */
function installFakeDocument() {
  class Element {
    constructor(tag) {
      this.tagName = tag;
      this.children = [];
      this.parentNode = null;
      this.style = {};
    }
    setAttribute(name, value) {
      this[name] = value;
    }
    appendChild(child) {
      child.parentNode = this;
      this.children.push(child);
      if (child.tagName === "script") child.load();
      return child;
    }
    insertBefore(child) {
      return this.appendChild(child);
    }
    removeChild(child) {
      this.children = this.children.filter((c) => c !== child);
      child.parentNode = null;
      return child;
    }
  }

  class Script extends Element {
    load() {
      fetch(this.src)
        .then(async (res) => {
          const body = await res.text();
          if (!res.ok) throw new Error(`script answered ${res.status}: ${body}`);
          // The body calls `___eio[j](...)`, a global of the client.
          new Function(body)();
        })
        .catch((err) => this.onerror && this.onerror(err));
    }
  }

  class Form extends Element {
    submit() {
      const area = this.children.find((c) => c.tagName === "textarea");
      const iframe = this.children.find((c) => c.tagName === "iframe");
      fetch(this.action, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ [area.name]: area.value }).toString(),
      })
        .then((res) => res.text())
        .then(() => iframe.onload && iframe.onload())
        .catch(() => {});
    }
  }

  global.document = {
    head: new Element("head"),
    body: new Element("body"),
    createElement(tag) {
      // The client first tries IE's `createElement("<iframe ...>")`.
      if (tag.startsWith("<")) throw new Error("not IE");
      if (tag === "script") return new Script(tag);
      if (tag === "form") return new Form(tag);
      return new Element(tag);
    },
    getElementsByTagName() {
      return [];
    },
  };
  return () => {
    delete global.document;
  };
}

test("v3 JSONP polling: text and binary both ways", async () => {
  const uninstall = installFakeDocument();
  try {
    const { engine, port } = await start({ allowEIO3: true });
    echo(engine);
    const { c, socket } = await connect(engine, port, {
      transports: ["polling"],
      forceJSONP: true,
    });
    assert.equal(c.transport.constructor.name, "JSONPPolling");
    assert.equal(socket.protocol, 3);
    assert.equal(socket.transport.name, "polling");
    assert.equal(typeof socket.request._query.j, "string");
    // JSONP clients ask for base64.
    assert.equal(socket.request._query.b64, "1");
    await exchange(c, socket);
    await closeClient(c, socket, engine);
    await stop(engine);
  } finally {
    uninstall();
  }
});

test("v3 JSONP polling: upgrade to websocket", async () => {
  const uninstall = installFakeDocument();
  try {
    const { engine, port } = await start({ allowEIO3: true });
    echo(engine);
    let upgraded;
    engine.on("connection", (socket) => {
      upgraded = once(socket, "upgrade");
    });
    const c = v3client(port, { forceJSONP: true });
    const clientUpgraded = once(c, "upgrade");
    await once(c, "open");
    assert.equal(c.transport.constructor.name, "JSONPPolling");
    const socket = Object.values(engine.clients)[0];
    await upgraded;
    await clientUpgraded;
    assert.equal(socket.transport.name, "websocket");
    await exchange(c, socket);
    await closeClient(c, socket, engine);
    await stop(engine);
  } finally {
    uninstall();
  }
});

test("v3 over attach(): JSONP polling through the Node bridge", async () => {
  const uninstall = installFakeDocument();
  const server = http.createServer();
  const engine = attach(server, { allowEIO3: true });
  try {
    echo(engine);
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address();
    const { c, socket } = await connect(engine, port, {
      transports: ["polling"],
      forceJSONP: true,
    });
    assert.equal(c.transport.constructor.name, "JSONPPolling");
    assert.equal(socket.protocol, 3);
    await exchange(c, socket);
    await closeClient(c, socket, engine);
  } finally {
    engine.close();
    await new Promise((resolve) => server.close(resolve));
    uninstall();
  }
});

test("v3 JSONP polling: the script, the form and engine.io's answers", async () => {
  const { engine, port, url } = await start({ allowEIO3: true });
  const base = `${url}/engine.io/?EIO=3&transport=polling`;
  const connection = once(engine, "connection");
  const res = await fetch(`${base}&j=2&b64=1`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain; charset=UTF-8");
  assert.equal(res.headers.get("cache-control"), "no-store");
  const script = await res.text();
  const m = /^___eio\[2\]\((".*")\);$/.exec(script);
  assert.ok(m, script);
  const payload = JSON.parse(m[1]);
  const open = JSON.parse(payload.slice(payload.indexOf(":") + 2));
  const [socket] = await connection;
  assert.equal(open.sid, socket.id);

  const sid = `&sid=${encodeURIComponent(open.sid)}&j=2`;
  const form = { "content-type": "application/x-www-form-urlencoded" };
  const messages = collect(socket, "message", 2);
  let post = await fetch(base + sid, {
    method: "POST",
    headers: form,
    body: new URLSearchParams({ d: "3:4hi10:b4AQIDBA==" }).toString(),
  });
  assert.equal(post.status, 200);
  assert.equal(post.headers.get("content-type"), "text/html");
  assert.equal(await post.text(), "ok");
  const [hi, bin] = await messages;
  assert.equal(hi, "hi");
  assert.deepEqual([...bin], [1, 2, 3, 4]);

  // A body without `d` is ignored and still answered `ok`.
  post = await fetch(base + sid, { method: "POST", headers: form, body: "x=1" });
  assert.equal(await post.text(), "ok");
  assert.equal(socket.readyState, "open");

  // Binary goes out as base64 inside the script.
  socket.send(Buffer.from([1, 2, 3]));
  socket.send("\u2028");
  const poll = await fetch(base + sid);
  assert.equal(await poll.text(), '___eio[2]("6:b4AQID2:4\\u2028");');

  // A close packet closes the session.
  const closed = once(socket, "close");
  post = await fetch(base + sid, { method: "POST", headers: form, body: "d=1%3A1" });
  assert.equal(await post.text(), "ok");
  assert.deepEqual((await closed)[0], "transport close");
  await stop(engine);
});

for (const transports of [["polling"], ["websocket"]]) {
  test(`v3 heartbeat over ${transports[0]}: the client pings, the server answers`, async () => {
    const { engine, port } = await start({
      allowEIO3: true,
      pingInterval: 50,
      pingTimeout: 5000,
    });
    const { c, socket } = await connect(engine, port, { transports });
    const heartbeats = collect(socket, "heartbeat", 2);
    const pongs = collect(c, "pong", 2);
    await Promise.all([heartbeats, pongs]);
    assert.equal(socket.readyState, "open");
    await closeClient(c, socket, engine);
    await stop(engine);
  });

  test(`v3 ping timeout over ${transports[0]}: a client that stops pinging is closed`, async () => {
    const { engine, port } = await start({
      allowEIO3: true,
      pingInterval: 50,
      pingTimeout: 50,
    });
    const c = v3client(port, { transports });
    // Neither ping nor time the server out on the client's side.
    c.ping = () => {};
    c.onHeartbeat = () => {};
    const [[socket]] = await Promise.all([once(engine, "connection"), once(c, "open")]);
    const clientClosed = once(c, "close");
    const [reason] = await once(socket, "close");
    assert.equal(reason, "ping timeout");
    assert.equal(engine.clientsCount, 0);
    await clientClosed;
    await stop(engine);
  });
}

test("without allowEIO3, a v3 handshake gets 400 code 5", async () => {
  const { engine, port, url } = await start();
  const errors = collect(engine, "connection_error", 2);
  const res = await fetch(`${url}/engine.io/?EIO=3&transport=polling`);
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { code: 5, message: "Unsupported protocol version" });

  const c = v3client(port, { transports: ["polling"] });
  const [err] = await once(c, "error");
  assert.ok(err instanceof Error);
  const [first, second] = await errors;
  for (const e of [first, second]) {
    assert.equal(e.code, 5);
    assert.equal(e.message, "Unsupported protocol version");
    assert.deepEqual(e.context, { protocol: 3 });
  }
  assert.equal(engine.clientsCount, 0);
  c.close();
  await stop(engine);
});
