"use strict";

// The demo (demo/server.js and demo/index.html) in a real browser: Debian's
// Chromium, driven by playwright-core, opens the page, which connects to the
// engine with engine.io-client's browser bundle over polling, upgrades to
// WebSocket and gets its messages echoed. A screenshot of the page is saved
// to test-results/demo-page.png.
//
// Needs /usr/bin/chromium (`apt-get install chromium`; .ci/run installs it).
// Without it the test is skipped, or fails when $CI is set. Playwright's own
// browser download is never used.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const CHROMIUM = "/usr/bin/chromium";
// Headless, and quiet: the machines this runs on may have no network, and
// Chromium's background services would keep trying to reach it.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const ROOT = path.join(__dirname, "..");
const SCREENSHOT = path.join(ROOT, "test-results", "demo-page.png");
const STEP_MS = 10000;

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

/**
 * Starts `node demo/server.js 0` (free ports for the engine and the page)
 * and resolves once it has printed both of its URLs.
 */
function startDemo() {
  const child = spawn(process.execPath, [path.join(ROOT, "demo", "server.js"), "0"], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const demo = { child, output: "", exited: null };
  demo.exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });
  const ready = new Promise((resolve, reject) => {
    const check = () => {
      const engine = /engine listening on (http:\/\/\S+)/.exec(demo.output);
      const page = /demo page on (http:\/\/\S+)/.exec(demo.output);
      if (engine && page) {
        demo.engineUrl = engine[1];
        demo.pageUrl = page[1];
        resolve(demo);
      }
    };
    child.stdout.on("data", (d) => {
      demo.output += d;
      check();
    });
    child.stderr.on("data", (d) => (demo.output += d));
    child.on("error", reject);
    demo.exited.then(({ code, signal }) =>
      reject(
        new Error(`demo/server.js exited (${signal || code}) before listening:\n${demo.output}`),
      ),
    );
  });
  demo.ready = within(ready, STEP_MS, "demo/server.js printing its URLs");
  return demo;
}

/** Kills the demo by its PID if it is still running. */
function killDemo(demo) {
  const { child } = demo;
  if (child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

test(
  "the demo page connects, upgrades to WebSocket and echoes in Chromium",
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

    const demo = startDemo();
    let browser = null;
    try {
      await demo.ready;
      t.diagnostic(`demo: engine ${demo.engineUrl}, page ${demo.pageUrl}`);

      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
        timeout: STEP_MS,
      });
      const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
      page.setDefaultTimeout(STEP_MS);
      const pageErrors = [];
      const consoleErrors = [];
      page.on("pageerror", (err) => pageErrors.push(err.message));
      page.on("console", (msg) => {
        if (msg.type() === "error") consoleErrors.push(msg.text());
      });
      const problems = () =>
        `page errors: ${JSON.stringify(pageErrors)}, console errors: ${JSON.stringify(consoleErrors)}` +
        `\ndemo output:\n${demo.output}`;

      await page.goto(demo.pageUrl, { waitUntil: "load" });

      // Open over polling, then the upgrade to WebSocket.
      await page
        .locator('#status[data-state="open"]')
        .waitFor()
        .catch((err) => {
          throw new Error(`the page never showed "open": ${err.message}\n${problems()}`);
        });
      assert.equal(await page.textContent("#status"), "open");
      const sid = await page.textContent("#sid");
      assert.match(sid, /^[\w-]{20}$/, "the page shows the session id");
      await page
        .waitForFunction(() => document.getElementById("transport").textContent === "websocket")
        .catch((err) => {
          throw new Error(`the page never showed the upgrade: ${err.message}\n${problems()}`);
        });
      assert.match(await page.textContent("#upgrade"), /polling → websocket, \d+ ms after open/);
      assert.match(demo.output, new RegExp(`\\+ ${sid} via polling`), demo.output);
      await within(
        (async () => {
          while (!new RegExp(`${sid} upgraded to websocket`).test(demo.output)) {
            await new Promise((r) => setTimeout(r, 20));
          }
        })(),
        STEP_MS,
        "the server logging the upgrade",
      );
      // The server's welcome message, received before or after the upgrade.
      await page.locator("#log li.received", { hasText: `welcome ${sid}` }).waitFor();

      // Send with the button, then with Enter: echoed, with a round-trip time.
      const messages = [`hello from chromium ${Date.now()}`, "and again, with Enter"];
      await page.fill("#text", messages[0]);
      await page.click("#send");
      await page.fill("#text", messages[1]);
      await page.press("#text", "Enter");
      for (const text of messages) {
        const echo = page.locator("#log li.echo", { hasText: text });
        await echo.waitFor();
        const rtt = Number(await echo.getAttribute("data-rtt"));
        assert.ok(Number.isFinite(rtt) && rtt >= 0 && rtt < STEP_MS, `round trip ${rtt} ms`);
        assert.equal(await echo.getAttribute("data-transport"), "websocket");
        assert.match(await echo.locator(".meta").textContent(), /^\d+\.\d ms · websocket$/);
        assert.equal(await page.locator("#log li.sent", { hasText: text }).count(), 1);
      }
      assert.match(await page.textContent("#stats"), /^2 echoes, last \d+\.\d ms/);

      assert.equal(page.url(), demo.pageUrl, "the form did not navigate away");
      assert.deepEqual(pageErrors, [], problems());
      assert.deepEqual(consoleErrors, [], problems());

      fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      t.diagnostic(`screenshot: ${path.relative(ROOT, SCREENSHOT)}`);

      // Ctrl-C with the page still connected: the demo exits by itself, and
      // the page shows that the connection closed.
      demo.child.kill("SIGTERM");
      const { code, signal } = await within(demo.exited, STEP_MS, "the demo exiting on SIGTERM");
      assert.equal(signal, null, demo.output);
      assert.equal(code, 0, demo.output);
      await page.locator('#status[data-state="closed"]').waitFor();
      assert.equal(await page.locator("#send").isDisabled(), true);
      assert.equal(await page.locator("#reconnect").isVisible(), true);
      assert.equal(page.url(), demo.pageUrl);
      assert.deepEqual(pageErrors, [], problems());
    } finally {
      if (browser) await within(browser.close(), STEP_MS, "closing Chromium").catch(() => {});
      killDemo(demo);
    }
  },
);
