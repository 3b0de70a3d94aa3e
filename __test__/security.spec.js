"use strict";

// Bad input: what the engine answers to malformed, oversized, overlapping and
// hostile requests and frames, and that the other sessions keep working.
// SECURITY.md has the table these tests back.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const crypto = require("node:crypto");
const { WebSocket } = require("ws");
const { attach } = require("..");
const { start, stop, once, client, collect } = require("./helpers");
const { connect, destroyRaw, wsFrame, parseFrames, closeCode, rawWebSocket } = require("./wire");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A native engine that is stopped when the test ends, pass or fail. */
async function serve(t, opts) {
  const started = await start(opts);
  t.after(() => {
    destroyRaw();
    return stop(started.engine);
  });
  return started;
}

function echo(engine) {
  engine.on("connection", (socket) => socket.on("message", (m) => socket.send(m)));
}

/** Two healthy sessions (WebSocket and polling) with the real client. */
async function healthyPair(port) {
  const clients = [
    client(port, { transports: ["websocket"] }),
    client(port, { transports: ["polling"] }),
  ];
  await Promise.all(clients.map((c) => once(c, "open")));
  return clients;
}

let tag = 0;
/** Each healthy client still gets its own message echoed. */
async function assertEchoes(clients) {
  for (const c of clients) {
    const text = `still alive ${++tag}`;
    const reply = once(c, "message");
    c.send(text);
    assert.equal((await reply)[0], text);
  }
}

/** A polling session opened by hand; resolves once the server saw it. */
async function pollingSession(engine, url) {
  const conn = once(engine, "connection");
  const body = await (await fetch(`${url}/engine.io/?EIO=4&transport=polling`)).text();
  const sid = JSON.parse(body.slice(1)).sid;
  const [socket] = await conn;
  const messages = [];
  socket.on("message", (m) => messages.push(m));
  const closed = once(socket, "close");
  return {
    sid,
    socket,
    messages,
    closed,
    url: `${url}/engine.io/?EIO=4&transport=polling&sid=${sid}`,
  };
}

async function assertUnknownSid(sessionUrl) {
  const res = await fetch(sessionUrl);
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { code: 1, message: "Session ID unknown" });
}

/**
 * Writes `data` on a raw TCP connection and resolves with everything read
 * until it closes (a reset after the answer, when the server did not read
 * all of `data`, is not an error here).
 */
function rawRequest(port, data) {
  return new Promise((resolve) => {
    const sock = connect(port);
    const chunks = [];
    sock.on("data", (d) => chunks.push(d));
    sock.on("error", () => {});
    sock.on("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
    sock.on("connect", () => sock.write(data));
  });
}

// ---- raw WebSocket -------------------------------------------------------

// ---- polling -------------------------------------------------------------

test(
  "malformed polling bodies: exact answers, and other sessions keep working",
  { timeout: 30_000 },
  async (t) => {
    const { engine, url, port } = await serve(t);
    echo(engine);
    const healthy = await healthyPair(port);
    const cases = [
      // name, body, headers, status, response body, close reason (null: stays open), messages
      ["garbage text", "hello world", {}, 200, "ok", "parse error", []],
      ["an unknown packet type", "9abc", {}, 200, "ok", "parse error", []],
      // Node's base64 decoder skips what is not base64, as engine.io-parser's does.
      ["invalid base64 after b", "b!!!***", {}, 200, "ok", null, [Buffer.alloc(0)]],
      ["an empty body", "", {}, 200, "ok", "parse error", []],
      ["a valid packet then an empty one", "4a\x1e", {}, 200, "ok", "parse error", ["a"]],
      // Invalid UTF-8 becomes U+FFFD, as with Node's setEncoding("utf8").
      [
        "a body that is not UTF-8",
        Buffer.from([0x34, 0xff, 0xfe, 0x41]),
        {},
        200,
        "ok",
        null,
        ["\ufffd\ufffdA"],
      ],
      [
        "application/octet-stream on a v4 session",
        "4hello",
        { "content-type": "application/octet-stream" },
        400,
        "",
        "transport error",
        [],
      ],
    ];
    for (const [name, body, headers, status, text, reason, messages] of cases) {
      const s = await pollingSession(engine, url);
      const res = await fetch(s.url, { method: "POST", body, headers });
      assert.equal(res.status, status, name);
      assert.equal(await res.text(), text, name);
      if (reason) {
        assert.equal((await s.closed)[0], reason, name);
        await assertUnknownSid(s.url);
      } else {
        // Still open: the client closes it.
        assert.equal(s.socket.readyState, "open", name);
        const bye = await fetch(s.url, { method: "POST", body: "1" });
        assert.equal(bye.status, 200);
        assert.equal((await s.closed)[0], "transport close", name);
      }
      assert.deepEqual(s.messages, messages, name);
      assert.equal(engine.clientsCount, 2, name);
      await assertEchoes(healthy);
    }
  },
);

test(
  "a polling body over maxHttpBufferSize gets 413 while it is still streaming",
  { timeout: 20_000 },
  async (t) => {
    const { engine, url, port } = await serve(t, { maxHttpBufferSize: 1000 });
    echo(engine);
    const healthy = await healthyPair(port);
    const s = await pollingSession(engine, url);
    const path = `/engine.io/?EIO=4&transport=polling&sid=${s.sid}`;
    for (const framing of ["Content-Length: 10000000", "Transfer-Encoding: chunked"]) {
      const sock = connect(port);
      await once(sock, "connect");
      let answer = "";
      sock.on("data", (d) => (answer += d.toString("latin1")));
      const closed = once(sock, "close");
      sock.write(`POST ${path} HTTP/1.1\r\nHost: localhost\r\n${framing}\r\n\r\n`);
      const part = "4" + "x".repeat(1999);
      // Announces (or starts) far more than it sends: the answer cannot wait for the end.
      sock.write(framing.startsWith("Transfer") ? `7d0\r\n${part}\r\n` : part);
      await closed;
      assert.match(answer, /^HTTP\/1\.1 413 /, framing);
    }
    // The session itself is not closed by a refused body.
    assert.equal(s.socket.readyState, "open");
    const got = once(s.socket, "message");
    const ok = await fetch(s.url, { method: "POST", body: "4fine" });
    assert.equal(await ok.text(), "ok");
    assert.equal((await got)[0], "fine");
    assert.deepEqual(s.messages, ["fine"], "nothing of the refused bodies was delivered");
    await assertEchoes(healthy);
  },
);

test(
  "overlapping polling GETs: 400, the session closes with 'transport error'",
  { timeout: 20_000 },
  async (t) => {
    const { engine, url, port } = await serve(t);
    echo(engine);
    const healthy = await healthyPair(port);
    const s = await pollingSession(engine, url);
    const first = fetch(s.url);
    await sleep(200); // lets the first request reach the engine
    const second = await fetch(s.url);
    assert.equal(second.status, 400);
    assert.equal((await s.closed)[0], "transport error");
    // The held GET gets the close packet.
    assert.equal(await (await first).text(), "1");
    await assertUnknownSid(s.url);
    assert.equal(engine.clientsCount, 2);
    await assertEchoes(healthy);
  },
);

test(
  "overlapping POSTs: the second gets 400 and the session closes with 'transport error'",
  { timeout: 20_000 },
  async (t) => {
    const { engine, url, port } = await serve(t);
    echo(engine);
    const healthy = await healthyPair(port);
    const s = await pollingSession(engine, url);
    // A slow POST whose body is still streaming.
    const slow = connect(port);
    await once(slow, "connect");
    let slowAnswer = "";
    slow.on("data", (d) => (slowAnswer += d.toString("latin1")));
    slow.on("error", () => {});
    slow.write(
      `POST /engine.io/?EIO=4&transport=polling&sid=${s.sid} HTTP/1.1\r\nHost: localhost\r\n` +
        "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 10\r\n\r\n4sl",
    );
    await sleep(200); // lets the first request reach the engine
    const second = await fetch(s.url, { method: "POST", body: "4second" });
    assert.equal(second.status, 400);
    assert.equal(await second.text(), "");
    assert.equal((await s.closed)[0], "transport error");
    // As in engine.io, the POST still being read is destroyed with its session:
    // no answer, the connection closed, its packet dropped.
    await once(slow, "close");
    assert.equal(slowAnswer, "");
    assert.deepEqual(s.messages, []);
    await assertUnknownSid(s.url);
    assert.equal(engine.clientsCount, 2);
    await assertEchoes(healthy);
  },
);

test("long, non-ASCII and unknown sids get 400 code 1", { timeout: 20_000 }, async (t) => {
  const { engine, url, port } = await serve(t);
  echo(engine);
  const healthy = await healthyPair(port);
  const errors = [];
  engine.on("connection_error", (e) => errors.push(e));
  const sids = ["a".repeat(5000), "é✓", "AAAAAAAAAAAAAAAAAAAA"];
  for (const sid of sids) {
    for (const method of ["GET", "POST"]) {
      const res = await fetch(
        `${url}/engine.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`,
        { method, body: method === "POST" ? "4x" : undefined },
      );
      assert.equal(res.status, 400);
      assert.deepEqual(await res.json(), { code: 1, message: "Session ID unknown" });
    }
  }
  // The same sid as raw UTF-8 bytes in the request line.
  const raw = await rawRequest(
    port,
    Buffer.concat([
      Buffer.from("GET /engine.io/?EIO=4&transport=polling&sid="),
      Buffer.from("é✓"),
      Buffer.from(" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    ]),
  );
  assert.match(raw, /^HTTP\/1\.1 400 /);
  assert.ok(raw.endsWith('{"code":1,"message":"Session ID unknown"}'), raw);
  assert.deepEqual(
    errors.map((e) => [e.code, e.context.sid]),
    [
      ...sids.flatMap((sid) => [
        [1, sid],
        [1, sid],
      ]),
      [1, "é✓"],
    ],
  );
  assert.equal(engine.clientsCount, 2);
  await assertEchoes(healthy);
});

test(
  "request heads over Node's 16 KiB limit get 431 and the connection is closed",
  { timeout: 20_000 },
  async (t) => {
    const { engine, port } = await serve(t);
    echo(engine);
    const healthy = await healthyPair(port);
    for (const size of [100 * 1024, 1024 * 1024]) {
      const answer = await rawRequest(
        port,
        "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: localhost\r\n" +
          `X-Big: ${"a".repeat(size)}\r\n\r\n`,
      );
      // 431, or just the closed connection when the client was still writing
      // (the unread bytes make the close a reset that can beat the answer).
      assert.ok(answer === "" || /^HTTP\/1\.1 431 /.test(answer), `${size} bytes: ${answer}`);
    }
    // A long request target counts toward the same limit: Node answers 431
    // whatever part of the head is large (not 414).
    for (const size of [20 * 1024, 70 * 1024]) {
      const answer = await rawRequest(
        port,
        `GET /engine.io/?EIO=4&transport=polling&x=${"a".repeat(size)} HTTP/1.1\r\nHost: localhost\r\n\r\n`,
      );
      assert.ok(answer === "" || /^HTTP\/1\.1 431 /.test(answer), `${size}-byte target: ${answer}`);
    }
    assert.equal(engine.clientsCount, 2, "no session was opened");
    // Up to 100 fields are fine (Node takes 2000 and drops the rest); more
    // get 431, as a head over the size limit does.
    const fields = (n) => Array.from({ length: n }, (_, i) => `X-F${i}: v\r\n`).join("");
    const head = (n) =>
      `GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: localhost\r\n${fields(n)}Connection: close\r\n\r\n`;
    assert.match(await rawRequest(port, head(98)), /^HTTP\/1\.1 200 /);
    const many = await rawRequest(port, head(150));
    assert.ok(many === "" || /^HTTP\/1\.1 431 /.test(many), `150 fields: ${many}`);
    await assertEchoes(healthy);
  },
);

test(
  "JSONP: the callback index keeps only digits, payloads are escaped for a script",
  { timeout: 20_000 },
  async (t) => {
    const { engine, port } = await serve(t);
    echo(engine);
    const healthy = await healthyPair(port);
    const j = encodeURIComponent('1");alert(1);//');
    const base = `http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling&j=${j}`;
    const script = (body) => {
      const m = /^___eio\[(\d*)\]\((.*)\);$/s.exec(body);
      assert.ok(m, body);
      return { index: m[1], payload: JSON.parse(m[2]) };
    };
    const conn = once(engine, "connection");
    const hs = script(await (await fetch(base)).text());
    assert.equal(hs.index, "11");
    const sid = JSON.parse(hs.payload.slice(1)).sid;
    const [socket] = await conn;
    const evil = 'a"b\\c\n\u2028\u2029\u0001</script>';
    socket.send(evil);
    const body = await (await fetch(`${base}&sid=${sid}`)).text();
    assert.ok(!body.includes("\u2028") && !body.includes("\u2029"), "U+2028/U+2029 are escaped");
    assert.ok(body.includes("\\u2028\\u2029\\u0001"), body);
    assert.deepEqual(script(body), { index: "11", payload: `4${evil}` });
    // Posted packets come in the `d` field of a form, with the client's newline escaping.
    const got = collect(socket, "message", 2);
    const post = await fetch(`${base}&sid=${sid}`, {
      method: "POST",
      body: new URLSearchParams({ d: "4x\\ny\x1e4z" }),
    });
    assert.equal(await post.text(), "ok");
    assert.deepEqual(await got, ["x\ny", "z"]);
    await assertEchoes(healthy);
  },
);

// ---- WebSocket -------------------------------------------------------------

test(
  "invalid WebSocket frames close the session with 'transport error' and close code 1002 or 1007",
  { timeout: 30_000 },
  async (t) => {
    const { engine, port } = await serve(t);
    echo(engine);
    const healthy = await healthyPair(port);
    const cases = [
      [
        "an unmasked client frame",
        wsFrame({ opcode: 0x1, payload: Buffer.from("4hi"), mask: false }),
        1002,
      ],
      ["a reserved opcode (0x3)", wsFrame({ opcode: 0x3, payload: Buffer.from("x") }), 1002],
      // RFC 6455 §7.4.1 (and ws): invalid data in a message is 1007.
      [
        "a text frame with invalid UTF-8",
        wsFrame({ opcode: 0x1, payload: Buffer.from([0x34, 0xff, 0xfe]) }),
        1007,
      ],
      [
        "a ping with a 126-byte payload",
        wsFrame({ opcode: 0x9, payload: Buffer.alloc(126, 0x61) }),
        1002,
      ],
      [
        "a continuation frame with no start",
        wsFrame({ opcode: 0x0, payload: Buffer.from("4x") }),
        1002,
      ],
      [
        "RSV1 set without an extension",
        wsFrame({ rsv: 0x4, opcode: 0x1, payload: Buffer.from("4x") }),
        1002,
      ],
      ["RSV2 set", wsFrame({ rsv: 0x2, opcode: 0x1, payload: Buffer.from("4x") }), 1002],
      ["a fragmented ping", wsFrame({ fin: false, opcode: 0x9 }), 1002],
      // ws refuses close codes a peer may not send (and engine.io then says
      // `transport error`, not `transport close`).
      [
        "a close frame with code 999",
        wsFrame({ opcode: 0x8, payload: Buffer.from([0x03, 0xe7]) }),
        1002,
      ],
      [
        "a close frame with a 1-byte payload",
        wsFrame({ opcode: 0x8, payload: Buffer.from([3]) }),
        1002,
      ],
      [
        "a new message before the last one's final fragment",
        Buffer.concat([
          wsFrame({ fin: false, opcode: 0x1, payload: Buffer.from("4a") }),
          wsFrame({ opcode: 0x1, payload: Buffer.from("4b") }),
        ]),
        1002,
      ],
    ];
    for (const [name, bytes, code] of cases) {
      const ws = await rawWebSocket(engine, port);
      const messages = [];
      ws.socket.on("message", (m) => messages.push(m));
      const closed = once(ws.socket, "close");
      ws.sock.write(bytes);
      const [reason] = await closed;
      await ws.ended; // the server closes the TCP connection
      assert.equal(reason, "transport error", name);
      const frames = parseFrames(ws.bytes());
      assert.equal(frames[0].payload.toString()[0], "0", "the open packet came first");
      assert.equal(closeCode(frames), code, name);
      assert.deepEqual(messages, [], name);
      assert.equal(engine.clientsCount, 2, name);
      await assertEchoes(healthy);
    }
  },
);

test(
  "a WebSocket packet that does not decode closes with 'parse error' and a bare close frame",
  { timeout: 20_000 },
  async (t) => {
    const { engine, port } = await serve(t);
    echo(engine);
    const healthy = await healthyPair(port);
    const ws = await rawWebSocket(engine, port);
    const closed = once(ws.socket, "close");
    ws.sock.write(wsFrame({ opcode: 0x1, payload: Buffer.from("zzz") }));
    assert.equal((await closed)[0], "parse error");
    await ws.ended;
    assert.equal(closeCode(parseFrames(ws.bytes())), null);
    assert.equal(engine.clientsCount, 2);
    await assertEchoes(healthy);
  },
);

test(
  "a WebSocket message over maxHttpBufferSize: close 1009 and 'transport error'",
  { timeout: 20_000 },
  async (t) => {
    const { engine, port } = await serve(t, { maxHttpBufferSize: 1000 });
    echo(engine);
    const healthy = await healthyPair(port);

    // A message of exactly the limit passes; one byte more closes.
    const ws = new WebSocket(`ws://127.0.0.1:${port}/engine.io/?EIO=4&transport=websocket`);
    const [[socket]] = await Promise.all([once(engine, "connection"), once(ws, "open")]);
    const got = once(socket, "message");
    ws.send("4" + "x".repeat(999));
    assert.equal((await got)[0].length, 999);
    const closed = once(socket, "close");
    const wsClosed = once(ws, "close");
    ws.send("4" + "x".repeat(1000));
    assert.equal((await closed)[0], "transport error");
    assert.equal((await wsClosed)[0], 1009);
    await assertEchoes(healthy);

    // A frame header announcing 1 GiB is refused before any of it is read.
    const raw = await rawWebSocket(engine, port);
    const rawClosed = once(raw.socket, "close");
    const head = Buffer.alloc(14);
    head[0] = 0x81;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(1n << 30n, 2);
    crypto.randomBytes(4).copy(head, 10);
    raw.sock.write(head);
    assert.equal((await rawClosed)[0], "transport error");
    await raw.ended;
    assert.equal(closeCode(parseFrames(raw.bytes())), 1009);
    assert.equal(engine.clientsCount, 2);
    await assertEchoes(healthy);
  },
);

// ---- slow clients, throwing handlers, lifecycle ------------------------------

test(
  "clients that never finish their headers do not hold up others",
  { timeout: 20_000 },
  async (t) => {
    const { engine, url, port } = await serve(t);
    echo(engine);
    const slow = [];
    for (let i = 0; i < 50; i++) {
      const sock = connect(port);
      await once(sock, "connect");
      sock.write("GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: localhost\r\nX-Slow: ");
      const got = [];
      sock.on("data", (d) => got.push(d));
      slow.push({ sock, got });
    }
    const healthy = await healthyPair(port);
    await assertEchoes(healthy);
    const res = await fetch(`${url}/engine.io/?EIO=4&transport=polling`);
    assert.equal(res.status, 200);
    for (const { sock, got } of slow) {
      assert.equal(sock.destroyed, false, "the slow client is still connected");
      assert.equal(got.length, 0, "and got no answer");
      sock.destroy();
    }
  },
);

test(
  "a POST whose body stalls gets 408 after requestTimeout and its session closes",
  { timeout: 20_000 },
  async (t) => {
    const { engine, url, port } = await serve(t, { requestTimeout: 200 });
    echo(engine);
    // The healthy polling client's GETs are held far longer than 200 ms: a
    // request whose body is complete is not subject to the timeout.
    const healthy = await healthyPair(port);
    const s = await pollingSession(engine, url);
    const slow = connect(port);
    await once(slow, "connect");
    let answer = "";
    slow.on("data", (d) => (answer += d.toString("latin1")));
    slow.on("error", () => {});
    let slowClosed = false;
    const closed = once(slow, "close", 10_000).then(() => (slowClosed = true));
    slow.write(
      `POST /engine.io/?EIO=4&transport=polling&sid=${s.sid} HTTP/1.1\r\nHost: localhost\r\n` +
        "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 100\r\n\r\n4stalled..",
    );
    // The other sessions are served while the body is held.
    let echoes = 0;
    while (!slowClosed && echoes < 500) {
      await assertEchoes(healthy);
      echoes++;
    }
    await closed;
    // Node's answer, then the connection is closed.
    assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.match(answer, /\r\nconnection: close\r\n/i);
    // As when a data request is aborted in engine.io: the session closes with
    // "transport error" and the partial body is dropped.
    assert.equal((await s.closed)[0], "transport error");
    assert.deepEqual(s.messages, []);
    await assertUnknownSid(s.url);
    assert.equal(engine.clientsCount, 2);
    await assertEchoes(healthy);
  },
);

test(
  "a message handler that throws does not crash the process; the engine keeps serving",
  { timeout: 20_000 },
  async (t) => {
    const { engine, port } = await serve(t);
    engine.on("connection", (socket) =>
      socket.on("message", (m) => {
        if (m === "throw") throw new Error("handler failed");
        socket.send(m);
      }),
    );
    // node:test fails the test on an uncaught exception: take its listeners
    // out for the duration, and put them back.
    const saved = process.listeners("uncaughtException");
    process.removeAllListeners("uncaughtException");
    const caught = [];
    const onError = (err) => caught.push(err.message);
    process.on("uncaughtException", onError);
    try {
      const clients = await healthyPair(port);
      const others = await healthyPair(port);
      for (const c of clients) {
        const reply = once(c, "message");
        c.send("throw");
        c.send("after the throw");
        assert.equal((await reply)[0], "after the throw");
      }
      assert.deepEqual(caught, ["handler failed", "handler failed"]);
      await assertEchoes(clients);
      await assertEchoes(others);
      assert.equal(engine.clientsCount, 4);
    } finally {
      process.off("uncaughtException", onError);
      for (const l of saved) process.on("uncaughtException", l);
    }
  },
);

test("server.close() twice is harmless", { timeout: 20_000 }, async (t) => {
  const { engine, url, port } = await serve(t);
  echo(engine);
  const clients = await healthyPair(port);
  const sockets = Object.values(engine.clients);
  assert.equal(sockets.length, 2);
  const reasons = [];
  for (const s of sockets) s.on("close", (r) => reasons.push(r));
  const closed = Promise.all([...sockets, ...clients].map((e) => once(e, "close")));
  engine.close();
  engine.close();
  await closed;
  await new Promise((resolve) => engine.httpServer.close(resolve));
  const err = await new Promise((resolve) => engine.httpServer.close(resolve));
  assert.equal(err.code, "ERR_SERVER_NOT_RUNNING");
  engine.close();
  await sleep(50); // room for a second close event, which must not come
  assert.deepEqual(reasons, ["forced close", "forced close"]);
  assert.equal(engine.clientsCount, 0);
  await assert.rejects(fetch(`${url}/engine.io/?EIO=4&transport=polling`));
});

test("two servers in one process work independently", { timeout: 20_000 }, async (t) => {
  const a = await serve(t);
  const b = await serve(t, { path: "/other" });
  a.engine.on("connection", (s) => s.on("message", (m) => s.send(`a:${m}`)));
  b.engine.on("connection", (s) => s.on("message", (m) => s.send(`b:${m}`)));
  const ca = client(a.port, { transports: ["websocket"] });
  const cb = client(b.port, { transports: ["polling"], path: "/other" });
  await Promise.all([once(ca, "open"), once(cb, "open")]);
  assert.notEqual(ca.id, cb.id);
  assert.deepEqual(Object.keys(a.engine.clients), [ca.id]);
  assert.deepEqual(Object.keys(b.engine.clients), [cb.id]);
  // A sid of one server is unknown to the other.
  const res = await fetch(`${b.url}/other/?EIO=4&transport=polling&sid=${ca.id}`);
  assert.equal(res.status, 400);
  const ra = once(ca, "message");
  const rb = once(cb, "message");
  ca.send("1");
  cb.send("2");
  assert.equal((await ra)[0], "a:1");
  assert.equal((await rb)[0], "b:2");
  // Closing one leaves the other serving.
  await stop(a.engine);
  assert.equal(b.engine.clientsCount, 1);
  const again = once(cb, "message");
  cb.send("3");
  assert.equal((await again)[0], "b:3");
});

// ---- attach() ----------------------------------------------------------------

test(
  "attach(): bad input gets the same answers and other sessions keep working",
  { timeout: 30_000 },
  async (t) => {
    const server = http.createServer();
    const engine = attach(server);
    t.after(() => {
      destroyRaw();
      engine.close();
      server.closeAllConnections();
      if (server.listening) return new Promise((r) => server.close(r));
    });
    echo(engine);
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address();
    const url = `http://127.0.0.1:${port}`;
    const healthy = await healthyPair(port);

    for (const [body, headers, status, reason] of [
      ["hello world", {}, 200, "parse error"],
      ["4hello", { "content-type": "application/octet-stream" }, 400, "transport error"],
    ]) {
      const s = await pollingSession(engine, url);
      const res = await fetch(s.url, { method: "POST", body, headers });
      assert.equal(res.status, status);
      assert.equal((await s.closed)[0], reason);
      await assertEchoes(healthy);
    }

    const long = await fetch(`${url}/engine.io/?EIO=4&transport=polling&sid=${"a".repeat(5000)}`);
    assert.equal(long.status, 400);
    assert.deepEqual(await long.json(), { code: 1, message: "Session ID unknown" });

    // Node's own parser refuses headers over its 16 KiB default.
    const big = await fetch(`${url}/engine.io/?EIO=4&transport=polling`, {
      headers: { "x-big": "a".repeat(100 * 1024) },
    });
    assert.equal(big.status, 431);

    // A WebSocket taken over by the engine: an unmasked frame closes it with 1002.
    const ws = await rawWebSocket(engine, port);
    const closed = once(ws.socket, "close");
    ws.sock.write(wsFrame({ opcode: 0x1, payload: Buffer.from("4hi"), mask: false }));
    assert.equal((await closed)[0], "transport error");
    await ws.ended;
    assert.equal(closeCode(parseFrames(ws.bytes())), 1002);

    assert.equal(engine.clientsCount, 2);
    await assertEchoes(healthy);
  },
);
