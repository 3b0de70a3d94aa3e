"use strict";

// Many cheap Engine.IO WebSocket clients, run in a child process of a test
// (`fork(require.resolve("./ws-clients"))`) so that their file descriptors,
// memory and CPU are not the test's. Each client is a raw TCP socket that
// speaks just enough WebSocket: the upgrade request, unmasked server frames
// of up to 2^53 bytes, masked client frames. Every client answers the
// server's pings ("2") with a pong ("3").
//
// The parent sends commands `{ id, op, ...args }` over IPC and gets back
// `{ id, ok: true, ...result }` or `{ id, ok: false, error }`:
//   open  { port, n, concurrency }  opens n sessions; resolves with `opened`
//   mark  {}                        remembers each open client's ping count
//   status {}                       `{ open, minPings, maxPings, unexpected }`:
//                                   pings answered since `mark` by the open
//                                   clients, and clients closed by the server
//                                   without being asked to
//   echo  { text }                  each open client sends a message and
//                                   waits for it to come back
//   polling { port, n, serverCloses, concurrency }
//                                   n polling sessions, each opened, one
//                                   message echoed, then closed: the first
//                                   `serverCloses` by the server ("bye"),
//                                   the others by a close packet
//   close { serverCloses }          closes every client: the first
//                                   `serverCloses` send "4bye" (the test's
//                                   server then calls `socket.close()`), the
//                                   others send a close frame; resolves when
//                                   every TCP connection is closed

const net = require("node:net");
const http = require("node:http");
const crypto = require("node:crypto");

const KEY = crypto.randomBytes(16).toString("base64");

/** A masked client frame (FIN set) carrying `payload` with `opcode`. */
function frame(opcode, payload) {
  const len = payload.length;
  const head =
    len < 126
      ? Buffer.from([0x80 | opcode, 0x80 | len])
      : Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff]);
  const key = crypto.randomBytes(4);
  const masked = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) masked[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([head, key, masked]);
}

const PONG = frame(0x1, Buffer.from("3"));
const CLOSE = frame(0x8, Buffer.from([0x03, 0xe8])); // 1000

const clients = new Set();
let unexpected = 0;

/**
 * One session: resolves with the client once the 101 and the open packet
 * arrived, rejects if the connection fails or closes first.
 */
function openClient(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    const c = {
      sock,
      pings: 0,
      mark: 0,
      open: false,
      // Asked to close (not a drop), and whether our close frame went out.
      closing: false,
      sentClose: false,
      closed: false,
      buf: Buffer.alloc(0),
      head: true,
      onMessage: null,
    };
    sock.setNoDelay(true);
    sock.on("connect", () =>
      sock.write(
        `GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
          "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" +
          `Sec-WebSocket-Key: ${KEY}\r\n\r\n`,
      ),
    );
    sock.on("error", () => {});
    sock.on("close", () => {
      c.closed = true;
      clients.delete(c);
      if (!c.open) reject(new Error("closed before the open packet"));
      else if (!c.closing) unexpected++;
      if (c.onClosed) c.onClosed();
    });
    sock.on("data", (data) => {
      c.buf = c.buf.length ? Buffer.concat([c.buf, data]) : data;
      if (c.head) {
        const end = c.buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        if (!c.buf.subarray(0, 13).equals(Buffer.from("HTTP/1.1 101 "))) {
          sock.destroy();
          return;
        }
        c.head = false;
        c.buf = c.buf.subarray(end + 4);
      }
      while (c.buf.length >= 2) {
        let len = c.buf[1] & 0x7f;
        let at = 2;
        if (len === 126) {
          if (c.buf.length < 4) return;
          len = c.buf.readUInt16BE(2);
          at = 4;
        } else if (len === 127) {
          if (c.buf.length < 10) return;
          len = Number(c.buf.readBigUInt64BE(2));
          at = 10;
        }
        if (c.buf.length < at + len) return;
        const opcode = c.buf[0] & 0x0f;
        const payload = c.buf.subarray(at, at + len);
        c.buf = c.buf.subarray(at + len);
        if (opcode === 0x8) {
          // The server's close frame: answer it; the server then closes.
          if (!c.sentClose) {
            c.sentClose = true;
            sock.write(CLOSE);
          }
        } else if (opcode === 0x1) {
          const text = payload.toString();
          if (text === "2") {
            c.pings++;
            sock.write(PONG);
          } else if (text[0] === "0" && !c.open) {
            c.open = true;
            clients.add(c);
            resolve(c);
          } else if (text[0] === "4" && c.onMessage) {
            c.onMessage(text.slice(1));
          }
        }
      }
    });
  });
}

async function pool(n, limit, job) {
  let next = 0;
  let failed = null;
  async function worker() {
    while (next < n && !failed) {
      const i = next++;
      try {
        await job(i);
      } catch (err) {
        failed = err;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
  if (failed) throw failed;
}

/** One HTTP request; resolves with the body as text, rejects unless 200. */
function request(agent, port, method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { agent, host: "127.0.0.1", port, method, path, headers: { "content-type": "text/plain" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("end", () =>
          res.statusCode === 200
            ? resolve(text)
            : reject(new Error(`${method} ${path}: ${res.statusCode} ${text}`)),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** A polling session: opens, echoes a message, closes. */
async function pollingSession(agent, port, text, serverClose) {
  const base = "/engine.io/?EIO=4&transport=polling";
  const open = await request(agent, port, "GET", base);
  const sid = JSON.parse(open.slice(1)).sid;
  const url = `${base}&sid=${sid}`;
  const post = async (body) => {
    const res = await request(agent, port, "POST", url, body);
    if (res !== "ok") throw new Error(`polling: POST got "${res}"`);
  };
  // Polls until `want` arrives, answering the pings that come first (a
  // noop comes before a close packet, as from engine.io).
  const poll = async (want) => {
    for (let i = 0; i < 10; i++) {
      const packets = (await request(agent, port, "GET", url)).split("\x1e");
      for (const p of packets) {
        if (p === want) return;
        if (p === "2") await post("3");
        else if (p === "6" && want === "1") continue;
        else throw new Error(`polling: got "${p}", want "${want}"`);
      }
    }
    throw new Error(`polling: no "${want}" in 10 polls`);
  };
  await post(`4${text}`);
  await poll(`4${text}`);
  if (serverClose) {
    await post("4bye");
    await poll("1");
  } else {
    await post("1");
  }
}

const ops = {
  async open({ port, n, concurrency = 200 }) {
    await pool(n, concurrency, () => openClient(port));
    return { opened: clients.size };
  },
  async polling({ port, n, serverCloses = 0, concurrency = 50 }) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    try {
      await pool(n, concurrency, (i) => pollingSession(agent, port, `poll ${i}`, i < serverCloses));
    } finally {
      agent.destroy();
    }
    return {};
  },
  mark() {
    for (const c of clients) c.mark = c.pings;
    return {};
  },
  status() {
    let minPings = Infinity;
    let maxPings = 0;
    for (const c of clients) {
      const p = c.pings - c.mark;
      if (p < minPings) minPings = p;
      if (p > maxPings) maxPings = p;
    }
    return { open: clients.size, minPings: clients.size ? minPings : 0, maxPings, unexpected };
  },
  async echo({ text }) {
    await Promise.all(
      [...clients].map(
        (c, i) =>
          new Promise((resolve, reject) => {
            const want = `${text} ${i}`;
            c.onMessage = (m) => {
              if (m !== want) reject(new Error(`echo: got "${m}", want "${want}"`));
              c.onMessage = null;
              resolve();
            };
            c.sock.write(frame(0x1, Buffer.from(`4${want}`)));
          }),
      ),
    );
    return {};
  },
  async close({ serverCloses = 0 }) {
    const all = [...clients];
    await Promise.all(
      all.map(
        (c, i) =>
          new Promise((resolve) => {
            if (c.closed) return resolve();
            c.onClosed = resolve;
            c.closing = true;
            if (i < serverCloses) {
              c.sock.write(frame(0x1, Buffer.from("4bye")));
            } else {
              c.sentClose = true;
              c.sock.write(CLOSE);
            }
          }),
      ),
    );
    return { closed: all.length };
  },
};

process.on("message", async ({ id, op, ...args }) => {
  try {
    const result = await ops[op](args);
    process.send({ id, ok: true, ...result });
  } catch (err) {
    process.send({ id, ok: false, error: String((err && err.message) || err) });
  }
});
process.on("disconnect", () => process.exit(0));
