"use strict";

// The constants the facade shares with the engine have one source, the
// binding (src/constants.rs); these tests fail when the two sides drift.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const constants = require("../lib/constants");
const { Server } = require("..");

test("Server.errors and Server.errorMessages are engine.io's, plus SERVER_DRAINING", () => {
  const socketio = path.dirname(require.resolve("socket.io/package.json"));
  const engineio = require(require.resolve("engine.io", { paths: [socketio] }));
  assert.deepEqual(Server.errors, { ...engineio.Server.errors, SERVER_DRAINING: 6 });
  assert.deepEqual(Server.errorMessages, {
    ...engineio.Server.errorMessages,
    6: "Server draining",
  });
});

test("every debug namespace the engine logs in is one of engine.io's", () => {
  const socketio = path.dirname(require.resolve("socket.io/package.json"));
  // engine.io's main file is build/engine.io.js.
  const engineio = path.dirname(path.dirname(require.resolve("engine.io", { paths: [socketio] })));
  const built = fs
    .readdirSync(path.join(engineio, "build"), { recursive: true })
    .filter((f) => f.endsWith(".js"))
    .map((f) => fs.readFileSync(path.join(engineio, "build", f), "utf8"))
    .join("\n");
  const names = Object.keys(constants.logScopes);
  assert.ok(names.length >= 4);
  for (const name of names) assert.ok(built.includes(`.default)("${name}")`), name);
});

test("every event kind the engine sends has a case in the facade's dispatch", () => {
  const source = fs.readFileSync(path.join(__dirname, "../lib/dispatch.js"), "utf8");
  for (const name of Object.keys(constants.event)) {
    assert.match(source, new RegExp(`case ${name}:`), `lib/dispatch.js does not handle ${name}`);
  }
  for (const name of Object.keys(constants.hook)) {
    assert.match(source, new RegExp(`case HOOK_${name}:`), `lib/dispatch.js does not run ${name}`);
  }
});

test("a constant the binding does not have fails at load, not as undefined", () => {
  assert.throws(() => constants.event.NO_SUCH_KIND, /no constant constants\.event\.NO_SUCH_KIND/);
  assert.throws(() => constants.nothing, /no constant constants\.nothing/);
});

test("every header code names a header", () => {
  assert.ok(constants.responseHeaders.length <= 15, "a code holds indexes 1..15");
  for (const [name, value] of constants.responseHeaders) {
    assert.match(name, /^[A-Za-z-]+$/);
    assert.equal(typeof value, "string");
  }
});
