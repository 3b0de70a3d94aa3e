"use strict";

// The addon in worker_threads: each worker gets its own engines, workers
// exit by themselves, and a terminated worker's listener is released.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { Worker } = require("node:worker_threads");
const path = require("node:path");
const { once, start, stop, client } = require("./helpers");

const root = path.join(__dirname, "..");

function worker(body) {
  const code = `
    const { parentPort } = require("node:worker_threads");
    const { listen } = require(${JSON.stringify(root)});
    const { Socket } = require(${JSON.stringify(require.resolve("engine.io-client"))});
    ${body}
  `;
  return new Worker(code, { eval: true });
}

test("two workers serve their own engines and exit by themselves", async () => {
  const body = `
    const engine = listen(0, () => {
      engine.on("connection", (s) => s.on("message", (m) => s.send(m)));
      const { port } = engine.httpServer.address();
      const c = new Socket("ws://127.0.0.1:" + port, { transports: ["websocket"] });
      c.on("open", () => c.send("echo " + port));
      c.on("message", (m) => {
        parentPort.postMessage(m);
        c.close();
        engine.close();
        engine.httpServer.close();
      });
    });
  `;
  const workers = [worker(body), worker(body)];
  const results = await Promise.all(
    workers.map(async (w) => {
      const [message] = await once(w, "message", 10000);
      const [code] = await once(w, "exit", 10000);
      return { message, code };
    }),
  );
  for (const { message, code } of results) {
    assert.match(message, /^echo \d+$/);
    assert.equal(code, 0);
  }
  assert.notEqual(results[0].message, results[1].message);
});

test("terminating a worker releases its listener and sessions", async () => {
  const w = worker(`
    const engine = listen(0, () => {
      const { port } = engine.httpServer.address();
      const c = new Socket("ws://127.0.0.1:" + port, { transports: ["websocket"] });
      c.on("open", () => parentPort.postMessage(port));
    });
  `);
  const [port] = await once(w, "message", 10000);
  await w.terminate();
  // The port is free again: the env cleanup hook stopped the listener.
  const { engine } = await start({}, port);
  const c = client(port, { transports: ["websocket"] });
  await once(c, "open");
  c.close();
  await stop(engine);
});
