"use strict";

// The HTTP/2 front end of listen() over TLS against the floods that CVEs made
// known: rapid reset (CVE-2023-44487), CONTINUATION floods (CVE-2024-27316
// and friends) and SETTINGS floods. A raw client writes the frames by hand on
// one connection; the server must end that connection (or keep up with it)
// without unbounded work, while an engine.io session on another connection
// goes on being served.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const http2 = require("node:http2");
const tls = require("node:tls");
const { listen } = require("..");
const { stop, until } = require("./helpers");
const { makeCert, get, post } = require("./h2");

const { key, cert } = makeCert();

const BASE = "/engine.io/?EIO=4&transport=polling";

// Frame types and flags (RFC 9113, section 6).
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const GOAWAY = 0x7;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;
const CANCEL = 0x8;
const ENHANCE_YOUR_CALM = 0xb;

/** One frame: a 9-byte header (length, type, flags, stream) and its payload. */
function frame(type, flags, stream, payload = Buffer.alloc(0)) {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK string literal, not Huffman coded (under 127 bytes). */
function hstr(s) {
  const b = Buffer.from(s);
  assert.ok(b.length < 127);
  return Buffer.concat([Buffer.from([b.length]), b]);
}

/**
 * The header block of `GET path`: indexed :method GET (0x82) and :scheme
 * https (0x87), then :path and :authority as literals without indexing whose
 * names are static table entries 4 and 1.
 */
function getBlock(port, p) {
  return Buffer.concat([
    Buffer.from([0x82, 0x87, 0x04]),
    hstr(p),
    Buffer.from([0x01]),
    hstr(`127.0.0.1:${port}`),
  ]);
}

/** A literal header field without indexing, with a new name (value under 127 bytes). */
function literal(name, value) {
  return Buffer.concat([Buffer.from([0x00]), hstr(name), hstr(value)]);
}

/**
 * A raw HTTP/2 client over TLS (ALPN h2): it sends the connection preface
 * and an empty SETTINGS, parses what the server sends (answering its
 * SETTINGS with an ACK), and records any GOAWAY and the close.
 */
function rawClient(port) {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({
      host: "127.0.0.1",
      port,
      ALPNProtocols: ["h2"],
      ca: cert,
      servername: "localhost",
    });
    const timer = setTimeout(() => reject(new Error("TLS handshake timed out")), 5000);
    const raw = {
      sock,
      sent: 0,
      received: 0,
      counts: {},
      goaway: null,
      /** The response bodies (DATA), by stream, and the streams that ended. */
      bodies: new Map(),
      ended: new Set(),
      closed: false,
      error: null,
      write(buf) {
        if (raw.closed || sock.destroyed) return false;
        raw.sent += buf.length;
        return sock.write(buf);
      },
      /** Resolves once the socket can take more (or is closed); false on timeout. */
      drained(ms = 5000) {
        if (!sock.writableNeedDrain || raw.closed) return Promise.resolve(true);
        return new Promise((res) => {
          const done = (v) => {
            clearTimeout(t);
            sock.off("drain", ok);
            sock.off("close", ok);
            res(v);
          };
          const ok = () => done(true);
          const t = setTimeout(() => done(false), ms);
          sock.once("drain", ok);
          sock.once("close", ok);
        });
      },
      /**
       * Waits up to `ms` for the server to answer what was written with a
       * GOAWAY or the close: pacing between batches, so that the server's
       * GOAWAY is read before a write to the closed connection fails (EPIPE,
       * which destroys the socket along with what it had not read yet).
       */
      settle(ms = 10) {
        return until(() => raw.closed || raw.goaway, "a GOAWAY", ms).catch(() => {});
      },
      /** Resolves when the server has closed the connection, or after `ms` (false). */
      closedWithin(ms) {
        return until(() => raw.closed, "the close", ms).then(
          () => true,
          () => false,
        );
      },
      destroy() {
        sock.destroy();
      },
    };
    let buf = Buffer.alloc(0);
    sock.on("data", (d) => {
      raw.received += d.length;
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const type = buf[3];
        const flags = buf[4];
        const id = buf.readUInt32BE(5) & 0x7fffffff;
        const payload = buf.subarray(9, 9 + len);
        buf = buf.subarray(9 + len);
        raw.counts[type] = (raw.counts[type] ?? 0) + 1;
        if (type === SETTINGS && !(flags & ACK)) raw.write(frame(SETTINGS, ACK, 0));
        if (type === DATA) raw.bodies.set(id, (raw.bodies.get(id) ?? "") + payload.toString());
        if ((type === DATA || type === HEADERS) && flags & END_STREAM) raw.ended.add(id);
        if (type === GOAWAY && !raw.goaway) {
          raw.goaway = {
            lastStreamId: payload.readUInt32BE(0) & 0x7fffffff,
            code: payload.readUInt32BE(4),
            debug: payload.subarray(8).toString(),
          };
        }
      }
    });
    sock.on("error", (err) => (raw.error = err));
    sock.on("close", () => (raw.closed = true));
    sock.once("secureConnect", () => {
      clearTimeout(timer);
      if (sock.alpnProtocol !== "h2") {
        sock.destroy();
        reject(new Error(`ALPN chose ${sock.alpnProtocol}`));
        return;
      }
      raw.write(Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
      raw.write(frame(SETTINGS, 0, 0));
      // Ready once the server's SETTINGS is in and ACKed: no ACK of ours
      // can then land inside a flood (amid CONTINUATION frames, say).
      until(() => raw.counts[SETTINGS] || raw.closed, "the server's SETTINGS").then(
        () => resolve(raw),
        (err) => (sock.destroy(), reject(err)),
      );
    });
    sock.once("error", (err) => (clearTimeout(timer), reject(err)));
  });
}

/** Starts a TLS engine (HTTP/2 with ALPN h2) whose sessions echo their messages. */
function startH2(opts = {}) {
  return new Promise((resolve, reject) => {
    const engine = listen(0, { key, cert, ...opts }, () => {
      resolve({ engine, port: engine.httpServer.address().port });
    });
    engine.httpServer.once("error", reject);
    engine.on("connection", (socket) => socket.on("message", (m) => socket.send(`echo ${m}`)));
  });
}

/**
 * A healthy engine.io session on its own HTTP/2 connection (Node's client):
 * `echo(text)` posts a message and resolves with the echo its next poll gets.
 */
async function healthy(port) {
  const client = http2.connect(`https://127.0.0.1:${port}`, { ca: cert });
  client.on("error", () => {});
  const open = await get(client, BASE);
  assert.equal(open.status, 200);
  const { sid } = JSON.parse(open.body.slice(1));
  const url = `${BASE}&sid=${sid}`;
  return {
    sid,
    async echo(text) {
      const held = get(client, url);
      const posted = await post(client, url, `4${text}`);
      assert.equal(posted.status, 200);
      const res = await held;
      assert.equal(res.status, 200);
      assert.equal(res.body, `4echo ${text}`);
    },
    close: () => client.close(),
  };
}

/**
 * Runs `echo` again and again while `flood()` runs (so the healthy client is
 * served during the flood); resolves with the flood's result and how many
 * echoes went through.
 */
async function during(client, flood) {
  let running = true;
  let echoes = 0;
  const echoing = (async () => {
    while (running) {
      await client.echo(`during ${echoes}`);
      echoes++;
    }
  })();
  // A failed echo fails the test below; handled now, so not as unhandled.
  echoing.catch(() => {});
  try {
    const result = await flood();
    return { result, echoes };
  } finally {
    running = false;
    await echoing;
  }
}

/** Starts a TLS engine and a healthy session on it, both ended with the test `t`. */
async function setup(t) {
  const { engine, port } = await startH2();
  const other = await healthy(port);
  const raws = [];
  t.after(async () => {
    for (const raw of raws) raw.destroy();
    other.close();
    await stop(engine);
  });
  await other.echo("before");
  const raw = async () => {
    const r = await rawClient(port);
    raws.push(r);
    return r;
  };
  return { engine, port, other, raw };
}

/** The healthy session echoes after the flood, and a new one opens and echoes. */
async function stillServed(port, other) {
  await other.echo("after");
  const fresh = await healthy(port);
  try {
    await fresh.echo("fresh");
  } finally {
    fresh.close();
  }
}

test("rapid reset (CVE-2023-44487): HEADERS + RST_STREAM pairs end the connection, others go on", async (t) => {
  const { engine, port, other, raw: connect } = await setup(t);
  const raw = await connect();
  const STREAMS = 5000;
  const block = getBlock(port, BASE);
  // The header block is a valid handshake: stream 1, not reset, is served.
  raw.write(frame(HEADERS, END_STREAM | END_HEADERS, 1, block));
  await until(() => raw.ended.has(1) || raw.closed, "the handshake on stream 1", 5000);
  assert.match(raw.bodies.get(1) ?? "", /^0\{"sid":/);
  assert.equal(engine.clientsCount, 2);
  const cancel = Buffer.alloc(4);
  cancel.writeUInt32BE(CANCEL);
  const { result: sent, echoes } = await during(other, async () => {
    let sent = 0;
    // Batches of 50 pairs in one write, so that the resets reach the server
    // with their HEADERS, as an attacker sends them.
    while (sent < STREAMS && !raw.closed && !raw.goaway) {
      const batch = [];
      for (let i = 0; i < 50 && sent < STREAMS; i++, sent++) {
        const id = 2 * sent + 3;
        batch.push(frame(HEADERS, END_STREAM | END_HEADERS, id, block));
        batch.push(frame(RST_STREAM, 0, id, cancel));
      }
      raw.write(Buffer.concat(batch));
      if (!(await raw.drained())) break;
      await raw.settle();
    }
    return sent;
  });
  const closed = await raw.closedWithin(10_000);
  t.diagnostic(
    `rapid reset: ${sent} streams sent (${raw.sent} bytes), goaway ${JSON.stringify(raw.goaway)}, ` +
      `closed ${closed}, error ${raw.error?.code}, frames back ${JSON.stringify(raw.counts)}, ` +
      `clientsCount ${engine.clientsCount}, ${echoes} echoes during`,
  );
  // The server gave up on the connection: a GOAWAY, then the close.
  assert.ok(raw.goaway, "a GOAWAY");
  assert.equal(raw.goaway.code, ENHANCE_YOUR_CALM);
  assert.ok(closed, "the connection closed");
  assert.ok(sent < STREAMS, `the server read all ${sent} streams`);
  // Only streams up to the GOAWAY's last one can have been served (and have
  // opened a session before their reset): a few, whatever the flood's size.
  const served = (raw.goaway.lastStreamId - 1) / 2;
  assert.ok(engine.clientsCount <= 2 + served, `${engine.clientsCount} sessions`);
  assert.ok(engine.clientsCount < 2 + sent / 2, `${engine.clientsCount} sessions`);
  await stillServed(port, other);
});

test("CONTINUATION flood: HEADERS without END_HEADERS and endless CONTINUATION end the connection", async (t) => {
  const { engine, port, other, raw: connect } = await setup(t);
  const LIMIT = 8 * 1024 * 1024;
  // Two shapes: CONTINUATION frames full of header fields (the header list
  // outgrows 16 KiB), and empty ones (nothing grows but the frame count).
  const shapes = {
    fields: () => {
      const fields = [];
      for (let i = 0; fields.length * 110 < 8000; i++)
        fields.push(literal(`x-flood-${i}`, "v".repeat(100)));
      return Buffer.concat(fields);
    },
    empty: () => Buffer.alloc(0),
  };
  for (const [shape, make] of Object.entries(shapes)) {
    const raw = await connect();
    const payload = make();
    const { result: frames, echoes } = await during(other, async () => {
      raw.write(frame(HEADERS, END_STREAM, 1, getBlock(port, BASE)));
      let frames = 0;
      while (raw.sent < LIMIT && !raw.closed && !raw.goaway) {
        const batch = [];
        for (let i = 0; i < 4; i++, frames++) batch.push(frame(CONTINUATION, 0, 1, payload));
        raw.write(Buffer.concat(batch));
        if (!(await raw.drained())) break;
        await raw.settle();
      }
      return frames;
    });
    const closed = await raw.closedWithin(10_000);
    t.diagnostic(
      `CONTINUATION (${shape}): ${frames} frames (${raw.sent} bytes) sent, ` +
        `goaway ${JSON.stringify(raw.goaway)}, closed ${closed}, error ${raw.error?.code}, ` +
        `${echoes} echoes during`,
    );
    assert.ok(closed, "the connection closed");
    assert.ok(raw.sent < LIMIT, `the server read ${raw.sent} bytes of one header block`);
    if (raw.goaway) assert.notEqual(raw.goaway.code, 0, "an error code");
    // The flooded request never reached engine.io.
    assert.equal(engine.clientsCount, 1);
  }
  await stillServed(port, other);
});

test("SETTINGS flood: thousands of SETTINGS, ACKs unread; the server holds up", async (t) => {
  const { engine, port, other, raw: connect } = await setup(t);
  const raw = await connect();
  // Read nothing from now on: the server's ACKs pile up unread.
  raw.sock.pause();
  const FRAMES = 200_000;
  // SETTINGS_INITIAL_WINDOW_SIZE (4) = 65535, a value the server must apply.
  const setting = Buffer.alloc(6);
  setting.writeUInt16BE(0x4, 0);
  setting.writeUInt32BE(65535, 2);
  const { result: sent, echoes } = await during(other, async () => {
    let sent = 0;
    while (sent < FRAMES && !raw.closed) {
      const batch = [];
      for (let i = 0; i < 1000; i++, sent++) batch.push(frame(SETTINGS, 0, 0, setting));
      raw.write(Buffer.concat(batch));
      // The server stops reading when its ACKs can't be written: then the
      // flood is stalled, which is as good as over.
      if (!(await raw.drained(2000))) break;
      await new Promise((r) => setImmediate(r));
    }
    return sent;
  });
  const stalled = !raw.closed && raw.sock.writableNeedDrain;
  // Now read: the ACKs (and a GOAWAY, if the server gave up) come in.
  raw.sock.resume();
  await until(() => raw.closed || !raw.sock.writableNeedDrain, "the stalled flood to drain").catch(
    () => {},
  );
  // Closed, or still working: then a handshake on it is served as well.
  if (!raw.closed) {
    raw.write(frame(HEADERS, END_STREAM | END_HEADERS, 1, getBlock(port, BASE)));
    await until(() => raw.ended.has(1) || raw.closed, "the handshake after the flood");
    if (!raw.closed) assert.match(raw.bodies.get(1) ?? "", /^0\{"sid":/);
  }
  t.diagnostic(
    `SETTINGS flood: ${sent} frames (${raw.sent} bytes) sent, stalled ${stalled}, ` +
      `${raw.counts[SETTINGS] ?? 0} SETTINGS frames back (${raw.received} bytes), ` +
      `goaway ${JSON.stringify(raw.goaway)}, closed ${raw.closed}, error ${raw.error?.code}, ` +
      `${echoes} echoes during`,
  );
  assert.equal(engine.clientsCount, raw.closed ? 1 : 2);
  await stillServed(port, other);
});
