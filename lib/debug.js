"use strict";

// engine.io's debug logs (`DEBUG=engine*`), through the `debug` package as
// engine.io has them. Most lines are written in Rust, where things happen:
// the engine learns from `sync()` which namespaces are on, and sends its
// lines as LOG events, printed here by the same `debug` instances, so
// DEBUG_COLORS, `debug.log` and `debug.enable()` at run time all apply.

const createDebug = require("debug");
const { setLogScopes } = require("../binding");
const { logScopes } = require("./constants");

const byBit = new Map();
const byName = {};
for (const [name, bit] of Object.entries(logScopes)) {
  const log = createDebug(name);
  byBit.set(bit, log);
  byName[name] = log;
}

let mask = -1;

/**
 * Tells the engine which namespaces are on. Cheap (`debug` caches the
 * answer until the namespaces change): it runs when a Server is made,
 * before every event batch, and whenever `debug.enable()` (or `disable()`,
 * which calls it) changes the namespaces.
 */
function sync() {
  let now = 0;
  for (const [bit, log] of byBit) if (log.enabled) now |= bit;
  if (now !== mask) {
    mask = now;
    setLogScopes(now);
  }
}

// The engine must hear of `debug.enable()` before its next request, which
// may reach Rust before any event reaches JS: so `enable` tells it, its
// behaviour otherwise unchanged.
const enable = createDebug.enable;
createDebug.enable = function (...args) {
  const result = enable.apply(this, args);
  sync();
  return result;
};

/** Prints a line the engine logged in the namespace of `bit`. */
function print(bit, text) {
  const log = byBit.get(bit);
  if (log) log("%s", text);
}

module.exports = {
  sync,
  print,
  /** `engine`: the server (requests, handshakes, upgrades). */
  engine: byName.engine,
  /** `engine:socket`: a session. */
  socket: byName["engine:socket"],
};
