"use strict";

// The WebSocket layer as a client sees it: control frames, fragments, and
// permessage-deflate negotiated and used as `ws` (engine.io's server) does.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const zlib = require("node:zlib");
const { WebSocket } = require("ws");
const { attach } = require("..");
const { start, stop, once } = require("./helpers");
const {
  destroyRaw,
  wsFrame,
  parseFrames,
  closeCode,
  sendUpgrade,
  rawWebSocket,
} = require("./wire");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A native engine echoing messages, stopped when the test ends. */
async function serve(t, opts) {
  const started = await start(opts);
  started.engine.on("connection", (s) => s.on("message", (m) => s.send(m)));
  t.after(() => {
    destroyRaw();
    return stop(started.engine);
  });
  return started;
}

/** Waits until `bytes()` holds `n` frames; returns them. */
async function frames(ws, n) {
  for (let i = 0; i < 200; i++) {
    const f = parseFrames(ws.bytes());
    if (f.length >= n) return f;
    await sleep(10);
  }
  throw new Error(`fewer than ${n} frames arrived`);
}

/** A `ws` client of the engine; resolves once open, with the messages it gets. */
async function wsClient(port, opts) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/engine.io/?EIO=4&transport=websocket`, opts);
  const messages = [];
  ws.on("message", (data, isBinary) => messages.push(isBinary ? data : data.toString()));
  await once(ws, "open");
  return { ws, messages };
}

async function until(cond, what) {
  for (let i = 0; i < 300 && !cond(); i++) await sleep(10);
  assert.ok(cond(), what);
}

const inflate = (payload) =>
  zlib.inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]), {
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
  });

test("a client's close frame is echoed and the session closes with 'transport close'", async (t) => {
  const { engine, port } = await serve(t);
  const ws = await rawWebSocket(engine, port);
  const closed = once(ws.socket, "close");
  const payload = Buffer.concat([Buffer.from([0x0f, 0xa0]), Buffer.from("bye")]); // 4000
  ws.sock.write(wsFrame({ opcode: 0x8, payload }));
  assert.equal((await closed)[0], "transport close");
  await ws.ended;
  const close = parseFrames(ws.bytes()).find((f) => f.opcode === 0x8);
  assert.deepEqual(close.payload, payload);
});

test("pings are answered with the same payload; fragments make one message", async (t) => {
  const { engine, port } = await serve(t);
  const ws = await rawWebSocket(engine, port);
  ws.sock.write(
    Buffer.concat([
      wsFrame({ fin: false, opcode: 0x1, payload: Buffer.from("4hel") }),
      wsFrame({ opcode: 0x9, payload: Buffer.from("are you there") }),
      wsFrame({ fin: false, opcode: 0x0, payload: Buffer.from("lo wo") }),
      wsFrame({ opcode: 0x0, payload: Buffer.from("rld") }),
    ]),
  );
  const got = await frames(ws, 3); // open, pong, echo
  assert.equal(got[1].opcode, 0xa);
  assert.equal(got[1].payload.toString(), "are you there");
  assert.equal(got[2].payload.toString(), "4hello world");
  assert.equal(engine.clientsCount, 1);
});

test("perMessageDeflate off (the default): the offer is ignored", async (t) => {
  const { port } = await serve(t);
  const { ws, messages } = await wsClient(port);
  assert.equal(ws.extensions, "");
  ws.send("4" + "a".repeat(5000));
  await until(() => messages.length === 2, "echo");
  assert.equal(messages[1], "4" + "a".repeat(5000));
  ws.close();
});

test("perMessageDeflate: negotiated with the ws client, both directions compressed", async (t) => {
  const { port } = await serve(t, { perMessageDeflate: true });
  const { ws, messages } = await wsClient(port);
  assert.match(ws.extensions, /^permessage-deflate/);
  const big = "4" + "compressible ".repeat(2000);
  const bin = Buffer.alloc(100_000, 7);
  ws.send(big);
  ws.send("4tiny");
  ws.send(bin);
  await until(() => messages.length === 4, "echoes");
  assert.equal(messages[1], big);
  assert.equal(messages[2], "4tiny");
  assert.deepEqual(messages[3], bin);
  ws.close();
});

test("perMessageDeflate: the server's frames carry RSV1 and inflate to the packets", async (t) => {
  const { engine, port } = await serve(t, { perMessageDeflate: true });
  const ws = await rawWebSocket(
    engine,
    port,
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
  );
  assert.match(ws.head(), /\r\nSec-WebSocket-Extensions: permessage-deflate\r\n/i);
  const open = parseFrames(ws.bytes())[0];
  // ws compresses every message while the context is kept, whatever its size.
  assert.equal(open.rsv1, true);
  assert.match(inflate(open.payload).toString(), /^0\{"sid"/);
  ws.socket.send("x".repeat(3000));
  const [, msg] = await frames(ws, 2);
  assert.equal(msg.rsv1, true);
  assert.ok(msg.payload.length < 100);
  assert.equal(inflate(msg.payload).toString(), "4" + "x".repeat(3000));
});

test("perMessageDeflate: without context takeover, messages under threshold go plain", async (t) => {
  const { engine, port } = await serve(t, {
    perMessageDeflate: { threshold: 2048, serverNoContextTakeover: true },
  });
  const ws = await rawWebSocket(engine, port, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
  assert.match(ws.head(), /permessage-deflate; server_no_context_takeover/);
  ws.socket.send("small");
  ws.socket.send("y".repeat(4000));
  const [open, small, large] = await frames(ws, 3);
  assert.equal(open.rsv1, false);
  assert.equal(small.rsv1, false);
  assert.equal(small.payload.toString(), "4small");
  assert.equal(large.rsv1, true);
  assert.equal(inflate(large.payload).toString(), "4" + "y".repeat(4000));
});

test("perMessageDeflate: compressed client frames are inflated, and limited by maxHttpBufferSize", async (t) => {
  const { engine, port } = await serve(t, { perMessageDeflate: true, maxHttpBufferSize: 1000 });
  const ws = await rawWebSocket(engine, port, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
  const messages = [];
  ws.socket.on("message", (m) => messages.push(m));
  // As a client writes them: a sync flush, its 4-byte tail left off.
  const deflated = (s) =>
    zlib
      .deflateRawSync(Buffer.from(s), { finishFlush: zlib.constants.Z_SYNC_FLUSH })
      .subarray(0, -4);
  ws.sock.write(wsFrame({ rsv: 0x4, opcode: 0x1, payload: deflated("4" + "z".repeat(900)) }));
  await until(() => messages.length === 1, "the inflated message");
  assert.equal(messages[0], "z".repeat(900));
  // 1 MB of zeros deflates to about 1 KB: refused once inflated past the limit.
  const closed = once(ws.socket, "close");
  ws.sock.write(wsFrame({ rsv: 0x4, opcode: 0x1, payload: deflated("4" + "0".repeat(1_000_000)) }));
  assert.equal((await closed)[0], "transport error");
  await ws.ended;
  assert.equal(closeCode(parseFrames(ws.bytes())), 1009);
});

test("perMessageDeflate: an offer that does not parse gets ws's 400", async (t) => {
  const { port } = await serve(t, { perMessageDeflate: true });
  for (const offer of [
    "permessage-deflate; foo=1",
    "permessage-deflate; server_max_window_bits=20",
  ]) {
    const { sock, all } = await sendUpgrade(port, `Sec-WebSocket-Extensions: ${offer}\r\n`);
    await once(sock, "close");
    const res = all().toString();
    assert.match(res, /^HTTP\/1\.1 400 /, offer);
    assert.ok(res.endsWith("Invalid or unacceptable Sec-WebSocket-Extensions header"), offer);
  }
});

test("perMessageDeflate through attach(): negotiated on the taken-over socket", async (t) => {
  const httpServer = http.createServer();
  const engine = attach(httpServer, { perMessageDeflate: true });
  engine.on("connection", (s) => s.on("message", (m) => s.send(m)));
  await new Promise((r) => httpServer.listen(0, "127.0.0.1", r));
  t.after(() => {
    engine.close();
    return new Promise((r) => httpServer.close(r));
  });
  const { ws, messages } = await wsClient(httpServer.address().port);
  assert.match(ws.extensions, /^permessage-deflate/);
  ws.send("4" + "q".repeat(10_000));
  await until(() => messages.length === 2, "echo");
  assert.equal(messages[1], "4" + "q".repeat(10_000));
  ws.close();
});

test("wsPreEncodedFrame: written as it is on a WebSocket, encoded otherwise", async (t) => {
  const frame = [Buffer.from([0x81, 4]), Buffer.from("4123")];
  const { engine, port } = await serve(t);
  engine.on("connection", (s) => s.send("test", { wsPreEncodedFrame: frame }));
  const { ws, messages } = await wsClient(port);
  await until(() => messages.length === 2, "the message");
  assert.equal(messages[1], "4123"); // the frame, not the data
  ws.close();
  // Over polling, the data is what goes out.
  const res = await fetch(`http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling`);
  const sid = JSON.parse((await res.text()).slice(1)).sid;
  const poll = await fetch(
    `http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling&sid=${sid}`,
  );
  assert.equal(await poll.text(), "4test");
});

test("wsPreEncodedFrame is not used with perMessageDeflate", async (t) => {
  const { engine, port } = await serve(t, { perMessageDeflate: true });
  engine.on("connection", (s) =>
    s.send("test", { wsPreEncodedFrame: [Buffer.from([0x81, 4]), Buffer.from("4123")] }),
  );
  const { ws, messages } = await wsClient(port);
  await until(() => messages.length === 2, "the message");
  assert.equal(messages[1], "4test");
  ws.close();
});

// Sends made while the event loop is busy (handling the engine's events, or
// sending several in one tick) are written by the runtime's workers after
// the tick: what a client sees must not change.
test("sends left for the runtime's workers keep their order, callbacks and close", async (t) => {
  const started = await start();
  t.after(() => stop(started.engine));
  const { engine, port } = started;
  const callbacks = [];
  engine.on("connection", (s) => {
    s.on("message", (m) => {
      if (m === "burst") {
        // Inside the engine's event: every send is left for later.
        for (let i = 0; i < 20; i++) s.send(`r${i}`, () => callbacks.push(i));
        // Large binary data is written from the JS thread: behind the rest.
        s.send(Buffer.alloc(20000, 7));
        s.send(Buffer.from([1, 2, 3]));
      } else if (m === "bye") {
        s.send("last");
        s.close();
      }
    });
  });
  const clients = await Promise.all([0, 1, 2].map(() => wsClient(port)));
  await until(() => engine.clientsCount === 3, "three sessions");
  const data = (c) => c.messages.filter((m) => typeof m !== "string" || m[0] === "4");

  // From a timer: the first send of the tick is written at once, the rest
  // of the tick's sends later, in one wake.
  setTimeout(() => {
    for (const s of Object.values(engine.clients)) for (let i = 0; i < 5; i++) s.send(`t${i}`);
  }, 0);
  await until(() => clients.every((c) => data(c).length === 5), "the timer's sends");
  for (const c of clients) assert.deepEqual(data(c), ["4t0", "4t1", "4t2", "4t3", "4t4"]);

  const [a, b] = clients;
  a.ws.send("4burst");
  await until(() => data(a).length === 27, "the burst");
  assert.deepEqual(
    data(a).slice(5, 25),
    [...Array(20).keys()].map((i) => `4r${i}`),
  );
  assert.deepEqual(data(a)[25], Buffer.alloc(20000, 7));
  assert.deepEqual(data(a)[26], Buffer.from([1, 2, 3]));
  await until(() => callbacks.length === 20, "the send callbacks");
  assert.deepEqual(callbacks, [...Array(20).keys()]);

  // A send then close() in one event: the message goes out before the close.
  const closed = once(b.ws, "close");
  b.ws.send("4bye");
  await closed;
  assert.equal(data(b).at(-1), "4last");
  for (const c of clients) c.ws.close();
});

test("sent strings and Buffers arrive as they were at send(), on every write path", async (t) => {
  const started = await start();
  t.after(() => stop(started.engine));
  const { engine, port } = started;
  // Two- to four-byte characters, a lone surrogate (sent as U+FFFD, as
  // engine.io's ws writes it), and a string long enough to be read in two
  // passes (over 64 Ki UTF-16 units).
  const texts = ["héllo ✓ 😀", "a\ud800b", "✓😀".repeat(30000) + "é"];
  const sendAll = (s) => {
    for (const text of texts) s.send(text);
    // Pooled copy (4 KiB and up); changed after send(): the copy was sent.
    const bin = Buffer.alloc(5000, 9);
    s.send(bin);
    bin.fill(0);
  };
  engine.on("connection", (s) => s.on("message", () => sendAll(s)));
  const { ws, messages } = await wsClient(port);
  await until(() => engine.clientsCount === 1, "the session");
  const expected = ["4héllo ✓ 😀", "4a\ufffdb", "4" + texts[2], Buffer.alloc(5000, 9)];
  const data = () => messages.filter((m) => typeof m !== "string" || m[0] === "4");

  // From a timer: an idle loop writes at once (the first send) or queues.
  setTimeout(() => sendAll(Object.values(engine.clients)[0]), 0);
  await until(() => data().length === 4, "the timer's sends");
  assert.deepEqual(data(), expected);

  // Inside the engine's event: left for the runtime's workers.
  ws.send("4go");
  await until(() => data().length === 8, "the event's sends");
  assert.deepEqual(data().slice(4), expected);
  ws.close();
});

// A Socket.IO broadcast calls send() once per client with one
// `wsPreEncodedFrame`; eio-rs hands those sends to the engine in one call.
// Each client must still see its messages in the order they were sent.
test("a broadcast's pre-encoded sends keep each session's order among other sends and closes", async (t) => {
  const started = await start();
  t.after(() => stop(started.engine));
  const { engine, port } = started;
  // What the frames carry differs from the data, to tell which went out.
  const frame = (text) => [Buffer.from([0x81, text.length]), Buffer.from(text)];
  const [one, two] = [frame("4B1"), frame("4B2")];
  const ws = await Promise.all([0, 1, 2].map(() => wsClient(port)));
  const hs = await fetch(`http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling`);
  const sid = JSON.parse((await hs.text()).slice(1)).sid;
  await until(() => engine.clientsCount === 4, "four sessions");
  const [a, b, c] = ws.map((client) => engine.clients[JSON.parse(client.messages[0].slice(1)).sid]);
  const closed = once(ws[2].ws, "close");

  setTimeout(() => {
    const all = Object.values(engine.clients);
    for (const s of all) s.send("b1", { wsPreEncodedFrame: one });
    b.send("direct");
    for (const s of all) s.send("b2", { wsPreEncodedFrame: two });
    c.close();
    for (const s of all) s.send("b3", { wsPreEncodedFrame: one });
    a.send("own", { wsPreEncodedFrame: two }, () => {});
  }, 0);

  const data = (client) => client.messages.filter((m) => m[0] === "4");
  await until(() => data(ws[0]).length === 4 && data(ws[1]).length === 4, "the broadcasts");
  assert.deepEqual(data(ws[0]), ["4B1", "4B2", "4B1", "4B2"]);
  assert.deepEqual(data(ws[1]), ["4B1", "4direct", "4B2", "4B1"]);
  await closed;
  // Sent before the close, delivered before it; nothing after it.
  assert.deepEqual(data(ws[2]), ["4B1", "4B2"]);
  // Polling encodes the data itself.
  const poll = await fetch(
    `http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling&sid=${sid}`,
  );
  assert.equal(await poll.text(), "4b1\x1e4b2\x1e4b3");
  for (const client of ws) client.ws.close();
});
