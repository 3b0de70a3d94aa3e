#!/usr/bin/env node
"use strict";

// Side-by-side benchmark: eio-rs (native listen(), attach()) against npm
// engine.io 6.6.11 (+ bufferutil), with engineioxide (bench/reference, pure
// Rust) and Node's HTTP server alone (the polling floor) as references.
// See bench/README.md.
//
//   node bench/run.js [--quick] [--reps N] [--scenario NAME[,NAME]] [--pin]
//                     [--servers eio-native,eio-attach,engine.io,engineioxide,node-http]
//                     [--write-results] [--no-build]
//
// Each measurement starts its server in a fresh child process
// (bench/server.js) and drives it with the Rust load generator
// (bench/loadgen). The server's CPU time (utime + stime) and RSS are read
// from /proc before and after each measured window.

const { spawn, spawnSync, execFileSync } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const readline = require("readline");

const BENCH = __dirname;
const ROOT = path.resolve(BENCH, "..");
const DEPS = path.join(BENCH, ".deps");
const LOADGEN_DIR = path.join(BENCH, "loadgen");
const LOADGEN = path.join(LOADGEN_DIR, "target", "release", "eio-loadgen");
const REFERENCE_DIR = path.join(BENCH, "reference");
const REFERENCE_BIN = path.join(REFERENCE_DIR, "target", "release", "eio-reference");
const SERVER_JS = path.join(BENCH, "server.js");
const ENGINE_IO_VERSION = "6.6.11";
const BUFFERUTIL_VERSION = "4.1.0";
const ENGINEIOXIDE_VERSION = lockedVersion(REFERENCE_DIR, "engineioxide");
const CLK_TCK = clkTck();

const SERVERS = {
  "eio-native": "eio-rs listen()",
  "eio-attach": "eio-rs attach()",
  "engine.io": `engine.io ${ENGINE_IO_VERSION}`,
  engineioxide: `engineioxide ${ENGINEIOXIDE_VERSION} (pure Rust)`,
  "node-http": "Node http alone (no Engine.IO)",
};
const BASELINE = "engine.io";
// Not a candidate: how far a server with no JS at all gets on this machine.
const REFERENCE = "engineioxide";
// Not a candidate either: what Node's HTTP server alone costs per polling
// message, which every attach() server pays (bench/server.js `nodeHttp`).
const FLOOR = "node-http";

// ------------------------------------------------------------------ options

function parseArgs(argv) {
  const o = {
    quick: false,
    reps: null,
    scenarios: [],
    pin: false,
    servers: null,
    writeResults: false,
    build: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--quick") o.quick = true;
    else if (a === "--reps") o.reps = Math.max(1, parseInt(val(), 10) || 1);
    else if (a === "--scenario") o.scenarios.push(...val().split(",").filter(Boolean));
    else if (a === "--pin") o.pin = true;
    else if (a === "--servers") o.servers = val().split(",").filter(Boolean);
    else if (a === "--write-results") o.writeResults = true;
    else if (a === "--no-build") o.build = false;
    else if (a === "-h" || a === "--help") {
      console.log(
        fs
          .readFileSync(__filename, "utf8")
          .split("\n")
          .slice(3, 16)
          .join("\n")
          .replace(/^\/\/ ?/gm, ""),
      );
      console.log(
        `scenarios: ${scenarioList(true)
          .map((s) => s.name)
          .join(", ")}`,
      );
      process.exit(0);
    } else die(`unknown option ${a} (see --help)`);
  }
  if (o.reps === null) o.reps = o.quick ? 1 : 3;
  return o;
}

// ---------------------------------------------------------------- scenarios

/**
 * The scenarios. `better`: whether a higher or lower value wins.
 * `targets`: from the issue, checked in RESULTS.md.
 */
function scenarioList(quick) {
  const warmup = quick ? 500 : 2000;
  const duration = quick ? 2000 : 5000;
  const echo = ["eio-native", "eio-attach", "engine.io", REFERENCE];
  const noAttach = ["eio-native", "engine.io", REFERENCE];
  const idleSteps = quick ? [500, 1000, 2000] : [1000, 2000, 4000, 8000];
  return [
    {
      name: "ws-64",
      title: "WebSocket echo, 64 B text, 100 connections",
      kind: "throughput",
      servers: echo,
      unit: "msg / server CPU-s",
      better: "higher",
      loadgen: [
        "ws-echo",
        "--conns",
        100,
        "--size",
        64,
        "--warmup-ms",
        warmup,
        "--duration-ms",
        duration,
      ],
      targets: { native: [">=", 2.0], attach: [">=", 1.8] },
    },
    {
      name: "ws-1k",
      title: "WebSocket echo, 1 KiB text, 100 connections",
      kind: "throughput",
      servers: echo,
      unit: "msg / server CPU-s",
      better: "higher",
      loadgen: [
        "ws-echo",
        "--conns",
        100,
        "--size",
        1024,
        "--warmup-ms",
        warmup,
        "--duration-ms",
        duration,
      ],
      targets: { native: [">=", 2.0], attach: [">=", 1.8] },
    },
    {
      name: "ws-16k-bin",
      title: "WebSocket echo, 16 KiB binary, 50 connections",
      kind: "throughput",
      servers: echo,
      unit: "msg / server CPU-s",
      better: "higher",
      loadgen: [
        "ws-echo",
        "--conns",
        50,
        "--size",
        16384,
        "--binary",
        "--warmup-ms",
        warmup,
        "--duration-ms",
        duration,
      ],
      targets: { native: [">=", 1.35] },
    },
    {
      name: "poll-64",
      title: "Polling echo, 64 B, 50 sessions",
      kind: "throughput",
      servers: [...echo, FLOOR],
      unit: "msg / server CPU-s",
      better: "higher",
      loadgen: [
        "poll-echo",
        "--conns",
        50,
        "--size",
        64,
        "--warmup-ms",
        warmup,
        "--duration-ms",
        duration,
      ],
      targets: { native: [">=", 3.8], attach: [">=", 1.5] },
    },
    ...["wss-64", "wss-16k-bin"].map((name) => {
      const big = name.endsWith("16k-bin");
      return {
        name,
        title: `Secure WebSocket (wss) echo, ${big ? "16 KiB binary, 50" : "64 B text, 100"} connections; engine.io on Node's https server`,
        kind: "throughput",
        servers: ["eio-native", "eio-attach", "engine.io"],
        unit: "msg / server CPU-s",
        better: "higher",
        tls: "https",
        loadgen: [
          "ws-echo",
          "--conns",
          big ? 50 : 100,
          "--size",
          big ? 16384 : 64,
          ...(big ? ["--binary"] : []),
          "--warmup-ms",
          warmup,
          "--duration-ms",
          duration,
        ],
      };
    }),
    {
      name: "h2-poll-64",
      title:
        "Polling echo over HTTP/2, 64 B, 50 sessions on 2 connections; engine.io on http2.createSecureServer({ allowHTTP1: true })",
      kind: "throughput",
      servers: ["eio-native", "eio-attach", "engine.io"],
      unit: "msg / server CPU-s",
      better: "higher",
      tls: "h2",
      loadgen: [
        "poll-echo",
        "--h2",
        "--conns",
        50,
        "--size",
        64,
        "--warmup-ms",
        warmup,
        "--duration-ms",
        duration,
      ],
    },
    ...["wt-64", "wt-16k-bin"].map((name) => {
      const big = name.endsWith("16k-bin");
      return {
        name,
        title: `WebTransport echo, ${big ? "16 KiB binary, 50" : "64 B text, 100"} connections`,
        kind: "throughput",
        // engine.io has no WebTransport server of its own: no baseline, the
        // same server's WebSocket echo of the same run instead.
        servers: ["eio-native", "eio-attach"],
        compareTo: big ? "ws-16k-bin" : "ws-64",
        unit: "msg / server CPU-s",
        better: "higher",
        wt: true,
        loadgen: [
          "wt-echo",
          "--conns",
          big ? 50 : 100,
          "--size",
          big ? 16384 : 64,
          ...(big ? ["--binary"] : []),
          "--warmup-ms",
          warmup,
          "--duration-ms",
          duration,
        ],
      };
    }),
    {
      name: "conn-rate",
      title: "Connection rate: WebSocket open, open packet, close (50 concurrent)",
      kind: "throughput",
      servers: noAttach,
      unit: "sessions / server CPU-s",
      better: "higher",
      loadgen: ["conn-rate", "--conns", 50, "--warmup-ms", warmup, "--duration-ms", duration],
      targets: { native: [">=", 5.0] },
    },
    {
      name: "idle-mem",
      title: `Idle memory: RSS slope over ${idleSteps.join("/")} WebSocket sessions, after GC`,
      kind: "memory",
      servers: noAttach,
      unit: "memory / session",
      better: "lower",
      sessions: quick ? 2000 : 8000,
      loadgen: ["idle", "--steps", idleSteps.join(","), "--duration-ms", 0],
      targets: { nativeAbs: ["<=", 4096] },
    },
    {
      name: "wt-idle-mem",
      title: `Idle memory: RSS slope over ${idleSteps.join("/")} WebTransport sessions, after GC`,
      kind: "memory",
      servers: ["eio-native"],
      compareTo: "idle-mem",
      unit: "memory / session",
      better: "lower",
      wt: true,
      loadgen: ["idle", "--wt", "--steps", idleSteps.join(","), "--duration-ms", 0],
    },
    {
      name: "heartbeat",
      title: `Heartbeat CPU: ${quick ? 2000 : 8000} idle WebSocket sessions, pingInterval 1000 ms`,
      kind: "cpu-rate",
      servers: noAttach,
      unit: "server CPU ms / s",
      better: "lower",
      sessions: quick ? 2000 : 8000,
      opts: { pingInterval: 1000 },
      loadgen: [
        "idle",
        "--conns",
        quick ? 2000 : 8000,
        "--warmup-ms",
        quick ? 1500 : 3000,
        "--duration-ms",
        quick ? 3000 : 10000,
      ],
      targets: { native: ["<=", 1 / 3.5] },
    },
    {
      name: "broadcast",
      title: `Broadcast: one 64 B message to 1000 sessions (${quick ? 20 : 200} broadcasts)`,
      kind: "broadcast",
      // The broadcast is a JS loop over engine.clients: no reference.
      servers: ["eio-native", "engine.io"],
      unit: "server CPU ms / broadcast",
      better: "lower",
      sessions: 1000,
      count: quick ? 20 : 200,
      size: 64,
      loadgen: ["broadcast", "--conns", 1000, "--count", quick ? 20 : 200, "--size", 64],
      targets: {},
    },
    ...sioBroadcasts(quick),
  ];
}

/**
 * Socket.IO 4.8 bound to each engine, its clients on WebSocket: `io.emit()`
 * to 1000 and 10 000 of them, and `io.to(room).emit()` to half of 10 000.
 * Measured per delivered message (server CPU) and per broadcast (the time
 * `emit()` holds the event loop).
 */
function sioBroadcasts(quick) {
  const count = quick ? 10 : 50;
  const cases = [
    { name: "sio-emit-1k", sessions: 1000, room: false },
    { name: "sio-emit-10k", sessions: quick ? 4000 : 10000, room: false },
    { name: "sio-room-10k", sessions: quick ? 4000 : 10000, room: true },
  ];
  return cases.map(({ name, sessions, room }) => {
    const receivers = room ? Math.ceil(sessions / 2) : sessions;
    const call = room ? 'io.to("even").emit()' : "io.emit()";
    return {
      name,
      title: `Socket.IO ${call}: a 100 B event to ${receivers} of ${sessions} WebSocket clients (${count} broadcasts, 20 ms apart)`,
      kind: "broadcast",
      servers: ["eio-native", "eio-attach", "engine.io"],
      opts: { sio: room ? "room" : true },
      unit: "server CPU µs / delivered message",
      better: "lower",
      perMessage: true,
      sessions,
      receivers,
      count,
      gapMs: 20,
      size: 100,
      loadgen: [
        "broadcast",
        "--sio",
        "--conns",
        sessions,
        "--receivers",
        receivers,
        "--count",
        count,
        "--size",
        100,
        "--timeout-ms",
        30000,
      ],
      targets: { native: ["<=", 1 / 3] },
    };
  });
}

// ------------------------------------------------------------------ helpers

function die(msg) {
  console.error(`bench: ${msg}`);
  process.exit(1);
}

function clkTck() {
  try {
    return parseInt(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }), 10) || 100;
  } catch (_) {
    return 100;
  }
}

/** The version of `name` in the Cargo.lock of the crate in `dir`. */
function lockedVersion(dir, name) {
  try {
    const lock = fs.readFileSync(path.join(dir, "Cargo.lock"), "utf8");
    return (new RegExp(`name = "${name}"\\nversion = "([^"]+)"`).exec(lock) || [])[1] || "?";
  } catch (_) {
    return "?";
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * CPU time (ms, all threads, utime + stime), the kernel's part of it (stime)
 * and RSS (bytes) of `pid`.
 */
function sample(pid) {
  let stat;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (_) {
    throw new Error(`process ${pid} exited during the run`);
  }
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  const ticks = Number(fields[11]) + Number(fields[12]);
  const sysTicks = Number(fields[12]);
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return {
    cpuMs: (ticks * 1000) / CLK_TCK,
    sysMs: (sysTicks * 1000) / CLK_TCK,
    rss: m ? Number(m[1]) * 1024 : NaN,
    t: performance.now(),
  };
}

/** CPU ms per thread name (comm) of the live threads of `pid`. */
function sampleThreads(pid) {
  const out = {};
  let tasks = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch (_) {
    return out;
  }
  for (const tid of tasks) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const comm = stat
        .slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
        .replace(/[0-9]+$/, "")
        .trim();
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out[comm] = (out[comm] || 0) + ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
    } catch (_) {
      /* thread exited */
    }
  }
  return out;
}

/** Share of the window's wall time per thread name, e.g. "node 60%, eio-rs 35%". */
function threadShares(a, b, wallMs) {
  if (!a || !b) return "";
  return Object.keys(b)
    .map((k) => [k, b[k] - (a[k] || 0)])
    .filter(([, ms]) => ms > 0)
    .sort((x, y) => y[1] - x[1])
    .map(([k, ms]) => `${k} ${((100 * ms) / wallMs).toFixed(0)}%`)
    .join(", ");
}

/** The kernel's share (stime) of the server's CPU time between two samples. */
function kernelShare(a, b) {
  const cpu = b.cpuMs - a.cpuMs;
  return cpu > 0 ? (b.sysMs - a.sysMs) / cpu : NaN;
}

function median(xs) {
  const v = xs.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Least-squares slope of y over x. */
function slope(points) {
  const n = points.length;
  if (n < 2) return null;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den ? num / den : null;
}

function fmt(v, unit) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  if (unit === "memory / session") return `${(v / 1024).toFixed(2)} KiB`;
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function pct(x) {
  return Number.isFinite(x) ? `${(100 * x).toFixed(0)}%` : "—";
}

function cpuSplit(n) {
  // Server on the first half of the CPUs, load generator on the rest.
  const half = Math.max(1, Math.floor(n / 2));
  const range = (a, b) => (a === b ? `${a}` : `${a}-${b}`);
  return { server: range(0, half - 1), loadgen: range(half, Math.max(half, n - 1)) };
}

// -------------------------------------------------------------------- setup

function ensureDeps() {
  const want = path.join(DEPS, "node_modules", "engine.io", "package.json");
  const bu = path.join(DEPS, "node_modules", "bufferutil", "package.json");
  if (fs.existsSync(want) && fs.existsSync(bu)) {
    const v = JSON.parse(fs.readFileSync(want, "utf8")).version;
    if (v === ENGINE_IO_VERSION) return;
  }
  console.log(`bench: installing engine.io@${ENGINE_IO_VERSION} and bufferutil into bench/.deps/`);
  fs.mkdirSync(DEPS, { recursive: true });
  fs.writeFileSync(
    path.join(DEPS, "package.json"),
    JSON.stringify(
      {
        name: "eio-rs-bench-deps",
        private: true,
        description: "Installed by bench/run.js; not part of eio-rs",
        dependencies: { "engine.io": ENGINE_IO_VERSION, bufferutil: BUFFERUTIL_VERSION },
      },
      null,
      2,
    ) + "\n",
  );
  const r = spawnSync("npm", ["install", "--no-audit", "--no-fund", "--prefix", DEPS], {
    cwd: DEPS,
    stdio: "inherit",
  });
  if (r.status !== 0) die("npm install into bench/.deps failed");
}

/** Builds the cargo crate in `dir` unless `bin` is newer than its sources. */
function ensureCargoBinary(dir, bin, what, build) {
  const src = path.join(dir, "src");
  const sources = [
    path.join(dir, "Cargo.toml"),
    ...fs.readdirSync(src).map((f) => path.join(src, f)),
  ];
  const fresh =
    fs.existsSync(bin) && sources.every((s) => fs.statSync(s).mtimeMs <= fs.statSync(bin).mtimeMs);
  if (fresh || (!build && fs.existsSync(bin))) return;
  if (!build) die(`${bin} is missing (run without --no-build)`);
  console.log(`bench: building ${what} (cargo build --release)`);
  const r = spawnSync(
    "cargo",
    ["build", "--release", "--manifest-path", path.join(dir, "Cargo.toml")],
    {
      stdio: "inherit",
    },
  );
  if (r.status !== 0) die(`building bench/${path.basename(dir)} failed`);
}

function fdLimit() {
  try {
    const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(
      fs.readFileSync("/proc/self/limits", "utf8"),
    );
    if (m) return m[1] === "unlimited" ? Infinity : Number(m[1]);
  } catch (_) {
    /* not Linux */
  }
  return Infinity;
}

// -------------------------------------------------------------- the processes

function withPin(cpus, cmd, args) {
  return cpus ? ["taskset", ["-c", cpus, cmd, ...args]] : [cmd, args];
}

/** Starts bench/server.js; resolves once it listens. */
function startServer(kind, opts, cpus) {
  const [cmd, args] = withPin(cpus, process.execPath, [
    "--expose-gc",
    SERVER_JS,
    kind,
    JSON.stringify(opts || {}),
  ]);
  const child = spawn(cmd, args, { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const waiters = new Map();
  child.on("message", (msg) => {
    const key = msg.type === "broadcast" ? `broadcast:${msg.seq}` : msg.type;
    const w = waiters.get(key);
    if (w) {
      waiters.delete(key);
      w(msg);
    }
  });
  const exited = new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })));
  const request = (msg, key, timeoutMs = 30000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(key);
        reject(new Error(`server did not answer ${key} in ${timeoutMs} ms`));
      }, timeoutMs);
      waiters.set(key, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      if (msg) child.send(msg);
    });
  const started = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kind} did not start in 20 s`)), 20000);
    waiters.set("ready", (m) => {
      clearTimeout(timer);
      waiters.delete("unsupported");
      resolve(m);
    });
    waiters.set("unsupported", (m) => {
      clearTimeout(timer);
      waiters.delete("ready");
      resolve(m);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${kind} exited before listening (code ${code}, signal ${signal})`));
    });
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    if (child.connected) child.disconnect();
    const t = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  };
  return { child, started, request, stop, exited };
}

/**
 * A self-signed P-256 certificate for 127.0.0.1, made once per run with
 * openssl, for the TLS scenarios: the servers load it, the load generator
 * trusts it.
 */
let testCert = null;
function tlsCert() {
  if (testCert) return testCert;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eio-bench-tls-"));
  process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  testCert = { key: path.join(dir, "key.pem"), cert: path.join(dir, "cert.pem") };
  execFileSync(
    "openssl",
    [
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
      ["-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
      // An end-entity certificate (webpki refuses a CA as a server's).
      ["-addext", "basicConstraints=critical,CA:FALSE"],
      ["-keyout", testCert.key, "-out", testCert.cert],
    ].flat(),
    { stdio: "ignore" },
  );
  return testCert;
}

/** Runs one scenario against one server kind; returns the measurement. */
async function runOne(sc, kind, env) {
  let opts = sc.tls ? { ...sc.opts, tls: { ...tlsCert(), h2: sc.tls === "h2" } } : sc.opts;
  if (sc.wt) opts = { ...opts, wt: true };
  const server = startServer(kind, opts, env.cpus && env.cpus.server);
  let ready;
  try {
    ready = await server.started;
  } catch (err) {
    await server.stop();
    return { error: err.message };
  }
  if (ready.type === "unsupported") {
    await server.stop();
    return { unsupported: true, message: ready.message };
  }
  env.serverInfo[kind] = ready;
  const pid = ready.pid;
  // WebTransport: the engine's own endpoint, on a UDP port of its own.
  const port = sc.wt ? ready.wtPort : ready.port;
  const lgArgs = [...sc.loadgen.map(String), "--port", String(port)];
  if (sc.tls) lgArgs.push("--ca", tlsCert().cert);
  if (env.cpus) lgArgs.push("--threads", "1");
  const [cmd, args] = withPin(env.cpus && env.cpus.loadgen, LOADGEN, lgArgs);
  const lg = spawn(cmd, args, { stdio: ["pipe", "pipe", "inherit"] });
  const lgExit = new Promise((r) => lg.once("exit", (code, signal) => r({ code, signal })));
  const ctx = {
    samples: {},
    lgSamples: {},
    threads: {},
    steps: [],
    bcasts: [],
    bcastJs: [],
    result: null,
    fatal: null,
  };
  const bcastWaiters = new Map();
  let broadcasting = null;

  const ok = () => lg.stdin.write("ok\n");
  const driveBroadcasts = async () => {
    ctx.samples.start = sample(pid);
    ctx.threads.start = sampleThreads(pid);
    for (let seq = 0; seq < sc.count; seq++) {
      const line = new Promise((r) => bcastWaiters.set(seq, r));
      const reply = await server.request(
        { cmd: "broadcast", seq, size: sc.size },
        `broadcast:${seq}`,
      );
      ctx.bcastJs.push(reply.jsUs);
      ctx.bcasts.push(await line);
      if (sc.gapMs) await sleep(sc.gapMs);
    }
    ctx.samples.end = sample(pid);
    ctx.threads.end = sampleThreads(pid);
  };

  const handle = async (ev) => {
    switch (ev.ev) {
      case "mark":
        if (ev.name === "start" || ev.name === "end") {
          ctx.samples[ev.name] = sample(pid);
          ctx.lgSamples[ev.name] = sample(lg.pid);
          ctx.threads[ev.name] = sampleThreads(pid);
        } else if (ev.name === "step") {
          ctx.steps.push(await memoryStep(server, pid, ev.sessions));
        } else if (ev.name === "ready") {
          ok();
          broadcasting = driveBroadcasts();
          broadcasting.catch((err) => (ctx.fatal = ctx.fatal || err.message));
          return;
        }
        ok();
        break;
      case "bcast": {
        const w = bcastWaiters.get(ev.seq);
        bcastWaiters.delete(ev.seq);
        if (w) w(ev);
        break;
      }
      case "result":
        ctx.result = ev;
        break;
      case "fatal":
        ctx.fatal = ev.error;
        break;
      default:
        break;
    }
  };

  const rl = readline.createInterface({ input: lg.stdout });
  const limitMs = 300000;
  const killer = setTimeout(() => {
    ctx.fatal = ctx.fatal || `load generator still running after ${limitMs / 1000} s`;
    lg.kill("SIGKILL");
  }, limitMs);
  try {
    for await (const line of rl) {
      let ev;
      try {
        ev = JSON.parse(line);
      } catch (_) {
        console.log(`  loadgen: ${line}`);
        continue;
      }
      await handle(ev);
    }
  } catch (err) {
    ctx.fatal = ctx.fatal || err.message;
  }
  const { code } = await lgExit;
  clearTimeout(killer);
  if (broadcasting) await broadcasting.catch(() => {});
  const serverDied = server.child.exitCode !== null || server.child.signalCode !== null;
  await server.stop();
  if (serverDied)
    ctx.fatal =
      ctx.fatal ||
      `server exited during the run (code ${server.child.exitCode}, signal ${server.child.signalCode})`;
  if (code !== 0 && !ctx.fatal) ctx.fatal = `load generator exited with ${code}`;
  return measure(sc, ctx);
}

/** After `sessions` idle sessions are open: GC in the server, then its RSS. */
async function memoryStep(server, pid, sessions) {
  await sleep(300);
  let reply;
  for (let i = 0; i < 100; i++) {
    reply = await server.request({ cmd: "gc" }, "gc");
    if (reply.clientsCount >= sessions) break;
    await sleep(100);
  }
  await sleep(500);
  reply = await server.request({ cmd: "gc" }, "gc");
  await sleep(200);
  const s = sample(pid);
  return {
    sessions,
    clientsCount: reply.clientsCount,
    rss: s.rss,
    heapUsed: reply.memory.heapUsed,
    external: reply.memory.external,
  };
}

function measure(sc, ctx) {
  const out = { value: null, errors: ctx.result ? ctx.result.errors || 0 : 0, extra: {} };
  if (ctx.fatal) out.error = ctx.fatal;
  const r = ctx.result;
  const { start, end } = ctx.samples;
  if (sc.kind === "throughput" && r && start && end) {
    const cpuS = (end.cpuMs - start.cpuMs) / 1000;
    const wallS = (end.t - start.t) / 1000;
    out.value = cpuS > 0 ? r.count / cpuS : null;
    const lgS =
      ctx.lgSamples.end && ctx.lgSamples.start
        ? (ctx.lgSamples.end.cpuMs - ctx.lgSamples.start.cpuMs) / 1000
        : NaN;
    out.extra = {
      perSec: r.count / r.secs,
      cpuPct: (100 * cpuS) / wallS,
      loadgenCpuPct: (100 * lgS) / wallS,
      rssMiB: end.rss / 2 ** 20,
      count: r.count,
      kernelShare: kernelShare(start, end),
      threads: threadShares(ctx.threads.start, ctx.threads.end, end.t - start.t),
    };
  } else if (sc.kind === "cpu-rate" && r && start && end) {
    const wallS = (end.t - start.t) / 1000;
    out.value = (end.cpuMs - start.cpuMs) / wallS;
    out.extra = {
      pingsPerSec: r.pings / r.secs,
      rssMiB: end.rss / 2 ** 20,
      sessions: r.sessions,
      kernelShare: kernelShare(start, end),
      threads: threadShares(ctx.threads.start, ctx.threads.end, end.t - start.t),
    };
  } else if (sc.kind === "memory" && ctx.steps.length >= 2) {
    out.value = slope(ctx.steps.map((s) => [s.sessions, s.rss]));
    out.extra = {
      heapPerSession: slope(ctx.steps.map((s) => [s.sessions, s.heapUsed])),
      rssMiB: ctx.steps[ctx.steps.length - 1].rss / 2 ** 20,
      steps: ctx.steps,
    };
    const short = ctx.steps.find((s) => s.clientsCount < s.sessions);
    if (short)
      out.error = out.error || `server saw ${short.clientsCount} of ${short.sessions} sessions`;
  } else if (sc.kind === "broadcast" && start && end && ctx.bcasts.length === sc.count) {
    out.value = (end.cpuMs - start.cpuMs) / sc.count;
    if (sc.perMessage) out.value = (out.value * 1000) / sc.receivers;
    out.extra = {
      latencyMs: median(ctx.bcasts.map((b) => b.max_us)) / 1000,
      p50LatencyMs: median(ctx.bcasts.map((b) => b.p50_us)) / 1000,
      p99LatencyMs: median(ctx.bcasts.map((b) => b.p99_us)) / 1000,
      jsLoopMs: median(ctx.bcastJs) / 1000,
      rssMiB: end.rss / 2 ** 20,
      threads: threadShares(ctx.threads.start, ctx.threads.end, (end.t - start.t) * 1).replace(
        /%/g,
        "% of wall",
      ),
    };
  }
  if (out.value === null && !out.error) out.error = "no measurement";
  return out;
}

function describeRun(sc, m) {
  if (m.unsupported) return `n/a (${m.message})`;
  if (m.value === null) return `FAILED: ${m.error}`;
  const e = m.extra;
  let s = `${fmt(m.value, sc.unit)} ${sc.unit}`;
  if (sc.kind === "throughput")
    s += `  (${fmt(e.perSec)}/s wall, server CPU ${e.cpuPct.toFixed(0)}% [${e.threads}], kernel ${pct(e.kernelShare)} of it, loadgen CPU ${e.loadgenCpuPct.toFixed(0)}%, RSS ${e.rssMiB.toFixed(0)} MiB)`;
  if (sc.kind === "cpu-rate")
    s += `  (${fmt(e.pingsPerSec)} pings/s, server threads [${e.threads}], kernel ${pct(e.kernelShare)} of it, RSS ${e.rssMiB.toFixed(0)} MiB)`;
  if (sc.kind === "memory")
    s += `  (${Number.isFinite(e.heapPerSession) ? `heap ${fmt(e.heapPerSession)} B/session` : "no JS heap"}; RSS ${e.steps.map((x) => `${x.sessions}:${(x.rss / 2 ** 20).toFixed(1)}M`).join(" ")})`;
  if (sc.kind === "broadcast")
    s += `  (all ${sc.receivers || 1000} received in ${e.latencyMs.toFixed(2)} ms median, p50 session ${e.p50LatencyMs.toFixed(2)} ms, p99 ${e.p99LatencyMs.toFixed(2)} ms, event loop ${e.jsLoopMs.toFixed(2)} ms per broadcast; server threads [${e.threads}], RSS ${e.rssMiB.toFixed(0)} MiB)`;
  if (m.errors) s += `  [${m.errors} loadgen errors]`;
  if (m.error) s += `  [${m.error}]`;
  return s;
}

// ------------------------------------------------------------------- report

function summarize(sc, runs) {
  const row = {
    name: sc.name,
    title: sc.title,
    unit: sc.unit,
    better: sc.better,
    receivers: sc.receivers,
    compareTo: sc.compareTo,
    servers: {},
    targets: sc.targets,
  };
  for (const kind of sc.servers) {
    const rs = runs[kind] || [];
    if (rs.length && rs.every((r) => r.unsupported)) {
      row.servers[kind] = { unsupported: true, message: rs[0].message };
      continue;
    }
    const ok = rs.filter((r) => r.value !== null && !r.error && !r.errors);
    row.servers[kind] = {
      median: median(ok.map((r) => r.value)),
      values: rs.map((r) => r.value),
      failed: rs.length - ok.length,
      extra: medianExtra(ok.map((r) => r.extra)),
    };
  }
  const base = row.servers[BASELINE] && row.servers[BASELINE].median;
  for (const kind of sc.servers) {
    const s = row.servers[kind];
    if (kind !== BASELINE && s && !s.unsupported && base && s.median !== null)
      s.ratio = s.median / base;
  }
  return row;
}

/**
 * Scenarios with no engine.io baseline but a WebSocket counterpart
 * (`compareTo`, the WebTransport ones): each server's median against its
 * own in the counterpart, when that ran in the same run.
 */
function compareRows(rows) {
  const by = Object.fromEntries(rows.map((r) => [r.name, r]));
  for (const r of rows) {
    const other = r.compareTo && by[r.compareTo];
    if (!other) continue;
    for (const [kind, s] of Object.entries(r.servers)) {
      const o = other.servers[kind];
      if (s.unsupported || s.median === null || !o || o.unsupported || !o.median) continue;
      s.compared = o.median;
      s.comparedRatio = s.median / o.median;
    }
  }
}

/** The lines (console and RESULTS.md) comparing those scenarios. */
function comparedLines(rows) {
  const out = [];
  for (const r of rows.filter((x) => x.compareTo)) {
    for (const [kind, s] of Object.entries(r.servers)) {
      if (s.unsupported) continue;
      out.push({
        row: r,
        kind,
        value: cell(r, kind),
        other: s.compared === undefined ? null : fmt(s.compared, r.unit),
        ratio: s.comparedRatio === undefined ? "—" : `${s.comparedRatio.toFixed(2)}×`,
      });
    }
  }
  return out;
}

function medianExtra(extras) {
  const out = {};
  if (!extras.length) return out;
  for (const k of Object.keys(extras[0])) {
    if (typeof extras[0][k] === "number") out[k] = median(extras.map((e) => e[k]));
  }
  return out;
}

function cell(row, kind) {
  const s = row.servers[kind];
  if (!s) return "—";
  if (s.unsupported) return "n/a (attach not implemented)";
  if (s.median === null) return "failed";
  return fmt(s.median, row.unit) + (s.failed ? ` (${s.failed} failed)` : "");
}

function ratioCell(row, kind) {
  const s = row.servers[kind];
  if (!s || s.unsupported || s.ratio === undefined) return "—";
  return `${s.ratio.toFixed(2)}×`;
}

function printTable(rows) {
  const header = [
    "scenario",
    "metric",
    SERVERS["eio-native"],
    SERVERS["eio-attach"],
    SERVERS[BASELINE],
    SERVERS[REFERENCE],
    "native / e.io",
    "attach / e.io",
    "engineioxide / e.io",
  ];
  const lines = rows.map((r) => [
    r.name,
    r.unit + (r.better === "lower" ? " (lower is better)" : ""),
    cell(r, "eio-native"),
    cell(r, "eio-attach"),
    cell(r, BASELINE),
    cell(r, REFERENCE),
    ratioCell(r, "eio-native"),
    ratioCell(r, "eio-attach"),
    ratioCell(r, REFERENCE),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => String(l[i]).length)));
  const pr = (cols) => console.log(cols.map((c, i) => String(c).padEnd(widths[i])).join("  "));
  console.log("");
  pr(header);
  pr(widths.map((w) => "-".repeat(w)));
  lines.forEach(pr);
  for (const r of rows) {
    const f = r.servers[FLOOR];
    if (f && f.median !== null && f.ratio !== undefined)
      console.log(
        `${r.name}: ${SERVERS[FLOOR]} ${fmt(f.median, r.unit)} (${f.ratio.toFixed(2)}× engine.io), the bound for attach()`,
      );
  }
  // No engine.io baseline: against the same server's WebSocket figure.
  for (const c of comparedLines(rows))
    console.log(
      `${c.row.name} (${SERVERS[c.kind]}): ${c.value} ${c.row.unit}, ` +
        (c.other === null
          ? `no ${c.row.compareTo} in this run to compare with`
          : `${c.ratio} its ${c.row.compareTo} (${c.other}) in this run`),
    );
  const extras = rows.filter((r) => r.name === "broadcast" || r.name.startsWith("sio-"));
  for (const r of extras) {
    const base = (r.servers["engine.io"] || {}).extra || {};
    for (const kind of Object.keys(r.servers)) {
      const e = r.servers[kind].extra || {};
      if (e.latencyMs === undefined) continue;
      const loop =
        base.jsLoopMs && kind !== "engine.io"
          ? ` (${(e.jsLoopMs / base.jsLoopMs).toFixed(2)}× engine.io's)`
          : "";
      console.log(
        `${r.name} (${SERVERS[kind]}): event loop ${e.jsLoopMs.toFixed(2)} ms per broadcast${loop}; every session had it in ${e.latencyMs.toFixed(2)} ms, p99 session ${e.p99LatencyMs.toFixed(2)} ms (medians)`,
      );
    }
  }
}

function machineInfo(opts) {
  const cpuinfo = fs.readFileSync("/proc/cpuinfo", "utf8");
  const model = (/model name\s*:\s*(.*)/.exec(cpuinfo) || [])[1] || os.cpus()[0].model;
  const tryRun = (cmd, args, cwd) => {
    try {
      return execFileSync(cmd, args, {
        encoding: "utf8",
        cwd,
        stdio: ["ignore", "pipe", "ignore"],
      }).trim();
    } catch (_) {
      return "unknown";
    }
  };
  const rev = tryRun("git", ["rev-parse", "--short", "HEAD"], ROOT);
  const dirty = tryRun(
    "git",
    ["status", "--porcelain", "--untracked-files=no", "--", "crates", "src", "lib", "index.js"],
    ROOT,
  );
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    nproc: tryRun("nproc", []),
    cpu: model,
    memGiB: (os.totalmem() / 2 ** 30).toFixed(0),
    kernel: os.release(),
    node: process.version,
    rustc: tryRun("rustc", ["--version"]),
    eioRs: rev + (dirty && dirty !== "unknown" ? " (with uncommitted changes)" : ""),
    quick: opts.quick,
    reps: opts.reps,
    pin: !!opts.pin,
  };
}

function targetRows(rows) {
  const by = Object.fromEntries(rows.map((r) => [r.name, r]));
  const ratio = (n, k = "eio-native") => by[n] && by[n].servers[k] && by[n].servers[k].ratio;
  const native = (n) => by[n] && by[n].servers["eio-native"];
  const base = (n) => by[n] && by[n].servers[BASELINE];
  const r2 = (x) => (x === undefined || x === null ? null : x);
  const fx = (x) => (x === null || x === undefined ? "—" : `${x.toFixed(2)}×`);
  const check = (x, op, t) =>
    x === null || x === undefined ? "—" : (op === ">=" ? x >= t : x <= t) ? "yes" : "no";
  const attachNA = (n) =>
    by[n] && by[n].servers["eio-attach"] && by[n].servers["eio-attach"].unsupported;
  // The last column: the same ratio for the pure-Rust reference, whether the
  // target is reachable at all on this machine.
  const ref = (n) => fx(r2(ratio(n, REFERENCE)));
  // The ratio eio-rs would reach if it spent no CPU outside the kernel: its
  // system calls alone (the reads, writes and wake-ups of each message) set
  // this bound, however lean its own code becomes.
  const bound = (n, k = "eio-native") => {
    const s = by[n] && by[n].servers[k];
    const share = s && s.extra && s.extra.kernelShare;
    if (!s || !s.ratio || !share) return "—";
    return fx(by[n].better === "lower" ? s.ratio * share : s.ratio / share);
  };
  const out = [];
  for (const n of ["ws-64", "ws-1k"]) {
    const x = r2(ratio(n));
    out.push([
      `WebSocket echo ${n === "ws-64" ? "64 B" : "1 KiB"}, messages per server CPU-second`,
      "≥ 2.0×",
      fx(x),
      check(x, ">=", 2.0),
      bound(n),
      ref(n),
    ]);
  }
  {
    const x = r2(ratio("ws-16k-bin"));
    out.push([
      "WebSocket echo 16 KiB binary",
      "≥ 1.35×",
      fx(x),
      check(x, ">=", 1.35),
      bound("ws-16k-bin"),
      ref("ws-16k-bin"),
    ]);
  }
  {
    const x = r2(ratio("poll-64"));
    out.push([
      "Polling echo 64 B",
      "≥ 3.8×",
      fx(x),
      check(x, ">=", 3.8),
      bound("poll-64"),
      ref("poll-64"),
    ]);
  }
  // Issue 17: over TLS, at least as far ahead of engine.io (on Node's
  // https server) as the clear-text echo is in the same run.
  for (const [tlsName, clear, what] of [
    ["wss-64", "ws-64", "64 B"],
    ["wss-16k-bin", "ws-16k-bin", "16 KiB binary"],
  ]) {
    const x = r2(ratio(tlsName));
    const want = r2(ratio(clear));
    out.push([
      `wss echo ${what} (engine.io on https): issue 17`,
      want === null ? "≥ the clear-text ratio" : `≥ ${fx(want)} (${clear})`,
      fx(x),
      want === null ? "—" : check(x, ">=", want),
      bound(tlsName),
      "—",
    ]);
  }
  {
    const x = r2(ratio("conn-rate"));
    out.push([
      "Connection rate (sessions per server CPU-second)",
      "≥ 5×",
      fx(x),
      check(x, ">=", 5),
      bound("conn-rate"),
      ref("conn-rate"),
    ]);
  }
  {
    const v = native("idle-mem") && native("idle-mem").median;
    const b = base("idle-mem") && base("idle-mem").median;
    const rm = by["idle-mem"] && by["idle-mem"].servers[REFERENCE];
    out.push([
      `Idle memory per WebSocket session (engine.io here: ${b ? (b / 1024).toFixed(1) + " KiB" : "—"}; issue: ≈ 10.5 KiB)`,
      "≤ 4 KiB",
      v ? `${(v / 1024).toFixed(2)} KiB` : "—",
      check(v, "<=", 4096),
      "—",
      rm && rm.median ? `${(rm.median / 1024).toFixed(2)} KiB` : "—",
    ]);
  }
  {
    const x = r2(ratio("heartbeat"));
    const rx = r2(ratio("heartbeat", REFERENCE));
    out.push([
      `Heartbeat CPU with ${((by.heartbeat && by.heartbeat.title.match(/(\d+) idle/)) || [])[1] || 8000} idle sessions, eio-rs / engine.io`,
      "≤ 1/3.5 (0.29×)",
      x ? `${fx(x)} (1/${(1 / x).toFixed(1)})` : "—",
      check(x, "<=", 1 / 3.5),
      bound("heartbeat"),
      rx ? `${fx(rx)} (1/${(1 / rx).toFixed(1)})` : "—",
    ]);
  }
  for (const [n, t, label] of [
    ["ws-64", 1.8, "WebSocket"],
    ["poll-64", 1.5, "polling"],
  ]) {
    const x = r2(ratio(n, "eio-attach"));
    // Node parses and answers attach() polling requests: its HTTP server
    // alone is the bound there, not a server with no JS.
    const floor = r2(ratio(n, FLOOR));
    out.push([
      `attach() mode ${label} echo (${n})`,
      `≥ ${t}×`,
      attachNA(n) ? "n/a (attach not implemented)" : fx(x),
      attachNA(n) ? "—" : check(x, ">=", t),
      attachNA(n) ? "—" : bound(n, "eio-attach"),
      floor ? `${fx(floor)} (Node http alone)` : ref(n),
    ]);
  }
  return out;
}

function resultsMarkdown(info, rows, runsLog) {
  const md = [];
  md.push("# Benchmark results");
  md.push("");
  md.push("Written by `node bench/run.js --write-results`; see `bench/README.md` for what each");
  md.push("scenario measures and the caveats. Ratios are to engine.io, of medians over the");
  md.push("repetitions, which were interleaved between the servers in one run. engineioxide");
  md.push(
    "(pure Rust, `bench/reference`, one tokio worker) is a reference, not a candidate: how far",
  );
  md.push("a server with no JavaScript at all gets on this machine.");
  md.push("");
  md.push("| | |");
  md.push("| --- | --- |");
  md.push(`| date | ${info.date} |`);
  md.push(
    `| machine | ${info.nproc} CPUs (nproc), ${info.cpu}, ${info.memGiB} GiB, Linux ${info.kernel} |`,
  );
  md.push(`| Node.js | ${info.node} |`);
  md.push(`| Rust | ${info.rustc} |`);
  md.push(`| eio-rs | ${info.eioRs} |`);
  md.push(`| engine.io | ${ENGINE_IO_VERSION} with bufferutil ${BUFFERUTIL_VERSION} |`);
  md.push(`| engineioxide | ${ENGINEIOXIDE_VERSION}, one tokio worker thread |`);
  md.push(
    `| run | ${info.quick ? "--quick, " : ""}${info.reps} repetition(s)${info.pin ? ", server and load generator pinned (--pin)" : ", not pinned"} |`,
  );
  md.push("");
  md.push("## Results");
  md.push("");
  md.push(
    `| scenario | metric | ${SERVERS["eio-native"]} | ${SERVERS["eio-attach"]} | ${SERVERS[BASELINE]} | ${SERVERS[REFERENCE]} | listen() / engine.io | attach() / engine.io | engineioxide / engine.io |`,
  );
  md.push("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const r of rows) {
    md.push(
      `| ${r.title} | ${r.unit}${r.better === "lower" ? " (lower is better)" : ""} | ${cell(r, "eio-native")} | ${cell(r, "eio-attach")} | ${cell(r, BASELINE)} | ${cell(r, REFERENCE)} | ${ratioCell(r, "eio-native")} | ${ratioCell(r, "eio-attach")} | ${ratioCell(r, REFERENCE)} |`,
    );
  }
  const compared = comparedLines(rows);
  if (compared.length) {
    md.push("");
    md.push(
      "WebTransport has no engine.io figure to compare with (engine.io serves it only through",
    );
    md.push(
      "an HTTP/3 server the application brings); each eio-rs figure is compared with the same",
    );
    md.push("server's WebSocket figure in the same run:");
    md.push("");
    md.push(
      "| scenario | server | WebTransport | WebSocket (same run) | WebTransport / WebSocket |",
    );
    md.push("| --- | --- | ---: | ---: | ---: |");
    for (const c of compared)
      md.push(
        `| ${c.row.name} | ${SERVERS[c.kind]} | ${c.value} | ${c.other === null ? "—" : c.other} (${c.row.compareTo}) | ${c.ratio} |`,
      );
  }
  md.push("");
  md.push(
    "Secondary numbers (medians; wall-clock rates depend on the load generator sharing the machine):",
  );
  md.push("");
  md.push("| scenario | server | detail |");
  md.push("| --- | --- | --- |");
  for (const r of rows) {
    for (const [kind, s] of Object.entries(r.servers)) {
      if (s.unsupported || !s.extra) continue;
      const e = s.extra;
      let d = "";
      if (e.perSec !== undefined)
        d = `${fmt(e.perSec)}/s wall-clock at ${e.cpuPct.toFixed(0)}% server CPU, ${pct(e.kernelShare)} of it in the kernel (load generator ${e.loadgenCpuPct.toFixed(0)}%), RSS ${e.rssMiB.toFixed(0)} MiB`;
      else if (e.pingsPerSec !== undefined)
        d = `${fmt(e.pingsPerSec)} pings/s answered, ${pct(e.kernelShare)} of the CPU in the kernel, RSS ${e.rssMiB.toFixed(0)} MiB`;
      else if (e.heapPerSession !== undefined)
        d = `${Number.isFinite(e.heapPerSession) ? `JS heap ${fmt(e.heapPerSession)} B/session` : "no JS heap"}, RSS ${e.rssMiB.toFixed(0)} MiB at the last step`;
      else if (e.latencyMs !== undefined)
        d = `all ${r.receivers || 1000} sessions received it ${e.latencyMs.toFixed(2)} ms after the first send (median session ${e.p50LatencyMs.toFixed(2)} ms, p99 ${e.p99LatencyMs.toFixed(2)} ms), JS send loop ${e.jsLoopMs.toFixed(2)} ms`;
      if (d) md.push(`| ${r.name} | ${SERVERS[kind]} | ${d} |`);
    }
  }
  md.push("");
  md.push("## Against the targets of issue 6");
  md.push("");
  md.push("The targets are for eio-rs; the last column is the same measure for engineioxide, the");
  md.push("pure-Rust reference, to show whether a target is reachable at all on this machine. For");
  md.push(
    "attach() polling it is Node's HTTP server alone answering the same echo with no Engine.IO",
  );
  md.push("logic (`node-http` in bench/server.js): Node parses and answers those requests, so no");
  md.push("attach() server can go below its cost.");
  md.push("");
  md.push("The bound column is the ratio eio-rs would reach if all its CPU time outside the");
  md.push("kernel (Rust, JS, V8) were gone, leaving only the kernel time (stime) its system calls");
  md.push("took in the same run: the reads, writes and wake-ups each message needs, which on");
  md.push("loopback include delivering the bytes to the load generator. A target beyond it cannot");
  md.push(
    "be met by making eio-rs's own code faster, only by making fewer or cheaper system calls.",
  );
  md.push("");
  md.push(
    "| target | required | measured | met | bound: eio-rs's kernel time alone | pure-Rust reference |",
  );
  md.push("| --- | --- | --- | --- | --- | --- |");
  for (const t of targetRows(rows)) md.push(`| ${t.join(" | ")} |`);
  md.push("");
  md.push("## Every repetition");
  md.push("");
  md.push("```");
  md.push(...runsLog);
  md.push("```");
  md.push("");
  return md.join("\n");
}

// --------------------------------------------------------------------- main

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (process.platform !== "linux") die("the benchmark reads /proc: Linux only");
  let scenarios = scenarioList(opts.quick);
  if (opts.scenarios.length) {
    const unknown = opts.scenarios.filter((n) => !scenarios.some((s) => s.name === n));
    if (unknown.length)
      die(
        `unknown scenario ${unknown.join(", ")}; known: ${scenarios.map((s) => s.name).join(", ")}`,
      );
    scenarios = scenarios.filter((s) => opts.scenarios.includes(s.name));
  }
  if (opts.servers) {
    const unknown = opts.servers.filter((s) => !SERVERS[s]);
    if (unknown.length)
      die(`unknown server ${unknown.join(", ")}; known: ${Object.keys(SERVERS).join(", ")}`);
    for (const sc of scenarios) sc.servers = sc.servers.filter((k) => opts.servers.includes(k));
  }
  ensureDeps();
  ensureCargoBinary(LOADGEN_DIR, LOADGEN, "the load generator", opts.build);
  if (scenarios.some((sc) => sc.servers.includes(REFERENCE)))
    ensureCargoBinary(
      REFERENCE_DIR,
      REFERENCE_BIN,
      "the engineioxide reference server",
      opts.build,
    );

  const need = Math.max(0, ...scenarios.map((s) => s.sessions || 0)) + 500;
  const limit = fdLimit();
  if (limit < need) {
    die(
      `the open-file limit is ${limit}; these scenarios need about ${need} per process. Raise it (ulimit -n ${need}) or use --quick.`,
    );
  }

  const ncpu = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  let cpus = null;
  if (opts.pin) {
    const hasTaskset = spawnSync("taskset", ["--version"], { stdio: "ignore" }).status === 0;
    if (!hasTaskset) console.log("bench: --pin ignored: taskset is not available");
    else if (ncpu < 2) console.log("bench: --pin ignored: fewer than 2 CPUs");
    else cpus = cpuSplit(ncpu);
  }
  const info = machineInfo(opts);
  console.log(
    `bench: ${info.nproc} CPUs (${info.cpu}), Node ${info.node}, ${info.rustc}, eio-rs ${info.eioRs}; ` +
      `${opts.reps} rep(s)${cpus ? `, server on CPU ${cpus.server}, load generator on CPU ${cpus.loadgen}` : ""}`,
  );
  const env = { cpus, serverInfo: {} };
  const rows = [];
  const runsLog = [];
  const raw = [];
  for (const sc of scenarios) {
    console.log(`\n== ${sc.name}: ${sc.title}`);
    const runs = {};
    for (let rep = 0; rep < opts.reps; rep++) {
      // Interleave the servers, alternating their order between repetitions.
      const order = rep % 2 ? [...sc.servers].reverse() : sc.servers;
      for (const kind of order) {
        if (runs[kind] && runs[kind].length && runs[kind][0].unsupported) {
          runs[kind].push(runs[kind][0]);
          continue;
        }
        const m = await runOne(sc, kind, env);
        (runs[kind] = runs[kind] || []).push(m);
        const line = `${sc.name} rep ${rep + 1}/${opts.reps} ${SERVERS[kind]}: ${describeRun(sc, m)}`;
        console.log(`  ${line}`);
        runsLog.push(line);
        raw.push({ scenario: sc.name, rep, server: kind, ...m });
        await sleep(300);
      }
    }
    rows.push(summarize(sc, runs));
  }
  compareRows(rows);
  printTable(rows);
  const ei = env.serverInfo[BASELINE];
  if (ei)
    console.log(
      `engine.io ${ei.version}, ws ${ei.ws}, bufferutil: ${ei.bufferutil ? "yes" : "NOT FOUND"}`,
    );
  const rx = env.serverInfo[REFERENCE];
  if (rx)
    console.log(`engineioxide ${ENGINEIOXIDE_VERSION} (bench/reference), one tokio worker thread`);
  fs.writeFileSync(
    path.join(BENCH, "last-run.json"),
    JSON.stringify({ info, rows, raw }, null, 2) + "\n",
  );
  if (opts.writeResults) {
    fs.writeFileSync(path.join(BENCH, "RESULTS.md"), resultsMarkdown(info, rows, runsLog));
    console.log("bench: wrote bench/RESULTS.md");
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
