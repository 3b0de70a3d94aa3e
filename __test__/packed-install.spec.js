"use strict";

// What a user gets from `npm install eio-rs`: the tarballs `npm run
// pack:local` makes (the main package and this platform's package, as the
// release workflow publishes them) installed into a fresh project with no
// Rust on PATH, then used from CommonJS, ESM and TypeScript, with Socket.IO.

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const root = path.join(__dirname, "..");
const pkg = require("../package.json");
const { platformName } = require("../lib/platform");
const { mainManifest } = require("../scripts/pack");

const work = fs.mkdtempSync(path.join(os.tmpdir(), "eio-rs-packed-"));
const app = path.join(work, "app");
const platformPackage = `${pkg.name}-${platformName()}`;

// PATH without the folders that hold a Rust toolchain, as on a user's machine.
const rustTools = ["cargo", "rustc", "rustup"].map((t) =>
  process.platform === "win32" ? `${t}.exe` : t,
);
const noRustPath = (process.env.PATH || "")
  .split(path.delimiter)
  .filter((dir) => dir && !rustTools.some((t) => fs.existsSync(path.join(dir, t))))
  .join(path.delimiter);
const env = { ...process.env, PATH: noRustPath, NAPI_RS_NATIVE_LIBRARY_PATH: "" };
delete env.CARGO_HOME;
delete env.RUSTUP_HOME;

/** Runs a command to completion (bounded); fails the test with its output otherwise. */
function run(cmd, args, { cwd = app, timeout = 60000, extraEnv = {} } = {}) {
  const r = spawnSync(cmd, args, {
    cwd,
    env: { ...env, ...extraEnv },
    encoding: "utf8",
    timeout,
  });
  const out = `${r.stdout}${r.stderr}`;
  assert.equal(r.error, undefined, `${cmd} ${args.join(" ")}: ${r.error}\n${out}`);
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} exited ${r.status}:\n${out}`);
  return r.stdout;
}

/** Writes `file` in the app and runs it with Node; it must print `ok` and exit by itself. */
function runScript(file, source, extraEnv) {
  fs.writeFileSync(path.join(app, file), source);
  const out = run(process.execPath, [file], { timeout: 20000, extraEnv });
  assert.match(out, /^ok$/m, out);
  return out;
}

let tarballs;

before(() => {
  // The same command a developer runs; in CI the build is already fresh.
  const out = run(process.execPath, [path.join(root, "scripts/pack.js"), "local", work], {
    cwd: root,
    timeout: 15 * 60000,
    extraEnv: { PATH: process.env.PATH },
  });
  tarballs = out
    .trim()
    .split("\n")
    .filter((l) => l.endsWith(".tgz"));
  fs.mkdirSync(app);
  const file = (name) => `file:${tarballs.find((t) => path.basename(t) === name)}`;
  fs.writeFileSync(
    path.join(app, "package.json"),
    JSON.stringify(
      {
        name: "eio-rs-user",
        version: "1.0.0",
        private: true,
        dependencies: {
          [pkg.name]: file(`${pkg.name}-${pkg.version}.tgz`),
          [platformPackage]: file(`${platformPackage}-${pkg.version}.tgz`),
          "engine.io-client": pkg.devDependencies["engine.io-client"],
          "socket.io": pkg.devDependencies["socket.io"],
          "socket.io-client": pkg.devDependencies["socket.io-client"],
          "@types/node": pkg.devDependencies["@types/node"],
        },
        // Socket.IO's engine.io replaced by eio-rs, as a user of Socket.IO does it.
        overrides: { "engine.io": `$${pkg.name}` },
      },
      null,
      2,
    ),
  );
  run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], { timeout: 5 * 60000 });
});

after(() => fs.rmSync(work, { recursive: true, force: true }));

test("pack:local writes the main package and this platform's package", () => {
  assert.deepEqual(tarballs.map((t) => path.basename(t)).sort(), [
    `${pkg.name}-${pkg.version}.tgz`,
    `${platformPackage}-${pkg.version}.tgz`,
  ]);
  const manifest = JSON.parse(
    run("tar", [
      "-xzOf",
      tarballs.find((t) => t.endsWith(`${pkg.name}-${pkg.version}.tgz`)),
      "package/package.json",
    ]),
  );
  assert.equal(manifest.scripts, undefined, "the published package runs no install script");
  assert.deepEqual(manifest.optionalDependencies, mainManifest().optionalDependencies);
  assert.equal(manifest.optionalDependencies[platformPackage], pkg.version);
});

test("the install needed no Rust, and npm ls is clean", () => {
  const cargo = spawnSync("cargo", ["--version"], { env });
  assert.equal(cargo.error && cargo.error.code, "ENOENT", "cargo is not on the test's PATH");
  run("npm", ["ls", "--all"]);
  const installed = require(path.join(app, "node_modules", platformPackage, "package.json"));
  assert.equal(installed.version, pkg.version);
  assert.ok(!fs.existsSync(path.join(app, "node_modules", pkg.name, "Cargo.toml")));
});

// An echo through a real engine.io-client, polling then WebSocket; prints ok.
const echo = (engineVar) => `
  function echo(${engineVar}, port, path = "/engine.io") {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no echo")), 10000);
      ${engineVar}.on("connection", (s) => s.on("message", (m) => s.send(m)));
      const c = new ClientSocket("http://127.0.0.1:" + port, { path });
      c.on("upgrade", () => c.send("over " + c.transport.name));
      c.on("message", (m) => {
        clearTimeout(timer);
        c.close();
        resolve(m);
      });
      c.on("error", reject);
    });
  }`;

test("CommonJS: listen() and attach() echo with engine.io-client, and the process exits", () => {
  runScript(
    "cjs.js",
    `const http = require("http");
     const assert = require("assert");
     const { listen, attach } = require("eio-rs");
     const { Socket: ClientSocket } = require("engine.io-client");
     ${echo("engine")}
     const native = listen(0, async () => {
       assert.equal(await echo(native, native.httpServer.address().port), "over websocket");
       native.close();
       native.httpServer.close();
       const server = http.createServer((req, res) => res.end("app"));
       const attached = attach(server, { path: "/rt" });
       server.listen(0, async () => {
         assert.equal(await echo(attached, server.address().port, "/rt"), "over websocket");
         attached.close();
         server.close();
         console.log("ok");
       });
     });`,
  );
});

test("ESM: named imports, and attach() echoes", () => {
  runScript(
    "esm.mjs",
    `import http from "node:http";
     import assert from "node:assert";
     import eio, { Server, attach, listen, Socket } from "eio-rs";
     import { Socket as ClientSocket } from "engine.io-client";
     ${echo("engine")}
     assert.equal(typeof Server, "function");
     assert.equal(typeof listen, "function");
     assert.equal(typeof Socket, "function");
     assert.equal(eio.attach, attach);
     const server = http.createServer();
     const engine = new Server({ pingInterval: 5000 });
     engine.attach(server);
     await new Promise((r) => server.listen(0, r));
     assert.equal(await echo(engine, server.address().port), "over websocket");
     engine.close();
     server.close();
     console.log("ok");`,
  );
});

test("Socket.IO on eio-rs: io.bind(listen()) and engine.io aliased through overrides", () => {
  const socketio = path.dirname(require.resolve("socket.io/package.json", { paths: [app] }));
  const aliased = require(require.resolve("engine.io/package.json", { paths: [socketio] }));
  assert.equal(aliased.name, pkg.name, "socket.io's engine.io is eio-rs");
  runScript(
    "socketio.js",
    `const http = require("http");
     const assert = require("assert");
     const { Server: IO } = require("socket.io");
     const { io: connect } = require("socket.io-client");
     const { listen } = require("eio-rs");
     const ack = (port, path) => new Promise((resolve, reject) => {
       const c = connect("http://127.0.0.1:" + port, { path });
       c.timeout(5000).emit("hello", "world", (err, reply) => {
         c.close();
         err ? reject(err) : resolve(reply);
       });
     });
     const onHello = (io) => io.on("connection", (s) => s.on("hello", (x, cb) => cb(x + " via " + s.conn.constructor.name)));
     const bound = new IO();
     const engine = listen(0, async () => {
       bound.bind(engine);
       onHello(bound);
       assert.equal(await ack(engine.httpServer.address().port, "/engine.io"), "world via Socket");
       bound.close();
       engine.httpServer.close();
       const server = http.createServer();
       const io = new IO(server);
       const socketio = require("path").dirname(require.resolve("socket.io/package.json"));
       const aliased = require(require.resolve("engine.io", { paths: [socketio] }));
       assert.equal(io.engine.constructor, aliased.Server, "new Server(httpServer) runs on the alias");
       onHello(io);
       server.listen(0, async () => {
         assert.equal(await ack(server.address().port, "/socket.io"), "world via Socket");
         io.close();
         console.log("ok");
       });
     });`,
  );
});

test("TypeScript: eio-rs with Socket.IO compiles with tsc --strict", () => {
  fs.writeFileSync(
    path.join(app, "check.ts"),
    `import { createServer } from "node:http";
     import { listen, attach, Server as Engine, Socket, type ServerOptions } from "eio-rs";
     import { Server as IOServer } from "socket.io";

     type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

     const opts: ServerOptions = { pingInterval: 10000, maxHttpBufferSize: 1e6, cors: { origin: "*" } };
     const engine: Engine = listen(0, opts, () => undefined);
     engine.on("connection", (socket: Socket) => {
       socket.on("message", (data) => {
         const exact: Equals<typeof data, string | Buffer> = true;
         socket.send(data, { compress: false }, () => exact);
       });
       socket.on("close", (reason, description) => {
         const r: string = reason;
         return [r, description];
       });
       socket.close();
     });
     engine.on("connection_error", (err) => console.log(err.code, err.message, err.req.url));

     const io = new IOServer();
     io.bind(engine);

     const httpServer = createServer();
     const io2 = new IOServer(httpServer, { pingTimeout: 5000, transports: ["polling", "websocket"] });
     io2.on("connection", (s) => {
       const conn: Socket = s.conn;
       console.log(conn.transport.name, conn.protocol, s.id);
     });
     const attached: Engine = attach(httpServer, { path: "/eio" });
     attached.close();
     `,
  );
  fs.writeFileSync(
    path.join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        module: "nodenext",
        moduleResolution: "nodenext",
        target: "es2022",
        types: ["node"],
      },
      files: ["check.ts"],
    }),
  );
  run(path.join(root, "node_modules/.bin/tsc"), ["--strict", "--noEmit", "-p", "tsconfig.json"]);
});

test("two copies of the addon in one process: two packages, two binaries, both serve", () => {
  // node_modules/eio-rs and socket.io's engine.io alias are two copies of
  // the package; the second loads its own copy of the binary.
  const copy = path.join(work, `copy.${platformName()}.node`);
  fs.copyFileSync(require.resolve(platformPackage, { paths: [app] }), copy);
  runScript(
    "twice.js",
    `const assert = require("assert");
     const { Socket: ClientSocket } = require("engine.io-client");
     ${echo("engine")}
     const a = require("eio-rs");
     process.env.NAPI_RS_NATIVE_LIBRARY_PATH = ${JSON.stringify(copy)};
     const socketio = require("path").dirname(require.resolve("socket.io/package.json"));
     const b = require(require.resolve("engine.io", { paths: [socketio] }));
     assert.notEqual(a.Server, b.Server);
     const one = a.listen(0, () => {
       const two = b.listen(0, async () => {
         const got = await Promise.all([
           echo(one, one.httpServer.address().port),
           echo(two, two.httpServer.address().port),
         ]);
         assert.deepEqual(got, ["over websocket", "over websocket"]);
         for (const e of [one, two]) { e.close(); e.httpServer.close(); }
         console.log("ok");
       });
     });`,
  );
});
