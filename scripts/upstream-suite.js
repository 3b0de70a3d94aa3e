#!/usr/bin/env node
/**
 * upstream-suite.js — run the upstream engine.io / engine.io-client / socket.io
 * mocha suites, unchanged, against a given engine package and print the counts.
 *
 *   node scripts/upstream-suite.js <socket.io-checkout>
 *     [--suite engine.io|engine.io-client|socket.io|all|webtransport]
 *                                                (default: all = the first three)
 *     [--mode default|v3|both]                   (engine.io suite; default: both)
 *     [--client-mode default|fetch|builtin-ws|all] (client suite; default: default)
 *     [--against <module-path-or-npm-spec>]      (default: this repo's root)
 *     [--grep <pattern>] [--json <out-file>] [--strict] [--quiet]
 *     [--timeout <ms>] [--run-timeout <s>] [--install-timeout <s>] [--reinstall]
 *
 * What it does (see scripts/README.md):
 * - Installs the suites' test dependencies, pinned below (the versions are the
 *   ones locked in socketio/socket.io's package-lock.json), into
 *   <repo>/.upstream/deps; reused while the pinned list is unchanged.
 * - engine.io suite: <repo>/.upstream/run-engine.io/ gets a copy of the
 *   checkout's packages/engine.io/test (unchanged), an index.js that
 *   re-exports the package under test (so the tests' require("..") loads it)
 *   and a node_modules/ of symlinks to the cached deps plus an "engine.io" shim
 *   that also re-exports the package under test. Runs mocha on
 *   test/server.js test/engine.io.js test/middlewares.js, in default mode and
 *   with EIO_CLIENT=3. Not run: test/parser.js (it reads the upstream build's
 *   internal build/parser-v3/, not the public API) and test/webtransport.mjs
 *   (its own suite, below).
 * - webtransport suite (only with --suite webtransport, never in "all"):
 *   packages/engine.io/test/webtransport.mjs, unchanged, in
 *   <repo>/.upstream/run-webtransport/ (the engine.io scratch layout plus a
 *   build/server.js, an ES module re-exporting the package under test, which
 *   the file imports as `import * as eio from "../build/server.js"`). It needs
 *   @fails-components/webtransport and its native quiche transport, whose
 *   install script downloads a prebuilt binary (or the sources) from GitHub:
 *   they and node-forge are installed, pinned (WEBTRANSPORT_DEPS), WITH
 *   install scripts, into <repo>/.upstream/deps-webtransport, bounded by
 *   --install-timeout (default 300 s). If that install fails or the transport
 *   does not load, the suite is reported NOT RUN with the reason (exit 3), no
 *   counts. Otherwise one mocha run, "engine.io webtransport".
 * - engine.io-client suite: the client under test is engine.io-client BUILT
 *   FROM THE CHECKOUT'S SOURCE (packages/engine.io-client/lib, compiled with
 *   tsc exactly as its "compile" script does, the build cached in
 *   <repo>/.upstream/run-engine.io-client/build). Its test/support/hooks.js
 *   (unchanged) starts the server with require("engine.io").attach(...) on an
 *   express app on port 3000 (fixed upstream), which resolves to the package
 *   under test. Runs `mocha --require test/support/hooks.js test/index.js`,
 *   like upstream's "test:node" minus test/webtransport.mjs (same reason).
 *   --client-mode fetch / builtin-ws add upstream's "test:node-fetch"
 *   (USE_FETCH=1) and "test:node-builtin-ws" (USE_BUILTIN_WS=1; on Node < 22
 *   node gets --experimental-websocket, as upstream CI runs Node 24).
 * - socket.io suite: Socket.IO BUILT FROM THE CHECKOUT'S SOURCE on top of the
 *   package under test. <repo>/.upstream/run-socket.io/ gets a copy of
 *   packages/socket.io (lib/, test/, client-dist/; unchanged) and a
 *   package.json whose main is lib/index.ts, run with tsx as upstream does;
 *   its require("engine.io") gets the same shim. Runs mocha on the files
 *   test/index.ts requires, minus test/uws.ts (uWebSockets.js is a GitHub
 *   dependency, not on npm; eio-rs has no uServer either), with upstream's
 *   10 s test timeout. The two large fixtures test/fixtures/big.{json,jpg}
 *   are absent from some snapshots; stand-ins of similar size are written
 *   then (and said so).
 * - Each mocha run: no --bail, --exit, mocha's default 2000 ms per-test
 *   timeout (upstream has no .mocharc and sets none), its own process group,
 *   killed as a group after --run-timeout seconds (default 600).
 * - Prints one line per run, e.g. "engine.io default: 174 passed, 0 failed,
 *   2 pending", then the failing titles, then a total line.
 *
 * Reference counts (Node 20, npm engine.io 6.6.11, `--against engine.io`):
 *   engine.io default: 174 passed, 0 failed, 2 pending (2 it.skip upstream)
 *   engine.io v3:      173 passed, 1 failed, 2 pending
 *   engine.io-client:   83 passed, 0 failed, 1 pending (1 it.skip upstream)
 *   socket.io:         193 passed, 1 failed, 0 pending
 * The socket.io failure, "graceful close should stop socket and timers",
 * runs test/fixtures/server-close.ts with plain node, which Node 20 cannot
 * (no TypeScript stripping).
 * The v3 failure, "server messages should arrive when content is sent with
 * chunked transfer-encoding (polling)", is a test/engine mismatch upstream:
 * the test POSTs with EIO=4 on a session opened by the v3 client, and
 * engine.io >= 6.6.10 answers 400 PROTOCOL_MISMATCH (6.6.9, the checkout's
 * version, has no such check and passes 174 in v3 mode).
 *
 * Exit code: 0 when the harness ran (even with failing tests), 1 with
 * --strict and any failure/timeout, 2 on a harness error (bad arguments,
 * install failure, package under test not loadable), 3 when the webtransport
 * suite was NOT RUN (its native dependency did not install or load).
 *
 * Only Node built-ins and the npm CLI are used. All traffic is loopback.
 */

"use strict";

const fs = require("node:fs");
const path = require("node:path");
const net = require("node:net");
const crypto = require("node:crypto");
const { spawn, spawnSync } = require("node:child_process");
const { parseArgs } = require("node:util");

const REPO_ROOT = path.resolve(__dirname, "..");
const WORK_DIR = path.join(REPO_ROOT, ".upstream");
const DEPS_DIR = path.join(WORK_DIR, "deps");
const LOG_DIR = path.join(WORK_DIR, "logs");

/**
 * Test dependencies, pinned. Versions are those locked by the upstream
 * monorepo's package-lock.json (socketio/socket.io @ d2d753f, whose
 * packages/engine.io is 6.6.9 and packages/engine.io-client 6.6.6).
 */
const TEST_DEPS = {
  // engine.io suite (test/*.js, test/fixtures/*)
  mocha: "10.6.0",
  "expect.js": "0.3.1",
  superagent: "9.0.2",
  ws: "8.21.0",
  cookie: "0.7.2",
  helmet: "7.1.0",
  "express-session": "1.18.2",
  express: "4.21.2",
  // the v4-protocol client used by the engine.io suite (same version as the
  // checkout's packages/engine.io-client, which upstream links as a workspace)
  "engine.io-client": "6.6.6",
  // the v3-protocol client used with EIO_CLIENT=3
  "engine.io-client-v3": "npm:engine.io-client@3.5.4",
  // engine.io-client suite: runtime deps of the client built from source
  // (packages/engine.io-client/package.json "dependencies")
  "@socket.io/component-emitter": "3.1.2",
  debug: "4.4.1",
  "engine.io-parser": "5.2.3",
  "xmlhttprequest-ssl": "2.1.1",
  // engine.io-client suite: build of lib/ (tsc) and test-only deps
  typescript: "6.0.3",
  "@types/node": "24.13.2",
  "@types/ws": "8.18.1",
  "@types/debug": "4.1.12",
  "@sinonjs/fake-timers": "11.2.2",
  blob: "0.1.0",
  // test/support/hooks.js bundles the client with support/rollup.config.umd.js
  rollup: "2.79.2",
  "@rollup/plugin-node-resolve": "15.2.3",
  "@rollup/plugin-commonjs": "26.0.1",
  "@rollup/plugin-babel": "6.0.4",
  "rollup-plugin-terser": "7.0.2",
  "@babel/core": "7.24.7",
  "@babel/preset-env": "7.24.7",
  "@babel/plugin-transform-object-assign": "7.24.7",
  "@babel/plugin-transform-classes": "7.24.7",
  // socket.io suite: runtime deps of Socket.IO built from source
  // (packages/socket.io/package.json "dependencies", the workspace packages
  // at the checkout's versions) and its test-only deps
  accepts: "1.3.8",
  cors: "2.8.5",
  "socket.io-adapter": "2.5.8",
  "socket.io-parser": "4.2.6",
  "socket.io-client": "4.8.3",
  "socket.io-client-v2": "npm:socket.io-client@2.5.0",
  supertest: "7.1.4",
  tsx: "4.20.6",
};

/**
 * The webtransport suite's extra dependencies, pinned to the versions locked
 * by the same package-lock.json (root devDependencies there). Installed only
 * for --suite webtransport, into their own directory, with install scripts:
 * the quiche transport's script fetches its native binary from GitHub.
 */
const WEBTRANSPORT_DEPS = {
  "@fails-components/webtransport": "1.5.1",
  "@fails-components/webtransport-transport-http3-quiche": "1.5.1",
  "node-forge": "1.3.1",
};
const WEBTRANSPORT_DEPS_DIR = path.join(WORK_DIR, "deps-webtransport");
const WEBTRANSPORT_TEST_FILE = "test/webtransport.mjs";
/** Exit code when the webtransport suite could not run (distinct from 0/1/2). */
const EXIT_NOT_RUN = 3;

/** Version installed for `--against engine.io` (an npm name without version). */
const DEFAULT_NPM_VERSIONS = { "engine.io": "6.6.11" };

const ENGINE_IO_TEST_FILES = ["test/server.js", "test/engine.io.js", "test/middlewares.js"];
const CLIENT_TEST_FILES = ["test/index.js"];
const CLIENT_PORT = 3000; // hard-coded in the upstream client tests
const SOCKET_IO_TIMEOUT = 10000; // upstream's "test:unit" script

/** Env vars the upstream suites read; cleared so the caller's shell can't leak in. */
const SUITE_ENV_VARS = [
  "EIO_CLIENT",
  "EIO_WS_ENGINE",
  "USE_FETCH",
  "USE_BUILTIN_WS",
  "ZUUL_PORT",
  "BROWSERS",
];

const children = new Set();

function usage() {
  return [
    "usage: node scripts/upstream-suite.js <socket.io-checkout>",
    "  [--suite engine.io|engine.io-client|socket.io|all|webtransport]",
    "  [--mode default|v3|both]",
    "  [--client-mode default|fetch|builtin-ws|all]",
    "  [--against <module-path-or-npm-spec>] [--grep <pattern>]",
    "  [--json <out-file>] [--strict] [--quiet] [--timeout <ms>]",
    "  [--run-timeout <s>] [--install-timeout <s>] [--reinstall]",
  ].join("\n");
}

class HarnessError extends Error {}

function log(msg) {
  process.stderr.write(`[upstream-suite] ${msg}\n`);
}

function sha256(value) {
  return crypto.createHash("sha256").update(value).digest("hex");
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, "utf8"));
}

function writeFile(file, content) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
}

/** Writes `value` as indented JSON with a final newline. */
function writeJson(file, value) {
  writeFile(file, JSON.stringify(value, null, 2) + "\n");
}

function parseCli(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      suite: { type: "string", default: "all" },
      mode: { type: "string", default: "both" },
      "client-mode": { type: "string", default: "default" },
      against: { type: "string" },
      grep: { type: "string" },
      json: { type: "string" },
      strict: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      timeout: { type: "string", default: "2000" },
      "run-timeout": { type: "string", default: "600" },
      "install-timeout": { type: "string", default: "300" },
      reinstall: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(usage());
    process.exit(0);
  }
  if (positionals.length !== 1) {
    throw new HarnessError(`expected one checkout path\n${usage()}`);
  }
  const oneOf = (name, allowed) => {
    if (!allowed.includes(values[name])) {
      throw new HarnessError(
        `--${name} must be one of ${allowed.join("|")}, got "${values[name]}"`,
      );
    }
  };
  oneOf("suite", ["engine.io", "engine.io-client", "socket.io", "all", "webtransport"]);
  oneOf("mode", ["default", "v3", "both"]);
  oneOf("client-mode", ["default", "fetch", "builtin-ws", "all"]);
  const timeout = Number(values.timeout);
  const runTimeout = Number(values["run-timeout"]);
  const installTimeout = Number(values["install-timeout"]);
  if (!(timeout > 0) || !(runTimeout > 0) || !(installTimeout > 0)) {
    throw new HarnessError("--timeout, --run-timeout and --install-timeout must be positive");
  }
  const checkout = path.resolve(positionals[0]);
  const wanted =
    values.suite === "all"
      ? ["engine.io", "engine.io-client", "socket.io"]
      : [values.suite === "webtransport" ? "engine.io" : values.suite];
  for (const pkg of wanted) {
    if (!fs.existsSync(path.join(checkout, "packages", pkg, "test"))) {
      throw new HarnessError(
        `${checkout} does not look like a socket.io checkout (no packages/${pkg}/test)`,
      );
    }
  }
  if (
    values.suite === "webtransport" &&
    !fs.existsSync(path.join(checkout, "packages", "engine.io", WEBTRANSPORT_TEST_FILE))
  ) {
    throw new HarnessError(`${checkout}: no packages/engine.io/${WEBTRANSPORT_TEST_FILE}`);
  }
  return {
    checkout,
    suite: values.suite,
    mode: values.mode,
    clientMode: values["client-mode"],
    against: values.against,
    grep: values.grep,
    json: values.json ? path.resolve(values.json) : undefined,
    strict: values.strict,
    quiet: values.quiet,
    timeout,
    runTimeout,
    installTimeout,
    reinstall: values.reinstall,
  };
}

/** Runs npm synchronously (bounded); throws on failure. */
function npm(args, cwd) {
  log(`npm ${args.join(" ")}   (in ${path.relative(REPO_ROOT, cwd) || "."})`);
  const res = spawnSync("npm", args, {
    cwd,
    stdio: ["ignore", "inherit", "inherit"],
    timeout: 15 * 60 * 1000,
    env: { ...process.env, npm_config_update_notifier: "false" },
  });
  if (res.error || res.status !== 0) {
    throw new HarnessError(
      `npm ${args.join(" ")} failed (${res.error ? res.error.message : `exit ${res.status}`})`,
    );
  }
}

/**
 * Installs `dependencies` into `dir` unless the stamp there says that exact
 * list is already installed.
 */
function ensureInstalled(dir, dependencies, force) {
  const { manifest, stamp, stampFile, nodeModules, installed } = installState(dir, dependencies);
  if (!force && installed) return nodeModules;
  fs.rmSync(nodeModules, { recursive: true, force: true });
  fs.rmSync(stampFile, { force: true });
  writeJson(path.join(dir, "package.json"), manifest);
  npm(
    [
      "install",
      "--no-audit",
      "--no-fund",
      "--ignore-scripts",
      "--install-strategy=hoisted",
      "--loglevel=error",
    ],
    dir,
  );
  fs.writeFileSync(stampFile, stamp);
  return nodeModules;
}

/** The manifest an install dir gets, its stamp, and whether that is installed. */
function installState(dir, dependencies) {
  const manifest = {
    name: "eio-rs-upstream-harness-cache",
    private: true,
    description: "generated by scripts/upstream-suite.js",
    dependencies,
  };
  const stamp = sha256(JSON.stringify(manifest));
  const stampFile = path.join(dir, ".harness-stamp");
  const nodeModules = path.join(dir, "node_modules");
  const installed =
    fs.existsSync(nodeModules) &&
    fs.existsSync(stampFile) &&
    fs.readFileSync(stampFile, "utf8") === stamp;
  return { manifest, stamp, stampFile, nodeModules, installed };
}

/**
 * Runs a command in its own process group with its output captured (not
 * shown), killing the group after timeoutMs. Resolves to { code, signal,
 * timedOut, output }.
 */
function runCaptured(cmd, args, { cwd, env, timeoutMs }) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    const chunks = [];
    child.stdout.on("data", (c) => chunks.push(c));
    child.stderr.on("data", (c) => chunks.push(c));
    let timedOut = false;
    let killTimer;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, "SIGTERM");
      killTimer = setTimeout(() => killGroup(child, "SIGKILL"), 5000);
    }, timeoutMs);
    const finish = (code, signal, error) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      children.delete(child);
      killGroup(child, "SIGKILL"); // leftovers of that group only
      let output = Buffer.concat(chunks).toString("utf8");
      if (error) output += `\n${error.message}\n`;
      resolve({ code, signal, timedOut, output });
    };
    child.on("error", (err) => finish(null, null, err));
    child.on("close", (code, signal) => finish(code, signal));
  });
}

/**
 * The key lines of a failed `npm install`: the package whose install script
 * failed (if one did), then the first network/fetch error lines, else the
 * first error lines.
 */
function npmFailureReason(output) {
  const lines = output
    .split("\n")
    .filter((l) => /^npm (error|ERR!)/.test(l))
    .map((l) => l.replace(/^npm (error|ERR!)\s?/, "").trim())
    .filter((l) => l && !l.startsWith("A complete log of this run"));
  const pathLine = lines.find((l) => l.startsWith("path "));
  const commandLine = lines.find((l) => l.startsWith("command ") && l !== "command failed");
  const network =
    /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|fatal:|Could not resolve|unable to access|E40[34]|404 Not Found|ETARGET|No matching version/;
  let key = [...new Set(lines.filter((l) => network.test(l)))].slice(0, 2);
  if (key.length === 0) {
    key = lines
      .filter((l) => !/^(path|command|code|errno|syscall) /.test(l) && l !== "command failed")
      .slice(0, 2);
  }
  if (key.length === 0) key = lines.slice(0, 2);
  let what = "";
  if (pathLine && commandLine) {
    const pkgPath = pathLine.slice("path ".length);
    const pkg = pkgPath.slice(pkgPath.lastIndexOf("node_modules/") + "node_modules/".length);
    what = `install script of ${pkg} (${commandLine.slice("command ".length)}) failed: `;
  }
  return what + (key.join(" | ") || "no npm error line (see the log)");
}

/**
 * Installs WEBTRANSPORT_DEPS (with install scripts, bounded by
 * --install-timeout) unless already installed. Resolves to
 * { nodeModules } or { error } (the NOT RUN reason); never throws for an
 * npm failure, so that it cannot break anything else.
 */
async function installWebTransportDeps(opts) {
  const dir = WEBTRANSPORT_DEPS_DIR;
  const { manifest, stamp, stampFile, nodeModules, installed } = installState(
    dir,
    WEBTRANSPORT_DEPS,
  );
  if (!opts.reinstall && installed) return { nodeModules };
  fs.rmSync(nodeModules, { recursive: true, force: true });
  fs.rmSync(stampFile, { force: true });
  writeJson(path.join(dir, "package.json"), manifest);
  const args = [
    "install",
    "--no-audit",
    "--no-fund",
    "--install-strategy=hoisted",
    "--loglevel=error",
  ];
  const logFile = path.join(LOG_DIR, "webtransport-install.log");
  log(
    `npm ${args.join(" ")}   (in ${path.relative(REPO_ROOT, dir)}, with install scripts, ` +
      `timeout ${opts.installTimeout}s, log ${path.relative(REPO_ROOT, logFile)})`,
  );
  const res = await runCaptured("npm", args, {
    cwd: dir,
    env: { ...process.env, npm_config_update_notifier: "false" },
    timeoutMs: opts.installTimeout * 1000,
  });
  writeFile(logFile, res.output);
  const logRel = path.relative(REPO_ROOT, logFile);
  if (res.timedOut) {
    return { error: `npm install timed out after ${opts.installTimeout}s (output: ${logRel})` };
  }
  if (res.code !== 0) {
    return {
      error: `npm install failed (exit ${res.code ?? res.signal}): ${npmFailureReason(res.output)} (full output: ${logRel})`,
    };
  }
  fs.writeFileSync(stampFile, stamp);
  return { nodeModules };
}

function installedVersion(nodeModules, name) {
  try {
    return readJson(path.join(nodeModules, name, "package.json")).version;
  } catch {
    return undefined;
  }
}

/** Splits "name@range" / "@scope/name@range" into [name, range]. */
function splitSpec(spec) {
  const at = spec.indexOf("@", spec.startsWith("@") ? 1 : 0);
  return at === -1 ? [spec, undefined] : [spec.slice(0, at), spec.slice(at + 1)];
}

function looksLikePath(value) {
  // npm specs: "engine.io", "engine.io@6.6.11", "@scope/name@1.0.0"
  return (
    path.isAbsolute(value) ||
    value.startsWith(".") ||
    (value.includes("/") && !value.startsWith("@"))
  );
}

/**
 * Resolves --against to { path, label }: a path (dir or file) used as is, or
 * an npm spec installed into <repo>/.upstream/against/<spec>/.
 */
function resolveAgainst(against, force) {
  if (against === undefined) {
    return { modulePath: REPO_ROOT, label: describeModule(REPO_ROOT) };
  }
  if (looksLikePath(against)) {
    const modulePath = path.resolve(against);
    if (!fs.existsSync(modulePath)) {
      throw new HarnessError(`--against ${against}: ${modulePath} not found`);
    }
    return { modulePath, label: describeModule(modulePath) };
  }
  let [name, range] = splitSpec(against);
  if (!range) {
    range = DEFAULT_NPM_VERSIONS[name];
    if (!range) {
      throw new HarnessError(`--against ${against}: give a version (e.g. ${name}@1.2.3)`);
    }
  }
  const dir = path.join(WORK_DIR, "against", `${name}@${range}`.replace(/[^A-Za-z0-9._@-]/g, "_"));
  const nodeModules = ensureInstalled(dir, { [name]: range }, force);
  const modulePath = path.join(nodeModules, name);
  return { modulePath, label: describeModule(modulePath) };
}

function describeModule(modulePath) {
  let dir = modulePath;
  if (fs.existsSync(dir) && fs.statSync(dir).isFile()) {
    dir = path.dirname(dir);
  }
  try {
    const pkg = readJson(path.join(dir, "package.json"));
    return `${pkg.name}@${pkg.version} (${modulePath})`;
  } catch {
    return modulePath;
  }
}

function packageVersionOf(modulePath) {
  try {
    const dir = fs.statSync(modulePath).isFile() ? path.dirname(modulePath) : modulePath;
    return readJson(path.join(dir, "package.json")).version;
  } catch {
    return "0.0.0";
  }
}

/**
 * Checks in a child process that the package under test loads (fatal if
 * not) and warns about missing engine.io exports (the tests then fail).
 */
function checkLoadable(modulePath) {
  const code = `
    const m = require(${JSON.stringify(modulePath)});
    const missing = ["Server", "Socket", "attach", "listen", "protocol"]
      .filter((k) => m[k] === undefined);
    if (missing.length) console.log("missing exports: " + missing.join(", "));`;
  const res = spawnSync(process.execPath, ["-e", code], {
    encoding: "utf8",
    timeout: 60 * 1000,
  });
  if (res.status !== 0) {
    const detail = (res.stderr || res.error?.message || "")
      .trim()
      .split("\n")
      .slice(0, 15)
      .join("\n");
    throw new HarnessError(
      `package under test ${modulePath} is not loadable with require():\n${detail}`,
    );
  }
  if (res.stdout.trim()) {
    log(`warning: package under test: ${res.stdout.trim()}`);
  }
}

/**
 * Fills <scratch>/node_modules with symlinks to the cached deps and an
 * "engine.io" shim re-exporting the package under test.
 */
function linkNodeModules(scratch, depsNodeModules, against) {
  const nm = path.join(scratch, "node_modules");
  fs.rmSync(nm, { recursive: true, force: true });
  fs.mkdirSync(nm, { recursive: true });
  for (const entry of fs.readdirSync(depsNodeModules)) {
    if (entry.startsWith(".") || entry === "engine.io") continue;
    fs.symlinkSync(path.join(depsNodeModules, entry), path.join(nm, entry));
  }
  const shim = path.join(nm, "engine.io");
  fs.mkdirSync(shim);
  writeJson(path.join(shim, "package.json"), {
    name: "engine.io",
    version: packageVersionOf(against.modulePath),
    description: "generated by scripts/upstream-suite.js: package under test",
    main: "index.js",
  });
  writeFile(
    path.join(shim, "index.js"),
    `"use strict";\n// generated by scripts/upstream-suite.js\n` +
      `module.exports = require(${JSON.stringify(against.modulePath)});\n`,
  );
}

/**
 * A mocha reporter: mocha's "spec" output plus one JSON line per event
 * appended to $EIO_HARNESS_EVENTS (so a killed run still leaves its results).
 */
const REPORTER_SOURCE = `"use strict";
// generated by scripts/upstream-suite.js
const fs = require("fs");
const Mocha = require("mocha");
const C = Mocha.Runner.constants;

class HarnessReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const out = process.env.EIO_HARNESS_EVENTS;
    const emit = (obj) => fs.appendFileSync(out, JSON.stringify(obj) + "\\n");
    const file = (t) => (t.file ? require("path").relative(process.cwd(), t.file) : undefined);
    runner.once(C.EVENT_RUN_BEGIN, () => emit({ type: "start", total: runner.total }));
    runner.on(C.EVENT_TEST_PASS, (t) =>
      emit({ type: "pass", title: t.fullTitle(), file: file(t), duration: t.duration }),
    );
    runner.on(C.EVENT_TEST_PENDING, (t) =>
      emit({ type: "pending", title: t.fullTitle(), file: file(t) }),
    );
    runner.on(C.EVENT_TEST_FAIL, (t, err) =>
      emit({
        type: "fail",
        title: t.fullTitle(),
        file: file(t),
        error: String((err && (err.message || err)) || "").slice(0, 2000),
      }),
    );
    runner.once(C.EVENT_RUN_END, () => emit({ type: "end", stats: runner.stats }));
  }
}

module.exports = HarnessReporter;
`;

/** Copies the upstream files (unchanged) and builds the engine.io scratch dir. */
function prepareEngineScratch(opts, depsNodeModules, against, dirName = "run-engine.io") {
  const scratch = path.join(WORK_DIR, dirName);
  fs.rmSync(scratch, { recursive: true, force: true });
  fs.mkdirSync(scratch, { recursive: true });
  fs.cpSync(path.join(opts.checkout, "packages", "engine.io", "test"), path.join(scratch, "test"), {
    recursive: true,
  });
  writeJson(path.join(scratch, "package.json"), {
    name: "engine.io",
    version: packageVersionOf(against.modulePath),
    private: true,
    description: "generated by scripts/upstream-suite.js",
    main: "index.js",
  });
  writeFile(
    path.join(scratch, "index.js"),
    `"use strict";\n// generated by scripts/upstream-suite.js: the package under test\n` +
      `module.exports = require(${JSON.stringify(against.modulePath)});\n`,
  );
  writeFile(path.join(scratch, ".harness-reporter.js"), REPORTER_SOURCE);
  linkNodeModules(scratch, depsNodeModules, against);
  return scratch;
}

/** The names of the package under test's exports (it loads: checkLoadable ran). */
function exportNames(modulePath) {
  const res = spawnSync(
    process.execPath,
    ["-e", `console.log(JSON.stringify(Object.keys(require(${JSON.stringify(modulePath)}))))`],
    { encoding: "utf8", timeout: 60 * 1000 },
  );
  if (res.status !== 0) {
    throw new HarnessError(`cannot list the exports of ${modulePath}:\n${res.stderr}`);
  }
  return JSON.parse(res.stdout.trim().split("\n").pop());
}

/**
 * Builds the webtransport scratch dir: the engine.io one (test/ copied
 * unchanged, node_modules/ shims) plus
 * - build/server.js, what test/webtransport.mjs imports as
 *   `import * as eio from "../build/server.js"` (upstream: the compiled
 *   lib/server.ts): here an ES module (build/package.json says "module")
 *   re-exporting every export of the package under test by name, so that
 *   `new eio.Server(opts)` is its Server;
 * - node_modules/ links to @fails-components (webtransport and its quiche
 *   transport) and node-forge from the webtransport deps dir;
 * - .harness-webtransport-check.mjs, the load check run before mocha.
 */
function prepareWebTransportScratch(opts, depsNodeModules, wtNodeModules, against) {
  const scratch = prepareEngineScratch(opts, depsNodeModules, against, "run-webtransport");
  const names = exportNames(against.modulePath).filter((n) => n !== "default");
  const ident = /^[A-Za-z_$][\w$]*$/;
  const lines = [
    "// generated by scripts/upstream-suite.js: the package under test, as an ES module",
    'import { createRequire } from "node:module";',
    "const require = createRequire(import.meta.url);",
    `const m = require(${JSON.stringify(against.modulePath)});`,
    "export default m;",
    ...names.map((n, i) => `const e${i} = m[${JSON.stringify(n)}];`),
    "export {",
    ...names.map((n, i) => `  e${i} as ${ident.test(n) ? n : JSON.stringify(n)},`),
    "};",
  ];
  writeFile(path.join(scratch, "build", "server.js"), lines.join("\n") + "\n");
  writeJson(path.join(scratch, "build", "package.json"), { type: "module" });

  const nm = path.join(scratch, "node_modules");
  const tops = new Set(
    Object.keys(WEBTRANSPORT_DEPS).map((n) => (n.startsWith("@") ? n.split("/")[0] : n)),
  );
  for (const top of tops) {
    fs.rmSync(path.join(nm, top), { recursive: true, force: true });
    fs.symlinkSync(path.join(wtNodeModules, top), path.join(nm, top));
  }
  writeFile(path.join(scratch, ".harness-webtransport-check.mjs"), WEBTRANSPORT_CHECK_SOURCE);
  return scratch;
}

/**
 * Load check of the webtransport suite, run in its scratch dir. Exit 3 with
 * a "HARNESS-LOAD-ERROR {...}" line when a webtransport dependency does not
 * load (-> NOT RUN); otherwise prints {"warnings": [...]} about the package
 * under test as test/webtransport.mjs sees it.
 */
const WEBTRANSPORT_CHECK_SOURCE = `// generated by scripts/upstream-suite.js
for (const name of [
  "@fails-components/webtransport-transport-http3-quiche",
  "@fails-components/webtransport",
  "node-forge",
]) {
  try {
    const m = await import(name);
    if (
      name === "@fails-components/webtransport" &&
      (typeof m.Http3Server !== "function" || typeof m.WebTransport !== "function")
    ) {
      throw new Error("no Http3Server / WebTransport export");
    }
  } catch (err) {
    const message = String((err && err.message) || err).split("\\n")[0];
    console.error("HARNESS-LOAD-ERROR " + JSON.stringify({ name, message }));
    process.exit(3);
  }
}
const eio = await import("./build/server.js");
const warnings = [];
if (typeof eio.Server !== "function") warnings.push("build/server.js has no Server export");
else if (typeof eio.Server.prototype.onWebTransportSession !== "function") {
  warnings.push("Server has no onWebTransportSession() (the WebTransport tests will fail)");
}
console.log(JSON.stringify({ warnings }));
process.exit(0);
`;

/**
 * Runs the load check; resolves to { error } (NOT RUN reason) or {}.
 * Throws a HarnessError when the generated build/server.js does not load.
 */
async function checkWebTransportLoadable(scratch) {
  const res = await runCaptured(process.execPath, [".harness-webtransport-check.mjs"], {
    cwd: scratch,
    env: { ...process.env, FORCE_COLOR: "0" },
    timeoutMs: 60 * 1000,
  });
  const marker = res.output.split("\n").find((l) => l.startsWith("HARNESS-LOAD-ERROR "));
  if (marker) {
    const { name, message } = JSON.parse(marker.slice("HARNESS-LOAD-ERROR ".length));
    return { error: `${name} does not load: ${message}` };
  }
  if (res.timedOut) return { error: "the webtransport load check timed out (60 s)" };
  if (res.code !== 0) {
    throw new HarnessError(
      `webtransport load check failed (exit ${res.code ?? res.signal}):\n${res.output.trim()}`,
    );
  }
  const last = res.output.trim().split("\n").pop();
  try {
    for (const w of JSON.parse(last).warnings) log(`warning: webtransport: ${w}`);
  } catch {
    // no report line: nothing to warn about
  }
  return {};
}

/** Lists files under dir (relative paths), sorted. */
function listFiles(dir, base = dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(full, base));
    else out.push(path.relative(base, full));
  }
  return out.sort();
}

/**
 * Builds the engine.io-client scratch dir: the checkout's package copied
 * (unchanged) and lib/ compiled to build/ as its "compile" script does
 * (tsc, tsc -p tsconfig.esm.json, postcompile.sh). The build is kept while
 * the sources and the TypeScript version are unchanged.
 */
function prepareClientScratch(opts, depsNodeModules, against) {
  const src = path.join(opts.checkout, "packages", "engine.io-client");
  const scratch = path.join(WORK_DIR, "run-engine.io-client");
  const buildInputs = [
    "package.json",
    "tsconfig.json",
    "tsconfig.esm.json",
    "support/package.cjs.json",
    "support/package.esm.json",
    ...listFiles(path.join(src, "lib")).map((f) => path.join("lib", f)),
  ];
  const stamp = sha256(
    JSON.stringify([
      installedVersion(depsNodeModules, "typescript"),
      buildInputs.map((f) => [f, sha256(fs.readFileSync(path.join(src, f)))]),
    ]),
  );
  const stampFile = path.join(scratch, ".build-stamp");
  const buildOk =
    fs.existsSync(stampFile) &&
    fs.readFileSync(stampFile, "utf8") === stamp &&
    fs.existsSync(path.join(scratch, "build", "cjs", "index.js"));

  if (fs.existsSync(scratch)) {
    for (const entry of fs.readdirSync(scratch)) {
      if (buildOk && (entry === "build" || entry === ".build-stamp")) continue;
      fs.rmSync(path.join(scratch, entry), { recursive: true, force: true });
    }
  }
  fs.mkdirSync(scratch, { recursive: true });
  for (const entry of fs.readdirSync(src)) {
    if (entry === "build" || entry === "node_modules") continue;
    fs.cpSync(path.join(src, entry), path.join(scratch, entry), {
      recursive: true,
    });
  }
  writeFile(path.join(scratch, ".harness-reporter.js"), REPORTER_SOURCE);
  linkNodeModules(scratch, depsNodeModules, against);

  if (!buildOk) {
    log("building engine.io-client from the checkout's lib/ (tsc)");
    const tsc = path.join(depsNodeModules, "typescript", "bin", "tsc");
    for (const project of ["tsconfig.json", "tsconfig.esm.json"]) {
      const res = spawnSync(process.execPath, [tsc, "-p", project], {
        cwd: scratch,
        encoding: "utf8",
        timeout: 10 * 60 * 1000,
      });
      if (res.status !== 0) {
        // tsc still emits on type errors; only a missing output is fatal
        log(
          `warning: tsc -p ${project} exited ${res.status}:\n${(res.stdout || "") + (res.stderr || "")}`,
        );
      }
    }
    // postcompile.sh, in Node
    const build = path.join(scratch, "build");
    fs.copyFileSync(
      path.join(scratch, "support", "package.cjs.json"),
      path.join(build, "cjs", "package.json"),
    );
    fs.copyFileSync(
      path.join(scratch, "support", "package.esm.json"),
      path.join(build, "esm", "package.json"),
    );
    fs.rmSync(path.join(build, "esm-debug"), { recursive: true, force: true });
    fs.cpSync(path.join(build, "esm"), path.join(build, "esm-debug"), {
      recursive: true,
    });
    // `sed -i -e '/debug(/d' ./build/esm/*.js ./build/esm/**/*.js` (bash
    // without globstar: files at depth 0 and 1)
    for (const rel of listFiles(path.join(build, "esm"))) {
      if (!rel.endsWith(".js") || rel.split(path.sep).length > 2) continue;
      const file = path.join(build, "esm", rel);
      const text = fs.readFileSync(file, "utf8");
      const kept = text
        .split("\n")
        .filter((line) => !line.includes("debug("))
        .join("\n");
      fs.writeFileSync(file, kept);
    }
    if (!fs.existsSync(path.join(build, "cjs", "index.js"))) {
      throw new HarnessError("engine.io-client build failed (no build/cjs)");
    }
    fs.writeFileSync(stampFile, stamp);
  }
  return scratch;
}

/**
 * Builds the socket.io scratch dir: the checkout's lib/, test/ and
 * client-dist/ copied (unchanged), loaded from source with tsx. Returns the
 * scratch dir and the test files to run.
 */
function prepareSocketIoScratch(opts, depsNodeModules, against) {
  const src = path.join(opts.checkout, "packages", "socket.io");
  const scratch = path.join(WORK_DIR, "run-socket.io");
  fs.rmSync(scratch, { recursive: true, force: true });
  fs.mkdirSync(scratch, { recursive: true });
  for (const entry of ["lib", "test", "client-dist"]) {
    fs.cpSync(path.join(src, entry), path.join(scratch, entry), { recursive: true });
  }
  const pkg = readJson(path.join(src, "package.json"));
  writeJson(path.join(scratch, "package.json"), {
    name: pkg.name,
    version: pkg.version,
    private: true,
    description: "generated by scripts/upstream-suite.js: Socket.IO from the checkout's source",
    main: "./lib/index.ts",
  });
  // Stand-ins for the large fixtures some snapshots lack: a JSON document
  // and binary data of a few hundred KB, as the two tests reading them need.
  const fixtures = path.join(scratch, "test", "fixtures");
  const bigJson = path.join(fixtures, "big.json");
  if (!fs.existsSync(bigJson)) {
    const items = Array.from({ length: 3000 }, (_, i) => ({
      id: i,
      name: `item ${i}`,
      tags: ["a", "b", "c"],
      nested: { x: i * 1.5, y: "ü".repeat(i % 7) },
    }));
    writeFile(bigJson, JSON.stringify(items));
    log("socket.io: test/fixtures/big.json is missing from the checkout; wrote a stand-in");
  }
  const bigJpg = path.join(fixtures, "big.jpg");
  if (!fs.existsSync(bigJpg)) {
    const bytes = Buffer.alloc(300 * 1024);
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.imul(i, 2654435761) >>> 24;
    writeFile(bigJpg, bytes);
    log("socket.io: test/fixtures/big.jpg is missing from the checkout; wrote a stand-in");
  }
  writeFile(path.join(scratch, ".harness-reporter.js"), REPORTER_SOURCE);
  linkNodeModules(scratch, depsNodeModules, against);
  // The files test/index.ts requires, in its order, minus uws.ts.
  const index = fs.readFileSync(path.join(scratch, "test", "index.ts"), "utf8");
  const files = [...index.matchAll(/require\("\.\/([\w-]+)"\)/g)]
    .map((m) => m[1])
    .filter((name) => name !== "uws")
    .map((name) => `test/${name}.ts`);
  if (files.length === 0) throw new HarnessError("socket.io: no test files found in test/index.ts");
  return { scratch, files };
}

function portIsFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    // same bind as the upstream hooks (httpServer.listen(port)), so a
    // conflict shows up here rather than as a crashed before-all hook
    srv.listen(port, () => srv.close(() => resolve(true)));
  });
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Runs one mocha invocation in its own process group, bounded by
 * opts.runTimeout; returns the parsed results.
 */
async function runMocha(opts, run) {
  const eventsFile = path.join(LOG_DIR, `${run.id}.events.jsonl`);
  const logFile = path.join(LOG_DIR, `${run.id}.log`);
  fs.mkdirSync(LOG_DIR, { recursive: true });
  fs.rmSync(eventsFile, { force: true });
  const logStream = fs.createWriteStream(logFile);

  const mochaBin = path.join(run.scratch, "node_modules", "mocha", "bin", "mocha.js");
  const args = [
    ...(run.nodeArgs || []),
    mochaBin,
    "--no-config",
    "--no-package",
    "--exit",
    "--timeout",
    String(run.timeout || opts.timeout),
    "--reporter",
    path.join(run.scratch, ".harness-reporter.js"),
    ...(opts.grep ? ["--grep", opts.grep] : []),
    ...run.mochaArgs,
  ];
  const env = { ...process.env };
  for (const name of SUITE_ENV_VARS) delete env[name];
  Object.assign(env, run.env, {
    EIO_HARNESS_EVENTS: eventsFile,
    FORCE_COLOR: "0",
  });

  log(
    `${run.label}: node ${args
      .map((a) => (path.isAbsolute(a) ? path.relative(run.scratch, a) : a))
      .join(
        " ",
      )}   (cwd ${path.relative(REPO_ROOT, run.scratch)}, log ${path.relative(REPO_ROOT, logFile)})`,
  );
  const started = Date.now();
  const child = spawn(process.execPath, args, {
    cwd: run.scratch,
    env,
    detached: true, // own process group: the timeout kills it and its children
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  const tee = (chunk) => {
    logStream.write(chunk);
    if (!opts.quiet) process.stdout.write(chunk);
  };
  child.stdout.on("data", tee);
  child.stderr.on("data", tee);

  let timedOut = false;
  let killTimer;
  const timer = setTimeout(() => {
    timedOut = true;
    log(`${run.label}: hard timeout (${opts.runTimeout}s), killing its process group`);
    killGroup(child, "SIGTERM");
    killTimer = setTimeout(() => killGroup(child, "SIGKILL"), 5000);
  }, opts.runTimeout * 1000);

  const { code, signal } = await new Promise((resolve) => {
    child.on("close", (code, signal) => resolve({ code, signal }));
  });
  clearTimeout(timer);
  clearTimeout(killTimer);
  children.delete(child);
  // leftovers (e.g. fixture processes spawned by tests) of that group only
  killGroup(child, "SIGKILL");
  await new Promise((resolve) => logStream.end(resolve));

  const result = {
    suite: run.suite,
    mode: run.mode,
    label: run.label,
    passed: 0,
    failed: 0,
    pending: 0,
    planned: undefined,
    complete: false,
    timedOut,
    exitCode: code,
    signal,
    durationMs: Date.now() - started,
    log: logFile,
    failures: [],
    pendingTitles: [],
  };
  if (fs.existsSync(eventsFile)) {
    for (const line of fs.readFileSync(eventsFile, "utf8").split("\n")) {
      if (!line) continue;
      let ev;
      try {
        ev = JSON.parse(line);
      } catch {
        continue;
      }
      if (ev.type === "start") result.planned = ev.total;
      else if (ev.type === "pass") result.passed++;
      else if (ev.type === "pending") {
        result.pending++;
        result.pendingTitles.push(ev.title);
      } else if (ev.type === "fail") {
        result.failed++;
        result.failures.push({ title: ev.title, file: ev.file, error: ev.error });
      } else if (ev.type === "end") result.complete = true;
    }
  }
  return result;
}

function formatResult(r) {
  let line = `${r.label}: ${r.passed} passed, ${r.failed} failed, ${r.pending} pending`;
  const notes = [];
  if (r.planned !== undefined) {
    const ran = r.passed + r.pending + new Set(r.failures.map((f) => f.title)).size;
    if (r.planned > ran) notes.push(`${r.planned - ran} of ${r.planned} tests not run`);
  }
  if (r.timedOut) notes.push("HARD TIMEOUT, killed");
  else if (!r.complete) notes.push(`mocha did not finish (exit ${r.exitCode ?? r.signal})`);
  if (notes.length) line += ` (${notes.join("; ")})`;
  return line;
}

async function main() {
  const opts = parseCli(process.argv.slice(2));
  fs.mkdirSync(WORK_DIR, { recursive: true });

  const depsNodeModules = ensureInstalled(DEPS_DIR, TEST_DEPS, opts.reinstall);
  const against = resolveAgainst(opts.against, opts.reinstall);
  checkLoadable(against.modulePath);
  log(`package under test: ${against.label}`);

  // the client built from the checkout needs these at runtime: warn if the
  // checkout asks for a dependency this script does not pin
  const clientPkgFile = path.join(opts.checkout, "packages", "engine.io-client", "package.json");
  const clientPkg = fs.existsSync(clientPkgFile) ? readJson(clientPkgFile) : {};
  for (const dep of Object.keys(clientPkg.dependencies || {})) {
    if (!TEST_DEPS[dep]) log(`warning: engine.io-client dependency ${dep} is not pinned here`);
  }

  const runs = [];
  if (opts.suite === "engine.io" || opts.suite === "all") {
    const scratch = prepareEngineScratch(opts, depsNodeModules, against);
    const modes = opts.mode === "both" ? ["default", "v3"] : [opts.mode];
    for (const mode of modes) {
      runs.push({
        id: `engine.io-${mode}`,
        suite: "engine.io",
        mode,
        label: `engine.io ${mode}`,
        scratch,
        env: mode === "v3" ? { EIO_CLIENT: "3" } : {},
        mochaArgs: ENGINE_IO_TEST_FILES,
      });
    }
  }
  if (opts.suite === "engine.io-client" || opts.suite === "all") {
    const scratch = prepareClientScratch(opts, depsNodeModules, against);
    const modes =
      opts.clientMode === "all" ? ["default", "fetch", "builtin-ws"] : [opts.clientMode];
    const modeEnv = {
      default: {},
      fetch: { USE_FETCH: "1" },
      "builtin-ws": { USE_BUILTIN_WS: "1" },
    };
    for (const mode of modes) {
      runs.push({
        id: `engine.io-client-${mode}`,
        suite: "engine.io-client",
        mode,
        label: mode === "default" ? "engine.io-client" : `engine.io-client ${mode}`,
        scratch,
        env: modeEnv[mode],
        // Node 20/21 have the WebSocket global behind a flag (upstream CI uses Node 24)
        nodeArgs:
          mode === "builtin-ws" && typeof WebSocket === "undefined"
            ? ["--experimental-websocket"]
            : [],
        needsPort: CLIENT_PORT,
        mochaArgs: ["--require", "test/support/hooks.js", ...CLIENT_TEST_FILES],
      });
    }
  }

  if (opts.suite === "socket.io" || opts.suite === "all") {
    const { scratch, files } = prepareSocketIoScratch(opts, depsNodeModules, against);
    runs.push({
      id: "socket.io",
      suite: "socket.io",
      mode: "default",
      label: "socket.io",
      scratch,
      env: {},
      nodeArgs: ["--import", "tsx"],
      timeout: SOCKET_IO_TIMEOUT,
      mochaArgs: files,
    });
  }

  const results = [];
  let wtDeps;
  if (opts.suite === "webtransport") {
    const label = "engine.io webtransport";
    let notRun;
    const installed = await installWebTransportDeps(opts);
    if (installed.error) {
      notRun = installed.error;
    } else {
      wtDeps = installed.nodeModules;
      const scratch = prepareWebTransportScratch(opts, depsNodeModules, wtDeps, against);
      const loaded = await checkWebTransportLoadable(scratch);
      if (loaded.error) {
        notRun = loaded.error;
      } else {
        runs.push({
          id: "engine.io-webtransport",
          suite: "engine.io",
          mode: "webtransport",
          label,
          scratch,
          env: {},
          mochaArgs: [WEBTRANSPORT_TEST_FILE],
        });
      }
    }
    if (notRun) {
      log(`${label}: NOT RUN: ${notRun}`);
      results.push({
        suite: "engine.io",
        mode: "webtransport",
        label,
        notRun,
        passed: null,
        failed: null,
        pending: null,
        failures: [],
        pendingTitles: [],
      });
    }
  }

  for (const run of runs) {
    if (run.needsPort && !(await portIsFree(run.needsPort))) {
      log(`${run.label}: port ${run.needsPort} is in use; skipping this run`);
      results.push({
        suite: run.suite,
        mode: run.mode,
        label: run.label,
        passed: 0,
        failed: 0,
        pending: 0,
        complete: false,
        timedOut: false,
        error: `port ${run.needsPort} in use`,
        failures: [],
        pendingTitles: [],
      });
      continue;
    }
    results.push(await runMocha(opts, run));
  }

  console.log("");
  console.log(`== upstream suites against ${against.label}`);
  for (const r of results) {
    if (r.notRun) console.log(`${r.label}: NOT RUN -- ${r.notRun}`);
    else console.log(r.error ? `${r.label}: not run (${r.error})` : formatResult(r));
  }
  for (const r of results) {
    for (const f of r.failures) {
      const msg = (f.error || "").split("\n")[0].slice(0, 200);
      console.log(`  FAIL [${r.label}] ${f.title}${msg ? ` -- ${msg}` : ""}`);
    }
  }
  const ran = results.filter((r) => !r.notRun);
  const sum = (k) => ran.reduce((n, r) => n + r[k], 0);
  const totals =
    ran.length === 0
      ? null
      : { passed: sum("passed"), failed: sum("failed"), pending: sum("pending") };
  console.log(
    totals
      ? `upstream: ${totals.passed} passed, ${totals.failed} failed, ${totals.pending} skipped`
      : "upstream: NOT RUN",
  );

  if (opts.json) {
    writeJson(opts.json, {
      checkout: opts.checkout,
      against: against.label,
      againstPath: against.modulePath,
      node: process.version,
      deps: Object.fromEntries(
        Object.keys(TEST_DEPS).map((n) => [n, installedVersion(depsNodeModules, n)]),
      ),
      ...(opts.suite === "webtransport"
        ? {
            webtransportDeps: Object.fromEntries(
              Object.entries(WEBTRANSPORT_DEPS).map(([n, pinned]) => [
                n,
                { pinned, installed: wtDeps ? installedVersion(wtDeps, n) : null },
              ]),
            ),
          }
        : {}),
      options: {
        suite: opts.suite,
        mode: opts.mode,
        clientMode: opts.clientMode,
        grep: opts.grep,
        timeout: opts.timeout,
        runTimeout: opts.runTimeout,
        installTimeout: opts.installTimeout,
      },
      totals,
      runs: results,
    });
    log(`results written to ${opts.json}`);
  }

  if (results.some((r) => r.notRun)) return EXIT_NOT_RUN;
  const bad = results.some((r) => r.failed > 0 || r.error || r.timedOut || !r.complete);
  return opts.strict && bad ? 1 : 0;
}

function cleanupAndExit(code) {
  for (const child of children) killGroup(child, "SIGKILL");
  process.exit(code);
}

process.on("SIGINT", () => cleanupAndExit(130));
process.on("SIGTERM", () => cleanupAndExit(143));

main().then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof HarnessError) log(`error: ${err.message}`);
    else log(`error: ${err && err.stack ? err.stack : err}`);
    cleanupAndExit(2);
  },
);
