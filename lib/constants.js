"use strict";

// The numbers and strings the facade shares with the engine, read from the
// binding at load (src/constants.rs): none is written here. Reading a name
// the binding does not have throws, so a constant renamed or removed on one
// side fails at load rather than reading as undefined.

const { constants } = require("../binding");

function strict(table, path) {
  return new Proxy(table, {
    get(target, key) {
      if (typeof key === "string" && !(key in target)) {
        throw new Error(`eio-rs: the binding has no constant ${path}.${key}`);
      }
      const value = target[key];
      if (value !== null && typeof value === "object" && !Array.isArray(value)) {
        return strict(value, `${path}.${String(key)}`);
      }
      return value;
    },
  });
}

module.exports = strict(constants(), "constants");
