"use strict";

// The JS tests against a prebuilt binary (the release workflow's test job,
// on every platform and shell): every __test__/*.spec.js but those that
// need what only a developer's machine (or .ci/run) has: packed-install
// builds from source, demo-browser drives Debian's Chromium, cluster starts
// Debian's redis-server and haproxy.

const { spawnSync } = require("child_process");
const fs = require("fs");
const path = require("path");

const dir = path.join(__dirname, "..", "__test__");
const needsMore = new Set(["packed-install.spec.js", "demo-browser.spec.js", "cluster.spec.js"]);
const specs = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith(".spec.js") && !needsMore.has(f))
  .map((f) => path.join(dir, f));
const r = spawnSync(process.execPath, ["--test", "--test-concurrency=1", ...specs], {
  stdio: "inherit",
});
process.exit(r.status === null ? 1 : r.status);
