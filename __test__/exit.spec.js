"use strict";

// The addon must never keep Node alive on its own: a process that closes
// its server exits by itself.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { runNode } = require("./helpers");

/** Runs `script`; resolves with its exit code and output (stdout and stderr). */
async function run(script) {
  const { code, all } = await runNode(script, {}, 10000);
  return { code, out: all };
}

test("the process exits after server.close() with live clients", async () => {
  const { code, out } = await run(`
    const { listen } = require(".");
    const { Socket } = require("engine.io-client");
    const engine = listen(0, () => {
      const { port } = engine.httpServer.address();
      const a = new Socket("ws://127.0.0.1:" + port, { transports: ["websocket"] });
      const b = new Socket("ws://127.0.0.1:" + port, { transports: ["polling"] });
      let open = 0;
      const onOpen = () => {
        if (++open < 2) return;
        engine.close();
        engine.httpServer.close(() => console.log("closed"));
      };
      a.on("open", onOpen);
      b.on("open", onOpen);
    });
  `);
  assert.equal(code, 0, out);
  assert.match(out, /closed/);
});

test("a listening server keeps the process alive until closed", async () => {
  const { code, out } = await run(`
    const { listen } = require(".");
    const engine = listen(0, () => {
      setTimeout(() => {
        console.log("still alive");
        engine.httpServer.close();
      }, 300);
    });
  `);
  assert.equal(code, 0, out);
  assert.match(out, /still alive/);
});

test("EADDRINUSE reaches the httpServer 'error' event", async () => {
  const { code, out } = await run(`
    const { listen } = require(".");
    const a = listen(0, () => {
      const b = listen(a.httpServer.address().port);
      b.httpServer.on("error", (e) => {
        console.log("error", e.code);
        // As Node's net.Server reports it.
        const port = a.httpServer.address().port;
        const node = "listen EADDRINUSE: address already in use :::" + port;
        console.log(e.message === node, e.syscall, e.errno, e.address, e.port === port);
        a.httpServer.close();
      });
    });
  `);
  assert.equal(code, 0, out);
  assert.match(out, /error EADDRINUSE/);
  assert.match(out, /true listen -\d+ :: true/);
});

test("listen() in cluster workers: the second worker on the port is told to use attach()", async () => {
  // Node shares a net.Server's port among workers; the native listener
  // cannot, so the worker that finds it taken fails at once, saying why.
  // cluster.fork() runs a script file, so the script is one.
  const file = path.join(os.tmpdir(), `eio-rs-cluster-${process.pid}.js`);
  fs.writeFileSync(
    file,
    `const cluster = require("cluster");
    if (cluster.isPrimary) {
      cluster.setupPrimary({ exec: __filename });
      const first = cluster.fork();
      first.on("message", (port) => {
        const second = cluster.fork({ PORT: port });
        second.on("message", (m) => {
          console.log(m);
          first.kill();
        });
      });
    } else {
      const { listen } = require(${JSON.stringify(path.join(__dirname, ".."))});
      const engine = listen(Number(process.env.PORT || 0), () =>
        process.send(engine.httpServer.address().port),
      );
      engine.httpServer.on("error", (e) => {
        process.send(e.code + " " + e.message);
        process.exit(0);
      });
    }`,
  );
  let result;
  try {
    result = await run(`require(${JSON.stringify(file)})`);
  } finally {
    fs.rmSync(file, { force: true });
  }
  const { code, out } = result;
  assert.equal(code, 0, out);
  assert.match(
    out,
    /EADDRINUSE listen EADDRINUSE: address already in use :::\d+\. .*use attach\(\)/,
  );
});
