"use strict";

// A real browser over TLS, on listen() and on attach() to Node's
// http2.createSecureServer(): Debian's Chromium, with engine.io-client's
// browser bundle, polls over HTTP/2 and then opens its WebSocket on the same
// HTTP/2 connection (RFC 8441). The server's side proves it: the upgrade
// request is a CONNECT of HTTP version 2.0. Saves
// test-results/http2-page.png and test-results/http2-attach-page.png.
//
// Needs /usr/bin/chromium (.ci/run installs it); skipped without it, failed
// when $CI is set.

const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const http = require("node:http");
const http2 = require("node:http2");
const os = require("node:os");
const path = require("node:path");
const { listen, Server } = require("..");
const { stop } = require("./helpers");

const CHROMIUM = "/usr/bin/chromium";
const ROOT = path.join(__dirname, "..");
const STEP_MS = 10000;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eio-rs-h2b-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>eio-rs over HTTP/2</title>
<style>body{font:15px system-ui,sans-serif;margin:2em} b{color:#b4410f}</style></head>
<body><h1>eio-rs over <b>HTTP/2</b></h1>
<p>transport: <span id="transport">connecting…</span></p><p>echo: <span id="echo">—</span></p>
<script src="/engine.io.min.js"></script>
<script>
  const socket = eio(location.search.slice(1), { withCredentials: true });
  socket.on("open", () => (document.getElementById("transport").textContent = socket.transport.name));
  socket.on("upgrade", () => {
    document.getElementById("transport").textContent = socket.transport.name;
    socket.send("hello over " + socket.transport.name);
  });
  socket.on("message", (m) => { if (m.startsWith("echo")) document.getElementById("echo").textContent = m; });
</script></body></html>`;

/** Starts the engine with `key` and `cert`; resolves with it, its URL and how to stop it. */
const FRONT_ENDS = {
  "listen()": (key, cert, opts) =>
    new Promise((resolve, reject) => {
      const engine = listen(0, { key, cert, ...opts }, () =>
        resolve({
          engine,
          url: `https://127.0.0.1:${engine.httpServer.address().port}`,
          stop: () => stop(engine),
        }),
      );
      engine.httpServer.once("error", reject);
    }),
  "attach() to http2.createSecureServer()": (key, cert, opts) =>
    new Promise((resolve) => {
      const server = http2.createSecureServer({ key, cert, allowHTTP1: true });
      const engine = new Server(opts);
      engine.attach(server);
      server.listen(0, "127.0.0.1", () =>
        resolve({
          engine,
          url: `https://127.0.0.1:${server.address().port}`,
          stop: () => (engine.close(), new Promise((r) => server.close(r))),
        }),
      );
    }),
};

for (const [frontEnd, start] of Object.entries(FRONT_ENDS)) {
  const shot = frontEnd.startsWith("listen") ? "http2-page.png" : "http2-attach-page.png";
  test(`${frontEnd}: Chromium polls over HTTP/2 and opens its WebSocket on the same connection`, (t) =>
    browserOverHttp2(t, start, path.join(ROOT, "test-results", shot)));
}

async function browserOverHttp2(t, start, SCREENSHOT) {
  if (!fs.existsSync(CHROMIUM)) {
    if (process.env.CI) assert.fail(`${CHROMIUM} is missing: .ci/run installs it`);
    t.skip(`${CHROMIUM} not found: install Debian's chromium to run it`);
    return;
  }
  const { chromium } = require("playwright-core");
  execFileSync(
    "openssl",
    [
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
      ["-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
      ["-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem")],
    ].flat(),
    { stdio: "ignore" },
  );
  const key = fs.readFileSync(path.join(dir, "key.pem"));
  const cert = fs.readFileSync(path.join(dir, "cert.pem"));
  // Chromium trusts this one certificate by its public key's hash.
  const spki = crypto
    .createHash("sha256")
    .update(crypto.createPublicKey(cert).export({ type: "spki", format: "der" }))
    .digest("base64");

  const bundle = require.resolve("engine.io-client/dist/engine.io.min.js");
  const pages = http.createServer((req, res) => {
    if (req.url === "/engine.io.min.js") {
      res.writeHead(200, { "Content-Type": "application/javascript" });
      fs.createReadStream(bundle).pipe(res);
    } else {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end(PAGE);
    }
  });
  await new Promise((r) => pages.listen(0, "127.0.0.1", r));
  const origin = `http://127.0.0.1:${pages.address().port}`;

  const requests = [];
  const {
    engine,
    url: engineUrl,
    stop: stopEngine,
  } = await start(key, cert, {
    cors: { origin, credentials: true },
  });
  engine.on("headers", (headers, req) =>
    requests.push(`${req.method} ${req._query.transport} ${req.httpVersion}`),
  );
  engine.on("connection", (socket) => socket.on("message", (m) => socket.send(`echo ${m}`)));

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: STEP_MS,
    args: [
      ...["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"],
      ...["--disable-background-networking", "--disable-component-update", "--disable-sync"],
      `--ignore-certificate-errors-spki-list=${spki}`,
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 700, height: 300 } });
    page.setDefaultTimeout(STEP_MS);
    await page.goto(`${origin}/?${engineUrl}`);
    await page.waitForFunction(() =>
      document.getElementById("echo").textContent.startsWith("echo"),
    );
    assert.equal(await page.textContent("#transport"), "websocket");
    assert.equal(await page.textContent("#echo"), "echo hello over websocket");
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
    t.diagnostic(`screenshot: ${path.relative(ROOT, SCREENSHOT)}`);
  } finally {
    await browser.close().catch(() => {});
    pages.close();
    await stopEngine();
  }
  assert.ok(requests.includes("GET polling 2.0"), `polling over HTTP/2: ${requests}`);
  assert.ok(requests.includes("CONNECT websocket 2.0"), `WebSocket over HTTP/2: ${requests}`);
}
