"use strict";

// Memory: many sessions opened and closed in rounds do not make the server's
// RSS grow. This file has a process of its own (node:test runs each file in
// one), so that no earlier test left free memory behind that a leak could
// fill without RSS growing.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const v8 = require("node:v8");
const vm = require("node:vm");
const { start, stop, clientsProcess, until, tracked } = require("./helpers");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A full garbage collection: `global.gc` when node runs with `--expose-gc`,
 * otherwise the same function, exposed now (node:test gives no per-file
 * flags).
 */
function fullGc() {
  if (typeof global.gc === "function") return global.gc();
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc")();
}

test("RSS does not grow across rounds of 1000 sessions", { timeout: 120_000 }, async (t) => {
  // Each round opens 1000 sessions (750 WebSocket, 250 polling; half of each
  // closed by the client, half by `socket.close()`), echoes one message on
  // each, closes them all, then collects garbage and reads this process's
  // RSS. The clients are in a child process, so the RSS is the server's:
  // the addon and the JS facade.
  //
  // The first WARMUP rounds let the allocators reach their working size (RSS
  // climbs for some 10 rounds here, by ~13 MiB, then moves by up to ~1.5 MiB
  // either way from one round to the next). Then MEASURED rounds, 1000
  // sessions each. A leak of 1 KiB per session would add at least
  //   MEASURED * 1000 * 1 KiB = 12 * 1000 KiB = 12 000 KiB (11.7 MiB),
  // and the test allows less than half of that: 6000 KiB (5.9 MiB). Both
  // ends are the mean of two rounds (the last two of the warm-up and the
  // last two measured), whose centres are MEASURED rounds apart, so the
  // arithmetic holds and a single noisy reading counts half.
  //
  // Heartbeats are short so that what a closed session leaves in the
  // engine's heartbeat heap (deadlines skipped once due, at most
  // pingInterval + pingTimeout later) is reclaimed within the warm-up; with
  // engine.io's 25 s + 20 s, that bounded backlog (some 32 bytes a session)
  // would still be growing by the end of the test.
  const WARMUP = 10;
  const MEASURED = 12;
  const SESSIONS = 1000;
  const BOUND = (MEASURED * SESSIONS * 1024) / 2;
  const { engine, port } = await start({ pingInterval: 300, pingTimeout: 2000 });
  t.after(() => stop(engine));
  engine.on("connection", (socket) =>
    socket.on("message", (m) => (m === "bye" ? socket.close() : socket.send(m))),
  );
  const before = tracked(engine);
  const clients = clientsProcess(t);
  const rss = [];
  for (let round = 0; round < WARMUP + MEASURED; round++) {
    const { opened } = await clients("open", { port, n: 750, concurrency: 100 });
    assert.equal(opened, 750);
    await clients("polling", { port, n: 250, serverCloses: 125 });
    await clients("echo", { text: `round ${round}` });
    const { closed } = await clients("close", { serverCloses: 375 });
    assert.equal(closed, 750);
    await until(() => engine.clientsCount === 0, `round ${round} to close every session`);
    await until(() => engine._native.clientsCount === 0, `round ${round} native sessions`);
    assert.deepEqual(tracked(engine), before, `round ${round}: tracked state is back to empty`);
    assert.equal((await clients("status")).unexpected, 0, "no session was dropped");
    // Lets the connections' tasks finish, then collects what JS dropped.
    await sleep(50);
    fullGc();
    rss.push(process.memoryUsage().rss);
  }
  const mean = (a, b) => (rss[a] + rss[b]) / 2;
  const growth = mean(rss.length - 2, rss.length - 1) - mean(WARMUP - 2, WARMUP - 1);
  const mib = (b) => (b / 2 ** 20).toFixed(1);
  t.diagnostic(`rss MiB after each round: ${rss.map(mib).join(" ")}`);
  t.diagnostic(`growth over ${MEASURED} measured rounds: ${mib(growth)} MiB`);
  assert.ok(
    growth < BOUND,
    `RSS grew ${mib(growth)} MiB over ${MEASURED * SESSIONS} sessions ` +
      `(bound ${mib(BOUND)} MiB: half of a 1 KiB leak per session)`,
  );
});
