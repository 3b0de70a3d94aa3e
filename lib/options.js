"use strict";

// engine.io's options: their defaults, and the form the binding takes them
// in (src/options.rs checks them and names the one at fault).

/** The options of `new Server(opts)`, with engine.io's defaults filled in. */
function withDefaults(opts) {
  const out = Object.assign(
    {
      wsEngine: "eio-rs",
      pingTimeout: 20000,
      pingInterval: 25000,
      upgradeTimeout: 10000,
      maxHttpBufferSize: 1e6,
      transports: ["polling", "websocket"],
      allowUpgrades: true,
      httpCompression: { threshold: 1024 },
      cors: false,
      allowEIO3: false,
    },
    opts,
  );
  if (opts.cookie) {
    out.cookie = Object.assign(
      { name: "io", path: "/", httpOnly: true, sameSite: "lax" },
      opts.cookie,
    );
  }
  if (opts.perMessageDeflate) {
    out.perMessageDeflate = Object.assign({ threshold: 1024 }, opts.perMessageDeflate);
  }
  return out;
}

/** engine.io's `_computePath`. */
function computePath(options) {
  let path = (options.path || "/engine.io").replace(/\/$/, "");
  if (options.addTrailingSlash !== false) path += "/";
  return path;
}

/** The options as the binding takes them (`BindingOptions`). */
function bindingOptions(opts) {
  const initial = opts.initialPacket;
  return {
    pingInterval: Number(opts.pingInterval),
    pingTimeout: Number(opts.pingTimeout),
    upgradeTimeout: Number(opts.upgradeTimeout),
    maxHttpBufferSize: Number(opts.maxHttpBufferSize),
    transports: Array.from(opts.transports || []),
    allowUpgrades: opts.allowUpgrades !== false,
    allowEio3: !!opts.allowEIO3,
    initialPacket:
      initial === undefined || initial === null
        ? undefined
        : Buffer.isBuffer(initial)
          ? initial
          : String(initial),
    path: computePath(opts),
    destroyUpgrade: opts.destroyUpgrade !== false,
    destroyUpgradeTimeout: Number(opts.destroyUpgradeTimeout || 1000),
    maxBufferedBytes:
      opts.maxBufferedBytes === undefined || opts.maxBufferedBytes === null
        ? undefined
        : Number(opts.maxBufferedBytes),
    perMessageDeflate: perMessageDeflate(opts.perMessageDeflate),
    requestTimeout:
      opts.requestTimeout === undefined || opts.requestTimeout === null
        ? undefined
        : Number(opts.requestTimeout),
    httpCompressionThreshold: opts.httpCompression
      ? Number(opts.httpCompression.threshold !== undefined ? opts.httpCompression.threshold : 1024)
      : undefined,
  };
}

/** `ws`'s permessage-deflate options, as the binding takes them. */
function perMessageDeflate(pmd) {
  if (!pmd) return undefined;
  const bits = (v) => (v === undefined || v === null ? undefined : v === false ? 0 : Number(v));
  const zlib = pmd.zlibDeflateOptions || {};
  return {
    threshold: Number(pmd.threshold !== undefined ? pmd.threshold : 1024),
    serverNoContextTakeover:
      pmd.serverNoContextTakeover === undefined ? undefined : !!pmd.serverNoContextTakeover,
    clientNoContextTakeover:
      pmd.clientNoContextTakeover === undefined ? undefined : !!pmd.clientNoContextTakeover,
    serverMaxWindowBits: bits(pmd.serverMaxWindowBits),
    clientMaxWindowBits: bits(pmd.clientMaxWindowBits),
    level: zlib.level === undefined ? undefined : Number(zlib.level),
  };
}

module.exports = { withDefaults, bindingOptions, computePath };
