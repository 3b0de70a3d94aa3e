"use strict";

// Socket.IO on eio-rs on every core of one machine, with Node's `cluster`
// module and no Redis: the primary accepts the connections and hands each
// to the worker that owns its session (@socket.io/sticky), and the workers
// share rooms and broadcasts through the primary (@socket.io/cluster-adapter).
//
//   node node-cluster.js            PORT (3000), HOST (127.0.0.1), WORKERS (CPU count)
//
// The workers use attach(): their Node http server never listens, the
// primary's connections are injected into it. eio-rs's native listen()
// does not fit here: it binds its own socket in Rust, outside of Node's
// cluster port sharing (see README.md).

const cluster = require("node:cluster");
const http = require("node:http");
const os = require("node:os");
const { setupPrimary: setupSticky, setupWorker } = require("@socket.io/sticky");
const { setupPrimary: setupClusterAdapter, createAdapter } = require("@socket.io/cluster-adapter");

const PORT = Number(process.env.PORT ?? 3000);
const HOST = process.env.HOST || "127.0.0.1";
const WORKERS = Number(process.env.WORKERS) || os.availableParallelism?.() || os.cpus().length;

if (cluster.isPrimary) primary();
else worker();

function primary() {
  const httpServer = http.createServer();
  // Routes each request by the `sid` in its URL to the worker that opened
  // the session; requests without one (handshakes) to the least busy worker.
  setupSticky(httpServer, { loadBalancingMethod: "least-connection" });
  // Relays the cluster adapter's messages between workers.
  setupClusterAdapter();
  // The primary sends the first bytes of each connection as a Buffer, which
  // the default (JSON) IPC serialization would turn into a plain object.
  cluster.setupPrimary({ serialization: "advanced" });

  const workers = new Map();
  let ready = 0;
  for (let i = 1; i <= WORKERS; i++) {
    const w = cluster.fork({ WORKER_NAME: `w${i}` });
    workers.set(w.id, `w${i}`);
    w.on("message", (m) => {
      if (m && m.type === "worker-ready" && ++ready === WORKERS) listen();
    });
  }
  let stopping = false;
  cluster.on("exit", (w, code, signal) => {
    if (!stopping) console.log(`[primary] worker ${workers.get(w.id)} exited (${code ?? signal})`);
  });

  function listen() {
    httpServer.listen(PORT, HOST, () => {
      const { port } = httpServer.address();
      console.log(`[primary] ${WORKERS} workers; listening on http://${HOST}:${port}`);
      if (process.send) {
        const pids = Object.values(cluster.workers).map((w) => w.process.pid);
        process.send({ type: "ready", port, pid: process.pid, workers: pids });
      }
    });
  }

  const stop = () => {
    if (stopping) return;
    stopping = true;
    httpServer.close();
    for (const w of Object.values(cluster.workers)) w.process.kill("SIGTERM");
    setTimeout(() => process.exit(0), 3000).unref();
    cluster.on("exit", () => Object.keys(cluster.workers).length === 0 && process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("disconnect", stop); // started by the test, which went away
}

function worker() {
  const { Server } = require("socket.io");
  // In an application: require("eio-rs"); see server.js.
  const eio = require(process.env.EIO_RS_PATH || "eio-rs");
  const NAME = process.env.WORKER_NAME;

  const httpServer = http.createServer();
  const engine = eio.attach(httpServer, { path: "/socket.io/" });
  const io = new Server();
  io.bind(engine);
  io.adapter(createAdapter());
  // setupWorker() reads `io.httpServer` (to take the primary's connections)
  // and `io.engine`; a Server bound with io.bind() has no httpServer, so it
  // gets both explicitly.
  setupWorker({ httpServer, engine });

  io.on("connection", (socket) => {
    socket.on("whoami", (ack) => ack(NAME));
    socket.on("echo", (value, ack) => ack(value, NAME));
    socket.on("join", (room, ack) => {
      socket.join(room);
      ack(NAME);
    });
    socket.on("broadcast", (room, payload, ack) => {
      io.to(room).emit("room-message", payload, NAME);
      ack(NAME);
    });
    socket.on("fetch-room", async (room, ack) => {
      const sockets = await io.in(room).fetchSockets();
      ack(sockets.map((s) => s.id));
    });
  });

  const connectionErrors = [];
  engine.on("connection_error", (err) => {
    connectionErrors.push({ code: err.code, message: err.message });
    console.log(`[${NAME}] connection_error ${err.code} ${err.message} ${err.req && err.req.url}`);
  });
  process.on("SIGTERM", () => {
    io.close();
    process.exit(0);
  });
  process.send({ type: "worker-ready", name: NAME });
}
