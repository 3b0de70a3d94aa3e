"use strict";

// One benchmark server, run by bench/run.js in a fresh child process:
//
//   node --expose-gc bench/server.js <kind> '<engine options as JSON>'
//
// kind: "eio-native" (eio-rs listen()), "eio-attach" (eio-rs attach() to a
// Node http.Server), "engine.io" (npm engine.io from bench/.deps, listen()),
// "engineioxide" (the pure-Rust reference, bench/reference: a child process
// this one only relays to), "node-http" (Node's HTTP server alone, the floor
// of attach() polling). Every Engine.IO kind runs the same echo handler. The driver
// talks to it over IPC:
//   -> { cmd: "gc" }                  <- { type: "gc", clientsCount, memory }
//   -> { cmd: "broadcast", seq, size } <- { type: "broadcast", seq, n, jsUs }
//   -> { cmd: "eld-reset" }           <- { type: "eld-reset" }
//   -> { cmd: "eld" }                 <- { type: "eld", p50Ms, p99Ms, maxMs, count }
// The last two with `eld` in the options (Node kinds; run.js sets it for the
// throughput scenarios): perf_hooks.monitorEventLoopDelay({ resolution: 10 })
// runs from the start, `eld-reset` clears it at the start of the measured
// window and `eld` reads it at the end; the delays are the histogram's
// figures less the 10 ms resolution (each sample is the whole interval of the
// 10 ms timer), clamped at 0.
// With `sio` in the options, Socket.IO 4.8 is bound to the engine (no echo)
// and a broadcast is `io.emit("b", data)` (`sio: "room"`: to a room that
// every other session joined, `io.to("even").emit("b", data)`).
// and it answers { type: "ready", port, pid, ... } once listening, or
// { type: "unsupported", code, message } when the mode is not implemented.
// With `wt` in the options (eio-native and eio-attach), WebTransport is
// served too, on the engine's own HTTP/3 endpoint (UDP, a port of its own,
// 127.0.0.1) with a self-signed certificate made for this process; `ready`
// then has its UDP port as `wtPort`.

const { spawn } = require("child_process");
const fs = require("fs");
const http = require("http");
const path = require("path");
const readline = require("readline");

const kind = process.argv[2];
// `tls` ({ key, cert, h2 }: PEM file paths): serve over TLS, eio-rs's
// listen() natively (HTTP/2 by ALPN), the others on Node's https server, or
// with `h2` on http2.createSecureServer({ allowHTTP1: true }).
const { tls, sio, wt, eld, ...opts } = JSON.parse(process.argv[3] || "{}");
const pem = tls && { key: fs.readFileSync(tls.key), cert: fs.readFileSync(tls.cert) };
if (wt) {
  const { key, cert } = require("../__test__/wt/cert.js").makeCertificate({});
  opts.transports = ["polling", "websocket", "webtransport"];
  opts.webtransport = { port: 0, host: "127.0.0.1", key, cert };
}

/** `ready`'s extra fields: the WebTransport endpoint's UDP port, when served. */
function wtInfo(engine) {
  if (!wt) return undefined;
  const address = engine.webTransportAddress();
  if (!address) throw new Error("bench: the engine serves no WebTransport endpoint");
  return { wtPort: address.port };
}

/** The Node server attach() modes use: http, or https / http2 for `tls`. */
function nodeServer() {
  if (!tls) return http.createServer();
  if (tls.h2) return require("http2").createSecureServer({ ...pem, allowHTTP1: true });
  return require("https").createServer(pem);
}
const root = path.resolve(__dirname, "..");
const depsModules = path.join(__dirname, ".deps", "node_modules");

function send(msg) {
  if (process.send) process.send(msg);
  else console.log(JSON.stringify(msg));
}

/** The echo handler, or Socket.IO (see `sio`) bound to the engine. */
function echo(engine) {
  if (sio) return socketIo(engine);
  engine.on("connection", (socket) => {
    socket.on("message", (data) => socket.send(data));
  });
}

/** Socket.IO on `engine`; the broadcast command emits through it. */
let io = null;
function socketIo(engine) {
  const { Server } = require("socket.io");
  io = new Server({ serveClient: false });
  io.bind(engine);
  let n = 0;
  io.on("connection", (socket) => {
    if (n++ % 2 === 0) socket.join("even");
  });
}

/**
 * The event-loop delay monitor (`eld`), for the Node kinds: answers
 * `eld-reset` and `eld` (see above). Started before the server, so its
 * 10 ms timer runs through the warm-up too.
 */
const ELD_RESOLUTION_MS = 10;
let eldMonitor = null;
function eventLoopDelay() {
  const { monitorEventLoopDelay } = require("perf_hooks");
  eldMonitor = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  eldMonitor.enable();
  const ms = (ns) => Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS);
  process.on("message", (msg) => {
    if (msg.cmd === "eld-reset") {
      eldMonitor.reset();
      send({ type: "eld-reset" });
    } else if (msg.cmd === "eld") {
      const h = eldMonitor;
      send({
        type: "eld",
        p50Ms: h.count ? ms(h.percentile(50)) : null,
        p99Ms: h.count ? ms(h.percentile(99)) : null,
        maxMs: h.count ? ms(h.max) : null,
        count: h.count,
      });
    }
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
      if (io && sio === "room") {
        io.to("even").emit("b", data);
        n = io.of("/").adapter.rooms.get("even").size;
      } else if (io) {
        io.emit("b", data);
        n = io.of("/").sockets.size;
      } else {
        const clients = engine.clients;
        for (const id in clients) {
          clients[id].send(data);
          n++;
        }
      }
      const jsUs = Number(process.hrtime.bigint() - t0) / 1e3;
      send({ type: "broadcast", seq: msg.seq, n, jsUs });
    }
  });
  send(
    Object.assign(
      { type: "ready", port, pid: process.pid, node: process.version, eld: !!eldMonitor },
      extra,
    ),
  );
}

/**
 * The engineioxide echo server (bench/reference, built by run.js). Its pid
 * goes into `ready`, so the driver samples the Rust process, not this one;
 * `gc` is relayed to its stdin, which answers with the open sessions.
 */
function reference() {
  const bin = path.join(__dirname, "reference", "target", "release", "eio-reference");
  const args = opts.pingInterval ? ["--ping-interval", String(opts.pingInterval)] : [];
  const child = spawn(bin, args, { stdio: ["pipe", "pipe", "inherit"] });
  child.on("error", (err) => {
    console.error(`eio-reference: ${err.message}`);
    process.exit(1);
  });
  process.on("exit", () => child.kill("SIGKILL"));
  child.on("exit", (code, signal) => {
    console.error(`eio-reference exited (code ${code}, signal ${signal})`);
    process.exit(1);
  });
  const replies = [];
  let pid = null;
  readline.createInterface({ input: child.stdout }).on("line", (line) => {
    const m = JSON.parse(line);
    if (pid === null) {
      pid = m.pid;
      process.on("message", (msg) => {
        if (msg.cmd !== "gc") return;
        replies.push(({ clients }) => {
          const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
          const rss = Number((/VmRSS:\s+(\d+) kB/.exec(status) || [])[1]) * 1024;
          send({ type: "gc", clientsCount: clients, memory: { rss } });
        });
        child.stdin.write("gc\n");
      });
      send({ type: "ready", port: m.port, pid, node: process.version });
    } else {
      const reply = replies.shift();
      if (reply) reply(m);
    }
  });
}

/**
 * Node's HTTP server alone, answering the polling echo with no Engine.IO
 * logic: a handshake, one held GET per session, and a POST answered `ok`
 * whose body goes to the held GET as it is. What any `attach()` server pays
 * for Node's HTTP handling; a floor, not an Engine.IO server (no heartbeat,
 * no decoding), so only the polling echo runs it.
 */
function nodeHttp() {
  const sessions = new Map();
  let next = 0;
  const answer = (res, type, body) => {
    res.writeHead(200, { "Content-Type": type, "Content-Length": Buffer.byteLength(body) });
    res.end(body);
  };
  const server = http.createServer((req, res) => {
    // The sid alone, found without parsing the query (which eio-rs's
    // attach() does not parse in JS either).
    const at = req.url.indexOf("sid=");
    const session = at < 0 ? undefined : sessions.get(req.url.slice(at + 4).split("&", 1)[0]);
    if (!session) {
      const sid = `s${next++}`;
      sessions.set(sid, { get: null, queued: [] });
      const open = { sid, upgrades: [], pingInterval: 25000, pingTimeout: 20000, maxPayload: 1e6 };
      return answer(res, "text/plain; charset=UTF-8", `0${JSON.stringify(open)}`);
    }
    if (req.method === "GET") {
      if (!session.queued.length) {
        session.get = res;
        res.on("close", () => session.get === res && (session.get = null));
        return;
      }
      const body = session.queued.join("\x1e");
      session.queued = [];
      return answer(res, "text/plain; charset=UTF-8", body);
    }
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      // The held GET first, then the POST's `ok`: an Engine.IO server runs
      // the message handlers (whose sends answer the GET) before it answers
      // the POST. The other order costs less (the client is still awake when
      // the second answer comes) but no engine answers that way.
      if (session.get) {
        const get = session.get;
        session.get = null;
        answer(get, "text/plain; charset=UTF-8", body);
      } else session.queued.push(body);
      answer(res, "text/html", "ok");
    });
  });
  server.listen(0, "127.0.0.1", () =>
    send({
      type: "ready",
      port: server.address().port,
      pid: process.pid,
      node: process.version,
      eld: !!eldMonitor,
    }),
  );
}

function main() {
  // The reference's event loop is not this process's: no monitor there.
  if (eld && kind !== "engineioxide") eventLoopDelay();
  switch (kind) {
    case "eio-native": {
      const eio = require(root);
      const engine = eio.listen(0, { ...opts, ...pem }, () =>
        ready(engine, engine.httpServer.address().port, wtInfo(engine)),
      );
      echo(engine);
      break;
    }
    case "eio-attach": {
      const eio = require(root);
      const server = nodeServer();
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
      server.listen(0, "127.0.0.1", () => ready(engine, server.address().port, wtInfo(engine)));
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
      const info = {
        version: require(path.join(depsModules, "engine.io", "package.json")).version,
        ws: require(path.join(wsDir, "package.json")).version,
        bufferutil,
      };
      if (tls) {
        const server = nodeServer();
        const engine = eio.attach(server, opts);
        echo(engine);
        server.listen(0, "127.0.0.1", () => ready(engine, server.address().port, info));
        break;
      }
      const engine = eio.listen(0, opts, () =>
        ready(engine, engine.httpServer.address().port, info),
      );
      echo(engine);
      break;
    }
    case "engineioxide":
      reference();
      break;
    case "node-http":
      nodeHttp();
      break;
    default:
      throw new Error(`unknown server kind ${kind}`);
  }
}

process.on("disconnect", () => process.exit(0));
// A clean exit (so that `node --cpu-prof` writes its profile when run by hand).
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));
main();
