"use strict";

// One Socket.IO backend on eio-rs, sharing rooms and broadcasts with the
// other backends through Redis (@socket.io/redis-adapter). Run several of
// them behind a load balancer that keeps each client on one backend (see
// haproxy-config.js and README.md).
//
//   node server.js [port] [name] [redis-url] [listen|attach]
//
// or with the environment variables PORT (3000), NAME (s1), REDIS_URL
// (redis://127.0.0.1:6379), MODE (listen) and HOST (127.0.0.1; 0.0.0.0 or ::
// when the load balancer is on another machine). Arguments win.
//
//   MODE=listen  the native listener of eio-rs: `listen()` + `io.bind(engine)`
//   MODE=attach  a Node http server: `attach(httpServer)` + `io.bind(engine)`

const http = require("node:http");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-adapter");
// In an application: require("eio-rs"). EIO_RS_PATH lets this example (and
// the test) run from a checkout of eio-rs, where the package is not installed.
const eio = require(process.env.EIO_RS_PATH || "eio-rs");

const [argPort, argName, argRedis, argMode] = process.argv.slice(2);
const PORT = Number(argPort ?? process.env.PORT ?? 3000);
const NAME = argName || process.env.NAME || "s1";
const REDIS_URL = argRedis || process.env.REDIS_URL || "redis://127.0.0.1:6379";
const MODE = argMode || process.env.MODE || "listen";
const HOST = process.env.HOST || "127.0.0.1";

// The engine options Socket.IO would pass to engine.io. IO_COOKIE=1: the
// handshake sets Engine.IO's `io` cookie (the session id), from which
// HAProxy learns each session's backend in the "sid" mode of haproxy-config.js.
const engineOptions = { path: "/socket.io/", cookie: Boolean(process.env.IO_COOKIE) };

function log(...args) {
  console.log(`[${NAME} ${MODE}]`, ...args);
}

/** Starts the engine; resolves with it, its port and how to close its listener. */
function startEngine() {
  return new Promise((resolve, reject) => {
    if (MODE === "listen") {
      // engine.io's listen(port) accepts what Node's server.listen() does,
      // so { port, host } binds one address only.
      const engine = eio.listen({ port: PORT, host: HOST }, engineOptions, () =>
        resolve({
          engine,
          port: engine.httpServer.address().port,
          closeListener: () => engine.httpServer.close(),
        }),
      );
      engine.httpServer.once("error", reject);
    } else if (MODE === "attach") {
      const httpServer = http.createServer((req, res) => {
        // Everything outside /socket.io/ is the application's.
        res.writeHead(200, { "Content-Type": "text/plain" }).end(`${NAME}\n`);
      });
      const engine = eio.attach(httpServer, engineOptions);
      httpServer.once("error", reject);
      httpServer.listen(PORT, HOST, () =>
        resolve({
          engine,
          port: httpServer.address().port,
          closeListener: () => {
            httpServer.close();
            httpServer.closeAllConnections?.();
          },
        }),
      );
    } else {
      reject(new Error(`MODE must be "listen" or "attach", not ${JSON.stringify(MODE)}`));
    }
  });
}

async function main() {
  const { engine, port, closeListener } = await startEngine();

  const io = new Server();
  io.bind(engine);

  // Two connections: a subscribed Redis connection can only (un)subscribe.
  // node-redis reconnects by itself and subscribes again; until then
  // commands wait in its offline queue.
  const pubClient = createClient({
    url: REDIS_URL,
    socket: { reconnectStrategy: (retries) => Math.min(50 * (retries + 1), 1000) },
  });
  const subClient = pubClient.duplicate();
  for (const [which, client] of [
    ["pub", pubClient],
    ["sub", subClient],
  ]) {
    // Without an "error" listener a lost Redis connection would end the
    // process. Logged once per outage.
    let down = false;
    client.on("error", (err) => {
      if (!down) log(`redis ${which}: ${err.message || err.code || err}`);
      down = true;
    });
    client.on("ready", () => {
      if (down) log(`redis ${which}: connected again`);
      down = false;
    });
  }
  await Promise.all([pubClient.connect(), subClient.connect()]);
  io.adapter(createAdapter(pubClient, subClient));

  // What clients can ask; the test (__test__/cluster.spec.js) uses all of it.
  io.on("connection", (socket) => {
    socket.data.backend = NAME;
    socket.on("whoami", (ack) => ack(NAME));
    socket.on("echo", (value, ack) => ack(value, NAME));
    socket.on("join", (room, ack) => {
      socket.join(room);
      ack(NAME);
    });
    // To every member of `room`, on every backend (once each).
    socket.on("broadcast", (room, payload, ack) => {
      io.to(room).emit("room-message", payload, NAME);
      ack(NAME);
    });
    // The members of `room` on every backend.
    socket.on("fetch-room", async (room, ack) => {
      try {
        const sockets = await io.in(room).fetchSockets();
        ack(sockets.map((s) => ({ id: s.id, backend: s.data.backend, rooms: [...s.rooms] })));
      } catch (err) {
        ack({ error: err.message });
      }
    });
    // A message to the other backends, which answer with their names.
    socket.on("server-emit", (token, ack) => {
      io.serverSideEmit("relay", token, NAME, (err, replies) =>
        ack(err ? { error: err.message, replies } : replies),
      );
    });
  });
  // From serverSideEmit() on another backend: tell our own clients, answer.
  io.on("relay", (token, from, reply) => {
    io.local.emit("relayed", token, from, NAME);
    reply(NAME);
  });

  // "Session ID unknown" (code 1) here means the load balancer sent a
  // request to a backend that did not open that session: stickiness broke.
  const connectionErrors = [];
  engine.on("connection_error", (err) => {
    const url = (err.req && err.req.url) || "";
    const sid = new URL(url, "http://localhost").searchParams.get("sid");
    connectionErrors.push({ code: err.code, message: err.message, sid });
    log(`connection_error ${err.code} ${err.message} ${url}`);
  });

  let stopping = false;
  async function stop(signal) {
    if (stopping) return;
    stopping = true;
    log(`${signal}: closing`);
    // Don't take new connections, then end every session: clients reconnect,
    // and the load balancer sends them to the other backends.
    setTimeout(() => process.exit(0), 3000).unref();
    closeListener();
    await io.close();
    // close() since node-redis v5; quit() before.
    await Promise.allSettled([pubClient, subClient].map((c) => (c.close ? c.close() : c.quit())));
    process.exit(0);
  }
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  // Started by start.js or the test: stop with them, even if they crash.
  process.on("disconnect", () => stop("parent gone"));

  log(`listening on ${HOST}:${port}, redis ${REDIS_URL}`);
  // When started with an IPC channel (start.js, the test): say so, and
  // answer questions about this backend.
  if (process.send) {
    process.on("message", (msg) => {
      if (msg && msg.type === "stats") {
        process.send({
          type: "stats",
          id: msg.id,
          name: NAME,
          clientsCount: engine.clientsCount,
          sockets: io.of("/").sockets.size,
          connectionErrors,
        });
      }
    });
    process.send({ type: "ready", name: NAME, mode: MODE, port, pid: process.pid });
  }
}

main().catch((err) => {
  console.error(`[${NAME}]`, err);
  process.exit(1);
});
