"use strict";

// WebTransport in a real browser: Debian's Chromium, driven by
// playwright-core, loads engine.io-client's browser bundle from a page on
// http://127.0.0.1 (a secure context, so `WebTransport` exists) and reaches
// the engine's own HTTP/3 endpoint, trusting its self-signed certificate
// by hash (`serverCertificateHashes`). One client opens over polling and
// upgrades to WebTransport; another uses WebTransport alone and closes it.
// Both get text and binary echoed. A screenshot of the page is saved to
// test-results/webtransport-page.png.
//
// engine.io-client (6.6) opens its session at the engine's path with no
// query at all (`https://127.0.0.1:PORT/engine.io/`): the stream's first
// packet, `open` with the sid when upgrading, says the rest, as engine.io's
// onWebTransportSession() expects. The bundle is used as it is, so the
// server has to accept that.
//
// Needs /usr/bin/chromium (`apt-get install chromium`; .ci/run installs it).
// Without it the test is skipped, or fails when $CI is set. Playwright's own
// browser download is never used.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");
const { listen } = require("..");
const { stop } = require("./helpers");
const { makeCertificate } = require("./wt/cert.js");

const CHROMIUM = "/usr/bin/chromium";
// Headless and quiet, as in demo-browser.spec.js, but without
// --disable-quic: WebTransport runs over QUIC (HTTP/3).
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const ROOT = path.join(__dirname, "..");
const SCREENSHOT = path.join(ROOT, "test-results", "webtransport-page.png");
const STEP_MS = 10000;
const TEXT = "hello over webtransport ✓";
const BYTES = [0, 1, 2, 127, 128, 253, 254, 255];

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>eio-rs over WebTransport</title><link rel="icon" href="data:,">
<style>
  body{font:15px system-ui,sans-serif;margin:2em} b{color:#b4410f}
  section{border:1px solid #ccc;border-radius:6px;padding:.2em 1em;margin:1em 0}
  li{font-family:ui-monospace,monospace;margin:.2em 0} li.error{color:#b00}
</style></head>
<body><h1>eio-rs over <b>WebTransport</b></h1>
<p>WebTransport in this page: <span id="support"></span></p>
<section><h2>polling → webtransport</h2><ul id="upgrade"></ul></section>
<section><h2>webtransport only</h2><ul id="only"></ul></section>
<script src="/engine.io.js"></script>
<script>
  document.getElementById("support").textContent =
    typeof WebTransport === "function" ? "yes (secure context: " + isSecureContext + ")" : "no";
  const sockets = {};
  function line(list, text, cls) {
    const li = document.createElement("li");
    li.textContent = text;
    if (cls) li.className = cls;
    document.getElementById(list).appendChild(li);
  }
  // Connects with \`transports\`; once on webtransport sends a text and a
  // binary message and resolves with what was seen when both came back.
  window.run = (list, url, hash, transports) =>
    new Promise((resolve, reject) => {
      const seen = { open: null, upgrade: null, transport: null, text: null, binary: null, binaryType: null };
      const socket = eio(url, {
        transports,
        transportOptions: {
          webtransport: { serverCertificateHashes: [{ algorithm: "sha-256", value: new Uint8Array(hash) }] },
        },
      });
      sockets[list] = socket;
      const start = () => {
        seen.transport = socket.transport.name;
        socket.send(${JSON.stringify(TEXT)});
        socket.send(new Uint8Array(${JSON.stringify(BYTES)}));
      };
      socket.on("open", () => {
        seen.open = socket.transport.name;
        seen.sid = socket.id;
        line(list, "open over " + socket.transport.name + " (sid " + socket.id + ")");
        if (socket.transport.name === "webtransport") start();
      });
      socket.on("upgrade", (t) => {
        seen.upgrade = t.name;
        line(list, "upgraded to " + t.name + ", now on " + socket.transport.name);
        start();
      });
      socket.on("message", (m) => {
        if (typeof m === "string") {
          seen.text = m;
          line(list, "echo (text, " + socket.transport.name + "): " + m);
        } else {
          seen.binaryType = Object.prototype.toString.call(m);
          seen.binary = Array.from(new Uint8Array(m));
          line(list, "echo (binary " + seen.binaryType + ", " + socket.transport.name + "): [" + seen.binary + "]");
        }
        if (seen.text !== null && seen.binary !== null) resolve(seen);
      });
      socket.on("upgradeError", (e) => {
        line(list, "upgrade error: " + e.message, "error");
        reject(new Error("upgrade failed: " + e.message));
      });
      socket.on("error", (e) => {
        line(list, "error: " + e, "error");
        reject(new Error("engine.io-client error: " + e));
      });
      socket.on("close", (reason, description) => {
        seen.closed = reason;
        line(list, "closed: " + reason + (description ? " (" + (description.message || description.description || description) + ")" : ""));
        if (reason !== "forced close") reject(new Error("closed before the echoes: " + reason));
      });
    });
  // Closes the socket; resolves with the reason its close event gave.
  window.closeSocket = (list) =>
    new Promise((resolve) => {
      sockets[list].on("close", (reason) => resolve(reason));
      sockets[list].close();
    });
</script></body></html>`;

/** Resolves (or rejects) with `promise`, rejecting after `ms` with `what`. */
function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Polls `check` every 20 ms until it returns true, for at most STEP_MS. */
function until(check, what) {
  return within(
    (async () => {
      while (!check()) await new Promise((r) => setTimeout(r, 20));
    })(),
    STEP_MS,
    what,
  );
}

/**
 * Starts the engine with WebTransport on port 0. The client reaches the
 * HTTP/3 endpoint on the HTTP port's number, so the UDP port must be the
 * same: it is, unless that number was taken for UDP, in which case the
 * endpoint fails to open and this tries again on another port.
 */
async function startEngine(cert) {
  let lastError = null;
  for (let attempt = 0; attempt < 5; attempt++) {
    const engine = listen(0, {
      transports: ["polling", "websocket", "webtransport"],
      webtransport: { key: cert.key, cert: cert.cert },
      cors: { origin: "*" },
    });
    // An endpoint that cannot open is an "error", emitted before "listening".
    const started = await new Promise((resolve) => {
      engine.httpServer.once("listening", () => resolve(null));
      engine.httpServer.once("error", (err) => resolve(err));
    });
    const tcp = engine.httpServer.address();
    const udp = engine.webTransportAddress();
    if (!started && udp && tcp && udp.port === tcp.port) return engine;
    lastError = started || new Error(`TCP ${tcp && tcp.port}, UDP ${JSON.stringify(udp)}`);
    await stop(engine);
  }
  throw new Error(`no port free for both TCP and UDP: ${lastError && lastError.message}`);
}

test(
  "Chromium upgrades from polling to WebTransport and uses WebTransport alone",
  { timeout: 60000 },
  async (t) => {
    if (!fs.existsSync(CHROMIUM)) {
      if (process.env.CI) {
        assert.fail(
          `${CHROMIUM} is missing: .ci/run installs it (apt-get install chromium), ` +
            "so this machine did not run .ci/run's setup",
        );
      }
      t.skip(
        `${CHROMIUM} not found: install Debian's chromium (apt-get install chromium) to run it`,
      );
      return;
    }
    const { chromium } = require("playwright-core");

    const cert = makeCertificate({});
    const bundle = require.resolve("engine.io-client/dist/engine.io.js");
    const pages = http.createServer((req, res) => {
      if (req.url === "/engine.io.js") {
        res.writeHead(200, { "Content-Type": "application/javascript" });
        fs.createReadStream(bundle).pipe(res);
      } else if (req.url === "/") {
        res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end(PAGE);
      } else {
        res.writeHead(404).end();
      }
    });
    let engine = null;
    let browser = null;
    try {
      await new Promise((resolve, reject) => {
        pages.once("error", reject);
        pages.listen(0, "127.0.0.1", resolve);
      });
      const pageUrl = `http://127.0.0.1:${pages.address().port}/`;
      engine = await startEngine(cert);
      const port = engine.httpServer.address().port;
      const engineUrl = `http://127.0.0.1:${port}`;
      t.diagnostic(`page ${pageUrl}, engine ${engineUrl} (TCP), WebTransport on UDP ${port}`);

      // What the server saw, per session id, and the requests it refused.
      const sessions = new Map();
      const refused = [];
      engine.on("connection_error", (err) =>
        refused.push(
          `${err.req && err.req.method} ${err.req && err.req.url}: ${err.message} (code ${err.code})`,
        ),
      );
      engine.on("connection", (socket) => {
        const s = { transport: socket.transport.name, upgrades: [], messages: [], close: null };
        sessions.set(socket.id, s);
        socket.on("upgrade", (transport) => s.upgrades.push(transport.name));
        socket.on("message", (m) => {
          s.messages.push({ data: m, over: socket.transport.name });
          socket.send(m);
        });
        socket.on("close", (reason) => (s.close = reason));
        s.socket = socket;
      });

      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
        timeout: STEP_MS,
      });
      const page = await browser.newPage({ viewport: { width: 900, height: 600 } });
      page.setDefaultTimeout(STEP_MS);
      const pageErrors = [];
      const consoleLines = [];
      page.on("pageerror", (err) => pageErrors.push(`${err.name}: ${err.message}`));
      page.on("console", (msg) => consoleLines.push(`${msg.type()}: ${msg.text()}`));
      const problems = () =>
        `page errors: ${JSON.stringify(pageErrors)}\nconsole: ${JSON.stringify(consoleLines)}` +
        `\nserver sessions: ${JSON.stringify([...sessions], (k, v) => (k === "socket" ? undefined : v))}` +
        `\nserver refused: ${JSON.stringify(refused)}`;
      const inPage = (what, fn, arg) =>
        within(page.evaluate(fn, arg), STEP_MS, what).catch((err) => {
          throw new Error(`${what}: ${err.message}\n${problems()}`);
        });

      await page.goto(pageUrl, { waitUntil: "load" });
      assert.equal(
        await page.textContent("#support"),
        "yes (secure context: true)",
        "the page has WebTransport",
      );
      const hash = Array.from(cert.hash);

      // 1. polling, then the upgrade to WebTransport.
      const up = await inPage(
        "polling client upgrading to webtransport and getting its echoes",
        ([url, h]) => window.run("upgrade", url, h, ["polling", "webtransport"]),
        [engineUrl, hash],
      );
      assert.equal(up.open, "polling", problems());
      assert.equal(up.upgrade, "webtransport", problems());
      assert.equal(up.transport, "webtransport", "the page's socket is on webtransport");
      assert.equal(up.text, TEXT);
      assert.equal(up.binaryType, "[object ArrayBuffer]");
      assert.deepEqual(up.binary, BYTES);
      const upServer = sessions.get(up.sid);
      assert.ok(upServer, `the server knows ${up.sid}: ${problems()}`);
      assert.equal(upServer.transport, "polling");
      assert.deepEqual(upServer.upgrades, ["webtransport"]);
      assert.equal(upServer.socket.transport.name, "webtransport");
      assert.equal(upServer.messages.length, 2, problems());
      assert.deepEqual(upServer.messages[0], { data: TEXT, over: "webtransport" });
      assert.ok(Buffer.isBuffer(upServer.messages[1].data), "binary arrives as a Buffer");
      assert.deepEqual([...upServer.messages[1].data], BYTES);
      assert.equal(upServer.messages[1].over, "webtransport");
      assert.equal(upServer.close, null);

      // 2. WebTransport alone, then closed by the page.
      const only = await inPage(
        "webtransport-only client connecting and getting its echoes",
        ([url, h]) => window.run("only", url, h, ["webtransport"]),
        [engineUrl, hash],
      );
      assert.equal(only.open, "webtransport", problems());
      assert.equal(only.upgrade, null);
      assert.equal(only.transport, "webtransport");
      assert.equal(only.text, TEXT);
      assert.equal(only.binaryType, "[object ArrayBuffer]");
      assert.deepEqual(only.binary, BYTES);
      const onlyServer = sessions.get(only.sid);
      assert.ok(onlyServer, `the server knows ${only.sid}: ${problems()}`);
      assert.equal(onlyServer.transport, "webtransport");
      assert.deepEqual(onlyServer.upgrades, []);
      assert.deepEqual(onlyServer.messages[0], { data: TEXT, over: "webtransport" });
      assert.ok(Buffer.isBuffer(onlyServer.messages[1].data), "binary arrives as a Buffer");
      assert.deepEqual([...onlyServer.messages[1].data], BYTES);
      assert.equal(onlyServer.messages.length, 2);

      assert.deepEqual(pageErrors, [], problems());
      const pageReason = await inPage(
        "the page closing its socket",
        (list) => window.closeSocket(list),
        "only",
      );
      assert.equal(pageReason, "forced close");
      await until(() => onlyServer.close !== null, "the server seeing the close").catch((err) => {
        throw new Error(`${err.message}\n${problems()}`);
      });
      assert.equal(onlyServer.close, "transport close", problems());
      // The other session is untouched.
      assert.equal(upServer.close, null);
      assert.equal(engine.clientsCount, 1);

      assert.deepEqual(refused, [], problems());
      // engine.io-client's WebTransport transport leaves promises on the
      // session's stream unhandled (its encoder's pipeTo() and writes): when
      // it closes the session itself (WT.doClose()), Chromium sometimes
      // reports their rejection, made in doClose(), as an uncaught error.
      // That, after the page's own close, is the only page error allowed.
      assert.deepEqual(
        pageErrors.filter((e) => e !== "WebTransportError: The session is closed."),
        [],
        problems(),
      );
      assert.deepEqual(
        consoleLines.filter((l) => l.startsWith("error")),
        [],
        problems(),
      );

      fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      t.diagnostic(`screenshot: ${path.relative(ROOT, SCREENSHOT)}`);
    } finally {
      if (browser) await within(browser.close(), STEP_MS, "closing Chromium").catch(() => {});
      if (engine) await within(stop(engine), STEP_MS, "closing the engine").catch(() => {});
      await new Promise((r) => pages.close(r));
    }
  },
);
