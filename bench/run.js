#!/usr/bin/env node
"use strict";

// Side-by-side benchmark: eio-rs (native listen(), attach()) against npm
// engine.io 6.6.11 (+ bufferutil), with engineioxide (bench/reference, pure
// Rust) and Node's HTTP server alone (the polling floor) as references.
// See bench/README.md.
//
//   node bench/run.js [--quick] [--reps N] [--scenario NAME[,NAME]] [--pin]
//                     [--servers eio-native,eio-attach,engine.io,engineioxide,node-http]
//                     [--server-cores 1,2] [--write-results] [--no-build]
//
// Each measurement starts its server in a fresh child process
// (bench/server.js) and drives it with the Rust load generator
// (bench/loadgen). The server's CPU time (utime + stime; its main thread's
// alone too, the event loop of the Node servers) and RSS are read from
// /proc before and after each measured window. `--server-cores`: the server
// CPU counts of the saturation scenario (those up to nproc).

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
// Saturation: the highest step whose p99 round trip stays under this.
const SATURATION_P99_MS = 50;
// The issue's target for the event loop's CPU per WebSocket echo message,
// eio-rs / engine.io.
const LOOP_TARGET = 1 / 5;

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
    serverCores: [1, 2],
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
    else if (a === "--server-cores") {
      o.serverCores = val()
        .split(",")
        .map((x) => parseInt(x, 10));
      if (!o.serverCores.length || o.serverCores.some((c) => !(c >= 1)))
        die("--server-cores takes CPU counts, e.g. 1,2");
    } else if (a === "-h" || a === "--help") {
      console.log(
        fs
          .readFileSync(__filename, "utf8")
          .split("\n")
          .slice(3, 18)
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
    {
      name: "saturation",
      title:
        "Saturation: WebSocket echo, 64 B, closed loop, the server pinned to C CPUs, the load generator to the others",
      kind: "saturation",
      servers: ["eio-native", "engine.io", REFERENCE],
      unit: `msg/s wall-clock with p99 RTT < ${SATURATION_P99_MS} ms`,
      better: "higher",
      // Connections (one message in flight each), stepped up until the p99
      // round trip reaches the limit.
      steps: quick ? [64, 256] : [64, 128, 256, 512],
      size: 64,
      warmupMs: quick ? 300 : 1000,
      durationMs: quick ? 1000 : 3000,
    },
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
    mainMs: threadCpuMs(pid, pid),
    rss: m ? Number(m[1]) * 1024 : NaN,
    t: performance.now(),
  };
}

/**
 * CPU ms (utime + stime) of thread `tid` of `pid`: with tid = pid, the main
 * thread alone, which in Node is the event loop (the "node" group of
 * sampleThreads() also holds V8's helper threads, which share its name).
 */
function threadCpuMs(pid, tid) {
  const t = taskStat(pid, tid);
  return t ? t.ms : NaN;
}

/** Name (comm) and CPU ms (utime + stime) of thread `tid` of `pid`; null once it exited. */
function taskStat(pid, tid) {
  let stat;
  try {
    stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
  } catch (_) {
    return null;
  }
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return {
    comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
    ms: ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK,
  };
}

/** Calls `fn(tid, comm, cpuMs)` for each live thread of `pid`. */
function forEachThread(pid, fn) {
  let tasks = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch (_) {
    return;
  }
  for (const tid of tasks) {
    const t = taskStat(pid, tid);
    if (t) fn(Number(tid), t.comm, t.ms);
  }
}

/**
 * CPU ms of `pid`'s live threads in three classes: `main` (tid = pid: Node's
 * event loop; the reference's main thread, which only waits for its
 * runtime), `runtime` (the tokio workers: eio-rs's "eio-rs", the
 * reference's "tokio-rt-worker") and `other` (V8's helpers, libuv's pool...).
 */
function sampleThreadClasses(pid) {
  const out = { main: 0, runtime: 0, other: 0 };
  forEachThread(pid, (tid, comm, ms) => {
    const cls =
      tid === pid
        ? "main"
        : comm.startsWith("eio-rs") || comm.startsWith("tokio-rt-worker")
          ? "runtime"
          : "other";
    out[cls] += ms;
  });
  return out;
}

/** CPU ms per thread name (comm, less a trailing number) of the live threads of `pid`. */
function sampleThreads(pid) {
  const out = {};
  forEachThread(pid, (tid, comm, ms) => {
    const name = comm.replace(/[0-9]+$/, "").trim();
    out[name] = (out[name] || 0) + ms;
  });
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

function cpuRange(a, b) {
  return a === b ? `${a}` : `${a}-${b}`;
}

function cpuSplit(n) {
  // Server on the first half of the CPUs, load generator on the rest.
  const half = Math.max(1, Math.floor(n / 2));
  return { server: cpuRange(0, half - 1), loadgen: cpuRange(half, Math.max(half, n - 1)) };
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
  // The event-loop delay monitor, in the Node servers' throughput runs.
  if (sc.kind === "throughput" && kind !== REFERENCE) opts = { ...opts, eld: true };
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
  const lgArgs = [...sc.loadgen.map(String)];
  if (sc.tls) lgArgs.push("--ca", tlsCert().cert);
  if (env.cpus) lgArgs.push("--threads", "1");
  const ctx = await driveLoadgen(sc, server, ready, lgArgs, env.cpus && env.cpus.loadgen);
  const serverDied = server.child.exitCode !== null || server.child.signalCode !== null;
  await server.stop();
  if (serverDied)
    ctx.fatal =
      ctx.fatal ||
      `server exited during the run (code ${server.child.exitCode}, signal ${server.child.signalCode})`;
  // Node's main thread is its event loop; the reference has none.
  ctx.eventLoop = kind !== REFERENCE;
  return measure(sc, ctx);
}

/**
 * Runs the load generator (`lgArgs`, on the CPUs `lgCpus`) against a
 * started server and answers its marks; returns what was sampled.
 */
async function driveLoadgen(sc, server, ready, lgArgs, lgCpus) {
  const pid = ready.pid;
  // WebTransport: the engine's own endpoint, on a UDP port of its own.
  const port = sc.wt ? ready.wtPort : ready.port;
  const [cmd, args] = withPin(lgCpus, LOADGEN, [...lgArgs, "--port", String(port)]);
  const lg = spawn(cmd, args, { stdio: ["pipe", "pipe", "inherit"] });
  const lgExit = new Promise((r) => lg.once("exit", (code, signal) => r({ code, signal })));
  // The event-loop delay: cleared before the start sample, read after the
  // end one, so that the IPC round trips fall outside the sampled CPU time.
  const eld = ready.eld && sc.kind === "throughput";
  const ctx = {
    samples: {},
    lgSamples: {},
    threads: {},
    classes: {},
    eld: null,
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
          if (ev.name === "start" && eld) await server.request({ cmd: "eld-reset" }, "eld-reset");
          ctx.samples[ev.name] = sample(pid);
          ctx.lgSamples[ev.name] = sample(lg.pid);
          ctx.threads[ev.name] = sampleThreads(pid);
          ctx.classes[ev.name] = sampleThreadClasses(pid);
          if (ev.name === "end" && eld) ctx.eld = await server.request({ cmd: "eld" }, "eld");
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
  if (code !== 0 && !ctx.fatal) ctx.fatal = `load generator exited with ${code}`;
  return ctx;
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
      cpuUsPerMsg: r.count ? (1e6 * cpuS) / r.count : NaN,
    };
    if (ctx.eventLoop) {
      const loopMs = end.mainMs - start.mainMs;
      out.extra.loopUsPerMsg = r.count ? (1000 * loopMs) / r.count : NaN;
      out.extra.loopCpuPct = (100 * loopMs) / (end.t - start.t);
    }
    if (ctx.eld && ctx.eld.p50Ms !== null) {
      out.extra.eldP50Ms = ctx.eld.p50Ms;
      out.extra.eldP99Ms = ctx.eld.p99Ms;
    }
    if (r.p99_us !== undefined) {
      out.extra.rttP50Ms = r.p50_us / 1000;
      out.extra.rttP99Ms = r.p99_us / 1000;
    }
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
    // Event-loop CPU ms per second, beside the process's (the value).
    if (ctx.eventLoop) out.extra.loopMsPerSec = (end.mainMs - start.mainMs) / wallS;
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
      kernelShare: kernelShare(start, end),
      threads: threadShares(ctx.threads.start, ctx.threads.end, (end.t - start.t) * 1).replace(
        /%/g,
        "% of wall",
      ),
    };
    // Per delivered message: every broadcast reaches `receivers` sessions.
    const delivered = sc.count * (sc.receivers || sc.sessions);
    out.extra.cpuUsPerMsg = (1000 * (end.cpuMs - start.cpuMs)) / delivered;
    if (ctx.eventLoop) out.extra.loopUsPerMsg = (1000 * (end.mainMs - start.mainMs)) / delivered;
  }
  if (out.value === null && !out.error) out.error = "no measurement";
  return out;
}

function describeRun(sc, m) {
  if (m.unsupported) return `n/a (${m.message})`;
  if (m.value === null) return `FAILED: ${m.error}`;
  const e = m.extra;
  let s = `${fmt(m.value, sc.unit)} ${sc.unit}`;
  if (sc.kind === "throughput") {
    s += `  (${fmt(e.perSec)}/s wall, server CPU ${e.cpuPct.toFixed(0)}% [${e.threads}], kernel ${pct(e.kernelShare)} of it, loadgen CPU ${e.loadgenCpuPct.toFixed(0)}%, RSS ${e.rssMiB.toFixed(0)} MiB)`;
    const more = [];
    if (e.loopUsPerMsg !== undefined)
      more.push(
        `event-loop CPU ${fmt(e.loopUsPerMsg)} of ${fmt(e.cpuUsPerMsg)} server CPU µs/${sc.unit.startsWith("sessions") ? "session" : "msg"} (main thread ${e.loopCpuPct.toFixed(0)}% of a core)`,
      );
    if (e.eldP50Ms !== undefined)
      more.push(`loop delay p50 ${e.eldP50Ms.toFixed(2)} ms, p99 ${e.eldP99Ms.toFixed(2)} ms`);
    if (e.rttP99Ms !== undefined)
      more.push(`RTT p50 ${e.rttP50Ms.toFixed(2)} ms, p99 ${e.rttP99Ms.toFixed(2)} ms`);
    if (more.length) s += `; ${more.join("; ")}`;
  }
  if (sc.kind === "cpu-rate") {
    s += `  (${fmt(e.pingsPerSec)} pings/s, server threads [${e.threads}], kernel ${pct(e.kernelShare)} of it, RSS ${e.rssMiB.toFixed(0)} MiB)`;
    if (e.loopMsPerSec !== undefined)
      s += `; event-loop CPU ${fmt(e.loopMsPerSec)} of ${fmt(m.value)} server CPU ms/s`;
  }
  if (sc.kind === "memory")
    s += `  (${Number.isFinite(e.heapPerSession) ? `heap ${fmt(e.heapPerSession)} B/session` : "no JS heap"}; RSS ${e.steps.map((x) => `${x.sessions}:${(x.rss / 2 ** 20).toFixed(1)}M`).join(" ")})`;
  if (sc.kind === "broadcast")
    s += `  (all ${sc.receivers || 1000} received in ${e.latencyMs.toFixed(2)} ms median, p50 session ${e.p50LatencyMs.toFixed(2)} ms, p99 ${e.p99LatencyMs.toFixed(2)} ms, event loop ${e.jsLoopMs.toFixed(2)} ms per broadcast; server threads [${e.threads}], RSS ${e.rssMiB.toFixed(0)} MiB)${e.loopUsPerMsg === undefined ? "" : `; event-loop CPU ${fmt(e.loopUsPerMsg)} of ${fmt(e.cpuUsPerMsg)} server CPU µs per delivered msg`}`;
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

/** Prints `lines` under `header` in aligned columns. */
function printColumns(header, lines) {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => String(l[i]).length)));
  const pr = (cols) => console.log(cols.map((c, i) => String(c).padEnd(widths[i])).join("  "));
  pr(header);
  pr(widths.map((w) => "-".repeat(w)));
  lines.forEach(pr);
}

/** The Node servers whose event loop (main thread) is sampled. */
const LOOP_KINDS = ["eio-native", "eio-attach", BASELINE, FLOOR];

/** A ratio as "1.23×", or "—" when there is none. */
function fxRatio(x) {
  return x == null || !Number.isFinite(x) ? "—" : `${x.toFixed(2)}×`;
}

/** Whether `x` meets the target `op t` ("yes"/"no"), or "—" when there is no `x`. */
function meets(x, op, t) {
  if (x == null || !Number.isFinite(x)) return "—";
  return (op === ">=" ? x >= t : x <= t) ? "yes" : "no";
}

/**
 * The "Event loop" table: per scenario, the CPU time of each Node server's
 * main thread per message (per delivered message for the broadcasts, per
 * second for the heartbeat), beside the process's, its ratio eio-rs /
 * engine.io, and the event-loop delay of the throughput runs.
 */
function eventLoopTable(rows) {
  const header = [
    "scenario",
    "metric",
    ...LOOP_KINDS.map((k) => SERVERS[k]),
    "listen() / engine.io",
    "attach() / engine.io",
    `≤ ${LOOP_TARGET.toFixed(2)}× (WebSocket echo): listen() / attach()`,
    ...LOOP_KINDS.slice(0, 3).map((k) => `loop delay p50 / p99 ms: ${SERVERS[k]}`),
  ];
  const lines = [];
  for (const r of rows) {
    const ex = (k) => {
      const s = r.servers[k];
      return s && !s.unsupported && s.extra ? s.extra : null;
    };
    const loop = (k) => {
      const e = ex(k);
      if (!e) return null;
      return e.loopUsPerMsg ?? e.loopMsPerSec ?? null;
    };
    const total = (k) => {
      const e = ex(k);
      if (!e) return null;
      return e.loopMsPerSec != null ? r.servers[k].median : (e.cpuUsPerMsg ?? null);
    };
    if (!LOOP_KINDS.some((k) => loop(k) != null)) continue;
    const base = loop(BASELINE);
    const ratio = (k) => (loop(k) != null && base ? loop(k) / base : null);
    const fx = fxRatio;
    const perSecond = LOOP_KINDS.some((k) => ex(k) && ex(k).loopMsPerSec != null);
    const unit = perSecond
      ? "event-loop CPU ms / s"
      : r.receivers !== undefined || r.name === "broadcast"
        ? "event-loop CPU µs / delivered msg"
        : r.name === "conn-rate"
          ? "event-loop CPU µs / session"
          : "event-loop CPU µs / msg";
    const target = (k) => {
      if (!r.servers[k] || r.servers[k].unsupported) return "n/a";
      const x = ratio(k);
      return x == null ? "—" : x <= LOOP_TARGET ? "yes" : "no";
    };
    const delay = (k) => {
      const e = ex(k);
      return e && e.eldP50Ms != null ? `${e.eldP50Ms.toFixed(2)} / ${e.eldP99Ms.toFixed(2)}` : "—";
    };
    lines.push([
      r.name,
      `${unit} (of the process's)`,
      ...LOOP_KINDS.map((k) => (loop(k) == null ? "—" : `${fmt(loop(k))} (of ${fmt(total(k))})`)),
      fx(ratio("eio-native")),
      fx(ratio("eio-attach")),
      /^ws-/.test(r.name) ? `${target("eio-native")} / ${target("eio-attach")}` : "—",
      ...LOOP_KINDS.slice(0, 3).map(delay),
    ]);
  }
  return { header, lines };
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
  const loops = eventLoopTable(rows);
  if (loops.lines.length) {
    console.log("\nEvent loop (the Node servers' main thread: CPU time, delay under load):");
    printColumns(loops.header, loops.lines);
  }
}

// --------------------------------------------------------------- saturation

/**
 * The saturation scenario: for each server CPU count C, each server pinned
 * to CPUs 0..C-1 (the load generator to the others, or sharing them all
 * when none are left), the WebSocket echo stepped up in connections; each
 * server's result is its highest wall-clock rate whose p99 round trip is
 * under SATURATION_P99_MS. One repetition. Returns one row per C.
 */
async function runSaturation(sc, cores, ncpu, env, log, raw) {
  const rows = [];
  for (const c of cores) {
    const serverCpus = cpuRange(0, c - 1);
    const shared = c >= ncpu;
    const loadgenCpus = shared ? null : cpuRange(c, ncpu - 1);
    const where = shared
      ? `server on CPU ${serverCpus}; no CPU left: the load generator shares all ${ncpu} with it`
      : `server on CPU ${serverCpus}, load generator on CPU ${loadgenCpus}`;
    console.log(`-- C=${c}: ${where}`);
    const row = { name: sc.name, cores: c, serverCpus, loadgenCpus, shared, servers: {} };
    for (const kind of sc.servers) {
      const m = await saturateOne(sc, kind, serverCpus, loadgenCpus, env, (step) => {
        const line = `${sc.name} C=${c} ${SERVERS[kind]} ${describeSatStep(step)}`;
        console.log(`  ${line}`);
        log.push(line);
      });
      row.servers[kind] = m;
      raw.push({ scenario: sc.name, cores: c, server: kind, ...m });
      const line = `${sc.name} C=${c} ${SERVERS[kind]}: ${describeSaturation(m)}`;
      console.log(`  ${line}`);
      log.push(line);
      await sleep(300);
    }
    const base = row.servers[BASELINE] && row.servers[BASELINE].value;
    for (const s of Object.values(row.servers))
      if (base && s.value !== null) s.ratio = s.value / base;
    rows.push(row);
  }
  return rows;
}

/** One server at one CPU count: a fresh server, one load generator per step. */
async function saturateOne(sc, kind, serverCpus, loadgenCpus, env, onStep) {
  const server = startServer(kind, sc.opts, serverCpus);
  let ready;
  try {
    ready = await server.started;
  } catch (err) {
    await server.stop();
    return { value: null, error: err.message, steps: [] };
  }
  if (ready.type === "unsupported") {
    await server.stop();
    return { value: null, unsupported: true, error: ready.message, steps: [] };
  }
  env.serverInfo[kind] = ready;
  const steps = [];
  let error = null;
  for (const conns of sc.steps) {
    const lgArgs = ["ws-echo", "--conns", conns, "--size", sc.size]
      .concat(["--warmup-ms", sc.warmupMs, "--duration-ms", sc.durationMs])
      .map(String);
    const ctx = await driveLoadgen({ kind: "saturation" }, server, ready, lgArgs, loadgenCpus);
    if (server.child.exitCode !== null || server.child.signalCode !== null)
      ctx.fatal = ctx.fatal || "server exited during the run";
    const step = satStep(conns, ctx);
    steps.push(step);
    onStep(step);
    if (step.error) {
      error = step.error;
      break;
    }
    // A closed loop: more connections only lengthen the round trip.
    if (!(step.p99Ms < SATURATION_P99_MS)) break;
    await sleep(200);
  }
  await server.stop();
  const ok = steps.filter((x) => !x.error && x.p99Ms < SATURATION_P99_MS);
  const best = ok.reduce((a, b) => (a && a.perSec >= b.perSec ? a : b), null);
  return {
    value: best ? best.perSec : null,
    best,
    steps,
    error: best ? null : error || `p99 RTT ≥ ${SATURATION_P99_MS} ms at every step`,
  };
}

/** What one step measured: wall rate, RTT, CPU by thread class (% of one core). */
function satStep(conns, ctx) {
  const r = ctx.result;
  const { start, end } = ctx.samples;
  if (ctx.fatal || !r || !start || !end || r.p99_us === undefined)
    return { conns, error: ctx.fatal || "no measurement" };
  if (r.errors) return { conns, error: `${r.errors} loadgen errors` };
  const wallMs = end.t - start.t;
  const share = (a, b) => (100 * (b - a)) / wallMs;
  const c0 = ctx.classes.start;
  const c1 = ctx.classes.end;
  const lg = ctx.lgSamples;
  return {
    conns,
    perSec: r.count / r.secs,
    p50Ms: r.p50_us / 1000,
    p99Ms: r.p99_us / 1000,
    cpuPct: share(start.cpuMs, end.cpuMs),
    mainPct: share(c0.main, c1.main),
    runtimePct: share(c0.runtime, c1.runtime),
    otherPct: share(c0.other, c1.other),
    loadgenCpuPct: lg.start && lg.end ? share(lg.start.cpuMs, lg.end.cpuMs) : NaN,
  };
}

/** "main 62%, runtime 37%, other 1%": the classes that used CPU at a step. */
function satThreads(step) {
  return [
    ["main", step.mainPct],
    ["runtime", step.runtimePct],
    ["other", step.otherPct],
  ]
    .filter(([, v]) => v >= 0.5)
    .map(([k, v]) => `${k} ${v.toFixed(0)}%`)
    .join(", ");
}

function describeSatStep(step) {
  if (step.error) return `${step.conns} conns: FAILED: ${step.error}`;
  return (
    `${step.conns} conns: ${fmt(step.perSec)} msg/s wall, RTT p50 ${step.p50Ms.toFixed(2)} ms, p99 ${step.p99Ms.toFixed(2)} ms; ` +
    `server CPU ${step.cpuPct.toFixed(0)}% [${satThreads(step)}] of one core, loadgen CPU ${step.loadgenCpuPct.toFixed(0)}%`
  );
}

function describeSaturation(m) {
  if (m.unsupported) return `n/a (${m.error})`;
  if (!m.best) return `FAILED: ${m.error}`;
  const b = m.best;
  return `${fmt(b.perSec)} msg/s at ${b.conns} conns (p99 RTT ${b.p99Ms.toFixed(2)} ms); server threads then [${satThreads(b)}] of one core`;
}

/** The saturation table (console and RESULTS.md): one line per C. */
function saturationTable(satRows) {
  const kinds = ["eio-native", BASELINE, REFERENCE];
  const header = [
    "server CPUs (C)",
    "load generator",
    ...kinds.map((k) => SERVERS[k]),
    "eio-rs / engine.io",
    "engineioxide / engine.io",
    "what saturates: server CPU by thread at that step, % of one core",
  ];
  const lines = satRows.map((row) => {
    const cell = (k) => {
      const m = row.servers[k];
      if (!m) return "—";
      if (!m.best) return m.unsupported ? "n/a" : `— (${m.error})`;
      return `${fmt(m.best.perSec)} (${m.best.conns} conns, p99 ${m.best.p99Ms.toFixed(1)} ms)`;
    };
    const ratio = (k) => {
      const m = row.servers[k];
      return m && m.ratio !== undefined ? `${m.ratio.toFixed(2)}×` : "—";
    };
    const threads = kinds
      .filter((k) => row.servers[k] && row.servers[k].best)
      .map((k) => `${k === "eio-native" ? "eio-rs" : k}: ${satThreads(row.servers[k].best)}`)
      .join("; ");
    return [
      `C=${row.cores} (CPU ${row.serverCpus})`,
      row.shared ? "shares all CPUs (none left)" : `CPU ${row.loadgenCpus}`,
      ...kinds.map(cell),
      ratio("eio-native"),
      ratio(REFERENCE),
      threads || "—",
    ];
  });
  return { header, lines };
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
  const fx = fxRatio;
  const check = meets;
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

/**
 * Issue 19's targets: the event loop's share, saturation, and CPU per
 * message against the pure-Rust reference. `bound`: the ratio with only
 * eio-rs's kernel time left (see targetRows).
 */
function issue19Rows(rows, satRows) {
  const by = Object.fromEntries(rows.map((r) => [r.name, r]));
  const srv = (n, k) =>
    by[n] && by[n].servers[k] && !by[n].servers[k].unsupported && by[n].servers[k];
  const fx = fxRatio;
  const check = meets;
  const share = (n, k = "eio-native") => {
    const s = srv(n, k);
    return s && s.extra && s.extra.kernelShare;
  };
  const out = [];
  for (const n of ["ws-64", "ws-1k", "ws-16k-bin"]) {
    const a = srv(n, "eio-native");
    const b = srv(n, BASELINE);
    const x =
      a && b && a.extra && b.extra && a.extra.loopUsPerMsg && b.extra.loopUsPerMsg
        ? a.extra.loopUsPerMsg / b.extra.loopUsPerMsg
        : null;
    out.push([
      `Event-loop CPU per message, ${n}, listen() / engine.io`,
      "≤ 0.20×",
      fx(x),
      check(x, "<=", 0.2),
      "—",
    ]);
  }
  for (const row of satRows || []) {
    const m = row.servers["eio-native"];
    const x = m && m.ratio;
    out.push([
      `Saturation, ws echo 64 B, C=${row.cores}${row.shared ? " (load generator on the same CPUs)" : ""}, listen() / engine.io`,
      "≥ 5× (8 cores)",
      fx(x),
      check(x, ">=", 5),
      "—",
    ]);
  }
  // Against engineioxide: msgs per server CPU-second, higher is better.
  for (const [n, t, what] of [
    ["ws-64", 1.0, "WebSocket echo 64 B"],
    ["ws-16k-bin", 1.0, "WebSocket echo 16 KiB binary"],
    ["poll-64", 0.8, "Polling echo 64 B"],
    ["conn-rate", 0.8, "Connection rate"],
  ]) {
    const a = srv(n, "eio-native");
    const r = srv(n, REFERENCE);
    const x = a && r && a.median && r.median ? a.median / r.median : null;
    const k = share(n);
    out.push([
      `${what}, per server CPU-second, listen() / engineioxide`,
      `≥ ${t.toFixed(1)}×`,
      fx(x),
      check(x, ">=", t),
      x && k ? fx(x / k) : "—",
    ]);
  }
  {
    const x =
      by["poll-64"] &&
      by["poll-64"].servers["eio-attach"] &&
      by["poll-64"].servers["eio-attach"].ratio;
    const k = share("poll-64", "eio-attach");
    out.push([
      "attach() polling echo 64 B, attach() / engine.io",
      "≥ 1.5×",
      fx(x),
      check(x, ">=", 1.5),
      x && k ? fx(x / k) : "—",
    ]);
  }
  {
    const n = "sio-emit-10k";
    const a = srv(n, "eio-native");
    const b = srv(n, BASELINE);
    const x = a && b && a.extra && b.extra ? a.extra.jsLoopMs / b.extra.jsLoopMs : null;
    const c = a && b && a.median && b.median ? a.median / b.median : null;
    const k = share(n);
    const who = by[n] ? `${by[n].receivers} clients` : "10 000 clients";
    out.push([
      `io.emit() to ${who}: event-loop ms per broadcast, listen() / engine.io`,
      "≤ 0.10×",
      fx(x),
      check(x, "<=", 0.1),
      "—",
    ]);
    out.push([
      `io.emit() to ${who}: server CPU per delivered message, listen() / engine.io`,
      "≤ 0.33×",
      fx(c),
      check(c, "<=", 1 / 3),
      c && k ? fx(c * k) : "—",
    ]);
  }
  {
    const a = srv("heartbeat", "eio-native");
    const b = srv("heartbeat", BASELINE);
    const x = a && b && a.median && b.median ? a.median / b.median : null;
    const k = share("heartbeat");
    out.push([
      "Heartbeat CPU, idle sessions, listen() / engine.io",
      "≤ 0.25×",
      fx(x),
      check(x, "<=", 0.25),
      x && k ? fx(x * k) : "—",
    ]);
  }
  return out;
}

function resultsMarkdown(info, rows, satRows, runsLog) {
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
        d = `${fmt(e.perSec)}/s wall-clock at ${e.cpuPct.toFixed(0)}% server CPU, ${pct(e.kernelShare)} of it in the kernel (load generator ${e.loadgenCpuPct.toFixed(0)}%), RSS ${e.rssMiB.toFixed(0)} MiB${e.rttP99Ms != null ? `, RTT p50 ${e.rttP50Ms.toFixed(2)} ms, p99 ${e.rttP99Ms.toFixed(2)} ms` : ""}`;
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
  const loops = eventLoopTable(rows);
  if (loops.lines.length) {
    md.push("## Event loop");
    md.push("");
    md.push(
      "The CPU time (utime + stime) of each Node server's main thread alone, the thread that",
    );
    md.push(
      "runs the event loop, read from `/proc/<pid>/task/<pid>/stat` at the same points as the",
    );
    md.push(
      "process's total (shown in parentheses). It leaves out V8's helper threads (GC, compiler),",
    );
    md.push('which share its name and so are in the "node" share of the per-thread figures. Per');
    md.push(
      "message for the echoes, per session for the connection rate, per delivered message for",
    );
    md.push(
      "the broadcasts, per second for the heartbeat. The issue's target for WebSocket echo is",
    );
    md.push(
      `eio-rs / engine.io ≤ 1/5 (${LOOP_TARGET.toFixed(2)}×). The loop delay is \`perf_hooks.monitorEventLoopDelay({ resolution: 10 })\`,`,
    );
    md.push(
      "reset at the start of the measured window and read at its end (throughput scenarios),",
    );
    md.push(
      "less the 10 ms resolution; the IPC round trips that reset and read it fall outside the",
    );
    md.push("sampled CPU time. Medians over the repetitions.");
    md.push("");
    md.push(`| ${loops.header.join(" | ")} |`);
    md.push(`| ${loops.header.map((_, i) => (i < 2 ? "---" : "---:")).join(" | ")} |`);
    for (const l of loops.lines) md.push(`| ${l.join(" | ")} |`);
    md.push("");
  }
  if (satRows.length) {
    const sat = scenarioList(info.quick).find((x) => x.name === "saturation");
    md.push("## Saturation");
    md.push("");
    md.push(
      `WebSocket echo, 64 B, closed loop (one message in flight per connection), over ${sat.steps.join(", ")}`,
    );
    md.push(
      `connections in turn (${sat.warmupMs} ms warm-up, ${sat.durationMs} ms measured, one repetition, stopping at the`,
    );
    md.push(
      `first step whose p99 round trip reaches ${SATURATION_P99_MS} ms). The server is pinned with \`taskset\` to CPUs 0..C-1, the load`,
    );
    md.push(
      "generator to the other CPUs. Each cell is the highest wall-clock rate whose p99 round",
    );
    md.push(
      `trip (send to echo, timed by the load generator) is under ${SATURATION_P99_MS} ms, with its connections and p99. The`,
    );
    md.push("last column is the server's CPU by thread at that step, in % of one core: main (the");
    md.push(
      "thread whose tid is the pid: Node's event loop; engineioxide's main thread only waits),",
    );
    md.push(
      'runtime (the tokio workers: eio-rs\'s "eio-rs", engineioxide\'s "tokio-rt-worker") and',
    );
    md.push("other (V8's helper threads, libuv's pool). A class near 100% is what saturates.");
    const sharedRows = satRows.filter((r) => r.shared);
    if (sharedRows.length) {
      md.push("");
      md.push(
        `On this machine (${info.nproc} CPUs), ${sharedRows.map((r) => `C=${r.cores}`).join(", ")} leaves no CPU to the load generator: it shares`,
      );
      md.push("all of them with the server, so that row measures the pair, not the server alone.");
    }
    md.push("");
    const t = saturationTable(satRows);
    md.push(`| ${t.header.join(" | ")} |`);
    md.push(
      `| ${t.header.map((_, i) => (i < 2 || i === t.header.length - 1 ? "---" : "---:")).join(" | ")} |`,
    );
    for (const l of t.lines) md.push(`| ${l.join(" | ")} |`);
    md.push("");
  }
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
  md.push("## Against the targets of issue 19");
  md.push("");
  md.push(
    "The event loop's share, saturation, and CPU per message beside the pure-Rust reference.",
  );
  md.push(
    "The bound column is, as above, the ratio eio-rs would reach with only its kernel time left;",
  );
  md.push("a target beyond it needs fewer or cheaper system calls, not leaner code.");
  md.push("");
  md.push("| target | required | measured | met | bound: eio-rs's kernel time alone |");
  md.push("| --- | --- | --- | --- | --- |");
  for (const t of issue19Rows(rows, satRows)) md.push(`| ${t.join(" | ")} |`);
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
  const satRows = [];
  const runsLog = [];
  const raw = [];
  for (const sc of scenarios) {
    console.log(`\n== ${sc.name}: ${sc.title}`);
    if (sc.kind === "saturation") {
      const cores = [...new Set(opts.serverCores)].filter((c) => c <= ncpu);
      const over = opts.serverCores.filter((c) => c > ncpu);
      if (over.length)
        console.log(`bench: --server-cores ${over.join(",")} left out: more than the ${ncpu} CPUs`);
      if (spawnSync("taskset", ["--version"], { stdio: "ignore" }).status !== 0)
        console.log("bench: saturation skipped: taskset is not available");
      else if (!cores.length)
        console.log(`bench: saturation skipped: no --server-cores value ≤ ${ncpu} CPUs`);
      else {
        console.log(
          `  steps of ${sc.steps.join(", ")} connections (up to p99 RTT ≥ ${SATURATION_P99_MS} ms), ` +
            `${sc.warmupMs} ms warm-up and ${sc.durationMs} ms measured each; one repetition`,
        );
        satRows.push(...(await runSaturation(sc, cores, ncpu, env, runsLog, raw)));
      }
      continue;
    }
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
  if (rows.length) printTable(rows);
  if (satRows.length) {
    console.log(
      `\nSaturation (WebSocket echo 64 B: highest msg/s wall-clock with p99 RTT < ${SATURATION_P99_MS} ms, server pinned to C CPUs):`,
    );
    const t = saturationTable(satRows);
    printColumns(t.header, t.lines);
  }
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
    JSON.stringify({ info, rows, saturation: satRows, raw }, null, 2) + "\n",
  );
  if (opts.writeResults) {
    fs.writeFileSync(path.join(BENCH, "RESULTS.md"), resultsMarkdown(info, rows, satRows, runsLog));
    console.log("bench: wrote bench/RESULTS.md");
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
