"use strict";

const { fork, spawn } = require("node:child_process");
const path = require("node:path");
const { listen } = require("..");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const { Socket: ClientSocket } = require("engine.io-client");

/** Starts a native engine on `port` (an ephemeral one by default). */
function start(opts = {}, port = 0) {
  return new Promise((resolve, reject) => {
    const engine = listen(port, opts, () => {
      const { port } = engine.httpServer.address();
      resolve({ engine, port, url: `http://127.0.0.1:${port}` });
    });
    engine.httpServer.once("error", reject);
  });
}

/** Closes the engine and its listener; resolves when the listener is closed. */
function stop(engine) {
  return new Promise((resolve) => {
    engine.close();
    if (engine.httpServer.listening) engine.httpServer.close(() => resolve());
    else resolve();
  });
}

/** Resolves with the arguments of the next `event` on `emitter`, or rejects after `ms`. */
function once(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for "${event}"`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** A real engine.io-client socket. */
function client(port, opts = {}) {
  return new ClientSocket(`ws://127.0.0.1:${port}`, opts);
}

/** Collects `n` events of `event`, rejecting after `ms`. */
function collect(emitter, event, n, ms = 5000) {
  return new Promise((resolve, reject) => {
    const got = [];
    const timer = setTimeout(
      () => reject(new Error(`got ${got.length} of ${n} "${event}" events`)),
      ms,
    );
    const on = (arg) => {
      got.push(arg);
      if (got.length === n) {
        clearTimeout(timer);
        emitter.off(event, on);
        resolve(got);
      }
    };
    emitter.on(event, on);
  });
}

/** An Engine.IO v4 polling handshake over plain HTTP; resolves with the open packet. */
async function handshake(url, query = "") {
  const res = await fetch(`${url}/engine.io/?EIO=4&transport=polling${query}`);
  const body = await res.text();
  return { res, open: JSON.parse(body.slice(1).split("\x1e")[0]), body };
}

/**
 * Starts `ws-clients.js` (many raw WebSocket clients) in a child process,
 * killed when the test `t` ends; returns `call(op, args, ms)`, which sends it
 * a command and resolves with the answer, rejecting if it fails, if the child
 * exits first, or after `ms`.
 */
function clientsProcess(t) {
  const child = fork(path.join(__dirname, "ws-clients.js"), [], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const pending = new Map();
  let next = 0;
  child.on("message", (m) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m);
    else p.reject(new Error(`clients process: ${m.error}`));
  });
  child.on("exit", (code, signal) => {
    for (const p of pending.values())
      p.reject(new Error(`clients process exited (${code ?? signal})`));
    pending.clear();
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  });
  return (op, args = {}, ms = 60_000) =>
    new Promise((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`clients process: "${op}" timed out after ${ms} ms`));
      }, ms);
      pending.set(id, {
        resolve: (m) => (clearTimeout(timer), resolve(m)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      child.send({ id, op, ...args });
    });
}

/** Waits (boundedly) until `check()` is true; fails with `what` otherwise. */
async function until(check, what, ms = 10_000) {
  for (let waited = 0; !check(); waited += 10) {
    if (waited >= ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * What the engine keeps per session or request: the size of every Map or
 * Set the facade holds, its `clients` table and counter, and the native
 * session count.
 */
function tracked(engine) {
  const sizes = {};
  for (const [key, value] of Object.entries(engine)) {
    if (value instanceof Map || value instanceof Set) sizes[key] = value.size;
  }
  sizes.clients = Object.keys(engine.clients).length;
  sizes.clientsCount = engine.clientsCount;
  sizes.native = engine._native.clientsCount;
  return sizes;
}

/**
 * Runs `script` in a fresh Node in the repository root (`env` added to
 * this process's); resolves with its exit code, stdout, stderr and both
 * interleaved (`all`), or rejects if it has not exited after `ms`.
 */
function runNode(script, env = {}, ms = 15_000) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", script], {
      cwd: path.join(__dirname, ".."),
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    let all = "";
    child.stdout.on("data", (d) => ((out += d), (all += d)));
    child.stderr.on("data", (d) => ((err += d), (all += d)));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the process did not exit by itself:\n${all}`));
    }, ms);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err, all });
    });
  });
}

module.exports = {
  runNode,
  start,
  stop,
  once,
  client,
  collect,
  handshake,
  clientsProcess,
  until,
  tracked,
};
