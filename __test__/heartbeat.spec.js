"use strict";

// 10 000 idle WebSocket sessions on one engine are held through several
// heartbeat rounds, then all close. The clients are raw sockets in a child
// process (`ws-clients.js`): this process keeps the server's 10 000 sockets,
// the child its 10 000, each under `ulimit -n` (20 000 in CI), and the
// clients' CPU is not the test's.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { start, stop, clientsProcess } = require("./helpers");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test(
  "10 000 idle WebSocket sessions are held through heartbeats, then all close",
  { timeout: 120_000 },
  async (t) => {
    const N = 10_000;
    // A ping every 300 ms; the pong may take long on a loaded machine, and
    // pingTimeout is not what this test is about (churn.spec.js checks it).
    const { engine, port } = await start({ pingInterval: 300, pingTimeout: 5000 });
    t.after(() => stop(engine));
    const closes = [];
    engine.on("connection", (socket) => socket.on("close", (reason) => closes.push(reason)));
    const clients = clientsProcess(t);
    const t0 = Date.now();

    const { opened } = await clients("open", { port, n: N, concurrency: 200 });
    assert.equal(opened, N);
    const t1 = Date.now();
    assert.equal(engine.clientsCount, N);
    assert.equal(engine._native.clientsCount, N);

    // Every session gets at least 3 more pings from now on. The server sends
    // the next ping only once the last one was answered, so each of them also
    // proves that pongs reach the server.
    await clients("mark");
    let status;
    for (let i = 0; ; i++) {
      status = await clients("status");
      if (status.minPings >= 3 || status.open < N || status.unexpected > 0) break;
      assert.ok(i < 600, `3 ping rounds for every session: ${JSON.stringify(status)}`);
      await sleep(100);
    }
    const t2 = Date.now();
    assert.equal(status.unexpected, 0, "no client was closed by the server");
    assert.equal(status.open, N);
    assert.ok(status.minPings >= 3);
    assert.deepEqual(closes, [], "no session closed");
    assert.equal(engine.clientsCount, N);
    assert.equal(engine._native.clientsCount, N);
    t.diagnostic(
      `pings per session since all were open: ${status.minPings}..${status.maxPings}; ` +
        `rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB with ${N} sessions`,
    );

    // Closing them all (close frames from the clients) empties the engine.
    const { closed } = await clients("close", { serverCloses: 0 });
    assert.equal(closed, N);
    for (let i = 0; engine.clientsCount > 0 || engine._native.clientsCount > 0; i++) {
      assert.ok(i < 1000, `every session to close (${engine.clientsCount} left)`);
      await sleep(10);
    }
    const t3 = Date.now();
    assert.equal(closes.length, N);
    const reasons = {};
    for (const r of closes) reasons[r] = (reasons[r] || 0) + 1;
    assert.deepEqual(reasons, { "transport close": N });
    t.diagnostic(`open ${t1 - t0} ms, 3 ping rounds ${t2 - t1} ms, close ${t3 - t2} ms`);
  },
);
