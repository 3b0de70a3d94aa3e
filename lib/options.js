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

// Node's tls options that rustls (ring) cannot honour as Node does: refused
// by name at listen(), rather than ignored.
const UNSUPPORTED_TLS = [
  "pfx",
  "passphrase",
  "ciphers",
  "ecdhCurve",
  "dhparam",
  "secureOptions",
  "secureProtocol",
  "sessionIdContext",
  "ticketKeys",
  "sessionTimeout",
  "crl",
  "sigalgs",
  "privateKeyEngine",
  "privateKeyIdentifier",
  "honorCipherOrder",
  "SNICallback",
  "ALPNProtocols",
  "ALPNCallback",
  "pskCallback",
  "pskIdentityHint",
  "clientCertEngine",
  "secureContext",
  "minDHSize",
  "enableTrace",
];

/** An Error for a TLS option eio-rs cannot use, with `code` and `option`. */
function tlsOptionError(option, message) {
  const err = new Error(`eio-rs: TLS option \`${option}\`: ${message}`);
  err.code = "ERR_EIO_TLS_OPTION";
  err.option = option;
  return err;
}

/** PEM values as Node takes them (string, Buffer, or an array of them) as Buffers. */
function pemList(option, value) {
  if (value === undefined || value === null) return [];
  return (Array.isArray(value) ? value : [value]).map((v) => {
    if (typeof v === "string") return Buffer.from(v);
    if (Buffer.isBuffer(v)) return v;
    if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    if (v && typeof v === "object" && "pem" in v) {
      if (v.passphrase !== undefined)
        throw tlsOptionError("passphrase", "encrypted keys are not supported");
      return pemList(option, v.pem)[0];
    }
    throw tlsOptionError(option, "must be PEM, as a string or a Buffer (or an array of them)");
  });
}

/**
 * The TLS options of `listen()` or `setSecureContext()` as the binding takes
 * them (`TlsOptions`), or undefined when `opts` asks for no TLS (no `key`,
 * `cert` or `pfx`). Throws, naming the option, on one eio-rs does not support.
 */
function tlsOptions(opts) {
  if (!opts || (opts.key === undefined && opts.cert === undefined && opts.pfx === undefined)) {
    return undefined;
  }
  for (const name of UNSUPPORTED_TLS) {
    if (opts[name] !== undefined) {
      throw tlsOptionError(name, "is not supported by eio-rs's native TLS (use PEM key and cert)");
    }
  }
  const version = (name) => (opts[name] === undefined ? undefined : String(opts[name]));
  return {
    key: pemList("key", opts.key),
    cert: pemList("cert", opts.cert),
    ca: pemList("ca", opts.ca),
    requestCert: !!opts.requestCert,
    rejectUnauthorized: opts.rejectUnauthorized !== false,
    minVersion: version("minVersion"),
    maxVersion: version("maxVersion"),
    handshakeTimeout:
      opts.handshakeTimeout === undefined ? undefined : Number(opts.handshakeTimeout),
  };
}

module.exports = { withDefaults, bindingOptions, computePath, tlsOptions, tlsOptionError };
