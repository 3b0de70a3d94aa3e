"use strict";

// Everything on one machine, to try it: a Redis server, three Socket.IO
// backends (server.js: s1 and s3 on eio-rs's native listen(), s2 on
// attach() to a Node http server) and HAProxy in front, each on a free port.
//
//   node start.js              then connect to the URL it prints
//   STICKY=sid node start.js   HAProxy keeps sessions by their sid (haproxy-config.js)
//
// PORT and REDIS_PORT choose those ports (free ones otherwise).
// Ctrl-C stops everything it started. Needs `redis-server` and `haproxy` on
// the PATH (Debian/Ubuntu: apt-get install redis-server haproxy).
// The test (__test__/cluster.spec.js) starts the same processes with the
// functions exported here.

const { spawn, fork } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { haproxyConfig } = require("./haproxy-config");

const HOST = "127.0.0.1";

/** A TCP port nobody listens on right now (the OS picks it). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * The path of `command` if it is an executable on the PATH or in an sbin
 * directory (Debian puts haproxy in /usr/sbin, which a user's PATH may lack).
 */
function which(command) {
  const dirs = (process.env.PATH || "").split(path.delimiter).filter(Boolean);
  for (const dir of [...dirs, "/usr/local/sbin", "/usr/sbin", "/sbin"]) {
    const file = path.join(dir, command);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {}
  }
  return null;
}

/**
 * Keeps the last `limit` characters a child writes (child.output), and
 * copies its lines, prefixed, to this process's stdout when `echo` is set.
 */
function capture(child, label, echo, limit = 64 * 1024) {
  child.output = "";
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    stream.setEncoding("utf8");
    stream.on("data", (text) => {
      child.output = (child.output + text).slice(-limit);
      if (echo)
        for (const line of text.split("\n"))
          if (line.trim()) process.stdout.write(label ? `${label} ${line}\n` : `${line}\n`);
    });
  }
  return child;
}

/** Resolves once `check()` resolves true, polling every `every` ms; rejects after `ms` or if `child` exits. */
async function waitFor(what, check, { child, ms = 10_000, every = 50 } = {}) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child && (child.exitCode !== null || child.signalCode !== null))
      throw new Error(
        `${what}: the process exited (${child.exitCode ?? child.signalCode})\n${child.output || ""}`,
      );
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}\n${(child && child.output) || ""}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Sends `request` to host:port and resolves with what comes back first ("" on error). */
function ask(port, request, ms = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect(port, HOST);
    let answer = "";
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(done, ms);
    socket.on("connect", () => (request ? socket.write(request) : done()));
    socket.on("data", (d) => {
      answer += d;
      done();
    });
    socket.on("error", done);
  });
}

/** Whether something accepts TCP connections on `port`. */
function accepting(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, HOST);
    socket.on("connect", () => (socket.destroy(), resolve(true)));
    socket.on("error", () => resolve(false));
  });
}

/**
 * Starts `redis-server` on `port`, without persistence, with its files in
 * `dir`; resolves with the child once it answers PING.
 */
async function startRedis({ port, dir, echo = false, onChild }) {
  const child = spawn(
    which("redis-server") || "redis-server",
    ["--port", String(port), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  if (onChild) onChild(child);
  capture(child, "[redis]", echo);
  child.on("error", () => {}); // ENOENT shows as an exit below
  await waitFor(
    `redis-server on port ${port}`,
    async () => (await ask(port, "PING\r\n")).startsWith("+PONG"),
    { child },
  );
  return child;
}

/**
 * Starts one backend (server.js) with an IPC channel; resolves with
 * `{ child, name, port, mode }` once it listens. `port` 0: the OS picks it.
 */
async function startBackend({
  name,
  port = 0,
  redisUrl,
  mode = "listen",
  echo = false,
  env = {},
  onChild,
}) {
  const child = fork(path.join(__dirname, "server.js"), [String(port), name, redisUrl, mode], {
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    env: { ...process.env, EIO_RS_PATH: eioPath(), ...env },
  });
  if (onChild) onChild(child);
  capture(child, "", echo);
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`backend ${name} did not start\n${child.output}`));
    }, 15_000);
    const onMessage = (m) => m && m.type === "ready" && (cleanup(), resolve(m));
    const onExit = (code, signal) => {
      cleanup();
      reject(new Error(`backend ${name} exited (${code ?? signal})\n${child.output}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    child.on("message", onMessage);
    child.on("exit", onExit);
  });
  return { child, name, port: ready.port, mode };
}

/** What server.js should require as eio-rs: the package if installed, else this checkout. */
function eioPath() {
  if (process.env.EIO_RS_PATH) return process.env.EIO_RS_PATH;
  try {
    require.resolve("eio-rs");
    return "eio-rs";
  } catch {
    return path.resolve(__dirname, "..", "..");
  }
}

/**
 * Writes haproxy-<port>.cfg into `dir` and starts HAProxy in the foreground on
 * `port`; resolves with the child once it accepts connections.
 */
async function startHaproxy({ port, backends, dir, sticky, echo = false, checkInterval, onChild }) {
  const cfg = path.join(dir, `haproxy-${port}.cfg`);
  fs.writeFileSync(cfg, haproxyConfig({ port, backends, sticky, checkInterval }));
  const child = spawn(which("haproxy") || "haproxy", ["-f", cfg, "-db"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (onChild) onChild(child);
  capture(child, "[haproxy]", echo);
  child.on("error", () => {});
  await waitFor(`haproxy on port ${port}`, () => accepting(port), { child });
  child.configFile = cfg;
  return child;
}

/** Ends `child` by its PID: SIGTERM, then SIGKILL after `ms`; resolves once it exited. */
function stopProcess(child, ms = 3000) {
  return new Promise((resolve) => {
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null)
      return resolve();
    const timer = setTimeout(() => {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {}
    }, ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    try {
      process.kill(child.pid, "SIGTERM");
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

async function main() {
  for (const command of ["redis-server", "haproxy"]) {
    if (!which(command)) {
      console.error(`${command} is not on the PATH (Debian/Ubuntu: apt-get install ${command})`);
      process.exit(1);
    }
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eio-rs-cluster-"));
  const children = [];
  let stopping = false;
  const stopAll = async (code) => {
    if (stopping) return;
    stopping = true;
    console.log("stopping...");
    // The load balancer first, then the backends, Redis last.
    for (const child of [...children].reverse()) await stopProcess(child);
    fs.rmSync(dir, { recursive: true, force: true });
    process.exit(code);
  };
  process.on("SIGINT", () => stopAll(0));
  process.on("SIGTERM", () => stopAll(0));
  process.on("exit", () => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null)
        try {
          process.kill(child.pid, "SIGKILL");
        } catch {}
  });

  const sticky = process.env.STICKY || "cookie";
  try {
    const redisPort = Number(process.env.REDIS_PORT) || (await freePort());
    const onChild = (child) => children.push(child);
    await startRedis({ port: redisPort, dir, onChild });
    const redisUrl = `redis://${HOST}:${redisPort}`;
    const backends = [];
    for (const [name, mode] of [
      ["s1", "listen"],
      ["s2", "attach"],
      ["s3", "listen"],
    ]) {
      const backend = await startBackend({
        name,
        redisUrl,
        mode,
        echo: true,
        onChild,
        // For sticky "sid": the handshake sets the `io` cookie HAProxy learns from.
        env: sticky === "sid" ? { IO_COOKIE: "1" } : {},
      });
      backends.push({ name, host: HOST, port: backend.port });
    }
    const port = Number(process.env.PORT) || (await freePort());
    const haproxy = await startHaproxy({ port, backends, dir, sticky, echo: true, onChild });
    const clientOptions = sticky === "cookie" ? "{ withCredentials: true }" : "{}";
    console.log(`
redis-server  ${redisUrl}
backends      ${backends.map((b) => `${b.name}=${b.host}:${b.port}`).join("  ")}
haproxy       ${haproxy.configFile} (sticky: ${sticky})

Socket.IO:    http://${HOST}:${port}   (path /socket.io/)

For example, in another terminal:
  node -e 'const s = require("socket.io-client").io("http://${HOST}:${port}", ${clientOptions});
    s.on("connect", () => s.emit("whoami", (n) => { console.log("on", n); s.close(); }))'

Ctrl-C stops everything.`);
    for (const child of children)
      child.on("exit", (code, signal) => {
        if (!stopping) console.log(`a process exited (${code ?? signal})\n${child.output}`);
      });
  } catch (err) {
    console.error(err.message);
    await stopAll(1);
  }
}

module.exports = {
  freePort,
  which,
  startRedis,
  startBackend,
  startHaproxy,
  stopProcess,
  waitFor,
  accepting,
};

if (require.main === module) main();
