"use strict";

// eio-rs: engine.io's API over a Rust engine. Change
// `require("engine.io")` to `require("eio-rs")`.

const { Server } = require("./lib/server");
const { Socket, Transport } = require("./lib/socket");
const { NativeHttpServer } = require("./lib/http-server");

/**
 * engine.io re-exports its codec, engine.io-parser; so does eio-rs, for code
 * that encodes packets itself. The engine's own codec is in Rust.
 */
const parser = require("engine.io-parser");

/** The Engine.IO protocol revision spoken by default. */
const protocol = parser.protocol;

/** The transports, with what each may upgrade to. */
const transports = {
  polling: { upgradesTo: ["websocket", "webtransport"], handlesUpgrades: false },
  websocket: { upgradesTo: [], handlesUpgrades: true },
  webtransport: { upgradesTo: [], handlesUpgrades: false },
};

/**
 * Creates an engine listening on `port`, served by the native listener.
 * Requests outside the engine path get 501, as with engine.io.
 * @param {number} port
 * @param {object} [options] ServerOptions and AttachOptions
 * @param {() => void} [callback] once listening
 */
function listen(port, options, callback) {
  if (typeof options === "function") {
    callback = options;
    options = {};
  }
  const engine = new Server(options || {});
  // Node's tls options (`key`, `cert`, ...) make it an HTTPS listener.
  engine.httpServer = new NativeHttpServer(engine, options);
  engine.httpServer.listen(port, callback);
  return engine;
}

/**
 * Attaches an engine to a Node http server.
 * @param {import("http").Server} server
 * @param {object} [options]
 */
function attach(server, options) {
  const engine = new Server(options);
  engine.attach(server, options);
  return engine;
}

module.exports = { Server, Socket, Transport, listen, attach, protocol, transports, parser };
