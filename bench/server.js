"use strict";

// One benchmark server, run by bench/run.js in a fresh child process:
//
//   node --expose-gc bench/server.js <kind> '<engine options as JSON>'
//
// kind: "eio-native" (eio-rs listen()), "eio-attach" (eio-rs attach() to a
// Node http.Server), "engine.io" (npm engine.io from bench/.deps, listen()).
// Every kind runs the same echo handler. The driver talks to it over IPC:
//   -> { cmd: "gc" }                  <- { type: "gc", clientsCount, memory }
//   -> { cmd: "broadcast", seq, size } <- { type: "broadcast", seq, n, jsUs }
// and it answers { type: "ready", port, pid, ... } once listening, or
// { type: "unsupported", code, message } when the mode is not implemented.

const http = require("http");
const path = require("path");

const kind = process.argv[2];
const opts = JSON.parse(process.argv[3] || "{}");
const root = path.resolve(__dirname, "..");
const depsModules = path.join(__dirname, ".deps", "node_modules");

function send(msg) {
  if (process.send) process.send(msg);
  else console.log(JSON.stringify(msg));
}

function echo(engine) {
  engine.on("connection", (socket) => {
    socket.on("message", (data) => socket.send(data));
  });
}

function ready(engine, port, extra) {
  process.on("message", (msg) => {
    if (msg.cmd === "gc") {
      if (global.gc) {
        global.gc();
        global.gc();
      }
      send({ type: "gc", clientsCount: engine.clientsCount, memory: process.memoryUsage() });
    } else if (msg.cmd === "broadcast") {
      const t0 = process.hrtime.bigint();
      // "B<seq>:<t0 ns, CLOCK_MONOTONIC>:xxx..." (`size` characters): the
      // load generator reads the same clock to time the delivery.
      const data = `B${msg.seq}:${t0}:`.padEnd(msg.size, "x");
      let n = 0;
      const clients = engine.clients;
      for (const id in clients) {
        clients[id].send(data);
        n++;
      }
      const jsUs = Number(process.hrtime.bigint() - t0) / 1e3;
      send({ type: "broadcast", seq: msg.seq, n, jsUs });
    }
  });
  send(Object.assign({ type: "ready", port, pid: process.pid, node: process.version }, extra));
}

function main() {
  switch (kind) {
    case "eio-native": {
      const eio = require(root);
      const engine = eio.listen(0, opts, () => ready(engine, engine.httpServer.address().port));
      echo(engine);
      break;
    }
    case "eio-attach": {
      const eio = require(root);
      const server = http.createServer();
      let engine;
      try {
        engine = eio.attach(server, opts);
      } catch (err) {
        if (err && err.code === "ERR_EIO_NOT_IMPLEMENTED") {
          send({ type: "unsupported", code: err.code, message: err.message });
          process.exit(0);
        }
        throw err;
      }
      echo(engine);
      server.listen(0, "127.0.0.1", () => ready(engine, server.address().port));
      break;
    }
    case "engine.io": {
      const eio = require(path.join(depsModules, "engine.io"));
      const wsDir = path.dirname(
        require.resolve("ws/package.json", { paths: [path.join(depsModules, "engine.io")] }),
      );
      let bufferutil = null;
      try {
        const resolved = require.resolve("bufferutil", { paths: [wsDir] });
        if (typeof require(resolved).mask === "function") bufferutil = resolved;
      } catch (_) {
        // reported as null: ws then masks in JS
      }
      const engine = eio.listen(0, opts, () =>
        ready(engine, engine.httpServer.address().port, {
          version: require(path.join(depsModules, "engine.io", "package.json")).version,
          ws: require(path.join(wsDir, "package.json")).version,
          bufferutil,
        }),
      );
      echo(engine);
      break;
    }
    default:
      throw new Error(`unknown server kind ${kind}`);
  }
}

process.on("disconnect", () => process.exit(0));
// A clean exit (so that `node --cpu-prof` writes its profile when run by hand).
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));
main();
